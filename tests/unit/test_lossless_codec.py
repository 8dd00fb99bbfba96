"""The tile codec is exact for every kind of content, and the digests match what clients hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from hdx.errors import ProtocolError
from hdx.lossless import codec
from hdx.lossless.codec import TileFormat

pytestmark = pytest.mark.unit

ALL = codec.ALWAYS_DECODABLE | {TileFormat.JXL}
rng = np.random.default_rng(11)


def bgra(h: int, w: int, grey: bool = False) -> np.ndarray:
    out = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if grey:
        out[..., 0] = out[..., 2] = out[..., 1]
    out[..., 3] = 255
    return out


@pytest.mark.parametrize("shape", [(1, 1), (64, 64), (37, 200), (512, 512)])
@pytest.mark.parametrize("formats", [ALL, codec.ALWAYS_DECODABLE], ids=["jxl", "no-jxl"])
def test_colour_round_trips_exactly(shape: tuple[int, int], formats: frozenset[TileFormat]
                                    ) -> None:
    pixels = bgra(*shape)
    tile = codec.encode_bgra(pixels, formats)
    assert tile.fmt is (TileFormat.JXL if TileFormat.JXL in formats else TileFormat.PNG)
    assert (tile.bits, tile.channels) == (8, 3)
    assert np.array_equal(codec.decode(tile.fmt, tile.payload), pixels[..., 2::-1])


def test_grey_travels_as_one_channel_of_jpeg_ls() -> None:
    ramp = (np.add.outer(np.arange(100), np.arange(70)) + rng.integers(0, 3, (100, 70)))
    pixels = np.repeat(ramp.astype(np.uint8)[..., None], 4, axis=2)
    pixels[..., 3] = 255
    tile = codec.encode_bgra(pixels[10:90, 5:60], ALL)  # a strided view, as the refiner cuts
    assert (tile.fmt, tile.bits, tile.channels) == (TileFormat.JLS, 8, 1)
    assert np.array_equal(codec.decode(tile.fmt, tile.payload), pixels[10:90, 5:60, 1])


@pytest.mark.parametrize("size", [64, 512])
def test_grey_noise_is_exact_and_never_much_bigger_than_raw(size: int) -> None:
    pixels = bgra(size, size, grey=True)
    tile = codec.encode_bgra(pixels, ALL)
    assert tile.fmt in (TileFormat.JLS, TileFormat.RAW)
    assert len(tile.payload) <= size * size * 1.05 + 64
    assert np.array_equal(codec.decode(tile.fmt, tile.payload), pixels[..., 1])


def test_one_odd_pixel_makes_a_rectangle_colour() -> None:
    pixels = bgra(16, 16, grey=True)
    pixels[15, 15, 0] ^= 1
    assert not codec.is_grey(pixels)
    assert codec.encode_bgra(pixels, ALL).fmt is TileFormat.JXL


@pytest.mark.parametrize(("high", "fmt"), [(4096, TileFormat.JLS), (65536, TileFormat.RAW)])
def test_16_bit_samples_round_trip_exactly(high: int, fmt: TileFormat) -> None:
    samples = rng.integers(0, high, (300, 200), dtype=np.uint16)
    tile = codec.encode_grey16(samples[7:200, 3:190])
    assert (tile.fmt, tile.bits, tile.channels) == (fmt, 16, 1), "noise JPEG-LS cannot fit"
    decoded = codec.decode(tile.fmt, tile.payload)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, samples[7:200, 3:190])


def test_digests_are_sha256_of_what_a_browser_reads_back() -> None:
    pixels = bgra(3, 2)
    rgba = np.concatenate([pixels[..., 2::-1], np.full((3, 2, 1), 255, np.uint8)], axis=2)
    assert codec.bgra_digest(pixels) == hashlib.sha256(rgba.tobytes()).hexdigest()
    samples = np.array([[1, 258]], np.uint16)
    assert codec.grey16_digest(samples) == hashlib.sha256(b"\x01\x00\x02\x01").hexdigest()


@pytest.mark.parametrize("fmt", list(TileFormat))
def test_garbage_is_a_protocol_error_not_a_crash(fmt: TileFormat) -> None:
    for payload in (b"", b"\x00" * 10, rng.bytes(300)):
        with pytest.raises(ProtocolError):
            codec.decode(int(fmt), payload)
    with pytest.raises(ProtocolError, match="unknown tile format"):
        codec.decode(99, b"x")


def test_formats_from_a_client_always_include_the_universal_ones() -> None:
    assert codec.formats_from_names(["jxl", "webp", 7]) == ALL
    assert codec.formats_from_names([]) == codec.ALWAYS_DECODABLE
    with pytest.raises(ProtocolError):
        codec.formats_from_names("jxl")


def test_a_picture_libjxl_effort_1_gets_wrong_still_arrives_exact() -> None:
    """Found by the random-change test: libjxl 0.11 effort 1 decodes this one differently."""
    import cv2

    bgr = cv2.imread(str(Path(__file__).parent.parent / "data" / "jxl-effort1-not-exact.png"))
    pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    tile = codec.encode_bgra(pixels, ALL)
    assert np.array_equal(codec.decode(tile.fmt, tile.payload), pixels[..., 2::-1])
    if tile.fmt is TileFormat.PNG:
        assert tile.fallback == "libjxl effort 1 was not exact"


def test_safe_mode_uses_only_the_simplest_formats() -> None:
    colour, grey = bgra(64, 64), bgra(64, 64, grey=True)
    assert codec.encode_bgra(colour, ALL, safe=True).fmt is TileFormat.PNG
    assert codec.encode_bgra(grey, ALL, safe=True).fmt is TileFormat.RAW
    samples = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    tile = codec.encode_grey16(samples, safe=True)
    assert tile.fmt is TileFormat.RAW
    assert np.array_equal(codec.decode(tile.fmt, tile.payload), samples)
