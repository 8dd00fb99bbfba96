"""Signed join tokens: ``hdx1.<payload>.<signature>``, HMAC-SHA256 over the payload.

The payload is base64url JSON ``{"jti", "sub", "role", "iat", "exp"}``: a unique id (for
revocation), the user's name, the role (``view`` watches, ``control`` may also drive, ``admin``
reads the session list and dashboard), and issue/expiry times in Unix seconds. The standard
library signs and checks it; no JWT dependency (and no algorithm field to confuse).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, cast, get_args

from hdx.errors import HdxError

Role = Literal["view", "control", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "hdx1"
MAX_TOKEN_CHARS = 1024
_USER = re.compile(r"[\w.@+-]{1,64}")
_ID = re.compile(r"[0-9a-f]{16,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(HdxError, ValueError):
    """A token was refused; ``reason`` says why in words (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified token says."""

    id: str
    user: str
    role: Role
    issued_at: int
    expires_at: int

    @property
    def can_control(self) -> bool:
        """May this token's holder inject input (given the floor)?"""
        return self.role == "control"


def check_user(user: str) -> str:
    """A user name a token may carry: 1-64 letters, digits and ``._@+-``."""
    if not _USER.fullmatch(user):
        raise TokenError("the user name must be 1-64 letters, digits or . _ @ + -")
    return user


def mint(secret: bytes, role: Role, ttl_s: float, user: str, now: float | None = None) -> str:
    """A new signed token for ``user`` with ``role``, valid for ``ttl_s`` seconds."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if not 0 < ttl_s <= 366 * 86400:
        raise TokenError("the lifetime must be between 1 second and 366 days")
    issued = int(time.time() if now is None else now)
    payload = {"jti": secrets.token_hex(8), "sub": check_user(user), "role": role,
               "iat": issued, "exp": issued + max(1, round(ttl_s))}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}.{body}.{_b64(_sign(secret, body))}"


def verify(secret: bytes, text: str, now: float | None = None) -> Token:
    """The token ``text`` says, if ``secret`` signed it and it has not expired; else TokenError.

    The signature is checked before anything in the payload is believed, in constant time.
    """
    if len(text) > MAX_TOKEN_CHARS:
        raise TokenError("the token is malformed (too long)")
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("the token is malformed (not an hdx1 token)")
    _, body, signature = parts
    try:
        given = _unb64(signature)
    except ValueError:
        raise TokenError("the token is malformed (bad signature encoding)") from None
    try:  # before signing: only base64url (ASCII) text is signed, never a lone surrogate
        payload = _unb64(body)
    except ValueError:
        raise TokenError("the token is malformed (bad payload encoding)") from None
    if not hmac.compare_digest(given, _sign(secret, body)):
        raise TokenError("the token's signature is not valid for this server")
    try:
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TokenError("the token is malformed (bad payload)") from None
    token = _claims(claims)
    moment = time.time() if now is None else now
    if moment >= token.expires_at:
        raise TokenError("the token has expired; ask for a new link")
    return token


def _claims(claims: object) -> Token:
    if not isinstance(claims, dict):
        raise TokenError("the token is malformed (payload is not an object)")
    jti, sub, role = claims.get("jti"), claims.get("sub"), claims.get("role")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (isinstance(jti, str) and _ID.fullmatch(jti) and isinstance(sub, str)
            and _USER.fullmatch(sub) and role in ROLES
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40
                    for v in (iat, exp))):
        raise TokenError("the token is malformed (missing or invalid claims)")
    return Token(jti, sub, cast(Role, role), cast(int, iat), cast(int, exp))


def _sign(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: only the one spelling :func:`_b64` writes, so a
    signature's unused low bits cannot be flipped to make a second valid token."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    if _b64(raw) != text:
        raise ValueError("not the canonical base64url spelling")
    return raw


def parse_ttl(text: str) -> float:
    """``90s``, ``15m``, ``8h``, ``7d`` (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise TokenError(f"cannot read the lifetime {text!r}; write e.g. 90s, 15m, 8h or 7d")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[
        match.group(2)]
    if not 0 < value <= 366 * 86400:
        raise TokenError("the lifetime must be between 1 second and 366 days")
    return value
