"""The monitor's JSON API and page over a base dir filled by hand: every endpoint, what it reads and writes."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.lock import DaemonLock
from trainerd.daemon.snapshots import list_snapshots
from trainerd.files import atomic_write_json
from trainerd.monitor import MonitorServer, run_monitor

Api = Callable[..., Any]
Commands = Callable[[], list[dict[str, Any]]]


def inbox_files(base: BaseDir) -> list[str]:
    return sorted(p.name for p in base.inbox.iterdir())


# --- the page ----------------------------------------------------------------------------------


def test_page_has_the_elements_a_browser_test_looks_for(api: Api) -> None:
    page = api("GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.body.decode()
    for element in ('id="state"', 'id="loss-chart"', 'data-points="0"', 'id="btn-pause"', 'id="btn-resume"'):
        assert element in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN: the box has no internet


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
        ("uPlot.LICENSE.txt", "text/plain"),
    ],
)
def test_static_files_are_served_from_the_package(api: Api, name: str, kind: str) -> None:
    reply = api("GET", f"/static/{name}")
    assert reply.status == 200 and reply.headers["content-type"].startswith(kind) and reply.body
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_unknown_static_file_is_a_json_404(api: Api) -> None:
    reply = api("GET", "/static/nothing.js")
    assert reply.status == 404 and reply.json() == {"error": "not found"}


# --- reads -------------------------------------------------------------------------------------


def test_status_without_a_daemon_shows_the_last_status_as_stale(api: Api, base: BaseDir) -> None:
    data = api("GET", "/api/status").json()
    assert data["state"] == "training" and data["stale"] is True and data["daemon_running"] is False
    assert "no daemon is running" in data["warning"]
    assert data["status"]["current_job"]["step"] == 5 and data["status"]["current_job"]["total_steps"] == 10
    assert data["status"]["current_job"]["run_dir"] == "runs/job-b"  # relative: no local paths in replies
    assert str(base.root) not in json.dumps(data)
    assert 0 <= data["heartbeat_age"] < 60 and data["max_upload_bytes"] > 0


def test_status_with_a_running_daemon(api: Api, daemon: DaemonLock) -> None:
    data = api("GET", "/api/status").json()
    assert data["daemon_running"] is True and data["daemon_pid"] == os.getpid()
    assert data["stale"] is False and data["warning"] is None


def test_status_warns_when_the_heartbeat_is_old(api: Api, base: BaseDir, daemon: DaemonLock) -> None:
    old = json.loads(base.status_file.read_text())
    atomic_write_json(base.status_file, {**old, "heartbeat": time.time() - 600})
    data = api("GET", "/api/status").json()
    assert data["stale"] is True and "heartbeat is 600s old" in data["warning"]


def test_status_before_the_daemon_ever_ran(api: Api, base: BaseDir) -> None:
    base.status_file.unlink()
    data = api("GET", "/api/status").json()
    assert data["state"] == "not started" and data["status"] is None and data["heartbeat_age"] is None


def test_metrics_of_every_job_by_global_step(api: Api) -> None:
    data = api("GET", "/api/metrics").json()
    rows = data["rows"]
    assert [r["global_step"] for r in rows] == list(range(1, 16))
    assert {r["job_id"] for r in rows[:10]} == {"job-a"} and {r["job_id"] for r in rows[10:]} == {"job-b"}
    assert set(rows[0]) == {"global_step", "step", "loss", "lr", "grad_norm", "tokens_per_second", "time", "job_id"}
    assert data["last_global_step"] == 15 and data["truncated"] is False


def test_metrics_since_a_step_and_with_a_limit(api: Api) -> None:
    since = api("GET", "/api/metrics?since=12").json()
    assert [r["global_step"] for r in since["rows"]] == [13, 14, 15] and since["since"] == 12
    nothing_new = api("GET", "/api/metrics?since=15").json()
    assert nothing_new["rows"] == [] and nothing_new["last_global_step"] == 15
    limited = api("GET", "/api/metrics?limit=2").json()
    assert [r["global_step"] for r in limited["rows"]] == [14, 15] and limited["truncated"] is True


@pytest.mark.parametrize("query", ["since=abc", "since=-1", "limit=0", "limit=99999999"])
def test_metrics_refuses_bad_numbers(api: Api, query: str) -> None:
    reply = api("GET", f"/api/metrics?{query}")
    assert reply.status == 400 and "must be" in reply.json()["error"]


def test_metrics_turn_nan_into_null(api: Api, base: BaseDir) -> None:
    (base.run_dir("job-c")).mkdir()
    (base.run_dir("job-c") / "metrics.jsonl").write_text('{"global_step": 99, "loss": NaN, "lr": Infinity}\n')
    rows = api("GET", "/api/metrics?since=98").json()["rows"]
    assert rows == [
        {
            "global_step": 99,
            "step": None,
            "loss": None,
            "lr": None,
            "grad_norm": None,
            "tokens_per_second": None,
            "time": None,
            "job_id": "job-c",
        }
    ]


def test_queue_by_priority(api: Api) -> None:
    data = api("GET", "/api/queue").json()
    assert data["counts"] == {"high": 1, "normal": 1, "low": 0, "processing": 0, "failed": 1, "done": 0}
    assert [j["original_name"] for j in data["queued"]["high"]] == ["urgent.jsonl"]
    assert [j["original_name"] for j in data["queued"]["normal"]] == ["later.jsonl"]
    assert data["queued"]["low"] == [] and data["processing"] is None


def test_history_and_its_limit(api: Api, base: BaseDir) -> None:
    from trainerd.daemon.status import append_history

    append_history(base, {"job_id": "job-b", "outcome": "failed", "error": "loss went NaN"})
    assert [h["job_id"] for h in api("GET", "/api/history").json()["history"]] == ["job-a", "job-b"]
    assert [h["job_id"] for h in api("GET", "/api/history?limit=1").json()["history"]] == ["job-b"]


def test_versions_with_current_and_previous(api: Api, base: BaseDir) -> None:
    data = api("GET", "/api/versions").json()
    assert data["current"] == "v000002" and data["error"] is None
    assert [(v["name"], v["current"]) for v in data["versions"]] == [("v000001", False), ("v000002", True)]
    assert data["versions"][1]["meta"]["job_id"] == "job-a" and "files" not in data["versions"][1]["meta"]


def test_versions_report_a_broken_current_link_instead_of_failing(api: Api, base: BaseDir) -> None:
    base.current_model.unlink()
    os.symlink("models/nowhere", base.current_model)
    data = api("GET", "/api/versions").json()
    assert data["current"] is None and "not a version" in data["error"]
    assert len(data["versions"]) == 2 and str(base.root) not in json.dumps(data)


def test_snapshots_listed_without_a_verify_result_until_asked(api: Api) -> None:
    snapshots = api("GET", "/api/snapshots").json()["snapshots"]
    assert len(snapshots) == 1 and snapshots[0]["version"] == "v000002" and snapshots[0]["verify"] is None
    assert "path" not in snapshots[0]


def test_verify_a_snapshot_caches_the_result_with_its_time(api: Api, base: BaseDir, token: str) -> None:
    name = list_snapshots(base)[0].name
    reply = api("POST", f"/api/snapshots/{name}/verify", token=token)
    assert reply.status == 200
    result = reply.json()["verify"]
    assert result["ok"] is True and result["checked"] >= 3 and result["problems"] == []
    cached = api("GET", "/api/snapshots").json()["snapshots"][0]["verify"]
    assert cached == result and abs(cached["verified_at"] - time.time()) < 60

    (list_snapshots(base)[0].path / "model.safetensors").write_bytes(b"damaged")
    bad = api("POST", f"/api/snapshots/{name}/verify", token=token).json()["verify"]
    assert bad["ok"] is False and bad["problems"] == ["changed: model.safetensors"]
    assert api("GET", "/api/snapshots").json()["snapshots"][0]["verify"]["ok"] is False


def test_one_verify_at_a_time_per_snapshot(api: Api, server: MonitorServer, base: BaseDir, token: str) -> None:
    name = list_snapshots(base)[0].name
    server.monitor._verifying.add(name)  # as if a verify request were still hashing
    reply = api("POST", f"/api/snapshots/{name}/verify", token=token)
    assert reply.status == 409 and "being verified" in reply.json()["error"]


def test_verify_an_unknown_snapshot_is_404(api: Api, token: str) -> None:
    reply = api("POST", "/api/snapshots/20000101-000000/verify", token=token)
    assert reply.status == 404 and reply.json()["error"] == "no such snapshot"


def test_failed_files_with_their_reasons(api: Api, base: BaseDir) -> None:
    (entry,) = api("GET", "/api/failed").json()["failed"]
    assert entry["original_name"] == "broken.jsonl" and entry["reason"] == "line 1 is not JSON"
    assert entry["problem_count"] == 30 and len(entry["problems"]) == 20
    assert entry["data_file"] == f"queue/failed/{entry['job_id']}.jsonl"
    assert str(base.root) not in json.dumps(entry)


def test_openapi_document_lists_every_endpoint(api: Api) -> None:
    doc = api("GET", "/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    expected = {
        "/api/status",
        "/api/metrics",
        "/api/queue",
        "/api/history",
        "/api/versions",
        "/api/snapshots",
        "/api/failed",
        "/api/openapi.json",
        "/api/rollback",
        "/api/snapshot",
        "/api/snapshots/{name}/verify",
        "/api/upload",
        "/api/control/pause",
        "/api/control/resume",
        "/api/control/stop",
        "/api/control/skip",
    }
    assert set(doc["paths"]) == expected
    assert "security" in doc["paths"]["/api/upload"]["post"]


# --- actions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["pause", "resume", "stop", "skip"])
def test_control_actions_write_a_command(
    api: Api, daemon: DaemonLock, sent_commands: Commands, token: str, action: str
) -> None:
    reply = api("POST", f"/api/control/{action}", token=token)
    assert reply.status == 202 and reply.json()["action"] == action
    (command,) = sent_commands()
    assert command["action"] == action and command["id"] == reply.json()["id"]


def test_the_token_header_alternative(api: Api, daemon: DaemonLock, sent_commands: Commands, token: str) -> None:
    reply = api("POST", "/api/control/pause", headers={"X-Trainerd-Token": token})
    assert reply.status == 202 and [c["action"] for c in sent_commands()] == ["pause"]


def test_actions_need_a_running_daemon(api: Api, sent_commands: Commands, token: str) -> None:
    for path, body in (("/api/control/pause", None), ("/api/snapshot", None), ("/api/rollback", {"to": "v1"})):
        reply = api("POST", path, body, token=token)
        assert reply.status == 409 and "no daemon is running" in reply.json()["error"]
    assert sent_commands() == []


@pytest.mark.parametrize(("target", "expected"), [("v000001", "v000001"), ("1", "v000001"), ("v2", "v000002")])
def test_rollback_to_a_version(
    api: Api, daemon: DaemonLock, sent_commands: Commands, token: str, target: str, expected: str
) -> None:
    reply = api("POST", "/api/rollback", {"to": target}, token=token)
    assert reply.status == 202 and reply.json()["to"] == expected
    assert sent_commands()[0]["action"] == "rollback" and sent_commands()[0]["args"] == {"to": expected}


def test_rollback_to_a_snapshot(
    api: Api, base: BaseDir, daemon: DaemonLock, sent_commands: Commands, token: str
) -> None:
    name = list_snapshots(base)[0].name
    assert api("POST", "/api/rollback", {"to": name}, token=token).status == 202
    assert sent_commands()[0]["args"] == {"to": name}


@pytest.mark.parametrize("body", [{"to": "v000009"}, {"to": "../models/v000001"}, {"to": "/etc"}])
def test_rollback_to_something_unknown_is_404(
    api: Api, base: BaseDir, daemon: DaemonLock, sent_commands: Commands, token: str, body: dict[str, Any]
) -> None:
    reply = api("POST", "/api/rollback", body, token=token)
    assert reply.status == 404 and reply.json()["hint"] == "versions: v000001, v000002"
    assert sent_commands() == []


@pytest.mark.parametrize("body", [{}, {"to": 3}, {"to": ""}, {"version": "v1"}, b"not json", b"[1, 2]"])
def test_rollback_needs_a_to_string(
    api: Api, daemon: DaemonLock, sent_commands: Commands, token: str, body: Any
) -> None:
    reply = api("POST", "/api/rollback", body, token=token)
    assert reply.status == 400 and "error" in reply.json()
    assert sent_commands() == []


def test_snapshot_command(api: Api, daemon: DaemonLock, sent_commands: Commands, token: str) -> None:
    reply = api("POST", "/api/snapshot", token=token)
    assert reply.status == 202 and [c["action"] for c in sent_commands()] == ["snapshot"]


def test_upload_goes_into_the_inbox(api: Api, base: BaseDir, token: str) -> None:
    data = b'{"messages": []}\n' * 3
    reply = api("POST", "/api/upload?name=chat.jsonl", data, token=token)
    assert reply.status == 201 and reply.json() == {"ok": True, "name": "chat.jsonl", "priority": "normal", "size": 51}
    assert (base.inbox / "chat.jsonl").read_bytes() == data
    assert inbox_files(base) == ["chat.jsonl"]  # normal priority needs no sidecar; no temp file left


def test_upload_with_a_priority_writes_the_sidecar(api: Api, base: BaseDir, token: str) -> None:
    reply = api("POST", "/api/upload?name=urgent.jsonl&priority=high", b"{}\n", token=token)
    assert reply.status == 201 and reply.json()["priority"] == "high"
    assert json.loads((base.inbox / "urgent.jsonl.meta.json").read_text()) == {"priority": "high"}


def test_upload_of_the_same_name_twice_keeps_both(api: Api, base: BaseDir, token: str) -> None:
    names = [api("POST", "/api/upload?name=a.jsonl", b"x\n", token=token).json()["name"] for _ in range(2)]
    assert names == ["a.jsonl", "a-2.jsonl"] and inbox_files(base) == ["a-2.jsonl", "a.jsonl"]


def test_upload_without_a_name_gets_one(api: Api, base: BaseDir, token: str) -> None:
    assert api("POST", "/api/upload", b"x\n", token=token).json()["name"] == "upload.jsonl"


@pytest.mark.parametrize("query", ["priority=urgent", "priority="])
def test_upload_with_a_bad_priority_is_refused(api: Api, base: BaseDir, token: str, query: str) -> None:
    reply = api("POST", f"/api/upload?name=a.jsonl&{query}", b"x\n", token=token)
    assert reply.status == 400 and "high, normal, low" in reply.json()["hint"]
    assert inbox_files(base) == []


def test_empty_upload_is_refused(api: Api, base: BaseDir, token: str) -> None:
    reply = api("POST", "/api/upload?name=a.jsonl", b"", token=token)
    assert reply.status == 400 and inbox_files(base) == []


# --- routing -----------------------------------------------------------------------------------


def test_unknown_endpoint_and_wrong_methods(api: Api, token: str) -> None:
    assert api("GET", "/api/nothing").status == 404
    assert api("GET", "/api/control/pause").status == 405
    assert api("POST", "/api/status", token=token).status == 404
    assert api("POST", "/api/control/reboot", token=token).status == 404
    assert api("PUT", "/api/upload", b"x", token=token).status == 405
    assert api("DELETE", "/api/status").status == 405
    assert api("POST", "/", token=token).status == 405


def test_a_kept_alive_connection_serves_several_requests(server: MonitorServer, token: str) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in ("/api/status", "/api/queue", "/api/nothing", "/api/status"):
            conn.request("GET", path)
            reply = conn.getresponse()
            assert reply.status in (200, 404) and json.loads(reply.read())
    finally:
        conn.close()


def test_run_monitor_prints_where_and_the_token_and_stops(base: BaseDir) -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=run_monitor, args=(base, "127.0.0.1", 0), kwargs={"out": out, "stop": stop})
    thread.start()
    deadline = time.time() + 5
    while "token" not in out.getvalue() and time.time() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    text = out.getvalue()
    stored = (base.root / "monitor.token").read_text().strip()
    assert "http://127.0.0.1:" in text and f"#token={stored}" in text
