"""The monitor's access token and the bind rules that decide who must present it.

Why a token at all: the monitor can pause, stop and roll back a daemon that may have trained for
days, and anything on the machine (or the network, when bound wider) can reach a TCP port. The
token lives in the base dir with 0600 permissions, so only the user who owns the base dir can read
it; requests present it as `Authorization: Bearer <token>` (or `X-Trainerd-Token`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from trainerd.daemon.layout import BaseDir
from trainerd.errors import TrainerdError

TOKEN_FILE = "monitor.token"
TOKEN_MODE = 0o600
# A token shorter than this is guessable by a patient client; secrets.token_urlsafe(32) gives 43 chars.
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def token_path(base: BaseDir) -> Path:
    """base/monitor.token: where `trainerd init` puts the token and the monitor reads it."""
    return base.root / TOKEN_FILE


def read_token(base: BaseDir) -> str | None:
    """The stored token, or None when there is none yet (an empty or unreadable file counts as none)."""
    try:
        text = token_path(base).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        return None
    return text or None


def ensure_token(base: BaseDir) -> str:
    """The stored token, created with 0600 permissions first when missing; the mode is re-tightened if loosened."""
    path = token_path(base)
    existing = read_token(base)
    if existing is not None:
        if path.stat().st_mode & 0o077:
            os.chmod(path, TOKEN_MODE)
        return existing
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    # O_EXCL + mode at creation: the token is never readable by others, not even for an instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, TOKEN_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return token


def check_token_strength(token: str) -> str:
    """Refuse an empty or short token up front instead of serving with a guessable one."""
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise TrainerdError(
            f"the monitor token is too short ({len(token)} characters, at least {MIN_TOKEN_CHARS} needed)",
            hint="leave the token out to use the base dir's monitor.token, or pass a longer random one",
        )
    return token


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing says nothing about how much of a guess was right."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def presented_token(authorization: str | None, header_token: str | None) -> str | None:
    """The token a request carries: `Authorization: Bearer X` first, then `X-Trainerd-Token: X`."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if header_token and header_token.strip():
        return header_token.strip()
    return None


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach; '' and 0.0.0.0 (every interface) are not."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything, so treat it as exposed
