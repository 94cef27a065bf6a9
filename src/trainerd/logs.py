"""Logging set-up shared by the CLI, the engine process and the daemon.

Every decision (system prompt, attention, precision, checkpointing, LoRA, token ratio) is logged
through the standard `logging` module under the `trainerd` logger, to stderr and to a file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO, console: bool = True) -> None:
    """Send `trainerd` logs to stderr and (optionally) a file; safe to call more than once."""
    root = logging.getLogger("trainerd")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
