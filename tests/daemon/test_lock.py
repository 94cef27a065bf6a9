"""DaemonLock: one daemon per base dir, decided by flock (not by the PID), stale files never block."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.lock import DaemonLock, DaemonRunningError, daemon_running, read_lock_info, read_lock_pid

HOLDER = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path
    from trainerd.daemon.layout import BaseDir
    from trainerd.daemon.lock import DaemonLock
    lock = DaemonLock(BaseDir(Path(sys.argv[1])))
    lock.acquire()
    child_pid = 0
    if len(sys.argv) > 2:  # start a long-lived child, as the daemon starts an engine process
        child_pid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid
    print("locked", child_pid, flush=True)
    sys.stdin.read()
    """
)

TRY_ACQUIRE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from trainerd.daemon.layout import BaseDir
    from trainerd.daemon.lock import DaemonLock, DaemonRunningError
    try:
        DaemonLock(BaseDir(Path(sys.argv[1]))).acquire()
    except DaemonRunningError as exc:
        print(exc)
        sys.exit(3)
    print("acquired")
    """
)


@contextlib.contextmanager
def holder(base: BaseDir, with_child: bool = False) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A separate process holding the lock until its stdin closes; yields it and its child's PID (or 0)."""
    args = [sys.executable, "-c", HOLDER, str(base.root)] + (["child"] if with_child else [])
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        word, child = proc.stdout.readline().split()
        assert word == "locked"
        yield proc, int(child)
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
        proc.wait(timeout=10)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_acquirer_is_refused_naming_the_running_pid(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    with holder(base) as (proc, _):
        assert read_lock_pid(base) == proc.pid
        assert daemon_running(base) == proc.pid
        with pytest.raises(DaemonRunningError) as info:
            DaemonLock(base).acquire()
        assert info.value.pid == proc.pid
        assert f"PID {proc.pid}" in str(info.value)
        assert "trainerd stop" in (info.value.hint or "")
    # The holder exited: the lock is free again even though its PID is still written in the file.
    assert daemon_running(base) is None
    with DaemonLock(base) as lock:
        assert lock.held and read_lock_pid(base) == os.getpid()


def test_a_second_process_is_refused_while_this_one_holds_it(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    with DaemonLock(base):
        done = subprocess.run([sys.executable, "-c", TRY_ACQUIRE, str(base.root)], capture_output=True, text=True)
        assert done.returncode == 3, done.stderr
        assert f"PID {os.getpid()}" in done.stdout
        # Another lock object in this very process is refused too (flock is per open file).
        with pytest.raises(DaemonRunningError):
            DaemonLock(base).acquire()
    done = subprocess.run([sys.executable, "-c", TRY_ACQUIRE, str(base.root)], capture_output=True, text=True)
    assert done.stdout.strip() == "acquired", done.stderr


def test_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    pid = dead_pid()
    base.lock_file.write_text(json.dumps({"pid": pid, "started_at": "yesterday"}) + "\n")
    assert read_lock_pid(base) == pid
    assert daemon_running(base) is None
    lock = DaemonLock(base)
    lock.acquire()
    try:
        assert lock.previous_pid == pid
        info = read_lock_info(base)
        assert info["pid"] == os.getpid() and "started_at" in info and "hostname" in info
        assert daemon_running(base) == os.getpid()
    finally:
        lock.release()


def test_stale_lock_with_a_bare_pid_or_garbage_is_taken_over(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    base.lock_file.write_text("12345\n")
    assert read_lock_pid(base) == 12345
    base.lock_file.write_text("not a pid")
    assert read_lock_pid(base) is None
    with DaemonLock(base) as lock:
        assert lock.previous_pid is None


def test_release_frees_the_lock_and_empties_the_file(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    lock = DaemonLock(base)
    lock.acquire()
    lock.acquire()  # idempotent
    lock.release()
    assert not lock.held
    assert daemon_running(base) is None
    assert read_lock_pid(base) is None  # a clean exit leaves no PID behind
    lock.release()  # idempotent
    with DaemonLock(base) as again:
        assert again.previous_pid is None  # nothing stale after a clean release


def test_no_lock_file_means_not_running(tmp_path: Path) -> None:
    assert daemon_running(BaseDir(tmp_path / "missing")) is None
    assert read_lock_pid(BaseDir(tmp_path)) is None


def test_kill_9_frees_the_lock_even_while_its_child_lives(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    child = 0
    try:
        with holder(base, with_child=True) as (proc, child):
            assert child > 0 and daemon_running(base) == proc.pid
            proc.kill()  # SIGKILL: no release, the PID stays in the file
            proc.wait(timeout=10)
            os.kill(child, 0)  # the engine-like child is still alive ...
            assert daemon_running(base) is None  # ... and does not hold the lock
            with DaemonLock(base) as lock:
                assert lock.previous_pid == proc.pid
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
