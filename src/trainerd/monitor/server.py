"""The monitor's HTTP server: the dashboard's static files and a JSON API over one base dir.

Stdlib only (`ThreadingHTTPServer`), so `trainerd daemon --monitor` starts instantly and adds no
dependency. Reads go straight to the files the daemon writes; every action is a control command
file (`daemon/control.py`) or an atomic inbox write (`daemon/submit.py`), so the daemon stays the
only writer of its own state. Safety rules live here in one place:

- reads are open on a loopback bind; a non-loopback bind needs a token for everything under /api/;
- every POST needs the token (constant-time comparison) and, when an Origin is sent, the same origin;
- on a loopback bind a request must name a loopback Host (a DNS-rebinding page cannot read the API);
- no client-supplied string is ever used as a path: static files come from a fixed in-memory table,
  snapshot names must match a listed snapshot, upload names go through `submit_bytes`' sanitiser;
- error bodies are `{"error": ..., "hint": ...}` with base-dir paths removed and no tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from trainerd.daemon.control import send_command
from trainerd.daemon.layout import BaseDir, is_base_dir, parse_priority
from trainerd.daemon.lock import daemon_running
from trainerd.daemon.queue import JobQueue, JobRecord
from trainerd.daemon.snapshots import SnapshotInfo, list_snapshots, verify_snapshot
from trainerd.daemon.status import heartbeat_age, is_stale, read_all_metrics, read_history, read_status
from trainerd.daemon.store import ModelStore
from trainerd.daemon.submit import submit_bytes
from trainerd.errors import TrainerdError
from trainerd.monitor.auth import (
    check_token_strength,
    ensure_token,
    is_loopback_host,
    presented_token,
    read_token,
    token_matches,
    token_path,
)

log = logging.getLogger("trainerd.monitor")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
MAX_JSON_BODY = 64 * 1024
# An unread request body makes close() send a TCP reset that can eat our error reply; small ones are read first.
DRAIN_LIMIT = 1024 * 1024
METRICS_LIMIT = 20_000
HISTORY_LIMIT = 500
MAX_PROBLEMS = 20  # per failed file: the first bad lines say enough; the error file has them all
STATIC_DIR = Path(__file__).with_name("static")
CONTROL_ACTIONS = ("pause", "resume", "stop", "skip")
_SNAPSHOT_NAME = re.compile(r"^\d{8}-\d{6}(?:-\d+)?$")
_ABS_PATH = re.compile(r"(?<![\w.:])/(?:[^\s'\"/,;:()]+/)+[^\s'\",;:()]*")
_METRIC_KEYS = ("global_step", "step", "loss", "lr", "grad_norm", "tokens_per_second", "time", "job_id")
_JOB_KEYS = ("job_id", "original_name", "priority", "submitted_at", "source", "attempts", "size", "started_at")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class ApiError(Exception):
    """A request the API refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def load_static(folder: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """The page's files by name, read once: requests pick from this table, never from the file system."""
    table: dict[str, tuple[bytes, str]] = {}
    for path in sorted(folder.iterdir()):
        kind = _CONTENT_TYPES.get(path.suffix)
        if kind and path.is_file() and not path.is_symlink() and not path.name.startswith("."):
            table[path.name] = (path.read_bytes(), kind)
    return table


class Monitor:
    """The API over one base dir; the HTTP handler only parses requests and writes replies."""

    def __init__(self, base: BaseDir, token: str, *, open_reads: bool, max_upload_bytes: int) -> None:
        self.base = base
        self.token = token
        self.open_reads = open_reads  # True on a loopback bind: GETs need no token there
        self.max_upload_bytes = max_upload_bytes
        self.static = load_static()
        self._roots = sorted({str(base.root), str(base.root.resolve())}, key=len, reverse=True)
        self._verify_lock = threading.Lock()
        self._verifying: set[str] = set()
        self.verify_cache: dict[str, dict[str, Any]] = {}  # snapshot name -> last verify result

    # --- paths out of replies ---------------------------------------------------------------
    def scrub_text(self, text: str, *, errors: bool = False) -> str:
        """Base-dir paths become relative; in errors any other absolute path is hidden too."""
        for root in self._roots:
            text = text.replace(root + "/", "").replace(root, ".")
        return _ABS_PATH.sub("<path>", text) if errors else text

    def scrub(self, value: Any) -> Any:
        """JSON-safe copy: paths relative to the base dir, NaN/inf as null."""
        if isinstance(value, dict):
            return {str(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) for v in value]
        if isinstance(value, Path):
            return self.scrub_text(str(value))
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.scrub_text(str(value))

    # --- reads ------------------------------------------------------------------------------
    def status(self, query: dict[str, str]) -> dict[str, Any]:
        status = read_status(self.base)
        pid = daemon_running(self.base)
        now = time.time()
        state = str(status.get("state", "unknown")) if status else "not started"
        warning = None
        if status is None:
            warning = "the daemon has not written a status yet" + ("" if pid else " (it is not running)")
        elif pid is None and state != "stopped":
            warning = "no daemon is running on this base dir; the status shown is the last one it wrote"
        elif pid is not None and is_stale(status, now):
            warning = f"heartbeat is {heartbeat_age(status, now) or 0:.0f}s old: the daemon may be hung"
        return {
            "state": state,
            "stale": warning is not None and state != "stopped",
            "warning": warning,
            "daemon_running": pid is not None,
            "daemon_pid": pid if pid and pid > 0 else None,
            "heartbeat_age": heartbeat_age(status, now) if status else None,
            "now": now,
            "max_upload_bytes": self.max_upload_bytes,
            "status": status,
        }

    def metrics(self, query: dict[str, str]) -> dict[str, Any]:
        since = _int_param(query, "since", 0, 0, 1 << 62)
        limit = _int_param(query, "limit", METRICS_LIMIT, 1, METRICS_LIMIT)
        rows: list[dict[str, Any]] = [
            {k: row.get(k) for k in _METRIC_KEYS} for row in read_all_metrics(self.base, since)
        ]
        truncated = len(rows) > limit
        rows = rows[-limit:]
        steps = [r["global_step"] for r in rows if isinstance(r.get("global_step"), int)]
        last = max([since, *steps])
        return {"since": since, "rows": rows, "last_global_step": last, "truncated": truncated}

    def queue(self, query: dict[str, str]) -> dict[str, Any]:
        jobs = JobQueue(self.base)
        queued: dict[str, list[dict[str, Any]]] = {"high": [], "normal": [], "low": []}
        for record in jobs.list_queued():
            queued[record.priority].append(_job_summary(record))
        processing = jobs.processing()
        return {
            "counts": jobs.counts(),
            "queued": queued,
            "processing": _job_summary(processing) if processing else None,
        }

    def history(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _int_param(query, "limit", HISTORY_LIMIT, 1, 100_000)
        return {"history": read_history(self.base, limit)}

    def versions(self, query: dict[str, str]) -> dict[str, Any]:
        store = ModelStore(self.base)
        result: dict[str, Any] = {"current": None, "previous": None, "error": None}
        try:
            current = store.current()
            previous = store.previous()
            result["current"] = current.name if current else None
            result["previous"] = previous.name if previous else None
        except TrainerdError as exc:
            result["error"] = exc.message
        result["versions"] = [
            {
                "name": v.name,
                "number": v.number,
                "created_at": v.created_at,
                "kind": v.kind,
                "current": v.name == result["current"],
                "meta": {k: val for k, val in v.meta.items() if k != "files"},
            }
            for v in store.list_versions()
        ]
        return result

    def snapshots(self, query: dict[str, str]) -> dict[str, Any]:
        return {
            "snapshots": [
                {**{k: v for k, v in s.to_dict().items() if k != "path"}, "verify": self.verify_cache.get(s.name)}
                for s in list_snapshots(self.base)
            ]
        }

    def failed(self, query: dict[str, str]) -> dict[str, Any]:
        entries = []
        for entry in JobQueue(self.base).list_failed():
            problems = entry.get("problems")
            if isinstance(problems, list):
                entry = {**entry, "problems": problems[:MAX_PROBLEMS], "problem_count": len(problems)}
            entries.append({k: v for k, v in entry.items() if k != "job"})
        return {"failed": entries}

    # --- actions ----------------------------------------------------------------------------
    def _require_daemon(self, what: str) -> None:
        if daemon_running(self.base) is None:
            raise ApiError(
                HTTPStatus.CONFLICT,
                f"cannot {what}: no daemon is running on this base dir",
                hint="start it with `trainerd daemon`; commands are only sent to a running daemon",
            )

    def control(self, action: str) -> dict[str, Any]:
        self._require_daemon(action)
        command = send_command(self.base, action)
        return {"ok": True, "action": action, "id": command.id}

    def rollback(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("to")
        if not isinstance(target, str) or not target.strip() or len(target) > 100:
            raise ApiError(HTTPStatus.BAD_REQUEST, 'body must be {"to": VERSION} (a version or snapshot name)')
        target = target.strip()
        store = ModelStore(self.base)
        name: str | None = None
        with contextlib.suppress(TrainerdError):
            name = store.resolve_version(target).name
        if name is None and _SNAPSHOT_NAME.match(target):
            name = next((s.name for s in list_snapshots(self.base) if s.name == target), None)
        if name is None:
            known = [v.name for v in store.list_versions()]
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no model version or snapshot named {target!r}",
                hint=f"versions: {', '.join(known)}" if known else "the base dir has no versions yet",
            )
        self._require_daemon("roll back")
        command = send_command(self.base, "rollback", to=name)
        return {"ok": True, "action": "rollback", "to": name, "id": command.id}

    def snapshot(self) -> dict[str, Any]:
        self._require_daemon("take a snapshot")
        command = send_command(self.base, "snapshot")
        return {"ok": True, "action": "snapshot", "id": command.id}

    def verify(self, raw_name: str) -> dict[str, Any]:
        """Hash a snapshot against its MANIFEST now (slow for big models) and cache the answer with its time."""
        name = unquote(raw_name)
        snapshot: SnapshotInfo | None = None
        if _SNAPSHOT_NAME.match(name):
            snapshot = next((s for s in list_snapshots(self.base) if s.name == name), None)
        if snapshot is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no such snapshot", hint="GET /api/snapshots lists them")
        with self._verify_lock:
            if name in self._verifying:
                raise ApiError(HTTPStatus.CONFLICT, f"snapshot {name} is being verified already")
            self._verifying.add(name)
        try:
            started = time.time()
            report = verify_snapshot(snapshot.path)
            result = {
                "ok": report.ok,
                "checked": report.checked,
                "problems": report.problems(),
                "verified_at": time.time(),
                "seconds": round(time.time() - started, 3),
            }
            self.verify_cache[name] = result
        finally:
            with self._verify_lock:
                self._verifying.discard(name)
        return {"name": name, "verify": result}

    def upload(self, query: dict[str, str], length: int, read: Callable[[int], bytes]) -> dict[str, Any]:
        """Check everything that can be checked before reading the body, then write it atomically."""
        try:
            priority = parse_priority(query.get("priority", "normal"), "priority")
        except TrainerdError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.message, exc.hint) from exc
        if length > self.max_upload_bytes:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"upload of {length} bytes is over the limit of {self.max_upload_bytes} bytes",
                hint="split the file, or copy it into the inbox directly (`trainerd submit`)",
            )
        if length == 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "the upload is empty", hint="send the JSONL file as the body")
        try:
            self.base.resolve_inside(self.base.inbox)
        except TrainerdError as exc:
            raise ApiError(HTTPStatus.FORBIDDEN, "the inbox leads outside the base dir; upload refused") from exc
        data = read(length)
        if len(data) != length:
            raise ApiError(HTTPStatus.BAD_REQUEST, "the upload ended early")
        final = submit_bytes(self.base, data, query.get("name") or "upload.jsonl", priority)
        log.info("upload: %d bytes into the inbox as %s (priority %s)", length, final.name, priority)
        return {"ok": True, "name": final.name, "priority": priority, "size": length}


def _int_param(query: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"query parameter {key!r} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"query parameter {key!r} must be between {low} and {high}")
    return value


def _job_summary(record: JobRecord) -> dict[str, Any]:
    data = record.to_dict()
    return {key: data.get(key) for key in _JOB_KEYS}


def _host_name(host_header: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1'; '[::1]:8765' -> '::1'."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, enforces the access rules, and hands it to the Monitor."""

    server: MonitorServer
    server_version = "trainerd-monitor"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds per socket read: a stalled client does not hold a thread forever
    _body_read = False

    # --- plumbing ---------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unsupported method) as JSON, not an HTML page."""
        self.close_connection = True
        self._send(Reply(code, _json_bytes({"error": message or HTTPStatus(code).phrase})))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in {**_SECURITY_HEADERS, **reply.headers}.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _drain(self) -> None:
        """Before an error reply: read a small unread body (keeps the connection usable), else close it."""
        if self.command not in ("POST", "PUT", "PATCH", "DELETE") or self._body_read:
            return
        raw = (self.headers.get("Content-Length") or "0").strip()
        if self.headers.get("Transfer-Encoding") or not raw.isdigit() or int(raw) > DRAIN_LIMIT:
            self.close_connection = True
            return
        self._body_read = True
        try:
            self.rfile.read(int(raw))
        except OSError:
            self.close_connection = True

    def _read_body(self, length: int) -> bytes:
        self._body_read = True
        return self.rfile.read(length)

    def _error(self, exc: ApiError) -> Reply:
        monitor = self.server.monitor
        body: dict[str, Any] = {"error": monitor.scrub_text(exc.message, errors=True)}
        if exc.hint:
            body["hint"] = monitor.scrub_text(exc.hint, errors=True)
        headers = {"WWW-Authenticate": 'Bearer realm="trainerd"'} if exc.status == HTTPStatus.UNAUTHORIZED else {}
        self._drain()
        return Reply(exc.status, _json_bytes(body), headers=headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _not_allowed(self) -> None:
        self._handle("OTHER")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_allowed

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            reply = self._route(method)
        except ApiError as exc:
            reply = self._error(exc)
        except TrainerdError as exc:  # client mistakes are ApiErrors already: this is the base dir's state
            reply = self._error(ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, exc.message, exc.hint))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            log.exception("monitor: %s %s failed", method, urlsplit(self.path).path)
            reply = self._error(ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the monitor's log)"))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply)

    # --- access rules -----------------------------------------------------------------------
    def _check_host(self) -> None:
        """On a loopback bind, a page from another site that re-points its DNS at 127.0.0.1 is refused."""
        host = self.headers.get("Host")
        if self.server.loopback and host and not is_loopback_host(_host_name(host)):
            raise ApiError(HTTPStatus.FORBIDDEN, "address the monitor as 127.0.0.1 or localhost")

    def _check_token(self) -> None:
        given = presented_token(self.headers.get("Authorization"), self.headers.get("X-Trainerd-Token"))
        if given is None:
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "this request needs the monitor token",
                hint="send `Authorization: Bearer <token>`; the token is in monitor.token in the base dir",
            )
        if not token_matches(given, self.server.monitor.token):
            raise ApiError(HTTPStatus.FORBIDDEN, "wrong monitor token")

    def _check_origin(self) -> None:
        origin = self.headers.get("Origin")
        if origin is None:
            return
        host = self.headers.get("Host") or ""
        if urlsplit(origin).netloc.lower() != host.lower() or not host:
            raise ApiError(HTTPStatus.FORBIDDEN, "cross-origin requests are refused")

    # --- routing ----------------------------------------------------------------------------
    def _route(self, method: str) -> Reply:
        split = urlsplit(self.path)
        path = split.path
        if "\x00" in unquote(path) or not path.startswith("/"):
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad path")
        self._check_host()
        if method == "OTHER":
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed")
        monitor = self.server.monitor
        if not path.startswith("/api/"):
            if method != "GET":
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "only GET is allowed here")
            return self._static(path)
        try:
            query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True, max_num_fields=20).items()}
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad query string") from None
        if method == "GET":
            if not monitor.open_reads:
                self._check_token()
            reads: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
                "/api/status": monitor.status,
                "/api/metrics": monitor.metrics,
                "/api/queue": monitor.queue,
                "/api/history": monitor.history,
                "/api/versions": monitor.versions,
                "/api/snapshots": monitor.snapshots,
                "/api/failed": monitor.failed,
                "/api/openapi.json": lambda _query: openapi_document(),
            }
            if path in reads:
                return self._json(HTTPStatus.OK, reads[path](query))
            if _post_route(path):
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for this endpoint")
            raise ApiError(HTTPStatus.NOT_FOUND, "no such endpoint", hint="GET /api/openapi.json lists them")
        if not _post_route(path):
            raise ApiError(HTTPStatus.NOT_FOUND, "no such endpoint", hint="GET /api/openapi.json lists them")
        self._check_origin()
        self._check_token()
        length = self._content_length()
        if path == "/api/upload":
            return self._json(HTTPStatus.CREATED, monitor.upload(query, length, self._read_body))
        body = self._json_body(length)
        if path.startswith("/api/control/"):
            return self._json(HTTPStatus.ACCEPTED, monitor.control(path.removeprefix("/api/control/")))
        if path == "/api/rollback":
            return self._json(HTTPStatus.ACCEPTED, monitor.rollback(body))
        if path == "/api/snapshot":
            return self._json(HTTPStatus.ACCEPTED, monitor.snapshot())
        return self._json(HTTPStatus.OK, monitor.verify(path.split("/")[3]))

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length (chunked bodies are not taken)")
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return int(raw)

    def _json_body(self, length: int) -> dict[str, Any]:
        if length > MAX_JSON_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        if length == 0:
            return {}
        raw = self._read_body(length)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _json(self, status: int, payload: dict[str, Any]) -> Reply:
        return Reply(status, _json_bytes(self.server.monitor.scrub(payload)))

    def _static(self, path: str) -> Reply:
        name = "index.html" if path == "/" else path.removeprefix("/static/") if path.startswith("/static/") else ""
        entry = self.server.monitor.static.get(unquote(name))
        if entry is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")
        body, kind = entry
        headers = {"Content-Security-Policy": _PAGE_CSP} if kind.startswith("text/html") else {}
        return Reply(HTTPStatus.OK, body, kind, headers)


def _post_route(path: str) -> bool:
    if path in ("/api/upload", "/api/rollback", "/api/snapshot"):
        return True
    if path.startswith("/api/control/") and path.removeprefix("/api/control/") in CONTROL_ACTIONS:
        return True
    parts = path.split("/")
    return len(parts) == 5 and parts[1:3] == ["api", "snapshots"] and parts[4] == "verify" and parts[3] != ""


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")


class MonitorServer(ThreadingHTTPServer):
    """The HTTP server plus its Monitor; `start()` serves from a background thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, base: BaseDir, host: str, port: int, token: str, max_upload_bytes: int) -> None:
        self.loopback = is_loopback_host(host)
        self.monitor = Monitor(base, token, open_reads=self.loopback, max_upload_bytes=max_upload_bytes)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.thread: threading.Thread | None = None
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise TrainerdError(
                f"the monitor cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="pick another --port (or stop whatever listens there)",
            ) from exc

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> MonitorServer:
        # A short poll interval makes stop() quick (the default 0.5 s adds up in tests and at daemon exit).
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="trainerd-monitor", daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self.thread is not None:
            self.shutdown()
            self.thread.join(timeout=5)
            self.thread = None
        self.server_close()


def _resolve_token(base: BaseDir, host: str, token: str | None) -> str:
    """The token to enforce: the one given, else the base dir's; only a loopback bind may create one."""
    if token is not None:
        return check_token_strength(token)
    stored = read_token(base)
    if stored is not None:
        return check_token_strength(stored)
    if is_loopback_host(host):
        return ensure_token(base)
    raise TrainerdError(
        f"refusing to serve the monitor on {host}: it is not a loopback address and no token is set",
        hint=f"run `trainerd init` (it writes {token_path(base).name}), pass a token, or bind to 127.0.0.1",
    )


def serve(
    base: BaseDir,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> MonitorServer:
    """Start the monitor in a background thread and return it (port 0 picks a free port; see `.url`)."""
    if not is_base_dir(base.root):
        raise TrainerdError(f"{base.root} is not a trainerd base dir", hint="create it with `trainerd init`")
    secret = _resolve_token(base, host, token)
    server = MonitorServer(base, host, port, secret, max_upload_bytes)
    log.info("monitor serving %s on %s", base.root, server.url)
    return server.start()


def run_monitor(
    base: BaseDir,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> None:
    """`trainerd monitor`: serve until Ctrl-C (or until `stop` is set), printing where and with which token."""
    stream = out or sys.stdout
    server = serve(base, host, port, token)
    secret = server.monitor.token
    print(f"trainerd monitor: {server.url}  (base dir {base.root})", file=stream)
    print(f"open with the token: {server.url}#token={secret}", file=stream)
    print(f"token (for actions; stored in {token_path(base)}): {secret}", file=stream)
    if not server.loopback:
        print("bound to a non-loopback address: every API request needs the token", file=stream)
    stream.flush()
    try:
        if stop is None:
            while server.thread is not None and server.thread.is_alive():
                server.thread.join(timeout=0.5)
        else:
            stop.wait()
    except KeyboardInterrupt:
        print("trainerd monitor: stopped", file=stream)
    finally:
        server.stop()


def openapi_document() -> dict[str, Any]:
    """A hand-written OpenAPI 3 description of the API (served at /api/openapi.json)."""
    ok = {"200": {"description": "JSON object"}}
    action = {
        "202": {"description": "command queued for the daemon: {ok, action, id}"},
        "401": {"description": "no token"},
        "403": {"description": "wrong token"},
        "409": {"description": "no daemon is running"},
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"headerToken": []}]

    def get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": params or [], "responses": ok}}

    def post(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"post": {"summary": summary, "security": secured, "responses": responses, **extra}}

    def query(name: str, description: str, kind: str = "integer") -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": kind}}

    paths: dict[str, Any] = {
        "/api/status": get("State, heartbeat age and staleness, daemon PID, and the daemon's status.json"),
        "/api/metrics": get(
            "Metric rows of every job after a global step, tagged with job_id",
            [query("since", "only rows with global_step > since (default 0)"), query("limit", "newest N rows")],
        ),
        "/api/queue": get("Counts per folder, queued jobs by priority, the job being trained"),
        "/api/history": get("Finished jobs, oldest first", [query("limit", "newest N entries (default 500)")]),
        "/api/versions": get("Model versions, the current and previous one"),
        "/api/snapshots": get("Snapshots with their last verify result (cached, with its time)"),
        "/api/failed": get("Files in queue/failed/ with the reason each was refused"),
        "/api/openapi.json": get("This document"),
        "/api/rollback": post(
            "Ask the daemon to switch current_model to a version (or restore a snapshot)",
            {**action, "404": {"description": "no such version or snapshot"}},
            requestBody={
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"to": {"type": "string"}}}}
                },
            },
        ),
        "/api/snapshot": post("Ask the daemon to snapshot the current version", action),
        "/api/snapshots/{name}/verify": post(
            "Verify a snapshot against its MANIFEST now (sha256 of every file; slow for big models)",
            {
                "200": {"description": "{name, verify: {ok, checked, problems, verified_at}}"},
                "404": {"description": "no such snapshot"},
            },
            parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        ),
        "/api/upload": post(
            "Put the request body (a JSONL file) into the inbox atomically under a sanitised, unique name",
            {
                "201": {"description": "{ok, name, priority, size}"},
                "400": {"description": "bad priority or empty body"},
                "411": {"description": "no Content-Length"},
                "413": {"description": "over the size limit"},
            },
            parameters=[
                query("name", "file name (sanitised; directories are dropped)", "string"),
                query("priority", "high | normal | low (default normal)", "string"),
            ],
            requestBody={"required": True, "content": {"application/octet-stream": {}}},
        ),
    }
    for name in CONTROL_ACTIONS:
        paths[f"/api/control/{name}"] = post(f"Ask the daemon to {name}", action)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "trainerd monitor",
            "version": "1",
            "description": "Reads are open on a loopback bind; every POST (and every read on a non-loopback bind) "
            "needs the token from the base dir's monitor.token. Errors are {error, hint}.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "headerToken": {"type": "apiKey", "in": "header", "name": "X-Trainerd-Token"},
            }
        },
        "paths": paths,
    }
