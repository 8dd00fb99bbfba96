"""Read a rectangle of the X screen into numpy: MIT-SHM when the server shares memory with us,
plain ``XGetImage`` over the socket otherwise (a remote or sandboxed server).

MIT-SHM lets the server write pixels straight into a segment we map, so a 1080p grab is one
round trip and one memcpy; ``XGetImage`` sends every byte through the socket. Both give the
same raw 32-bit pixels; :func:`to_bgra` turns them into hdx frames.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from hdx.errors import SourceError
from hdx.sources.base import Frame
from hdx.x11.display import XDisplay
from hdx.x11.xlib import ALL_PLANES, ZPIXMAP

log = logging.getLogger(__name__)

_IPC_PRIVATE = 0
_IPC_CREAT = 0o1000
_IPC_RMID = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
_libc.shmget.restype = ctypes.c_int
_libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_libc.shmat.restype = ctypes.c_void_p
_libc.shmdt.argtypes = [ctypes.c_void_p]
_libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]

T = TypeVar("T")
Raw = npt.NDArray[np.uint32]
"""Raw X pixels, shape ``(height, width)``, as the server stores them (32 bits per pixel)."""


class PixelFormat:
    """Where each channel sits in a 32-bit X pixel (from the visual's masks)."""

    def __init__(self, depth: int, red: int, green: int, blue: int) -> None:
        self.depth = depth
        self.masks = (red, green, blue)
        self.shifts = tuple((m & -m).bit_length() - 1 for m in self.masks)
        self.bits = tuple(bin(m).count("1") for m in self.masks)
        if any(b not in (8, 10) for b in self.bits) or len(set(self.bits)) != 1:
            raise SourceError(f"unsupported X pixel format: depth {depth}, masks "
                              f"{red:#x}/{green:#x}/{blue:#x} (hdx reads 8 or 10 bits per "
                              "channel in 32-bit pixels)")

    @property
    def bits_per_channel(self) -> int:
        """8 for depth 24, 10 for depth 30."""
        return self.bits[0]

    @property
    def is_bgrx(self) -> bool:
        """The common depth-24 layout, which is already hdx's BGRA byte order."""
        return self.masks == (0xFF0000, 0xFF00, 0xFF)


def to_bgra(raw: Raw, fmt: PixelFormat) -> Frame:
    """A new BGRA frame (alpha 255) from raw pixels; 10-bit channels keep their top 8 bits."""
    if fmt.is_bgrx:
        out32 = np.bitwise_or(raw, np.uint32(0xFF000000))
    else:
        drop = fmt.bits_per_channel - 8
        out32 = np.full(raw.shape, 0xFF000000, np.uint32)
        for mask, shift, dest in zip(fmt.masks, fmt.shifts, (16, 8, 0), strict=True):
            channel = (raw & np.uint32(mask)) >> np.uint32(shift + drop)
            out32 |= channel << np.uint32(dest)
    return out32.view(np.uint8).reshape(*raw.shape, 4)


def channels(raw: Raw, fmt: PixelFormat) -> npt.NDArray[np.uint16]:
    """The exact samples, shape ``(height, width, 3)`` in R, G, B order (10 bits at depth 30)."""
    out = np.empty((*raw.shape, 3), np.uint16)
    for i, (mask, shift) in enumerate(zip(fmt.masks, fmt.shifts, strict=True)):
        out[..., i] = (raw & np.uint32(mask)) >> np.uint32(shift)
    return out


def fits_in_8_bits(raw: Raw, fmt: PixelFormat) -> bool:
    """Whether 10-bit samples are exactly what an 8-bit value expands to (``v8 * 1023 / 255``
    as X does it: the top bits repeated), so 8-bit tiles lose nothing."""
    if fmt.bits_per_channel == 8:
        return True
    samples = channels(raw, fmt)
    top = samples >> 2
    return bool(np.array_equal(samples, (top << 2) | (top >> 6)))


class Grabber:
    """Grabs one rectangle size; make a new one when the size changes."""

    def __init__(self, display: XDisplay, width: int, height: int, use_shm: bool = True) -> None:
        self.display = display
        self.width, self.height = width, height
        self.method = "XGetImage"
        self.shm_failure: str | None = None
        self._shm_image: Any = None
        self._shm_info: Any = None
        self._shm_addr: int | None = None
        self.format = self._probe_format()
        if use_shm:
            try:
                self._attach_shm()
                self.method = "MIT-SHM"
            except SourceError as exc:
                self.shm_failure = str(exc)
                log.warning("MIT-SHM unavailable on %s (%s); capturing with XGetImage, which "
                            "is slower", display.name, exc)

    def _probe_format(self) -> PixelFormat:
        image = self._get_image(0, 0, 1, 1)
        try:
            if image.bits_per_pixel != 32:
                raise SourceError(f"X display {self.display.name!r} uses {image.bits_per_pixel}"
                                  " bits per pixel; hdx captures 32-bit (depth 24 or 30) "
                                  "screens")
            return PixelFormat(image.depth, image.red_mask, image.green_mask, image.blue_mask)
        finally:
            image.f.destroy_image(image)

    def _get_image(self, x: int, y: int, w: int, h: int) -> Any:
        d = self.display
        image = d.lib.x11.XGetImage(d.dpy, d.root, x, y, w, h, ALL_PLANES, ZPIXMAP)
        error = d.take_error()
        if image == d.ffi.NULL:
            raise SourceError(f"X display {d.name!r}: XGetImage of {w}x{h}+{x}+{y} failed"
                              + (f": {error}" if error else ""))
        return image

    def _attach_shm(self) -> None:
        d = self.display
        if d.lib.xext is None or not d.has_extension("MIT-SHM"):
            raise SourceError("the server has no MIT-SHM extension")
        info = d.ffi.new("XShmSegmentInfo *")
        image = d.lib.xext.XShmCreateImage(d.dpy, d.visual, d.depth, ZPIXMAP, d.ffi.NULL,
                                           info, self.width, self.height)
        if image == d.ffi.NULL:
            raise SourceError("XShmCreateImage failed")
        size = image.bytes_per_line * image.height
        shmid = _libc.shmget(_IPC_PRIVATE, size, _IPC_CREAT | 0o600)
        if shmid < 0:
            d.lib.x11.XFree(image)
            raise SourceError(f"shmget of {size} bytes failed (errno {ctypes.get_errno()})")
        addr = _libc.shmat(shmid, None, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            _libc.shmctl(shmid, _IPC_RMID, None)
            d.lib.x11.XFree(image)
            raise SourceError("shmat failed")
        info.shmid = shmid
        info.shmaddr = d.ffi.cast("char *", addr)
        info.readOnly = 0
        image.data = info.shmaddr
        ok = d.lib.xext.XShmAttach(d.dpy, info)
        error = d.take_error()
        # Marked for removal now: it disappears once both we and the server detach.
        _libc.shmctl(shmid, _IPC_RMID, None)
        if not ok or error:
            _libc.shmdt(addr)
            d.lib.x11.XFree(image)
            raise SourceError(f"the server cannot attach our segment ({error or 'refused'}); "
                              "is it on another host or in another IPC namespace?")
        self._shm_image, self._shm_info, self._shm_addr = image, info, addr

    def grab(self, convert: Callable[[Raw], T], x: int = 0, y: int = 0) -> T:
        """``convert`` applied to the raw pixels of the rectangle at ``(x, y)``.

        ``convert`` sees a view of memory the next grab overwrites, so it must return new
        arrays (the default copies); converting straight from the segment saves a full copy.
        """
        d = self.display
        if self._shm_image is not None:
            image = self._shm_image
            ok = d.lib.xext.XShmGetImage(d.dpy, d.root, image, x, y, ALL_PLANES)
            d.raise_if_lost()
            if not ok:
                error = d.take_error()
                raise SourceError(f"X display {d.name!r}: XShmGetImage failed"
                                  + (f": {error}" if error else " (is the rectangle still on "
                                     "the screen?)"))
            return convert(self._view(image))
        image = self._get_image(x, y, self.width, self.height)
        try:
            return convert(self._view(image))
        finally:
            image.f.destroy_image(image)

    def _view(self, image: Any) -> Raw:
        stride = image.bytes_per_line
        buffer = self.display.ffi.buffer(image.data, stride * image.height)
        rows = np.frombuffer(buffer, np.uint8).reshape(image.height, stride)
        return rows[:, : image.width * 4].view(np.uint32)

    def close(self) -> None:
        """Detach and free the shared segment. Idempotent."""
        if self._shm_image is None:
            return
        d = self.display
        with_lost_server = False
        try:
            d.raise_if_lost()
        except SourceError:
            with_lost_server = True
        if not with_lost_server:
            d.lib.xext.XShmDetach(d.dpy, self._shm_info)
            d.lib.x11.XSync(d.dpy, 0)
        self._shm_image.data = d.ffi.NULL
        d.lib.x11.XFree(self._shm_image)
        if self._shm_addr is not None:
            _libc.shmdt(self._shm_addr)
        self._shm_image = self._shm_info = self._shm_addr = None
