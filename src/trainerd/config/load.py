"""Build the effective config: defaults < config file < command line, remembering each value's source.

The file may be nested (canonical) or use the legacy flat keys of the old system; flat keys are
read into their nested place with one deprecation warning. Every error a user can make (unknown
key, bad value, unreadable file) becomes a ConfigError that names the key and says how to fix it,
because a silently ignored setting costs a whole training run.

Command line: `--set section.key=value` overrides are applied first, then the dedicated flags
(`--lora`, `--max-steps`, ...), so a dedicated flag wins over a `--set` of the same key.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from trainerd.config.schema import TrainerdConfig
from trainerd.errors import ConfigError

log = logging.getLogger("trainerd.config")

# Legacy flat key -> nested dotted path. Order matters: when several aliases of one target are
# present (model_path and base_model), the first one listed here wins.
LEGACY_KEYS: dict[str, str] = {
    "batch_size": "hyperparams.batch_size",
    "gradient_accumulation": "hyperparams.gradient_accumulation",
    "gradient_accumulation_steps": "hyperparams.gradient_accumulation",
    "learning_rate": "hyperparams.learning_rate",
    "max_length": "hyperparams.max_length",
    "num_epochs": "hyperparams.num_epochs",
    "max_steps": "hyperparams.max_steps",
    "warmup_steps": "hyperparams.warmup_steps",
    "save_steps": "hyperparams.save_steps",
    "save_total_limit": "hyperparams.save_total_limit",
    "logging_steps": "hyperparams.logging_steps",
    "weight_decay": "hyperparams.weight_decay",
    "seed": "hyperparams.seed",
    "use_gradient_checkpointing": "hyperparams.use_gradient_checkpointing",
    "model_path": "model.path",
    "base_model": "model.path",
    "model_name": "model.path",
    "precision": "model.precision",
    "attn_implementation": "model.attn_implementation",
    "profile": "profile.name",  # only when its value is a string; an object is the profile section
    "system_prompt": "profile.system_prompt",
    "use_lora": "lora.enabled",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_target_modules": "lora.target_modules",
}

# Dotted path -> the CLI flag that sets it, for source labels ("flag --lora").
FLAG_NAMES: dict[str, str] = {
    "lora.enabled": "--lora",
    "model.path": "--model",
    "profile.name": "--profile",
    "hyperparams.max_steps": "--max-steps",
}

_SET_HINT = "write --set section.key=value, e.g. --set hyperparams.learning_rate=1e-4"


@dataclass
class LoadedConfig:
    """The validated config plus where each leaf's value came from (for `config show`)."""

    config: TrainerdConfig
    sources: dict[str, str]
    warnings: list[str]
    path: Path | None


@dataclass
class LegacyConflict:
    """A legacy key that lost to another value of the same setting (nested key or earlier alias)."""

    legacy_key: str
    legacy_value: Any
    path: str
    kept_value: Any
    kept_from: str


@dataclass
class FoldedFile:
    """A config file's settings in nested form, holding only the keys the file sets."""

    data: dict[str, dict[str, Any]]
    sources: dict[str, str]
    legacy: dict[str, str] = field(default_factory=dict)  # legacy key found -> nested path
    conflicts: list[LegacyConflict] = field(default_factory=list)


# ---------------------------------------------------------------- schema walking


def sections() -> dict[str, type[BaseModel]]:
    """Top-level section name -> its model class, in schema order."""
    out: dict[str, type[BaseModel]] = {}
    for name, info in TrainerdConfig.model_fields.items():
        ann = info.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            raise TypeError(f"TrainerdConfig.{name} must be a section (a BaseModel), got {ann!r}")
        out[name] = ann
    return out


def leaf_fields() -> dict[str, FieldInfo]:
    """Every leaf's dotted path -> its field, in schema order."""
    return {f"{sec}.{key}": info for sec, model in sections().items() for key, info in model.model_fields.items()}


def _base_types(tp: Any) -> set[Any]:
    """The plain Python types a field annotation accepts (for coercing `--set` text)."""
    origin = get_origin(tp)
    if origin is Literal:
        return {type(arg) for arg in get_args(tp)}
    if origin in (Union, types.UnionType):
        out: set[Any] = set()
        for arg in get_args(tp):
            out |= _base_types(arg)
        return out
    if origin is not None:
        return {origin}
    if tp is None or tp is type(None):
        return {type(None)}
    if tp is Any:
        return {object}
    return {tp} if isinstance(tp, type) else set()


def _takes_free_text(tp: Any) -> bool:
    """Whether a field accepts any string (`str`, `str | None`), not just a fixed set of words."""
    if tp is str:
        return True
    if get_origin(tp) in (Union, types.UnionType):
        return any(_takes_free_text(arg) for arg in get_args(tp))
    return False


def _type_name(tp: Any) -> str:
    """A short, user-facing name of a field type: `int`, `auto | bf16`, `list[str] | all-linear`."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        return " | ".join(arg if isinstance(arg, str) else json.dumps(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return "object"
    if tp is None or tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


def _constraints(info: FieldInfo) -> list[str]:
    """Numeric bounds of a field as text (`> 0`, `< 1`)."""
    out = []
    for meta in info.metadata:
        for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                out.append(f"{symbol} {bound}")
    return out


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(dotted path, type, default, help) of every leaf, for the README's config reference."""
    rows = []
    for path, info in leaf_fields().items():
        type_text = _type_name(info.annotation)
        bounds = _constraints(info)
        if bounds:
            type_text += f" ({', '.join(bounds)})"
        default = json.dumps(info.get_default(call_default_factory=True), ensure_ascii=False)
        rows.append((path, type_text, default, info.description or ""))
    return rows


# ---------------------------------------------------------------- suggestions and unknown keys


def _suggest(key: str, section: str | None) -> str | None:
    """The valid dotted path a misspelt `key` most likely meant.

    Inside a section: the closest key of that section first, then any section's keys or a legacy
    alias (a key put in the wrong section). At top level: section names, every section's keys and
    the legacy keys (so `learnin_rate` suggests hyperparams.learning_rate).
    """
    if section is not None:
        own = difflib.get_close_matches(key, list(sections()[section].model_fields), n=1, cutoff=0.6)
        if own:
            return f"{section}.{own[0]}"
    pool: dict[str, list[str]] = {}
    if section is None:
        for sec in sections():
            pool.setdefault(sec, []).append(sec)
    for path in leaf_fields():
        pool.setdefault(path.split(".", 1)[1], []).append(path)
    for legacy, path in LEGACY_KEYS.items():
        if legacy in sections():
            continue
        pool.setdefault(legacy, [])
        if path not in pool[legacy]:
            pool[legacy].append(path)
    match = difflib.get_close_matches(key, list(pool), n=1, cutoff=0.6)
    if not match:
        return None
    return " or ".join(pool[match[0]])


def _unknown_line(path: str, section: str | None) -> str:
    """One line naming an unknown key, where it is, and the closest valid key."""
    parts = path.split(".")
    key = path[len(section) + 1 :] if section else parts[0]
    where = f"in section '{section}'" if section else "at top level"
    line = f"unknown key '{key}' {where} ({path})"
    suggestion = _suggest(key, section)
    if suggestion and not section and len(parts) > 1 and suggestion in sections():
        suggestion = ".".join([suggestion, *parts[1:]])  # --set profil.name=x -> profile.name
    if suggestion:
        return f"{line}: did you mean {suggestion}?"
    if section:
        return f"{line}; valid keys in {section}: {', '.join(sections()[section].model_fields)}"
    return f"{line}; valid sections: {', '.join(sections())}"


def _unknown_error(origin: str, lines: list[str]) -> ConfigError:
    if len(lines) == 1:
        message = f"{origin}: {lines[0]}"
    else:
        message = f"{origin}: {len(lines)} unknown keys:\n" + "\n".join(f"  {line}" for line in lines)
    return ConfigError(
        message,
        hint="rename or remove the key(s); `trainerd config show` lists every valid key with its value",
    )


# ---------------------------------------------------------------- reading the file


def read_config_bytes(path: Path) -> bytes:
    """The raw bytes of a config file, or a ConfigError saying why they cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}",
            hint="check the path; without a config file trainerd uses the defaults",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}", hint="point at the JSON file") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror or exc}", hint="check the file's permissions"
        ) from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_config_bytes(raw: bytes, origin: Path | str) -> dict[str, Any]:
    """Parse a config file's bytes as a JSON object; duplicate keys are an error (one would be ignored)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{origin}: not UTF-8 text (bad byte at offset {exc.start})", hint="save the file as UTF-8 JSON"
        ) from None
    if not text.strip():
        raise ConfigError(
            f"{origin}: the config file is empty", hint="write {} to use all defaults, or remove the file"
        )
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{origin}: key '{exc.key}' appears more than once in the same object",
            hint="keep one of them (JSON would silently use the last one)",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the JSON syntax at that line and column (a trailing comma, a missing quote or a "
            "comment is the usual cause)",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: the top level must be a JSON object {{...}}, got {_json_kind(data)}",
            hint='wrap the settings in an object, e.g. {"hyperparams": {"batch_size": 4}}',
        )
    return data


def read_config_json(path: Path) -> dict[str, Any]:
    """Read and parse a config file into its top-level JSON object."""
    return parse_config_bytes(read_config_bytes(path), path)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "an object"


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- legacy keys


def _legacy_value(key: str, value: Any) -> Any:
    """Translate a legacy value to its nested meaning (old max_steps used -1/0 for 'no limit')."""
    if key == "max_steps" and isinstance(value, (int, float)) and not isinstance(value, bool) and value in (-1, 0):
        return None
    return value


def _is_legacy(key: str, value: Any) -> bool:
    if key == "profile":
        return isinstance(value, str)
    return key in LEGACY_KEYS


def fold_file(raw: Mapping[str, Any], origin: Path | str) -> FoldedFile:
    """Check a file's keys and read its legacy flat keys into their nested place.

    Nested values win over legacy ones; among aliases of one setting the first in LEGACY_KEYS
    wins. Raises ConfigError for unknown keys (all of them at once) and for sections that are
    not objects.
    """
    section_models = sections()
    unknown: list[str] = []
    data: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for key, value in raw.items():
        if _is_legacy(key, value):
            continue
        if key not in section_models:
            unknown.append(_unknown_line(key, None))
            continue
        if not isinstance(value, dict):
            extra = " or a profile name string" if key == "profile" else ""
            raise ConfigError(
                f"{origin}: '{key}' must be an object of settings{extra}, got {_json_kind(value)} ({_show(value)})",
                hint=f'write it as "{key}": {{"setting": value, ...}}',
            )
        for sub in value:
            if sub not in section_models[key].model_fields:
                unknown.append(_unknown_line(f"{key}.{sub}", key))
        data[key] = dict(value)
        for sub in value:
            sources[f"{key}.{sub}"] = "file"
    if unknown:
        raise _unknown_error(str(origin), unknown)

    folded = FoldedFile(data=data, sources=sources)
    legacy_present = [key for key in LEGACY_KEYS if key in raw and _is_legacy(key, raw[key])]
    for key in legacy_present:
        path = LEGACY_KEYS[key]
        section, sub = path.split(".", 1)
        value = _legacy_value(key, raw[key])
        folded.legacy[key] = path
        target = data.setdefault(section, {})
        if sub in target:
            folded.conflicts.append(LegacyConflict(key, raw[key], path, target[sub], sources[path]))
            continue
        target[sub] = value
        sources[path] = f"file (legacy key '{key}')"
    # Report legacy keys in the order the file lists them.
    folded.legacy = {key: folded.legacy[key] for key in raw if key in folded.legacy}
    return folded


def legacy_warnings(folded: FoldedFile, origin: Path | str) -> list[str]:
    """The one deprecation warning naming every legacy key, plus one line per conflict."""
    if not folded.legacy:
        return []
    moved = ", ".join(f"{key} -> {path}" for key, path in folded.legacy.items())
    lines = [
        f"{origin}: legacy flat config keys are deprecated: {', '.join(folded.legacy)} (read as {moved}); "
        f"run `trainerd config migrate {origin}` to rewrite the file nested (a backup is kept)"
    ]
    for conflict in folded.conflicts:
        lines.append(
            f"{origin}: legacy key '{conflict.legacy_key}' = {_show(conflict.legacy_value)} is ignored: "
            f"{conflict.path} = {_show(conflict.kept_value)} is also set ({conflict.kept_from}) and wins"
        )
    return lines


# ---------------------------------------------------------------- command line


def _split_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError(f"--set {text!r}: missing '=' (expected section.key=value)", hint=_SET_HINT)
    parts = key.split(".")
    if not key or any(not part.strip() or re.search(r"\s", part) for part in parts):
        raise ConfigError(f"--set {text!r}: '{key}' is not a dotted key like hyperparams.batch_size", hint=_SET_HINT)
    return key, value


def _parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, true/false, null, lists, objects), else the text itself.

    Plain text is stripped (`key = value` reads naturally); quote it as JSON to keep outer spaces.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_override(text: str) -> tuple[str, Any]:
    """Split `section.key=value` into the dotted path and its value (JSON when it parses, else text).

    `true`/`false`/`null`, numbers and `[...]`/`{...}` become their JSON values; anything else is a
    string. A bad form (no `=`, empty key part) is a ConfigError with the expected syntax as hint.
    """
    key, value = _split_override(text)
    return key, _parse_value(value)


def _source_after(prev: str, source: str) -> str:
    """Source label of a dict leaf that a command-line entry merged into."""
    if prev == "default":
        return source
    if source in prev:
        return prev
    return f"{prev} + {source}"


def _apply(
    data: dict[str, dict[str, Any]],
    sources: dict[str, str],
    parts: list[str],
    value: Any,
    source: str,
    origin: str,
    raw_text: str | None = None,
) -> None:
    """Set one command-line value into the nested data, checking the path like a file key."""
    section_models = sections()
    section = parts[0]
    if section not in section_models:
        raise _unknown_error(origin, [_unknown_line(".".join(parts), None)])
    fields = section_models[section].model_fields
    if len(parts) == 1:
        if not isinstance(value, dict):
            raise ConfigError(
                f"{origin}: '{section}' is a section, not a single value",
                hint=f"set one of its keys, e.g. {section}.{next(iter(fields))}=VALUE",
            )
        for sub, sub_value in value.items():
            _apply(data, sources, [section, sub], sub_value, source, origin)
        return
    key = parts[1]
    if key not in fields:
        raise _unknown_error(origin, [_unknown_line(f"{section}.{key}", section)])
    path = f"{section}.{key}"
    info = fields[key]
    target = data.setdefault(section, {})
    if len(parts) > 2:
        if dict not in _base_types(info.annotation):
            raise ConfigError(
                f"{origin}: {path} is a single value and has no key '{parts[2]}'", hint=f"write {path}=VALUE"
            )
        current = target.get(key)
        if not isinstance(current, dict):
            current = copy.deepcopy(info.get_default(call_default_factory=True)) or {}
        node = current
        for part in parts[2:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
        target[key] = current
        sources[path] = _source_after(sources.get(path, "default"), source)
        return
    if (
        raw_text is not None
        and value is not None
        and not isinstance(value, str)
        and _takes_free_text(info.annotation)
        and type(value) not in _base_types(info.annotation)
    ):
        value = raw_text.strip()  # e.g. model.revision=1234 is the text "1234", not a number
    target[key] = value
    sources[path] = source


def _flag_label(path: str) -> str:
    return "flag " + FLAG_NAMES.get(path, "--" + path.rsplit(".", 1)[-1].replace("_", "-"))


# ---------------------------------------------------------------- validation


def _error_fragment(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    fixed = {
        "int_type": "a whole number",
        "int_parsing": "a whole number",
        "int_from_float": "a whole number",
        "float_type": "a number",
        "float_parsing": "a number",
        "finite_number": "a finite number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string",
        "list_type": "a list",
        "dict_type": "an object",
        "model_type": "an object",
    }
    if kind in fixed:
        return f"must be {fixed[kind]}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    msg = str(err["msg"])
    return "must be " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg


def validation_lines(
    exc: ValidationError, data: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str]
) -> list[str]:
    """Short readable lines for pydantic's errors: `path = value (source): must be ...`."""
    fields = leaf_fields()
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        path = ".".join(loc[:2])
        if path in fields and len(loc) > 2:
            union = any(not part.isdigit() for part in loc[2:])
            if not union:
                path += "".join(f"[{part}]" for part in loc[2:])
        grouped.setdefault(path or "config", []).append(err)
    lines = []
    for path, errs in grouped.items():
        leaf = path.split("[", 1)[0]
        if leaf not in fields:
            fragments = dict.fromkeys(_error_fragment(err) for err in errs)
            lines.append(f"{path}: {'; '.join(fragments)}")
            continue
        section, key = leaf.split(".", 1)
        value = errs[0]["input"] if "[" in path else data.get(section, {}).get(key, errs[0]["input"])
        source = sources.get(leaf, "default")
        if len(errs) > 1 and "[" not in path:
            what = f"must be {_type_name(fields[leaf].annotation)}"  # a union: name the whole type
        else:
            what = _error_fragment(errs[0])
        lines.append(f"{path} = {_show(value)} (from {source}): {what}")
    return lines


def build_config(
    data: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str], origin: str = "config"
) -> TrainerdConfig:
    """Validate nested data into a TrainerdConfig, translating pydantic errors into a ConfigError."""
    try:
        return TrainerdConfig.model_validate(data)
    except ValidationError as exc:
        lines = validation_lines(exc, data, sources)
        if len(lines) == 1:
            message = f"invalid config ({origin}): {lines[0]}"
        else:
            message = f"invalid config ({origin}):\n" + "\n".join(f"  {line}" for line in lines)
        raise ConfigError(
            message, hint="change the value(s) in the config file or with --set section.key=value"
        ) from None


# ---------------------------------------------------------------- the entry point


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Load the effective config: defaults < file < `--set` overrides < dedicated flags.

    `flags` maps dotted paths to values from dedicated CLI options (`{"lora.enabled": True}`);
    a None value means the flag was not given and is skipped (use `--set key=null` for null).
    Warnings (legacy keys, conflicts) go to the `trainerd.config` logger and to `.warnings`.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    sources = dict.fromkeys(leaf_fields(), "default")
    data: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    file_path: Path | None = None
    origin = "defaults"
    if path is not None:
        file_path = Path(path).expanduser()
        origin = str(file_path)
        folded = fold_file(read_config_json(file_path), file_path)
        data = folded.data
        sources.update(folded.sources)
        warnings.extend(legacy_warnings(folded, file_path))

    set_by_override: dict[str, Any] = {}
    for text in overrides:
        key, raw_value = _split_override(text)
        value = _parse_value(raw_value)
        _apply(data, sources, key.split("."), value, "--set", f"--set {text}", raw_value)
        set_by_override[key] = value
    for key, value in (flags or {}).items():
        if value is None:
            continue
        label = _flag_label(key)
        if key in set_by_override and set_by_override[key] != value:
            warnings.append(f"{label} = {_show(value)} overrides --set {key}={_show(set_by_override[key])}")
        _apply(data, sources, key.split("."), value, label, label)

    for line in warnings:
        log.warning(line)
    if overrides or flags:
        origin = f"{file_path} + command line" if file_path else "command line"
    config = build_config(data, sources, origin)
    return LoadedConfig(config=config, sources=sources, warnings=warnings, path=file_path)


# ---------------------------------------------------------------- output


def config_to_dict(cfg: TrainerdConfig) -> dict[str, Any]:
    """The config as a nested JSON-ready dict, in schema order."""
    return cfg.model_dump(mode="json")


def format_config_show(loaded: LoadedConfig) -> str:
    """Every leaf as `section.key = value   (source)`, grouped by section, for `trainerd config show`."""
    where = f"file {loaded.path}" if loaded.path else "no config file (defaults)"
    lines = [f"# trainerd config from {where}", "# precedence: default < file < --set < flags", ""]
    values = config_to_dict(loaded.config)
    rows = [
        (f"{section}.{key}", json.dumps(value, ensure_ascii=False), loaded.sources.get(f"{section}.{key}", "default"))
        for section, items in values.items()
        for key, value in items.items()
    ]
    key_width = max(len(row[0]) for row in rows)
    value_width = min(max(len(row[1]) for row in rows), 40)
    current = None
    for path, value, source in rows:
        section = path.split(".", 1)[0]
        if section != current:
            if current is not None:
                lines.append("")
            lines.append(f"[{section}]")
            current = section
        lines.append(f"{path.ljust(key_width)} = {value.ljust(value_width)}   ({source})")
    if loaded.warnings:
        lines.append("")
        lines.extend(f"# warning: {warning}" for warning in loaded.warnings)
    return "\n".join(lines) + "\n"
