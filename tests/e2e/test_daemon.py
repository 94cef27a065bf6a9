"""The daemon as a user runs it: real processes, a temp base dir, the tiny model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.daemon_helpers import (
    FAST_SETTINGS,
    current_version,
    daemon_log,
    drop,
    history,
    init_base,
    job_step,
    start_daemon,
    status,
    trainerd,
    wait_until,
    write_data,
)
from trainerd.models.inspect import inspect_model_dir


def stop_daemon(base: Path, proc: subprocess.Popen[str]) -> int:
    result = trainerd("stop", "--base-dir", str(base))
    assert result.returncode == 0, result.stderr
    return proc.wait(timeout=120)


def test_priority_order_invalid_file_status_history_and_stop(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base")
    normal = write_data(tmp_path / "normal.jsonl", 40, seed=1)
    urgent = write_data(tmp_path / "urgent.jsonl", 40, seed=2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
        '{"messages": [{"role": "user", "content": "no answer"}]}\n'
        "not json at all\n"
    )
    # all three are in the inbox before the daemon looks, so priority alone decides the order
    drop(base, normal, "normal.jsonl")
    drop(base, bad, "bad.jsonl")
    drop(base, urgent, "urgent.jsonl", priority="high")
    proc = start_daemon(base)
    try:
        wait_until(lambda: len([h for h in history(base) if h.get("outcome") == "promoted"]) == 2, what="two jobs")
        wait_until(lambda: status(base).get("state") == "idle", what="idle state")
    finally:
        code = stop_daemon(base, proc)
    assert code == 0, daemon_log(base)[-3000:]
    promoted = [h for h in history(base) if h.get("outcome") == "promoted"]
    assert [h["file"] for h in promoted] == ["urgent.jsonl", "normal.jsonl"]
    assert [h["version"] for h in promoted] == ["v000002", "v000003"]
    assert promoted[1]["global_step_start"] == promoted[0]["global_step"]  # the global step keeps counting
    assert current_version(base) == "v000003"
    rejected = [h for h in history(base) if h.get("outcome") == "rejected"]
    assert [h["file"] for h in rejected] == ["bad.jsonl"]
    errors = list((base / "queue" / "failed").glob("*.error.json"))
    assert len(errors) == 1
    error = json.loads(errors[0].read_text())
    assert "bad.jsonl:2" in error["reason"] and error["hint"]
    assert [(p["source"], p["line"]) for p in error["problems"]] == [("bad.jsonl", 2), ("bad.jsonl", 3)]
    assert all(p["fix"] for p in error["problems"])
    assert error["original_name"] == "bad.jsonl"
    failed_data = list((base / "queue" / "failed").glob("*.jsonl"))
    assert len(failed_data) == 1 and failed_data[0].read_bytes() == bad.read_bytes()  # the file is kept as given
    final = status(base)
    assert final["state"] == "stopped" and final["queue"]["failed"] == 1 and final["queue"]["done"] == 2
    shown = trainerd("status", "--base-dir", str(base))
    assert "stopped" in shown.stdout and "v000003" in shown.stdout
    listed = trainerd("history", "--base-dir", str(base))
    assert "urgent.jsonl" in listed.stdout and "rejected" in listed.stdout


def test_pause_resume_skip_and_stop_through_the_cli(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base", settings=(*FAST_SETTINGS, "hyperparams.num_epochs=40"))
    # 400 examples x 40 epochs = 2,000 steps: far more than the seconds a CLI call takes on a busy box
    drop(base, write_data(tmp_path / "long.jsonl", 400, seed=3), "long.jsonl")
    proc = start_daemon(base)
    try:
        wait_until(lambda: job_step(base) >= 12, what="training to reach step 12")
        assert trainerd("pause", "--base-dir", str(base)).returncode == 0
        wait_until(lambda: status(base).get("state") == "paused", timeout=60, what="paused state")
        paused = json.loads((next((base / "runs").iterdir()) / "result.json").read_text())
        paused_step = paused["steps"]
        assert paused["stopped"] == "pause"
        assert 12 <= paused_step < 2000  # the pause took effect mid-file, not at its end
        import time

        time.sleep(1.5)
        assert status(base)["state"] == "paused"
        assert trainerd("resume", "--base-dir", str(base)).returncode == 0
        wait_until(lambda: status(base).get("state") == "training" and job_step(base) > paused_step,
                   what="training to continue after resume")  # fmt: skip
        resumed_from = wait_until(lambda: "resuming job" in daemon_log(base), what="resume log")
        assert resumed_from
        # skip: abandon the file without touching the model
        before = current_version(base)
        assert trainerd("skip", "--base-dir", str(base)).returncode == 0
        wait_until(lambda: any(h.get("outcome") == "skipped" for h in history(base)), what="skip")
        assert current_version(base) == before
        assert list((base / "queue" / "failed").glob("*long*.jsonl"))
        # stop mid-job: exit 0, the job resumes on the next start
        drop(base, write_data(tmp_path / "next.jsonl", 40, seed=4), "next.jsonl")
        wait_until(lambda: job_step(base) >= 6, what="second job to train")
    finally:
        code = stop_daemon(base, proc)
    assert code == 0
    assert list((base / "queue" / "processing").glob("*.jsonl")), "the stopped job waits in processing/"
    stopped_step = json.loads(next((base / "runs").glob("*next*/result.json")).read_text())["global_step"]
    again = start_daemon(base, "--exit-when-idle")
    assert again.wait(timeout=300) == 0, daemon_log(base)[-3000:]
    last = history(base)[-1]
    assert last["outcome"] == "promoted" and last["file"] == "next.jsonl"
    assert last["global_step_start"] < stopped_step < last["global_step"]


def test_kill_9_mid_job_resumes_from_checkpoint_and_loses_nothing(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base", settings=(*FAST_SETTINGS, "hyperparams.num_epochs=25"))
    files = {
        "a.jsonl": write_data(tmp_path / "a.jsonl", 40, seed=5),
        "b.jsonl": write_data(tmp_path / "b.jsonl", 24, seed=6),
    }
    for name, path in files.items():
        drop(base, path, name)
    proc = start_daemon(base)
    wait_until(lambda: list((base / "runs").glob("*/checkpoints/checkpoint-10/COMPLETE")), what="a checkpoint")
    assert inspect_model_dir(base / "current_model").valid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert inspect_model_dir(base / "current_model").valid
    again = start_daemon(base, "--exit-when-idle")
    samples = 0
    while again.poll() is None:
        assert inspect_model_dir(base / "current_model").valid  # current_model is complete at every point
        samples += 1
        with contextlib.suppress(subprocess.TimeoutExpired):
            again.wait(timeout=0.5)
    assert again.returncode == 0, daemon_log(base)[-3000:]
    assert samples > 3
    log = daemon_log(base)
    assert "resuming job" in log
    engine_logs = "".join(p.read_text() for p in (base / "runs").glob("*/train.log"))
    assert "resumed from" in engine_logs  # from its checkpoint, not from step 0
    promoted = [h for h in history(base) if h.get("outcome") == "promoted"]
    assert sorted(h["file"] for h in promoted) == ["a.jsonl", "b.jsonl"]  # each trained to completion once
    done = sorted(json.loads(p.read_text())["original_name"] for p in (base / "queue" / "done").glob("*.job.json"))
    assert done == ["a.jsonl", "b.jsonl"]
    for name, path in files.items():  # every input file accounted for, byte for byte
        kept = [p for p in (base / "queue" / "done").glob("*.jsonl") if p.read_bytes() == path.read_bytes()]
        assert kept, name
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(base / "current_model")


def test_second_daemon_refused_and_stale_lock_ignored(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base")
    # a lock file left by a dead process must not block a start
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (base / "daemon.lock").write_text(json.dumps({"pid": int(dead.stdout)}))
    first = start_daemon(base)
    try:
        wait_until(lambda: status(base).get("pid") == first.pid, what="first daemon status")
        second = trainerd("daemon", "--base-dir", str(base), timeout=60)
        assert second.returncode != 0
        assert str(first.pid) in second.stderr
    finally:
        assert stop_daemon(base, first) == 0


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # peft's own call
def test_whole_cycle_with_snapshots_and_rollback(tmp_path: Path, lora: bool) -> None:
    base = init_base(tmp_path / "base", lora=lora)
    drop(base, write_data(tmp_path / "one.jsonl", 32, seed=7), "one.jsonl")
    drop(base, write_data(tmp_path / "two.jsonl", 32, seed=8), "two.jsonl")
    proc = start_daemon(base, "--exit-when-idle")
    assert proc.wait(timeout=300) == 0, daemon_log(base)[-3000:]
    assert current_version(base) == "v000003"
    kind = inspect_model_dir(base / "current_model").kind
    assert kind == ("lora-adapter" if lora else "full")
    assert trainerd("snapshot", "create", "--base-dir", str(base)).returncode == 0
    listed = trainerd("snapshot", "list", "--base-dir", str(base), "--json")
    snapshot = json.loads(listed.stdout)[-1]["name"]
    assert trainerd("snapshot", "verify", snapshot, "--base-dir", str(base)).returncode == 0
    rolled = trainerd("rollback", "--base-dir", str(base), "--to", "v000002")
    assert rolled.returncode == 0, rolled.stderr
    assert current_version(base) == "v000002"
    from transformers import AutoModelForCausalLM

    if lora:
        from peft import AutoPeftModelForCausalLM

        AutoPeftModelForCausalLM.from_pretrained(base / "current_model")
    else:
        AutoModelForCausalLM.from_pretrained(base / "current_model")
    restored = trainerd("rollback", "--base-dir", str(base), "--to", snapshot)
    assert restored.returncode == 0, restored.stderr
    assert current_version(base) == "v000004"  # a snapshot comes back as a new version
    # one changed byte in the snapshot is caught, and a damaged snapshot is not restored
    snap_dir = base / "snapshots" / snapshot
    victim = next(p for p in sorted(snap_dir.rglob("*")) if p.is_file() and p.name != "MANIFEST.json")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    verify = trainerd("snapshot", "verify", snapshot, "--base-dir", str(base))
    assert verify.returncode != 0 and victim.name in verify.stdout
    refused = trainerd("rollback", "--base-dir", str(base), "--to", snapshot)
    assert refused.returncode != 0 and current_version(base) == "v000004"
    assert os.path.isdir(base / "models" / "v000001")  # the base of every adapter is kept


def test_failing_job_is_retried_then_failed_with_every_error(tmp_path: Path) -> None:
    base = init_base(
        tmp_path / "base",
        settings=(*FAST_SETTINGS, "hyperparams.learning_rate=1e12", "hyperparams.max_grad_norm=1e30",
                  "daemon.max_retries=1"),
    )  # fmt: skip
    drop(base, write_data(tmp_path / "boom.jsonl", 40, seed=10), "boom.jsonl")
    proc = start_daemon(base, "--exit-when-idle")
    assert proc.wait(timeout=300) == 0, daemon_log(base)[-3000:]
    assert current_version(base) == "v000001"  # a failed job never touches the current model
    errors = list((base / "queue" / "failed").glob("*.error.json"))
    assert len(errors) == 1
    error = json.loads(errors[0].read_text())
    assert len(error["errors"]) == 2 and all("loss became" in e["reason"] for e in error["errors"])
    outcomes = [h["outcome"] for h in history(base)]
    assert outcomes == ["retrying", "failed"]


def test_low_disk_space_is_a_clear_error_and_nothing_starts(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base", settings=(*FAST_SETTINGS[:-1], "daemon.min_free_disk_gb=1000000"))
    drop(base, write_data(tmp_path / "a.jsonl", 16, seed=11), "a.jsonl")
    proc = start_daemon(base)
    try:
        wait_until(lambda: status(base).get("state") == "error", what="error state")
        assert "min_free_disk_gb" in status(base)["message"]
        assert not list((base / "runs").glob("*/job.json"))
    finally:
        assert stop_daemon(base, proc) == 0
    assert list((base / "queue" / "normal").glob("*.jsonl")), "the file waits in the queue"


def test_daemon_runs_a_job_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    """The multi-GPU path on CPUs: the same engine under torchrun, two gloo ranks; a pause lands on both at once."""
    settings = (*FAST_SETTINGS, "daemon.launcher=torchrun", "daemon.num_processes=2", "hyperparams.num_epochs=100")
    base = init_base(tmp_path / "base", settings=settings)
    drop(base, write_data(tmp_path / "a.jsonl", 48, seed=12), "a.jsonl")  # 6 micro-batches per epoch
    proc = start_daemon(base, "--exit-when-idle")
    try:
        wait_until(lambda: job_step(base) >= 8, what="two-rank training to reach step 8")
        assert trainerd("pause", "--base-dir", str(base)).returncode == 0
        wait_until(lambda: status(base).get("state") == "paused", timeout=60, what="paused state")
        paused = json.loads(next((base / "runs").glob("*/result.json")).read_text())
        assert paused["stopped"] == "pause" and paused["checkpoint"]
        assert trainerd("resume", "--base-dir", str(base)).returncode == 0
        assert proc.wait(timeout=300) == 0, daemon_log(base)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    promoted = [h for h in history(base) if h.get("outcome") == "promoted"]
    assert len(promoted) == 1 and promoted[0]["steps"] == 300  # 600 micro-batches over 2 ranks
    log = next((base / "runs").glob("*/train.log")).read_text()
    assert "(2 process(es))" in log and "resumed from" in log
    assert inspect_model_dir(base / "current_model").valid


def test_kill_9_of_the_job_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    base = init_base(tmp_path / "base", settings=(*FAST_SETTINGS, "hyperparams.num_epochs=30"))
    drop(base, write_data(tmp_path / "a.jsonl", 40, seed=13), "a.jsonl")  # 150 steps
    proc = start_daemon(base, "--exit-when-idle")
    wait_until(lambda: list((base / "runs").glob("*/checkpoints/checkpoint-10/COMPLETE")), what="a checkpoint")
    engine_pid = wait_until(lambda: (status(base).get("current_job") or {}).get("engine_pid"), what="engine pid")
    os.kill(engine_pid, signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, daemon_log(base)[-3000:]
    outcomes = [h["outcome"] for h in history(base)]
    assert outcomes == ["retrying", "promoted"]
    assert "resumed from" in next((base / "runs").glob("*/train.log")).read_text()
    assert history(base)[-1]["global_step"] == 150 and current_version(base) == "v000002"
