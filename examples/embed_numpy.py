"""Embed hdx in a program that draws its own numpy frames, and see them in a browser.

A background thread animates a colour gradient with a sine wave over it at 15 frames per
second and hands each frame to hdx with ``push_frame``; hdx encodes only when a frame changes
and streams it to every connected viewer. Pointer, wheel and key events from viewers arrive in
``on_input`` and are printed.

Run it from the repository root (with hdx installed) and open the URL it prints::

    python examples/embed_numpy.py                 # http://127.0.0.1:8080/, until Ctrl-C
    python examples/embed_numpy.py --port 0 --seconds 30

It uses only hdx's public API: ``HdxServer.for_frames``, ``push_frame``, ``Config`` and the
input event types.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import threading
import time

import numpy as np

from hdx import Config, HdxServer, InputEvent

WIDTH, HEIGHT = 640, 360
FPS = 15


def draw(n: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame number ``n`` as BGR ``(height, width, 3)`` uint8; a pure function of ``n``.

    Blue ripples left to right and drifts with time, green grows from top to bottom, and a white
    sine wave scrolls across the middle. push_frame() also takes BGRA and grey frames.
    """
    t = n / FPS
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 128 + 100 * np.sin(2 * math.pi * (x / width - 0.25 * t))
    frame[..., 1] = 220 * y / (height - 1)
    frame[..., 2] = 60
    wave = height / 2 + height / 4 * np.sin(2 * math.pi * (2 * x / width - 0.5 * t))
    frame[np.abs(y - wave) < 3] = 255
    return frame


def produce(server: HdxServer, stop: threading.Event) -> None:
    """Runs on the producer thread: draw and push frames at FPS until ``stop`` is set.

    push_frame() copies the frame, so the array may be reused or dropped right after. Pushing
    faster than viewers can take is harmless: hdx keeps only the latest frame.
    """
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        server.push_frame(draw(n))
        n += 1
        next_at += 1 / FPS
        # Sleeping on the event (not time.sleep) lets shutdown interrupt the wait at once.
        stop.wait(max(0.0, next_at - time.monotonic()))


def on_input(event: InputEvent) -> None:
    """Called on hdx's event loop for every viewer input event: must return quickly."""
    print(f"input: {event}", flush=True)


async def wait_until_stopped(seconds: float | None) -> None:
    """Return after ``seconds`` (None: never) or on SIGINT/SIGTERM, whichever comes first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows; there Ctrl-C arrives as KeyboardInterrupt (see main()).
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def serve(port: int, seconds: float | None) -> None:
    # port=0 lets the OS pick a free port; server.url says which one it got.
    config = Config(port=port)
    async with HdxServer.for_frames(WIDTH, HEIGHT, config, on_input=on_input) as server:
        print(f"hdx: serving {WIDTH}x{HEIGHT} at {server.url}", flush=True)
        stop = threading.Event()
        producer = threading.Thread(target=produce, args=(server, stop), name="producer")
        producer.start()
        try:
            await wait_until_stopped(seconds)
        finally:
            # Stop pushing before the server closes (a closed server refuses frames).
            stop.set()
            await asyncio.to_thread(producer.join)
    print("hdx: stopped", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Stream numpy frames with hdx.")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    parser.add_argument("--seconds", type=float, default=None,
                        help="exit after this many seconds (default: run until Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args.port, args.seconds))
    except KeyboardInterrupt:  # Ctrl-C where signal handlers are unavailable
        print("hdx: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
