"""Tile change detection: which 64x64 tiles of a frame differ from the previous frame.

:func:`tile_change_map` answers with a boolean map, one entry per tile, computed by the C
extension ``hdx._damage_native`` (``native/damage.c``, built by cffi at install time) or, when
that is not built, by its numpy twin in :mod:`hdx.damage._numpy`, which is the specification.
Both give identical maps.

:data:`backend` says which one :func:`tile_change_map` uses: ``"native"`` or ``"numpy"``.
Setting the environment variable ``HDX_NO_NATIVE`` to anything but ``""`` or ``"0"`` before
``hdx.damage`` is first imported forces ``"numpy"`` (it is read once, at import).
"""

from __future__ import annotations

import importlib
import math
import os
from types import ModuleType
from typing import Final

import numpy as np
import numpy.typing as npt

from hdx.damage._numpy import tile_change_map_numpy

__all__ = [
    "NATIVE_IMPORT_ERROR",
    "backend",
    "tile_change_map",
    "tile_change_map_native",
    "tile_change_map_numpy",
    "tile_change_map_within",
]

DEFAULT_TILE: Final = 64

_native: ModuleType | None
NATIVE_IMPORT_ERROR: ImportError | None
try:
    _native = importlib.import_module("hdx._damage_native")
except ImportError as exc:  # not built: no C compiler at install time, or a plain checkout
    _native, NATIVE_IMPORT_ERROR = None, exc
else:
    NATIVE_IMPORT_ERROR = None

_forced_numpy = os.environ.get("HDX_NO_NATIVE", "") not in ("", "0")
backend: str = "native" if _native is not None and not _forced_numpy else "numpy"


def _check(prev: object, cur: object, tile: object) -> None:
    for name, frame in (("prev", prev), ("cur", cur)):
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, not {type(frame).__name__}")
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be a uint8 array of shape (h, w) or (h, w, c), "
                f"got {frame.dtype} with shape {frame.shape}"
            )
    assert isinstance(prev, np.ndarray) and isinstance(cur, np.ndarray)
    if prev.shape != cur.shape:
        raise ValueError(f"frames differ in shape: prev {prev.shape}, cur {cur.shape}")
    if isinstance(tile, bool) or not isinstance(tile, int | np.integer) or tile < 1:
        raise ValueError(f"tile must be a positive integer, got {tile!r}")


def _native_layout(frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], int]:
    """``frame`` (copied if need be) so that each row's bytes are contiguous, and its row stride.

    A view whose rows are contiguous (a crop of a larger frame, say) is used as it is.
    """
    row_bytes = frame.itemsize * math.prod(frame.shape[1:])
    stride = frame.strides[0] if frame.shape[0] > 1 else row_bytes
    if not frame[0].flags.c_contiguous or stride < row_bytes or stride > 0x7FFFFFFF:
        frame = np.ascontiguousarray(frame)
        stride = row_bytes
    return frame, stride


def tile_change_map_native(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], tile: int = DEFAULT_TILE
) -> npt.NDArray[np.bool_]:
    """:func:`tile_change_map` computed by the C extension, whatever :data:`backend` says.

    Raises :class:`RuntimeError` if the extension ``hdx._damage_native`` is not built.
    """
    if _native is None:
        raise RuntimeError(
            "the native change detector hdx._damage_native is not built "
            f"({NATIVE_IMPORT_ERROR}); build it with `pip install -e .` or "
            "`python native/build_damage.py`"
        ) from NATIVE_IMPORT_ERROR
    _check(prev, cur, tile)
    h, w = prev.shape[:2]
    out = np.zeros((-(-h // tile), -(-w // tile)), dtype=np.uint8)
    bpp = math.prod(prev.shape[2:])
    if out.size == 0 or bpp == 0:
        return out.view(np.bool_)
    prev, stride_prev = _native_layout(prev)
    cur, stride_cur = _native_layout(cur)
    ffi, lib = _native.ffi, _native.lib
    # Raw addresses, not ffi.from_buffer(), so strided views need no copy; the arrays stay
    # referenced (and so alive) for the length of the call.
    changed = lib.hdx_tile_changes(
        ffi.cast("const uint8_t *", prev.ctypes.data),
        ffi.cast("const uint8_t *", cur.ctypes.data),
        w,
        h,
        stride_prev,
        stride_cur,
        bpp,
        int(tile),
        ffi.from_buffer("uint8_t[]", out, require_writable=True),
    )
    if changed < 0:  # unreachable once _check has passed
        raise ValueError(f"hdx_tile_changes rejected its arguments ({w}x{h}, tile {tile})")
    return out.view(np.bool_)


def tile_change_map(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], tile: int = DEFAULT_TILE
) -> npt.NDArray[np.bool_]:
    """Which ``tile`` x ``tile`` tiles of ``cur`` differ from ``prev``.

    ``prev`` and ``cur`` are uint8 frames of equal shape, (h, w) or (h, w, c); a tile is changed
    when any byte of any of its pixels differs. Returns a bool array of shape
    ``(ceil(h / tile), ceil(w / tile))``; edge tiles may be partial. Raises :class:`ValueError`
    for frames of different shapes or a wrong dtype, rank or tile size.
    """
    if backend == "native":
        return tile_change_map_native(prev, cur, tile)
    _check(prev, cur, tile)
    return tile_change_map_numpy(prev, cur, int(tile))


_MAX_HINT_RECTS = 32
"""Beyond this many damage rectangles one bounding box is compared (fewer, larger calls)."""


def tile_change_map_within(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    rects: list[tuple[int, int, int, int]],
    tile: int = DEFAULT_TILE,
) -> npt.NDArray[np.bool_]:
    """:func:`tile_change_map`, comparing only tiles that touch ``rects`` ``(x, y, w, h)``.

    For sources that know where drawing happened (X11 DAMAGE): tiles outside every rectangle
    count as unchanged without being read. Same result as the full map whenever the
    rectangles cover every difference.
    """
    _check(prev, cur, tile)
    h, w = prev.shape[:2]
    out = np.zeros((-(-h // tile), -(-w // tile)), dtype=np.bool_)
    boxes = [(x, y, x + rw, y + rh) for x, y, rw, rh in rects if rw > 0 and rh > 0]
    if len(boxes) > _MAX_HINT_RECTS:
        boxes = [(min(b[0] for b in boxes), min(b[1] for b in boxes),
                  max(b[2] for b in boxes), max(b[3] for b in boxes))]
    for x0, y0, x1, y1 in boxes:
        tx0, ty0 = max(x0, 0) // tile, max(y0, 0) // tile
        tx1, ty1 = -(-min(x1, w) // tile), -(-min(y1, h) // tile)
        if tx1 <= tx0 or ty1 <= ty0:
            continue
        crop = (slice(ty0 * tile, min(ty1 * tile, h)), slice(tx0 * tile, min(tx1 * tile, w)))
        out[ty0:ty1, tx0:tx1] |= tile_change_map(prev[crop], cur[crop], tile)
    return out
