"""X11 capture against real X servers: byte-exact with xwd, MIT-SHM = XGetImage, depth 30,
DAMAGE limits the compare without missing anything, RandR resizes and monitors are followed,
and a vanished server is an error, not an exit."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import numpy as np
import pytest

from hdx.damage import tile_change_map
from hdx.errors import SourceError
from hdx.sources.base import PointerEvent
from hdx.sources.factory import open_source
from hdx.sources.x11 import X11Screen, X11Source
from hdx.x11.grabber import channels, to_bgra
from tests.x11.xservers import XServer, x_server, xwd_root

pytestmark = pytest.mark.x11


def settle(source: X11Source, rounds: int = 5) -> np.ndarray:
    frame = source.next_frame()
    for _ in range(rounds):
        time.sleep(0.05)
        frame = source.next_frame()
    return frame


def test_capture_is_byte_exact_with_xwd(xvfb: XServer, x_app_factory: Any) -> None:
    x_app_factory(xvfb, "300x200+17+33", "noise", 5)
    source = open_source(f"x11:{xvfb.display}", None, None, 0, 30)
    assert isinstance(source, X11Source)
    try:
        assert source.capture_method == "MIT-SHM+DAMAGE"
        frame = settle(source)
        raw = source.grab_raw()
        w, h, depth, reference = xwd_root(xvfb)
        assert (w, h, depth) == (1280, 720, 24) == (*source.size, 24)
        assert np.array_equal(raw & 0xFFFFFF, reference & 0xFFFFFF)
        # hdx's frame: the same pixels as BGRA with opaque alpha.
        expected = (reference & 0xFFFFFF | 0xFF000000).astype("<u4").view(np.uint8)
        assert np.array_equal(frame, expected.reshape(720, 1280, 4))
        assert frame[40, 20].tolist() != [0, 0, 0, 255]  # the noise window is in there
    finally:
        source.close()


def test_getimage_fallback_gives_identical_pixels(xvfb: XServer, x_app_factory: Any) -> None:
    x_app_factory(xvfb, "256x128+400+300", "bars")
    screen = X11Screen(xvfb.display, use_shm=False, use_damage=False)
    fallback = X11Source(screen)
    shm = X11Source(X11Screen(xvfb.display))
    try:
        assert fallback.capture_method == "XGetImage"
        a, b = settle(fallback), settle(shm)
        assert np.array_equal(a, b)
    finally:
        fallback.close()
        shm.close()


def test_depth30_capture_round_trips_10_bit_values(x_app_factory: Any) -> None:
    with x_server("xvfb", "640x480", 30) as server:
        x_app_factory(server, "200x100+10+10", "noise", 9)
        source = X11Source(X11Screen(server.display))
        try:
            assert source.bits_per_channel == 10
            frame = settle(source)
            raw = source.grab_raw()
            _, _, depth, reference = xwd_root(server)
            assert depth == 30
            assert np.array_equal(raw & 0x3FFFFFFF, reference & 0x3FFFFFFF)
            # The window's exact 10-bit samples, as the X client wrote them.
            from tests.x11.xclient import pattern

            written = pattern("noise", 200, 100, 9, 30)
            assert np.array_equal(raw[10:110, 10:210] & 0x3FFFFFFF, written)
            samples = channels(raw, source.grabber_for_size().format)
            assert samples.max() > 255 and samples.dtype == np.uint16
            # Video gets the top 8 bits, and the source says so truthfully.
            assert np.array_equal(frame[10:110, 10:210, 2], (written >> 22).astype(np.uint8))
            assert source.fidelity() is not None and "10 bits" in str(source.fidelity())
        finally:
            source.close()


def test_damage_limits_the_compare_and_misses_nothing(xvfb: XServer,
                                                      x_app_factory: Any) -> None:
    source = X11Source(X11Screen(xvfb.display))
    try:
        first = settle(source)
        assert source.next_frame() is first  # nothing drawn: the same object, no copy
        app = x_app_factory(xvfb, "70x90+600+130", "noise", 2)
        deadline = time.monotonic() + 10
        frame = first
        while frame is first and time.monotonic() < deadline:
            time.sleep(0.05)
            frame = source.next_frame()
        hint = source.damage_hint()
        assert hint, "a new window must be reported as damage"
        from hdx.damage import tile_change_map_within

        full = tile_change_map(first, frame, 64)
        hinted = tile_change_map_within(first, frame, hint, 64)
        assert full.any() and np.array_equal(full, hinted)
        app.close()
    finally:
        source.close()


def test_randr_resize_and_monitors_are_followed(x_app_factory: Any) -> None:
    with x_server("xorg", "1280x720") as server:
        source = X11Source(X11Screen(server.display))
        try:
            assert settle(source, 1).shape == (720, 1280, 4)
            server.run("xrandr", "--output", "DUMMY0", "--mode", "1024x768")
            deadline = time.monotonic() + 10
            while source.next_frame().shape != (768, 1024, 4):
                assert time.monotonic() < deadline, "resize not followed"
                time.sleep(0.05)
            assert source.size == (1024, 768)
            server.run("xrandr", "--output", "DUMMY0", "--mode", "1280x720")
            server.run("xrandr", "--setmonitor", "left", "640/169x720/190+0+0", "none")
            server.run("xrandr", "--setmonitor", "right", "640/169x720/190+640+0", "none")
            x_app_factory(server, "300x200+600+100", "noise", 4)
            whole = settle(source)
            assert whole.shape == (720, 1280, 4)
            right = source.for_monitor("right")
            try:
                assert right.size == (640, 720) and right.origin == (640, 0)
                shown = settle(right)
                assert np.array_equal(shown, whole[:, 640:])
                right.handle_input(PointerEvent("move", 10, 20))
                time.sleep(0.1)
                right.next_frame()
                cursor = right.cursor()
                assert cursor is not None and (cursor.x, cursor.y) == (10, 20)
                assert {m.name for m in source.monitors()} >= {"left", "right"}
            finally:
                right.close()
            with pytest.raises(SourceError, match="no monitor 'middle'"):
                source.for_monitor("middle")
        finally:
            source.close()


def test_a_vanished_x_server_is_an_error_not_an_exit_and_capture_resumes() -> None:
    with x_server("xvfb", "320x240", 24) as server:
        source = X11Source(X11Screen(server.display))
        settle(source, 1)
        server.process.kill()
        server.process.wait(timeout=10)
        with pytest.raises(SourceError, match=r"lost|X display"):
            for _ in range(5):
                source.next_frame()
                time.sleep(0.05)
        assert source.health() is not None
        with pytest.raises(SourceError):
            source.handle_input(PointerEvent("move", 1, 1))
        # The display comes back (a service manager restarted it): capture carries on.
        number = server.display.lstrip(":")
        restarted = subprocess.Popen(["Xvfb", server.display, "-screen", "0", "400x300x24",
                                      "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            frame = None
            while frame is None:
                assert time.monotonic() < deadline, f"capture did not resume on :{number}"
                try:
                    frame = source.next_frame()
                except SourceError:
                    time.sleep(0.2)
            assert frame.shape == (300, 400, 4) and source.health() is None
            source.handle_input(PointerEvent("move", 5, 6))  # input reconnects too
            time.sleep(0.1)
            source.next_frame()
            cursor = source.cursor()
            assert cursor is not None and (cursor.x, cursor.y) == (5, 6)
        finally:
            source.close()
            restarted.terminate()
            restarted.wait(timeout=10)


def test_to_bgra_matches_masks_for_both_depths() -> None:
    from hdx.x11.grabber import PixelFormat, fits_in_8_bits

    rng = np.random.default_rng(0)
    raw24 = rng.integers(0, 2**24, size=(3, 5), dtype=np.uint32)
    fmt24 = PixelFormat(24, 0xFF0000, 0xFF00, 0xFF)
    bgra = to_bgra(raw24, fmt24)
    assert np.array_equal(bgra[..., 2], (raw24 >> 16).astype(np.uint8))
    assert (bgra[..., 3] == 255).all()
    fmt30 = PixelFormat(30, 0x3FF00000, 0xFFC00, 0x3FF)
    v8 = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint32)
    v10 = (v8 << 2) | (v8 >> 6)
    raw30 = (v10[..., 0] << 20) | (v10[..., 1] << 10) | v10[..., 2]
    assert fits_in_8_bits(raw30, fmt30)
    assert np.array_equal(to_bgra(raw30, fmt30)[..., :3], v8[..., ::-1].astype(np.uint8))
    assert not fits_in_8_bits(raw30 ^ 1, fmt30)
    with pytest.raises(SourceError, match="unsupported X pixel format"):
        PixelFormat(16, 0xF800, 0x7E0, 0x1F)
