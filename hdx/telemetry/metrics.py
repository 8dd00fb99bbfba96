"""The Prometheus export behind ``/metrics``: one registry per server (embedding programs may
run several), histograms for latencies in seconds, counters for frames, bytes and packets.

Labels stay bounded: ``stage``, ``outcome``, ``role``, ``cause`` and ``encoder`` take a handful
of values; per-session gauges (``hdx_session_*``, labelled ``session``, ``user``, ``role``) are
produced at scrape time from the live sessions only (at most ``max_sessions``), so a session
that leaves leaves no series behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# *_created series double every counter's lines and say nothing a dashboard needs.
disable_created_metrics()  # type: ignore[no-untyped-call]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0,
                   5.0)
CODEC_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5)
LOSSLESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
SESSION_GAUGES = {
    "experience_score": "Experience score 0..100 (docs/telemetry.md)",
    "glass_to_glass_p50_seconds": "Median glass-to-glass latency over the last window",
    "frames_per_second": "Frames presented per second by the client (sent, before reports)",
    "bitrate_bits_per_second": "Video bitrate sent",
    "round_trip_seconds": "RTCP round-trip time",
    "packet_loss_ratio": "Share of video packets lost",
    "lossless": "1 when every tile is verified exact, else 0",
}


class ServerMetrics:
    """Every metric of one server; sessions feed it, ``/metrics`` renders it."""

    def __init__(self, live_sessions: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.glass_to_glass = Histogram(
            "hdx_glass_to_glass_latency_seconds",
            "Frame captured on the server to presented by the client", registry=r,
            buckets=LATENCY_BUCKETS)
        self.input_to_photon = Histogram(
            "hdx_input_to_photon_latency_seconds",
            "Input event sent by the client to the first presented frame showing its effect",
            registry=r, buckets=LATENCY_BUCKETS)
        self.encode = Histogram("hdx_encode_duration_seconds", "Video encode time per frame",
                                ["encoder"], registry=r, buckets=CODEC_BUCKETS)
        self.decode = Histogram("hdx_client_decode_duration_seconds",
                                "Client decode time per frame (mean over each report)",
                                registry=r, buckets=CODEC_BUCKETS)
        self.time_to_lossless = Histogram(
            "hdx_time_to_lossless_seconds",
            "From the last change of the screen to every tile verified exact", registry=r,
            buckets=LOSSLESS_BUCKETS)
        self.frames = Counter("hdx_frames", "Video frames by stage: sent, skipped (server), "
                              "decoded, dropped (client decoder), presented (client)",
                              ["stage"], registry=r)
        self.video_bytes = Counter("hdx_video_sent_bytes", "Encoded video bytes sent",
                                   registry=r)
        self.packets = Counter("hdx_client_packets", "Video packets as the client saw them",
                               ["outcome"], registry=r)
        self.sessions = Counter("hdx_sessions", "Sessions started", ["role"], registry=r)
        self.reports = Counter("hdx_client_reports", "Client experience reports accepted",
                               registry=r)
        self.alerts = Counter("hdx_experience_alerts", "Experience alerts logged, by cause",
                              ["cause"], registry=r)
        r.register(_LiveSessions(live_sessions))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class _LiveSessions(Collector):
    """Gauges of the sessions alive at scrape time (``hdx_sessions_live``, ``hdx_session_*``)."""

    def __init__(self, live: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        rows = list(self._live())
        live = GaugeMetricFamily("hdx_sessions_live", "Sessions alive now")
        live.add_metric([], len(rows))
        yield live
        families = {name: GaugeMetricFamily(f"hdx_session_{name}", text,
                                            labels=["session", "user", "role"])
                    for name, text in SESSION_GAUGES.items()}
        for row in rows:
            labels = [row["session"], row["user"], row["role"]]
            for name, family in families.items():
                value = row.get(name)
                if value is not None:
                    family.add_metric(labels, float(value))
        yield from families.values()
