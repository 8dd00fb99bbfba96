"""Where the X server says pixels changed (DAMAGE), so capture compares only those areas.

The server accumulates damage on the root window; each :meth:`DamageTracker.take` moves it
into a region and fetches its rectangles (one round trip). Damage events themselves carry
nothing we need, but they queue in Xlib until read, so they are drained here too.
"""

from __future__ import annotations

from hdx.errors import SourceError
from hdx.x11.display import XDisplay
from hdx.x11.xlib import DAMAGE_REPORT_NON_EMPTY

Rect = tuple[int, int, int, int]
"""``(x, y, width, height)`` in screen pixels."""


class DamageTracker:
    """Accumulated damage of the root window since the previous :meth:`take`."""

    def __init__(self, display: XDisplay) -> None:
        d = display
        if d.lib.xdamage is None or d.lib.xfixes is None:
            raise SourceError("libXdamage/libXfixes are not installed")
        if not d.has_extension("DAMAGE") or not d.has_extension("XFIXES"):
            raise SourceError("the server has no DAMAGE/XFIXES extension")
        ints = d.ffi.new("int[2]")
        d.lib.xdamage.XDamageQueryExtension(d.dpy, ints, ints + 1)
        d.lib.xfixes.XFixesQueryExtension(d.dpy, ints, ints + 1)
        # Regions need XFIXES >= 2; asking for the version is what enables it for this client.
        d.lib.xfixes.XFixesQueryVersion(d.dpy, d.ffi.new("int *", 5), d.ffi.new("int *", 0))
        self.display = d
        self._damage = d.lib.xdamage.XDamageCreate(d.dpy, d.root, DAMAGE_REPORT_NON_EMPTY)
        self._region = d.lib.xfixes.XFixesCreateRegion(d.dpy, d.ffi.NULL, 0)
        self._event = d.ffi.new("XEvent *")
        error = d.take_error()
        if error:
            raise SourceError(f"cannot track damage: {error}")

    def take(self) -> list[Rect]:
        """Rectangles damaged since the last call (empty: nothing was drawn)."""
        d = self.display
        x11 = d.lib.x11
        while x11.XPending(d.dpy):
            x11.XNextEvent(d.dpy, self._event)
        d.lib.xdamage.XDamageSubtract(d.dpy, self._damage, 0, self._region)
        count = d.ffi.new("int *")
        rects = d.lib.xfixes.XFixesFetchRegion(d.dpy, self._region, count)
        d.raise_if_lost()
        if rects == d.ffi.NULL:
            return []
        try:
            return [(r.x, r.y, r.width, r.height) for r in (rects[i] for i in range(count[0]))]
        finally:
            x11.XFree(rects)

    def close(self) -> None:
        """Stop tracking (the display's close also frees these). Idempotent."""
        d = self.display
        if self._damage:
            try:
                d.raise_if_lost()
            except SourceError:
                self._damage = 0
                return
            d.lib.xdamage.XDamageDestroy(d.dpy, self._damage)
            d.lib.xfixes.XFixesDestroyRegion(d.dpy, self._region)
            self._damage = 0
