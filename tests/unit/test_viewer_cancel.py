"""A Python viewer's frame pump stops when cancelled, even when the cancellation arrives in the
same instant as a frame. Python 3.11's ``asyncio.wait_for`` swallows such a cancellation (it
returns the frame instead), so a pump built on it went on receiving for ever and ``await pump``
never returned: the integration test that hung CI for 25 minutes."""

from __future__ import annotations

import asyncio

import av
import pytest

from hdx.client.viewer import Viewer

pytestmark = pytest.mark.unit


class ReadyTrack:
    """A track whose frames come when the test says (``ready``), as a real stream's would."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        await self.ready.wait()
        self.ready.clear()
        self.frames += 1
        return av.VideoFrame(64, 48, "yuv420p")


async def test_a_pump_cancelled_as_a_frame_arrives_stops() -> None:
    viewer = Viewer("http://127.0.0.1:9/")
    track = ReadyTrack()
    viewer._track = track
    try:
        for _ in range(20):  # the race is the same every time; a few rounds for good measure
            pump = asyncio.ensure_future(viewer._pump())
            await asyncio.sleep(0.01)  # the pump now waits for a frame
            track.ready.set()  # the frame arrives, and in the same instant the pump is told
            pump.cancel()      # to stop: both wake-ups are queued, the frame's first
            await asyncio.wait([pump], timeout=2.0)
            still_running = not pump.done()
            if still_running:
                pump.cancel()
                await asyncio.wait([pump], timeout=2.0)
            assert not still_running, f"the pump swallowed its cancellation ({track.frames} frames)"
            assert pump.cancelled()
    finally:
        await viewer.pc.close()
