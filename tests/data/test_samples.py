"""Demo data: deterministic, learnable shape, written in every format and read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainerd.data.formats import FORMATS, check_turns
from trainerd.data.samples import sample_conversations, to_record, write_invalid_sample, write_sample_jsonl
from trainerd.data.validate import read_dataset
from trainerd.errors import DataError

LIMITS = {"max_line_bytes": 100_000, "max_file_bytes": 10_000_000}


def test_deterministic_and_seeded() -> None:
    assert sample_conversations(50, seed=3) == sample_conversations(50, seed=3)
    assert sample_conversations(50, seed=3) != sample_conversations(50, seed=4)
    assert sample_conversations(0) == []


def test_examples_are_valid_short_and_varied() -> None:
    convs = sample_conversations(300, seed=1)
    assert all(check_turns(c.messages) is None for c in convs)
    assert all(len(m.content) < 120 for c in convs for m in c.messages)
    assert any(c.system_prompt() is not None for c in convs)
    assert any(len(c.messages) >= 4 for c in convs)
    firsts = {c.messages[-2].content.split()[0] for c in convs}
    assert {"What", "Reverse", "Write"} <= firsts
    answers = {c.messages[-1].content for c in convs}
    assert "The capital of France is Paris." in answers or "The capital of Japan is Tokyo." in answers
    assert len(answers) > 50  # enough variety not to be memorised as one string


def test_answers_follow_fixed_templates() -> None:
    for c in sample_conversations(200, seed=2):
        user, answer = c.messages[-2].content, c.messages[-1].content
        if user.startswith("What is the capital of "):
            country = user.removeprefix("What is the capital of ").rstrip("?")
            assert answer.startswith(f"The capital of {country} is ")
        if user.startswith("Reverse"):
            word = user.split("\n\n")[1]
            assert answer == f"The word {word} reversed is {word[::-1]}."
        if user.startswith("What is ") and ("+" in user or " - " in user):
            expression = user.removeprefix("What is ").rstrip("?")
            left, op, right = expression.split()
            value = int(left) + int(right) if op == "+" else int(left) - int(right)
            assert answer == f"{expression} = {value}."


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_formats_read_back_unchanged(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"{fmt}.jsonl"
    written = write_sample_jsonl(path, 60, seed=5, fmt=fmt)
    first = json.loads(path.read_text().splitlines()[0])
    assert {"messages": "messages", "sharegpt": "conversations", "prompt_response": "prompt", "alpaca": "output"}[
        fmt
    ] in first
    result = read_dataset(path, **LIMITS)
    assert [c.messages for c in result.conversations] == [c.messages for c in written]
    assert {c.meta["format"] for c in result.conversations} == {fmt}


def test_alpaca_uses_input_for_the_word_to_reverse() -> None:
    conv = next(c for c in sample_conversations(100) if c.messages[-2].content.startswith("Reverse"))
    record = to_record(conv, "alpaca")
    assert record["instruction"] == "Reverse the letters of this word." and record["input"]


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        write_sample_jsonl(tmp_path / "x.jsonl", 3, fmt="csv")
    with pytest.raises(ValueError):
        to_record(sample_conversations(1)[0], "csv")


def test_invalid_sample_lines_are_the_ones_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    broken = write_invalid_sample(path)
    assert set(broken.values()) >= {"bad JSON", "missing assistant", "non-string content"}
    with pytest.raises(DataError) as info:
        read_dataset(path, **LIMITS)
    assert {p.line for p in info.value.problems} == set(broken)
    result = read_dataset(path, **LIMITS, on_invalid_line="skip")
    assert result.valid_lines == result.lines_total - len(broken)
