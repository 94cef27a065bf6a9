"""The one typed, nested configuration schema (pydantic v2).

Every field carries its help text (shown by `trainerd config show` and the README's reference).
`extra="forbid"` everywhere: a misspelt key is an error, never a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """Base of every config section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    path: str | None = Field(
        None,
        description="Model to start from: a local model dir (full model or LoRA adapter) or a hub id. "
        "Legacy keys: model_path, base_model.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when `path` is a hub id.")
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        "auto",
        description="Attention kernel. auto = flash_attention_2 when flash_attn imports and the CUDA device "
        "supports it, else sdpa, else eager. A forced value that cannot load is an error.",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Training precision. auto = bf16 where the device supports it, else fp32."
    )
    trust_remote_code: bool = Field(
        False, description="Allow model code from the model dir/hub (only for models you trust)."
    )


class Hyperparams(Section):
    batch_size: int = Field(8, gt=0, description="Examples per micro-batch (per device).")
    gradient_accumulation: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warm-up (to 10% of peak for cosine/linear)."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps (optimizer steps).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not applied to norms and biases).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_length: int = Field(2048, gt=1, description="Longest example in tokens; longer ones are truncated.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the data when max_steps is not set.")
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many optimizer steps (overrides num_epochs)."
    )
    save_steps: int = Field(500, gt=0, description="Write a checkpoint every N optimizer steps.")
    save_total_limit: int = Field(
        2, ge=1, description="Checkpoints kept per run (oldest removed first, sorted numerically)."
    )
    logging_steps: int = Field(5, gt=0, description="Log loss/lr/grad-norm every N optimizer steps.")
    seed: int = Field(42, description="Seed for data order, init of LoRA weights and dropout.")
    use_gradient_checkpointing: bool = Field(
        True, description="Recompute activations in backward: much less memory for ~20-30% more time."
    )
    loss_chunk_tokens: int = Field(
        1024,
        ge=0,
        description="Trainable positions per cross-entropy chunk: the logits (positions x vocabulary; 8192 "
        "positions of Qwen3's 151,936-token vocabulary are 2.5 GB in bf16, twice that in fp32) exist for one chunk "
        "at a time and are recomputed in backward. 0 = one full-logits pass. Models whose forward does more than "
        "lm_head(hidden) always take one full-logits pass (logged).",
    )


class LoraSection(Section):
    enabled: bool = Field(False, description="Train a LoRA adapter instead of all weights (flag: --lora).")
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling alpha.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear' for every linear layer but the output head."
    )


class DataSection(Section):
    train_on: Literal["assistant", "all"] = Field(
        "assistant", description="Which tokens carry loss: assistant turns (with their end-of-turn token) or all."
    )
    packing: Literal["auto", "packed", "padded"] = Field(
        "auto",
        description="Micro-batch layout. packed = one flat row per micro-batch with per-example position_ids "
        "(no padding, no cross-example attention; fastest with flash_attention_2's varlen kernels). padded = rows "
        "padded to the longest example of a length-grouped micro-batch (best for sdpa/eager, whose masked attention "
        "would cost the square of the whole packed row). auto = packed with flash_attention_2, else padded.",
    )
    group_by_length: bool = Field(
        True,
        description="Form micro-batches from examples of similar length (sorted within shuffled mega-batches of "
        "50 micro-batches, batch order shuffled) so padded rows waste almost nothing.",
    )
    min_trainable_ratio: float = Field(
        0.01, ge=0, le=1, description="Refuse a dataset whose share of trainable tokens is below this."
    )
    max_trainable_ratio: float = Field(
        1.0, ge=0, le=1, description="Refuse a dataset whose share of trainable tokens is above this."
    )
    max_line_bytes: int = Field(1_000_000, gt=0, description="Longest accepted JSONL line in bytes.")
    max_file_bytes: int = Field(2_000_000_000, gt=0, description="Largest accepted data file in bytes.")
    on_invalid_line: Literal["fail", "skip"] = Field(
        "fail",
        description="fail = refuse the file listing every bad line; skip = train on the valid lines and log the rest.",
    )
    shuffle: bool = Field(True, description="Shuffle examples each epoch (seeded).")

    @model_validator(mode="after")
    def _band(self) -> DataSection:
        if self.min_trainable_ratio > self.max_trainable_ratio:
            raise ValueError("min_trainable_ratio must not exceed max_trainable_ratio")
        return self


class ProfileSection(Section):
    name: str = Field(
        "default",
        description="Profile: default, emoji_think, regime3, or a dotted path 'package.module:Class'. "
        "Legacy: profile as a string.",
    )
    system_prompt: str | None = Field(
        None, description="System prompt template overriding the profile's ({date} becomes today's date)."
    )
    system_prompt_policy: Literal["keep", "replace", "add_if_missing"] = Field(
        "add_if_missing",
        description="When a line carries its own system message: keep it (add none), replace it with the profile's, "
        "or keep it and add the profile's only to lines without one.",
    )
    replace_thinking_template: bool | None = Field(
        None,
        description="Replace a chat template that injects <think> blocks with clean ChatML. "
        "None = the profile decides.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Profile-specific options (see README, Profiles)."
    )


class DaemonSection(Section):
    poll_interval_seconds: float = Field(
        2.0, gt=0, description="How often the daemon looks at the inbox and control requests."
    )
    stable_polls: int = Field(
        2, ge=1, description="An inbox file is taken once its size and mtime stayed the same for this many polls."
    )
    max_retries: int = Field(2, ge=0, description="Retries of a failed job before its file goes to queue/failed/.")
    keep_versions: int = Field(
        5, ge=2, description="Model versions kept in models/ (the current and previous are never removed)."
    )
    keep_snapshots: int = Field(7, ge=1, description="Snapshots kept in snapshots/ (oldest removed first).")
    snapshot_time: str | None = Field(
        "03:00", description="Daily snapshot time (HH:MM, local time); null turns daily snapshots off."
    )
    min_free_disk_gb: float = Field(
        2.0, ge=0, description="A job does not start with less free disk than this in the base dir."
    )
    skip_to: Literal["low", "failed"] = Field(
        "failed", description="Where `trainerd skip` sends the abandoned file: back to the low queue or to failed/."
    )
    launcher: Literal["python", "accelerate", "torchrun"] = Field(
        "python",
        description="How a job process starts: plain python (one device) or accelerate/torchrun (several GPUs).",
    )
    num_processes: int = Field(1, ge=1, description="Processes (GPUs) per job for accelerate/torchrun.")
    launcher_args: list[str] = Field(
        default_factory=list, description="Extra arguments for accelerate launch/torchrun (e.g. a --config_file)."
    )


class TrainerdConfig(Section):
    """The whole configuration. Sections mirror the README's config reference."""

    model: ModelSection = Field(default_factory=ModelSection)
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection = Field(default_factory=DataSection)
    profile: ProfileSection = Field(default_factory=ProfileSection)
    daemon: DaemonSection = Field(default_factory=DaemonSection)
