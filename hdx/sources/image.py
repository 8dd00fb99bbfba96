"""A still image as a frame source: the simplest way to show a known test picture.

The image is drawn 1:1 at the top-left of the canvas (no scaling, which would blur the exact
pixels a lossless check compares). A 16-bit greyscale image is shown through its high byte on
the 8-bit video path; its full samples stay in ``samples16`` for the lossless path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hdx.errors import ConfigError, SourceError
from hdx.sources.base import Frame, InputEvent

BACKGROUND = (32, 32, 32, 255)
"""BGRA of the canvas outside the image."""


def _to_bgra(image: npt.NDArray[Any], path: Path) -> Frame:
    """Convert what ``cv2.imread(..., IMREAD_UNCHANGED)`` returned to opaque BGRA."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint16 and image.ndim == 2:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise SourceError(
            f"{path}: unsupported image ({image.dtype}, shape {image.shape}); "
            "use an 8-bit grey/RGB/RGBA or a 16-bit grey PNG or TIFF"
        )
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA), np.uint8)
    channels = image.shape[2]
    if channels == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), np.uint8)
    if channels == 4:
        bgra = np.array(image, np.uint8, order="C")
        bgra[:, :, 3] = 255  # a desktop has no transparency; keep the colour samples as stored
        return bgra
    raise SourceError(f"{path}: unsupported channel count {channels}; use grey, RGB or RGBA")


class ImageSource:
    """A static ``FrameSource`` showing one PNG or TIFF file.

    ``width`` and ``height`` set the canvas (default: the image size); a larger canvas is
    filled with dark grey, a smaller one crops the image. ``next_frame()`` always returns the
    same array, so the capture loop sees a desktop that never changes.
    """

    def __init__(self, path: str | Path, width: int | None = None, height: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(
                f"image file {self.path} does not exist (or is not a file); "
                "check the path given to image:PATH"
            )
        raw = cv2.imread(str(self.path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise SourceError(
                f"cannot decode {self.path} as an image; give a PNG or TIFF file "
                "(8-bit grey/RGB/RGBA or 16-bit grey)"
            )
        image = np.asarray(raw)
        self.samples16: npt.NDArray[np.uint16] | None = None
        """The original 16-bit samples (whole image, uncropped) of a 16-bit grey file."""
        if image.dtype == np.uint16 and image.ndim == 2:
            self.samples16 = np.asarray(image, np.uint16)
            self.samples16.setflags(write=False)
        bgra = _to_bgra(image, self.path)
        ih, iw = bgra.shape[:2]
        w, h = width if width is not None else iw, height if height is not None else ih
        if w < 1 or h < 1:
            raise ConfigError(f"image canvas size must be positive, got {w}x{h}")
        if (w, h) == (iw, ih):
            frame = bgra
        else:
            frame = np.empty((h, w, 4), np.uint8)
            frame[:] = BACKGROUND
            cw, ch = min(w, iw), min(h, ih)
            frame[:ch, :cw] = bgra[:ch, :cw]
        self._frame: Frame = frame
        self._exact: npt.NDArray[np.uint16] | None = None
        if self.samples16 is not None:
            plane = np.full((h, w), BACKGROUND[0] << 8, np.uint16)
            cw, ch = min(w, iw), min(h, ih)
            plane[:ch, :cw] = self.samples16[:ch, :cw]
            plane.setflags(write=False)
            self._exact = plane
        self._size = (w, h)
        self.image_size = (iw, ih)
        """``(width, height)`` of the image file itself."""

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the canvas in pixels."""
        return self._size

    def next_frame(self) -> Frame:
        """The canvas; always the same array object."""
        return self._frame

    def exact_samples(self) -> npt.NDArray[np.uint16] | None:
        """For a 16-bit grey file, the canvas as 16-bit samples (the background is the 8-bit
        background shifted up, so its high byte matches ``next_frame()``); otherwise None."""
        return self._exact

    def handle_input(self, event: InputEvent) -> None:
        """Ignored: a still image does not react."""

    def close(self) -> None:
        """Nothing to release; the file was read at construction."""
