"""BaseDir: every path in one place, ensure() idempotent, nothing resolving outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainerd.daemon.layout import PRIORITIES, BaseDir, is_base_dir, parse_priority
from trainerd.errors import TrainerdError


def test_paths_follow_the_documented_layout(tmp_path: Path) -> None:
    base = BaseDir(tmp_path)
    assert PRIORITIES == ("high", "normal", "low")
    assert base.config_file == tmp_path / "config.json"
    assert base.inbox == tmp_path / "inbox"
    assert [base.queue_dir(p) for p in PRIORITIES] == [tmp_path / "queue" / p for p in PRIORITIES]
    assert base.processing == tmp_path / "queue" / "processing"
    assert base.failed == tmp_path / "queue" / "failed"
    assert base.done == tmp_path / "queue" / "done"
    assert base.models == tmp_path / "models"
    assert base.current_model == tmp_path / "current_model"
    assert base.runs == tmp_path / "runs"
    assert base.run_dir("j1") == tmp_path / "runs" / "j1"
    assert base.snapshots == tmp_path / "snapshots"
    assert base.status_file == tmp_path / "status" / "status.json"
    assert base.history_file == tmp_path / "status" / "history.jsonl"
    assert base.control == tmp_path / "control"
    assert base.request_file == tmp_path / "control" / "request.json"
    assert base.control_state_file == tmp_path / "control" / "state.json"
    assert base.logs == tmp_path / "logs"
    assert base.daemon_log == tmp_path / "logs" / "daemon.log"
    assert base.lock_file == tmp_path / "daemon.lock"


def test_root_is_absolute_and_accepts_str(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = BaseDir(Path("b"))
    assert base.root == tmp_path / "b"
    assert BaseDir(str(tmp_path)).root == tmp_path  # type: ignore[arg-type]


def test_unknown_priority_is_an_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(TrainerdError) as info:
        BaseDir(tmp_path).queue_dir("urgent")
    assert "urgent" in info.value.message and "high, normal, low" in (info.value.hint or "")
    assert parse_priority("low") == "low"
    with pytest.raises(TrainerdError):
        parse_priority(1)


def test_ensure_creates_every_folder_and_is_idempotent(tmp_path: Path) -> None:
    base = BaseDir(tmp_path / "base")
    assert not is_base_dir(base.root)
    base.ensure()
    (base.processing / "keep.jsonl").write_text("x")
    base.ensure()
    for directory in base.directories():
        assert directory.is_dir(), directory
    assert (base.processing / "keep.jsonl").read_text() == "x"
    assert not base.current_model.exists()
    assert not is_base_dir(base.root)  # no config yet
    base.config_file.write_text("{}")
    assert is_base_dir(base.root)


def test_resolve_inside_refuses_escapes(tmp_path: Path) -> None:
    base = BaseDir(tmp_path / "base").ensure()
    outside = tmp_path / "outside.jsonl"
    outside.write_text("x")
    assert base.resolve_inside("inbox/a.jsonl") == (base.inbox / "a.jsonl").resolve()
    assert base.resolve_inside(base.root) == base.root.resolve()
    with pytest.raises(TrainerdError) as info:
        base.resolve_inside("inbox/../../outside.jsonl")
    assert "outside the base dir" in info.value.message
    link = base.inbox / "link.jsonl"
    os.symlink(outside, link)
    with pytest.raises(TrainerdError):
        base.resolve_inside(link)
    # A sibling whose name merely starts with the root's name is still outside.
    with pytest.raises(TrainerdError):
        base.resolve_inside(tmp_path / "base2" / "x")
