"""The chunked cross-entropy gives the loss and gradients of one full-logits pass, for every layout."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_model, save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForCausalLM

from trainerd.data.pack import collate_packed, collate_padded
from trainerd.data.samples import sample_conversations
from trainerd.data.tokenize import IGNORE_INDEX, TokenizedExample, tokenize_conversations
from trainerd.engine.loss import (
    PLAIN_LM_HEAD_CLASSES,
    SOFTCAPPED_LM_HEAD_CLASSES,
    CausalLMWithChunkedLoss,
    chunked_cross_entropy,
    chunking_blocker,
)

Batch = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def examples(tiny_model_dir: Path) -> list[TokenizedExample]:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tokenize_conversations(sample_conversations(6, seed=5), tokenizer, max_length=256).examples


@pytest.fixture(scope="module")
def pad_id(tiny_model_dir: Path) -> int:
    return int(AutoTokenizer.from_pretrained(tiny_model_dir).pad_token_id)


def load_tiny(path: Path) -> Any:
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32)
    return model.train()


def make_batch(examples: list[TokenizedExample], layout: str, pad_id: int) -> Batch:
    batch = collate_packed(examples) if layout == "packed" else collate_padded(examples, pad_id)
    targets = batch["shift_labels"]
    flat = targets.view(-1)
    positions = (flat != IGNORE_INDEX).nonzero().view(-1)
    if len(positions) % 2:  # an even count, so a chunk size can divide it exactly
        flat[positions[-1]] = IGNORE_INDEX
    return batch


def model_inputs(batch: Batch) -> dict[str, torch.Tensor]:
    return {key: batch[key] for key in ("input_ids", "position_ids", "attention_mask") if key in batch}


def reference_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """What the engine computed before chunking: the model's own logits at every position, then the loss."""
    keep = batch["shift_labels"] != IGNORE_INDEX
    logits = model(**model_inputs(batch), use_cache=False).logits
    return F.cross_entropy(logits[keep].float(), batch["shift_labels"][keep], reduction="sum")


def wrapped_loss(wrapper: CausalLMWithChunkedLoss, batch: Batch) -> torch.Tensor:
    return wrapper(**model_inputs(batch), shift_labels=batch["shift_labels"])[0]


def loss_and_grads(
    model: torch.nn.Module, compute: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


def assert_same(expected: tuple[torch.Tensor, dict], actual: tuple[torch.Tensor, dict]) -> None:
    torch.testing.assert_close(actual[0], expected[0], rtol=1e-5, atol=1e-5)
    assert set(actual[1]) == set(expected[1]) and expected[1]
    for name, grad in expected[1].items():
        torch.testing.assert_close(actual[1][name], grad, rtol=1e-5, atol=1e-5, msg=name)


def chunk_sizes(trainable: int) -> dict[str, int]:
    remainder = next(size for size in (7, 11, 13) if trainable % size)
    return {"one-chunk": trainable + 5, "divides": trainable // 2, "remainder": remainder}


@pytest.mark.parametrize("layout", ["packed", "padded"])
def test_chunked_loss_and_grads_equal_full_logits(
    tiny_model_dir: Path, examples: list[TokenizedExample], pad_id: int, layout: str
) -> None:
    model = load_tiny(tiny_model_dir)
    batch = make_batch(examples, layout, pad_id)
    trainable = int((batch["shift_labels"] != IGNORE_INDEX).sum())
    expected = loss_and_grads(model, lambda: reference_loss(model, batch))
    for kind, size in chunk_sizes(trainable).items():
        wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=size)
        assert wrapper.chunk_tokens == size, wrapper.decision
        assert "chunked cross-entropy" in wrapper.decision
        count: list[int] = []

        def chunked(wrapper: CausalLMWithChunkedLoss = wrapper, count: list[int] = count) -> torch.Tensor:
            loss, n = wrapper(**model_inputs(batch), shift_labels=batch["shift_labels"])
            count.append(int(n))
            return loss

        assert_same(expected, loss_and_grads(model, chunked))
        assert count == [trainable], kind
    # chunking off: the model's own forward, logits only at trainable positions
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=0)
    assert wrapper.chunk_tokens == 0 and wrapper.uses_logits_mask
    assert "loss_chunk_tokens is 0" in wrapper.decision
    assert_same(expected, loss_and_grads(model, lambda: wrapped_loss(wrapper, batch)))


def test_packed_and_padded_chunked_losses_agree(
    tiny_model_dir: Path, examples: list[TokenizedExample], pad_id: int
) -> None:
    wrapper = CausalLMWithChunkedLoss(load_tiny(tiny_model_dir), chunk_tokens=16)
    packed_batch, padded_batch = collate_packed(examples), collate_padded(examples, pad_id)
    with torch.no_grad():
        packed = wrapper(**model_inputs(packed_batch), shift_labels=packed_batch["shift_labels"])
        padded = wrapper(**model_inputs(padded_batch), shift_labels=padded_batch["shift_labels"])
    assert int(packed[1]) == int(padded[1]) == sum(e.num_trainable for e in examples)
    torch.testing.assert_close(packed[0], padded[0], rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_lora_model_chunked_equals_full(tiny_model_dir: Path, examples: list[TokenizedExample], pad_id: int) -> None:
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(load_tiny(tiny_model_dir), config)
    batch = make_batch(examples, "padded", pad_id)
    expected = loss_and_grads(model, lambda: reference_loss(model, batch))
    assert all("lora_" in name for name in expected[1])
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=9)
    assert wrapper.chunk_tokens == 9, wrapper.decision
    actual = loss_and_grads(model, lambda: wrapped_loss(wrapper, batch))
    assert_same(expected, actual)


def test_rows_and_micro_batches_without_trainable_tokens(
    tiny_model_dir: Path, examples: list[TokenizedExample], pad_id: int
) -> None:
    model = load_tiny(tiny_model_dir)
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=5)
    # one padded row with no target at all: the other rows' loss is unchanged
    batch = collate_padded(examples[:3], pad_id)
    batch["shift_labels"][1] = IGNORE_INDEX
    expected = loss_and_grads(model, lambda: reference_loss(model, batch))
    assert_same(expected, loss_and_grads(model, lambda: wrapped_loss(wrapper, batch)))
    # no target in the whole micro-batch: loss 0, and every weight still gets a (zero) gradient, as DDP needs
    batch["shift_labels"][:] = IGNORE_INDEX
    model.zero_grad(set_to_none=True)
    loss, count = wrapper(**model_inputs(batch), shift_labels=batch["shift_labels"])
    loss.backward()
    assert int(count) == 0 and float(loss.detach()) == 0.0
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert not param.grad.any(), name


def test_chunked_cross_entropy_on_plain_tensors() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50)
    hidden = torch.randn(23, 8, requires_grad=True)
    targets = torch.randint(0, 50, (23,))
    full = F.cross_entropy(head(hidden), targets, reduction="sum")
    (full_grad,) = torch.autograd.grad(full, hidden)
    for size in (1, 5, 23, 100):
        loss = chunked_cross_entropy(hidden, targets, head, size)
        (grad,) = torch.autograd.grad(loss, hidden)
        torch.testing.assert_close(loss, full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, full_grad, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        chunked_cross_entropy(hidden, targets, head, 0)


def test_bf16_autocast_recomputes_the_same_logits(tiny_model_dir: Path, examples: list[TokenizedExample]) -> None:
    """Under autocast (as accelerate runs mixed precision) the recomputed chunk matches one pass closely."""
    model = load_tiny(tiny_model_dir)
    batch = collate_packed(examples)
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = loss_and_grads(model, lambda: reference_loss(model, batch))
        actual = loss_and_grads(model, lambda: wrapped_loss(wrapper, batch))
    torch.testing.assert_close(actual[0], expected[0], rtol=1e-2, atol=1e-2)
    for name, grad in expected[1].items():
        cosine = F.cosine_similarity(actual[1][name].flatten(), grad.flatten(), dim=0)
        assert cosine > 0.99, (name, float(cosine))


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_final_logit_softcapping_is_reproduced(family: str) -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    shape: dict[str, Any] = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
             "final_logit_softcapping": 0.5, "attn_implementation": "eager"}  # fmt: skip
    torch.manual_seed(0)
    if family == "gemma2":
        model: torch.nn.Module = Gemma2ForCausalLM(Gemma2Config(**shape))
    else:
        model = Gemma3ForCausalLM(Gemma3TextConfig(**shape))
    model.train()
    input_ids = torch.randint(0, 96, (2, 20))
    batch = {"input_ids": input_ids, "shift_labels": torch.cat([input_ids[:, 1:], torch.full((2, 1), -100)], 1)}
    expected = loss_and_grads(model, lambda: reference_loss(model, batch))
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=7)
    assert wrapper.chunk_tokens == 7, wrapper.decision
    assert_same(expected, loss_and_grads(model, lambda: wrapper(input_ids, shift_labels=batch["shift_labels"])[0]))


def test_models_the_chunked_loss_cannot_reproduce_take_one_full_pass(tiny_model_dir: Path) -> None:
    class CustomHead(Qwen3ForCausalLM):  # e.g. remote code: its forward may do anything
        pass

    custom = CustomHead.from_pretrained(tiny_model_dir)
    wrapper = CausalLMWithChunkedLoss(custom, chunk_tokens=64)
    assert wrapper.chunk_tokens == 0
    assert "no chunking because CustomHead's forward is not a verified lm_head" in wrapper.decision

    scaled = load_tiny(tiny_model_dir)
    scaled.config.logits_scaling = 4.0
    assert chunking_blocker(scaled) == "its config sets logits_scaling=4.0, which the chunked loss does not reproduce"
    scaled.config.logits_scaling = 1.0
    assert chunking_blocker(scaled) is None
    scaled.config.final_logit_softcapping = 30.0  # Qwen3's forward ignores it; we must not apply it either
    assert "final_logit_softcapping=30.0" in (chunking_blocker(scaled) or "")
    with pytest.raises(ValueError):
        CausalLMWithChunkedLoss(scaled, chunk_tokens=-1)


def test_allow_listed_forwards_are_exactly_lm_head_of_hidden_states() -> None:
    """Re-read the allow-listed classes' source: a transformers upgrade that changes them fails here."""
    transformers = importlib.import_module("transformers")
    for name in sorted(PLAIN_LM_HEAD_CLASSES | SOFTCAPPED_LM_HEAD_CLASSES):
        source = inspect.getsource(getattr(transformers, name).forward)
        assert re.search(r"outputs(: \w+)? = self\.model\(", source), name
        assignments = re.findall(r"^\s*(logits = .*)$", source, re.M)
        softcap = [
            "logits = logits / self.config.final_logit_softcapping",
            "logits = torch.tanh(logits)",
            "logits = logits * self.config.final_logit_softcapping",
        ]
        expected = ["logits = self.lm_head(hidden_states)"]
        assert assignments == (expected + softcap if name in SOFTCAPPED_LM_HEAD_CLASSES else expected), name
        assert "hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)" in source, name


def test_state_dict_keys_and_old_checkpoints(tiny_model_dir: Path, tmp_path: Path) -> None:
    """New checkpoints hold `model.`-prefixed keys; a file of the bare model (older checkpoints) still loads."""
    source = load_tiny(tiny_model_dir)
    with torch.no_grad():
        for param in source.parameters():
            param.add_(0.01)
    old_file = tmp_path / "old.safetensors"
    save_model(source, str(old_file))  # what accelerate.save_state wrote before the wrapper existed
    wrapper = CausalLMWithChunkedLoss(load_tiny(tiny_model_dir))
    load_model(wrapper, str(old_file))  # what accelerate.load_state does (strict)
    for name, param in source.state_dict().items():
        torch.testing.assert_close(wrapper.model.state_dict()[name], param, rtol=0, atol=0)
    new_file = tmp_path / "new.safetensors"
    save_model(wrapper, str(new_file))
    again = CausalLMWithChunkedLoss(load_tiny(tiny_model_dir))
    load_model(again, str(new_file))
    assert all(key.startswith("model.") for key in again.state_dict())
    for name, param in wrapper.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], param, rtol=0, atol=0)
    # a dict that is neither ours nor the inner model's is left alone (strict loading reports it)
    with pytest.raises(RuntimeError):
        again.load_state_dict({"lm_head.weight": torch.zeros(1)}, strict=True)


def test_parameters_are_the_inner_models_own(tiny_model_dir: Path) -> None:
    model = load_tiny(tiny_model_dir)
    wrapper = CausalLMWithChunkedLoss(model)
    assert [id(p) for p in wrapper.parameters()] == [id(p) for p in model.parameters()]
    assert wrapper._no_split_modules == model._no_split_modules


DDP_SCRIPT = """
import os, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from transformers import AutoModelForCausalLM
from trainerd.engine.loss import CausalLMWithChunkedLoss

MODEL, WORK = sys.argv[1], sys.argv[2]


def batches():
    ids = torch.randint(0, 1000, (2, 2, 30), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[..., -1] = -100
    labels[1] = -100  # rank 1 has no trainable token: its head must still take part in the graph
    return ids, labels


def worker(rank):
    dist.init_process_group("gloo", init_method="file://" + os.path.join(WORK, "store"), rank=rank, world_size=2)
    model = AutoModelForCausalLM.from_pretrained(MODEL).train()
    ddp = DistributedDataParallel(CausalLMWithChunkedLoss(model, chunk_tokens=7))
    ids, labels = batches()
    loss, count = ddp(ids[rank], shift_labels=labels[rank])
    loss.backward()  # DDP averages the gradients of both ranks
    if rank == 0:
        torch.save({name: p.grad for name, p in model.named_parameters()}, os.path.join(WORK, "grads.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    mp.start_processes(worker, nprocs=2, start_method="fork")
    model = AutoModelForCausalLM.from_pretrained(MODEL).train()
    ids, labels = batches()
    keep = labels != -100
    logits = [model(ids[r], use_cache=False).logits[keep[r]] for r in range(2)]
    total = sum(torch.nn.functional.cross_entropy(logits[r], labels[r][keep[r]], reduction="sum") for r in range(2))
    (total / 2).backward()
    ddp_grads = torch.load(os.path.join(WORK, "grads.pt"))
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)
    print("ok")
"""


def test_ddp_over_the_wrapper_with_a_rank_without_trainable_tokens(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two gloo processes: DDP wraps the loss wrapper (one forward), the gradients are the full-logits ones,
    and a rank whose micro-batch has no trainable token neither hangs nor leaves the head unused."""
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-4000:]
