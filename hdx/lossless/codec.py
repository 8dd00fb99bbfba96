"""The lossless tile codec: exact bytes for a rectangle of the desktop, decodable in a browser.

Chosen by measurement (``hdx bench lossless``, benchmarks/README.md):
- grey rectangles (R = G = B, the bulk of radiology screens) and 16-bit grey samples travel as
  one channel of JPEG-LS (CharLS). Its context modelling beats every other fast candidate on
  medical images; browsers decode it with CharLS compiled to JavaScript (served by hdx itself).
- colour rectangles travel as whichever is smaller of lossless JPEG XL at effort 1 (decoded
  natively and exactly by Chromium; best on photographic and gradient content) and Zstandard
  over the raw RGB bytes (decoded by a small bundled JavaScript decoder; best on text, whose
  repeated glyphs it matches), and as PNG for clients that decode neither.
- grey samples JPEG-LS cannot shrink (noise: CharLS then refuses, its output would not fit)
  travel raw.

libjxl 0.11's lossless effort-1 encoder is *not always exact* (tests/data has a 192x128 picture
it gets wrong; effort 2 gets it right). So every JPEG XL tile is decoded again here and
compared before it leaves; one that differs is sent as PNG instead. ``safe=True`` (used after a
client's hash did not match) skips the clever codecs altogether: PNG for colour, raw for grey.

Every format is exact; the digests below are what a client must reproduce from the pixels it
actually drew.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import imagecodecs
import numpy as np
import numpy.typing as npt

from hdx.errors import ProtocolError


class TileFormat(enum.IntEnum):
    """Wire identifiers (docs/protocol.md); names are what clients advertise."""

    JXL = 1
    PNG = 2
    JLS = 3
    RAW = 4
    """Grey samples as they are: a 4-byte header (width, height: big-endian u16) and the
    samples row by row, 16-bit ones little-endian."""
    ZSTD = 5
    """RGB bytes row by row, Zstandard-compressed, after the same 4-byte size header."""

    @property
    def wire_name(self) -> str:
        """The name in a client's ``caps`` message."""
        return self.name.lower()


ALWAYS_DECODABLE = frozenset({TileFormat.PNG, TileFormat.JLS, TileFormat.RAW})
"""What every hdx client decodes (PNG natively, JPEG-LS through the bundled decoder)."""


@dataclass(frozen=True, slots=True)
class EncodedTile:
    """One rectangle's compressed samples and how to read them."""

    fmt: TileFormat
    payload: bytes
    bits: int
    """8, or 16 for high-bit-depth grey samples."""
    channels: int
    """1 (grey: R = G = B) or 3 (RGB)."""
    fallback: str | None = None
    """Why a simpler format was used than the first choice, if one was."""


def formats_from_names(names: object) -> frozenset[TileFormat]:
    """The formats a client advertised, always including the ones every client decodes."""
    if not isinstance(names, list) or len(names) > 16:
        raise ProtocolError("caps 'formats' must be a list of at most 16 names")
    known = {f.wire_name: f for f in TileFormat}
    return ALWAYS_DECODABLE | {known[n] for n in names if isinstance(n, str) and n in known}


def is_grey(bgra: npt.NDArray[np.uint8]) -> bool:
    """True when every pixel of a BGRA rectangle has R = G = B."""
    b, g, r = bgra[..., 0], bgra[..., 1], bgra[..., 2]
    return bool(np.array_equal(b, g) and np.array_equal(g, r))


def encode_bgra(bgra: npt.NDArray[np.uint8], formats: frozenset[TileFormat],
                safe: bool = False) -> EncodedTile:
    """Encode an opaque BGRA rectangle (a view into a frame is fine) exactly."""
    if is_grey(bgra):
        return _encode_grey(np.ascontiguousarray(bgra[..., 1]), 8, safe)
    rgb = np.asarray(cv2.cvtColor(np.ascontiguousarray(bgra), cv2.COLOR_BGRA2RGB), np.uint8)
    fallback = "safe mode" if safe else None
    best: EncodedTile | None = None
    if TileFormat.ZSTD in formats and not safe:
        h, w = rgb.shape[:2]
        packed = struct.pack(">HH", w, h) + bytes(imagecodecs.zstd_encode(rgb.tobytes(), 3))
        best = EncodedTile(TileFormat.ZSTD, packed, 8, 3)
    if TileFormat.JXL in formats and not safe:
        payload = bytes(imagecodecs.jpegxl_encode(rgb, lossless=True, effort=1, numthreads=1))
        if best is None or len(payload) < len(best.payload):
            if np.array_equal(imagecodecs.jpegxl_decode(payload, numthreads=1), rgb):
                return EncodedTile(TileFormat.JXL, payload, 8, 3)
            if best is None:
                fallback = "libjxl effort 1 was not exact"
    if best is not None:
        return best
    png = bytes(imagecodecs.png_encode(rgb, level=1))
    return EncodedTile(TileFormat.PNG, png, 8, 3, fallback)


def encode_grey16(samples: npt.NDArray[np.uint16], safe: bool = False) -> EncodedTile:
    """Encode 16-bit grey samples (a view is fine) exactly, as 16-bit JPEG-LS."""
    return _encode_grey(np.ascontiguousarray(samples, dtype=np.uint16), 16, safe)


def _encode_grey(samples: npt.NDArray[Any], bits: int, safe: bool) -> EncodedTile:
    h, w = samples.shape
    raw = samples.astype("<u2").tobytes() if bits > 8 else samples.tobytes()
    payload = b""
    try:
        if not safe:
            payload = bytes(imagecodecs.jpegls_encode(samples))
    except imagecodecs.JpeglsError:  # incompressible: CharLS's output buffer overflowed
        payload = b""
    if payload and len(payload) < len(raw):
        return EncodedTile(TileFormat.JLS, payload, bits, 1)
    return EncodedTile(TileFormat.RAW, struct.pack(">HH", w, h) + raw, bits, 1)


def decode(fmt: int, payload: bytes) -> npt.NDArray[Any]:
    """Decode a tile: ``(h, w, 3)`` uint8 RGB, ``(h, w)`` uint8 grey or ``(h, w)`` uint16 grey.

    Raises ProtocolError for anything that does not decode (a client must not crash on it).
    """
    try:
        kind = TileFormat(fmt)
    except ValueError:
        raise ProtocolError(f"unknown tile format {fmt}") from None
    try:
        if kind is TileFormat.JXL:
            image = imagecodecs.jpegxl_decode(payload)
        elif kind is TileFormat.PNG:
            image = imagecodecs.png_decode(payload)
        elif kind is TileFormat.JLS:
            image = imagecodecs.jpegls_decode(payload)
        elif kind is TileFormat.ZSTD:
            image = _decode_zstd(payload)
        else:
            image = _decode_raw(payload)
    except Exception as exc:  # codec libraries raise their own error types
        raise ProtocolError(f"{kind.wire_name} tile does not decode: {exc}") from None
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3):
        raise ProtocolError(f"{kind.wire_name} tile decoded to {array.dtype} {array.shape}")
    return array


def _decode_raw(payload: bytes) -> npt.NDArray[Any]:
    if len(payload) < 4:
        raise ValueError("raw tile shorter than its header")
    w, h = struct.unpack_from(">HH", payload)
    body = payload[4:]
    if len(body) == w * h * 2:
        return np.frombuffer(body, "<u2").reshape(h, w).astype(np.uint16)
    if len(body) == w * h:
        return np.frombuffer(body, np.uint8).reshape(h, w).copy()
    raise ValueError(f"raw tile of {len(body)} bytes does not fit {w}x{h}")


def _decode_zstd(payload: bytes) -> npt.NDArray[Any]:
    if len(payload) < 4:
        raise ValueError("zstd tile shorter than its header")
    w, h = struct.unpack_from(">HH", payload)
    if w * h * 3 > 64 << 20:
        raise ValueError(f"zstd tile of {w}x{h} is too large")
    body = bytes(imagecodecs.zstd_decode(payload[4:], out=w * h * 3))  # bounded: no bombs
    if len(body) != w * h * 3:
        raise ValueError(f"zstd tile of {len(body)} bytes does not fit {w}x{h} RGB")
    return np.frombuffer(body, np.uint8).reshape(h, w, 3).copy()


def rgba_digest(rgba: npt.NDArray[np.uint8]) -> str:
    """SHA-256 (hex) of an RGBA rectangle, rows top to bottom: what a browser hashes after
    reading back the pixels it drew with ``getImageData``."""
    return hashlib.sha256(np.ascontiguousarray(rgba, dtype=np.uint8).tobytes()).hexdigest()


def bgra_digest(bgra: npt.NDArray[np.uint8]) -> str:
    """The digest a client must report for this BGRA rectangle of the source."""
    rgba = np.asarray(cv2.cvtColor(np.ascontiguousarray(bgra), cv2.COLOR_BGRA2RGBA), np.uint8)
    rgba[..., 3] = 255
    return rgba_digest(rgba)


def grey16_digest(samples: npt.NDArray[np.uint16]) -> str:
    """SHA-256 (hex) of 16-bit grey samples as little-endian bytes, rows top to bottom."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<u2").tobytes()).hexdigest()
