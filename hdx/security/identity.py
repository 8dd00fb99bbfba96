"""Who a request or session belongs to, as far as hdx could tell."""

from __future__ import annotations

from dataclasses import dataclass

from hdx.security.tokens import Role

LOCAL_USER = "local"
"""The name of a tokenless viewer on a loopback server (the person at this machine)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A viewer: the token's user and role, or the local user (``token_id`` None)."""

    user: str
    role: Role
    token_id: str | None
    remote: str
    """The peer's address as the HTTP server saw it."""

    @property
    def person(self) -> str:
        """One key per person: the token (or ``local``), so one person's windows share the
        input floor while a colleague's token does not."""
        return f"token:{self.token_id}" if self.token_id else LOCAL_USER

    @property
    def can_control(self) -> bool:
        """May inject input (given the floor)."""
        return self.role == "control"

    def audit_fields(self) -> dict[str, str | None]:
        """What an audit record says about this identity (never the token itself)."""
        return {"user": self.user, "role": self.role, "token_id": self.token_id,
                "remote": self.remote}
