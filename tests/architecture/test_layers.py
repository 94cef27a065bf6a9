"""Layering rules from DESIGN.md that code review alone would let slip."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate")


@pytest.mark.parametrize(
    "module",
    ["trainerd.cli", "trainerd.daemon.loop", "trainerd.daemon.jobs", "trainerd.monitor.server", "trainerd.config.load"],
)
def test_orchestration_and_interfaces_start_without_model_libraries(module: str) -> None:
    """The daemon, the monitor and the CLI's cheap commands never import torch/transformers/peft."""
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", f"{module} imports {proc.stdout.strip()}"


def test_only_engine_models_and_data_use_model_apis() -> None:
    """No module outside engine/, models/ and data/ imports transformers or peft."""
    from pathlib import Path

    import trainerd

    root = Path(trainerd.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        part = path.relative_to(root).parts[0]
        if part in ("engine", "models", "data"):
            continue
        text = path.read_text()
        if "import transformers" in text or "from transformers" in text or "from peft" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
