"""The experience verdict names the right cause for real trouble, in real Chromium:

- a page whose CPU is throttled through the DevTools protocol (its own thread cannot keep up:
  frames are decoded but not presented, latency grows that the network does not explain) is
  blamed on the **client device**;
- a page behind a link shaped to 2 Mbit/s (a network namespace, veth + tbf), while the server
  is held above 3 Mbit/s, is blamed on the **network** (loss and queueing delay).

Each also checks the one structured alert in the server's JSON log, and that the page's own
``experience`` (what its overlay shows) says the same.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hdx.bench import netlink
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ServedDesktop,
    open_client,
    serve,
)
from tests.integration.test_security_netns import PORT, serve_in
from tests.netns import link_or_skip

pytestmark = pytest.mark.browser
ALERT_AFTER_S = "3"
VERDICT_TIMEOUT_S = 45.0
LINK_MBIT = 2.0


def alerts(log_text: str) -> list[dict[str, Any]]:
    """The experience alerts in a JSON log."""
    found = []
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "telemetry" in entry:
            found.append(entry["telemetry"])
    return found


def session_telemetry(url: str) -> dict[str, Any] | None:
    with urllib.request.urlopen(url + "api/sessions", timeout=5) as response:
        sessions = json.load(response)["sessions"]
    return sessions[0]["telemetry"] if sessions else None


def wait_for_cause(read: Any, cause: str, timeout_s: float = VERDICT_TIMEOUT_S
                   ) -> dict[str, Any]:
    """Poll ``read()`` (a verdict dict or None) until it names ``cause``; fail with the last."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = read()
        if last is not None and last.get("cause") == cause:
            return dict(last)
        time.sleep(0.5)
    raise AssertionError(f"cause {cause!r} not reported within {timeout_s} s; last: {last}")


@pytest.fixture
def moving() -> Iterator[ServedDesktop]:
    """A desktop in endless cine, alerting after 3 s, logging JSON."""
    yield from serve("--width", "1280", "--height", "720", "--cine-seconds", "-1",
                     "--telemetry-alert-after-s", ALERT_AFTER_S, "--log-format", "json")


def test_a_cpu_throttled_page_is_blamed_on_the_client_device(browser_context: Any,
                                                             moving: ServedDesktop) -> None:
    served = moving
    page = open_client(browser_context, served.url)
    # Unthrottled first: reports arrive and latency is measured.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        before = session_telemetry(served.url)
        if before and before["reports"] >= 2 and before["g2g_ms"]["n"] > 0:
            break
        time.sleep(0.5)
    assert before and before["reports"] >= 2, before
    assert before["cause"] != "client device", before
    cdp = browser_context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 30})
    verdict = wait_for_cause(lambda: session_telemetry(served.url), "client device")
    assert verdict["score"] < before["score"], (before, verdict)
    deadline = time.monotonic() + 20  # the alert needs 3 s below 60
    while not any(a["cause"] == "client device" for a in alerts(served.log())):
        assert time.monotonic() < deadline, f"no alert; log:\n{served.log()[-3000:]}"
        time.sleep(0.5)
    alert = next(a for a in alerts(served.log()) if a["cause"] == "client device")
    print("before:", before, "client alert:", alert)
    assert alert["score"] < 60 and alert["event"] == "experience_alert"
    assert alert["blame"]["client device"] >= 1.0
    # The page says the same (what its overlay shows), though slowly while throttled.
    wait_for_cause(lambda: page.evaluate("window.hdx.experience().server"),
                   "client device", timeout_s=20)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    text = urllib.request.urlopen(served.url + "metrics", timeout=5).read().decode()
    assert 'hdx_experience_alerts_total{cause="client device"} 1.0' in text


@pytest.fixture
def slow_link() -> Iterator[netlink.Link]:
    with link_or_skip(LINK_MBIT) as made:
        yield made


@pytest.mark.netns
def test_a_shaped_link_is_blamed_on_the_network(playwright_instance: Any, slow_link: netlink.Link,
                                               tmp_path: Path) -> None:
    # The server is held above what the link carries (--min-bitrate 3000 over 2 Mbit/s): the
    # queue fills, packets are dropped, the round trip grows.
    with serve_in(slow_link, tmp_path / "state", "--width", "1280", "--height", "720",
                  "--auth", "none", "--insecure", "--bitrate", "4000", "--min-bitrate", "3000",
                  "--telemetry-alert-after-s", ALERT_AFTER_S, "--log-format", "json"
                  ) as (process, log):
        url = f"https://{slow_link.ns_addr}:{PORT}/"
        deadline = time.monotonic() + 40
        while "hdx serving" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        profile = tempfile.mkdtemp(prefix="hdx-chromium-")
        context = playwright_instance.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=[
                # The usual rules resolve nothing but loopback: let the link's address through.
                arg + f" , EXCLUDE {slow_link.ns_addr}" if arg.startswith("--host-resolver")
                else arg for arg in CHROMIUM_ARGS],
            viewport={"width": 1400, "height": 900}, ignore_https_errors=True)
        try:
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))
            page.goto(url)
            # Connected is enough: over this link frames may take a while to be drawn.
            deadline = time.monotonic() + 40
            while not page.evaluate("!!(window.hdx && window.hdx.status().connected)"):
                assert time.monotonic() < deadline, (
                    f"not connected: {page.url} status "
                    f"{page.evaluate('window.hdx ? window.hdx.status() : null')}; page "
                    f"{page.content()[:800]}; console {console[-10:]}; "
                    f"log:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            deadline = time.monotonic() + VERDICT_TIMEOUT_S
            while not any(a["cause"] == "network" for a in alerts(log.read_text())):
                assert time.monotonic() < deadline, (
                    f"no network alert; page says {page.evaluate('window.hdx.experience()')}; "
                    f"log:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
            alert = next(a for a in alerts(log.read_text()) if a["cause"] == "network")
            print("network alert:", alert, "page:", page.evaluate("window.hdx.status()"))
            assert alert["blame"]["network"] >= 1.0 and alert["score"] < 60
            assert (alert["loss_pct"] or 0) >= 2 or (alert["rtt_ms"] or 0) >= 150, alert
            assert all(a["cause"] == "network" for a in alerts(log.read_text())), \
                alerts(log.read_text())
            wait_for_cause(lambda: page.evaluate("window.hdx.experience().server"), "network",
                           timeout_s=30)
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
