"""`trainerd config migrate`: rewrite a flat (legacy) or mixed config file as nested.

Only the keys the file sets are written (defaults stay implicit, so a later change of a default
still reaches the user). The original is kept as a timestamped backup, the new file is written
atomically, and the rewrite is refused unless it loads to exactly the same effective config.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trainerd.config.load import (
    FoldedFile,
    build_config,
    fold_file,
    leaf_fields,
    parse_config_bytes,
    read_config_bytes,
    sections,
)
from trainerd.errors import ConfigError
from trainerd.files import atomic_write_text, fsync_dir

log = logging.getLogger("trainerd.config")


@dataclass
class MigrationResult:
    """What a migration did (or, with dry_run, would do)."""

    changed: bool
    diff: str
    backup_path: Path | None
    new_text: str
    notes: list[str] = field(default_factory=list)


def _nested_in_schema_order(data: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sections and their keys in schema order, so migrated files all read alike."""
    out: dict[str, dict[str, Any]] = {}
    for section, model in sections().items():
        if section in data:
            out[section] = {key: data[section][key] for key in model.model_fields if key in data[section]}
    return out


def _notes(folded: FoldedFile) -> list[str]:
    """One line per legacy key: where it went, or that it was dropped because another value won."""
    lost = {conflict.legacy_key: conflict for conflict in folded.conflicts}
    notes = []
    for key, path in folded.legacy.items():
        if key in lost:
            conflict = lost[key]
            notes.append(
                f"dropped legacy key '{key}' = {json.dumps(conflict.legacy_value)}: {path} = "
                f"{json.dumps(conflict.kept_value)} was also set ({conflict.kept_from}) and wins"
            )
        else:
            notes.append(f"moved legacy key '{key}' to {path}")
    return notes


def _diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=f"{name} (before)", tofile=f"{name} (migrated)", lineterm=""
    )
    return "\n".join(lines) + "\n"


def _write_backup(target: Path, original: bytes, now: datetime) -> Path:
    """Copy the original next to it as NAME.bak-YYYYmmdd-HHMMSS, never replacing an existing backup."""
    base = f"{target.name}.bak-{now.strftime('%Y%m%d-%H%M%S')}"
    mode = stat.S_IMODE(target.stat().st_mode)
    for attempt in range(1000):
        candidate = target.with_name(base if attempt == 0 else f"{base}-{attempt}")
        try:
            # Exclusive create: an existing backup is never overwritten.
            with open(candidate, "xb") as handle:
                handle.write(original)
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            continue
        os.chmod(candidate, mode)
        fsync_dir(target.parent)
        return candidate
    raise ConfigError(f"cannot create a backup of {target}: too many backups named {base}*", hint="remove old backups")


def migrate_config_file(path: str | Path, *, dry_run: bool = False, now: datetime | None = None) -> MigrationResult:
    """Rewrite a config file as nested, keeping a backup; a nested file is left untouched.

    Refuses (ConfigError, nothing written) a file with unknown keys or invalid values. With
    `dry_run` it returns the diff and the new text and writes nothing.
    """
    shown = Path(path).expanduser()
    target = shown.resolve()  # write through a symlink to the real file instead of replacing the link
    original = read_config_bytes(target)
    raw = parse_config_bytes(original, shown)
    folded = fold_file(raw, shown)
    before = build_config(folded.data, folded.sources, str(shown))

    nested = _nested_in_schema_order(folded.data)
    old_text = original.decode("utf-8-sig")
    if nested == raw:
        return MigrationResult(changed=False, diff="", backup_path=None, new_text=old_text)

    new_text = json.dumps(nested, indent=2, ensure_ascii=False) + "\n"
    check = fold_file(json.loads(new_text), f"{shown} (migrated)")
    after = build_config(check.data, check.sources, f"{shown} (migrated)")
    if after != before or check.legacy:
        diverged = [p for p in leaf_fields() if _get(after, p) != _get(before, p)]
        raise ConfigError(
            f"{shown}: migration would change the effective config ({', '.join(diverged) or 'legacy keys left'}); "
            "the file was left untouched",
            hint="report this as a trainerd bug and migrate the file by hand",
        )
    notes = _notes(folded)
    diff = _diff(old_text, new_text, str(shown))
    if dry_run:
        return MigrationResult(changed=True, diff=diff, backup_path=None, new_text=new_text, notes=notes)

    backup = _write_backup(target, original, now or datetime.now())
    atomic_write_text(target, new_text, mode=stat.S_IMODE(target.stat().st_mode))
    log.info("migrated %s to nested config (backup: %s)", shown, backup)
    return MigrationResult(changed=True, diff=diff, backup_path=backup, new_text=new_text, notes=notes)


def _get(cfg: Any, dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    return getattr(getattr(cfg, section), key)
