"""The engine in-process on the tiny model: training, LoRA, resume, stop requests, NaN, checkpoints."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainerd.config.load import config_to_dict
from trainerd.config.schema import TrainerdConfig
from trainerd.data.samples import write_sample_jsonl
from trainerd.engine import checkpoint
from trainerd.engine.engine import run_job
from trainerd.engine.spec import JobSpec, TrainingResult
from trainerd.files import atomic_write_json, read_jsonl_tolerant
from trainerd.models.inspect import inspect_model_dir


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    write_sample_jsonl(path, 240, seed=3)
    return path


def make_spec(model: Path, dataset: Path, out: Path, **hyper: object) -> JobSpec:
    cfg = TrainerdConfig()
    cfg.hyperparams.learning_rate = 3e-3
    cfg.hyperparams.max_steps = 20
    cfg.hyperparams.save_steps = 10
    cfg.hyperparams.use_gradient_checkpointing = False
    for key, value in hyper.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return JobSpec(datasets=[str(dataset)], model=str(model), output_dir=str(out), config=config_to_dict(cfg))


def run(spec: JobSpec) -> TrainingResult:
    return run_job(spec, log_to_console=False, show_progress_bar=False)


def test_full_training_learns_and_leaves_a_complete_output(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    result = run(make_spec(tiny_model_dir, dataset, out, hyperparams__max_steps=40, hyperparams__logging_steps=5))
    assert result.success, result.error
    assert result.steps == 40 and result.global_step == 40
    assert result.final_loss is not None and result.initial_loss is not None
    assert result.final_loss < result.initial_loss * 0.8
    assert result.tokens_per_second and result.tokens_per_second > 0
    assert 0 < (result.trainable_token_ratio or 0) < 1
    info = inspect_model_dir(out)
    assert info.valid and info.kind == "full" and info.has_tokenizer
    saved = json.loads((out / "result.json").read_text())
    for key in (
        "success",
        "global_step",
        "initial_loss",
        "final_loss",
        "tokens_per_second",
        "trainable_token_ratio",
        "runtime_seconds",
        "output_dir",
        "error",
    ):
        assert key in saved
    assert saved["error"] is None
    metrics = read_jsonl_tolerant(out / "metrics.jsonl")
    assert [row["step"] for row in metrics] == list(range(5, 41, 5))
    assert {"loss", "lr", "grad_norm", "tokens_per_second"} <= set(metrics[0])
    assert json.loads((out / "progress.json").read_text())["state"] == "done"
    log = (out / "train.log").read_text()
    for needle in (
        "system prompt used",
        "attention: sdpa",
        "gradient checkpointing: off",
        "precision: fp32",
        "full fine-tune",
        "trainable-token ratio",
    ):
        assert needle in log
    assert [p.name for p in checkpoint.list_checkpoints(out / "checkpoints")] == ["checkpoint-20", "checkpoint-30"]


def test_lora_training_saves_an_adapter(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora"
    spec = make_spec(
        tiny_model_dir,
        dataset,
        out,
        hyperparams__max_steps=30,
        hyperparams__learning_rate=1e-2,
        lora__enabled=True,
        lora__r=8,
    )
    result = run(spec)
    assert result.success, result.error
    assert result.model_kind == "lora-adapter"
    assert result.final_loss is not None and result.initial_loss is not None
    assert result.final_loss < result.initial_loss
    info = inspect_model_dir(out)
    assert info.valid and info.kind == "lora-adapter"
    assert "new LoRA adapter" in (out / "train.log").read_text()
    # continue the adapter: starts from the adapter dir, ends as an adapter again
    again = run(make_spec(out, dataset, tmp_path / "lora2", hyperparams__max_steps=5))
    assert again.success, again.error
    assert inspect_model_dir(tmp_path / "lora2").kind == "lora-adapter"
    assert "continue LoRA adapter" in (tmp_path / "lora2" / "train.log").read_text()


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_resume_from_checkpoint_gives_the_same_model(
    tiny_model_dir: Path, dataset: Path, tmp_path: Path, lora: bool
) -> None:
    extra = {"lora__enabled": True, "lora__dropout": 0.0} if lora else {}
    straight = tmp_path / "straight"
    assert run(make_spec(tiny_model_dir, dataset, straight, hyperparams__gradient_accumulation=2, **extra)).success
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-10", resumed / "checkpoints" / "checkpoint-10")
    # a half-written checkpoint (no COMPLETE marker) must be ignored, even with a higher number
    (resumed / "checkpoints" / "checkpoint-15").mkdir()
    spec = make_spec(tiny_model_dir, dataset, resumed, hyperparams__gradient_accumulation=2, **extra)
    result = run(spec)
    assert result.success, result.error
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-10")
    assert result.steps == 20
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    if lora:  # the checkpoint holds the adapter only, not a copy of the frozen base
        saved = load_file(straight / "checkpoints" / "checkpoint-10" / "model.safetensors")
        assert saved and all("lora_" in key for key in saved)
    a = load_file(straight / weights)
    b = load_file(resumed / weights)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_corrupt_newest_checkpoint_falls_back_to_previous(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert run(make_spec(tiny_model_dir, dataset, first, hyperparams__max_steps=20, hyperparams__save_steps=5)).success
    out = tmp_path / "second"
    shutil.copytree(first / "checkpoints", out / "checkpoints")
    newest = checkpoint.list_checkpoints(out / "checkpoints")[-1]
    for weights in newest.glob("*.safetensors"):
        weights.write_bytes(b"garbage")
    result = run(make_spec(tiny_model_dir, dataset, out, hyperparams__max_steps=20, hyperparams__save_steps=5))
    assert result.success, result.error
    assert result.resumed_from is not None and Path(result.resumed_from).name == "checkpoint-10"


def test_stop_request_checkpoints_and_resume_continues(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    control = tmp_path / "control"
    control.mkdir()
    spec = make_spec(tiny_model_dir, dataset, out, hyperparams__max_steps=400, hyperparams__save_steps=1000)
    spec.control_dir = str(control)
    spec.global_step_offset = 100

    def request_stop() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if json.loads((out / "progress.json").read_text()).get("step", 0) >= 3:
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        atomic_write_json(control / "request.json", {"action": "stop"})

    stopper = threading.Thread(target=request_stop)
    stopper.start()
    result = run(spec)
    stopper.join()
    assert not result.success and result.stopped == "stop"
    assert result.checkpoint is not None
    stopped_at = result.steps
    assert 3 <= stopped_at < 400
    assert result.global_step == 100 + stopped_at
    assert not (out / "model.safetensors").exists()  # no final model for an unfinished job
    (control / "request.json").unlink()
    spec.config["hyperparams"]["max_steps"] = stopped_at + 5
    again = run(spec)
    assert again.success, again.error
    assert again.steps == stopped_at + 5 and again.global_step == 100 + stopped_at + 5


def test_nan_loss_stops_with_a_clear_error(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    spec = make_spec(
        tiny_model_dir,
        dataset,
        out,
        hyperparams__learning_rate=1e12,
        hyperparams__max_grad_norm=1e30,
        hyperparams__max_steps=40,
    )
    result = run(spec)
    assert not result.success
    assert result.error and "loss became" in result.error and "learning_rate" in result.error
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / "result.json").read_text())["success"] is False


def test_bad_data_fails_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    result = run(make_spec(tiny_model_dir, bad, tmp_path / "out"))
    assert not result.success
    assert result.error and "bad.jsonl:1" in result.error
    assert result.steps == 0


def test_packed_and_padded_layouts_give_the_same_loss(tiny_model_dir: Path, dataset: Path) -> None:
    """The loss of a micro-batch does not depend on the layout (packed row vs padded rows)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainerd.data.pack import collate_packed, collate_padded
    from trainerd.data.samples import sample_conversations
    from trainerd.data.tokenize import tokenize_conversations
    from trainerd.engine.engine import micro_batch_loss
    from trainerd.engine.loss import CausalLMWithChunkedLoss

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    examples = tokenize_conversations(sample_conversations(6, seed=5), tokenizer, max_length=256).examples
    for use_mask in (True, False):
        loss_model = CausalLMWithChunkedLoss(model, chunk_tokens=0, logits_mask=use_mask)
        with torch.no_grad():
            packed, n_packed = micro_batch_loss(loss_model, collate_packed(examples))
            padded, n_padded = micro_batch_loss(loss_model, collate_padded(examples, tokenizer.pad_token_id))
        assert n_packed == n_padded == sum(e.num_trainable for e in examples)
        torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-4)


def test_forced_packing_trains(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    result = run(make_spec(tiny_model_dir, dataset, out, data__packing="packed", hyperparams__max_steps=30))
    assert result.success, result.error
    assert result.final_loss is not None and result.initial_loss is not None
    assert result.final_loss < result.initial_loss
    assert "batches: packed rows (data.packing=packed)" in result.decisions


QWEN3_STYLE_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- message['content'] + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)


def test_emoji_think_profile_replaces_a_thinking_template(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    """A Qwen3-style template that injects <think> is swapped for ChatML; the profile's prompt is used and logged."""
    model = tmp_path / "qwen3-style"
    shutil.copytree(tiny_model_dir, model)
    config_path = model / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["chat_template"] = QWEN3_STYLE_TEMPLATE
    config_path.write_text(json.dumps(tokenizer_config))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    out = tmp_path / "emoji"
    spec = make_spec(model, dataset, out, hyperparams__max_steps=6, profile__name="emoji_think")
    result = run(spec)
    assert result.success, result.error
    log = (out / "train.log").read_text()
    assert "injects <think>" in log and "ChatML" in log
    assert "Current date: " in log  # the emoji_think system prompt template, with today's date
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(out)
    assert "<think>" not in saved.chat_template  # the model keeps the template it was trained with


def test_tensorboard_event_files_hold_the_logged_steps(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    spec = make_spec(tiny_model_dir, dataset, out, hyperparams__max_steps=10, hyperparams__logging_steps=2)
    spec.global_step_offset = 50
    assert run(spec).success
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [52, 54, 56, 58, 60]  # global steps, so jobs line up in one plot
    assert {"train/lr", "train/tokens_per_second", "train/grad_norm"} <= set(events.Tags()["scalars"])
