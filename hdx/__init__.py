"""hdx: a remote display server over WebRTC for work that needs exact pixels.

The public API is what ``__all__`` lists; everything else is internal and may change.
"""

from hdx.config import Config, load_config
from hdx.errors import (
    ConfigError,
    EncoderUnavailable,
    HdxError,
    OfferError,
    ProtocolError,
    SourceError,
)
from hdx.server.server import HdxServer
from hdx.sources.base import Frame, FrameSource, InputEvent, KeyEvent, PointerEvent, WheelEvent
from hdx.sources.image import ImageSource
from hdx.sources.push import PushSource
from hdx.sources.synthetic import SyntheticDesktop
from hdx.video.selection import EncoderChoice, select_encoder

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "EncoderChoice",
    "EncoderUnavailable",
    "Frame",
    "FrameSource",
    "HdxError",
    "HdxServer",
    "ImageSource",
    "InputEvent",
    "KeyEvent",
    "OfferError",
    "PointerEvent",
    "ProtocolError",
    "PushSource",
    "SourceError",
    "SyntheticDesktop",
    "WheelEvent",
    "__version__",
    "load_config",
    "select_encoder",
]
