"""Prepare validated conversations for the chat template: system prompt policy, then the profile's transform.

The system prompt comes from the profile's template (or the config's `profile.system_prompt`),
formatted with today's date; how it meets a line's own system message is the configured policy,
and the counts are kept so the engine can log exactly what happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

from trainerd.data.conversation import Conversation, Message
from trainerd.data.formats import check_turns
from trainerd.errors import ConfigError, ProfileError
from trainerd.profiles.base import Profile

SystemPromptPolicy = Literal["keep", "replace", "add_if_missing"]
POLICIES: tuple[str, ...] = get_args(SystemPromptPolicy)


@dataclass
class PreparedData:
    """Conversations ready for the chat template, and what the system prompt policy did to them."""

    conversations: list[Conversation] = field(default_factory=list)
    system_prompt: str | None = None
    policy: str = "add_if_missing"
    profile: str = ""
    with_own_system: int = 0  # lines that carried their own system message
    replaced: int = 0  # own system messages replaced by ours
    added: int = 0  # lines without one that got ours
    without_system: int = 0  # lines that train with no system message at all

    def describe(self) -> str:
        """One log line: 'system prompt used: ... (policy ..., N lines carried their own)'."""
        prompt = "none" if self.system_prompt is None else repr(_shorten(self.system_prompt))
        total = len(self.conversations)
        parts = [f"policy {self.policy}", f"{self.with_own_system} of {total} lines carried their own"]
        if self.replaced:
            parts.append(f"{self.replaced} replaced")
        if self.added:
            parts.append(f"added to {self.added}")
        if self.without_system:
            parts.append(f"{self.without_system} without any")
        return f"system prompt used: {prompt} ({', '.join(parts)}; profile {self.profile})"


def resolve_system_prompt(profile: Profile, override_template: str | None, today: date | None = None) -> str | None:
    """The system prompt text: the config's template if set, else the profile's, with `{date}` filled in.

    `str.replace` rather than `str.format`, so other braces in a user's template (JSON, code) survive.
    An empty or blank override means "no system prompt".
    """
    template = override_template if override_template is not None else profile.default_system_prompt_template()
    if template is None or not template.strip():
        return None
    return template.replace("{date}", (today or date.today()).isoformat())


def apply_system_prompt(conv: Conversation, prompt: str | None, policy: SystemPromptPolicy) -> Conversation:
    """Apply `policy` to one conversation.

    keep: the data decides — never add or replace. replace: our prompt replaces the line's own, or
    is added where there is none. add_if_missing: the line's own stays, ours goes where there is none.
    With no prompt (`None`) every policy leaves the conversation as it is.
    """
    if policy not in POLICIES:
        raise ConfigError(
            f"unknown system prompt policy {policy!r}",
            f"set profile.system_prompt_policy to one of: {', '.join(POLICIES)}",
        )
    if prompt is None or policy == "keep":
        return conv
    own = conv.system_prompt()
    if own is None:
        return conv.with_messages([Message("system", prompt), *conv.messages])
    if policy == "replace" and own != prompt:
        return conv.with_messages([Message("system", prompt), *conv.messages[1:]])
    return conv


def prepare_conversations(
    convs: Iterable[Conversation],
    profile: Profile,
    system_prompt: str | None,
    policy: SystemPromptPolicy,
) -> PreparedData:
    """System prompt first, then `profile.transform(conv, index)` (index = position in the dataset).

    What the profile returns is checked with the same turn rules as the input, so a faulty user
    profile is named here instead of breaking tokenization later.
    """
    result = PreparedData(system_prompt=system_prompt, policy=policy, profile=profile.name)
    for index, conv in enumerate(convs):
        own = conv.system_prompt()
        prompted = apply_system_prompt(conv, system_prompt, policy)
        if own is not None:
            result.with_own_system += 1
            if prompted.system_prompt() != own:
                result.replaced += 1
        elif prompted.system_prompt() is not None:
            result.added += 1
        else:
            result.without_system += 1
        result.conversations.append(_transform(profile, prompted, index))
    return result


def _transform(profile: Profile, conv: Conversation, index: int) -> Conversation:
    out = profile.transform(conv, index)
    if not isinstance(out, Conversation):
        raise ProfileError(
            f"{conv.where}: profile {profile.name!r} returned {type(out).__name__} from transform(), "
            "not a Conversation",
            "return conv.with_messages(...) from the profile's transform()",
        )
    bad = [i for i, m in enumerate(out.messages) if not isinstance(m, Message) or not isinstance(m.content, str)]
    refusal = (
        (f"messages[{bad[0]}] is not a Message with string content", "build messages as Message(role, text)")
        if bad
        else check_turns(out.messages)
    )
    if refusal is not None:
        problem, fix = refusal
        raise ProfileError(
            f"{conv.where}: profile {profile.name!r} produced an invalid example: {problem}",
            f"fix the profile's transform(): {fix}",
        )
    return out


def _shorten(text: str, limit: int = 120) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
