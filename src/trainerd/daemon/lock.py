"""One daemon per base dir: an exclusive `flock` on daemon.lock, with the holder's PID written inside.

The kernel drops a flock when its holder dies (also on kill -9), so a lock file left by a dead
process never blocks a start: liveness is decided by the lock, never by the PID in the file (a PID
can be reused by an unrelated process). The descriptor is opened close-on-exec, so an engine child
the daemon spawns never inherits the lock and cannot keep it alive after the daemon is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from trainerd.daemon.layout import BaseDir
from trainerd.errors import TrainerdError

log = logging.getLogger("trainerd.daemon.lock")

# A holder writes its PID right after it takes the lock; a reader in that instant sees an empty file.
_PID_READ_TRIES = 20
_PID_READ_PAUSE = 0.025
# `daemon_running` takes a shared lock for an instant; a starting daemon retries past such a probe.
_ACQUIRE_TRIES = 10
_ACQUIRE_PAUSE = 0.05


class DaemonRunningError(TrainerdError):
    """Another live process holds the base dir's lock."""

    def __init__(self, pid: int | None, lock_file: Path) -> None:
        who = f"PID {pid}" if pid is not None else "a process whose PID could not be read"
        super().__init__(
            f"another trainerd daemon ({who}) is already running on {lock_file.parent} (lock: {lock_file})",
            hint=f"stop it first (`trainerd stop --base-dir {lock_file.parent}`)"
            + (f" or check it with `ps -p {pid}`" if pid is not None else ""),
        )
        self.pid = pid
        self.lock_file = lock_file


def _parse_lock_text(text: str) -> dict[str, Any]:
    """Lock contents: one JSON object; a bare PID (older or hand-written files) is read too."""
    text = text.strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        first = text.split()[0]
        return {"pid": int(first)} if first.isdigit() else {}
    if isinstance(data, int) and not isinstance(data, bool):
        return {"pid": data}
    if isinstance(data, dict) and isinstance(data.get("pid"), int) and not isinstance(data.get("pid"), bool):
        return data
    return {}


def read_lock_info(base: BaseDir) -> dict[str, Any]:
    """What the last holder wrote (pid, started_at, hostname); {} when absent or unreadable."""
    try:
        return _parse_lock_text(base.lock_file.read_text(encoding="utf-8", errors="replace"))
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return {}


def read_lock_pid(base: BaseDir) -> int | None:
    """The PID written in daemon.lock, alive or not (use `daemon_running` to know if it runs)."""
    pid = read_lock_info(base).get("pid")
    return pid if isinstance(pid, int) else None


def _read_pid_of_holder(base: BaseDir) -> int | None:
    """PID of a process known to hold the lock, waiting briefly for it to finish writing it."""
    for _ in range(_PID_READ_TRIES):
        pid = read_lock_pid(base)
        if pid is not None:
            return pid
        time.sleep(_PID_READ_PAUSE)
    return None


def daemon_running(base: BaseDir) -> int | None:
    """PID of the live daemon holding the lock, or None when no process holds it.

    Probed with a shared non-blocking lock, so a stale file or a reused PID never reads as running.
    Returns -1 in the (unlikely) case the lock is held but no PID can be read from the file.
    """
    try:
        fd = os.open(base.lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid_of_holder(base)
            return pid if pid is not None else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class DaemonLock:
    """The single-instance lock of one base dir; use as a context manager or acquire/release."""

    def __init__(self, base: BaseDir) -> None:
        self.base = base
        self._fd: int | None = None
        # PID a previous holder left behind without releasing: it died (crash, kill -9) while running.
        self.previous_pid: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise DaemonRunningError naming the running PID; a stale file is taken over."""
        if self._fd is not None:
            return
        path = self.base.lock_file
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise TrainerdError(
                f"cannot open the daemon lock {path}: {exc.strerror}",
                hint="check that the base dir is writable by this user",
            ) from exc
        try:
            self._lock(fd, path)
            previous = _parse_lock_text(os.pread(fd, 4096, 0).decode("utf-8", errors="replace")).get("pid")
            if isinstance(previous, int) and previous != os.getpid():
                self.previous_pid = previous
                log.warning("took over a stale lock from PID %s, which did not shut down cleanly", previous)
            now = time.time()
            record = {
                "pid": os.getpid(),
                "started_at": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
                "started_epoch": now,
                "hostname": socket.gethostname(),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int, path: Path) -> None:
        """Exclusive non-blocking flock, retried a moment to get past a `daemon_running` probe."""
        for attempt in range(_ACQUIRE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if attempt + 1 < _ACQUIRE_TRIES:
                    time.sleep(_ACQUIRE_PAUSE)
            except OSError as exc:
                raise TrainerdError(
                    f"cannot lock {path}: {exc.strerror}",
                    hint="keep the base dir on a local filesystem that supports flock",
                ) from exc
        raise DaemonRunningError(_read_pid_of_holder(self.base), path)

    def release(self) -> None:
        """Empty the file (a PID left inside then means an unclean exit) and drop the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.fsync(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
