"""``x11:DISPLAY``: capture a real X screen (or one of its monitors) and drive it remotely.

One :class:`X11Screen` per display holds what the monitors share (the input connection);
each :class:`X11Source` captures the whole screen or one RandR monitor on its own connection,
which only its capture thread uses. Per grab:

1. the screen (or monitor) size is read, so a RandR resize is followed at the next frame;
2. DAMAGE says which areas were drawn since the last grab; nothing drawn returns the same
   frame object (the hub then does no work at all), otherwise the damaged rectangles become
   a hint that limits the tile compare to them;
3. MIT-SHM copies the pixels (``XGetImage`` where the server cannot share memory);
4. XFIXES gives the cursor image, which travels separately (see ``hdx/x11/cursor.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hdx.errors import SourceError
from hdx.sources.base import CursorImage, Frame, InputEvent
from hdx.x11.cursor import CursorReader
from hdx.x11.damage import DamageTracker, Rect
from hdx.x11.display import Monitor, XDisplay
from hdx.x11.grabber import Grabber, Raw, fits_in_8_bits, to_bgra
from hdx.x11.injector import Injector, NoXTest

log = logging.getLogger(__name__)
_MONITOR_POLL_S = 1.0
"""How often a monitor source re-reads its rectangle when the screen size did not change."""


class X11Screen:
    """What all captures of one display share: its name and the input injector."""

    def __init__(self, display_name: str, use_shm: bool = True, use_damage: bool = True) -> None:
        self.display_name = display_name
        self.use_shm = use_shm
        self.use_damage = use_damage
        self._input_lock = threading.Lock()
        self._injector: Injector | None = None
        self._input_error: str | None = None
        probe = XDisplay(display_name)  # fails early, with the reason, if we cannot connect
        try:
            self.depth = probe.depth
        finally:
            probe.close()

    def read_monitors(self) -> list[Monitor]:
        """The RandR monitors now (own short connection: safe from any thread)."""
        probe = XDisplay(self.display_name)
        try:
            return probe.monitors()
        finally:
            probe.close()

    def injector(self) -> Injector | None:
        """The input connection, opened on first use (``None`` if XTEST is missing);
        ``SourceError`` while the display cannot be reached (the next call tries again)."""
        with self._input_lock:
            if self._injector is None and self._input_error is None:
                try:
                    self._injector = Injector(self.display_name)
                except NoXTest as exc:
                    self._input_error = str(exc)
                    log.warning("remote input disabled: %s", exc)
            return self._injector

    def drop_injector(self) -> None:
        """Forget a broken input connection, so the next event opens a new one."""
        with self._input_lock:
            injector, self._injector = self._injector, None
            self._input_error = None
        if injector is not None:
            injector.display.close()

    def close(self) -> None:
        """Release held input and close the input connection. Idempotent."""
        with self._input_lock:
            injector, self._injector = self._injector, None
        if injector is not None:
            injector.close()


class X11Source:
    """A :class:`~hdx.sources.base.FrameSource` for an X screen or one of its monitors."""

    def __init__(self, screen: X11Screen, monitor: str | None = None,
                 owns_screen: bool = True) -> None:
        self.screen = screen
        self._owns_screen = owns_screen
        self.monitor_name = monitor
        self._lock = threading.Lock()
        self._grabber: Grabber | None = None
        self._damage: DamageTracker | None = None
        self._cursor_reader: CursorReader | None = None
        self.damage_failure: str | None = None
        self._connected = False
        self._connect()
        self._frame: Frame | None = None
        self._hint: list[Rect] | None = None
        self._cursor: CursorImage | None = None
        self._fidelity: str | None = None
        self._failure: str | None = None
        self._checked_rect_at = time.monotonic()
        self.grabber_for_size()  # probe the pixel format now: a bad one fails at start

    def _connect(self) -> None:
        """Open the capture connection and what hangs off it (also after the server was lost)."""
        self.display = XDisplay(self.screen.display_name)
        self._connected = True
        self._screen_size = self.display.screen_size()
        self._rect = self._rect_in(self._screen_size)
        self._damage = None
        if self.screen.use_damage:
            try:
                self._damage = DamageTracker(self.display)
            except SourceError as exc:
                self.damage_failure = str(exc)
                log.warning("XDamage unavailable (%s): comparing whole frames", exc)
        self._cursor_reader = None
        try:
            self._cursor_reader = CursorReader(self.display)
        except SourceError as exc:
            log.warning("cursor shape unavailable: %s", exc)

    def _reconnect(self) -> None:
        """After the X server went away: drop the dead connection and try a new one (the
        display may be back, e.g. restarted by its service manager); ``SourceError`` if not."""
        self._release_connection()
        self._connect()
        self._frame = None  # the next frame is all new
        log.info("X display %s is back: capturing again", self.screen.display_name)

    def _release_connection(self) -> None:
        if self._grabber is not None:
            self._grabber.close()
            self._grabber = None
        if self._damage is not None:
            self._damage.close()
            self._damage = None
        if self._connected:
            self.display.close()
            self._connected = False

    # -- geometry ------------------------------------------------------------------------------
    def _rect_in(self, screen_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The captured rectangle on a screen of ``screen_size``: all of it, or the monitor's
        (read from the server: one round trip)."""
        if self.monitor_name is None:
            return 0, 0, *screen_size
        monitors = self.display.monitors()
        for m in monitors:
            if m.name == self.monitor_name:
                return m.x, m.y, m.width, m.height
        names = ", ".join(m.name for m in monitors)
        raise SourceError(f"X display {self.screen.display_name!r} has no monitor "
                          f"{self.monitor_name!r} (it has: {names})")

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the captured rectangle (changes with RandR)."""
        with self._lock:
            return self._rect[2], self._rect[3]

    @property
    def origin(self) -> tuple[int, int]:
        """Where the captured rectangle sits on the screen (a monitor's offset)."""
        with self._lock:
            return self._rect[0], self._rect[1]

    def monitors(self) -> list[Monitor]:
        """The display's RandR monitors as they are now."""
        return self.screen.read_monitors()

    def grabber_for_size(self) -> Grabber:
        """The grabber for the current rectangle size (a new one after a resize)."""
        width, height = self.size
        grabber = self._grabber
        if grabber is None or (grabber.width, grabber.height) != (width, height):
            if grabber is not None:
                grabber.close()
            grabber = self._grabber = Grabber(self.display, width, height, self.screen.use_shm)
        return grabber

    @property
    def capture_method(self) -> str:
        """``MIT-SHM`` or ``XGetImage``, plus ``+DAMAGE`` when damage limits the compare."""
        method = self._grabber.method if self._grabber is not None else "?"
        return method + ("+DAMAGE" if self._damage is not None else "")

    @property
    def bits_per_channel(self) -> int:
        """8 at depth 24, 10 at depth 30."""
        return self.grabber_for_size().format.bits_per_channel

    def _follow_geometry(self) -> bool:
        """Re-read the rectangle after a screen-size change; True if it changed."""
        now = time.monotonic()
        size = self.display.screen_size()
        if size == self._screen_size and (self.monitor_name is None
                                          or now - self._checked_rect_at < _MONITOR_POLL_S):
            return False
        self._screen_size, self._checked_rect_at = size, now
        rect = self._rect_in(size)
        with self._lock:
            changed = rect != self._rect
            self._rect = rect
        if changed:
            log.info("X display %s%s is now %dx%d+%d+%d", self.screen.display_name,
                     f" monitor {self.monitor_name}" if self.monitor_name else "",
                     rect[2], rect[3], rect[0], rect[1])
        return changed

    # -- capture (capture thread) ------------------------------------------------------------
    def next_frame(self) -> Frame:
        """The newest frame; the previous object when nothing was drawn (see module doc)."""
        try:
            if not self._connected or self.display.lost:
                self._reconnect()
            frame = self._next_frame()
        except SourceError as exc:
            self._failure = str(exc)
            raise
        self._failure = None
        return frame

    def _next_frame(self) -> Frame:
        resized = self._follow_geometry()
        x, y, width, height = self._rect
        rects = self._damage.take() if self._damage is not None else None
        if self._cursor_reader is not None:
            cursor = self._cursor_reader.read()
            if cursor is not None:
                self._cursor = cursor
        if self._frame is not None and not resized and rects is not None:
            local = _clip(rects, x, y, width, height)
            if not local:
                return self._frame
            self._hint = local
        else:
            self._hint = None
        grabber = self.grabber_for_size()
        fmt = grabber.format

        def convert(raw: Raw) -> Frame:
            if fmt.bits_per_channel > 8:
                self._fidelity = (None if fits_in_8_bits(raw, fmt) else
                                  f"the desktop has {fmt.bits_per_channel} bits per channel; "
                                  "hdx carries the top 8")
            return to_bgra(raw, fmt)

        self._frame = grabber.grab(convert, x, y)
        return self._frame

    def grab_raw(self) -> Raw:
        """The exact raw pixels of the rectangle now (for tests and ``hdx bench``)."""
        x, y, _, _ = self._rect
        return self.grabber_for_size().grab(lambda raw: raw.copy(), x, y)

    def damage_hint(self) -> list[Rect] | None:
        """Where the last new frame may differ from the one before, in frame pixels;
        ``None`` means unknown (compare everything). Called right after ``next_frame``."""
        return self._hint

    def cursor(self) -> CursorImage | None:
        """The cursor read with the last frame (position relative to this rectangle)."""
        cursor = self._cursor
        if cursor is None:
            return None
        x, y = self.origin
        return CursorImage(cursor.serial, cursor.pixels, cursor.xhot, cursor.yhot,
                           cursor.x - x, cursor.y - y)

    def fidelity(self) -> str | None:
        """Why the frames are not the exact desktop (10-bit detail), or ``None`` when exact."""
        return self._fidelity

    def health(self) -> str | None:
        """``None`` while capture works; the last capture error otherwise."""
        return self._failure

    # -- input (event loop) --------------------------------------------------------------------
    def handle_input(self, event: InputEvent) -> None:
        """Inject a remote event at this rectangle's position on the screen."""
        injector = self.screen.injector()
        if injector is None:
            return
        try:
            injector.inject(event, self.origin)
        except SourceError:
            self.screen.drop_injector()  # the server went away; the next event reconnects
            raise

    def release_input(self) -> int:
        """Release whatever remote input still holds (a viewer left or lost focus)."""
        injector = self.screen.injector()
        return injector.release_all() if injector is not None else 0

    def describe(self) -> dict[str, Any]:
        """Facts for ``/healthz`` and ``hdx doctor``."""
        width, height = self.size
        return {"display": self.screen.display_name, "monitor": self.monitor_name,
                "size": [width, height], "depth": self.screen.depth,
                "capture": self.capture_method, "damage_failure": self.damage_failure,
                "fidelity": self._fidelity}

    def close(self) -> None:
        """Free the segment and the connection. Idempotent."""
        self._release_connection()
        if self._owns_screen:
            self.screen.close()

    def for_monitor(self, name: str) -> X11Source:
        """A source for one RandR monitor of the same display (sharing its input)."""
        return X11Source(self.screen, name, owns_screen=False)


def _clip(rects: list[Rect], x: int, y: int, width: int, height: int) -> list[Rect]:
    """The parts of screen rectangles inside ``(x, y, width, height)``, in its coordinates."""
    out = []
    for rx, ry, rw, rh in rects:
        x0, y0 = max(rx, x), max(ry, y)
        x1, y1 = min(rx + rw, x + width), min(ry + rh, y + height)
        if x1 > x0 and y1 > y0:
            out.append((x0 - x, y0 - y, x1 - x0, y1 - y0))
    return out


def open_x11(display_name: str, monitor: str | None = None) -> X11Source:
    """Open ``x11:DISPLAY`` (optionally one RandR monitor of it)."""
    return X11Source(X11Screen(display_name), monitor)
