"""Configuration: the typed schema, loading with sources and legacy keys, and file migration."""

from __future__ import annotations

from trainerd.config.load import (
    FLAG_NAMES,
    LEGACY_KEYS,
    LoadedConfig,
    config_to_dict,
    describe_fields,
    format_config_show,
    load_config,
    parse_override,
)
from trainerd.config.migrate import MigrationResult, migrate_config_file
from trainerd.config.schema import TrainerdConfig

__all__ = [
    "FLAG_NAMES",
    "LEGACY_KEYS",
    "LoadedConfig",
    "MigrationResult",
    "TrainerdConfig",
    "config_to_dict",
    "describe_fields",
    "format_config_show",
    "load_config",
    "migrate_config_file",
    "parse_override",
]
