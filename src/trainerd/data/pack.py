"""Micro-batches: which examples go together, and how they become tensors.

Two layouts, both with labels shifted *per example* (``shift_labels[t]`` is the target of the
logits at t) so a target never crosses from one example into the next:

- packed (default): the examples of a micro-batch are concatenated into one row with
  ``position_ids`` restarting at 0 for each. No attention mask is passed, so transformers builds a
  block-diagonal mask from the position resets (sdpa/eager) or uses varlen kernels
  (flash_attention_2): no example attends to another, and no compute goes to padding.
- padded: rows padded to the longest example of the micro-batch with an attention mask, for
  models whose attention cannot take packed rows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from trainerd.data.tokenize import IGNORE_INDEX, TokenizedExample


def shifted_labels(labels: Sequence[int]) -> list[int]:
    """Targets aligned with logits: position t predicts token t+1; the last position predicts nothing."""
    return [*labels[1:], IGNORE_INDEX]


def collate_packed(examples: Sequence[TokenizedExample]) -> dict[str, torch.Tensor]:
    """One flat row of all examples with per-example position ids."""
    input_ids: list[int] = []
    position_ids: list[int] = []
    targets: list[int] = []
    for example in examples:
        input_ids.extend(example.input_ids)
        position_ids.extend(range(len(example.input_ids)))
        targets.extend(shifted_labels(example.labels))
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([position_ids], dtype=torch.long),
        "shift_labels": torch.tensor([targets], dtype=torch.long),
    }


def collate_padded(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded rows with an attention mask; padding carries no loss."""
    width = max(len(example.input_ids) for example in examples)
    rows, masks, targets = [], [], []
    for example in examples:
        pad = width - len(example.input_ids)
        rows.append([*example.input_ids, *([pad_token_id] * pad)])
        masks.append([1] * len(example.input_ids) + [0] * pad)
        targets.append([*shifted_labels(example.labels), *([IGNORE_INDEX] * pad)])
    return {
        "input_ids": torch.tensor(rows, dtype=torch.long),
        "attention_mask": torch.tensor(masks, dtype=torch.long),
        "shift_labels": torch.tensor(targets, dtype=torch.long),
    }


def epoch_batches(num_examples: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int) -> list[list[int]]:
    """Example indices per micro-batch for one epoch; the order depends only on (seed, epoch) so resume replays it."""
    order = list(range(num_examples))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, num_examples, batch_size)]
