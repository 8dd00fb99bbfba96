"""What a client shows: the newest video frame with exact lossless tiles over it.

The same rules as the browser (hdx/web/compositor.js), so the Python client is a reference
implementation the tests can reason about:

- Frames are identified by ``pts = (rtp - origin) mod 2**32``; the server sends the origin.
- A frame announcement lists the tiles it changes. When a video frame is shown, every tile
  whose overlay was cut from an older frame than a change announced up to (and including)
  the shown frame loses its overlay: the video now shows newer content than the overlay.
- A tile that arrives already outdated (a change after its base frame has been announced) is
  not drawn; the server is told (``nack stale``) and sends it again once quiet.
- ``lossless`` is true only when every tile shows an overlay the server has verified, every
  announced change has been shown, and the frame on screen is known.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
import numpy.typing as npt

from hdx.errors import ProtocolError
from hdx.lossless import codec
from hdx.lossless.protocol import TileHeader, TileMessage

_NONE = -1
_U32 = 0xFFFFFFFF
_HALF = 1 << 31
MAX_PIXELS = 1 << 25
"""Largest desktop a server's ``hello`` may announce (33.5 Mpx: 8K UHD fits), so a hostile
server cannot make the client allocate gigabytes of frame buffers."""
_MAX_SIDE = 0xFFFF
"""Tile headers carry 16-bit coordinates."""
_BOUNDED: dict[int, Callable[..., Any]] = {
    codec.TileFormat.PNG: imagecodecs.png_decode,
    codec.TileFormat.JXL: imagecodecs.jpegxl_decode,
    codec.TileFormat.JLS: imagecodecs.jpegls_decode,
}
"""Decoders that write into a caller's array and refuse an image of another shape before
decoding it (imagecodecs' ``out=``)."""


def later(a: Any, b: Any) -> Any:
    """``a`` is a later pts than ``b``, in serial-number arithmetic (pts wrap at 2**32, about
    13 hours of 90 kHz time); works elementwise on arrays."""
    d = (np.asarray(a, np.int64) - np.asarray(b, np.int64)) & _U32
    return (d != 0) & (d < _HALF)


@dataclass(slots=True)
class CompositorStats:
    """What the compositor did (tests read these)."""

    tiles_drawn: int = 0
    tiles_stale: int = 0
    tiles_broken: int = 0
    invalidated: int = 0
    frames_unknown: int = 0


class Compositor:
    """Composes video and lossless tiles for one desktop of ``width`` x ``height``."""

    def __init__(self, width: int, height: int, bits: int = 8, tile: int = 64) -> None:
        if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE
                and width * height <= MAX_PIXELS):
            raise ProtocolError(f"a desktop of {width}x{height} is out of range (at most "
                                f"{MAX_PIXELS} pixels, {_MAX_SIDE} a side)")
        if not (0 < bits <= 16 and 8 <= tile <= 1024):
            raise ProtocolError(f"{bits}-bit samples in {tile}-pixel tiles are out of range")
        self.width, self.height, self.bits, self.tile = width, height, bits, tile
        self.rows, self.cols = -(-height // tile), -(-width // tile)
        grid = (self.rows, self.cols)
        self.overlay_base = np.full(grid, _NONE, np.int64)
        """pts of the frame each tile's overlay was cut from (-1: no overlay)."""
        self.overlay_id = np.full(grid, _NONE, np.int64)
        self.verified = np.zeros(grid, np.bool_)
        self.last_change = np.full(grid, _NONE, np.int64)
        """pts of the newest announced change of each tile."""
        self.video: npt.NDArray[np.uint8] = np.zeros((height, width, 3), np.uint8)
        """The newest video frame, RGB."""
        self.layer: npt.NDArray[Any] = (np.zeros((height, width), np.uint16) if bits > 8
                                        else np.zeros((height, width, 3), np.uint8))
        self.origin: int | None = None
        self.fidelity: str | None = None
        """The server's reason why exact tiles are not the exact desktop (10-bit detail)."""
        self.first_announced: int | None = None
        self.last_announced: int | None = None
        self.shown_pts: int | None = None
        self._pending: deque[tuple[int, npt.NDArray[np.bool_], float]] = deque()
        self.stats = CompositorStats()

    # -- announcements and video ----------------------------------------------------------------
    def set_origin(self, origin: int) -> None:
        """The stream's RTP origin, from the server."""
        self.origin = origin & _U32

    def announce(self, pts: int, dirty: npt.NDArray[np.bool_] | None) -> None:
        """A frame is on its way; ``dirty`` is what it changes (None: nothing)."""
        pts &= _U32
        if self.first_announced is None:
            self.first_announced = pts
        self.last_announced = pts
        if dirty is None or not dirty.any():
            return
        if dirty.shape != self.last_change.shape:
            dirty = np.ones_like(self.last_change, np.bool_)
        newer = dirty & ((self.last_change < 0) | later(pts, self.last_change))
        self.last_change[newer] = pts
        self._pending.append((pts, dirty, time.monotonic()))
        while len(self._pending) > 1024:  # a client that never draws must not grow this
            self._apply(*self._pending.popleft()[:2])

    def pts_of(self, rtp: int) -> int | None:
        """The pts of a decoded frame with RTP time ``rtp``, once the origin is known."""
        return None if self.origin is None else (rtp - self.origin) & _U32

    def is_announced(self, rtp: int) -> bool:
        """Whether the frame with RTP time ``rtp`` is one whose announcement has arrived."""
        pts = self.pts_of(rtp)
        return (pts is not None and self.first_announced is not None
                and self.last_announced is not None
                and not bool(later(self.first_announced, pts))
                and not bool(later(pts, self.last_announced)))

    def show_video(self, rtp: int, rgb: npt.NDArray[np.uint8]) -> int | None:
        """A decoded frame is shown; returns its pts (None when it cannot be identified, in
        which case every overlay is dropped: unknown video may have changed anything)."""
        if rgb.shape[:2] == (self.height, self.width):
            self.video = rgb
        if not self.is_announced(rtp):
            self._drop_all()
            self.stats.frames_unknown += 1
            self.shown_pts = None
            return None
        pts = (rtp - (self.origin or 0)) & _U32
        while self._pending and not later(self._pending[0][0], pts):
            self._apply(*self._pending.popleft()[:2])
        self.shown_pts = pts
        return pts

    def _apply(self, pts: int, dirty: npt.NDArray[np.bool_]) -> None:
        outdated = dirty & (self.overlay_base >= 0) & later(pts, self.overlay_base)
        if outdated.any():
            self.overlay_base[outdated] = _NONE
            self.overlay_id[outdated] = _NONE
            self.verified[outdated] = False
            self.stats.invalidated += int(outdated.sum())

    def _drop_all(self) -> None:
        self.overlay_base[:] = _NONE
        self.overlay_id[:] = _NONE
        self.verified[:] = False

    # -- tiles ------------------------------------------------------------------------------------
    def add_tile(self, message: TileMessage) -> dict[str, Any]:
        """Draw a lossless tile if still current; returns the ack or nack to send."""
        head = message.header
        tx, ty = head.x // self.tile, head.y // self.tile
        tw, th = -(-head.w // self.tile), -(-head.h // self.tile)
        if (head.x % self.tile or head.y % self.tile or head.x + head.w > self.width
                or head.y + head.h > self.height):
            self.stats.tiles_broken += 1
            return {"t": "nack", "id": head.tile_id, "reason": "size"}
        cells = (slice(ty, ty + th), slice(tx, tx + tw))
        changes = self.last_change[cells]
        if (self.shown_pts is None
                or ((changes >= 0) & later(changes, head.base_pts)).any()):
            self.stats.tiles_stale += 1
            return {"t": "nack", "id": head.tile_id, "reason": "stale"}
        try:
            samples = _decode(head, message.payload)
            self._paste(head.x, head.y, head.w, head.h, samples)
        except ProtocolError:
            self.stats.tiles_broken += 1
            return {"t": "nack", "id": head.tile_id, "reason": "decode"}
        self.overlay_base[cells] = head.base_pts
        self.overlay_id[cells] = head.tile_id
        self.verified[cells] = False
        self.stats.tiles_drawn += 1
        return {"t": "ack", "id": head.tile_id, "hash": self.digest(head.x, head.y, head.w, head.h)}

    def _paste(self, x: int, y: int, w: int, h: int, samples: npt.NDArray[Any]) -> None:
        if samples.shape[:2] != (h, w):
            raise ProtocolError(f"tile decoded to {samples.shape[:2]}, header says {(h, w)}")
        if self.bits > 8:
            if samples.ndim != 2:
                raise ProtocolError("a 16-bit desktop needs grey tiles")
            self.layer[y:y + h, x:x + w] = samples
            return
        if samples.dtype != np.uint8:
            raise ProtocolError("an 8-bit desktop got a 16-bit tile")
        self.layer[y:y + h, x:x + w] = samples[..., None] if samples.ndim == 2 else samples

    def digest(self, x: int, y: int, w: int, h: int) -> str:
        """SHA-256 of what this client shows in the rectangle (RGBA, or 16-bit LE samples)."""
        if self.bits > 8:
            return codec.grey16_digest(self.layer[y:y + h, x:x + w])
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., :3] = self.layer[y:y + h, x:x + w]
        rgba[..., 3] = 255
        return hashlib.sha256(rgba.tobytes()).hexdigest()

    def confirm(self, tile_id: int, tiles: int) -> None:
        """The server verified (``tiles`` > 0) or rejected our hash of ``tile_id``."""
        mine = self.overlay_id == tile_id
        if tiles > 0:
            self.verified[mine] = True

    def overdue(self, after_s: float = 0.5) -> bool:
        """An announced change has waited ``after_s`` for its video frame (the frame was lost,
        or the screen shows one it cannot identify): time to ask for a refresh."""
        now = time.monotonic()
        return bool(self._pending and now - self._pending[0][2] > after_s)

    # -- state ----------------------------------------------------------------------------------
    @property
    def lossless(self) -> bool:
        """Every pixel shown is verified exact, nothing announced is still to be shown, and the
        server has not said the tiles fall short of the desktop (``fidelity``)."""
        return (self.fidelity is None and self.shown_pts is not None and not self._pending
                and bool(self.verified.all()) and bool((self.overlay_base >= 0).all()))

    @property
    def coverage(self) -> float:
        """Share of tiles shown exact and verified."""
        return float(self.verified.mean())

    def framebuffer(self) -> npt.NDArray[Any]:
        """What is shown: RGB uint8, or for a 16-bit desktop the grey samples as uint16
        (lossy video regions there are the video's grey, scaled up to 16 bits)."""
        has = np.repeat(np.repeat(self.overlay_base >= 0, self.tile, 0), self.tile, 1)
        has = has[:self.height, :self.width]
        if self.bits > 8:
            out16 = self.video[..., 1].astype(np.uint16) << 8
            out16[has] = self.layer[has]
            return out16
        out = self.video.copy()
        out[has] = self.layer[has]
        return out


def _decode(head: TileHeader, payload: bytes) -> npt.NDArray[Any]:
    """:func:`codec.decode`, never larger than the header's rectangle: a payload that claims
    more pixels (a PNG header saying 100000x100000, a deflate bomb of a few hundred KB that
    inflates to gigabytes) is refused before anything that size is allocated. The header's
    rectangle was checked against the desktop already."""
    decoder = _BOUNDED.get(head.fmt)
    if decoder is None:
        # RAW and ZSTD say their size in 4 bytes; codec.decode keeps the body to it.
        if len(payload) >= 4 and struct.unpack_from(">HH", payload) != (head.w, head.h):
            raise ProtocolError(f"tile payload says {struct.unpack_from('>HH', payload)}, "
                                f"header says {(head.w, head.h)}")
        return codec.decode(head.fmt, payload)
    shape = (head.h, head.w) if head.channels == 1 else (head.h, head.w, head.channels)
    out = np.empty(shape, np.uint16 if head.bits > 8 else np.uint8)
    try:
        return np.asarray(decoder(payload, out=out))
    except Exception as exc:  # codec libraries raise their own error types
        raise ProtocolError(f"tile {head.tile_id} does not decode as {head.w}x{head.h}, "
                            f"{head.channels} channel(s) of {head.bits} bits: {exc}") from None
