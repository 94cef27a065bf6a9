"""Model versions and the current_model pointer: numeric order, promotion, crashes, rollback, retention."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.fake_models import RUN_JUNK, make_adapter, make_full_model
from trainerd.daemon.store import ModelStore, model_files, version_name
from trainerd.errors import ModelError, TrainerdError
from trainerd.models.inspect import is_valid_model_dir


def leftovers(store: ModelStore) -> list[str]:
    hidden = [p.name for p in store.models_dir.iterdir() if p.name.startswith(".v")]
    return hidden + [p.name for p in store.root.iterdir() if p.name.startswith(".current_model")]


def test_versions_sort_numerically_and_ignore_other_names(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for number in (10, 2, 9):
        make_full_model(store.models_dir / version_name(number), seed=number, run_junk=False)
    (store.models_dir / "v10").mkdir()  # not six digits: a hand-made name
    (store.models_dir / "notes").mkdir()
    (store.models_dir / ".v000011.tmp").mkdir()
    (store.models_dir / "v000012").write_text("a file, not a version")

    assert [v.name for v in store.list_versions()] == ["v000002", "v000009", "v000010"]
    assert [v.number for v in store.list_versions()] == [2, 9, 10]
    assert store.resolve_version("10").name == "v000010"
    assert store.resolve_version("v9").name == "v000009"
    assert store.resolve_version("v000002").kind == "full"
    with pytest.raises(TrainerdError) as err:
        store.resolve_version("v000003")
    assert err.value.hint is not None and "v000010" in err.value.hint

    # The next number is past every version-like name (v000012 is taken by a file); a leftover temp
    # copy's number is free again, since that copy never became a version.
    promoted = store.promote(make_full_model(tmp_path / "run", seed=1), {"job_id": "j1"})
    assert promoted.name == "v000013"
    assert store.current() == promoted


def test_init_and_promote_twice_advance_current_and_track_previous(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    assert store.current() is None and store.previous() is None
    first = store.init_from(make_full_model(tmp_path / "src", run_junk=False))
    assert first.name == "v000001" and first.kind == "full"
    assert os.readlink(store.current_link) == "models/v000001"  # relative link: the base dir can move
    assert store.previous() is None

    meta = {"job_id": "job-a", "source_file": "a.jsonl", "global_step": 12, "losses": [2.0, 1.5]}
    second = store.promote(make_full_model(tmp_path / "run-a", seed=1), meta)
    third = store.promote(make_full_model(tmp_path / "run-b", seed=2), {**meta, "job_id": "job-b"})

    assert [v.name for v in store.list_versions()] == ["v000001", "v000002", "v000003"]
    assert store.current() == third
    assert store.previous() == second
    record = json.loads((third.path / "VERSION.json").read_text())
    assert record["version"] == "v000003" and record["parent"] == "v000002" and record["job_id"] == "job-b"
    assert record["global_step"] == 12 and record["losses"] == [2.0, 1.5] and record["kind"] == "full"
    assert record["created_at"] and set(record["files"]) == set(model_files(third.path)) - {"VERSION.json"}
    # Only the model itself is stored: no checkpoints, metrics, logs or job records.
    stored = sorted(p.name for p in third.path.iterdir())
    assert stored == sorted(
        [
            "VERSION.json",
            "chat_template.jinja",
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )
    assert is_valid_model_dir(store.current_link)
    assert [entry["to"] for entry in store.history()] == ["v000001", "v000002", "v000003"]


def test_lora_adapter_versions_keep_an_absolute_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = make_full_model(tmp_path / "models" / "base", run_junk=False)
    adapter = make_adapter(tmp_path / "models" / "adapter", base="../base")
    monkeypatch.chdir(tmp_path)  # the relative base only resolves beside the adapter, not from here
    store = ModelStore(tmp_path / "basedir")

    first = store.init_from(adapter)
    config = json.loads((first.path / "adapter_config.json").read_text())
    assert first.kind == "lora-adapter"
    assert config["base_model_name_or_path"] == str(base.resolve())
    assert first.meta["base_model"] == str(base.resolve())
    assert sorted(p.name for p in first.path.iterdir()) == [
        "VERSION.json",
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
    ]
    # The source adapter itself is never edited.
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"

    second = store.promote(make_adapter(tmp_path / "run", base=str(base.resolve()), seed=3), {"job_id": "j"})
    assert store.current() == second and store.previous() == first


def test_init_needs_a_local_dir_and_an_empty_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    with pytest.raises(ModelError) as hub:
        store.init_from("Qwen/Qwen3-0.6B")
    assert hub.value.hint is not None and "download" in hub.value.hint
    with pytest.raises(ModelError) as missing:
        store.init_from(tmp_path / "nowhere")
    assert missing.value.hint is not None and "local model dir" in missing.value.hint

    store.init_from(make_full_model(tmp_path / "src"))
    with pytest.raises(TrainerdError, match="already holds model versions"):
        store.init_from(tmp_path / "src")


def test_invalid_outputs_never_become_versions(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    first = store.init_from(make_full_model(tmp_path / "src"))

    no_weights = make_full_model(tmp_path / "run-a")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        store.promote(no_weights, {})
    truncated = make_full_model(tmp_path / "run-b")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(ModelError, match="truncated"):
        store.promote(truncated, {})
    orphan = make_adapter(tmp_path / "run-c", base=str(tmp_path / "gone"))
    with pytest.raises(ModelError, match="does not exist") as err:
        store.promote(orphan, {})
    assert err.value.hint is not None and "base_model_name_or_path" in err.value.hint

    assert store.current() == first
    assert [v.name for v in store.list_versions()] == ["v000001"]
    assert leftovers(store) == []


def test_switch_to_rolls_back_and_refuses_a_broken_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    store.init_from(make_full_model(tmp_path / "src"))
    store.promote(make_full_model(tmp_path / "run-a", seed=1), {})
    third = store.promote(make_full_model(tmp_path / "run-b", seed=2), {})

    back = store.switch_to("1")
    assert store.current() == back and back.name == "v000001"
    assert store.previous() == third
    assert store.history()[-1] == {**store.history()[-1], "from": "v000003", "to": "v000001", "reason": "rollback"}

    (store.models_dir / "v000002" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="v000002 cannot become current"):
        store.switch_to("v000002")
    assert store.current() == back
    assert store.switch_to("v000001") == back  # already current: nothing changes
    assert store.previous() == third


def _crash_on_call(name: str, nth: int) -> Callable[..., Any]:
    """Wrap os.<name> so that its nth call kills the process on the spot, like kill -9 (no cleanup runs)."""
    real = getattr(os, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == nth:
            os._exit(77)
        return real(*args, **kwargs)

    return wrapper


def _promote_in_child(store: ModelStore, staged: Path, crash: str, nth: int) -> int:
    """Run one promote in a forked child that dies at the nth call of os.<crash>; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        code = 0
        try:
            setattr(os, crash, _crash_on_call(crash, nth))
            store.promote(staged, {"job_id": "crash"})
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("crash", ["fsync", "rename", "replace", "symlink", "mkdir"])
def test_a_kill_at_any_step_of_promote_leaves_a_complete_current_model(tmp_path: Path, crash: str) -> None:
    store = ModelStore(tmp_path / "base")
    store.init_from(make_full_model(tmp_path / "src"))
    staged = make_full_model(tmp_path / "run", seed=5)
    crashes = 0
    for nth in range(1, 200):
        before = store.current()
        assert before is not None
        code = _promote_in_child(store, staged, crash, nth)
        after = store.current()
        assert after is not None and is_valid_model_dir(after.path)  # complete at every point
        assert after.name in (before.name, version_name(max(v.number for v in store.list_versions())))
        store.recover()
        assert leftovers(store) == []
        assert all(is_valid_model_dir(v.path) for v in store.list_versions())
        if code == 0:
            break  # the nth call never came: promote ran to the end
        assert code == 77
        crashes += 1
    assert crashes >= 1
    assert store.current() is not None and store.current() == store.list_versions()[-1]
    # The store keeps working after all those crashes.
    final = store.promote(make_full_model(tmp_path / "run-2", seed=6), {})
    assert store.current() == final and leftovers(store) == []


def test_recover_removes_leftovers_which_never_become_current(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    store.init_from(make_full_model(tmp_path / "src"))
    current = store.promote(make_full_model(tmp_path / "run-a", seed=1), {})
    half = store.models_dir / ".v000003.tmp"
    half.mkdir()
    (half / "config.json").write_text("{}")
    (half / "model.safetensors").write_bytes(b"\x00" * 5)
    os.symlink("models/.v000003.tmp", store.root / ".current_model.4242.tmp")
    (store.models_dir / ".v000001.removing").mkdir()
    (store.models_dir / "..history.json.x1y2.tmp").write_text("{")

    assert store.current() == current
    actions = store.recover()
    assert len(actions) == 4 and leftovers(store) == []
    assert sorted(p.name for p in store.models_dir.iterdir()) == [".history.json", "v000001", "v000002"]
    assert store.current() == current and store.previous() is not None

    nxt = store.promote(make_full_model(tmp_path / "run-b", seed=2), {})
    assert nxt.name == "v000003" and is_valid_model_dir(nxt.path) and store.current() == nxt


def test_recover_repairs_a_missing_or_dangling_pointer(tmp_path: Path, daemon_log: pytest.LogCaptureFixture) -> None:
    store = ModelStore(tmp_path / "base")
    store.init_from(make_full_model(tmp_path / "src"))
    second = store.promote(make_full_model(tmp_path / "run-a", seed=1), {})

    store.current_link.unlink()  # a kill between the first version's rename and its link
    assert store.current() is None
    assert store.recover() and store.current() == second

    store.current_link.unlink()
    os.symlink("models/v000009", store.current_link)
    with pytest.raises(TrainerdError, match="not a version"):
        store.current()
    store.recover()
    assert store.current() == second
    assert "dangling" in daemon_log.text


def test_retention_keeps_newest_current_and_previous(tmp_path: Path, daemon_log: pytest.LogCaptureFixture) -> None:
    store = ModelStore(tmp_path / "base")
    store.init_from(make_full_model(tmp_path / "src"))
    for seed in range(2, 7):
        store.promote(make_full_model(tmp_path / f"run-{seed}", seed=seed), {})
    store.switch_to("v000002")  # current v000002, previous v000006

    removed = store.retention(2)
    assert removed == ["v000001", "v000003", "v000004"]
    assert [v.name for v in store.list_versions()] == ["v000002", "v000005", "v000006"]
    assert store.current() is not None and store.current().name == "v000002"
    previous = store.previous()
    assert previous is not None and previous.name == "v000006"
    for name in removed:
        assert f"removed model version {name}" in daemon_log.text
    assert store.retention(2) == []
    assert leftovers(store) == []
    # Numbers are never reused, even after removals.
    assert store.promote(make_full_model(tmp_path / "run-7", seed=7), {}).name == "v000007"
    with pytest.raises(TrainerdError):
        store.retention(0)


def test_retention_keeps_the_base_of_kept_adapters(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "base")
    base = store.init_from(make_full_model(tmp_path / "src"))
    for seed in range(2, 6):
        store.promote(make_adapter(tmp_path / f"run-{seed}", base=str(base.path.resolve()), seed=seed), {})
    removed = store.retention(2)
    assert removed == ["v000002", "v000003"]
    assert [v.name for v in store.list_versions()] == ["v000001", "v000004", "v000005"]


def test_a_real_saved_model_dir_is_stored_whole(tmp_path: Path, tiny_model_dir: Path) -> None:
    staged = tmp_path / "run"
    shutil.copytree(tiny_model_dir, staged)
    for name in RUN_JUNK:
        (staged / name).write_text("{}\n")
    store = ModelStore(tmp_path / "base")
    version = store.init_from(staged)
    assert sorted(p.name for p in version.path.iterdir()) == sorted([*os.listdir(tiny_model_dir), "VERSION.json"])
    assert version.meta["architecture"] == "Qwen3ForCausalLM"
