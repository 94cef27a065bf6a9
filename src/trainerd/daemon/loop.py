"""The daemon: one loop that decides what happens next, and never trains itself.

Each poll (`daemon.poll_interval_seconds`):

1. handle control commands (pause, resume, stop, skip, rollback, snapshot);
2. take stable inbox files into `queue/incoming/` and run the gate on them in a child process
   (the engine's own data checks); each file is then queued by priority or put in `queue/failed/`
   with an error file naming its lines;
3. watch the running job's engine process, mirror its progress into `status/status.json`, and when
   it exits: promote a verified result to a new model version, or retry / fail / skip / pause;
4. otherwise start the next job (high > normal > low, oldest first) on the current model, after a
   disk-space check; take the daily snapshot when it is due;
5. write the status with a heartbeat.

Crash safety: every state lives in files. On start the queue and the model store repair what a
crash left; a job found in `processing/` resumes from its newest complete checkpoint (its spec is
kept in `runs/<job>/job.json`, so the model it started from and its global-step offset are the
same), and a job that finished but was not promoted yet is promoted without training it again.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from trainerd.config.load import config_to_dict, load_config
from trainerd.config.schema import TrainerdConfig
from trainerd.daemon import control, status
from trainerd.daemon.inbox import InboxScanner, new_job_id
from trainerd.daemon.jobs import ChildProcess, GateProcess, start_engine
from trainerd.daemon.layout import BaseDir
from trainerd.daemon.lock import DaemonLock
from trainerd.daemon.queue import JobQueue, JobRecord
from trainerd.daemon.snapshots import (
    create_snapshot,
    due_daily_snapshot,
    list_snapshots,
    recover_snapshots,
    restore_snapshot,
    snapshot_retention,
)
from trainerd.daemon.store import ModelStore, VersionInfo
from trainerd.engine.control import engine_lock_free
from trainerd.engine.spec import JobSpec, TrainingResult
from trainerd.errors import TrainerdError
from trainerd.files import atomic_write_json, fsync_dir, read_json
from trainerd.logs import setup_logging

log = logging.getLogger("trainerd.daemon")

ENGINE_LOCK_WAIT_SECONDS = 120.0  # an engine orphaned by a killed daemon checkpoints and exits within this
GATE_RETRY_SECONDS = 30.0  # after the gate itself failed (e.g. the tokenizer did not load)


def rollback_to(base: BaseDir, store: ModelStore, target: str) -> VersionInfo:
    """Point current_model at a version, or restore a snapshot (verified first) as a new version."""
    if not target:
        raise TrainerdError("rollback needs a target", hint="trainerd rollback --to VERSION_OR_SNAPSHOT")
    if target in {snap.name for snap in list_snapshots(base)}:
        version = restore_snapshot(base, target, store)
        log.info("rolled back to snapshot %s as new version %s", target, version.name)
    else:
        version = store.switch_to(target)
        log.info("rolled back: current_model -> %s", version.name)
    return version


class Daemon:
    """State of one daemon run over a base dir."""

    def __init__(self, base: BaseDir, *, exit_when_idle: bool = False) -> None:
        self.base = base
        self.exit_when_idle = exit_when_idle
        self.lock = DaemonLock(base)
        self.queue = JobQueue(base)
        self.store = ModelStore(base)
        self.cfg = TrainerdConfig()
        self.scanner: InboxScanner | None = None
        self.job: JobRecord | None = None
        self.engine: ChildProcess | None = None
        self.gate: GateProcess | None = None
        self.stop_requested = False
        self.stopping_job = False
        self.message = ""
        self.error_state = False
        self.last_result: dict[str, Any] | None = None
        self.gate_retry_at = 0.0

    # -- start and stop ---------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or idle, with exit_when_idle); returns the process exit code."""
        self.lock.acquire()  # DaemonRunningError names the running PID
        try:
            setup_logging(self.base.daemon_log)
            self.cfg = load_config(self.base.config_file).config
            self.scanner = InboxScanner(self.base, self.cfg.daemon.stable_polls)
            log.info("daemon started (PID %d) on %s", os.getpid(), self.base.root)
            self.recover()
            self._install_signal_handlers()
            self.loop()
            log.info("daemon stopped")
            return 0
        finally:
            self.lock.release()

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping (the running job checkpoints first)", signum)
            self.stop_requested = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def recover(self) -> None:
        """Repair what a crash left; the job in processing/ (if any) is resumed by the loop."""
        self.base.ensure()
        self.incoming.mkdir(parents=True, exist_ok=True)
        for line in [*self.queue.recover(), *self.store.recover(), *recover_snapshots(self.base)]:
            log.warning("recovery: %s", line)
        for record in self.incoming.glob("*.incoming.json"):  # a record whose file never arrived
            if not record.with_name(record.name.replace(".incoming.json", ".jsonl")).exists():
                record.unlink()
        control.request_engine(self.base, None)  # a request left from a previous run must not hit a new job
        if self.store.current() is None:
            raise TrainerdError(
                f"{self.base.root} has no current model",
                hint="create the base dir with `trainerd init BASE --model ...`",
            )
        job = self.queue.processing()
        if job is not None:
            log.info("found job %s in processing/: it resumes from its newest checkpoint", job.job_id)

    @property
    def incoming(self) -> Path:
        return self.base.queue_root / "incoming"

    # -- the loop ---------------------------------------------------------------------------

    def loop(self) -> None:
        interval = self.cfg.daemon.poll_interval_seconds
        while True:
            self.handle_commands()
            if self.stop_requested and self.stop_running_job():
                self.write_status("stopped")
                return
            self.poll_inbox()
            self.poll_gate()
            if self.engine is not None:
                self.watch_job()
            elif not self.stop_requested and not self.paused():
                self.maybe_snapshot()
                self.maybe_start_job()
            self.write_status()
            if self.exit_when_idle and self.idle():
                log.info("nothing left to do: exiting (--exit-when-idle)")
                self.write_status("stopped")
                return
            self.sleep(interval)

    def sleep(self, seconds: float) -> None:
        """Sleep in short slices so a stop or a finished job is noticed quickly."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop_requested:
            if self.engine is not None and self.engine.poll() is not None:
                return
            if control.pending_commands(self.base):
                return
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def paused(self) -> bool:
        return bool(control.read_state(self.base).get("paused"))

    def idle(self) -> bool:
        if self.engine is not None or self.gate is not None or self.paused():
            return False
        if self.queue.next_job() is not None or self.queue.processing() is not None:
            return False
        if any(self.incoming.glob("*.jsonl")):
            return False
        return not any(p.name.endswith(".jsonl") and not p.name.startswith(".") for p in self.base.inbox.iterdir())

    # -- control ----------------------------------------------------------------------------

    def handle_commands(self) -> None:
        for command in control.pending_commands(self.base):
            if command.action == "rollback" and self.engine is not None:
                continue  # applied once the running job has ended
            try:
                self.apply(command)
            except TrainerdError as error:
                log.error("command %s %s failed: %s", command.action, command.args, error)
                self.message = f"{command.action} failed: {error.message}"
            control.done_with(command)

    def apply(self, command: control.Command) -> None:
        action = command.action
        log.info("command: %s %s", action, command.args or "")
        if action == "pause":
            control.write_state(self.base, paused=True)
            if self.engine is not None:
                control.request_engine(self.base, "pause")
                self.message = "pausing: the job checkpoints at its next step"
            else:
                self.message = "paused"
        elif action == "resume":
            control.write_state(self.base, paused=False)
            if self.engine is None:
                control.request_engine(self.base, None)
            self.message = "resumed"
        elif action == "stop":
            self.stop_requested = True
        elif action == "skip":
            if self.engine is not None:
                control.request_engine(self.base, "skip")
                self.message = "skipping the current file"
            else:
                job = self.queue.processing()
                if job is None:
                    self.message = "nothing to skip"
                else:
                    self.skip_job(job, "skipped while paused")
        elif action == "rollback":
            self.rollback(str(command.args.get("to", "")))
        elif action == "snapshot":
            current = self.store.current()
            if current is not None:
                snap = create_snapshot(self.base, current, reason="manual")
                log.info("snapshot %s of %s created", snap.name, current.name)
                for name in snapshot_retention(self.base, self.cfg.daemon.keep_snapshots):
                    log.info("snapshot retention removed %s", name)
        else:
            log.warning("ignored an unreadable command file %s", command.args.get("file"))

    def rollback(self, target: str) -> None:
        version = rollback_to(self.base, self.store, target)
        self.message = f"rolled back to {target} (current model {version.name})"

    def stop_running_job(self) -> bool:
        """Ask the engine to checkpoint and stop; True once nothing runs any more."""
        if self.engine is None:
            return True
        if not self.stopping_job:
            control.request_engine(self.base, "stop")
            self.stopping_job = True
            self.message = "stopping: the job checkpoints and ends; it resumes on the next start"
        code = self.engine.wait(timeout=0.5)
        if code is None:
            return False
        self.job_ended()
        return self.engine is None

    # -- inbox and gate ---------------------------------------------------------------------

    def poll_inbox(self) -> None:
        assert self.scanner is not None
        found = self.scanner.poll()
        for rejection in found.rejected:
            path = self.queue.reject(
                rejection.path,
                original_name=rejection.name,
                reason=rejection.reason,
                hint=rejection.hint,
                sidecar=rejection.meta_path,
                stage="inbox",
            )
            log.warning("refused %s: %s (kept as %s)", rejection.name, rejection.reason, path)
            self.record_history({"file": rejection.name, "outcome": "rejected", "error": rejection.reason})
        existing = {p.name[: -len(".jsonl")] for p in self.incoming.glob("*.jsonl")}
        for item in found.ready:
            incoming_id = new_job_id(item.name, existing)
            existing.add(incoming_id)
            target = self.incoming / f"{incoming_id}.jsonl"
            atomic_write_json(
                self.incoming / f"{incoming_id}.incoming.json",
                {"original_name": item.name, "priority": item.priority, "meta": item.meta, "taken_at": time.time()},
            )
            item.path.replace(target)
            fsync_dir(self.incoming)  # the file is durably in incoming/ before its sidecar goes
            fsync_dir(self.base.inbox)
            if item.meta_path is not None:
                item.meta_path.unlink(missing_ok=True)
            log.info("took %s from the inbox (priority %s)", item.name, item.priority)

    def poll_gate(self) -> None:
        if self.gate is not None:
            if self.gate.poll() is None:
                return
            verdicts, failure = self.gate.results()
            gate, self.gate = self.gate, None
            if verdicts is None:
                log.error("the data gate failed: %s (files stay in %s; next try in %.0f s)", failure, self.incoming,
                          GATE_RETRY_SECONDS)  # fmt: skip
                self.message = f"data gate failed: {failure}"
                self.gate_retry_at = time.monotonic() + GATE_RETRY_SECONDS
                return
            for verdict in verdicts:
                self.settle(Path(verdict["path"]), verdict)
            del gate
        waiting = sorted(str(p) for p in self.incoming.glob("*.jsonl"))
        current = self.store.current()
        if waiting and current is not None and time.monotonic() >= self.gate_retry_at:
            self.gate = GateProcess(self.base.logs / "gate", waiting, str(current.path), config_to_dict(self.cfg))

    def settle(self, path: Path, verdict: dict[str, Any]) -> None:
        """Queue or refuse one gated file."""
        record_path = path.with_suffix(".incoming.json")
        try:
            info = read_json(record_path)
        except (OSError, ValueError):
            info = {"original_name": path.name, "priority": "normal", "meta": {}}
        name = str(info.get("original_name", path.name))
        if not path.exists():
            record_path.unlink(missing_ok=True)
            return
        if verdict.get("ok"):
            job = self.queue.accept(
                path, priority=str(info.get("priority", "normal")), original_name=name, meta=info.get("meta") or {}
            )
            job.notes["gate"] = verdict.get("summary", {})
            self.queue.save(job)
            log.info("queued %s as job %s (%s priority): %s", name, job.job_id, job.priority, verdict.get("summary"))
        else:
            # the gate saw the file under its incoming name; the user knows it by the name they gave it
            def named(text: Any) -> Any:
                return text.replace(str(path), name) if isinstance(text, str) else text

            problems = [{k: named(v) for k, v in p.items()} for p in verdict.get("problems") or []]
            failed = self.queue.reject(
                path,
                original_name=name,
                reason=named(str(verdict.get("reason"))),
                hint=named(verdict.get("hint")),
                problems=problems,
            )
            log.warning("rejected %s: %s (kept as %s)", name, named(verdict.get("reason")), failed)
            self.record_history({"file": name, "outcome": "rejected", "error": named(verdict.get("reason"))})
        record_path.unlink(missing_ok=True)

    # -- jobs -------------------------------------------------------------------------------

    def global_step(self) -> int:
        try:
            return int(read_json(self.base.status_dir / "global_step.json")["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            current = self.store.current()
            return int(current.meta.get("global_step", 0)) if current else 0

    def set_global_step(self, value: int) -> None:
        atomic_write_json(self.base.status_dir / "global_step.json", {"global_step": max(value, self.global_step())})

    def maybe_snapshot(self) -> None:
        if not due_daily_snapshot(self.base, self.cfg.daemon.snapshot_time):
            return
        current = self.store.current()
        if current is None:
            return
        snap = create_snapshot(self.base, current, reason="daily")
        log.info("daily snapshot %s of %s", snap.name, current.name)
        for name in snapshot_retention(self.base, self.cfg.daemon.keep_snapshots):
            log.info("snapshot retention removed %s", name)

    def maybe_start_job(self) -> None:
        job = self.queue.processing() or self.queue.next_job()
        if job is None:
            return
        free_gb = shutil.disk_usage(self.base.root).free / 1e9
        if free_gb < self.cfg.daemon.min_free_disk_gb:
            self.error_state = True
            self.message = (
                f"not starting job {job.job_id}: {free_gb:.1f} GB free in {self.base.root}, "
                f"below daemon.min_free_disk_gb={self.cfg.daemon.min_free_disk_gb}; free some space"
            )
            log.error("%s", self.message)
            return
        self.error_state = False
        run_dir = self.base.run_dir(job.job_id)
        if self.finished_but_not_promoted(job, run_dir):
            return
        if not engine_lock_free(run_dir):
            log.info("waiting for an earlier engine process to release %s", run_dir)
            if not self.wait_engine_lock(run_dir):
                self.message = f"an engine process still holds {run_dir}; waiting"
                return
        job = self.queue.start(job)
        spec_path = run_dir / "job.json"
        if spec_path.is_file():
            spec = JobSpec.load(spec_path)
            log.info("resuming job %s from its newest checkpoint (global step offset %d)", job.job_id,
                     spec.global_step_offset)  # fmt: skip
        else:
            current = self.store.current()
            assert current is not None
            spec = JobSpec(
                datasets=[str(self.queue.data_path(job))],
                model=str(current.path),
                output_dir=str(run_dir),
                config=config_to_dict(self.cfg),
                resume="auto",
                global_step_offset=self.global_step(),
                control_dir=str(self.base.control),
                job_id=job.job_id,
            )
            run_dir.mkdir(parents=True, exist_ok=True)
            spec.save(spec_path)
            log.info("starting job %s (%s) on %s at global step %d", job.job_id, job.original_name, current.name,
                     spec.global_step_offset)  # fmt: skip
        control.request_engine(self.base, None)
        self.job = job
        self.stopping_job = False
        self.engine = start_engine(self.cfg.daemon, spec_path, run_dir)
        self.message = f"training {job.original_name}"

    def wait_engine_lock(self, run_dir: Path) -> bool:
        deadline = time.monotonic() + ENGINE_LOCK_WAIT_SECONDS
        while time.monotonic() < deadline:
            if engine_lock_free(run_dir):
                return True
            time.sleep(0.2)
        return False

    def finished_but_not_promoted(self, job: JobRecord, run_dir: Path) -> bool:
        """A job whose engine finished before a crash is promoted now instead of trained again."""
        result = self.read_result(run_dir, since=0.0)
        if result is None or not result.success:
            return False
        log.info("job %s finished before the last stop; promoting its result without retraining", job.job_id)
        self.job = self.queue.start(job)
        self.conclude(result, run_dir)
        return True

    def read_result(self, run_dir: Path, since: float) -> TrainingResult | None:
        path = run_dir / "result.json"
        try:
            if path.stat().st_mtime < since:
                return None
            return TrainingResult.from_json(read_json(path))
        except (OSError, ValueError, TypeError):
            return None

    def watch_job(self) -> None:
        assert self.engine is not None
        if self.engine.poll() is None:
            return
        self.job_ended()

    def job_ended(self) -> None:
        assert self.engine is not None and self.job is not None
        engine, job = self.engine, self.job
        run_dir = self.base.run_dir(job.job_id)
        result = self.read_result(run_dir, since=engine.started_at - 1)
        self.engine = None
        control.request_engine(self.base, None)
        if result is None:
            code = engine.poll()
            error = f"the engine process ended with exit code {code} and no result; log tail:\n{engine.log_tail(8)}"
            log.error("job %s: %s", job.job_id, error)
            self.fail_attempt(job, {"reason": error, "exit_code": code}, fresh=False)
            return
        self.conclude(result, run_dir)

    def conclude(self, result: TrainingResult, run_dir: Path) -> None:
        """Act on a finished engine run: promote, pause, stop, skip, or retry/fail."""
        job = self.job
        assert job is not None
        self.job = None
        if result.stopped == "pause" or (result.stopped in ("stop", "interrupt") and not self.stop_requested):
            self.message = f"paused at step {result.steps}; `trainerd resume` continues the same job"
            if result.stopped != "pause":
                control.write_state(self.base, paused=True)
            log.info("job %s paused at step %d (checkpoint %s)", job.job_id, result.steps, result.checkpoint)
            return
        if result.stopped in ("stop", "interrupt"):
            log.info("job %s stopped at step %d; it resumes on the next start", job.job_id, result.steps)
            return
        if result.stopped == "skip":
            self.skip_job(job, f"skipped at step {result.steps}")
            return
        if not result.success:
            self.fail_attempt(job, {"reason": result.error or "unknown error"}, fresh=True)
            return
        problem = self.output_problem(result)
        if problem:
            self.fail_attempt(job, {"reason": problem}, fresh=True)
            return
        version = self.already_promoted(job.job_id) or self.store.promote(
            run_dir,
            {
                "job_id": job.job_id,
                "source_file": job.original_name,
                "global_step": result.global_step,
                "initial_loss": result.initial_loss,
                "final_loss": result.final_loss,
                "steps": result.steps,
            },
        )
        self.set_global_step(result.global_step)
        outcome = {
            "outcome": "promoted",
            "version": version.name,
            "steps": result.steps,
            "global_step": result.global_step,
            "initial_loss": result.initial_loss,
            "final_loss": result.final_loss,
            "runtime_seconds": result.runtime_seconds,
        }
        self.queue.finish(job, outcome)
        self.record_history(
            {
                "job_id": job.job_id,
                "file": job.original_name,
                "priority": job.priority,
                "global_step_start": result.global_step - result.steps,
                "attempts": job.attempts + 1,
                **outcome,
            }
        )
        log.info(
            "job %s promoted as %s: %d steps, loss %s -> %s",
            job.job_id, version.name, result.steps, result.initial_loss, result.final_loss,
        )  # fmt: skip
        self.message = f"promoted {version.name} from {job.original_name}"
        self.tidy_run_dir(run_dir)
        for name in self.store.retention(self.cfg.daemon.keep_versions):
            log.info("version retention removed %s", name)

    def output_problem(self, result: TrainingResult) -> str | None:
        """Why a successful-looking result must not be promoted (None when it can)."""
        from trainerd.models.inspect import inspect_model_dir

        info = inspect_model_dir(result.output_dir)
        if not info.valid:
            return f"the job's output is not a valid model dir: {info.reason}"
        if not result.verified:
            return "the job's output was not verified by reloading it"
        for loss in (result.final_loss, result.verify_loss):
            if loss is None or not math.isfinite(loss):
                return f"the job's loss is not finite ({loss})"
        return None

    def already_promoted(self, job_id: str) -> Any:
        for version in reversed(self.store.list_versions()):
            if version.meta.get("job_id") == job_id:
                return version
        return None

    def tidy_run_dir(self, run_dir: Path) -> None:
        """After promotion the weights live in models/: drop the run's copies, keep logs and metrics."""
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        for path in run_dir.iterdir():
            if path.suffix in (".safetensors", ".bin") or path.name.endswith(".index.json"):
                path.unlink(missing_ok=True)

    def set_aside(self, run_dir: Path) -> None:
        """Keep a finished attempt's logs under another name so the next attempt starts fresh."""
        if not run_dir.exists():
            return
        n = 1
        while (target := run_dir.with_name(f"{run_dir.name}.attempt-{n}")).exists():
            n += 1
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        run_dir.rename(target)

    def fail_attempt(self, job: JobRecord, error: dict[str, Any], *, fresh: bool) -> None:
        """Retry (resuming from the checkpoint after a crash, fresh after an error) or give up."""
        run_dir = self.base.run_dir(job.job_id)
        if fresh:
            self.set_aside(run_dir)
        outcome = self.queue.retry_or_fail(job, error, self.cfg.daemon.max_retries)
        if outcome == "failed" and not fresh:
            self.set_aside(run_dir)
        self.record_history(
            {
                "job_id": job.job_id,
                "file": job.original_name,
                "priority": job.priority,
                "outcome": "failed" if outcome == "failed" else "retrying",
                "attempts": job.attempts,
                "error": error.get("reason"),
            }
        )
        self.message = f"job {job.job_id} {'failed' if outcome == 'failed' else 'will be retried'}"

    def skip_job(self, job: JobRecord, reason: str) -> None:
        self.set_aside(self.base.run_dir(job.job_id))
        self.queue.skip(job, self.cfg.daemon.skip_to, reason)
        self.record_history(
            {
                "job_id": job.job_id,
                "file": job.original_name,
                "priority": job.priority,
                "outcome": "skipped",
                "error": f"{reason}; moved to {self.cfg.daemon.skip_to}",
            }
        )
        self.message = f"skipped {job.original_name} ({self.cfg.daemon.skip_to})"

    # -- status -----------------------------------------------------------------------------

    def record_history(self, entry: dict[str, Any]) -> None:
        status.append_history(self.base, entry)
        self.last_result = entry

    def current_job_status(self) -> dict[str, Any] | None:
        """The running (or paused) job with its latest progress from the engine's progress.json."""
        job = self.job if self.engine is not None else self.queue.processing()
        if job is None:
            return None
        run_dir = self.base.run_dir(job.job_id)
        try:
            progress = read_json(run_dir / "progress.json")
        except (OSError, ValueError):
            progress = {}
        keys = ("step", "total_steps", "global_step", "loss", "lr", "grad_norm", "tokens_per_second", "eta_seconds")
        return {
            "job_id": job.job_id,
            "file": job.original_name,
            "priority": job.priority,
            "attempt": job.attempts + 1,
            "state": "training" if self.engine is not None else "paused",
            "run_dir": str(run_dir.relative_to(self.base.root)),
            "started_at": self.engine.started_at if self.engine is not None else None,
            "engine_pid": self.engine.pid if self.engine is not None else None,
            **{key: progress.get(key) for key in keys},
        }

    def write_status(self, state: str | None = None) -> None:
        if state is None:
            if self.stop_requested:
                state = "stopping"
            elif self.error_state:
                state = "error"
            elif self.engine is not None:
                state = "stopping" if self.stopping_job else "training"
            elif self.paused():
                state = "paused"
            else:
                state = "idle"
        current = self.store.current()
        job = self.current_job_status()
        live_step = (job or {}).get("global_step")
        global_step = max(self.global_step(), int(live_step) if isinstance(live_step, int) else 0)
        last = self.last_result or next(iter(status.read_history(self.base, limit=1)), None)
        status.write_status(
            self.base,
            {
                "state": state,
                "pid": os.getpid(),
                "poll_interval_seconds": self.cfg.daemon.poll_interval_seconds,
                "message": self.message,
                "global_step": global_step,
                "current_model": current.name if current else None,
                "current_job": job,
                "queue": self.queue.counts(),
                "last_result": last,
            },
        )
