"""Read a JSONL data file into conversations, collecting every bad line with its fix.

The file is streamed one line at a time (a line is read at most `max_line_bytes` + 2 bytes at once,
the rest of an over-long line is skipped in chunks), so a multi-GB file or a file without newlines
never fills memory. With `on_invalid_line="fail"` one bad line refuses the whole file, listing the
bad lines; with `"skip"` the valid lines are kept and the problems returned for the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from trainerd.config.schema import DataSection
from trainerd.data.conversation import Conversation
from trainerd.data.formats import ACCEPTED_SHAPES, LineProblem, parse_record
from trainerd.errors import DataError

OnInvalidLine = Literal["fail", "skip"]

_UTF8_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 1 << 16


@dataclass
class DatasetReadResult:
    """What reading one or several files produced: the examples and the lines that were refused."""

    conversations: list[Conversation] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)  # at most `max_problems` of them
    lines_total: int = 0
    blank_lines: int = 0
    invalid_lines: int = 0  # every invalid line, also those beyond `max_problems`
    sources: list[str] = field(default_factory=list)

    @property
    def valid_lines(self) -> int:
        return len(self.conversations)

    def summary(self) -> dict[str, Any]:
        """Counts and the listed problems, JSON-ready (error files, logs, the monitor)."""
        return {
            "sources": list(self.sources),
            "lines_total": self.lines_total,
            "blank_lines": self.blank_lines,
            "valid_lines": self.valid_lines,
            "invalid_lines": self.invalid_lines,
            "problems": [p.to_dict() for p in self.problems],
        }


def read_dataset(
    path: str | os.PathLike[str],
    *,
    max_line_bytes: int,
    max_file_bytes: int,
    on_invalid_line: OnInvalidLine = "fail",
    max_problems: int = 50,
    max_chars: int | None = None,
) -> DatasetReadResult:
    """Read and validate one JSONL file; see the module doc for the `on_invalid_line` policies."""
    return read_datasets(
        [path],
        max_line_bytes=max_line_bytes,
        max_file_bytes=max_file_bytes,
        on_invalid_line=on_invalid_line,
        max_problems=max_problems,
        max_chars=max_chars,
    )


def read_datasets(
    paths: Iterable[str | os.PathLike[str]],
    *,
    max_line_bytes: int,
    max_file_bytes: int,
    on_invalid_line: OnInvalidLine = "fail",
    max_problems: int = 50,
    max_chars: int | None = None,
) -> DatasetReadResult:
    """Read several JSONL files as one dataset (in the order given); problems are collected over all of them."""
    if on_invalid_line not in ("fail", "skip"):
        raise DataError(
            f"unknown on_invalid_line policy {on_invalid_line!r}",
            'use data.on_invalid_line = "fail" or "skip"',
        )
    result = DatasetReadResult()
    for path in paths:
        _check_file(Path(path), max_file_bytes)
        before = (result.lines_total, result.blank_lines)
        _scan(Path(path), result, max_line_bytes=max_line_bytes, max_problems=max_problems, max_chars=max_chars)
        lines, blanks = result.lines_total - before[0], result.blank_lines - before[1]
        if lines == blanks:
            raise DataError(
                f"{path}: the file has no examples" + (f" ({blanks} blank lines)" if blanks else " (it is empty)"),
                "write one JSON object per line, e.g. " + ACCEPTED_SHAPES[0],
            )
    if not result.sources:
        raise DataError("no data files given", "pass at least one JSONL file")
    _judge(result, on_invalid_line)
    return result


def read_dataset_with_config(path: str | os.PathLike[str], data_cfg: DataSection) -> DatasetReadResult:
    """`read_dataset` with the limits and the invalid-line policy of the config's `data` section."""
    return read_datasets_with_config([path], data_cfg)


def read_datasets_with_config(paths: Iterable[str | os.PathLike[str]], data_cfg: DataSection) -> DatasetReadResult:
    """`read_datasets` with the limits and the invalid-line policy of the config's `data` section."""
    return read_datasets(
        paths,
        max_line_bytes=data_cfg.max_line_bytes,
        max_file_bytes=data_cfg.max_file_bytes,
        on_invalid_line=data_cfg.on_invalid_line,
    )


def _check_file(path: Path, max_file_bytes: int) -> None:
    """File-level refusals, before a byte is parsed."""
    if not path.exists():
        raise DataError(f"{path}: data file not found", "check the path (it is resolved from the current directory)")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise DataError(f"{path}: is {kind}", "pass a JSONL file with one JSON object per line")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise DataError(
            f"{path}: the file has {size:,} bytes, over the limit of {max_file_bytes:,}",
            "split it into smaller files, or raise data.max_file_bytes",
        )


def _scan(
    path: Path, result: DatasetReadResult, *, max_line_bytes: int, max_problems: int, max_chars: int | None
) -> None:
    """Stream `path` line by line, appending conversations and problems to `result`."""
    source = str(path)
    result.sources.append(source)

    def refuse(line_no: int, problem: str, fix: str) -> None:
        result.invalid_lines += 1
        if len(result.problems) < max_problems:
            result.problems.append(LineProblem(source=source, line=line_no, problem=problem, fix=fix))

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; binary so that bad UTF-8 is ours to report
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})", "check the file's permissions") from exc
    with handle:
        line_no = 0
        while True:
            raw, too_long = _read_line(handle, max_line_bytes)
            if raw is None:
                break
            line_no += 1
            result.lines_total += 1
            if line_no == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
            if too_long:
                refuse(
                    line_no,
                    f"the line is longer than {max_line_bytes:,} bytes",
                    "split the example into shorter ones, or raise data.max_line_bytes",
                )
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                refuse(
                    line_no,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)",
                    "save the file as UTF-8",
                )
                continue
            if not text.strip():
                result.blank_lines += 1
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                refuse(line_no, _json_problem(text, exc), _json_fix(text))
                continue
            try:
                result.conversations.append(parse_record(obj, source=source, line=line_no, max_chars=max_chars))
            except DataError as exc:
                for problem in exc.problems:
                    refuse(problem.line, problem.problem, problem.fix)


def _read_line(handle: BinaryIO, max_line_bytes: int) -> tuple[bytes | None, bool]:
    """Next line without its terminator, and whether it exceeded `max_line_bytes` (then it is skipped)."""
    limit = max_line_bytes + 2  # room for "\r\n"
    raw = handle.readline(limit)
    if not raw:
        return None, False
    if len(raw) == limit and not raw.endswith(b"\n"):
        # Over-long: drop the rest of the line without holding it in memory.
        while True:
            rest = handle.readline(_SKIP_CHUNK)
            if not rest or rest.endswith(b"\n"):
                break
        return b"", True
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw, len(raw) > max_line_bytes


def _json_problem(text: str, exc: json.JSONDecodeError) -> str:
    problem = f"invalid JSON at column {exc.colno}: {exc.msg}"
    if exc.pos >= len(text.rstrip()):
        problem += " (the line ends before the JSON value is complete)"
    return problem


def _json_fix(text: str) -> str:
    stripped = text.strip()
    if stripped in ("{", "[", "}", "]", "},", "],"):
        return "this looks like pretty-printed JSON: write one complete JSON object per line (JSON Lines)"
    return "each line must hold one complete JSON object; check quotes, commas and brackets near that column"


def _judge(result: DatasetReadResult, on_invalid_line: OnInvalidLine) -> None:
    """Apply the invalid-line policy to a finished read."""
    names = ", ".join(result.sources) if len(result.sources) <= 3 else f"{len(result.sources)} files"
    examples = result.lines_total - result.blank_lines
    shown = "" if result.invalid_lines <= len(result.problems) else f" (the first {len(result.problems)} are listed)"
    first = f"; first: {result.problems[0]}" if result.problems else ""
    if result.invalid_lines and on_invalid_line == "fail":
        raise DataError(
            f"{names}: {result.invalid_lines} of {examples} lines are invalid{shown}{first}",
            'fix the lines listed (each says how), or set data.on_invalid_line = "skip" to train on the valid ones',
            problems=result.problems,
        )
    if not result.conversations:
        raise DataError(
            f"{names}: no valid examples; all {result.invalid_lines} lines are invalid{shown}{first}",
            "fix the lines listed (each says how)",
            problems=result.problems,
        )
