"""Lossless tile codecs: hdx's choice (``hdx.lossless.codec``) against the alternatives.

For each content item (a colour desktop, a document screen, CT and MR slices at 8 and 16 bits,
random RGB) and each codec (hdx, PNG level 6, lossless WebP, JPEG-LS, lossless JPEG XL effort 1,
zlib 6 and zstd 3 on the raw bytes, QOI) it reports the compressed bytes, the ratio (raw bytes /
compressed bytes; raw = width x height x channels x bytes per sample), encode and decode MB/s
(raw bytes over the median time, one thread), and whether every decode gave back exactly the
input. The issue's targets are checked as ratios between codecs measured in the same run.

hdx gets what the server has: BGRA as captured (its time includes the grey test and the
BGRA -> RGB conversion) or 16-bit grey samples. The others get their input prepared, untimed:
RGB for colour, one channel for grey; WebP and QOI only take colour, so they get grey content
as RGB (R = G = B), and take no 16-bit samples (reported as n/a, with the reason).

Run: ``hdx bench lossless`` (or ``python -m hdx.bench lossless``, or
``python benchmarks/lossless_codecs.py``) from a source checkout. Writes
``benchmarks/results/lossless_codecs.json``, ``.md`` and ``.png`` (the PNG needs matplotlib);
``--quick`` runs tiny images once and writes ``lossless_codecs_quick.*`` instead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import imagecodecs
import numpy as np
import numpy.typing as npt

from hdx.bench import content as gen
from hdx.bench import report
from hdx.bench.lossless_report import SPEED_TARGET_MB_S, markdown, plot
from hdx.bench.progress import Progress
from hdx.lossless import codec as hdx_codec

NAME = "lossless_codecs"
KIND = "lossless"
"""The files it writes: ``lossless.json``, ``.md`` and ``.png`` in the results folder."""
DESCRIPTION = ("Lossless tile codecs: hdx's choice against PNG, WebP, JPEG-LS, JPEG XL, zlib, "
               "zstd and QOI")
WEBP_LEVEL, WEBP_METHOD = 75, 4
"""libwebp's lossless defaults (quality 75, method 4 = ``cwebp -lossless -z 6``)."""
CONTENT_NAMES = ("desktop", "text", "ct8", "mr8", "ct16", "mr16", "noise")
"""What :func:`build_contents` makes, in order."""
CODEC_NAMES = ("hdx", "hdx_tiles", "png6", "webp", "jpegls", "jxl_e1", "zlib6", "zstd3", "qoi")
"""What :func:`build_codecs` makes, in order."""
ALL_FORMATS = frozenset(hdx_codec.TileFormat)
"""A client that decodes every format (Chromium: JPEG XL natively)."""

Array = npt.NDArray[Any]


class NotApplicable(Exception):
    """A codec that cannot take this content; the message says why."""


@dataclass(frozen=True, slots=True)
class Content:
    """One test image, in the form the codecs compare against after decoding."""

    name: str
    description: str
    samples: Array
    """``(h, w, 3)`` uint8 RGB, ``(h, w)`` uint8 grey or ``(h, w)`` uint16 grey."""
    bgra: npt.NDArray[np.uint8] | None
    """What hdx captures (8-bit content); None for 16-bit samples, which hdx takes as they are."""
    bits: int
    """Significant bits per sample."""

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 2 else int(self.samples.shape[2])

    @property
    def raw_bytes(self) -> int:
        return int(self.samples.nbytes)

    @property
    def height(self) -> int:
        return int(self.samples.shape[0])

    @property
    def width(self) -> int:
        return int(self.samples.shape[1])


def _rgb(bgra: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB), np.uint8)


def _colour(name: str, description: str, bgra: npt.NDArray[np.uint8]) -> Content:
    return Content(name, description, _rgb(bgra), bgra, 8)


def _grey(name: str, description: str, grey: npt.NDArray[np.uint8]) -> Content:
    return Content(name, description, grey, gen.grey_to_bgra(grey), 8)


def build_contents(quick: bool = False) -> list[Content]:
    """The content items, full size or (``quick``) tiny."""
    dw, dh = (320, 200) if quick else (1920, 1080)
    tw, th = (256, 160) if quick else (1280, 720)
    ct_n, mr_n, noise_n = (64, 64, 64) if quick else (512, 256, 512)
    ct, mr = gen.ct_phantom(ct_n, 12), gen.mr_phantom(mr_n, 12)
    return [
        _colour("desktop", f"hdx's synthetic workstation {dw}x{dh} (colour UI + CT viewport)",
                gen.desktop_bgra(dw, dh)),
        _colour("text", f"document screen {tw}x{th} (anti-aliased text, UI bars)",
                gen.text_screen_bgra(tw, th)),
        _grey("ct8", f"CT phantom {ct_n}x{ct_n}, 12 bits >> 4 (grey desktop pixels)",
              gen.grey8(ct, 12)),
        _grey("mr8", f"MR phantom {mr_n}x{mr_n}, 12 bits >> 4 (grey desktop pixels)",
              gen.grey8(mr, 12)),
        Content("ct16", f"CT phantom {ct_n}x{ct_n}, 12 bits stored in 16", ct, None, 12),
        Content("mr16", f"MR phantom {mr_n}x{mr_n}, 12 bits stored in 16", mr, None, 12),
        _colour("noise", f"uniform random RGB {noise_n}x{noise_n} (incompressible)",
                gen.noise_bgra(noise_n, noise_n)),
    ]


@dataclass(frozen=True, slots=True)
class Trial:
    """One codec set up for one content: calls to time and what the decode must give back."""

    encode: Callable[[], Any]
    payload: Callable[[Any], bytes]
    decode: Callable[[Any], Array]
    expected: Array
    given: str
    """What the codec was given, in words."""
    chosen: Callable[[Any], str] | None = None
    """For hdx: the format it picked for this content."""


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    label: str
    settings: str
    trial: Callable[[Content], Trial]


def _squeeze(array: Array) -> Array:
    a = np.asarray(array)
    return a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a


def _as_bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def _eight_bit_rgb(c: Content, codec: str) -> tuple[Array, str]:
    """RGB input for a colour-only 8-bit codec; grey content expanded to R = G = B."""
    if c.samples.dtype != np.uint8:
        raise NotApplicable(f"{codec} takes 8-bit samples only")
    if c.channels == 1:
        return np.ascontiguousarray(np.repeat(c.samples[:, :, None], 3, axis=2)), "grey as RGB"
    return c.samples, "RGB"


def _given(c: Content) -> str:
    if c.channels == 3:
        return "RGB"
    return "16-bit grey" if c.samples.dtype == np.uint16 else "grey, 1 channel"


def _hdx(c: Content) -> Trial:
    if c.bgra is None:
        samples = c.samples

        def encode() -> hdx_codec.EncodedTile:
            return hdx_codec.encode_grey16(samples)
        given = "16-bit grey"
    else:
        bgra = c.bgra

        def encode() -> hdx_codec.EncodedTile:
            return hdx_codec.encode_bgra(bgra, ALL_FORMATS)
        given = "BGRA as captured"

    def decode(tile: hdx_codec.EncodedTile) -> Array:
        return hdx_codec.decode(tile.fmt, tile.payload)

    def payload(tile: hdx_codec.EncodedTile) -> bytes:
        return tile.payload

    def chosen(tile: hdx_codec.EncodedTile) -> str:
        return f"{tile.fmt.wire_name}, {tile.channels} ch, {tile.bits} bit"

    return Trial(encode, payload, decode, c.samples, given, chosen)


TILE_SIDE = 512
"""The refiner's largest rectangle (8x8 tiles of 64 pixels)."""


def _hdx_tiles(c: Content) -> Trial:
    """What the refiner really sends: the content cut into rectangles of at most 512x512,
    each encoded on its own (so each may pick another format)."""
    source = c.samples if c.bgra is None else c.bgra
    h, w = source.shape[:2]
    cuts = [(y, x) for y in range(0, h, TILE_SIDE) for x in range(0, w, TILE_SIDE)]

    def encode() -> list[hdx_codec.EncodedTile]:
        if c.bgra is None:
            samples = np.asarray(source, np.uint16)
            return [hdx_codec.encode_grey16(samples[y:y + TILE_SIDE, x:x + TILE_SIDE])
                    for y, x in cuts]
        return [hdx_codec.encode_bgra(source[y:y + TILE_SIDE, x:x + TILE_SIDE], ALL_FORMATS)
                for y, x in cuts]

    def decode(tiles: list[hdx_codec.EncodedTile]) -> Array:
        out = np.empty_like(c.samples)
        for (y, x), tile in zip(cuts, tiles, strict=True):
            part = hdx_codec.decode(tile.fmt, tile.payload)
            view = out[y:y + TILE_SIDE, x:x + TILE_SIDE]
            view[...] = part if part.ndim == view.ndim else part[..., None]
        return out

    def payload(tiles: list[hdx_codec.EncodedTile]) -> bytes:
        return b"".join(t.payload for t in tiles)

    def chosen(tiles: list[hdx_codec.EncodedTile]) -> str:
        names = sorted({t.fmt.wire_name for t in tiles})
        return f"{len(tiles)} rects: {'+'.join(names)}"

    return Trial(encode, payload, decode, c.samples, "BGRA, 512x512 rects", chosen)


def _image_codec(encode_fn: Callable[[Array], Any], decode_fn: Callable[[bytes], Array],
                 rgb_only: str | None = None) -> Callable[[Content], Trial]:
    """A codec that takes the image array; ``rgb_only`` names a colour-only 8-bit codec."""
    def trial(c: Content) -> Trial:
        if rgb_only is not None:
            data, given = _eight_bit_rgb(c, rgb_only)
        else:
            data, given = c.samples, _given(c)
        return Trial(lambda: encode_fn(data), _as_bytes,
                     lambda payload: _squeeze(decode_fn(payload)), data, given)
    return trial


def _bytes_codec(encode_fn: Callable[[bytes], Any],
                 decode_fn: Callable[[bytes], Any]) -> Callable[[Content], Trial]:
    """A general-purpose compressor on the raw sample bytes (row-major, native byte order)."""
    def trial(c: Content) -> Trial:
        data = np.ascontiguousarray(c.samples)
        raw = data.tobytes()

        def decode(payload: bytes) -> Array:
            return np.frombuffer(decode_fn(payload), data.dtype).reshape(data.shape)
        return Trial(lambda: encode_fn(raw), _as_bytes, decode, data, _given(c) + ", raw bytes")
    return trial


def build_codecs(webp_level: int = WEBP_LEVEL, webp_method: int = WEBP_METHOD) -> list[Codec]:
    """Every candidate, hdx first."""
    ic = imagecodecs
    return [
        Codec("hdx", "hdx", "grey and 16-bit: JPEG-LS (raw if it cannot shrink them); colour: "
              "the smaller of JPEG XL e1 (self-checked) and Zstandard 3 on RGB bytes", _hdx),
        Codec("hdx_tiles", "hdx, 512 rects", "as hdx, on the refiner's 512x512 rectangles",
              _hdx_tiles),
        Codec("png6", "PNG 6", "imagecodecs.png_encode level=6",
              _image_codec(lambda a: ic.png_encode(a, level=6), ic.png_decode)),
        Codec("webp", "WebP lossless", f"imagecodecs.webp_encode lossless=True "
              f"level={webp_level} method={webp_method}, single-threaded",
              _image_codec(lambda a: ic.webp_encode(a, level=webp_level, lossless=True,
                                                    method=webp_method),
                           ic.webp_decode, rgb_only="WebP")),
        Codec("jpegls", "JPEG-LS", "imagecodecs.jpegls_encode (CharLS), near-lossless off",
              _image_codec(ic.jpegls_encode, ic.jpegls_decode)),
        Codec("jxl_e1", "JPEG XL e1", "imagecodecs.jpegxl_encode lossless=True effort=1 "
              "numthreads=1",
              _image_codec(lambda a: ic.jpegxl_encode(a, lossless=True, effort=1, numthreads=1),
                           lambda b: ic.jpegxl_decode(b, numthreads=1))),
        Codec("zlib6", "zlib 6", "imagecodecs.zlib_encode level=6 on the raw bytes",
              _bytes_codec(lambda a: ic.zlib_encode(a, level=6), ic.zlib_decode)),
        Codec("zstd3", "zstd 3", "imagecodecs.zstd_encode level=3 on the raw bytes",
              _bytes_codec(lambda a: ic.zstd_encode(a, level=3), ic.zstd_decode)),
        Codec("qoi", "QOI", "imagecodecs.qoi_encode (8-bit RGB/RGBA only)",
              _image_codec(ic.qoi_encode, ic.qoi_decode, rgb_only="QOI")),
    ]


@dataclass(frozen=True, slots=True)
class Timing:
    """How often to run each call: at most ``repeats`` timed runs after one untimed warm-up,
    stopping early once ``min_repeats`` are done and they took ``budget_s`` together."""

    repeats: int
    min_repeats: int
    budget_s: float


def _timed(fn: Callable[[], Any], timing: Timing,
           check: Callable[[Any], None]) -> tuple[list[float], Any]:
    """Run ``fn`` (one warm-up, then timed); ``check`` sees every result, untimed."""
    result = fn()
    check(result)
    samples: list[float] = []
    for _ in range(timing.repeats):
        t0 = time.perf_counter_ns()
        result = fn()
        samples.append((time.perf_counter_ns() - t0) / 1e9)
        check(result)
        if len(samples) >= timing.min_repeats and sum(samples) >= timing.budget_s:
            break
    return samples, result


def measure(c: Content, codec: Codec, timing: Timing) -> dict[str, Any]:
    """One row of the report: sizes, speeds and exactness of ``codec`` on ``c``."""
    row: dict[str, Any] = {"content": c.name, "codec": codec.name, "label": codec.label}
    try:
        trial = codec.trial(c)
    except NotApplicable as exc:
        return row | {"status": "n/a", "reason": str(exc)}
    row["given"] = trial.given
    payloads: set[bytes] = set()

    def keep(encoded: Any) -> None:
        payloads.add(trial.payload(encoded))

    try:
        enc_s, encoded = _timed(trial.encode, timing, keep)
    except Exception as exc:  # codec libraries raise their own error types
        return row | {"status": "n/a", "reason": f"encode failed: {type(exc).__name__}: {exc}"}
    payload = trial.payload(encoded)
    mismatches: list[str] = []

    def compare(decoded: Array) -> None:
        if decoded.shape != trial.expected.shape or decoded.dtype != trial.expected.dtype:
            mismatches.append(f"decoded {decoded.dtype} {decoded.shape}, "
                              f"want {trial.expected.dtype} {trial.expected.shape}")
        elif not np.array_equal(decoded, trial.expected):
            mismatches.append(f"{int(np.count_nonzero(decoded != trial.expected))} samples "
                              "differ")

    try:
        dec_s, _ = _timed(lambda: trial.decode(encoded), timing, compare)
    except Exception as exc:
        return row | {"status": "n/a", "bytes": len(payload), "exact": False,
                      "reason": f"decode failed: {type(exc).__name__}: {exc}"}
    enc_med, dec_med = statistics.median(enc_s), statistics.median(dec_s)
    row |= {
        "status": "ok",
        "bytes": len(payload),
        "ratio": round(c.raw_bytes / len(payload), 3),
        "encode_mb_s": round(c.raw_bytes / enc_med / 1e6, 1),
        "decode_mb_s": round(c.raw_bytes / dec_med / 1e6, 1),
        "encode_ms": round(enc_med * 1e3, 3),
        "decode_ms": round(dec_med * 1e3, 3),
        "exact": not mismatches,
        "deterministic": len(payloads) == 1,
        "encode_ms_samples": [round(s * 1e3, 3) for s in enc_s],
        "decode_ms_samples": [round(s * 1e3, 3) for s in dec_s],
    }
    if mismatches:
        row["reason"] = mismatches[0]
    if trial.chosen is not None:
        row["hdx_format"] = trial.chosen(encoded)
    return row


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    contents: tuple[str, ...]
    baseline: str
    max_ratio: float
    """hdx bytes / baseline bytes must be at most this."""


TARGETS = (
    Target("grey medical (8-bit): hdx bytes <= JPEG-LS", ("ct8", "mr8"), "jpegls", 1.0),
    Target("desktop: hdx bytes <= 0.75 x PNG 6", ("desktop", "text"), "png6", 0.75),
    Target("16-bit grey: hdx bytes <= 1.1 x JPEG-LS", ("ct16", "mr16"), "jpegls", 1.1),
)


def check_targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target on each of its contents, from rows of the same run."""
    by_key = {(r["content"], r["codec"]): r for r in rows}
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        for name, form in ((n, f) for n in target.contents for f in ("hdx", "hdx_tiles")):
            hdx, base = by_key.get((name, form)), by_key.get((name, target.baseline))
            entry: dict[str, Any] = {"target": target.name, "content": name, "hdx": form,
                                     "baseline": target.baseline, "max_ratio": target.max_ratio,
                                     "min_encode_mb_s": SPEED_TARGET_MB_S,
                                     # the fields every hdx bench target has (report.target)
                                     "value": None, "limit": target.max_ratio, "better": "lower",
                                     "detail": f"{name} as {form}: not measured"}
            if hdx is None or base is None:
                out.append(entry | {"pass": False, "reason": "not measured in this run"})
                continue
            if hdx.get("status") != "ok" or base.get("status") != "ok":
                out.append(entry | {"pass": False, "reason": "hdx or the baseline did not run"})
                continue
            ratio = hdx["bytes"] / base["bytes"]
            size_ok = ratio <= target.max_ratio
            speed_ok = hdx["encode_mb_s"] >= SPEED_TARGET_MB_S
            out.append(entry | {
                "value": round(ratio, 4),
                "detail": f"{name} as {form}: {hdx['encode_mb_s']} MB/s (needs "
                          f">= {SPEED_TARGET_MB_S}), exact {hdx['exact']}",
                "hdx_bytes": hdx["bytes"], "baseline_bytes": base["bytes"],
                "bytes_ratio": round(ratio, 4), "size_pass": size_ok,
                "hdx_encode_mb_s": hdx["encode_mb_s"], "speed_pass": speed_ok,
                "hdx_exact": hdx["exact"], "pass": size_ok and speed_ok and hdx["exact"]})
    return out


def _versions() -> dict[str, str]:
    libs = imagecodecs.version(dict)
    keys = ("imagecodecs", "charls", "libjxl", "libwebp", "libpng", "zlib", "zstd", "qoi")
    return {k: libs.get(k, "unknown") for k in keys} | {"opencv": str(cv2.__version__)}


def run(args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure every (content, codec) pair and return the report."""
    quick = bool(args.quick)
    timing = (Timing(1, 1, 0.0) if quick
              else Timing(args.repeats, min(3, args.repeats), args.budget_s))
    contents = [c for c in build_contents(quick) if c.name in args.contents]
    codecs = [k for k in build_codecs(args.webp_level, args.webp_method) if k.name in args.codecs]
    rows: list[dict[str, Any]] = []
    total, step = len(contents) * len(codecs), 0
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # hdx converts BGRA -> RGB with OpenCV: keep it on this thread
    try:
        for c in contents:
            for k in codecs:
                step += 1
                progress(f"[{step}/{total}] {c.name} {k.name}")
                rows.append(measure(c, k, timing))
    finally:
        cv2.setNumThreads(threads)
    return {
        "benchmark": NAME,
        "description": DESCRIPTION,
        "quick": quick,
        "settings": {"repeats": timing.repeats, "min_repeats": timing.min_repeats,
                     "budget_s": timing.budget_s, "threads": 1, "warmup": 1,
                     "speed_target_mb_s": SPEED_TARGET_MB_S,
                     "mb": "10^6 bytes of raw samples (w x h x channels x bytes per sample)"},
        "codecs": {k.name: {"label": k.label, "settings": k.settings} for k in codecs},
        "contents": [{"name": c.name, "description": c.description, "width": c.width,
                      "height": c.height, "channels": c.channels, "bits": c.bits,
                      "bytes_per_sample": c.samples.dtype.itemsize, "raw_bytes": c.raw_bytes,
                      "grey": c.channels == 1} for c in contents],
        "machine": report.machine_info(**_versions()),
        "results": rows,
        "targets": check_targets(rows),
        "headline": _headline(rows),
    }


def _headline(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """hdx's bytes and encode speed per content, for ``--compare``."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["codec"] == "hdx" and r.get("status") == "ok":
            out[f"{r['content']}/hdx_bytes"] = report.headline(r["bytes"], "lower", "bytes",
                                                               "hdx's lossless bytes")
            out[f"{r['content']}/hdx_encode_mb_s"] = report.headline(
                r["encode_mb_s"], "higher", "MB/s", "hdx's encode speed, one thread")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench lossless``."""
    contents, codecs = list(CONTENT_NAMES), list(CODEC_NAMES)
    parser.add_argument("--repeats", type=int, default=15,
                        help="most timed runs per measurement, after one warm-up (default 15)")
    parser.add_argument("--budget-s", type=float, default=1.0,
                        help="stop repeating a measurement after 3 runs once its runs took "
                        "this many seconds (default 1.0)")
    parser.add_argument("--contents", nargs="+", choices=contents, default=contents,
                        metavar="CONTENT",
                        help=f"content items (default all: {' '.join(contents)})")
    parser.add_argument("--codecs", nargs="+", choices=codecs, default=codecs, metavar="CODEC",
                        help=f"codecs (default all: {' '.join(codecs)})")
    parser.add_argument("--webp-level", type=int, default=WEBP_LEVEL,
                        help=f"WebP lossless quality 0-100 (effort; default {WEBP_LEVEL})")
    parser.add_argument("--webp-method", type=int, default=WEBP_METHOD, choices=range(7),
                        metavar="0-6", help=f"WebP method (default {WEBP_METHOD})")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the results; 1 if an hdx decode is not exact."""
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    progress = Progress(len(args.contents) * len(args.codecs), "lossless")
    result = run(args, progress.step)
    progress.close()
    text = markdown(result)
    plt = None if args.no_plot else report.pyplot()
    if plt is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot(result, args.out / f"{KIND}.png", plt)
        print(f"wrote {args.out / f'{KIND}.png'}", file=sys.stderr)
        text += f"\n![ratio vs encode speed]({KIND}.png)\n"
    for path in report.write_report(args.out, KIND, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text, end="")
    hdx_rows = [r for r in result["results"] if r["codec"] == "hdx"]
    return 0 if all(r.get("exact") for r in hdx_rows) else 1
