"""A small RFB (VNC) client in pure Python + numpy, for measuring a VNC server against hdx.

Why our own client and not a viewer program: the benchmark needs to know exactly when the
client holds the whole screen, how many bytes it read to get there and how long it spent
waiting for the network versus decoding, none of which a GUI viewer reports. It speaks RFB 3.8
(and 3.3/3.7 servers), security type None only, and asks for 32-bit little-endian true colour
with red at bit 16, so the framebuffer bytes are B, G, R, X: the layout hdx captures.

Encodings: Raw (0), CopyRect (1), zlib (6, one zlib stream per connection), ZRLE (16, one
zlib stream, 64x64 tiles of 3-byte CPIXELs) and the DesktopSize pseudo-encoding (-223).
Every length a server sends is checked against the framebuffer before anything is allocated,
and every read has a timeout, so a broken or hostile server ends in :class:`RfbError`.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hdx.errors import HdxError

ENCODINGS: dict[str, int] = {
    "raw": 0,
    "copyrect": 1,
    "zlib": 6,
    "zrle": 16,
    "desktopsize": -223,
}
"""The encodings this client decodes, by the name :meth:`RfbClient.connect` takes."""

MAX_SIDE = 8192
"""Largest framebuffer side accepted from a server (bounds every allocation)."""
MAX_TEXT = 1 << 20
"""Largest name, reason or cut-text length read from a server."""
MAX_OTHER_MESSAGES = 10_000
"""Non-update messages (bell, cut text, colour map) skipped while waiting for one update."""
TILE = 64
"""ZRLE tile side."""

_PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
"""32 bpp, depth 24, little-endian, true colour, 8-bit channels at shifts 16/8/0: BGRX."""

BGRA = npt.NDArray[np.uint8]


class RfbError(HdxError, ConnectionError):
    """The VNC server broke the protocol, refused us, went silent or closed; says why."""


@dataclass(frozen=True, slots=True)
class Rect:
    """One rectangle of a FramebufferUpdate, as the server announced it."""

    x: int
    y: int
    width: int
    height: int
    encoding: int


@dataclass(slots=True)
class _Clock:
    """Where the client's time went: blocked in ``recv`` vs everything else (decoding)."""

    recv_s: float = 0.0
    decode_s: float = 0.0


class RfbClient:
    """One RFB connection: ``connect()``, then ``request_update()`` / ``read_update()``.

    ``framebuffer`` is ``(h, w, 4)`` uint8 BGRA with alpha 255, updated in place by each
    update. ``bytes_received`` counts every byte read from the socket; ``handshake_bytes`` those
    read up to and including ServerInit. Blocking sockets: the benchmark does one thing at a
    time, and a timeout on every read is simpler to get right than cancellation.
    """

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.version = ""
        self.name = ""
        self.width = 0
        self.height = 0
        self.framebuffer: BGRA = np.zeros((0, 0, 4), np.uint8)
        self.bytes_received = 0
        self.handshake_bytes = 0
        self.clock = _Clock()
        self.connect_s = 0.0
        """Seconds from starting the TCP connect to having sent SetEncodings."""
        self.greeting_s = 0.0
        """Seconds from starting the TCP connect to the server's version banner (a server
        may wait before greeting: libvncserver waits 100 ms for a WebSockets client)."""
        self._started = 0.0
        self._inflate = zlib.decompressobj()
        self._zrle_inflate = zlib.decompressobj()
        self._deadline = float("inf")
        self._call_bytes = 0
        """``bytes_received`` when the current call began (to tell silent from slow)."""

    # -- connection ----------------------------------------------------------------------------
    def connect(self, host: str, port: int, encodings: Sequence[str] = ("zrle",)) -> None:
        """Connect, handshake (security None), set BGRX pixels and the encodings, in order of
        preference (names from :data:`ENCODINGS`)."""
        codes = [_encoding_code(name) for name in encodings]
        started = self._started = time.perf_counter()
        self._deadline = time.monotonic() + self.timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=self.timeout_s)
        except OSError as exc:
            raise RfbError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._handshake()
        self.handshake_bytes = self.bytes_received
        self._send(struct.pack(">B3x", 0) + _PIXEL_FORMAT)
        self._send(struct.pack(f">BxH{len(codes)}i", 2, len(codes), *codes))
        self._deadline = float("inf")
        self.connect_s = time.perf_counter() - started

    def _handshake(self) -> None:
        banner = self._read(12)
        self.greeting_s = time.perf_counter() - self._started
        if not (banner.startswith(b"RFB ") and banner[7:8] == b"." and banner[11:] == b"\n"
                and banner[4:7].isdigit() and banner[8:11].isdigit()):
            raise RfbError(f"not an RFB server: it greeted with {bytes(banner)!r}")
        major, minor = int(banner[4:7]), int(banner[8:11])
        if major != 3 or minor < 3:
            raise RfbError(f"unsupported RFB version {major}.{minor} (need 3.3 to 3.8)")
        minor = 8 if minor >= 8 else 7 if minor >= 7 else 3
        self.version = f"3.{minor}"
        self._send(b"RFB 003.%03d\n" % minor)
        if minor == 3:
            self._security_33()
        else:
            self._security_37(minor)
        self._send(b"\x01")  # ClientInit: shared, so repeated runs never kick each other
        width, height = struct.unpack(">HH", self._read(4))
        self._read(16)  # the server's native pixel format: we set our own next
        (name_length,) = struct.unpack(">I", self._read(4))
        self.name = self._read_text(name_length, "desktop name")
        self._resize(width, height)

    def _security_33(self) -> None:
        (kind,) = struct.unpack(">I", self._read(4))
        if kind == 0:
            raise RfbError(f"server refused the connection: {self._read_reason()}")
        if kind != 1:
            raise RfbError(f"server requires security type {kind}; only None (1) is supported")

    def _security_37(self, minor: int) -> None:
        (count,) = self._read(1)
        if count == 0:
            raise RfbError(f"server refused the connection: {self._read_reason()}")
        offered = list(self._read(count))
        if 1 not in offered:
            raise RfbError(f"server offers security types {offered}; only None (1) is "
                           "supported (start x11vnc with -nopw, no -rfbauth)")
        self._send(b"\x01")
        if minor >= 8:
            (result,) = struct.unpack(">I", self._read(4))
            if result != 0:
                raise RfbError(f"security handshake failed: {self._read_reason()}")

    def _read_reason(self) -> str:
        (length,) = struct.unpack(">I", self._read(4))
        return self._read_text(length, "reason")

    def _read_text(self, length: int, what: str) -> str:
        if length > MAX_TEXT:
            raise RfbError(f"server sent a {length}-byte {what} (limit {MAX_TEXT})")
        return bytes(self._read(length)).decode("latin-1")

    def _resize(self, width: int, height: int) -> None:
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise RfbError(f"server announced a {width}x{height} framebuffer "
                           f"(accepted: 1..{MAX_SIDE} per side)")
        self.width, self.height = width, height
        self.framebuffer = np.zeros((height, width, 4), np.uint8)
        self.framebuffer[..., 3] = 255

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> RfbClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- updates -------------------------------------------------------------------------------
    def request_update(self, incremental: bool, rect: tuple[int, int, int, int] | None = None
                       ) -> None:
        """FramebufferUpdateRequest for ``rect`` (x, y, w, h; default the whole screen).
        Non-incremental asks for every pixel, as a client that just connected must."""
        x, y, w, h = rect if rect is not None else (0, 0, self.width, self.height)
        self._send(struct.pack(">BBHHHH", 3, int(incremental), x, y, w, h))

    def read_update(self, timeout_s: float | None = None) -> list[Rect]:
        """Read messages until one FramebufferUpdate has been applied; its rectangles.

        Bells, cut text and colour-map entries met on the way are read and ignored (their
        bytes still count). ``timeout_s`` bounds the whole call, not just each read.
        """
        started = time.perf_counter()
        recv_before = self.clock.recv_s
        self._deadline = time.monotonic() + (timeout_s if timeout_s is not None
                                             else self.timeout_s)
        self._call_bytes = self.bytes_received
        try:
            for _ in range(MAX_OTHER_MESSAGES):
                (kind,) = self._read(1)
                if kind == 0:
                    return self._framebuffer_update()
                self._skip_message(kind)
            raise RfbError(f"{MAX_OTHER_MESSAGES} messages without a framebuffer update")
        finally:
            self._deadline = float("inf")
            waited = self.clock.recv_s - recv_before
            self.clock.decode_s += time.perf_counter() - started - waited

    def _skip_message(self, kind: int) -> None:
        if kind == 1:  # SetColourMapEntries: meaningless in true colour
            _, count = struct.unpack(">xHH", self._read(5))
            self._read(6 * count)
        elif kind == 2:  # Bell
            return
        elif kind == 3:  # ServerCutText
            (length,) = struct.unpack(">3xI", self._read(7))
            self._read_text(length, "cut text")
        else:
            raise RfbError(f"unknown server message type {kind}")

    def _framebuffer_update(self) -> list[Rect]:
        (count,) = struct.unpack(">xH", self._read(3))
        rects = []
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", self._read(12))
            rect = Rect(x, y, w, h, encoding)
            self._apply(rect)
            rects.append(rect)
        return rects

    def _apply(self, rect: Rect) -> None:
        if rect.encoding == ENCODINGS["desktopsize"]:
            self._resize(rect.width, rect.height)
            return
        if rect.x + rect.width > self.width or rect.y + rect.height > self.height:
            raise RfbError(f"rectangle {rect.width}x{rect.height}+{rect.x}+{rect.y} lies outside "
                           f"the {self.width}x{self.height} framebuffer")
        target = self.framebuffer[rect.y:rect.y + rect.height, rect.x:rect.x + rect.width, :3]
        if rect.encoding == ENCODINGS["raw"]:
            target[...] = self._pixels(self._read(rect.width * rect.height * 4), rect)
        elif rect.encoding == ENCODINGS["zlib"]:
            data = self._inflated(self._inflate, rect, rect.width * rect.height * 4)
            if len(data) != rect.width * rect.height * 4:
                raise RfbError(f"zlib rectangle {rect} inflated to {len(data)} bytes, expected "
                               f"{rect.width * rect.height * 4}")
            target[...] = self._pixels(data, rect)
        elif rect.encoding == ENCODINGS["zrle"]:
            tiles = -(-rect.width // TILE) * -(-rect.height // TILE)
            bound = rect.width * rect.height * 4 + tiles * (1 + 127 * 3)
            target[...] = decode_zrle(self._inflated(self._zrle_inflate, rect, bound),
                                      rect.width, rect.height)
        elif rect.encoding == ENCODINGS["copyrect"]:
            sx, sy = struct.unpack(">HH", self._read(4))
            if sx + rect.width > self.width or sy + rect.height > self.height:
                raise RfbError(f"CopyRect source {sx},{sy} of {rect} lies outside the "
                               "framebuffer")
            target[...] = self.framebuffer[sy:sy + rect.height, sx:sx + rect.width, :3].copy()
        else:
            raise RfbError(f"server used encoding {rect.encoding}, which was not asked for")

    @staticmethod
    def _pixels(data: bytes | bytearray, rect: Rect) -> npt.NDArray[np.uint8]:
        pixels = np.frombuffer(data, np.uint8).reshape(rect.height, rect.width, 4)
        return pixels[..., :3]

    def _inflated(self, stream: zlib._Decompress, rect: Rect, bound: int) -> bytes:
        """The next rectangle's zlib data through the connection's stream, at most ``bound``
        bytes out (a rectangle can never need more; anything larger is a zip bomb)."""
        (length,) = struct.unpack(">I", self._read(4))
        if length > bound + (bound >> 4) + 65536:
            raise RfbError(f"{rect} announces {length} compressed bytes, more than its pixels "
                           "could ever need")
        compressed = self._read(length)
        try:
            data = stream.decompress(compressed, max(bound, 1))  # 0 would mean no limit
        except zlib.error as exc:
            raise RfbError(f"corrupt zlib data in {rect}: {exc}") from exc
        if stream.unconsumed_tail:
            raise RfbError(f"{rect} inflates to more than {bound} bytes")
        return data

    # -- the wire ------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self.sock is None:
            raise RfbError("not connected")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise RfbError(f"cannot send to the server: {exc}") from exc

    def _read(self, n: int) -> bytearray:
        """Exactly ``n`` bytes, or RfbError on close, timeout (per read and per call)."""
        if self.sock is None:
            raise RfbError("not connected")
        out = bytearray(n)
        view = memoryview(out)
        got = 0
        while got < n:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise RfbError(f"the server is too slow: {n - got} of {n} bytes still missing "
                               "at the deadline")
            wait = min(self.timeout_s, left)
            self.sock.settimeout(wait)
            t0 = time.perf_counter()
            try:
                chunk = self.sock.recv_into(view[got:], n - got)
            except TimeoutError:
                if wait < self.timeout_s and self.bytes_received > self._call_bytes:
                    raise RfbError(f"the server is too slow: {n - got} of {n} bytes still "
                                   "missing at the deadline") from None
                raise RfbError(f"the server sent nothing for {wait:.1f} s "
                               f"({n - got} of {n} bytes missing)") from None
            except OSError as exc:
                raise RfbError(f"connection failed: {exc}") from exc
            finally:
                self.clock.recv_s += time.perf_counter() - t0
            if chunk == 0:
                raise RfbError(f"the server closed the connection ({n - got} of {n} bytes "
                               "missing)")
            got += chunk
            self.bytes_received += chunk
        return out


def _encoding_code(name: str) -> int:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise RfbError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}") from None


# -- ZRLE ----------------------------------------------------------------------------------------
def decode_zrle(data: bytes, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The ``(height, width, 3)`` B, G, R pixels of one inflated ZRLE rectangle.

    Tiles are 64x64, left to right, top to bottom; each starts with its subencoding. The data
    must end exactly after the last tile: anything else means we and the server disagree.
    """
    out = np.empty((height, width, 3), np.uint8)
    array = np.frombuffer(data, np.uint8)
    pos = 0
    try:
        for ty in range(0, height, TILE):
            for tx in range(0, width, TILE):
                pos = _zrle_tile(data, array, pos, out[ty:ty + TILE, tx:tx + TILE])
    except IndexError:
        raise RfbError("ZRLE data ends inside a tile") from None
    if pos != len(data):
        raise RfbError(f"ZRLE rectangle has {len(data) - pos} bytes after its last tile")
    return out


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise RfbError("ZRLE data ends inside a tile")


def _zrle_tile(data: bytes, array: npt.NDArray[np.uint8], pos: int,
               tile: npt.NDArray[np.uint8]) -> int:
    """Decode one tile into ``tile`` (a view of the output); the position after it."""
    th, tw = int(tile.shape[0]), int(tile.shape[1])
    _need(data, pos, 1)
    sub = data[pos]
    pos += 1
    if sub == 0:  # raw CPIXELs
        size = tw * th * 3
        _need(data, pos, size)
        tile[...] = array[pos:pos + size].reshape(th, tw, 3)
        return pos + size
    if sub == 1:  # one colour
        _need(data, pos, 3)
        tile[...] = array[pos:pos + 3]
        return pos + 3
    if 2 <= sub <= 16:
        palette, pos = _palette(data, array, pos, sub)
        return _packed_palette(data, array, pos, tile, palette)
    if sub == 128:
        return _plain_rle(data, array, pos, tile)
    if sub >= 130:
        palette, pos = _palette(data, array, pos, sub - 128)
        return _palette_rle(data, array, pos, tile, palette)
    raise RfbError(f"unknown ZRLE subencoding {sub}")


def _palette(data: bytes, array: npt.NDArray[np.uint8], pos: int, size: int
             ) -> tuple[npt.NDArray[np.uint8], int]:
    _need(data, pos, size * 3)
    return array[pos:pos + size * 3].reshape(size, 3), pos + size * 3


def _packed_palette(data: bytes, array: npt.NDArray[np.uint8], pos: int,
                    tile: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8]) -> int:
    """Indices of 1, 2 or 4 bits, most significant first, each row padded to a byte."""
    th, tw = int(tile.shape[0]), int(tile.shape[1])
    bits = 1 if len(palette) == 2 else 2 if len(palette) <= 4 else 4
    row = (tw * bits + 7) // 8
    _need(data, pos, row * th)
    packed = array[pos:pos + row * th].reshape(th, row)
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
    index = ((packed[..., None] >> shifts) & ((1 << bits) - 1)).reshape(th, -1)[:, :tw]
    if int(index.max()) >= len(palette):
        raise RfbError(f"ZRLE palette index beyond the {len(palette)}-colour palette")
    tile[...] = palette[index]
    return pos + row * th


def _run_length(data: bytes, pos: int) -> tuple[int, int]:
    """A ZRLE run length: bytes of 255 and a final byte below 255, plus one. Reading past the
    end raises IndexError, which :func:`decode_zrle` turns into RfbError."""
    length = 1
    while True:
        byte = data[pos]
        pos += 1
        length += byte
        if byte != 255:
            return length, pos


def _plain_rle(data: bytes, array: npt.NDArray[np.uint8], pos: int,
               tile: npt.NDArray[np.uint8]) -> int:
    """Runs of (CPIXEL, length): parsed in Python (each run's length decides where the next
    starts), expanded with one ``np.repeat``."""
    th, tw = int(tile.shape[0]), int(tile.shape[1])
    total, count = tw * th, 0
    starts: list[int] = []
    lengths: list[int] = []
    while count < total:
        starts.append(pos)
        length, pos = _run_length(data, pos + 3)
        lengths.append(length)
        count += length
    _need(data, starts[-1], 3)
    if count != total:
        raise RfbError(f"ZRLE run ends {count - total} pixels beyond its tile")
    colours = array[np.asarray(starts)[:, None] + np.arange(3)]
    tile[...] = np.repeat(colours, lengths, axis=0).reshape(th, tw, 3)
    return pos


def _palette_rle(data: bytes, array: npt.NDArray[np.uint8], pos: int,
                 tile: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8]) -> int:
    """Palette indices: a byte below 128 is one pixel; a byte with the top bit set starts a
    run whose length bytes follow (255s, then one below 255). Parsed without a Python loop
    per run (CT tiles hold hundreds): see :func:`_token_starts`. The first try reads a window
    that fits typical tiles; only a tile that needs more is parsed again with the most any
    tile can take."""
    th, tw = int(tile.shape[0]), int(tile.shape[1])
    total = tw * th
    most = 2 * total + total // 255 + 2
    for size in (min(most, total + total // 2 + 16), most):
        window = array[pos:pos + size]
        parsed = _palette_runs(window, total)
        if parsed is not None or size == most or len(window) < size:
            break
    if parsed is None:
        raise RfbError("ZRLE data ends inside a tile")
    indices, lengths, end = parsed
    if int(indices.max()) >= len(palette):
        raise RfbError(f"ZRLE palette index beyond the {len(palette)}-colour palette")
    tile[...] = np.repeat(palette[indices], lengths, axis=0).reshape(th, tw, 3)
    return pos + end


def _palette_runs(window: npt.NDArray[np.uint8], total: int
                  ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32], int] | None:
    """(palette index, run length) of the runs covering ``total`` pixels, and the bytes they
    took; None when ``window`` ends first. RfbError when a run overshoots the tile."""
    if len(window) == 0:
        return None
    length_before, length_after = _token_starts(window)
    starts = np.flatnonzero(~length_before)
    token = np.cumsum(~length_before, dtype=np.int32) - 1
    extra = np.bincount(token[length_before], weights=window[length_before],
                        minlength=len(starts))
    lengths = extra.astype(np.int32) + 1
    covered = np.cumsum(lengths)
    last = int(np.searchsorted(covered, total))  # the run that completes the tile
    if last >= len(starts) or (last == len(starts) - 1 and length_after):
        return None  # the window ends first, or inside the last run's length
    if covered[last] != total:
        raise RfbError(f"ZRLE run ends {int(covered[last]) - total} pixels beyond its tile")
    end = int(starts[last + 1]) if last + 1 < len(starts) else len(window)
    indices = (window[starts[:last + 1]] & 127).astype(np.uint8)
    return indices, lengths[:last + 1], end


def _token_starts(window: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.bool_], bool]:
    """For each byte: is it a run-length byte (else a token: index or run start)? And is the
    state after the last byte *length*? A two-state machine in which a byte below 128 always
    leads to *token*, 255 always to *length* and 128..254 flips the state: so the state is
    that of the last such reset, flipped by the parity of the flips since, which a running
    maximum and a running xor give for all bytes at once. A virtual byte 0 in front sets the
    start state (*token*)."""
    padded = np.concatenate((np.zeros(1, np.uint8), window))
    flips = (padded >= 128) & (padded < 255)
    last_reset = np.maximum.accumulate(np.where(flips, 0, np.arange(len(padded))))
    parity = np.logical_xor.accumulate(flips)
    after = (padded[last_reset] == 255) ^ parity ^ parity[last_reset]
    return after[:-1], bool(after[-1])
