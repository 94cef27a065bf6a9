"""Control requests from the CLI (and the monitor) to the running daemon, through files.

A client drops one command file per request into `control/commands/` (atomically, named by time so
they are handled in order); the daemon handles each at its next poll and deletes it. The daemon
owns `control/state.json` (is it paused?) and `control/request.json`, which the engine child reads
between steps (see engine/control.py), so a pause takes effect within a step or two, not at the
end of the file.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainerd.daemon.layout import BaseDir
from trainerd.errors import TrainerdError
from trainerd.files import atomic_write_json, read_json

ACTIONS = ("pause", "resume", "stop", "skip", "rollback", "snapshot")
COMMANDS_DIR = "commands"


@dataclass
class Command:
    """One request to the daemon."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    created_at: float = 0.0
    path: Path | None = None


def commands_dir(base: BaseDir) -> Path:
    return base.control / COMMANDS_DIR


def send_command(base: BaseDir, action: str, **args: Any) -> Command:
    """Queue a command for the daemon; returns it (its id shows up in the daemon log)."""
    if action not in ACTIONS:
        raise TrainerdError(f"unknown daemon command {action!r}", hint=f"use one of: {', '.join(ACTIONS)}")
    now = time.time()
    command = Command(action=action, args=args, id=uuid.uuid4().hex[:12], created_at=now)
    path = commands_dir(base) / f"{time.time_ns():020d}-{command.id}.json"
    atomic_write_json(path, {"action": action, "args": args, "id": command.id, "created_at": now})
    command.path = path
    return command


def pending_commands(base: BaseDir) -> list[Command]:
    """Commands waiting, oldest first; an unreadable file is dropped with a warning-worthy entry."""
    folder = commands_dir(base)
    if not folder.is_dir():
        return []
    commands = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = read_json(path)
            action = data["action"]
            args = data.get("args") or {}
            if action not in ACTIONS or not isinstance(args, dict):
                raise ValueError(action)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            commands.append(Command(action="invalid", args={"file": path.name}, path=path))
            continue
        commands.append(
            Command(
                action=action,
                args=args,
                id=str(data.get("id", "")),
                created_at=float(data.get("created_at", 0.0)),
                path=path,
            )
        )
    return commands


def done_with(command: Command) -> None:
    if command.path is not None:
        Path(command.path).unlink(missing_ok=True)


def read_state(base: BaseDir) -> dict[str, Any]:
    """The daemon's persistent control state ({"paused": bool, ...}); defaults when absent or damaged."""
    try:
        state = read_json(base.control_state_file)
    except (OSError, json.JSONDecodeError):
        return {"paused": False}
    return state if isinstance(state, dict) else {"paused": False}


def write_state(base: BaseDir, **changes: Any) -> dict[str, Any]:
    state = read_state(base)
    state.update(changes)
    atomic_write_json(base.control_state_file, state)
    return state


def request_engine(base: BaseDir, action: str | None) -> None:
    """Tell the running engine to pause/stop/skip at its next step (None clears the request)."""
    if action is None:
        base.request_file.unlink(missing_ok=True)
        return
    atomic_write_json(base.request_file, {"action": action, "at": time.time()})
