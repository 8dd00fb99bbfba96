"""What every HTTP response carries, and which requests are refused before any handler runs.

- Headers for a page that shows patient data on someone's own device: ``no-store``, a strict
  Content-Security-Policy, ``nosniff``, no referrer, no framing, same-origin isolation, and a
  Permissions-Policy that denies the clipboard (and camera, microphone, ...). Errors get them
  too. HSTS when the operator's own certificate is served.
- CORS stays closed: no CORS headers are ever sent, and a POST whose ``Origin`` is not this
  server's own is refused (403).
- DNS rebinding: a server on loopback answers only requests addressed to a loopback name (or
  to ``public_url``'s host, for a reverse proxy); another ``Host`` gets 403.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from hdx.config import Config
from hdx.webrtc.ice import is_loopback

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The client is same-origin ES modules and workers with no inline code: nothing else may
# load, run, be framed or receive a form.
CSP = ("default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; "
       "img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
PERMISSIONS_POLICY = ("clipboard-read=(), clipboard-write=(), camera=(), microphone=(), "
                      "geolocation=(), usb=(), serial=(), hid=(), bluetooth=(), payment=(), "
                      "display-capture=()")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}


def security_middleware(config: Config, hsts: bool) -> Callable[..., Awaitable[
        web.StreamResponse]]:
    """The middleware for ``config``: refusals first, then headers on whatever answers."""
    allowed_hosts = _allowed_host_names(config)
    public_origin = _origin_of(config.public_url) if config.public_url else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            refusal = _refusal(request, allowed_hosts, public_origin)
            if refusal is not None:
                log.info("refused %s %s from %s: %s", request.method, request.path,
                         request.remote, refusal)
                response: web.StreamResponse = web.json_response({"error": refusal},
                                                                 status=403)
            else:
                response = await handler(request)
        except web.HTTPException as exc:  # 404s and friends get the headers too
            exc.headers.update(_headers(hsts))
            raise
        response.headers.update(_headers(hsts))
        return response

    return guard


def _headers(hsts: bool) -> dict[str, str]:
    headers = dict(SECURITY_HEADERS)
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def _refusal(request: web.Request, allowed_hosts: frozenset[str] | None,
             public_origin: str | None) -> str | None:
    host = request.host
    if allowed_hosts is not None and _host_name(host) not in allowed_hosts:
        return (f"this server answers only loopback addresses, not {host[:100]!r} "
                "(set public_url for a reverse proxy)")
    origin = request.headers.get("Origin")
    if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None:
        own = f"{request.scheme}://{host}"
        if origin not in (own, public_origin):
            return "cross-origin requests are refused"
    return None


def _allowed_host_names(config: Config) -> frozenset[str] | None:
    """Host names a loopback server answers (None: any, for servers beyond loopback)."""
    if not is_loopback(config.host):
        return None
    names = {"localhost", "127.0.0.1", "::1", config.host.strip("[]")}
    if config.public_url:
        names.add(urlsplit(config.public_url).hostname or "")
    return frozenset(names)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    name, _, _ = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return (name or host).lower()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
