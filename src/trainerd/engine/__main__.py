"""Child-process entry: `python -m trainerd.engine JOB.json` (also under accelerate launch/torchrun).

Exit code 0 on success, 3 when ended on a pause/stop/skip request (resumable), 1 on failure; the
details are always in OUT/result.json.
"""

from __future__ import annotations

import sys

from trainerd.engine.spec import JobSpec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainerd.engine JOB.json", file=sys.stderr)
        return 2
    from trainerd.engine.engine import run_job

    result = run_job(JobSpec.load(args[0]), show_progress_bar=False)
    if result.success:
        return 0
    return 3 if result.stopped else 1


if __name__ == "__main__":
    sys.exit(main())
