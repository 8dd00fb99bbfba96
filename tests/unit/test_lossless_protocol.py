"""Tile chunking and reassembly: exact, bounded, and hostile-input safe."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hdx.errors import ProtocolError
from hdx.lossless.protocol import (
    HEADER,
    Reassembler,
    TileHeader,
    chunk_tile,
    pack_dirty,
    parse_chunk,
    unpack_dirty,
)

pytestmark = pytest.mark.unit


def header(tile_id: int, length: int) -> TileHeader:
    return TileHeader(tile_id, 64, 128, 512, 256, 123456, 3, 16, 1, length)


@pytest.mark.parametrize("size", [0, 1, 1000, 65536 - 32, 65536 - 31, 1_000_003])
def test_chunks_fit_the_message_limit_and_reassemble(size: int) -> None:
    payload = random.Random(size).randbytes(size)
    chunks = chunk_tile(header(9, size), payload, 65536)
    assert all(len(c) <= 65536 for c in chunks)
    assert len(chunks) == max(1, -(-size // (65536 - HEADER.size)))
    reassembler = Reassembler()
    results = [reassembler.add(c) for c in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    tile = results[-1]
    assert tile is not None and tile.payload == payload and tile.header == header(9, size)


def test_interleaved_tiles_reassemble_independently() -> None:
    a, b = b"a" * 300, b"b" * 500
    ca, cb = chunk_tile(header(1, 300), a, 132), chunk_tile(header(2, 500), b, 132)
    reassembler = Reassembler()
    done = [t for pair in zip(ca, cb, strict=False) for t in map(reassembler.add, pair) if t]
    done += [t for t in map(reassembler.add, cb[len(ca):]) if t]
    assert {t.header.tile_id: t.payload for t in done} == {1: a, 2: b}


def test_duplicate_and_disagreeing_chunks_are_errors() -> None:
    chunks = chunk_tile(header(5, 300), b"x" * 300, 132)
    reassembler = Reassembler()
    reassembler.add(chunks[0])
    with pytest.raises(ProtocolError, match="duplicate"):
        reassembler.add(chunks[0])
    other = chunk_tile(TileHeader(5, 0, 0, 64, 64, 1, 3, 8, 1, 300), b"y" * 300, 132)
    reassembler = Reassembler()
    reassembler.add(chunks[0])
    with pytest.raises(ProtocolError, match="disagrees"):
        reassembler.add(other[1])


def test_incomplete_tiles_are_bounded() -> None:
    reassembler = Reassembler(max_partial=4)
    for tile_id in range(100):
        assert reassembler.add(chunk_tile(header(tile_id, 300), b"z" * 300, 132)[0]) is None
    assert len(reassembler._partial) == 4 and reassembler.dropped == 96


def test_a_tile_longer_than_declared_is_refused() -> None:
    chunks = chunk_tile(header(3, 10), b"0123456789", 64)
    forged = bytearray(chunks[0])
    forged += b"extra"
    with pytest.raises(ProtocolError, match="larger"):
        Reassembler().add(bytes(forged))


def test_random_bytes_never_escape_as_anything_but_protocol_errors() -> None:
    rng = random.Random(1)
    good = chunk_tile(header(1, 2000), rng.randbytes(2000), 300)
    reassembler = Reassembler()
    for i in range(3000):
        if i % 3 == 0:
            data = rng.randbytes(rng.randrange(0, 80))
        else:  # mangle a valid chunk
            data = bytearray(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        try:
            reassembler.add(data)
        except ProtocolError:
            pass
    assert len(reassembler._partial) <= reassembler.max_partial


def test_parse_rejects_bad_magic_geometry_and_depth() -> None:
    good = chunk_tile(header(1, 4), b"abcd", 100)[0]
    for offset, value, reason in [(0, 0, "magic"), (17, 0, "geometry"), (25, 12, "depth"),
                                  (26, 2, "geometry")]:
        bad = bytearray(good)
        bad[offset] = value
        if offset == 17:
            bad[16] = 0
        with pytest.raises(ProtocolError, match=reason):
            parse_chunk(bytes(bad))


def test_dirty_maps_round_trip_and_check_their_size() -> None:
    rng = np.random.default_rng(2)
    for rows, cols in [(1, 1), (17, 30), (34, 60), (3, 5)]:
        mask = rng.random((rows, cols)) < 0.3
        assert np.array_equal(unpack_dirty(pack_dirty(mask), rows, cols), mask)
    with pytest.raises(ProtocolError, match="does not fit"):
        unpack_dirty(pack_dirty(np.ones((4, 4), np.bool_)), 8, 8)
    with pytest.raises(ProtocolError, match="base64"):
        unpack_dirty("!!!", 1, 1)
