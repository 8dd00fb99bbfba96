"""Turn a ``--source`` string into a frame source, so the CLI and config stay declarative."""

from __future__ import annotations

import os

from hdx.errors import ConfigError
from hdx.sources.base import FrameSource
from hdx.sources.image import ImageSource
from hdx.sources.synthetic import SyntheticDesktop

VALID_FORMS = ("synthetic", "image:PATH", "x11:DISPLAY (e.g. x11::0; x11: uses $DISPLAY)")
"""The source spellings ``open_source`` understands."""


def open_source(
    spec: str, width: int | None, height: int | None, cine_seconds: float, fps: int
) -> FrameSource:
    """Open the source ``spec`` names: ``synthetic``, ``image:PATH`` or ``x11:DISPLAY``.

    ``width``/``height`` default to 1920x1080 for the synthetic desktop and to the image size
    for an image. Raises ``ConfigError`` for an unknown form and ``SourceError`` when the source
    itself cannot be opened.
    """
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if kind == "synthetic" and not sep:
        w, h = (1920 if width is None else width), (1080 if height is None else height)
        return SyntheticDesktop(w, h, cine_seconds=cine_seconds, fps=fps)
    if kind == "image" and sep:
        if not arg:
            raise ConfigError("source 'image:' needs a path, e.g. image:/data/ct_slice.png")
        return ImageSource(arg, width, height)
    if kind == "x11" and sep:
        if width is not None or height is not None:
            raise ConfigError("width/height do not apply to x11: the X screen's size is used "
                              "(change it with xrandr; hdx follows)")
        from hdx.sources.x11 import open_x11

        display = arg or os.environ.get("DISPLAY", "")
        if not display:
            raise ConfigError("source 'x11:' needs a display, e.g. x11::0 (or set DISPLAY)")
        return open_x11(display)
    raise ConfigError(f"unknown source {spec!r}; valid forms are: {', '.join(VALID_FORMS)}")
