"""One connection to an X server, with errors that become exceptions instead of exits.

Xlib's default handlers print and ``exit()`` the process on a protocol error or a lost server.
A remote-display server must survive both (report "not ready", keep serving the others), so
every :class:`XDisplay` installs handlers that record the error; callers check after a
round trip. Each thread that talks to X opens its own :class:`XDisplay`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hdx.errors import SourceError
from hdx.x11.xlib import xlib

_errors_lock = threading.Lock()
_errors: dict[int, str] = {}
"""Last protocol error per display (keyed by the ``Display*`` address)."""
_dead: dict[int, str] = {}
"""Displays whose connection broke."""
_handlers: list[Any] = []
"""cffi callbacks must stay referenced while installed."""


def _address(dpy: Any) -> int:
    return int(xlib().ffi.cast("uintptr_t", dpy))


def _install_global_handlers() -> None:
    if _handlers:
        return
    lib = xlib()
    ffi = lib.ffi

    def on_error(dpy: Any, event: Any) -> int:
        text = ffi.new("char[]", 160)
        lib.x11.XGetErrorText(dpy, event.error_code, text, 160)
        message = (f"{ffi.string(text).decode(errors='replace')} (request {event.request_code}."
                   f"{event.minor_code})")
        with _errors_lock:
            _errors[_address(dpy)] = message
        return 0

    def on_io_error(dpy: Any) -> int:
        with _errors_lock:
            _dead.setdefault(_address(dpy), "the connection to the X server was lost")
        return 0

    error_cb = ffi.callback("XErrorHandler", on_error)
    io_cb = ffi.callback("XIOErrorHandler", on_io_error)
    _handlers.extend([error_cb, io_cb])
    lib.x11.XSetErrorHandler(error_cb)
    lib.x11.XSetIOErrorHandler(io_cb)


def _on_exit(dpy: Any, data: Any) -> None:
    # Returning (instead of exiting) leaves the display marked broken; we stop using it.
    with _errors_lock:
        _dead.setdefault(_address(dpy), "the connection to the X server was lost")


@dataclass(frozen=True, slots=True)
class Monitor:
    """A RandR monitor: a named rectangle of the screen (what one physical display shows)."""

    name: str
    x: int
    y: int
    width: int
    height: int
    primary: bool


class XDisplay:
    """An open X display connection (not thread-safe: one per thread)."""

    def __init__(self, name: str) -> None:
        lib = xlib()
        _install_global_handlers()
        self.lib = lib
        self.ffi = lib.ffi
        self.name = name
        dpy = lib.x11.XOpenDisplay(name.encode() if name else self.ffi.NULL)
        if dpy == self.ffi.NULL:
            raise SourceError(
                f"cannot open X display {name!r}: is an X server running there, and may this "
                "user connect to it (check DISPLAY and XAUTHORITY)?")
        self.dpy: Any = dpy
        self._exit_cb = self.ffi.callback("XIOErrorExitHandler", _on_exit)
        lib.x11.XSetIOErrorExitHandler(dpy, self._exit_cb, self.ffi.NULL)
        self.screen = lib.x11.XDefaultScreen(dpy)
        self.root = lib.x11.XRootWindow(dpy, self.screen)
        self.depth = lib.x11.XDefaultDepth(dpy, self.screen)
        self.visual = lib.x11.XDefaultVisual(dpy, self.screen)
        self._closed = False

    # -- errors ----------------------------------------------------------------------------------
    def take_error(self) -> str | None:
        """The protocol error recorded since the last call (after a sync), if any."""
        self.lib.x11.XSync(self.dpy, 0)
        self.raise_if_lost()
        with _errors_lock:
            return _errors.pop(_address(self.dpy), None)

    @property
    def lost(self) -> bool:
        """Whether the connection broke (the server went away)."""
        with _errors_lock:
            return _address(self.dpy) in _dead

    def raise_if_lost(self) -> None:
        """``SourceError`` once the server has gone away."""
        with _errors_lock:
            reason = _dead.get(_address(self.dpy))
        if reason is not None:
            raise SourceError(f"X display {self.name!r}: {reason}")

    # -- facts -----------------------------------------------------------------------------------
    def has_extension(self, name: str) -> bool:
        """Whether the server offers the named extension (``MIT-SHM``, ``DAMAGE``, ...)."""
        ints = self.ffi.new("int[3]")
        return bool(self.lib.x11.XQueryExtension(self.dpy, name.encode(), ints, ints + 1,
                                                 ints + 2))

    def screen_size(self) -> tuple[int, int]:
        """The root window's current size (follows RandR changes; one round trip)."""
        root = self.ffi.new("Window *")
        ints = self.ffi.new("int[2]")
        dims = self.ffi.new("unsigned int[4]")
        ok = self.lib.x11.XGetGeometry(self.dpy, self.root, root, ints, ints + 1, dims,
                                       dims + 1, dims + 2, dims + 3)
        self.raise_if_lost()
        if not ok:
            raise SourceError(f"X display {self.name!r}: cannot read the screen size")
        return int(dims[0]), int(dims[1])

    def monitors(self) -> list[Monitor]:
        """The RandR monitors, primary first; the whole screen when RandR has none."""
        width, height = self.screen_size()
        whole = [Monitor("screen", 0, 0, width, height, True)]
        randr = self.lib.xrandr
        if randr is None or not self.has_extension("RANDR"):
            return whole
        count = self.ffi.new("int *")
        infos = randr.XRRGetMonitors(self.dpy, self.root, 1, count)
        self.raise_if_lost()
        if infos == self.ffi.NULL:
            return whole
        found = []
        try:
            for i in range(count[0]):
                info = infos[i]
                atom_name = self.lib.x11.XGetAtomName(self.dpy, info.name)
                name = (self.ffi.string(atom_name).decode(errors="replace")
                        if atom_name != self.ffi.NULL else f"monitor-{i}")
                if atom_name != self.ffi.NULL:
                    self.lib.x11.XFree(atom_name)
                found.append(Monitor(name, info.x, info.y, info.width, info.height,
                                     bool(info.primary)))
        finally:
            randr.XRRFreeMonitors(infos)
        found.sort(key=lambda m: (not m.primary, m.x, m.y))
        return found or whole

    def flush(self) -> None:
        """Send queued requests now (input events must not wait for the next round trip)."""
        self.lib.x11.XFlush(self.dpy)
        self.raise_if_lost()

    def close(self) -> None:
        """Close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        key = _address(self.dpy)
        with _errors_lock:
            lost = key in _dead
            _dead.pop(key, None)
            _errors.pop(key, None)
        if not lost:
            self.lib.x11.XCloseDisplay(self.dpy)
