"""Immutable model versions under models/ and the `current_model` pointer that names the live one.

Why this shape: the daemon must survive a kill at any instant without `current_model` ever naming a
half-written model. A version is copied under a hidden temp name (`models/.v000007.tmp`), every file
fsynced, its VERSION.json written last, then renamed into place (a rename is atomic). Only then is
`current_model` switched, by creating a new symlink under a temp name and `os.replace`-ing it over the
old one. A crash therefore leaves the old pointer or the new one, each naming a complete dir, and at
worst a leftover temp that `recover()` removes. Versions are never edited after the rename; a
rollback switches the pointer, and a restore from a snapshot adds a new version.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainerd.daemon.layout import BaseDir
from trainerd.errors import ModelError, TrainerdError
from trainerd.files import atomic_write_json, fsync_dir, read_json, sha256_file
from trainerd.models.inspect import ADAPTER_CONFIG_FILE, ModelDirInfo, inspect_model_dir, looks_like_hub_id

log = logging.getLogger("trainerd.daemon")

VERSION_FILE = "VERSION.json"
HISTORY_FILE = ".history.json"
# Older switch records are dropped beyond this; previous() only needs the recent ones.
HISTORY_LIMIT = 500

_VERSION_NAME = re.compile(r"^v(\d{6,})$")
# Hidden names that are never versions: a copy in progress, or a version being removed by retention.
_UNFINISHED = re.compile(r"^\.v\d+\.(tmp|removing)$")
_CHUNK = 1 << 20

# What a version keeps of a model dir: config, weights, adapter, tokenizer, generation settings, chat
# template and custom model code. Everything else in a run dir (checkpoints/, metrics.jsonl, logs,
# result.json, progress.json, job.json) is job bookkeeping and stays behind.
MODEL_FILE_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-*.bin",
    "pytorch_model.bin.index.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "configuration_*.py",
    "modeling_*.py",
    "tokenization_*.py",
)
MODEL_SUBDIRS: tuple[str, ...] = ("additional_chat_templates",)
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class VersionInfo:
    """One stored version; `meta` is its VERSION.json (empty for a hand-made dir without one)."""

    name: str
    number: int
    path: Path
    created_at: str | None
    kind: str | None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for status, history and CLI output."""
        return {
            "name": self.name,
            "number": self.number,
            "path": str(self.path),
            "created_at": self.created_at,
            "kind": self.kind,
            "meta": self.meta,
        }


def version_name(number: int) -> str:
    """`7` -> `v000007`: zero-padded so names also sort right in a plain `ls`."""
    return f"v{number:06d}"


def version_number(name: str) -> int | None:
    """The number of a version dir name, or None for any other name."""
    match = _VERSION_NAME.match(name)
    return int(match.group(1)) if match else None


def model_files(model_dir: Path | str) -> list[str]:
    """Relative paths (posix) of the files in `model_dir` that make up the model itself, sorted."""
    root = Path(model_dir)
    selected: set[str] = set()
    for entry in root.iterdir():
        if entry.is_file() and any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in MODEL_FILE_PATTERNS):
            selected.add(entry.name)
    # Shards are whatever the index names, even when they do not follow the usual model-*.ext pattern.
    for index_name in _INDEX_FILES:
        index_path = root / index_name
        if index_path.is_file():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                weight_map = read_json(index_path).get("weight_map", {})
                for shard in set(weight_map.values()):
                    if isinstance(shard, str) and "/" not in shard and (root / shard).is_file():
                        selected.add(shard)
    for sub in MODEL_SUBDIRS:
        sub_root = root / sub
        if sub_root.is_dir() and not sub_root.is_symlink():
            for path in sub_root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    selected.add(path.relative_to(root).as_posix())
    return sorted(selected)


class ModelStore:
    """The versions under `models/` and the `current_model` symlink of one base dir."""

    def __init__(self, root: Path | str | BaseDir) -> None:
        self.layout = root if isinstance(root, BaseDir) else BaseDir(Path(root))
        self.root = self.layout.root
        self.models_dir = self.layout.models
        self.current_link = self.layout.current_model
        self.history_path = self.models_dir / HISTORY_FILE
        # A crash between creating the new link and os.replace leaves this name behind; recover() removes it.
        self._link_tmp_prefix = f".{self.current_link.name}."

    # -- reading -----------------------------------------------------------------------------

    def list_versions(self) -> list[VersionInfo]:
        """Every version dir, oldest first, ordered by number (v000010 after v000009).

        Other names (hand-made dirs, temp dirs, files) are ignored, and so are symlinks: a version
        is a real, immutable dir.
        """
        if not self.models_dir.is_dir():
            return []
        found = []
        for entry in self.models_dir.iterdir():
            number = version_number(entry.name)
            if number is not None and entry.is_dir() and not entry.is_symlink():
                found.append((number, entry))
        return [self._load(path, number) for number, path in sorted(found)]

    def resolve_version(self, name_or_number: str | int) -> VersionInfo:
        """The version named "v000003", "v3", "3" or 3; TrainerdError listing the versions otherwise."""
        text = str(name_or_number).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        if digits.isdigit():
            path = self.models_dir / version_name(int(digits))
            if path.is_dir() and not path.is_symlink():
                return self._load(path, int(digits))
        names = [v.name for v in self.list_versions()]
        raise TrainerdError(
            f"no model version {text!r} in {self.models_dir}",
            hint=f"use one of: {', '.join(names)}"
            if names
            else "the base dir has no versions yet; run `trainerd init`",
        )

    def current(self) -> VersionInfo | None:
        """The version `current_model` points at; None before the first version exists."""
        link = self.current_link
        if not link.is_symlink():
            if link.exists():
                raise TrainerdError(
                    f"{link} is not a symlink to a version in {self.models_dir}",
                    hint=f"move it away, then point {link.name} at a version with `trainerd rollback --to VERSION`",
                )
            return None
        target = os.readlink(link)
        path = Path(target) if os.path.isabs(target) else link.parent / target
        number = version_number(path.name)
        if number is None or not path.is_dir() or not _same_dir(path.parent, self.models_dir):
            raise TrainerdError(
                f"{link} points at {target}, which is not a version in {self.models_dir}",
                hint="start the daemon (it repairs the pointer) or run `trainerd rollback --to VERSION`",
            )
        return self._load(path, number)

    def previous(self) -> VersionInfo | None:
        """The version `current_model` was switched from (None after init or when it was removed)."""
        current = self.current()
        if current is None:
            return None
        name: str | None = None
        for entry in reversed(self.history()):
            if entry.get("to") == current.name:
                name = entry.get("from")
                break
        else:
            # No record (older store, or a crash before the record was written): the parent is the best guess.
            parent = current.meta.get("parent")
            name = parent if isinstance(parent, str) else None
        if not name:
            return None
        try:
            return self.resolve_version(name)
        except TrainerdError:
            return None

    def history(self) -> list[dict[str, Any]]:
        """Switches of `current_model`, oldest first: {from, to, at, reason}."""
        switches = self._read_history().get("switches")
        return [entry for entry in switches if isinstance(entry, dict)] if isinstance(switches, list) else []

    # -- adding versions ----------------------------------------------------------------------

    def init_from(self, model_dir: Path | str, meta: Mapping[str, Any] | None = None) -> VersionInfo:
        """Create v000001 from a local full model or LoRA adapter dir and make it current.

        Hub ids are resolved to a local dir by the caller: the store never downloads.
        """
        source = Path(model_dir).expanduser()
        if not source.is_dir():
            if looks_like_hub_id(str(model_dir)):
                hint = f"download it first (e.g. `hf download {model_dir} --local-dir DIR`) and pass the local dir"
            else:
                hint = (
                    "pass a local model dir (config.json + weights) or LoRA adapter dir (adapter_config.json + weights)"
                )
            raise ModelError(f"{model_dir} is not a local model dir", hint=hint)
        if self.list_versions() or self.current_link.is_symlink():
            raise TrainerdError(
                f"{self.models_dir} already holds model versions; init only starts an empty base dir",
                hint="use a new base dir, or `trainerd rollback --to VERSION` to choose a stored version",
            )
        record = {"source_model": str(source.resolve()), **(meta or {})}
        return self.add_version(source, record, reason="init")

    def promote(self, staged_model_dir: Path | str, meta: Mapping[str, Any]) -> VersionInfo:
        """Store a job's output (its model files only) as the next version and make it current.

        `meta` goes into VERSION.json; the daemon passes job_id, source_file, global_step and losses.
        """
        return self.add_version(staged_model_dir, meta, reason="promote")

    def add_version(
        self,
        source_dir: Path | str,
        meta: Mapping[str, Any],
        *,
        reason: str,
        expected_sha256: Mapping[str, str] | None = None,
        switch: bool = True,
    ) -> VersionInfo:
        """Copy the model files of `source_dir` into a new version, crash-safely, and (by default) switch to it.

        `expected_sha256` (relative path -> hex) makes the copy fail when a file read differs, so a
        restore from a verified snapshot cannot store bytes that changed after the check.
        """
        source = Path(source_dir)
        info = inspect_model_dir(source)
        if not info.valid:
            raise ModelError(
                f"cannot store {source} as a model version: {info.reason}",
                hint="only a complete model dir (config.json + weights) or LoRA adapter dir can become a version",
            )
        _check_adapter_base(source, info)
        files = model_files(source)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        parent = self._current_name()
        number = self._next_number()
        name = version_name(number)
        final = self.models_dir / name
        tmp = self.models_dir / f".{name}.tmp"
        if tmp.exists():  # an unfinished copy of a crashed run with the same number
            shutil.rmtree(tmp)
        try:
            tmp.mkdir()
            digests = self._copy_model(source, tmp, files, expected_sha256)
            stored = inspect_model_dir(tmp)
            if not stored.valid:
                raise ModelError(
                    f"the copy of {source} in the version store is not a complete model: {stored.reason}",
                    hint="report this: a file the model needs is not in the store's list of model files",
                )
            record = {
                **meta,
                "version": name,
                "number": number,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "parent": parent,
                "reason": reason,
                "kind": stored.kind,
                "base_model": stored.base_model,
                "architecture": stored.architecture,
                "weight_format": stored.weight_format,
                "files": digests,
            }
            atomic_write_json(tmp / VERSION_FILE, record)
            fsync_dir(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.models_dir)
        log.info("stored model version %s (%s, %s) from %s", name, stored.kind, reason, source)
        if switch:
            self._switch(name, reason)
        return self._load(final, number)

    # -- switching, recovery, retention -------------------------------------------------------

    def switch_to(self, version_name_or_number: str | int, *, reason: str = "rollback") -> VersionInfo:
        """Point `current_model` at an existing version after checking it is a complete model."""
        target = self.resolve_version(version_name_or_number)
        info = inspect_model_dir(target.path)
        if not info.valid:
            raise ModelError(
                f"version {target.name} cannot become current: {info.reason}",
                hint="pick another version (`trainerd history`) or restore a snapshot (`trainerd snapshot list`)",
            )
        _check_adapter_base(target.path, info)
        if self._current_name() == target.name:
            log.info("model version %s is already current", target.name)
            return target
        self._switch(target.name, reason)
        return target

    def recover(self) -> list[str]:
        """Undo what a crash left behind; returns one line per repair (also logged as a warning).

        Removes unfinished version copies and temp symlinks (none of which ever became current), and
        repoints a missing or dangling `current_model` at the newest complete version.
        """
        actions: list[str] = []
        if self.models_dir.is_dir():
            for entry in sorted(self.models_dir.iterdir()):
                if _UNFINISHED.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                    what = "copy" if entry.name.endswith(".tmp") else "removal"
                    actions.append(f"removed {entry} (an unfinished version {what})")
                elif entry.name.startswith(f".{HISTORY_FILE}.") and entry.name.endswith(".tmp"):
                    entry.unlink()  # the temp of an atomic history write that never got renamed
                    actions.append(f"removed leftover {entry}")
            fsync_dir(self.models_dir)
        link = self.current_link
        if link.parent.is_dir():
            for entry in sorted(link.parent.iterdir()):
                if entry.name.startswith(self._link_tmp_prefix) and entry.name.endswith(".tmp"):
                    entry.unlink()
                    actions.append(f"removed leftover pointer {entry}")
            fsync_dir(link.parent)
        dangling = link.is_symlink() and not link.exists()
        if dangling or (not link.is_symlink() and not link.exists()):
            for candidate in reversed(self.list_versions()):
                info = inspect_model_dir(candidate.path)
                if info.valid:
                    self._switch(candidate.name, "recover")
                    what = "dangling" if dangling else "missing"
                    actions.append(
                        f"{link.name} was {what}; pointed it at the newest complete version {candidate.name}"
                    )
                    break
        for action in actions:
            log.warning("recover: %s", action)
        return actions

    def retention(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond the newest `keep`; returns the removed names, oldest first.

        Never removed: the current and previous versions, and any version that a kept version or a
        snapshot uses as the base model of its LoRA adapter.
        """
        if keep < 1:
            raise TrainerdError(f"cannot keep {keep} model versions", hint="daemon.keep_versions must be at least 2")
        versions = self.list_versions()
        current, previous = self._current_name(), None
        with contextlib.suppress(TrainerdError):
            prev = self.previous()
            previous = prev.name if prev else None
        kept = {v.name for v in versions[-keep:]} | {n for n in (current, previous) if n}
        bases = self._bases_in_use(kept)
        kept |= bases
        removed: list[str] = []
        for version in versions:
            if version.name in kept:
                continue
            doomed = self.models_dir / f".{version.name}.removing"
            os.rename(version.path, doomed)  # atomic: a crash never leaves a half version under its name
            fsync_dir(self.models_dir)
            shutil.rmtree(doomed)
            removed.append(version.name)
            log.info(
                "retention: removed model version %s (created %s); keeping the newest %d plus current %s, "
                "previous %s and adapter bases %s",
                version.name,
                version.created_at or "?",
                keep,
                current or "-",
                previous or "-",
                ", ".join(sorted(bases)) or "-",
            )
        return removed

    # -- internals ----------------------------------------------------------------------------

    def _load(self, path: Path, number: int) -> VersionInfo:
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            data = read_json(path / VERSION_FILE)
            if isinstance(data, dict):
                meta = data
        kind = meta.get("kind")
        if not isinstance(kind, str):
            kind = inspect_model_dir(path).kind
        created = meta.get("created_at")
        return VersionInfo(
            name=path.name,
            number=number,
            path=path,
            created_at=created if isinstance(created, str) else None,
            kind=kind,
            meta=meta,
        )

    def _current_name(self) -> str | None:
        """The version name the link names, without checking it (for parent records and guards)."""
        if not self.current_link.is_symlink():
            return None
        name = Path(os.readlink(self.current_link)).name
        return name if version_number(name) is not None else None

    def _read_history(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = read_json(self.history_path)
            if isinstance(data, dict):
                return data
        return {}

    def _next_number(self) -> int:
        """One past the highest number ever used, so a removed version's name is never reused."""
        last = self._read_history().get("last_number")
        highest = last if isinstance(last, int) else 0
        for entry in self.models_dir.iterdir():
            number = version_number(entry.name)
            if number is not None:
                highest = max(highest, number)
        return highest + 1

    def _switch(self, name: str, reason: str) -> None:
        """Record the switch, then swap the symlink atomically (temp link + os.replace)."""
        history = self._read_history()
        switches = [entry for entry in history.get("switches", []) if isinstance(entry, dict)]
        switches.append(
            {
                "from": self._current_name(),
                "to": name,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "reason": reason,
            }
        )
        last = history.get("last_number")
        number = version_number(name) or 0
        # Written before the swap: should the swap never happen, previous() still reads the last
        # record whose "to" is the real current version, so a stale record misleads nobody.
        atomic_write_json(
            self.history_path,
            {"last_number": max(number, last if isinstance(last, int) else 0), "switches": switches[-HISTORY_LIMIT:]},
        )
        link = self.current_link
        tmp_link = link.with_name(f"{self._link_tmp_prefix}{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp_link.unlink()
        # Relative target (models/v000007), so the base dir can be moved or mounted elsewhere.
        os.symlink(os.path.relpath(self.models_dir / name, link.parent), tmp_link)
        os.replace(tmp_link, link)
        fsync_dir(link.parent)
        log.info("%s now points at %s (%s)", link.name, name, reason)

    def _copy_model(
        self, source: Path, dest: Path, files: list[str], expected: Mapping[str, str] | None
    ) -> dict[str, dict[str, Any]]:
        digests: dict[str, dict[str, Any]] = {}
        for rel in files:
            target = dest / rel
            if target.parent != dest:
                target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = copy_file_synced(source / rel, target)
            if rel == ADAPTER_CONFIG_FILE and _absolutize_adapter_base(target, source):
                digest, size = sha256_file(target), target.stat().st_size
            elif expected is not None and rel in expected and expected[rel] != digest:
                raise TrainerdError(
                    f"{source / rel} changed while it was being copied (sha256 {digest[:12]}..., "
                    f"expected {expected[rel][:12]}...)",
                    hint="verify the source again; nothing was switched",
                )
            digests[rel] = {"sha256": digest, "size": size}
        for sub in {Path(rel).parent for rel in files if "/" in rel}:
            fsync_dir(dest / sub)
        return digests

    def _bases_in_use(self, kept: set[str]) -> set[str]:
        """Versions that kept adapters or snapshot adapters name as their base model."""
        configs = [self.models_dir / name / ADAPTER_CONFIG_FILE for name in kept]
        snapshots = self.layout.snapshots
        if snapshots.is_dir():
            configs += [entry / ADAPTER_CONFIG_FILE for entry in snapshots.iterdir() if entry.is_dir()]
        bases: set[str] = set()
        for config in configs:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                base = read_json(config).get("base_model_name_or_path")
                if isinstance(base, str) and os.path.isabs(base):
                    path = Path(base)
                    if version_number(path.name) is not None and _same_dir(path.parent, self.models_dir):
                        bases.add(path.name)
        return bases - kept


def copy_file_synced(source: Path, dest: Path) -> tuple[str, int]:
    """Copy one file, fsync it, and return the sha256 and size of the bytes written (one read pass)."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader, open(dest, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _resolve_local_base(adapter_dir: Path, base: str) -> Path | None:
    """A relative base as the absolute local dir it names (beside the adapter first, then the cwd)."""
    candidate = Path(base).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for path in (adapter_dir / candidate, candidate):
        if path.exists():
            return path.resolve()
    return None


def _check_adapter_base(adapter_dir: Path, info: ModelDirInfo) -> None:
    """An adapter whose local base is gone cannot load; refuse it before it becomes a version."""
    if info.kind != "lora-adapter" or not info.base_model:
        return
    base = info.base_model
    if _resolve_local_base(adapter_dir, base) is not None:
        return
    looks_local = os.path.isabs(base) or base.startswith((".", "~")) or ("/" in base and not looks_like_hub_id(base))
    if looks_local:
        raise ModelError(
            f"LoRA adapter {adapter_dir} names base model {base}, which does not exist",
            hint=f"put the base model back at that path or fix base_model_name_or_path in "
            f"{adapter_dir / ADAPTER_CONFIG_FILE}",
        )


def _absolutize_adapter_base(config_path: Path, source_dir: Path) -> bool:
    """Rewrite a relative local base path as absolute, so the stored adapter loads from anywhere."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base or os.path.isabs(base):
        return False
    resolved = _resolve_local_base(source_dir, base)
    if resolved is None:
        return False
    config["base_model_name_or_path"] = str(resolved)
    atomic_write_json(config_path, config)
    return True
