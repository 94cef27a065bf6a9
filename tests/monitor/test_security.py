"""The monitor's safety rules: token checks, bind rules, traversal, size caps, and error bodies that leak nothing."""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.lock import DaemonLock
from trainerd.daemon.snapshots import list_snapshots
from trainerd.errors import TrainerdError
from trainerd.monitor import MonitorServer, auth, ensure_token, serve, token_path
from trainerd.monitor.server import STATIC_DIR

Api = Callable[..., Any]
Commands = Callable[[], list[dict[str, Any]]]
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*\.jsonl$")

POSTS: list[tuple[str, Any]] = [
    ("/api/control/pause", None),
    ("/api/control/resume", None),
    ("/api/control/stop", None),
    ("/api/control/skip", None),
    ("/api/rollback", {"to": "v000001"}),
    ("/api/snapshot", None),
    ("/api/upload?name=a.jsonl", b"{}\n"),
]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), POSTS)
def test_every_action_without_a_token_is_401_and_writes_nothing(
    api: Api, base: BaseDir, daemon: DaemonLock, sent_commands: Commands, path: str, body: Any
) -> None:
    reply = api("POST", path, body)
    assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert "monitor token" in reply.json()["error"]
    assert sent_commands() == [] and list(base.inbox.iterdir()) == []


@pytest.mark.parametrize(("path", "body"), POSTS)
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"X-Trainerd-Token": "wrong-token-0123456789"},
        {"Authorization": "Bearer test-token-0123456789-abcdefghiJ"},  # one character off
        {"Authorization": "Bearer test-token-0123456789-abcdefghij-and-more"},
        {"Authorization": "Bearer tëst-tökën"},  # non-ASCII must not crash the comparison
    ],
)
def test_every_action_with_a_wrong_token_is_403_and_writes_nothing(
    api: Api,
    base: BaseDir,
    daemon: DaemonLock,
    sent_commands: Commands,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    reply = api("POST", path, body, headers=headers)
    assert reply.status == 403 and reply.json() == {"error": "wrong monitor token"}
    assert sent_commands() == [] and list(base.inbox.iterdir()) == []


def test_a_non_bearer_authorization_counts_as_no_token(api: Api, daemon: DaemonLock, token: str) -> None:
    assert api("POST", "/api/control/pause", headers={"Authorization": f"Basic {token}"}).status == 401


def test_verify_needs_the_token(api: Api, base: BaseDir) -> None:
    name = list_snapshots(base)[0].name
    assert api("POST", f"/api/snapshots/{name}/verify").status == 401
    assert api("GET", "/api/snapshots").json()["snapshots"][0]["verify"] is None


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.token_matches("abc", "abc") and not auth.token_matches("abd", "abc")
    assert seen == [(b"abc", b"abc"), (b"abd", b"abc")]
    assert not auth.token_matches(None, "abc") and not auth.token_matches("", "abc")


def test_ensure_token_creates_a_private_file_once(tmp_path: Path) -> None:
    base = BaseDir(tmp_path / "b")
    token = ensure_token(base)
    assert len(token) >= 40 and token_path(base) == base.root / "monitor.token"
    assert stat.S_IMODE(token_path(base).stat().st_mode) == 0o600
    assert ensure_token(base) == token  # stable: `trainerd init` and every monitor start agree
    os.chmod(token_path(base), 0o644)
    assert ensure_token(base) == token and stat.S_IMODE(token_path(base).stat().st_mode) == 0o600
    assert [p.name for p in base.root.iterdir()] == ["monitor.token"]  # no temp file left


def test_loopback_without_a_token_uses_the_stored_one(
    start: Callable[..., MonitorServer], call: Api, base: BaseDir, daemon: DaemonLock
) -> None:
    server = start(token=None)
    stored = token_path(base).read_text().strip()
    assert stat.S_IMODE(token_path(base).stat().st_mode) == 0o600
    assert call(server, "GET", "/api/status").status == 200  # reads stay open on loopback
    assert call(server, "POST", "/api/control/pause").status == 401
    assert call(server, "POST", "/api/control/pause", token=stored).status == 202


# --- binding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org", ""])
def test_non_loopback_bind_without_a_token_refuses_to_start(base: BaseDir, host: str) -> None:
    with pytest.raises(TrainerdError, match="not a loopback address and no token is set") as info:
        serve(base, host, 0, None)
    assert "127.0.0.1" in (info.value.hint or "")
    assert not token_path(base).exists()  # a wide bind never invents a token nobody was shown


@pytest.mark.parametrize("token", ["", "   ", "short"])
def test_a_weak_token_refuses_to_start(base: BaseDir, token: str) -> None:
    with pytest.raises(TrainerdError, match="too short"):
        serve(base, "127.0.0.1", 0, token)


def test_a_directory_that_is_not_a_base_dir_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(TrainerdError, match="not a trainerd base dir"):
        serve(BaseDir(tmp_path), "127.0.0.1", 0, None)
    assert list(tmp_path.iterdir()) == []


def test_non_loopback_bind_with_a_token_guards_every_read(
    start: Callable[..., MonitorServer], call: Api, token: str
) -> None:
    server = start(host="0.0.0.0")
    assert not server.loopback
    for path in ("/api/status", "/api/metrics", "/api/queue", "/api/history", "/api/versions", "/api/failed"):
        assert call(server, "GET", path).status == 401
        assert call(server, "GET", path, headers={"Authorization": "Bearer nope-nope-nope-nope"}).status == 403
        assert call(server, "GET", path, token=token).status == 200
    assert call(server, "GET", "/").status == 200  # the page itself loads, then asks for the token


def test_non_loopback_bind_may_use_the_stored_token(
    start: Callable[..., MonitorServer], call: Api, base: BaseDir
) -> None:
    stored = ensure_token(base)
    server = start(host="0.0.0.0", token=None)
    assert call(server, "GET", "/api/status").status == 401
    assert call(server, "GET", "/api/status", token=stored).status == 200


def test_loopback_bind_refuses_a_foreign_host_header(api: Api, server: MonitorServer) -> None:
    """A page on another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) cannot read the API."""
    reply = api("GET", "/api/status", headers={"Host": f"evil.example:{server.port}"})
    assert reply.status == 403
    assert api("GET", "/", headers={"Host": "evil.example"}).status == 403
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]:80"):
        assert api("GET", "/api/status", headers={"Host": host}).status == 200


def test_cross_origin_actions_are_refused_even_with_the_token(
    api: Api, server: MonitorServer, daemon: DaemonLock, sent_commands: Commands, token: str
) -> None:
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
        assert api("POST", "/api/control/stop", token=token, headers={"Origin": origin}).status == 403
    assert sent_commands() == []
    same = api("POST", "/api/control/stop", token=token, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert same.status == 202


def test_no_cors_preflight_is_answered(api: Api) -> None:
    reply = api("OPTIONS", "/api/control/pause", headers={"Origin": "http://evil.example"})
    assert reply.status == 405 and "access-control-allow-origin" not in reply.headers


# --- uploads -----------------------------------------------------------------------------------

TRAVERSALS = [
    "../x.jsonl",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/tmp/evil.jsonl",
    "..%2f..%2fx.jsonl",  # still encoded after the query is decoded once
    "%2e%2e%2fx.jsonl",
    "..\\..\\x.jsonl",
    "....//....//x.jsonl",
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fx.jsonl",  # fullwidth dots and slash
    "\u2025\u2215x.jsonl",  # two-dot leader, division slash
    "a\x00b.jsonl",
    "x.jsonl\x00.png",
    ".hidden.jsonl",
    "..",
    ".",
    "/",
    "inbox/../../config.json",
    "queue/high/x.jsonl",
    "x.jsonl.meta.json",
    "a" * 500 + ".jsonl",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_upload_names_always_land_as_a_safe_name_in_the_inbox(
    api: Api, base: BaseDir, tmp_path: Path, token: str, name: str
) -> None:
    before = files_under(tmp_path)
    reply = api("POST", f"/api/upload?name={quote(name, safe='')}&priority=low", b"{}\n", token=token)
    assert reply.status == 201, reply.body
    saved = reply.json()["name"]
    assert SAFE_NAME.match(saved) and len(saved) <= 90, saved
    assert (base.inbox / saved).read_bytes() == b"{}\n"
    added = files_under(tmp_path) - before
    assert added == {f"base/inbox/{saved}", f"base/inbox/{saved}.meta.json"}


@pytest.mark.parametrize("raw", ["../x.jsonl", "%2e%2e/%2e%2e/x.jsonl", "/etc/passwd", "%00.jsonl"])
def test_upload_names_sent_unencoded_are_also_safe(
    api: Api, base: BaseDir, tmp_path: Path, token: str, raw: str
) -> None:
    before = files_under(tmp_path)
    reply = api("POST", f"/api/upload?name={raw}", b"{}\n", token=token)
    assert reply.status == 201 and SAFE_NAME.match(reply.json()["name"])
    assert files_under(tmp_path) - before == {f"base/inbox/{reply.json()['name']}"}


def test_upload_never_writes_through_a_symlink_in_the_inbox(
    api: Api, base: BaseDir, tmp_path: Path, token: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.jsonl").write_text("original\n")
    os.symlink(outside / "dangling.jsonl", base.inbox / "a.jsonl")
    os.symlink(outside / "kept.jsonl", base.inbox / "b.jsonl")
    for name in ("a.jsonl", "b.jsonl"):
        assert api("POST", f"/api/upload?name={name}", b"new\n", token=token).status == 201
    assert sorted(p.name for p in outside.iterdir()) == ["kept.jsonl"]
    assert (outside / "kept.jsonl").read_text() == "original\n"
    assert (base.inbox / "a.jsonl").is_file() and not (base.inbox / "a.jsonl").is_symlink()
    assert (base.inbox / "b-2.jsonl").read_text() == "new\n"


def test_upload_refused_when_the_inbox_leads_outside_the_base_dir(
    api: Api, base: BaseDir, tmp_path: Path, token: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    base.inbox.rmdir()
    os.symlink(outside, base.inbox)
    reply = api("POST", "/api/upload?name=a.jsonl", b"{}\n", token=token)
    assert reply.status == 403 and list(outside.iterdir()) == []
    assert str(tmp_path) not in reply.body.decode()


def test_oversize_upload_is_413_and_writes_nothing(
    start: Callable[..., MonitorServer], call: Api, base: BaseDir, token: str
) -> None:
    server = start(max_upload_bytes=1000)
    reply = call(server, "POST", "/api/upload?name=big.jsonl", b"x" * 1001, token=token)
    assert reply.status == 413 and "limit of 1000 bytes" in reply.json()["error"]
    assert list(base.inbox.iterdir()) == []
    assert call(server, "POST", "/api/upload?name=ok.jsonl", b"x" * 1000, token=token).status == 201


def test_a_huge_declared_length_is_refused_before_any_body_is_read(
    server: MonitorServer, base: BaseDir, token: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/upload?name=huge.jsonl")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders()
        reply = conn.getresponse()
        assert reply.status == 413 and reply.getheader("Connection") == "close"
        assert "over the limit" in json.loads(reply.read())["error"]
    finally:
        conn.close()
    assert list(base.inbox.iterdir()) == []


def test_chunked_upload_needs_a_length(server: MonitorServer, base: BaseDir, token: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/api/upload?name=c.jsonl",
            body=iter([b"{}\n"]),
            headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        assert conn.getresponse().status == 411
    finally:
        conn.close()
    assert list(base.inbox.iterdir()) == []


def test_an_oversize_json_body_is_refused(api: Api, daemon: DaemonLock, sent_commands: Commands, token: str) -> None:
    reply = api("POST", "/api/rollback", b'{"to": "' + b"v" * 70_000 + b'"}', token=token)
    assert reply.status == 413 and sent_commands() == []


# --- static files and snapshot names ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/auth.py",
        "/static/%2e%2e%2f%2e%2e%2fdaemon/layout.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/../../../etc/passwd",
        "/static/app.js%00.png",
        "/static/" + quote("\uff0e\uff0e\uff0fserver.py"),  # fullwidth dots and slash, UTF-8 encoded
        "/static/",
        "/static",
        "/index.html/../server.py",
        "/monitor.token",
        "/static/monitor.token",
        "/config.json",
    ],
)
def test_static_paths_never_leave_the_static_dir(api: Api, path: str) -> None:
    reply = api("GET", path)
    assert reply.status in (400, 404)
    assert b"import" not in reply.body and b"root:" not in reply.body and b"token-0123" not in reply.body


def test_a_symlink_in_the_static_dir_is_never_served() -> None:
    from trainerd.monitor.server import load_static

    assert "server.py" not in load_static() and all(not (STATIC_DIR / n).is_symlink() for n in load_static())


@pytest.mark.parametrize(
    "name",
    ["..", "..%2f..%2fmodels", "%2e%2e", "..%2f..%2fconfig.json", "20240101-000000%2f..", "x", "%00"],
)
def test_snapshot_verify_names_must_be_listed_snapshots(api: Api, token: str, name: str) -> None:
    reply = api("POST", f"/api/snapshots/{name}/verify", token=token)
    assert reply.status in (400, 404)
    assert "verify" not in reply.json()


# --- errors leak nothing -----------------------------------------------------------------------


def test_an_unexpected_error_is_a_bare_500(
    api: Api, base: BaseDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import trainerd.monitor.server as server_module

    def boom(_base: BaseDir) -> None:
        raise RuntimeError(f"cannot read {base.root}/status/secret.json")

    monkeypatch.setattr(server_module, "read_status", boom)
    reply = api("GET", "/api/status")
    assert reply.status == 500 and reply.json() == {"error": "internal error (see the monitor's log)"}
    assert "Traceback" not in reply.body.decode() and "secret" not in reply.body.decode()
    assert api("GET", "/api/queue").status == 200  # the server keeps serving


def test_trainerd_errors_lose_their_local_paths(
    api: Api, base: BaseDir, monkeypatch: pytest.MonkeyPatch, daemon: DaemonLock, token: str
) -> None:
    import trainerd.monitor.server as server_module

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise TrainerdError(f"cannot write {base.root}/control/x.json", hint="see /var/lib/other/place.log")

    monkeypatch.setattr(server_module, "send_command", refuse)
    reply = api("POST", "/api/control/pause", token=token)
    body = reply.json()
    assert reply.status == 500 and body == {"error": "cannot write control/x.json", "hint": "see <path>"}


def test_no_error_reply_shows_a_path_or_a_traceback(api: Api, base: BaseDir, tmp_path: Path, token: str) -> None:
    replies = [
        api("GET", "/api/nothing"),
        api("GET", "/api/metrics?since=x"),
        api("GET", "/static/../../etc/passwd"),
        api("POST", "/api/rollback", {"to": "v000042"}, token=token),
        api("POST", "/api/rollback", b"{", token=token),
        api("POST", "/api/snapshots/19990101-000000/verify", token=token),
        api("POST", "/api/upload?priority=bogus", b"x", token=token),
        api("POST", "/api/control/pause", token=token),
        api("POST", "/api/control/pause", token="bad-bad-bad-bad-bad"),
        api("PUT", "/api/status"),
    ]
    for reply in replies:
        text = reply.body.decode()
        assert reply.status >= 400 and reply.headers["content-type"] == "application/json"
        assert set(reply.json()) <= {"error", "hint"}
        assert str(tmp_path) not in text and "Traceback" not in text and 'File "' not in text


def test_malformed_requests_get_a_json_error(server: MonitorServer) -> None:
    import socket

    def raw(request: bytes) -> str:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    assert "error" in json.loads(raw(b"GARBAGE\r\n\r\n"))  # an HTTP/0.9-style line gets a bare body
    many = b"".join(b"X-%d: y\r\n" % n for n in range(150))
    head, _, body = raw(b"GET / HTTP/1.1\r\n" + many + b"\r\n").partition("\r\n\r\n")
    assert head.splitlines()[0].split()[1] == "431" and "application/json" in head
    assert json.loads(body) == {"error": "Too many headers"}


def test_security_headers_on_every_reply(api: Api) -> None:
    for path in ("/", "/api/status", "/api/nothing"):
        headers = api("GET", path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"


def test_the_page_script_never_builds_html_from_data() -> None:
    """Every server value goes in through textContent, so a crafted file name or reason cannot run script."""
    script = (STATIC_DIR / "app.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script
    assert "<script>" not in (STATIC_DIR / "index.html").read_text()  # the CSP forbids inline script anyway
