"""Live status and job history: what `trainerd status`, `history` and the monitor read.

`status/status.json` is rewritten atomically at every daemon poll (its `heartbeat` says when);
`status/history.jsonl` gets one line per finished job. Readers never need the daemon to answer.

status.json fields:
  state         idle | training | paused | stopping | stopped | error
  pid           daemon PID;  heartbeat: epoch seconds of the last write;  poll_interval_seconds
  message       what the daemon is doing or why it is in `error`
  global_step   optimizer steps done across all jobs
  current_model version name current_model points at
  current_job   null or {job_id, file, priority, attempt, state (training|paused), run_dir, started_at,
                engine_pid, step, total_steps, global_step, loss, lr, grad_norm, tokens_per_second,
                eta_seconds}
  queue         {high, normal, low, processing, failed, done}
  last_result   the newest history line
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trainerd.daemon.layout import BaseDir
from trainerd.files import append_jsonl, atomic_write_json, read_json, read_jsonl_tolerant

STATES = ("idle", "training", "paused", "stopping", "stopped", "error")


def write_status(base: BaseDir, status: dict[str, Any]) -> None:
    atomic_write_json(base.status_file, {**status, "heartbeat": time.time()})


def read_status(base: BaseDir) -> dict[str, Any] | None:
    try:
        data = read_json(base.status_file)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_age(status: dict[str, Any], now: float | None = None) -> float | None:
    beat = status.get("heartbeat")
    if not isinstance(beat, (int, float)):
        return None
    return (now if now is not None else time.time()) - float(beat)


def is_stale(status: dict[str, Any], now: float | None = None) -> bool:
    """A heartbeat older than a few polls means the daemon is not running (or is hung)."""
    age = heartbeat_age(status, now)
    interval = float(status.get("poll_interval_seconds") or 2.0)
    return age is None or age > max(15.0, 5 * interval)


def append_history(base: BaseDir, entry: dict[str, Any]) -> None:
    append_jsonl(base.history_file, {"finished_at": time.time(), **entry})


def read_history(base: BaseDir, limit: int | None = None) -> list[dict[str, Any]]:
    rows = read_jsonl_tolerant(base.history_file)
    return rows[-limit:] if limit else rows


def read_run_metrics(run_dir: Path, since_global_step: int = 0) -> list[dict[str, Any]]:
    """Metric rows of one job (engine's metrics.jsonl) after a global step."""
    return [
        row for row in read_jsonl_tolerant(run_dir / "metrics.jsonl") if row.get("global_step", 0) > since_global_step
    ]


def read_all_metrics(base: BaseDir, since_global_step: int = 0) -> list[dict[str, Any]]:
    """Metric rows of every job still in runs/, by global step, each tagged with its job id."""
    rows: list[dict[str, Any]] = []
    if base.runs.is_dir():
        for run_dir in base.runs.iterdir():
            if run_dir.is_dir():
                rows.extend({**row, "job_id": run_dir.name} for row in read_run_metrics(run_dir, since_global_step))
    rows.sort(key=lambda row: (row.get("global_step", 0), row.get("time", 0)))
    return rows


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_status(status: dict[str, Any] | None, running_pid: int | None, now: float | None = None) -> str:
    """A few lines a person reads at a glance."""
    if status is None:
        state = "no status yet" + (f" (daemon PID {running_pid} starting)" if running_pid else " (daemon never ran)")
        return f"state: {state}"
    age = heartbeat_age(status, now)
    state = str(status.get("state", "?"))
    lines = []
    if running_pid is None and state not in ("stopped",):
        lines.append(f"state: {state} — STALE: no daemon holds the lock (heartbeat {_age(age)})")
    elif is_stale(status, now):
        lines.append(f"state: {state} — STALE heartbeat ({_age(age)}); the daemon may be hung")
    else:
        lines.append(f"state: {state} (daemon PID {status.get('pid')}, heartbeat {_age(age)})")
    if status.get("message"):
        lines.append(f"message: {status['message']}")
    lines.append(f"current model: {status.get('current_model') or '-'}   global step: {status.get('global_step', 0)}")
    job = status.get("current_job")
    if job:
        step, total = job.get("step") or 0, job.get("total_steps") or 0
        loss = job.get("loss")
        lines.append(
            f"job: {job.get('job_id')} ({job.get('file')}, {job.get('priority')}) step {step}/{total}"
            + (f", loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
            + (f", {job['tokens_per_second']:.0f} tok/s" if job.get("tokens_per_second") else "")
            + f", ETA {_duration(job.get('eta_seconds'))}"
        )
    queue = status.get("queue") or {}
    lines.append(
        "queue: " + ", ".join(f"{key} {queue.get(key, 0)}" for key in ("high", "normal", "low", "failed", "done"))
    )
    last = status.get("last_result")
    if last:
        lines.append(
            f"last job: {last.get('job_id')} {last.get('outcome')}"
            + (f" -> {last['version']}" if last.get("version") else "")
            + (f" ({last['error']})" if last.get("error") else "")
        )
    return "\n".join(lines)
