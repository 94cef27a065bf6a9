"""What a model dir is (full model or LoRA adapter) and whether it is complete, from its files alone.

Pure file inspection, no torch import: the daemon and the CLI use it to check a model dir before
anything heavy loads, and to refuse a half-written or foreign dir with a reason a user can act on.
A dir with `adapter_config.json` is only an adapter when it carries no full model: the adapter
config is never taken to mean "the model".
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["full", "lora-adapter"]
WeightFormat = Literal["safetensors", "safetensors-sharded", "bin", "bin-sharded"]

CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# Checked in this order: a dir holding several takes the first (safetensors before pickles).
FULL_WEIGHT_FILES: tuple[tuple[str, WeightFormat], ...] = (
    ("model.safetensors", "safetensors"),
    ("model.safetensors.index.json", "safetensors-sharded"),
    ("pytorch_model.bin", "bin"),
    ("pytorch_model.bin.index.json", "bin-sharded"),
)
ADAPTER_WEIGHT_FILES: tuple[tuple[str, WeightFormat], ...] = (
    ("adapter_model.safetensors", "safetensors"),
    ("adapter_model.bin", "bin"),
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# A safetensors header is JSON metadata; anything near this size is a corrupt length field.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^{_HUB_PART}/{_HUB_PART}$")


@dataclass
class ModelDirInfo:
    """Everything known about one model dir; `reason` says why it is not usable when `valid` is False."""

    path: str
    kind: ModelKind | None = None
    weight_format: WeightFormat | None = None
    has_tokenizer: bool = False
    architecture: str | None = None
    base_model: str | None = None
    valid: bool = False
    reason: str | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for status files and `trainerd` output."""
        return asdict(self)


class _Invalid(Exception):
    """Internal: stops inspection with the reason a user will read."""


def inspect_model_dir(path: Path | str) -> ModelDirInfo:
    """Classify `path` as a full model or a LoRA adapter and check its files are complete and readable."""
    root = Path(path)
    info = ModelDirInfo(path=str(root))
    if not root.is_dir():
        info.reason = f"{root} does not exist" if not root.exists() else f"{root} is not a directory"
        return info
    try:
        info.files = sorted(p.name for p in root.iterdir())
    except OSError as exc:
        info.reason = f"cannot list {root}: {exc.strerror or exc}"
        return info
    info.has_tokenizer = any((root / name).is_file() for name in TOKENIZER_FILES)

    has_config = (root / CONFIG_FILE).is_file()
    has_adapter_config = (root / ADAPTER_CONFIG_FILE).is_file()
    has_full_weights = any((root / name).is_file() for name, _ in FULL_WEIGHT_FILES)
    try:
        if has_config and (has_full_weights or not has_adapter_config):
            _inspect_full(root, info)
        elif has_adapter_config:
            _inspect_adapter(root, info)
        else:
            raise _Invalid(f"{root} has neither {CONFIG_FILE} (full model) nor {ADAPTER_CONFIG_FILE} (LoRA adapter)")
    except _Invalid as exc:
        info.reason = str(exc)
        return info
    info.valid = True
    return info


def is_valid_model_dir(path: Path | str) -> bool:
    """True when `path` is a complete full model or LoRA adapter dir."""
    return inspect_model_dir(path).valid


def looks_like_hub_id(value: str) -> bool:
    """True for an 'org/name' hub id that is not also an existing local path (a local path always wins)."""
    if not _HUB_ID.match(value) or ".." in value or "--" in value:
        return False
    return not Path(value).expanduser().exists()


def _inspect_full(root: Path, info: ModelDirInfo) -> None:
    info.kind = "full"
    config = _read_json_object(root / CONFIG_FILE)
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        info.architecture = architectures[0]
    elif isinstance(config.get("model_type"), str):
        info.architecture = config["model_type"]
    for name, fmt in FULL_WEIGHT_FILES:
        if (root / name).is_file():
            info.weight_format = fmt
            if fmt.endswith("-sharded"):
                _check_index(root / name, fmt)
            else:
                _check_weight_file(root / name)
            return
    expected = ", ".join(name for name, _ in FULL_WEIGHT_FILES)
    raise _Invalid(f"{root} has {CONFIG_FILE} but no weights (expected one of: {expected})")


def _inspect_adapter(root: Path, info: ModelDirInfo) -> None:
    info.kind = "lora-adapter"
    config = _read_json_object(root / ADAPTER_CONFIG_FILE)
    peft_type = config.get("peft_type")
    base = config.get("base_model_name_or_path")
    if isinstance(base, str) and base.strip():
        info.base_model = base
        info.architecture = f"{peft_type or 'PEFT'} adapter on {base}"
    for name, fmt in ADAPTER_WEIGHT_FILES:
        if (root / name).is_file():
            info.weight_format = fmt
            _check_weight_file(root / name)
            break
    else:
        expected = " or ".join(name for name, _ in ADAPTER_WEIGHT_FILES)
        raise _Invalid(f"adapter dir {root} has {ADAPTER_CONFIG_FILE} but no adapter weights ({expected})")
    if info.base_model is None:
        raise _Invalid(
            f"{root / ADAPTER_CONFIG_FILE} does not name its base model (base_model_name_or_path is missing or empty)"
        )


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Invalid(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise _Invalid(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


def _check_index(index_path: Path, fmt: WeightFormat) -> None:
    """A sharded checkpoint is complete only when every shard its weight_map names exists."""
    index = _read_json_object(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _Invalid(f"{index_path} has no weight_map (unreadable shard index)")
    shards = sorted({str(name) for name in weight_map.values()})
    missing = [name for name in shards if not (index_path.parent / name).is_file()]
    if missing:
        raise _Invalid(f"{index_path.name} names missing shard(s): {', '.join(missing)}")
    for name in shards:
        _check_weight_file(index_path.parent / name, safetensors=fmt == "safetensors-sharded")


def _check_weight_file(path: Path, safetensors: bool | None = None) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _Invalid(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise _Invalid(f"weight file {path} is empty (0 bytes); it was probably cut off while being written")
    is_safetensors = path.suffix == ".safetensors" if safetensors is None else safetensors
    if is_safetensors:
        _check_safetensors_header(path, size)


def _check_safetensors_header(path: Path, size: int) -> None:
    """Read the 8-byte little-endian header length and the JSON header, as safetensors does, without torch."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _Invalid(f"safetensors header of {path} is unreadable: file is only {size} bytes")
            (length,) = struct.unpack("<Q", prefix)
            if length == 0 or length > MAX_SAFETENSORS_HEADER or length > size - 8:
                raise _Invalid(
                    f"safetensors header of {path} is unreadable: header length {length} does not fit "
                    f"a {size}-byte file (truncated or not a safetensors file)"
                )
            raw = handle.read(length)
    except OSError as exc:
        raise _Invalid(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Invalid(f"safetensors header of {path} is unreadable: not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _Invalid(f"safetensors header of {path} is unreadable: expected a JSON object")
    _check_tensor_extents(path, header, size - 8 - length)


def _check_tensor_extents(path: Path, header: dict[str, Any], data_size: int) -> None:
    """A file cut short after its header still parses; its tensors' offsets then point past the end."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise _Invalid(f"safetensors header of {path} is unreadable: tensor {name!r} has no data_offsets")
        end = max(end, offsets[1])
    if end > data_size:
        raise _Invalid(
            f"weight file {path} is truncated: its header needs {end} bytes of tensor data, the file has {data_size}"
        )
