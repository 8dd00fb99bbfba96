"""A headless Python viewer that connects exactly like the browser does (aiortc, loopback-aware).

Used by ``hdx client`` and by the integration tests: it offers a receive-only video transceiver
and a ``control`` data channel, posts the offer to ``/api/offer``, and collects decoded frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from hdx.errors import HdxError
from hdx.webrtc.ice import host_addresses, is_loopback


class ClientError(HdxError, RuntimeError):
    """The viewer could not connect or received no frames; the message says why."""


@dataclass(slots=True)
class ViewerReport:
    """What a viewing run experienced."""

    url: str
    frames: int = 0
    first_frame_s: float | None = None
    """Seconds from starting to connect until the first decoded frame."""
    duration_s: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    encoder: str | None = None
    keyframes: int = 0
    ended_idle: bool = False
    """True when the run ended because the desktop stopped changing."""
    frames_announced: int = 0
    """``frame`` announcements received on the control channel (one per frame sent)."""
    messages: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    """The newest other control messages (hello, pong), bounded for long runs."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no pixels)."""
        return {k: getattr(self, k) for k in
                ("url", "frames", "first_frame_s", "duration_s", "fps", "width", "height",
                 "encoder", "keyframes", "ended_idle")}


class Viewer:
    """One connection to an hdx server. Use ``async with Viewer(url) as v:``."""

    def __init__(self, url: str, connect_timeout_s: float = 15.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.connect_timeout_s = connect_timeout_s
        self.pc = RTCPeerConnection()
        self.control: Any = None
        self.report = ViewerReport(url=self.url)
        self.last_frame: np.ndarray | None = None
        """The newest decoded frame as BGR (h, w, 3) uint8."""
        self._track: Any = None
        self._track_ready = asyncio.Event()
        self._hello = asyncio.Event()
        self._started = 0.0
        self._first_at = 0.0

    async def __aenter__(self) -> Viewer:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Offer, post, apply the answer, and wait until the video track arrives."""
        self._started = time.monotonic()
        self.pc.addTransceiver("video", direction="recvonly")
        self.control = self.pc.createDataChannel("control", ordered=True)
        self.control.on("message", self._on_message)

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                self._track = track
                self._track_ready.set()

        offer = await self.pc.createOffer()
        host = urlsplit(self.url).hostname or ""
        if is_loopback(host):
            with host_addresses(["127.0.0.1"]):
                await self.pc.setLocalDescription(offer)
        else:
            await self.pc.setLocalDescription(offer)
        answer = await self._post_offer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        try:
            await asyncio.wait_for(self._track_ready.wait(), self.connect_timeout_s)
        except TimeoutError:
            raise ClientError(f"no video track from {self.url} within "
                              f"{self.connect_timeout_s:.0f} s") from None

    async def _post_offer(self, sdp: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.connect_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                urljoin(self.url, "api/offer"), json={"sdp": sdp, "type": "offer"}
            ) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    reason = body.get("error") if isinstance(body, dict) else body
                    raise ClientError(f"server refused the offer ({response.status}): {reason}")
                if not isinstance(body, dict) or "sdp" not in body:
                    raise ClientError("server answered without an SDP")
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}") from exc

    def _on_message(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if isinstance(message, dict):
            if message.get("t") == "frame":
                self.report.frames_announced += 1
                return
            self.report.messages.append(message)
            if message.get("t") == "hello":
                self.report.encoder = message.get("encoder")
                self._hello.set()

    def send(self, message: dict[str, Any]) -> None:
        """Send one control message (input events, pings) once the channel is open."""
        if self.control is None or self.control.readyState != "open":
            raise ClientError("the control channel is not open yet")
        self.control.send(json.dumps(message))

    async def wait_control_open(self, timeout_s: float = 10.0) -> None:
        """Wait until the server's hello arrived on the control channel."""
        try:
            await asyncio.wait_for(self._hello.wait(), timeout_s)
        except TimeoutError:
            raise ClientError("the control channel did not open") from None

    async def next_frame(self, timeout_s: float = 10.0) -> np.ndarray:
        """Receive and decode the next frame; returns it as BGR and keeps it in ``last_frame``."""
        try:
            frame = await asyncio.wait_for(self._track.recv(), timeout_s)
        except TimeoutError:
            raise ClientError(f"no frame within {timeout_s:.0f} s") from None
        except MediaStreamError:
            raise ClientError("the video track ended") from None
        now = time.monotonic()
        report = self.report
        if report.first_frame_s is None:
            report.first_frame_s = now - self._started
            self._first_at = now
        report.frames += 1
        report.keyframes += int(bool(getattr(frame, "key_frame", False)))
        image: np.ndarray = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
        report.height, report.width = image.shape[:2]
        report.duration_s = now - self._first_at
        if report.frames > 1 and report.duration_s > 0:
            report.fps = (report.frames - 1) / report.duration_s
        self.last_frame = image
        return image

    async def receive(self, frames: int, timeout_s: float = 10.0,
                      idle_s: float | None = 2.0) -> ViewerReport:
        """Receive up to ``frames`` frames.

        The first frame may take ``timeout_s``; after it, a desktop that stays unchanged for
        ``idle_s`` ends the run early (hdx sends nothing while nothing changes). ``idle_s=None``
        insists on every frame.
        """
        await self.next_frame(timeout_s)
        for _ in range(frames - 1):
            try:
                await self.next_frame(idle_s if idle_s is not None else timeout_s)
            except ClientError:
                if idle_s is None:
                    raise
                self.report.ended_idle = True
                break
        return self.report

    async def close(self) -> None:
        """Close the peer connection (the server frees the session)."""
        with contextlib.suppress(Exception):
            await self.pc.close()
