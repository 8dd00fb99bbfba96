"""Build to lossless in Chromium: exact pixels on screen, a truthful indicator, and no stale
overlay when the desktop changes under refinement."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hdx.bench import content
from hdx.client.compositor import later
from hdx.sources.push import PushSource
from hdx.webrtc.track import SentFrame
from tests.browser.conftest import open_client, serve, snapshot, wait_until
from tests.browser.inprocess import server_thread
from tests.conftest import shown_by_client

pytestmark = pytest.mark.browser


def _write_images(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (PNG path, what the screen must show: RGB, or uint16 samples)."""
    rng = np.random.default_rng(8)
    ct16 = content.ct_phantom(512, bits=12, seed=5)
    canvas16 = np.zeros((560, 700), np.uint16)
    canvas16[20:532, 100:612] = ct16
    ct8 = content.grey8(content.ct_phantom(512, bits=12, seed=6), 12)
    pictures = {
        "random-rgb": rng.integers(0, 256, (300, 450, 3), dtype=np.uint8),
        "text-ui": np.ascontiguousarray(content.text_screen_bgra(800, 450, seed=1)[..., :3]),
        "ct-grey8": ct8,
        "noise": np.ascontiguousarray(content.noise_bgra(320, 192, seed=9)[..., :3]),
        "ct-grey16": canvas16,
    }
    out = {}
    for name, image in pictures.items():
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), image)
        out[name] = (path, shown_by_client(image))
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    return _write_images(tmp_path_factory.mktemp("lossless"))


def snapshot16(page: Any) -> np.ndarray:
    shot = page.evaluate("window.hdx.snapshot16Base64()")
    data = np.frombuffer(base64.b64decode(shot["samples"]), "<u2")
    return data.reshape(shot["height"], shot["width"])


@pytest.mark.parametrize("name", ["random-rgb", "text-ui", "ct-grey8", "noise", "ct-grey16"])
def test_screen_ends_byte_exact_and_says_so(browser_context: Any, name: str,
                                            pictures: dict[str, tuple[Path, np.ndarray]]) -> None:
    path, expected = pictures[name]
    for served in serve("--source", f"image:{path}"):
        page = open_client(browser_context, served.url)
        wait_until(page, "window.hdx.status().lossless", 30)
        status = page.evaluate("window.hdx.status()")
        assert status["coverage"] == 1 and status["verified"] == status["tiles"]
        assert status["timeToLosslessMs"] is not None
        assert page.inner_text("#lossless") == "LOSSLESS ✓"
        assert status["tileCounters"]["broken"] == 0 and status["tileCounters"]["malformed"] == 0
        if expected.dtype == np.uint16:
            assert status["bits"] == 16
            assert np.array_equal(snapshot16(page), expected)
            # The display is the high byte at the default window: the 8-bit screen agrees.
            assert np.array_equal(snapshot(page)[..., 0], (expected >> 8).astype(np.uint8))
        else:
            assert np.array_equal(snapshot(page)[..., :3], expected)
        assert status["tileCounters"]["broken"] == 0


@pytest.mark.parametrize(("allowed", "expected_format"), [("png,jls,raw", "png"),
                                                           ("zstd", "zstd")])
def test_browsers_without_jpeg_xl_get_exact_tiles_too(
        browser_context: Any, pictures: dict[str, tuple[Path, np.ndarray]], allowed: str,
        expected_format: str) -> None:
    path, expected = pictures["text-ui"]
    for served in serve("--source", f"image:{path}"):
        page = browser_context.new_page()
        page.goto(served.url + f"?tile-formats={allowed}")
        wait_until(page, "window.hdx && window.hdx.status().lossless", 30)
        assert np.array_equal(snapshot(page)[..., :3], expected)
        sessions = json.loads(urllib.request.urlopen(served.url + "api/sessions").read())
        formats = sessions["sessions"][0]["lossless"]["formats"]
        assert "jxl" not in formats and expected_format in formats, formats


def test_scaled_view_is_never_called_lossless(browser_context: Any,
                                              pictures: dict[str, tuple[Path, np.ndarray]]
                                              ) -> None:
    path, _ = pictures["text-ui"]
    for served in serve("--source", f"image:{path}"):
        page = open_client(browser_context, served.url)
        wait_until(page, "window.hdx.status().lossless", 30)
        page.set_viewport_size({"width": 500, "height": 400})
        page.evaluate("window.hdx.setViewMode('fit')")
        status = page.evaluate("window.hdx.status()")
        assert status["scaled"] and not status["lossless"]
        assert status["losslessReason"] == "scaled view"
        assert "LOSSY" in page.inner_text("#lossless")
        page.evaluate("window.hdx.setViewMode('1:1')")
        wait_until(page, "window.hdx.status().lossless", 10)


def test_debug_tint_marks_lossy_tiles_without_touching_the_pixels(
        browser_context: Any, pictures: dict[str, tuple[Path, np.ndarray]]) -> None:
    path, expected = pictures["random-rgb"]
    for served in serve("--source", f"image:{path}", "--lossless-quiet-ms", "3000"):
        page = open_client(browser_context, served.url)
        page.click("#tint-toggle")
        time.sleep(0.5)  # well inside the 3 s quiet period: everything is still lossy
        assert not page.evaluate("window.hdx.status().lossless")
        tinted = page.locator("#tint").screenshot()
        tint = cv2.imdecode(np.frombuffer(tinted, np.uint8), cv2.IMREAD_COLOR)
        assert tint[..., 2].mean() > tint[..., 1].mean() + 20, "lossy tiles are tinted red"
        before = snapshot(page)
        wait_until(page, "window.hdx.status().lossless", 30)
        assert np.array_equal(snapshot(page)[..., :3], expected), "tint is not in snapshot()"
        assert before.shape == snapshot(page).shape


def test_window_level_changes_the_display_not_the_samples(
        browser_context: Any, pictures: dict[str, tuple[Path, np.ndarray]]) -> None:
    path, expected = pictures["ct-grey16"]
    for served in serve("--source", f"image:{path}"):
        page = open_client(browser_context, served.url)
        wait_until(page, "window.hdx.status().lossless", 30)
        page.evaluate("window.hdx.setWindowLevel(1040, 400)")
        shown = snapshot(page)[..., 0].astype(np.int32)
        lo = 1040 - 200
        want = np.clip(np.round((expected.astype(np.float64) - lo) * 255 / 400), 0, 255)
        assert np.abs(shown - want).max() <= 1
        assert np.array_equal(snapshot16(page), expected)
        assert page.evaluate("window.hdx.status().lossless")


class _Recorder:
    """What each announced frame showed, recorded on the server's loop."""

    def __init__(self) -> None:
        self.frames: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def wrap(self, track: Any) -> None:
        inner = track.on_sent

        def on_sent(sent: SentFrame) -> None:
            with self.lock:
                self.frames[sent.pts & 0xFFFFFFFF] = sent.frame.pixels[..., 2::-1]
            inner(sent)

        track.on_sent = on_sent

    def get(self, pts: int) -> np.ndarray | None:
        with self.lock:
            return self.frames.get(pts)


_SAMPLE_JS = """() => {
  const s = window.hdx.status(), t = window.hdx.tileState();
  return {s, t, shot: window.hdx.snapshotBase64()};
}"""



def _check(sample: dict[str, Any], recorder: _Recorder, problems: list[str]) -> bool:
    """The invariants at one instant in the page; returns True if the sample was checkable."""
    state, status = sample["t"], sample["s"]
    shot = np.frombuffer(base64.b64decode(sample["shot"]["rgba"]), np.uint8)
    shot = shot.reshape(sample["shot"]["height"], sample["shot"]["width"], 4)[..., :3]
    if state["shownPts"] is None:
        if any(b >= 0 for b in state["overlayBase"]):
            problems.append("overlay over an unidentified frame")
        return False
    source = recorder.get(state["shownPts"])
    if source is None:
        return False
    tile, cols = state["tile"], state["cols"]
    for i, base in enumerate(state["overlayBase"]):
        if base < 0 or bool(later(int(base), state["shownPts"])):
            continue  # no overlay, or one newer than the video (true content, not stale)
        cell = (slice(i // cols * tile, (i // cols + 1) * tile),
                slice(i % cols * tile, (i % cols + 1) * tile))
        if not np.array_equal(shot[cell], source[cell]):
            problems.append(f"stale overlay at tile {i} over frame {state['shownPts']}")
    if status["lossless"] and not np.array_equal(shot, source):
        problems.append(f"LOSSLESS claimed over frame {state['shownPts']} with wrong pixels")
    return True


@pytest.fixture
def changing_desktop() -> Iterator[tuple[PushSource, np.ndarray]]:
    rng = np.random.default_rng(21)
    frame = rng.integers(0, 256, (384, 640, 3), dtype=np.uint8)
    source = PushSource(640, 384)
    source.push(frame.copy())
    yield source, frame


@pytest.mark.parametrize("seed", [1, 2])
def test_random_changes_never_show_a_stale_overlay(
        browser_context: Any, changing_desktop: tuple[PushSource, np.ndarray], seed: int) -> None:
    source, frame = changing_desktop
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    recorder = _Recorder()
    problems: list[str] = []
    checked = lossless_seen = 0
    with server_thread(source, fps=30, lossless_quiet_ms=60) as running:
        page = open_client(browser_context, running.url)
        session = running.call(lambda: next(iter(running.server.sessions.values())))
        running.call(lambda: recorder.wrap(session.track))
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            for _ in range(rng.randint(1, 4) if rng.random() < 0.3 else 1):
                x, y = rng.randrange(640), rng.randrange(384)
                w, h = rng.randint(1, 160), rng.randint(1, 160)
                frame[y:y + h, x:x + w] = nrng.integers(0, 256, 3, dtype=np.uint8)
            source.push(frame.copy())
            pause = rng.choice([0.0, 0.02, 0.05, 0.1, 0.25, 0.5])
            until = time.monotonic() + pause
            while True:  # sample the page during bursts and during refinement
                sample = page.evaluate(_SAMPLE_JS)
                checked += _check(sample, recorder, problems)
                lossless_seen += bool(sample["s"]["lossless"])
                if time.monotonic() >= until:
                    break
        wait_until(page, "window.hdx.status().lossless", 30)
        final = page.evaluate(_SAMPLE_JS)
        assert _check(final, recorder, problems)
        assert np.array_equal(snapshot(page)[..., :3], frame[..., ::-1])
        counters = page.evaluate("window.hdx.status().tileCounters")
        summary = running.call(lambda: running.server.session_summaries()[0]["lossless"])
    assert not problems, problems[:5]
    assert checked > 20, "the page was checked while it changed"
    assert counters["invalidated"] > 0, "changes hit refined tiles, so the rule was exercised"
    assert summary["hash_mismatches"] == 0
    print(f"seed {seed}: {checked} samples checked, {lossless_seen} while lossless, "
          f"counters {counters}")


def test_hostile_tile_messages_are_counted_and_the_page_goes_on(browser_context: Any) -> None:
    from hdx.lossless.protocol import TileHeader, chunk_tile

    rng = np.random.default_rng(12)
    frame = rng.integers(0, 256, (256, 384, 3), dtype=np.uint8)
    source = PushSource(384, 256)
    source.push(frame.copy())
    with server_thread(source, fps=30) as running:
        page = open_client(browser_context, running.url)
        session = running.call(lambda: next(iter(running.server.sessions.values())))
        wait_until(page, "window.hdx.status().lossless", 30)
        shown = page.evaluate("window.hdx.tileState().shownPts")
        good = chunk_tile(TileHeader(900_001, 0, 0, 64, 64, 0, 2, 8, 3, 300), bytes(300), 132)
        other = chunk_tile(TileHeader(900_001, 64, 0, 64, 64, 0, 2, 8, 3, 300), bytes(300), 132)
        hostile = [b"", b"HT", b"\x00" * 40, bytes(range(256)), good[1] + b"x",
                   good[0], good[0], other[1],
                   # complete, well-formed, but its payload is not a PNG: a decode failure
                   *chunk_tile(TileHeader(900_002, 0, 0, 64, 64, shown, 2, 8, 3, 100),
                               bytes(100), 4096)]

        def send_all() -> None:
            channel = session.refiner._channel
            for message in hostile:
                channel.send(message)

        running.call(send_all)
        wait_until(page, "window.hdx.status().tileCounters.malformed >= 5", 10)
        wait_until(page, "window.hdx.status().tileCounters.broken >= 1", 10)
        # The page is still exact and still refines what changes next.
        frame[100:200, 100:300] = (10, 200, 30)
        source.push(frame.copy())
        wait_until(page, "window.hdx.status().lossless && "
                         "window.hdx.status().tileCounters.tilesDrawn >= 2", 30)
        assert np.array_equal(snapshot(page)[..., :3], frame[..., ::-1])
        assert page.evaluate("window.hdx.status().connected")
