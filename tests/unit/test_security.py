"""Security building blocks one by one: tokens, the secret file, revocation, the gatekeeper's
rules, exposure, the floor, the rate limit, certificates and the audit record."""

from __future__ import annotations

import base64
import datetime
import json
import random
import stat
from pathlib import Path

import pytest
from cryptography import x509

from hdx.config import Config, load_config
from hdx.errors import ConfigError
from hdx.security import tls, tokens
from hdx.security.access import AccessDenied, Caller, Gatekeeper, bearer, tokens_required
from hdx.security.audit import AuditLog
from hdx.security.exposure import plan_exposure
from hdx.security.floor import Floor
from hdx.security.limits import TokenBucket
from hdx.security.revocations import RevocationList, revoke
from hdx.security.secret import SECRET_ENV, load_secret
from hdx.security.tls import ensure_self_signed, server_tls
from tests.conftest import with_claims

pytestmark = pytest.mark.unit
SECRET = b"k" * 32


def test_a_token_round_trips_with_every_claim() -> None:
    text = tokens.mint(SECRET, "control", 3600, "dr.ada@rad", now=1_000_000)
    token = tokens.verify(SECRET, text, now=1_000_100)
    assert (token.user, token.role, token.issued_at, token.expires_at) == \
        ("dr.ada@rad", "control", 1_000_000, 1_003_600)
    assert len(token.id) == 16 and token.can_control
    assert tokens.verify(SECRET, tokens.mint(SECRET, "view", 60, "x")).role == "view"
    other = tokens.mint(SECRET, "control", 3600, "dr.ada@rad", now=1_000_000)
    assert tokens.verify(SECRET, other, now=1_000_001).id != token.id  # unique ids


@pytest.mark.parametrize("changes", [{"role": "control"}, {"exp": 2**39}, {"sub": "mallory"},
                                     {"jti": "0" * 16}])
def test_changing_any_claim_breaks_the_signature(changes: dict[str, object]) -> None:
    text = tokens.mint(SECRET, "view", 60, "bob")
    with pytest.raises(tokens.TokenError, match="signature is not valid"):
        tokens.verify(SECRET, with_claims(text, **changes))


def test_foreign_secret_expiry_and_malformed_tokens_are_refused_with_reasons() -> None:
    text = tokens.mint(SECRET, "view", 60, "bob", now=1000)
    with pytest.raises(tokens.TokenError, match="signature is not valid"):
        tokens.verify(b"z" * 32, text, now=1001)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SECRET, text, now=1060)
    for bad, reason in [("", "not an hdx1"), ("hdx1.a", "not an hdx1"),
                        ("jwt.a.b", "not an hdx1"), ("hdx1.a.b.c", "not an hdx1"),
                        ("hdx1.e30.!!", "signature encoding"), ("x" * 5000, "too long")]:
        with pytest.raises(tokens.TokenError, match=reason):
            tokens.verify(SECRET, bad)


def test_random_strings_never_verify() -> None:
    rng = random.Random(6)
    alphabet = "abcdefghijklmnopqrstuvwxyzABC0123456789-_.=+/ "
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        with pytest.raises(tokens.TokenError):
            tokens.verify(SECRET, rng.choice(["", "hdx1."]) + text)


def test_a_signed_payload_with_bad_claims_is_still_refused() -> None:
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(b'{"jti":"00000000000000000","sub":"a","role":"root",'
                                    b'"iat":0,"exp":9}').rstrip(b"=").decode()
    sig = hmac.new(SECRET, f"hdx1.{body}".encode(), hashlib.sha256).digest()
    text = f"hdx1.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(tokens.TokenError, match="invalid claims"):
        tokens.verify(SECRET, text)


def test_mint_refuses_bad_users_roles_and_lifetimes() -> None:
    with pytest.raises(tokens.TokenError, match="user name"):
        tokens.mint(SECRET, "view", 60, "a b")
    with pytest.raises(tokens.TokenError, match="role"):
        tokens.mint(SECRET, "root", 60, "a")  # type: ignore[arg-type]
    with pytest.raises(tokens.TokenError, match="lifetime"):
        tokens.mint(SECRET, "view", 0, "a")
    assert tokens.parse_ttl("8h") == 28800 and tokens.parse_ttl("90") == 90
    assert tokens.parse_ttl("1.5d") == 129600 and tokens.parse_ttl("15m") == 900
    for bad in ("", "8 weeks", "-1h", "0s", "400d"):
        with pytest.raises(tokens.TokenError):
            tokens.parse_ttl(bad)


def test_the_secret_file_is_made_private_and_refused_when_readable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    secret = load_secret(state, {})
    path = state / "token-secret"
    assert len(secret) == 64 and load_secret(state, {}) == secret  # made once, then reused
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"can be read by others.*chmod 600"):
        load_secret(state, {})
    path.chmod(0o600)
    state.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by others"):
        load_secret(state, {})


def test_the_secret_from_the_environment_wins_and_must_be_long(tmp_path: Path) -> None:
    assert load_secret(tmp_path / "unused", {SECRET_ENV: "s" * 40}) == b"s" * 40
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ConfigError, match="at least 32"):
        load_secret(tmp_path, {SECRET_ENV: "short"})
    # The secret is never a setting (settings get printed; flags show in ps).
    assert load_config({}, environ={SECRET_ENV: "s" * 40}) == Config()


def test_revocation_is_seen_without_a_restart(tmp_path: Path) -> None:
    listing = RevocationList(tmp_path / "revoked-tokens")
    assert not listing.is_revoked("a" * 16)
    revoke(tmp_path, "a" * 16)
    revoke(tmp_path, "a" * 16)  # idempotent
    assert listing.is_revoked("a" * 16) and not listing.is_revoked("b" * 16)
    assert (tmp_path / "revoked-tokens").read_text() == "a" * 16 + "\n"
    revoke(tmp_path, "b" * 16)
    assert listing.is_revoked("b" * 16)
    with pytest.raises(ValueError, match="not a token id"):
        revoke(tmp_path, "../../etc/passwd")


def _keeper(tmp_path: Path, **settings: object) -> Gatekeeper:
    return Gatekeeper(Config(state_dir=str(tmp_path), **settings), {})  # type: ignore[arg-type]


def test_the_gatekeeper_rules(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path)
    local = Caller(None, "127.0.0.1")
    assert keeper.viewer(local).user == "local" and keeper.viewer(local).role == "control"
    assert not (tmp_path / "token-secret").exists()  # a tokenless demo creates no files
    view = tokens.mint(keeper.secret, "view", 60, "ann")
    assert keeper.viewer(Caller(f"Bearer {view}", "127.0.0.1")).role == "view"
    with pytest.raises(AccessDenied) as denied:
        keeper.viewer(Caller("Bearer hdx1.x.y", "127.0.0.1"))  # a given token is checked
    assert denied.value.status == 401
    with pytest.raises(AccessDenied, match="Bearer") as denied:
        keeper.viewer(Caller(f"Basic {view}", "127.0.0.1"))
    with pytest.raises(AccessDenied, match="not in the address"):
        keeper.viewer(Caller(None, "127.0.0.1", token_in_query=True))
    with pytest.raises(AccessDenied, match="token is required"):
        keeper.viewer(Caller(None, "127.0.0.1", proxied=True))  # a proxy relays someone else
    with pytest.raises(AccessDenied, match="token is required"):
        keeper.viewer(Caller(None, "10.1.2.3"))
    admin = tokens.mint(keeper.secret, "admin", 60, "ops")
    with pytest.raises(AccessDenied, match="admin token") as denied:
        keeper.viewer(Caller(f"Bearer {admin}", "10.1.2.3"))
    assert denied.value.status == 403
    assert keeper.admin(Caller(f"Bearer {admin}", "10.1.2.3")).role == "admin"
    assert keeper.admin(local).role == "admin"
    with pytest.raises(AccessDenied, match="needs an admin token") as denied:
        keeper.admin(Caller(f"Bearer {view}", "127.0.0.1"))
    assert denied.value.status == 403
    token = tokens.verify(keeper.secret, view)
    revoke(tmp_path, token.id)
    with pytest.raises(AccessDenied, match="revoked") as denied:
        keeper.viewer(Caller(f"Bearer {view}", "127.0.0.1"))
    assert denied.value.status == 403


def test_token_mode_requires_tokens_even_on_loopback(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path, auth="token")
    for caller in (Caller(None, "127.0.0.1"), Caller(None, "::1")):
        with pytest.raises(AccessDenied, match="token is required"):
            keeper.viewer(caller)
        with pytest.raises(AccessDenied):
            keeper.admin(caller)
    assert tokens_required(Config(auth="token"))
    assert tokens_required(Config(host="0.0.0.0", insecure=True))
    assert tokens_required(Config(public_url="https://ws7.example/"))
    assert not tokens_required(Config())
    assert not tokens_required(Config(host="0.0.0.0", auth="none", insecure=True))


def test_bearer_header_parsing() -> None:
    assert bearer(None) is None
    assert bearer("Bearer abc") == "abc" and bearer("bearer   abc ") == "abc"
    for bad in ("", "Bearer", "Bearer ", "Token abc", "abc"):
        with pytest.raises(AccessDenied):
            bearer(bad)


def test_exposure_beyond_loopback_needs_tls_and_tokens_or_insecure() -> None:
    assert plan_exposure(Config()).tls is False
    assert plan_exposure(Config(tls="on")).tls is True
    beyond = plan_exposure(Config(host="0.0.0.0"))
    assert beyond.tls and beyond.tokens and not beyond.warnings
    with pytest.raises(ConfigError, match="without TLS"):
        plan_exposure(Config(host="0.0.0.0", tls="off"))
    with pytest.raises(ConfigError, match="without join tokens"):
        plan_exposure(Config(host="10.0.0.5", auth="none"))
    loud = plan_exposure(Config(host="0.0.0.0", tls="off", auth="none", insecure=True))
    assert not loud.tls and not loud.tokens and len(loud.warnings) == 2
    with pytest.raises(ConfigError, match="together"):
        Config(tls_cert="c.pem")
    with pytest.raises(ConfigError, match="public_url"):
        Config(public_url="ws7.example")


def test_the_floor_rules() -> None:
    floor = Floor()
    assert floor.take_if_free("token:a", "alice") and floor.may_drive("token:a")
    assert not floor.take_if_free("token:b", "bob")  # nothing is taken silently
    assert not floor.request("token:b", "bob")
    assert floor.requests == {"token:b": "bob"}
    with pytest.raises(ValueError, match="only the person in control"):
        floor.grant("token:b", "token:b", "bob")
    floor.grant("token:a", "token:b", "bob")
    assert floor.holder == "token:b" and floor.holder_user == "bob" and not floor.requests
    assert not floor.release("token:a") and floor.release("token:b") and floor.holder is None
    assert floor.request("local", "local") and floor.may_drive("local")
    floor.request("token:a", "alice")
    assert floor.left("local") and floor.holder is None
    assert not floor.left("token:a") and not floor.requests


def test_the_token_bucket_allows_bursts_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10, 20, clock=lambda: now[0])
    assert sum(bucket.allow() for _ in range(50)) == 20
    now[0] += 1.0
    assert sum(bucket.allow() for _ in range(50)) == 10
    now[0] += 100.0
    assert sum(bucket.allow() for _ in range(50)) == 20  # never more than the burst


def test_a_self_signed_certificate_is_reused_then_renewed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = server_tls(tmp_path, "10.0.0.7", None, None)
    assert setup.self_signed and len(setup.fingerprint) == 95
    key = tmp_path / "tls" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(setup.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.0.7" in [str(n) for n in names.get_values_for_type(x509.IPAddress)]
    assert server_tls(tmp_path, "10.0.0.7", None, None).fingerprint == setup.fingerprint
    other_host = server_tls(tmp_path, "10.0.0.8", None, None).fingerprint
    assert other_host != setup.fingerprint  # it must cover the host
    assert server_tls(tmp_path, "10.0.0.8", None, None).fingerprint == other_host
    # One with less than 30 days left is made anew at the next start.
    monkeypatch.setattr(tls, "VALID_DAYS", 20)
    short = server_tls(tmp_path, "10.0.0.9", None, None)
    left = x509.load_pem_x509_certificate(short.cert_path.read_bytes()).not_valid_after_utc
    assert left - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=21)
    assert server_tls(tmp_path, "10.0.0.9", None, None).fingerprint != short.fingerprint


def test_an_operator_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path
                                                                         ) -> None:
    cert_a, _ = ensure_self_signed(tmp_path / "a", "host-a")
    _, key_b = ensure_self_signed(tmp_path / "b", "host-b")
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        server_tls(tmp_path, "x", str(cert_a), str(key_b))
    key_b.chmod(0o644)
    with pytest.raises(ConfigError, match="read by others"):
        server_tls(tmp_path, "x", str(cert_a), str(key_b))
    key_b.chmod(0o640)  # group-readable is how Debian's ssl-cert group works: allowed
    with pytest.raises(ConfigError, match="does not belong"):
        server_tls(tmp_path, "x", str(cert_a), str(key_b))
    with pytest.raises(ConfigError, match="does not exist"):
        server_tls(tmp_path, "x", str(tmp_path / "none.pem"), str(key_b))


def test_audit_records_carry_identity_and_never_a_token(tmp_path: Path) -> None:
    from hdx.security.identity import Identity

    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    who = Identity("ann", "view", "ab" * 8, "10.0.0.9")
    audit.record("join", who, session="s1")
    audit.record("refused", remote="10.0.0.10", reason="the token has expired", status=401)
    audit.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert lines[0]["event"] == "join" and lines[0]["user"] == "ann"
    assert lines[0]["token_id"] == "ab" * 8 and lines[0]["remote"] == "10.0.0.9"
    assert lines[1]["status"] == 401 and lines[1]["user"] is None
    with pytest.raises(ValueError, match="unknown audit event"):
        AuditLog().record("hack")


def test_the_python_client_takes_the_token_out_of_a_join_link() -> None:
    from hdx.client.viewer import _split_token

    assert _split_token("https://h:1/#token=hdx1.a.b") == ("https://h:1/", "hdx1.a.b")
    assert _split_token("https://h:1/?monitor=right&token=hdx1.a.b") == \
        ("https://h:1/?monitor=right", "hdx1.a.b")
    assert _split_token("http://h:1/?monitor=left") == ("http://h:1/?monitor=left", None)
