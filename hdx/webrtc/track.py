"""The per-viewer video track: pulls the newest captured frame, encodes it, hands aiortc a packet.

aiortc's sender calls ``recv()`` whenever it is ready for the next frame, and packetizes an
``av.Packet`` as-is. Pull, not push: a slow viewer just encodes fewer, newer frames; nothing
queues. Keyframe requests and bandwidth estimates arrive through :mod:`hdx.webrtc.feedback`.

Threads: ``recv`` runs on the event loop; ``_encode`` on the shared encode executor, serialized
per track because ``recv`` awaits it; ``stop`` waits for an encode in flight before closing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from hdx.server.capture import CapturedFrame, CaptureHub
from hdx.video.encoder import TIME_BASE, EncodedFrame, H264Encoder
from hdx.video.selection import EncoderChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SentFrame:
    """What a client needs to time a frame it draws: its RTP time and when it was captured."""

    pts: int
    """RTP timestamp minus the stream's random origin (90 kHz)."""
    captured_at: float
    """Server wall-clock seconds at capture."""
    keyframe: bool
    size: int
    frame: CapturedFrame
    """The captured frame this video frame shows (what lossless tiles are cut from)."""
    changed: npt.NDArray[np.bool_]
    """Tiles that differ from the previous frame this viewer was sent (all on the first)."""


@dataclass(slots=True)
class TrackStats:
    """What this viewer's video path did; read by tests, status and (later) metrics."""

    frames_sent: int = 0
    frames_skipped: int = 0
    bytes_sent: int = 0
    keyframes: Counter[str] = field(default_factory=Counter)
    last_encode_ms: float = 0.0
    encode_ms_total: float = 0.0
    remb_bps: int | None = None
    target_bitrate_bps: int = 0
    keyframe_requests: int = 0
    refreshes: int = 0
    """Repeats asked for by ``request_refresh`` (a client's control channel opened)."""
    settle_frames: int = 0
    """Repeats of a frame after the desktop went still (see ``EncodedVideoTrack``)."""
    frames_until_requested_idr: list[int] = field(default_factory=list)
    """For each keyframe request: how many frames were sent before the IDR (0 = the next)."""


class EncodedVideoTrack(MediaStreamTrack):
    """A video track whose ``recv()`` returns pre-encoded H.264 packets.

    When the desktop goes still, the newest frame is encoded once more after two frame
    intervals (a "settle" frame). Receivers that release a frame only when the next one begins
    (aiortc's jitter buffer does) would otherwise hold the final picture of a burst forever, and
    the repeat lets the encoder refine the still picture at almost no cost in bytes.
    """

    kind = "video"

    def __init__(
        self,
        hub: CaptureHub,
        choice: EncoderChoice,
        executor: Executor,
        max_bitrate_bps: int,
        min_bitrate_bps: int,
    ) -> None:
        super().__init__()
        self._hub = hub
        self._choice = choice
        self._executor = executor
        self._max_bitrate = max_bitrate_bps
        self._min_bitrate = min_bitrate_bps
        self._wake = asyncio.Event()
        self._encoder: H264Encoder | None = None
        self._encode_lock = threading.Lock()
        self._last_seq = -1
        self._last_pts = -1
        """RTP time (minus origin) of the last packet handed to aiortc."""
        self._last_encoder_pts = -1
        self._t0: float | None = None
        self._keyframe_reason: str | None = "start"
        self._refresh = False
        self._frames_at_request: int | None = None
        self._encoding = False
        self._settle_due = False
        self.stats = TrackStats(target_bitrate_bps=max_bitrate_bps)
        self.sender: Any = None
        """The aiortc RTCRtpSender carrying this track (set by the session)."""
        self.rtp_origin: int | None = None
        """The random RTP timestamp origin aiortc chose (RTP time = origin + pts, mod 2**32),
        learnt after the first frame; clients need it to tell which frame they are drawing."""
        self.on_origin: Callable[[int], None] | None = None
        """Called once, on the event loop, when ``rtp_origin`` becomes known."""
        self.on_sent: Callable[[SentFrame], None] | None = None
        """Called on the event loop for every frame handed to aiortc (the session announces
        it on the control channel so the client can measure glass-to-glass latency)."""
        hub.subscribe(self._wake)

    @property
    def encoder_name(self) -> str:
        """The FFmpeg encoder in use (``libx264`` or ``h264_nvenc``)."""
        return self._choice.codec

    # -- feedback from the receiver ----------------------------------------------------------
    def request_keyframe(self, reason: str) -> None:
        """Make the next frame sent an IDR (re-encoding the current one if nothing is new)."""
        self.stats.keyframe_requests += 1
        if self._keyframe_reason is None:
            self._keyframe_reason = reason
            # A frame already being encoded cannot become the IDR; count from the next one.
            self._frames_at_request = self.stats.frames_sent + int(self._encoding)
        self._wake.set()

    def request_refresh(self) -> None:
        """Send the current frame again (a small P-frame, not an IDR), so that a client that
        just started listening for frame announcements gets one for what it shows."""
        self._refresh = True
        self.stats.refreshes += 1
        self._wake.set()

    def on_receiver_estimate(self, bitrate_bps: int) -> None:
        """The receiver's bandwidth estimate (REMB): the target follows it within our bounds."""
        self.stats.remb_bps = bitrate_bps
        self.stats.target_bitrate_bps = max(self._min_bitrate, min(bitrate_bps, self._max_bitrate))

    # -- aiortc side ---------------------------------------------------------------------------
    async def recv(self) -> av.Packet[Any]:
        """Wait for a newer frame (or a keyframe request), encode it, return the packet."""
        self._learn_origin()
        frame = await self._next_frame()
        keyframe_reason = self._keyframe_reason
        self._keyframe_reason = None
        self._refresh = False
        pts = self._pts_for(frame)
        loop = asyncio.get_running_loop()
        self._encoding = True
        try:
            encoded: EncodedFrame = await loop.run_in_executor(
                self._executor, self._encode, frame, pts, keyframe_reason is not None
            )
        finally:
            self._encoding = False
        if self.readyState != "live":
            raise MediaStreamError
        # The RTP timestamp is the moment the frame leaves, not when it was captured: the
        # browser sizes its jitter buffer from how arrival times stray from RTP times, and
        # encode time varies with load (it does not measure the network). Capture time still
        # travels in the frame announcement, for latency.
        wire_pts = max(self._wire_pts_now(), self._last_pts + 1)
        self._last_pts = wire_pts
        encoded.packet.pts = encoded.packet.dts = wire_pts
        changed = self._hub.changes_between(self._last_seq, frame)
        self._account(frame, encoded, keyframe_reason)
        if self.on_sent is not None:
            self.on_sent(SentFrame(wire_pts, frame.captured_at, encoded.keyframe, encoded.size,
                                   frame, changed))
        return encoded.packet

    def _wire_pts_now(self) -> int:
        t0 = self._t0 if self._t0 is not None else time.monotonic()
        return int((time.monotonic() - t0) * TIME_BASE.denominator)

    def _learn_origin(self) -> None:
        # aiortc adds a random origin to our pts and keeps it in a local variable; it also
        # records the last RTP timestamp it sent (for RTCP sender reports). aiortc asks for
        # the next frame only after sending every packet of the previous one, so here that
        # timestamp belongs to the frame with ``_last_pts``.
        if self.rtp_origin is not None or self.sender is None or self._last_pts < 0:
            return
        rtp = getattr(self.sender, "_RTCRtpSender__rtp_timestamp", None)
        if not isinstance(rtp, int) or rtp == 0:
            return
        self.rtp_origin = (rtp - self._last_pts) & 0xFFFFFFFF
        if self.on_origin is not None:
            self.on_origin(self.rtp_origin)

    async def _next_frame(self) -> CapturedFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            self._wake.clear()
            frame = self._hub.latest
            if frame is not None and (
                frame.seq != self._last_seq or self._keyframe_reason is not None
                or self._refresh
            ):
                self._settle_due = frame.seq != self._last_seq
                return frame
            if not self._settle_due or frame is None:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(2.0 / self._hub.fps):
                    await self._wake.wait()
            except TimeoutError:
                self._settle_due = False
                self.stats.settle_frames += 1
                return frame

    def _pts_for(self, frame: CapturedFrame) -> int:
        # The encoder's clock follows capture time (its rate control sees the real cadence);
        # a keyframe re-sent for an unchanged frame still needs a later timestamp.
        if self._t0 is None:
            self._t0 = frame.captured_mono
        capture_pts = int((frame.captured_mono - self._t0) * TIME_BASE.denominator)
        resend_pts = int((time.monotonic() - self._t0) * TIME_BASE.denominator)
        pts = capture_pts if frame.seq != self._last_seq else resend_pts
        pts = max(pts, self._last_encoder_pts + 1)
        self._last_encoder_pts = pts
        return pts

    def _encode(self, frame: CapturedFrame, pts: int, keyframe: bool) -> EncodedFrame:
        """Runs on the encode executor."""
        with self._encode_lock:
            if self.readyState != "live":
                raise MediaStreamError
            encoder = self._encoder
            if encoder is None or encoder.source_size != frame.size:
                if encoder is not None:
                    encoder.close()
                width, height = frame.size
                encoder = self._encoder = H264Encoder(
                    self._choice.codec, width, height, self._hub.fps,
                    bitrate_bps=self.stats.target_bitrate_bps, max_bitrate_bps=self._max_bitrate,
                )
                keyframe = True
            encoder.set_bitrate(self.stats.target_bitrate_bps)
            return encoder.encode(frame.pixels, pts, keyframe=keyframe)

    def _account(self, frame: CapturedFrame, encoded: EncodedFrame, reason: str | None) -> None:
        stats = self.stats
        if self._last_seq >= 0 and frame.seq > self._last_seq + 1:
            stats.frames_skipped += frame.seq - self._last_seq - 1
        if encoded.keyframe:
            stats.keyframes[reason or "encoder"] += 1
            if self._frames_at_request is not None:
                stats.frames_until_requested_idr.append(
                    stats.frames_sent - self._frames_at_request)
                self._frames_at_request = None
        self._last_seq = frame.seq
        stats.frames_sent += 1
        stats.bytes_sent += encoded.size
        stats.last_encode_ms = encoded.encode_ms
        stats.encode_ms_total += encoded.encode_ms

    def stop(self) -> None:
        """End the track: unsubscribe from capture and free the encoder (after any encode)."""
        if self.readyState == "live":
            super().stop()
        self._hub.unsubscribe(self._wake)
        self._wake.set()
        with self._encode_lock:
            if self._encoder is not None:
                self._encoder.close()
                self._encoder = None
