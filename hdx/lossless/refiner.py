"""Per-viewer refinement: cut quiet tiles from the frame the viewer's video shows, encode them
exactly, send them over the ``tiles`` channel within a byte budget, and verify the client's
hashes.

Ordering (why a client never shows a stale tile): every video frame is announced on
``control`` *before* its packets leave, with the tiles it changes. A tile message names the
frame it was cut from (``base_pts``). The client drops a lossless tile as soon as it draws a
video frame whose announcement changed that tile after ``base_pts``, and never draws one it
knows is outdated. The server keeps its own books (:class:`~hdx.lossless.board.TileBoard`):
a tile counts as verified only when the client's hash of what it drew matches the source and
the tile has not changed since.

Runs on the event loop; encoding runs on the shared refine executor (one thread, so refinement
never competes with the video encoder for more than one core).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hdx.lossless import codec
from hdx.lossless.board import TILE, TileBoard, TileRect, TileState
from hdx.lossless.protocol import TileHeader, chunk_tile
from hdx.server.capture import CapturedFrame
from hdx.webrtc.control import verified as verified_message

log = logging.getLogger(__name__)

MAX_RECT_TILES = 8
"""A rectangle is at most 8x8 tiles (512x512 pixels): quick to encode, and a change to one
tile wastes little."""
CHUNK_BYTES = 16 * 1024
"""Chunk size: far under Chromium's 256 KiB message limit. Tile chunks and control messages
share aiortc's one FIFO SCTP queue, and each chunk is processed on the event loop in one go:
small chunks keep frame announcements prompt and RTP sending smooth (measured against 64 KiB in
benchmarks/refine_vs_video.py)."""
VIDEO_ACTIVE_S = 0.1
"""Video counts as moving if a frame with changes went out this recently (three frame
intervals at 30 fps). Shorter than the quiet period on purpose: when the whole screen goes
still, refinement is not held to the budget meant to protect moving video."""
PARALLEL_WHEN_STILL = 2
"""Rectangles encoded at once while no video moves (the refine executor has as many threads)."""
MAX_MISMATCHES = 3
"""A rectangle whose hash mismatches this often is not retried (the client cannot draw it
exactly; it stays marked lossy, truthfully). After the first mismatch it is resent in the
simplest exact formats (``safe``)."""


@dataclass(slots=True)
class RefineStats:
    """What refinement did for one viewer (for /api/sessions, tests and benchmarks)."""

    tiles_sent: int = 0
    rects_sent: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    client_drops: int = 0
    """Times the client said it threw its exact tiles away (``refresh`` with ``dropped``)."""
    forgotten: int = 0
    """Unacknowledged tiles dropped from memory (over ``max_pending``) and refined again."""
    acks: int = 0
    nacks: int = 0
    hash_mismatches: int = 0
    stale_acks: int = 0
    unknown_acks: int = 0
    encode_ms_total: float = 0.0
    flow_waits: int = 0
    budget_waits: int = 0
    fallbacks: int = 0
    """Tiles sent in a simpler format than first choice (see ``EncodedTile.fallback``)."""
    time_to_lossless_ms: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    """For each still period: from the last change to every tile verified."""
    lossless_events: int = 0
    """Still periods that ended lossless (``time_to_lossless_ms`` keeps the last 50)."""
    formats: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _InFlight:
    rect: TileRect
    generations: npt.NDArray[np.int64]
    digest: str
    sent_at: float


@dataclass(slots=True)
class _Job:
    """One rectangle on its way: queued, encoding, then sent."""

    rect: TileRect
    board: TileBoard
    generations: npt.NDArray[np.int64]
    base_pts: int
    pixels: tuple[int, int, int, int]
    future: asyncio.Future[_Encoded]
    sent: bool = False


@dataclass(slots=True)
class _Encoded:
    tile: codec.EncodedTile
    digest: str
    encode_ms: float


class TileRefiner:
    """Refinement for one viewer. Feed it every frame sent (``on_frame_sent``), give it the
    ``tiles`` channel (``attach``), and route the client's acks to it."""

    def __init__(self, executor: Executor, send_control: Callable[[str], None], *,
                 quiet_ms: int, budget_kbps: int, buffer_kb: int,
                 max_pending: int = 4096) -> None:
        self._executor = executor
        self._send_control = send_control
        self.quiet_s = quiet_ms / 1000.0
        self.budget_bytes_per_s = budget_kbps * 1000 / 8
        self.buffer_bytes = buffer_kb * 1024
        self.max_pending = max_pending
        """Tiles sent but not acknowledged that are remembered; beyond, the oldest is
        forgotten and refined again."""
        self.board: TileBoard | None = None
        self.stats = RefineStats()
        self.formats: frozenset[codec.TileFormat] = codec.ALWAYS_DECODABLE
        self.focus: tuple[int, int] | None = None
        """Desktop pixel the user is looking at (the pointer): nearby tiles refine first."""
        self._frame: CapturedFrame | None = None
        self._base_pts = 0
        self._video_moved_at = 0.0
        self._channel: Any = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, _InFlight] = {}
        self._next_id = 1
        self._mismatches: dict[TileRect, int] = {}
        self._budget_tokens = 0.0
        self._budget_at = time.monotonic()
        self._lossless_since: float | None = None
        self._images_for: CapturedFrame | None = None
        self._images: npt.NDArray[np.bool_] | None = None

    # -- inputs --------------------------------------------------------------------------------
    def attach(self, channel: Any) -> None:
        """Start refining over ``channel`` (an open or opening aiortc RTCDataChannel)."""
        self._channel = channel
        channel.bufferedAmountLowThreshold = self.buffer_bytes // 2
        channel.on("bufferedamountlow", self._drained.set)
        channel.on("close", self.stop)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hdx-refine")

    def set_formats(self, names: tuple[str, ...]) -> None:
        """The client's ``caps``: which tile formats it decodes."""
        self.formats = codec.formats_from_names(list(names))

    def on_frame_sent(self, pts: int, frame: CapturedFrame, changed: npt.NDArray[np.bool_]) -> None:
        """A video frame left for this viewer: its changed tiles are lossy from now on. Their
        quiet period counts from when the frame was captured, not from when it was sent."""
        now = min(frame.captured_mono, time.monotonic())
        width, height = frame.size
        board = self.board
        if board is None or (board.width, board.height) != (width, height):
            board = self.board = TileBoard(width, height, TILE)
            self._in_flight.clear()
            changed = np.ones(board.grid, np.bool_)
        if changed.any():
            board.changed(changed, now)
            # New content deserves a fresh chance at the compact formats.
            for rect in [r for r in self._mismatches if changed[r.slices].any()]:
                del self._mismatches[rect]
            self._video_moved_at = now
            self._lossless_since = None
        self._frame = frame
        self._base_pts = pts
        self._wake.set()

    def on_ack(self, tile_id: int, digest: str) -> None:
        """The client drew tile ``tile_id`` and hashed it."""
        flight = self._in_flight.pop(tile_id, None)
        if flight is None or self.board is None:
            self.stats.unknown_acks += 1
            return
        self.stats.acks += 1
        exact = digest == flight.digest
        if exact:
            self._mismatches.pop(flight.rect, None)
        else:
            self.stats.hash_mismatches += 1
            count = self._mismatches[flight.rect] = self._mismatches.get(flight.rect, 0) + 1
            log.warning("tile %d %s: client's hash differs from the source (%d time(s))",
                        tile_id, flight.rect, count)
        verified = self.board.acknowledge(flight.rect, flight.generations, exact)
        if exact and verified < flight.rect.tw * flight.rect.th:
            self.stats.stale_acks += 1
        self._send_control(verified_message(tile_id, verified))
        self._note_if_lossless()
        self._wake.set()

    def on_nack(self, tile_id: int, reason: str) -> None:
        """The client did not draw tile ``tile_id``: refine those tiles again."""
        flight = self._in_flight.pop(tile_id, None)
        self.stats.nacks += 1
        if flight is not None and self.board is not None:
            self.board.acknowledge(flight.rect, flight.generations, exact=False)
            # Wait a quiet period again before resending: a client that cannot take tiles
            # right now (it is waiting for a frame it can identify) must not cause a loop.
            cells = flight.rect.slices
            unchanged = self.board.generation[cells] == flight.generations
            self.board.changed_at[cells][unchanged] = time.monotonic()
            if reason == "decode":
                self._mismatches[flight.rect] = self._mismatches.get(flight.rect, 0) + 1
                log.warning("tile %d %s did not decode on the client", tile_id, flight.rect)
        self._wake.set()

    def client_dropped_tiles(self) -> None:
        """The client threw its exact tiles away (it showed video it could not identify, which
        may have changed anything): every tile is lossy again, verified or not, and what is in
        flight can no longer verify (its generations are outdated)."""
        board = self.board
        self.stats.client_drops += 1
        if board is None:
            return
        board.changed(np.ones(board.grid, np.bool_), time.monotonic())
        self._lossless_since = None
        self._wake.set()

    def summary(self) -> dict[str, Any]:
        """JSON-ready state for ``/api/sessions``."""
        counts = self.board.counts() if self.board is not None else None
        stats = self.stats
        return {
            "tiles": None if counts is None else {
                "lossy": counts.lossy, "queued": counts.queued, "sent": counts.sent,
                "verified": counts.verified, "total": counts.total,
                "coverage": round(counts.coverage, 4)},
            "lossless": bool(self.board is not None and self.board.all_verified),
            "tiles_sent": stats.tiles_sent, "rects_sent": stats.rects_sent,
            "bytes_sent": stats.bytes_sent, "acks": stats.acks, "nacks": stats.nacks,
            "hash_mismatches": stats.hash_mismatches, "stale_acks": stats.stale_acks,
            "unknown_acks": stats.unknown_acks, "flow_waits": stats.flow_waits,
            "budget_waits": stats.budget_waits, "fallbacks": stats.fallbacks,
            "forgotten": stats.forgotten, "client_drops": stats.client_drops,
            "formats": dict(stats.formats),
            "time_to_lossless_ms": [round(v, 1) for v in stats.time_to_lossless_ms],
        }

    def stop(self) -> None:
        """Stop sending (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    # -- the loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                rects = self._due()
                if not rects:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._next_check_s()):
                            await self._wake.wait()
                    continue
                # While video moves, one encode at a time (one core); with the screen still,
                # the video encoder is idle and two encodes overlap. Sends stay in order.
                width = 1 if self._video_moving() else PARALLEL_WHEN_STILL
                started = [self._start(rect) for rect in rects[:width]]
                for job in started:
                    if not await self._finish(job):
                        for rest in started:  # planning again: release what was queued
                            self._release(rest)
                        break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("refinement stopped after an error; this viewer stays lossy")

    def _quiet_s(self) -> float:
        channel = self._channel
        backed_up = channel is not None and channel.bufferedAmount > self.buffer_bytes
        return self.quiet_s * (2 if backed_up else 1)

    def _due(self) -> list[TileRect]:
        board, channel = self.board, self._channel
        if board is None or channel is None or channel.readyState != "open":
            return []
        quiet = board.quiet(time.monotonic(), self._quiet_s())
        for rect, count in self._mismatches.items():
            if count >= MAX_MISMATCHES:
                quiet[rect.slices] = False
        if not quiet.any():
            return []
        focus = None
        if self.focus is not None:
            focus = (self.focus[0] // TILE, self.focus[1] // TILE)
        return board.plan(quiet, MAX_RECT_TILES, focus, self._image_tiles(board))[:8]

    def _image_tiles(self, board: TileBoard) -> npt.NDArray[np.bool_] | None:
        """Tiles that look like part of a medical image: grey (R = G = B) with more than a
        handful of distinct levels. Computed once per frame; they refine first."""
        frame = self._frame
        if frame is None:
            return None
        if self._images_for is not frame:
            self._images_for = frame
            self._images = image_tiles(frame, board.grid, board.tile)
        return self._images

    def _next_check_s(self) -> float:
        """Sleep until the next lossy tile turns quiet (a change or an ack wakes us sooner)."""
        board, channel = self.board, self._channel
        if board is None:
            return 1.0
        if channel is None or channel.readyState != "open":
            return 0.05
        now = time.monotonic()
        due_at = board.changed_at + self._quiet_s()
        waiting = (board.state == 0) & (due_at > now)  # quiet ones left over were excluded
        if not waiting.any():
            return 1.0
        return min(max(float(due_at[waiting].min()) - now, 0.005), 1.0)

    def _start(self, rect: TileRect) -> _Job:
        """Queue one rectangle and start encoding it on the refine executor."""
        board, frame = self.board, self._frame
        assert board is not None and frame is not None  # _due() plans only with both
        generations = board.mark_queued(rect)
        x, y, w, h = rect.pixels(board.width, board.height, board.tile)
        safe = self._mismatches.get(rect, 0) > 0
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, _encode_rect, frame, (x, y, w, h), self.formats, safe)
        return _Job(rect, board, generations, self._base_pts, (x, y, w, h), future)

    def _release(self, job: _Job) -> None:
        """A queued rectangle that will not be sent: its tiles are lossy again (if unsent)."""
        if job.sent:
            return
        job.future.cancel()
        if job.board is self.board:
            states = job.board.state[job.rect.slices]
            current = job.board.generation[job.rect.slices] == job.generations
            states[current & (states == TileState.QUEUED)] = TileState.LOSSY

    async def _finish(self, job: _Job) -> bool:
        """Wait for the encode, then send the rectangle; False if the caller should re-plan."""
        rect, board, generations, base_pts = job.rect, job.board, job.generations, job.base_pts
        x, y, w, h = job.pixels
        encoded = await job.future
        job.sent = True  # from here on this method settles the tiles' state itself
        if encoded.tile.fallback is not None:
            self.stats.fallbacks += 1
            if self.stats.fallbacks == 1:
                log.warning("tile %s sent as %s: %s", rect, encoded.tile.fmt.wire_name,
                            encoded.tile.fallback)
        self.stats.encode_ms_total += encoded.encode_ms
        if self.board is not board or not np.array_equal(
                board.generation[rect.slices], generations):
            # It changed while we encoded: what we have is outdated; plan again.
            board.acknowledge(rect, generations, exact=False)
            return False
        tile_id = self._next_id
        self._next_id = (self._next_id % 0xFFFFFFFF) + 1
        header = TileHeader(tile_id, x, y, w, h, base_pts, int(encoded.tile.fmt),
                            encoded.tile.bits, encoded.tile.channels, len(encoded.tile.payload))
        chunk_size = min(CHUNK_BYTES, _peer_max_message(self._channel))
        for chunk in chunk_tile(header, encoded.tile.payload, chunk_size):
            await self._pace(len(chunk))
            channel = self._channel
            if channel is None or channel.readyState != "open":
                board.acknowledge(rect, generations, exact=False)
                return False
            channel.send(chunk)
            self.stats.chunks_sent += 1
            self.stats.bytes_sent += len(chunk)
        board.mark_sent(rect, generations)
        self._in_flight[tile_id] = _InFlight(rect, generations, encoded.digest, time.monotonic())
        while len(self._in_flight) > self.max_pending:  # a client that never acks cannot
            # grow this; the forgotten tile is not verified, so it must not stay SENT for ever
            forgotten = self._in_flight.pop(next(iter(self._in_flight)))
            board.acknowledge(forgotten.rect, forgotten.generations, exact=False)
            self.stats.forgotten += 1
        self.stats.rects_sent += 1
        self.stats.tiles_sent += rect.tw * rect.th
        name = encoded.tile.fmt.wire_name
        self.stats.formats[name] = self.stats.formats.get(name, 0) + 1
        return True

    async def _pace(self, size: int) -> None:
        """Flow control (the channel's queue) and, while video moves, the byte budget."""
        channel = self._channel
        while channel is not None and channel.bufferedAmount > self.buffer_bytes:
            self.stats.flow_waits += 1
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._drained.wait()
        now = time.monotonic()
        rate = self.budget_bytes_per_s
        self._budget_tokens = min(self._budget_tokens + (now - self._budget_at) * rate,
                                  rate * 0.1 + size)
        self._budget_at = now
        if self._video_moving():
            self._budget_tokens -= size
            if self._budget_tokens < 0:
                self.stats.budget_waits += 1
                await asyncio.sleep(-self._budget_tokens / rate)

    def _video_moving(self) -> bool:
        return time.monotonic() - self._video_moved_at < VIDEO_ACTIVE_S

    def _note_if_lossless(self) -> None:
        board = self.board
        if board is None or self._lossless_since is not None or not board.all_verified:
            return
        self._lossless_since = time.monotonic()
        self.stats.time_to_lossless_ms.append((self._lossless_since - board.last_change) * 1000)
        self.stats.lossless_events += 1


def image_tiles(frame: CapturedFrame, grid: tuple[int, int], tile: int
                ) -> npt.NDArray[np.bool_]:
    """Per tile: grey and not flat (a 16-bit source is one big image). A priority hint only,
    so it looks at every 4th pixel each way: about 1.5 ms for 1080p, on the event loop."""
    rows, cols = grid
    if frame.samples16 is not None:
        return np.ones(grid, np.bool_)
    step = 4
    sample = frame.pixels[::step, ::step, :3]
    cell = tile // step
    h, w = sample.shape[:2]
    padded = np.zeros((rows * cell, cols * cell, 3), np.uint8)
    padded[:h, :w] = sample
    cells = padded.reshape(rows, cell, cols, cell, 3)
    grey = ((cells[..., 0] == cells[..., 1]) & (cells[..., 1] == cells[..., 2])).all(axis=(1, 3))
    spread = cells[..., 1].max(axis=(1, 3)).astype(np.int16) - cells[..., 1].min(axis=(1, 3))
    result: npt.NDArray[np.bool_] = grey & (spread > 16)
    return result


def _peer_max_message(channel: Any) -> int:
    """The largest message the peer accepts (from its SDP), or our chunk size when unknown."""
    transport = getattr(channel, "transport", None)
    size = getattr(transport, "_remote_max_message_size", None)
    return int(size) if isinstance(size, int) and size > 1024 else CHUNK_BYTES


def _encode_rect(frame: CapturedFrame, rect: tuple[int, int, int, int],
                 formats: frozenset[codec.TileFormat], safe: bool) -> _Encoded:
    """Runs on the refine executor: exact encoding plus the digest the client must return."""
    x, y, w, h = rect
    started = time.perf_counter()
    if frame.samples16 is not None:
        samples = frame.samples16[y:y + h, x:x + w]
        tile = codec.encode_grey16(samples, safe)
        digest = codec.grey16_digest(samples)
    else:
        pixels = frame.pixels[y:y + h, x:x + w]
        tile = codec.encode_bgra(pixels, formats, safe)
        digest = codec.bgra_digest(pixels)
    return _Encoded(tile, digest, (time.perf_counter() - started) * 1000)
