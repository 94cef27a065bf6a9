"""The `regime3` profile: symbolic answers between explicit start/end markers.

Contract in reference/profiles.md: every assistant answer reads `<<ANS_START>> {answer} <<ANS_END>>`;
an answer that already carries one marker gets the missing one at its end of the text, one that
carries both is left alone (so the transform is idempotent). Generation stops at `<<ANS_END>>`.
"""

from __future__ import annotations

from trainerd.data.conversation import Conversation, Message
from trainerd.profiles.base import Profile

ANS_START = "<<ANS_START>>"
ANS_END = "<<ANS_END>>"

SYSTEM_PROMPT_TEMPLATE = (
    "Current date: {date}.\n"
    "You are a symbolic reasoning assistant. Follow these rules:\n"
    "1. Use canonical symbolic form for operations: (op arg1 arg2)\n"
    f"2. Wrap your final answer with {ANS_START} ... {ANS_END}"
)


def wrap_answer(text: str) -> str:
    """`<<ANS_START>> text <<ANS_END>>`, completing a half-marked answer instead of wrapping it twice."""
    has_start, has_end = ANS_START in text, ANS_END in text
    if has_start and has_end:
        return text
    if has_start:
        return f"{text.rstrip()} {ANS_END}"
    if has_end:
        return f"{ANS_START} {text.lstrip()}"
    return f"{ANS_START} {text.strip()} {ANS_END}"


class Regime3Profile(Profile):
    """Assistant answers wrapped in `<<ANS_START>>`/`<<ANS_END>>`; clean ChatML instead of a `<think>` template."""

    name = "regime3"

    def default_system_prompt_template(self) -> str | None:
        return SYSTEM_PROMPT_TEMPLATE

    def transform(self, conv: Conversation, index: int) -> Conversation:
        messages = [Message(m.role, wrap_answer(m.content)) if m.role == "assistant" else m for m in conv.messages]
        return conv.with_messages(messages)

    def wants_clean_chat_template(self) -> bool:
        return True

    def stop_strings(self) -> list[str]:
        return [ANS_END]
