"""Errors a user can act on: each carries what went wrong and how to fix it."""

from __future__ import annotations


class TrainerdError(Exception):
    """Base for every error trainerd reports to a user instead of a traceback."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(TrainerdError):
    """The configuration is invalid (unknown key, bad value, unreadable file)."""


class DataError(TrainerdError):
    """A data file cannot be trained on; `problems` lists each bad line."""

    def __init__(self, message: str, hint: str | None = None, problems: list | None = None) -> None:
        super().__init__(message, hint)
        self.problems = list(problems or [])


class ModelError(TrainerdError):
    """A model dir or hub id cannot be used (missing weights, bad adapter, unloadable)."""


class ProfileError(TrainerdError):
    """A profile cannot be found or rejected an example."""
