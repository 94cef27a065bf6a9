"""Turning a hub id into a local model dir (the daemon's store keeps local copies only).

`trainerd train --model ORG/NAME` needs none of this (transformers' `from_pretrained` takes hub
ids directly); `trainerd init BASE --model ORG/NAME` does, because a base dir's first version is a
real copy. Offline (HF_HUB_OFFLINE=1) only the local hub cache is used.
"""

from __future__ import annotations

from pathlib import Path

from trainerd.errors import ModelError
from trainerd.models.inspect import looks_like_hub_id


def fetch_model_dir(model: str, revision: str | None = None) -> Path:
    """A local dir holding `model`: the path itself, or the hub snapshot (downloaded or cached)."""
    path = Path(model).expanduser()
    if path.exists():
        return path
    if not looks_like_hub_id(model):
        raise ModelError(
            f"{model} is neither an existing directory nor a hub id",
            hint="pass a local model dir or a hub id like Qwen/Qwen3-0.6B",
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=model, revision=revision))
    except Exception as error:
        raise ModelError(
            f"cannot get {model} from the Hugging Face hub or its local cache: {type(error).__name__}: {error}",
            hint="check the id and your network (HF_HUB_OFFLINE=1 allows only cached models), "
            "or download the model and pass its directory",
        ) from error
