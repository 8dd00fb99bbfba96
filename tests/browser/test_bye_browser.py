"""The web client when the server drains: it shows the server's `bye`, leaves at once (so the
drain need not wait for it) and does not reconnect by itself."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.browser.conftest import open_client, serve, wait_until

pytestmark = pytest.mark.browser


def test_page_shows_bye_leaves_and_stays_away(browser_context: Any) -> None:
    served = serve("--width", "320", "--height", "240", "--cine-seconds", "-1",
                   "--drain-timeout", "30")
    desktop = next(served)
    try:
        page = open_client(browser_context, desktop.url)
        desktop.process.send_signal(signal.SIGTERM)
        wait_until(page, "window.hdx.status().serverBye === 'server shutting down'", 10)
        # The page closed its peer on `bye`: the server stops long before its 30 s drain.
        assert desktop.process.wait(timeout=15) == 0
        assert "stopping: closing 0 session(s) by force" in desktop.log()
        wait_until(page, "window.hdx.status().connectionState === 'closed by server'", 5)
        assert "closed by server · server shutting down; reload to reconnect" in (
            page.locator("#status").inner_text())
        time.sleep(2.0)  # past the first reconnect delay (1 s)
        assert page.evaluate("window.hdx.status().reconnects") == 0
    finally:
        served.close()
