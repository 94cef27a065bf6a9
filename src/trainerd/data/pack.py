"""Micro-batches: which examples go together, and how they become tensors.

Two layouts (chosen by `data.packing`), both with labels shifted *per example* (``shift_labels[t]`` is the target of the
logits at t) so a target never crosses from one example into the next:

- packed (default): the examples of a micro-batch are concatenated into one row with
  ``position_ids`` restarting at 0 for each. No attention mask is passed, so transformers builds a
  block-diagonal mask from the position resets (sdpa/eager) or uses varlen kernels
  (flash_attention_2): no example attends to another, and no compute goes to padding.
- padded: rows padded to the longest example of the micro-batch with an attention mask. With
  length-grouped micro-batches (`epoch_batches(lengths=...)`) the padding is small, and masked
  sdpa/eager attention costs the sum of each row's square instead of the square of one packed row.
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


MEGA_BATCH_FACTOR = 50  # micro-batches per length-sorting window (as HF's LengthGroupedSampler)


def epoch_batches(
    num_examples: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    lengths: Sequence[int] | None = None,
) -> list[list[int]]:
    """Example indices per micro-batch for one epoch; depends only on (seed, epoch) so a resume replays it.

    With `lengths`, examples are grouped by length: the shuffled order is cut into windows of
    `MEGA_BATCH_FACTOR` micro-batches, each window sorted by length and cut into micro-batches, and
    the micro-batches shuffled again, so batches hold similar lengths but their order stays random.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(num_examples))
    if shuffle:
        rng.shuffle(order)
    if lengths is None:
        return [order[i : i + batch_size] for i in range(0, num_examples, batch_size)]
    window = batch_size * MEGA_BATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, num_examples, window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches
