"""Label masks: exact positions for multi-turn chats, packed and unpacked, against independent references."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainerd.data.conversation import Conversation, Message
from trainerd.data.pack import collate_packed, collate_padded, epoch_batches, shifted_labels
from trainerd.data.tokenize import (
    IGNORE_INDEX,
    TokenizedDataset,
    check_trainable_ratio,
    tokenize_conversations,
)
from trainerd.errors import DataError


def conv(*turns: tuple[str, str], line: int = 1) -> Conversation:
    return Conversation(tuple(Message(role, content) for role, content in turns), source="t.jsonl", line=line)


MULTI_TURN = conv(
    ("system", "Be brief."),
    ("user", "Hi there\n\n  ok?"),
    ("assistant", "  Hello!\n\nLine two 🤔🤔\n  indented"),
    ("user", "Say Hello! again"),
    ("assistant", "Hello!"),
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trained_segments(tokenizer, input_ids, labels) -> list[str]:
    """Decoded runs of consecutive trainable tokens."""
    segments, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            segments.append(tokenizer.decode(current))
            current = []
    if current:
        segments.append(tokenizer.decode(current))
    return segments


def test_exact_label_positions_multi_turn(tokenizer) -> None:
    example = tokenize_conversations([MULTI_TURN], tokenizer, max_length=512).examples[0]
    ids = example.input_ids
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    # Expected positions built by hand from the ChatML layout, segment by segment.
    expected: list[int] = []
    for role, content in [(m.role, m.content) for m in MULTI_TURN.messages]:
        header = [im_start, *tokenizer.encode(f"{role}\n", add_special_tokens=False)]
        body = tokenizer.encode(content, add_special_tokens=False)
        trained = role == "assistant"
        expected += [IGNORE_INDEX] * len(header)
        expected += body if trained else [IGNORE_INDEX] * len(body)
        expected += [im_end] if trained else [IGNORE_INDEX]
        expected += [IGNORE_INDEX] * len(tokenizer.encode("\n", add_special_tokens=False))
    assert len(expected) == len(ids)
    assert example.labels == expected
    # Both answers, each with its end-of-turn token, and nothing else — the user's quote of "Hello!" is not trained.
    assert trained_segments(tokenizer, ids, example.labels) == [
        "  Hello!\n\nLine two 🤔🤔\n  indented<|im_end|>",
        "Hello!<|im_end|>",
    ]


def test_matches_hf_generation_mask_reference(tokenizer) -> None:
    """Independent reference: the chat template's {% generation %} mask (what TRL's assistant_only_loss uses)."""
    conversations = [
        MULTI_TURN,
        conv(("user", "What is 2 + 3?"), ("assistant", "5")),
        conv(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d\n")),
    ]
    dataset = tokenize_conversations(conversations, tokenizer, max_length=512)
    for conversation, example in zip(conversations, dataset.examples, strict=True):
        reference = tokenizer.apply_chat_template(
            conversation.as_dicts(), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        assert reference["input_ids"] == example.input_ids
        expected = [
            t if m else IGNORE_INDEX for t, m in zip(reference["input_ids"], reference["assistant_masks"], strict=False)
        ]
        assert example.labels == expected


def test_matches_trl_sft_labels(tiny_model_dir: Path, tokenizer, tmp_path: Path) -> None:
    """TRL's SFTTrainer (assistant_only_loss) prepares labels for the same data; ours must be identical."""
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    conversations = [
        MULTI_TURN,
        conv(("user", "x y z"), ("assistant", "z y x")),
        conv(("user", "a"), ("assistant", "b")),
    ]
    ours = tokenize_conversations(conversations, tokenizer, max_length=512).examples
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"),
        assistant_only_loss=True,
        max_length=512,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        use_cpu=True,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list([{"messages": c.as_dicts()} for c in conversations]),
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    for row, example in zip(prepared, ours, strict=True):
        assert row["input_ids"] == example.input_ids
        assert row["labels"] == example.labels


def test_train_on_all_tokens(tokenizer) -> None:
    example = tokenize_conversations([MULTI_TURN], tokenizer, max_length=512, train_on="all").examples[0]
    assert example.labels == example.input_ids


def test_truncation_counts_and_drops_untrainable(tokenizer) -> None:
    long_question = conv(("user", "word " * 200), ("assistant", "answer"), line=2)
    dataset = tokenize_conversations([MULTI_TURN, long_question], tokenizer, max_length=40)
    assert dataset.dropped == ["t.jsonl:2"]
    assert all(len(ex.input_ids) <= 40 for ex in dataset.examples)
    assert dataset.truncated == 1  # MULTI_TURN is longer than 40 tokens and keeps its first answer's start


def test_trainable_ratio_band(tokenizer) -> None:
    dataset = tokenize_conversations([MULTI_TURN], tokenizer, max_length=512)
    check_trainable_ratio(dataset, 0.01, 1.0, "t.jsonl")
    with pytest.raises(DataError, match="outside the accepted band"):
        check_trainable_ratio(dataset, 0.9, 1.0, "t.jsonl")
    with pytest.raises(DataError, match="no trainable tokens"):
        check_trainable_ratio(TokenizedDataset(examples=[]), 0.0, 1.0, "empty.jsonl")


def test_packed_labels_are_shifted_per_example(tokenizer) -> None:
    a, b = tokenize_conversations(
        [MULTI_TURN, conv(("user", "q"), ("assistant", "r"))], tokenizer, max_length=512
    ).examples
    batch = collate_packed([a, b])
    n = len(a.input_ids)
    assert batch["input_ids"][0].tolist() == a.input_ids + b.input_ids
    assert batch["position_ids"][0].tolist() == list(range(n)) + list(range(len(b.input_ids)))
    targets = batch["shift_labels"][0].tolist()
    assert targets[:n] == shifted_labels(a.labels)
    assert targets[n - 1] == IGNORE_INDEX  # the last token of example a never predicts example b's first token
    assert targets[n:] == shifted_labels(b.labels)
    # exactly the trainable tokens of each example are targets
    assert sum(t != IGNORE_INDEX for t in targets) == a.num_trainable + b.num_trainable


def test_padded_labels_ignore_padding(tokenizer) -> None:
    a, b = tokenize_conversations(
        [MULTI_TURN, conv(("user", "q"), ("assistant", "r"))], tokenizer, max_length=512
    ).examples
    batch = collate_padded([a, b], pad_token_id=0)
    assert batch["input_ids"].shape == (2, len(a.input_ids))
    assert batch["attention_mask"][1].sum().item() == len(b.input_ids)
    assert batch["shift_labels"][1].tolist()[len(b.input_ids) :] == [IGNORE_INDEX] * (
        len(a.input_ids) - len(b.input_ids)
    )


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir: Path, tokenizer) -> None:
    """Logits of each example inside a packed row equal its logits when run alone."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    a, b = tokenize_conversations(
        [MULTI_TURN, conv(("user", "another question"), ("assistant", "another answer"))], tokenizer, max_length=512
    ).examples
    batch = collate_packed([a, b])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone_a = model(input_ids=torch.tensor([a.input_ids]), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b.input_ids]), use_cache=False).logits[0]
    n = len(a.input_ids)
    torch.testing.assert_close(packed[:n], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[n:], alone_b, atol=1e-5, rtol=1e-4)


def test_epoch_batches_are_seeded_and_complete() -> None:
    first = epoch_batches(10, 3, shuffle=True, seed=1, epoch=0)
    assert first == epoch_batches(10, 3, shuffle=True, seed=1, epoch=0)
    assert first != epoch_batches(10, 3, shuffle=True, seed=1, epoch=1)
    assert sorted(i for batch in first for i in batch) == list(range(10))
    assert [len(b) for b in first] == [3, 3, 3, 1]


def test_length_grouped_batches_hold_similar_lengths() -> None:
    lengths = [random_length for random_length in range(1000, 0, -7)]
    batches = epoch_batches(len(lengths), 4, shuffle=True, seed=0, epoch=0, lengths=lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        spread = max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
        assert spread <= 3 * 7  # neighbours in sorted order
    assert batches == epoch_batches(len(lengths), 4, shuffle=True, seed=0, epoch=0, lengths=lengths)
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts, reverse=True)  # batch order is shuffled, not a curriculum
