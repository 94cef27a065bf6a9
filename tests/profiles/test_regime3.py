"""regime3: answers between markers, marker completion, idempotence, prompt and stop string."""

from __future__ import annotations

import pytest

from trainerd.data.conversation import Conversation, Message
from trainerd.profiles.regime3 import ANS_END, ANS_START, Regime3Profile, wrap_answer


def conv(*pairs: tuple[str, str]) -> Conversation:
    return Conversation(tuple(Message(r, c) for r, c in pairs), source="r.jsonl", line=1)


def test_example_from_the_contract() -> None:
    out = Regime3Profile().transform(conv(("user", "What is 2 + 3?"), ("assistant", "(add 2 3) = 5")), 0)
    assert [(m.role, m.content) for m in out.messages] == [
        ("user", "What is 2 + 3?"),
        ("assistant", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  (add 2 3) = 5\n", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
        ("<<ANS_START>> (add 2 3) = 5", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
        ("(add 2 3) = 5 <<ANS_END>>", "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"),
        ("Working. <<ANS_START>> 5  ", "Working. <<ANS_START>> 5 <<ANS_END>>"),
        ("<<ANS_START>> 5 <<ANS_END>>", "<<ANS_START>> 5 <<ANS_END>>"),
    ],
)
def test_marker_completion(text: str, expected: str) -> None:
    assert wrap_answer(text) == expected
    assert wrap_answer(expected) == expected


def test_every_assistant_turn_wrapped_and_idempotent() -> None:
    profile = Regime3Profile()
    source = conv(("system", "S"), ("user", "a"), ("assistant", "1"), ("user", "b"), ("assistant", "2"))
    once = profile.transform(source, 5)
    assert [m.content for m in once.messages] == ["S", "a", f"{ANS_START} 1 {ANS_END}", "b", f"{ANS_START} 2 {ANS_END}"]
    assert profile.transform(once, 5) == once


def test_prompt_stop_and_template() -> None:
    profile = Regime3Profile()
    assert profile.default_system_prompt_template() == (
        "Current date: {date}.\n"
        "You are a symbolic reasoning assistant. Follow these rules:\n"
        "1. Use canonical symbolic form for operations: (op arg1 arg2)\n"
        "2. Wrap your final answer with <<ANS_START>> ... <<ANS_END>>"
    )
    assert profile.stop_strings() == ["<<ANS_END>>"]
    assert profile.wants_clean_chat_template()
    assert profile.logits_processors(object()) == []
