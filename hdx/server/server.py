"""The server object ops run and programs embed: one source, one capture hub, many viewers.

Ownership: HdxServer owns the capture hub, the encode executor, the HTTP site and every
session; ``stop()`` closes them all and waits for them. Session shutdowns that start inside
aiortc callbacks run as tasks the server keeps and awaits. ``drain()`` comes before ``stop()``
when ops stop the service: no new viewers, a goodbye to each one, a bounded wait for them to go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from hdx.config import Config
from hdx.errors import ConfigError, HdxError, OfferError
from hdx.lossless.refiner import PARALLEL_WHEN_STILL
from hdx.security.access import Gatekeeper
from hdx.security.audit import AuditLog
from hdx.security.exposure import Exposure, plan_exposure
from hdx.security.identity import Identity
from hdx.security.tls import TlsSetup, server_tls
from hdx.server.app import build_app
from hdx.server.capture import CaptureHub
from hdx.server.floor_keeper import FloorKeeper
from hdx.sources.base import Frame, FrameSource, InputEvent
from hdx.sources.push import PushSource
from hdx.telemetry.metrics import ServerMetrics
from hdx.video.selection import EncoderChoice, select_encoder
from hdx.webrtc.session import LOCAL_IDENTITY, ViewerSession

log = logging.getLogger(__name__)
_MAX_MONITORS = 16
"""Monitor captures one server opens at most (each holds an X connection and a thread)."""
_REVOCATION_CHECK_S = 1.0
"""How often open sessions are checked against the revocation list."""
TELEMETRY_TICK_S = 1.0
"""How often each session's experience is judged (and told to its client)."""


class HdxServer:
    """Serve ``source`` to browsers and Python clients over WebRTC.

    Use ``async with HdxServer(source, config):`` or ``await start()`` / ``await stop()``.
    Embedding programs that produce numpy frames use :meth:`for_frames` and :meth:`push_frame`.
    """

    def __init__(
        self,
        source: FrameSource,
        config: Config | None = None,
        encoder: EncoderChoice | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or Config()
        self.source = source
        env = os.environ if environ is None else environ
        self.exposure: Exposure = plan_exposure(self.config)
        """Whether TLS and tokens are on, decided (or refused) before anything listens."""
        self.gatekeeper = Gatekeeper(self.config, env)
        self.audit = AuditLog(Path(self.config.audit_log) if self.config.audit_log else None)
        self.floor = FloorKeeper(self.config.single_controller, self.audit,
                                 lambda: list(self.sessions.values()))
        self.tls: TlsSetup | None = None
        self.hub = CaptureHub(source, self.config.fps)
        self.encoder = encoder
        self.sessions: dict[str, ViewerSession] = {}
        self.started_at = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                            thread_name_prefix="hdx-encode")
        # Threads for every viewer's lossless tiles: a refiner uses one while video moves (so
        # refinement never takes more than a core from capture and video) and both while the
        # screen is still (the video encoder is then idle).
        self._refine_executor = ThreadPoolExecutor(max_workers=PARALLEL_WHEN_STILL,
                                                   thread_name_prefix="hdx-refine")
        self._runner: web.AppRunner | None = None
        self._closing_tasks: set[asyncio.Task[None]] = set()
        self._port: int | None = None
        self._draining = False
        self._monitor_hubs: dict[str, CaptureHub] = {}
        """One capture per monitor a viewer asked for by name (``?monitor=``)."""
        self._revocation_task: asyncio.Task[None] | None = None
        self._telemetry_task: asyncio.Task[None] | None = None
        self.metrics = ServerMetrics(
            lambda: [s.telemetry.gauges() for s in list(self.sessions.values())])
        """Prometheus metrics of this server (``/metrics``; docs/telemetry.md)."""

    @classmethod
    def for_frames(
        cls,
        width: int,
        height: int,
        config: Config | None = None,
        on_input: Any = None,
    ) -> HdxServer:
        """A server that shows the frames a program hands to :meth:`push_frame`.

        ``on_input`` (optional) is called with each remote :data:`~hdx.InputEvent`.
        """
        return cls(PushSource(width, height, on_input=on_input), config)

    def push_frame(self, frame: Frame) -> None:
        """Show ``frame`` (BGRA, BGR or grey uint8 of the declared size). Any thread may call."""
        if not isinstance(self.source, PushSource):
            raise ConfigError("push_frame() needs a server made with HdxServer.for_frames()")
        self.source.push(frame)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Choose the encoder (if not given), set up TLS and tokens, and start listening."""
        loop = asyncio.get_running_loop()
        if self.exposure.tls:
            self.tls = await loop.run_in_executor(
                self._executor, server_tls, self.gatekeeper.state_dir, self.config.host,
                self.config.tls_cert, self.config.tls_key)
        if self.exposure.tokens:
            _ = self.gatekeeper.secret  # a broken secret file stops start-up, not a join
        if self.encoder is None:
            self.encoder = await loop.run_in_executor(
                self._executor, select_encoder, self.config.encoder)
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port,
                           ssl_context=self.tls.context if self.tls else None)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}; "
                "choose another --port or --host") from exc
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self.config.port
        width, height = self.source.size
        log.info("hdx serving %dx%d at %s (encoder %s; %s)", width, height, self.url,
                 self.encoder.codec, self.exposure.describe())
        if self.tls is not None:
            log.info("TLS certificate %s (%s), SHA-256 fingerprint %s", self.tls.cert_path,
                     "self-signed" if self.tls.self_signed else "operator's",
                     self.tls.fingerprint)
        for warning in self.exposure.warnings:
            log.warning("INSECURE: %s", warning)
        self._revocation_task = loop.create_task(self._close_revoked(),
                                                 name="hdx-revocations")
        self._telemetry_task = loop.create_task(self._tick_telemetry(), name="hdx-telemetry")

    @property
    def port(self) -> int:
        """The port actually bound (differs from the config when it asked for port 0)."""
        return self._port or self.config.port

    @property
    def url(self) -> str:
        """The URL of the web client."""
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.exposure.tls else 'http'}://{host}:{self.port}/"

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` or :meth:`stop` began: offers get 503, ``/readyz`` too."""
        return self._draining

    async def drain(self, timeout_s: float, cut_short: asyncio.Event | None = None) -> int:
        """Stop taking viewers, say ``bye`` to each, wait up to ``timeout_s`` (or until
        ``cut_short`` is set) for them to leave, then close the rest; returns how many were
        closed by force. A viewer told why reconnects elsewhere instead of staring at a frozen
        picture. Listening goes on (probes see 503) until :meth:`stop`."""
        self._draining = True
        loop = asyncio.get_running_loop()
        began = loop.time()
        told = list(self.sessions.values())
        for session in told:
            session.say_goodbye("server shutting down")
        log.info("draining: refusing new viewers; told %d viewer(s) the server is shutting "
                 "down; waiting up to %.1f s for them to leave", len(told), timeout_s)
        deadline = began + timeout_s
        while self.sessions and not (cut_short is not None and cut_short.is_set()):
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(0.05, left))
        forced = self._forget_sessions("server shutting down")
        await asyncio.gather(*(s.close() for s in forced))
        log.info("stopping: closing %d session(s) by force after %.1f s of draining",
                 len(forced), loop.time() - began)
        return len(forced)

    async def stop(self) -> None:
        """Close every session, stop listening and capturing, free the executor."""
        self._draining = True  # an offer arriving now would make a session nobody closes
        for task in (self._revocation_task, self._telemetry_task):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        self._revocation_task = self._telemetry_task = None
        await asyncio.gather(*(s.close() for s in self._forget_sessions("server stopped")))
        if self._closing_tasks:
            await asyncio.wait(list(self._closing_tasks))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.hub.close()
        for hub in self._monitor_hubs.values():
            await hub.close()
        self._monitor_hubs.clear()
        self._executor.shutdown(wait=True)
        self._refine_executor.shutdown(wait=True)
        self.audit.close()

    async def __aenter__(self) -> HdxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- sessions ------------------------------------------------------------------------------
    async def accept_offer(self, offer_sdp: str, monitor: str | None = None,
                           identity: Identity = LOCAL_IDENTITY) -> tuple[str, str]:
        """Create a session for an SDP offer; returns ``(answer_sdp, session_id)``.

        ``monitor`` names one monitor of a multi-monitor desktop (see :meth:`monitors`) to
        watch instead of the whole desktop: its own capture, video track and input offset.
        ``identity`` is who the HTTP layer found the viewer to be (its role decides input).
        """
        if self._draining:
            raise OfferError("server is shutting down", status=503)
        if self.encoder is None:
            raise OfferError("the server is still starting", status=503)
        if len(self.sessions) >= self.config.max_sessions:
            raise OfferError(f"the server already serves {len(self.sessions)} viewers, its "
                             "limit (max_sessions); try again later", status=503)
        hub = self.hub if monitor is None else self._hub_for_monitor(monitor)
        session_id = secrets.token_hex(8)
        session = ViewerSession(session_id, hub, self.encoder, self.config, self._executor,
                                on_closed=self._session_ended,
                                refine_executor=self._refine_executor, identity=identity,
                                floor=self.floor, audit=self.audit, metrics=self.metrics)
        self.sessions[session_id] = session
        try:
            answer = await session.answer(offer_sdp)
        except BaseException:
            self.sessions.pop(session_id, None)
            await session.close()
            raise
        log.info("session %s: answered offer (%d viewer(s))", session_id, len(self.sessions))
        self.metrics.sessions.labels(identity.role).inc()
        self.audit.record("join", identity, session=session_id, monitor=monitor)
        return answer, session_id

    def monitors(self) -> list[dict[str, Any]]:
        """The desktop's monitors (``/api/monitors``); one "screen" for single-screen sources."""
        listing = getattr(self.source, "monitors", None)
        if callable(listing):
            try:
                return [{"name": m.name, "x": m.x, "y": m.y, "width": m.width,
                         "height": m.height, "primary": m.primary} for m in listing()]
            except HdxError as exc:
                log.warning("cannot list monitors: %s", exc)
        width, height = self.source.size
        return [{"name": "screen", "x": 0, "y": 0, "width": width, "height": height,
                 "primary": True}]

    def _hub_for_monitor(self, name: str) -> CaptureHub:
        hub = self._monitor_hubs.get(name)
        if hub is not None:
            return hub
        make = getattr(self.source, "for_monitor", None)
        if not callable(make):
            raise OfferError(f"this desktop has no monitor {name!r} (it is a single screen)",
                             status=404)
        if len(name) > 64 or len(self._monitor_hubs) >= _MAX_MONITORS:
            raise OfferError(f"monitor {name[:64]!r} cannot be opened", status=404)
        try:
            source = make(name)
        except HdxError as exc:
            raise OfferError(str(exc), status=404) from exc
        hub = self._monitor_hubs[name] = CaptureHub(source, self.config.fps)
        log.info("monitor %s: capturing %dx%d on its own", name, *source.size)
        return hub

    def _forget_sessions(self, reason: str) -> list[ViewerSession]:
        """Take every session out of the registry (audited); the caller closes them."""
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for session in sessions:
            self.audit.record("leave", session.identity, session=session.id, reason=reason,
                              seconds=round(time.monotonic() - session.created, 1))
        return sessions

    def _session_ended(self, session: ViewerSession, reason: str = "left") -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        self.audit.record("leave", session.identity, session=session.id, reason=reason,
                          seconds=round(time.monotonic() - session.created, 1))
        self.floor.session_left(session, self.sessions.values())
        task = asyncio.get_running_loop().create_task(session.close(),
                                                      name=f"hdx-close-{session.id}")
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    async def _close_revoked(self) -> None:
        """End sessions whose token was revoked: input stops at once, the client is told
        (``bye``), and the session is closed at the next check (within about 2 s)."""
        told: set[str] = set()
        while True:
            await asyncio.sleep(_REVOCATION_CHECK_S)
            for session in list(self.sessions.values()):
                if session.id in told:
                    self._session_ended(session, reason="token revoked")
                elif not self.gatekeeper.still_valid(session.identity):
                    self.audit.record("revoked", session.identity, session=session.id,
                                      reason="token revoked: session closed")
                    session.end_access("access revoked")
                    told.add(session.id)
            told &= set(self.sessions)

    async def _tick_telemetry(self) -> None:
        """Judge every session's experience once a second; one failing session's tick is
        logged and the others go on."""
        while True:
            await asyncio.sleep(TELEMETRY_TICK_S)
            for session in list(self.sessions.values()):
                try:
                    await session.telemetry_tick()
                except Exception:
                    log.warning("session %s: telemetry tick failed", session.id, exc_info=True)

    def handle_input(self, event: InputEvent) -> None:
        """Inject an input event as if a viewer sent it (for embedding programs and tests)."""
        self.hub.handle_input(event)

    def session_summaries(self, history: bool = False) -> list[dict[str, Any]]:
        """Per-viewer facts for ``/api/sessions``: state, video counters, bitrate, input,
        lossless state and experience telemetry (with ``history``: the last two minutes of
        per-second points, for the dashboard's sparklines)."""
        out = []
        for session in self.sessions.values():
            video = session.track.stats
            identity = session.identity
            out.append({
                "id": session.id,
                "user": identity.user,
                "role": identity.role,
                "token_id": identity.token_id,
                "in_control": self.floor.in_control(identity),
                "state": session.connection_state,
                "age_s": round(time.monotonic() - session.created, 1),
                "encoder": session.track.encoder_name,
                "frames_sent": video.frames_sent,
                "frames_skipped": video.frames_skipped,
                "bytes_sent": video.bytes_sent,
                "keyframes": dict(video.keyframes),
                "keyframe_requests": video.keyframe_requests,
                "receiver_estimate_bps": video.remb_bps,
                "target_bitrate_bps": video.target_bitrate_bps,
                "last_encode_ms": round(video.last_encode_ms, 2),
                "input_events": session.stats.input_events,
                "input_refused": session.stats.input_refused,
                "malformed_messages": session.stats.malformed_messages,
                "rate_limited": session.stats.rate_limited,
                "lossless": (session.refiner.summary() if session.refiner is not None
                             else None),
                "telemetry": session.telemetry.summary(history),
            })
        return out

    def readiness(self) -> tuple[bool, str]:
        """Whether a new viewer would be served now, and if not why (``/readyz``).

        A source may have ``health() -> str | None`` (None: healthy; else the reason it is
        not, e.g. the X display went away); it runs on the event loop, so it must be quick.
        """
        if self._draining:
            return False, "server is shutting down"
        if self.encoder is None or self._runner is None:
            return False, "the server is still starting"
        check = getattr(self.source, "health", None)
        if callable(check):
            try:
                problem = check()
            except Exception as exc:  # a broken probe means we cannot vouch for the source
                log.warning("source health check failed", exc_info=True)
                problem = f"source health check failed: {type(exc).__name__}: {exc}"
            if problem is not None:
                return False, f"source unhealthy: {problem}"
        return True, "accepting viewers"

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports."""
        width, height = self.source.size
        return {
            "status": "ok",
            "draining": self._draining,
            "encoder": self.encoder.codec if self.encoder else None,
            "encoder_reason": self.encoder.reason if self.encoder else None,
            "sessions": len(self.sessions),
            "tls": self.exposure.tls,
            "tokens_required": self.exposure.tokens,
            "width": width,
            "height": height,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "capture": {
                "grabs": self.hub.stats.grabs,
                "published": self.hub.stats.published,
                "viewers": self.hub.subscriber_count,
            },
        }
