"""The video track against a real capture hub and real encoder, without a network.

Proves the "latest frame only" rule: a consumer slower than capture gets the newest frame each
time it asks, and the frames in between are skipped (counted), never queued.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor

import av
import pytest

from hdx.server.capture import CaptureHub
from hdx.sources.synthetic import SyntheticDesktop
from tests.conftest import X264

pytestmark = pytest.mark.integration


async def test_slow_consumer_gets_the_newest_frame_and_skips_the_rest() -> None:
    from hdx.webrtc.track import EncodedVideoTrack

    hub = CaptureHub(SyntheticDesktop(320, 240, cine_seconds=-1, fps=30), fps=30)
    executor = ThreadPoolExecutor(max_workers=1)
    track = EncodedVideoTrack(hub, X264, executor, max_bitrate_bps=2_000_000,
                              min_bitrate_bps=100_000)
    decoder = av.CodecContext.create("h264", "r")
    try:
        seqs = []
        for _ in range(6):
            packet = await track.recv()
            assert hub.latest is not None
            seqs.append(track._last_seq)
            # What was encoded is what was newest when the encode began (at most one newer
            # frame can have been published while encoding).
            assert hub.latest.seq - track._last_seq <= 1
            assert decoder.decode(av.Packet(bytes(packet)))  # a decodable access unit
            await asyncio.sleep(0.2)  # a slow network: ~6 frames are captured meanwhile
        gaps = [b - a for a, b in itertools.pairwise(seqs)]
        assert all(gap >= 3 for gap in gaps), gaps
        assert track.stats.frames_skipped == sum(g - 1 for g in gaps)
        assert track.stats.frames_sent == 6
    finally:
        track.stop()
        await hub.close()
        executor.shutdown()
    assert hub.subscriber_count == 0 and track._encoder is None
