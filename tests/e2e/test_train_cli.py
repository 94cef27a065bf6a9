"""`trainerd` as a user runs it: real processes on temp dirs with the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainerd.data.samples import write_sample_jsonl

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def trainerd(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainerd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainerd", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    write_sample_jsonl(path, 320, seed=11)
    return path


def train_args(data: Path, model: Path, out: Path, *extra: str) -> list[str]:
    """`trainerd train` arguments for one dataset, model and output dir."""
    return ["train", "--dataset", str(data), "--model", str(model), "--output", str(out), *extra]


def result_of(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_40_steps_learns_and_logs_its_decisions(
    tiny_model_dir: Path, data: Path, tmp_path: Path, lora: bool
) -> None:
    out = tmp_path / "out"
    args = train_args(
        data, tiny_model_dir, out, "--max-steps", "40",
        "--set", f"hyperparams.learning_rate={3e-2 if lora else 3e-3}", "--set", "hyperparams.save_steps=20",
    )  # fmt: skip
    proc = trainerd(*args, *(["--lora"] if lora else []))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = result_of(out)
    assert result["success"] and result["global_step"] == 40 and result["error"] is None
    assert result["final_loss"] < result["initial_loss"] * 0.9
    inspect = trainerd("model", "inspect", str(out), "--json")
    assert inspect.returncode == 0, inspect.stdout
    assert json.loads(inspect.stdout)["kind"] == ("lora-adapter" if lora else "full")
    log = (out / "train.log").read_text()
    for needle in (
        "system prompt used",
        "attention: sdpa (",
        "gradient checkpointing: on",
        "precision: fp32 (",
        "LoRA adapter" if lora else "full fine-tune",
        "trainable-token ratio",
    ):
        assert needle in log, needle
    assert (out / "metrics.jsonl").is_file() and (out / "checkpoints" / "checkpoint-20" / "COMPLETE").is_file()
    assert "Traceback" not in proc.stderr
    assert "FutureWarning" not in proc.stderr and "DeprecationWarning" not in proc.stderr


def test_legacy_flat_config_trains_with_one_deprecation_warning(
    tiny_model_dir: Path, data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    flat = {
        "model_path": str(tiny_model_dir),
        "batch_size": 4,
        "learning_rate": 0.003,
        "max_steps": 12,
        "use_gradient_checkpointing": False,
        "profile": "default",
    }
    config.write_text(json.dumps(flat))
    out = tmp_path / "out"
    proc = trainerd("train", "--dataset", str(data), "--config", str(config), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "deprecat" in line.lower()]
    assert len(warnings) == 1 and "batch_size" in warnings[0] and "model_path" in warnings[0]
    assert result_of(out)["global_step"] == 12
    assert "gradient checkpointing: off" in (out / "train.log").read_text()

    migrated = trainerd("config", "migrate", str(config))
    assert migrated.returncode == 0, migrated.stderr
    nested = json.loads(config.read_text())
    assert nested["hyperparams"]["batch_size"] == 4 and nested["model"]["path"] == str(tiny_model_dir)
    assert "batch_size" not in nested
    backups = list(tmp_path.glob("config.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == flat
    again = trainerd("config", "migrate", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    shown = trainerd("config", "show", "--config", str(config))
    assert "hyperparams.batch_size" in shown.stdout and "file" in shown.stdout
    assert "deprecat" not in shown.stderr.lower()


def test_misspelt_key_fails_fast_naming_it(tiny_model_dir: Path, data: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hyperparams": {"learnin_rate": 0.1}}))
    started = time.monotonic()
    proc = trainerd(*train_args(data, tiny_model_dir, tmp_path / "o", "--config", str(config)))
    assert proc.returncode != 0
    assert "learnin_rate" in proc.stderr and "hyperparams.learning_rate" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
    assert time.monotonic() - started < 60
    bad_set = trainerd("config", "show", "--set", "hyperparams.batch_sise=3")
    assert bad_set.returncode != 0 and "batch_size" in bad_set.stderr


def test_bad_data_is_a_readable_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "user", "content": "hi"}\n'
    )
    proc = trainerd(*train_args(bad, tiny_model_dir, tmp_path / "o"))
    assert proc.returncode == 1
    assert "bad.jsonl:2" in proc.stderr and "Traceback" not in proc.stderr
    result = result_of(tmp_path / "o")
    assert result["success"] is False and "bad.jsonl:2" in result["error"]
    check = trainerd("data", "check", str(bad))
    assert check.returncode != 0 and "bad.jsonl:2" in (check.stdout + check.stderr)


def test_data_check_summarises(tiny_model_dir: Path, data: Path) -> None:
    proc = trainerd("data", "check", str(data), "--model", str(tiny_model_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["examples"] == 320 and summary["truncated_examples"] == 0
    assert 0 < summary["trainable_token_ratio"] < 1


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["sigint", "kill9"])
def test_interrupted_training_resumes_from_its_checkpoint(
    tiny_model_dir: Path, data: Path, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "out"
    args = train_args(
        data, tiny_model_dir, out, "--max-steps", "150",
        "--set", "hyperparams.save_steps=5", "--set", "hyperparams.save_total_limit=3",
    )  # fmt: skip
    proc = start(*args)
    wait_for(out / "checkpoints" / "checkpoint-10" / "COMPLETE")
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    proc.wait(timeout=120)
    if how == "sigint":
        assert proc.returncode == 3
        stopped = result_of(out)
        assert stopped["stopped"] == "interrupt" and stopped["checkpoint"]
    else:
        assert proc.returncode == -signal.SIGKILL
    refused = trainerd(*args)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    resumed = trainerd(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = result_of(out)
    assert result["success"] and result["global_step"] == 150
    assert result["resumed_from"] and int(result["resumed_from"].rsplit("-", 1)[1]) >= 10
    assert json.loads(trainerd("model", "inspect", str(out), "--json").stdout)["valid"]
