"""Experience telemetry: the score and its cause, alerts, a session's window, the metrics."""

from __future__ import annotations

import json
import logging

import pytest

from hdx.config import Config
from hdx.errors import ConfigError, ProtocolError
from hdx.logs import JsonLineFormatter
from hdx.sources.base import PointerEvent
from hdx.telemetry.alerts import ExperienceAlarm
from hdx.telemetry.experience import CLIENT, NETWORK, SERVER, Evidence, judge, ramp
from hdx.telemetry.metrics import ServerMetrics
from hdx.telemetry.session import RemoteReport, ServerTick, SessionTelemetry
from hdx.webrtc.control import ClientStats, TaggedInput, frame_sent, parse_control

pytestmark = pytest.mark.unit
FINE = Evidence(g2g_ms=40, sent_fps=30, presented_fps=30, decoded_fps=30,
                decoder_dropped_fps=0, loss_pct=0, rtt_ms=2, jitter_ms=1, jitter_buffer_ms=5,
                encode_ms=8, frame_interval_ms=33.3, decode_ms=3, ttl_ms=400)


def with_(**changes: object) -> Evidence:
    fields = {name: getattr(FINE, name) for name in FINE.__slots__}  # type: ignore[attr-defined]
    return Evidence(**{**fields, **changes})  # type: ignore[arg-type]


def test_ramps_are_linear_between_fine_and_bad() -> None:
    assert ramp(None, 80, 400) == 0
    assert ramp(50, 80, 400) == 0
    assert ramp(240, 80, 400) == pytest.approx(0.5)
    assert ramp(4000, 80, 400) == 1


def test_a_fine_session_scores_100_with_no_cause() -> None:
    verdict = judge(FINE)
    assert (verdict.score, verdict.grade, verdict.cause) == (100, "good", None)


def test_nothing_measured_is_not_a_problem() -> None:
    assert judge(Evidence()).score == 100


def test_frames_sent_and_none_presented_is_a_black_screen_not_an_unknown() -> None:
    verdict = judge(Evidence(sent_fps=30, presented_fps=0, decoded_fps=0, loss_pct=80))
    assert verdict.penalties["latency"] == 1.0 and verdict.score == 10
    assert verdict.cause == NETWORK


def test_the_documented_formula() -> None:
    # latency at its bad end (0.4) plus half the loss ramp (0.2 * 0.5) -> 100 * (1 - 0.5)
    verdict = judge(with_(g2g_ms=400, loss_pct=2.75, rtt_ms=200))
    assert verdict.score == 50
    assert verdict.penalties == {"latency": 1.0, "smoothness": 0.0, "loss": 0.5, "lossless": 0.0}
    assert verdict.grade == "fair"


@pytest.mark.parametrize(("changes", "cause"), [
    ({"g2g_ms": 600, "rtt_ms": 450, "jitter_buffer_ms": 60}, NETWORK),
    ({"loss_pct": 8.0, "g2g_ms": 150}, NETWORK),
    ({"presented_fps": 6, "g2g_ms": 300}, CLIENT),           # decoded, never drawn
    ({"decode_ms": 90, "g2g_ms": 350}, CLIENT),               # a slow decoder
    ({"g2g_ms": 500}, CLIENT),                                # latency nothing else explains
    ({"hidden": True, "presented_fps": 0, "decoded_fps": 0}, CLIENT),
    ({"encode_ms": 120, "sent_fps": 8, "presented_fps": 8, "decoded_fps": 8,
      "g2g_ms": 260}, SERVER),
    ({"skipped_fps": 22, "sent_fps": 8, "presented_fps": 8, "decoded_fps": 8,
      "g2g_ms": 300}, SERVER),                                # most captured frames skipped
])
def test_the_likely_cause_is_the_strongest_evidence(changes: dict[str, object], cause: str
                                                    ) -> None:
    verdict = judge(with_(**changes))
    assert verdict.grade != "good", verdict
    assert verdict.cause == cause, verdict.blame


def test_a_poor_score_without_clear_evidence_names_no_cause() -> None:
    # Slow to lossless, some loss, some lag: each short of its threshold.
    verdict = judge(Evidence(ttl_ms=30_000, loss_pct=1.9, g2g_ms=150, rtt_ms=2))
    assert verdict.grade == "fair" and verdict.cause is None, verdict
    assert judge(Evidence(ttl_ms=30_000, loss_pct=4.0)).cause == NETWORK


def test_the_alarm_fires_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    alarm = ExperienceAlarm("s1", "dr.x", after_s=10)
    bad = judge(with_(g2g_ms=900, rtt_ms=600, loss_pct=6))
    fine = judge(FINE)
    caplog.set_level(logging.INFO, "hdx.telemetry")
    fired = [alarm.observe(t, bad, {"rtt_ms": 600}) for t in range(0, 30)]
    assert [t for t, r in enumerate(fired) if r] == [10]
    record = fired[10]
    assert record is not None and record["cause"] == NETWORK and record["session"] == "s1"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "likely cause: network" in warnings[0].getMessage()
    assert warnings[0].telemetry == record  # type: ignore[attr-defined]
    assert alarm.observe(30, fine, {}) is None and not alarm.alerting
    again = [alarm.observe(t, bad, {}) for t in range(31, 45)]
    assert sum(r is not None for r in again) == 1 and alarm.alerts == 2


def test_a_score_hovering_near_the_threshold_does_not_flood() -> None:
    alarm = ExperienceAlarm("s1", "u", after_s=2)
    low = judge(with_(g2g_ms=400, loss_pct=1.6))  # 100*(1-0.4-0.05) = 55: below 60
    middling = judge(with_(g2g_ms=330))            # 69: above 60, short of the 70 recovery
    assert low.score < 60 <= middling.score < 70
    results = [alarm.observe(t, low if t % 4 < 2 else middling, {}) for t in range(0, 12)]
    assert sum(r is not None for r in results) == 0  # never below for 2 s in a row
    results = [alarm.observe(t, low if t < 20 else middling, {}) for t in range(12, 40)]
    assert sum(r is not None for r in results) == 1


def test_json_logs_carry_the_alert_facts() -> None:
    record = logging.LogRecord("hdx.telemetry", logging.WARNING, __file__, 1, "poor", (), None)
    record.telemetry = {"cause": "network", "score": 12}
    entry = json.loads(JsonLineFormatter().format(record))
    assert entry["telemetry"] == {"cause": "network", "score": 12}


def report(**fields: object) -> ClientStats:
    base: dict[str, object] = {"period_ms": 2000.0, "g2g_ms": (40.0,) * 20, "presented": 60,
                               "decoded": 60, "received": 400, "lost": 0, "decode_ms": 3.0}
    return ClientStats(**{**base, **fields})  # type: ignore[arg-type]


def ticks(telemetry: SessionTelemetry, seconds: int, fps: int = 30, start: float = 0,
          encode_ms: float = 8.0, lossless: bool | None = None) -> None:
    for t in range(seconds + 1):
        frames = fps * int(start + t)
        telemetry.tick(ServerTick(frames, 0, frames * 5000, frames * encode_ms, lossless),
                       now=start + t)


def test_a_session_judges_what_its_client_reports() -> None:
    metrics = ServerMetrics(lambda: [])
    telemetry = SessionTelemetry("s1", "dr.x", "control", fps=30, encoder="libx264",
                                 metrics=metrics, alert_after_s=3)
    telemetry.on_remote_report(RemoteReport(rtt_ms=2.0, loss_share=0.0, jitter_ms=1.0))
    for t in (0, 2, 4):
        telemetry.on_client_stats(report(i2p_ms=(70.0,)), now=t)
    ticks(telemetry, 5)
    summary = telemetry.summary(history=True)
    assert summary["score"] == 100 and summary["grade"] == "good" and summary["cause"] is None
    assert summary["g2g_ms"]["p50"] == 40 and summary["i2p_ms"]["p50"] == 70
    assert summary["fps"] == 30 and summary["kbps"] == pytest.approx(30 * 5000 * 8 / 1000)
    assert summary["encode_ms"] == 8.0 and summary["reports"] == 3
    assert len(summary["history"]["t"]) == 6 and summary["history"]["score"][-1] == 100
    text = metrics.render().decode()
    assert "hdx_glass_to_glass_latency_seconds_count 60.0" in text
    assert "hdx_input_to_photon_latency_seconds_count 3.0" in text
    assert 'hdx_frames_total{stage="presented"} 180.0' in text
    assert 'hdx_frames_total{stage="sent"} 150.0' in text


def test_a_client_that_presents_little_is_blamed_and_alerted(caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    metrics = ServerMetrics(lambda: [])
    telemetry = SessionTelemetry("s1", "dr.x", "control", fps=30, encoder="libx264",
                                 metrics=metrics, alert_after_s=3)
    telemetry.on_remote_report(RemoteReport(rtt_ms=2.0, loss_share=0.0, jitter_ms=1.0))
    caplog.set_level(logging.WARNING, "hdx.telemetry")
    for t in range(0, 12, 2):
        telemetry.on_client_stats(report(presented=8, g2g_ms=(450.0,) * 8), now=t)
        ticks(telemetry, 2, start=t) if t == 0 else [telemetry.tick(
            ServerTick(30 * s, 0, 150_000 * s, 240.0 * s, None), now=s) for s in (t - 1, t)]
    assert telemetry.verdict is not None and telemetry.verdict.cause == CLIENT
    assert telemetry.alarm.alerts == 1 and telemetry.last_alert is not None
    assert telemetry.last_alert["cause"] == CLIENT
    assert 'hdx_experience_alerts_total{cause="client device"} 1.0' in metrics.render().decode()


def test_time_to_lossless_events_count_once() -> None:
    metrics = ServerMetrics(lambda: [])
    telemetry = SessionTelemetry("s1", "u", "view", fps=30, encoder="libx264", metrics=metrics)
    telemetry.tick(ServerTick(0, 0, 0, 0.0, False, 0, ()), now=0)
    telemetry.tick(ServerTick(1, 0, 10, 5.0, True, 1, (800.0,)), now=1)
    telemetry.tick(ServerTick(1, 0, 10, 5.0, True, 1, (800.0,)), now=2)
    telemetry.tick(ServerTick(2, 0, 20, 10.0, True, 2, (800.0, 1200.0)), now=3)
    assert telemetry.summary()["ttl_ms"] == {"p50": 1000.0, "n": 2}
    assert "hdx_time_to_lossless_seconds_count 2.0" in metrics.render().decode()
    assert telemetry.summary(history=True)["history"]["lossless"] == [False, True, True, True]


def test_live_session_gauges_vanish_with_the_session() -> None:
    live: list[SessionTelemetry] = []
    metrics = ServerMetrics(lambda: [t.gauges() for t in live])
    telemetry = SessionTelemetry("abc", "dr.x", "view", fps=30, encoder="libx264",
                                 metrics=metrics)
    live.append(telemetry)
    ticks(telemetry, 2)
    text = metrics.render().decode()
    assert "hdx_sessions_live 1.0" in text
    assert 'hdx_session_experience_score{role="view",session="abc",user="dr.x"} 100.0' in text
    live.clear()
    text = metrics.render().decode()
    assert "hdx_sessions_live 0.0" in text and 'session="abc"' not in text


def test_stats_reports_parse_with_bounds() -> None:
    ok = parse_control(json.dumps({"t": "stats", "period_ms": 2000, "g2g": [12.5, 30],
                                   "presented": 50, "decoder": "FFmpeg", "sw": 1920,
                                   "sh": 1080, "dpr": 2, "hidden": False, "lossy": 0.25,
                                   "decode_ms": None}), 4096)
    assert isinstance(ok, ClientStats)
    assert ok.g2g_ms == (12.5, 30.0) and ok.screen == (1920, 1080) and ok.lossy_share == 0.25
    for bad, reason in [({"g2g": [1.0] * 65}, "at most 64"), ({"g2g": [-1]}, "0..600000"),
                        ({"i2p": ["1"]}, "0..600000"), ({"period_ms": 0}, "period_ms"),
                        ({"presented": -1}, "presented"), ({"lossy": 1.5}, "lossy"),
                        ({"decoder": "x" * 65}, "decoder"), ({"hidden": 1}, "hidden"),
                        ({"sw": 10}, "'sh'")]:
        with pytest.raises(ProtocolError, match=reason):
            parse_control(json.dumps({"t": "stats", "period_ms": 1000, **bad}), 4096)


def test_numbered_inputs_and_frames_that_show_them() -> None:
    tagged = parse_control('{"t": "pointer", "a": "down", "x": 1, "y": 2, "b": 0, "i": 7}', 4096)
    assert tagged == TaggedInput(PointerEvent("down", 1, 2, 0), 7)
    with pytest.raises(ProtocolError, match="'i'"):
        parse_control('{"t": "key", "key": "a", "code": "KeyA", "down": true, "i": 0}', 4096)
    assert json.loads(frame_sent(5, 1.0, False, 10, input_serial=7))["input"] == 7
    assert "input" not in json.loads(frame_sent(5, 1.0, False, 10))


def test_the_alert_delay_is_validated() -> None:
    assert Config(telemetry_alert_after_s=3).telemetry_alert_after_s == 3
    with pytest.raises(ConfigError, match="telemetry_alert_after_s"):
        Config(telemetry_alert_after_s=0)
