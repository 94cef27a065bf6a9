"""InboxScanner: only complete, regular *.jsonl files inside the base dir are taken; sidecars give priority."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from trainerd.daemon.inbox import InboxScanner, new_job_id, sanitize_name
from trainerd.daemon.layout import BaseDir

LINE = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})


@pytest.fixture
def base(tmp_path: Path) -> BaseDir:
    return BaseDir(tmp_path / "base").ensure()


def drop(base: BaseDir, name: str, lines: int = 1, meta: object | None = None) -> Path:
    path = base.inbox / name
    path.write_text((LINE + "\n") * lines)
    if meta is not None:
        sidecar = base.inbox / (name + ".meta.json")
        sidecar.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return path


def ready_names(scanner: InboxScanner) -> list[str]:
    poll = scanner.poll()
    assert poll.rejected == []
    return [f.name for f in poll.ready]


def test_file_is_taken_once_stable_for_the_configured_polls(base: BaseDir) -> None:
    path = drop(base, "a.jsonl", lines=2)
    scanner = InboxScanner(base, stable_polls=2)
    assert ready_names(scanner) == []
    poll = scanner.poll()
    assert [f.name for f in poll.ready] == ["a.jsonl"]
    item = poll.ready[0]
    assert item.path == path and item.priority == "normal" and item.size == path.stat().st_size
    assert item.meta_path is None and item.meta == {}


def test_a_file_still_growing_is_not_taken(base: BaseDir) -> None:
    path = drop(base, "growing.jsonl")
    scanner = InboxScanner(base, stable_polls=2)
    assert ready_names(scanner) == []
    with path.open("a") as handle:  # the writer is still appending
        handle.write(LINE + "\n")
    assert ready_names(scanner) == []
    with path.open("a") as handle:
        handle.write(LINE[:10])  # half a line: still being written
    assert ready_names(scanner) == []
    assert ready_names(scanner) == ["growing.jsonl"]


def test_stable_polls_of_one_takes_files_on_first_sight(base: BaseDir) -> None:
    drop(base, "a.jsonl")
    assert ready_names(InboxScanner(base, stable_polls=1)) == ["a.jsonl"]
    with pytest.raises(ValueError):
        InboxScanner(base, stable_polls=0)


def test_temp_part_and_hidden_names_are_ignored_until_renamed(base: BaseDir) -> None:
    tmp = drop(base, "a.jsonl.tmp")
    drop(base, "b.jsonl.part")
    drop(base, ".c.jsonl")
    drop(base, "notes.txt")
    drop(base, "d.json")
    scanner = InboxScanner(base, stable_polls=2)
    for _ in range(3):
        poll = scanner.poll()
        assert poll.ready == [] and poll.rejected == []
    tmp.rename(base.inbox / "a.jsonl")
    assert ready_names(scanner) == []
    assert ready_names(scanner) == ["a.jsonl"]


def test_sidecar_priority_is_honoured(base: BaseDir) -> None:
    drop(base, "urgent.jsonl", meta={"priority": "high"})
    drop(base, "later.jsonl", meta={"priority": "low"})
    drop(base, "plain.jsonl")
    scanner = InboxScanner(base, stable_polls=1)
    poll = scanner.poll()
    by_name = {f.name: f for f in poll.ready}
    assert poll.rejected == []
    priorities = {n: f.priority for n, f in by_name.items()}
    assert priorities == {"urgent.jsonl": "high", "later.jsonl": "low", "plain.jsonl": "normal"}
    assert by_name["urgent.jsonl"].meta_path == base.inbox / "urgent.jsonl.meta.json"
    assert by_name["urgent.jsonl"].meta == {"priority": "high"}


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ("{not json", "not valid JSON"),
        ('["high"]', "JSON object"),
        ({"priority": "urgent"}, "unknown priority 'urgent'"),
        ({"prority": "high"}, "unknown key(s) 'prority'"),
        ({"priority": 3}, "unknown priority 3"),
    ],
)
def test_bad_sidecar_rejects_the_file_with_a_reason(base: BaseDir, meta: object, words: str) -> None:
    path = drop(base, "a.jsonl", meta=meta)
    poll = InboxScanner(base, stable_polls=1).poll()
    assert poll.ready == []
    [rejection] = poll.rejected
    assert rejection.path == path and rejection.name == "a.jsonl"
    assert words in rejection.reason and "a.jsonl.meta.json" in rejection.reason
    assert rejection.hint
    assert rejection.meta_path == base.inbox / "a.jsonl.meta.json"


def test_sidecar_still_changing_delays_the_take(base: BaseDir) -> None:
    drop(base, "a.jsonl")
    scanner = InboxScanner(base, stable_polls=2)
    assert ready_names(scanner) == []
    (base.inbox / "a.jsonl.meta.json").write_text('{"priority": "hi')  # sidecar arrives, half written
    assert ready_names(scanner) == []
    (base.inbox / "a.jsonl.meta.json").write_text('{"priority": "high"}')
    assert ready_names(scanner) == []
    poll = scanner.poll()
    assert [(f.name, f.priority) for f in poll.ready] == [("a.jsonl", "high")]


def test_symlinks_are_refused_at_once(base: BaseDir, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text(LINE + "\n")
    os.symlink(outside, base.inbox / "out.jsonl")
    inside = drop(base, "real.jsonl")
    os.symlink(inside, base.inbox / "in.jsonl")
    poll = InboxScanner(base, stable_polls=2).poll()
    assert poll.ready == []
    refused = {r.name: r for r in poll.rejected}
    assert set(refused) == {"out.jsonl", "in.jsonl"}
    assert all("symbolic link" in r.reason for r in refused.values())
    assert refused["out.jsonl"].meta_path is None


def test_a_folder_named_jsonl_is_refused(base: BaseDir) -> None:
    (base.inbox / "dir.jsonl").mkdir()
    poll = InboxScanner(base).poll()
    assert [r.reason for r in poll.rejected] == ["dir.jsonl is not a regular file"]


def test_inbox_resolving_outside_the_base_dir_is_refused(tmp_path: Path) -> None:
    base = BaseDir(tmp_path / "base").ensure()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.jsonl").write_text(LINE + "\n")
    base.inbox.rmdir()
    os.symlink(elsewhere, base.inbox)
    poll = InboxScanner(base, stable_polls=1).poll()
    assert poll.ready == []
    assert ["outside the base dir" in r.reason for r in poll.rejected] == [True]


def test_ready_files_come_oldest_first_and_forgotten_files_reset(base: BaseDir) -> None:
    first = drop(base, "z.jsonl")
    second = drop(base, "a.jsonl")
    os.utime(first, ns=(1_000_000_000, 1_000_000_000))
    os.utime(second, ns=(2_000_000_000, 2_000_000_000))
    scanner = InboxScanner(base, stable_polls=2)
    scanner.poll()
    assert ready_names(scanner) == ["z.jsonl", "a.jsonl"]
    first.unlink()
    drop(base, "z.jsonl")  # the same name again is a new file: it must be seen stable again
    assert ready_names(scanner) == ["a.jsonl"]
    assert ready_names(scanner) == ["a.jsonl", "z.jsonl"]


def test_missing_inbox_gives_an_empty_poll(tmp_path: Path) -> None:
    poll = InboxScanner(BaseDir(tmp_path)).poll()
    assert poll.ready == [] and poll.rejected == []


def test_sanitize_name() -> None:
    assert sanitize_name("my data (v2).jsonl") == "my_data_v2_.jsonl"
    assert sanitize_name("...hidden") == "hidden"
    assert sanitize_name("-rf") == "rf"
    assert sanitize_name("") == "file"
    assert sanitize_name("日本語") == "_"
    assert sanitize_name("../../etc/passwd") == "_.._etc_passwd"
    long = sanitize_name("x" * 200)
    assert len(long) == 80
    for name in ["a b", "é", ".", "..", "a/b\\c", "x" * 300, " .jsonl"]:
        cleaned = sanitize_name(name)
        assert cleaned and not cleaned.startswith(".") and len(cleaned) <= 80
        assert re.fullmatch(r"[A-Za-z0-9._-]+", cleaned), cleaned


def test_new_job_id_is_readable_sortable_and_unique() -> None:
    now = 1_700_000_000.0
    first = new_job_id("my data.jsonl", set(), now=now)
    assert re.fullmatch(r"\d{8}-\d{6}-my_data", first)
    taken = {first}
    second = new_job_id("my data.jsonl", taken, now=now)
    taken.add(second)
    third = new_job_id("my data.jsonl", taken, now=now)
    assert (second, third) == (f"{first}-2", f"{first}-3")
    later = new_job_id("a.jsonl", taken, now=now + 1)
    assert sorted([later, first]) == [first, later]
    assert new_job_id(".jsonl", set(), now=now).endswith("-file")
