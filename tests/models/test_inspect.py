"""inspect_model_dir: every weight format, adapters, and every reason a dir is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from trainerd.models.inspect import ModelDirInfo, inspect_model_dir, is_valid_model_dir, looks_like_hub_id

CONFIG = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}


def _config(root: Path, data: object = CONFIG) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(data))


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"layer{seed}.weight": torch.randn(4, 4, generator=gen)}


def _adapter(root: Path, base: str | None = "/models/base", weights: bool = True) -> None:
    root.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, object] = {"peft_type": "LORA", "r": 8}
    if base is not None:
        cfg["base_model_name_or_path"] = base
    (root / "adapter_config.json").write_text(json.dumps(cfg))
    if weights:
        save_file(_tensors(), str(root / "adapter_model.safetensors"))


def _assert_invalid(info: ModelDirInfo, *fragments: str) -> None:
    assert not info.valid
    assert info.reason is not None
    for fragment in fragments:
        assert fragment in info.reason, (fragment, info.reason)


# --- valid formats ---------------------------------------------------------------------------------


def test_full_safetensors_with_tokenizer(tmp_path: Path) -> None:
    _config(tmp_path)
    save_file(_tensors(), str(tmp_path / "model.safetensors"))
    (tmp_path / "tokenizer.json").write_text("{}")
    info = inspect_model_dir(tmp_path)
    assert info.valid and info.reason is None
    assert info.kind == "full"
    assert info.weight_format == "safetensors"
    assert info.architecture == "Qwen3ForCausalLM"
    assert info.has_tokenizer
    assert info.base_model is None
    assert info.files == ["config.json", "model.safetensors", "tokenizer.json"]
    assert info.to_dict()["weight_format"] == "safetensors"
    assert json.loads(json.dumps(info.to_dict()))["valid"] is True
    assert is_valid_model_dir(tmp_path)


def test_tiny_model_dir_is_valid(tiny_model_dir: Path) -> None:
    info = inspect_model_dir(tiny_model_dir)
    assert info.valid, info.reason
    assert (info.kind, info.weight_format, info.has_tokenizer) == ("full", "safetensors", True)


def _sharded(root: Path, ext: str) -> None:
    _config(root)
    weight_map = {}
    for i in (1, 2):
        name = f"model-0000{i}-of-00002.{ext}"
        tensors = _tensors(i)
        if ext == "safetensors":
            save_file(tensors, str(root / name))
        else:
            torch.save(tensors, root / name)
        weight_map.update(dict.fromkeys(tensors, name))
    index = "model.safetensors.index.json" if ext == "safetensors" else "pytorch_model.bin.index.json"
    (root / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def test_sharded_safetensors(tmp_path: Path) -> None:
    _sharded(tmp_path, "safetensors")
    info = inspect_model_dir(tmp_path)
    assert info.valid, info.reason
    assert info.weight_format == "safetensors-sharded"
    assert not info.has_tokenizer


def test_bin_and_sharded_bin(tmp_path: Path) -> None:
    single = tmp_path / "single"
    _config(single)
    torch.save(_tensors(), single / "pytorch_model.bin")
    assert inspect_model_dir(single).weight_format == "bin"
    assert is_valid_model_dir(single)
    sharded = tmp_path / "sharded"
    _sharded(sharded, "bin")
    info = inspect_model_dir(sharded)
    assert info.valid, info.reason
    assert info.weight_format == "bin-sharded"


def test_lora_adapter(tmp_path: Path) -> None:
    _adapter(tmp_path, base="Qwen/Qwen3-0.6B")
    info = inspect_model_dir(tmp_path)
    assert info.valid, info.reason
    assert info.kind == "lora-adapter"
    assert info.weight_format == "safetensors"
    assert info.base_model == "Qwen/Qwen3-0.6B"
    assert info.architecture is not None and "LORA" in info.architecture and "Qwen/Qwen3-0.6B" in info.architecture


def test_lora_adapter_bin(tmp_path: Path) -> None:
    _adapter(tmp_path, weights=False)
    torch.save(_tensors(), tmp_path / "adapter_model.bin")
    info = inspect_model_dir(tmp_path)
    assert info.valid and info.kind == "lora-adapter" and info.weight_format == "bin"


def test_full_model_with_stray_adapter_config_is_the_full_model(tmp_path: Path) -> None:
    """adapter_config.json never decides on its own that a dir is 'the model'."""
    _config(tmp_path)
    save_file(_tensors(), str(tmp_path / "model.safetensors"))
    _adapter(tmp_path)
    info = inspect_model_dir(tmp_path)
    assert info.valid and info.kind == "full" and info.base_model is None


def test_adapter_with_base_config_copy_is_an_adapter(tmp_path: Path) -> None:
    _adapter(tmp_path)
    _config(tmp_path)
    info = inspect_model_dir(tmp_path)
    assert info.valid and info.kind == "lora-adapter"


# --- invalid dirs ----------------------------------------------------------------------------------


def test_missing_path_and_file_path(tmp_path: Path) -> None:
    _assert_invalid(inspect_model_dir(tmp_path / "nope"), "does not exist")
    (tmp_path / "file").write_text("x")
    _assert_invalid(inspect_model_dir(tmp_path / "file"), "not a directory")
    assert not is_valid_model_dir(tmp_path / "nope")


def test_empty_dir(tmp_path: Path) -> None:
    _assert_invalid(inspect_model_dir(tmp_path), "config.json", "adapter_config.json")


def test_config_not_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    save_file(_tensors(), str(tmp_path / "model.safetensors"))
    _assert_invalid(inspect_model_dir(tmp_path), "config.json", "not valid JSON", "line 1")


def test_config_not_an_object(tmp_path: Path) -> None:
    _config(tmp_path, [1, 2])
    _assert_invalid(inspect_model_dir(tmp_path), "JSON object")


def test_config_unreadable(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"\xff\xfe\x00bad")
    _assert_invalid(inspect_model_dir(tmp_path), "cannot read", "config.json")


def test_no_weights(tmp_path: Path) -> None:
    _config(tmp_path)
    info = inspect_model_dir(tmp_path)
    _assert_invalid(info, "no weights", "model.safetensors")
    assert info.kind == "full"


def test_index_names_missing_shard(tmp_path: Path) -> None:
    _sharded(tmp_path, "safetensors")
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    _assert_invalid(inspect_model_dir(tmp_path), "missing shard", "model-00002-of-00002.safetensors")


def test_index_unreadable(tmp_path: Path) -> None:
    _config(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("[truncated")
    _assert_invalid(inspect_model_dir(tmp_path), "model.safetensors.index.json", "not valid JSON")


def test_index_without_weight_map(tmp_path: Path) -> None:
    _config(tmp_path)
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}}))
    _assert_invalid(inspect_model_dir(tmp_path), "weight_map")


def test_adapter_without_weights(tmp_path: Path) -> None:
    _adapter(tmp_path, weights=False)
    info = inspect_model_dir(tmp_path)
    _assert_invalid(info, "no adapter weights", "adapter_model.safetensors")
    assert info.kind == "lora-adapter"


@pytest.mark.parametrize("base", [None, ""])
def test_adapter_without_base_model(tmp_path: Path, base: str | None) -> None:
    _adapter(tmp_path, base=base)
    _assert_invalid(inspect_model_dir(tmp_path), "base_model_name_or_path")


def test_adapter_config_not_json(tmp_path: Path) -> None:
    _adapter(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{")
    _assert_invalid(inspect_model_dir(tmp_path), "adapter_config.json", "not valid JSON")


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_zero_byte_weights(tmp_path: Path, name: str) -> None:
    _config(tmp_path)
    (tmp_path / name).write_bytes(b"")
    _assert_invalid(inspect_model_dir(tmp_path), name, "0 bytes")


def test_zero_byte_shard(tmp_path: Path) -> None:
    _sharded(tmp_path, "safetensors")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    _assert_invalid(inspect_model_dir(tmp_path), "model-00001-of-00002.safetensors", "0 bytes")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x01\x02", "only 2 bytes"),
        ((10**9).to_bytes(8, "little") + b"{}", "header length"),
        ((6).to_bytes(8, "little") + b"{oops}", "not valid JSON"),
        ((2).to_bytes(8, "little") + b"[]", "JSON object"),
    ],
)
def test_unreadable_safetensors_header(tmp_path: Path, content: bytes, fragment: str) -> None:
    _config(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(content)
    _assert_invalid(inspect_model_dir(tmp_path), "model.safetensors", fragment)


def test_truncated_safetensors_data(tmp_path: Path) -> None:
    _config(tmp_path)
    path = tmp_path / "model.safetensors"
    save_file(_tensors(), str(path))
    path.write_bytes(path.read_bytes()[:-10])
    _assert_invalid(inspect_model_dir(tmp_path), "truncated")


def test_corrupt_adapter_weights(tmp_path: Path) -> None:
    _adapter(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"garbage!garbage!")
    _assert_invalid(inspect_model_dir(tmp_path), "adapter_model.safetensors", "unreadable")


# --- hub ids and purity ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Qwen/Qwen3-0.6B", "org/name", "a-b_c/d.e"])
def test_hub_ids(value: str) -> None:
    assert looks_like_hub_id(value)


@pytest.mark.parametrize("value", ["gpt2", "/abs/path", "./rel/dir", "a/b/c", "org/", "org/name.", "a--b/c", "a/..b"])
def test_not_hub_ids(value: str) -> None:
    assert not looks_like_hub_id(value)


def test_existing_path_is_not_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not looks_like_hub_id("org/name")


def test_inspect_does_not_import_torch() -> None:
    code = "import sys, trainerd.models.inspect; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
