"""Experience telemetry through the real server and a real aiortc viewer: numbered inputs come
back on the frame that shows them, client reports reach /api/sessions and /metrics, every
session gets a verdict once a second, and /metrics is for admins and local callers only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hdx.client.viewer import Viewer
from hdx.security import tokens
from hdx.sources.synthetic import SyntheticDesktop
from tests.conftest import running_server, wait_for
from tests.integration.test_security import request

pytestmark = pytest.mark.integration


async def test_a_click_is_named_by_the_frame_that_shows_it() -> None:
    source = SyntheticDesktop(1280, 720, cine_seconds=0, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        await viewer.receive(2, idle_s=0.5)
        x, y, w, h = source.layout.row_rect(3)
        before = viewer.report.frames_announced
        viewer.send({"t": "pointer", "a": "move", "x": x + w // 2, "y": y + h // 2, "i": 1})
        await asyncio.sleep(0.3)
        assert list(viewer.report.inputs_shown) == [], "moves are not timed (client cursor)"
        viewer.send({"t": "pointer", "a": "down", "x": x + w // 2, "y": y + h // 2, "b": 0,
                     "i": 2})
        viewer.send({"t": "pointer", "a": "up", "x": x + w // 2, "y": y + h // 2, "b": 0,
                     "i": 3})
        await wait_for(lambda: list(viewer.report.inputs_shown) == [2], timeout_s=5)
        assert source.selected_row == 3
        assert viewer.report.frames_announced > before
        await asyncio.sleep(0.5)  # the release changed nothing more: no frame claims it
        assert list(viewer.report.inputs_shown) == [2]


async def test_client_reports_reach_the_session_list_and_metrics() -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=-1, fps=30)
    async with running_server(source, fps=30) as server, Viewer(server.url) as viewer:
        await viewer.receive(10)
        viewer.send({"t": "stats", "period_ms": 2000, "g2g": [35.5, 41.0, 38.0],
                     "i2p": [66.0], "presented": 58, "decoded": 60, "dropped": 1,
                     "received": 500, "lost": 2, "decode_ms": 4.2, "jitter_ms": 3.0,
                     "jb_ms": 12.0, "lossy": 0.5, "decoder": "libavcodec", "sw": 2560,
                     "sh": 2048, "dpr": 1.0, "hidden": False})
        # aiortc's receiver reports (RTCP RR, for the round trip) come every second or so.
        await wait_for(lambda: viewer.report.experience is not None
                       and viewer.report.experience.get("g2g_ms") == 38.0
                       and viewer.report.experience.get("rtt_ms") is not None, timeout_s=8)
        experience = viewer.report.experience
        assert experience is not None
        assert experience["grade"] == "good" and experience["i2p_ms"] == 66.0
        assert 0 < experience["rtt_ms"] < 100 and experience["kbps"] > 0
        status, _, body = await request("GET", server.url + "api/sessions?history=1")
        assert status == 200
        telemetry = body["sessions"][0]["telemetry"]
        assert telemetry["reports"] == 1 and telemetry["g2g_ms"]["n"] == 3
        assert telemetry["client"]["sw"] == 2560 and telemetry["client"]["decoder"] == "libavcodec"
        assert telemetry["lossy_pct"] == 50.0
        assert len(telemetry["history"]["t"]) >= 1
        status, headers, text = await request("GET", server.url + "metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert "hdx_glass_to_glass_latency_seconds_count 3.0" in text
        assert 'hdx_glass_to_glass_latency_seconds_bucket{le="0.035"} 0.0' in text
        assert 'hdx_glass_to_glass_latency_seconds_bucket{le="0.05"} 3.0' in text
        assert 'hdx_client_packets_total{outcome="lost"} 2.0' in text
        assert 'hdx_encode_duration_seconds_count{encoder="libx264"}' in text
        session_id = next(iter(server.sessions))
        assert f'hdx_session_experience_score{{role="control",session="{session_id}"' in text
        # A broken report is counted and dropped; the session goes on.
        viewer.send({"t": "stats", "period_ms": 1000, "g2g": [float("1e9")]})
        await wait_for(lambda: server.sessions[session_id].stats.malformed_messages == 1)


async def test_a_session_that_leaves_leaves_no_series(tmp_path: Path) -> None:
    source = SyntheticDesktop(640, 360, cine_seconds=-1, fps=30)
    async with running_server(source, fps=30) as server:
        async with Viewer(server.url) as viewer:
            await viewer.receive(5)
            session_id = next(iter(server.sessions))
            await wait_for(lambda: viewer.report.experience is not None, timeout_s=5)
        await wait_for(lambda: not server.sessions)
        _, _, text = await request("GET", server.url + "metrics")
        assert "hdx_sessions_live 0.0" in text and session_id not in text
        assert 'hdx_sessions_total{role="control"} 1.0' in text


async def test_metrics_are_for_local_callers_by_default() -> None:
    async with running_server(SyntheticDesktop(320, 180, cine_seconds=0)) as server:
        status, _, _ = await request("GET", server.url + "metrics")
        assert status == 200
        status, _, _ = await request("GET", server.url + "metrics",
                                     {"X-Forwarded-For": "198.51.100.7"})
        assert status == 401  # proxied: not local, and no token


async def test_metrics_need_an_admin_where_tokens_are_required(tmp_path: Path) -> None:
    async with running_server(SyntheticDesktop(320, 180, cine_seconds=0), auth="token",
                              state_dir=str(tmp_path)) as server:
        secret = server.gatekeeper.secret
        for headers, expected in [
                ({}, 401),  # auth = token: even a local caller needs a token
                ({"X-Forwarded-For": "198.51.100.7"}, 401),
                ({"X-Forwarded-For": "198.51.100.7",
                  "Authorization": f"Bearer {tokens.mint(secret, 'control', 60, 'ann')}"}, 403),
                ({"X-Forwarded-For": "198.51.100.7",
                  "Authorization": f"Bearer {tokens.mint(secret, 'admin', 60, 'ops')}"}, 200)]:
            status, _, body = await request("GET", server.url + "metrics", headers)
            assert status == expected, (headers, body)
            if status != 200:
                assert "error" in body and json.dumps(body)
        status, headers_, body = await request("GET", server.url + "dashboard")
        assert status == 200 and "text/html" in headers_["Content-Type"]
