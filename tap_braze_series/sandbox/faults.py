"""Which requests get which injected fault, and what the faulty answers carry.

Every decision is a hash of the seed and the request (see hashing.py), so runs repeat.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping

from .config import SandboxConfig
from .hashing import digest, fraction, uniform


class FaultInjector:
    """Decides, reproducibly, which requests get which fault."""

    def __init__(self, seed: int, rate: float, kinds: tuple[str, ...], max_repeats: int) -> None:
        self._lock = threading.Lock()
        self.configure(seed, rate, kinds, max_repeats)

    def configure(self, seed: int, rate: float, kinds: tuple[str, ...], max_repeats: int) -> None:
        with self._lock:
            self.seed, self.rate, self.kinds, self.max_repeats = seed, rate, kinds, max_repeats
            self._attempts: dict[str, list[int]] = {}  # identity -> [attempts, faults]

    @staticmethod
    def identity(path: str, params: Mapping[str, str]) -> str:
        return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))

    def decide(self, identity: str) -> str | None:
        with self._lock:
            if self.rate <= 0 or not self.kinds:
                return None
            counters = self._attempts.setdefault(identity, [0, 0])
            attempt = counters[0]
            counters[0] += 1
            if counters[1] >= self.max_repeats:
                return None
            raw = digest(("fault", self.seed, identity, attempt), 16)
            if fraction(raw[:8]) >= self.rate:
                return None
            counters[1] += 1
            return self.kinds[int.from_bytes(raw[8:], "big") % len(self.kinds)]


def tail_delay(seed: int, identity: str, rate: float, seconds: float) -> float:
    """Extra seconds for a request of the latency tail: the same requests every run."""
    if rate <= 0:
        return 0.0
    return seconds if uniform("tail", seed, identity) < rate else 0.0


class AnswerFaults:
    """Mangles 200 answers as ``body_fault`` says, counting asks per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asks: dict[str, int] = {}
        self._bombs: dict[tuple[str, int], bytes] = {}

    def apply(
        self, cfg: SandboxConfig, identity: str, raw: bytes, headers: Mapping[str, str]
    ) -> tuple[bytes, Mapping[str, str], str | None]:
        """(body, headers, fault name or None) of one answer."""
        kind = cfg.body_fault
        if kind is None or cfg.body_fault_match not in identity:
            return raw, headers, None
        with self._lock:
            asks = self._asks.get(identity, 0)
            self._asks[identity] = asks + 1
        if cfg.body_fault_repeats is not None and asks >= cfg.body_fault_repeats:
            return raw, headers, None
        if kind == "huge_number":
            # Valid JSON, and an object: only a full decode finds the number out of range.
            return raw[: raw.rindex(b"}")] + b', "sandbox_extra": 1e999}', headers, kind
        if kind == "bad_utf8":
            # A name with a latin-1 byte, as a system that is not UTF-8 would write it.
            mangled = raw.replace(b'"name": "', b'"name": "Caf\xe9 ', 1)
            if mangled == raw:
                mangled = raw[: raw.rindex(b"}")] + b', "sandbox_note": "Caf\xe9"}'
            return mangled, headers, kind
        encoding = "gzip" if kind == "gzip_bomb" else "deflate"
        return self._bomb(encoding, cfg.bomb_bytes), {**headers, "Content-Encoding": encoding}, kind

    def _bomb(self, encoding: str, size: int) -> bytes:
        """A compressed JSON object of `size` bytes once inflated (mostly spaces)."""
        with self._lock:
            cached = self._bombs.get((encoding, size))
            if cached is not None:
                return cached
            head, tail = b'{"message": "success", "data": []', b"}"
            packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            parts = [packer.compress(head)]
            left = size - len(head) - len(tail)
            block = b" " * (1024 * 1024)
            while left > 0:
                parts.append(packer.compress(block[: min(left, len(block))]))
                left -= len(block)
            parts += [packer.compress(tail), packer.flush()]
            self._bombs[(encoding, size)] = b"".join(parts)
            return self._bombs[(encoding, size)]


#: The 1xx heads sent before the answer by the faults of that name.
INTERIM_HEADS = {
    "early_hints": b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n",
    "interim": (
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n"
        b"HTTP/1.1 199 Still Working\r\nX-Sandbox: interim\r\n\r\n"
    ),
}

#: The bodies of the 502 and 504 faults: a proxy's HTML pages, not Braze's JSON.
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
HTML_504 = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)
