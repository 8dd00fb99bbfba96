"""A frame source fed by the embedding program: ``push()`` frames in, the server pulls them out.

This is a single-slot "latest frame" mailbox: pushing faster than the capture loop pulls simply
replaces the frame, so a fast producer can never grow a queue. ``push()`` copies into a new
array, so the caller may reuse its buffer as soon as ``push()`` returns; the stored frame is never
written again, which keeps the source's "same object means unchanged" invariant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from hdx.errors import ConfigError, SourceError
from hdx.sources.base import Frame, InputEvent


class PushSource:
    """A ``FrameSource`` whose frames come from ``push()``; input goes to ``on_input``.

    ``push()`` may be called from any thread. ``on_input`` runs on the server's event loop, so it
    must return quickly (hand work to another thread if it has to wait).
    """

    def __init__(
        self,
        width: int,
        height: int,
        on_input: Callable[[InputEvent], None] | None = None,
    ) -> None:
        if width < 1 or height < 1:
            raise ConfigError(f"push source size must be positive, got {width}x{height}")
        self._size = (width, height)
        self._on_input = on_input
        self._lock = threading.Lock()
        black = np.zeros((height, width, 4), np.uint8)
        black[:, :, 3] = 255
        self._frame: Frame = black
        self._closed = False

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` every pushed frame must have."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called; later pushes raise ``SourceError``."""
        with self._lock:
            return self._closed

    def push(self, frame: npt.NDArray[np.uint8]) -> None:
        """Make ``frame`` the newest frame. Accepts BGRA ``(h, w, 4)``, BGR ``(h, w, 3)`` or grey
        ``(h, w)`` ``uint8``; raises ``ValueError`` for anything else. Thread-safe."""
        frame = np.asarray(frame)
        w, h = self._size
        if frame.dtype != np.uint8:
            raise ValueError(f"push() needs a uint8 array, got dtype {frame.dtype}")
        allowed = ((h, w), (h, w, 3), (h, w, 4))
        if frame.shape not in allowed:
            raise ValueError(
                f"push() got shape {frame.shape}; this source is {w}x{h}, so expected "
                f"{(h, w, 4)} BGRA, {(h, w, 3)} BGR or {(h, w)} grey"
            )
        if frame.ndim == 2:
            bgra = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2BGRA)
        elif frame.shape[-1] == 3:
            bgra = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2BGRA)
        else:
            bgra = np.array(frame, np.uint8, order="C", copy=True)
        converted: Frame = np.asarray(bgra, np.uint8)
        with self._lock:
            if self._closed:
                raise SourceError("push() on a closed PushSource; the server has stopped it")
            self._frame = converted

    def next_frame(self) -> Frame:
        """The latest pushed frame (black before the first push); the same object until the next
        push."""
        with self._lock:
            return self._frame

    def handle_input(self, event: InputEvent) -> None:
        """Forward ``event`` to ``on_input``, if one was given."""
        with self._lock:
            callback = self._on_input
        if callback is not None:
            callback(event)

    def close(self) -> None:
        """Stop accepting frames and drop the input callback. Idempotent."""
        with self._lock:
            self._closed = True
            self._on_input = None
