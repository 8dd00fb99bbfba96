"""A real aiortc viewer over loopback against a real server: content, keyframes, bitrate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdx.client.viewer import Viewer
from hdx.sources.image import ImageSource
from hdx.sources.synthetic import SyntheticDesktop
from tests.conftest import psnr, running_server, wait_for

pytestmark = pytest.mark.integration


async def test_received_frames_match_the_synthetic_desktop() -> None:
    source = SyntheticDesktop(1280, 720, cine_seconds=1.0, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        report = await viewer.receive(200, timeout_s=10, idle_s=1.5)
        assert report.ended_idle, "the desktop rests after its cine, so the stream goes quiet"
        assert report.frames >= 20
        assert (report.width, report.height) == (1280, 720)
        assert report.encoder == "x264"
        session = next(iter(server.sessions.values()))
        latest = server.hub.latest
        assert latest is not None and viewer.last_frame is not None
        # aiortc's receiver holds the newest frame until the next one starts; the settle
        # frame (a repeat of the final picture) releases it, and is itself held.
        assert session.track.stats.settle_frames == 1
        assert session.track.stats.frames_sent == report.frames + 1
        quality = psnr(viewer.last_frame, latest.pixels[..., :3])
        assert quality >= 35.0, f"PSNR {quality:.1f} dB"
        # Every frame handed to the video track was announced on the control channel.
        sent = session.track.stats.frames_sent
        await wait_for(lambda: viewer.report.frames_announced == sent)


async def test_static_desktop_sends_nothing() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=0, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        await viewer.next_frame()
        session = next(iter(server.sessions.values()))
        grabs_before = server.hub.stats.grabs
        sent_before = session.track.stats.frames_sent
        await asyncio.sleep(1.0)
        stats = server.hub.stats
        assert stats.grabs > grabs_before + 10, "capture keeps polling"
        assert session.track.stats.frames_sent == sent_before, "nothing encoded while static"
        assert stats.published == 1
        assert stats.unchanged_compared == 0, "identical frames are not even compared"


async def test_pli_makes_the_next_frame_an_idr() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=-1, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        await viewer.receive(10)
        track = next(iter(server.sessions.values())).track
        assert track.stats.keyframes == {"start": 1}
        receiver = viewer.pc.getReceivers()[0]
        sender_ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
        for _ in range(3):
            await receiver._send_rtcp_pli(sender_ssrc)
            await wait_for(lambda: track.stats.keyframes["pli"] >= 1, timeout_s=5)
            await viewer.receive(3)
        assert track.stats.keyframe_requests == 3
        # Every request was answered by the very next frame encoded after it arrived.
        assert track.stats.frames_until_requested_idr == [0] * track.stats.keyframes["pli"]


async def test_pli_on_a_static_desktop_resends_the_frame_as_idr() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=0, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        await viewer.next_frame()
        track = next(iter(server.sessions.values())).track
        await asyncio.sleep(0.3)
        receiver = viewer.pc.getReceivers()[0]
        ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
        await receiver._send_rtcp_pli(ssrc)
        frame = await viewer.next_frame(timeout_s=5)
        assert track.stats.keyframes == {"start": 1, "pli": 1}
        assert frame.shape == (360, 640, 3)


async def test_receiver_estimate_reaches_the_encoder() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=-1, fps=30)
    async with running_server(source, fps=30, bitrate_kbps=6000, min_bitrate_kbps=300) as server:
        async with Viewer(server.url) as viewer:
            await viewer.receive(5)
            track = next(iter(server.sessions.values())).track
            # aiortc's receiver sends REMB from its own estimator once it has enough samples.
            deadline = asyncio.get_running_loop().time() + 15
            while track.stats.remb_bps is None and asyncio.get_running_loop().time() < deadline:
                await viewer.receive(5)
            assert track.stats.remb_bps is not None, "no REMB reached the track"
            expected = max(300_000, min(track.stats.remb_bps, 6_000_000))
            assert track.stats.target_bitrate_bps == expected
            await viewer.receive(3)
            encoder = track._encoder
            assert encoder is not None
            assert abs(encoder.bitrate_bps - track.stats.target_bitrate_bps) <= (
                0.1 * encoder.bitrate_bps)


async def test_viewers_share_one_capture_loop() -> None:
    threads: set[str] = set()

    class Recording(SyntheticDesktop):
        def next_frame(self):  # type: ignore[no-untyped-def]
            import threading
            threads.add(threading.current_thread().name)
            return super().next_frame()

    source = Recording(640, 360, cine_seconds=-1, fps=30)
    async with running_server(source, fps=30) as server:
        async with Viewer(server.url) as first, Viewer(server.url) as second:
            await asyncio.gather(first.receive(15), second.receive(15))
            assert server.hub.subscriber_count == 2
            tracks = [s.track for s in server.sessions.values()]
            assert all(t.stats.frames_sent >= 15 for t in tracks)
        assert len(threads) == 1 and next(iter(threads)).startswith("hdx-capture")
        # Frames captured once, encoded per viewer: captures do not double with two viewers.
        assert server.hub.stats.grabs <= max(t.stats.frames_sent for t in tracks) + 40


async def test_a_16_bit_grey_image_arrives_as_its_high_byte(tmp_path: Path) -> None:
    y, x = np.mgrid[0:300, 0:400]
    ct = ((x * 90 + y * 60) % 65536).astype(np.uint16)
    ct[100:200, 150:250] = 40000
    path = tmp_path / "ct16.png"
    assert cv2.imwrite(str(path), ct)
    source = ImageSource(path, width=480, height=320)
    async with running_server(source) as server, Viewer(server.url) as viewer:
        frame = await viewer.next_frame()
        assert frame.shape == (320, 480, 3)
        expected = source.next_frame()[..., :3]
        assert (expected[:300, :400, 0] == (ct >> 8)).all()
        quality = psnr(frame, expected)
        assert quality >= 35.0, f"PSNR {quality:.1f} dB"
        assert server.hub.stats.published == 1  # a still image is captured once
