"""Child processes of the daemon: one engine process per job, and the data gate.

The daemon never trains or tokenizes itself: a crash, an OOM or a leak in a job cannot take it
down, and the GPU memory is returned when the child exits. Each child gets SIGTERM if the daemon
dies (Linux parent-death signal), which the engine treats as "checkpoint and stop".
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainerd.config.schema import DaemonSection
from trainerd.files import atomic_write_json, read_json

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGTERM when the daemon goes away."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the engine lock still keeps a new engine out of a busy run dir
        pass


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def engine_command(daemon: DaemonSection, spec_path: Path) -> list[str]:
    """The command line of one job: plain python, or accelerate/torchrun for several GPUs."""
    entry = ["-m", "trainerd.engine", str(spec_path)]
    if daemon.launcher == "accelerate":
        return [
            sys.executable, "-m", "accelerate.commands.launch",
            "--num_processes", str(daemon.num_processes), *daemon.launcher_args, *entry,
        ]  # fmt: skip
    if daemon.launcher == "torchrun":
        return [
            sys.executable, "-m", "torch.distributed.run",
            "--nproc_per_node", str(daemon.num_processes), *daemon.launcher_args, *entry,
        ]  # fmt: skip
    return [sys.executable, *entry]


class ChildProcess:
    """A child whose output goes to a log file; poll() never blocks."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.log_path = log_path
        self.started_at = time.time()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,  # Ctrl-C on the daemon's terminal reaches only the daemon
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_engine(daemon: DaemonSection, spec_path: Path, run_dir: Path) -> ChildProcess:
    return ChildProcess(engine_command(daemon, spec_path), run_dir / "engine.log")


class GateProcess(ChildProcess):
    """`python -m trainerd.engine.gate` over a batch of files; results read when it exits."""

    def __init__(self, work_dir: Path, files: list[str], model: str, config: dict[str, Any]) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.request_path = work_dir / "gate-request.json"
        self.result_path = work_dir / "gate-result.json"
        self.result_path.unlink(missing_ok=True)
        self.files = files
        atomic_write_json(self.request_path, {"files": files, "model": model, "config": config})
        command = [sys.executable, "-m", "trainerd.engine.gate", str(self.request_path), str(self.result_path)]
        super().__init__(command, work_dir / "gate.log")

    def results(self) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(verdicts, None) or (None, why the gate itself failed)."""
        try:
            data = read_json(self.result_path)
        except (OSError, ValueError):
            return None, f"the gate process exited with code {self.poll()} without a result: {self.log_tail(5)}"
        if "error" in data:
            return None, str(data["error"])
        return list(data.get("results", [])), None
