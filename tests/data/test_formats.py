"""parse_record: every accepted format, and every refusal names file:line and a fix."""

from __future__ import annotations

import pytest

from trainerd.data.conversation import Message
from trainerd.data.formats import LineProblem, check_turns, detect_format, parse_record
from trainerd.errors import DataError

SRC = "data/train.jsonl"


def parse(obj: object, **kwargs: object):
    return parse_record(obj, source=SRC, line=7, **kwargs)  # type: ignore[arg-type]


def refusal(obj: object, **kwargs: object) -> LineProblem:
    with pytest.raises(DataError) as info:
        parse(obj, **kwargs)
    err = info.value
    assert len(err.problems) == 1
    problem = err.problems[0]
    assert isinstance(problem, LineProblem)
    assert (problem.source, problem.line) == (SRC, 7)
    assert err.message.startswith(f"{SRC}:7: ")
    assert problem.fix and err.hint == problem.fix
    assert str(problem).startswith(f"{SRC}:7: {problem.problem} — fix: ")
    return problem


def roles(conv) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conv.messages]


# --- accepted formats ---------------------------------------------------------------------------


def test_messages_format() -> None:
    conv = parse(
        {
            "id": 3,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "name": "bot"},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ],
        }
    )
    assert roles(conv) == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "2+2?"),
        ("assistant", "4"),
    ]
    assert (conv.source, conv.line, conv.where) == (SRC, 7, f"{SRC}:7")
    assert conv.meta["format"] == "messages"


def test_prompt_response_and_completion() -> None:
    conv = parse({"prompt": "Hi", "response": "Hello!"})
    assert roles(conv) == [("user", "Hi"), ("assistant", "Hello!")]
    conv = parse({"system": "Be brief.", "prompt": "Hi", "completion": "Hello!"})
    assert roles(conv) == [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")]
    assert conv.meta["format"] == "prompt_response"
    assert roles(parse({"prompt": "Hi", "response": "Yo", "system": None})) == [("user", "Hi"), ("assistant", "Yo")]


def test_sharegpt() -> None:
    conv = parse(
        {
            "conversations": [
                {"from": "system", "value": "S"},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello"},
                {"from": "user", "value": "More"},
                {"from": "assistant", "value": "Sure"},
            ]
        }
    )
    assert roles(conv) == [
        ("system", "S"),
        ("user", "Hi"),
        ("assistant", "Hello"),
        ("user", "More"),
        ("assistant", "Sure"),
    ]
    assert conv.meta["format"] == "sharegpt"


def test_sharegpt_with_role_content_items() -> None:
    conv = parse({"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})
    assert roles(conv) == [("user", "Hi"), ("assistant", "Yo")]


def test_alpaca_input_joined_after_blank_line() -> None:
    conv = parse({"instruction": "Reverse the word.", "input": "cat", "output": "tac"})
    assert roles(conv) == [("user", "Reverse the word.\n\ncat"), ("assistant", "tac")]
    assert conv.meta["format"] == "alpaca"
    for empty in ({"input": ""}, {"input": None}, {}):
        conv = parse({"instruction": "Say hi.", "output": "hi", **empty})
        assert roles(conv) == [("user", "Say hi."), ("assistant", "hi")]
    conv = parse({"system": "S", "instruction": "Say hi.", "output": "hi"})
    assert roles(conv)[0] == ("system", "S")


def test_detect_format() -> None:
    assert detect_format({"messages": []}) == "messages"
    assert detect_format({"conversations": []}) == "sharegpt"
    assert detect_format({"prompt": "a", "completion": "b"}) == "prompt_response"
    assert detect_format({"instruction": "a", "output": "b"}) == "alpaca"
    assert detect_format({"prompt": "a"}) is None
    assert detect_format(["messages"]) is None


def test_user_text_kept_exactly() -> None:
    conv = parse({"prompt": "  spaced \n", "response": " answer "})
    assert roles(conv) == [("user", "  spaced \n"), ("assistant", " answer ")]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("obj", [[1, 2], "text", 3, None, True])
def test_not_an_object(obj: object) -> None:
    problem = refusal(obj)
    assert "not an object" in problem.problem
    assert '{"messages"' in problem.fix


def test_unknown_shape_lists_accepted_shapes() -> None:
    problem = refusal({"question": "a", "answer": "b"})
    assert "no known chat format" in problem.problem and "'question'" in problem.problem
    for shape in ('"messages"', '"prompt"', '"conversations"', '"instruction"'):
        assert shape in problem.fix


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"prompt": "a"}, "no 'response' or 'completion'"),
        ({"response": "a"}, "no 'prompt'"),
        ({"instruction": "a"}, "no 'output'"),
        ({"output": "a"}, "no 'instruction'"),
        ({"text": "raw"}, "plain 'text'"),
    ],
)
def test_near_miss_shapes_say_what_is_missing(obj: dict, expected: str) -> None:
    assert expected in refusal(obj).problem


def test_unknown_role_lists_valid_roles() -> None:
    problem = refusal({"messages": [{"role": "bot", "content": "x"}]})
    assert "messages[0] has unknown role 'bot'" in problem.problem
    assert "system, user, assistant" in problem.fix


def test_developer_role_hint_and_case_hint() -> None:
    assert "'system'" in refusal({"messages": [{"role": "developer", "content": "x"}]}).fix
    assert "lower-case" in refusal({"messages": [{"role": "User", "content": "x"}]}).fix


@pytest.mark.parametrize("role", ["tool", "function"])
def test_tool_roles_refused(role: str) -> None:
    problem = refusal(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "calling"},
                {"role": role, "content": "sunny"},
            ]
        }
    )
    assert "messages[2]" in problem.problem and "not supported" in problem.problem


def test_tool_calls_refused() -> None:
    problem = refusal(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            ]
        }
    )
    assert "tool/function call" in problem.problem


def test_sharegpt_unknown_speaker() -> None:
    problem = refusal({"conversations": [{"from": "robot", "value": "x"}]})
    assert "conversations[0] has unknown from 'robot'" in problem.problem
    assert "human" in problem.fix and "gpt" in problem.fix
    assert "not supported" in refusal({"conversations": [{"from": "observation", "value": "x"}]}).problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([{"type": "text", "text": "hi"}], "is a list (content parts)"),
        ({"text": "hi"}, "is a JSON object, not a string"),
        (None, "is null"),
        (42, "is a JSON number, not a string"),
    ],
)
def test_non_string_content_refused(content: object, expected: str) -> None:
    problem = refusal({"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]})
    assert f"messages[0].content {expected}" in problem.problem


def test_non_string_fields_of_other_formats() -> None:
    assert "'prompt' is null" in refusal({"prompt": None, "response": "a"}).problem
    assert "'output' is a list" in refusal({"instruction": "a", "output": ["b"]}).problem
    assert (
        "conversations[1].value is null"
        in refusal({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": None}]}).problem
    )


def test_structure_errors() -> None:
    assert "not a list" in refusal({"messages": "hi"}).problem
    assert "messages[1] is a JSON string" in refusal({"messages": [{"role": "user", "content": "a"}, "b"]}).problem
    assert "has no 'content'" in refusal({"messages": [{"role": "user"}]}).problem
    assert "has no 'role'" in refusal({"messages": [{"content": "a"}]}).problem
    assert "'messages' is empty" in refusal({"messages": []}).problem


def test_system_must_be_first_and_single() -> None:
    problem = refusal(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "b"},
            ]
        }
    )
    assert "messages[1] is a system message" in problem.problem
    problem = refusal(
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "system", "content": "t"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
            ]
        }
    )
    assert "messages[1] is a system message" in problem.problem


def test_must_start_with_user() -> None:
    problem = refusal({"messages": [{"role": "assistant", "content": "b"}, {"role": "user", "content": "a"}]})
    assert "messages[0] is an assistant message" in problem.problem
    problem = refusal(
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "c"},
            ]
        }
    )
    assert "messages[1] is an assistant message" in problem.problem


def test_roles_must_alternate() -> None:
    problem = refusal(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
            ]
        }
    )
    assert "messages[0] and messages[1] are both user messages" in problem.problem
    assert "merge" in problem.fix


def test_trailing_user_refused_with_hint_to_drop_it() -> None:
    problem = refusal(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        }
    )
    assert "last message (messages[2]) is a user message" in problem.problem
    assert "drop the trailing user message" in problem.fix


def test_no_assistant_turn() -> None:
    problem = refusal({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}]})
    assert "no assistant message" in problem.problem


@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
def test_empty_assistant_refused(empty: str) -> None:
    problem = refusal({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": empty}]})
    assert "messages[1] (assistant) is empty" in problem.problem
    assert "'response' is empty" in refusal({"prompt": "a", "response": empty}).problem
    assert "'output' is empty" in refusal({"instruction": "a", "output": empty}).problem


def test_response_and_completion_both_present() -> None:
    assert "both 'response' and 'completion'" in refusal({"prompt": "a", "response": "b", "completion": "c"}).problem


def test_size_cap_counts_all_characters() -> None:
    obj = {"prompt": "x" * 60, "response": "y" * 50}
    assert parse(obj, max_chars=110).messages
    problem = refusal(obj, max_chars=100)
    assert "110 characters, over the limit of 100" in problem.problem


def test_line_problem_str_and_dict() -> None:
    problem = LineProblem("a.jsonl", 3, "bad", "do better")
    assert str(problem) == "a.jsonl:3: bad — fix: do better"
    assert problem.to_dict() == {"source": "a.jsonl", "line": 3, "problem": "bad", "fix": "do better"}


def test_check_turns_accepts_valid() -> None:
    assert check_turns([Message("user", "a"), Message("assistant", "b")]) is None
    assert check_turns([Message("system", "s"), Message("user", ""), Message("assistant", "b")]) is None
