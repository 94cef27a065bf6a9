"""The profile interface: how one way of answering shapes training data and generation.

A profile changes three things (see docs and reference/profiles.md): the system prompt used in
training, the text of each example before the chat template is applied, and generation (logits
processors, stop strings). `Profile` itself is the identity profile; built-ins and user profiles
subclass it and override only what they change.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from trainerd.data.chat_template import CHATML_TEMPLATE, injects_thinking
from trainerd.data.conversation import Conversation
from trainerd.errors import ProfileError


@dataclass(frozen=True)
class ProfileOption:
    """One option a profile accepts in `profile.options`.

    `check` returns the normalised value or raises ValueError with a message for the user.
    """

    default: Any
    help: str
    check: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class ChatTemplateChoice:
    """Which chat template to train/generate with, and why (the engine logs `reason`)."""

    template: str | None  # None: keep the tokenizer's own
    replaced: bool
    reason: str


class Profile:
    """Base profile: no system prompt, text unchanged, plain generation.

    Subclasses set `name`, declare `OPTIONS`, and override the hooks they need. A user profile is a
    subclass found by dotted path (`package.module:ClassName`) or entry point (see registry).
    """

    name: str = ""
    OPTIONS: ClassVar[Mapping[str, ProfileOption]] = {}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = self._check_options(dict(options or {}))

    def _check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults merged with `given`; an unknown or invalid option is a ProfileError naming it."""
        label = self.name or type(self).__name__
        unknown = [key for key in given if key not in self.OPTIONS]
        if unknown:
            valid = ", ".join(sorted(self.OPTIONS)) or "none (this profile takes no options)"
            close = difflib.get_close_matches(unknown[0], list(self.OPTIONS), n=1)
            hint = f"valid options of profile {label!r}: {valid}"
            if close:
                hint += f" (did you mean {close[0]!r}?)"
            raise ProfileError(f"profile {label!r}: unknown option {unknown[0]!r} in profile.options", hint)
        values: dict[str, Any] = {}
        for key, option in self.OPTIONS.items():
            value = given.get(key, option.default)
            if option.check is not None and key in given:
                try:
                    value = option.check(value)
                except (TypeError, ValueError) as exc:
                    raise ProfileError(
                        f"profile {label!r}: option {key!r} = {value!r} is invalid: {exc}", option.help
                    ) from None
            values[key] = value
        return values

    # --- training data -----------------------------------------------------------------------

    def default_system_prompt_template(self) -> str | None:
        """System prompt template (`{date}` becomes today's date) used when the config sets none."""
        return None

    def transform(self, conv: Conversation, index: int) -> Conversation:
        """Validate and rewrite one example (its `index` in the dataset) before the chat template.

        Raise ProfileError naming `conv.where` for an example this profile cannot train on.
        Must be idempotent: transforming an already transformed example changes nothing.
        """
        return conv

    # --- chat template -----------------------------------------------------------------------

    def wants_clean_chat_template(self) -> bool:
        """True when a template that injects `<think>` blocks would fight this profile's format."""
        return False

    def chat_template_override(self) -> str | None:
        """A template to use whatever the tokenizer has; None keeps the tokenizer's."""
        return None

    def resolve_chat_template(self, current: str | None, replace_thinking: bool | None = None) -> ChatTemplateChoice:
        """Pick the chat template for a tokenizer whose template is `current`.

        `replace_thinking` is the config's `profile.replace_thinking_template` (None = the profile
        decides). A tokenizer without a template gets clean ChatML, since training needs one.
        """
        override = self.chat_template_override()
        if override is not None:
            return ChatTemplateChoice(override, True, f"profile {self.name!r} sets its own chat template")
        if not current:
            return ChatTemplateChoice(CHATML_TEMPLATE, True, "the tokenizer has no chat template; using clean ChatML")
        replace = self.wants_clean_chat_template() if replace_thinking is None else replace_thinking
        if replace and injects_thinking(current):
            return ChatTemplateChoice(
                CHATML_TEMPLATE,
                True,
                "the tokenizer's chat template injects <think> blocks; replaced by clean ChatML "
                "(no default system prompt) so the data has one thinking format",
            )
        return ChatTemplateChoice(None, False, "using the tokenizer's chat template")

    # --- generation --------------------------------------------------------------------------

    def stop_strings(self) -> list[str]:
        """Texts that end generation (passed to generate(stop_strings=...))."""
        return []

    def logits_processors(self, tokenizer: Any) -> list[Any]:
        """Logits processors for generation with `tokenizer`; make fresh ones per generate() call."""
        return []

    def describe(self) -> dict[str, Any]:
        """What this profile does, JSON-ready, for logs and the monitor."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "system_prompt_template": self.default_system_prompt_template(),
            "wants_clean_chat_template": self.wants_clean_chat_template(),
            "stop_strings": self.stop_strings(),
        }


def message_error(conv: Conversation, profile: str, index: int, problem: str, fix: str) -> ProfileError:
    """A ProfileError for one message of `conv`, worded like data errors (file:line first)."""
    return ProfileError(f"{conv.where}: profile {profile!r}: messages[{index}] {problem}", fix)
