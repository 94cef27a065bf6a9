"""Config loading: precedence, sources, legacy flat keys, and the errors a user sees."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from trainerd.config import (
    LEGACY_KEYS,
    TrainerdConfig,
    config_to_dict,
    describe_fields,
    format_config_show,
    load_config,
    parse_override,
)
from trainerd.config.load import leaf_fields
from trainerd.errors import ConfigError


def write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def get(cfg: TrainerdConfig, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


# ---------------------------------------------------------------- defaults, file, precedence


def test_defaults_without_file() -> None:
    loaded = load_config()
    assert loaded.config == TrainerdConfig()
    assert loaded.path is None
    assert loaded.warnings == []
    assert set(loaded.sources) == set(leaf_fields())
    assert set(loaded.sources.values()) == {"default"}


def test_nested_file_values_and_sources(tmp_path: Path) -> None:
    path = write(tmp_path, {"hyperparams": {"batch_size": 4}, "model": {"path": "/models/m"}, "lora": {}})
    loaded = load_config(path)
    assert loaded.config.hyperparams.batch_size == 4
    assert loaded.config.model.path == "/models/m"
    assert loaded.path == path
    assert loaded.sources["hyperparams.batch_size"] == "file"
    assert loaded.sources["model.path"] == "file"
    assert loaded.sources["hyperparams.learning_rate"] == "default"
    assert loaded.warnings == []


def test_precedence_default_file_set_flag(tmp_path: Path) -> None:
    path = write(tmp_path, {"hyperparams": {"batch_size": 4, "seed": 1, "max_steps": 10}})
    loaded = load_config(
        path,
        overrides=["hyperparams.seed=2", "hyperparams.max_steps=20"],
        flags={"hyperparams.max_steps": 30, "lora.enabled": True, "model.path": None},
    )
    cfg = loaded.config
    assert cfg.hyperparams.learning_rate == 2e-5  # default
    assert cfg.hyperparams.batch_size == 4  # file
    assert cfg.hyperparams.seed == 2  # --set over file
    assert cfg.hyperparams.max_steps == 30  # flag over --set
    assert cfg.lora.enabled is True
    assert cfg.model.path is None  # a None flag means "not given"
    assert loaded.sources["hyperparams.batch_size"] == "file"
    assert loaded.sources["hyperparams.seed"] == "--set"
    assert loaded.sources["hyperparams.max_steps"] == "flag --max-steps"
    assert loaded.sources["lora.enabled"] == "flag --lora"
    assert loaded.sources["model.path"] == "default"
    assert any("--max-steps" in w and "overrides --set" in w for w in loaded.warnings)


def test_flag_label_falls_back_to_dashed_key() -> None:
    loaded = load_config(flags={"hyperparams.learning_rate": 1e-3})
    assert loaded.sources["hyperparams.learning_rate"] == "flag --learning-rate"


# ---------------------------------------------------------------- legacy keys

LEGACY_SAMPLES: dict[str, tuple[Any, Any]] = {
    "batch_size": (3, 3),
    "gradient_accumulation": (4, 4),
    "gradient_accumulation_steps": (5, 5),
    "learning_rate": (1e-4, 1e-4),
    "max_length": (512, 512),
    "num_epochs": (2, 2.0),
    "max_steps": (100, 100),
    "warmup_steps": (7, 7),
    "save_steps": (50, 50),
    "save_total_limit": (3, 3),
    "logging_steps": (2, 2),
    "weight_decay": (0.1, 0.1),
    "seed": (9, 9),
    "use_gradient_checkpointing": (False, False),
    "model_path": ("/models/a", "/models/a"),
    "base_model": ("/models/b", "/models/b"),
    "model_name": ("org/model", "org/model"),
    "precision": ("bf16", "bf16"),
    "attn_implementation": ("sdpa", "sdpa"),
    "profile": ("emoji_think", "emoji_think"),
    "system_prompt": ("Today is {date}.", "Today is {date}."),
    "use_lora": (True, True),
    "lora_r": (8, 8),
    "lora_alpha": (16, 16),
    "lora_dropout": (0.1, 0.1),
    "lora_target_modules": (["q_proj", "v_proj"], ["q_proj", "v_proj"]),
}


def test_samples_cover_every_legacy_key() -> None:
    assert set(LEGACY_SAMPLES) == set(LEGACY_KEYS)


@pytest.mark.parametrize("key", sorted(LEGACY_KEYS))
def test_each_legacy_key_fills_its_nested_place(tmp_path: Path, key: str) -> None:
    value, expected = LEGACY_SAMPLES[key]
    loaded = load_config(write(tmp_path, {key: value}))
    target = LEGACY_KEYS[key]
    assert get(loaded.config, target) == expected
    assert loaded.sources[target] == f"file (legacy key '{key}')"
    assert len(loaded.warnings) == 1 and f"{key}" in loaded.warnings[0]


@pytest.mark.parametrize("value", [-1, 0])
def test_legacy_max_steps_minus_one_or_zero_means_no_limit(tmp_path: Path, value: int) -> None:
    loaded = load_config(write(tmp_path, {"max_steps": value}))
    assert loaded.config.hyperparams.max_steps is None


def test_one_deprecation_warning_names_all_legacy_keys_and_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path, {"batch_size": 2, "learning_rate": 1e-4, "use_lora": True, "lora_r": 4, "profile": "regime3"}
    )
    with caplog.at_level(logging.WARNING, logger="trainerd.config"):
        loaded = load_config(path)
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    for key in ("batch_size", "learning_rate", "use_lora", "lora_r", "profile"):
        assert key in warning
    assert str(path) in warning
    assert f"trainerd config migrate {path}" in warning
    logged = [r for r in caplog.records if r.name == "trainerd.config" and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in logged] == loaded.warnings
    assert loaded.config.lora.enabled and loaded.config.lora.r == 4
    assert loaded.config.profile.name == "regime3"


def test_nested_value_wins_over_legacy_with_warning(tmp_path: Path) -> None:
    path = write(tmp_path, {"batch_size": 2, "hyperparams": {"batch_size": 16}, "model_path": "/x", "model": {}})
    loaded = load_config(path)
    assert loaded.config.hyperparams.batch_size == 16
    assert loaded.sources["hyperparams.batch_size"] == "file"
    assert loaded.config.model.path == "/x"
    conflict = [w for w in loaded.warnings if "'batch_size'" in w and "wins" in w]
    assert len(conflict) == 1
    assert "hyperparams.batch_size = 16" in conflict[0]


def test_first_legacy_alias_wins(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, {"base_model": "/b", "model_path": "/a"}))
    assert loaded.config.model.path == "/a"
    assert any("'base_model'" in w and "ignored" in w for w in loaded.warnings)


def test_profile_object_is_the_section_not_legacy(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, {"profile": {"name": "regime3", "options": {"k": 1}}}))
    assert loaded.config.profile.name == "regime3"
    assert loaded.config.profile.options == {"k": 1}
    assert loaded.warnings == []


def test_invalid_legacy_value_names_the_legacy_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"batch_size": 0}))
    assert "hyperparams.batch_size = 0" in str(info.value)
    assert "legacy key 'batch_size'" in str(info.value)


# ---------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_suggests_section_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"learnin_rate": 1e-4})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "'learnin_rate'" in text and "did you mean hyperparams.learning_rate?" in text
    assert str(path) in text
    assert info.value.hint


def test_unknown_key_inside_section_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"hyperparams": {"bach_size": 4}}))
    text = str(info.value)
    assert "'bach_size'" in text and "hyperparams.bach_size" in text
    assert "did you mean hyperparams.batch_size?" in text


def test_key_in_wrong_section_suggests_its_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"data": {"learning_rate": 1e-4}}))
    assert "did you mean hyperparams.learning_rate?" in str(info.value)


def test_all_unknown_keys_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"hyperparam": {}, "lora": {"rank": 8, "zzzzzz": 1}}))
    text = str(info.value)
    assert "3 unknown keys" in text
    assert "did you mean hyperparams?" in text
    assert "lora.rank" in text
    assert "lora.zzzzzz" in text and "valid keys in lora: enabled, r" in text


def test_unknown_key_in_set_override() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["hyperparams.lerning_rate=1e-4"])
    assert "did you mean hyperparams.learning_rate?" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["hyperparam.seed=1"])
    assert "did you mean hyperparams.seed?" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["batch_size=4"])
    assert "did you mean hyperparams.batch_size?" in str(info.value)


# ---------------------------------------------------------------- invalid values


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hyperparams.learning_rate=0", ["hyperparams.learning_rate = 0", "greater than 0", "--set"]),
        ("hyperparams.learning_rate=-1e-4", ["hyperparams.learning_rate = -0.0001", "greater than 0"]),
        ("model.precision=bf32", ['model.precision = "bf32"', "'auto', 'bf16', 'fp16' or 'fp32'"]),
        ("hyperparams.batch_size=lots", ['hyperparams.batch_size = "lots"', "whole number"]),
        ("hyperparams.batch_size=2.5", ["hyperparams.batch_size = 2.5", "whole number"]),
        ("lora.enabled=maybe", ["lora.enabled", "true or false"]),
        ("lora.target_modules=5", ["lora.target_modules = 5", "list[str] | all-linear"]),
    ],
)
def test_invalid_values_are_short_readable_errors(override: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    text = str(info.value)
    for fragment in expected:
        assert fragment in text
    assert "pydantic" not in text and "Input should" not in text and "validation error" not in text
    assert info.value.hint


def test_invalid_value_in_file_names_file_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, {"model": {"attn_implementation": "flash"}, "hyperparams": {"warmup_steps": -1}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert 'model.attn_implementation = "flash" (from file)' in text
    assert "'auto', 'flash_attention_2', 'sdpa' or 'eager'" in text
    assert "hyperparams.warmup_steps = -1 (from file)" in text


def test_section_level_rule_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["data.min_trainable_ratio=0.9", "data.max_trainable_ratio=0.5"])
    assert "data: min_trainable_ratio must not exceed max_trainable_ratio" in str(info.value)


# ---------------------------------------------------------------- --set parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hyperparams.batch_size=4", ("hyperparams.batch_size", 4)),
        ("hyperparams.learning_rate=1e-4", ("hyperparams.learning_rate", 1e-4)),
        ("lora.enabled=true", ("lora.enabled", True)),
        ("lora.enabled=false", ("lora.enabled", False)),
        ("hyperparams.max_steps=null", ("hyperparams.max_steps", None)),
        ('lora.target_modules=["q_proj","v_proj"]', ("lora.target_modules", ["q_proj", "v_proj"])),
        ("model.path=/models/qwen", ("model.path", "/models/qwen")),
        ("profile.system_prompt=a=b c", ("profile.system_prompt", "a=b c")),
        (" model.path = x ", ("model.path", "x")),
        ('profile.system_prompt=" padded "', ("profile.system_prompt", " padded ")),
        ("model.path=", ("model.path", "")),
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["hyperparams.batch_size", "=4", "hyperparams..seed=1", "a b.c=1"])
def test_parse_override_bad_syntax(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert "section.key=value" in (info.value.hint or "")


def test_set_values_reach_the_config() -> None:
    cfg = load_config(
        overrides=[
            'lora.target_modules=["q_proj"]',
            "hyperparams.max_steps=null",
            "lora.enabled=true",
            "model.revision=1234",
            "profile.system_prompt=You are {name}.",
        ]
    ).config
    assert cfg.lora.target_modules == ["q_proj"]
    assert cfg.hyperparams.max_steps is None
    assert cfg.lora.enabled is True
    assert cfg.model.revision == "1234"  # a str field keeps number-looking text as text
    assert cfg.profile.system_prompt == "You are {name}."


def test_set_merges_into_dict_field_and_section_objects(tmp_path: Path) -> None:
    path = write(tmp_path, {"profile": {"options": {"a": 1}}})
    loaded = load_config(path, overrides=["profile.options.b=[1,2]", 'hyperparams={"seed": 3, "batch_size": 2}'])
    assert loaded.config.profile.options == {"a": 1, "b": [1, 2]}
    assert loaded.sources["profile.options"] == "file + --set"
    assert loaded.config.hyperparams.seed == 3 and loaded.config.hyperparams.batch_size == 2
    assert loaded.sources["hyperparams.seed"] == "--set"


def test_set_rejects_subkey_of_plain_value_and_bare_section() -> None:
    with pytest.raises(ConfigError, match="single value"):
        load_config(overrides=["hyperparams.batch_size.x=1"])
    with pytest.raises(ConfigError, match="is a section"):
        load_config(overrides=["hyperparams=4"])


# ---------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json")
    assert "not found" in str(info.value) and "nope.json" in str(info.value)
    assert info.value.hint


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "hyperparams": {"batch_size": 4,}\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:2:" in str(info.value)
    assert "invalid JSON" in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[1, 2]", "top level must be a JSON object"),
        ('"text"', "top level must be a JSON object"),
        ("   \n", "empty"),
        ('{"seed": 1, "seed": 2}', "'seed' appears more than once"),
        ('{"hyperparams": 5}', "'hyperparams' must be an object"),
        ('{"profile": null}', "'profile' must be an object of settings or a profile name string"),
    ],
)
def test_bad_file_shapes(tmp_path: Path, content: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, content))
    assert fragment in str(info.value)
    assert info.value.hint


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


# ---------------------------------------------------------------- output helpers


def test_show_lists_every_leaf_with_value_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, {"batch_size": 2, "model": {"path": "/m"}})
    loaded = load_config(path, overrides=["hyperparams.seed=5"], flags={"lora.enabled": True})
    text = format_config_show(loaded)
    assert str(path) in text
    for dotted in leaf_fields():
        assert dotted in text
    lines = {line.split(" = ")[0].strip(): line for line in text.splitlines() if " = " in line}
    assert lines["model.path"].endswith("(file)") and '"/m"' in lines["model.path"]
    assert "(file (legacy key 'batch_size'))" in lines["hyperparams.batch_size"]
    assert lines["hyperparams.seed"].endswith("(--set)")
    assert lines["lora.enabled"].endswith("(flag --lora)")
    assert lines["hyperparams.learning_rate"].endswith("(default)")
    assert "[hyperparams]" in text and "[lora]" in text
    assert "# warning:" in text and "deprecated" in text


def test_config_to_dict_is_nested_json_in_schema_order() -> None:
    cfg = load_config(overrides=['lora.target_modules=["q"]']).config
    data = config_to_dict(cfg)
    assert list(data) == list(TrainerdConfig.model_fields)
    assert list(data["hyperparams"])[:2] == ["batch_size", "gradient_accumulation"]
    assert TrainerdConfig.model_validate(json.loads(json.dumps(data))) == cfg


def test_describe_fields_covers_every_leaf() -> None:
    rows = describe_fields()
    assert [row[0] for row in rows] == list(leaf_fields())
    by_path = {row[0]: row for row in rows}
    assert by_path["hyperparams.batch_size"][1:3] == ("int (> 0)", "8")
    assert by_path["model.precision"][1] == "auto | bf16 | fp16 | fp32"
    assert by_path["lora.dropout"][1] == "float (>= 0, < 1)"
    assert by_path["hyperparams.max_steps"][2] == "null"
    assert all(row[3] for row in rows), "every field needs help text"
