"""Whether a server's settings expose the desktop safely: TLS and tokens beyond loopback.

Decided before anything listens. Beyond loopback (or behind a ``public_url``) hdx serves
HTTPS and requires join tokens; settings that turn either off there are refused unless
``insecure`` is set, and then every start logs why it is insecure.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdx.config import Config
from hdx.errors import ConfigError
from hdx.security.access import tokens_required
from hdx.webrtc.ice import is_loopback


@dataclass(frozen=True, slots=True)
class Exposure:
    """What a server will do: serve TLS? require tokens? and what is insecure about it."""

    tls: bool
    tokens: bool
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One phrase for the start-up line."""
        return (f"{'TLS' if self.tls else 'no TLS'}, "
                f"{'tokens required' if self.tokens else 'no token needed on loopback'}")


def plan_exposure(config: Config) -> Exposure:
    """TLS and token requirements for ``config``; ConfigError when it is unsafe and not
    ``insecure``."""
    beyond = not is_loopback(config.host)
    tls = config.tls == "on" or config.tls_cert is not None or (config.tls == "auto" and beyond)
    tokens = tokens_required(config)
    problems = []
    if beyond and not tls:
        problems.append(f"listening on {config.host} without TLS: tokens and pictures "
                        "travel in clear text")
    if beyond and config.auth == "none":
        problems.append(f"listening on {config.host} without join tokens: anyone who can "
                        "reach this port can see and drive the desktop")
    if problems and not config.insecure:
        raise ConfigError("refusing to listen beyond loopback unsafely: "
                          + "; ".join(problems)
                          + ". Remove --tls off / --auth none, or pass --insecure if you "
                          "really mean it")
    return Exposure(tls, tokens, tuple(problems))
