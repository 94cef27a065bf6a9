"""Checkpoints that exist only once complete.

transformers' Trainer writes `checkpoint-N` in place, so a kill during a save leaves a half
directory that resume then fails on. Here a checkpoint is written under a temp name, gets a
`COMPLETE` marker as its last file and is then renamed into place; anything without the marker is
ignored (and cleaned up). Directories are sorted by their number, never as strings.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from trainerd.files import atomic_write_json, fsync_dir, read_json

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first, ordered by step number."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = checkpoint_step(child)
        if step is not None and is_complete(child):
            found.append((step, child))
    return [path for _, path in sorted(found)]


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and (path / STATE_FILE).is_file()


def staging_dir(root: Path, step: int) -> Path:
    """Where a checkpoint is written before it becomes visible."""
    return root / f".checkpoint-{step}.tmp"


def begin(root: Path, step: int) -> Path:
    """A clean staging dir for the checkpoint of `step`."""
    root.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(root, step)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def commit(root: Path, step: int, staging: Path, state: dict) -> Path:
    """Write the trainer state and marker last, then rename the staging dir into place."""
    atomic_write_json(staging / STATE_FILE, state)
    (staging / COMPLETE_MARKER).write_text("ok\n")
    fsync_dir(staging)
    final = root / f"checkpoint-{step}"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    fsync_dir(root)
    return final


def read_state(path: Path) -> dict:
    state = read_json(path / STATE_FILE)
    if not isinstance(state, dict):
        raise ValueError(f"{path / STATE_FILE} is not a JSON object")
    return state


def prune(root: Path, keep: int) -> list[Path]:
    """Remove the oldest complete checkpoints beyond `keep` and any leftover staging dirs."""
    removed: list[Path] = []
    for leftover in root.glob(".checkpoint-*.tmp") if root.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
    complete = list_checkpoints(root)
    for old in complete[: max(0, len(complete) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed
