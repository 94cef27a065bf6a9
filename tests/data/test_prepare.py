"""System prompt resolution and policies, then the profile transform, with the counts the engine logs."""

from __future__ import annotations

from datetime import date

import pytest

from trainerd.data.conversation import Conversation, Message
from trainerd.data.prepare import apply_system_prompt, prepare_conversations, resolve_system_prompt
from trainerd.errors import ConfigError, ProfileError
from trainerd.profiles.base import Profile
from trainerd.profiles.default import DefaultProfile
from trainerd.profiles.emoji_think import EmojiThinkProfile
from trainerd.profiles.regime3 import Regime3Profile

DAY = date(2025, 11, 24)


def conv(system: str | None = None, line: int = 1) -> Conversation:
    messages = [Message("system", system)] if system is not None else []
    return Conversation((*messages, Message("user", "q"), Message("assistant", "a")), source="f.jsonl", line=line)


def test_resolve_from_profile_template() -> None:
    assert (
        resolve_system_prompt(EmojiThinkProfile(), None, DAY)
        == "Current date: 2025-11-24. Respond naturally and concisely."
    )
    assert resolve_system_prompt(Regime3Profile(), None, DAY).startswith("Current date: 2025-11-24.\nYou are")
    assert resolve_system_prompt(DefaultProfile(), None, DAY) is None


def test_resolve_override_keeps_other_braces() -> None:
    template = 'Today is {date}. Reply as JSON like {"answer": "..."} and never {other}.'
    assert resolve_system_prompt(EmojiThinkProfile(), template, DAY) == (
        'Today is 2025-11-24. Reply as JSON like {"answer": "..."} and never {other}.'
    )
    assert resolve_system_prompt(DefaultProfile(), "Be kind.", DAY) == "Be kind."
    assert resolve_system_prompt(EmojiThinkProfile(), "  ", DAY) is None  # blank override: no system prompt
    assert resolve_system_prompt(DefaultProfile(), "{date}") == date.today().isoformat()


@pytest.mark.parametrize(
    ("policy", "own", "expected"),
    [
        ("keep", None, None),
        ("keep", "Mine", "Mine"),
        ("replace", None, "Ours"),
        ("replace", "Mine", "Ours"),
        ("add_if_missing", None, "Ours"),
        ("add_if_missing", "Mine", "Mine"),
    ],
)
def test_policies(policy: str, own: str | None, expected: str | None) -> None:
    out = apply_system_prompt(conv(own), "Ours", policy)  # type: ignore[arg-type]
    assert out.system_prompt() == expected
    assert [m.role for m in out.messages if m.role != "system"] == ["user", "assistant"]
    assert sum(m.role == "system" for m in out.messages) == (expected is not None)
    assert (out.source, out.line) == ("f.jsonl", 1)


def test_no_prompt_leaves_data_alone() -> None:
    for policy in ("keep", "replace", "add_if_missing"):
        assert apply_system_prompt(conv("Mine"), None, policy) == conv("Mine")  # type: ignore[arg-type]
        assert apply_system_prompt(conv(), None, policy) == conv()  # type: ignore[arg-type]


def test_unknown_policy() -> None:
    with pytest.raises(ConfigError) as info:
        apply_system_prompt(conv(), "x", "sometimes")  # type: ignore[arg-type]
    assert "keep, replace, add_if_missing" in (info.value.hint or "")


def test_prepare_counts_and_log_line() -> None:
    convs = [conv("Mine", 1), conv(None, 2), conv(None, 3), conv("Ours", 4)]
    data = prepare_conversations(convs, DefaultProfile(), "Ours", "replace")
    assert [c.system_prompt() for c in data.conversations] == ["Ours"] * 4
    assert (data.with_own_system, data.replaced, data.added, data.without_system) == (2, 1, 2, 0)
    assert data.describe() == (
        "system prompt used: 'Ours' (policy replace, 2 of 4 lines carried their own, 1 replaced, added to 2; "
        "profile default)"
    )
    data = prepare_conversations(convs, DefaultProfile(), "Ours", "keep")
    assert (data.with_own_system, data.replaced, data.added, data.without_system) == (2, 0, 0, 2)
    data = prepare_conversations(convs, DefaultProfile(), None, "add_if_missing")
    assert data.describe().startswith("system prompt used: none (policy add_if_missing, 2 of 4 lines")


def test_transform_runs_after_the_prompt_with_dataset_index() -> None:
    profile = EmojiThinkProfile({"emoji_fraction": 1.0})
    prompt = resolve_system_prompt(profile, None, DAY)
    data = prepare_conversations([conv(None, 10), conv(None, 11)], profile, prompt, "add_if_missing")
    for index, out in enumerate(data.conversations):
        choice = profile.choice(index)
        assert out.messages[0] == Message("system", "Current date: 2025-11-24. Respond naturally and concisely.")
        assert out.messages[2].content.startswith(choice.think_emoji * choice.think_count + "\n")
    assert data.profile == "emoji_think"


class DropsAnswers(Profile):
    name = "drops"

    def transform(self, conv: Conversation, index: int) -> Conversation:
        return conv.with_messages([m for m in conv.messages if m.role != "assistant"])


class ReturnsDicts(Profile):
    name = "dicts"

    def transform(self, conv: Conversation, index: int) -> Conversation:
        return conv.as_dicts()  # type: ignore[return-value]


def test_a_faulty_user_profile_is_named() -> None:
    with pytest.raises(ProfileError) as info:
        prepare_conversations([conv(None, 5)], DropsAnswers(), None, "keep")
    assert info.value.message.startswith("f.jsonl:5: profile 'drops' produced an invalid example: no assistant")
    with pytest.raises(ProfileError) as info:
        prepare_conversations([conv(None, 6)], ReturnsDicts(), None, "keep")
    assert "returned list from transform()" in info.value.message
