"""Progress and metrics the daemon, the monitor and a person read while a job runs.

- `metrics.jsonl`: one line per logged step (append-only; readers skip a torn last line).
- `progress.json`: the latest state, rewritten atomically at most every `interval` seconds.
- `tensorboard/`: TensorBoard event files with the same numbers per global step.
- a tqdm bar on stderr for a person watching `trainerd train`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from trainerd.files import append_jsonl, atomic_write_json


class ProgressReporter:
    """Collects per-step numbers and writes them out; only the main process writes."""

    def __init__(
        self,
        output_dir: Path,
        *,
        total_steps: int,
        start_step: int,
        global_step_offset: int,
        enabled: bool,
        interval: float = 2.0,
        show_bar: bool = True,
    ) -> None:
        self.metrics_path = output_dir / "metrics.jsonl"
        self.progress_path = output_dir / "progress.json"
        self.total_steps = total_steps
        self.global_step_offset = global_step_offset
        self.enabled = enabled
        self.interval = interval
        self.started = time.monotonic()
        self.start_step = start_step
        self.last_write = 0.0
        self.tokens = 0
        self.train_seconds = 0.0
        self.latest: dict[str, Any] = {}
        self.bar: Any = None
        self.tensorboard: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(output_dir / "tensorboard"))
        if enabled and show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", dynamic_ncols=True)

    def tokens_per_second(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def step(self, step: int, loss: float, lr: float, grad_norm: float | None, tokens: int, seconds: float) -> None:
        """Record one optimizer step (called every step; writes are throttled)."""
        self.tokens += tokens
        self.train_seconds += seconds
        done = step - self.start_step
        remaining = self.total_steps - step
        per_step = self.train_seconds / done if done > 0 else 0.0
        self.latest = {
            "step": step,
            "total_steps": self.total_steps,
            "global_step": self.global_step_offset + step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_second": round(self.tokens_per_second(), 1),
            "eta_seconds": round(per_step * remaining, 1) if per_step else None,
        }
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{self.tokens_per_second():.0f}")
        now = time.monotonic()
        if self.enabled and (now - self.last_write >= self.interval or step == self.total_steps):
            self.write_progress("training")
            self.last_write = now

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one metrics row (at logging steps)."""
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        append_jsonl(self.metrics_path, {"time": time.time(), **clean})
        if self.tensorboard is not None:
            step = int(row.get("global_step", row.get("step", 0)))
            for key in ("loss", "lr", "grad_norm", "tokens_per_second"):
                if isinstance(clean.get(key), (int, float)):
                    self.tensorboard.add_scalar(f"train/{key}", clean[key], step)
            self.tensorboard.flush()

    def write_progress(self, state: str, **extra: Any) -> None:
        if not self.enabled:
            return
        atomic_write_json(self.progress_path, {"state": state, "updated_at": time.time(), **self.latest, **extra})

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
