"""The pointer's image (XFIXES), so the client can draw the cursor itself.

GetImage never includes the cursor, so moving the mouse dirties no tiles; the client shows
this image as its own cursor, which moves with no network round trip at all.
"""

from __future__ import annotations

import numpy as np

from hdx.errors import SourceError
from hdx.sources.base import CursorImage
from hdx.x11.display import XDisplay


class CursorReader:
    """Reads the current cursor image; cheap to call every frame (one small round trip)."""

    def __init__(self, display: XDisplay) -> None:
        d = display
        if d.lib.xfixes is None or not d.has_extension("XFIXES"):
            raise SourceError("the server has no XFIXES extension (needed for the cursor)")
        d.lib.xfixes.XFixesQueryVersion(d.dpy, d.ffi.new("int *", 5), d.ffi.new("int *", 0))
        self.display = d

    def read(self) -> CursorImage | None:
        """The cursor now, or ``None`` if the server would not say."""
        d = self.display
        image = d.lib.xfixes.XFixesGetCursorImage(d.dpy)
        d.raise_if_lost()
        if image == d.ffi.NULL:
            return None
        try:
            w, h = int(image.width), int(image.height)
            # Pixels are premultiplied ARGB in the low 32 bits of each unsigned long.
            longs = np.frombuffer(d.ffi.buffer(image.pixels, w * h * 8), np.uint64)
            argb = (longs & 0xFFFFFFFF).astype(np.uint32).reshape(h, w)
            bgra = argb.view(np.uint8).reshape(h, w, 4).copy()
            alpha = bgra[..., 3:4].astype(np.uint16)
            with np.errstate(divide="ignore", invalid="ignore"):
                straight = np.where(alpha > 0, (bgra[..., :3] * 255 + alpha // 2) // alpha, 0)
            bgra[..., :3] = np.minimum(straight, 255).astype(np.uint8)
            return CursorImage(int(image.cursor_serial), bgra, int(image.xhot), int(image.yhot),
                               int(image.x), int(image.y))
        finally:
            d.lib.x11.XFree(image)
