"""`trainerd monitor`: one small HTTP server with a dashboard page and a JSON API over a base dir.

It reads the files the daemon writes (status, history, metrics, queue folders, versions, snapshots)
and asks the daemon to act only by writing control commands; it never imports torch or the engine,
so it starts in a blink next to (or without) a running daemon.
"""

from trainerd.monitor.auth import ensure_token, token_path
from trainerd.monitor.server import DEFAULT_HOST, DEFAULT_PORT, MAX_UPLOAD_BYTES, MonitorServer, run_monitor, serve

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_UPLOAD_BYTES",
    "MonitorServer",
    "ensure_token",
    "run_monitor",
    "serve",
    "token_path",
]
