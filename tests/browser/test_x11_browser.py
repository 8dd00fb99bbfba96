"""A real X desktop in real Chromium: `hdx serve --source x11:N` on Xvfb (and Xorg's dummy
driver for RandR), a real X application drawing known pixels and recording its input."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import ServedDesktop, open_client, serve, snapshot, wait_until
from tests.x11.xservers import XApp, XServer, x_server, xwd_root

pytestmark = [pytest.mark.browser, pytest.mark.x11]


@pytest.fixture(scope="module")
def xvfb() -> Iterator[XServer]:
    with x_server("xvfb", "1280x720", 24) as server:
        yield server


@pytest.fixture(scope="module")
def x_app(xvfb: XServer) -> Iterator[XApp]:
    app = XApp(xvfb, "420x300+60+40", "bars")
    yield app
    app.close()


@pytest.fixture
def served(xvfb: XServer, x_app: XApp) -> Iterator[ServedDesktop]:
    yield from serve("--source", f"x11:{xvfb.display}")


def screen_rgba(server: XServer) -> np.ndarray:
    w, h, _, pixels = xwd_root(server)
    bgra = (pixels | 0xFF000000).astype("<u4").view(np.uint8).reshape(h, w, 4)
    return np.ascontiguousarray(bgra[..., [2, 1, 0, 3]])


def canvas_origin(page: Any) -> tuple[float, float]:
    box = page.locator("#screen").bounding_box()
    return box["x"], box["y"]


def test_x_desktop_arrives_exactly_and_input_reaches_the_application(
        browser_context: Any, served: ServedDesktop, xvfb: XServer, x_app: XApp) -> None:
    page = open_client(browser_context, served.url)
    wait_until(page, "window.hdx.status().lossless === true", 30)
    assert np.array_equal(snapshot(page), screen_rgba(xvfb))
    assert "LOSSLESS" in page.locator("#lossless").inner_text()
    # The pointer's shape is the page's own cursor over the screen canvas.
    wait_until(page, "getComputedStyle(document.getElementById('screen')).cursor"
               ".includes('data:image/png;base64')", 10)

    x0, y0 = canvas_origin(page)
    x_app.events.clear()
    page.mouse.click(x0 + 60 + 25, y0 + 40 + 35)
    press = x_app.wait_for(lambda e: e["type"] == "button" and e["down"])
    assert (press["button"], press["x"], press["y"]) == (1, 25, 35)
    page.keyboard.type("hdx")
    x_app.wait_for(lambda e: e["type"] == "key" and e["name"] == "x" and not e["down"])
    typed = [e["name"] for e in x_app.drain() if e["type"] == "key" and e["down"]]
    assert typed == ["h", "d", "x"]
    # A German keyboard: the physical key right of L types "ä"; the desktop gets "ä".
    cdp = browser_context.new_cdp_session(page)
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", {"type": kind, "key": "ä", "code": "Quote",
                                            "text": "ä" if kind == "keyDown" else ""})
    x_app.wait_for(lambda e: e["type"] == "key" and e["name"] == "adiaeresis")


def test_keys_held_when_the_page_loses_focus_are_released(
        browser_context: Any, served: ServedDesktop, x_app: XApp) -> None:
    page = open_client(browser_context, served.url)
    x0, y0 = canvas_origin(page)
    page.mouse.move(x0 + 100, y0 + 100)
    x_app.events.clear()
    page.keyboard.down("Shift")
    page.keyboard.down("KeyZ")
    x_app.wait_for(lambda e: e["type"] == "key" and e["down"] and e["name"] == "Z")
    page.evaluate("window.dispatchEvent(new Event('blur'))")  # the user switched windows
    # Both releases must arrive (the page sends them in the order they were pressed).
    x_app.wait_for(lambda e: e["type"] == "key" and not e["down"] and e["name"] == "Shift_L")
    x_app.wait_for(lambda e: e["type"] == "key" and not e["down"] and e["name"] in ("z", "Z"))


def test_randr_resize_and_one_monitor_per_window(browser_context: Any) -> None:
    with x_server("xorg", "1280x720") as server:
        app = XApp(server, "300x200+700+100", "noise", 3)
        try:
            with contextlib.contextmanager(serve)("--source", f"x11:{server.display}") as desktop:
                page = open_client(browser_context, desktop.url)
                server.run("xrandr", "--output", "DUMMY0", "--mode", "1024x768")
                wait_until(page, "window.hdx.status().width === 1024 && "
                           "window.hdx.status().height === 768", 20)
                server.run("xrandr", "--output", "DUMMY0", "--mode", "1280x720")
                server.run("xrandr", "--setmonitor", "left", "640/169x720/190+0+0", "none")
                server.run("xrandr", "--setmonitor", "right", "640/169x720/190+640+0",
                           "none")
                wait_until(page, "window.hdx.status().width === 1280", 20)
                # The page offers one window per monitor; this one shows just the right one.
                page.reload()
                wait_until(page, "!document.getElementById('monitors').hidden", 20)
                right = open_client(browser_context, desktop.url + "?monitor=right")
                wait_until(right, "window.hdx.status().lossless === true", 30)
                shot = snapshot(right)
                assert shot.shape == (720, 640, 4)
                assert np.array_equal(shot, screen_rgba(server)[:, 640:])
                x0, y0 = canvas_origin(right)
                app.events.clear()
                right.mouse.click(x0 + 100, y0 + 150)  # desktop (740, 150): app (40, 50)
                press = app.wait_for(lambda e: e["type"] == "button" and e["down"])
                assert (press["x"], press["y"]) == (40, 50)
                time.sleep(0.1)
        finally:
            app.close()
