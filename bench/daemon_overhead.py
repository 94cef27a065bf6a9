"""What the daemon costs on top of the engine: the same files through `trainerd train` and the daemon.

Not a test. Builds the tiny model, writes N sample files, then measures in this one run:
- baseline: `trainerd train` on each file in turn (one engine process per file);
- daemon: `trainerd init` + the files in the inbox + `trainerd daemon --exit-when-idle`
  (gate process, queue, engine process per job, output check, promotion, status, history).
Prints wall time of each, the ratio, and the overhead per job.

    python bench/daemon_overhead.py [--files 3] [--examples 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SETTINGS = ("hyperparams.learning_rate=0.003", "hyperparams.use_gradient_checkpointing=false")


def trainerd(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "trainerd", *args], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"trainerd {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--examples", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trainerd("tiny-model", str(work / "model"))
        files = []
        for i in range(args.files):
            path = work / f"data-{i}.jsonl"
            trainerd("sample-data", str(path), "--count", str(args.examples), "--seed", str(i))
            files.append(path)

        started = time.perf_counter()
        for i, path in enumerate(files):
            sets = [arg for setting in SETTINGS for arg in ("--set", setting)]
            trainerd("train", "--dataset", str(path), "--model", str(work / "model"), "--output",
                     str(work / f"train-{i}"), *sets)  # fmt: skip
        baseline = time.perf_counter() - started

        base = work / "base"
        daemon_sets = (*SETTINGS, "daemon.poll_interval_seconds=0.5", "daemon.stable_polls=1",
                       "daemon.snapshot_time=null")  # fmt: skip
        trainerd("init", str(base), "--model", str(work / "model"),
                 *[arg for setting in daemon_sets for arg in ("--set", setting)])  # fmt: skip
        for path in files:
            (base / "inbox" / path.name).write_bytes(path.read_bytes())
        started = time.perf_counter()
        trainerd("daemon", "--base-dir", str(base), "--exit-when-idle")
        daemon = time.perf_counter() - started

    print(f"{args.files} files x {args.examples} examples, tiny model, CPU")
    print("| path | wall time | ratio |\n|---|---|---|")
    print(f"| `trainerd train` per file (baseline) | {baseline:.1f} s | 1.00 |")
    print(f"| daemon: gate + queue + engine + promotion | {daemon:.1f} s | {daemon / baseline:.2f} |")
    print(f"overhead per job: {(daemon - baseline) / args.files:+.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
