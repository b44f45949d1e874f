"""The configured API key is taken out of everything the process writes.

Braze repeats the key it was sent in some answers (a recorded 401 is
`{"message": "Invalid API key: <the key sent>"}`), and a user may paste it into
another setting: any text that reaches a log, an error line, `--check`'s report
or a Singer stream could carry it. Rather than guard each message, the key is
replaced at the process's output boundaries:

- every log record, whatever its handler (a record factory: the message, its
  arguments' text, an exception's traceback);
- `sys.stdout` / `sys.stderr` text writes (the error line, `--check`, click's
  messages, a traceback printed by the interpreter);
- the Singer writer's bytes (see writer.py), which go to stdout's file descriptor.

The key is known once the settings are read (`register`); a key too short to be a
Braze key (under MIN_LENGTH characters) is not replaced, so that it cannot blank
out ordinary words.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any
from urllib.parse import quote

REPLACEMENT = "<api_key redacted>"
MIN_LENGTH = 6

_lock = threading.Lock()
_texts: tuple[str, ...] = ()
_bytes: tuple[bytes, ...] = ()


def register(key: object) -> None:
    """Redact `key` (and its JSON- and URL-escaped forms) from now on."""
    global _texts, _bytes
    if not isinstance(key, str) or len(key.strip()) < MIN_LENGTH:
        return
    # A URL's host is read in lower case: a key pasted as api_url's host comes back so.
    forms = {key, key.strip(), key.lower(), json.dumps(key)[1:-1], quote(key, safe=""), quote(key)}
    forms |= {json.dumps(key, ensure_ascii=False)[1:-1]}
    with _lock:
        texts = set(_texts) | {f for f in forms if len(f) >= MIN_LENGTH}
        # Longest first: a form containing another is replaced whole.
        _texts = tuple(sorted(texts, key=len, reverse=True))
        _bytes = tuple(t.encode("utf-8", "surrogatepass") for t in _texts)
    _install_record_factory()


def redact(text: str) -> str:
    """`text` without the registered key."""
    for secret in _texts:
        if secret in text:
            text = text.replace(secret, REPLACEMENT)
    return text


def redact_bytes(data: bytearray) -> None:
    """Take the registered key out of `data`, in place (a cheap search when absent)."""
    for secret in _bytes:
        if data.find(secret) >= 0:
            data[:] = data.replace(secret, REPLACEMENT.encode())


def registered() -> bool:
    return bool(_texts)


_factory_installed = False


def _install_record_factory() -> None:
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _texts:
            return record
        try:
            message = record.getMessage()
        except Exception:  # logging reports a bad format itself, at emit
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters use exc_text when it is set: the traceback is formatted once, here.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)


class RedactingStream(io.TextIOBase):
    """A text stream writing through `stream`, the key taken out of every write."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream

    @property
    def wrapped(self) -> Any:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    @property
    def buffer(self) -> Any:
        return self._stream.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
