"""A deterministic synthetic radiology workstation: the demo and test source.

It draws a dark PACS-like screen (worklist with a search box, a CT phantom viewport with cine,
a pointer) and reacts to input, so the whole pipeline can be exercised, tested and benchmarked
without a real desktop.

Invariants:
- Content depends only on the sequence of ``next_frame()`` calls and input events: no clock and
  no unseeded randomness, so two instances fed the same sequence give byte-identical frames.
- Rendering is incremental. ``_base`` holds the screen without the pointer and is touched only
  while ``_render_lock`` is held; each new frame is a copy of the previous frame with the changed
  regions re-copied from ``_base`` and the pointer redrawn. With nothing changed the previous
  array object is returned again, and a returned array is never written to.
- ``handle_input`` (event loop) only records state under ``_state_lock``; all drawing happens in
  ``next_frame`` (capture thread), so input never waits for a render.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from hdx.errors import ConfigError
from hdx.sources.base import Frame, InputEvent, KeyEvent, PointerEvent, WheelEvent

Rect = tuple[int, int, int, int]
"""``(x, y, w, h)`` in desktop pixels."""

Colour = tuple[int, int, int, int]

ROW_COUNT = 12
SLICE_COUNT = 120
START_SLICE = 60
SEARCH_MAX = 32
MIN_SIZE = (160, 120)
_PHANTOM_SIDE = 512

_BG: Colour = (30, 26, 24, 255)
_PANEL: Colour = (40, 35, 32, 255)
_TOPBAR: Colour = (58, 48, 40, 255)
_ROW: Colour = (44, 39, 35, 255)
_ROW_ALT: Colour = (50, 45, 40, 255)
_SELECTED: Colour = (160, 104, 34, 255)
_FIELD: Colour = (22, 19, 17, 255)
_BORDER: Colour = (96, 84, 74, 255)
_TEXT: Colour = (228, 228, 228, 255)
_DIM: Colour = (150, 146, 140, 255)
_ACCENT: Colour = (80, 200, 255, 255)
_OVERLAY: Colour = (150, 235, 255, 255)
_BLACK: Colour = (0, 0, 0, 255)
_WHITE: Colour = (255, 255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_HELP = ("Click a study to open it; the wheel pages slices.", "Type to search.")

# hu_delta, a, b, c, x0, y0, z0, phi_deg: the 3-D Shepp-Logan ellipsoids (Kak & Slaney) with
# intensities replaced by Hounsfield deltas so a CT window gives a head-CT look.
_ELLIPSOIDS: tuple[tuple[float, ...], ...] = (
    (2000.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (-960.0, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (-35.0, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
    (-35.0, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
    (15.0, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (40.0, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (40.0, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (50.0, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (50.0, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (50.0, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
)
# Pseudo-T2 mapping from HU for "MR" studies: CSF bright, bone dark.
_MR_HU = np.array([-1000, -300, -30, 15, 25, 45, 65, 120, 400, 1000], np.float32)
_MR_GREY = np.array([0, 0, 225, 235, 120, 110, 135, 120, 30, 25], np.float32)
_ARROW = np.array([(0, 0), (0, 16), (4, 12), (7, 18), (10, 17), (7, 11), (12, 11)], np.int32)


@dataclass(frozen=True, slots=True)
class Study:
    """One worklist entry."""

    name: str
    mrn: str
    modality: str
    date: str
    description: str


STUDIES: tuple[Study, ...] = (
    Study("DOE^JANE", "00412345", "CT", "2024-03-12", "HEAD W/O CONTRAST"),
    Study("SMITH^JOHN", "00398812", "MR", "2024-03-12", "BRAIN T2 AXIAL"),
    Study("GARCIA^MARIA", "00427731", "CT", "2024-03-11", "HEAD TRAUMA"),
    Study("NGUYEN^AN", "00388104", "CT", "2024-03-11", "HEAD CTA"),
    Study("MUELLER^KLAUS", "00401977", "MR", "2024-03-11", "BRAIN STROKE PROTOCOL"),
    Study("OKAFOR^CHIDI", "00415520", "CT", "2024-03-10", "HEAD W/ CONTRAST"),
    Study("ROSSI^GIULIA", "00392268", "MR", "2024-03-10", "BRAIN TUMOUR F/U"),
    Study("TANAKA^HARUTO", "00420039", "CT", "2024-03-09", "SINUS"),
    Study("KOWALSKI^ANNA", "00379451", "CT", "2024-03-09", "HEAD W/O CONTRAST"),
    Study("SINGH^ARJUN", "00433186", "MR", "2024-03-08", "BRAIN MS PROTOCOL"),
    Study("JOHANSSON^ERIK", "00386642", "CT", "2024-03-08", "HEAD PERFUSION"),
    Study("DUBOIS^CLAIRE", "00409915", "MR", "2024-03-07", "PITUITARY"),
)


@dataclass(frozen=True, slots=True)
class DesktopLayout:
    """Where everything sits for one desktop size; tests use it to click by coordinates."""

    width: int
    height: int
    scale: float
    pad: int
    top_bar: Rect
    panel: Rect
    search_rect: Rect
    header_rect: Rect
    rows_top: int
    row_height: int
    viewport_rect: Rect
    image_rect: Rect

    @classmethod
    def for_size(cls, width: int, height: int) -> DesktopLayout:
        """Scale a 1920x1080 design to ``width`` x ``height``."""
        s = min(width / 1920, height / 1080)
        pad = max(2, round(10 * s))
        top_h = max(10, round(44 * s))
        panel_w = max(80, round(width * 0.31))
        search = (pad, top_h + pad, panel_w - 2 * pad, max(10, round(42 * s)))
        header = (pad, search[1] + search[3] + pad, panel_w - 2 * pad, max(6, round(30 * s)))
        rows_top = header[1] + header[3]
        row_h = max(4, min(round(72 * s), (height - pad - rows_top) // ROW_COUNT))
        vx, vy = panel_w + pad, top_h + pad
        vw, vh = width - vx - pad, height - vy - pad
        side = min(vw, vh)
        image = (vx + (vw - side) // 2, vy + (vh - side) // 2, side, side)
        top, panel = (0, 0, width, top_h), (0, top_h, panel_w, height - top_h)
        viewport = (vx, vy, vw, vh)
        return cls(
            width, height, s, pad, top, panel, search, header, rows_top, row_h, viewport, image
        )

    def row_rect(self, i: int) -> Rect:
        """The rectangle of worklist row ``i`` (0-based)."""
        if not 0 <= i < ROW_COUNT:
            raise IndexError(f"row {i} out of range 0..{ROW_COUNT - 1}")
        x, _, w, _ = self.header_rect
        return (x, self.rows_top + i * self.row_height, w, self.row_height)

    def row_at(self, x: int, y: int) -> int | None:
        """The worklist row under desktop point ``(x, y)``, or None."""
        rx, _, rw, _ = self.header_rect
        if not rx <= x < rx + rw or y < self.rows_top:
            return None
        i = (y - self.rows_top) // self.row_height
        return i if i < ROW_COUNT else None

    def in_viewport(self, x: int, y: int) -> bool:
        """Whether desktop point ``(x, y)`` lies in the image viewport."""
        vx, vy, vw, vh = self.viewport_rect
        return vx <= x < vx + vw and vy <= y < vy + vh


@dataclass(frozen=True, slots=True)
class _Changes:
    """What the next frame must redraw, snapshotted under the state lock."""

    full: bool
    rows: frozenset[int]
    search: bool
    viewport: bool
    pointer_moved: bool
    selected: int
    search_text: str
    slice_index: int
    pointer: tuple[int, int]

    @property
    def empty(self) -> bool:
        return not (self.full or self.rows or self.search or self.viewport or self.pointer_moved)


def _cine_frames(cine_seconds: float, fps: int) -> int | None:
    """Number of cine frames after a (re)start; None pages forever."""
    if math.isnan(cine_seconds):
        raise ConfigError("cine_seconds is NaN; give seconds >= 0, or a negative value to loop")
    if fps < 1:
        raise ConfigError(f"fps must be >= 1, got {fps}")
    if cine_seconds < 0 or math.isinf(cine_seconds):
        return None
    return round(cine_seconds * fps)


def _phantom_hu(z: float, n: int) -> npt.NDArray[np.float32]:
    """One axial slice (HU) of the 3-D phantom at height ``z`` in [-1, 1], ``n`` x ``n`` pixels.

    Edges are soft over about a pixel so the resized image looks like a reconstruction rather
    than a bitmap. Each ellipsoid is evaluated only inside its bounding box (about 2 ms a slice).
    """
    hu = np.full((n, n), -1000.0, np.float32)
    half = n / 2.0
    for delta, a, b, c, x0, y0, z0, phi in _ELLIPSOIDS:
        dz = (z - z0) / c
        if abs(dz) >= 1.0:
            continue
        r = math.sqrt(1.0 - dz * dz)
        ea, eb = a * r, b * r
        ct, st = math.cos(math.radians(phi)), math.sin(math.radians(phi))
        ex, ey = math.hypot(ea * ct, eb * st), math.hypot(ea * st, eb * ct)
        c0, c1 = max(0, int((x0 - ex + 1) * half) - 2), min(n, int((x0 + ex + 1) * half) + 3)
        r0, r1 = max(0, int((1 - y0 - ey) * half) - 2), min(n, int((1 - y0 + ey) * half) + 3)
        if c0 >= c1 or r0 >= r1:
            continue
        xs = ((np.arange(c0, c1, dtype=np.float32) + 0.5) / half - 1.0 - x0)[None, :]
        ys = (1.0 - (np.arange(r0, r1, dtype=np.float32) + 0.5) / half - y0)[:, None]
        xr, yr = xs * ct + ys * st, ys * ct - xs * st
        q = np.sqrt((xr / ea) ** 2 + (yr / eb) ** 2)
        w = np.clip((1.0 - q) * (min(ea, eb) * half) + 0.5, 0.0, 1.0)
        hu[r0:r1, c0:c1] += np.float32(delta) * w
    return hu


def _fill(view: Frame, colour: Colour) -> None:
    """Fill a BGRA view; writing one uint32 per pixel is ~25x faster than a tuple broadcast."""
    view.view(np.uint32)[:] = np.array(colour, np.uint8).view(np.uint32)[0]


def _text_size(text: str, fs: float, th: int) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, _FONT, fs, th)
    return int(w), int(h)


def _put(img: Frame, text: str, x: int, y: int, fs: float, colour: Colour, th: int) -> None:
    """Anti-aliased text with its baseline at ``y``, leaving the frame opaque."""
    cv2.putText(img, text, (x, y), _FONT, fs, colour, th, cv2.LINE_AA)
    # OpenCV 5's font renderer writes glyph coverage into a 4th channel; frames stay opaque.
    (w, h), below = cv2.getTextSize(text, _FONT, fs, th)
    m = th + 2
    img[max(0, y - h - m) : max(0, y + below + m), max(0, x - m) : max(0, x + w + m), 3] = 255


class SyntheticDesktop:
    """A deterministic radiology workstation screen implementing ``FrameSource``.

    After construction and after every row selection the viewport pages one slice per
    ``next_frame()`` call for ``round(cine_seconds * fps)`` calls, then rests; ``cine_seconds=0``
    disables cine and a negative or infinite value loops forever. A wheel event over the viewport
    steps one slice and stops the cine, as a reading radiologist taking over would.
    """

    def __init__(
        self, width: int = 1920, height: int = 1080, cine_seconds: float = 4.0, fps: int = 30
    ) -> None:
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            limit = f"{MIN_SIZE[0]}x{MIN_SIZE[1]}"
            raise ConfigError(f"synthetic desktop {width}x{height} is below the {limit} minimum")
        self.layout = DesktopLayout.for_size(width, height)
        self._cine_total = _cine_frames(cine_seconds, fps)
        self._state_lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._th = max(1, round(self.layout.scale))  # line thickness and cursor scale
        # State shared with handle_input, guarded by _state_lock.
        self._selected = 0
        self._search = ""
        self._slice = START_SLICE
        self._cine_left = self._cine_total
        self._cine_shown = False
        self._pointer = (width // 2, height // 2)
        self._full = True
        self._dirty_rows: set[int] = set()
        self._search_dirty = False
        self._viewport_dirty = False
        self._pointer_moved = False
        # Render side, guarded by _render_lock.
        self._base: Frame = np.empty((height, width, 4), np.uint8)
        self._frame: Frame | None = None
        self._drawn_pointer = self._pointer
        self._slices: dict[tuple[str, int], npt.NDArray[np.uint8]] = {}
        self._noise: npt.NDArray[np.float32] | None = None

    # -- FrameSource -----------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames in pixels."""
        return (self.layout.width, self.layout.height)

    def next_frame(self) -> Frame:
        """Advance the cine if running and return the newest frame (capture thread)."""
        with self._render_lock:
            with self._state_lock:
                changes = self._take_changes()
            if self._frame is not None and changes.empty:
                return self._frame
            regions = self._render(changes)
            if self._frame is None:
                frame = self._base.copy()
            else:
                frame = self._frame.copy()
                for rect in [*regions, self._pointer_rect(self._drawn_pointer)]:
                    self._blit(frame, rect)
            self._draw_pointer(frame, changes.pointer)
            self._drawn_pointer = changes.pointer
            self._frame = frame
            return frame

    def handle_input(self, event: InputEvent) -> None:
        """Record the event's effect; drawing happens on the next ``next_frame()``."""
        with self._state_lock:
            if isinstance(event, PointerEvent):
                self._on_pointer(event)
            elif isinstance(event, WheelEvent):
                self._on_wheel(event)
            elif isinstance(event, KeyEvent):
                self._on_key(event)

    def close(self) -> None:
        """Nothing to release."""

    # -- state for tests and demos ---------------------------------------------------------

    @property
    def selected_row(self) -> int:
        """Index of the highlighted worklist row."""
        with self._state_lock:
            return self._selected

    @property
    def search_text(self) -> str:
        """What has been typed into the search box."""
        with self._state_lock:
            return self._search

    @property
    def slice_index(self) -> int:
        """0-based slice shown (or to be shown by the next frame) in the viewport."""
        with self._state_lock:
            return self._slice

    @property
    def is_resting(self) -> bool:
        """True when no cine is running, so frames change only on input."""
        with self._state_lock:
            return self._cine_left == 0

    # -- input (state lock held) -----------------------------------------------------------

    def _on_pointer(self, ev: PointerEvent) -> None:
        x = min(max(ev.x, 0), self.layout.width - 1)
        y = min(max(ev.y, 0), self.layout.height - 1)
        if (x, y) != self._pointer:
            self._pointer = (x, y)
            self._pointer_moved = True
        if ev.action != "down" or ev.button != 0:
            return
        row = self.layout.row_at(x, y)
        if row is None:
            return
        self._dirty_rows.update((self._selected, row))
        self._selected = row
        self._slice = START_SLICE
        self._cine_left = self._cine_total
        self._cine_shown = False
        self._viewport_dirty = True

    def _on_wheel(self, ev: WheelEvent) -> None:
        if ev.dy == 0 or not self.layout.in_viewport(ev.x, ev.y):
            return
        step = 1 if ev.dy > 0 else -1
        self._cine_left = 0
        new = min(max(self._slice + step, 0), SLICE_COUNT - 1)
        if new != self._slice:
            self._slice = new
            self._viewport_dirty = True

    def _on_key(self, ev: KeyEvent) -> None:
        if not ev.down:
            return
        text = self._search
        if ev.key == "Backspace":
            text = text[:-1]
        elif ev.key == "Escape":
            text = ""
        elif len(ev.key) == 1 and ev.key.isprintable() and len(text) < SEARCH_MAX:
            text += ev.key
        if text != self._search:
            self._search = text
            self._search_dirty = True

    def _take_changes(self) -> _Changes:
        """Advance the cine one step and hand over (and clear) the dirty flags."""
        if self._cine_left is None or self._cine_left > 0:
            if self._cine_shown:
                self._slice = (self._slice + 1) % SLICE_COUNT
                self._viewport_dirty = True
            self._cine_shown = True
            if self._cine_left is not None:
                self._cine_left -= 1
        changes = _Changes(
            full=self._full,
            rows=frozenset(self._dirty_rows),
            search=self._search_dirty,
            viewport=self._viewport_dirty,
            pointer_moved=self._pointer_moved,
            selected=self._selected,
            search_text=self._search,
            slice_index=self._slice,
            pointer=self._pointer,
        )
        self._full = self._search_dirty = self._viewport_dirty = self._pointer_moved = False
        self._dirty_rows.clear()
        return changes

    # -- rendering (render lock held) ------------------------------------------------------

    def _render(self, ch: _Changes) -> list[Rect]:
        """Redraw the changed parts into ``_base``; return the rectangles that changed."""
        lay = self.layout
        if ch.full:
            _fill(self._base, _BG)
            self._draw_top_bar()
            x, y, w, h = lay.panel
            _fill(self._base[y : y + h, x : x + w], _PANEL)
            self._draw_header()
            for i in range(ROW_COUNT):
                self._draw_row(i, i == ch.selected)
            self._draw_footer()
            self._draw_search(ch.search_text)
            self._draw_viewport(ch.selected, ch.slice_index)
            return [(0, 0, lay.width, lay.height)]
        regions: list[Rect] = []
        for i in sorted(ch.rows):
            self._draw_row(i, i == ch.selected)
            regions.append(lay.row_rect(i))
        if ch.search:
            self._draw_search(ch.search_text)
            regions.append(lay.search_rect)
        if ch.viewport:
            self._draw_viewport(ch.selected, ch.slice_index)
            regions.append(lay.viewport_rect)
        return regions

    def _view(self, rect: Rect) -> Frame:
        x, y, w, h = rect
        return self._base[y : y + h, x : x + w]

    def _fs(self, size: float) -> float:
        # Shrink text less than the layout below 1080p: glyphs fall apart under ~8 px.
        return size * (self.layout.scale if self.layout.scale >= 1 else self.layout.scale**0.6)

    def _draw_top_bar(self) -> None:
        bar = self._view(self.layout.top_bar)
        _fill(bar, _TOPBAR)
        h, w = bar.shape[:2]
        fs, th = self._fs(0.72), self._th
        tw, tht = _text_size("hdx", fs, th + 1)
        base = (h + tht) // 2
        _put(bar, "hdx", self.layout.pad * 2, base, fs, _ACCENT, th + 1)
        _put(bar, "demo workstation", self.layout.pad * 3 + tw, base, fs, _TEXT, th)
        info = "Dr. A. Reader  |  Reading room 3  |  Synthetic source"
        iw, _ = _text_size(info, self._fs(0.5), th)
        _put(bar, info, w - iw - self.layout.pad * 2, base, self._fs(0.5), _DIM, th)
        _fill(bar[h - 1 :], _BORDER)

    def _draw_header(self) -> None:
        head = self._view(self.layout.header_rect)
        h, w = head.shape[:2]
        fs, th = self._fs(0.46), self._th
        _, tht = _text_size("W", fs, th)
        _put(head, "WORKLIST", self.layout.pad, (h + tht) // 2, fs, _ACCENT, th)
        count = f"{ROW_COUNT} studies"
        cw, _ = _text_size(count, fs, th)
        _put(head, count, w - cw - self.layout.pad, (h + tht) // 2, fs, _DIM, th)

    def _draw_footer(self) -> None:
        lay = self.layout
        top = lay.rows_top + ROW_COUNT * lay.row_height + lay.pad
        x, _, w, _ = lay.header_rect
        h = lay.height - top - lay.pad
        fs, th = self._fs(0.42), self._th
        _, tht = _text_size("W", fs, th)
        foot = self._base[top : top + max(0, h), x : x + w]
        for n, line in enumerate(_HELP):
            _put(foot, line, lay.pad, tht * (2 * n + 2), fs, _DIM, th)

    def _draw_row(self, i: int, selected: bool) -> None:
        row = self._view(self.layout.row_rect(i))
        _fill(row, _SELECTED if selected else (_ROW if i % 2 == 0 else _ROW_ALT))
        h, w = row.shape[:2]
        _fill(row[h - 1 :], _PANEL)
        st = STUDIES[i]
        fs, th, pad = self._fs(0.56), self._th, self.layout.pad
        _, tht = _text_size("W", fs, th)
        gap = max(1, (h - 2 * tht) // 3)
        y1, y2 = gap + tht, 2 * (gap + tht)
        text, dim = (_WHITE, _TEXT) if selected else (_TEXT, _DIM)
        _put(row, st.name, pad, y1, fs, text, th)
        mrn = f"MRN {st.mrn}"
        mw, _ = _text_size(mrn, fs, th)
        _put(row, mrn, w - mw - pad, y1, fs, dim, th)
        mod_w, _ = _text_size(st.modality, fs, th)
        _put(row, st.modality, pad, y2, fs, _WHITE if selected else _ACCENT, th)
        detail = f"{st.date}   {st.description}"
        _put(row, detail, pad * 2 + mod_w, y2, fs, dim, th)

    def _draw_search(self, text: str) -> None:
        box = self._view(self.layout.search_rect)
        _fill(box, _FIELD)
        h, w = box.shape[:2]
        cv2.rectangle(box, (0, 0), (w - 1, h - 1), _BORDER, 1)
        fs, th, pad = self._fs(0.56), self._th, self.layout.pad
        _, tht = _text_size("W", fs, th)
        base = (h + tht) // 2
        tw = 0
        if text:
            tw, _ = _text_size(text, fs, th)
            _put(box, text, pad, base, fs, _TEXT, th)
        else:
            _put(box, "Search patient, MRN ...", pad, base, fs, (110, 104, 98, 255), th)
        cx = pad + tw + max(1, pad // 3)
        cv2.line(box, (cx, max(1, base - tht - 2)), (cx, min(h - 2, base + 3)), _ACCENT, th)

    def _draw_viewport(self, selected: int, k: int) -> None:
        lay = self.layout
        _fill(self._view(lay.viewport_rect), _BLACK)
        st = STUDIES[selected]
        side = lay.image_rect[2]  # INTER_LINEAR (the default) keeps it a few ms at 4K
        grey = cv2.resize(self._slice_image(st.modality, k), (side, side))
        cv2.cvtColor(grey, cv2.COLOR_GRAY2BGRA, dst=self._view(lay.image_rect))
        vp = self._view(lay.viewport_rect)
        vh, vw = vp.shape[:2]
        fs, th, pad = self._fs(0.55), self._th, lay.pad
        _, lh = _text_size("W", fs, th)
        step = lh * 2
        series, window = ("1", "W:400 L:40") if st.modality == "CT" else ("3", "T2 AX")
        left = (f"Se {series} Im {k + 1}/{SLICE_COUNT}", window, f"Z {self._z(k):+.2f}")
        right = (st.name, f"MRN {st.mrn}", f"{st.modality} {st.description}", st.date)
        for n, line in enumerate(left):
            _put(vp, line, pad * 2, pad * 2 + lh + n * step, fs, _OVERLAY, th)
        for n, line in enumerate(right):
            tw, _ = _text_size(line, fs, th)
            _put(vp, line, vw - tw - pad * 2, pad * 2 + lh + n * step, fs, _OVERLAY, th)
        bottom = ("512 x 512   Thk 1.2 mm", "hdx synthetic phantom")
        for n, line in enumerate(bottom):
            _put(vp, line, pad * 2, vh - pad * 2 - (1 - n) * step, fs, _OVERLAY, th)
        for mark, (mx, my) in (("A", (vw // 2, pad * 2 + lh)), ("R", (pad * 2, vh // 2))):
            _put(vp, mark, mx, my, fs, _OVERLAY, th)

    # -- phantom ---------------------------------------------------------------------------

    @staticmethod
    def _z(k: int) -> float:
        return -0.72 + 1.44 * k / (SLICE_COUNT - 1)

    def _slice_image(self, modality: str, k: int) -> npt.NDArray[np.uint8]:
        """The windowed 512x512 grey slice, generated on first use and cached (256 KB each)."""
        key = (modality, k)
        cached = self._slices.get(key)
        if cached is not None:
            return cached
        n = _PHANTOM_SIDE
        if self._noise is None:
            rng = np.random.default_rng(0x5EED)
            field = rng.standard_normal((n + 128, n + 128), dtype=np.float32)
            # Correlated noise, about 6 HU after the blur, reads as CT rather than TV snow.
            self._noise = np.asarray(cv2.GaussianBlur(field, (0, 0), 0.8), np.float32) * 15.0
        oy, ox = (k * 37) % 128, (k * 53) % 128
        hu = _phantom_hu(self._z(k), n) + self._noise[oy : oy + n, ox : ox + n]
        if modality == "CT":
            grey = np.clip((hu + 160.0) * (255.0 / 400.0), 0.0, 255.0)
        else:
            grey = np.interp(hu, _MR_HU, _MR_GREY)
        image = np.ascontiguousarray(grey + 0.5, dtype=np.uint8)
        self._slices[key] = image
        return image

    # -- pointer ---------------------------------------------------------------------------

    def _pointer_rect(self, pos: tuple[int, int]) -> Rect:
        return (pos[0] - 2, pos[1] - 2, 13 * self._th + 4, 19 * self._th + 4)

    def _draw_pointer(self, frame: Frame, pos: tuple[int, int]) -> None:
        pts = _ARROW * self._th + np.array(pos, np.int32)
        cv2.fillPoly(frame, [pts], _WHITE, cv2.LINE_8)
        cv2.polylines(frame, [pts], True, _BLACK, 1, cv2.LINE_8)

    def _blit(self, frame: Frame, rect: Rect) -> None:
        """Copy ``rect`` (clipped to the desktop) from ``_base`` into ``frame``."""
        x, y, w, h = rect
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.layout.width, x + w), min(self.layout.height, y + h)
        if x0 < x1 and y0 < y1:
            frame[y0:y1, x0:x1] = self._base[y0:y1, x0:x1]
