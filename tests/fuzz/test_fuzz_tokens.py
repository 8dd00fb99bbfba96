"""Join tokens and the Authorization header: random strings and mangled real tokens give
TokenError (AccessDenied at the gate), nothing else, and no mangled token ever verifies."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hdx.config import Config
from hdx.security import tokens
from hdx.security.access import AccessDenied, Caller, Gatekeeper, bearer
from tests.fuzz.common import ANY_CHAR, examples, json_values

pytestmark = pytest.mark.fuzz
SECRET = b"s" * 32
NOW = 1_800_000_000.0
REAL = tokens.mint(SECRET, "view", 3600, "alice", now=NOW)
CONTROL = tokens.mint(SECRET, "control", 3600, "bob", now=NOW)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verdict(text: str, secret: bytes = SECRET) -> tokens.Token | None:
    try:
        return tokens.verify(secret, text, now=NOW)
    except tokens.TokenError as exc:
        assert exc.reason and "hdx1." not in exc.reason, "reasons never quote the token"
        return None


@settings(max_examples=examples(300))
@given(st.one_of(
    st.text(ANY_CHAR, max_size=1100),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.sampled_from(["hdx1", "hdx2", "HDX1", ""]),
              st.text(ANY_CHAR, max_size=200), st.text(ANY_CHAR, max_size=60)),
    st.builds(lambda b, c: f"hdx1.{b}.{c}", st.text(B64URL, max_size=300),
              st.text(B64URL, max_size=60)),
))
@example("hdx1.\udc80.AAAA")  # a header byte that is not UTF-8, as aiohttp hands it over
@example("hdx1.é." + REAL.split(".")[2])
@example("hdx1.A.A")  # base64 of an impossible length
def test_random_strings_are_refused(text: str) -> None:
    assert verdict(text) is None


# -- mangled real tokens ---------------------------------------------------------------------------
@st.composite
def mangled(draw: st.DrawFn) -> str:
    original = draw(st.sampled_from([REAL, CONTROL]))
    prefix, body, signature = original.split(".")
    how = draw(st.sampled_from(["char", "bit in payload", "bit in signature", "swap",
                                "re-encoded claims", "truncate", "padding", "other secret",
                                "splice"]))
    if how == "char":
        text = original
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.characters(codec="ascii")) + text[at + 1:]
    elif how in ("bit in payload", "bit in signature"):
        raw = bytearray(unb64(body if how == "bit in payload" else signature))
        bit = draw(st.integers(0, len(raw) * 8 - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
        part = b64(bytes(raw))
        text = f"{prefix}.{part}.{signature}" if how == "bit in payload" else \
            f"{prefix}.{body}.{part}"
    elif how == "swap":
        parts = [prefix, body, signature]
        order = draw(st.permutations(range(3)))
        text = ".".join(parts[i] for i in order)
    elif how == "re-encoded claims":
        claims: dict[str, Any] = json.loads(unb64(body))
        field = draw(st.sampled_from(["role", "exp", "sub", "iat", "jti"]))
        claims[field] = draw(st.one_of(st.sampled_from(["admin", "control", "view"]),
                                       st.integers(0, 2**41), json_values(4)))
        pretty = draw(st.booleans())
        text = f"{prefix}.{b64(json.dumps(claims, indent=1 if pretty else None).encode())}." \
            f"{signature}"
    elif how == "truncate":
        text = original[:draw(st.integers(0, len(original) - 1))]
    elif how == "padding":
        part = draw(st.sampled_from(["body", "signature"]))
        pad = draw(st.sampled_from(["=", "==", " ", "\n", "A"]))
        text = f"{prefix}.{body + pad}.{signature}" if part == "body" else \
            f"{prefix}.{body}.{signature + pad}"
    elif how == "other secret":
        text = tokens.mint(b"t" * 32, "admin", 3600, "mallory", now=NOW)
    else:  # the payload of one genuine token with the signature of the other
        other = CONTROL if original == REAL else REAL
        text = f"{prefix}.{body}.{other.split('.')[2]}"
    return text


def _last_char_variants(token: str) -> list[str]:
    """Other spellings of the signature's last base64 character."""
    return [token[:-1] + c for c in B64URL if c != token[-1]]


SAME_BYTES = [t for t in _last_char_variants(REAL)
              if unb64(t.split(".")[2]) == unb64(REAL.split(".")[2])]
"""The 32-byte signature leaves 2 bits of its last character unused: 3 other spellings decode
to the same bytes, and verified until the decoder insisted on the canonical one."""


@settings(max_examples=examples(400))
@given(mangled())
@example(SAME_BYTES[0])
@example(SAME_BYTES[-1])
def test_no_mangled_token_verifies(text: str) -> None:
    got = verdict(text)
    if text in (REAL, CONTROL):
        assert got is not None
    else:
        assert got is None, f"a mangled token verified: {got}"


def test_every_spelling_of_the_signature_but_one_is_refused() -> None:
    assert len(SAME_BYTES) == 3
    assert [t for t in _last_char_variants(REAL) if verdict(t)] == []
    assert verdict(REAL) is not None


# -- the Authorization header ----------------------------------------------------------------------
HEADER_VALUES = st.one_of(
    st.text(ANY_CHAR, max_size=200),
    st.builds(lambda scheme, gap, token: f"{scheme}{gap}{token}",
              st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer:", "", "Bearer\t"]),
              st.sampled_from(["", " ", "  ", "\t", " \u00a0"]),
              st.one_of(st.text(ANY_CHAR, max_size=100), st.just(REAL), mangled())),
)


@settings(max_examples=examples(300))
@given(HEADER_VALUES | st.none())
@example("Bearer \udcff")
def test_bearer_gives_a_token_or_access_denied(value: str | None) -> None:
    try:
        token = bearer(value)
    except AccessDenied as exc:
        assert exc.status == 401 and exc.reason
        return
    assert value is None or (token and token == token.strip() and token in value)


@pytest.fixture(scope="module")
def gatekeeper(tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    state: Path = tmp_path_factory.mktemp("hdx-state")
    keeper = Gatekeeper(Config(state_dir=str(state)), {})
    keeper._secret = SECRET  # the tokens above were signed with it
    return keeper


@settings(max_examples=examples(200))
@given(HEADER_VALUES, st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "", "garbage"]),
       st.booleans(), st.booleans())
@example("Bearer hdx1.\udc80.AAAA", "127.0.0.1", False, False)
def test_the_gate_admits_or_denies_nothing_else(gatekeeper: Gatekeeper, value: str,
                                               remote: str, in_query: bool,
                                               proxied: bool) -> None:
    caller = Caller(authorization=value, remote=remote, token_in_query=in_query,
                    proxied=proxied)
    for check in (gatekeeper.identify, gatekeeper.viewer, gatekeeper.admin):
        try:
            identity = check(caller)
        except AccessDenied as exc:
            assert exc.status in (401, 403) and exc.reason
            continue
        # Only a genuine token (the header's, verbatim) gets an identity from a header.
        assert bearer(value) in (REAL, CONTROL), (value, identity)
