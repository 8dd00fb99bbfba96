"""Per-viewer tile lifecycle: which 64x64 tiles the client holds exactly, and which it does not.

States (one per tile):

    LOSSY --quiet for quiet_s--> QUEUED (in a planned rectangle) --> SENT --ack, hash ok--> VERIFIED
      ^                                                                |
      +------------------ the tile changes (any state) ----------------+--- nack / wrong hash

Every change bumps the tile's *generation*. A rectangle remembers the generations it was
encoded from, so an ack for content that has since changed verifies nothing: a tile can only
be VERIFIED for the content it has now. Pure logic, no I/O: the refiner drives it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TILE = 64


class TileState(enum.IntEnum):
    """Where a tile is in its lifecycle (wire values are these numbers too)."""

    LOSSY = 0
    QUEUED = 1
    SENT = 2
    VERIFIED = 3


@dataclass(frozen=True, slots=True)
class TileRect:
    """A rectangle of whole tiles: column ``tx``, row ``ty``, ``tw`` x ``th`` tiles."""

    tx: int
    ty: int
    tw: int
    th: int

    def pixels(self, width: int, height: int, tile: int = TILE) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` in pixels, clipped to the desktop's edge."""
        x, y = self.tx * tile, self.ty * tile
        return x, y, min(self.tw * tile, width - x), min(self.th * tile, height - y)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index into per-tile arrays."""
        return slice(self.ty, self.ty + self.th), slice(self.tx, self.tx + self.tw)


@dataclass(slots=True)
class BoardCounts:
    """How many tiles are in each state; ``coverage`` is the verified share."""

    lossy: int
    queued: int
    sent: int
    verified: int

    @property
    def total(self) -> int:
        """All tiles on the desktop."""
        return self.lossy + self.queued + self.sent + self.verified

    @property
    def coverage(self) -> float:
        """Share of tiles verified exact on the client (0..1)."""
        return self.verified / self.total if self.total else 0.0


class TileBoard:
    """The state of every tile of one viewer's desktop."""

    def __init__(self, width: int, height: int, tile: int = TILE) -> None:
        self.tile = tile
        self.width = width
        self.height = height
        rows, cols = -(-height // tile), -(-width // tile)
        self.state = np.full((rows, cols), TileState.LOSSY, np.uint8)
        self.generation = np.zeros((rows, cols), np.int64)
        self.changed_at = np.zeros((rows, cols), np.float64)
        self.last_change = 0.0
        """When any tile last changed (monotonic seconds)."""

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of tiles."""
        return self.state.shape[0], self.state.shape[1]

    def changed(self, mask: npt.NDArray[np.bool_], now: float) -> None:
        """Tiles in ``mask`` now show new content on the video: they are lossy again."""
        if mask.shape != self.state.shape:
            raise ValueError(f"change map {mask.shape} does not match the board {self.grid}")
        if not mask.any():
            return
        self.state[mask] = TileState.LOSSY
        self.generation[mask] += 1
        self.changed_at[mask] = now
        self.last_change = now

    def quiet(self, now: float, quiet_s: float) -> npt.NDArray[np.bool_]:
        """Lossy tiles that have not changed for ``quiet_s``: ready to refine."""
        mask: npt.NDArray[np.bool_] = (self.state == TileState.LOSSY) & (
            now - self.changed_at >= quiet_s)
        return mask

    def plan(self, mask: npt.NDArray[np.bool_], max_side: int = 8,
             focus: tuple[int, int] | None = None,
             images: npt.NDArray[np.bool_] | None = None) -> list[TileRect]:
        """Merge the tiles in ``mask`` into rectangles of at most ``max_side`` tiles a side.

        Greedy: each rectangle grows right along a row, then down while the rows below are
        covered too. Rectangles touching ``images`` (tiles that look like medical images) come
        first, then those nearest ``focus`` (a tile ``(col, row)``: the pointer).
        """
        todo = mask.copy()
        rects: list[TileRect] = []
        rows, cols = todo.shape
        for ty, tx in zip(*np.nonzero(todo), strict=True):
            if not todo[ty, tx]:
                continue
            tw = 1
            while tx + tw < cols and tw < max_side and todo[ty, tx + tw]:
                tw += 1
            th = 1
            while ty + th < rows and th < max_side and todo[ty + th, tx:tx + tw].all():
                th += 1
            todo[ty:ty + th, tx:tx + tw] = False
            rects.append(TileRect(int(tx), int(ty), tw, th))
        fx, fy = focus if focus is not None else (0, 0)

        def priority(r: TileRect) -> tuple[bool, int]:
            in_image = images is not None and bool(images[r.slices].any())
            if focus is None:
                return (not in_image, 0)
            dx = max(r.tx - fx, 0, fx - (r.tx + r.tw - 1))
            dy = max(r.ty - fy, 0, fy - (r.ty + r.th - 1))
            return (not in_image, dx * dx + dy * dy)

        rects.sort(key=priority)  # stable: row-major order among equals
        return rects

    def mark_queued(self, rect: TileRect) -> npt.NDArray[np.int64]:
        """The rectangle will be encoded now; returns the generations it is encoded from."""
        self.state[rect.slices] = TileState.QUEUED
        return self.generation[rect.slices].copy()

    def mark_sent(self, rect: TileRect, generations: npt.NDArray[np.int64]) -> None:
        """The rectangle's last byte went to the channel (tiles changed meanwhile stay lossy)."""
        current = self.generation[rect.slices] == generations
        self.state[rect.slices][current] = TileState.SENT

    def acknowledge(self, rect: TileRect, generations: npt.NDArray[np.int64], exact: bool) -> int:
        """The client drew the rectangle; ``exact`` says whether its hash matched.

        Tiles unchanged since encoding become VERIFIED (or LOSSY again, to be resent, when the
        hash did not match); tiles that changed meanwhile are already LOSSY and stay so.
        Returns how many tiles became verified.
        """
        current = self.generation[rect.slices] == generations
        states = self.state[rect.slices]
        if exact:
            states[current] = TileState.VERIFIED
            return int(current.sum())
        states[current] = TileState.LOSSY
        return 0

    def counts(self) -> BoardCounts:
        """Tiles per state."""
        values = np.bincount(self.state.ravel(), minlength=4)
        return BoardCounts(*(int(values[s]) for s in TileState))

    @property
    def all_verified(self) -> bool:
        """Every tile is exact on the client."""
        return bool((self.state == TileState.VERIFIED).all())
