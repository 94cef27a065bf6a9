"""Turn one decoded JSONL record into a `Conversation`, whatever chat format its author used.

Accepted shapes (see `ACCEPTED_SHAPES`): OpenAI/ChatML `messages`, `prompt`/`response`
(or `completion`), ShareGPT `conversations`, and alpaca `instruction`/`input`/`output`.
Every refusal is one `LineProblem` that names the file and line and says how to fix it, so a user
can repair a file from the error alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trainerd.data.conversation import ROLES, Conversation, Message
from trainerd.errors import DataError

FORMATS = ("messages", "prompt_response", "sharegpt", "alpaca")

ACCEPTED_SHAPES = (
    '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
    '{"prompt": "...", "response": "..."}  (or "completion"; optional "system")',
    '{"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}',
    '{"instruction": "...", "input": "...", "output": "..."}  ("input" optional)',
)

# ShareGPT speaker names -> our roles.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}

# Roles of tool-calling data: refused with their own message, since silently dropping or
# relabelling them would teach the model a conversation that never happened.
TOOL_ROLES = ("tool", "function", "function_call", "observation", "ipython")


@dataclass
class LineProblem:
    """One bad line: where it is, what is wrong, and what to do about it."""

    source: str
    line: int
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.problem} — fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for error files and the monitor."""
        return asdict(self)


class _Refusal(Exception):
    """Internal: a record is refused; carries the problem text and the fix."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def detect_format(obj: object) -> str | None:
    """Name of the chat format `obj` is written in, or None when it matches none."""
    if not isinstance(obj, dict):
        return None
    if "messages" in obj:
        return "messages"
    if "conversations" in obj:
        return "sharegpt"
    if "prompt" in obj and ("response" in obj or "completion" in obj):
        return "prompt_response"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    return None


def parse_record(obj: object, *, source: str, line: int, max_chars: int | None = None) -> Conversation:
    """Validate one decoded JSON line and return it as a `Conversation`.

    Raises `DataError` whose `problems` holds exactly one `LineProblem` for this line.
    """
    try:
        fmt, messages = _parse(obj)
        refusal = check_turns(messages, field=_list_field(fmt))
        if refusal is not None:
            raise _Refusal(*refusal)
        if max_chars is not None:
            total = sum(len(m.content) for m in messages)
            if total > max_chars:
                raise _Refusal(
                    f"example has {total:,} characters, over the limit of {max_chars:,}",
                    "split it into shorter conversations, or raise the limit if such long examples are intended",
                )
    except _Refusal as refusal_:
        problem = LineProblem(source=source, line=line, problem=refusal_.problem, fix=refusal_.fix)
        raise DataError(f"{source}:{line}: {refusal_.problem}", refusal_.fix, problems=[problem]) from None
    return Conversation(messages=tuple(messages), source=source, line=line, meta={"format": fmt})


def check_turns(messages: Sequence[Message], field: str = "messages") -> tuple[str, str] | None:
    """Check the turn structure every trainer relies on; return (problem, fix) or None when fine.

    Rules: an optional single system message first, then user/assistant alternating starting with
    user, ending with a non-empty assistant turn. Public so that `prepare` can check what a
    profile's transform produced with the same rules.
    """
    if not messages:
        return f"'{field}' is empty", "add at least one user message and the assistant's answer"
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            return (
                f"{field}[{i}] has role {message.role!r}, not one of {', '.join(ROLES)}",
                "use only system, user and assistant roles",
            )
        if message.role == "system" and i > 0:
            return (
                f"{field}[{i}] is a system message; one is only allowed as the first message",
                "merge it into the first message's system prompt, or drop it",
            )
    turns = list(enumerate(messages))[1:] if messages[0].role == "system" else list(enumerate(messages))
    if not any(m.role == "assistant" for _, m in turns):
        return "no assistant message: there is nothing to learn from this line", "add the assistant's answer"
    expected = "user"
    for i, message in turns:
        if message.role != expected:
            if i == turns[0][0]:
                return (
                    f"{field}[{i}] is an assistant message, but a conversation must start with a user message "
                    "(after the optional system message)",
                    "add the user message the assistant answers, or drop the leading assistant message",
                )
            return (
                f"{field}[{i - 1}] and {field}[{i}] are both {message.role} messages; "
                "user and assistant must alternate",
                f"merge the consecutive {message.role} messages into one, or add the missing reply between them",
            )
        if message.role == "assistant" and not message.content.strip():
            return (
                f"{field}[{i}] (assistant) is empty",
                "write the assistant's answer, or drop the line",
            )
        expected = "assistant" if expected == "user" else "user"
    if turns[-1][1].role != "assistant":
        return (
            f"the last message ({field}[{turns[-1][0]}]) is a user message with no assistant reply",
            "drop the trailing user message (nothing is learnt from it) or add the assistant's answer",
        )
    return None


def _list_field(fmt: str) -> str:
    return {"messages": "messages", "sharegpt": "conversations"}.get(fmt, fmt)


def _parse(obj: object) -> tuple[str, list[Message]]:
    if not isinstance(obj, dict):
        raise _Refusal(
            f"the line is a JSON {_json_type(obj)}, not an object",
            "write each example as one JSON object per line, e.g. " + ACCEPTED_SHAPES[0],
        )
    fmt = detect_format(obj)
    if fmt == "messages":
        return fmt, _parse_message_list(obj["messages"], field="messages", role_key="role", text_key="content")
    if fmt == "sharegpt":
        return fmt, _parse_sharegpt(obj["conversations"])
    if fmt == "prompt_response":
        return fmt, _parse_prompt_response(obj)
    if fmt == "alpaca":
        return fmt, _parse_alpaca(obj)
    raise _Refusal(_unknown_shape_problem(obj), "write the line in one of these shapes: " + " | ".join(ACCEPTED_SHAPES))


def _unknown_shape_problem(obj: dict[str, Any]) -> str:
    """Say which known format the record nearly matched, so the fix is obvious."""
    keys = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
    if "prompt" in obj:
        return "has 'prompt' but no 'response' or 'completion'"
    if "response" in obj or "completion" in obj:
        return "has a 'response'/'completion' but no 'prompt'"
    if "instruction" in obj:
        return "has 'instruction' but no 'output'"
    if "output" in obj:
        return "has 'output' but no 'instruction'"
    if "text" in obj:
        return "has a plain 'text' field; trainerd trains on chat examples, not raw text"
    return f"no known chat format (keys: {keys})"


def _parse_message_list(items: object, *, field: str, role_key: str, text_key: str) -> list[Message]:
    if not isinstance(items, list):
        raise _Refusal(
            f"'{field}' is a JSON {_json_type(items)}, not a list of messages",
            f'make \'{field}\' a list such as [{{"{role_key}": "user", "{text_key}": "..."}}, ...]',
        )
    messages: list[Message] = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise _Refusal(
                f"{where} is a JSON {_json_type(item)}, not an object",
                f'write each message as {{"{role_key}": ..., "{text_key}": ...}}',
            )
        # ShareGPT files sometimes use role/content inside "conversations": accept either pair.
        r_key, t_key = role_key, text_key
        if field == "conversations" and r_key not in item and "role" in item:
            r_key, t_key = "role", "content"
        if r_key not in item:
            raise _Refusal(f"{where} has no '{r_key}'", f'add "{r_key}": "user" or "assistant" to the message')
        role = _role(item[r_key], where=where, key=r_key, sharegpt=field == "conversations")
        if "tool_calls" in item or "function_call" in item:
            raise _Refusal(
                f"{where} is a tool/function call; tool-calling turns are not supported",
                "remove tool-calling conversations from the file, or rewrite the call and its result as plain text",
            )
        if t_key not in item:
            raise _Refusal(f"{where} has no '{t_key}'", f'add the message text as "{t_key}": "..."')
        messages.append(Message(role=role, content=_text(item[t_key], f"{where}.{t_key}")))
    return messages


def _parse_sharegpt(items: object) -> list[Message]:
    return _parse_message_list(items, field="conversations", role_key="from", text_key="value")


def _role(value: object, *, where: str, key: str, sharegpt: bool) -> str:
    if not isinstance(value, str):
        raise _Refusal(f"{where}.{key} is a JSON {_json_type(value)}, not a string", "write the role as a string")
    if value in TOOL_ROLES:
        raise _Refusal(
            f"{where} has role {value!r}; tool and function turns are not supported",
            "remove tool-calling conversations from the file, or rewrite the call and its result as plain text",
        )
    table = SHAREGPT_ROLES if sharegpt and key == "from" else {role: role for role in ROLES}
    if value in table:
        return table[value]
    fix = f"use one of: {', '.join(table)}"
    if value.lower() in table:
        fix += " (roles are lower-case)"
    elif value == "developer":
        fix += " ('developer' messages are system messages: rename the role to 'system')"
    raise _Refusal(f"{where} has unknown {key} {value!r}", fix)


def _text(value: object, where: str) -> str:
    """Message text must already be a string: serialising lists or dicts would train on JSON syntax."""
    if isinstance(value, str):
        return value
    if value is None:
        raise _Refusal(f"{where} is null", "write the message text as a string, or drop the message")
    if isinstance(value, list):
        raise _Refusal(
            f"{where} is a list (content parts), not a string",
            "join the text parts into one string; images and other parts are not supported",
        )
    raise _Refusal(f"{where} is a JSON {_json_type(value)}, not a string", "write the message text as a string")


def _optional_text(obj: dict[str, Any], key: str) -> str | None:
    """An optional field: absent or null means none; anything else must be a string."""
    value = obj.get(key)
    return None if value is None else _text(value, f"'{key}'")


def _parse_prompt_response(obj: dict[str, Any]) -> list[Message]:
    if "response" in obj and "completion" in obj:
        raise _Refusal("has both 'response' and 'completion'", "keep only one of them")
    answer_key = "response" if "response" in obj else "completion"
    prompt = _text(obj["prompt"], "'prompt'")
    answer = _text(obj[answer_key], f"'{answer_key}'")
    if not answer.strip():
        raise _Refusal(f"'{answer_key}' is empty", "write the answer, or drop the line")
    system = _optional_text(obj, "system")
    messages = [Message("system", system)] if system is not None else []
    return [*messages, Message("user", prompt), Message("assistant", answer)]


def _parse_alpaca(obj: dict[str, Any]) -> list[Message]:
    instruction = _text(obj["instruction"], "'instruction'")
    extra = _optional_text(obj, "input")
    output = _text(obj["output"], "'output'")
    if not output.strip():
        raise _Refusal("'output' is empty", "write the answer, or drop the line")
    user = f"{instruction}\n\n{extra}" if extra else instruction
    system = _optional_text(obj, "system")
    messages = [Message("system", system)] if system is not None else []
    return [*messages, Message("user", user), Message("assistant", output)]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
