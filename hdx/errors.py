"""The hdx exception hierarchy.

Every error hdx raises derives from :class:`HdxError` and also from the builtin that matches
its meaning, so callers can catch either (``except ValueError`` keeps working for bad config).
"""

from __future__ import annotations


class HdxError(Exception):
    """Root of every error raised by hdx."""


class ConfigError(HdxError, ValueError):
    """A setting is missing, malformed or out of range; the message names the setting."""


class SourceError(HdxError, RuntimeError):
    """A frame source could not be opened or stopped producing frames."""


class EncoderUnavailable(HdxError, RuntimeError):
    """The requested video encoder cannot be opened on this machine."""


class ProtocolError(HdxError, ValueError):
    """A message from a client is malformed; the session counts it and goes on."""


class OfferError(HdxError, ValueError):
    """A signalling offer was rejected; ``status`` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
