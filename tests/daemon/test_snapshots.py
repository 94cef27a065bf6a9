"""Snapshots: manifests, verification down to one byte, retention, the daily schedule, restore as a new version."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tests.daemon.fake_models import make_adapter, make_full_model
from trainerd.daemon.snapshots import (
    MANIFEST_FILE,
    create_snapshot,
    due_daily_snapshot,
    list_snapshots,
    recover_snapshots,
    resolve_snapshot,
    restore_snapshot,
    snapshot_retention,
    verify_snapshot,
)
from trainerd.daemon.store import ModelStore, VersionInfo
from trainerd.errors import ConfigError, TrainerdError
from trainerd.files import sha256_file
from trainerd.models.inspect import is_valid_model_dir

NOON = datetime(2024, 5, 1, 12, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """A base dir with one full-model version plus a second one (job meta included)."""
    models = ModelStore(tmp_path / "base")
    models.init_from(make_full_model(tmp_path / "src"))
    models.promote(make_full_model(tmp_path / "run", seed=1), {"job_id": "job-1", "global_step": 40})
    return models


def current(store: ModelStore) -> VersionInfo:
    version = store.current()
    assert version is not None
    return version


def test_create_writes_a_manifest_of_every_file_and_verifies(store: ModelStore) -> None:
    version = current(store)
    snapshot = create_snapshot(store.root, version, reason="daily", now=NOON)

    assert snapshot.name == "20240501-120000" and snapshot.path == store.root / "snapshots" / snapshot.name
    assert (snapshot.version, snapshot.reason, snapshot.kind) == ("v000002", "daily", "full")
    manifest = json.loads((snapshot.path / MANIFEST_FILE).read_text())
    files = sorted(p.name for p in version.path.iterdir())
    assert sorted(manifest["files"]) == files  # VERSION.json included, MANIFEST itself not
    for rel, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(version.path / rel), "size": (version.path / rel).stat().st_size}
    report = verify_snapshot(snapshot.path)
    assert report.ok and report.checked == len(files) and report.problems() == []
    assert list_snapshots(store.root) == [snapshot]
    assert resolve_snapshot(store.root, "20240501-120000") == snapshot
    assert not any(p.name.startswith(".") for p in snapshot.path.parent.iterdir())


def test_verify_catches_one_flipped_byte_in_any_file(store: ModelStore) -> None:
    snapshot = create_snapshot(store.root, current(store), now=NOON)
    files = sorted(p for p in snapshot.path.iterdir() if p.name != MANIFEST_FILE)
    assert len(files) >= 5
    for path in files:
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        report = verify_snapshot(snapshot.path)
        assert not report.ok and report.changed == [path.name], path.name
        assert report.missing == [] and report.extra == [] and report.manifest_error is None
        path.write_bytes(original)
        assert verify_snapshot(snapshot.path).ok


def test_verify_catches_missing_and_extra_files_and_a_bad_manifest(store: ModelStore) -> None:
    snapshot = create_snapshot(store.root, current(store), now=NOON)
    root = snapshot.path
    weights = (root / "model.safetensors").read_bytes()

    (root / "model.safetensors").unlink()
    report = verify_snapshot(root)
    assert not report.ok and report.missing == ["model.safetensors"] and report.changed == []
    (root / "model.safetensors").write_bytes(weights)

    (root / "sub").mkdir()
    (root / "sub" / "notes.txt").write_text("added later")
    report = verify_snapshot(root)
    assert not report.ok and report.extra == ["sub/notes.txt"]
    shutil.rmtree(root / "sub")
    (root / "config.json").write_text((root / "config.json").read_text() + " ")  # same bytes + 1: size differs
    assert verify_snapshot(root).changed == ["config.json"]
    (root / "config.json").write_text((root / "config.json").read_text()[:-1])
    assert verify_snapshot(root).ok

    manifest_text = (root / MANIFEST_FILE).read_text()
    (root / MANIFEST_FILE).write_text(manifest_text[:-20])
    report = verify_snapshot(root)
    assert not report.ok and report.manifest_error is not None and "not valid JSON" in report.manifest_error
    manifest = json.loads(manifest_text)
    manifest["files"]["config.json"]["sha256"] = "nope"
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert "sha256" in (verify_snapshot(root).manifest_error or "")
    manifest["files"]["../escape"] = manifest["files"].pop("config.json")
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert "invalid path" in (verify_snapshot(root).manifest_error or "")
    (root / MANIFEST_FILE).unlink()
    report = verify_snapshot(root)
    assert not report.ok and report.manifest_error == "MANIFEST.json is missing"
    assert report.problems() == ["manifest: MANIFEST.json is missing"]


def test_names_are_unique_and_sorted_by_date(store: ModelStore) -> None:
    version = current(store)
    first = create_snapshot(store.root, version, now=NOON)
    second = create_snapshot(store.root, version, now=NOON)
    earlier = create_snapshot(store.root, version, now=datetime(2024, 4, 30, 23, 59, 59))
    assert (first.name, second.name) == ("20240501-120000", "20240501-120000-2")
    shutil.copytree(second.path, second.path.with_name("20240501-120000-10"))
    (store.root / "snapshots" / "not-a-snapshot").mkdir()
    names = [s.name for s in list_snapshots(store.root)]
    assert names == [earlier.name, first.name, second.name, "20240501-120000-10"]


def test_snapshot_retention_removes_the_oldest(store: ModelStore, daemon_log: pytest.LogCaptureFixture) -> None:
    version = current(store)
    for day in (3, 1, 4, 2):
        create_snapshot(store.root, version, now=datetime(2024, 5, day, 3, 0))
    removed = snapshot_retention(store.root, 2)
    assert removed == ["20240501-030000", "20240502-030000"]
    assert [s.name for s in list_snapshots(store.root)] == ["20240503-030000", "20240504-030000"]
    assert "removed snapshot 20240501-030000" in daemon_log.text
    assert snapshot_retention(store.root, 2) == []
    with pytest.raises(TrainerdError):
        snapshot_retention(store.root, 0)


def test_daily_snapshot_is_due_once_per_day_after_its_time(store: ModelStore) -> None:
    root = store.root
    assert not due_daily_snapshot(root, "03:00", datetime(2024, 5, 1, 2, 59))
    assert due_daily_snapshot(root, "03:00", datetime(2024, 5, 1, 3, 0))
    create_snapshot(root, current(store), reason="manual", now=datetime(2024, 5, 1, 3, 1))
    assert due_daily_snapshot(root, "03:00", datetime(2024, 5, 1, 3, 2))  # a manual one does not count
    create_snapshot(root, current(store), reason="daily", now=datetime(2024, 5, 1, 3, 2))
    assert not due_daily_snapshot(root, "03:00", datetime(2024, 5, 1, 23, 0))
    assert due_daily_snapshot(root, "03:00", datetime(2024, 5, 2, 3, 0))
    assert not due_daily_snapshot(root, None, datetime(2024, 5, 2, 3, 0))
    for bad in ("3am", "24:00", "12:60", ""):
        with pytest.raises(ConfigError, match="snapshot_time"):
            due_daily_snapshot(root, bad, NOON)


def test_restore_adds_a_new_version_and_switches_to_it(store: ModelStore) -> None:
    old = store.resolve_version("v000002")
    before = {p.name: sha256_file(p) for p in old.path.iterdir()}
    snapshot = create_snapshot(store.root, old, now=NOON)
    store.switch_to("v000001")

    restored = restore_snapshot(store.root, snapshot.name, store)
    assert restored.name == "v000003" and store.current() == restored
    assert restored.meta["restored_from_snapshot"] == snapshot.name
    assert restored.meta["snapshot_of_version"] == "v000002"
    assert restored.meta["job_id"] == "job-1" and restored.meta["global_step"] == 40
    assert restored.meta["reason"] == "restore" and restored.meta["parent"] == "v000001"
    assert sha256_file(restored.path / "model.safetensors") == before["model.safetensors"]
    assert not (restored.path / MANIFEST_FILE).exists()
    assert {p.name: sha256_file(p) for p in old.path.iterdir()} == before  # the old version is untouched
    previous = store.previous()
    assert previous is not None and previous.name == "v000001"


def test_restore_refuses_a_snapshot_that_fails_verification(store: ModelStore) -> None:
    snapshot = create_snapshot(store.root, store.resolve_version("1"), now=NOON)
    weights = snapshot.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    (snapshot.path / "tokenizer.json").unlink()

    with pytest.raises(TrainerdError) as err:
        restore_snapshot(store.root, snapshot, store)
    message = str(err.value)
    assert "changed: model.safetensors" in message and "missing: tokenizer.json" in message
    assert current(store).name == "v000002"
    assert [v.name for v in store.list_versions()] == ["v000001", "v000002"]


def test_a_lora_base_dir_snapshots_and_restores(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    base = store.init_from(make_full_model(tmp_path / "src"))
    adapter = store.promote(make_adapter(tmp_path / "run-a", base=str(base.path.resolve()), seed=1), {"job_id": "a"})
    store.promote(make_adapter(tmp_path / "run-b", base=str(base.path.resolve()), seed=2), {"job_id": "b"})
    snapshot = create_snapshot(store.root, adapter, now=NOON)
    assert snapshot.kind == "lora-adapter" and verify_snapshot(snapshot.path).ok

    # Retention keeps the full base that the snapshot's adapter needs, even beyond `keep`.
    store.promote(make_adapter(tmp_path / "run-c", base=str(base.path.resolve()), seed=3), {"job_id": "c"})
    assert store.retention(2) == ["v000002"]
    restored = restore_snapshot(store.root, snapshot, store)
    assert restored.kind == "lora-adapter" and restored.name == "v000005"
    assert json.loads((restored.path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        base.path.resolve()
    )
    assert is_valid_model_dir(store.current_link)


def test_a_damaged_version_is_not_snapshotted(store: ModelStore) -> None:
    version = current(store)
    weights = version.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10
    weights.write_bytes(bytes(data))
    with pytest.raises(TrainerdError, match=r"v000002 is damaged: model\.safetensors"):
        create_snapshot(store.root, version, now=NOON)
    assert list_snapshots(store.root) == []
    assert not any((store.root / "snapshots").iterdir())


def test_recover_removes_half_built_snapshots(store: ModelStore) -> None:
    good = create_snapshot(store.root, current(store), now=NOON)
    folder = store.root / "snapshots"
    (folder / ".20240502-030000.tmp").mkdir()
    (folder / ".20240503-030000.removing").mkdir()
    assert len(recover_snapshots(store.root)) == 2
    assert sorted(p.name for p in folder.iterdir()) == [good.name]
