"""The numpy twin of ``native/damage.c`` and the specification of tile change detection.

A tile is dirty when any byte of any of its pixels differs between the two frames. Tiles are
``tile`` x ``tile`` pixels laid from the top-left corner; the last tile column and row may be
partial. The map is ``ceil(h / tile)`` x ``ceil(w / tile)``, row-major by tile row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Pixel sizes that can be compared as one unsigned integer per pixel.
_WIDE: dict[int, type[np.unsignedinteger]] = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _as_units(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic], int]:
    """Both frames as 2-D arrays of comparison units, and how many units make one pixel.

    Pixels of 1, 2, 4 or 8 bytes whose bytes are contiguous become one unsigned integer each
    (one comparison per pixel); any other pixel is its bytes, laid side by side along a row.
    """
    if prev.ndim == 2:
        return prev, cur, 1
    h, w, c = prev.shape
    wide = _WIDE.get(c)
    if wide is not None and prev.strides[2] == 1 and cur.strides[2] == 1:
        return prev.view(wide).reshape(h, w), cur.view(wide).reshape(h, w), 1
    return prev.reshape(h, w * c), cur.reshape(h, w * c), c


def tile_change_map_numpy(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], tile: int = 64
) -> npt.NDArray[np.bool_]:
    """Which ``tile`` x ``tile`` tiles differ between ``prev`` and ``cur``.

    Both frames are uint8 arrays of the same shape, (h, w) or (h, w, c); arguments are not
    checked here (``hdx.damage.tile_change_map`` checks them).
    """
    h, w = prev.shape[:2]
    rows, cols = -(-h // tile), -(-w // tile)
    if rows == 0 or cols == 0 or prev.size == 0:
        return np.zeros((rows, cols), dtype=np.bool_)
    a, b, units = _as_units(prev, cur)
    changed = a != b  # (h, w * units): per pixel (or per byte of a pixel), did it change
    # Columns first: the row reduction then runs on an array `tile * units` times narrower.
    by_col = np.logical_or.reduceat(changed, np.arange(0, w * units, tile * units), axis=1)
    out: npt.NDArray[np.bool_] = np.logical_or.reduceat(by_col, np.arange(0, h, tile), axis=0)
    return out
