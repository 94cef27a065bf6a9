"""models/load.py on the tiny model: attention/precision choices, full and LoRA loads, save and continue."""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from trainerd.config.schema import TrainerdConfig
from trainerd.errors import ModelError
from trainerd.models.inspect import inspect_model_dir
from trainerd.models.load import (
    LoadedModel,
    choose_attention,
    choose_dtype,
    load_model_for_inference,
    load_model_for_training,
    load_tokenizer,
    resolve_base_model,
    save_trained_model,
)

CPU = torch.device("cpu")


@contextmanager
def no_deprecations() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        yield


def _cfg(*, lora: bool = False, checkpointing: bool = True, attn: str = "auto", r: int = 4) -> TrainerdConfig:
    cfg = TrainerdConfig()
    cfg.lora.enabled = lora
    cfg.lora.r = r
    cfg.lora.alpha = 8
    cfg.model.attn_implementation = attn  # type: ignore[assignment]
    cfg.hyperparams.use_gradient_checkpointing = checkpointing
    return cfg


def _train_step(loaded: LoadedModel, lr: float = 0.1) -> float:
    """One real optimizer step so saved weights differ from their initial values."""
    ids = loaded.tokenizer("The quick fox helps Ada in the park.", return_tensors="pt")["input_ids"]
    params = [p for p in loaded.model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    out = loaded.model(input_ids=ids, labels=ids)
    out.loss.backward()
    opt.step()
    opt.zero_grad()
    return float(out.loss.detach())


# --- choices ---------------------------------------------------------------------------------------


def test_auto_attention_on_cpu_is_sdpa_with_reason() -> None:
    impl, reason = choose_attention("auto", CPU)
    assert impl == "sdpa"
    assert "cpu" in reason and "flash_attention_2" in reason


def test_forced_attention_is_returned_as_is() -> None:
    assert choose_attention("eager", CPU) == ("eager", "forced by config")
    assert choose_attention("flash_attention_2", CPU) == ("flash_attention_2", "forced by config")


def test_auto_attention_without_sdpa_is_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.nn.functional, "scaled_dot_product_attention")
    impl, reason = choose_attention("auto", CPU)
    assert impl == "eager"
    assert "scaled_dot_product_attention" in reason


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash_attn is installed")
def test_forced_flash_attention_without_package_is_a_model_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError) as err:
        load_model_for_training(str(tiny_model_dir), _cfg(attn="flash_attention_2"), CPU)
    assert "flash_attention_2" in err.value.message
    assert err.value.hint and "attn_implementation" in err.value.hint and "flash-attn" in err.value.hint


def test_dtype_choice_on_cpu() -> None:
    dtype, reason = choose_dtype("auto", CPU)
    assert dtype == torch.float32 and "cpu" in reason
    assert choose_dtype("fp32", CPU) == (torch.float32, "forced by config")
    assert choose_dtype("bf16", CPU) == (torch.bfloat16, "forced by config")
    with pytest.raises(ModelError) as err:
        choose_dtype("fp16", CPU)
    assert "fp16" in err.value.message and err.value.hint
    with pytest.raises(ModelError):
        choose_dtype("int8", CPU)


# --- loading ---------------------------------------------------------------------------------------


def test_full_load(tiny_model_dir: Path) -> None:
    with no_deprecations():
        loaded = load_model_for_training(str(tiny_model_dir), _cfg(), CPU)
    model = loaded.model
    assert not loaded.is_lora and loaded.lora_source is None
    assert loaded.base_model_path == str(tiny_model_dir.resolve())
    assert loaded.attn_implementation == "sdpa"
    assert model.config._attn_implementation == "sdpa"
    assert loaded.dtype == torch.float32 and loaded.weights_dtype == torch.float32
    assert model.config.use_cache is False
    assert model.training
    assert loaded.trainable_params == loaded.total_params > 0
    assert all(p.device.type == "cpu" for p in model.parameters())
    text = "\n".join(loaded.decisions)
    for fragment in ("attention: sdpa", "precision: fp32", "gradient checkpointing: on", "full fine-tune", "trainable"):
        assert fragment in text
    assert _train_step(loaded) > 0


def test_new_lora_trains_only_lora_params(tiny_model_dir: Path) -> None:
    with no_deprecations():
        loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
    assert loaded.is_lora and loaded.lora_source == "new"
    assert isinstance(loaded.model, PeftModel)
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert 0 < loaded.trainable_params < loaded.total_params
    assert any("new LoRA adapter (r=4, alpha=8" in d for d in loaded.decisions)
    assert loaded.model.get_base_model().config.use_cache is False
    before = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if not p.requires_grad}
    with no_deprecations():
        _train_step(loaded)
    after = dict(loaded.model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_new_lora_init_is_seeded(tiny_model_dir: Path) -> None:
    def lora_a() -> torch.Tensor:
        loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
        return next(p for n, p in loaded.model.named_parameters() if "lora_A" in n).detach().clone()

    assert torch.equal(lora_a(), lora_a())


@pytest.mark.parametrize("lora", [False, True])
def test_gradient_checkpointing_flag(tiny_model_dir: Path, lora: bool) -> None:
    on = load_model_for_training(str(tiny_model_dir), _cfg(lora=lora, checkpointing=True), CPU)
    base = on.model.get_base_model() if lora else on.model
    assert on.gradient_checkpointing and base.is_activation_checkpointing
    with no_deprecations():
        _train_step(on)  # gradients reach the (LoRA) params through checkpointed layers
    off = load_model_for_training(str(tiny_model_dir), _cfg(lora=lora, checkpointing=False), CPU)
    base_off = off.model.get_base_model() if lora else off.model
    assert not off.gradient_checkpointing and not base_off.is_activation_checkpointing
    assert any("gradient checkpointing: off" in d for d in off.decisions)


def test_checkpointed_lora_backward_reaches_adapter(tiny_model_dir: Path) -> None:
    loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True, checkpointing=True), CPU)
    for name, param in loaded.model.named_parameters():
        if "lora_A" in name:
            torch.nn.init.normal_(param)
    ids = loaded.tokenizer("hello there", return_tensors="pt")["input_ids"]
    loaded.model(input_ids=ids, labels=ids).loss.backward()
    lora_grads = [p.grad for n, p in loaded.model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_save_adapter_then_continue_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
    _train_step(loaded)
    trained = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if p.requires_grad}
    out = tmp_path / "adapter"
    with no_deprecations():
        save_trained_model(loaded.model, loaded.tokenizer, out)
    info = inspect_model_dir(out)
    assert info.valid and info.kind == "lora-adapter" and info.has_tokenizer
    assert info.base_model == str(tiny_model_dir.resolve())
    assert Path(info.base_model).is_absolute()

    with no_deprecations():
        again = load_model_for_training(str(out), _cfg(lora=False), CPU)
    assert again.is_lora and again.lora_source == "continued"
    assert again.base_model_path == str(tiny_model_dir.resolve())
    assert again.trainable_params == loaded.trainable_params
    params = dict(again.model.named_parameters())
    for name, value in trained.items():
        assert params[name].requires_grad
        assert torch.allclose(params[name], value), name
    assert any("continue LoRA adapter" in d for d in again.decisions)
    with no_deprecations():
        _train_step(again)


def test_adapter_with_relative_base_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "base")
    loaded = load_model_for_training(str(tmp_path / "base"), _cfg(lora=True), CPU)
    adapter = tmp_path / "adapters" / "a1"
    save_trained_model(loaded.model, loaded.tokenizer, adapter)
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "../../base"
    config_path.write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (adapter / name).unlink(missing_ok=True)
    assert resolve_base_model(adapter, "../../base") == str((tmp_path / "base").resolve())
    again = load_model_for_training(str(adapter), _cfg(), CPU)
    assert again.base_model_path == str((tmp_path / "base").resolve())
    # no tokenizer in the adapter dir: the base model's is used
    assert load_tokenizer(adapter).eos_token == "<|im_end|>"


def test_full_model_dir_with_stray_adapter_loads_the_full_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    """transformers would apply a stray adapter_config.json on top of full weights; we load the full model."""
    lora = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
    _train_step(lora)
    save_trained_model(lora.model, lora.tokenizer, tmp_path / "adapter")
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_model_dir, mixed)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(tmp_path / "adapter" / name, mixed / name)
    loaded = load_model_for_training(str(mixed), _cfg(), CPU)
    assert not loaded.is_lora
    assert not any("lora" in n for n, _ in loaded.model.named_parameters())
    assert loaded.model.name_or_path == str(mixed.resolve())
    new_lora = load_model_for_training(str(mixed), _cfg(lora=True), CPU)
    save_trained_model(new_lora.model, new_lora.tokenizer, tmp_path / "adapter2")
    config = json.loads((tmp_path / "adapter2" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(mixed.resolve())


def test_adapter_with_missing_base_is_a_model_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
    adapter = tmp_path / "adapter"
    save_trained_model(loaded.model, loaded.tokenizer, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as err:
        load_model_for_training(str(adapter), _cfg(), CPU)
    assert "gone" in err.value.message and "base_model_name_or_path" in (err.value.hint or "")


def test_hub_id_not_available_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as err:
        load_model_for_training("trainerd-test/no-such-model", _cfg(), CPU)
    assert "trainerd-test/no-such-model" in err.value.message
    assert "could not be found locally or on the Hugging Face hub" in err.value.message
    assert err.value.hint and "local model dir" in err.value.hint


def test_missing_local_path_and_invalid_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        load_model_for_training(str(tmp_path / "nope" / "a" / "b"), _cfg(), CPU)
    assert "does not exist" in err.value.message
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(ModelError) as err:
        load_model_for_training(str(tmp_path / "broken"), _cfg(), CPU)
    assert "no weights" in err.value.message


# --- saving and inference --------------------------------------------------------------------------


def test_save_full_model_and_load_for_inference(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model_for_training(str(tiny_model_dir), _cfg(), CPU)
    _train_step(loaded)
    out = tmp_path / "full"
    with no_deprecations():
        save_trained_model(loaded.model, loaded.tokenizer, out)
    info = inspect_model_dir(out)
    assert info.valid and info.kind == "full" and info.weight_format == "safetensors" and info.has_tokenizer
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    assert loaded.model.config.use_cache is False
    with no_deprecations():
        model, tok = load_model_for_inference(out)
    assert not model.training
    ids = tok("hello", return_tensors="pt")["input_ids"]
    loaded.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, loaded.model(input_ids=ids).logits, atol=1e-5)


def test_load_adapter_for_inference_merged_or_not(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model_for_training(str(tiny_model_dir), _cfg(lora=True), CPU)
    _train_step(loaded)
    save_trained_model(loaded.model, loaded.tokenizer, tmp_path / "adapter")
    with no_deprecations():
        merged, tok = load_model_for_inference(tmp_path / "adapter")
        unmerged, _ = load_model_for_inference(tmp_path / "adapter", merge=False)
    assert not isinstance(merged, PeftModel) and isinstance(unmerged, PeftModel)
    assert not merged.training and not unmerged.training
    ids = tok("hello there", return_tensors="pt")["input_ids"]
    loaded.model.eval()
    with torch.no_grad():
        expected = loaded.model(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-4)
        assert torch.allclose(unmerged(input_ids=ids).logits, expected, atol=1e-5)
