"""Access control through the real HTTP server and real aiortc viewers: every refusal path
with its status and reason, roles, the input floor, revocation, limits, headers and TLS.

Tokens are minted with the server's own secret (in a temporary state folder); viewers are the
real Python client (hdx.client.viewer), which sends them as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from hdx.client.viewer import ClientError, ServerRefused, Viewer
from hdx.config import Config
from hdx.errors import ConfigError
from hdx.security import tokens
from hdx.security.join_links import revoke_token
from hdx.server.server import HdxServer
from hdx.sources.base import InputEvent, PointerEvent
from hdx.sources.push import PushSource
from tests.conftest import running_server, wait_for, with_claims

pytestmark = pytest.mark.integration


class RecordingSource(PushSource):
    """A pushed desktop that records the input reaching it and every release of held input."""

    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self.releases = 0
        super().__init__(320, 240, on_input=self.events.append)
        frame = np.zeros((240, 320, 4), np.uint8)
        frame[..., 1] = 128
        frame[..., 3] = 255
        self.push(frame)

    def release_input(self) -> None:
        self.releases += 1


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mint(server: HdxServer, role: tokens.Role, user: str, ttl_s: float = 600) -> str:
    return tokens.mint(server.gatekeeper.secret, role, ttl_s, user)


async def request(method: str, url: str, headers: dict[str, str] | None = None,
                  body: bytes = b"{}") -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http, http.request(
            method, url, data=body if method == "POST" else None, headers=headers or {},
            ssl=False) as response:
        text = await response.text()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        return response.status, dict(response.headers), payload


@pytest.fixture
async def token_server(tmp_path: Path, audit_path: Path) -> AsyncIterator[HdxServer]:
    async with running_server(RecordingSource(), auth="token", state_dir=str(tmp_path / "state"),
                              audit_log=str(audit_path), connect_timeout_s=5.0) as server:
        yield server


async def test_every_refusal_has_its_status_and_reason_and_is_audited(
        token_server: HdxServer, audit_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = token_server
    offer = server.url + "api/offer"
    view = mint(server, "view", "ann")
    expired = tokens.mint(server.gatekeeper.secret, "control", 1, "old", now=1000)
    foreign = tokens.mint(b"f" * 32, "control", 600, "eve")
    forged = with_claims(view, role="control")
    admin = mint(server, "admin", "ops")
    revoked = mint(server, "control", "gone")
    revoke_token(server.config, tokens.verify(server.gatekeeper.secret, revoked).id)
    cases = [
        ({}, "", 401, "token is required"),
        ({"Authorization": "Basic YTpi"}, "", 401, "must be 'Bearer"),
        ({"Authorization": "Bearer not-a-token"}, "", 401, "malformed"),
        ({"Authorization": f"Bearer {forged}"}, "", 401, "signature is not valid"),
        ({"Authorization": f"Bearer {foreign}"}, "", 401, "signature is not valid"),
        ({"Authorization": f"Bearer {expired}"}, "", 401, "expired"),
        ({}, f"?token={view}", 401, "not in the address"),
        ({"Authorization": f"Bearer {revoked}"}, "", 403, "revoked"),
        ({"Authorization": f"Bearer {admin}"}, "", 403, "cannot join"),
    ]
    for headers, query, status, reason in cases:
        got, answer_headers, body = await request("POST", offer + query, headers)
        assert (got, reason in body["error"]) == (status, True), (headers, query, body)
        if status == 401:
            assert answer_headers["WWW-Authenticate"].startswith('Bearer realm="hdx"')
    got, _, body = await request("GET", server.url + "api/monitors")
    assert got == 401 and "token is required" in body["error"]
    got, _, body = await request("GET", server.url + "api/monitors",
                                 {"Authorization": f"Bearer {view}"})
    assert got == 200 and body["monitors"][0]["name"] == "screen"
    refused = [r for r in audit_records(audit_path) if r["event"] == "refused"]
    assert len(refused) == len(cases) + 1
    assert {r["status"] for r in refused} == {401, 403}
    assert all(r["remote"] == "127.0.0.1" and r["reason"] for r in refused)
    secret = server.gatekeeper.secret.decode()
    everything = caplog.text + json.dumps(audit_records(audit_path))
    for text in (view, expired, foreign, forged, admin, revoked):
        assert text not in everything and text.split(".")[2] not in everything
    assert secret not in everything
    by_token = [r for r in refused if r["token_id"]]
    assert {r["user"] for r in by_token} == {"gone", "ops"}  # who, where the token says it


async def test_a_view_session_watches_and_never_drives(
        token_server: HdxServer, audit_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = token_server
    source = server.source
    assert isinstance(source, RecordingSource)
    async with Viewer(server.url + f"?token={mint(server, 'view', 'ann')}") as viewer:
        await viewer.receive(1)
        await viewer.wait_control_open()
        assert (viewer.report.user, viewer.report.role) == ("ann", "view")
        for i in range(5):
            viewer.send({"t": "pointer", "a": "down", "x": 10 + i, "y": 10, "b": 0})
            viewer.send({"t": "key", "key": "a", "code": "KeyA", "down": True})
        viewer.send({"t": "floor", "a": "request"})
        await wait_for(lambda: server.session_summaries()[0]["input_refused"] == 11)
        await wait_for(lambda: len(viewer.report.refusals) == 2)
        summary = server.session_summaries()[0]
        assert summary["input_events"] == 0 and summary["role"] == "view"
        assert not summary["in_control"]
    assert source.events == []
    assert "view-only" in viewer.report.refusals[0]["reason"]
    refusals = [r for r in audit_records(audit_path) if r["event"] == "input_refused"]
    assert len(refusals) == 2 and {r["user"] for r in refusals} == {"ann"}  # once per kind
    assert caplog.text.count("input refused") == 1 and caplog.text.count("floor refused") == 1


async def test_the_floor_is_handed_over_explicitly(token_server: HdxServer,
                                                   audit_path: Path) -> None:
    server = token_server
    source = server.source
    assert isinstance(source, RecordingSource)
    alice, bob = mint(server, "control", "alice"), mint(server, "control", "bob")
    async with Viewer(server.url + f"?token={alice}") as a, \
            Viewer(server.url + f"?token={bob}") as b, \
            Viewer(server.url + f"?token={alice}") as a2:
        for viewer in (a, b, a2):
            await viewer.wait_control_open()
        b.send({"t": "pointer", "a": "move", "x": 9, "y": 9})  # hovering takes nothing
        await wait_for(lambda: len(source.events) == 1)
        await asyncio.sleep(0.2)
        assert server.floor.floor.holder is None
        source.events.clear()
        a.send({"t": "pointer", "a": "down", "x": 1, "y": 1, "b": 0})  # a press takes it
        await wait_for(lambda: len(source.events) == 1)
        await a.wait_floor(lambda f: f["you"] and f["holder"] == "alice")
        await b.wait_floor(lambda f: not f["you"] and f["holder"] == "alice")
        b.send({"t": "pointer", "a": "move", "x": 2, "y": 2})
        await wait_for(lambda: len(b.report.refusals) == 1)
        assert "alice is in control" in b.report.refusals[0]["reason"]
        a2.send({"t": "pointer", "a": "move", "x": 3, "y": 3})  # alice's other window
        await wait_for(lambda: len(source.events) == 2)
        b.send({"t": "floor", "a": "request"})
        floor = await a.wait_floor(lambda f: f["requests"])
        assert [r["user"] for r in floor["requests"]] == ["bob"]
        await b.wait_floor(lambda f: f["asked"])
        bob_session = floor["requests"][0]["session"]
        b.send({"t": "floor", "a": "grant", "to": bob_session})  # not his to give
        await wait_for(lambda: any(r["what"] == "floor" for r in b.report.refusals))
        releases = source.releases
        a.send({"t": "floor", "a": "grant", "to": bob_session})
        await b.wait_floor(lambda f: f["you"] and f["holder"] == "bob")
        await a.wait_floor(lambda f: not f["you"])
        assert source.releases > releases  # held keys of the previous driver released
        b.send({"t": "pointer", "a": "move", "x": 4, "y": 4})
        a.send({"t": "pointer", "a": "move", "x": 5, "y": 5})
        await wait_for(lambda: len(source.events) == 3)
        await asyncio.sleep(0.3)
        assert [(e.x, e.y) for e in source.events if isinstance(e, PointerEvent)] == \
            [(1, 1), (3, 3), (4, 4)]
        assert [s["in_control"] for s in server.session_summaries()] == [False, True, False]
        b.send({"t": "floor", "a": "release"})
        await a.wait_floor(lambda f: f["holder"] is None)
        a.send({"t": "key", "key": "a", "code": "KeyA", "down": True})  # taken by use
        await wait_for(lambda: len(source.events) == 4)
        await a.wait_floor(lambda f: f["you"])
    events = [r["event"] for r in audit_records(audit_path)]
    for event in ("floor_take", "floor_request", "floor_grant", "floor_release", "join",
                  "leave"):
        assert event in events, event


async def test_a_leaving_holder_frees_the_floor(token_server: HdxServer) -> None:
    server = token_server
    async with Viewer(server.url + f"?token={mint(server, 'control', 'bob')}") as b:
        await b.wait_control_open()
        async with Viewer(server.url + f"?token={mint(server, 'control', 'alice')}") as a:
            await a.wait_control_open()
            a.send({"t": "wheel", "x": 1, "y": 1, "dx": 0, "dy": 3})
            await b.wait_floor(lambda f: f["holder"] == "alice")
        await b.wait_floor(lambda f: f["holder"] is None, timeout_s=15)


async def test_revoking_a_token_ends_its_open_session(token_server: HdxServer,
                                                     audit_path: Path) -> None:
    server = token_server
    text = mint(server, "control", "carol")
    async with Viewer(server.url + f"?token={text}") as viewer:
        await viewer.receive(1)
        await viewer.wait_control_open()
        revoke_token(server.config, tokens.verify(server.gatekeeper.secret, text).id)
        await wait_for(lambda: viewer.report.server_bye is not None, timeout_s=5)
        assert viewer.report.server_bye == "access revoked"
        await wait_for(lambda: not server.sessions, timeout_s=5)
    with pytest.raises(ServerRefused) as refused:
        async with Viewer(server.url + f"?token={text}"):
            pass
    assert refused.value.status == 403 and "revoked" in refused.value.reason
    assert "revoked" in [r["event"] for r in audit_records(audit_path)]


async def test_limits_sessions_and_control_rate(tmp_path: Path) -> None:
    async with running_server(RecordingSource(), state_dir=str(tmp_path), max_sessions=1,
                              max_control_messages_per_s=20) as server:
        async with Viewer(server.url) as first:
            await first.wait_control_open()
            with pytest.raises(ServerRefused) as full:
                async with Viewer(server.url):
                    pass
            assert full.value.status == 503 and "max_sessions" in full.value.reason
            for i in range(400):
                first.send({"t": "ping", "id": i, "ts": 0})
            await wait_for(lambda: server.session_summaries()[0]["rate_limited"] >= 300)
            await asyncio.sleep(1.0)
            pongs = sum(1 for m in first.report.messages if m.get("t") == "pong")
            first.send({"t": "ping", "id": 999, "ts": 0})
            await wait_for(lambda: any(m.get("id") == 999 for m in first.report.messages
                                       if m.get("t") == "pong"))
            summary = server.session_summaries()[0]
            accepted = next(iter(server.sessions.values())).stats.pings - 1  # less ping 999
            assert pongs == accepted and 30 <= pongs <= 100
            # Every ping not answered was dropped by the limit (the viewer's own occasional
            # refresh requests may be dropped too: a few more).
            assert 400 - pongs <= summary["rate_limited"] <= 400 - pongs + 5
            assert summary["state"] == "connected"
            # Tile acks are never rate-limited: dropping one would leave its tiles unverified.
            await first.until_lossless(10)
            await wait_for(lambda: server.session_summaries()[0]["lossless"]["lossless"])


async def test_watermark_and_role_travel_in_hello(tmp_path: Path) -> None:
    async with running_server(RecordingSource(), state_dir=str(tmp_path), watermark=True
                              ) as server, Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        hello = next(m for m in viewer.report.messages if m.get("t") == "hello")
        assert hello["watermark"] is True and hello["user"] == "local"
        assert hello["role"] == "control" and hello["single_controller"] is True


async def test_security_headers_on_every_path_and_cors_stays_closed(tmp_path: Path) -> None:
    async with running_server(RecordingSource(), state_dir=str(tmp_path)) as server:
        for method, path in [("GET", ""), ("GET", "static/main.js"), ("GET", "healthz"),
                             ("GET", "nowhere"), ("GET", "static/..%2fserver.py"),
                             ("GET", "api/sessions"), ("OPTIONS", "api/offer"),
                             ("POST", "api/offer")]:
            status, headers, _ = await request(method, server.url + path,
                                               {"Origin": server.url.rstrip("/"),
                                                "Access-Control-Request-Method": "POST"})
            assert headers["Cache-Control"] == "no-store", path
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert "clipboard-read=()" in headers["Permissions-Policy"]
            assert not [h for h in headers if h.lower().startswith("access-control-")], path
        status, _, body = await request("POST", server.url + "api/offer",
                                        {"Origin": "https://evil.example"})
        assert status == 403 and "cross-origin" in body["error"]
        status, _, body = await request("GET", server.url + "healthz",
                                        {"Host": "evil.example:8080"})
        assert status == 403 and "loopback" in body["error"]  # DNS rebinding


async def test_a_reverse_proxy_with_public_url_is_let_through_with_tokens(tmp_path: Path
                                                                          ) -> None:
    async with running_server(RecordingSource(), state_dir=str(tmp_path),
                              public_url="https://ws7.example/") as server:
        proxied = {"Host": "ws7.example", "Origin": "https://ws7.example",
                   "X-Forwarded-For": "198.51.100.7"}
        status, _, body = await request("POST", server.url + "api/offer", proxied)
        assert status == 401 and "token is required" in body["error"]
        view = mint(server, "view", "ann")
        status, _, body = await request("POST", server.url + "api/offer",
                                        {**proxied, "Authorization": f"Bearer {view}"})
        assert status == 400 and "type" in body["error"]  # past the guard, to the offer
        status, _, _ = await request("GET", server.url + "healthz", {"Host": "other.example"})
        assert status == 403
        for headers, expected in [(proxied, 401),
                                  ({**proxied, "Authorization": f"Bearer {view}"}, 403),
                                  ({**proxied, "Authorization":
                                    f"Bearer {mint(server, 'admin', 'ops')}"}, 200)]:
            status, _, _ = await request("GET", server.url + "api/sessions", headers)
            assert status == expected


async def test_tls_with_the_generated_certificate(tmp_path: Path) -> None:
    async with running_server(RecordingSource(), state_dir=str(tmp_path), tls="on") as server:
        assert server.url.startswith("https://") and server.tls is not None
        pin = server.tls.fingerprint
        async with Viewer(server.url, tls_fingerprint=pin) as viewer:
            await viewer.receive(1)
        async with Viewer(server.url, cafile=server.tls.cert_path) as viewer:
            await viewer.receive(1)
        with pytest.raises(ClientError, match="not trusted"):
            async with Viewer(server.url):
                pass
        with pytest.raises(ClientError, match="pinned fingerprint"):
            async with Viewer(server.url, tls_fingerprint="00" * 32):
                pass
        with pytest.raises(ClientError, match="cannot reach"):
            async with Viewer(server.url.replace("https", "http"), connect_timeout_s=3):
                pass
        context = ssl.create_default_context(cafile=str(server.tls.cert_path))
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
        old = ssl.create_default_context(cafile=str(server.tls.cert_path))
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # TLS 1.2 is the minimum
            await asyncio.open_connection("127.0.0.1", server.port, ssl=old)


def test_exposure_is_refused_before_listening(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without TLS"):
        HdxServer(RecordingSource(), Config(host="0.0.0.0", tls="off", state_dir=str(tmp_path)))
    done = subprocess.run([sys.executable, "-m", "hdx", "serve", "--host", "0.0.0.0",
                           "--port", "0", "--auth", "none", "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "without join tokens" in done.stderr
    assert "--insecure" in done.stderr


def test_hdx_token_mints_links_and_revokes(tmp_path: Path) -> None:
    state = str(tmp_path / "state")

    def hdx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hdx", "token", "--state-dir", state,
                               *args], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    done = hdx("--role", "control", "--user", "dr.ada", "--ttl", "2h")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith("http://127.0.0.1:8080/#token=hdx1.")  # never sent to servers
    assert "expires" in done.stderr and "--revoke" in done.stderr
    from hdx.security.secret import load_secret

    token = tokens.verify(load_secret(Path(state), {}), url.split("token=")[1])
    assert (token.user, token.role, token.expires_at - token.issued_at) == \
        ("dr.ada", "control", 7200)
    facts = json.loads(hdx("--json", "--host", "10.1.2.3", "--port", "9443").stdout)
    assert facts["url"].startswith("https://10.1.2.3:9443/#token=")  # TLS beyond loopback
    assert facts["role"] == "view" and facts["user"] == "guest"
    proxied = json.loads(hdx("--json", "--public-url", "https://ws7.example").stdout)
    assert proxied["url"].startswith("https://ws7.example/#token=")
    revoked = hdx("--revoke", token.id)
    assert revoked.returncode == 0 and token.id in (Path(state) / "revoked-tokens").read_text()
    assert hdx("--revoke", "nonsense").returncode == 2
    assert hdx("--ttl", "forever").returncode == 2
