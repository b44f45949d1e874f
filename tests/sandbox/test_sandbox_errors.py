"""400 validation, 401, 403, 404 and 405."""

from __future__ import annotations

import pytest
import requests


def _ids(ws):
    seg_on = next(s.id for s in ws.segments if s.analytics_tracking_enabled)
    seg_off = next(s.id for s in ws.segments if not s.analytics_tracking_enabled)
    return {
        "canvas": ws.canvases[0].id,
        "campaign": ws.campaigns[0].id,
        "event": ws.events[0],
        "seg_on": seg_on,
        "seg_off": seg_off,
    }


# (path, params, parameter the message must mention); "{x}" placeholders filled from _ids
CASES = [
    # missing id params
    ("/canvas/data_series", {"length": "3"}, "canvas_id"),
    ("/campaigns/data_series", {"length": "3"}, "campaign_id"),
    ("/events/data_series", {"length": "3"}, "event"),
    ("/segments/data_series", {"length": "3"}, "segment_id"),
    # length missing / non-integer / out of bounds
    ("/events/data_series", {"event": "{event}"}, "length"),
    ("/sessions/data_series", {}, "length"),
    ("/kpi/dau/data_series", {"length": "abc"}, "length"),
    ("/kpi/mau/data_series", {"length": "2.5"}, "length"),
    ("/kpi/new_users/data_series", {"length": "0"}, "length"),
    ("/kpi/uninstalls/data_series", {"length": "101"}, "length"),
    ("/purchases/quantity_series", {"length": "-1"}, "length"),
    ("/purchases/revenue_series", {"length": ""}, "length"),
    ("/campaigns/data_series", {"campaign_id": "{campaign}", "length": "101"}, "length"),
    ("/canvas/data_series", {"canvas_id": "{canvas}", "length": "15"}, "length"),
    ("/canvas/data_series", {"canvas_id": "{canvas}", "length": "0"}, "length"),
    ("/segments/data_series", {"segment_id": "{seg_on}", "length": "x"}, "length"),
    # unit
    ("/events/data_series", {"event": "{event}", "length": "3", "unit": "week"}, "unit"),
    ("/sessions/data_series", {"length": "3", "unit": "HOUR"}, "unit"),
    ("/kpi/dau/data_series", {"length": "3", "unit": "hour"}, "unit"),
    ("/segments/data_series", {"segment_id": "{seg_on}", "length": "3", "unit": "hour"}, "unit"),
    (
        "/campaigns/data_series",
        {"campaign_id": "{campaign}", "length": "3", "unit": "hour"},
        "unit",
    ),
    ("/canvas/data_series", {"canvas_id": "{canvas}", "length": "3", "unit": "hour"}, "unit"),
    # unparseable times
    ("/sessions/data_series", {"length": "3", "ending_at": "yesterday"}, "ending_at"),
    ("/sessions/data_series", {"length": "3", "ending_at": "2024-13-01"}, "ending_at"),
    ("/sessions/data_series", {"length": "3", "ending_at": "2024-03-05T25:00:00Z"}, "ending_at"),
    (
        "/sessions/data_series",
        {"length": "3", "ending_at": "2024-03-05T10:00:00 05:00"},
        "ending_at",
    ),
    ("/canvas/data_series", {"canvas_id": "{canvas}", "starting_at": "soon"}, "starting_at"),
    (
        "/canvas/data_series",
        {"canvas_id": "{canvas}", "length": "2", "ending_at": "x"},
        "ending_at",
    ),
    # unknown entities
    (
        "/canvas/data_series",
        {"canvas_id": "00000000-0000-4000-8000-000000000000", "length": "3"},
        "canvas_id",
    ),
    ("/campaigns/data_series", {"campaign_id": "nope", "length": "3"}, "campaign_id"),
    ("/segments/data_series", {"segment_id": "nope", "length": "3"}, "segment_id"),
    ("/events/data_series", {"event": "never_happened", "length": "3"}, "event"),
    ("/events/data_series", {"event": "{event}", "length": "3", "app_id": "app_web"}, "app_id"),
    ("/sessions/data_series", {"length": "3", "app_id": "nope"}, "app_id"),
    ("/kpi/dau/data_series", {"length": "3", "app_id": "nope"}, "app_id"),
    ("/purchases/revenue_series", {"length": "3", "app_id": "nope"}, "app_id"),
    ("/purchases/revenue_series", {"length": "3", "product": "nope"}, "product"),
    # segments without analytics tracking
    ("/segments/data_series", {"segment_id": "{seg_off}", "length": "3"}, "segment_id"),
    (
        "/events/data_series",
        {"event": "{event}", "length": "3", "segment_id": "{seg_off}"},
        "segment_id",
    ),
    ("/sessions/data_series", {"length": "3", "segment_id": "{seg_off}"}, "segment_id"),
    ("/sessions/data_series", {"length": "3", "segment_id": "nope"}, "segment_id"),
    # canvas range rules
    ("/canvas/data_series", {"canvas_id": "{canvas}"}, "length"),
    ("/canvas/data_series", {"canvas_id": "{canvas}", "ending_at": "2024-03-05"}, "starting_at"),
    (
        "/canvas/data_series",
        {"canvas_id": "{canvas}", "starting_at": "2024-02-01", "ending_at": "2024-03-01T23:59:59Z"},
        "starting_at",
    ),
    (
        "/canvas/data_series",
        {"canvas_id": "{canvas}", "starting_at": "2024-03-10", "ending_at": "2024-03-05T00:00:00Z"},
        "starting_at",
    ),
    (
        "/canvas/data_series",
        {"canvas_id": "{canvas}", "length": "3", "include_step_breakdown": "yes"},
        "include_step_breakdown",
    ),
]


@pytest.mark.parametrize(("path", "params", "param"), CASES)
def test_validation_errors(client, ws, path, params, param):
    ids = _ids(ws)
    filled = {k: v.format(**ids) for k, v in params.items()}
    resp = client.get(path, **filled)
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert param in body["message"]
    assert isinstance(body["errors"], list)
    assert body["errors"]


def test_canvas_fourteen_days_from_starting_at_is_fine(client, ws):
    resp = client.get(
        "/canvas/data_series",
        canvas_id=ws.canvases[0].id,
        starting_at="2024-02-17",
        ending_at="2024-03-01T23:59:59Z",
    )
    assert resp.status_code == 200
    assert len(resp.json()["data"]["stats"]) == 14


def test_missing_key(sandbox):
    resp = requests.get(sandbox.url + "/kpi/dau/data_series", params={"length": 1}, timeout=10)
    assert resp.status_code == 401
    assert resp.json()["message"].startswith("Invalid API key")
    assert "X-RateLimit-Limit" in resp.headers


@pytest.mark.parametrize(
    ("header", "sent"),
    [
        ("Bearer wrong-key", "wrong-key"),
        ("Bearer", ""),
        ("Basic c2FuZGJveC1rZXk=", "c2FuZGJveC1rZXk="),
        ("sandbox-key", ""),
        ('Bearer "sandbox-key"', '"sandbox-key"'),
    ],
)
def test_a_wrong_key_is_repeated_with_empty_rate_limit_values(sandbox, header, sent):
    """As a recorded real 401: `Invalid API key: <the key sent>`, empty X-RateLimit-*."""
    resp = requests.get(
        sandbox.url + "/kpi/dau/data_series",
        params={"length": 1},
        headers={"Authorization": header},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["message"] == f"Invalid API key: {sent}".rstrip()
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert resp.headers[name] == "", name


def test_a_401_without_the_key_when_switched(fresh):
    sb, _ = fresh(auth_error_echoes_key=False)
    resp = requests.get(
        sb.url + "/kpi/dau/data_series",
        params={"length": 1},
        headers={"Authorization": "Bearer wrong-key"},
        timeout=10,
    )
    assert resp.status_code == 401
    msg = resp.json()["message"]
    assert msg.startswith("Invalid API key")
    assert "wrong-key" not in msg
    assert sb.api_key not in msg
    assert int(resp.headers["X-RateLimit-Limit"]) > 0


def test_400_and_403_messages_repeat_the_key_when_asked(fresh):
    sb, client = fresh(
        echo_key_statuses=frozenset({400, 403}), denied_permissions={"sessions.data_series"}
    )
    bad = client.get("/kpi/dau/data_series", length="abc")
    denied = client.get("/sessions/data_series", length=1)
    assert bad.status_code == 400
    assert denied.status_code == 403
    assert f"(API key: {sb.api_key})" in bad.json()["message"]
    assert f"(API key: {sb.api_key})" in denied.json()["message"]


def test_key_in_query_string_rejected(sandbox):
    for headers in ({}, {"Authorization": f"Bearer {sandbox.api_key}"}):
        resp = requests.get(
            sandbox.url + "/kpi/dau/data_series",
            params={"length": 1, "api_key": sandbox.api_key},
            headers=headers,
            timeout=10,
        )
        assert resp.status_code == 401
        msg = resp.json()["message"]
        assert "query string" in msg
        assert sandbox.api_key not in msg
    logged = sandbox.request_log[-1]
    assert logged.params["api_key"] != sandbox.api_key
    assert all(sandbox.api_key not in repr(r) for r in sandbox.request_log)


def test_bearer_scheme_is_case_insensitive(sandbox):
    resp = requests.get(
        sandbox.url + "/kpi/dau/data_series",
        params={"length": 1},
        headers={"Authorization": f"bearer {sandbox.api_key}"},
        timeout=10,
    )
    assert resp.status_code == 200


def test_permission_denied(fresh):
    sb, client = fresh(denied_permissions={"segments.data_series", "events.list"})
    seg = next(s.id for s in sb.workspace.segments if s.analytics_tracking_enabled)
    resp = client.get("/segments/data_series", segment_id=seg, length=3)
    assert resp.status_code == 403
    assert resp.json()["message"].startswith("You do not have permission")
    assert "segments.data_series" in resp.json()["message"]
    assert client.get("/events/list").status_code == 403
    assert client.get("/segments/list").status_code == 200
    sb.set_denied_permissions(set())
    assert client.get("/events/list").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/", "/canvas", "/canvas/list/", "/kpi/dau", "/users/export/ids", "/canvas/data_series/extra"],
)
def test_unknown_path_404(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert "message" in resp.json()


def test_only_get(client, sandbox):
    resp = client.session.post(sandbox.url + "/canvas/list", json={"page": 0}, timeout=10)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET"
