"""HTTP routes: the web client, signalling and health. Handlers stay thin; HdxServer does the work.

``GET /`` and ``GET /static/*`` serve the plain-ES-module client shipped in ``hdx/web``;
``POST /api/offer`` takes ``{"sdp": ..., "type": "offer"}`` and answers the same shape;
``GET /healthz`` says the process is alive (always 200, a liveness probe) and what it runs,
with ``"draining"``; ``GET /readyz`` says whether a new viewer would be served now (readiness
probe): 200 ``{"ready": true, ...}``, or 503 ``{"ready": false, "reason": ...}`` while the server
starts, drains for shutdown, or its source reports itself unhealthy. ``GET /api/sessions`` lists
the viewers with their video counters (no secrets: ids, states and numbers only).
``GET /api/monitors`` lists the desktop's monitors; ``POST /api/offer?monitor=NAME`` watches
one of them (its own capture and video track) instead of the whole desktop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hdx.errors import OfferError

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
    app = web.Application(client_max_size=server.config.max_offer_bytes,
                          middlewares=[_no_store])
    app[SERVER_KEY] = server
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    app.router.add_post("/api/offer", _offer)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/api/sessions", _sessions)
    app.router.add_get("/api/monitors", _monitors)
    app.router.add_get("/favicon.ico", _no_content)
    return app


@web.middleware
async def _no_store(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    # Desktop pixels may be patient data: nothing a response carries belongs in a cache.
    response.headers.setdefault("Cache-Control", "no-store")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


# The client is same-origin ES modules with no inline code: nothing else may load or run.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _web_file(name: str) -> bytes | None:
    try:
        return (_WEB_DIR / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


async def _index(request: web.Request) -> web.Response:
    body = _web_file("index.html")
    if body is None:
        raise web.HTTPInternalServerError(text="hdx web client is missing from the package")
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
        offer = await _read_offer(request, server.config.max_offer_bytes)
        monitor = request.query.get("monitor") or None
        answer_sdp, session_id = await server.accept_offer(offer, monitor)
    except OfferError as exc:
        log.info("offer from %s rejected (%d): %s", request.remote, exc.status, exc.reason)
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
    if len(raw) > max_bytes:
        raise OfferError(f"offer body exceeds the {max_bytes}-byte limit", status=413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
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
    return web.json_response({"sessions": server.session_summaries()})


async def _monitors(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
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
