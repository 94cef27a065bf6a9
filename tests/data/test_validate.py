"""read_dataset: streaming, per-line problems with file:line and a fix, file-level refusals, policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainerd.config.schema import DataSection
from trainerd.data.validate import read_dataset, read_dataset_with_config, read_datasets, read_datasets_with_config
from trainerd.errors import DataError

LIMITS = {"max_line_bytes": 10_000, "max_file_bytes": 1_000_000}


def record(user: str = "Hi", answer: str = "Hello!") -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})


def write(path: Path, *lines: str | bytes, newline: bytes = b"\n") -> Path:
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + newline for line in lines)
    path.write_bytes(data)
    return path


def test_reads_valid_file_and_counts_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record("1"), "", "   ", record("2"))
    result = read_dataset(path, **LIMITS)
    assert [c.messages[0].content for c in result.conversations] == ["1", "2"]
    assert [c.line for c in result.conversations] == [1, 4]
    assert result.conversations[0].source == str(path)
    assert (result.lines_total, result.blank_lines, result.invalid_lines, result.valid_lines) == (4, 2, 0, 2)
    assert result.problems == []
    assert result.summary()["valid_lines"] == 2


def test_crlf_bom_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + record("1").encode() + b"\r\n" + record("2").encode())
    result = read_dataset(path, **LIMITS)
    assert [c.messages[0].content for c in result.conversations] == ["1", "2"]


def fail_problems(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_dataset(path, **{**LIMITS, **kwargs})  # type: ignore[arg-type]
    return info.value


def test_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record(), b'{"prompt": "caf\xe9", "response": "x"}')
    err = fail_problems(path)
    (problem,) = err.problems
    assert problem.line == 2 and "not valid UTF-8 (byte 0xe9 at byte 16" in problem.problem
    assert "UTF-8" in problem.fix
    assert str(problem).startswith(f"{path}:2: ")


def test_invalid_json_names_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"prompt": "a" "response": "b"}', '{"prompt": "a", ')
    err = fail_problems(path)
    first, second = err.problems
    assert first.line == 1 and "invalid JSON at column 16" in first.problem
    assert "near that column" in first.fix
    assert second.line == 2 and "ends before the JSON value is complete" in second.problem


def test_pretty_printed_json_gets_its_own_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", "{", '  "prompt": "a",', "}")
    err = fail_problems(path)
    assert "pretty-printed JSON" in err.problems[0].fix


def test_line_over_max_line_bytes_is_skipped_not_loaded(tmp_path: Path) -> None:
    long_line = record("x" * 5_000)
    path = write(tmp_path / "a.jsonl", record("1"), long_line, record("3"))
    result = read_dataset(path, max_line_bytes=1_000, max_file_bytes=1_000_000, on_invalid_line="skip")
    assert [c.line for c in result.conversations] == [1, 3]
    (problem,) = result.problems
    assert problem.line == 2 and "longer than 1,000 bytes" in problem.problem
    assert "max_line_bytes" in problem.fix


def test_line_exactly_at_limit_is_accepted(tmp_path: Path) -> None:
    line = record("y" * 100)
    path = write(tmp_path / "a.jsonl", line, line, newline=b"\r\n")
    result = read_dataset(path, max_line_bytes=len(line), max_file_bytes=1_000_000)
    assert result.valid_lines == 2
    with pytest.raises(DataError):
        read_dataset(path, max_line_bytes=len(line) - 1, max_file_bytes=1_000_000)


def test_parse_errors_carry_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record(), json.dumps({"messages": [{"role": "user", "content": "a"}]}))
    err = fail_problems(path)
    (problem,) = err.problems
    assert problem.line == 2 and "no assistant message" in problem.problem


def test_fail_mode_message_counts_and_hints(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record(), "nope", "", record(), "[]")
    err = fail_problems(path)
    assert [p.line for p in err.problems] == [2, 5]
    assert err.message.startswith(f"{path}: 2 of 4 lines are invalid; first: {path}:2: invalid JSON")
    assert 'on_invalid_line = "skip"' in (err.hint or "")


def test_max_problems_caps_the_list_not_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record(), *["bad"] * 7)
    err = fail_problems(path, max_problems=3)
    assert len(err.problems) == 3
    assert "7 of 8 lines are invalid (the first 3 are listed)" in err.message


def test_skip_mode_returns_valid_and_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record("1"), "bad", record("3"))
    result = read_dataset(path, **LIMITS, on_invalid_line="skip")
    assert [c.line for c in result.conversations] == [1, 3]
    assert [p.line for p in result.problems] == [2]
    assert result.invalid_lines == 1


def test_skip_mode_with_no_valid_line_still_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", "bad", "worse")
    with pytest.raises(DataError) as info:
        read_dataset(path, **LIMITS, on_invalid_line="skip")
    assert "no valid examples; all 2 lines are invalid" in info.value.message
    assert len(info.value.problems) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path / "nope.jsonl", **LIMITS)
    assert "nope.jsonl: data file not found" in info.value.message and info.value.hint


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path, **LIMITS)
    assert "is a directory" in info.value.message and info.value.hint


def test_file_over_max_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record(), record())
    with pytest.raises(DataError) as info:
        read_dataset(path, max_line_bytes=10_000, max_file_bytes=50)
    assert "over the limit of 50" in info.value.message
    assert "max_file_bytes" in (info.value.hint or "")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_has_no_examples(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_dataset(path, **LIMITS, on_invalid_line="skip")
    assert "has no examples" in info.value.message
    assert '{"messages"' in (info.value.hint or "")


def test_read_datasets_concatenates_and_collects_problems(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", record("a1"), record("a2"))
    b = write(tmp_path / "b.jsonl", "bad", record("b2"))
    result = read_datasets([a, b], **LIMITS, on_invalid_line="skip")
    assert [(c.source, c.line) for c in result.conversations] == [(str(a), 1), (str(a), 2), (str(b), 2)]
    assert [(p.source, p.line) for p in result.problems] == [(str(b), 1)]
    assert result.lines_total == 4 and result.sources == [str(a), str(b)]
    with pytest.raises(DataError) as info:
        read_datasets([a, b], **LIMITS)
    assert info.value.message.startswith(f"{a}, {b}: 1 of 4 lines are invalid")


def test_read_datasets_needs_files() -> None:
    with pytest.raises(DataError):
        read_datasets([], **LIMITS)


def test_with_config_uses_data_section(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record("1"), "bad")
    with pytest.raises(DataError):
        read_dataset_with_config(path, DataSection())
    result = read_dataset_with_config(path, DataSection(on_invalid_line="skip"))
    assert result.valid_lines == 1
    with pytest.raises(DataError) as info:
        read_datasets_with_config([path], DataSection(on_invalid_line="skip", max_file_bytes=10))
    assert "over the limit of 10" in info.value.message


def test_unknown_policy(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", record())
    with pytest.raises(DataError):
        read_dataset(path, **LIMITS, on_invalid_line="ignore")  # type: ignore[arg-type]
