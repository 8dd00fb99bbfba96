"""Bad input over the real HTTP server and the real control channel; resources freed on exit."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from hdx.client.viewer import Viewer
from hdx.sources.base import InputEvent
from hdx.sources.synthetic import SyntheticDesktop
from hdx.webrtc.ice import host_addresses
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.integration


async def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(
            url + "api/offer", data=body, headers={"Content-Type": content_type}) as response:
        return response.status, await response.json(content_type=None)


async def data_channel_only_offer() -> str:
    pc = RTCPeerConnection()
    pc.createDataChannel("control")
    with host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return str(sdp)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1]", 400, "JSON object"),
        (b'{"sdp": "v=0", "type": "answer"}', 400, "'type' must be \"offer\""),
        (b'{"type": "offer"}', 400, "'sdp' must be an SDP"),
        (b'{"type": "offer", "sdp": "hello"}', 400, "'sdp' must be an SDP"),
        (b'{"type": "offer", "sdp": "v=0\\r\\nm=video 9 FOO 96\\r\\n"}', 400,
         "could not be applied"),
        (b"x" * 70000, 413, "exceeds the 65536-byte limit"),
    ],
)
async def test_bad_offers_get_a_4xx_with_a_reason(body: bytes, status: int, reason: str) -> None:
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=0)) as server:
        got_status, answer = await post(server.url, body)
        assert got_status == status
        assert reason in answer["error"]
        assert server.sessions == {}
        # The server goes on: a real viewer still connects afterwards.
        async with Viewer(server.url) as viewer:
            await viewer.next_frame()


async def test_offer_without_video_is_refused_and_freed() -> None:
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=0)) as server:
        status, answer = await post(server.url, json.dumps(
            {"type": "offer", "sdp": await data_channel_only_offer()}).encode())
        assert status == 400
        assert "no video that hdx can send" in answer["error"]
        assert server.sessions == {} and server.hub.subscriber_count == 0


async def test_malformed_control_messages_are_counted_and_dropped() -> None:
    received: list[InputEvent] = []

    class Recording(SyntheticDesktop):
        def handle_input(self, event: InputEvent) -> None:
            received.append(event)
            super().handle_input(event)

    async with running_server(Recording(640, 360, cine_seconds=0)) as server, \
            Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        for junk in ["{", "[]", '{"t": "pointer", "a": "fly", "x": 1, "y": 1}', "x" * 5000,
                     '{"t": "key", "key": "a", "code": "KeyA", "down": "yes"}']:
            viewer.control.send(junk)
        viewer.send({"t": "pointer", "a": "move", "x": 99999, "y": -4})
        viewer.send({"t": "ping", "id": 1, "ts": 5.0})
        session = next(iter(server.sessions.values()))
        await wait_for(lambda: session.stats.input_events == 1 and session.stats.pings == 1)
        assert session.stats.malformed_messages == 5
        async with aiohttp.ClientSession() as http, http.get(
                server.url + "api/sessions") as response:
            listed = (await response.json())["sessions"]
        assert [(s["id"], s["malformed_messages"], s["input_events"]) for s in listed] == [
            (session.id, 5, 1)]
        assert received[-1].x == 639 and received[-1].y == 0  # type: ignore[union-attr]
        await wait_for(lambda: any(m.get("t") == "pong" for m in viewer.report.messages))
        await viewer.next_frame()  # the session goes on


async def test_input_from_the_viewer_changes_the_desktop() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=0)
    async with running_server(source) as server, Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        before = await viewer.next_frame()
        x, y, w, h = source.layout.row_rect(4)
        viewer.send({"t": "pointer", "a": "down", "x": x + w // 2, "y": y + h // 2, "b": 0})
        viewer.send({"t": "pointer", "a": "up", "x": x + w // 2, "y": y + h // 2, "b": 0})
        await wait_for(lambda: source.selected_row == 4)
        row_before = before[y:y + h, x:x + w].astype(int)
        changes = []
        for _ in range(4):  # aiortc's receiver may first deliver a frame it was holding
            after = await viewer.next_frame()
            changes.append(abs(after[y:y + h, x:x + w].astype(int) - row_before).mean())
            if changes[-1] > 10:
                break
        assert changes[-1] > 10, f"the selected row is not highlighted: {changes}"


async def test_viewer_that_leaves_frees_everything() -> None:
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=-1)) as server:
        viewer = Viewer(server.url)
        await viewer.connect()
        await viewer.receive(5)
        session = next(iter(server.sessions.values()))
        assert server.hub.subscriber_count == 1
        await viewer.close()
        await wait_for(lambda: not server.sessions, timeout_s=10)
        await wait_for(lambda: session.track.readyState == "ended")
        assert session.track._encoder is None
        assert server.hub.subscriber_count == 0
        await wait_for(lambda: server.hub._task is None or server.hub._task.done())


async def test_peer_that_never_connects_is_closed_after_the_timeout() -> None:
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=0),
                              connect_timeout_s=1.0) as server:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        with host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        status, _ = await post(server.url, json.dumps(
            {"type": "offer", "sdp": pc.localDescription.sdp}).encode())
        await pc.close()  # never applies the answer: the server's peer can't connect
        assert status == 200 and len(server.sessions) == 1
        await wait_for(lambda: not server.sessions, timeout_s=10)
        assert server.hub.subscriber_count == 0


async def test_healthz_and_web_client_are_served() -> None:
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=0)) as server:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "healthz") as response:
                health = await response.json()
                assert health["status"] == "ok" and health["encoder"] == "libx264"
                assert (health["width"], health["height"]) == (320, 240)
            async with http.get(server.url) as response:
                assert response.status == 200
                assert '<script type="module" src="/static/main.js">' in await response.text()
                assert response.headers["Cache-Control"] == "no-store"
            for name in ("main.js", "peer.js", "video.js", "input.js", "view.js", "status.js",
                         "signalling.js", "hdx.css"):
                async with http.get(server.url + "static/" + name) as response:
                    assert response.status == 200, name
            for bad in ("../server.py", ".hidden.js", "missing.js", "x.py"):
                async with http.get(server.url + "static/" + bad) as response:
                    assert response.status == 404, bad
        await asyncio.sleep(0)


async def test_mangled_offers_never_cause_a_server_error() -> None:
    """Every line of a real offer dropped in turn, plus seeded random corruptions: each answer
    is a 200 or a 4xx with a reason, never a 5xx, and the server serves a real viewer after."""
    import random

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("control")
    with host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.split("\r\n")
    await pc.close()
    variants = ["\r\n".join(lines[:i] + lines[i + 1:]) for i in range(len(lines)) if lines[i]]
    rng = random.Random(2026)
    for _ in range(60):
        mangled = list(lines)
        i = rng.randrange(len(mangled))
        if mangled[i]:
            j = rng.randrange(len(mangled[i]))
            junk = rng.choice(["x", "", "9999999999", "-1", ":", " ", "\x00", "é"])
            mangled[i] = mangled[i][:j] + junk + mangled[i][j + 1:]
        variants.append("\r\n".join(mangled))
    # Answered offers whose peer never connects hold a session slot until connect_timeout_s:
    # room for all of them, so every status here is the offer's own.
    async with running_server(SyntheticDesktop(320, 240, cine_seconds=0),
                              connect_timeout_s=1.0, max_sessions=1024) as server:
        statuses = []
        for sdp in variants:
            status, body = await post(server.url, json.dumps({"type": "offer", "sdp": sdp})
                                      .encode())
            statuses.append(status)
            assert status == 200 or (400 <= status < 500 and body["error"]), (status, body)
        assert statuses.count(200) < len(statuses)  # the corruptions were noticed
        await wait_for(lambda: not server.sessions, timeout_s=15)  # none connected: all freed
        async with Viewer(server.url) as viewer:
            await viewer.next_frame()
