"""A base dir filled by hand the way a running daemon leaves it, a live monitor over it, and an HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.lock import DaemonLock
from trainerd.daemon.queue import JobQueue
from trainerd.daemon.snapshots import create_snapshot
from trainerd.daemon.status import append_history, write_status
from trainerd.daemon.store import ModelStore
from trainerd.files import append_jsonl, atomic_write_json
from trainerd.monitor import MonitorServer, serve

TOKEN = "test-token-0123456789-abcdefghij"
LINE = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    server: MonitorServer,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One request on a fresh connection; `token` goes in as a Bearer header."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    try:
        conn.request(method, path, body=data, headers=sent)
        reply = conn.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        conn.close()


def make_version(base: BaseDir, number: int, job_id: str | None) -> Path:
    path = base.models / f"v{number:06d}"
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen3", "n": number}))
    (path / "model.safetensors").write_bytes(os.urandom(64))
    meta = {"kind": "full", "created_at": "2024-05-01T12:00:00+00:00", "job_id": job_id, "files": {"x": {}}}
    atomic_write_json(path / "VERSION.json", meta)
    return path


def populate(base: BaseDir, scratch: Path) -> None:
    """Status, history, two jobs' metrics, a queue, a failed file, two versions and a snapshot."""
    base.ensure()
    atomic_write_json(base.config_file, {})
    make_version(base, 1, None)
    make_version(base, 2, "job-a")
    os.symlink("models/v000002", base.current_model)
    job = {
        "job_id": "job-b",
        "file": "chat.jsonl",
        "priority": "normal",
        "attempt": 1,
        "run_dir": str(base.run_dir("job-b")),
        "step": 5,
        "total_steps": 10,
        "global_step": 15,
        "loss": 1.5,
        "lr": 1e-4,
        "tokens_per_second": 900.0,
        "eta_seconds": 12.0,
    }
    write_status(
        base,
        {
            "state": "training",
            "pid": 4242,
            "poll_interval_seconds": 2.0,
            "message": "training job-b",
            "global_step": 15,
            "current_model": "v000002",
            "current_job": job,
            "queue": {"high": 1, "normal": 1, "low": 0, "processing": 0, "failed": 1, "done": 1},
        },
    )
    append_history(base, {"job_id": "job-a", "outcome": "promoted", "version": "v000002", "steps": 10})
    for job_id, first in (("job-a", 1), ("job-b", 11)):
        for step in range(first, first + (10 if job_id == "job-a" else 5)):
            append_jsonl(
                base.run_dir(job_id) / "metrics.jsonl",
                {
                    "time": time.time(),
                    "step": step - first + 1,
                    "global_step": step,
                    "loss": 3.0 - step * 0.1,
                    "lr": 1e-4,
                    "grad_norm": 1.0,
                    "tokens_per_second": 800.0 + step,
                },
            )
    queue = JobQueue(base)
    for name, priority in (("urgent.jsonl", "high"), ("later.jsonl", "normal")):
        src = scratch / name
        src.write_text(LINE + "\n")
        queue.accept(src, priority=priority, copy=True)
    bad = scratch / "broken.jsonl"
    bad.write_text("{not json\n")
    queue.reject(bad, reason="line 1 is not JSON", problems=[{"line": 1, "problem": "bad"}] * 30, copy=True)
    create_snapshot(base, ModelStore(base).resolve_version("v000002"))


@pytest.fixture
def base(tmp_path: Path) -> BaseDir:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    root = BaseDir(tmp_path / "base")
    populate(root, scratch)
    return root


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def start(base: BaseDir) -> Iterator[Callable[..., MonitorServer]]:
    """Start monitors with any serve() arguments (default: this base dir, port 0); all stop at teardown."""
    started: list[MonitorServer] = []

    def _start(host: str = "127.0.0.1", token: str | None = TOKEN, **kwargs: Any) -> MonitorServer:
        srv = serve(kwargs.pop("base", base), host, kwargs.pop("port", 0), token, **kwargs)
        started.append(srv)
        return srv

    yield _start
    for srv in started:
        srv.stop()


@pytest.fixture
def server(start: Callable[..., MonitorServer]) -> MonitorServer:
    return start()


@pytest.fixture
def call() -> Callable[..., Response]:
    """`call(server, method, path, body=None, token=..., headers=...)` -> Response."""
    return request


@pytest.fixture
def api(server: MonitorServer) -> Callable[..., Response]:
    """`api(method, path, body=None, token=..., headers=...)` against the default server."""

    def _api(method: str, path: str, body: bytes | dict[str, Any] | None = None, **kwargs: Any) -> Response:
        return request(server, method, path, body, **kwargs)

    return _api


@pytest.fixture
def daemon(base: BaseDir) -> Iterator[DaemonLock]:
    """Hold the base dir's daemon lock, so the monitor sees a running daemon (the real loop is not needed)."""
    lock = DaemonLock(base)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@pytest.fixture
def sent_commands(base: BaseDir) -> Callable[[], list[dict[str, Any]]]:
    """The control commands written so far (what the daemon would read)."""

    def _commands() -> list[dict[str, Any]]:
        folder = base.control / "commands"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    return _commands
