"""Putting a data file into the inbox so the daemon never sees half of it.

Used by `trainerd submit` and the monitor's upload: the bytes go to a hidden temp name in
`inbox/`, are fsynced, and are renamed to a unique `NAME.jsonl`; a priority other than normal
goes in the `NAME.jsonl.meta.json` sidecar, written *before* the data file appears.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from trainerd.daemon.inbox import sanitize_name, sidecar_path
from trainerd.daemon.layout import DEFAULT_PRIORITY, BaseDir, parse_priority
from trainerd.errors import TrainerdError
from trainerd.files import atomic_write_json, atomic_write_stream


def inbox_name(base: BaseDir, name: str) -> str:
    """A `.jsonl` name in the inbox that is not taken yet (`data.jsonl`, `data-2.jsonl`, ...)."""
    clean = sanitize_name(Path(name).name)
    stem = clean[: -len(".jsonl")] if clean.endswith(".jsonl") else clean
    candidate, n = f"{stem}.jsonl", 1
    while (base.inbox / candidate).exists() or sidecar_path(base.inbox / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}.jsonl"
    return candidate


def _write_into_inbox(base: BaseDir, name: str, priority: str, write: Callable[[BinaryIO], object]) -> Path:
    level = parse_priority(priority)
    base.inbox.mkdir(parents=True, exist_ok=True)
    final = base.inbox / inbox_name(base, name)
    if level != DEFAULT_PRIORITY:
        atomic_write_json(sidecar_path(final), {"priority": level})
    atomic_write_stream(final, write)  # a hidden temp name until complete: the inbox ignores it
    return final


def submit_bytes(base: BaseDir, data: bytes, name: str, priority: str = DEFAULT_PRIORITY) -> Path:
    """Write `data` into the inbox atomically under a safe, unique name; returns the final path."""
    return _write_into_inbox(base, name, priority, lambda handle: handle.write(data))


def submit_file(base: BaseDir, source: str | os.PathLike[str], priority: str = DEFAULT_PRIORITY) -> Path:
    """Copy a local file into the inbox (the original stays where it is)."""
    src = Path(source)
    if not src.is_file():
        raise TrainerdError(f"{src} is not a file", hint="pass the path of a JSONL file")

    def copy(handle: BinaryIO) -> None:
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, handle, 1 << 20)

    return _write_into_inbox(base, src.name, priority, copy)
