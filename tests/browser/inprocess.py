"""An HdxServer running in this test process, on its own event-loop thread, so a browser test
can push frames into it (PushSource) and look at the server's own books while Chromium runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.base import FrameSource
from tests.conftest import X264

T = TypeVar("T")


class ServerThread:
    """Handle on the running server: ``url``, ``server`` and ``call`` (run on its loop)."""

    def __init__(self, server: HdxServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.url = server.url

    def call(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``fn`` on the server's loop (its state is not thread-safe) and return its result."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except Exception as exc:  # handed to the caller
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(timeout_s)


@contextmanager
def server_thread(source: FrameSource, **settings: Any) -> Iterator[ServerThread]:
    """Serve ``source`` on 127.0.0.1 (free port) from a background thread until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hdx-test-server", daemon=True)
    thread.start()
    server = HdxServer(source, Config(port=0, **settings), encoder=X264)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield ServerThread(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
