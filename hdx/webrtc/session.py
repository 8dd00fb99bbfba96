"""One viewer: its peer connection, its video track and encoder, its control channel.

Lifetime: created by ``POST /api/offer``; closed when the peer fails or closes, when it never
connects within ``connect_timeout_s``, or when the server stops. Closing frees the peer, the
track, the encoder and the capture subscription; the session then removes itself from the
server's registry through ``on_closed``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from hdx.config import Config
from hdx.errors import OfferError, ProtocolError
from hdx.lossless.protocol import pack_dirty
from hdx.lossless.refiner import TileRefiner
from hdx.security.audit import AuditLog
from hdx.security.identity import LOCAL_USER, Identity
from hdx.security.limits import TokenBucket
from hdx.server.capture import CaptureHub
from hdx.sources.base import CursorImage, InputEvent, KeyEvent, PointerEvent
from hdx.telemetry.metrics import ServerMetrics
from hdx.telemetry.session import RemoteReport, ServerTick, SessionTelemetry
from hdx.video.selection import EncoderChoice
from hdx.webrtc import control
from hdx.webrtc.feedback import route_feedback
from hdx.webrtc.ice import addresses_for_bind, filter_remote_candidates, host_addresses, is_loopback
from hdx.webrtc.track import EncodedVideoTrack, SentFrame

if TYPE_CHECKING:
    from hdx.server.floor_keeper import FloorKeeper

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionStats:
    """Counters for the control channel."""

    input_events: int = 0
    """Input events injected into the desktop."""
    input_refused: int = 0
    """Input (and floor) messages dropped: a view-only session, or a controller without the
    floor."""
    malformed_messages: int = 0
    rate_limited: int = 0
    """Control messages dropped for exceeding ``max_control_messages_per_s``."""
    handler_errors: int = 0
    """Messages whose handling raised (a bug, logged): dropped, the session goes on."""
    pings: int = 0
    last_malformed_reason: str = ""


LOCAL_IDENTITY = Identity(LOCAL_USER, "control", None, "127.0.0.1")
"""Who a session is when nothing checked (embedding programs and tests that build sessions
directly)."""


class ViewerSession:
    """A browser or Python client watching (and possibly driving) the desktop."""

    def __init__(
        self,
        session_id: str,
        hub: CaptureHub,
        choice: EncoderChoice,
        config: Config,
        executor: Executor,
        on_closed: Callable[[ViewerSession], None],
        refine_executor: Executor | None = None,
        identity: Identity = LOCAL_IDENTITY,
        floor: FloorKeeper | None = None,
        audit: AuditLog | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.id = session_id
        self.identity = identity
        self.created = time.monotonic()
        self.stats = SessionStats()
        self._floor = floor
        self._audit = audit or AuditLog()
        rate = config.max_control_messages_per_s
        self._bucket = TokenBucket(rate, 2 * rate)
        self._refusals_told: set[str] = set()
        self._access_ended = False
        self._hub = hub
        self._choice = choice
        self._config = config
        self._on_closed = on_closed
        self._pc = RTCPeerConnection()
        self.track = EncodedVideoTrack(
            hub, choice, executor,
            max_bitrate_bps=config.bitrate_kbps * 1000,
            min_bitrate_bps=config.min_bitrate_kbps * 1000,
        )
        self.telemetry = SessionTelemetry(
            session_id, identity.user, identity.role, fps=config.fps, encoder=choice.codec,
            metrics=metrics, alert_after_s=config.telemetry_alert_after_s)
        """What this viewer experiences (client reports, server ticks, verdicts)."""
        self._untimed_input: tuple[int, float] | None = None
        """The oldest numbered input (serial, wall-clock injection time) no frame showed yet."""
        self.refiner: TileRefiner | None = None
        """Lossless refinement, when enabled and the client opens a ``tiles`` channel."""
        if config.lossless:
            self.refiner = TileRefiner(
                refine_executor or executor, self.send_control, quiet_ms=config.lossless_quiet_ms,
                budget_kbps=config.lossless_budget_kbps, buffer_kb=config.lossless_buffer_kb,
                max_pending=config.max_pending_tiles)
        self._control: Any = None
        self._last_refresh = 0.0
        self._closing = False
        self._connected = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._fidelity: str | None = None
        self._cursor_listening = False

    @property
    def connection_state(self) -> str:
        """aiortc's connection state: new, connecting, connected, failed or closed."""
        return str(self._pc.connectionState)

    async def answer(self, offer_sdp: str) -> str:
        """Apply the client's offer and return the SDP answer; raises OfferError if unusable."""
        pc = self._pc
        transceiver = pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(_h264_preferences())
        route_feedback(transceiver.sender, self.track)
        self.track.sender = transceiver.sender
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)

        addresses = addresses_for_bind(self._config.host, self._config.ice_host_addresses)
        if addresses is not None and all(is_loopback(a) for a in addresses):
            offer_sdp = filter_remote_candidates(offer_sdp, is_loopback)
        # aiortc's SDP handling raises whatever a malformed offer trips over (ValueError,
        # AssertionError, StopIteration inside a coroutine...): all of it is the client's
        # input being wrong, so all of it becomes a 400 with the reason.
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            answer = await pc.createAnswer()
        except Exception as exc:
            raise OfferError(f"the SDP offer could not be applied: {_describe(exc)}") from exc
        if answer is None or "H264/90000" not in answer.sdp:
            raise OfferError(
                "the offer has no video that hdx can send: it needs a receive-capable video "
                "m-line offering H.264 with packetization-mode=1"
            )
        try:
            if addresses is None:
                await pc.setLocalDescription(answer)
            else:
                with host_addresses(addresses):
                    await pc.setLocalDescription(answer)
        except Exception as exc:
            log.warning("session %s: answer could not be applied", self.id, exc_info=True)
            raise OfferError(f"the answer to this offer could not be set up: {_describe(exc)}"
                             ) from exc
        self._watchdog = asyncio.get_running_loop().create_task(
            self._close_if_not_connected(), name=f"hdx-session-{self.id}-watchdog")
        return str(pc.localDescription.sdp)

    # -- events --------------------------------------------------------------------------------
    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        log.info("session %s: connection %s", self.id, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed") and not self._closing:
            self._schedule_close()

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label == "tiles" and self.refiner is not None:
            self.refiner.attach(channel)
            channel.on("message", self._on_tiles_message)
            return
        if channel.label != "control":
            log.info("session %s: ignoring data channel %r", self.id, channel.label)
            return
        self._control = channel
        channel.on("message", self._on_control_message)
        self.track.on_sent = self._announce_frame
        self.track.on_origin = lambda rtp_origin: self.send_control(control.origin(rtp_origin))
        width, height = self._hub.source.size
        exact = getattr(self._hub.source, "exact_samples", None)
        bits = 16 if callable(exact) and exact() is not None else 8
        config = self._config
        channel.send(control.hello(self.id, self._choice.label, width, height,
                                   lossless=self.refiner is not None, bits=bits,
                                   user=self.identity.user, role=self.identity.role,
                                   watermark=config.watermark,
                                   single_controller=config.single_controller))
        if self._floor is not None:
            self._floor.session_joined(self)
        if self.track.rtp_origin is not None:
            channel.send(control.origin(self.track.rtp_origin))
        self._hub.on_cursor(self._send_cursor)
        self._cursor_listening = True
        # Frames sent before this channel opened were never announced: send the picture
        # again, so the client can tell which frame it is showing (and refinement can begin).
        self.track.request_refresh()

    def _on_tiles_message(self, data: str | bytes) -> None:
        # The tiles channel is server-to-client only.
        self._count_malformed("message on the server-to-client tiles channel")

    def _on_control_message(self, data: str | bytes) -> None:
        try:
            message = control.parse_control(data, self._config.max_control_message_bytes)
        except ProtocolError as exc:
            self._count_malformed(str(exc))
            return
        # Tile acks are exempt: each answers a tile we sent (so they are bounded by what we
        # send), and a dropped one would leave its tiles unverified for ever.
        if not isinstance(message, (control.TileAck, control.TileNack)) \
                and not self._bucket.allow():
            self.stats.rate_limited += 1
            if self.stats.rate_limited == 1:
                log.warning("session %s: more than %d control messages per second; the "
                            "excess is dropped and counted", self.id,
                            self._config.max_control_messages_per_s)
            return
        try:
            self._handle(message)
        except Exception:  # a bug handling one message must not tear down the peer
            self.stats.handler_errors += 1
            log.exception("session %s: handling a %s message failed; dropped", self.id,
                          type(message).__name__)

    def _handle(self, message: control.ControlMessage) -> None:
        if isinstance(message, control.Ping):
            self.stats.pings += 1
            self.send_control(control.pong(message, time.time()))
            return
        if isinstance(message, (control.Caps, control.TileAck, control.TileNack)):
            self._on_lossless_message(message)
            return
        if isinstance(message, control.Refresh):
            # The client lost track of the video (a frame it cannot identify, or announced
            # frames that never arrived): an IDR repairs both. Rate-limited, so a confused
            # client cannot make us spin.
            if message.dropped and self.refiner is not None:
                self.refiner.client_dropped_tiles()
            now = time.monotonic()
            if now - self._last_refresh >= 0.2:
                self._last_refresh = now
                self.track.request_keyframe("client refresh")
            return
        if isinstance(message, control.ClientStats):
            self.telemetry.on_client_stats(message)
            return
        if isinstance(message, control.FloorAction):
            if self._access_ended:
                self.stats.input_refused += 1
                return
            problem = self._floor.act(self, message) if self._floor is not None else None
            if problem is not None:
                self._refuse("floor", problem)
            return
        if isinstance(message, control.TaggedInput):
            self._inject(message.event, message.serial)
        else:
            self._inject(message, None)

    def _inject(self, message: InputEvent, serial: int | None) -> None:
        moving = isinstance(message, PointerEvent) and message.action == "move"
        if not self._may_inject(takes_floor=not moving):
            return
        width, height = self._hub.source.size
        self.stats.input_events += 1
        event = control.clamp_to_desktop(message, width, height)
        if self.refiner is not None and not isinstance(event, KeyEvent):
            self.refiner.focus = (event.x, event.y)
        try:
            self._hub.handle_input(event)
        except Exception:  # a source bug must not end the session
            log.exception("session %s: the source failed to handle %r", self.id, message)
            return
        # Moves are not timed: their visible effect, the cursor, is drawn by the client itself.
        if serial is not None and not moving and self._untimed_input is None:
            self._untimed_input = (serial, time.time())

    def _may_inject(self, takes_floor: bool) -> bool:
        if self._access_ended:
            self.stats.input_refused += 1
            return False
        if self._floor is None:
            return self.identity.can_control
        if self._floor.may_inject(self, takes_floor):
            return True
        if not self.identity.can_control:
            self._refuse("input", "this is a view-only session: input is not sent")
        else:
            holder = self._floor.floor.holder_user
            self._refuse("input", f"{holder} is in control; ask them to hand it over")
        return False

    def _refuse(self, what: str, reason: str) -> None:
        """Drop and count; the first refusal of each kind is logged, audited and told."""
        self.stats.input_refused += 1
        if what in self._refusals_told:
            return
        self._refusals_told.add(what)
        log.warning("session %s (%s, %s): %s refused: %s; further ones are counted silently",
                    self.id, self.identity.user, self.identity.role, what, reason)
        self._audit.record("input_refused", self.identity, session=self.id,
                           reason=f"{what}: {reason}")
        self.send_control(control.refused(what, reason))

    def _on_lossless_message(self, message: control.Caps | control.TileAck | control.TileNack
                             ) -> None:
        refiner = self.refiner
        if refiner is None:
            self._count_malformed("lossless message while refinement is off")
        elif isinstance(message, control.Caps):
            refiner.set_formats(message.formats)
        elif isinstance(message, control.TileAck):
            refiner.on_ack(message.id, message.digest)
        else:
            refiner.on_nack(message.id, message.reason)

    def _count_malformed(self, reason: str) -> None:
        self.stats.malformed_messages += 1
        self.stats.last_malformed_reason = reason
        if self.stats.malformed_messages == 1:
            log.warning("session %s: dropped malformed message (%s); further ones are counted "
                        "silently", self.id, reason)

    def _announce_frame(self, frame: SentFrame) -> None:
        self._check_fidelity(frame.frame.fidelity)
        # Announce first: the client must know what this frame changes before it can draw it.
        pts = frame.pts & 0xFFFFFFFF  # RTP time wraps; clients compare pts modulo 2**32
        self.send_control(control.frame_sent(pts, frame.captured_at, frame.keyframe, frame.size,
                                             pack_dirty(frame.changed), frame.changed.shape,
                                             self._input_shown_by(frame)))
        self.telemetry.on_frame_encoded(self.track.stats.last_encode_ms)
        if self.refiner is not None:
            self.refiner.on_frame_sent(pts, frame.frame, frame.changed)

    def _input_shown_by(self, frame: SentFrame) -> int | None:
        """The serial of the oldest untimed input when ``frame`` is the first captured after
        it that changed something (what input-to-photon times); else None."""
        pending = self._untimed_input
        if pending is None or frame.captured_at < pending[1] or not frame.changed.any():
            return None
        self._untimed_input = None
        return pending[0]

    async def telemetry_tick(self) -> None:
        """Once a second (the server calls it): read RTCP receiver reports, judge the recent
        window, and tell the client its experience."""
        self.telemetry.on_remote_report(await self._remote_report())
        video = self.track.stats
        refiner = self.refiner
        board = refiner.board if refiner is not None else None
        self.telemetry.tick(ServerTick(
            frames_sent=video.frames_sent, frames_skipped=video.frames_skipped,
            bytes_sent=video.bytes_sent, encode_ms_total=video.encode_ms_total,
            lossless=None if board is None else bool(board.all_verified),
            lossless_events=refiner.stats.lossless_events if refiner is not None else 0,
            ttl_ms=tuple(refiner.stats.time_to_lossless_ms) if refiner is not None else ()))
        self.send_control(control.experience(self.telemetry.experience()))

    async def _remote_report(self) -> RemoteReport | None:
        sender = self.track.sender
        if sender is None or self._pc.connectionState != "connected":
            return None
        try:
            report = await sender.getStats()
        except Exception:  # stats are best effort; a closing transport may raise
            log.debug("session %s: sender stats failed", self.id, exc_info=True)
            return None
        for stats in report.values():
            if getattr(stats, "type", None) == "remote-inbound-rtp":
                rtt = getattr(stats, "roundTripTime", None)
                lost = getattr(stats, "fractionLost", None)
                jitter = getattr(stats, "jitter", None)
                return RemoteReport(
                    rtt_ms=None if rtt is None else rtt * 1000,
                    loss_share=None if lost is None else lost / 256,  # RTCP's 8-bit fraction
                    jitter_ms=None if jitter is None else jitter / 90)  # 90 kHz RTP units
        return None

    def _send_cursor(self, shape: CursorImage) -> None:
        visible = shape.visible
        png = ""
        if visible:
            ok, encoded = cv2.imencode(".png", shape.pixels)
            visible = bool(ok)
            png = base64.b64encode(encoded.tobytes()).decode("ascii") if ok else ""
        self.send_control(control.cursor(png, shape.xhot, shape.yhot, visible, shape.serial))

    def _check_fidelity(self, reason: str | None) -> None:
        if reason != self._fidelity:
            self._fidelity = reason
            self.send_control(control.fidelity(reason))

    def end_access(self, reason: str) -> None:
        """Access was withdrawn (a revoked token): no more input from now on, and the client
        is told why; the server closes the session shortly after."""
        self._access_ended = True
        self.say_goodbye(reason)

    def say_goodbye(self, reason: str) -> None:
        """Tell the client the server is leaving (``bye``), if its control channel is open, so
        it can say so instead of showing a frozen picture and retrying."""
        self.send_control(control.bye(reason))

    def send_control(self, text: str) -> None:
        """Send one message on ``control`` if it is open (dropped otherwise: the client's
        ``hello`` and the floor state follow when it opens)."""
        channel = self._control
        if channel is not None and channel.readyState == "open":
            channel.send(text)

    def release_held_input(self) -> None:
        """Release every key and button remote input holds on this session's screen (when
        control changes hands, and when a session that drove closes)."""
        release = getattr(self._hub.source, "release_input", None)
        if callable(release):
            try:
                release()
            except Exception:
                log.warning("session %s: releasing held input failed", self.id, exc_info=True)

    # -- shutdown ------------------------------------------------------------------------------
    async def _close_if_not_connected(self) -> None:
        try:
            async with asyncio.timeout(self._config.connect_timeout_s):
                await self._connected.wait()
        except TimeoutError:
            log.warning("session %s: not connected after %.0f s; closing it", self.id,
                        self._config.connect_timeout_s)
            self._schedule_close()

    def _schedule_close(self) -> None:
        # Called from aiortc/pyee callbacks, which cannot await; the server owns the task.
        self._on_closed(self)

    async def close(self) -> None:
        """Free the peer, track, encoder and subscription (idempotent)."""
        if self._closing:
            return
        self._closing = True
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.wait([watchdog])
        self.track.stop()
        if self.refiner is not None:
            self.refiner.stop()
        if self._cursor_listening:
            self._hub.off_cursor(self._send_cursor)
        if self.stats.input_events:
            # Keys or buttons this viewer held must not stay down on the desktop.
            self.release_held_input()
        try:
            await self._pc.close()
        except Exception:  # a peer half-built from a rejected offer can fail to close
            log.debug("session %s: peer close failed", self.id, exc_info=True)
        log.info("session %s closed (%d frames sent)", self.id, self.track.stats.frames_sent)


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    if isinstance(exc, RuntimeError) and isinstance(exc.__cause__, StopIteration):
        text = "an SDP section is incomplete"
    return f"{type(exc).__name__}: {text}"[:300]


def _h264_preferences() -> list[Any]:
    """H.264 with packetization-mode=1 (what browsers decode), plus RTX for retransmission."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType == "video/H264"
            and c.parameters.get("packetization-mode") == "1"]
    rtx = [c for c in codecs if c.mimeType == "video/rtx"]
    return h264 + rtx
