"""Revoked token ids: one per line in ``<state_dir>/revoked-tokens``, appended by
``hdx token --revoke ID`` and re-read by a running server whenever the file changes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hdx.security.secret import private_dir

REVOCATIONS_FILE = "revoked-tokens"
_ID = re.compile(r"[0-9a-f]{16,32}")


def revoke(state_dir: Path, token_id: str) -> Path:
    """Add ``token_id`` to the list; returns the file. Idempotent."""
    if not _ID.fullmatch(token_id):
        raise ValueError(f"{token_id!r} is not a token id (16-32 lowercase hex digits, as "
                         "printed by hdx token)")
    path = private_dir(state_dir) / REVOCATIONS_FILE
    if token_id in RevocationList(path).ids():
        return path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as f:
        f.write(token_id + "\n")
    return path


class RevocationList:
    """The revoked ids, re-read only when the file's size or mtime changed (cheap to ask)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._ids: frozenset[str] = frozenset()

    def ids(self) -> frozenset[str]:
        """Every revoked id now."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen, self._ids = None, frozenset()
            return self._ids
        key = (info.st_mtime_ns, info.st_size)
        if key != self._seen:
            text = self.path.read_text(encoding="ascii", errors="replace")
            self._ids = frozenset(line.strip() for line in text.splitlines()
                                  if _ID.fullmatch(line.strip()))
            self._seen = key
        return self._ids

    def is_revoked(self, token_id: str) -> bool:
        """Was ``token_id`` revoked?"""
        return token_id in self.ids()
