"""The frame-source contract shared by every source (synthetic, image, X11, pushed frames).

Invariants every source keeps:
- ``next_frame()`` returns a C-contiguous ``uint8`` array of shape ``(height, width, 4)`` in
  BGRA order (the X11 / Windows native order, and what OpenCV and NVENC take directly).
- A returned array is never written to afterwards. A source with nothing new returns the *same
  object* it returned last time; the capture loop treats identity as "nothing changed" and skips
  change detection entirely, which is what makes an idle desktop cost near-zero CPU.
- ``next_frame()`` runs on the capture thread; ``handle_input()`` runs on the event loop. Sources
  that share state between the two protect it with a lock.
- Optional: a source whose pixels are deeper than 8 bits (a 16-bit grey image) also has
  ``exact_samples() -> uint16 (height, width) | None``, called on the capture thread right after
  ``next_frame()``; lossless tiles then carry those samples and the video shows the high byte.
- Optional, for sources of real desktops (X11), each called on the capture thread right after
  ``next_frame()`` unless said otherwise: ``damage_hint() -> list[(x, y, w, h)] | None`` (where
  the new frame may differ; the hub compares only there), ``cursor() -> CursorImage | None``,
  ``fidelity() -> str | None`` (why frames are not the exact desktop, e.g. 10-bit detail),
  ``health() -> str | None`` (any thread: the last capture error), ``release_input() -> int``
  (event loop: release held keys/buttons when a viewer leaves), ``monitors()`` and
  ``for_monitor(name)`` (a source for one monitor of the same desktop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""A BGRA frame, shape ``(height, width, 4)``, dtype ``uint8``, C-contiguous."""

PointerAction = Literal["move", "down", "up"]


@dataclass(frozen=True, slots=True)
class PointerEvent:
    """Pointer position in desktop pixels; ``button`` is 0 (left), 1 (middle), 2 (right)."""

    action: PointerAction
    x: int
    y: int
    button: int = 0


@dataclass(frozen=True, slots=True)
class WheelEvent:
    """Wheel movement at a desktop position, in pixels as the browser reports them."""

    x: int
    y: int
    dx: float
    dy: float


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A key press or release: ``key`` is the browser's logical key ("a", "Enter", "ß"),
    ``code`` the physical key ("KeyA"); both travel so layouts other than US work."""

    key: str
    code: str
    down: bool


InputEvent = PointerEvent | WheelEvent | KeyEvent


@dataclass(frozen=True, slots=True)
class CursorImage:
    """The pointer's shape, for sources that know it (X11): drawn by the client, never part
    of the frames. ``pixels`` is BGRA with straight alpha; the hotspot is in its pixels."""

    serial: int
    """Changes whenever the shape changes."""
    pixels: Frame
    xhot: int
    yhot: int
    x: int
    y: int
    """Pointer position in frame pixels when the shape was read."""

    @property
    def visible(self) -> bool:
        """False for an empty or fully transparent cursor (an application hid it)."""
        return self.pixels.size > 0 and bool(self.pixels[..., 3].any())


@runtime_checkable
class FrameSource(Protocol):
    """Anything that can be captured: pulled by the capture loop, driven by remote input."""

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames in pixels."""
        ...

    def next_frame(self) -> Frame:
        """Return the newest frame (see the module invariants). Runs on the capture thread."""
        ...

    def handle_input(self, event: InputEvent) -> None:
        """Apply a remote user's input event. Runs on the event loop; must not block."""
        ...

    def close(self) -> None:
        """Release whatever the source holds (displays, files). Idempotent."""
        ...
