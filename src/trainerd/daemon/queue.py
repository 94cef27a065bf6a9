"""The job queue: data files and their job records moving through the queue folders.

A job is two files with the same job id, `<id>.jsonl` (the user's data, never deleted) and
`<id>.job.json` (its record), sitting together in one folder: queue/<priority>/, processing/ or
done/; in failed/ the record becomes `<id>.error.json`, which says why. The folder a data file sits in
is the truth about a job's state. Every move renames the data file first (os.replace, then fsync of
both folders) and writes the record after, so a crash at any instant leaves the data file in exactly
one folder and `recover()` can rebuild or re-home the record around it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from trainerd.daemon.inbox import new_job_id
from trainerd.daemon.layout import PRIORITIES, BaseDir, Priority, parse_priority
from trainerd.errors import TrainerdError
from trainerd.files import atomic_copy, atomic_write_json, fsync_dir, read_json, sha256_file

log = logging.getLogger("trainerd.daemon.queue")

JobState = Literal["queued", "processing", "failed", "done"]
JobSource = Literal["inbox", "submit", "recovered"]
JOB_STATES: tuple[JobState, ...] = ("queued", "processing", "failed", "done")
JOB_SOURCES: tuple[JobSource, ...] = ("inbox", "submit", "recovered")

DATA_SUFFIX = ".jsonl"
RECORD_SUFFIX = ".job.json"
ERROR_SUFFIX = ".error.json"
META_SUFFIX = ".meta.json"
CORRUPT_SUFFIX = ".job.json.corrupt"
_RECOVER_HINT = "run the daemon to recover the queue (it repairs records at every start)"
_ID_SUFFIXES = (CORRUPT_SUFFIX, RECORD_SUFFIX, ERROR_SUFFIX, META_SUFFIX, DATA_SUFFIX)


def _now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _retry_hint(base: BaseDir, job_id: str) -> str:
    return f"fix the cause, then move {base.failed / (job_id + DATA_SUFFIX)} back into {base.inbox}/ to train it again"


@dataclass
class JobRecord:
    """Everything the daemon knows about one data file; stored as `<job_id>.job.json` next to it."""

    job_id: str
    original_name: str
    priority: Priority
    submitted_at: float
    source: JobSource = "inbox"
    state: JobState = "queued"
    attempts: int = 0  # failed attempts so far
    errors: list[dict[str, Any]] = field(default_factory=list)  # one per failed attempt
    size: int = 0
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the inbox sidecar's contents
    notes: dict[str, Any] = field(default_factory=dict)  # free-form: skips, resume info, validation summary
    started_at: float | None = None  # start of the latest attempt
    finished_at: float | None = None
    outcome: dict[str, Any] | None = None  # what `finish` was given (version, steps, losses, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "job record") -> JobRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainerdError(f"{where} is not valid JSON: {exc}", hint=_RECOVER_HINT) from exc
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str = "job record") -> JobRecord:
        """Check types key by key so a damaged record is reported by name, not as a crash later."""
        if not isinstance(data, dict):
            raise TrainerdError(f"{where} must be a JSON object", hint="run the daemon to recover the queue")

        def bad(key: str, expected: str) -> TrainerdError:
            return TrainerdError(
                f"{where}: key {key!r} must be {expected}, got {data.get(key)!r}",
                hint="run the daemon to recover the queue (it rebuilds damaged records)",
            )

        def number(key: str) -> float:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(key, "a number")
            return float(value)

        def optional_number(key: str) -> float | None:
            return None if data.get(key) is None else number(key)

        def mapping(key: str, optional: bool = False) -> dict[str, Any] | None:
            value = data.get(key, None if optional else {})
            if value is None and optional:
                return None
            if not isinstance(value, dict):
                raise bad(key, "an object")
            return value

        for key in ("job_id", "original_name"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise bad(key, "a non-empty string")
        state = data.get("state", "queued")
        if state not in JOB_STATES:
            raise bad("state", " | ".join(JOB_STATES))
        source = data.get("source", "inbox")
        if source not in JOB_SOURCES:
            raise bad("source", " | ".join(JOB_SOURCES))
        attempts = data.get("attempts", 0)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise bad("attempts", "a whole number >= 0")
        errors = data.get("errors", [])
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise bad("errors", "a list of objects")
        size = data.get("size", 0)
        if isinstance(size, bool) or not isinstance(size, int):
            raise bad("size", "a whole number")
        sha = data.get("sha256")
        if sha is not None and not isinstance(sha, str):
            raise bad("sha256", "a string")
        return cls(
            job_id=data["job_id"],
            original_name=data["original_name"],
            priority=parse_priority(data.get("priority"), f"{where}: key 'priority'"),
            submitted_at=number("submitted_at"),
            source=cast(JobSource, source),
            state=cast(JobState, state),
            attempts=attempts,
            errors=list(errors),
            size=size,
            sha256=sha,
            meta=mapping("meta") or {},
            notes=mapping("notes") or {},
            started_at=optional_number("started_at"),
            finished_at=optional_number("finished_at"),
            outcome=mapping("outcome", optional=True),
        )


def read_record(path: Path) -> JobRecord:
    """Load one `<id>.job.json`; a missing or damaged file is a TrainerdError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainerdError(f"cannot read job record {path}: {exc}", hint=_RECOVER_HINT) from exc
    return JobRecord.from_json(text, where=f"job record {path}")


def _problem_dict(problem: Any) -> dict[str, Any]:
    """Problems may come as dicts or as objects with `to_dict()` (data.validate.LineProblem)."""
    if isinstance(problem, dict):
        return problem
    to_dict = getattr(problem, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    return {"problem": str(problem)}


def _job_id_of(name: str) -> str | None:
    for suffix in _ID_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] or None
    return None


def _original_name_from_id(job_id: str) -> str:
    """Best guess for an adopted orphan: the id minus its `YYYYmmdd-HHMMSS-` prefix."""
    parts = job_id.split("-", 2)
    if len(parts) == 3 and len(parts[0]) == 8 and parts[0].isdigit() and parts[1].isdigit():
        return parts[2] + DATA_SUFFIX
    return job_id + DATA_SUFFIX


def _move_file(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` durably, refusing to replace anything already at `dst`."""
    if os.path.lexists(dst):
        raise TrainerdError(
            f"refusing to overwrite {dst} while moving {src}",
            hint="another file already has this job id; run the daemon's recovery or move one aside by hand",
        )
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temp file in dst's folder, so `dst` appears only complete."""
    if os.path.lexists(dst):
        raise TrainerdError(f"refusing to overwrite {dst} while copying {src}", hint="retry; job ids are unique")
    atomic_copy(src, dst)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)


class JobQueue:
    """The queue over one base dir's queue folders. Single writer: only the daemon (holding the lock)."""

    def __init__(self, base: BaseDir) -> None:
        self.base = base

    # --- where things are ------------------------------------------------------------------
    def _queued_dirs(self) -> list[tuple[Priority, Path]]:
        return [(p, self.base.queue_dir(p)) for p in PRIORITIES]

    def _state_of(self, directory: Path) -> tuple[JobState, Priority | None]:
        for priority, queued in self._queued_dirs():
            if directory == queued:
                return "queued", priority
        if directory == self.base.processing:
            return "processing", None
        if directory == self.base.failed:
            return "failed", None
        return "done", None

    def _dir_of(self, state: JobState, priority: Priority) -> Path:
        if state == "queued":
            return self.base.queue_dir(priority)
        return {"processing": self.base.processing, "failed": self.base.failed, "done": self.base.done}[state]

    @staticmethod
    def _names(directory: Path, suffix: str) -> list[str]:
        """Job ids of visible `*<suffix>` entries in `directory` (temp files start with '.')."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix) and not n.startswith("."))

    def locate(self, job_id: str) -> Path | None:
        """The folder holding `<job_id>.jsonl`, or None."""
        for directory in self.base.state_dirs():
            if os.path.lexists(directory / (job_id + DATA_SUFFIX)):
                return directory
        return None

    def data_path(self, job: JobRecord | str) -> Path:
        """Where the job's data file is now (raises when it is nowhere)."""
        job_id = job if isinstance(job, str) else job.job_id
        directory = self.locate(job_id)
        if directory is None:
            raise TrainerdError(
                f"data file of job {job_id} is in none of the queue folders",
                hint="run the daemon's recovery (it runs at every start) and look in queue/failed/",
            )
        return directory / (job_id + DATA_SUFFIX)

    def get(self, job_id: str) -> JobRecord | None:
        """The record of a queued, processing or done job (failed jobs: see `list_failed`)."""
        directory = self.locate(job_id)
        if directory is None or directory == self.base.failed:
            return None
        try:
            return read_record(directory / (job_id + RECORD_SUFFIX))
        except TrainerdError:
            return None

    def known_job_ids(self) -> set[str]:
        """Every id in use anywhere (queue folders and runs/), so a new id never reuses one."""
        ids: set[str] = set()
        for directory in self.base.state_dirs():
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(directory):
                    job_id = _job_id_of(name)
                    if job_id and not name.startswith("."):
                        ids.add(job_id)
        with contextlib.suppress(FileNotFoundError):
            ids.update(os.listdir(self.base.runs))
        return ids

    # --- entering the queue ----------------------------------------------------------------
    def accept(
        self,
        src_path: str | Path,
        *,
        priority: str,
        original_name: str | None = None,
        source: JobSource = "inbox",
        meta: dict[str, Any] | None = None,
        sidecar: Path | None = None,
        copy: bool = False,
        submitted_at: float | None = None,
        notes: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Queue a data file as a new job under a fresh id; returns its record.

        The file is moved (renamed; copied then removed across filesystems), or copied with
        `copy=True` so the caller's file stays. The record is written only once the data file is
        in place. A consumed inbox `sidecar` is removed last: its contents live on in `meta`.
        """
        src = Path(src_path)
        level = parse_priority(priority)
        name = original_name or src.name
        self._check_source(src, follow=copy)
        job_id = new_job_id(name, self.known_job_ids())
        dest_dir = self.base.queue_dir(level)
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / (job_id + DATA_SUFFIX)
        self._bring_in(src, dest, copy=copy)
        record = JobRecord(
            job_id=job_id,
            original_name=name,
            priority=level,
            submitted_at=time.time() if submitted_at is None else submitted_at,
            source=source,
            state="queued",
            size=dest.stat().st_size,
            sha256=sha256_file(dest),
            meta=dict(meta or {}),
            notes=dict(notes or {}),
        )
        atomic_write_json(dest_dir / (job_id + RECORD_SUFFIX), record.to_dict())
        if sidecar is not None and not copy and os.path.lexists(sidecar):
            _unlink(sidecar)
        log.info("queued %s as job %s (priority %s)", name, job_id, level)
        return record

    def reject(
        self,
        src_path: str | Path,
        *,
        original_name: str | None = None,
        reason: str,
        hint: str | None = None,
        problems: list[Any] | None = None,
        sidecar: Path | None = None,
        source: JobSource = "inbox",
        priority: str | None = None,
        stage: str = "gate",
        copy: bool = False,
    ) -> Path:
        """Put a file the gate refused into failed/ with `<id>.error.json`; returns the data file's new path.

        Symlinks and other odd entries are moved as they are (the link, never its target).
        A sidecar goes along as `<id>.meta.json`, so failed/ holds everything the user dropped.
        """
        src = Path(src_path)
        name = original_name or src.name
        if not os.path.lexists(src):
            raise TrainerdError(f"cannot reject {src}: it does not exist", hint="it was moved or deleted meanwhile")
        job_id = new_job_id(name, self.known_job_ids())
        self.base.failed.mkdir(parents=True, exist_ok=True)
        dest = self.base.failed / (job_id + DATA_SUFFIX)
        if copy:
            self._check_source(src, follow=True)
            _copy_file(src, dest)
        else:
            self._bring_in(src, dest, copy=False, any_kind=True)
        now = time.time()
        error = {
            "job_id": job_id,
            "original_name": name,
            "reason": reason,
            "hint": hint or _retry_hint(self.base, job_id),
            "problems": [_problem_dict(p) for p in (problems or [])],
            "attempts": 0,
            "errors": [],
            "stage": stage,
            "source": source,
            "priority": priority,
            "time": _now_iso(now),
            "time_epoch": now,
        }
        atomic_write_json(self.base.failed / (job_id + ERROR_SUFFIX), error)
        if sidecar is not None and not copy and os.path.lexists(sidecar):
            _move_file(sidecar, self.base.failed / (job_id + META_SUFFIX))
        log.warning("rejected %s as job %s: %s", name, job_id, reason)
        return dest

    @staticmethod
    def _check_source(src: Path, *, follow: bool) -> None:
        try:
            st = src.stat() if follow else os.lstat(src)
        except FileNotFoundError as exc:
            raise TrainerdError(f"{src} does not exist", hint="check the path") from exc
        if stat.S_ISLNK(st.st_mode):
            raise TrainerdError(f"{src} is a symbolic link", hint="queue the file itself, not a link to it")
        if not stat.S_ISREG(st.st_mode):
            raise TrainerdError(f"{src} is not a regular file", hint="queue a plain JSONL file")

    @staticmethod
    def _bring_in(src: Path, dest: Path, *, copy: bool, any_kind: bool = False) -> None:
        """Move (or copy) into the queue; across filesystems a move is a durable copy, then removal."""
        if copy:
            _copy_file(src, dest)
            return
        try:
            _move_file(src, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV or (any_kind and not src.is_file()):
                raise
            _copy_file(src, dest)
            _unlink(src)

    # --- reading the queue -----------------------------------------------------------------
    def _records_in(self, directory: Path) -> list[JobRecord]:
        """Readable records whose data file is present; damaged ones are logged and left for recover()."""
        records: list[JobRecord] = []
        for job_id in self._names(directory, RECORD_SUFFIX):
            if not os.path.lexists(directory / (job_id + DATA_SUFFIX)):
                continue
            try:
                records.append(read_record(directory / (job_id + RECORD_SUFFIX)))
            except TrainerdError as exc:
                log.warning("skipping job %s: %s", job_id, exc.message)
        return records

    def list_queued(self) -> list[JobRecord]:
        """Waiting jobs in the order they will run: high > normal > low, oldest first (ties by id)."""
        ordered: list[JobRecord] = []
        for _, directory in self._queued_dirs():
            ordered.extend(sorted(self._records_in(directory), key=lambda r: (r.submitted_at, r.job_id)))
        return ordered

    def next_job(self) -> JobRecord | None:
        """The job to run next, or None when the queue is empty."""
        queued = self.list_queued()
        return queued[0] if queued else None

    def processing(self) -> JobRecord | None:
        """The job in processing/ (after a crash: the one that was running), or None."""
        records = sorted(self._records_in(self.base.processing), key=lambda r: (r.started_at or 0.0, r.job_id))
        if len(records) > 1:
            log.warning("%d jobs in processing/ (expected one): %s", len(records), [r.job_id for r in records])
        return records[0] if records else None

    def list_done(self) -> list[JobRecord]:
        """Finished jobs, oldest first."""
        return sorted(self._records_in(self.base.done), key=lambda r: (r.finished_at or 0.0, r.job_id))

    def list_failed(self) -> list[dict[str, Any]]:
        """The error files in failed/ (oldest first), each with `data_file`; a data file without one is listed too."""
        entries: list[dict[str, Any]] = []
        failed = self.base.failed
        with_error = set(self._names(failed, ERROR_SUFFIX))
        for job_id in sorted(with_error | set(self._names(failed, DATA_SUFFIX))):
            path = failed / (job_id + ERROR_SUFFIX)
            entry: dict[str, Any]
            if job_id in with_error:
                try:
                    loaded = read_json(path)
                    entry = loaded if isinstance(loaded, dict) else {"reason": "error file is not a JSON object"}
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                    entry = {"reason": f"error file {path.name} is unreadable: {exc}"}
            else:
                entry = {"reason": "no error file (the daemon's recovery writes one)"}
            entry.setdefault("job_id", job_id)
            data = failed / (job_id + DATA_SUFFIX)
            entry["data_file"] = str(data) if os.path.lexists(data) else None
            entry["error_file"] = str(path) if job_id in with_error else None
            entries.append(entry)
        return entries

    def counts(self) -> dict[str, int]:
        """Data files per folder: high, normal, low, processing, failed, done."""
        counts: dict[str, int] = {p: len(self._names(d, DATA_SUFFIX)) for p, d in self._queued_dirs()}
        counts["processing"] = len(self._names(self.base.processing, DATA_SUFFIX))
        counts["failed"] = len(self._names(self.base.failed, DATA_SUFFIX))
        counts["done"] = len(self._names(self.base.done, DATA_SUFFIX))
        return counts

    # --- moving jobs -----------------------------------------------------------------------
    def _relocate(self, job: JobRecord, state: JobState, priority: Priority, error: dict[str, Any] | None) -> None:
        """Move the job's data file to the folder of (state, priority), then its record; `job` is updated.

        Data first, record after, old record removed last: at every instant the data file is in
        one folder and a record for it exists somewhere, which is what `recover()` repairs from.
        """
        src_dir = self.locate(job.job_id)
        if src_dir is None:
            raise TrainerdError(
                f"data file of job {job.job_id} is in none of the queue folders",
                hint="run the daemon's recovery (it runs at every start) and look in queue/failed/",
            )
        dest_dir = self._dir_of(state, priority)
        dest_dir.mkdir(parents=True, exist_ok=True)
        if src_dir != dest_dir:
            _move_file(src_dir / (job.job_id + DATA_SUFFIX), dest_dir / (job.job_id + DATA_SUFFIX))
        job.state = state
        job.priority = priority
        if state == "failed":
            error = dict(error or {})
            if "job" in error:
                error["job"] = job.to_dict()  # the record as it ends, state included
            atomic_write_json(dest_dir / (job.job_id + ERROR_SUFFIX), error)
            _unlink(src_dir / (job.job_id + RECORD_SUFFIX))
            _unlink(dest_dir / (job.job_id + RECORD_SUFFIX))
        else:
            atomic_write_json(dest_dir / (job.job_id + RECORD_SUFFIX), job.to_dict())
            if src_dir != dest_dir:
                _unlink(src_dir / (job.job_id + RECORD_SUFFIX))

    def _error_file(self, job: JobRecord, reason: str, hint: str, stage: str) -> dict[str, Any]:
        now = time.time()
        return {
            "job_id": job.job_id,
            "original_name": job.original_name,
            "reason": reason,
            "hint": hint,
            "problems": [],
            "attempts": job.attempts,
            "errors": list(job.errors),
            "stage": stage,
            "source": job.source,
            "priority": job.priority,
            "time": _now_iso(now),
            "time_epoch": now,
            "job": job.to_dict(),
        }

    def start(self, job: JobRecord) -> JobRecord:
        """Move a queued job into processing/; refused while another job is there."""
        busy = [j for j in self._names(self.base.processing, DATA_SUFFIX) if j != job.job_id]
        if busy:
            raise TrainerdError(
                f"cannot start job {job.job_id}: job {busy[0]} is still in {self.base.processing}",
                hint="finish, retry or skip that job first (the daemon's recovery handles it after a crash)",
            )
        if self.locate(job.job_id) == self.base.processing:
            job.state = "processing"
            return job
        job.started_at = time.time()
        self._relocate(job, "processing", job.priority, None)
        log.info("started job %s (%s)", job.job_id, job.original_name)
        return job

    def save(self, job: JobRecord) -> None:
        """Rewrite the record where the job is now (e.g. after adding notes); failed jobs have error files."""
        directory = self.locate(job.job_id)
        if directory is None or directory == self.base.failed:
            raise TrainerdError(
                f"cannot save job {job.job_id}: no queued, processing or done data file",
                hint="run the daemon's recovery and look in queue/failed/",
            )
        job.state, dir_priority = self._state_of(directory)
        job.priority = dir_priority or job.priority
        atomic_write_json(directory / (job.job_id + RECORD_SUFFIX), job.to_dict())

    def retry_or_fail(self, job: JobRecord, error: dict[str, Any], max_retries: int) -> Literal["requeued", "failed"]:
        """Record a failed attempt; requeue in its priority while retries remain, else move to failed/.

        `max_retries` counts retries after the first attempt: 2 means up to 3 attempts in all.
        A requeued job keeps its submit time, so it stays at the front of its priority.
        """
        now = time.time()
        entry = {"attempt": job.attempts + 1, "time": _now_iso(now), "time_epoch": now, **error}
        job.attempts += 1
        job.errors.append(entry)
        if job.attempts <= max_retries:
            self._relocate(job, "queued", job.priority, None)
            log.warning("job %s failed (attempt %d of %d); requeued", job.job_id, job.attempts, max_retries + 1)
            return "requeued"
        last = str(error.get("message") or error.get("reason") or error.get("error") or "unknown error")
        reason = f"training failed {job.attempts} time(s); last error: {last}"
        hint = str(error.get("hint") or _retry_hint(self.base, job.job_id))
        job.finished_at = now
        self._relocate(job, "failed", job.priority, self._error_file(job, reason, hint, "train"))
        log.error("job %s moved to failed/: %s", job.job_id, reason)
        return "failed"

    def finish(self, job: JobRecord, outcome: dict[str, Any]) -> JobRecord:
        """Move a trained job to done/ with its outcome (version, steps, losses, ...)."""
        job.outcome = dict(outcome)
        job.finished_at = time.time()
        self._relocate(job, "done", job.priority, None)
        log.info("job %s done", job.job_id)
        return job

    def skip(self, job: JobRecord, to: Literal["low", "failed"], reason: str) -> JobRecord:
        """Abandon a job without training it: back to queue/low/ or into failed/."""
        if to not in ("low", "failed"):
            raise TrainerdError(f"skip target must be 'low' or 'failed', not {to!r}", hint="use low or failed")
        now = time.time()
        skips = job.notes.setdefault("skips", [])
        skips.append({"time": _now_iso(now), "reason": reason, "from_priority": job.priority, "to": to})
        if to == "low":
            self._relocate(job, "queued", "low", None)
            log.warning("job %s skipped to low priority: %s", job.job_id, reason)
        else:
            job.finished_at = now
            error = self._error_file(job, f"skipped: {reason}", _retry_hint(self.base, job.job_id), "skip")
            self._relocate(job, "failed", job.priority, error)
            log.warning("job %s skipped to failed/: %s", job.job_id, reason)
        return job

    # --- crash repair ----------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Make the folders consistent after a crash; returns (and logs) each repair. Never deletes a .jsonl.

        - temp files left by an interrupted atomic write are removed;
        - a data file without a record is adopted (priority from its folder, normal elsewhere);
        - a record left behind by an interrupted move follows its data file (state fixed);
        - a data file in failed/ without an error file gets one; records there are folded into it;
        - a record whose data file exists nowhere is removed (its contents are logged).
        """
        actions: list[str] = []

        def note(message: str) -> None:
            log.warning("recover: %s", message)
            actions.append(message)

        data_dirs: dict[str, list[Path]] = {}
        record_files: dict[str, list[Path]] = {}
        error_ids: set[str] = set()
        for directory in self.base.state_dirs():
            directory.mkdir(parents=True, exist_ok=True)
            for name in sorted(os.listdir(directory)):
                path = directory / name
                if name.startswith("."):
                    if name.endswith(".tmp") and path.is_file() and not path.is_symlink():
                        _unlink(path)
                        note(f"removed leftover temp file {path}")
                    continue
                if name.endswith(DATA_SUFFIX):
                    data_dirs.setdefault(name[: -len(DATA_SUFFIX)], []).append(directory)
                elif name.endswith(RECORD_SUFFIX):
                    record_files.setdefault(name[: -len(RECORD_SUFFIX)], []).append(path)
                elif name.endswith(ERROR_SUFFIX) and directory == self.base.failed:
                    error_ids.add(name[: -len(ERROR_SUFFIX)])

        for job_id, dirs in sorted(data_dirs.items()):
            if len(dirs) > 1:
                note(f"job {job_id} has data files in {', '.join(map(str, dirs))}; left as they are, check by hand")
                continue
            self._recover_job(job_id, dirs[0], record_files.get(job_id, []), job_id in error_ids, note)

        for job_id, paths in sorted(record_files.items()):
            if job_id in data_dirs:
                continue
            for path in paths:
                try:
                    content = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    content = "<unreadable>"
                _unlink(path)
                note(f"removed record {path}: its data file exists nowhere (record was: {content.strip()})")

        if len(self._names(self.base.processing, DATA_SUFFIX)) > 1:
            note(f"more than one job in {self.base.processing}; the oldest runs first, check the others")
        return actions

    def _recover_job(
        self, job_id: str, home: Path, records: list[Path], has_error: bool, note: Callable[[str], None]
    ) -> None:
        """Repair one job whose data file sits in `home`."""
        state, dir_priority = self._state_of(home)
        if state == "failed" and has_error and not records:
            return  # the normal shape of a failed job
        record: JobRecord | None = None
        # Prefer the record next to the data; else the newest one an interrupted move left behind.
        for path in sorted(records, key=lambda p: (p.parent != home, -_mtime(p))):
            try:
                record = read_record(path)
                break
            except TrainerdError as exc:
                aside = path.with_name(job_id + CORRUPT_SUFFIX)
                if not os.path.lexists(aside):
                    _move_file(path, aside)
                note(f"damaged record {path} set aside as {aside.name}: {exc.message}")
        records = [p for p in records if p.exists()]
        data = home / (job_id + DATA_SUFFIX)
        if record is None:
            st = os.lstat(data)
            record = JobRecord(
                job_id=job_id,
                original_name=_original_name_from_id(job_id),
                priority=dir_priority or "normal",
                submitted_at=st.st_mtime,
                source="recovered",
                state=state,
                size=st.st_size,
                sha256=sha256_file(data) if data.is_file() else None,
            )
            if state != "failed":
                note(f"adopted orphan data file {data} as job {job_id} ({record.priority} priority)")
        changed = record.state != state or (dir_priority is not None and record.priority != dir_priority)
        record.state = state
        record.priority = dir_priority or record.priority
        if state == "failed":
            if not has_error:
                reason = (
                    record.errors[-1].get("message", "failed") if record.errors else "stopped while being moved here"
                )
                hint = _retry_hint(self.base, job_id)
                error = self._error_file(record, f"recovered after a crash: {reason}", hint, "recover")
                atomic_write_json(home / (job_id + ERROR_SUFFIX), error)
                note(f"wrote missing error file for {data}")
            for path in records:
                _unlink(path)
                note(f"folded record {path} into failed/{job_id}{ERROR_SUFFIX}")
            return
        target = home / (job_id + RECORD_SUFFIX)
        if changed or target not in records:
            atomic_write_json(target, record.to_dict())
            if target not in records and records:
                note(f"moved record of job {job_id} next to its data file in {home}")
        for path in records:
            if path != target:
                _unlink(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
