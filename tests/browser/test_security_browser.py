"""The web client's side of access control, in real Chromium against a real `hdx serve --auth
token`: view-only pages send nothing, the input floor is handed over with the page's own
buttons, the watermark never touches the verified pixels, refused tokens are shown and not
retried, the token leaves the address bar and nothing is stored, and HTTPS plays."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hdx.security import tokens
from hdx.security.revocations import revoke
from hdx.security.secret import load_secret
from hdx.sources.base import PointerEvent
from hdx.sources.synthetic import SyntheticDesktop
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ServedDesktop,
    open_client,
    serve,
    snapshot,
    wait_until,
)
from tests.conftest import psnr, shown_by_client

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 720
STORAGE_APIS = ("localStorage", "sessionStorage", "indexedDB", "caches", "cookie")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def guarded(state_dir: Path, tmp_path: Path) -> Iterator[ServedDesktop]:
    """A still synthetic desktop that wants a token from everyone, with an audit file."""
    yield from serve("--width", str(WIDTH), "--height", str(HEIGHT), "--cine-seconds", "0",
                     "--auth", "token", "--state-dir", str(state_dir),
                     "--audit-log", str(tmp_path / "audit.jsonl"))


def mint(state: Path, role: tokens.Role, user: str, ttl_s: float = 3600,
         now: float | None = None) -> str:
    return tokens.mint(load_secret(state, {}), role, ttl_s, user, now=now)


def sessions(served: ServedDesktop, state: Path) -> list[dict[str, Any]]:
    """GET /api/sessions with an admin token (--auth token refuses tokenless callers)."""
    request = urllib.request.Request(served.url + "api/sessions", headers={
        "Authorization": f"Bearer {mint(state, 'admin', 'ops')}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return list(json.load(response)["sessions"])


def session_of(served: ServedDesktop, state: Path, page: Any) -> dict[str, Any]:
    sid = page.evaluate("window.hdx.status().session")
    found = [s for s in sessions(served, state) if s["id"] == sid]
    assert len(found) == 1, (sid, sessions(served, state))
    return found[0]


def wait_refused(served: ServedDesktop, state: Path, page: Any, count: int) -> None:
    """Wait until the server counted ``count`` refused input messages from the page."""
    deadline = time.monotonic() + 10
    while session_of(served, state, page)["input_refused"] < count:
        assert time.monotonic() < deadline, session_of(served, state, page)
        time.sleep(0.2)


def status(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("window.hdx.status()"))


def open_as(context: Any, served: ServedDesktop, token: str, query: str = "") -> Any:
    page = open_client(context, f"{served.url}?{query}{'&' if query else ''}token={token}", 30)
    wait_until(page, "window.hdx.status().floor !== null", 10)
    return page


# -- the synthetic desktop's worklist: a click on a row highlights it --------------------------

def row_center(row: int) -> tuple[int, int]:
    x, y, w, h = SyntheticDesktop(WIDTH, HEIGHT, cine_seconds=0).layout.row_rect(row)
    return x + w // 2, y + h // 2


def click_row(page: Any, row: int) -> None:
    """A real mouse click on worklist row ``row`` of the page's screen canvas."""
    box = page.locator("#screen").bounding_box()
    cx, cy = row_center(row)
    page.mouse.click(box["x"] + cx, box["y"] + cy)


def row_quality(page: Any, row: int) -> float:
    """PSNR (dB) of the row as the page shows it against the row highlighted by a click."""
    reference = SyntheticDesktop(WIDTH, HEIGHT, cine_seconds=0)
    cx, cy = row_center(row)
    for action in ("move", "down", "up"):
        reference.handle_input(PointerEvent(action, cx, cy))
    expected = reference.next_frame()
    x, y, w, h = reference.layout.row_rect(row)
    shown = snapshot(page)[..., [2, 1, 0, 3]]  # RGBA -> BGRA like the source
    return psnr(shown[y:y + h, x:x + w, :3], expected[y:y + h, x:x + w, :3])


def assert_input_does_nothing(page: Any, row: int, key: str, what: str) -> None:
    """A real click on ``row`` and a typed ``key``; after frames had time to arrive, the row
    is still not highlighted."""
    page.bring_to_front()
    click_row(page, row)
    page.keyboard.type(key)
    time.sleep(1.5)
    assert row_quality(page, row) < 20, what


def wait_row_highlighted(page: Any, row: int, timeout_s: float = 15) -> float:
    # 4:2:0 video smears the highlight's text to ~25 dB until lossless tiles land (see
    # test_web_client.py); an unselected row is below 20 dB.
    deadline = time.monotonic() + timeout_s
    quality = row_quality(page, row)
    while quality < 25 and time.monotonic() < deadline:
        time.sleep(0.1)
        quality = row_quality(page, row)
    return quality


# -- a. view only ------------------------------------------------------------------------------

def test_view_token_shows_view_only_and_sends_no_input(browser_context: Any,
                                                       guarded: ServedDesktop,
                                                       state_dir: Path) -> None:
    page = open_as(browser_context, guarded, mint(state_dir, "view", "vera"))
    shown = status(page)
    assert shown["role"] == "view" and shown["user"] == "vera" and shown["watermark"] is False
    badge = page.locator("#role-badge")
    assert badge.is_visible() and badge.inner_text() == "VIEW ONLY"
    assert page.locator("#control-badge").is_hidden()
    assert page.locator("#floor-request").is_hidden()
    wait_until(page, "window.hdx.status().lossless", 40)  # a settled, exact picture
    before = snapshot(page)

    # Real input over the screen: a click on a row, typing, the wheel over the CT viewport.
    click_row(page, 5)
    page.keyboard.type("CT7")
    layout = SyntheticDesktop(WIDTH, HEIGHT, cine_seconds=0).layout
    x, y, w, h = layout.image_rect
    box = page.locator("#screen").bounding_box()
    page.mouse.move(box["x"] + x + w // 2, box["y"] + y + h // 2)
    for _ in range(5):
        page.mouse.wheel(0, 120)
    time.sleep(2.0)  # frames a change would bring have long arrived
    assert np.array_equal(snapshot(page), before), "a view-only page changed the desktop"
    assert status(page)["lossless"]
    mine = session_of(guarded, state_dir, page)
    assert mine["role"] == "view" and mine["user"] == "vera"
    assert (mine["input_events"], mine["input_refused"]) == (0, 0), "the page sent input"
    assert "view only" in page.locator("#status").inner_text()  # it says why nothing happens

    # Input forced past the page is dropped by the server and counted.
    cx, cy = row_center(5)
    page.evaluate(f"window.hdx.send({{t: 'pointer', a: 'down', x: {cx}, y: {cy}, b: 0}})")
    page.evaluate(f"window.hdx.send({{t: 'pointer', a: 'up', x: {cx}, y: {cy}, b: 0}})")
    wait_refused(guarded, state_dir, page, 2)
    mine = session_of(guarded, state_dir, page)
    assert mine["input_events"] == 0 and mine["input_refused"] == 2
    wait_until(page, "window.hdx.status().refused !== null", 10)
    refused = status(page)["refused"]
    assert refused["what"] == "input" and "view-only" in refused["reason"], refused
    page.evaluate("window.hdx.send({t: 'floor', a: 'request'})")
    wait_refused(guarded, state_dir, page, 3)
    wait_until(page, "window.hdx.status().refused.what === 'floor'", 10)
    assert "view-only" in status(page)["refused"]["reason"]
    time.sleep(1.0)
    assert np.array_equal(snapshot(page), before)
    # The page's own hooks send nothing for a viewer either.
    page.evaluate("window.hdx.requestControl()")
    time.sleep(0.5)
    assert session_of(guarded, state_dir, page)["input_refused"] == 3


# -- b. control drives -------------------------------------------------------------------------

def test_control_token_click_changes_the_desktop(browser_context: Any, guarded: ServedDesktop,
                                                 state_dir: Path) -> None:
    page = open_as(browser_context, guarded, mint(state_dir, "control", "alice"))
    shown = status(page)
    assert shown["role"] == "control" and shown["user"] == "alice"
    assert shown["floor"] == {"holder": None, "you": False, "asked": False, "requests": []}
    assert page.locator("#role-badge").is_hidden()
    time.sleep(0.5)
    assert row_quality(page, 5) < 20
    click_row(page, 5)
    assert wait_row_highlighted(page, 5) >= 25
    wait_until(page, "window.hdx.status().floor.you", 10)
    assert page.locator("#control-badge").inner_text() == "IN CONTROL"
    assert page.locator("#floor-release").is_visible()
    mine = session_of(guarded, state_dir, page)
    assert mine["input_events"] >= 2 and mine["input_refused"] == 0 and mine["in_control"]


# -- c. hand-over between two people -----------------------------------------------------------

def test_floor_is_handed_over_with_the_pages_buttons(browser_context: Any,
                                                     guarded: ServedDesktop,
                                                     state_dir: Path) -> None:
    alice = open_as(browser_context, guarded, mint(state_dir, "control", "alice"))
    bob = open_as(browser_context, guarded, mint(state_dir, "control", "bob"))
    # Alice's first input takes the free floor.
    alice.bring_to_front()
    click_row(alice, 3)
    wait_until(alice, "window.hdx.status().floor.you", 10)
    assert alice.locator("#control-badge").is_visible()
    assert wait_row_highlighted(alice, 3) >= 25
    # Bob sees who drives; his clicks are not sent.
    wait_until(bob, "window.hdx.status().floor.holder === 'alice'", 10)
    assert bob.locator("#floor-note").inner_text() == "alice is in control"
    assert bob.locator("#control-badge").is_hidden()
    request = bob.locator("#floor-request")
    assert request.is_visible() and request.inner_text() == "Request control"
    assert_input_does_nothing(bob, 7, "x", "bob's click reached the desktop")
    bobs = session_of(guarded, state_dir, bob)
    assert (bobs["input_events"], bobs["input_refused"]) == (0, 0), bobs
    assert "alice is in control" in bob.locator("#status").inner_text()
    # Bob asks with the real button; alice's page offers to hand it over.
    request.click()
    wait_until(bob, "window.hdx.status().floor.asked", 10)
    assert request.inner_text() == "Requested…" and request.is_disabled()
    hand_over = alice.locator("#floor-requests button", has_text="Hand control to bob")
    hand_over.wait_for(state="visible", timeout=10_000)
    assert alice.evaluate("window.hdx.status().floor.requests") == [
        {"session": bob.evaluate("window.hdx.status().session"), "user": "bob"}]
    alice.bring_to_front()
    hand_over.click()
    # Bob drives now; alice's page shows him in control and sends nothing more.
    wait_until(bob, "window.hdx.status().floor.you", 10)
    assert bob.locator("#control-badge").is_visible() and request.is_hidden()
    wait_until(alice, "window.hdx.status().floor.holder === 'bob'", 10)
    assert not alice.evaluate("window.hdx.status().floor.you")
    assert alice.locator("#control-badge").is_hidden()
    assert alice.locator("#floor-requests button").count() == 0
    assert alice.locator("#floor-note").inner_text() == "bob is in control"
    alices = session_of(guarded, state_dir, alice)["input_events"]
    bob.bring_to_front()
    click_row(bob, 7)
    assert wait_row_highlighted(bob, 7) >= 25
    assert_input_does_nothing(alice, 9, "y", "alice's click reached the desktop after hand-over")
    after = session_of(guarded, state_dir, alice)
    assert (after["input_events"], after["input_refused"]) == (alices, 0), after
    by_user = {s["user"]: s for s in sessions(guarded, state_dir)}
    assert by_user["bob"]["in_control"] and not by_user["alice"]["in_control"]
    assert by_user["bob"]["input_refused"] == 0


# -- d. watermark ------------------------------------------------------------------------------

def test_watermark_is_over_the_screen_never_in_it(browser_context: Any, state_dir: Path,
                                                  tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (260, 420, 3), dtype=np.uint8)
    path = tmp_path / "picture.png"
    cv2.imwrite(str(path), picture)
    expected = shown_by_client(picture)
    for served in serve("--source", f"image:{path}", "--watermark", "on", "--auth", "token",
                        "--state-dir", str(state_dir)):
        page = open_as(browser_context, served, mint(state_dir, "control", "alice"))
        assert status(page)["watermark"] is True
        wait_until(page, "window.hdx.status().lossless", 40)
        assert page.inner_text("#lossless") == "LOSSLESS ✓"
        shot = snapshot(page)
        assert np.array_equal(shot[..., :3], expected), "the watermark is in snapshot()"
        ink, size = page.evaluate("""(() => {
            const c = document.getElementById('watermark');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return [n, [c.width, c.height]];
        })()""")
        assert size == [420, 260] and ink > 1000, (ink, size)
        overlay = page.locator("#watermark")
        assert overlay.is_visible()
        assert overlay.bounding_box() == page.locator("#screen").bounding_box()
        assert page.evaluate("getComputedStyle(document.getElementById('watermark'))"
                             ".pointerEvents") == "none"
        # What the eye sees differs from the exact pixels; the exact pixels stay exact.
        seen = cv2.imdecode(np.frombuffer(page.locator("#screen").screenshot(), np.uint8),
                            cv2.IMREAD_COLOR)[..., ::-1]
        assert seen.shape == expected.shape
        differs = np.any(seen != expected, axis=2)
        assert 0.01 < differs.mean() < 0.6, differs.mean()
        assert np.array_equal(snapshot(page)[..., :3], expected)
        assert page.evaluate("window.hdx.status().lossless")
        # It follows the view's scaling.
        page.set_viewport_size({"width": 300, "height": 240})
        page.evaluate("window.hdx.setViewMode('fit')")
        time.sleep(0.5)
        screen_box = page.locator("#screen").bounding_box()
        assert screen_box["width"] < 420
        assert overlay.bounding_box() == screen_box
        assert np.array_equal(snapshot(page)[..., :3], expected)


# -- e. refused: shown, not retried ------------------------------------------------------------

def test_refused_tokens_are_shown_and_not_retried(browser_context: Any, guarded: ServedDesktop,
                                                  state_dir: Path, tmp_path: Path) -> None:
    expired = mint(state_dir, "control", "carol", ttl_s=60, now=time.time() - 3600)
    revoked = mint(state_dir, "control", "dave")
    revoke(state_dir, tokens.verify(load_secret(state_dir, {}), revoked).id)
    forged = tokens.mint(b"not this server's secret, 32+ chars", "control", 3600, "mallory")
    cases = [
        ("", 401, "a join token is required"),
        (f"?token={forged}", 401, "the token's signature is not valid for this server"),
        (f"?token={expired}", 401, "the token has expired"),
        (f"?token={revoked}", 403, "this token was revoked"),
        (f"#token={forged}", 401, "the token's signature is not valid for this server"),
    ]
    pages = []
    for suffix, code, reason in cases:
        page = browser_context.new_page()
        page.goto(guarded.url + suffix)
        wait_until(page, "window.hdx && window.hdx.status().refusal !== null", 20)
        shown = status(page)
        assert reason in shown["refusal"], shown
        assert shown["connectionState"] == "refused" and shown["framesDrawn"] == 0
        line = page.locator("#status")
        assert reason in line.inner_text() and f"({code})" in line.inner_text()
        assert "alert" in (line.get_attribute("class") or "")
        assert "token" not in page.evaluate("location.href")
        pages.append(page)
    time.sleep(3.5)  # past the first two reconnect delays (1 s, 2 s)
    for page in pages:
        assert status(page)["reconnects"] == 0 and status(page)["refusal"] is not None
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    offers = [r for r in audit if r["event"] == "refused" and r.get("path") == "/api/offer"]
    assert [r["status"] for r in offers] == [code for _, code, _ in cases], offers
    assert sessions(guarded, state_dir) == []


def test_revoked_while_watching_says_bye_and_stays_away(browser_context: Any,
                                                        guarded: ServedDesktop,
                                                        state_dir: Path) -> None:
    text = mint(state_dir, "control", "erin")
    page = open_as(browser_context, guarded, text)
    revoke(state_dir, tokens.verify(load_secret(state_dir, {}), text).id)
    wait_until(page, "window.hdx.status().serverBye === 'access revoked'", 15)
    wait_until(page, "window.hdx.status().connectionState === 'closed by server'", 5)
    time.sleep(2.0)
    assert status(page)["reconnects"] == 0


# -- f. nothing in the address bar, nothing stored ---------------------------------------------

STORAGE_PROBE = """(async () => ({
    local: localStorage.length,
    session: sessionStorage.length,
    databases: (await indexedDB.databases()).length,
    caches: (await caches.keys()).length,
    cookie: document.cookie,
}))()"""


def test_token_leaves_the_address_bar_and_nothing_is_stored(browser_context: Any,
                                                            guarded: ServedDesktop,
                                                            state_dir: Path) -> None:
    token = mint(state_dir, "control", "alice")
    page = open_as(browser_context, guarded, token, query="tile-formats=png,jls,raw,zstd")
    href = page.evaluate("location.href")
    assert "token" not in href and token not in href
    assert re.search(r"[?&]tile-formats=png(,|%2C)jls", href), href
    click_row(page, 4)  # a real session: input, floor, tiles
    wait_until(page, "window.hdx.status().lossless", 40)
    # The token went only in headers: no URL the page requested carries it.
    requested = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
    assert any("/api/offer" in url for url in requested), requested
    assert not [url for url in requested if "token" in url or token in url]
    assert page.evaluate(STORAGE_PROBE) == {"local": 0, "session": 0, "databases": 0,
                                            "caches": 0, "cookie": ""}
    # A window opened with the token in its fragment (as "Open monitors" does) joins too.
    other = open_client(browser_context, f"{guarded.url}#token={token}", 30)
    assert "token" not in other.evaluate("location.href")
    assert other.evaluate("window.hdx.status().user") == "alice"
    assert other.evaluate(STORAGE_PROBE)["databases"] == 0
    assert token not in guarded.log()
    # The client's code never names a storage API (the vendored decoders neither).
    web = Path(__file__).resolve().parents[2] / "hdx" / "web"
    sources = sorted(web.glob("*.js"))
    assert len(sources) >= 10
    for source in sources:
        text = source.read_text(encoding="utf-8")
        named = [api for api in STORAGE_APIS if api in text]
        assert not named, f"{source.name} names {named}"
    # Nor does the session history hold the link: back is the blank tab, forward the bare page.
    page.go_back()
    assert page.url == "about:blank"
    page.go_forward()
    assert page.url.startswith(guarded.url) and "token" not in page.url


# -- g. HTTPS ----------------------------------------------------------------------------------

@pytest.fixture
def tls_browser_context(playwright_instance: Any) -> Iterator[Any]:
    """Like browser_context, but trusting the server's self-signed certificate."""
    profile = tempfile.mkdtemp(prefix="hdx-chromium-")
    context = playwright_instance.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900}, ignore_https_errors=True)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_plays_over_https(tls_browser_context: Any, state_dir: Path) -> None:
    for served in serve("--width", "640", "--height", "360", "--cine-seconds", "-1",
                        "--tls", "on", "--auth", "token", "--state-dir", str(state_dir)):
        assert served.url.startswith("https://")
        page = open_as(tls_browser_context, served, mint(state_dir, "view", "vera"))
        assert page.evaluate("location.protocol") == "https:"
        drawn = status(page)["framesDrawn"]
        time.sleep(1.0)
        shown = status(page)
        assert shown["framesDrawn"] > drawn + 5 and shown["connected"], shown
        assert (shown["width"], shown["height"]) == (640, 360)
        assert page.locator("#role-badge").is_visible()
