"""One capture loop per server, shared by every viewer of the desktop.

Invariants:
- The hub holds a single "latest frame" slot; it never queues. A viewer that falls behind
  encodes whatever is newest when it is ready and skips the rest.
- A frame is published only when some tile changed (or it is the first): a static desktop
  publishes nothing, so nothing is encoded or sent. A source that returns the identical array
  object is not even compared.
- The loop runs only while somebody is subscribed; an idle server captures nothing.
- ``source.next_frame`` and the change map run on one dedicated capture thread; everything else
  here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hdx.damage import tile_change_map, tile_change_map_within
from hdx.sources.base import CursorImage, Frame, FrameSource, InputEvent

log = logging.getLogger(__name__)
TILE = 64
_HISTORY = 256
"""Change maps remembered per published frame, so a viewer that skipped frames can still learn
everything that changed since the last frame it sent."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A published frame: what changed since the previous published one, and when."""

    seq: int
    pixels: Frame
    changed_tiles: npt.NDArray[np.bool_]
    captured_at: float
    """Wall-clock time (``time.time()``), comparable with the browser's clock on one host."""
    captured_mono: float
    """``time.monotonic()`` at capture, for durations and RTP timestamps."""
    samples16: npt.NDArray[np.uint16] | None = None
    """Exact 16-bit grey samples of the whole frame, for sources deeper than the 8-bit video
    (``pixels`` then shows their high byte); ``None`` for 8-bit sources."""
    fidelity: str | None = None
    """Why ``pixels`` are not the exact desktop (10 bits per channel carried as 8), or
    ``None``: clients must not claim lossless while it is set."""

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.pixels.shape[1], self.pixels.shape[0]


@dataclass(slots=True)
class CaptureStats:
    """Counters a dashboard or a test can read."""

    grabs: int = 0
    unchanged_same_object: int = 0
    unchanged_compared: int = 0
    published: int = 0
    last_grab_ms: float = 0.0
    last_diff_ms: float = 0.0
    changed_tiles_total: int = 0
    errors: int = 0
    hinted_compares: int = 0
    """Compares limited to the areas the source said were drawn (X11 DAMAGE)."""
    per_stage_ms: dict[str, float] = field(default_factory=dict)


class CaptureHub:
    """Pulls frames from a source at up to ``fps``, detects changed tiles, wakes subscribers."""

    def __init__(self, source: FrameSource, fps: int) -> None:
        self.source = source
        self.fps = fps
        self.stats = CaptureStats()
        self.latest: CapturedFrame | None = None
        self._subscribers: set[asyncio.Event] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hdx-capture")
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._prev_pixels: Frame | None = None
        self._history: dict[int, npt.NDArray[np.bool_]] = {}
        self._closed = False
        self.cursor: CursorImage | None = None
        """The pointer's shape as last read (sources that know it); shapes go to listeners."""
        self._cursor_listeners: set[Callable[[CursorImage], None]] = set()
        self._read_cursor = getattr(source, "cursor", None)

    # -- subscribers --------------------------------------------------------------------------
    def subscribe(self, wake: asyncio.Event) -> None:
        """Set ``wake`` whenever a new frame is published; starts capturing if idle."""
        if self._closed:
            raise RuntimeError("capture hub is closed")
        self._subscribers.add(wake)
        if self.latest is not None:
            wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hdx-capture")

    def unsubscribe(self, wake: asyncio.Event) -> None:
        """Stop waking ``wake``; the loop stops by itself once nobody is subscribed."""
        self._subscribers.discard(wake)
        if not self._subscribers:
            self._poke.set()

    def on_cursor(self, listener: Callable[[CursorImage], None]) -> None:
        """Call ``listener`` (on the event loop) with each new cursor shape, and now."""
        self._cursor_listeners.add(listener)
        if self.cursor is not None:
            listener(self.cursor)

    def off_cursor(self, listener: Callable[[CursorImage], None]) -> None:
        """Stop calling ``listener``."""
        self._cursor_listeners.discard(listener)

    @property
    def subscriber_count(self) -> int:
        """How many viewers share this capture."""
        return len(self._subscribers)

    def changes_between(self, after_seq: int, frame: CapturedFrame) -> npt.NDArray[np.bool_]:
        """Tiles changed in any frame published after ``after_seq`` up to ``frame``.

        Everything counts as changed when the history no longer reaches back that far, when
        the size changed in between, or when ``after_seq`` is negative (nothing sent yet).
        """
        if after_seq == frame.seq:
            return np.zeros_like(frame.changed_tiles)
        union = np.zeros_like(frame.changed_tiles)
        if after_seq < 0 or frame.seq - after_seq > _HISTORY:
            union[:] = True
            return union
        for seq in range(after_seq + 1, frame.seq + 1):
            changed = self._history.get(seq)
            if changed is None or changed.shape != union.shape:
                union[:] = True
                return union
            union |= changed
        return union

    def handle_input(self, event: InputEvent) -> None:
        """Forward input to the source and capture again at once (input-to-photon latency)."""
        self.source.handle_input(event)
        self._poke.set()

    # -- the loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.fps
        next_due = time.monotonic()
        log.debug("capture loop started at %d fps", self.fps)
        while self._subscribers and not self._closed:
            try:
                frame, cursor = await loop.run_in_executor(self._executor, self._grab_with_cursor)
            except Exception as exc:
                self.stats.errors += 1
                if self.stats.errors == 1 or self.stats.errors % 60 == 0:
                    log.error("capture failed (%d time(s)): %s; retrying every second",
                              self.stats.errors, exc, exc_info=self.stats.errors == 1)
                await self._sleep(1.0)
                continue
            if frame is not None:
                self._publish(frame)
            if cursor is not None:
                self._publish_cursor(cursor)
            next_due += interval
            now = time.monotonic()
            if next_due < now:  # behind: skip ticks, never burst to catch up
                next_due = now
            await self._sleep(next_due - now)
        log.debug("capture loop stopped (no viewers)")

    async def _sleep(self, seconds: float) -> None:
        self._poke.clear()
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for (which in 3.11 can swallow a cancellation that
            # arrives with the poke, and the capture loop would outlive close()).
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._poke.wait()

    def _grab_with_cursor(self) -> tuple[CapturedFrame | None, CursorImage | None]:
        frame = self._grab()
        cursor = self._read_cursor() if callable(self._read_cursor) else None
        return frame, cursor

    def _publish_cursor(self, cursor: CursorImage) -> None:
        old = self.cursor
        self.cursor = cursor
        if old is not None and old.serial == cursor.serial:
            return
        for listener in list(self._cursor_listeners):
            try:
                listener(cursor)
            except Exception:  # a viewer's bug must not stop capture
                log.exception("cursor listener failed")

    def _grab(self) -> CapturedFrame | None:
        """Runs on the capture thread: pull one frame and find what changed."""
        t0 = time.perf_counter()
        pixels = self.source.next_frame()
        t1 = time.perf_counter()
        self.stats.grabs += 1
        self.stats.last_grab_ms = (t1 - t0) * 1000.0
        prev = self._prev_pixels
        if prev is pixels:
            self.stats.unchanged_same_object += 1
            return None
        if prev is None or prev.shape != pixels.shape:
            tiles_h = -(-pixels.shape[0] // TILE)
            tiles_w = -(-pixels.shape[1] // TILE)
            changed = np.ones((tiles_h, tiles_w), dtype=np.bool_)
        else:
            hint = getattr(self.source, "damage_hint", None)
            rects = hint() if callable(hint) else None
            if rects is None:
                changed = tile_change_map(prev, pixels, TILE)
            else:
                self.stats.hinted_compares += 1
                changed = tile_change_map_within(prev, pixels, rects, TILE)
        self.stats.last_diff_ms = (time.perf_counter() - t1) * 1000.0
        self._prev_pixels = pixels
        if not changed.any():
            self.stats.unchanged_compared += 1
            return None
        seq = self.latest.seq + 1 if self.latest is not None else 0
        exact = getattr(self.source, "exact_samples", None)
        samples16 = exact() if callable(exact) else None
        read_fidelity = getattr(self.source, "fidelity", None)
        fidelity = read_fidelity() if callable(read_fidelity) else None
        return CapturedFrame(seq, pixels, changed, time.time(), time.monotonic(), samples16,
                             fidelity)

    def _publish(self, frame: CapturedFrame) -> None:
        self.latest = frame
        self._history[frame.seq] = frame.changed_tiles
        self._history.pop(frame.seq - _HISTORY, None)
        self.stats.published += 1
        self.stats.changed_tiles_total += int(frame.changed_tiles.sum())
        for wake in self._subscribers:
            wake.set()

    async def close(self) -> None:
        """Stop the loop, wait for it, release the capture thread and the source."""
        self._closed = True
        self._poke.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._executor.shutdown(wait=True)
        self.source.close()
