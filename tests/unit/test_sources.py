"""Frame sources: the synthetic workstation, still images, pushed frames and the factory.

These check content (pixel values, which regions changed, object identity), since identity and
changed regions are exactly what the capture loop relies on.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from hdx.errors import ConfigError, SourceError
from hdx.sources.base import Frame, FrameSource, InputEvent, KeyEvent, PointerEvent, WheelEvent
from hdx.sources.factory import open_source
from hdx.sources.image import BACKGROUND, ImageSource
from hdx.sources.push import PushSource
from hdx.sources.synthetic import (
    ROW_COUNT,
    SEARCH_MAX,
    SLICE_COUNT,
    START_SLICE,
    DesktopLayout,
    SyntheticDesktop,
)

pytestmark = pytest.mark.unit

Rect = tuple[int, int, int, int]
SIZES = [(320, 240), (1280, 720), (1920, 1080), (3840, 2160)]


def changed_mask(a: Frame, b: Frame) -> npt.NDArray[np.bool_]:
    return np.asarray(np.any(a != b, axis=2), np.bool_)


def resting(src: SyntheticDesktop) -> bool:
    """Read through a call so mypy does not narrow the property between assertions."""
    return src.is_resting


def only_inside(mask: npt.NDArray[np.bool_], rects: list[Rect]) -> bool:
    """True when every changed pixel lies in one of ``rects``."""
    allowed = np.zeros_like(mask)
    for x, y, w, h in rects:
        allowed[max(0, y) : y + h, max(0, x) : x + w] = True
    return not np.any(mask & ~allowed)


def any_inside(mask: npt.NDArray[np.bool_], rect: Rect) -> bool:
    x, y, w, h = rect
    return bool(mask[y : y + h, x : x + w].any())


def key(k: str, down: bool = True) -> KeyEvent:
    return KeyEvent(key=k, code="", down=down)


def centre(rect: Rect) -> tuple[int, int]:
    x, y, w, h = rect
    return x + w // 2, y + h // 2


def check_format(frame: Frame, width: int, height: int) -> None:
    assert isinstance(frame, np.ndarray)
    assert frame.dtype == np.uint8
    assert frame.shape == (height, width, 4)
    assert frame.flags.c_contiguous


# -- SyntheticDesktop ---------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_synthetic_renders_at_every_size(width: int, height: int) -> None:
    src = SyntheticDesktop(width, height)
    assert isinstance(src, FrameSource)
    assert src.size == (width, height)
    frame = src.next_frame()
    check_format(frame, width, height)
    assert np.all(frame[:, :, 3] == 255)
    lay = src.layout
    # Rows sit inside the panel, stack without overlap, and row_at inverts row_rect.
    px, py, pw, ph = lay.panel
    for i in range(ROW_COUNT):
        x, y, w, h = lay.row_rect(i)
        assert h > 0 and w > 0
        assert px <= x and x + w <= px + pw and py <= y and y + h <= py + ph
        assert lay.row_at(*centre((x, y, w, h))) == i
    vx, vy, vw, vh = lay.viewport_rect
    assert vx >= px + pw and vx + vw <= width and vy + vh <= height
    # Interaction works at every size, including clicking the last row.
    src.handle_input(PointerEvent("down", *centre(lay.row_rect(ROW_COUNT - 1))))
    src.handle_input(key("x"))
    src.handle_input(key("ß"))  # non-ASCII text renders too
    frame = src.next_frame()
    check_format(frame, width, height)
    assert np.all(frame[:, :, 3] == 255)  # text drawing must keep the frame opaque
    assert src.selected_row == ROW_COUNT - 1


def test_synthetic_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        SyntheticDesktop(100, 80)
    with pytest.raises(ConfigError):
        SyntheticDesktop(640, 480, cine_seconds=float("nan"))
    with pytest.raises(ConfigError):
        SyntheticDesktop(640, 480, fps=0)
    with pytest.raises(IndexError):
        DesktopLayout.for_size(640, 480).row_rect(ROW_COUNT)


def test_synthetic_is_deterministic() -> None:
    script: list[InputEvent | None] = [None, None, None]
    lay = DesktopLayout.for_size(1280, 720)
    script += [PointerEvent("move", 100, 200), None, PointerEvent("down", *centre(lay.row_rect(4)))]
    script += [None, key("d"), key("o"), None, key("Backspace"), None]
    script += [WheelEvent(*centre(lay.viewport_rect), 0, 120), None, None]
    script += [PointerEvent("move", 900, 400), None]
    a = SyntheticDesktop(1280, 720, cine_seconds=0.3, fps=10)
    b = SyntheticDesktop(1280, 720, cine_seconds=0.3, fps=10)
    frames = 0
    for step in script:
        if step is None:
            fa, fb = a.next_frame(), b.next_frame()
            assert fa.tobytes() == fb.tobytes()
            frames += 1
        else:
            a.handle_input(step)
            b.handle_input(step)
    assert frames == 10


def test_static_desktop_returns_the_same_object() -> None:
    src = SyntheticDesktop(640, 480, cine_seconds=0)
    assert resting(src)
    first = src.next_frame()
    assert src.next_frame() is first
    assert src.next_frame() is first
    src.handle_input(key("Shift"))  # not printable: no change
    src.handle_input(key("a", down=False))  # key up: no change
    src.handle_input(PointerEvent("move", 320, 240))  # where the pointer already is
    assert src.next_frame() is first
    assert src.search_text == ""


def test_cine_pages_for_the_expected_count_then_rests() -> None:
    src = SyntheticDesktop(640, 480, cine_seconds=0.5, fps=10)  # 5 cine frames
    assert not resting(src)
    seen: list[Frame] = []
    slices = []
    for _ in range(5):
        seen.append(src.next_frame())
        slices.append(src.slice_index)
    assert slices == [START_SLICE + i for i in range(5)]
    assert len({id(f) for f in seen}) == 5
    for prev, cur in itertools.pairwise(seen):
        assert only_inside(changed_mask(prev, cur), [src.layout.viewport_rect])
        assert changed_mask(prev, cur).any()
    assert resting(src)
    last = seen[-1]
    for _ in range(3):
        assert src.next_frame() is last
    assert src.slice_index == START_SLICE + 4


@pytest.mark.parametrize("seconds", [-1.0, float("inf")])
def test_negative_or_infinite_cine_loops_forever(seconds: float) -> None:
    src = SyntheticDesktop(320, 240, cine_seconds=seconds, fps=30)
    prev = src.next_frame()
    for _ in range(SLICE_COUNT + 5):
        cur = src.next_frame()
        assert cur is not prev
        prev = cur
    assert not resting(src)
    assert src.slice_index == (START_SLICE + SLICE_COUNT + 5) % SLICE_COUNT


def test_returned_frames_are_never_mutated() -> None:
    src = SyntheticDesktop(640, 480, cine_seconds=0.2, fps=10)
    first = src.next_frame()
    snapshot = first.copy()
    src.handle_input(PointerEvent("move", 10, 10))
    src.handle_input(key("z"))
    for _ in range(4):
        src.next_frame()
    assert np.array_equal(first, snapshot)


def test_clicking_a_row_selects_it_and_restarts_cine() -> None:
    src = SyntheticDesktop(1280, 720, cine_seconds=0.2, fps=10)
    lay = src.layout
    target = centre(lay.row_rect(5))
    src.handle_input(PointerEvent("move", *target))
    for _ in range(3):
        before = src.next_frame()
    assert resting(src) and src.selected_row == 0 and src.slice_index == START_SLICE + 1
    src.handle_input(PointerEvent("down", *target, button=2))  # right button: no selection
    assert src.next_frame() is before
    src.handle_input(PointerEvent("down", *target))
    assert src.selected_row == 5
    assert not resting(src) and src.slice_index == START_SLICE
    after = src.next_frame()
    mask = changed_mask(before, after)
    assert any_inside(mask, lay.row_rect(5)) and any_inside(mask, lay.row_rect(0))
    assert only_inside(mask, [lay.row_rect(5), lay.row_rect(0), lay.viewport_rect])
    src.handle_input(PointerEvent("up", *target))
    src.next_frame()
    assert resting(src)


def test_click_outside_rows_changes_nothing() -> None:
    src = SyntheticDesktop(1280, 720, cine_seconds=0)
    pos = centre(src.layout.search_rect)
    src.handle_input(PointerEvent("move", *pos))
    frame = src.next_frame()
    src.handle_input(PointerEvent("down", *pos))
    assert src.next_frame() is frame
    assert src.selected_row == 0


def test_typing_edits_the_search_box_only() -> None:
    src = SyntheticDesktop(1280, 720, cine_seconds=0)
    lay = src.layout
    empty = src.next_frame()
    for ch in "Doe":
        src.handle_input(key(ch))
    typed = src.next_frame()
    assert src.search_text == "Doe"
    mask = changed_mask(empty, typed)
    assert any_inside(mask, lay.search_rect)
    assert only_inside(mask, [lay.search_rect])
    src.handle_input(key("Backspace"))
    assert src.search_text == "Do"
    fewer = src.next_frame()
    assert only_inside(changed_mask(typed, fewer), [lay.search_rect])
    assert not np.array_equal(typed, fewer)
    src.handle_input(key("Escape"))
    assert src.search_text == ""
    assert np.array_equal(src.next_frame(), empty)  # back to the placeholder
    src.handle_input(key("Backspace"))  # on empty text: no change
    assert src.search_text == ""


def test_search_text_is_capped() -> None:
    src = SyntheticDesktop(640, 480, cine_seconds=0)
    for i in range(SEARCH_MAX + 10):
        src.handle_input(key(str(i % 10)))
    assert len(src.search_text) == SEARCH_MAX
    src.handle_input(key("ß"))
    src.handle_input(key(" "))
    assert len(src.search_text) == SEARCH_MAX
    check_format(src.next_frame(), 640, 480)


def test_wheel_over_viewport_pages_slices() -> None:
    src = SyntheticDesktop(1280, 720, cine_seconds=1.0, fps=30)
    lay = src.layout
    pos = centre(lay.viewport_rect)
    src.handle_input(PointerEvent("move", *pos))
    before = src.next_frame()
    assert not resting(src)
    src.handle_input(WheelEvent(*pos, dx=0.0, dy=120.0))
    assert resting(src)  # the user took over: cine stops
    assert src.slice_index == START_SLICE + 1
    after = src.next_frame()
    mask = changed_mask(before, after)
    assert any_inside(mask, lay.image_rect) and only_inside(mask, [lay.viewport_rect])
    src.handle_input(WheelEvent(*pos, dx=0.0, dy=-3.0))
    src.handle_input(WheelEvent(*pos, dx=0.0, dy=-3.0))
    assert src.slice_index == START_SLICE - 1
    src.handle_input(WheelEvent(*pos, dx=5.0, dy=0.0))  # horizontal only: ignored
    src.handle_input(WheelEvent(*centre(lay.row_rect(0)), dx=0.0, dy=120.0))  # not viewport
    assert src.slice_index == START_SLICE - 1
    for _ in range(SLICE_COUNT + 10):
        src.handle_input(WheelEvent(*pos, dx=0.0, dy=-1.0))
    assert src.slice_index == 0  # clamps at the first slice
    src.next_frame()
    assert src.next_frame() is src.next_frame()


def test_pointer_move_changes_only_tiles_near_the_pointer() -> None:
    src = SyntheticDesktop(1920, 1080, cine_seconds=0)
    before = src.next_frame()
    src.handle_input(PointerEvent("move", 300, 700))
    after = src.next_frame()
    mask = changed_mask(before, after)
    assert mask.any()
    old, new = (960, 540), (300, 700)
    near = [(x - 4, y - 4, 28, 32) for x, y in (old, new)]
    assert only_inside(mask, near)
    tile = 64
    tiles = {(y // tile, x // tile) for y, x in zip(*np.nonzero(mask), strict=True)}
    assert tiles <= {
        (y // tile + dy, x // tile + dx) for x, y in (old, new) for dy in (0, 1) for dx in (0, 1)
    }
    # The pointer is drawn: white fill with a dark outline near its tip.
    assert (after[new[1] + 5, new[0] + 2, :3] == 255).all()
    assert (after[new[1], new[0], :3] == 0).all()


def test_pointer_is_clamped_to_the_desktop() -> None:
    src = SyntheticDesktop(320, 240, cine_seconds=0)
    src.next_frame()
    src.handle_input(PointerEvent("move", 5000, -20))
    check_format(src.next_frame(), 320, 240)


def test_input_from_another_thread_while_capturing() -> None:
    src = SyntheticDesktop(640, 480, cine_seconds=-1)
    stop = threading.Event()

    def drive() -> None:
        i = 0
        while not stop.is_set():
            src.handle_input(PointerEvent("move", i % 640, i % 480))
            src.handle_input(key("a") if i % 7 else key("Backspace"))
            i += 1
            time.sleep(0.0002)  # an event loop delivers input at human rates, not in a spin

    t = threading.Thread(target=drive)
    t.start()
    try:
        for _ in range(100):
            check_format(src.next_frame(), 640, 480)
    finally:
        stop.set()
        t.join()
    src.close()
    src.close()


# -- ImageSource --------------------------------------------------------------------------------


def write(path: Path, image: npt.NDArray[Any]) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def gradient(h: int, w: int, channels: int = 0) -> npt.NDArray[np.uint8]:
    base = (np.arange(h * w * max(1, channels)) * 7 % 256).astype(np.uint8)
    return base.reshape((h, w, channels) if channels else (h, w))


def test_image_8bit_grey_is_shown_exactly(tmp_path: Path) -> None:
    grey = gradient(5, 7)
    src = ImageSource(write(tmp_path / "g.png", grey))
    assert isinstance(src, FrameSource)
    frame = src.next_frame()
    check_format(frame, 7, 5)
    assert src.size == (7, 5) and src.image_size == (7, 5)
    for c in range(3):
        assert np.array_equal(frame[:, :, c], grey)
    assert np.all(frame[:, :, 3] == 255)
    assert src.samples16 is None


def test_image_rgb_and_rgba(tmp_path: Path) -> None:
    bgr = gradient(6, 9, 3)
    frame = ImageSource(write(tmp_path / "c.png", bgr)).next_frame()
    assert np.array_equal(frame[:, :, :3], bgr) and np.all(frame[:, :, 3] == 255)
    bgra = gradient(6, 9, 4)
    frame = ImageSource(write(tmp_path / "a.png", bgra)).next_frame()
    assert np.array_equal(frame[:, :, :3], bgra[:, :, :3]) and np.all(frame[:, :, 3] == 255)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_image_16bit_grey_keeps_samples(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 255, 256, 0x1234], [0x80FF, 0xFF00, 65535, 1]], np.uint16)
    src = ImageSource(write(tmp_path / f"d{suffix}", values))
    frame = src.next_frame()
    check_format(frame, 4, 2)
    expected = np.array([[0, 0, 1, 0x12], [0x80, 0xFF, 0xFF, 0]], np.uint8)
    for c in range(3):
        assert np.array_equal(frame[:, :, c], expected)
    assert src.samples16 is not None
    assert src.samples16.dtype == np.uint16
    assert np.array_equal(src.samples16, values)


def test_image_on_a_larger_canvas(tmp_path: Path) -> None:
    grey = gradient(5, 7)
    src = ImageSource(write(tmp_path / "g.png", grey), width=12, height=9)
    frame = src.next_frame()
    check_format(frame, 12, 9)
    assert src.size == (12, 9)
    assert np.array_equal(frame[:5, :7, 0], grey)
    assert (frame[5:, :] == BACKGROUND).all() and (frame[:, 7:] == BACKGROUND).all()


def test_image_cropped_by_a_smaller_canvas(tmp_path: Path) -> None:
    bgr = gradient(10, 10, 3)
    src = ImageSource(write(tmp_path / "c.png", bgr), width=4, height=3)
    frame = src.next_frame()
    check_format(frame, 4, 3)
    assert np.array_equal(frame[:, :, :3], bgr[:3, :4])
    only_width = ImageSource(tmp_path / "c.png", width=20)
    assert only_width.size == (20, 10)


def test_image_is_static(tmp_path: Path) -> None:
    src = ImageSource(write(tmp_path / "g.png", gradient(4, 4)))
    first = src.next_frame()
    src.handle_input(PointerEvent("down", 1, 1))
    src.handle_input(key("a"))
    assert src.next_frame() is first
    src.close()


def test_image_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(SourceError, match=r"nope\.png"):
        ImageSource(missing)
    with pytest.raises(RuntimeError):  # SourceError is also a RuntimeError
        ImageSource(tmp_path)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(SourceError, match=r"junk\.png.*PNG or TIFF"):
        ImageSource(junk)
    floats = write(tmp_path / "f.tif", np.ones((3, 3), np.float32))
    with pytest.raises(SourceError, match="unsupported"):
        ImageSource(floats)
    with pytest.raises(ConfigError):
        ImageSource(write(tmp_path / "g.png", gradient(3, 3)), width=0)


# -- PushSource ---------------------------------------------------------------------------------


def test_push_starts_black_and_keeps_identity() -> None:
    src = PushSource(8, 6)
    assert isinstance(src, FrameSource)
    black = src.next_frame()
    check_format(black, 8, 6)
    assert np.all(black[:, :, :3] == 0) and np.all(black[:, :, 3] == 255)
    assert src.next_frame() is black


def test_push_converts_and_copies() -> None:
    src = PushSource(8, 6)
    bgra = gradient(6, 8, 4)
    src.push(bgra)
    got = src.next_frame()
    check_format(got, 8, 6)
    assert got is not bgra and np.array_equal(got, bgra)
    assert src.next_frame() is got
    bgra[:] = 0  # the caller reuses its buffer
    assert np.array_equal(got, gradient(6, 8, 4))

    bgr = gradient(6, 8, 3)
    src.push(bgr)
    got = src.next_frame()
    check_format(got, 8, 6)
    assert np.array_equal(got[:, :, :3], bgr) and np.all(got[:, :, 3] == 255)

    grey = gradient(6, 8)
    src.push(grey)
    got = src.next_frame()
    assert all(np.array_equal(got[:, :, c], grey) for c in range(3))

    strided = gradient(12, 16, 3)[::2, ::2]  # not contiguous
    src.push(strided)
    assert np.array_equal(src.next_frame()[:, :, :3], strided)


def test_push_rejects_wrong_shape_and_dtype() -> None:
    src = PushSource(8, 6)
    with pytest.raises(ValueError, match=r"\(6, 8, 4\)"):
        src.push(np.zeros((8, 6, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        src.push(np.zeros((6, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        src.push(np.zeros((6, 8, 4), np.uint16))
    with pytest.raises(ConfigError):
        PushSource(0, 6)


def test_push_forwards_input_and_closes() -> None:
    events: list[InputEvent] = []
    src = PushSource(4, 4, on_input=events.append)
    ev = PointerEvent("move", 1, 2)
    src.handle_input(ev)
    assert events == [ev]
    src.close()
    src.close()
    assert src.closed
    src.handle_input(ev)
    assert events == [ev]
    with pytest.raises(SourceError):
        src.push(np.zeros((4, 4), np.uint8))
    PushSource(4, 4).handle_input(ev)  # no callback: ignored


def test_push_from_another_thread() -> None:
    src = PushSource(64, 32)
    count = 300

    def producer() -> None:
        buf = np.empty((32, 64, 3), np.uint8)
        for i in range(count):
            buf[:] = i % 256  # one reused buffer, as an embedding program would
            src.push(buf)

    t = threading.Thread(target=producer)
    t.start()
    while t.is_alive():
        frame = src.next_frame()
        # Never a torn frame: every pixel comes from the same push.
        assert (frame[:, :, :3] == frame[0, 0, 0]).all()
    t.join()
    assert int(src.next_frame()[0, 0, 0]) == (count - 1) % 256


# -- factory ------------------------------------------------------------------------------------


def test_open_source_synthetic() -> None:
    src = open_source("synthetic", None, None, cine_seconds=0, fps=30)
    assert isinstance(src, SyntheticDesktop) and src.size == (1920, 1080)
    src = open_source(" synthetic ", 640, 480, cine_seconds=2.0, fps=30)
    assert src.size == (640, 480)


def test_open_source_image(tmp_path: Path) -> None:
    path = write(tmp_path / "g.png", gradient(5, 7))
    src = open_source(f"image:{path}", None, None, cine_seconds=0, fps=30)
    assert isinstance(src, ImageSource) and src.size == (7, 5)
    assert open_source(f"image:{path}", 10, 10, 0, 30).size == (10, 10)
    with pytest.raises(SourceError):
        open_source(f"image:{tmp_path / 'missing.png'}", None, None, 0, 30)


def test_open_source_x11_without_a_server_says_why() -> None:
    with pytest.raises(SourceError, match=r"cannot open X display ':4711'.*DISPLAY"):
        open_source("x11::4711", None, None, 0, 30)
    with pytest.raises(ConfigError, match="xrandr"):
        open_source("x11::0", 800, None, 0, 30)


@pytest.mark.parametrize("spec", ["", "bogus", "synthetic:foo", "webcam:0", "image", "x11"])
def test_open_source_rejects_unknown_forms(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"synthetic, image:PATH, x11:DISPLAY") as info:
        open_source(spec, None, None, 0, 30)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="needs a path"):
        open_source("image:", None, None, 0, 30)
