"""Requests to end a job early, checked by the engine between optimizer steps.

Two sources: SIGTERM/SIGINT (a person pressing Ctrl-C, the daemon stopping) and a request file
`<control_dir>/request.json` written atomically by the daemon: `{"action": "pause"|"stop"|"skip"}`.
pause/stop/interrupt save a checkpoint first so no finished step is lost; skip abandons the job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from pathlib import Path
from types import FrameType

ACTIONS = ("pause", "stop", "skip")
REQUEST_FILE = "request.json"


class ControlRequests:
    """Polls for an early-end request; cheap enough to call every step."""

    def __init__(self, control_dir: str | Path | None, poll_interval: float = 0.5) -> None:
        self.control_dir = Path(control_dir) if control_dir else None
        self.poll_interval = poll_interval
        self._last_poll = 0.0
        self._signalled: str | None = None
        self._previous: dict[int, object] = {}

    def install_signal_handlers(self) -> None:
        """Turn SIGTERM/SIGINT into a clean stop at the next step boundary (a second signal still kills)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no signal handling
                self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signalled is not None:  # second Ctrl-C: the user means it
            self.restore_signal_handlers()
            raise KeyboardInterrupt
        self._signalled = "stop" if signum == signal.SIGTERM else "interrupt"

    def poll(self, force: bool = False) -> str | None:
        """The pending action, if any: "interrupt", "stop", "pause" or "skip"."""
        if self._signalled is not None:
            return self._signalled
        if self.control_dir is None:
            return None
        now = time.monotonic()
        if not force and now - self._last_poll < self.poll_interval:
            return None
        self._last_poll = now
        try:
            data = json.loads((self.control_dir / REQUEST_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None
        action = data.get("action") if isinstance(data, dict) else None
        return action if action in ACTIONS else None


ENGINE_LOCK = ".engine.lock"


class EngineLock:
    """One engine per output dir: a flock on OUT/.engine.lock with the PID inside.

    The daemon waits on it before resuming a job, so an engine left running by a killed daemon
    (it gets SIGTERM through the parent-death signal and checkpoints) never shares a dir with a new one.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / ENGINE_LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        from trainerd.errors import TrainerdError

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainerdError(
                f"another engine process (PID {holder}) is training into {self.path.parent}",
                hint="wait for it to finish or stop it; two jobs must never share an output dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def engine_lock_free(output_dir: str | Path) -> bool:
    """True when no engine holds OUT/.engine.lock (used by the daemon before resuming a job)."""
    path = Path(output_dir) / ENGINE_LOCK
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
