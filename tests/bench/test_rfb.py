"""The RFB client of the VNC peer: pixel-exact against a real x11vnc on a real Xvfb in every
encoding (also incremental updates through the persistent zlib streams), ZRLE tiles of every
subencoding against an encoder written here from the RFB spec, RfbError (never a hang) from
hostile servers, and one small ``vnc_peer.measure`` run where both peers end pixel-exact."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from hdx.bench import vnc_peer
from hdx.bench.rfb import RfbClient, RfbError, decode_zrle
from hdx.bench.vnc_peer import paint, static_ct_screen, x_screen
from tests.x11.xservers import XServer, x_server

WIDTH, HEIGHT = 320, 240


def require_vnc() -> None:
    """Skip without x11vnc, unless the X tier is required (then fail)."""
    if shutil.which("x11vnc") is None:
        if os.environ.get("HDXTEST_REQUIRE_X") == "1":
            pytest.fail("the VNC peer tests need x11vnc (the test command installs it)")
        pytest.skip("x11vnc is not installed")


def content(seed: int = 0) -> np.ndarray:
    """The static CT screen plus noise (ZRLE raw tiles) and a few flat colours (packed
    palettes, RLE), so a full update exercises most subencodings."""
    screen = static_ct_screen(WIDTH, HEIGHT)
    rng = np.random.default_rng(seed)
    screen[10:60, 250:314, :3] = rng.integers(0, 256, (50, 64, 3), dtype=np.uint8)
    stripes = np.array([(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (9, 9, 9)],
                       np.uint8)
    screen[180:236, 0:130, :3] = stripes[(np.arange(130)[None, :] // 7
                                          + np.arange(56)[:, None] // 5) % len(stripes)]
    return screen


@pytest.fixture(scope="module")
def vnc_display() -> Iterator[tuple[XServer, int]]:
    require_vnc()
    with x_server("xvfb", f"{WIDTH}x{HEIGHT}", 24) as server:
        paint(server.display, content())
        with vnc_peer.x11vnc_server(server.display) as (port, _version):
            yield server, port


def read_until(client: RfbClient, expected: np.ndarray, timeout_s: float = 20.0) -> int:
    """Read updates (asking incrementally) until the framebuffer equals ``expected``; the
    number of updates it took. Fails with the mismatch when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    for updates in range(1, 1000):
        client.read_update(max(0.1, deadline - time.monotonic()))
        if np.array_equal(client.framebuffer[..., :3], expected[..., :3]):
            return updates
        if time.monotonic() > deadline:
            break
        client.request_update(incremental=True)
    differ = np.any(client.framebuffer[..., :3] != expected[..., :3], axis=2)
    raise AssertionError(f"{int(differ.sum())} pixels still differ")


@pytest.mark.x11
@pytest.mark.parametrize("encoding", ["raw", "zlib", "zrle"])
def test_client_ends_byte_exact_then_follows_a_change(vnc_display: tuple[XServer, int],
                                                     encoding: str) -> None:
    server, port = vnc_display
    paint(server.display, content())
    expected = x_screen(server.display)
    assert np.array_equal(expected[..., :3], content()[..., :3])
    with RfbClient(timeout_s=10) as client:
        client.connect("127.0.0.1", port, [encoding])
        assert (client.version, client.width, client.height) == ("3.8", WIDTH, HEIGHT)
        client.request_update(incremental=False)
        read_until(client, expected)
        assert np.all(client.framebuffer[..., 3] == 255)
        assert client.handshake_bytes > 12
        assert client.bytes_received > client.handshake_bytes
        if encoding == "raw":
            assert client.bytes_received >= WIDTH * HEIGHT * 4
        # A change, sent incrementally: the second rectangle through the same zlib stream.
        changed = content(seed=1)
        changed[100:140, 60:200, :3] = 200 - changed[100:140, 60:200, :3]
        paint(server.display, changed)
        before = client.bytes_received
        client.request_update(incremental=True)
        read_until(client, x_screen(server.display))
        assert client.bytes_received > before
        assert client.clock.recv_s >= 0 and client.clock.decode_s > 0
    paint(server.display, content())


# -- ZRLE against an encoder written from the spec ---------------------------------------------
def _run_length(length: int) -> bytes:
    rest = length - 1
    return b"\xff" * (rest // 255) + bytes([rest % 255])


def _runs(flat: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of equal rows in ``flat`` (n, 3)."""
    change = np.flatnonzero(np.any(flat[1:] != flat[:-1], axis=1)) + 1
    starts = [0, *change.tolist()]
    ends = [*change.tolist(), len(flat)]
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


def encode_tile(tile: np.ndarray, kind: str) -> bytes:
    """One ZRLE tile of B, G, R pixels in the subencoding ``kind``."""
    th, tw = tile.shape[:2]
    flat = tile.reshape(-1, 3)
    colours, index = np.unique(flat, axis=0, return_inverse=True)
    index = index.reshape(-1)
    palette = colours.tobytes()
    if kind == "raw":
        return b"\x00" + flat.tobytes()
    if kind == "solid" or (len(colours) == 1 and kind != "raw"):
        assert len(colours) == 1
        return b"\x01" + palette
    if kind == "packed":
        assert 2 <= len(colours) <= 16
        bits = 1 if len(colours) == 2 else 2 if len(colours) <= 4 else 4
        rows = b""
        for row in index.reshape(th, tw):
            value, filled = 0, 0
            out = bytearray()
            for i in row:
                value, filled = (value << bits) | int(i), filled + bits
                if filled == 8:
                    out.append(value)
                    value, filled = 0, 0
            if filled:
                out.append(value << (8 - filled))
            rows += bytes(out)
        return bytes([len(colours)]) + palette + rows
    if kind == "plain_rle":
        return b"\x80" + b"".join(flat[s].tobytes() + _run_length(n) for s, n in _runs(flat))
    assert kind == "palette_rle" and 2 <= len(colours) <= 127
    body = b"".join(bytes([index[s]]) if n == 1 else bytes([128 | index[s]]) + _run_length(n)
                    for s, n in _runs(flat))
    return bytes([128 + len(colours)]) + palette + body


def encode_zrle(pixels: np.ndarray, kind: str) -> bytes:
    out = b""
    for ty in range(0, pixels.shape[0], 64):
        for tx in range(0, pixels.shape[1], 64):
            out += encode_tile(pixels[ty:ty + 64, tx:tx + 64], kind)
    return out


def few_colours(height: int, width: int, colours: int, seed: int, blocky: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
    if blocky:  # long runs, several over 255 pixels (255-byte length chains)
        index = (np.arange(height)[:, None] // 23 + np.arange(width)[None, :] // 300) % colours
        index[: height // 3] = 0
    else:
        index = rng.integers(0, colours, (height, width))
        index[::3] = index[::3, :1]  # some rows are single runs
    for i in range(colours):  # every colour in the first tile: the largest palette
        index[i // 64, i % 64] = i
    return palette[index]


@pytest.mark.parametrize(("kind", "colours"), [
    ("raw", 0), ("packed", 2), ("packed", 3), ("packed", 16), ("plain_rle", 9),
    ("palette_rle", 2), ("palette_rle", 127)])
@pytest.mark.parametrize("blocky", [False, True])
def test_zrle_tiles_decode_exactly(kind: str, colours: int, blocky: bool) -> None:
    height, width = 133, 150  # partial tiles on the right and bottom
    if kind == "raw":
        pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        pixels = few_colours(height, width, colours, 7, blocky)
    assert np.array_equal(decode_zrle(encode_zrle(pixels, kind), width, height), pixels)


def test_zrle_solid_tiles_and_a_4096_pixel_run() -> None:
    pixels = np.zeros((64, 128, 3), np.uint8)
    pixels[:, 64:] = (1, 2, 3)
    assert np.array_equal(decode_zrle(encode_zrle(pixels, "solid"), 128, 64), pixels)
    for kind in ("plain_rle", "palette_rle"):
        one = np.zeros((64, 64, 3), np.uint8)
        one[-1, -1] = 5  # a 4095-pixel run, then one pixel
        assert np.array_equal(decode_zrle(encode_tile(one, kind), 64, 64), one)


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x11" + b"\x00" * 100, "unknown ZRLE subencoding 17"),
    (b"\x00" + b"\x00" * 10, "ends inside a tile"),
    (b"\x01\x01\x02\x03\x00", "after its last tile"),
    (b"\x80\x01\x02\x03\xff\xff", "ends inside a tile"),
    (b"\x80\x01\x02\x03\x10", "ends inside a tile"),  # 17 of 64 pixels, then nothing
    (b"\x80\x01\x02\x03\x40", "beyond its tile"),     # one run of 65 in an 8x8 tile
    (b"\x82" + b"\x00" * 6 + b"\x85\x40", "beyond its tile"),
    (b"\x82" + b"\x00" * 6 + b"\x05" * 64, "beyond the 2-colour palette"),
    (b"\x82" + b"\x00" * 6 + b"\x81\xff", "ends inside a tile"),
    (b"\x02" + b"\x00" * 6 + b"\xff" * 7, "ends inside a tile"),
    (b"\x03" + b"\x00" * 9 + b"\xff" * 16, "beyond the 3-colour palette"),
])
def test_bad_zrle_is_an_rfb_error(data: bytes, reason: str) -> None:
    with pytest.raises(RfbError, match=reason):
        decode_zrle(data, 8, 8)


# -- hostile servers ---------------------------------------------------------------------------
@contextlib.contextmanager
def scripted_server(script: Callable[[socket.socket, threading.Event], None]
                    ) -> Iterator[int]:
    """A one-connection TCP server on loopback that runs ``script``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                script(conn, done)
                done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.close()
        thread.join(10)


def handshake(conn: socket.socket, width: int = 16, height: int = 8) -> None:
    """A well-behaved RFB 3.8 server up to ServerInit."""
    conn.sendall(b"RFB 003.008\n")
    conn.recv(12)
    conn.sendall(b"\x01\x01")
    conn.recv(1)
    conn.sendall(struct.pack(">I", 0))
    conn.recv(1)
    conn.sendall(struct.pack(">HH16sI", width, height, b"\x00" * 16, 4) + b"evil")


def update(*rects: bytes) -> bytes:
    return struct.pack(">BxH", 0, len(rects)) + b"".join(rects)


def rect(x: int, y: int, w: int, h: int, encoding: int, body: bytes = b"") -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding) + body


def zlib_body(payload: bytes, declared: int | None = None) -> bytes:
    packed = zlib.compress(payload)
    return struct.pack(">I", len(packed) if declared is None else declared) + packed


HOSTILE = {
    "not RFB": (lambda c, _d: c.sendall(b"HTTP/1.1 200\n"), "not an RFB server"),
    "version 4": (lambda c, _d: c.sendall(b"RFB 004.000\n"), "unsupported RFB version"),
    "refused": (lambda c, _d: (c.sendall(b"RFB 003.008\n"), c.recv(12),
                               c.sendall(b"\x00" + struct.pack(">I", 7) + b"go away")),
                "refused the connection: go away"),
    "password only": (lambda c, _d: (c.sendall(b"RFB 003.008\n"), c.recv(12),
                                     c.sendall(b"\x01\x02")), "only None"),
    "huge screen": (lambda c, _d: handshake(c, 60000, 60000), "60000x60000"),
    "huge name": (lambda c, _d: (c.sendall(b"RFB 003.003\n"), c.recv(12),
                                 c.sendall(struct.pack(">I", 1)), c.recv(1),
                                 c.sendall(struct.pack(">HH16sI", 8, 8, b"", 1 << 30))),
                  "name"),
}
"""Servers that go wrong before the first update: script, and what RfbError says."""

BAD_UPDATES = {
    "outside": (update(rect(10, 4, 8, 8, 0)), "outside the 16x8 framebuffer"),
    "truncated raw": (update(rect(0, 0, 16, 8, 0, b"\x00" * 100)), "closed the connection"),
    "unrequested encoding": (update(rect(0, 0, 4, 4, 7)), "encoding 7"),
    "unknown message": (b"\x09", "unknown server message type 9"),
    "zlib bomb": (update(rect(0, 0, 4, 4, 6, zlib_body(b"\x00" * 65536))), "inflate"),
    "zlib short": (update(rect(0, 0, 4, 4, 6, zlib_body(b"\x00" * 10))), "expected 64"),
    "zlib length": (update(rect(0, 0, 4, 4, 6, struct.pack(">I", 1 << 31))),
                    "compressed bytes"),
    "zlib garbage": (update(rect(0, 0, 4, 4, 6, struct.pack(">I", 5) + b"12345")),
                     "corrupt zlib"),
    "zrle garbage": (update(rect(0, 0, 4, 4, 16, zlib_body(b"\x33" * 20))),
                     "subencoding 51"),
    "copyrect source": (update(rect(0, 0, 4, 4, 1, struct.pack(">HH", 15, 0))),
                        "CopyRect source"),
    "huge cut text": (struct.pack(">B3xI", 3, 1 << 30), "cut text"),
    "empty rect bomb": (update(rect(0, 0, 0, 4, 6, zlib_body(b"\x00" * 65536))), "inflate"),
}
"""FramebufferUpdates (or other messages) a hostile server sends after a good handshake."""


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_handshake_is_an_rfb_error(name: str) -> None:
    script, reason = HOSTILE[name]
    with scripted_server(script) as port, RfbClient(timeout_s=5) as client, \
            pytest.raises(RfbError, match=reason):
        client.connect("127.0.0.1", port)


@pytest.mark.parametrize("name", list(BAD_UPDATES))
def test_hostile_update_is_an_rfb_error(name: str) -> None:
    message, reason = BAD_UPDATES[name]

    def script(conn: socket.socket, _done: threading.Event) -> None:
        handshake(conn)
        conn.sendall(message)
        conn.shutdown(socket.SHUT_WR)

    with scripted_server(script) as port, RfbClient(timeout_s=5) as client:
        client.connect("127.0.0.1", port, ["zrle", "zlib", "raw", "copyrect"])
        client.request_update(incremental=False)
        with pytest.raises(RfbError, match=reason):
            client.read_update()


def test_good_scripted_updates_decode() -> None:
    """The same scripted server, well-behaved: raw, zlib twice on one stream, CopyRect,
    a bell and cut text in between, and a DesktopSize change."""
    pixels = np.arange(16 * 8 * 4, dtype=np.uint32).astype(np.uint8).reshape(8, 16, 4)
    other = 255 - pixels
    stream = zlib.compressobj()
    first = stream.compress(other[:4, :4].tobytes()) + stream.flush(zlib.Z_SYNC_FLUSH)
    second = stream.compress(other[4:, 4:8].tobytes()) + stream.flush(zlib.Z_SYNC_FLUSH)

    def script(conn: socket.socket, _done: threading.Event) -> None:
        handshake(conn)
        conn.sendall(b"\x02" + struct.pack(">B3xI", 3, 5) + b"hello" + update(
            rect(0, 0, 16, 8, 0, pixels.tobytes()),
            rect(0, 0, 4, 4, 6, struct.pack(">I", len(first)) + first),
            rect(4, 4, 4, 4, 6, struct.pack(">I", len(second)) + second),
            rect(12, 4, 4, 4, 1, struct.pack(">HH", 4, 4))))
        conn.sendall(update(rect(0, 0, 32, 16, -223)))

    with scripted_server(script) as port, RfbClient(timeout_s=5) as client:
        client.connect("127.0.0.1", port, ["zlib", "copyrect", "raw", "desktopsize"])
        assert client.name == "evil"
        client.request_update(incremental=False)
        assert len(client.read_update()) == 4
        expected = pixels.copy()
        expected[:4, :4] = other[:4, :4]
        expected[4:, 4:8] = other[4:, 4:8]
        expected[4:, 12:16] = other[4:, 4:8]
        assert np.array_equal(client.framebuffer[..., :3], expected[..., :3])
        assert np.all(client.framebuffer[..., 3] == 255)
        client.read_update()
        assert client.framebuffer.shape == (16, 32, 4)


def test_silent_and_dripping_servers_time_out() -> None:
    with scripted_server(lambda _c, done: done.wait(10)) as port, \
            RfbClient(timeout_s=0.5) as client:
        started = time.monotonic()
        with pytest.raises(RfbError, match="sent nothing"):
            client.connect("127.0.0.1", port)
        assert time.monotonic() - started < 3

    def drip(conn: socket.socket, done: threading.Event) -> None:
        handshake(conn)
        for byte in update(rect(0, 0, 16, 8, 0, b"\x00" * 512)):
            if done.wait(0.1):
                return
            conn.sendall(bytes([byte]))

    with scripted_server(drip) as port, RfbClient(timeout_s=5) as client:
        client.connect("127.0.0.1", port, ["raw"])
        client.request_update(incremental=False)
        started = time.monotonic()
        with pytest.raises(RfbError, match="too slow"):
            client.read_update(timeout_s=1.0)
        assert time.monotonic() - started < 3


def test_nothing_listening_is_an_rfb_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(RfbError, match="cannot connect"):
        RfbClient(timeout_s=2).connect("127.0.0.1", port)


def test_unknown_encoding_name_is_refused() -> None:
    with pytest.raises(RfbError, match="unknown encoding 'tight'"):
        RfbClient().connect("127.0.0.1", 1, ["tight"])


# -- the measurement ---------------------------------------------------------------------------
@pytest.mark.x11
def test_measure_ends_pixel_exact_for_both_peers() -> None:
    require_vnc()
    missing = vnc_peer.available()
    if missing is not None:
        if os.environ.get("HDXTEST_REQUIRE_X") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    notes: list[str] = []
    before = child_processes()
    result = vnc_peer.measure(static_ct_screen(WIDTH, HEIGHT), repeats=1,
                              progress=notes.append)
    assert result["all_exact"] is True
    assert set(result["vnc"]) == {"zrle", "zlib", "raw"}
    for encoding, runs in result["vnc"].items():
        (sample,) = runs["samples"]
        assert sample["encoding"] == encoding and sample["exact"] is True
        assert sample["bytes"] >= sample["handshake_bytes"] > 0
        assert sample["pixel_exact_ms"] >= sample["first_complete_ms"] > 0
        assert runs["median"]["pixel_exact_ms"] == sample["pixel_exact_ms"]
    assert result["vnc"]["raw"]["samples"][0]["bytes"] >= WIDTH * HEIGHT * 4
    (hdx,) = result["hdx"]["samples"]
    assert hdx["exact"] is True
    assert hdx["time_to_lossless_ms"] >= hdx["first_paint_ms"] > 0
    assert hdx["bytes"] > hdx["tile_bytes"] > 0
    assert result["best_vnc_encoding"] in result["vnc"]
    for ratios in (result["targets"], *result["per_encoding"].values()):
        assert set(ratios) == {"first_paint", "time_to_lossless", "bytes"}
        for entry in ratios.values():
            assert isinstance(entry["pass"], bool) and entry["ratio"] > 0
    assert result["versions"]["x11vnc"].startswith("x11vnc")
    assert any("repeat 1/1" in note for note in notes)
    left = {pid: args for pid, args in child_processes().items() if pid not in before}
    assert not left, f"measure() left processes behind: {left}"


def child_processes() -> dict[int, str]:
    """This process's live children: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
    return found
