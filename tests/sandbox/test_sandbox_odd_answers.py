"""Odd answers the sandbox plays when asked: interim heads, answers out of turn, lists
ignoring `page`, bodies that pass a JSON check but not a full decode, compression bombs."""

from __future__ import annotations

import gzip
import json
import socket
import zlib

import pytest
import requests

NOW_PARAMS = {"length": "3", "ending_at": "2024-03-10T23:59:59Z"}


def _raw_get(sb, path: str, wait: float = 0.5) -> bytes:
    """Everything the server sends for one GET within `wait` seconds after it goes quiet."""
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sb.api_key}\r\n\r\n".encode()
        )
        sock.settimeout(wait)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return data
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize(
    ("kind", "heads"),
    [("early_hints", ["103"]), ("interim", ["102", "103", "199"])],
)
def test_interim_heads_come_before_the_answer(fresh, kind, heads):
    sb, _ = fresh(fault_rate=1.0, fault_kinds=(kind,), fault_max_repeats=10)
    data = _raw_get(sb, "/kpi/dau/data_series?length=3")
    statuses = [
        line.split()[1].decode() for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")
    ]
    assert statuses == [*heads, "200"]
    assert json.loads(data.rsplit(b"\r\n\r\n", 1)[1])["message"] == "success"


def test_an_unsolicited_answer_follows_the_answer(fresh):
    sb, _ = fresh(fault_rate=1.0, fault_kinds=("unsolicited",), fault_max_repeats=10)
    data = _raw_get(sb, "/kpi/dau/data_series?length=3")
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2


def test_a_list_that_ignores_page_answers_page_0_for_every_page(fresh):
    _, client = fresh(lists_ignore_page=True)
    first = client.ok("/canvas/list", page=0)["canvases"]
    assert first
    assert client.ok("/canvas/list", page=1)["canvases"] == first
    assert client.ok("/canvas/list", page=7)["canvases"] == first


def test_a_huge_number_passes_json_but_not_a_float(fresh):
    sb, client = fresh(body_fault="huge_number", body_fault_match="/kpi/dau", body_fault_repeats=1)
    first = client.get("/kpi/dau/data_series", length=3)
    again = client.get("/kpi/dau/data_series", length=3)
    other = client.get("/kpi/mau/data_series", length=3)
    assert b'"sandbox_extra": 1e999}' in first.content
    assert json.loads(first.content)["sandbox_extra"] == float("inf")
    assert b"1e999" not in again.content
    assert b"1e999" not in other.content
    assert [r.fault for r in sb.request_log] == ["huge_number", None, None]


def test_bad_utf8_puts_a_latin1_byte_in_a_name(fresh):
    _, client = fresh(body_fault="bad_utf8", body_fault_match="/canvas/list")
    raw = client.get("/canvas/list", page=0).content
    assert b'"name": "Caf\xe9 ' in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b"\xe9" not in client.get("/campaigns/list", page=0).content


@pytest.mark.parametrize(
    ("kind", "encoding", "inflate"),
    [
        ("gzip_bomb", "gzip", gzip.decompress),
        ("deflate_bomb", "deflate", zlib.decompress),
    ],
)
def test_a_bomb_is_small_and_inflates_to_bomb_bytes_of_json(fresh, kind, encoding, inflate):
    size = 20 * 1024 * 1024
    sb, _ = fresh(body_fault=kind, bomb_bytes=size)
    resp = requests.get(
        sb.url + "/kpi/dau/data_series",
        params={"length": 3},
        headers={"Authorization": f"Bearer {sb.api_key}", "Accept-Encoding": encoding},
        stream=True,
        timeout=10,
    )
    sent = resp.raw.read(decode_content=False)
    assert resp.headers["Content-Encoding"] == encoding
    assert len(sent) < size / 500
    body = inflate(sent)
    assert len(body) == size
    assert json.loads(body) == {"message": "success", "data": []}
