"""Find a profile by name: the built-ins, installed plugins, or a user's class by dotted path.

A user profile is a `Profile` subclass named as `package.module:ClassName` (or
`package.module.ClassName`), or published by a package under the `trainerd.profiles` entry-point
group. Every failure is a ProfileError that says what to write instead.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from trainerd.errors import ProfileError, TrainerdError
from trainerd.profiles.base import Profile
from trainerd.profiles.default import DefaultProfile
from trainerd.profiles.emoji_think import EmojiThinkProfile
from trainerd.profiles.regime3 import Regime3Profile

BUILTIN_PROFILES: dict[str, type[Profile]] = {
    "default": DefaultProfile,
    "emoji_think": EmojiThinkProfile,
    "regime3": Regime3Profile,
}

ENTRY_POINT_GROUP = "trainerd.profiles"


def available_profiles() -> list[str]:
    """Names usable as `profile.name` without a dotted path: built-ins first, then installed plugins."""
    plugins = sorted(ep.name for ep in _entry_points() if ep.name not in BUILTIN_PROFILES)
    return [*BUILTIN_PROFILES, *plugins]


def get_profile(name: str, options: Mapping[str, Any] | None = None) -> Profile:
    """An instance of the profile `name`, configured with `options` (config `profile.options`)."""
    key = name.strip()
    normalised = key.lower().replace("-", "_")
    if normalised in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[normalised](options)
    for ep in _entry_points():
        if ep.name == key:
            return _instantiate(_load_entry_point(ep), key, options)
    if ":" in key or "." in key:
        return _instantiate(_import_dotted(key), key, options)
    names = available_profiles()
    close = difflib.get_close_matches(normalised, names, n=1, cutoff=0.5)
    hint = f"use one of: {', '.join(names)}, or a dotted path 'package.module:ClassName' to your own Profile subclass"
    if close:
        hint = f"did you mean {close[0]!r}? " + hint
    raise ProfileError(f"unknown profile {name!r}", hint)


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_point(ep: EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as exc:
        raise ProfileError(
            f"profile {ep.name!r} (entry point {ep.value}) failed to load: {type(exc).__name__}: {exc}",
            "fix or reinstall the package that provides it",
        ) from exc


def _import_dotted(path: str) -> object:
    """`package.module:ClassName` or `package.module.ClassName` -> the object."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    fix = "write it as 'package.module:ClassName', with the package importable (installed or on PYTHONPATH)"
    if not module_name or not attr:
        raise ProfileError(f"profile {path!r} is not a dotted path to a class", fix)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ProfileError(f"profile {path!r}: module {exc.name or module_name!r} not found", fix) from exc
    except Exception as exc:
        raise ProfileError(
            f"profile {path!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}",
            "fix the error in that module",
        ) from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, Profile))
            hint = f"profile classes in {module_name}: {', '.join(public)}" if public else fix
            raise ProfileError(f"profile {path!r}: {module_name!r} has no {attr!r}", hint)
        obj = getattr(obj, part)
    return obj


def _instantiate(obj: object, key: str, options: Mapping[str, Any] | None) -> Profile:
    if not (isinstance(obj, type) and issubclass(obj, Profile)):
        raise ProfileError(
            f"profile {key!r} is {obj!r}, not a subclass of trainerd.profiles.base.Profile",
            "point profile.name at a class that subclasses trainerd.profiles.base.Profile",
        )
    try:
        profile = obj(options)
    except TrainerdError:
        raise
    except Exception as exc:
        raise ProfileError(
            f"profile {key!r} failed to start: {type(exc).__name__}: {exc}",
            "check profile.options and the profile's constructor",
        ) from exc
    if not profile.name:
        profile.name = key
    return profile
