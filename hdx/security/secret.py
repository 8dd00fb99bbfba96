"""The key that signs join tokens, and the private folder it lives in.

From ``HDX_TOKEN_SECRET`` (at least 32 characters; for containers whose secret store hands out
environment variables) or from ``<state_dir>/token-secret``, created on first need with 32
random bytes, mode 0600 in a 0700 folder. A secret file others can read is refused: anyone who
can read it can mint themselves a control token.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from hdx.errors import ConfigError

SECRET_ENV = "HDX_TOKEN_SECRET"
SECRET_FILE = "token-secret"
MIN_SECRET_CHARS = 32


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/hdx``, else ``~/.local/state/hdx`` (services set ``state_dir``)."""
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hdx"


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (created if missing)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the state folder {path}: {exc.strerror}; set "
                          "state_dir to a folder hdx may write") from exc
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"the state folder {path} is writable by others "
                          f"(mode {stat.filemode(mode)}); run: chmod 700 {path}")
    return path


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (from the first byte: never briefly readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def check_private(path: Path, what: str, group_ok: bool = False) -> None:
    """Refuse a file that others (and, unless ``group_ok``, the group) can read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXO if group_ok else stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the {what} {path} can be read by others "
                          f"(mode {stat.filemode(mode)}); run: chmod 600 {path}")


def load_secret(state_dir: Path, environ: Mapping[str, str]) -> bytes:
    """The token-signing key; created in ``state_dir`` if there is none yet."""
    given = environ.get(SECRET_ENV)
    if given is not None:
        if len(given) < MIN_SECRET_CHARS:
            raise ConfigError(f"{SECRET_ENV} must be at least {MIN_SECRET_CHARS} characters "
                              f"(it has {len(given)}); e.g. $(openssl rand -hex 32)")
        return given.encode()
    path = private_dir(state_dir) / SECRET_FILE
    if not path.exists():
        try:
            write_private(path, secrets.token_hex(32).encode())
        except FileExistsError:
            pass  # another hdx process made it first: use theirs
    check_private(path, "token secret")
    value = path.read_bytes().strip()
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"the token secret {path} is too short ({len(value)} bytes); delete "
                          "it to have a new one made (every issued token stops working)")
    return value
