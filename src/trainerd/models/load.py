"""Load a model for training or inference: the one place that decides attention, precision,
activation checkpointing and full-vs-LoRA, and says why in plain lines (`decisions`).

Accepts a full model dir, a hub id (same `from_pretrained` path) or a LoRA adapter dir (its base is
loaded from `base_model_name_or_path`, then the adapter is continued). Models stay on the CPU; the
engine/accelerate moves them to the device.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainerd.config.schema import TrainerdConfig
from trainerd.errors import ModelError
from trainerd.files import atomic_write_json
from trainerd.models.inspect import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHT_FILES,
    CONFIG_FILE,
    ModelDirInfo,
    inspect_model_dir,
    looks_like_hub_id,
)

FLASH_ATTENTION_MIN_CAPABILITY = (8, 0)
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_ATTN_FIX = "set model.attn_implementation to 'auto' (picks what this machine supports), 'sdpa' or 'eager'"


@dataclass
class LoadedModel:
    """A model ready to train plus every choice made while loading it (for logs and result.json).

    `dtype` is the training precision (what the engine autocasts to); `weights_dtype` is what the
    parameters are stored in: fp32 master weights for a full fine-tune (bf16 weights would swallow
    small updates), `dtype` for the frozen base of a LoRA run (halves its memory).
    """

    model: Any
    tokenizer: Any
    attn_implementation: str
    attn_reason: str
    dtype: torch.dtype
    dtype_reason: str
    is_lora: bool
    lora_source: str | None
    base_model_path: str | None
    gradient_checkpointing: bool
    trainable_params: int
    total_params: int
    decisions: list[str] = field(default_factory=list)
    weights_dtype: torch.dtype = torch.float32


def choose_attention(requested: str, device: torch.device, dtype: torch.dtype | None = None) -> tuple[str, str]:
    """Pick the attention kernel: a forced value as-is, else flash_attention_2 > sdpa > eager by what works here."""
    if requested != "auto":
        return requested, "forced by config"
    fallback, fallback_why = _fallback_attention()
    if device.type != "cuda":
        return fallback, f"{fallback_why}; flash_attention_2 needs a CUDA GPU and the device is {device.type}"
    index = device.index if device.index is not None else torch.cuda.current_device()
    capability = torch.cuda.get_device_capability(index)
    gpu = torch.cuda.get_device_name(index)
    if capability < FLASH_ATTENTION_MIN_CAPABILITY:
        return fallback, (
            f"{fallback_why}; {gpu} has compute capability {capability[0]}.{capability[1]}, "
            "flash_attention_2 needs 8.0 or newer"
        )
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
        return fallback, f"{fallback_why}; flash_attention_2 needs bf16/fp16 and training runs in {_dtype_name(dtype)}"
    try:
        flash_attn = importlib.import_module("flash_attn")
    except Exception as exc:  # a broken build raises more than ImportError
        return fallback, f"{fallback_why}; flash_attn does not import ({exc}); `pip install flash-attn` to use it"
    version = getattr(flash_attn, "__version__", "?")
    return "flash_attention_2", (
        f"flash_attn {version} imports and {gpu} has compute capability {capability[0]}.{capability[1]} (>= 8.0)"
    )


def _fallback_attention() -> tuple[str, str]:
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        return "sdpa", "sdpa: torch has scaled_dot_product_attention"
    return "eager", f"eager: torch {torch.__version__} has no scaled_dot_product_attention"


def choose_dtype(precision: str, device: torch.device) -> tuple[torch.dtype, str]:
    """Training precision: auto = bf16 on a CUDA GPU that supports it, else fp32; forced values are checked."""
    is_cuda = device.type == "cuda"
    bf16_ok = is_cuda and torch.cuda.is_bf16_supported()
    if precision == "auto":
        if bf16_ok:
            return torch.bfloat16, "auto: bf16 because the CUDA device supports it"
        if is_cuda:
            return torch.float32, "auto: fp32 because this GPU has no bf16 (set precision fp16 for mixed precision)"
        return torch.float32, f"auto: fp32 because the device is {device.type}, not a bf16-capable CUDA GPU"
    if precision not in _DTYPES:
        raise ModelError(f"unknown model.precision {precision!r}", hint="use one of: auto, bf16, fp16, fp32")
    if precision == "fp16" and not is_cuda:
        raise ModelError(
            f"model.precision fp16 is not supported on {device.type}",
            hint="use precision 'auto' or 'fp32' (or 'bf16' on a CPU with bf16 support)",
        )
    if precision == "bf16" and is_cuda and not bf16_ok:
        raise ModelError("model.precision bf16 is not supported by this GPU", hint="use precision 'fp16' or 'auto'")
    return _DTYPES[precision], "forced by config"


def resolve_base_model(adapter_dir: Path | str, base: str) -> str:
    """The adapter's base as an absolute local dir when it is one (relative paths are tried against the
    adapter dir first), else unchanged (a hub id)."""
    candidate = Path(base).expanduser()
    if not candidate.is_absolute():
        beside = Path(adapter_dir) / candidate
        if beside.exists():
            return str(beside.resolve())
    if candidate.exists():
        return str(candidate.resolve())
    return base


def load_tokenizer(path_or_id: str | Path, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model dir, hub id or LoRA adapter (the adapter's own if it has one, else its base's)."""
    source = str(path_or_id)
    info = _inspect_local(source)
    if info is not None and info.kind == "lora-adapter" and not info.has_tokenizer:
        assert info.base_model is not None  # a valid adapter always names its base
        source = resolve_base_model(source, info.base_model)
        revision = None  # the revision named the adapter, not its base
    elif info is not None:
        source = str(Path(source).resolve())
    try:
        with _offline_errors(source):
            return AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot load the tokenizer from {source}: {exc}",
            hint="the model dir needs tokenizer.json/tokenizer_config.json (save the tokenizer with the model)",
        ) from exc


def load_model_for_training(model_path: str, cfg: TrainerdConfig, device: torch.device) -> LoadedModel:
    """Load `model_path` (full dir, hub id or LoRA adapter dir) ready to train, on the CPU."""
    decisions: list[str] = []
    info = _inspect_local(model_path)
    dtype, dtype_reason = choose_dtype(cfg.model.precision, device)
    attn, attn_reason = choose_attention(cfg.model.attn_implementation, device, dtype)
    decisions.append(f"attention: {attn} ({attn_reason})")
    decisions.append(f"precision: {_dtype_name(dtype)} ({dtype_reason})")
    revision = cfg.model.revision
    trust = cfg.model.trust_remote_code
    lora = cfg.lora
    model: Any
    if info is not None and info.kind == "lora-adapter":
        weights_dtype = dtype
        model, base, adapter_dir, base_path = _load_adapter(
            model_path, info, attn, attn_reason, dtype, trust=trust, trainable=True,
            prepare=lambda base_model: _prepare_base(base_model, cfg, decisions),
        )  # fmt: skip
        tokenizer = load_tokenizer(adapter_dir, trust_remote_code=trust)
        peft_cfg = model.peft_config["default"]
        decisions.append(
            f"training: continue LoRA adapter {adapter_dir} on base {base_path} "
            f"(r={getattr(peft_cfg, 'r', '?')}, alpha={getattr(peft_cfg, 'lora_alpha', '?')}, "
            f"targets={_targets(getattr(peft_cfg, 'target_modules', None))}; the adapter's own settings win over "
            "the lora section)"
        )
        is_lora, lora_source, base_model_path = True, "continued", base_path
    else:
        source = str(Path(model_path).resolve()) if info is not None else model_path
        weights_dtype = dtype if lora.enabled else torch.float32
        base = _from_pretrained(source, attn, attn_reason, weights_dtype, revision=revision, trust=trust)
        tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust)
        _prepare_base(base, cfg, decisions)
        if lora.enabled:
            lora_config = LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.hyperparams.seed)
                with _quiet_peft_deprecations():
                    model = get_peft_model(base, lora_config)
            decisions.append(
                f"training: new LoRA adapter (r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
                f"targets={_targets(lora.target_modules)})"
            )
            is_lora, lora_source, base_model_path = True, "new", source
        else:
            model = base
            decisions.append("training: full fine-tune (all weights)")
            is_lora, lora_source, base_model_path = False, None, source

    if weights_dtype != dtype:
        decisions.append(
            f"weights: kept in {_dtype_name(weights_dtype)} as master copy; compute runs in {_dtype_name(dtype)}"
        )
    _ensure_pad_token(tokenizer, decisions)
    _check_vocab(base, tokenizer, model_path)
    model.train()
    trainable, total = _count_params(model)
    decisions.append(f"parameters: {trainable:,} trainable of {total:,} ({100.0 * trainable / max(total, 1):.2f}%)")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        attn_implementation=attn,
        attn_reason=attn_reason,
        dtype=dtype,
        dtype_reason=dtype_reason,
        is_lora=is_lora,
        lora_source=lora_source,
        base_model_path=base_model_path,
        gradient_checkpointing=bool(base.is_activation_checkpointing),
        trainable_params=trainable,
        total_params=total,
        decisions=decisions,
        weights_dtype=weights_dtype,
    )


def save_trained_model(
    model: Any, tokenizer: Any, out_dir: Path | str, state_dict: dict[str, Any] | None = None
) -> Path:
    """Save a full model (safetensors) or a peft model's adapter, plus the tokenizer, into `out_dir`.

    `state_dict` is the gathered full state dict when the weights are sharded across ranks (FSDP,
    ZeRO-3: `accelerator.get_state_dict`); without it the model's own parameters are saved.
    An adapter's config records its base as an absolute path when the base is a local dir, so the
    adapter still loads after it is moved into the version store.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        model.save_pretrained(str(out), state_dict=state_dict)
        _absolutize_adapter_base(out)
    else:
        # Training ran with use_cache=False; the saved model is for generation, where the cache helps.
        previous = model.config.use_cache
        model.config.use_cache = True
        try:
            model.save_pretrained(str(out), state_dict=state_dict)
        finally:
            model.config.use_cache = previous
    tokenizer.save_pretrained(str(out))
    return out


def load_model_for_inference(
    path: str | Path,
    *,
    device: torch.device | None = None,
    precision: str = "auto",
    attn_implementation: str = "auto",
    merge: bool = True,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on `device` (CPU by default); an adapter is merged into its base
    unless `merge` is False, in which case the PeftModel is returned."""
    device = device or torch.device("cpu")
    source = str(path)
    info = _inspect_local(source)
    dtype, _ = choose_dtype(precision, device)
    attn, attn_reason = choose_attention(attn_implementation, device, dtype)
    if info is not None and info.kind == "lora-adapter":
        peft_model, _, _, _ = _load_adapter(
            source, info, attn, attn_reason, dtype, trust=trust_remote_code, trainable=False
        )
        model = peft_model.merge_and_unload() if merge else peft_model
    else:
        resolved = str(Path(source).resolve()) if info is not None else source
        model = _from_pretrained(resolved, attn, attn_reason, dtype, revision=None, trust=trust_remote_code)
    tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code)
    model.to(device)
    model.eval()
    return model, tokenizer


# --- helpers ---------------------------------------------------------------------------------------


def _load_adapter(
    source: str,
    info: ModelDirInfo,
    attn: str,
    attn_reason: str,
    dtype: torch.dtype,
    *,
    trust: bool,
    trainable: bool,
    prepare: Callable[[Any], None] | None = None,
) -> tuple[Any, Any, str, str]:
    """A LoRA adapter dir loaded onto its base: (peft model, base model, adapter dir, base path).

    `prepare` runs on the base before the adapter goes on (training: checkpointing, input grads).
    """
    assert info.base_model is not None
    adapter_dir = str(Path(source).resolve())
    base_path = resolve_base_model(adapter_dir, info.base_model)
    _check_local_base(adapter_dir, base_path)
    base = _from_pretrained(base_path, attn, attn_reason, dtype, revision=None, trust=trust)
    if prepare is not None:
        prepare(base)
    try:
        with _quiet_peft_deprecations():
            model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=trainable)
    except Exception as exc:
        raise ModelError(
            f"cannot load LoRA adapter {adapter_dir} onto base model {base_path}: {exc}",
            hint="the adapter must have been trained on this base model; check base_model_name_or_path "
            f"in {Path(adapter_dir) / ADAPTER_CONFIG_FILE}",
        ) from exc
    return model, base, adapter_dir, base_path


def _inspect_local(path: str) -> ModelDirInfo | None:
    """Inspection of a local dir (raising ModelError when unusable), or None for a hub id."""
    if Path(path).expanduser().exists():
        info = inspect_model_dir(Path(path).expanduser())
        if not info.valid:
            raise ModelError(
                f"model dir {path} cannot be used: {info.reason}",
                hint="point model.path at a complete model dir (config.json + weights) or LoRA adapter dir "
                "(adapter_config.json + adapter weights)",
            )
        return info
    if looks_like_hub_id(path):
        return None
    raise ModelError(
        f"model {path!r} does not exist as a local dir and is not a hub id ('org/name')",
        hint="check model.path (or the current model of the base dir)",
    )


def _check_local_base(adapter_dir: str, base_path: str) -> None:
    if Path(base_path).exists():
        info = inspect_model_dir(base_path)
        if not info.valid:
            raise ModelError(
                f"base model {base_path} of adapter {adapter_dir} cannot be used: {info.reason}",
                hint=f"fix base_model_name_or_path in {Path(adapter_dir) / ADAPTER_CONFIG_FILE}",
            )
        if info.kind != "full":
            raise ModelError(
                f"base model {base_path} of adapter {adapter_dir} is itself an adapter, not a full model",
                hint="merge the first adapter into its base, or point base_model_name_or_path at the full model",
            )
    elif not looks_like_hub_id(base_path):
        raise ModelError(
            f"base model {base_path!r} of adapter {adapter_dir} does not exist",
            hint=f"fix base_model_name_or_path in {Path(adapter_dir) / ADAPTER_CONFIG_FILE} "
            "(an absolute path, a path relative to the adapter dir, or a hub id)",
        )


def _from_pretrained(
    source: str, attn: str, attn_reason: str, dtype: torch.dtype, *, revision: str | None, trust: bool
) -> PreTrainedModel:
    try:
        with _offline_errors(source), _full_model_view(source) as load_from:
            model = AutoModelForCausalLM.from_pretrained(
                load_from,
                revision=revision,
                dtype=dtype,
                attn_implementation=attn,
                trust_remote_code=trust,
            )
    except ModelError:
        raise
    except (ImportError, ValueError) as exc:
        if attn_reason == "forced by config" and _mentions_attention(str(exc), attn):
            raise ModelError(
                f"attention implementation {attn!r} (forced by config) cannot be used with {source}: {exc}",
                hint=_ATTN_FIX
                + ("; or install flash-attn on a CUDA GPU with compute capability >= 8.0" if "flash" in attn else ""),
            ) from exc
        raise ModelError(f"cannot load model {source}: {exc}", hint=_load_hint(source)) from exc
    except Exception as exc:
        raise ModelError(f"cannot load model {source}: {exc}", hint=_load_hint(source)) from exc
    # The name peft records as an adapter's base must be the real dir, never a temporary view.
    model.config.name_or_path = source
    model.name_or_path = source
    return model


@contextmanager
def _full_model_view(source: str) -> Iterator[str]:
    """The path to load a full model from, without any adapter files lying beside it.

    transformers applies an `adapter_config.json` it finds next to full weights on top of them; we
    train what `inspect_model_dir` reports (the full weights), so such a dir is loaded through a
    temporary dir of symlinks that leaves the adapter files out.
    """
    root = Path(source)
    adapter_names = {ADAPTER_CONFIG_FILE, *(name for name, _ in ADAPTER_WEIGHT_FILES)}
    if not ((root / CONFIG_FILE).is_file() and (root / ADAPTER_CONFIG_FILE).is_file()):
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="trainerd-model-view-") as view:
        try:
            for entry in root.iterdir():
                if entry.name not in adapter_names:
                    (Path(view) / entry.name).symlink_to(entry.resolve())
        except OSError as exc:
            raise ModelError(
                f"model dir {source} holds a full model and an adapter_config.json, and the adapter files "
                f"cannot be set aside for loading ({exc})",
                hint="move adapter_config.json and adapter_model.* out of the full model dir",
            ) from exc
        yield view


def _mentions_attention(message: str, attn: str) -> bool:
    lowered = message.lower()
    return "attention" in lowered or "attn" in lowered or attn.lower() in lowered


def _load_hint(source: str) -> str:
    if Path(source).exists():
        return "the model dir may be incomplete or for another architecture; check `trainerd` model inspection"
    return "check the hub id and revision, your network and HF_TOKEN, or point model.path at a local model dir"


@contextmanager
def _offline_errors(source: str) -> Iterator[None]:
    """A hub id that is neither cached nor reachable becomes one clear ModelError."""
    try:
        yield
    except OSError as exc:
        if Path(source).exists():
            raise
        raise ModelError(
            f"model {source!r} could not be found locally or on the Hugging Face hub ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'not found'})",
            hint="check the id and revision; with HF_HUB_OFFLINE=1 the model must already be in the HF cache, "
            "otherwise enable network access (and HF_TOKEN for gated models) or give a local model dir",
        ) from exc


@contextmanager
def _quiet_peft_deprecations() -> Iterator[None]:
    """peft 0.21 reads `model.is_gradient_checkpointing`, which transformers 5 deprecates; not our call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
        yield


def _prepare_base(base: PreTrainedModel, cfg: TrainerdConfig, decisions: list[str]) -> None:
    """use_cache off (a training forward must not build a KV cache) and activation checkpointing per config."""
    base.config.use_cache = False
    if cfg.hyperparams.use_gradient_checkpointing:
        try:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        except ValueError as exc:
            raise ModelError(
                f"{type(base).__name__} does not support gradient checkpointing: {exc}",
                hint="set hyperparams.use_gradient_checkpointing to false",
            ) from exc
        # Frozen embeddings (LoRA) would otherwise cut the graph at the first checkpointed layer.
        base.enable_input_require_grads()
        decisions.append("gradient checkpointing: on (non-reentrant; less memory, ~20-30% more compute)")
    else:
        if base.is_activation_checkpointing:
            base.activation_checkpointing_disable()
        decisions.append("gradient checkpointing: off (hyperparams.use_gradient_checkpointing is false)")


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase, decisions: list[str]) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        decisions.append(f"tokenizer: no pad token; using eos {tokenizer.eos_token!r} for padding (never trained on)")


def _check_vocab(base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_path: str) -> None:
    embeddings = base.get_input_embeddings()
    rows = int(getattr(embeddings, "num_embeddings", 0)) or len(tokenizer)
    if len(tokenizer) > rows:
        raise ModelError(
            f"tokenizer of {model_path} has {len(tokenizer)} tokens but the model's embeddings only {rows}",
            hint="the tokenizer does not belong to this model; save the model and its tokenizer together",
        )


def _count_params(model: torch.nn.Module) -> tuple[int, int]:
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def _absolutize_adapter_base(adapter_dir: Path) -> None:
    config_path = adapter_dir / ADAPTER_CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if isinstance(base, str) and base and Path(base).expanduser().exists():
        absolute = str(Path(base).expanduser().resolve())
        if absolute != base:
            config["base_model_name_or_path"] = absolute
            atomic_write_json(config_path, config)


def _targets(targets: Any) -> str:
    if isinstance(targets, str):
        return targets
    if targets is None:
        return "?"
    # A loaded adapter lists full module paths; the leaf names say the same in one short line.
    return ",".join(sorted({str(name).rsplit(".", 1)[-1] for name in targets}))


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype))
