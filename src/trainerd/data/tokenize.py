"""Conversations → token ids and loss labels.

Labels are found from the rendered chat text, not from a template convention: the chat template
renders the conversation once, each assistant message's content is located in that text (in
order, so a user quoting an answer cannot steal its span), the span is extended over the
end-of-turn token that closes the turn, and a token is trainable when its character offsets
overlap a span. This works for any template that inserts the message content verbatim, with no
`{% generation %}` markers needed; tests compare it against HF's generation-marker mask.

Labels are *unshifted* (HF convention: ``labels[t]`` is the target for token t itself, -100 = no
loss); batching (``data/pack.py``) shifts them per example so packing never leaks a target across
examples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainerd.data.chat_template import END_OF_TURN
from trainerd.data.conversation import Conversation
from trainerd.errors import DataError

IGNORE_INDEX = -100
log = logging.getLogger("trainerd.data")


@dataclass(frozen=True)
class TokenizedExample:
    """One example ready for batching."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    where: str = ""

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_trainable(self) -> int:
        """Tokens that are targets of the loss (position 0 is never predicted, so it never counts)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


@dataclass
class TokenizedDataset:
    """Examples plus the statistics the engine logs and `trainerd data check` prints."""

    examples: list[TokenizedExample]
    dropped: list[str] = field(default_factory=list)  # `where` of examples left with no trainable token

    @property
    def num_examples(self) -> int:
        return len(self.examples)

    @property
    def total_tokens(self) -> int:
        return sum(ex.num_tokens for ex in self.examples)

    @property
    def trainable_tokens(self) -> int:
        return sum(ex.num_trainable for ex in self.examples)

    @property
    def truncated(self) -> int:
        return sum(1 for ex in self.examples if ex.truncated)

    @property
    def trainable_ratio(self) -> float:
        total = self.total_tokens
        return self.trainable_tokens / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        lengths = sorted(ex.num_tokens for ex in self.examples) or [0]
        return {
            "examples": self.num_examples,
            "tokens": self.total_tokens,
            "trainable_tokens": self.trainable_tokens,
            "trainable_token_ratio": round(self.trainable_ratio, 4),
            "truncated_examples": self.truncated,
            "dropped_examples": len(self.dropped),
            "min_length": lengths[0],
            "median_length": lengths[len(lengths) // 2],
            "max_length": lengths[-1],
        }


def end_of_turn_text(tokenizer: Any) -> str:
    """The string that closes an assistant turn: ChatML's `<|im_end|>` when the vocab has it, else EOS."""
    vocab = tokenizer.get_vocab()
    if END_OF_TURN in vocab:
        return END_OF_TURN
    eos = getattr(tokenizer, "eos_token", None)
    return str(eos) if eos else ""


def render_conversation(conv: Conversation, tokenizer: Any, chat_template: str | None = None) -> str:
    """The chat-template text of a whole conversation (no generation prompt)."""
    text = tokenizer.apply_chat_template(
        conv.as_dicts(), tokenize=False, add_generation_prompt=False, chat_template=chat_template
    )
    return str(text)


def assistant_char_spans(conv: Conversation, text: str, eot: str) -> list[tuple[int, int]]:
    """Character spans of each assistant answer in `text`, each including its end-of-turn marker."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for message in conv.messages:
        content = message.content
        start = text.find(content, cursor)
        if start < 0 and content.strip():
            content = content.strip()  # some templates strip whitespace around content
            start = text.find(content, cursor)
        if start < 0:
            if message.role != "assistant":
                continue  # templates may drop or rewrite system/user text; only answers must be found
            raise DataError(
                f"{conv.where}: the chat template does not contain the assistant answer verbatim, "
                "so the trainable tokens cannot be located",
                hint="use a template that inserts message content as-is (set profile.replace_thinking_template=true "
                "for ChatML) or check the tokenizer's chat_template",
            )
        end = start + len(content)
        cursor = end
        if message.role != "assistant":
            continue
        if eot:
            rest = text[end:]
            gap = len(rest) - len(rest.lstrip(" \t"))
            if rest[gap:].startswith(eot):
                end += gap + len(eot)
                cursor = end
        spans.append((start, end))
    return spans


def _labels_from_offsets(
    input_ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[int]:
    labels = [IGNORE_INDEX] * len(input_ids)
    span_index = 0
    for position, (token_start, token_end) in enumerate(offsets):
        if token_end <= token_start:
            continue  # zero-width (e.g. a trimmed offset): never trained
        while span_index < len(spans) and spans[span_index][1] <= token_start:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        if token_start < span_end and token_end > span_start:
            labels[position] = input_ids[position]
    return labels


def tokenize_conversations(
    conversations: Sequence[Conversation],
    tokenizer: Any,
    *,
    max_length: int,
    train_on: str = "assistant",
    chat_template: str | None = None,
) -> TokenizedDataset:
    """Tokenize every conversation, mask labels, truncate to `max_length`.

    Examples whose trainable tokens were all cut off by truncation are dropped (and counted),
    since they would only cost compute.
    """
    if train_on not in ("assistant", "all"):
        raise ValueError(f"train_on must be 'assistant' or 'all', not {train_on!r}")
    eot = end_of_turn_text(tokenizer)
    texts = [render_conversation(conv, tokenizer, chat_template) for conv in conversations]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    examples: list[TokenizedExample] = []
    dropped: list[str] = []
    for conv, text, ids, offsets in zip(
        conversations, texts, encoded["input_ids"], encoded["offset_mapping"], strict=True
    ):
        ids = list(ids)
        if train_on == "all":
            labels = list(ids)
        else:
            labels = _labels_from_offsets(ids, offsets, assistant_char_spans(conv, text, eot))
        truncated = len(ids) > max_length
        if truncated:
            ids, labels = ids[:max_length], labels[:max_length]
        example = TokenizedExample(input_ids=ids, labels=labels, truncated=truncated, where=conv.where)
        if example.num_trainable == 0:
            dropped.append(conv.where)
            continue
        examples.append(example)
    if dropped:
        log.warning(
            "%d example(s) have no trainable token after truncation to %d tokens and are skipped (first: %s)",
            len(dropped),
            max_length,
            dropped[0],
        )
    return TokenizedDataset(examples=examples, dropped=dropped)


def check_trainable_ratio(dataset: TokenizedDataset, minimum: float, maximum: float, what: str) -> None:
    """Refuse a dataset whose trainable-token share is zero or outside the configured band, before training."""
    ratio = dataset.trainable_ratio
    if dataset.num_examples == 0 or dataset.trainable_tokens == 0:
        raise DataError(
            f"{what}: no trainable tokens (examples: {dataset.num_examples}, dropped: {len(dataset.dropped)})",
            hint="every example needs a non-empty assistant answer inside max_length; raise hyperparams.max_length "
            "or check data.train_on",
        )
    if not minimum <= ratio <= maximum:
        raise DataError(
            f"{what}: trainable-token ratio {ratio:.4f} is outside the accepted band [{minimum}, {maximum}]",
            hint="answers may be masked out by the template or truncation; or set data.min_trainable_ratio / "
            "data.max_trainable_ratio if this is intended",
        )
