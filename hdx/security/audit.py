"""The audit trail: one record per join, leave, refusal, revocation and change of control.

Each record has the time, the event, the user, role, token id and remote address, the session
and a reason. Records go to the ``hdx.audit`` logger (so the service's log has them) and, with
``audit_log``, to a JSON-lines file (mode 0600) for the hospital's SIEM. They never contain a
token or the secret: only the token's id, which is useless for joining.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from hdx.errors import ConfigError
from hdx.security.identity import Identity

log = logging.getLogger("hdx.audit")
EVENTS = ("join", "leave", "refused", "revoked", "input_refused", "floor_take",
          "floor_request", "floor_grant", "floor_release", "token_minted", "token_revoked")


class AuditLog:
    """Writes audit records; ``path`` None keeps them to the logger."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: Any = None
        if path is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise ConfigError(f"cannot open the audit log {path}: {exc.strerror}") from exc
            self._file = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, event: str, identity: Identity | None = None, *,
               remote: str | None = None, session: str | None = None,
               reason: str | None = None, **extra: Any) -> dict[str, Any]:
        """Write one record; returns it (tests read it back)."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        entry: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "event": event}
        fields = identity.audit_fields() if identity is not None else {
            "user": None, "role": None, "token_id": None, "remote": remote}
        entry.update(fields)
        entry.update(session=session, reason=reason)
        entry.update(extra)
        log.info("audit %s", " ".join(f"{k}={_plain(v)}" for k, v in entry.items()
                                      if k != "time" and v is not None),
                 extra={"audit": entry})
        if self._file is not None:
            with self._lock:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self._file.flush()
        return entry

    def close(self) -> None:
        """Close the file (records after this go to the logger only)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _plain(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text
