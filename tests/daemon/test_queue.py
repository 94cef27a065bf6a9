"""JobQueue: priority/age order, moves that never lose or overwrite a file, retries, crash recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainerd.daemon.layout import BaseDir
from trainerd.daemon.queue import JobQueue, JobRecord, read_record
from trainerd.errors import TrainerdError
from trainerd.files import read_json, sha256_file

LINE = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})


@pytest.fixture
def base(tmp_path: Path) -> BaseDir:
    return BaseDir(tmp_path / "base").ensure()


@pytest.fixture
def queue(base: BaseDir) -> JobQueue:
    return JobQueue(base)


def drop(base: BaseDir, name: str, text: str = LINE + "\n") -> Path:
    path = base.inbox / name
    path.write_text(text)
    return path


def all_data_files(base: BaseDir) -> list[str]:
    """Every .jsonl anywhere under the base dir (to show nothing was lost or duplicated)."""
    return sorted(p.name for p in base.root.rglob("*.jsonl"))


def test_accept_moves_the_file_and_writes_its_record(base: BaseDir, queue: JobQueue) -> None:
    src = drop(base, "chat.jsonl", "content\n")
    digest = sha256_file(src)
    job = queue.accept(src, priority="high", original_name="chat.jsonl", source="inbox", meta={"priority": "high"})
    data = base.queue_dir("high") / f"{job.job_id}.jsonl"
    assert not src.exists() and data.read_text() == "content\n"
    assert job.job_id.endswith("-chat") and job.state == "queued" and job.priority == "high"
    assert job.size == 8 and job.sha256 == digest and job.attempts == 0 and job.errors == []
    stored = read_record(base.queue_dir("high") / f"{job.job_id}.job.json")
    assert stored == job
    assert queue.get(job.job_id) == job
    assert queue.data_path(job) == data
    assert queue.counts() == {"high": 1, "normal": 0, "low": 0, "processing": 0, "failed": 0, "done": 0}


def test_accept_removes_the_consumed_sidecar_and_copy_keeps_the_source(
    base: BaseDir, queue: JobQueue, tmp_path: Path
) -> None:
    src = drop(base, "a.jsonl")
    sidecar = base.inbox / "a.jsonl.meta.json"
    sidecar.write_text('{"priority": "low"}')
    job = queue.accept(src, priority="low", source="inbox", meta={"priority": "low"}, sidecar=sidecar)
    assert not sidecar.exists() and job.meta == {"priority": "low"} and job.original_name == "a.jsonl"
    outside = tmp_path / "mine.jsonl"
    outside.write_text(LINE + "\n")
    submitted = queue.accept(outside, priority="normal", source="submit", copy=True)
    assert outside.exists() and submitted.source == "submit"
    assert queue.data_path(submitted).read_text() == outside.read_text()
    assert not [p for p in base.queue_dir("normal").iterdir() if p.name.startswith(".")]


def test_accept_refuses_symlinks_missing_files_and_bad_priority(base: BaseDir, queue: JobQueue) -> None:
    target = drop(base, "real.jsonl")
    link = base.inbox / "link.jsonl"
    os.symlink(target, link)
    with pytest.raises(TrainerdError, match="symbolic link"):
        queue.accept(link, priority="normal")
    with pytest.raises(TrainerdError, match="does not exist"):
        queue.accept(base.inbox / "nope.jsonl", priority="normal")
    with pytest.raises(TrainerdError, match="unknown priority"):
        queue.accept(target, priority="urgent")
    assert target.exists() and link.is_symlink()


def test_duplicate_names_get_unique_ids_and_nothing_is_overwritten(base: BaseDir, queue: JobQueue) -> None:
    ids = []
    for text in ("one\n", "two\n", "three\n"):
        ids.append(queue.accept(drop(base, "same.jsonl", text), priority="normal", original_name="same.jsonl").job_id)
    assert len(set(ids)) == 3
    contents = sorted(queue.data_path(i).read_text() for i in ids)
    assert contents == ["one\n", "three\n", "two\n"]
    # A rejected file with the same name is not overwritten either.
    rejected = queue.reject(drop(base, "same.jsonl", "bad\n"), reason="bad", hint="fix it")
    assert rejected.stem not in ids and rejected.read_text() == "bad\n"


def test_next_job_priority_then_age_then_id(base: BaseDir, queue: JobQueue) -> None:
    old_low = queue.accept(drop(base, "old_low.jsonl"), priority="low", submitted_at=100.0)
    new_normal = queue.accept(drop(base, "new_normal.jsonl"), priority="normal", submitted_at=300.0)
    old_normal = queue.accept(drop(base, "old_normal.jsonl"), priority="normal", submitted_at=200.0)
    tie_b = queue.accept(drop(base, "b.jsonl"), priority="high", submitted_at=400.0)
    tie_a = queue.accept(drop(base, "a.jsonl"), priority="high", submitted_at=400.0)
    order = [j.job_id for j in queue.list_queued()]
    assert order == [j.job_id for j in (tie_a, tie_b, old_normal, new_normal, old_low)]
    next_job = queue.next_job()
    assert next_job is not None and next_job.job_id == tie_a.job_id


def test_start_allows_one_job_in_processing(base: BaseDir, queue: JobQueue) -> None:
    first = queue.accept(drop(base, "a.jsonl"), priority="normal")
    second = queue.accept(drop(base, "b.jsonl"), priority="normal")
    assert queue.processing() is None
    queue.start(first)
    assert first.state == "processing" and first.started_at is not None
    assert (base.processing / f"{first.job_id}.jsonl").exists()
    assert not (base.queue_dir("normal") / f"{first.job_id}.job.json").exists()
    running = queue.processing()
    assert running is not None and running.job_id == first.job_id and running.state == "processing"
    queue.start(first)  # already there: no-op
    with pytest.raises(TrainerdError, match=first.job_id):
        queue.start(second)
    assert second.state == "queued" and queue.locate(second.job_id) == base.queue_dir("normal")
    assert [j.job_id for j in queue.list_queued()] == [second.job_id]


def test_retries_then_failed_with_every_error(base: BaseDir, queue: JobQueue) -> None:
    job = queue.accept(drop(base, "flaky.jsonl"), priority="high")
    outcomes = []
    for n in range(3):
        queue.start(job)
        outcomes.append(
            queue.retry_or_fail(job, {"message": f"boom {n}", "hint": "lower batch_size", "exit_code": 1}, 2)
        )
        if outcomes[-1] == "requeued":
            assert queue.locate(job.job_id) == base.queue_dir("high") and job.state == "queued"
            assert read_record(base.queue_dir("high") / f"{job.job_id}.job.json").attempts == n + 1
    assert outcomes == ["requeued", "requeued", "failed"]
    assert job.state == "failed" and job.attempts == 3
    assert (base.failed / f"{job.job_id}.jsonl").read_text() == LINE + "\n"
    assert not list(base.failed.glob("*.job.json"))
    error = read_json(base.failed / f"{job.job_id}.error.json")
    assert [e["message"] for e in error["errors"]] == ["boom 0", "boom 1", "boom 2"]
    assert [e["attempt"] for e in error["errors"]] == [1, 2, 3]
    assert error["attempts"] == 3 and "boom 2" in error["reason"] and error["hint"] == "lower batch_size"
    assert error["original_name"] == "flaky.jsonl" and error["job"]["job_id"] == job.job_id
    assert error["job"]["state"] == "failed" and error["stage"] == "train"
    [listed] = queue.list_failed()
    assert listed["job_id"] == job.job_id and listed["data_file"] == str(base.failed / f"{job.job_id}.jsonl")
    assert queue.counts()["failed"] == 1 and queue.next_job() is None


def test_zero_retries_fails_at_once(base: BaseDir, queue: JobQueue) -> None:
    job = queue.start(queue.accept(drop(base, "a.jsonl"), priority="normal"))
    assert queue.retry_or_fail(job, {"message": "oom"}, max_retries=0) == "failed"


def test_finish_moves_to_done_with_outcome(base: BaseDir, queue: JobQueue) -> None:
    job = queue.start(queue.accept(drop(base, "a.jsonl"), priority="normal"))
    queue.finish(job, {"version": "v000002", "steps": 12})
    assert job.state == "done" and job.finished_at is not None
    [done] = queue.list_done()
    assert done.job_id == job.job_id and done.outcome == {"version": "v000002", "steps": 12}
    assert queue.processing() is None
    assert queue.counts() == {"high": 0, "normal": 0, "low": 0, "processing": 0, "failed": 0, "done": 1}


def test_skip_to_low_and_to_failed(base: BaseDir, queue: JobQueue) -> None:
    job = queue.start(queue.accept(drop(base, "a.jsonl"), priority="high"))
    queue.skip(job, to="low", reason="user asked")
    assert job.priority == "low" and job.state == "queued" and queue.locate(job.job_id) == base.queue_dir("low")
    assert job.notes["skips"][0]["from_priority"] == "high"
    stored = queue.get(job.job_id)
    assert stored is not None and stored.priority == "low" and stored.notes["skips"][0]["reason"] == "user asked"
    queue.start(job)
    queue.skip(job, to="failed", reason="not wanted")
    error = read_json(base.failed / f"{job.job_id}.error.json")
    assert error["reason"] == "skipped: not wanted" and "inbox" in error["hint"]
    assert queue.locate(job.job_id) == base.failed
    with pytest.raises(TrainerdError):
        queue.skip(job, to="high", reason="x")  # type: ignore[arg-type]


def test_reject_keeps_file_problems_and_sidecar(base: BaseDir, queue: JobQueue) -> None:
    src = drop(base, "bad.jsonl", "{oops\n")
    sidecar = base.inbox / "bad.jsonl.meta.json"
    sidecar.write_text("{not json")

    class Problem:  # shaped like data.validate.LineProblem
        def to_dict(self) -> dict[str, object]:
            return {"line": 1, "problem": "not JSON"}

    moved = queue.reject(
        src,
        original_name="bad.jsonl",
        reason="1 invalid line",
        hint="fix line 1",
        problems=[{"line": 2, "problem": "no assistant"}, Problem()],
        sidecar=sidecar,
    )
    assert moved.parent == base.failed and moved.read_text() == "{oops\n" and not src.exists()
    assert (base.failed / f"{moved.stem}.meta.json").read_text() == "{not json" and not sidecar.exists()
    error = read_json(base.failed / f"{moved.stem}.error.json")
    assert error["reason"] == "1 invalid line" and error["hint"] == "fix line 1"
    assert [p["line"] for p in error["problems"]] == [2, 1]
    assert error["original_name"] == "bad.jsonl" and error["attempts"] == 0 and error["time"]


def test_reject_moves_a_symlink_itself_never_its_target(base: BaseDir, queue: JobQueue, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text("secret\n")
    link = base.inbox / "evil.jsonl"
    os.symlink(outside, link)
    moved = queue.reject(link, reason="symlink", hint="copy it")
    assert moved.is_symlink() and outside.read_text() == "secret\n" and not os.path.lexists(link)


def test_recover_adopts_a_data_file_left_by_a_crash_in_accept(base: BaseDir, queue: JobQueue) -> None:
    # A crash after the rename and before the record write leaves only the .jsonl.
    (base.queue_dir("high") / "20250101-120000-crashed.jsonl").write_text(LINE + "\n")
    (base.queue_dir("normal") / "20250101-120001-plain.jsonl").write_text(LINE + "\n")
    assert queue.list_queued() == []
    actions = queue.recover()
    assert len([a for a in actions if "adopted" in a]) == 2
    queued = queue.list_queued()
    assert [(j.job_id, j.priority, j.source) for j in queued] == [
        ("20250101-120000-crashed", "high", "recovered"),
        ("20250101-120001-plain", "normal", "recovered"),
    ]
    assert queued[0].original_name == "crashed.jsonl"
    assert queue.recover() == []  # consistent now: nothing more to do


def test_recover_rehomes_a_record_left_behind_by_an_interrupted_move(base: BaseDir, queue: JobQueue) -> None:
    job = queue.accept(drop(base, "a.jsonl"), priority="normal")
    # Crash in start(): data renamed into processing/, record not yet moved.
    os.replace(base.queue_dir("normal") / f"{job.job_id}.jsonl", base.processing / f"{job.job_id}.jsonl")
    queue.recover()
    running = queue.processing()
    assert running is not None and running.job_id == job.job_id and running.state == "processing"
    assert running.sha256 == job.sha256 and running.source == "inbox"
    assert not (base.queue_dir("normal") / f"{job.job_id}.job.json").exists()
    # Crash after the new record was written but before the old one was removed.
    queue.finish(running, {"ok": True})
    (base.processing / f"{job.job_id}.job.json").write_text(json.dumps(running.to_dict() | {"state": "processing"}))
    queue.recover()
    assert not (base.processing / f"{job.job_id}.job.json").exists()
    assert [j.job_id for j in queue.list_done()] == [job.job_id]


def test_recover_in_failed_writes_missing_error_file(base: BaseDir, queue: JobQueue) -> None:
    job = queue.start(queue.accept(drop(base, "a.jsonl"), priority="normal"))
    # Crash in retry_or_fail after the rename to failed/, before the error file.
    os.replace(base.processing / f"{job.job_id}.jsonl", base.failed / f"{job.job_id}.jsonl")
    (base.failed / "20250101-000000-orphan.jsonl").write_text("x\n")
    queue.recover()
    failed = {e["job_id"]: e for e in queue.list_failed()}
    assert set(failed) == {job.job_id, "20250101-000000-orphan"}
    assert failed[job.job_id]["job"]["original_name"] == "a.jsonl"
    assert all(e["error_file"] for e in failed.values())
    assert not list(base.processing.iterdir())


def test_recover_removes_records_without_data_and_temp_files_but_no_data(base: BaseDir, queue: JobQueue) -> None:
    job = queue.accept(drop(base, "a.jsonl"), priority="low")
    ghost = JobRecord(job_id="20250101-000000-ghost", original_name="ghost.jsonl", priority="high", submitted_at=1.0)
    (base.queue_dir("high") / "20250101-000000-ghost.job.json").write_text(ghost.to_json())
    temp = base.queue_dir("low") / ".x.job.json.abc123.tmp"
    temp.write_text("{")
    (base.queue_dir("low") / f"{job.job_id}.job.json").write_text("{damaged")
    before = all_data_files(base)
    actions = queue.recover()
    assert not temp.exists()
    assert not (base.queue_dir("high") / "20250101-000000-ghost.job.json").exists()
    assert any("ghost" in a and "exists nowhere" in a for a in actions)
    assert any("damaged record" in a for a in actions)
    assert (base.queue_dir("low") / f"{job.job_id}.job.json.corrupt").read_text() == "{damaged"
    [adopted] = queue.list_queued()
    assert adopted.job_id == job.job_id and adopted.priority == "low"
    assert all_data_files(base) == before


def test_new_ids_avoid_ids_used_by_runs(base: BaseDir, queue: JobQueue) -> None:
    job = queue.accept(drop(base, "a.jsonl"), priority="normal", submitted_at=1.0)
    assert job.job_id in queue.known_job_ids()
    base.run_dir("some-run").mkdir(parents=True)
    assert "some-run" in queue.known_job_ids()


def test_job_record_round_trip_and_validation() -> None:
    record = JobRecord(
        job_id="20250101-000000-a",
        original_name="a.jsonl",
        priority="low",
        submitted_at=5.0,
        source="submit",
        attempts=2,
        errors=[{"message": "x"}],
        notes={"k": 1},
    )
    assert JobRecord.from_json(record.to_json()) == record
    with pytest.raises(TrainerdError, match="'priority'"):
        JobRecord.from_dict(record.to_dict() | {"priority": "urgent"})
    with pytest.raises(TrainerdError, match="'attempts'"):
        JobRecord.from_dict(record.to_dict() | {"attempts": -1})
    with pytest.raises(TrainerdError, match="'state'"):
        JobRecord.from_dict(record.to_dict() | {"state": "lost"})
    with pytest.raises(TrainerdError, match="'submitted_at'"):
        JobRecord.from_dict(record.to_dict() | {"submitted_at": "yesterday"})
    with pytest.raises(TrainerdError, match="not valid JSON"):
        JobRecord.from_json("{", where="x.job.json")


def test_save_rewrites_the_record_in_place(base: BaseDir, queue: JobQueue) -> None:
    job = queue.start(queue.accept(drop(base, "a.jsonl"), priority="normal"))
    job.notes["run_dir"] = "runs/x"
    queue.save(job)
    running = queue.processing()
    assert running is not None and running.notes == {"run_dir": "runs/x"}
