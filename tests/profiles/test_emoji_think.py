"""emoji_think: exact outputs, determinism, the "never twice" rules and idempotence (profiles.md)."""

from __future__ import annotations

import pytest

from trainerd.data.conversation import Conversation, Message
from trainerd.errors import ProfileError
from trainerd.profiles.emoji_think import (
    STOP_EMOJIS,
    THINK_EMOJIS,
    EmojiChoice,
    EmojiThinkProfile,
    ends_with_stop_run,
    strip_think_tags,
)


def conv(*pairs: tuple[str, str]) -> Conversation:
    return Conversation(tuple(Message(r, c) for r, c in pairs), source="d.jsonl", line=4)


ALWAYS = {"emoji_fraction": 1.0}


def test_pools_and_variation_selectors() -> None:
    assert len(THINK_EMOJIS) == 10 and len(STOP_EMOJIS) == 10
    assert "\u23f9\ufe0f" in STOP_EMOJIS and "\U0001f6e1\ufe0f" in STOP_EMOJIS
    assert STOP_EMOJIS[5] == "⏹️" and STOP_EMOJIS[9] == "🛡️"
    assert THINK_EMOJIS == ("🤔", "💭", "🧠", "💡", "🎯", "🔍", "🤨", "🧐", "⚡", "✨")


def test_exact_output_for_a_known_example() -> None:
    profile = EmojiThinkProfile(ALWAYS)
    assert profile.choice(0) == EmojiChoice(True, "🧐", 6, "⛔", 4)
    out = profile.transform(conv(("system", "S"), ("user", "What is 2 + 3?  \n"), ("assistant", "\n 2 + 3 = 5. ")), 0)
    assert [(m.role, m.content) for m in out.messages] == [
        ("system", "S"),
        (
            "user",
            "What is 2 + 3?\n\nFor this task, think with 🧐 /six/ times.\n\n"
            "When finished, emit ⛔ /four times/ to signal completion.",
        ),
        ("assistant", "🧐🧐🧐🧐🧐🧐\n2 + 3 = 5.\n⛔⛔⛔⛔"),
    ]
    assert (out.source, out.line) == ("d.jsonl", 4)
    assert out.meta["emoji_think"] == {"emoji_mode": True, "index": 0}


def test_every_user_and_assistant_turn_gets_the_same_choice() -> None:
    profile = EmojiThinkProfile(ALWAYS)
    c = profile.choice(3)
    out = profile.transform(conv(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")), 3)
    think, stop = c.think_emoji * c.think_count, c.stop_emoji * c.stop_count
    assert out.messages[1].content == f"{think}\nb\n{stop}"
    assert out.messages[3].content == f"{think}\nd\n{stop}"
    assert out.messages[2].content == f"c\n\n{c.think_instruction}\n\n{c.stop_instruction}"


def test_choices_are_deterministic_and_cover_the_ranges() -> None:
    a, b = EmojiThinkProfile(ALWAYS), EmojiThinkProfile(ALWAYS)
    choices = [a.choice(i) for i in range(400)]
    assert choices == [b.choice(i) for i in range(400)]
    assert {c.think_count for c in choices} == set(range(2, 9))
    assert {c.stop_count for c in choices} == {2, 3, 4}
    assert {c.think_emoji for c in choices} == set(THINK_EMOJIS)
    assert {c.stop_emoji for c in choices} == set(STOP_EMOJIS)
    assert {c.count_word for c in choices} == {"two", "three", "four", "five", "six", "seven", "eight"}
    assert {c.stop_text for c in choices} == {"twice", "three times", "four times"}
    other_seed = EmojiThinkProfile({**ALWAYS, "seed": 1})
    assert [other_seed.choice(i) for i in range(50)] != choices[:50]


def test_emoji_fraction_share_and_edges() -> None:
    half = EmojiThinkProfile()
    assert half.options == {"emoji_fraction": 0.5, "seed": 0}
    share = sum(half.choice(i).emoji_mode for i in range(2000)) / 2000
    assert 0.45 < share < 0.55
    assert not any(EmojiThinkProfile({"emoji_fraction": 0}).choice(i).emoji_mode for i in range(200))
    assert all(EmojiThinkProfile({"emoji_fraction": 1}).choice(i).emoji_mode for i in range(200))


def test_non_emoji_examples_only_get_the_cleanup() -> None:
    profile = EmojiThinkProfile({"emoji_fraction": 0.0})
    source = conv(("user", "Hi <think>"), ("assistant", "<think>\n\n</think>\n\nHello!"))
    out = profile.transform(source, 0)
    assert [(m.role, m.content) for m in out.messages] == [("user", "Hi <think>"), ("assistant", "Hello!")]
    plain = conv(("user", "Hi"), ("assistant", "  Hello!  "))
    assert profile.transform(plain, 0) == plain  # nothing to clean: text left exactly as written


def test_think_tags_deleted_in_emoji_mode() -> None:
    profile = EmojiThinkProfile(ALWAYS)
    out = profile.transform(conv(("user", "q"), ("assistant", "<think>hmm</think>The answer.")), 0)
    assert out.messages[1].content == "🧐🧐🧐🧐🧐🧐\nhmmThe answer.\n⛔⛔⛔⛔"
    assert strip_think_tags("a <think>b</think> c") == "a b c"


def test_empty_after_cleanup_is_refused() -> None:
    with pytest.raises(ProfileError) as info:
        EmojiThinkProfile().transform(conv(("user", "q"), ("assistant", "<think></think>")), 0)
    assert info.value.message.startswith("d.jsonl:4: profile 'emoji_think': messages[1]")
    assert info.value.hint


def test_transform_is_idempotent() -> None:
    profile = EmojiThinkProfile(ALWAYS)
    for index in range(30):
        source = conv(("system", "S"), ("user", "Tell me a joke."), ("assistant", "<think>x</think>Knock knock."))
        once = profile.transform(source, index)
        assert profile.transform(once, index) == once
        # A different index (another choice) adds nothing either: the rules look for any emoji of the pools.
        assert profile.transform(once, index + 1) == once


def test_never_twice_rules_on_hand_written_data() -> None:
    profile = EmojiThinkProfile(ALWAYS)
    c = profile.choice(0)
    user = "Solve it. think with 💡 /two/ times."
    out = profile.transform(conv(("user", user), ("assistant", "💡💡\nDone.")), 0)
    # The thinking instruction and prefix are there already; only the stop parts are added.
    assert out.messages[0].content == f"{user}\n\n{c.stop_instruction}"
    assert out.messages[1].content == f"💡💡\nDone.\n{c.stop_emoji * c.stop_count}"

    user = "When finished, emit 🛑 /twice/ to signal completion."
    out = profile.transform(conv(("user", user), ("assistant", "Done.\n🛑🛑🛑")), 0)
    assert out.messages[0].content == f"{user}\n\n{c.think_instruction}"
    assert out.messages[1].content == f"{c.think_emoji * c.think_count}\nDone.\n🛑🛑🛑"


def test_stop_run_detection() -> None:
    assert ends_with_stop_run("x\n🛑🛑")
    assert ends_with_stop_run("x\n⏹️⏹️⏹️  ")
    assert ends_with_stop_run("x\n⏹⏹")  # written without the variation selector
    assert ends_with_stop_run("x\n🛡️🛡️🛡️🛡️")
    assert not ends_with_stop_run("x 🛑")
    assert not ends_with_stop_run("x 🛑⛔")


def test_system_prompt_template_and_generation_settings() -> None:
    profile = EmojiThinkProfile()
    assert profile.default_system_prompt_template() == "Current date: {date}. Respond naturally and concisely."
    assert profile.wants_clean_chat_template()
    stops = profile.stop_strings()
    assert len(stops) == 30 and "🛑🛑" in stops and "⏹️⏹️⏹️⏹️" in stops and "🛡️🛡️🛡️" in stops


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"emoji_fraction": 1.5}, "option 'emoji_fraction' = 1.5 is invalid"),
        ({"emoji_fraction": "half"}, "option 'emoji_fraction' = 'half' is invalid"),
        ({"seed": 1.5}, "option 'seed' = 1.5 is invalid"),
        ({"emoji_fractions": 0.3}, "unknown option 'emoji_fractions'"),
    ],
)
def test_bad_options(options: dict, expected: str) -> None:
    with pytest.raises(ProfileError) as info:
        EmojiThinkProfile(options)
    assert expected in info.value.message
    assert info.value.hint
