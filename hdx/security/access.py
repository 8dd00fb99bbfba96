"""Who may join, and as whom: the join-token check behind ``/api/offer`` and friends.

Rules (see docs/security.md):

- A token travels in ``Authorization: Bearer``; in a query string it is refused (URLs end up
  in proxies' logs and browser history). The page moves the link's ``#token=`` (or
  ``?token=``) into memory.
- ``auth = token``, a bind beyond loopback, a ``public_url`` or a proxied request (one with
  ``Forwarded``/``X-Forwarded-For``) need a token; a tokenless loopback caller otherwise is
  the local user, with control. A token that is given is always checked.
- 401 for a missing, malformed, forged or expired token; 403 for a revoked one or a role that
  may not do this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hdx.config import Config
from hdx.errors import HdxError
from hdx.security import tokens
from hdx.security.identity import LOCAL_USER, Identity
from hdx.security.revocations import REVOCATIONS_FILE, RevocationList
from hdx.security.secret import load_secret
from hdx.webrtc.ice import is_loopback


class AccessDenied(HdxError, PermissionError):
    """A request was refused: ``status`` (401 or 403) and ``reason`` for the answer;
    ``identity`` when a genuine token was refused (revoked, wrong role), for the audit."""

    def __init__(self, reason: str, status: int = 401, identity: Identity | None = None
                 ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.identity = identity


@dataclass(frozen=True, slots=True)
class Caller:
    """What a request tells about its sender."""

    authorization: str | None
    """The ``Authorization`` header, if any."""
    remote: str
    token_in_query: bool = False
    proxied: bool = False
    """It carried ``Forwarded`` or ``X-Forwarded-For``: a proxy relays someone else."""

    @property
    def local(self) -> bool:
        """A process on this machine, speaking for itself."""
        return is_loopback(self.remote) and not self.proxied


def tokens_required(config: Config) -> bool:
    """Does every viewer need a token (not just proxied callers)?"""
    if config.auth == "token":
        return True
    if config.auth == "none":
        return False
    return not is_loopback(config.host) or config.public_url is not None


class Gatekeeper:
    """Turns callers into identities. The secret is read on first need, so a loopback demo
    that never sees a token creates no files."""

    def __init__(self, config: Config, environ: Mapping[str, str]) -> None:
        self.config = config
        self.state_dir: Path = config.state_path(environ)
        self._environ = environ
        self._secret: bytes | None = None
        self.revocations = RevocationList(self.state_dir / REVOCATIONS_FILE)
        self.required = tokens_required(config)

    @property
    def secret(self) -> bytes:
        """The signing key (created on first use; ConfigError if unusable)."""
        if self._secret is None:
            self._secret = load_secret(self.state_dir, self._environ)
        return self._secret

    def identify(self, caller: Caller) -> Identity:
        """The caller's identity for joining a session, or AccessDenied."""
        if caller.token_in_query:
            raise AccessDenied("send the token in an 'Authorization: Bearer' header, not in "
                               "the address (addresses end up in logs and history)")
        text = bearer(caller.authorization)
        if text is None:
            if self.config.auth == "none" or (not self.required and caller.local):
                return Identity(LOCAL_USER, "control", None, caller.remote)
            raise AccessDenied("a join token is required: open the link you were given "
                               "(hdx token prints one)")
        try:
            token = tokens.verify(self.secret, text)
        except tokens.TokenError as exc:
            raise AccessDenied(exc.reason) from None
        identity = Identity(token.user, token.role, token.id, caller.remote)
        if self.revocations.is_revoked(token.id):
            raise AccessDenied("this token was revoked; ask for a new link", 403, identity)
        return identity

    def viewer(self, caller: Caller) -> Identity:
        """An identity that may watch (view or control), or AccessDenied."""
        identity = self.identify(caller)
        if identity.role == "admin":
            raise AccessDenied("an admin token reads the session list and dashboard; it "
                               "cannot join a session (ask for a view or control link)", 403,
                               identity)
        return identity

    def admin(self, caller: Caller) -> Identity:
        """An identity that may read the session list, or AccessDenied: an admin token, or a
        local caller unless ``auth = token``."""
        if caller.authorization is None and caller.local and self.config.auth != "token" \
                and not caller.token_in_query:
            return Identity(LOCAL_USER, "admin", None, caller.remote)
        identity = self.identify(caller)
        if identity.role != "admin":
            raise AccessDenied(f"this needs an admin token (yours has role {identity.role})",
                               403, identity)
        return identity

    def still_valid(self, identity: Identity) -> bool:
        """False once the identity's token was revoked (open sessions are then closed)."""
        return identity.token_id is None or not self.revocations.is_revoked(identity.token_id)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; AccessDenied for other schemes."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AccessDenied("the Authorization header must be 'Bearer <token>'")
    return value.strip()
