"""get_profile: built-ins, user profiles by dotted path and entry point, and helpful refusals."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trainerd.data.conversation import Conversation, Message
from trainerd.errors import ProfileError
from trainerd.profiles.base import Profile, ProfileOption
from trainerd.profiles.default import DefaultProfile
from trainerd.profiles.emoji_think import EmojiThinkProfile
from trainerd.profiles.regime3 import Regime3Profile
from trainerd.profiles.registry import available_profiles, get_profile


class ShoutProfile(Profile):
    """A user profile defined in this test module: upper-cases answers."""

    name = "shout"
    OPTIONS: ClassVar = {"suffix": ProfileOption("!", "text appended to every answer")}

    def transform(self, conv: Conversation, index: int) -> Conversation:
        suffix = self.options["suffix"]
        return conv.with_messages(
            [Message(m.role, m.content.upper() + suffix) if m.role == "assistant" else m for m in conv.messages]
        )


class Nameless(Profile):
    pass


class Broken(Profile):
    def __init__(self, options: Any = None) -> None:
        raise RuntimeError("boom")


NOT_A_PROFILE = 42


def test_builtins() -> None:
    assert available_profiles()[:3] == ["default", "emoji_think", "regime3"]
    assert isinstance(get_profile("default"), DefaultProfile)
    assert isinstance(get_profile("regime3"), Regime3Profile)
    profile = get_profile("emoji_think", {"emoji_fraction": 1.0})
    assert isinstance(profile, EmojiThinkProfile) and profile.options["emoji_fraction"] == 1.0
    assert isinstance(get_profile(" Emoji-Think "), EmojiThinkProfile)


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ProfileError) as info:
        get_profile("emoji_thnk")
    assert info.value.message == "unknown profile 'emoji_thnk'"
    hint = info.value.hint or ""
    assert hint.startswith("did you mean 'emoji_think'?")
    assert "default, emoji_think, regime3" in hint and "package.module:ClassName" in hint


def test_unknown_option_of_builtin() -> None:
    with pytest.raises(ProfileError) as info:
        get_profile("emoji_think", {"fraction": 0.2})
    assert "unknown option 'fraction'" in info.value.message
    assert "emoji_fraction, seed" in (info.value.hint or "")


@pytest.mark.parametrize("sep", [":", "."])
def test_user_profile_from_this_module(sep: str) -> None:
    profile = get_profile(f"{__name__}{sep}ShoutProfile", {"suffix": "?"})
    assert isinstance(profile, ShoutProfile) and profile.name == "shout"
    conv = Conversation((Message("user", "hi"), Message("assistant", "hello")))
    assert profile.transform(conv, 0).messages[1].content == "HELLO?"


def test_nameless_user_profile_is_named_by_its_path() -> None:
    assert get_profile(f"{__name__}:Nameless").name == f"{__name__}:Nameless"


def test_user_profile_from_a_package_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "my_profiles"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "polite.py").write_text(
        textwrap.dedent(
            """
            from trainerd.profiles.base import Profile

            class Polite(Profile):
                name = "polite"

                def default_system_prompt_template(self):
                    return "Be polite. Today is {date}."
            """
        )
    )
    (package / "bad.py").write_text("raise ValueError('syntax of my life')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    profile = get_profile("my_profiles.polite:Polite")
    assert profile.name == "polite" and profile.default_system_prompt_template() == "Be polite. Today is {date}."

    with pytest.raises(ProfileError) as info:
        get_profile("my_profiles.polite:Rude")
    assert "has no 'Rude'" in info.value.message and "Polite" in (info.value.hint or "")
    with pytest.raises(ProfileError) as info:
        get_profile("my_profiles.bad:X")
    assert "importing 'my_profiles.bad' failed: ValueError: syntax of my life" in info.value.message


def test_dotted_path_refusals() -> None:
    with pytest.raises(ProfileError) as info:
        get_profile("no_such_package.mod:Thing")
    assert "module 'no_such_package' not found" in info.value.message
    assert "PYTHONPATH" in (info.value.hint or "")
    with pytest.raises(ProfileError) as info:
        get_profile(f"{__name__}:NOT_A_PROFILE")
    assert "not a subclass of trainerd.profiles.base.Profile" in info.value.message
    with pytest.raises(ProfileError) as info:
        get_profile(f"{__name__}:Broken")
    assert "failed to start: RuntimeError: boom" in info.value.message
    with pytest.raises(ProfileError):
        get_profile(":Thing")


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin_profiles.py").write_text(
        "from trainerd.profiles.base import Profile\n\nclass Terse(Profile):\n    name = 'terse'\n"
    )
    dist = tmp_path / "trainerd_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trainerd-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trainerd.profiles]\nterse = plugin_profiles:Terse\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "terse" in available_profiles()
    assert get_profile("terse").name == "terse"
