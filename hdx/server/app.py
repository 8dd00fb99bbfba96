"""HTTP routes: the web client, signalling and health. Handlers stay thin; HdxServer does the work.

``GET /`` and ``GET /static/*`` serve the plain-ES-module client shipped in ``hdx/web``;
``POST /api/offer`` takes ``{"sdp": ..., "type": "offer"}`` and answers the same shape;
``GET /healthz`` says the process is alive (always 200, a liveness probe) and what it runs,
with ``"draining"``; ``GET /readyz`` says whether a new viewer would be served now (readiness
probe): 200 ``{"ready": true, ...}``, or 503 ``{"ready": false, "reason": ...}`` while the server
starts, drains for shutdown, or its source reports itself unhealthy. ``GET /api/sessions`` lists
the viewers with their video counters (no secrets: ids, states and numbers only).
``GET /api/sessions?history=1`` adds each session's recent telemetry points. ``GET /metrics``
is the Prometheus export (an admin token or a local caller, like the session list), and
``GET /dashboard`` the admin page that shows it (the page is public; its data is not).
``GET /api/monitors`` lists the desktop's monitors; ``POST /api/offer?monitor=NAME`` watches
one of them (its own capture and video track) instead of the whole desktop.

Access (hdx.security.access): offers and monitors need a join token wherever tokens are
required (``Authorization: Bearer``), the session list an admin token or a local caller.
Refusals answer 401/403 with ``{"error": reason}`` and are audited.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http import HttpVersion11

from hdx.errors import OfferError
from hdx.security.access import AccessDenied, Caller
from hdx.security.identity import Identity
from hdx.server.http_guard import security_middleware
from hdx.telemetry.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from hdx.server.server import HdxServer

log = logging.getLogger(__name__)
SERVER_KEY: web.AppKey[HdxServer] = web.AppKey("hdx_server")
# Package data next to the code (a plain path: importlib.resources hands editable installs a
# MultiplexedPath that cannot join file names on Python 3.11).
_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def build_app(server: HdxServer) -> web.Application:
    """The aiohttp application for ``server`` (also usable with aiohttp's test client)."""
    hsts = server.tls is not None and not server.tls.self_signed
    app = web.Application(client_max_size=server.config.max_offer_bytes,
                          middlewares=[security_middleware(server.config, hsts)])
    app[SERVER_KEY] = server
    for method, path, handler in [("GET", "/", _index), ("GET", "/static/{name}", _static),
                                  ("POST", "/api/offer", _offer), ("GET", "/healthz", _healthz),
                                  ("GET", "/readyz", _readyz),
                                  ("GET", "/api/sessions", _sessions),
                                  ("GET", "/metrics", _metrics),
                                  ("GET", "/dashboard", _dashboard),
                                  ("GET", "/api/monitors", _monitors),
                                  ("GET", "/favicon.ico", _no_content)]:
        app.router.add_route(method, path, handler, expect_handler=_expect)
    return app


async def _expect(request: web.Request) -> None:
    """aiohttp's own Expect handling, minus echoing the header: a value that is not UTF-8
    made aiohttp's 417 fail to encode (a 500)."""
    if request.version != HttpVersion11:
        return
    if request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the body has not started yet
        return
    raise web.HTTPExpectationFailed(
        text=json.dumps({"error": "unknown Expect header; only 100-continue is known"}),
        content_type="application/json")


def caller_of(request: web.Request) -> Caller:
    """What the request says about who sends it."""
    headers = request.headers
    return Caller(authorization=headers.get("Authorization"), remote=request.remote or "",
                  token_in_query="token" in request.query,
                  proxied="Forwarded" in headers or "X-Forwarded-For" in headers)


def _denied(request: web.Request, exc: AccessDenied) -> web.Response:
    server = request.app[SERVER_KEY]
    server.audit.record("refused", exc.identity, remote=request.remote, reason=exc.reason,
                        path=request.path, status=exc.status)
    headers = {}
    if exc.status == 401:
        description = exc.reason.replace('"', "'")
        headers["WWW-Authenticate"] = (f'Bearer realm="hdx", error="invalid_token", '
                                       f'error_description="{description}"')
    return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _web_file(name: str) -> bytes | None:
    try:
        return (_WEB_DIR / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


async def _index(request: web.Request) -> web.Response:
    return _page("index.html")


async def _dashboard(request: web.Request) -> web.Response:
    return _page("dashboard.html")


def _page(name: str) -> web.Response:
    body = _web_file(name)
    if body is None:
        raise web.HTTPInternalServerError(text=f"hdx web page {name} is missing from the "
                                          "package")
    return web.Response(body=body, content_type="text/html")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    suffix = name[name.rfind("."):] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
        raise web.HTTPNotFound()
    body = _web_file(name)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=_STATIC_TYPES[suffix])


async def _offer(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    try:
        identity: Identity = server.gatekeeper.viewer(caller_of(request))
    except AccessDenied as exc:
        return _denied(request, exc)
    try:
        offer = await _read_offer(request, server.config.max_offer_bytes)
        monitor = request.query.get("monitor") or None
        answer_sdp, session_id = await server.accept_offer(offer, monitor, identity)
    except OfferError as exc:
        log.info("offer from %s rejected (%d): %s", request.remote, exc.status, exc.reason)
        server.audit.record("refused", identity, reason=exc.reason, path=request.path,
                            status=exc.status)
        return web.json_response({"error": exc.reason}, status=exc.status)
    return web.json_response({"sdp": answer_sdp, "type": "answer", "session": session_id})


async def _read_offer(request: web.Request, max_bytes: int) -> str:
    if request.content_length is not None and request.content_length > max_bytes:
        raise OfferError(f"offer body of {request.content_length} bytes exceeds the "
                         f"{max_bytes}-byte limit", status=413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OfferError(f"offer body exceeds the {max_bytes}-byte limit", status=413) from None
    except web.RequestPayloadError as exc:  # e.g. gzip that does not inflate
        raise OfferError(f"the body could not be read: {exc}") from None
    if len(raw) > max_bytes:
        raise OfferError(f"offer body exceeds the {max_bytes}-byte limit", status=413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise OfferError("the body is not JSON; send {\"sdp\": ..., \"type\": \"offer\"}") from None
    if not isinstance(body, dict):
        raise OfferError("the body must be a JSON object with 'sdp' and 'type'")
    if body.get("type") != "offer":
        raise OfferError("'type' must be \"offer\"")
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise OfferError("'sdp' must be an SDP session description starting with v=0")
    return sdp


async def _sessions(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    try:
        server.gatekeeper.admin(caller_of(request))
    except AccessDenied as exc:
        return _denied(request, exc)
    history = request.query.get("history") in ("1", "true")
    return web.json_response({"sessions": server.session_summaries(history)})


async def _metrics(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    try:
        server.gatekeeper.admin(caller_of(request))
    except AccessDenied as exc:
        return _denied(request, exc)
    # As a header: aiohttp's content_type= refuses one that carries a charset parameter.
    return web.Response(body=server.metrics.render(),
                        headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _monitors(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    try:
        server.gatekeeper.viewer(caller_of(request))
    except AccessDenied as exc:
        return _denied(request, exc)
    loop = asyncio.get_running_loop()
    # Listing monitors asks the X server (a round trip on a fresh connection): off the loop.
    monitors = await loop.run_in_executor(None, server.monitors)
    return web.json_response({"monitors": monitors})


async def _healthz(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response(server.health())


async def _readyz(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    ready, reason = server.readiness()
    if not ready:
        return web.json_response({"ready": False, "reason": reason}, status=503)
    return web.json_response({"ready": True, "reason": reason,
                              "encoder": server.encoder.codec if server.encoder else None,
                              "sessions": len(server.sessions)})
