"""A headless Python viewer that connects exactly like the browser does (aiortc, loopback-aware).

Used by ``hdx client`` and by the integration tests: it offers a receive-only video transceiver,
a ``control`` and a ``tiles`` data channel, posts the offer to ``/api/offer``, collects decoded
frames and composes them with lossless tiles (:mod:`hdx.client.compositor`), acking each tile
with the hash of what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from hdx.client.compositor import Compositor
from hdx.errors import HdxError, ProtocolError
from hdx.lossless.protocol import Reassembler, unpack_dirty
from hdx.webrtc.ice import host_addresses, is_loopback

_U32 = 0xFFFFFFFF


class ClientError(HdxError, RuntimeError):
    """The viewer could not connect or received no frames; the message says why."""


class NotLossless(ClientError):
    """Connected, but not every pixel was verified exact in the time allowed."""


class ServerRefused(ClientError):
    """The server refused the offer: ``status`` (401 no/bad token, 403 revoked or not
    allowed, 503 full or shutting down) and its ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"server refused the offer ({status}): {reason}")
        self.status = status
        self.reason = reason


def _split_token(url: str) -> tuple[str, str | None]:
    """``url`` without its token (a join link's ``#token=``, or ``?token=``), and the token."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    fragment = parse_qsl(parts.fragment, keep_blank_values=True)
    token = next((v for k, v in [*fragment, *query] if k == "token"), None)
    rest = urlencode([(k, v) for k, v in query if k != "token"])
    return urlunsplit(parts._replace(query=rest, fragment="")), token


def _client_ssl(fingerprint: str | None, cafile: Path | str | None
                ) -> aiohttp.Fingerprint | ssl.SSLContext | bool:
    """What aiohttp checks the server's certificate with."""
    if fingerprint:
        digest = fingerprint.replace(":", "").strip().lower()
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ClientError("--tls-fingerprint must be a SHA-256 fingerprint (64 hex "
                              "digits, colons allowed), as hdx serve prints it")
        return aiohttp.Fingerprint(raw)
    if cafile is not None:
        try:
            return ssl.create_default_context(cafile=str(cafile))
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(f"cannot use the CA file {cafile}: {exc}") from None
    return True


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
    bits: int = 8
    """Depth of the desktop's exact samples (16 for a 16-bit grey source)."""
    lossless: bool = False
    """Every tile was verified exact by the server when the run ended."""
    time_to_lossless_s: float | None = None
    """From starting to connect until every tile was verified (``until_lossless`` runs)."""
    tiles_received: int = 0
    tile_bytes: int = 0
    malformed_tiles: int = 0
    server_bye: str | None = None
    """The reason the server gave in ``bye`` (it is shutting down), if it said goodbye."""
    user: str | None = None
    """Who the server says this viewer is (from the join token; ``local`` without one)."""
    role: str | None = None
    """``view`` or ``control``, as the server's ``hello`` said."""
    floor: dict[str, Any] | None = None
    """The newest ``floor`` message: who drives, whether this viewer does, who asked."""
    refusals: list[dict[str, Any]] = field(default_factory=list)
    """``refused`` messages: what the server dropped and why (at most one per kind)."""
    inputs_shown: deque[int] = field(default_factory=lambda: deque(maxlen=64))
    """Serials of numbered inputs (``i``) whose effect a frame announcement said it shows."""
    experience: dict[str, Any] | None = None
    """The newest ``experience`` message: the server's score, grade and likely cause."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no pixels)."""
        return {k: getattr(self, k) for k in
                ("url", "frames", "first_frame_s", "duration_s", "fps", "width", "height",
                 "encoder", "keyframes", "ended_idle", "bits", "lossless",
                 "time_to_lossless_s", "tiles_received", "tile_bytes", "malformed_tiles",
                 "server_bye", "user", "role")}


class Viewer:
    """One connection to an hdx server. Use ``async with Viewer(url) as v:``.

    ``token`` (or the link's ``#token=`` or ``?token=``, taken out of the URL) goes in an
    ``Authorization: Bearer`` header. For ``https`` servers, ``tls_fingerprint`` pins the
    certificate by its SHA-256 (as ``hdx serve`` prints it; for self-signed ones) and
    ``cafile`` trusts a CA; otherwise the system's CAs are trusted.
    """

    def __init__(self, url: str, connect_timeout_s: float = 15.0, *,
                 token: str | None = None, tls_fingerprint: str | None = None,
                 cafile: Path | str | None = None) -> None:
        url, from_url = _split_token(url)
        self.url = url if url.endswith("/") else url + "/"
        self.token = token or from_url
        self._ssl = _client_ssl(tls_fingerprint, cafile)
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
        self.compositor: Compositor | None = None
        """Video plus lossless tiles, created when the server's hello arrives."""
        self.tiles: Any = None
        self._reassembler = Reassembler()
        self._origin: int | None = None
        self._announced = asyncio.Event()
        self._refresh_asked = 0.0
        self._drop_unreported = False
        """Exact tiles were thrown away and the server has not been told yet."""
        self._watchdog: asyncio.Future[None] | None = None
        self._floor_changed = asyncio.Event()

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
        self.tiles = self.pc.createDataChannel("tiles", ordered=True)
        self.tiles.on("message", self._on_tile_message)

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
            async with asyncio.timeout(self.connect_timeout_s):
                await self._track_ready.wait()
        except TimeoutError:
            raise ClientError(f"no video track from {self.url} within "
                              f"{self.connect_timeout_s:.0f} s") from None

    async def _post_offer(self, sdp: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.connect_timeout_s)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                self._offer_url(), json={"sdp": sdp, "type": "offer"}, headers=headers,
                ssl=self._ssl,
            ) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    reason = body.get("error") if isinstance(body, dict) else body
                    raise ServerRefused(response.status, str(reason))
                if not isinstance(body, dict) or "sdp" not in body:
                    raise ClientError("server answered without an SDP")
                return body
        except aiohttp.ServerFingerprintMismatch:
            raise ClientError(f"the certificate of {self.url} does not have the pinned "
                              "fingerprint: not the server you meant (or it has a new "
                              "certificate)") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ClientError(f"the certificate of {self.url} is not trusted "
                              f"({exc.certificate_error}); pin it with --tls-fingerprint "
                              "(hdx serve prints it) or trust its CA with --cafile") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}") from exc

    def _offer_url(self) -> str:
        # The page's query (``?monitor=right``) selects what to watch; it goes with the offer.
        query = urlsplit(self.url).query
        return urljoin(self.url, "api/offer") + (f"?{query}" if query else "")

    def _on_message(self, data: str | bytes) -> None:
        # Whatever a (hostile) server sends is counted, never raised: an exception here would
        # surface inside aiortc's receive path.
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict):
            return
        try:
            self._dispatch(message)
        except (KeyError, TypeError, ValueError, OverflowError, ProtocolError):
            self.report.malformed_tiles += 1

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "frame":
            self.report.frames_announced += 1
            if "input" in message:
                self.report.inputs_shown.append(int(message["input"]))
            self._on_frame_announced(message)
            self._announced.set()
            return
        if kind == "verified":
            if self.compositor is not None:
                self.compositor.confirm(int(message["id"]), int(message["tiles"]))
            return
        if kind == "origin":
            self._origin = int(message["origin"]) & _U32
            if self.compositor is not None:
                self.compositor.set_origin(self._origin)
            self._announced.set()
            return
        if kind == "experience":  # once a second: kept apart, or it would crowd out the rest
            self.report.experience = message
            return
        if kind == "hello":
            self._on_hello(message)
        self.report.messages.append(message)
        if kind == "fidelity" and self.compositor is not None:
            self.compositor.fidelity = (None if message.get("exact") is True
                                        else str(message.get("reason") or "reduced depth"))
        if kind == "bye":
            self.report.server_bye = str(message.get("reason") or "server said goodbye")
        if kind == "floor":
            self.report.floor = message
            self._floor_changed.set()
        if kind == "refused" and len(self.report.refusals) < 16:
            self.report.refusals.append(message)

    def _on_hello(self, message: dict[str, Any]) -> None:
        if message.get("lossless"):
            bits = int(message.get("bits", 8))
            compositor = Compositor(int(message["width"]), int(message["height"]), bits,
                                    int(message.get("tile", 64)))
            self.report.bits = bits
            self.compositor = compositor
            if self._watchdog is None:
                self._watchdog = asyncio.ensure_future(self._watch_video())
            if self._origin is not None:
                compositor.set_origin(self._origin)
            self.control.send(json.dumps({"t": "caps", "formats": ["jxl", "png", "jls"]}))
        self.report.encoder = message.get("encoder")
        self.report.user = message.get("user")
        self.report.role = message.get("role")
        self._hello.set()

    def _on_frame_announced(self, message: dict[str, Any]) -> None:
        compositor = self.compositor
        if compositor is None:
            return
        dirty = None
        if "dirty" in message:
            dirty = unpack_dirty(str(message["dirty"]), int(message["rows"]),
                                 int(message["cols"]))
        compositor.announce(int(message["pts"]), dirty)

    def _on_tile_message(self, data: str | bytes) -> None:
        compositor = self.compositor
        try:
            tile = self._reassembler.add(data if isinstance(data, bytes)
                                         else data.encode("utf-8", "surrogatepass"))
        except ProtocolError:
            self.report.malformed_tiles += 1
            return
        if tile is None or compositor is None:
            return
        self.report.tiles_received += 1
        self.report.tile_bytes += len(tile.payload)
        reply = compositor.add_tile(tile)
        if self.control is not None and self.control.readyState == "open":
            self.control.send(json.dumps(reply))

    def send(self, message: dict[str, Any]) -> None:
        """Send one control message (input events, pings) once the channel is open."""
        if self.control is None or self.control.readyState != "open":
            raise ClientError("the control channel is not open yet")
        self.control.send(json.dumps(message))

    async def wait_floor(self, check: Any, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until the newest ``floor`` message satisfies ``check(message)``."""
        deadline = time.monotonic() + timeout_s
        while self.report.floor is None or not check(self.report.floor):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientError(f"floor state not reached; last: {self.report.floor}")
            self._floor_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._floor_changed.wait()
        return self.report.floor

    async def wait_control_open(self, timeout_s: float = 10.0) -> None:
        """Wait until the server's hello arrived on the control channel."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._hello.wait()
        except TimeoutError:
            raise ClientError("the control channel did not open") from None

    async def next_frame(self, timeout_s: float = 10.0) -> np.ndarray:
        """Receive and decode the next frame; returns it as BGR and keeps it in ``last_frame``."""
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives as the frame does, and a frame pump cancelled that way ran for ever.
            async with asyncio.timeout(timeout_s):
                frame = await self._track.recv()
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
        if self.compositor is not None:
            rtp = self._rtp_timestamp(frame.pts)
            await self._await_announcement(rtp, 0.25)
            if self.compositor.show_video(rtp, image[..., ::-1]) is None:
                self._drop_unreported = True  # the compositor dropped every exact tile
                self._ask_for_refresh()
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

    async def _watch_video(self) -> None:
        """Ask for an IDR when the video lost track: an announced change whose frame never
        arrived (packets lost; aiortc's jitter buffer then stalls), or an unknown frame shown."""
        while True:
            await asyncio.sleep(0.1)
            compositor = self.compositor
            if compositor is not None and (compositor.overdue() or self._drop_unreported or (
                    compositor.shown_pts is None and self.report.frames > 0)):
                self._ask_for_refresh()

    def _ask_for_refresh(self) -> None:
        # Without an identified frame on screen no tile can be drawn; a still desktop sends no
        # new frames by itself, so ask for the picture again (at most twice a second). A drop
        # of exact tiles is reported once it is sent: the server thinks them verified and would
        # never refine them again (the watch loop retries one the rate limit held back).
        now = time.monotonic()
        if now - self._refresh_asked >= 0.5 and self.control is not None \
                and self.control.readyState == "open":
            self._refresh_asked = now
            message: dict[str, Any] = {"t": "refresh"}
            if self._drop_unreported:
                message["dropped"] = True
                self._drop_unreported = False
            self.control.send(json.dumps(message))

    async def _await_announcement(self, rtp: int, timeout_s: float) -> None:
        # The frame's announcement travels on another channel: give it a moment.
        deadline = time.monotonic() + timeout_s
        while self.compositor is not None and not self.compositor.is_announced(rtp):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._announced.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._announced.wait()

    def _rtp_timestamp(self, pts: int) -> int:
        # aiortc's receiver hands out RTP time minus the first timestamp it received; add
        # that back (the server's origin is in absolute RTP time).
        receivers = self.pc.getReceivers()
        mapper = getattr(receivers[0], "_RTCRtpReceiver__timestamp_mapper", None) \
            if receivers else None
        first = getattr(mapper, "_origin", None)
        return (pts + (first if isinstance(first, int) else 0)) & _U32

    async def until_lossless(self, timeout_s: float = 30.0) -> ViewerReport:
        """Keep receiving until the server has verified every tile exact (``report.lossless``);
        raises ClientError if that has not happened within ``timeout_s``."""
        if self.compositor is None:
            await self.wait_control_open(timeout_s)
        if self.compositor is None:
            raise ClientError("the server does not refine to lossless (started with "
                              "--lossless off?)")
        started = time.monotonic()
        pump = asyncio.ensure_future(self._pump())
        try:
            while not self.compositor.lossless:
                if pump.done():
                    pump.result()
                    raise ClientError("the video track ended before lossless")
                if time.monotonic() - started > timeout_s:
                    raise NotLossless(
                        f"not lossless after {timeout_s:.0f} s: "
                        f"{self.compositor.coverage:.0%} of tiles verified"
                        + (f"; {self.compositor.fidelity}" if self.compositor.fidelity
                           else ""))
                await asyncio.sleep(0.01)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await pump
        self.report.lossless = True
        if self.report.first_frame_s is not None:
            self.report.time_to_lossless_s = time.monotonic() - self._started
        return self.report

    async def _pump(self) -> None:
        while True:
            await self.next_frame(timeout_s=3600)

    def framebuffer(self) -> np.ndarray:
        """What this viewer shows: RGB uint8 (or uint16 grey for a 16-bit desktop)."""
        if self.compositor is not None:
            return self.compositor.framebuffer()
        if self.last_frame is None:
            raise ClientError("no frame received yet")
        return np.ascontiguousarray(self.last_frame[..., ::-1])

    async def close(self) -> None:
        """Close the peer connection (the server frees the session)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        with contextlib.suppress(Exception):
            await self.pc.close()
