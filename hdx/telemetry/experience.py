"""The experience score of one session, its grade, and the likely cause when it is poor.

The score is a weighted penalty, documented in docs/telemetry.md::

    score = 100 * (1 - (0.4 * latency + 0.3 * smoothness + 0.2 * loss + 0.1 * lossless))

Each term is a linear ramp from 0 (at or below its "fine" value) to 1 (at or beyond its "bad"
value), so a score says how far from fine a session is, and the terms say in what. A term
whose measurement is missing (no client report yet, refinement off) counts as fine: the score
never invents a problem it cannot see.

The cause names where the problem most likely lives: the **network** (loss, round trip,
jitter), the **client device** (frames decoded but not presented, slow decode, decoder drops, a
hidden tab, or latency the network and server do not explain), or the **server** (encoding
slower than the frame interval, frames skipped). Each kind of evidence is scored by how far it
is past its threshold; the strongest wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHTS = {"latency": 0.4, "smoothness": 0.3, "loss": 0.2, "lossless": 0.1}
RAMPS = {
    "latency": (80.0, 400.0),      # glass-to-glass p50, ms
    "smoothness": (0.10, 0.60),    # share of frames sent but not presented
    "loss": (0.5, 5.0),            # packet loss, %
    "lossless": (1000.0, 5000.0),  # time-to-lossless p50, ms
}
GOOD_SCORE = 80
FAIR_SCORE = 50
BLANK_SHARE = 0.9
"""Frames sent but not presented, at or above which an unmeasured latency counts as bad."""
MIN_SMOOTHNESS_FPS = 2.0
"""Below this many frames sent per second, "unpresented" shares are too noisy to judge."""

NETWORK, CLIENT, SERVER = "network", "client device", "server"
CAUSES = (NETWORK, CLIENT, SERVER)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one session's recent window shows (None: not measured)."""

    g2g_ms: float | None = None
    """Glass-to-glass latency, median over the window."""
    sent_fps: float = 0.0
    presented_fps: float | None = None
    decoded_fps: float | None = None
    decoder_dropped_fps: float | None = None
    loss_pct: float | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    jitter_buffer_ms: float | None = None
    encode_ms: float | None = None
    """Mean encode time per frame on the server."""
    frame_interval_ms: float = 33.3
    skipped_fps: float = 0.0
    """Frames the server captured but could not encode in time (dropped before sending)."""
    decode_ms: float | None = None
    hidden: bool = False
    ttl_ms: float | None = None
    """Time-to-lossless, median over recent static events."""


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int
    grade: str
    cause: str | None
    """The likely cause when the grade is not good (None when nothing stands out)."""
    penalties: dict[str, float] = field(default_factory=dict)
    """Each term's ramp value 0..1 (before weighting)."""
    blame: dict[str, float] = field(default_factory=dict)
    """Each cause's strength (0: no evidence; 1: at its threshold; more: further past it)."""


def ramp(value: float | None, fine: float, bad: float) -> float:
    """0 at or below ``fine``, 1 at or beyond ``bad``, linear between (None counts as fine)."""
    if value is None:
        return 0.0
    return min(max((value - fine) / (bad - fine), 0.0), 1.0)


def unpresented_share(e: Evidence) -> float | None:
    """Share of frames sent that the client did not present (None when too few were sent)."""
    if e.presented_fps is None or e.sent_fps < MIN_SMOOTHNESS_FPS:
        return None
    return min(max(1.0 - e.presented_fps / e.sent_fps, 0.0), 1.0)


def judge(e: Evidence) -> Verdict:
    """Score, grade and likely cause for one window of evidence."""
    unpresented = unpresented_share(e)
    # Frames sent and (almost) none presented: latency was not measured because it is
    # unbounded, not because it is fine.
    blank = e.g2g_ms is None and unpresented is not None and unpresented >= BLANK_SHARE
    penalties = {
        "latency": 1.0 if blank else ramp(e.g2g_ms, *RAMPS["latency"]),
        "smoothness": ramp(unpresented, *RAMPS["smoothness"]),
        "loss": ramp(e.loss_pct, *RAMPS["loss"]),
        "lossless": ramp(e.ttl_ms, *RAMPS["lossless"]),
    }
    score = round(100 * (1 - sum(WEIGHTS[k] * v for k, v in penalties.items())))
    grade = "good" if score >= GOOD_SCORE else "fair" if score >= FAIR_SCORE else "poor"
    blame = blame_strengths(e)
    cause = None
    if grade != "good":
        strongest = max(CAUSES, key=lambda c: blame[c])
        cause = strongest if blame[strongest] >= 1.0 else None
    return Verdict(score, grade, cause, penalties, blame)


def blame_strengths(e: Evidence) -> dict[str, float]:
    """How strongly the evidence points at each cause (≥ 1: past its threshold)."""
    network = max(_over(e.loss_pct, 2.0), _over(e.rtt_ms, 150.0), _over(e.jitter_ms, 30.0),
                  _over(e.jitter_buffer_ms, 150.0))
    interval = max(e.frame_interval_ms, 1.0)
    server = max(_over(e.encode_ms, max(0.8 * interval, 25.0)),
                 _over(e.skipped_fps / max(e.sent_fps + e.skipped_fps, 1.0), 0.25))
    client = max(_over(e.decode_ms, max(0.8 * interval, 25.0)), 2.0 if e.hidden else 0.0)
    if e.decoded_fps is not None and e.presented_fps is not None and e.decoded_fps >= 2.0:
        # Decoded but never drawn: the page's own thread could not keep up.
        client = max(client, _over(1.0 - e.presented_fps / e.decoded_fps, 0.25))
    if e.decoded_fps is not None and e.decoder_dropped_fps is not None:
        client = max(client, _over(e.decoder_dropped_fps / max(e.decoded_fps
                                                               + e.decoder_dropped_fps, 1.0),
                                   0.15))
    if e.g2g_ms is not None:
        # Latency the network and server do not explain was spent on the client device. The
        # whole round trip counts as network (a queue on the way out is all in one direction).
        explained = ((e.rtt_ms or 0.0) + (e.encode_ms or 0.0)
                     + (e.jitter_buffer_ms or 0.0) + (e.decode_ms or 0.0))
        unexplained = e.g2g_ms - explained
        if unexplained > 0.5 * e.g2g_ms:
            client = max(client, _over(unexplained, 150.0))
    return {NETWORK: network, CLIENT: client, SERVER: server}


def _over(value: float | None, threshold: float) -> float:
    return 0.0 if value is None else max(value, 0.0) / threshold
