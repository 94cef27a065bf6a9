"""Atomic writes and tolerant log reading, which every process-to-process file relies on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trainerd.files import (
    append_jsonl,
    atomic_copy,
    atomic_write_json,
    atomic_write_stream,
    read_jsonl_tolerant,
    sha256_file,
)


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"old": True})

    def explode(handle) -> None:  # type: ignore[no-untyped-def]
        handle.write(b'{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_stream(target, explode)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_copy_and_sha256(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * (3 << 20))
    atomic_copy(src, tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    assert sha256_file(src) == hashlib.sha256(src.read_bytes()).hexdigest()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    append_jsonl(log, {"step": 1})
    append_jsonl(log, {"step": 2})
    with open(log, "a") as handle:
        handle.write('{"step": 3, "lo')  # a crash mid-append
    assert read_jsonl_tolerant(log) == [{"step": 1}, {"step": 2}]
    assert read_jsonl_tolerant(tmp_path / "missing.jsonl") == []
