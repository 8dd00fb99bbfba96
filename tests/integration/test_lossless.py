"""Build to lossless with the real Python client over loopback: exact results for every kind of
content, and the ordering invariant under random changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hdx.bench import content
from hdx.client.compositor import later
from hdx.client.viewer import NotLossless, Viewer
from hdx.sources.image import ImageSource
from hdx.sources.push import PushSource
from hdx.webrtc.track import SentFrame
from tests.conftest import running_server, shown_by_client, wait_for

pytestmark = pytest.mark.integration


def _images() -> dict[str, np.ndarray]:
    """Each test picture as OpenCV writes it (BGR, grey or 16-bit grey)."""
    rng = np.random.default_rng(5)
    ct = content.ct_phantom(512, bits=12, seed=3)
    canvas16 = np.zeros((600, 700), np.uint16)
    canvas16[40:552, 90:602] = ct
    return {
        "random-rgb": rng.integers(0, 256, (333, 517, 3), dtype=np.uint8),
        "text-ui": np.ascontiguousarray(content.text_screen_bgra(960, 540, seed=2)[..., :3]),
        "ct-grey8": content.grey8(ct, 12),
        "ct-grey16": canvas16,
        "noise": np.ascontiguousarray(content.noise_bgra(256, 200, seed=4)[..., :3]),
    }


@pytest.mark.parametrize("name", list(_images()))
async def test_python_client_ends_byte_exact(name: str, tmp_path: Path) -> None:
    image = _images()[name]
    path = tmp_path / f"{name}.png"
    cv2.imwrite(str(path), image)
    async with running_server(ImageSource(path), fps=30) as server, Viewer(server.url) as viewer:
        report = await viewer.until_lossless(timeout_s=30)
        shown = viewer.framebuffer()
        expected = shown_by_client(image)
        assert shown.dtype == expected.dtype and np.array_equal(shown, expected)
        assert report.lossless and report.bits == (16 if image.dtype == np.uint16 else 8)
        summary = server.session_summaries()[0]["lossless"]
        assert summary["lossless"] and summary["tiles"]["coverage"] == 1.0
        assert summary["hash_mismatches"] == 0
        await wait_for(lambda: len(server.session_summaries()[0]["lossless"]
                                   ["time_to_lossless_ms"]) == 1)


async def test_refinement_off_means_no_tiles_and_a_clear_error() -> None:
    source = PushSource(320, 240)
    source.push(np.full((240, 320, 3), 90, np.uint8))
    async with running_server(source, fps=30, lossless=False) as server, \
            Viewer(server.url) as viewer:
        await viewer.next_frame()
        with pytest.raises(Exception, match="does not refine"):
            await viewer.until_lossless(timeout_s=5)
        assert viewer.report.tiles_received == 0


async def test_until_lossless_times_out_truthfully_on_a_moving_desktop() -> None:
    source = PushSource(256, 128)
    rng = np.random.default_rng(0)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        async def keep_changing() -> None:
            while True:
                source.push(rng.integers(0, 256, (128, 256, 3), dtype=np.uint8))
                await asyncio.sleep(0.03)

        mover = asyncio.ensure_future(keep_changing())
        try:
            with pytest.raises(NotLossless, match="not lossless after 2 s"):
                await viewer.until_lossless(timeout_s=2)
        finally:
            mover.cancel()
        assert not viewer.report.lossless
        assert server.sessions


class _Recorder:
    """Server side of the property test: what each announced pts showed."""

    def __init__(self) -> None:
        self.frames: dict[int, np.ndarray] = {}

    def wrap(self, track: Any) -> None:
        inner = track.on_sent

        def on_sent(sent: SentFrame) -> None:
            self.frames[sent.pts & 0xFFFFFFFF] = sent.frame.pixels[..., 2::-1]
            inner(sent)

        track.on_sent = on_sent


def _check_overlays(viewer: Viewer, recorder: _Recorder, violations: list[str]) -> None:
    """No overlay may differ from the source of the frame on screen, unless it is newer."""
    comp = viewer.compositor
    assert comp is not None
    if comp.shown_pts is None:
        if (comp.overlay_base >= 0).any():
            violations.append("overlay shown over an unidentified frame")
        return
    source = recorder.frames.get(comp.shown_pts)
    if source is None:
        return
    t = comp.tile
    for ty, tx in zip(*np.nonzero(comp.overlay_base >= 0), strict=True):
        base = int(comp.overlay_base[ty, tx])
        if later(base, comp.shown_pts):
            continue  # cut from a newer frame than the video shows: newer, never stale
        cell = (slice(ty * t, (ty + 1) * t), slice(tx * t, (tx + 1) * t))
        if not np.array_equal(comp.layer[cell], source[cell]):
            violations.append(f"stale overlay at tile {tx},{ty} over frame {comp.shown_pts}")
    if comp.lossless and not np.array_equal(comp.framebuffer(), source):
        violations.append(f"claimed lossless over frame {comp.shown_pts} but pixels differ")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_never_leave_a_stale_overlay_and_end_exact(seed: int) -> None:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    width, height = 640, 384
    frame = nrng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    source = PushSource(width, height)
    source.push(frame.copy())
    recorder = _Recorder()
    violations: list[str] = []
    async with running_server(source, fps=30, lossless_quiet_ms=60) as server, \
            Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        session = next(iter(server.sessions.values()))
        await wait_for(lambda: session.track.on_sent is not None)
        recorder.wrap(session.track)

        async def change_randomly() -> None:
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                for _ in range(rng.randint(1, 3) if rng.random() < 0.3 else 1):
                    tx, ty = rng.randrange(width // 64), rng.randrange(height // 64)
                    w, h = rng.randint(1, 150), rng.randint(1, 150)
                    x, y = tx * 64 + rng.randrange(64), ty * 64 + rng.randrange(64)
                    frame[y:y + h, x:x + w] = nrng.integers(0, 256, 3, dtype=np.uint8)
                source.push(frame.copy())
                # Bursts, and pauses long enough for refinement to be under way.
                await asyncio.sleep(rng.choice([0.0, 0.01, 0.03, 0.08, 0.15, 0.4]))

        async def watch() -> None:
            while True:
                await viewer.next_frame(timeout_s=3600)
                _check_overlays(viewer, recorder, violations)

        changer = asyncio.ensure_future(change_randomly())
        watcher = asyncio.ensure_future(watch())
        try:
            while not changer.done():
                await asyncio.sleep(0.005)
                _check_overlays(viewer, recorder, violations)  # also between frames
            changer.result()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await viewer.until_lossless(timeout_s=20)
        assert not violations, violations[:5]
        assert np.array_equal(viewer.framebuffer(), frame[..., ::-1])  # pushed BGR, shown RGB
        comp = viewer.compositor
        assert comp is not None and comp.stats.invalidated > 0, "changes hit refined tiles"
        stats = server.session_summaries()[0]["lossless"]
        assert stats["hash_mismatches"] == 0 and stats["tiles"]["coverage"] == 1.0


async def test_a_client_that_drops_its_exact_tiles_is_refined_again(tmp_path: Path) -> None:
    """An unidentified video frame makes a client throw every exact tile away; the server
    thought them verified, so without ``refresh`` + ``dropped`` they would never come again."""
    image = np.random.default_rng(8).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    cv2.imwrite(str(path), image)
    async with running_server(ImageSource(path), fps=30) as server, Viewer(server.url) as viewer:
        await viewer.until_lossless(timeout_s=30)
        comp = viewer.compositor
        assert comp is not None and comp.shown_pts is not None
        unannounced = (comp.origin or 0) + comp.shown_pts + (1 << 30)
        assert comp.show_video(unannounced, comp.video) is None  # drops every exact tile
        assert comp.coverage == 0 and not comp.lossless
        assert server.session_summaries()[0]["lossless"]["lossless"]  # the server cannot know
        assert viewer.control is not None
        viewer.control.send(json.dumps({"t": "refresh", "dropped": True}))
        report = await viewer.until_lossless(timeout_s=30)
        assert report.lossless and np.array_equal(viewer.framebuffer(), shown_by_client(image))
        summary = server.session_summaries()[0]["lossless"]
        assert summary["client_drops"] == 1 and summary["lossless"]


async def test_hostile_tile_messages_are_counted_and_dropped_and_refinement_goes_on(
        tmp_path: Path) -> None:
    image = np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    cv2.imwrite(str(path), image)
    async with running_server(ImageSource(path), fps=30) as server, Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        session = next(iter(server.sessions.values()))
        await wait_for(lambda: session.refiner is not None and session.refiner._channel is not None
                       and session.refiner._channel.readyState == "open")
        channel = session.refiner._channel
        from hdx.lossless.protocol import TileHeader, chunk_tile

        good = chunk_tile(TileHeader(999_001, 0, 0, 64, 64, 0, 2, 8, 3, 300), bytes(300), 132)
        hostile = [b"", b"HT", b"\x00" * 40, bytes(range(256)), good[1] + b"x",  # short/garbage
                   good[0], good[0],                                          # duplicate
                   chunk_tile(TileHeader(999_001, 64, 0, 64, 64, 0, 2, 8, 3, 300),
                              bytes(300), 132)[1]]                            # disagrees
        for message in hostile:
            channel.send(message)
        viewer.send({"t": "ack", "id": 123456, "hash": "0" * 64})             # unknown tile
        viewer.send({"t": "ack", "id": 1, "hash": "not-a-hash"})              # malformed
        viewer.send({"t": "nack", "id": 1, "reason": "bored"})                # malformed
        await viewer.until_lossless(timeout_s=20)
        assert np.array_equal(viewer.framebuffer(), image[..., ::-1])
        assert viewer.report.malformed_tiles >= 5
        summary = server.session_summaries()[0]
        assert summary["lossless"]["unknown_acks"] == 1
        assert summary["malformed_messages"] == 2 and summary["state"] == "connected"


async def test_flow_control_bounds_what_waits_in_the_channel(tmp_path: Path) -> None:
    noise = np.random.default_rng(6).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    cv2.imwrite(str(path), noise)
    buffered: list[int] = []
    async with running_server(ImageSource(path), fps=30, lossless_buffer_kb=64) as server, \
            Viewer(server.url) as viewer:
        await viewer.wait_control_open()
        session = next(iter(server.sessions.values()))
        await wait_for(lambda: session.refiner is not None and session.refiner._channel is not None)
        channel = session.refiner._channel
        send = channel.send

        def watched_send(data: bytes) -> None:
            buffered.append(channel.bufferedAmount)  # what waits when the next chunk goes
            send(data)

        channel.send = watched_send
        await viewer.until_lossless(timeout_s=60)
        assert np.array_equal(viewer.framebuffer(), noise[..., ::-1])
        stats = session.refiner.stats
    assert stats.bytes_sent > 2_500_000, "noise does not compress: megabytes went through"
    assert stats.chunks_sent > 40 and stats.flow_waits > 0
    assert max(buffered) <= 64 * 1024, f"the sender waited for the queue: max {max(buffered)}"
