"""Which local addresses ICE may use, and which remote candidates it may try.

Two facts drive this module (see WEBRTC-NOTES.md):
- aioice never gathers a 127.0.0.1 host candidate, so a server and a browser on one machine's
  loopback have no candidate pair in common.
- A server bound to loopback should not send connectivity checks to the host's other addresses
  either: loopback service stays on loopback.

aioice exposes no per-connection address list, so :func:`host_addresses` sets a context variable
that a wrapper around ``aioice.ice.get_host_addresses`` consults while candidates are gathered
(gathering runs inside ``setLocalDescription`` in the calling task, and child tasks inherit the
context). Outside that block aioice behaves exactly as before. The wrapper is installed once, on
first use, and is the only patch hdx makes to a dependency.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Callable, Iterable, Iterator

import aioice.ice

_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "hdx_ice_host_addresses", default=None
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _ADDRESSES.get()
    assert _original_get_host_addresses is not None
    if chosen is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [a for a in chosen
            if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]


def _install() -> None:
    global _original_get_host_addresses
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def host_addresses(addresses: Iterable[str]) -> Iterator[None]:
    """Within this block, ICE gathering in this task offers exactly ``addresses``."""
    _install()
    token = _ADDRESSES.set(tuple(addresses))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def addresses_for_bind(bind_host: str, configured: tuple[str, ...]) -> tuple[str, ...] | None:
    """The ICE host addresses for a server bound to ``bind_host``; None means aioice's default."""
    if configured:
        return configured
    if is_loopback(bind_host):
        return ("127.0.0.1",)
    return None


def filter_remote_candidates(sdp: str, keep: Callable[[str], bool]) -> str:
    """Drop ``a=candidate`` lines whose connection address fails ``keep``.

    A candidate line is ``a=candidate:foundation component transport priority address port
    typ ...``; malformed candidate lines are dropped too (they could not be used anyway).
    """
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 8 or not keep(parts[4]):
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"
