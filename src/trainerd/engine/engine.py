"""The training engine: the only code in trainerd that trains a model.

`run_job(spec)` is called in-process by `trainerd train` and in a child process
(`python -m trainerd.engine job.json`) by the daemon, and runs unchanged under
`accelerate launch` / `torchrun`. One readable flow, in the spirit of torchtune's recipes:

1. load the model (attention, precision, gradient checkpointing, full or LoRA: `models/load.py`)
2. read, validate and shape the data (profile, system prompt, chat template: `data/pipeline.py`),
   tokenize with assistant-only labels and refuse a bad trainable-token ratio before any compute
3. plan micro-batches (`data/pack.py`): packed rows with flash_attention_2, length-grouped padded
   rows with sdpa/eager (no compute on padding either way), in a seeded order a resume replays exactly
4. a lean loop over `accelerate`: loss summed over trainable tokens and divided by the trainable
   tokens of the whole optimizer step (correct under gradient accumulation and across ranks), logits
   computed only at trainable positions and in chunks recomputed in backward (`engine/loss.py`; the
   loss wrapper is what `accelerate` prepares), AdamW, warm-up + decay, gradient clipping
5. every `save_steps` an atomic checkpoint (temp dir + marker + rename), resumable with the same
   batches; a pause/stop/Ctrl-C request checkpoints and ends cleanly; NaN/Inf loss ends with an error
6. progress (`progress.json`, atomic) and metrics (`metrics.jsonl`) while training; the final model
   dir (full weights or LoRA adapter, with the tokenizer) and `result.json` at the end
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import parse_flag_from_env, set_seed
from torch.utils.data import DataLoader

from trainerd.config.schema import TrainerdConfig
from trainerd.data.pack import collate_packed, collate_padded, epoch_batches
from trainerd.data.pipeline import TrainingData, build_training_data
from trainerd.data.tokenize import IGNORE_INDEX, TokenizedExample
from trainerd.engine import checkpoint
from trainerd.engine.control import ControlRequests, EngineLock
from trainerd.engine.loss import CausalLMWithChunkedLoss
from trainerd.engine.progress import ProgressReporter
from trainerd.engine.spec import JobSpec, TrainingResult
from trainerd.errors import TrainerdError
from trainerd.logs import setup_logging
from trainerd.models.load import (
    LoadedModel,
    choose_dtype,
    load_model_for_inference,
    load_model_for_training,
    save_trained_model,
)

log = logging.getLogger("trainerd.engine")

CHECKPOINT_DIR = "checkpoints"
END_REQUESTS = ("skip", "pause", "interrupt", "stop")  # ascending precedence when ranks disagree


class NonFiniteLossError(TrainerdError):
    """The loss became NaN or Inf: the weights would be destroyed by another step."""


def process_state() -> PartialState:
    """This process's place in the run; several CPU processes (torchrun without GPUs) use gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (world > 1 and not torch.cuda.is_available())
    return PartialState(cpu=cpu)


class _TiedWeightsNote(logging.Filter):
    """Drop accelerate's note that a tied lm_head was not saved twice (expected for tied embeddings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


def quiet_library_output() -> None:
    """Our progress bar and log lines replace the libraries' own per-load/save bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNote())


def run_job(spec: JobSpec, *, log_to_console: bool = True, show_progress_bar: bool = True) -> TrainingResult:
    """Run one training job and return (and write) its result; never raises for a job failure."""
    started = time.monotonic()
    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = process_state()
    quiet_library_output()
    setup_logging(
        output_dir / "train.log" if state.is_main_process else None,
        console=log_to_console and state.is_main_process,  # one copy of each line under torchrun
    )
    lock = EngineLock(output_dir) if state.is_main_process else None
    try:
        if lock is not None:
            lock.acquire()
        result = _Job(spec, output_dir, show_progress_bar).run()
    except TrainerdError as error:
        log.error("job failed: %s", error)
        result = TrainingResult(success=False, output_dir=str(output_dir), error=str(error))
    except Exception as error:  # a job failure must be a result, never a bare traceback
        log.exception("job failed with an unexpected error")
        result = TrainingResult(success=False, output_dir=str(output_dir), error=f"{type(error).__name__}: {error}")
    result.runtime_seconds = round(time.monotonic() - started, 3)
    if state.is_main_process:
        result.save(output_dir / "result.json")
    if lock is not None:
        lock.release()
    if result.success:
        log.info(
            "done: %d steps, loss %.4f -> %.4f, %.0f tokens/s, model in %s",
            result.steps,
            result.initial_loss or float("nan"),
            result.final_loss or float("nan"),
            result.tokens_per_second or 0.0,
            output_dir,
        )
    return result


def data_fingerprint(paths: list[str]) -> str:
    """sha256 over the dataset files' bytes: a checkpoint resumes only onto the same data."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def choose_layout(packing: str, attn_implementation: str) -> tuple[bool, str]:
    """Whether micro-batches are packed rows, and why (see data.packing)."""
    if packing == "packed":
        return True, "packed rows (data.packing=packed)"
    if packing == "padded":
        return False, "padded rows (data.packing=padded)"
    if attn_implementation == "flash_attention_2":
        return True, "packed rows: flash_attention_2 runs each packed example as its own sequence (varlen)"
    return False, (
        f"padded, length-grouped rows: {attn_implementation} would compute masked attention over the whole "
        "packed row (data.packing=packed forces packing)"
    )


def plan_micro_batches(lengths: list[int], cfg: TrainerdConfig, world_size: int) -> tuple[list[list[int]], int]:
    """All micro-batches of the job (across epochs, in order) and the number of optimizer steps."""
    hp = cfg.hyperparams
    num_examples = len(lengths)
    grouping = lengths if cfg.data.group_by_length else None
    per_epoch = math.ceil(num_examples / hp.batch_size)
    per_step = hp.gradient_accumulation * world_size
    wanted = hp.max_steps * per_step if hp.max_steps is not None else max(1, math.floor(per_epoch * hp.num_epochs))
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < wanted:
        plan.extend(
            epoch_batches(
                num_examples, hp.batch_size, shuffle=cfg.data.shuffle, seed=hp.seed, epoch=epoch, lengths=grouping
            )
        )
        epoch += 1
    plan = plan[:wanted]
    steps = hp.max_steps if hp.max_steps is not None else math.ceil(len(plan) / per_step)
    return plan, steps


def lr_lambda_for(cfg: TrainerdConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine/linear decay to 10% of the peak (or constant)."""
    hp = cfg.hyperparams
    warmup = min(hp.warmup_steps, max(total_steps - 1, 0))
    floor = 0.1

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if hp.lr_scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if hp.lr_scheduler == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def micro_batch_loss(loss_model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the trainable positions of one micro-batch (through the prepared
    `CausalLMWithChunkedLoss`, so DDP/FSDP see one forward), and the number of those positions."""
    inputs = {key: batch[key] for key in ("input_ids", "position_ids", "attention_mask") if key in batch}
    loss_sum, count = loss_model(**inputs, shift_labels=batch["shift_labels"])
    return loss_sum, int(count)


def inner_model_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The loss wrapper's state dict with its `model.` prefix removed: the causal LM's own keys."""
    if state is None:
        return None
    prefix = "model."
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def keep_trainable_weights(models: list[torch.nn.Module], weights: list[dict[str, Any]], output_dir: str) -> None:
    """accelerate save-state hook: drop frozen tensors (a LoRA's base) from the checkpoint's weights."""
    for index, model in enumerate(models):
        if index < len(weights):
            trainable = {name for name, param in model.named_parameters() if param.requires_grad}
            weights[index] = {key: value for key, value in weights[index].items() if key in trainable}


def build_optimizer(model: torch.nn.Module, cfg: TrainerdConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with no weight decay on norms and biases; fused kernels on CUDA."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.hyperparams.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.hyperparams.learning_rate, betas=(0.9, 0.999), eps=1e-8, **extra)


class _Job:
    """State of one run; `run()` is the flow described in the module docstring."""

    def __init__(self, spec: JobSpec, output_dir: Path, show_progress_bar: bool) -> None:
        self.spec = spec
        self.output_dir = output_dir
        self.show_progress_bar = show_progress_bar
        self.cfg = TrainerdConfig.model_validate(spec.config)
        self.control = ControlRequests(spec.control_dir)
        self.checkpoint_root = output_dir / CHECKPOINT_DIR

    # -- set-up -----------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        cfg = self.cfg
        state = process_state()
        dtype, dtype_reason = choose_dtype(cfg.model.precision, state.device)
        mixed = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
        accelerator = Accelerator(mixed_precision=mixed)
        self.accelerator = accelerator
        log.info("job %s: model %s -> %s", self.spec.job_id or "-", self.spec.model, self.output_dir)
        log.info("device: %s (%d process(es))", accelerator.device, accelerator.num_processes)

        set_seed(cfg.hyperparams.seed)  # LoRA init, dropout; a resume then restores the saved RNG states
        loaded = load_model_for_training(self.spec.model, cfg, accelerator.device)
        for line in loaded.decisions:
            log.info("%s", line)
        if mixed != "no":
            log.info("mixed precision: %s autocast over fp32 trainable weights (%s)", mixed, dtype_reason)

        data = build_training_data(self.spec.datasets, cfg, loaded.tokenizer)
        for line in data.decisions:
            log.info("%s", line)
        loaded.tokenizer.chat_template = data.chat_template  # the saved model generates as it was trained

        self.packed, layout_reason = choose_layout(cfg.data.packing, loaded.attn_implementation)
        lengths = [example.num_tokens for example in data.dataset.examples]
        plan, total_steps = plan_micro_batches(lengths, cfg, accelerator.num_processes)
        per_step = cfg.hyperparams.gradient_accumulation * accelerator.num_processes
        log.info(
            "plan: %d examples, %d micro-batches of %d, gradient accumulation %d, %d optimizer steps, %s",
            data.dataset.num_examples,
            len(plan),
            cfg.hyperparams.batch_size,
            cfg.hyperparams.gradient_accumulation,
            total_steps,
            layout_reason,
        )

        optimizer = build_optimizer(loaded.model, cfg, accelerator.device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda_for(cfg, total_steps))
        # DDP/FSDP wrap the loss wrapper, so the decoder, the chunked head and the loss are one forward.
        loss_model = CausalLMWithChunkedLoss(loaded.model, chunk_tokens=cfg.hyperparams.loss_chunk_tokens)
        log.info("%s", loss_model.decision)
        model, optimizer = accelerator.prepare(loss_model, optimizer)
        accelerator.register_for_checkpointing(scheduler)
        self.trainable_only_checkpoints = loaded.is_lora
        if loaded.is_lora:  # the frozen base is the model dir itself: checkpoints hold the adapter only
            accelerator.register_save_state_pre_hook(keep_trainable_weights)

        fingerprint = data_fingerprint(self.spec.datasets)
        resume_state, resumed_from = self.restore(fingerprint)
        start_step = int(resume_state.get("step", 0))
        losses: list[float] = list(resume_state.get("losses", []))
        reporter = ProgressReporter(
            self.output_dir,
            total_steps=total_steps,
            start_step=start_step,
            global_step_offset=self.spec.global_step_offset,
            enabled=accelerator.is_main_process,
            show_bar=self.show_progress_bar,
        )
        reporter.tokens = int(resume_state.get("tokens", 0))
        reporter.train_seconds = float(resume_state.get("train_seconds", 0.0))

        remaining_plan = plan[start_step * per_step :]
        loader = self.make_loader(data, remaining_plan, loaded)

        self.control.install_signal_handlers()
        stopped: str | None = None
        try:
            stopped = self.train_loop(
                model, optimizer, scheduler, loader, reporter, losses, start_step, total_steps, fingerprint
            )
        finally:
            self.control.restore_signal_handlers()
            reporter.close()

        window = max(1, min(cfg.hyperparams.logging_steps, len(losses)))
        result = TrainingResult(
            success=stopped is None,
            output_dir=str(self.output_dir),
            steps=len(losses),
            global_step=self.spec.global_step_offset + len(losses),
            initial_loss=_mean(losses[:window]),
            final_loss=_mean(losses[-window:]),
            tokens_per_second=round(reporter.tokens_per_second(), 1),
            trainable_token_ratio=round(data.dataset.trainable_ratio, 4),
            resumed_from=str(resumed_from) if resumed_from else None,
            model_kind="lora-adapter" if loaded.is_lora else "full",
            examples=data.dataset.num_examples,
            tokens=data.dataset.total_tokens,
            decisions=[*loaded.decisions, *data.decisions, f"batches: {layout_reason}", loss_model.decision],
        )
        latest = checkpoint.list_checkpoints(self.checkpoint_root)
        result.checkpoint = str(latest[-1]) if latest else None
        if stopped is not None:
            result.stopped = stopped
            result.error = f"ended early on a {stopped} request at step {len(losses)}; resume from {result.checkpoint}"
            reporter.write_progress("stopped", stopped=stopped)
            return result
        accelerator.wait_for_everyone()
        # every rank takes part: under FSDP/ZeRO-3 this gathers the sharded weights onto rank 0
        full_state = inner_model_state(accelerator.get_state_dict(model))
        failure: Exception | None = None
        if accelerator.is_main_process:
            try:
                inner = accelerator.unwrap_model(model).model
                save_trained_model(inner, loaded.tokenizer, self.output_dir, state_dict=full_state)
                result.verify_loss = verify_saved_model(
                    self.output_dir, data.dataset.examples[:VERIFY_EXAMPLES], accelerator.device, cfg.model.precision
                )
                result.verified = True
                log.info("saved model reloaded from %s: loss %.4f on a sample batch", self.output_dir,
                         result.verify_loss)  # fmt: skip
            except Exception as error:  # re-raised after the barrier, so other ranks are not left waiting
                failure = error
        accelerator.wait_for_everyone()
        if failure is not None:
            raise failure
        reporter.write_progress("done")
        return result

    def make_loader(self, data: TrainingData, plan: list[list[int]], loaded: LoadedModel) -> DataLoader:
        examples = data.dataset.examples
        if self.packed:
            collate: Any = collate_packed
        else:
            pad_id = loaded.tokenizer.pad_token_id
            pad_id = pad_id if pad_id is not None else loaded.tokenizer.eos_token_id

            def collate(batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
                return collate_padded(batch, pad_id)

        loader: DataLoader = DataLoader(examples, batch_sampler=plan, collate_fn=collate)  # type: ignore[arg-type]
        return self.accelerator.prepare_data_loader(loader, device_placement=True)

    def restore(self, fingerprint: str) -> tuple[dict[str, Any], Path | None]:
        """Load the newest complete checkpoint that loads; an unloadable one is skipped with a warning."""
        if self.spec.resume is None:
            return {}, None
        if self.spec.resume != "auto":
            candidates = [Path(self.spec.resume)]
            if not checkpoint.is_complete(candidates[0]):
                raise TrainerdError(
                    f"checkpoint {candidates[0]} is missing or incomplete",
                    hint="point --resume at a checkpoint-N dir that contains COMPLETE, or omit it",
                )
        else:
            candidates = list(reversed(checkpoint.list_checkpoints(self.checkpoint_root)))
        for candidate in candidates:
            try:
                state = checkpoint.read_state(candidate)
                if state.get("data_fingerprint") not in (None, fingerprint):
                    raise TrainerdError(
                        f"checkpoint {candidate} was made on different data",
                        hint="resume only with the same dataset files, or use a new output dir",
                    )
                # a LoRA checkpoint holds only the adapter; the frozen base comes from the model dir
                self.accelerator.load_state(str(candidate), strict=not self.trainable_only_checkpoints)
            except TrainerdError:
                raise
            except Exception as error:
                log.warning("checkpoint %s cannot be loaded (%s); trying an older one", candidate, error)
                continue
            log.info("resumed from %s at step %s", candidate, state.get("step"))
            return state, candidate
        return {}, None

    # -- the loop ---------------------------------------------------------------------------

    def train_loop(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
        loader: DataLoader,
        reporter: ProgressReporter,
        losses: list[float],
        start_step: int,
        total_steps: int,
        fingerprint: str,
    ) -> str | None:
        """Optimizer steps until done or asked to end; returns the request that ended it, if any."""
        accelerator = self.accelerator
        hp = self.cfg.hyperparams
        world = accelerator.num_processes
        model.train()
        batches: Iterator[dict[str, torch.Tensor]] = iter(loader)
        step = start_step
        while step < total_steps:
            request = self.control.poll()
            if world > 1:
                request = self.agree_on_request(request)
            if request is not None:
                return self.end_on_request(request, step, losses, reporter, fingerprint)
            tick = time.perf_counter()  # data loading counts: tokens/s is end-to-end loop throughput
            micro = [batch for _, batch in zip(range(hp.gradient_accumulation), batches, strict=False)]
            if not micro:
                break
            trainable = torch.tensor(
                sum(int((b["shift_labels"] != IGNORE_INDEX).sum()) for b in micro), device=accelerator.device
            )
            tokens = sum(
                int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel() for b in micro
            )
            if world > 1:
                trainable = accelerator.reduce(trainable, reduction="sum")
            denominator = trainable.clamp(min=1).float()
            step_loss = torch.zeros((), device=accelerator.device)
            for index, batch in enumerate(micro):
                sync = index == len(micro) - 1
                ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
                with ctx:
                    loss_sum, _ = micro_batch_loss(model, batch)
                    loss = loss_sum * world / denominator
                    accelerator.backward(loss)
                step_loss += loss_sum.detach()
            if world > 1:
                step_loss = accelerator.reduce(step_loss, reduction="sum")
            loss_value = float((step_loss / denominator).item())
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"loss became {loss_value} at step {step + 1} (global step "
                    f"{self.spec.global_step_offset + step + 1}); training stopped before the weights were updated",
                    hint="lower hyperparams.learning_rate, use precision bf16/fp32 instead of fp16, or check the data "
                    "of this job for extreme examples",
                )
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss_value)
            lr = scheduler.get_last_lr()[0]
            reporter.step(step, loss_value, float(lr), None, tokens * world, time.perf_counter() - tick)
            if step % hp.logging_steps == 0 or step == total_steps:
                norm = float(grad_norm) if grad_norm is not None else None
                reporter.latest["grad_norm"] = norm
                reporter.log_metrics(
                    {
                        "step": step,
                        "global_step": self.spec.global_step_offset + step,
                        "loss": round(_mean(losses[-hp.logging_steps :]) or 0.0, 6),
                        "lr": lr,
                        "grad_norm": norm,
                        "tokens_per_second": round(reporter.tokens_per_second(), 1),
                    }
                )
            if step % hp.save_steps == 0 and step < total_steps:
                self.save_checkpoint(step, losses, reporter, fingerprint)
        return None

    def agree_on_request(self, request: str | None) -> str | None:
        """All ranks act on the same request at the same step (each polls on its own clock)."""
        codes = (None, *END_REQUESTS)
        local = torch.tensor(codes.index(request), device=self.accelerator.device)
        torch.distributed.all_reduce(local, op=torch.distributed.ReduceOp.MAX)
        return codes[int(local.item())]

    def end_on_request(
        self, request: str, step: int, losses: list[float], reporter: ProgressReporter, fingerprint: str
    ) -> str:
        """pause/stop/interrupt keep the finished steps in a checkpoint; skip keeps nothing."""
        log.info("%s requested at step %d", request, step)
        if request != "skip" and step > 0:
            self.save_checkpoint(step, losses, reporter, fingerprint)
        return request

    def save_checkpoint(self, step: int, losses: list[float], reporter: ProgressReporter, fingerprint: str) -> Path:
        accelerator = self.accelerator
        root = self.checkpoint_root
        staging = checkpoint.staging_dir(root, step)
        if accelerator.is_main_process:
            checkpoint.begin(root, step)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        final = root / f"checkpoint-{step}"
        if accelerator.is_main_process:
            state = {
                "step": step,
                "global_step": self.spec.global_step_offset + step,
                "losses": losses,
                "tokens": reporter.tokens,
                "train_seconds": reporter.train_seconds,
                "data_fingerprint": fingerprint,
                "job_id": self.spec.job_id,
            }
            final = checkpoint.commit(root, step, staging, state)
            removed = checkpoint.prune(root, self.cfg.hyperparams.save_total_limit)
            log.info(
                "checkpoint %s saved%s",
                final.name,
                f" (removed {', '.join(p.name for p in removed)})" if removed else "",
            )
        accelerator.wait_for_everyone()
        return final


VERIFY_EXAMPLES = 2  # enough to prove the saved weights load and compute; cheap even at 2048 tokens


def verify_saved_model(
    model_dir: Path, examples: list[TokenizedExample], device: torch.device, precision: str
) -> float:
    """Reload the saved dir as a user would and check it gives a finite loss on real examples.

    Runs on the training device through the chunked loss, so even a large vocabulary never needs
    the full logits of the sample in memory.
    """
    model, tokenizer = load_model_for_inference(model_dir, device=device, precision=precision)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = {key: value.to(device) for key, value in collate_padded(examples, pad_id).items()}
    with torch.no_grad():
        loss_sum, count = CausalLMWithChunkedLoss(model)(
            batch["input_ids"], attention_mask=batch["attention_mask"], shift_labels=batch["shift_labels"]
        )
    loss = float((loss_sum / count.clamp(min=1)).item())
    del model
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"the saved model in {model_dir} gives a non-finite loss ({loss}) when reloaded",
            hint="the weights are damaged; the job's output must not be used",
        )
    return round(loss, 6)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None
