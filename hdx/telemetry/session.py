"""One viewer's experience: client reports and server ticks over a sliding window.

The session feeds :meth:`SessionTelemetry.on_client_stats` with each ``stats`` report (the
client's glass-to-glass, input-to-photon, decode and present figures) and calls
:meth:`SessionTelemetry.tick` once a second with what the server saw (frames and bytes sent,
encode time, RTCP round trip and loss, lossless state). Each tick judges the last
``WINDOW_S`` seconds (:func:`hdx.telemetry.experience.judge`), keeps a point of history for
the dashboard, and may raise an alert.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from hdx.telemetry.alerts import ExperienceAlarm
from hdx.telemetry.experience import Evidence, Verdict, judge, unpresented_share
from hdx.telemetry.metrics import ServerMetrics
from hdx.webrtc.control import ClientStats

WINDOW_S = 6.0
"""Seconds of reports and ticks one verdict looks at (three client reports)."""
HISTORY_POINTS = 120
"""Per-second points kept for the dashboard's sparklines (two minutes)."""
_MAX_REPORTS = 16
_MAX_SAMPLES = 512


@dataclass(frozen=True, slots=True)
class RemoteReport:
    """What the client's RTCP receiver reports say (aiortc's ``remote-inbound-rtp``)."""

    rtt_ms: float | None
    loss_share: float | None
    """Share of packets lost since the previous receiver report (RTCP fraction lost)."""
    jitter_ms: float | None


@dataclass(frozen=True, slots=True)
class ServerTick:
    """The server's view of one viewer at one instant (cumulative counters)."""

    frames_sent: int
    frames_skipped: int
    bytes_sent: int
    encode_ms_total: float
    lossless: bool | None
    """None: refinement is off for this session."""
    lossless_events: int = 0
    ttl_ms: tuple[float, ...] = ()
    """Newest time-to-lossless values, oldest first (the refiner keeps a bounded list)."""


class SessionTelemetry:
    """Measurements, verdicts and history of one session."""

    def __init__(self, session_id: str, user: str, role: str, *, fps: int, encoder: str,
                 metrics: ServerMetrics | None = None, alert_after_s: float = 10.0) -> None:
        self.session_id = session_id
        self.user = user
        self.role = role
        self._metrics = metrics
        self._encoder = encoder
        self._frame_interval_ms = 1000.0 / max(fps, 1)
        self._reports: deque[tuple[float, ClientStats]] = deque(maxlen=_MAX_REPORTS)
        self._g2g: deque[tuple[float, float]] = deque(maxlen=_MAX_SAMPLES)
        self._i2p: deque[tuple[float, float]] = deque(maxlen=64)
        self._ttl: deque[float] = deque(maxlen=16)
        self._ticks: deque[tuple[float, ServerTick]] = deque(maxlen=int(WINDOW_S) + 2)
        self._remote: RemoteReport | None = None
        self._lossless_events_seen = 0
        self._lossy_ticks: deque[bool] = deque(maxlen=int(WINDOW_S))
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self.verdict: Verdict | None = None
        self.evidence: Evidence | None = None
        self.reports = 0
        self.alarm = ExperienceAlarm(session_id, user, alert_after_s, self._count_alert)
        self.last_alert: dict[str, Any] | None = None
        self._now = 0.0
        """The newest time seen (reports and ticks): what summaries are "now" to."""
        self.client: dict[str, Any] | None = None
        """The newest report's device facts (decoder, screen, pixel ratio, hidden)."""

    # -- inputs ----------------------------------------------------------------------------
    def on_client_stats(self, report: ClientStats, now: float | None = None) -> None:
        """A ``stats`` message from the client."""
        now = time.monotonic() if now is None else now
        self._now = max(self._now, now)
        self._reports.append((now, report))
        self.reports += 1
        self._g2g.extend((now, v) for v in report.g2g_ms)
        self._i2p.extend((now, v) for v in report.i2p_ms)
        self.client = {
            "decoder": report.decoder, "hidden": report.hidden,
            "sw": report.screen[0] if report.screen else None,
            "sh": report.screen[1] if report.screen else None,
            "dpr": report.device_pixel_ratio, "presented": report.presented,
            "decoded": report.decoded, "dropped": report.dropped,
        }
        m = self._metrics
        if m is None:
            return
        m.reports.inc()
        for value in report.g2g_ms:
            m.glass_to_glass.observe(value / 1000)
        for value in report.i2p_ms:
            m.input_to_photon.observe(value / 1000)
        if report.decode_ms is not None and report.decoded:
            m.decode.observe(report.decode_ms / 1000)
        m.frames.labels("presented").inc(report.presented)
        m.frames.labels("decoded").inc(report.decoded)
        m.frames.labels("dropped").inc(report.dropped)
        m.packets.labels("received").inc(report.received)
        m.packets.labels("lost").inc(report.lost)

    def on_frame_encoded(self, encode_ms: float) -> None:
        """One frame left the encoder (for the encode-time histogram)."""
        if self._metrics is not None:
            self._metrics.encode.labels(self._encoder).observe(encode_ms / 1000)

    def on_remote_report(self, remote: RemoteReport | None) -> None:
        self._remote = remote

    # -- judging ---------------------------------------------------------------------------
    def tick(self, server: ServerTick, now: float | None = None) -> Verdict:
        """Judge the last window; keep a history point; maybe alert."""
        now = time.monotonic() if now is None else now
        self._now = max(self._now, now)
        previous = self._ticks[-1][1] if self._ticks else None
        self._ticks.append((now, server))
        self._count_server(previous, server)
        if server.lossless is not None:
            self._lossy_ticks.append(not server.lossless)
        evidence = self._evidence(now)
        verdict = judge(evidence)
        self.evidence, self.verdict = evidence, verdict
        self.last_alert = self.alarm.observe(now, verdict, self._facts()) or self.last_alert
        self.history.append({
            "t": round(time.time(), 1), "score": verdict.score,
            "g2g_ms": _round(evidence.g2g_ms), "fps": self._recent_fps(now),
            "kbps": _round(self._kbps(), 0), "lossless": server.lossless,
        })
        return verdict

    def _count_server(self, previous: ServerTick | None, server: ServerTick) -> None:
        new_events = server.lossless_events - self._lossless_events_seen
        if new_events > 0:
            fresh = server.ttl_ms[-new_events:] if server.ttl_ms else ()
            self._ttl.extend(fresh)
            if self._metrics is not None:
                for value in fresh:
                    self._metrics.time_to_lossless.observe(value / 1000)
            self._lossless_events_seen = server.lossless_events
        if self._metrics is None:
            return
        before = previous or ServerTick(0, 0, 0, 0.0, None)
        self._metrics.frames.labels("sent").inc(max(server.frames_sent - before.frames_sent, 0))
        self._metrics.frames.labels("skipped").inc(
            max(server.frames_skipped - before.frames_skipped, 0))
        self._metrics.video_bytes.inc(max(server.bytes_sent - before.bytes_sent, 0))

    def _evidence(self, now: float) -> Evidence:
        since = now - WINDOW_S
        reports = [r for t, r in self._reports if t >= since]
        g2g = [v for t, v in self._g2g if t >= since]
        sent_fps, skipped_fps, encode_ms = self._server_rates()
        remote = self._remote
        report_s = sum(r.period_ms for r in reports) / 1000
        presented = decoded = dropped = None
        loss_pct = None
        decode_ms = jitter_ms = jb_ms = None
        hidden = False
        if reports and report_s > 0:
            presented = sum(r.presented for r in reports) / report_s
            decoded = sum(r.decoded for r in reports) / report_s
            dropped = sum(r.dropped for r in reports) / report_s
            packets = sum(r.received + r.lost for r in reports)
            if packets:
                loss_pct = 100 * sum(r.lost for r in reports) / packets
            decode_ms = _mean([r.decode_ms for r in reports if r.decode_ms is not None])
            jitter_ms = _mean([r.jitter_ms for r in reports if r.jitter_ms is not None])
            jb_ms = _mean([r.jitter_buffer_ms for r in reports if r.jitter_buffer_ms is not None])
            hidden = reports[-1].hidden
        if remote is not None:
            if loss_pct is None and remote.loss_share is not None:
                loss_pct = 100 * remote.loss_share
            if jitter_ms is None:
                jitter_ms = remote.jitter_ms
        return Evidence(
            g2g_ms=statistics.median(g2g) if g2g else None, sent_fps=sent_fps,
            presented_fps=presented, decoded_fps=decoded, decoder_dropped_fps=dropped,
            loss_pct=loss_pct, rtt_ms=remote.rtt_ms if remote else None, jitter_ms=jitter_ms,
            jitter_buffer_ms=jb_ms, encode_ms=encode_ms,
            frame_interval_ms=self._frame_interval_ms, skipped_fps=skipped_fps,
            decode_ms=decode_ms, hidden=hidden,
            ttl_ms=statistics.median(self._ttl) if self._ttl else None)

    def _server_rates(self) -> tuple[float, float, float | None]:
        """Frames sent and skipped per second, and mean encode ms, over the window."""
        if len(self._ticks) < 2:
            return 0.0, 0.0, None
        (t0, first), (t1, last) = self._ticks[0], self._ticks[-1]
        span = max(t1 - t0, 1e-3)
        sent = last.frames_sent - first.frames_sent
        encode = (last.encode_ms_total - first.encode_ms_total) / sent if sent > 0 else None
        return sent / span, (last.frames_skipped - first.frames_skipped) / span, encode

    def _kbps(self) -> float | None:
        if len(self._ticks) < 2:
            return None
        (t0, first), (t1, last) = self._ticks[-2], self._ticks[-1]
        return (last.bytes_sent - first.bytes_sent) * 8 / 1000 / max(t1 - t0, 1e-3)

    def _recent_fps(self, now: float) -> float | None:
        """Client-presented fps from the newest report (server-sent fps before one arrives)."""
        if self._reports and now - self._reports[-1][0] <= WINDOW_S:
            report = self._reports[-1][1]
            return round(report.presented * 1000 / report.period_ms, 1)
        return round(self._server_rates()[0], 1) if self._ticks else None

    def _count_alert(self, cause: str | None) -> None:
        if self._metrics is not None:
            self._metrics.alerts.labels(cause or "unknown").inc()

    # -- outputs ---------------------------------------------------------------------------
    def _facts(self) -> dict[str, Any]:
        e = self.evidence or Evidence()
        unpresented = unpresented_share(e)
        return {
            "g2g_ms": _round(e.g2g_ms), "rtt_ms": _round(e.rtt_ms),
            "loss_pct": _round(e.loss_pct, 2), "jitter_ms": _round(e.jitter_ms),
            "encode_ms": _round(e.encode_ms, 2), "decode_ms": _round(e.decode_ms, 2),
            "sent_fps": _round(e.sent_fps), "presented_fps": _round(e.presented_fps),
            "unpresented_pct": None if unpresented is None else round(100 * unpresented, 1),
            "hidden": e.hidden,
        }

    def experience(self) -> dict[str, Any]:
        """The ``experience`` message for the client's overlay."""
        verdict = self.verdict
        e = self.evidence or Evidence()
        now = self._now
        i2p = [v for t, v in self._i2p if t >= now - WINDOW_S]
        return {
            "score": verdict.score if verdict else None,
            "grade": verdict.grade if verdict else None,
            "cause": verdict.cause if verdict else None,
            "g2g_ms": _round(e.g2g_ms), "i2p_ms": _round(statistics.median(i2p) if i2p else None),
            "fps": self._recent_fps(now), "kbps": _round(self._kbps(), 0),
            "rtt_ms": _round(e.rtt_ms), "loss_pct": _round(e.loss_pct, 2),
            "ttl_ms": _round(e.ttl_ms, 0), "lossy_pct": self._lossy_pct(),
            "decode_ms": _round(e.decode_ms, 2),
        }

    def _lossy_pct(self) -> float | None:
        """Share of recent time some visible tile was lossy: the client's view when it reports
        one, else the server's (any tile not yet verified)."""
        shares = [r.lossy_share for _, r in self._reports if r.lossy_share is not None]
        if shares:
            return round(100 * shares[-1], 1)
        if self._lossy_ticks:
            return round(100 * sum(self._lossy_ticks) / len(self._lossy_ticks), 1)
        return None

    def summary(self, history: bool = False) -> dict[str, Any]:
        """The ``telemetry`` block of ``/api/sessions``."""
        now = self._now
        g2g = [v for t, v in self._g2g if t >= now - WINDOW_S]
        i2p = [v for t, v in self._i2p if t >= now - 60]
        experience = self.experience()
        out: dict[str, Any] = {
            **{k: experience[k] for k in ("score", "grade", "cause", "fps", "kbps", "rtt_ms",
                                          "loss_pct", "lossy_pct", "decode_ms")},
            "g2g_ms": _percentiles(g2g), "i2p_ms": _percentiles(i2p),
            "ttl_ms": {"p50": _round(statistics.median(self._ttl) if self._ttl else None, 0),
                       "n": len(self._ttl)},
            "jitter_ms": _round((self.evidence or Evidence()).jitter_ms),
            "encode_ms": _round((self.evidence or Evidence()).encode_ms, 2),
            "reports": self.reports, "alerts": self.alarm.alerts,
            "alerting": self.alarm.alerting, "client": self.client,
        }
        if history:
            out["history"] = {key: [point[key] for point in self.history]
                              for key in ("t", "score", "g2g_ms", "fps", "kbps", "lossless")}
        return out

    def gauges(self) -> dict[str, Any]:
        """This session's row for the ``hdx_session_*`` gauges."""
        e = self.evidence or Evidence()
        lossless = self.history[-1]["lossless"] if self.history else None
        kbps = self._kbps()
        return {
            "session": self.session_id, "user": self.user, "role": self.role,
            "experience_score": self.verdict.score if self.verdict else None,
            "glass_to_glass_p50_seconds": None if e.g2g_ms is None else e.g2g_ms / 1000,
            "frames_per_second": self._recent_fps(self._now),
            "bitrate_bits_per_second": None if kbps is None else kbps * 1000,
            "round_trip_seconds": None if e.rtt_ms is None else e.rtt_ms / 1000,
            "packet_loss_ratio": None if e.loss_pct is None else e.loss_pct / 100,
            "lossless": None if lossless is None else int(lossless),
        }


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(values)
    return {"p50": _round(statistics.median(ordered)),
            "p95": _round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
            "n": len(ordered)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
