"""The configured key is replaced in log records, text streams and Singer bytes."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

from tap_braze_series import redact

KEY = "c0ffee00-1234-4abc-9def-0123456789ab"


def test_every_written_form_of_the_key_is_replaced():
    redact.register(KEY)
    for form in (KEY, json.dumps(KEY)[1:-1], quote(KEY, safe="")):
        assert redact.redact(f"Invalid API key: {form}.") == "Invalid API key: <api_key redacted>."
    data = bytearray(b'{"message":"Invalid API key: ' + KEY.encode() + b'"}\n')
    redact.redact_bytes(data)
    assert data == bytearray(b'{"message":"Invalid API key: <api_key redacted>"}\n')


def test_short_values_are_not_taken_for_a_key():
    redact.register("abc")
    assert redact.redact("abc abcdef") == "abc abcdef"


def test_a_log_record_loses_the_key_in_its_message_arguments_and_traceback():
    redact.register(KEY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tap-braze-series.test-redact")
    logger.addHandler(handler)
    try:
        logger.warning("answered %s", {"message": f"Invalid API key: {KEY}"})
        try:
            raise ValueError(f"bad {KEY}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert KEY not in text
    assert text.count("<api_key redacted>") == 2
    assert "ValueError: bad <api_key redacted>" in text


def test_a_text_stream_writes_through_without_the_key():
    out = io.StringIO()
    redact.register(KEY)
    stream = redact.RedactingStream(out)
    print(f"  - Braze rejected the API key (401): Invalid API key: {KEY}", file=stream)
    assert KEY not in out.getvalue()
    assert out.getvalue().endswith("<api_key redacted>\n")
