"""Shared fixtures: a real hdx server on a free loopback port, and image helpers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.base import FrameSource
from hdx.video.selection import EncoderChoice

X264 = EncoderChoice("libx264", "tests use libx264")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (99 when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@contextlib.asynccontextmanager
async def running_server(source: FrameSource, **settings: Any) -> AsyncIterator[HdxServer]:
    """Serve ``source`` on 127.0.0.1 with a free port; stops and frees everything afterwards."""
    config = Config(port=0, **settings)
    server = HdxServer(source, config, encoder=X264)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> None:
    """Poll ``predicate()`` until true; fail the test with a clear message after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)



def shown_by_client(image: np.ndarray) -> np.ndarray:
    """What a client shows for an image file written with OpenCV: RGB for BGR and grey files,
    the samples themselves for 16-bit grey."""
    if image.dtype == np.uint16:
        return image
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., ::-1])


def with_claims(token: str, **changes: object) -> str:
    """``token`` with some payload claims changed and its old signature kept: a forgery."""
    prefix, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{prefix}.{raw}.{signature}"
