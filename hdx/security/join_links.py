"""``hdx token``: mint a join link, or revoke a token, for the server a config describes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdx.config import Config
from hdx.security import tokens
from hdx.security.audit import AuditLog
from hdx.security.exposure import plan_exposure
from hdx.security.revocations import revoke
from hdx.security.secret import load_secret
from hdx.webrtc.ice import is_loopback


@dataclass(frozen=True, slots=True)
class JoinLink:
    """A minted token and the URL that carries it."""

    url: str
    token: tokens.Token

    def as_json(self) -> dict[str, Any]:
        """What ``hdx token --json`` prints (the URL holds the token: treat it as a secret)."""
        t = self.token
        return {"url": self.url, "id": t.id, "user": t.user, "role": t.role,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t.expires_at)),
                "expires_in_s": t.expires_at - t.issued_at}


def server_address(config: Config) -> str:
    """The base URL users open: ``public_url``, else the scheme, host and port hdx serves."""
    if config.public_url:
        return config.public_url if config.public_url.endswith("/") else config.public_url + "/"
    scheme = "https" if plan_exposure(config).tls else "http"
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    elif is_loopback(host) and host != "localhost":
        host = host.strip("[]")
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{config.port}/"


def mint_link(config: Config, role: tokens.Role, ttl_s: float, user: str,
              environ: Mapping[str, str] | None = None) -> JoinLink:
    """Sign a token with this server's secret (made on first use) and build its link."""
    env = os.environ if environ is None else environ
    secret = load_secret(config.state_path(env), env)
    text = tokens.mint(secret, role, ttl_s, user)
    token = tokens.verify(secret, text)
    # After '#': a browser never sends the fragment, so the token stays out of the server's
    # and every proxy's access logs even on the first page load.
    link = JoinLink(f"{server_address(config)}#token={text}", token)
    _audit(config, "token_minted", token_id=token.id, user=token.user, role=role,
           expires_at=token.expires_at)
    return link


def revoke_token(config: Config, token_id: str,
                 environ: Mapping[str, str] | None = None) -> Path:
    """Add ``token_id`` to the revocation list a running server watches."""
    env = os.environ if environ is None else environ
    path = revoke(config.state_path(env), token_id)
    _audit(config, "token_revoked", token_id=token_id)
    return path


def _audit(config: Config, event: str, **fields: Any) -> None:
    audit = AuditLog(Path(config.audit_log) if config.audit_log else None)
    try:
        audit.record(event, **fields)
    finally:
        audit.close()
