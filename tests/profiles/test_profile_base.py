"""The Profile base: options checking, chat-template choice, the default profile."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from trainerd.data.chat_template import CHATML_TEMPLATE
from trainerd.data.conversation import Conversation, Message
from trainerd.errors import ProfileError
from trainerd.profiles.base import Profile, ProfileOption
from trainerd.profiles.default import DefaultProfile
from trainerd.profiles.emoji_think import EmojiThinkProfile

QWEN3_LIKE = "{%- if enable_thinking %}<think>\n\n</think>{%- endif %}{{ messages }}"
PLAIN = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _level(value: Any) -> int:
    level = int(value)
    if level not in (1, 2, 3):
        raise ValueError("must be 1, 2 or 3")
    return level


class Tuned(Profile):
    name = "tuned"
    OPTIONS: ClassVar = {
        "level": ProfileOption(1, "an integer from 1 to 3", _level),
        "label": ProfileOption("a", "any text"),
    }


def test_default_profile_changes_nothing() -> None:
    profile = DefaultProfile()
    conv = Conversation((Message("user", " a "), Message("assistant", "<think>b</think>")), source="f", line=2)
    assert profile.transform(conv, 0) is conv
    assert profile.default_system_prompt_template() is None
    assert profile.stop_strings() == [] and profile.logits_processors(object()) == []
    assert not profile.wants_clean_chat_template() and profile.chat_template_override() is None
    assert profile.describe()["name"] == "default"


def test_default_profile_takes_no_options() -> None:
    with pytest.raises(ProfileError) as info:
        DefaultProfile({"emoji_fraction": 0.5})
    assert "unknown option 'emoji_fraction'" in info.value.message
    assert "takes no options" in (info.value.hint or "")


def test_options_defaults_checks_and_suggestions() -> None:
    assert Tuned().options == {"level": 1, "label": "a"}
    assert Tuned({"level": "2", "label": "b"}).options == {"level": 2, "label": "b"}
    with pytest.raises(ProfileError) as info:
        Tuned({"levle": 2})
    assert "valid options of profile 'tuned': label, level" in (info.value.hint or "")
    assert "did you mean 'level'" in (info.value.hint or "")
    with pytest.raises(ProfileError) as info:
        Tuned({"level": 7})
    assert "option 'level' = 7 is invalid" in info.value.message
    assert info.value.hint == "an integer from 1 to 3"


@pytest.mark.parametrize(
    ("profile", "current", "replace", "expected_template", "replaced"),
    [
        (EmojiThinkProfile(), QWEN3_LIKE, None, CHATML_TEMPLATE, True),
        (EmojiThinkProfile(), PLAIN, None, None, False),
        (EmojiThinkProfile(), QWEN3_LIKE, False, None, False),
        (DefaultProfile(), QWEN3_LIKE, None, None, False),
        (DefaultProfile(), QWEN3_LIKE, True, CHATML_TEMPLATE, True),
        (DefaultProfile(), None, None, CHATML_TEMPLATE, True),
    ],
)
def test_resolve_chat_template(
    profile: Profile, current: str | None, replace: bool | None, expected_template: str | None, replaced: bool
) -> None:
    choice = profile.resolve_chat_template(current, replace)
    assert (choice.template, choice.replaced) == (expected_template, replaced)
    assert choice.reason


def test_chat_template_override_wins() -> None:
    class Fixed(Profile):
        name = "fixed"

        def chat_template_override(self) -> str | None:
            return PLAIN

    choice = Fixed().resolve_chat_template(QWEN3_LIKE)
    assert choice.template == PLAIN and choice.replaced and "own chat template" in choice.reason


def test_describe_is_json_ready() -> None:
    import json

    described: dict[str, Any] = EmojiThinkProfile({"seed": 3}).describe()
    assert json.loads(json.dumps(described))["options"] == {"emoji_fraction": 0.5, "seed": 3}
