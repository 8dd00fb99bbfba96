"""Readiness and the SIGTERM drain: probes, refused offers, `bye` to real viewers, exit codes."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import pytest

from hdx.client.viewer import ClientError, Viewer
from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.synthetic import SyntheticDesktop
from tests.browser.conftest import ServedDesktop, serve
from tests.conftest import X264, running_server, wait_for

pytestmark = pytest.mark.integration

SHUTTING_DOWN = "server is shutting down"


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def post_offer(url: str) -> tuple[int, dict[str, Any]]:
    # Well-formed enough to pass the body checks: what is refused is the server's state.
    body = {"type": "offer", "sdp": "v=0\r\n"}
    async with aiohttp.ClientSession() as http, http.post(url + "api/offer",
                                                          json=body) as response:
        return response.status, await response.json()


class FlakySource(SyntheticDesktop):
    """A synthetic desktop with the optional ``health()`` an X11 source will have."""

    problem: str | None = None

    def health(self) -> str | None:
        if self.problem == "raise":
            raise OSError("probe broke")
        return self.problem


async def test_readyz_says_ready_then_503_while_draining_and_offers_are_refused() -> None:
    source = SyntheticDesktop(320, 240, cine_seconds=0)
    async with running_server(source) as server:
        status, body = await get(server.url + "readyz")
        assert status == 200 and body["ready"] is True and body["encoder"] == "libx264"
        status, body = await get(server.url + "healthz")
        assert status == 200 and body["draining"] is False

        async with Viewer(server.url) as viewer:
            await viewer.next_frame()
            await viewer.wait_control_open()
            drain = asyncio.create_task(server.drain(30.0))
            await wait_for(lambda: viewer.report.server_bye is not None, timeout_s=5)
            assert viewer.report.server_bye == "server shutting down"
            assert viewer.report.as_json()["server_bye"] == "server shutting down"

            status, body = await get(server.url + "readyz")
            assert (status, body) == (503, {"ready": False, "reason": SHUTTING_DOWN})
            status, body = await get(server.url + "healthz")
            assert status == 200 and body["draining"] is True  # alive, just not taking viewers
            status, body = await post_offer(server.url)
            assert (status, body) == (503, {"error": SHUTTING_DOWN})
            refused = Viewer(server.url, connect_timeout_s=5)
            try:
                with pytest.raises(ClientError, match=r"\(503\): server is shutting down"):
                    await refused.connect()
            finally:
                await refused.close()
            assert not drain.done()
        # The viewer left (closed its peer): the drain ends without forcing anyone.
        assert await asyncio.wait_for(drain, 10) == 0
        assert server.sessions == {}


async def test_viewers_that_stay_are_closed_when_the_drain_times_out() -> None:
    source = SyntheticDesktop(320, 240, cine_seconds=-1)
    async with running_server(source) as server, Viewer(server.url) as viewer:
        await viewer.next_frame()
        await viewer.wait_control_open()
        started = time.monotonic()
        assert await asyncio.wait_for(server.drain(0.5), 10) == 1
        assert 0.5 <= time.monotonic() - started < 5
        assert server.sessions == {}
        assert server.hub.subscriber_count == 0
        assert viewer.report.server_bye == "server shutting down"


async def test_cut_short_skips_the_wait() -> None:
    source = SyntheticDesktop(320, 240, cine_seconds=-1)
    async with running_server(source) as server, Viewer(server.url) as viewer:
        await viewer.next_frame()
        hurry = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, hurry.set)
        started = time.monotonic()
        assert await asyncio.wait_for(server.drain(60.0, cut_short=hurry), 10) == 1
        assert time.monotonic() - started < 5


async def test_readyz_follows_the_source_health_and_healthz_stays_200() -> None:
    source = FlakySource(320, 240, cine_seconds=0)
    async with running_server(source) as server:
        assert server.readiness() == (True, "accepting viewers")
        source.problem = "X display :0 went away"
        status, body = await get(server.url + "readyz")
        assert (status, body) == (503, {"ready": False,
                                        "reason": "source unhealthy: X display :0 went away"})
        assert (await get(server.url + "healthz"))[0] == 200
        source.problem = "raise"
        ready, reason = server.readiness()
        assert not ready and reason.endswith("OSError: probe broke")
        source.problem = None
        assert (await get(server.url + "readyz"))[0] == 200


async def test_a_server_not_started_is_not_ready() -> None:
    server = HdxServer(SyntheticDesktop(320, 240, cine_seconds=0), Config(port=0), encoder=X264)
    try:
        assert server.readiness() == (False, "the server is still starting")
    finally:
        await server.stop()


# -- `hdx serve` as ops run it ---------------------------------------------------------------
async def exit_status(desktop: ServedDesktop, timeout_s: float) -> tuple[int, float]:
    """Poll (never block: the viewer's peer runs on this loop) until the server exits."""
    started = time.monotonic()
    while (code := desktop.process.poll()) is None:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"hdx serve still running after {timeout_s} s:\n"
                                 + desktop.log())
        await asyncio.sleep(0.05)
    return code, time.monotonic() - started


async def drain_with_viewer(drain_timeout_s: int, signals: int,
                            exit_within_s: float) -> tuple[int, float, str]:
    """Serve, connect a viewer, send SIGTERM ``signals`` times (the first after the viewer
    is streaming, the rest once it got ``bye``); the exit status, seconds to exit, the log."""
    served = serve("--width", "320", "--height", "240", "--cine-seconds", "-1",
                   "--drain-timeout", str(drain_timeout_s))
    desktop = next(served)
    try:
        async with Viewer(desktop.url) as viewer:
            await viewer.next_frame()
            await viewer.wait_control_open()
            desktop.process.send_signal(signal.SIGTERM)
            await wait_for(lambda: viewer.report.server_bye is not None, timeout_s=5)
            for _ in range(signals - 1):
                desktop.process.send_signal(signal.SIGTERM)
            code, took = await exit_status(desktop, timeout_s=exit_within_s)
        return code, took, desktop.log()
    finally:
        served.close()


async def test_sigterm_drains_a_connected_viewer_then_exits_0() -> None:
    # The viewer stays: the server waits out the drain timeout, then closes it.
    code, took, log = await drain_with_viewer(2, signals=1, exit_within_s=2 + 8)
    assert code == 0, log
    assert took >= 1.0, "it waited for the viewer"
    assert "draining: refusing new viewers; told 1 viewer(s)" in log
    assert "stopping: closing 1 session(s) by force after" in log


async def test_a_second_sigterm_skips_the_wait() -> None:
    code, _, log = await drain_with_viewer(60, signals=2, exit_within_s=8)
    assert code == 0, log
    assert "stopping: closing 1 session(s) by force" in log
