"""Regenerate the config reference table in README.md from the schema (its help texts are the docs).

    python scripts/gen_config_reference.py          # rewrite README.md in place
    python scripts/gen_config_reference.py --check  # exit 1 when README.md is out of date (tests use this)
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainerd.config.load import describe_fields

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def table() -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, kind, default, help_text in describe_fields():
        kind, help_text = (text.replace("|", "\\|") for text in (kind, help_text))
        rows.append(f"| `{path}` | {kind} | `{default}` | {help_text} |")
    return "\n".join(rows)


def render(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md config reference is out of date: run python scripts/gen_config_reference.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
