"""The daemon's gate: the engine's own data checks on inbox files, in a child process.

The daemon must not import transformers, yet the gate needs the current model's tokenizer
(token lengths, chat template, trainable-token ratio). So the daemon runs
`python -m trainerd.engine.gate REQUEST.json RESULT.json`; the checks are exactly the ones a
training job runs first (`data/pipeline.build_training_data`), so a file that passes the gate
does not fail on its data later.

REQUEST.json: {"files": [...], "model": DIR, "config": {...}}
RESULT.json:  {"results": [{"path", "ok", "reason", "hint", "problems": [{source, line, problem, fix}], "summary"}]}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trainerd.config.schema import TrainerdConfig
from trainerd.errors import TrainerdError
from trainerd.files import atomic_write_json


def _problem_dict(problem: Any) -> dict[str, Any]:
    if hasattr(problem, "to_dict"):
        return dict(problem.to_dict())
    return {"problem": str(problem)}


def check_files(files: list[str], model: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per file; a bad file never stops the others from being checked."""
    from trainerd.data.pipeline import build_training_data
    from trainerd.models.load import load_tokenizer

    cfg = TrainerdConfig.model_validate(config)
    tokenizer = load_tokenizer(model, trust_remote_code=cfg.model.trust_remote_code)
    verdicts = []
    for path in files:
        try:
            data = build_training_data([path], cfg, tokenizer)
        except TrainerdError as error:
            verdicts.append(
                {
                    "path": path,
                    "ok": False,
                    "reason": error.message,
                    "hint": error.hint,
                    "problems": [_problem_dict(p) for p in getattr(error, "problems", [])],
                }
            )
            continue
        except Exception as error:  # a checker bug must not take down the gate for other files
            verdicts.append(
                {"path": path, "ok": False, "reason": f"{type(error).__name__}: {error}", "hint": None, "problems": []}
            )
            continue
        verdicts.append(
            {
                "path": path,
                "ok": True,
                "summary": data.dataset.summary(),
                "skipped_lines": data.skipped_lines,
                "problems": [],
            }
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m trainerd.engine.gate REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    from trainerd.engine.engine import quiet_library_output

    quiet_library_output()
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    try:
        results = check_files(request["files"], request["model"], request.get("config", {}))
    except TrainerdError as error:  # e.g. the tokenizer cannot be loaded: every file waits, none is blamed
        atomic_write_json(args[1], {"error": str(error)})
        return 1
    atomic_write_json(args[1], {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
