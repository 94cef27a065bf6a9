"""The inbox: decide which dropped files are completely written and safe to take.

A file is taken only when its size and mtime (and those of its sidecar) stayed the same over
`stable_polls` consecutive polls, so a file still being copied in is left alone. Writers that
rename into place (`x.jsonl.tmp` -> `x.jsonl`) are never seen half-written: temp and hidden names
are ignored until renamed. The scanner only reads metadata and the small sidecar; it moves nothing,
so the daemon decides what happens to each ready or refused file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainerd.daemon.layout import DEFAULT_PRIORITY, BaseDir, Priority, parse_priority
from trainerd.errors import TrainerdError

log = logging.getLogger("trainerd.daemon.inbox")

DATA_SUFFIX = ".jsonl"
SIDECAR_SUFFIX = ".meta.json"
IGNORED_SUFFIXES = (".tmp", ".part")
SIDECAR_KEYS = frozenset({"priority"})
MAX_SIDECAR_BYTES = 64 * 1024
MAX_NAME_CHARS = 80
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InboxFile:
    """A data file that is completely written and may be gated and queued."""

    path: Path
    name: str
    priority: Priority
    size: int
    meta_path: Path | None = None  # the sidecar, if any (its contents are in `meta`)
    meta: dict[str, Any] = field(default_factory=dict)
    mtime_ns: int = 0


@dataclass(frozen=True)
class InboxRejection:
    """A file the daemon must not train on as it is; it goes to failed/ with `reason` and `hint`."""

    path: Path
    name: str
    reason: str
    hint: str
    meta_path: Path | None = None


@dataclass
class InboxPoll:
    """One look at the inbox: files ready to take, and files refused (both oldest first)."""

    ready: list[InboxFile] = field(default_factory=list)
    rejected: list[InboxRejection] = field(default_factory=list)


def sidecar_path(data_path: Path) -> Path:
    """NAME.jsonl -> NAME.jsonl.meta.json."""
    return data_path.with_name(data_path.name + SIDECAR_SUFFIX)


def is_ignored_name(name: str) -> bool:
    """Hidden and temp names are files still being written (or not meant for us)."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def is_data_name(name: str) -> bool:
    """Names the inbox takes: `*.jsonl`, not hidden, not a temp name."""
    return not is_ignored_name(name) and name.lower().endswith(DATA_SUFFIX)


def sanitize_name(name: str) -> str:
    """A file-name-safe, readable fragment: [A-Za-z0-9._-] only, at most 80 chars, never empty or hidden."""
    cleaned = _UNSAFE_CHARS.sub("_", name).lstrip(".-")
    cleaned = cleaned[:MAX_NAME_CHARS].rstrip(".")
    return cleaned or "file"


def _stem(name: str) -> str:
    return name[: -len(DATA_SUFFIX)] if name.lower().endswith(DATA_SUFFIX) else name


def new_job_id(name: str, existing: set[str], now: float | None = None) -> str:
    """`YYYYmmdd-HHMMSS-<stem>` (local time), with `-2`, `-3`, ... when that id is already taken.

    Readable in a listing, sortable by time, and unique, so a file dropped twice under the
    same name becomes two jobs instead of one overwriting the other.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    candidate = f"{stamp}-{sanitize_name(_stem(name))}"
    if candidate not in existing:
        return candidate
    n = 2
    while f"{candidate}-{n}" in existing:
        n += 1
    return f"{candidate}-{n}"


def read_sidecar(path: Path) -> tuple[Priority, dict[str, Any]]:
    """Read a NAME.jsonl.meta.json sidecar; any problem is a TrainerdError naming the file and key."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return DEFAULT_PRIORITY, {}
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise TrainerdError(
            f"sidecar {path.name} is not a regular file",
            hint="write the sidecar as a plain JSON file in the inbox (no symlink)",
        )
    if st.st_size > MAX_SIDECAR_BYTES:
        raise TrainerdError(
            f"sidecar {path.name} is {st.st_size} bytes (at most {MAX_SIDECAR_BYTES})",
            hint='a sidecar holds only settings such as {"priority": "high"}',
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainerdError(
            f"sidecar {path.name} is not valid JSON: {exc}",
            hint='write it as a JSON object, e.g. {"priority": "high"}',
        ) from exc
    if not isinstance(data, dict):
        raise TrainerdError(
            f"sidecar {path.name} must hold a JSON object, not {type(data).__name__}",
            hint='write it as a JSON object, e.g. {"priority": "high"}',
        )
    unknown = sorted(set(data) - SIDECAR_KEYS)
    if unknown:
        raise TrainerdError(
            f"sidecar {path.name}: unknown key(s) {', '.join(map(repr, unknown))}",
            hint=f"allowed keys: {', '.join(sorted(SIDECAR_KEYS))}",
        )
    priority = parse_priority(data["priority"], f"sidecar {path.name}") if "priority" in data else DEFAULT_PRIORITY
    return priority, data


class InboxScanner:
    """Polls inbox/ and remembers what it saw, so only files unchanged across polls come back ready."""

    def __init__(self, base: BaseDir, stable_polls: int = 2) -> None:
        if stable_polls < 1:
            raise ValueError("stable_polls must be at least 1")
        self.base = base
        self.stable_polls = stable_polls
        # name -> (signature, consecutive polls it was seen with that signature)
        self._seen: dict[str, tuple[tuple[int, ...], int]] = {}

    def poll(self) -> InboxPoll:
        """Look at the inbox once; returns ready files and refusals, each sorted oldest first."""
        result = InboxPoll()
        seen_now: dict[str, tuple[tuple[int, ...], int]] = {}
        ready: list[tuple[int, str, InboxFile]] = []
        rejected: list[tuple[int, str, InboxRejection]] = []
        try:
            entries = sorted(os.scandir(self.base.inbox), key=lambda e: e.name)
        except FileNotFoundError:
            self._seen = {}
            return result
        for entry in entries:
            if not is_data_name(entry.name):
                continue
            path = Path(entry.path)
            meta = sidecar_path(path)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            refusal = self._refusal(path, st)
            if refusal is not None:
                rejected.append((st.st_mtime_ns, entry.name, self._reject(path, *refusal, meta)))
                continue
            signature = (st.st_size, st.st_mtime_ns, *_sidecar_signature(meta))
            previous = self._seen.get(entry.name)
            count = previous[1] + 1 if previous is not None and previous[0] == signature else 1
            seen_now[entry.name] = (signature, count)
            if count < self.stable_polls:
                continue
            try:
                priority, meta_data = read_sidecar(meta)
            except TrainerdError as exc:
                rejected.append((st.st_mtime_ns, entry.name, self._reject(path, exc.message, exc.hint or "", meta)))
                continue
            item = InboxFile(
                path=path,
                name=entry.name,
                priority=priority,
                size=st.st_size,
                meta_path=meta if meta.exists() else None,
                meta=meta_data,
                mtime_ns=st.st_mtime_ns,
            )
            ready.append((st.st_mtime_ns, entry.name, item))
        self._seen = seen_now
        result.ready = [item for *_, item in sorted(ready, key=lambda r: (r[0], r[1]))]
        result.rejected = [item for *_, item in sorted(rejected, key=lambda r: (r[0], r[1]))]
        return result

    def _refusal(self, path: Path, st: os.stat_result) -> tuple[str, str] | None:
        """Reason and hint when the entry itself may never be read (symlink, not a file, outside root)."""
        if stat.S_ISLNK(st.st_mode):
            return (
                f"{path.name} is a symbolic link; the inbox takes only regular files",
                "copy the file into the inbox (cp, or write NAME.jsonl.tmp and rename it) instead of linking it",
            )
        if not stat.S_ISREG(st.st_mode):
            return (
                f"{path.name} is not a regular file",
                "drop plain JSONL files into the inbox (no folders, pipes or devices named *.jsonl)",
            )
        try:
            self.base.resolve_inside(path)
        except TrainerdError as exc:
            return exc.message, exc.hint or ""
        return None

    def _reject(self, path: Path, reason: str, hint: str, meta: Path) -> InboxRejection:
        log.info("inbox: refusing %s: %s", path.name, reason)
        meta_path = meta if os.path.lexists(meta) else None
        return InboxRejection(path=path, name=path.name, reason=reason, hint=hint, meta_path=meta_path)


def _sidecar_signature(meta: Path) -> tuple[int, ...]:
    """Size and mtime of the sidecar (or nothing), so a sidecar still being written delays the take."""
    try:
        st = os.lstat(meta)
    except FileNotFoundError:
        return ()
    return (st.st_size, st.st_mtime_ns)
