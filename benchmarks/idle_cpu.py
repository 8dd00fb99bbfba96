"""CPU an `hdx serve` process spends while its desktop is still, with a viewer connected.

A still desktop should cost near nothing: the capture loop still polls at the configured fps,
but the source returns the identical frame object, so nothing is compared, encoded or sent.
Measured from /proc/PID/stat (user + system time of the server process alone) over a window,
in three states measured in the same run: no viewer, a viewer on a still desktop, and a viewer
on a desktop in cine (the busy reference).

Usage: python benchmarks/idle_cpu.py [--seconds 10] [--size 1920x1080]
Writes benchmarks/results/idle_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import _report

from hdx.client.viewer import Viewer

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(width: int, height: int, cine: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hdx", "serve", "--port", str(port), "--encoder", "x264",
         "--width", str(width), "--height", str(height), "--cine-seconds", cine, "--fps", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "healthz", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("hdx serve did not start")


async def measure(state: str, width: int, height: int, seconds: float) -> dict[str, Any]:
    cine = "-1" if state == "viewer, cine" else "0"
    process, url = start_server(width, height, cine)
    try:
        viewer = None
        if state != "no viewer":
            viewer = Viewer(url)
            await viewer.connect()
            await viewer.next_frame()
        await asyncio.sleep(2.0)  # settle: first frames, settle frame, REMB
        before, started = cpu_seconds(process.pid), time.monotonic()
        if viewer is not None and state == "viewer, cine":
            # Keep consuming frames so the busy reference really streams.
            end = started + seconds
            while time.monotonic() < end:
                await viewer.next_frame()
        else:
            await asyncio.sleep(seconds)
        used, elapsed = cpu_seconds(process.pid) - before, time.monotonic() - started
        if viewer is not None:
            await viewer.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {"state": state, "cpu_s": round(used, 3), "seconds": round(elapsed, 2),
            "percent_of_one_core": round(100 * used / elapsed, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    for state in ("no viewer", "viewer, still desktop", "viewer, cine"):
        print(f"[idle] {state} ({args.seconds:.0f} s)...", file=sys.stderr, flush=True)
        rows.append(await measure(state, width, height, args.seconds))
    busy = rows[-1]["percent_of_one_core"]
    lines = ["# Server CPU on a still desktop", "",
             f"`hdx serve` at {args.size}, 30 fps capture, libx264, one Python viewer on "
             f"loopback; CPU of the server process over {args.seconds:.0f} s.", "",
             "| state | % of one core | x cine |", "| --- | ---: | ---: |"]
    for row in rows:
        ratio = row["percent_of_one_core"] / busy if busy else float("nan")
        lines.append(f"| {row['state']} | {row['percent_of_one_core']} | {ratio:.3f} |")
    text = "\n".join(lines) + "\n"
    _report.write_report(_report.RESULTS, "idle_cpu",
                         {"machine": _report.machine_info(), "size": args.size, "rows": rows},
                         text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
