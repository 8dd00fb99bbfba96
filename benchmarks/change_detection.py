"""Benchmark tile change detection against a plain frame copy, measured in the same run.

For 1080p and 4K BGRA frames with about 1% of the 64x64 tiles changed (every pixel of a changed
tile differs), time the native backend, the numpy backend and ``np.copyto`` of one frame, and
report the median milliseconds and the effective bandwidth: the bytes of both frames (the two
frames compared; for the copy, the frame read plus the frame written) over the median time, and
its ratio to the copy's bandwidth.

Run from the repository root: ``python benchmarks/change_detection.py``. Writes
``benchmarks/results/change_detection.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _report
import numpy as np

import hdx.damage as damage

SIZES = {"1080p": (1080, 1920), "4K": (2160, 3840)}
TILE = 64
CHANGED_FRACTION = 0.01


def frames(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """prev, cur and the number of changed tiles."""
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, 256, size=(h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    rows, cols = -(-h // TILE), -(-w // TILE)
    n = max(1, round(rows * cols * CHANGED_FRACTION))
    for i in rng.choice(rows * cols, size=n, replace=False):
        ty, tx = divmod(int(i), cols)
        cur[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE] ^= 0xFF
    return prev, cur, n


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e6


def time_methods(prev: np.ndarray, cur: np.ndarray, repeats: int) -> dict[str, float]:
    dst = np.empty_like(cur)
    return {
        "copy": median_ms(lambda: np.copyto(dst, cur), repeats),
        "native": median_ms(lambda: damage.tile_change_map_native(prev, cur, TILE), repeats),
        "numpy": median_ms(lambda: damage.tile_change_map_numpy(prev, cur, TILE), repeats),
    }


def run(repeats: int) -> dict[str, Any]:
    if damage.NATIVE_IMPORT_ERROR is not None:
        raise SystemExit(f"hdx._damage_native is not built: {damage.NATIVE_IMPORT_ERROR}")
    rows: list[dict[str, Any]] = []
    for name, (h, w) in SIZES.items():
        prev, cur, n_changed = frames(h, w, seed=h)
        want = damage.tile_change_map_numpy(prev, cur, TILE)
        assert int(want.sum()) == n_changed
        assert np.array_equal(damage.tile_change_map_native(prev, cur, TILE), want)
        both = 2 * cur.nbytes
        timings = time_methods(prev, cur, repeats)
        copy_gbps = both / (timings["copy"] / 1e3) / 1e9
        for method, ms in timings.items():
            gbps = both / (ms / 1e3) / 1e9
            rows.append(
                {
                    "size": name,
                    "width": w,
                    "height": h,
                    "tiles": int(want.size),
                    "changed_tiles": n_changed,
                    "method": method,
                    "median_ms": round(ms, 4),
                    "gb_per_s": round(gbps, 2),
                    "ratio_to_copy": round(gbps / copy_gbps, 3),
                }
            )
    return {
        "benchmark": "change_detection",
        "description": __doc__.strip().splitlines()[0],
        "tile": TILE,
        "pixel_format": "BGRA (4 bytes per pixel)",
        "changed_fraction": CHANGED_FRACTION,
        "repeats": repeats,
        "bandwidth_bytes": "2 x frame bytes (both frames compared; copy: read + write)",
        "machine": _report.machine_info(),
        "results": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Tile change detection vs frame copy",
        "",
        f"BGRA frames, {report['tile']}x{report['tile']} tiles, about "
        f"{report['changed_fraction']:.0%} of tiles changed, median of {report['repeats']} runs. "
        "GB/s counts the bytes of both frames; the ratio is to `np.copyto` of one frame in the "
        "same run.",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, numpy {m['numpy']}.",
        "",
        "| size | changed tiles | method | median ms | GB/s | x copy bandwidth |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['size']} | {r['changed_tiles']}/{r['tiles']} | {r['method']} | "
            f"{r['median_ms']:.3f} | {r['gb_per_s']:.1f} | {r['ratio_to_copy']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, default=_report.RESULTS)
    args = parser.parse_args()
    report = run(args.repeats)
    table = markdown(report)
    _report.write_report(args.out, "change_detection", report, table)
    print(table, end="")


if __name__ == "__main__":
    main()
