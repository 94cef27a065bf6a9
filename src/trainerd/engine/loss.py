"""The training loss of a micro-batch: summed cross-entropy over its trainable positions, computed in
chunks so the logits of the whole micro-batch never exist at once.

With a real vocabulary the logits dominate memory: 4 rows x 2048 tokens of Qwen3 (151,936 tokens)
are 2.5 GB in bf16, 5 GB upcast to fp32 for the loss, and as much again for their gradient.
`CausalLMWithChunkedLoss` runs the decoder once, keeps the hidden states of the trainable positions
only, and computes `lm_head -> cross_entropy` over `chunk_tokens` positions at a time inside
`torch.utils.checkpoint`, so each chunk's logits are freed after its loss and recomputed in backward.

The chunked path calls the model's decoder (`causal_lm.model`) and `lm_head` itself instead of the
model's forward, so it is used only for causal-LM classes whose forward was checked to be exactly
`lm_head(hidden)` (plus Gemma's `final_logit_softcapping`, reproduced here). Any other model (remote
code, logit scaling, MoE routers, a distributed wrapper in between) takes one full-logits pass
through its own forward, and the reason is in `decision`.

The wrapper is what the engine hands to `accelerator.prepare`, so DDP/FSDP see one forward call.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainerd.data.tokenize import IGNORE_INDEX

log = logging.getLogger("trainerd.engine")

# Causal-LM classes whose forward is `self.model(...)` then `self.lm_head(hidden)` and nothing else
# that changes the logits (read in transformers 5.24; tests/engine/test_loss.py re-reads the source).
PLAIN_LM_HEAD_CLASSES = frozenset(
    {
        "GemmaForCausalLM",
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Olmo2ForCausalLM",
        "Olmo3ForCausalLM",
        "Phi3ForCausalLM",
        "PhiForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "SmolLM3ForCausalLM",
    }
)
# ... the same, then `tanh(logits / cap) * cap` when `config.final_logit_softcapping` is set.
SOFTCAPPED_LM_HEAD_CLASSES = frozenset({"Gemma2ForCausalLM", "Gemma3ForCausalLM"})
# Config attributes that change logits in some architectures; a model that sets one (to anything but
# the neutral value) is never chunked, even if its class is listed above.
LOGIT_SCALING_ATTRIBUTES: dict[str, object] = {
    "logit_scale": 1.0,  # Cohere
    "logits_scaling": 1.0,  # Granite
    "lm_head_multiplier": 1.0,  # FalconH1
    "logits_mup_width_multiplier": 1.0,
    "dim_model_base": None,  # MiniCPM divides the hidden states by hidden_size / dim_model_base
    "logits_soft_cap": None,
    "output_logit_soft_cap": None,
    "mup_enabled": False,
}


def base_causal_lm(model: nn.Module) -> Any:
    """The transformers causal LM inside a peft model (LoRA layers are injected in place), else `model`."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def accepts_logits_mask(model: nn.Module) -> bool:
    """Whether the causal-LM forward can compute logits only at chosen positions (transformers 5)."""
    return "logits_to_keep" in inspect.signature(base_causal_lm(model).forward).parameters


def _is_transformers_class(module: nn.Module, allowed: frozenset[str]) -> bool:
    """Exactly an allow-listed transformers class: not remote code, a subclass or an FSDP-swapped class."""
    cls = type(module)
    return cls.__name__ in allowed and cls.__module__.startswith("transformers.models.")


def chunking_blocker(model: nn.Module) -> str | None:
    """Why the chunked loss cannot reproduce `model`'s own logits, or None when it can."""
    if hasattr(model, "get_base_model"):
        if not type(model).__module__.startswith("peft."):
            return f"{type(model).__name__} is not a peft model the chunked loss knows"
        peft_config = getattr(model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            return "a prompt-learning peft adapter changes the forward"
    causal_lm = base_causal_lm(model)
    name = type(causal_lm).__name__
    if not _is_transformers_class(causal_lm, PLAIN_LM_HEAD_CLASSES | SOFTCAPPED_LM_HEAD_CLASSES):
        return f"{name}'s forward is not a verified lm_head(hidden_states)"
    config = causal_lm.config
    for attribute, neutral in LOGIT_SCALING_ATTRIBUTES.items():
        value = getattr(config, attribute, neutral)
        if value != neutral:
            return f"its config sets {attribute}={value}, which the chunked loss does not reproduce"
    softcap = getattr(config, "final_logit_softcapping", None)
    if softcap is not None and name not in SOFTCAPPED_LM_HEAD_CLASSES:
        return f"its config sets final_logit_softcapping={softcap}, which {name}'s forward would ignore"
    if not isinstance(getattr(causal_lm, "model", None), nn.Module) or not isinstance(
        getattr(causal_lm, "lm_head", None), nn.Module
    ):
        return f"{name} has no .model decoder and .lm_head"
    return None


def _chunk_loss(head: nn.Module, softcap: float | None, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of one chunk, with the logits computed exactly as the model's forward does."""
    logits = head(hidden)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def chunked_cross_entropy(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: nn.Module,
    chunk_tokens: int,
    softcap: float | None = None,
) -> torch.Tensor:
    """Summed cross-entropy of `head(hidden)` against `targets` ((n, hidden) and (n,)), `chunk_tokens` rows at a time.

    Each chunk runs under non-reentrant activation checkpointing: only its hidden states are kept, its
    logits are freed after its loss and recomputed in backward. Rows that fit one chunk are computed
    directly (recomputing them would lower no peak). With no rows, the empty chunk still runs, so the
    head and decoder take part in the graph (DDP expects every parameter to get a gradient).
    """
    if chunk_tokens <= 0:
        raise ValueError("chunk_tokens must be positive")
    compute = functools.partial(_chunk_loss, head, softcap)
    rows = hidden.shape[0]
    if rows <= chunk_tokens:
        return compute(hidden, targets)
    total: torch.Tensor | None = None
    for start in range(0, rows, chunk_tokens):
        end = start + chunk_tokens
        part = checkpoint(compute, hidden[start:end], targets[start:end], use_reentrant=False)
        total = part if total is None else total + part
    assert total is not None
    return total


class CausalLMWithChunkedLoss(nn.Module):
    """A causal LM (plain or peft) whose forward returns (summed cross-entropy, trainable-token count).

    `chunk_tokens` > 0 asks for the chunked loss; it is used when `chunking_blocker(model)` finds
    nothing against it, otherwise (and for 0) the model's own forward computes the logits in one pass
    (only at trainable positions when it takes `logits_to_keep`). `decision` says which, and why.
    Parameters are the inner model's own objects; `model` is the inner model to save.
    """

    def __init__(self, model: nn.Module, chunk_tokens: int = 1024, *, logits_mask: bool | None = None) -> None:
        super().__init__()
        if chunk_tokens < 0:
            raise ValueError("chunk_tokens must be >= 0")
        self.model = model
        self.uses_logits_mask = accepts_logits_mask(model) if logits_mask is None else logits_mask
        blocker = chunking_blocker(model) if chunk_tokens > 0 else None
        self.chunk_tokens = chunk_tokens if chunk_tokens > 0 and blocker is None else 0
        self._warned_fallback = False
        where = "only at trainable positions" if self.uses_logits_mask else "at every position"
        if self.chunk_tokens:
            self.decision = (
                f"loss: chunked cross-entropy over {self.chunk_tokens}-token chunks (logits recomputed in backward)"
            )
        elif chunk_tokens == 0:
            self.decision = f"loss: one full-logits pass, logits {where} (hyperparams.loss_chunk_tokens is 0)"
        else:
            self.decision = f"loss: one full-logits pass, logits {where}: no chunking because {blocker}"
        # Checkpoints written before this wrapper existed hold the inner model's keys.
        self.register_load_state_dict_pre_hook(_accept_inner_model_keys)

    @property
    def _no_split_modules(self) -> Any:
        """The inner model's layer classes, for accelerate's FSDP auto-wrap policy."""
        return getattr(base_causal_lm(self.model), "_no_split_modules", None)

    def tie_weights(self, *args: Any, **kwargs: Any) -> Any:
        """Re-tie the inner model's embeddings (accelerate's FSDP loading calls this on the prepared model)."""
        return base_causal_lm(self.model).tie_weights(*args, **kwargs)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        shift_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed cross-entropy over positions whose target is not -100, their count)."""
        keep = shift_labels != IGNORE_INDEX
        targets = shift_labels[keep]
        inputs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        if self.chunk_tokens and self._still_chunkable():
            causal_lm = base_causal_lm(self.model)
            hidden = causal_lm.model(**inputs).last_hidden_state[keep]
            softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
            loss_sum = chunked_cross_entropy(hidden, targets, causal_lm.lm_head, self.chunk_tokens, softcap)
        else:
            if self.uses_logits_mask:
                inputs["logits_to_keep"] = keep
            logits = self.model(**inputs).logits
            if logits.dim() == 3:  # the model computed every position: select the trainable ones here
                logits = logits[keep]
            loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
        return loss_sum, keep.sum()

    def _still_chunkable(self) -> bool:
        """A wrapper put between us and the decoder after construction (FSDP units) would be bypassed."""
        blocker = chunking_blocker(self.model)
        if blocker is None:
            return True
        if not self._warned_fallback:
            log.warning("loss: chunked cross-entropy off for this run, using one full-logits pass: %s", blocker)
            self._warned_fallback = True
        return False


def _accept_inner_model_keys(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Rename a state dict of the bare inner model (`lm_head.weight`) to ours (`model.lm_head.weight`).

    Only when no key is already ours and every key is the inner model's: then the dict is an older
    checkpoint's and loads unchanged in meaning.
    """
    assert isinstance(module, CausalLMWithChunkedLoss)
    incoming = [key[len(prefix) :] for key in state_dict if key.startswith(prefix)]
    if not incoming:
        return
    inner = set(module.model.state_dict(keep_vars=True))
    if any(key.startswith("model.") and key[len("model.") :] in inner for key in incoming):
        return
    if not all(key in inner for key in incoming):
        return
    for key in incoming:
        state_dict[f"{prefix}model.{key}"] = state_dict.pop(prefix + key)
