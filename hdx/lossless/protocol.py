"""The ``tiles`` data channel's binary messages, and the dirty-tile bitmaps of frame
announcements. One module packs and parses both, so server, Python client and fuzz tests agree
(the browser's twin is hdx/web/tiles.js; the format is in docs/protocol.md).

A tile is split into chunks that each fit the peer's maximum message size. Every chunk carries
the full header (32 bytes), so a client can check each one against the first and a lost or
forged chunk cannot splice two tiles together.
"""

from __future__ import annotations

import base64
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hdx.errors import ProtocolError

MAGIC = b"HT"
VERSION = 1
KIND_TILE = 1
HEADER = struct.Struct(">2sBBIHHHHHHIBBBxI")
"""magic, version, kind, tile id, chunk index, chunk count, x, y, w, h, base pts, format,
bits, channels, (pad), payload length: 32 bytes, big-endian."""
MAX_TILE_PAYLOAD = 64 << 20
"""No tile rectangle, however incompressible, needs more (512x512 x 3 x 2 bytes is 1.5 MiB)."""


@dataclass(frozen=True, slots=True)
class TileHeader:
    """Where a tile goes, which frame's content it holds, and how it is coded."""

    tile_id: int
    x: int
    y: int
    w: int
    h: int
    base_pts: int
    """The video frame (RTP time minus origin) whose content this tile is exact for."""
    fmt: int
    bits: int
    channels: int
    length: int


@dataclass(frozen=True, slots=True)
class TileMessage:
    """A complete tile: header and payload."""

    header: TileHeader
    payload: bytes


def chunk_tile(header: TileHeader, payload: bytes, max_message: int) -> list[bytes]:
    """Split a tile into messages of at most ``max_message`` bytes."""
    room = max_message - HEADER.size
    if room <= 0:
        raise ValueError(f"max message size {max_message} leaves no room for a payload")
    count = max(1, -(-len(payload) // room))
    if count > 0xFFFF:
        raise ValueError("tile payload needs too many chunks")
    out = []
    for index in range(count):
        head = HEADER.pack(MAGIC, VERSION, KIND_TILE, header.tile_id, index, count,
                           header.x, header.y, header.w, header.h, header.base_pts & 0xFFFFFFFF,
                           header.fmt, header.bits, header.channels, len(payload))
        out.append(head + payload[index * room:(index + 1) * room])
    return out


def parse_chunk(data: bytes) -> tuple[TileHeader, int, int, bytes]:
    """``(header, chunk index, chunk count, piece)``; ProtocolError if malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("tile messages are binary")
    if len(data) < HEADER.size:
        raise ProtocolError(f"tile message of {len(data)} bytes is shorter than its header")
    (magic, version, kind, tile_id, index, count, x, y, w, h, base, fmt, bits, channels,
     length) = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or kind != KIND_TILE:
        raise ProtocolError("not an hdx tile message (magic, version or kind)")
    if count == 0 or index >= count:
        raise ProtocolError(f"chunk {index} of {count}")
    if w == 0 or h == 0 or bits not in (8, 16) or channels not in (1, 3):
        raise ProtocolError(f"bad tile geometry or depth ({w}x{h}, {bits} bits, {channels} ch)")
    if length > MAX_TILE_PAYLOAD:
        raise ProtocolError(f"tile payload of {length} bytes is over the limit")
    header = TileHeader(tile_id, x, y, w, h, base, fmt, bits, channels, length)
    return header, index, count, bytes(data[HEADER.size:])


@dataclass(slots=True)
class _Partial:
    header: TileHeader
    count: int
    pieces: dict[int, bytes]
    size: int = 0


class Reassembler:
    """Collects chunks into tiles, with bounded memory.

    Chunks of one tile arrive in order on the ordered channel, but a client must survive a
    server (or attacker) that sends them otherwise: duplicates, chunks whose header disagrees
    with the tile's first chunk, or totals that do not add up are errors; at most
    ``max_partial`` tiles are held incomplete (the oldest is dropped) and at most
    ``max_bytes`` in all.
    """

    def __init__(self, max_partial: int = 8, max_bytes: int = 32 << 20) -> None:
        self.max_partial = max_partial
        self.max_bytes = max_bytes
        self._partial: OrderedDict[int, _Partial] = OrderedDict()
        self.dropped = 0

    def add(self, data: bytes) -> TileMessage | None:
        """Feed one message; returns the tile when it is complete. Raises ProtocolError."""
        header, index, count, piece = parse_chunk(data)
        partial = self._partial.get(header.tile_id)
        if partial is None:
            partial = _Partial(header, count, {})
            self._partial[header.tile_id] = partial
            while len(self._partial) > self.max_partial:
                self._partial.popitem(last=False)
                self.dropped += 1
        elif partial.header != header or partial.count != count:
            del self._partial[header.tile_id]
            raise ProtocolError(f"chunk {index} of tile {header.tile_id} disagrees with its "
                                "first chunk")
        if index in partial.pieces:
            raise ProtocolError(f"duplicate chunk {index} of tile {header.tile_id}")
        partial.pieces[index] = piece
        partial.size += len(piece)
        if partial.size > header.length or self._held() > self.max_bytes:
            self._partial.pop(header.tile_id, None)  # (not held at all when max_partial is 0)
            raise ProtocolError(f"tile {header.tile_id} is larger than it said or memory is "
                                "exhausted")
        if len(partial.pieces) < count:
            return None
        self._partial.pop(header.tile_id, None)
        payload = b"".join(partial.pieces[i] for i in range(count))
        if len(payload) != header.length:
            raise ProtocolError(f"tile {header.tile_id} has {len(payload)} of "
                                f"{header.length} bytes")
        return TileMessage(header, payload)

    def _held(self) -> int:
        return sum(p.size for p in self._partial.values())


def pack_dirty(mask: npt.NDArray[np.bool_]) -> str:
    """A tile change map as base64 of its row-major bits (most significant bit first)."""
    return base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii")


_MAX_GRID = 1024
"""Tiles per side a dirty map may claim (65,536 px of 64-px tiles)."""


def unpack_dirty(text: str, rows: int, cols: int) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`pack_dirty`; ProtocolError if it does not fit the grid."""
    if not (0 < rows <= _MAX_GRID and 0 < cols <= _MAX_GRID):
        raise ProtocolError(f"dirty map grid {cols}x{rows} is out of range")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError("dirty map is not base64") from None
    if len(raw) != -(-(rows * cols) // 8):
        raise ProtocolError(f"dirty map of {len(raw)} bytes does not fit {cols}x{rows} tiles")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))[:rows * cols]
    return bits.reshape(rows, cols).astype(np.bool_)
