"""Demo data made in code: short chat examples a tiny model learns within a few dozen steps.

Every family answers with one fixed template (arithmetic, capitals, word reversal, opposites,
upper-casing, greetings), so the loss visibly drops in ~40 steps even from random weights.
Deterministic for a given `(n, seed)`, and writable in each accepted JSONL format so that demos and
tests exercise every reader; reading a written file back gives the same conversations.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable

from trainerd.data.conversation import Conversation, Message
from trainerd.data.formats import FORMATS
from trainerd.errors import DataError
from trainerd.files import atomic_write_text

CAPITALS = (
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Canada", "Ottawa"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
)
WORDS = ("cat", "house", "river", "planet", "garden", "window", "orange", "silver", "music", "bread", "stone", "cloud")
OPPOSITES = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("up", "down"),
    ("light", "dark"),
    ("happy", "sad"),
    ("open", "closed"),
    ("early", "late"),
)
GREETINGS = (
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there!", "Hi! How can I help you today?"),
    ("Good morning!", "Good morning! How can I help you today?"),
    ("Thank you!", "You're welcome! Happy to help."),
    ("Thanks a lot!", "You're welcome! Happy to help."),
)
SYSTEM_PROMPT = "You are a helpful assistant. Answer in one short sentence."

Turn = tuple[str, str]


def _arithmetic(rng: random.Random) -> Turn:
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    if rng.random() < 0.5:
        return f"What is {a} + {b}?", f"{a} + {b} = {a + b}."
    a, b = max(a, b), min(a, b)
    return f"What is {a} - {b}?", f"{a} - {b} = {a - b}."


def _capital(rng: random.Random) -> Turn:
    country, city = rng.choice(CAPITALS)
    return f"What is the capital of {country}?", f"The capital of {country} is {city}."


def _reverse(rng: random.Random) -> Turn:
    word = rng.choice(WORDS)
    # Instruction, blank line, input: the alpaca writer splits it back into "instruction"/"input".
    return f"Reverse the letters of this word.\n\n{word}", f"The word {word} reversed is {word[::-1]}."


def _opposite(rng: random.Random) -> Turn:
    word, opposite = rng.choice(OPPOSITES)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    return f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."


def _upper(rng: random.Random) -> Turn:
    word = rng.choice(WORDS)
    return f"Write {word} in capital letters.", word.upper()


def _greeting(rng: random.Random) -> Turn:
    return rng.choice(GREETINGS)


FAMILIES: tuple[Callable[[random.Random], Turn], ...] = (_arithmetic, _capital, _reverse, _opposite, _upper, _greeting)


def sample_conversations(n: int, seed: int = 0, *, multi_turn: bool = True) -> list[Conversation]:
    """`n` deterministic demo conversations; about one in ten has a system message, one in eight
    (when `multi_turn`) two exchanges."""
    if n < 0:
        raise ValueError("n must not be negative")
    rng = random.Random(seed)
    conversations = []
    for i in range(n):
        messages: list[Message] = []
        if rng.random() < 0.1:
            messages.append(Message("system", SYSTEM_PROMPT))
        exchanges = 2 if multi_turn and rng.random() < 0.125 else 1
        for _ in range(exchanges):
            user, assistant = rng.choice(FAMILIES)(rng)
            messages += [Message("user", user), Message("assistant", assistant)]
        conversations.append(Conversation(tuple(messages), source="sample", line=i + 1, meta={"format": "messages"}))
    return conversations


def to_record(conv: Conversation, fmt: str = "messages") -> dict[str, object]:
    """One conversation as a JSON object in `fmt` (single-exchange only for prompt_response/alpaca)."""
    system = conv.system_prompt()
    turns = [m for m in conv.messages if m.role != "system"]
    if fmt == "messages":
        return {"messages": conv.as_dicts()}
    if fmt == "sharegpt":
        names = {"system": "system", "user": "human", "assistant": "gpt"}
        return {"conversations": [{"from": names[m.role], "value": m.content} for m in conv.messages]}
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if len(turns) != 2:
        raise ValueError(f"format {fmt!r} holds one exchange; this conversation has {len(turns)} turns")
    user, assistant = turns[0].content, turns[1].content
    record: dict[str, object] = {}
    if system is not None:
        record["system"] = system
    if fmt == "prompt_response":
        record.update(prompt=user, response=assistant)
    else:
        instruction, _, extra = user.partition("\n\n")
        record.update(instruction=instruction, input=extra, output=assistant)
    return record


def write_sample_jsonl(
    path: str | os.PathLike[str], n: int, seed: int = 0, fmt: str = "messages"
) -> list[Conversation]:
    """Write `n` demo examples as JSONL in `fmt` (one of FORMATS); returns the conversations written."""
    if fmt not in FORMATS:
        raise DataError(f"unknown sample format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    conversations = sample_conversations(n, seed, multi_turn=fmt in ("messages", "sharegpt"))
    lines = [json.dumps(to_record(conv, fmt), ensure_ascii=False) for conv in conversations]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return conversations


# (what is wrong, the line) — each broken in a way the validator must name.
INVALID_LINES: tuple[tuple[str, str], ...] = (
    (
        "valid",
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}),
    ),
    ("bad JSON", '{"messages": [{"role": "user", "content": "Hi"}'),
    ("missing assistant", json.dumps({"messages": [{"role": "user", "content": "Is anyone there?"}]})),
    (
        "non-string content",
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": "Hello!"},
                ]
            }
        ),
    ),
    ("valid", json.dumps({"prompt": "What is 2 + 2?", "response": "2 + 2 = 4."})),
    ("unknown role", json.dumps({"messages": [{"role": "bot", "content": "Hi"}]})),
    ("empty assistant", json.dumps({"instruction": "Say something.", "output": "  "})),
    ("valid", json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]})),
)


def write_invalid_sample(path: str | os.PathLike[str]) -> dict[int, str]:
    """Write a small JSONL file with deliberately broken lines; returns {line number: what is wrong}
    for the broken ones (the other lines are valid)."""
    atomic_write_text(path, "".join(line + "\n" for _, line in INVALID_LINES))
    return {number: what for number, (what, _) in enumerate(INVALID_LINES, start=1) if what != "valid"}
