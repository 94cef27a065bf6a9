"""Verified copies of model versions under snapshots/, each with a MANIFEST of every file's sha256.

Why: a version dir is the only copy of weeks of training. A snapshot is an independent full copy
whose MANIFEST lets `verify_snapshot` catch a single changed byte, a missing or an extra file, so a
rollback never restores damaged bytes. Snapshots are built under a hidden temp name and renamed into
place once verified; restoring one adds a new version and never edits an existing one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.store import VERSION_FILE, ModelStore, VersionInfo, copy_file_synced
from trainerd.errors import ConfigError, TrainerdError
from trainerd.files import atomic_write_json, fsync_dir, read_json, sha256_file

log = logging.getLogger("trainerd.daemon")

MANIFEST_FILE = "MANIFEST.json"
MANIFEST_FORMAT = 1
SnapshotReason = Literal["daily", "manual"]
SNAPSHOT_REASONS: tuple[str, ...] = ("daily", "manual")
_NAME_FORMAT = "%Y%m%d-%H%M%S"
_SNAPSHOT_NAME = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?$")
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Carried from the snapshot's VERSION.json into the restored version, so its history stays readable.
_CARRIED_META = ("job_id", "source_file", "global_step", "losses")


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot dir; fields from its MANIFEST are None when the manifest is unreadable."""

    name: str
    path: Path
    created_at: str | None
    reason: str | None
    version: str | None
    kind: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for CLI output and status."""
        return {**asdict(self), "path": str(self.path)}


@dataclass
class VerifyReport:
    """What `verify_snapshot` found; `ok` only when the manifest is sound and every file matches."""

    path: str
    ok: bool = False
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    manifest_error: str | None = None
    checked: int = 0

    def problems(self) -> list[str]:
        """One readable line per problem, for error messages and `trainerd snapshot verify`."""
        lines = [f"manifest: {self.manifest_error}"] if self.manifest_error else []
        lines += [f"changed: {rel}" for rel in self.changed]
        lines += [f"missing: {rel}" for rel in self.missing]
        lines += [f"extra: {rel}" for rel in self.extra]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `trainerd snapshot verify --json`."""
        return asdict(self)


BaseRoot = Path | str | BaseDir


def snapshots_dir(root: BaseRoot) -> Path:
    """Where the snapshots of base dir `root` live."""
    return (root if isinstance(root, BaseDir) else BaseDir(Path(root))).snapshots


def create_snapshot(
    root: BaseRoot, version: VersionInfo, *, reason: SnapshotReason = "manual", now: datetime | None = None
) -> SnapshotInfo:
    """Copy `version` into snapshots/<YYYYmmdd-HHMMSS> with a MANIFEST, verified before it appears.

    The version's own VERSION.json checksums (when it has them) are compared while copying, so a
    version damaged on disk is refused instead of being preserved as if it were good.
    """
    if reason not in SNAPSHOT_REASONS:
        raise TrainerdError(f"unknown snapshot reason {reason!r}", hint=f"use one of: {', '.join(SNAPSHOT_REASONS)}")
    moment = now or datetime.now()
    folder = snapshots_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    name = _unique_name(folder, moment.strftime(_NAME_FORMAT))
    tmp = folder / f".{name}.tmp"
    final = folder / name
    stored = _stored_digests(version)
    try:
        tmp.mkdir()
        files: dict[str, dict[str, Any]] = {}
        for rel in _walk_files(version.path):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = copy_file_synced(version.path / rel, target)
            expected = stored.get(rel)
            if expected is not None and expected != digest:
                raise TrainerdError(
                    f"model version {version.name} is damaged: {rel} no longer matches the checksum "
                    f"in its {VERSION_FILE}",
                    hint="snapshot another version, or roll back to a good one (`trainerd snapshot list`)",
                )
            files[rel] = {"sha256": digest, "size": size}
        for sub in {Path(rel).parent for rel in files if "/" in rel}:
            fsync_dir(tmp / sub)
        manifest = {
            "format": MANIFEST_FORMAT,
            "snapshot": name,
            "version": version.name,
            "kind": version.kind,
            "created_at": moment.astimezone().isoformat(timespec="seconds"),
            "reason": reason,
            "files": files,
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        report = verify_snapshot(tmp)
        if not report.ok:
            raise TrainerdError(
                f"the new snapshot of {version.name} did not verify: {'; '.join(report.problems())}",
                hint="check the disk under the base dir; no snapshot was kept",
            )
        fsync_dir(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(folder)
    log.info("snapshot %s created from model version %s (%s, %d files)", name, version.name, reason, len(files))
    return _load(final)


def verify_snapshot(path: Path | str) -> VerifyReport:
    """Compare every file of a snapshot with its MANIFEST (size and sha256); never raises for bad data."""
    root = Path(path)
    report = VerifyReport(path=str(root))
    if not root.is_dir():
        report.manifest_error = f"{root} is not a directory"
        return report
    expected, error = _read_manifest_files(root / MANIFEST_FILE)
    if error is not None:
        report.manifest_error = error
        return report
    on_disk = set(_walk_files(root, include_links=True))
    for rel, entry in sorted(expected.items()):
        file_path = root / rel
        if rel not in on_disk:
            report.missing.append(rel)
        elif not _matches(file_path, entry):
            report.changed.append(rel)
        report.checked += 1
    report.extra = sorted(on_disk - set(expected))
    report.ok = not (report.changed or report.missing or report.extra)
    return report


def list_snapshots(root: BaseRoot) -> list[SnapshotInfo]:
    """Every snapshot, oldest first (by the date in its name; -2, -3 ... after the plain name)."""
    folder = snapshots_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _SNAPSHOT_NAME.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append(((match.group(1), int(match.group(2) or 1)), entry))
    return [_load(path) for _, path in sorted(found)]


def resolve_snapshot(root: BaseRoot, name: str) -> SnapshotInfo:
    """The snapshot called `name` (a name under snapshots/); TrainerdError listing the snapshots otherwise."""
    for snapshot in list_snapshots(root):
        if snapshot.name == name.strip().rstrip("/").split("/")[-1]:
            return snapshot
    names = [s.name for s in list_snapshots(root)]
    raise TrainerdError(
        f"no snapshot {name!r} in {snapshots_dir(root)}",
        hint=f"use one of: {', '.join(names)}" if names else "create one with `trainerd snapshot create`",
    )


def snapshot_retention(root: BaseRoot, keep: int) -> list[str]:
    """Remove the oldest snapshots beyond the newest `keep`; returns the removed names, oldest first."""
    if keep < 1:
        raise TrainerdError(f"cannot keep {keep} snapshots", hint="daemon.keep_snapshots must be at least 1")
    snapshots = list_snapshots(root)
    folder = snapshots_dir(root)
    removed: list[str] = []
    for snapshot in snapshots[: max(0, len(snapshots) - keep)]:
        doomed = folder / f".{snapshot.name}.removing"
        os.rename(snapshot.path, doomed)  # a crash never leaves a half snapshot under a real name
        fsync_dir(folder)
        shutil.rmtree(doomed)
        removed.append(snapshot.name)
        log.info(
            "snapshot retention: removed snapshot %s (of version %s); keeping the newest %d",
            snapshot.name,
            snapshot.version or "?",
            keep,
        )
    return removed


def recover_snapshots(root: BaseRoot) -> list[str]:
    """Remove half-built or half-removed snapshots a crash left behind; one line per repair."""
    folder = snapshots_dir(root)
    actions: list[str] = []
    if not folder.is_dir():
        return actions
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") and entry.name.endswith((".tmp", ".removing")) and entry.is_dir():
            shutil.rmtree(entry)
            actions.append(f"removed unfinished snapshot {entry}")
    for action in actions:
        log.warning("recover: %s", action)
    return actions


def parse_time_of_day(value: str) -> tuple[int, int]:
    """'HH:MM' -> (hour, minute); ConfigError naming the key otherwise."""
    match = _TIME_OF_DAY.match(value.strip())
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(
            f"daemon.snapshot_time {value!r} is not a time of day (HH:MM)",
            hint='use e.g. "03:00", or null to turn daily snapshots off',
        )
    return int(match.group(1)), int(match.group(2))


def due_daily_snapshot(root: BaseRoot, snapshot_time: str | None, now: datetime | None = None) -> bool:
    """True once today's snapshot time has passed and no daily snapshot was taken today (local time)."""
    if snapshot_time is None:
        return False
    hour, minute = parse_time_of_day(snapshot_time)
    moment = now or datetime.now()
    if (moment.hour, moment.minute) < (hour, minute):
        return False
    today = moment.strftime("%Y%m%d")
    return not any(s.name.startswith(today) and s.reason == "daily" for s in list_snapshots(root))


def restore_snapshot(root: BaseRoot, snapshot: SnapshotInfo | str, store: ModelStore) -> VersionInfo:
    """Verify a snapshot, add its model as a NEW version and switch to it (for `rollback --to SNAPSHOT`)."""
    info = snapshot if isinstance(snapshot, SnapshotInfo) else resolve_snapshot(root, snapshot)
    report = verify_snapshot(info.path)
    if not report.ok:
        raise TrainerdError(
            f"snapshot {info.name} failed verification, not restored: {'; '.join(report.problems())}",
            hint="pick another snapshot (`trainerd snapshot list`) or a version; the current model was not changed",
        )
    expected, _ = _read_manifest_files(info.path / MANIFEST_FILE)
    meta: dict[str, Any] = {"restored_from_snapshot": info.name, "snapshot_of_version": info.version}
    with contextlib.suppress(OSError, ValueError):
        original = read_json(info.path / VERSION_FILE)
        if isinstance(original, dict):
            meta.update({key: original[key] for key in _CARRIED_META if key in original})
    version = store.add_version(
        info.path,
        meta,
        reason="restore",
        expected_sha256={rel: entry["sha256"] for rel, entry in expected.items()},
    )
    log.info("restored snapshot %s (of %s) as new model version %s", info.name, info.version or "?", version.name)
    return version


def _unique_name(folder: Path, base: str) -> str:
    name, n = base, 2
    while (folder / name).exists() or (folder / f".{name}.tmp").exists():
        name, n = f"{base}-{n}", n + 1
    return name


def _walk_files(root: Path, include_links: bool = False) -> list[str]:
    """Relative posix paths of every file under `root` except the MANIFEST, sorted."""
    found = []
    for dirpath, dirs, names in os.walk(root):
        # os.walk lists a symlink to a dir among the dirs; a snapshot must not hold one unnoticed.
        links = [d for d in dirs if (Path(dirpath) / d).is_symlink()] if include_links else []
        for file_name in [*names, *links]:
            path = Path(dirpath) / file_name
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST_FILE or (path.is_symlink() and not include_links):
                continue
            found.append(rel)
    return sorted(found)


def _read_manifest_files(path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The manifest's file table, or an error saying why it cannot be trusted."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, f"{MANIFEST_FILE} is missing"
    except UnicodeDecodeError:
        return {}, f"{MANIFEST_FILE} is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return {}, f"{MANIFEST_FILE} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    except OSError as exc:
        return {}, f"cannot read {MANIFEST_FILE}: {exc.strerror or exc}"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return {}, f"{MANIFEST_FILE} has no 'files' table"
    for rel, entry in files.items():
        parts = Path(rel).parts
        if not rel or os.path.isabs(rel) or ".." in parts or rel == MANIFEST_FILE:
            return {}, f"{MANIFEST_FILE} lists an invalid path {rel!r}"
        valid_entry = (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and _SHA256.match(entry["sha256"]) is not None
            and isinstance(entry.get("size"), int)
        )
        if not valid_entry:
            return {}, f"{MANIFEST_FILE} entry for {rel!r} needs a sha256 (64 hex digits) and a size"
    return files, None


def _matches(path: Path, entry: dict[str, Any]) -> bool:
    """Same size and sha256 as recorded; a symlink never matches (a snapshot holds real files)."""
    if path.is_symlink() or not path.is_file():
        return False
    return path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]


def _stored_digests(version: VersionInfo) -> dict[str, str]:
    files = version.meta.get("files")
    if not isinstance(files, dict):
        return {}
    return {
        rel: entry["sha256"]
        for rel, entry in files.items()
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
    }


def _load(path: Path) -> SnapshotInfo:
    manifest: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = read_json(path / MANIFEST_FILE)
        if isinstance(data, dict):
            manifest = data

    def text(key: str) -> str | None:
        value = manifest.get(key)
        return value if isinstance(value, str) else None

    return SnapshotInfo(
        name=path.name,
        path=path,
        created_at=text("created_at"),
        reason=text("reason"),
        version=text("version"),
        kind=text("kind"),
    )
