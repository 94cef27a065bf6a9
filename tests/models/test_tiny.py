"""The tiny model factory: offline, reloadable, chat-ready, byte-complete."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainerd.data.chat_template import CHATML_TEMPLATE
from trainerd.errors import ModelError
from trainerd.models.tiny import TINY_PRESETS, build_tiny_model, tiny_chat_tokenizer, tiny_corpus


def test_builds_expected_files_and_config(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert cfg["head_dim"] == 16
    assert cfg["hidden_size"] == 64
    assert cfg["tie_word_embeddings"] is True


def test_reloads_with_auto_classes(tiny_model_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert tok.chat_template == CHATML_TEMPLATE


def test_chat_template_round_trip_and_assistant_mask(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi 🚀"},
        {"role": "assistant", "content": "Hello there"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 🚀<|im_end|>\n"
        "<|im_start|>assistant\nHello there<|im_end|>\n"
    )
    enc = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    assert tok.decode(ids) == text
    assert sum(mask) > 0
    assistant = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert assistant == "Hello there<|im_end|>"


def test_special_and_think_tokens_are_single_tokens(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1, token
        assert tok.convert_ids_to_tokens(ids[0]) == token


@pytest.mark.parametrize("text", ["🙂🤔✅ emoji 🧬 and ❤️", "naïve café — 日本語 ∑", "<think>plan</think> done"])
def test_any_text_round_trips(tiny_model_dir: Path, text: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_tokenizer_is_deterministic_and_sized() -> None:
    a, b = tiny_chat_tokenizer(2048, seed=0), tiny_chat_tokenizer(2048, seed=0)
    assert a.get_vocab() == b.get_vocab()
    assert 1900 <= len(a) <= 2100
    assert tiny_corpus(50, seed=1) == tiny_corpus(50, seed=1)


def test_small_preset(tmp_path: Path) -> None:
    out = build_tiny_model(tmp_path / "small", preset="small")
    cfg = json.loads((out / "config.json").read_text())
    shape = TINY_PRESETS["small"]
    assert cfg["hidden_size"] == shape.hidden_size == 256
    assert cfg["head_dim"] == 32
    assert cfg["num_hidden_layers"] == 4
    assert cfg["vocab_size"] > 3500


def test_unknown_preset_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        build_tiny_model(tmp_path / "x", preset="huge")
    assert "huge" in err.value.message
    assert err.value.hint and "tiny" in err.value.hint


def test_build_raises_no_deprecation_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        build_tiny_model(tmp_path / "m", seed=3)
