"""Helpers for end-to-end tests that run `trainerd init`/`daemon`/controls as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# A tiny model learns visibly at this rate; short polls keep the tests quick.
FAST_SETTINGS = (
    "hyperparams.learning_rate=0.003",
    "hyperparams.batch_size=8",
    "hyperparams.save_steps=5",
    "hyperparams.logging_steps=2",
    "hyperparams.use_gradient_checkpointing=false",
    "daemon.poll_interval_seconds=0.3",
    "daemon.stable_polls=1",
    "daemon.snapshot_time=null",
    "daemon.min_free_disk_gb=0",
)


def trainerd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainerd", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def init_base(base: Path, *extra: str, lora: bool = False, settings: tuple[str, ...] = FAST_SETTINGS) -> Path:
    args = ["init", str(base), "--model", "tiny", *(["--lora"] if lora else []), *extra]
    for setting in settings:
        args += ["--set", setting]
    proc = trainerd(*args)
    assert proc.returncode == 0, proc.stderr
    return base


def start_daemon(base: Path, *flags: str) -> subprocess.Popen[str]:
    log = open(base / "daemon-test.out", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "trainerd", "daemon", "--base-dir", str(base), *flags],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=ENV,
    )  # fmt: skip


def wait_until(predicate: Callable[[], Any], timeout: float = 180, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(base: Path) -> dict[str, Any]:
    try:
        return json.loads((base / "status" / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def job_step(base: Path) -> int:
    job = status(base).get("current_job") or {}
    return int(job.get("step") or 0)


def history(base: Path) -> list[dict[str, Any]]:
    path = base / "status" / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def current_version(base: Path) -> str:
    return os.readlink(base / "current_model").rstrip("/").rsplit("/", 1)[-1]


def write_data(path: Path, count: int, seed: int) -> Path:
    from trainerd.data.samples import write_sample_jsonl

    write_sample_jsonl(path, count, seed=seed)
    return path


def drop(base: Path, source: Path, name: str, priority: str | None = None) -> None:
    """Put a file into the inbox the way a careful user does: sidecar first, then an atomic rename."""
    if priority:
        (base / "inbox" / f"{name}.meta.json").write_text(json.dumps({"priority": priority}))
    tmp = base / "inbox" / f".{name}.tmp"
    tmp.write_bytes(source.read_bytes())
    tmp.rename(base / "inbox" / name)


def daemon_log(base: Path) -> str:
    text = ""
    for path in (base / "daemon-test.out", base / "logs" / "daemon.log"):
        if path.exists():
            text += path.read_text()
    return text
