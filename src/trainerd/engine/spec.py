"""What a job is (input) and what it produced (output), as JSON files between processes.

The daemon writes a `JobSpec` to `runs/<job>/job.json` and starts `python -m trainerd.engine`
on it; the engine writes `TrainingResult` to `OUT/result.json`. `trainerd train` builds the same
spec in-process. One engine, one contract.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainerd.files import atomic_write_json


@dataclass
class JobSpec:
    """Everything the engine needs to run one training job."""

    datasets: list[str]
    model: str  # model dir (full or LoRA adapter) or hub id to start from
    output_dir: str
    config: dict[str, Any] = field(default_factory=dict)  # TrainerdConfig as a dict (already merged)
    resume: str | None = "auto"  # "auto" = newest complete checkpoint in output_dir, a path, or None
    global_step_offset: int = 0  # optimizer steps done by earlier jobs (the daemon's global step)
    control_dir: str | None = None  # where pause/stop/skip requests appear (the daemon's control/)
    job_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class TrainingResult:
    """The outcome of a job; `success` false always comes with a readable `error`."""

    success: bool
    output_dir: str
    global_step: int = 0  # global optimizer step after this job (offset + steps done)
    steps: int = 0  # optimizer steps done in this job, resumed ones included
    initial_loss: float | None = None  # mean loss over the first logged window
    final_loss: float | None = None  # mean loss over the last logged window
    tokens_per_second: float | None = None  # non-pad tokens per second of training
    trainable_token_ratio: float | None = None
    runtime_seconds: float = 0.0
    error: str | None = None
    stopped: str | None = None  # "stop" | "pause" | "skip" | "interrupt" when ended on request
    resumed_from: str | None = None
    checkpoint: str | None = None  # newest complete checkpoint (to resume a stopped job)
    model_kind: str | None = None  # "full" | "lora-adapter"
    verified: bool = False  # the saved model dir was reloaded and gave a finite loss
    verify_loss: float | None = None
    examples: int = 0
    tokens: int = 0
    decisions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())
