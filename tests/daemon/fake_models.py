"""Small but valid model dirs (real safetensors, no torch) for the daemon's unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

RUN_JUNK = ("metrics.jsonl", "train.log", "result.json", "progress.json", "job.json")


def make_full_model(path: Path, seed: int = 0, run_junk: bool = True) -> Path:
    """A small but valid full model dir; with `run_junk` it looks like an engine run dir."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"lm_head.weight": rng.standard_normal((8, 4)).astype(np.float32)}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}))
    (path / "generation_config.json").write_text(json.dumps({"max_new_tokens": 8}))
    (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}, "seed": seed}))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (path / "chat_template.jinja").write_text("{{ messages }}")
    if run_junk:
        for name in RUN_JUNK:
            (path / name).write_text("{}\n")
        checkpoint = path / "checkpoints" / "checkpoint-5"
        checkpoint.mkdir(parents=True)
        (checkpoint / "optimizer.pt").write_bytes(b"state")
    return path


def make_adapter(path: Path, base: str, seed: int = 0) -> Path:
    """A small but valid LoRA adapter dir naming `base`."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {"base_model.model.q_proj.lora_A.weight": rng.standard_normal((2, 4)).astype(np.float32)}
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "base_model_name_or_path": base, "r": 2, "target_modules": ["q_proj"]}
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    (path / "metrics.jsonl").write_text("{}\n")  # run-dir junk that must not reach a version
    return path
