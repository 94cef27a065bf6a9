"""`trainerd config migrate`: flat/mixed to nested, backups, idempotence, refusals."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from trainerd.config import LEGACY_KEYS, load_config, migrate_config_file
from trainerd.errors import ConfigError

NOW = datetime(2025, 3, 4, 5, 6, 7)

FLAT = {
    "model_path": "/models/qwen",
    "batch_size": 4,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-4,
    "max_steps": -1,
    "profile": "emoji_think",
    "system_prompt": "Today is {date}.",
    "use_lora": True,
    "lora_r": 8,
    "precision": "bf16",
}


def write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
    return path


def backups(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("*.bak-*"))


def test_flat_file_becomes_nested_with_same_effective_config(tmp_path: Path) -> None:
    path = write(tmp_path, FLAT)
    before = load_config(path).config
    result = migrate_config_file(path, now=NOW)
    assert result.changed
    data = json.loads(path.read_text())
    assert data == {
        "model": {"path": "/models/qwen", "precision": "bf16"},
        "hyperparams": {"batch_size": 4, "gradient_accumulation": 2, "learning_rate": 1e-4, "max_steps": None},
        "lora": {"enabled": True, "r": 8},
        "profile": {"name": "emoji_think", "system_prompt": "Today is {date}."},
    }
    assert not set(data) & (set(LEGACY_KEYS) - {"profile"})
    after = load_config(path)
    assert after.config == before
    assert after.warnings == []
    assert result.new_text == path.read_text()
    assert any("moved legacy key 'lora_r' to lora.r" in note for note in result.notes)


def test_backup_is_timestamped_copy_of_original(tmp_path: Path) -> None:
    path = write(tmp_path, FLAT)
    original = path.read_bytes()
    result = migrate_config_file(path, now=NOW)
    assert result.backup_path == tmp_path / "config.json.bak-20250304-050607"
    assert result.backup_path.read_bytes() == original
    assert backups(tmp_path) == [result.backup_path]


def test_existing_backup_is_never_overwritten(tmp_path: Path) -> None:
    taken = tmp_path / "config.json.bak-20250304-050607"
    taken.write_text("older backup")
    path = write(tmp_path, FLAT)
    result = migrate_config_file(path, now=NOW)
    assert taken.read_text() == "older backup"
    assert result.backup_path == tmp_path / "config.json.bak-20250304-050607-1"
    assert result.backup_path.read_text() == json.dumps(FLAT, indent=4) + "\n"


def test_second_run_is_a_no_op(tmp_path: Path) -> None:
    path = write(tmp_path, FLAT)
    migrate_config_file(path, now=NOW)
    migrated = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    again = migrate_config_file(path, now=datetime(2025, 3, 4, 5, 6, 8))
    assert not again.changed
    assert again.backup_path is None and again.diff == ""
    assert path.read_bytes() == migrated and path.stat().st_mtime_ns == stamp
    assert len(backups(tmp_path)) == 1


def test_nested_file_is_left_alone(tmp_path: Path) -> None:
    path = write(tmp_path, {"lora": {"r": 4}, "hyperparams": {"seed": 1}, "data": {}})
    original = path.read_bytes()
    result = migrate_config_file(path, now=NOW)
    assert not result.changed and result.backup_path is None
    assert path.read_bytes() == original
    assert backups(tmp_path) == []


def test_dry_run_writes_nothing_and_returns_diff(tmp_path: Path) -> None:
    path = write(tmp_path, {"batch_size": 4, "hyperparams": {"seed": 3}})
    original = path.read_bytes()
    result = migrate_config_file(path, dry_run=True, now=NOW)
    assert result.changed and result.backup_path is None
    assert path.read_bytes() == original
    assert backups(tmp_path) == []
    assert result.diff.startswith(f"--- {path} (before)\n+++ {path} (migrated)\n")
    assert '-        "seed": 3' in result.diff
    assert '+    "seed": 3' in result.diff
    assert json.loads(result.new_text) == {"hyperparams": {"batch_size": 4, "seed": 3}}


def test_mixed_file_keeps_nested_and_moves_legacy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"hyperparams": {"seed": 5, "lr_scheduler": "linear"}, "lora_alpha": 64, "profile": {"options": {"x": 1}}},
    )
    before = load_config(path).config
    migrate_config_file(path, now=NOW)
    data = json.loads(path.read_text())
    assert data == {
        "hyperparams": {"lr_scheduler": "linear", "seed": 5},
        "lora": {"alpha": 64},
        "profile": {"options": {"x": 1}},
    }
    assert load_config(path).config == before


def test_conflict_keeps_nested_and_says_legacy_was_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, {"learning_rate": 1e-3, "hyperparams": {"learning_rate": 5e-5}})
    before = load_config(path).config
    result = migrate_config_file(path, now=NOW)
    assert json.loads(path.read_text()) == {"hyperparams": {"learning_rate": 5e-5}}
    assert load_config(path).config == before
    dropped = [note for note in result.notes if "dropped legacy key 'learning_rate'" in note]
    assert len(dropped) == 1 and "0.001" in dropped[0] and "wins" in dropped[0]
    assert '-    "learning_rate": 0.001,' in result.diff


def test_unknown_keys_refused_before_writing(tmp_path: Path) -> None:
    path = write(tmp_path, {"batch_size": 4, "learnin_rate": 1, "lora": {"rank": 2}})
    original = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        migrate_config_file(path, now=NOW)
    assert "learnin_rate" in str(info.value) and "lora.rank" in str(info.value)
    assert path.read_bytes() == original
    assert backups(tmp_path) == []


def test_invalid_value_refused_before_writing(tmp_path: Path) -> None:
    path = write(tmp_path, {"batch_size": -4})
    original = path.read_bytes()
    with pytest.raises(ConfigError, match=r"hyperparams\.batch_size"):
        migrate_config_file(path, now=NOW)
    assert path.read_bytes() == original
    assert backups(tmp_path) == []


def test_file_mode_kept_and_symlink_followed(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = write(real_dir, FLAT)
    os.chmod(real, 0o640)
    link = tmp_path / "config.json"
    link.symlink_to(real)
    result = migrate_config_file(link, now=NOW)
    assert link.is_symlink()
    assert "hyperparams" in json.loads(real.read_text())
    assert (real.stat().st_mode & 0o777) == 0o640
    assert result.backup_path is not None and result.backup_path.parent == real_dir


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        migrate_config_file(tmp_path / "missing.json")
