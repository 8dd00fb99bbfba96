"""hdx/web/jls.js (CharLS compiled to plain JavaScript) in real Chromium, under the page's CSP:
JPEG-LS streams made by imagecodecs decode to exactly the samples that went in, and malformed
streams reject with an Error while the page goes on decoding."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import imagecodecs
import numpy as np
import pytest

from tests.browser.conftest import ServedDesktop, serve

pytestmark = pytest.mark.browser

# Decodes args.streams (base64) one by one; each result is the image with its samples as
# base64 bytes, or the error's class and message, and the milliseconds it took.
DECODE = """async (args) => {
  const { decodeJpegLs } = await import("/static/jls.js");
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const toBase64 = (bytes) => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  };
  const results = [];
  for (const stream of args.streams) {
    const start = performance.now();
    try {
      const image = await decodeJpegLs(fromBase64(stream));
      const { data, ...info } = image;
      results.push({ ...info, type: data.constructor.name,
                     data: toBase64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
                     shared: data.buffer.byteLength !== data.byteLength,
                     ms: performance.now() - start });
    } catch (error) {
      results.push({ error: `${error.constructor.name}: ${error.message}`,
                     isError: error instanceof Error, ms: performance.now() - start });
    }
  }
  return results;
}"""

# Decodes one stream args.repeat times; returns each decode's milliseconds.
TIME_DECODE = """async (args) => {
  const { decodeJpegLs } = await import("/static/jls.js");
  const bytes = Uint8Array.from(atob(args.stream), (c) => c.charCodeAt(0));
  await decodeJpegLs(bytes);  // warm up: load CharLS, let the JIT see the hot loops
  const times = [];
  for (let i = 0; i < args.repeat; i++) {
    const start = performance.now();
    await decodeJpegLs(bytes);
    times.push(performance.now() - start);
  }
  return times;
}"""


@pytest.fixture(scope="module")
def served() -> Iterator[ServedDesktop]:
    yield from serve("--width", "320", "--height", "240", "--cine-seconds", "0")


@pytest.fixture
def page(browser_context: Any, served: ServedDesktop) -> Iterator[Any]:
    page = browser_context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    response = page.goto(served.url)  # the client page, so its Content-Security-Policy applies
    assert "script-src 'self';" in response.headers["content-security-policy"]
    yield page
    refused = [text for text in console if "Content Security Policy" in text]
    assert not refused, refused


def encode(image: np.ndarray) -> bytes:
    return bytes(imagecodecs.jpegls_encode(image))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(page: Any, *streams: bytes) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = page.evaluate(
        DECODE, {"streams": [b64(s) for s in streams]})
    return results


def samples(result: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype("<u2" if result["bitsPerSample"] > 8 else "u1")
    data = np.frombuffer(base64.b64decode(result["data"]), dtype)
    shape = (result["height"], result["width"])
    components: int = result["componentCount"]
    if components == 1:
        return data.reshape(shape)
    if result["interleaveMode"] == 0:  # planar
        return data.reshape(components, *shape).transpose(1, 2, 0)
    return data.reshape(*shape, components)


def ct_like(size: int, seed: int, bits: int = 8) -> np.ndarray:
    """A smooth disc of 'tissue' with soft structures and a little noise, like a CT slice."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    body = (x * x + y * y < 0.2).astype(float)
    structure = 0.3 * np.sin(9 * x) * np.cos(7 * y) + 0.2 * np.exp(-((x - 0.1) ** 2 + y ** 2) * 60)
    image = body * (0.5 + structure) + rng.normal(0, 0.01, (size, size))
    top = (1 << bits) - 1
    samples: np.ndarray = np.clip(image * top, 0, top).astype(np.uint8 if bits <= 8 else np.uint16)
    return samples


RNG = np.random.default_rng(20240607)
IMAGES: dict[str, np.ndarray] = {
    "grey8_random_97x61": RNG.integers(0, 256, (61, 97), dtype=np.uint8),
    "grey12_random_64x64": RNG.integers(0, 4096, (64, 64), dtype=np.uint16),
    "grey16_random_64x64": RNG.integers(0, 65536, (64, 64), dtype=np.uint16),
    "grey8_ct_512x512": ct_like(512, seed=3),
    "grey16_ct_256x192": ct_like(256, seed=4, bits=16)[:192],
    "rgb8_random_33x20": RNG.integers(0, 256, (20, 33, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_decodes_exactly_the_samples_that_were_encoded(page: Any, name: str) -> None:
    image = IMAGES[name]
    stream = encode(image)
    [result] = decode(page, stream)
    assert "error" not in result, result
    height, width = image.shape[:2]
    components = image.shape[2] if image.ndim == 3 else 1
    assert (result["width"], result["height"], result["componentCount"]) == (width, height,
                                                                             components)
    assert result["nearLossless"] == 0
    assert result["type"] == ("Uint16Array" if image.dtype == np.uint16 else "Uint8Array")
    assert not result["shared"], "data must own its buffer, not view the CharLS heap"
    if components == 3:
        print(f"\n3 components, interleave mode {result['interleaveMode']}")
    np.testing.assert_array_equal(samples(result), image)


def test_bits_per_sample_is_what_the_stream_declares(page: Any) -> None:
    # imagecodecs writes P = 16 for any uint16 image, 12-bit values or not (as hdx's tiles do).
    twelve = encode(IMAGES["grey12_random_64x64"])
    sixteen = encode(IMAGES["grey16_random_64x64"])
    eight = encode(IMAGES["grey8_random_97x61"])
    assert [r["bitsPerSample"] for r in decode(page, twelve, sixteen, eight)] == [16, 16, 8]


def test_malformed_streams_reject_with_an_error_and_decoding_goes_on(page: Any) -> None:
    image = IMAGES["grey8_ct_512x512"]
    good = encode(image)
    rng = np.random.default_rng(7)
    tiny = encode(np.zeros((8, 8), np.uint8))
    eoi = b"\xff\xd9"
    bad = [
        good[:len(good) // 2],  # truncated in the scan
        good[:60],  # truncated in the headers
        good[:-2],  # no EOI
        # Truncated in the scan but ending well: CharLS must meet the EOI marker, not run off
        # the end of the buffer (where it reads ~2^32 zero bits before failing).
        *(good[:int(len(good) * f)] + eoi for f in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)),
        b"",
        rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        b"\xff\xd8" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        # a valid frame header followed by noise instead of scan data
        good[:good.index(b"\xff\xda")] + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        declaring(tiny, 65535, 65535),  # 4 GiB: over the limit, refused before CharLS sees it
        declaring(tiny, 8192, 8192),  # 64 MiB, allowed, but 8 x 8 samples of scan data
    ]
    results = decode(page, *bad, good)
    for stream, result in zip(bad, results[:-1], strict=True):
        assert result.get("isError") is True, (stream[:16].hex(), result)
        assert result["error"].startswith("Error: "), result
        assert result["ms"] < 5000, f"stalled (not a speed limit): {result}"
    print("\n" + "\n".join(f"{r['ms']:7.1f} ms {r['error']}" for r in results[:-1]))
    np.testing.assert_array_equal(samples(results[-1]), image)


def declaring(stream: bytes, width: int, height: int) -> bytes:
    """``stream`` with its frame header (SOF55) saying width x height."""
    sof = stream.index(b"\xff\xf7")
    return (stream[:sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big")
            + stream[sof + 9:])


def test_concurrent_decodes_and_failures_share_one_script(page: Any) -> None:
    good = encode(IMAGES["grey12_random_64x64"])
    bad = good[:len(good) // 2]
    outcomes = page.evaluate("""async (args) => {
      const { decodeJpegLs } = await import("/static/jls.js");
      const [good, bad] = [args.good, args.bad].map(
        (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
      const settled = await Promise.allSettled([bad, good, bad, good, good].map(decodeJpegLs));
      const scripts = document.querySelectorAll('script[src="/static/charls-decode.js"]');
      return { outcomes: settled.map((s) => s.status), scripts: scripts.length };
    }""", {"good": b64(good), "bad": b64(bad)})
    assert outcomes == {"outcomes": ["rejected", "fulfilled", "rejected", "fulfilled", "fulfilled"],
                        "scripts": 1}


def test_bit_flips_never_hang_or_break_the_decoder(page: Any) -> None:
    image = IMAGES["grey16_ct_256x192"]
    good = encode(image)
    rng = np.random.default_rng(11)
    mutants = []
    for _ in range(60):
        mutant = bytearray(good)
        for at in rng.integers(0, len(good), 3):
            mutant[at] ^= 1 << int(rng.integers(0, 8))
        mutants.append(bytes(mutant))
    results = decode(page, *mutants, good)
    for result in results[:-1]:  # wrong samples are fine, a wrong amount of them is not
        assert result["ms"] < 5000, f"stalled (not a speed limit): {result}"
        if "error" in result:
            assert result["isError"] is True, result
        else:
            assert samples(result).size == result["width"] * result["height"] * result[
                "componentCount"], {k: v for k, v in result.items() if k != "data"}
    errors = sum("error" in r for r in results[:-1])
    print(f"\n{errors} of {len(mutants)} bit-flipped streams rejected, the rest decoded")
    np.testing.assert_array_equal(samples(results[-1]), image)


def test_decode_speed_is_logged(page: Any) -> None:
    for bits in (8, 16):
        image = ct_like(512, seed=5, bits=bits)
        stream = encode(image)
        times = sorted(page.evaluate(TIME_DECODE, {"stream": b64(stream), "repeat": 30}))
        median, best = times[len(times) // 2], times[0]
        print(f"\nJPEG-LS decode in Chromium, 512x512 {bits}-bit ({len(stream)} bytes, "
              f"{image.nbytes / len(stream):.2f}:1): median {median:.1f} ms = "
              f"{image.nbytes / median / 1e3:.0f} MB/s of samples, "
              f"{512 * 512 / median / 1e3:.1f} Mpixel/s (best {best:.1f} ms)")
