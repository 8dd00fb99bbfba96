"""Input injection through XTEST, observed by a real X application (python-xlib): pointer,
buttons, wheel, keys by keysym (also characters the server's keymap lacks), shift handling,
clamping, and nothing left held after release_all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hdx.sources.base import KeyEvent, PointerEvent, WheelEvent
from hdx.sources.x11 import X11Screen, X11Source
from hdx.x11.keysyms import keysym_for
from tests.x11.xservers import XServer

pytestmark = pytest.mark.x11


@pytest.fixture
def source(xvfb: XServer) -> Iterator[X11Source]:
    src = X11Source(X11Screen(xvfb.display))
    yield src
    src.close()


def keys(app: Any, down: bool = True) -> list[str]:
    return [e["name"] or hex(e["keysym"]) for e in app.drain()
            if e["type"] == "key" and e["down"] == down]


def test_pointer_buttons_and_wheel_reach_the_application(xvfb: XServer, source: X11Source,
                                                         x_app_factory: Any) -> None:
    app = x_app_factory(xvfb, "400x300+100+50")
    source.handle_input(PointerEvent("move", 150, 90))
    app.wait_for(lambda e: e["type"] == "motion" and (e["x"], e["y"]) == (50, 40))
    source.handle_input(PointerEvent("down", 160, 95, 2))
    source.handle_input(PointerEvent("up", 160, 95, 2))
    press = app.wait_for(lambda e: e["type"] == "button" and e["down"])
    assert (press["button"], press["x"], press["y"]) == (3, 60, 45)
    app.wait_for(lambda e: e["type"] == "button" and not e["down"] and e["button"] == 3)
    source.handle_input(WheelEvent(160, 95, 0.0, 120.0))  # two notches down
    app.wait_for(lambda e: e["type"] == "button" and e["down"] and e["button"] == 5)
    assert sum(1 for e in app.drain() if e["type"] == "button" and e["down"]
               and e["button"] == 5) == 2


def test_keys_arrive_as_the_characters_the_user_typed(xvfb: XServer, source: X11Source,
                                                      x_app_factory: Any) -> None:
    app = x_app_factory(xvfb, "400x300+100+50")
    source.handle_input(PointerEvent("move", 200, 200))  # focus follows the pointer
    typed = [("a", "KeyA"), ("Enter", "Enter"), ("ä", "Quote"), ("@", "KeyQ"),
             ("é", "Digit2"), ("€", "KeyE"), ("ArrowLeft", "ArrowLeft")]
    for key, code in typed:
        source.handle_input(KeyEvent(key, code, True))
        source.handle_input(KeyEvent(key, code, False))
    app.wait_for(lambda e: e["type"] == "key" and e["name"] == "Left" and not e["down"])
    # "@" needs shift on the server's US map: hdx presses it around the key.
    assert keys(app) == ["a", "Return", "adiaeresis", "Shift_L", "at", "eacute", "0x10020ac",
                         "Left"]
    # Upper case with the user's shift held, as the browser reports it.
    app.events.clear()
    source.handle_input(KeyEvent("Shift", "ShiftLeft", True))
    source.handle_input(KeyEvent("A", "KeyA", True))
    source.handle_input(KeyEvent("A", "KeyA", False))
    source.handle_input(KeyEvent("Shift", "ShiftLeft", False))
    app.wait_for(lambda e: e["type"] == "key" and e["name"] == "Shift_L" and not e["down"])
    assert keys(app) == ["Shift_L", "A"]


def test_release_all_leaves_nothing_held(xvfb: XServer, source: X11Source,
                                         x_app_factory: Any) -> None:
    app = x_app_factory(xvfb, "400x300+100+50")
    source.handle_input(PointerEvent("move", 200, 200))
    source.handle_input(KeyEvent("Control", "ControlLeft", True))
    source.handle_input(KeyEvent("x", "KeyX", True))
    source.handle_input(PointerEvent("down", 200, 200, 0))
    app.wait_for(lambda e: e["type"] == "button" and e["down"])
    assert source.release_input() == 3
    app.wait_for(lambda e: e["type"] == "button" and not e["down"])
    app.wait_for(lambda e: e["type"] == "key" and not e["down"] and e["name"] == "x")
    app.wait_for(lambda e: e["type"] == "key" and not e["down"] and e["name"] == "Control_L")
    assert source.release_input() == 0


def test_keysym_table() -> None:
    assert keysym_for("a", "KeyA") == 0x61
    assert keysym_for("Shift", "ShiftRight") == 0xFFE2
    assert keysym_for("F12", "F12") == 0xFFC9
    assert keysym_for("7", "Numpad7") == 0xFFB7
    assert keysym_for("ß", "Minus") == 0xDF
    assert keysym_for("€", "KeyE") == 0x010020AC
    assert keysym_for("Dead", "BracketLeft") is None
    assert keysym_for("Unidentified", "") is None
