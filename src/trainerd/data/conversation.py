"""The one in-memory shape of a training example, whatever format the JSONL line had."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat turn. `role` is one of ROLES; `content` is plain text."""

    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """A validated chat example and where it came from (for error messages and logs)."""

    messages: tuple[Message, ...]
    source: str = ""  # file path the example was read from
    line: int = 0  # 1-based line number in `source`
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def where(self) -> str:
        """`file:line` for messages that point a user at the example."""
        return f"{self.source}:{self.line}" if self.source else f"line {self.line}"

    def with_messages(self, messages: list[Message] | tuple[Message, ...]) -> Conversation:
        """A copy with other messages, same origin."""
        return replace(self, messages=tuple(messages))

    def system_prompt(self) -> str | None:
        """The conversation's own system message, if it has one."""
        if self.messages and self.messages[0].role == "system":
            return self.messages[0].content
        return None

    def as_dicts(self) -> list[dict[str, str]]:
        """Messages as the list of dicts chat templates expect."""
        return [{"role": m.role, "content": m.content} for m in self.messages]
