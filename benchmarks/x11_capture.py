"""X11 capture cost at 1080p and 4K on a real Xvfb: MIT-SHM vs XGetImage, and what a still
desktop costs with DAMAGE.

Per size, in one run (medians of ``--frames`` grabs, a plain copy of a frame of the same size
as the baseline, because this machine is shared and noisy):
- ``shm grab``: MIT-SHM copy of the screen into a new array (``grab_raw``);
- ``shm frame``: what the capture thread does per changed frame: DAMAGE query, MIT-SHM grab,
  conversion to hdx's BGRA frame, cursor read;
- ``XGetImage frame``: the same without shared memory (remote or sandboxed X servers);
- ``still frame``: ``next_frame`` when nothing was drawn: DAMAGE says so, nothing is copied;
- ``memcpy``: ``np.copy`` of a frame-sized array.

Usage: python benchmarks/x11_capture.py [--frames 60] [--sizes 1920x1080,3840x2160]
Writes benchmarks/results/x11_capture.{json,md}. Needs Xvfb (Debian: apt-get install xvfb).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _report
import numpy as np

from hdx.sources.x11 import X11Screen, X11Source


def start_xvfb(size: str) -> tuple[subprocess.Popen[bytes], str]:
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                                f"{size}x24", "-nolisten", "tcp"], pass_fds=(write_fd,),
                               stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 20
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    if not number.strip():
        process.kill()
        sys.exit("Xvfb did not start (Debian: apt-get install xvfb)")
    return process, f":{int(number)}"


def paint(display: str, width: int, height: int) -> None:
    """Noise over the whole screen, so grabs move real pixels."""
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    root = d.screen().root
    gc = root.create_gc()
    rng = np.random.default_rng(0)
    rows = max(1, 65536 // (width * 4))
    for top in range(0, height, rows):
        block = rng.integers(0, 2**24, size=(min(rows, height - top), width), dtype=np.uint32)
        root.put_image(gc, 0, top, width, block.shape[0], X.ZPixmap, 24, 0,
                       block.astype("<u4").tobytes())
    d.sync()
    d.close()


def median_ms(action: Callable[[], Any], frames: int) -> float:
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def measure(size: str, frames: int) -> dict[str, Any]:
    width, height = (int(v) for v in size.split("x"))
    process, display = start_xvfb(size)
    try:
        paint(display, width, height)
        shm = X11Source(X11Screen(display))
        plain = X11Source(X11Screen(display, use_shm=False, use_damage=False))
        reference = np.zeros((height, width, 4), np.uint8)
        try:
            def changed_frame(source: X11Source) -> Callable[[], Any]:
                def grab() -> Any:
                    source._frame = None  # as after a change: force a grab and conversion
                    return source.next_frame()
                return grab

            shm.next_frame()
            row = {
                "size": size,
                "memcpy_ms": median_ms(lambda: np.copy(reference), frames),
                "shm_grab_ms": median_ms(shm.grab_raw, frames),
                "shm_frame_ms": median_ms(changed_frame(shm), frames),
                "xgetimage_frame_ms": median_ms(changed_frame(plain), frames),
                "still_frame_ms": median_ms(shm.next_frame, frames),
                "capture": shm.capture_method,
            }
        finally:
            shm.close()
            plain.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    base = row["memcpy_ms"]
    row["shm_frame_vs_memcpy"] = round(row["shm_frame_ms"] / base, 2)
    row["xgetimage_vs_shm"] = round(row["xgetimage_frame_ms"] / row["shm_frame_ms"], 2)
    row["shm_frame_fps_one_thread"] = round(1000.0 / row["shm_frame_ms"], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sizes", default="1920x1080,3840x2160")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        print(f"measuring {size} ({args.frames} grabs per method)...", file=sys.stderr)
        rows.append(measure(size, args.frames))
    lines = [
        "# X11 capture (Xvfb, median ms per frame)",
        "",
        "| size | memcpy | MIT-SHM grab | MIT-SHM frame | XGetImage frame | still frame "
        "| frame / memcpy | XGetImage / SHM | fps (one thread) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['memcpy_ms']:.2f} | {r['shm_grab_ms']:.2f} | "
            f"{r['shm_frame_ms']:.2f} | {r['xgetimage_frame_ms']:.2f} | "
            f"{r['still_frame_ms']:.3f} | {r['shm_frame_vs_memcpy']} | "
            f"{r['xgetimage_vs_shm']} | {r['shm_frame_fps_one_thread']} |")
    lines += ["", "*frame* = DAMAGE query + grab + BGRA conversion + cursor read, what the "
              "capture thread does per changed frame; *still frame* = nothing drawn, so "
              "nothing is copied.", ""]
    markdown = "\n".join(lines)
    print(markdown)
    _report.write_report(_report.RESULTS, "x11_capture",
                         {"machine": _report.machine_info(), "frames": args.frames,
                          "rows": rows}, markdown)


if __name__ == "__main__":
    main()
