"""The Python client's side of hostile server input: tile chunks (Reassembler), dirty maps,
the compositor's tiles and desktop size, and the viewer's message handlers. Only ProtocolError
(or a counted drop / a nack) comes out, and memory stays bounded."""

from __future__ import annotations

import json
import math
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hdx.client.compositor import MAX_PIXELS, Compositor
from hdx.client.viewer import Viewer
from hdx.errors import ProtocolError
from hdx.lossless import codec
from hdx.lossless.protocol import (
    HEADER,
    MAX_TILE_PAYLOAD,
    Reassembler,
    TileHeader,
    TileMessage,
    chunk_tile,
    pack_dirty,
    unpack_dirty,
)
from tests.fuzz.common import (
    ANY_CHAR,
    NUMBERS,
    WIRE_CHAR,
    LoopThread,
    examples,
    json_values,
    loop_thread,
    nested,
)

pytestmark = pytest.mark.fuzz
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)


# -- Reassembler -----------------------------------------------------------------------------------
@st.composite
def tiles(draw: st.DrawFn) -> tuple[TileHeader, bytes]:
    payload = draw(st.binary(max_size=300))
    header = TileHeader(draw(st.integers(0, 3)), draw(U16), draw(U16), draw(st.integers(1, 512)),
                        draw(st.integers(1, 512)), draw(U32), draw(st.integers(0, 6)),
                        draw(st.sampled_from([8, 16])), draw(st.sampled_from([1, 3])),
                        len(payload))
    return header, payload


OPS = st.sampled_from(["keep", "keep", "keep", "header byte", "payload byte", "truncate",
                       "append", "duplicate", "swap", "drop", "random", "claim length",
                       "claim count", "claim index"])


@st.composite
def chunk_streams(draw: st.DrawFn) -> tuple[list[bytes], bool, dict[TileHeader, bytes]]:
    """Chunks of a few tiles (ids may collide with other geometry), interleaved and mangled;
    whether anything was mangled; each original header's payload."""
    originals = draw(st.lists(tiles(), min_size=1, max_size=4, unique_by=lambda t: t[0]))
    size = draw(st.integers(HEADER.size + 1, HEADER.size + 200))
    queues = [chunk_tile(h, p, size) for h, p in originals]
    stream: list[bytes] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        stream.append(queue.pop(0))
    mangled = False
    for _ in range(draw(st.integers(0, 8))):
        if not stream:
            break
        at = draw(st.integers(0, len(stream) - 1))
        op = draw(OPS)
        chunk = bytearray(stream[at])
        if op == "header byte" and chunk:
            chunk[draw(st.integers(0, min(len(chunk), HEADER.size) - 1))] = draw(
                st.integers(0, 255))
        elif op == "payload byte" and len(chunk) > HEADER.size:
            chunk[draw(st.integers(HEADER.size, len(chunk) - 1))] ^= 0xFF
        elif op == "truncate":
            del chunk[draw(st.integers(0, len(chunk))):]
        elif op == "append":
            chunk += draw(st.binary(min_size=1, max_size=300))
        elif op == "duplicate":
            stream.insert(at, bytes(chunk))
        elif op == "swap" and at + 1 < len(stream):
            stream[at], stream[at + 1] = stream[at + 1], stream[at]
            continue
        elif op == "drop":
            del stream[at]
            continue
        elif op == "random":
            chunk = bytearray(draw(st.binary(max_size=80)))
        elif op == "claim length":
            chunk[28:32] = struct.pack(">I", draw(st.sampled_from(
                [0, 1, MAX_TILE_PAYLOAD, MAX_TILE_PAYLOAD + 1, 0xFFFFFFFF]) | U32))
        elif op == "claim count":
            chunk[10:12] = struct.pack(">H", draw(U16))
        elif op == "claim index":
            chunk[8:10] = struct.pack(">H", draw(U16))
        mangled |= op not in ("keep", "duplicate", "swap", "drop")
        stream[at] = bytes(chunk)
    return stream, mangled, dict(originals)


_ONE_CHUNK = chunk_tile(TileHeader(0, 0, 0, 1, 1, 0, 0, 8, 1, 0), b"", 64)


@settings(max_examples=examples(200))
@given(chunk_streams(), st.integers(0, 8), st.integers(1, 4096))
@example((_ONE_CHUNK, False, {TileHeader(0, 0, 0, 1, 1, 0, 0, 8, 1, 0): b""}), 0, 1)  # KeyError
def test_reassembler_survives_any_chunks(stream: tuple[list[bytes], bool, dict[TileHeader, bytes]],
                                         max_partial: int, max_bytes: int) -> None:
    chunks, mangled, originals = stream
    reassembler = Reassembler(max_partial=max_partial, max_bytes=max_bytes)
    for chunk in chunks:
        try:
            tile = reassembler.add(chunk)
        except ProtocolError:
            tile = None
        assert len(reassembler._partial) <= max(max_partial, 1)
        assert reassembler._held() <= max_bytes
        if tile is None:
            continue
        assert len(tile.payload) == tile.header.length
        if not mangled:  # reordered, duplicated or dropped chunks never splice two tiles
            assert tile.payload == originals[tile.header], "spliced or corrupted tile"


# -- dirty maps ------------------------------------------------------------------------------------
GRID = st.one_of(st.integers(-3, 40), st.sampled_from([1024, 1025, 2**31, 10**30, -10**30]))


@settings(max_examples=examples(300))
@given(st.one_of(st.text(ANY_CHAR, max_size=300), st.binary(max_size=200).map(
    lambda b: __import__("base64").b64encode(b).decode())), GRID, GRID)
@example("", 0, 0)
@example("gA==", -1, -8)
@example("A" * 200_000, 1024, 1024)
def test_unpack_dirty_gives_a_grid_or_protocol_error(text: str, rows: int, cols: int) -> None:
    try:
        mask = unpack_dirty(text, rows, cols)
    except ProtocolError:
        return
    assert mask.shape == (rows, cols) and mask.dtype == np.bool_


@settings(max_examples=examples(100))
@given(st.integers(1, 1024), st.integers(1, 1024), st.integers(0, 2**32 - 1))
def test_dirty_maps_round_trip(rows: int, cols: int, seed: int) -> None:
    mask = np.random.default_rng(seed).random((rows, cols)) < 0.3
    assert np.array_equal(unpack_dirty(pack_dirty(mask), rows, cols), mask)


# -- the compositor --------------------------------------------------------------------------------
def png_claiming(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header says ``width`` x ``height`` RGB; its data is tiny unless given."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    idat = idat if idat is not None else zlib.compress(b"\0" * (1 + width * 3 if width < 4096
                                                                 else 64))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@cache
def deflate_bomb(side: int = 4096) -> bytes:
    """A valid black ``side`` x ``side`` RGB PNG: ~50 KB that inflate to 48 MB."""
    packer = zlib.compressobj(9)
    row = b"\0" * (1 + side * 3)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return png_claiming(side, side, idat)


DESKTOP = 128
MEMORY_BOUND = 16 << 20
"""A 128x128 desktop's tiles need well under 1 MB; a decoder that believes a payload's own
size claims allocates tens of MB (the 48 MB bomb) or gigabytes."""


@cache
def _encodings() -> list[tuple[int, bytes]]:
    rng = np.random.default_rng(5)
    out = []
    for h, w in [(64, 64), (32, 64), (128, 128), (65, 3)]:
        rgb = rng.integers(0, 256, (h, w, 3), np.uint8)
        out.append((int(codec.TileFormat.PNG), bytes(codec.imagecodecs.png_encode(rgb))))
        out.append((int(codec.TileFormat.JXL),
                    bytes(codec.imagecodecs.jpegxl_encode(rgb, lossless=True, effort=1))))
        grey = codec.encode_grey16(rng.integers(0, 50, (h, w), np.uint16))
        out.append((int(grey.fmt), grey.payload))
        zstd = codec.encode_bgra(np.dstack([rgb, np.full((h, w), 255, np.uint8)]),
                                 frozenset(codec.TileFormat))
        out.append((int(zstd.fmt), zstd.payload))
    return out


PAYLOADS = st.one_of(
    st.binary(max_size=300).map(lambda b: (None, b)),
    st.sampled_from(range(16)).map(lambda i: _encodings()[i]),
    st.tuples(st.sampled_from([64, 4096, 65535, 100_000, 2**31 - 1]),
              st.sampled_from([64, 4096, 65535, 100_000, 2**31 - 1])).map(
        lambda wh: (int(codec.TileFormat.PNG), png_claiming(*wh))),
    st.tuples(st.sampled_from([int(codec.TileFormat.RAW), int(codec.TileFormat.ZSTD)]), U16, U16,
              st.binary(max_size=64)).map(
        lambda t: (t[0], struct.pack(">HH", t[1], t[2]) + t[3])),
)


@st.composite
def hostile_tiles(draw: st.DrawFn) -> TileMessage:
    fmt, payload = draw(PAYLOADS)
    if fmt is None or draw(st.integers(0, 4)) == 0:
        fmt = draw(st.integers(0, 7))
    on_grid = st.sampled_from([0, 64])
    header = TileHeader(draw(U32), draw(on_grid | U16), draw(on_grid | U16),
                        draw(st.sampled_from([64, 32, 3, 128]) | U16),
                        draw(st.sampled_from([64, 65, 128]) | U16), 10, fmt,
                        draw(st.sampled_from([8, 16])), draw(st.sampled_from([1, 3])),
                        len(payload))
    return TileMessage(header, payload)


def _compositor(bits: int) -> Compositor:
    comp = Compositor(DESKTOP, DESKTOP, bits)
    comp.set_origin(0)
    comp.announce(10, np.ones((2, 2), np.bool_))
    assert comp.show_video(10, np.zeros((DESKTOP, DESKTOP, 3), np.uint8)) == 10
    return comp


def _bomb_tile() -> TileMessage:
    payload = deflate_bomb()
    return TileMessage(TileHeader(1, 0, 0, 64, 64, 10, int(codec.TileFormat.PNG), 8, 3,
                                  len(payload)), payload)


def _claiming_tile(width: int, height: int) -> TileMessage:
    payload = png_claiming(width, height)
    return TileMessage(TileHeader(2, 0, 0, 64, 64, 10, int(codec.TileFormat.PNG), 8, 3,
                                  len(payload)), payload)


@settings(max_examples=examples(250))
@given(hostile_tiles(), st.sampled_from([8, 16]))
@example(_bomb_tile(), 8)
@example(_claiming_tile(100_000, 100_000), 8)
@example(_claiming_tile(65535, 65535), 8)
@example(_claiming_tile(2**31 - 1, 2**31 - 1), 8)
def test_hostile_tiles_get_a_nack_and_bounded_memory(message: TileMessage, bits: int) -> None:
    comp = _compositor(bits)
    tracemalloc.start()
    try:
        reply = comp.add_tile(message)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"add_tile allocated {peak >> 20} MB for {message.header}"
    assert reply["id"] == message.header.tile_id
    if reply["t"] == "ack":
        h = message.header
        assert len(reply["hash"]) == 64 and h.x + h.w <= DESKTOP and h.y + h.h <= DESKTOP
    else:
        assert reply == {"t": "nack", "id": message.header.tile_id,
                         "reason": reply["reason"]} and reply["reason"] in ("size", "stale",
                                                                            "decode")


def test_a_tile_that_matches_its_header_is_still_drawn() -> None:
    """The bound refuses lies only: every honest encoding of a 64x64 tile is acked."""
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (64, 64, 3), np.uint8)
    bgra = np.dstack([rgb[..., ::-1], np.full((64, 64), 255, np.uint8)])
    for formats in (frozenset({codec.TileFormat.JXL}), frozenset({codec.TileFormat.ZSTD}),
                    codec.ALWAYS_DECODABLE):
        tile = codec.encode_bgra(bgra, formats | codec.ALWAYS_DECODABLE)
        reply = _compositor(8).add_tile(TileMessage(TileHeader(
            3, 64, 0, 64, 64, 10, int(tile.fmt), 8, tile.channels, len(tile.payload)),
            tile.payload))
        assert reply["t"] == "ack", (tile.fmt, reply)
    for grey16 in (codec.encode_grey16(rng.integers(0, 40, (64, 64), np.uint16)),
                   codec.encode_grey16(rng.integers(0, 65536, (64, 64), np.uint16))):
        reply = _compositor(16).add_tile(TileMessage(TileHeader(
            4, 0, 64, 64, 64, 10, int(grey16.fmt), 16, 1, len(grey16.payload)), grey16.payload))
        assert reply["t"] == "ack", (grey16.fmt, reply)


@settings(max_examples=examples(200))
@given(st.integers(-5, 70_000) | st.sampled_from([2**31, 10**12]),
       st.integers(-5, 70_000) | st.sampled_from([2**31, 10**12]),
       st.integers(-1, 17) | st.just(2**40), st.integers(-1, 2000) | st.just(0))
@example(100_000, 100_000, 8, 64)
@example(65535, 65535, 8, 64)
@example(64, 64, 8, 0)
def test_a_hostile_desktop_size_is_refused(width: int, height: int, bits: int,
                                           tile: int) -> None:
    try:
        comp = Compositor(width, height, bits, tile)
    except ProtocolError:
        return
    assert comp.width * comp.height <= MAX_PIXELS and comp.rows * comp.cols <= MAX_PIXELS


# -- the viewer's handlers -------------------------------------------------------------------------
class FakeChannel:
    """Stands in for the viewer's control channel: open, and counts what it would send."""

    readyState = "open"

    def __init__(self) -> None:
        self.sent = 0
        self.last: Any = None

    def send(self, data: str) -> None:
        self.sent += 1
        self.last = json.loads(data)


@pytest.fixture(scope="module")
def viewer_loop() -> Iterator[tuple[LoopThread, Viewer]]:
    with loop_thread() as thread:
        viewer = thread.call(lambda: Viewer("http://127.0.0.1:9/"))
        viewer.control = FakeChannel()
        try:
            yield thread, viewer
        finally:
            thread.run(viewer.close())


def _hello(width: Any = DESKTOP, height: Any = DESKTOP, **extra: Any) -> str:
    return json.dumps({"t": "hello", "lossless": True, "width": width, "height": height,
                       "encoder": "libx264", "session": "0" * 16, **extra})


FIELD_VALUES = st.one_of(json_values(4), NUMBERS, st.sampled_from(
    [DESKTOP, 0, -1, 2**32, 8, 16, 64, "gA==", "", True, None, [1], {"a": 1}]))
SERVER_TYPES = st.sampled_from(["hello", "frame", "verified", "origin", "fidelity", "bye",
                                "floor", "refused", "pong", "cursor", "frame", "frame", "x"])
SERVER_FIELDS = st.sampled_from(["lossless", "width", "height", "bits", "tile", "pts", "dirty",
                                 "rows", "cols", "id", "tiles", "origin", "exact", "reason",
                                 "holder", "what", "png", "key", "ts"])


@st.composite
def server_messages(draw: st.DrawFn) -> str | bytes:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.binary(max_size=200))
    if shape == 1:
        return draw(st.text(WIRE_CHAR, max_size=200))
    if shape == 2:
        return json.dumps(draw(json_values(10)))
    if shape == 3:
        return draw(st.sampled_from(["[", "{"])) and nested(draw(st.integers(1, 5000)))
    if shape == 4:  # a plausible frame announcement with a dirty map of any grid
        rows, cols = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        mask = np.ones((max(rows, 1), max(cols, 1)), np.bool_)
        return json.dumps({"t": "frame", "pts": draw(U32 | NUMBERS), "key": False,
                           "dirty": pack_dirty(mask) if draw(st.booleans())
                           else draw(st.text(max_size=20)), "rows": rows, "cols": cols})
    if shape == 5:  # a hello the compositor can take: then frames and tiles find one
        return _hello(draw(st.integers(1, 300)), draw(st.integers(1, 300)),
                      bits=draw(st.sampled_from([8, 16])))
    message: dict[str, Any] = {"t": draw(SERVER_TYPES)}
    for _ in range(draw(st.integers(0, 6))):
        message[draw(SERVER_FIELDS)] = draw(FIELD_VALUES)
    return json.dumps(message)


KNOWN_INT_FIELDS = {"frame": ("pts", "rows", "cols"), "verified": ("id", "tiles"),
                    "origin": ("origin",)}


def known_viewer_bug(data: str | bytes) -> str | None:
    """Which reported, not yet fixed hdx/client/viewer.py bug ``data`` trips (see
    test_known_viewer_bugs), or None. viewer.py belongs to another part of the project."""
    try:
        message = json.loads(data)
    except RecursionError:
        return "V1: json.loads' RecursionError is not caught"
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("t")
    if kind == "hello" and message.get("lossless"):
        try:
            Compositor(int(message["width"]), int(message["height"]),
                       int(message.get("bits", 8)), int(message.get("tile", 64)))
        except Exception:
            return "V2: a lossless hello is read outside the try"
    if any(isinstance(message.get(name), float) and math.isinf(message[name])
           for name in KNOWN_INT_FIELDS.get(kind, ())):  # type: ignore[arg-type]
        return "V3: int(Infinity) raises OverflowError, which is not caught"
    return None


def _deliver(viewer: Viewer, data: str | bytes, tiles: bool = False) -> BaseException | None:
    try:
        (viewer._on_tile_message if tiles else viewer._on_message)(data)
    except Exception as exc:
        return exc
    return None


def _check_bounded(viewer: Viewer) -> None:
    report = viewer.report
    assert len(report.messages) <= 100 and len(report.refusals) <= 16
    comp = viewer.compositor
    if comp is not None:
        assert comp.width * comp.height <= MAX_PIXELS and len(comp._pending) <= 1024
    assert len(viewer._reassembler._partial) <= viewer._reassembler.max_partial


@settings(max_examples=examples(300))
@given(server_messages())
@example(_hello(100_000, 100_000))
@example(json.dumps({"t": "frame", "pts": 1, "dirty": "A" * 5000, "rows": 1024, "cols": 1024}))
@example('{"t": "origin", "origin": 1e400}')
@example(nested(100_000))
def test_hostile_server_messages_are_dropped(viewer_loop: tuple[LoopThread, Viewer],
                                             data: str | bytes) -> None:
    thread, viewer = viewer_loop
    error = thread.call(lambda: _deliver(viewer, data))
    if error is not None:
        assert known_viewer_bug(data), f"{type(error).__name__}: {error} from {data[:200]!r}"
    thread.call(lambda: _check_bounded(viewer))


@settings(max_examples=examples(150))
@given(st.one_of(chunk_streams().map(lambda s: s[0]), st.lists(st.binary(max_size=100),
                                                                max_size=4),
                 st.lists(st.text(WIRE_CHAR, max_size=60), max_size=3)))
def test_hostile_tile_messages_are_counted(viewer_loop: tuple[LoopThread, Viewer],
                                           messages: list[str | bytes]) -> None:
    thread, viewer = viewer_loop
    thread.call(lambda: viewer._on_message(_hello()))  # a compositor to draw on
    control: FakeChannel = viewer.control
    for data in messages:
        before = (viewer.report.malformed_tiles, control.sent)
        error = thread.call(lambda d=data: _deliver(viewer, d, tiles=True))  # type: ignore[misc]
        assert error is None, f"{type(error).__name__}: {error}"
        after = (viewer.report.malformed_tiles, control.sent)
        assert after >= before
        if control.sent > before[1]:  # a complete tile: answered with an ack or a nack
            assert control.last["t"] in ("ack", "nack")
    thread.call(lambda: _check_bounded(viewer))


@pytest.mark.parametrize("data", [
    nested(100_000),  # V1
    _hello(100_000, 100_000), _hello("wide", 64), _hello(64, 64, tile=0),
    '{"t": "hello", "lossless": true}',  # V2
    '{"t": "origin", "origin": Infinity}', '{"t": "verified", "id": 1e400, "tiles": 1}',  # V3
], ids=["V1-deep", "V2-huge", "V2-text-width", "V2-tile-0", "V2-no-width", "V3-origin",
        "V3-verified"])
def test_hostile_server_messages_are_counted_not_raised(
        viewer_loop: tuple[LoopThread, Viewer], data: str) -> None:
    """Once bugs V1-V3: each of these raised out of _on_message, which pyee re-raises into
    aiortc's SCTP receive path."""
    thread, viewer = viewer_loop
    thread.call(lambda: viewer._on_message(_hello()))  # (verified is read with a compositor)
    before = viewer.report.malformed_tiles
    assert thread.call(lambda: _deliver(viewer, data)) is None
    if not data.startswith("[["):  # deep nesting is not JSON to the viewer: ignored
        assert viewer.report.malformed_tiles == before + 1
