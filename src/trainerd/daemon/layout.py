"""The base dir: one place that names every path the daemon, the CLI and the monitor share.

Nothing else builds base-dir paths by hand, so a layout change is one edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from trainerd.errors import TrainerdError

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
DEFAULT_PRIORITY: Priority = "normal"


def parse_priority(value: object, where: str = "priority") -> Priority:
    """Check a priority given by a user (sidecar, CLI flag) and name the allowed values when it is wrong."""
    if isinstance(value, str) and value in PRIORITIES:
        return cast(Priority, value)
    raise TrainerdError(
        f"{where}: unknown priority {value!r}",
        hint=f"use one of {', '.join(PRIORITIES)}",
    )


@dataclass(frozen=True)
class BaseDir:
    """Paths inside one base dir (see DESIGN.md); `root` is made absolute so paths survive a chdir."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().absolute())

    # --- top level -------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def queue_root(self) -> Path:
        return self.root / "queue"

    def queue_dir(self, priority: str) -> Path:
        """queue/<priority>/ for a waiting job; an unknown priority is an error, not a new folder."""
        return self.queue_root / parse_priority(priority)

    @property
    def processing(self) -> Path:
        return self.queue_root / "processing"

    @property
    def failed(self) -> Path:
        return self.queue_root / "failed"

    @property
    def done(self) -> Path:
        return self.queue_root / "done"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def current_model(self) -> Path:
        """Symlink to models/<version>; swapped atomically by the store."""
        return self.root / "current_model"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, job_id: str) -> Path:
        """runs/<job_id>/: the engine's output for one job."""
        return self.runs / job_id

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def status_dir(self) -> Path:
        return self.root / "status"

    @property
    def status_file(self) -> Path:
        return self.status_dir / "status.json"

    @property
    def history_file(self) -> Path:
        return self.status_dir / "history.jsonl"

    @property
    def control(self) -> Path:
        return self.root / "control"

    @property
    def request_file(self) -> Path:
        """control/request.json: pause/stop/skip asked of the running daemon and engine."""
        return self.control / "request.json"

    @property
    def control_state_file(self) -> Path:
        """control/state.json: what the daemon has acknowledged (paused, stopping, ...)."""
        return self.control / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.logs / "daemon.log"

    @property
    def lock_file(self) -> Path:
        return self.root / "daemon.lock"

    # --- groups ----------------------------------------------------------------------------
    def state_dirs(self) -> tuple[Path, ...]:
        """Every folder a job's files can sit in, in lifecycle order."""
        return (*(self.queue_dir(p) for p in PRIORITIES), self.processing, self.failed, self.done)

    def directories(self) -> tuple[Path, ...]:
        """Every folder `ensure` creates (not current_model, which the store links)."""
        return (
            self.inbox,
            *self.state_dirs(),
            self.models,
            self.runs,
            self.snapshots,
            self.status_dir,
            self.control,
            self.logs,
        )

    def ensure(self) -> BaseDir:
        """Create every folder (idempotent): init and each daemon start call this."""
        for directory in self.directories():
            directory.mkdir(parents=True, exist_ok=True)
        return self

    def resolve_inside(self, path: str | Path) -> Path:
        """Resolve `path` (relative paths are taken from root) and refuse anything that lands outside root.

        Symlinks are followed, so `inbox/x.jsonl -> /etc/passwd` or a `../` escape is caught.
        """
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve(strict=False)
        root = self.root.resolve(strict=False)
        if resolved != root and root not in resolved.parents:
            raise TrainerdError(
                f"{path} resolves to {resolved}, outside the base dir {root}",
                hint="put the file itself inside the base dir (no symlinks or '..' that lead out of it)",
            )
        return resolved


def is_base_dir(path: str | Path) -> bool:
    """True for a folder `trainerd init` made (config.json and inbox/ present)."""
    base = BaseDir(Path(path))
    return base.config_file.is_file() and base.inbox.is_dir()
