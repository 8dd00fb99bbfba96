"""``hdx bench gpu``: what an NVIDIA GPU offers hdx, and the optional CuPy backend.

- NVML facts (name, driver, NVENC capacity) and the theoretical memory bandwidth
  (2 x memory clock x bus width: DDR/HBM transfer twice a clock);
- every NVENC encoder opened for real, or the reason it cannot be (H100/H200 have no NVENC);
- the CuPy backend (``pip install 'hdx[cuda]'``, never required): the tile change map and the
  BGRA -> I420 conversion written once against the numpy API (:func:`tile_change_map_xp`,
  :func:`bgra_to_i420_xp`), so the same code runs on numpy (this machine, and the test that
  proves it equals hdx's own results bit for bit) and on CuPy. GB/s counts bytes read and
  written once, against the device's theoretical bandwidth. The numpy run is always reported
  as the CPU reference.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from hdx.bench import codecs, report
from hdx.bench.progress import Progress
from hdx.video.gpu_probe import probe_gpus

NAME = "gpu"
TILE = 64
SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160)}
# OpenCV's fixed-point BT.601 limited-range RGB -> YUV coefficients (imgproc color_yuv, 20-bit
# shift); chroma is taken from the top-left pixel of each 2x2 block, as OpenCV does.
_SHIFT = 20
_CY = (269484, 528482, 102760)
_CU = (-155188, -305135, 460324)
_CV = (460324, -385875, -74448)


def tile_change_map_xp(prev: Any, cur: Any, tile: int, xp: Any) -> Any:
    """:func:`hdx.damage.tile_change_map` for any array module ``xp`` (numpy or cupy)."""
    h, w = prev.shape[:2]
    diff = prev != cur
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    th, tw = -(-h // tile), -(-w // tile)
    padded = xp.zeros((th * tile, tw * tile), dtype=bool)
    padded[:h, :w] = diff
    return padded.reshape(th, tile, tw, tile).any(axis=(1, 3))


def _dot(coeffs: tuple[int, int, int], r: Any, g: Any, b: Any, offset: int) -> Any:
    cr, cg, cb = coeffs
    return (cr * r + cg * g + cb * b + (offset << _SHIFT) + (1 << (_SHIFT - 1))) >> _SHIFT


def bgra_to_i420_xp(frame: Any, xp: Any) -> Any:
    """:func:`hdx.video.encoder.bgra_to_i420` (OpenCV's I420) for any array module ``xp``:
    the same integer arithmetic, so the result is identical byte for byte."""
    h, w = frame.shape[:2]
    b, g, r = (frame[..., i].astype(xp.int32) for i in range(3))
    out = xp.empty((h * 3 // 2, w), dtype=xp.uint8)
    out[:h] = _dot(_CY, r, g, b, 16).astype(xp.uint8)
    rs, gs, bs = r[::2, ::2], g[::2, ::2], b[::2, ::2]
    quarter = (h // 2) * (w // 2)
    chroma = out[h:].reshape(-1)
    chroma[:quarter] = _dot(_CU, rs, gs, bs, 128).astype(xp.uint8).reshape(-1)
    chroma[quarter:] = _dot(_CV, rs, gs, bs, 128).astype(xp.uint8).reshape(-1)
    return out


def cupy_module() -> tuple[Any | None, str]:
    """(cupy, device description) or (None, why not)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); pip install 'hdx[cuda]' on a CUDA machine"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        if count < 1:
            return None, "CuPy is installed but sees no CUDA device"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception as exc:  # CUDA raises its own error types when the driver is missing
        return None, f"CuPy cannot use CUDA here: {exc}"
    return cupy, str(name)


def nvml_bandwidth() -> dict[str, Any]:
    """GPU 0's memory bus width, max memory clock and theoretical bandwidth, from NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError, ImportError
        return {"error": f"NVML unavailable: {exc}"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        bus_bits = int(pynvml.nvmlDeviceGetMemoryBusWidth(handle))
        clock_mhz = int(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM))
        return {"bus_width_bits": bus_bits, "memory_clock_mhz": clock_mhz,
                "theoretical_gb_s": round(2 * clock_mhz * 1e6 * bus_bits / 8 / 1e9, 1)}
    except Exception as exc:
        return {"error": f"NVML could not read memory facts: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def measure_backend(xp: Any, sync: Callable[[], None], repeats: int,
                    sizes: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Median seconds and GB/s of both kernels per size, frames already in ``xp`` memory."""
    rows = []
    for label, (w, h) in sizes.items():
        rng = np.random.default_rng(0)
        host = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        host2 = host.copy()
        host2[:: h // 8, :: w // 8] ^= 1  # a few changed tiles: the compare reads both frames
        prev, cur = xp.asarray(host), xp.asarray(host2)
        change_s = _time(partial(tile_change_map_xp, prev, cur, TILE, xp), sync, repeats)
        colour_s = _time(partial(bgra_to_i420_xp, cur, xp), sync, repeats)
        copy_s = _time(cur.copy, sync, repeats)
        frame = host.nbytes
        rows.append({
            "size": label, "width": w, "height": h,
            "change_map_ms": round(change_s * 1000, 3),
            "change_map_gb_s": round(2 * frame / change_s / 1e9, 2),
            "colour_ms": round(colour_s * 1000, 3),
            "colour_gb_s": round((frame + frame * 3 // 8) / colour_s / 1e9, 2),
            "copy_gb_s": round(2 * frame / copy_s / 1e9, 2),
        })
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Probe, try NVENC, and time the numpy and (if present) CuPy backends."""
    sizes = {"small": (320, 192)} if args.quick else SIZES
    repeats = 3 if args.quick else args.repeats
    nvenc = [s for s in codecs.SPECS if s.bgra_input]
    with Progress(len(nvenc) + 2, "gpu") as progress:
        probe = probe_gpus()
        nvenc_rows = {}
        for spec in nvenc:
            progress.step(f"opening {spec.codec}")
            nvenc_rows[spec.name] = codecs.availability(spec) or "available"
        progress.step("numpy backend (CPU reference)")
        cpu_rows = measure_backend(np, lambda: None, repeats, sizes)
        progress.step("CuPy backend")
        cupy, device = cupy_module()
        gpu_rows = None
        if cupy is not None:
            gpu_rows = measure_backend(cupy, cupy.cuda.Device(0).synchronize, repeats, sizes)
    bandwidth = nvml_bandwidth() if probe.gpus else {"error": probe.reason}
    peak = bandwidth.get("theoretical_gb_s")
    if gpu_rows and peak:
        for row in gpu_rows:
            row["change_map_share_of_peak"] = round(row["change_map_gb_s"] / peak, 3)
            row["colour_share_of_peak"] = round(row["colour_gb_s"] / peak, 3)
    return {
        "benchmark": NAME, "description": (__doc__ or NAME).split("\n\n")[0],
        "quick": bool(args.quick), "settings": {"repeats": repeats, "tile": TILE},
        "machine": report.machine_info(),
        "nvml": {"driver": probe.driver_version, "reason": probe.reason,
                 "gpus": [{"name": g.name, "h264_encoder_capacity": g.h264_encoder_capacity,
                           "encoder_note": g.encoder_note} for g in probe.gpus]},
        "memory_bandwidth": bandwidth, "nvenc": nvenc_rows,
        "cupy": {"device": device, "rows": gpu_rows} if cupy is not None else {"unavailable":
                                                                               device},
        "numpy": cpu_rows, "headline": {}, "targets": [],
    }


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown."""
    nvml = result["nvml"]
    gpus = ", ".join(g["name"] for g in nvml["gpus"]) or "none"
    lines = [f"# hdx bench {NAME}", "", result["description"], "",
             f"- GPUs (NVML): {gpus}; driver {nvml['driver']}; {nvml['reason']}",
             f"- Memory bandwidth: {result['memory_bandwidth']}", ""]
    lines += ["| NVENC encoder | here |", "| --- | --- |"]
    lines += [f"| {name} | {state} |" for name, state in result["nvenc"].items()]
    lines += ["", "| backend | size | change map ms (GB/s) | I420 ms (GB/s) | copy GB/s |",
              "| --- | --- | ---: | ---: | ---: |"]
    cupy_rows = result["cupy"].get("rows") or []
    for backend, rows in (("numpy", result["numpy"]), ("cupy", cupy_rows)):
        for r in rows:
            lines.append(f"| {backend} | {r['size']} | {r['change_map_ms']} "
                         f"({r['change_map_gb_s']}) | {r['colour_ms']} ({r['colour_gb_s']}) | "
                         f"{r['copy_gb_s']} |")
    if "unavailable" in result["cupy"]:
        lines += ["", f"CuPy backend not measured: {result['cupy']['unavailable']}."]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench gpu``."""
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per kernel")


def main(args: argparse.Namespace) -> int:
    """Run, print the Markdown, write JSON and Markdown into ``args.out``."""
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    result = run(args)
    text = markdown(result)
    for path in report.write_report(args.out, NAME, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text)
    return 0
