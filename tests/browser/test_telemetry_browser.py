"""Experience telemetry in real Chromium against a real `hdx serve` (docs/telemetry.md): the
stats overlay never touches the verified pixels and its shortcut never reaches the desktop,
inputs are numbered, the page's reports are well formed and bounded, the server scores them,
and the admin dashboard lists live sessions (and shows why it may not)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hdx.security import tokens
from hdx.security.secret import load_secret
from hdx.sources.synthetic import SyntheticDesktop
from tests.browser.conftest import ServedDesktop, open_client, serve, snapshot, wait_until

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 640, 360
REPORT_KEYS = {"t", "period_ms", "g2g", "i2p", "ttl", "presented", "decoded", "dropped",
               "received", "lost", "decode_ms", "jitter_ms", "jb_ms", "lossy", "decoder", "sw",
               "sh", "dpr", "hidden"}
COUNTS = ("presented", "decoded", "dropped", "received", "lost")
SAMPLE_CAPS = {"g2g": 64, "i2p": 16, "ttl": 16}

# Records what the page sends on `control`, from before the page's own code runs (an init
# script, which the page's Content-Security-Policy does not govern). Bounded like the page.
SPY = """(() => {
  if (window.__hdxSent) return;
  window.__hdxSent = [];
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    if (this.label === 'control' && typeof data === 'string') {
      window.__hdxSent.push(data);
      if (window.__hdxSent.length > 5000) window.__hdxSent.shift();
    }
    return send.call(this, data);
  };
})()"""


@pytest.fixture
def still() -> Iterator[ServedDesktop]:
    """A synthetic desktop that does not move by itself."""
    yield from serve("--width", str(WIDTH), "--height", str(HEIGHT), "--cine-seconds", "0")


@pytest.fixture
def moving() -> Iterator[ServedDesktop]:
    """A synthetic desktop whose cine loop plays for ever (frames all the time)."""
    yield from serve("--width", str(WIDTH), "--height", str(HEIGHT), "--cine-seconds", "-1")


def open_spied(context: Any, url: str, timeout_s: float = 30) -> Any:
    """open_client() with every control message the page sends recorded."""
    page = context.new_page()
    page.add_init_script(SPY)
    page.goto(url)
    wait_until(page, "!!(window.hdx && window.hdx.status().connected"
               " && window.hdx.status().framesDrawn > 0)", timeout_s)
    return page


def click_row(page: Any, row: int) -> None:
    """A real click on worklist row ``row``: the synthetic desktop highlights it."""
    x, y, w, h = SyntheticDesktop(WIDTH, HEIGHT, cine_seconds=0).layout.row_rect(row)
    box = page.locator("#screen").bounding_box()
    page.mouse.click(box["x"] + x + w // 2, box["y"] + y + h // 2)


def sent(page: Any, *kinds: str) -> list[dict[str, Any]]:
    """Control messages the page sent since spy(), of these kinds (all without kinds)."""
    messages = [json.loads(text) for text in page.evaluate("window.__hdxSent")]
    return [m for m in messages if not kinds or m.get("t") in kinds]


def raw_reports(page: Any) -> list[str]:
    """The stats reports as sent (JSON text, to check their size on the wire)."""
    return [text for text in page.evaluate("window.__hdxSent") if '"t":"stats"' in text]


def wait_reports(page: Any, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while len(reports := sent(page, "stats")) < count:
        assert time.monotonic() < deadline, f"{len(reports)} stats reports, wanted {count}"
        time.sleep(0.2)
    return reports


def admin_get(served: ServedDesktop, path: str, token: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(served.url + path, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def session_of(served: ServedDesktop, page: Any, token: str | None = None) -> dict[str, Any]:
    sid = page.evaluate("window.hdx.status().session")
    listed = json.loads(admin_get(served, "api/sessions", token))["sessions"]
    found = [s for s in listed if s["id"] == sid]
    assert len(found) == 1, (sid, listed)
    return dict(found[0])


def check_report(report: dict[str, Any], text: str) -> None:
    """One report as docs/telemetry.md and the server's parser want it."""
    assert set(report) == REPORT_KEYS, set(report) ^ REPORT_KEYS
    assert len(text.encode()) < 3800
    assert isinstance(report["period_ms"], int) and 0 < report["period_ms"] <= 3_600_000
    for name in COUNTS:
        assert isinstance(report[name], int) and not isinstance(report[name], bool), name
        assert 0 <= report[name] <= 1_000_000, (name, report[name])
    for name, cap in SAMPLE_CAPS.items():
        values = report[name]
        assert isinstance(values, list) and len(values) <= cap, (name, values)
        for v in values:
            assert isinstance(v, (int, float)) and 0 <= v <= 600_000, (name, v)
            assert abs(v * 10 - round(v * 10)) < 1e-6, (name, v)  # rounded to 0.1 ms
    for name in ("decode_ms", "jitter_ms", "jb_ms"):
        assert report[name] is None or (isinstance(report[name], (int, float))
                                        and 0 <= report[name] <= 600_000), (name, report[name])
    assert report["lossy"] is None or 0 <= report["lossy"] <= 1
    assert report["decoder"] is None or (isinstance(report["decoder"], str)
                                         and 0 < len(report["decoder"]) <= 64)
    assert isinstance(report["sw"], int) and isinstance(report["sh"], int)
    assert report["sw"] > 0 and report["sh"] > 0
    assert isinstance(report["dpr"], (int, float)) and 0 < report["dpr"] <= 16
    assert isinstance(report["hidden"], bool)


# -- a. the overlay ------------------------------------------------------------------------------

def test_overlay_toggles_and_never_touches_the_screen(browser_context: Any,
                                                      still: ServedDesktop) -> None:
    page = open_spied(browser_context, still.url)
    wait_until(page, "window.hdx.status().lossless", 40)  # a settled, exact picture
    before = snapshot(page)
    box = page.locator("#stats-overlay")
    button = page.locator("#stats-toggle")
    assert box.is_hidden() and button.get_attribute("aria-pressed") == "false"

    button.click()
    assert box.is_visible() and button.get_attribute("aria-pressed") == "true"
    assert page.evaluate("getComputedStyle(document.getElementById('stats-overlay'))"
                         ".pointerEvents") == "none"
    # Over the viewport's top-right corner, outside the screen canvas's pixels.
    at, viewport = box.bounding_box(), page.locator("#viewport").bounding_box()
    assert viewport["y"] <= at["y"] < viewport["y"] + 40, (at, viewport)
    assert at["x"] + at["width"] <= viewport["x"] + viewport["width"], (at, viewport)
    assert at["x"] > viewport["x"] + viewport["width"] / 2, (at, viewport)
    # It shows the page's own numbers, then the server's verdict.
    wait_until(page, "/\\d+ fps/.test(document.querySelector('[data-stat=fps]').textContent)", 5)
    wait_until(page, "/\\/ 100/.test(document.querySelector('[data-stat=score]').textContent)",
               15)
    assert np.array_equal(snapshot(page), before), "the overlay changed snapshot() pixels"
    assert page.evaluate("window.hdx.status().lossless")

    # Ctrl+Alt+S, typed where the desktop's keys go, toggles it and is not sent.
    page.locator("#viewport").focus()
    page.keyboard.press("Control+Alt+KeyS")
    wait_until(page, "document.getElementById('stats-overlay').hidden", 5)
    assert button.get_attribute("aria-pressed") == "false"
    page.keyboard.press("Control+Alt+KeyS")
    wait_until(page, "!document.getElementById('stats-overlay').hidden", 5)
    keys = sent(page, "key")
    assert any(k["code"].startswith("Control") for k in keys), keys  # the desktop gets keys
    assert not [k for k in keys if k["code"] == "KeyS"], keys
    time.sleep(1.0)  # a forwarded "s" would have reached the desktop's search field by now
    assert np.array_equal(snapshot(page), before), "the shortcut reached the desktop"

    # The test hook.
    assert page.evaluate("window.hdx.toggleStats(false)") is False
    assert box.is_hidden() and button.get_attribute("aria-pressed") == "false"
    assert page.evaluate("window.hdx.toggleStats()") is True
    assert box.is_visible()
    assert np.array_equal(snapshot(page), before)


# -- b. what the page reports --------------------------------------------------------------------

def test_inputs_are_numbered_and_reports_are_well_formed(browser_context: Any,
                                                         moving: ServedDesktop) -> None:
    page = open_spied(browser_context, moving.url)
    screen = page.locator("#screen").bounding_box()
    page.mouse.move(screen["x"] + 100, screen["y"] + 100)
    page.mouse.click(screen["x"] + 120, screen["y"] + 110)
    page.mouse.wheel(0, 120)
    page.locator("#viewport").focus()
    page.keyboard.type("ab")
    first = len(sent(page, "stats"))
    wait_reports(page, first + 3)
    texts = raw_reports(page)
    reports = [json.loads(text) for text in texts]
    inputs = sent(page, "pointer", "wheel", "key")
    assert {m["t"] for m in inputs} == {"pointer", "wheel", "key"}, inputs
    serials = [m["i"] for m in inputs]
    assert serials == list(range(1, len(serials) + 1)), serials  # per connection, from 1

    for report, text in zip(reports, texts, strict=True):
        check_report(report, text)
    full = reports[first + 1:]  # whole 2 s periods after the inputs
    for report in full:
        assert 1000 <= report["period_ms"] <= 4000, report
        assert report["presented"] > 0 and report["decoded"] > 0 and report["received"] > 0
        assert report["g2g"], report
        assert report["decode_ms"] is not None and report["jitter_ms"] is not None
        assert report["lossy"] is not None  # refinement is on
        assert report["hidden"] is False
    assert sum(r["presented"] for r in full) >= 10 * len(full)  # the cine loop plays

    client = page.evaluate("window.hdx.experience()")["client"]
    assert client["fps"] > 0 and client["g2gMs"] is not None and client["g2gMs"] >= 0
    assert client["decodeMs"] is not None and client["hidden"] is False
    assert client["rttMs"] is not None


def test_time_to_lossless_is_reported_once_per_still_period(browser_context: Any,
                                                            still: ServedDesktop) -> None:
    page = open_spied(browser_context, still.url)
    wait_until(page, "window.hdx.status().lossless", 40)
    first = page.evaluate("window.hdx.status().timeToLosslessMs")
    assert first is not None
    count = len(sent(page, "stats"))
    wait_reports(page, count + 2)
    ttl = [v for r in sent(page, "stats") for v in r["ttl"]]
    assert len(ttl) == 1 and ttl[0] == pytest.approx(first, abs=0.06), (ttl, first)
    # A click changes a worklist row: a second still period, reported once more.
    click_row(page, 4)
    wait_until(page, f"window.hdx.status().timeToLosslessMs !== {first}", 20)
    wait_until(page, "window.hdx.status().lossless", 40)
    second = page.evaluate("window.hdx.status().timeToLosslessMs")
    count = len(sent(page, "stats"))
    wait_reports(page, count + 2)
    ttl = [v for r in sent(page, "stats") for v in r["ttl"]]
    assert ttl == pytest.approx([first, second], abs=0.06), (ttl, first, second)


def histogram(text: str, name: str) -> tuple[float, float, dict[float, float]]:
    """(count, sum, {upper bound: cumulative count}) of histogram ``name`` in ``text``."""
    from prometheus_client.parser import text_string_to_metric_families

    family = next(f for f in text_string_to_metric_families(text) if f.name == name)
    values = {s.name: s.value for s in family.samples if not s.name.endswith("_bucket")}
    buckets = {float(s.labels["le"]): s.value for s in family.samples
               if s.name.endswith("_bucket")}
    return values[f"{name}_count"], values[f"{name}_sum"], buckets


# -- c. the server's side of it ------------------------------------------------------------------

def test_server_scores_the_reports_and_times_inputs(browser_context: Any,
                                                    still: ServedDesktop) -> None:
    page = open_spied(browser_context, still.url)
    wait_until(page, "window.hdx.status().lossless", 40)
    # Clicks that change the screen: the server names the frame that first shows each one.
    for row in (3, 5, 7):
        click_row(page, row)
        time.sleep(0.4)
    wait_until(page, "window.hdx.experience().client.i2pMs !== null", 10)
    i2p = page.evaluate("window.hdx.experience().client.i2pMs")
    assert 0 <= i2p < 2000, i2p
    wait_until(page, "window.hdx.experience().server !== null", 10)
    reports = wait_reports(page, 2)
    assert any(r["i2p"] for r in reports), reports

    verdict = page.evaluate("window.hdx.experience()")["server"]
    assert verdict["t"] == "experience"
    assert 0 <= verdict["score"] <= 100
    assert verdict["grade"] in ("good", "fair", "poor")
    assert verdict["cause"] in (None, "network", "server", "client device")

    deadline = time.monotonic() + 15
    while True:
        telemetry = session_of(still, page)["telemetry"]
        if telemetry["i2p_ms"]["n"] >= 1 and telemetry["g2g_ms"]["n"] >= 1:
            break
        assert time.monotonic() < deadline, telemetry
        time.sleep(0.5)
    assert 0 <= telemetry["score"] <= 100 and telemetry["grade"] in ("good", "fair", "poor")
    assert telemetry["client"]["sw"] > 0 and telemetry["client"]["presented"] >= 0

    metrics = admin_get(still, "metrics").decode()
    assert "hdx_client_reports_total" in metrics
    # Latency histograms from this real page, read with Prometheus' own parser: samples were
    # counted, their mean is plausible, and they sit in buckets below a second.
    for name, most_s in (("hdx_glass_to_glass_latency_seconds", 1.0),
                         ("hdx_input_to_photon_latency_seconds", 2.0)):
        count, total, buckets = histogram(metrics, name)
        assert count >= 1 and 0.001 <= total / count <= most_s, (name, count, total)
        assert buckets[float("inf")] == count and buckets[most_s] >= 1, (name, buckets)
    sid = page.evaluate("window.hdx.status().session")
    score = re.search(r'^hdx_session_experience_score\{[^}]*session="' + sid
                      + r'"[^}]*\} ([0-9.]+)$', metrics, re.MULTILINE)
    assert score and 0 <= float(score.group(1)) <= 100, metrics[-3000:]


# -- d. the admin dashboard ----------------------------------------------------------------------

DASHBOARD_STATE = "window.hdxDashboard && window.hdxDashboard.state()"


def dashboard_session(page: Any, sid: str) -> dict[str, Any] | None:
    state = page.evaluate(DASHBOARD_STATE)
    found = [s for s in state["sessions"] if s.get("id") == sid]
    return found[0] if found else None


def test_dashboard_lists_the_live_session_of_another_page(browser_context: Any,
                                                          moving: ServedDesktop) -> None:
    viewer = open_client(browser_context, moving.url)
    sid = viewer.evaluate("window.hdx.status().session")
    dashboard = browser_context.new_page()
    dashboard.goto(moving.url + "dashboard")  # loopback, --auth none: no token needed
    deadline = time.monotonic() + 20
    while True:
        listed = dashboard_session(dashboard, sid)
        telemetry = (listed or {}).get("telemetry") or {}
        if isinstance(telemetry.get("score"), (int, float)) and \
                len((telemetry.get("history") or {}).get("fps") or []) >= 3:
            break
        assert time.monotonic() < deadline, dashboard.evaluate(DASHBOARD_STATE)
        time.sleep(0.3)
    assert dashboard.evaluate(DASHBOARD_STATE)["error"] is None
    row = dashboard.locator(f"#sessions tr[data-session='{sid}']")
    wait_until(dashboard, f"/^\\d+ (good|fair|poor)/.test(document.querySelector("
               f"\"tr[data-session='{sid}'] [data-col=score]\").textContent)", 10)
    assert row.locator("[data-col=encoder]").inner_text() != "–"
    assert row.locator("[data-col=fps]").inner_text().isdigit()
    assert row.locator("[data-col=latency]").inner_text() != "–"
    assert "Mbit/s" in row.locator("[data-col=bitrate]").inner_text()
    # The sparklines have ink once there is history.
    ink = dashboard.evaluate(f"""(() => {{
        const out = {{}};
        for (const c of document.querySelectorAll("tr[data-session='{sid}'] canvas")) {{
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            out[c.dataset.series] = n;
        }}
        return out;
    }})()""")
    assert set(ink) == {"g2g_ms", "fps", "kbps", "lossless"}, ink
    assert ink["fps"] > 0 and ink["kbps"] > 0 and ink["lossless"] > 0, ink
    # The page it polls is the one it shows; a closed session leaves the list.
    polls = dashboard.evaluate(DASHBOARD_STATE)["polls"]
    time.sleep(2.5)
    assert dashboard.evaluate(DASHBOARD_STATE)["polls"] > polls
    viewer.close()
    wait_until(dashboard, f"!document.querySelector(\"tr[data-session='{sid}']\")", 15)


def mint(state: Path, role: tokens.Role, user: str) -> str:
    return tokens.mint(load_secret(state, {}), role, 3600, user)


def test_dashboard_with_tokens(browser_context: Any, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    for served in serve("--width", str(WIDTH), "--height", str(HEIGHT), "--cine-seconds", "0",
                        "--auth", "token", "--state-dir", str(state_dir)):
        # A view token: the server's reason is shown, and the page stops asking.
        view = mint(state_dir, "view", "vera")
        refused = browser_context.new_page()
        refused.goto(f"{served.url}dashboard#token={view}")
        wait_until(refused, f"{DASHBOARD_STATE} && window.hdxDashboard.state().error", 10)
        state = refused.evaluate(DASHBOARD_STATE)
        assert "this needs an admin token (yours has role view)" in state["error"], state
        assert "(403)" in state["error"] and state["sessions"] == []
        line = refused.locator("#dash-status")
        assert "admin token" in line.inner_text() and "alert" in (line.get_attribute("class")
                                                                  or "")
        assert "token" not in refused.evaluate("location.href")
        polls = state["polls"]
        time.sleep(4.5)  # two poll intervals
        assert refused.evaluate(DASHBOARD_STATE)["polls"] == polls

        # No token at all: a 401 with its reason.
        anonymous = browser_context.new_page()
        anonymous.goto(served.url + "dashboard")
        wait_until(anonymous, f"{DASHBOARD_STATE} && window.hdxDashboard.state().error", 10)
        assert "(401)" in anonymous.evaluate(DASHBOARD_STATE)["error"]

        # An admin token lists a controller's session, by user.
        viewer = open_client(browser_context,
                             f"{served.url}?token={mint(state_dir, 'control', 'alice')}", 30)
        sid = viewer.evaluate("window.hdx.status().session")
        admin = mint(state_dir, "admin", "ops")
        dashboard = browser_context.new_page()
        dashboard.goto(f"{served.url}dashboard#token={admin}")
        assert "token" not in dashboard.evaluate("location.href")
        wait_until(dashboard, f"{DASHBOARD_STATE} && window.hdxDashboard.state().sessions"
                   f".some((s) => s.id === '{sid}')", 10)
        assert dashboard.evaluate(DASHBOARD_STATE)["error"] is None
        row = dashboard.locator(f"#sessions tr[data-session='{sid}']")
        assert row.locator("[data-col=user]").inner_text().startswith("alice")
        assert row.locator("[data-col=role]").inner_text() == "control"
        requested = dashboard.evaluate(
            "performance.getEntriesByType('resource').map((e) => e.name)")
        assert any("/api/sessions?history=1" in url for url in requested), requested
        assert not [url for url in requested if "token" in url or admin in url]
