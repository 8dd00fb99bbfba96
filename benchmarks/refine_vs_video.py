"""Video latency during refinement: glass-to-glass p50/p95 with lossless refinement busy vs off.

The same content runs twice per round in Chromium, alternating which goes first: hdx with
build-to-lossless on (the default Config) and with ``Config(lossless=False)``. Content, on a
1920x1080 synthetic workstation:

- a cine viewport (512x512 CT, a new slice every frame) and the 24-cell frame-id strip of
  ``hdx bench latency`` at the top-left: the moving part, whose latency we measure;
- every ``--repaint-ms`` (500 ms) one large still area gets new detailed content, in turn: a
  document screen (1280x720 text), a random RGB patch (1280x540, incompressible) and a CT
  slice (480x480): each stays still long enough (> quiet_ms) to be refined, so tiles keep
  flowing while the video moves (under the ``lossless_budget_kbps`` byte budget).

The source stamps each frame's id when the capture loop takes it; the page decodes the strip
from what it drew (``hdx.onFrameDrawn``), as in hdx/bench/latency.py. Reports p50/p95 for both,
the ratios (target: p95 with refinement <= 1.2 x without; reported, not enforced), the tile
bytes/s the server actually sent during the refinement runs, and the fps delivered.

Usage: python benchmarks/refine_vs_video.py [--rounds 3] [--seconds 12] [--quick]
Writes benchmarks/results/refine_vs_video.{json,md,png} (``--quick``: refine_vs_video_quick.*).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import REPO, RESULTS, machine_info, pyplot, write_report

from hdx.bench.latency import (
    HDX_PROBE_JS,
    ID_BITS,
    latencies_from,
    stamp_frame_id,
    wait_until,
)

sys.path.insert(0, str(REPO))
from hdx.bench import content
from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.base import Frame, InputEvent
from hdx.video.selection import EncoderChoice
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

WIDTH, HEIGHT = 1920, 1080
CINE = (64, 64, 512)  # x, y, size of the cine viewport
MODES = ("refine", "off")
TARGET = 1.2
NAME = "refine_vs_video"
AREAS = ("text", "noise", "ct")
AREA_NAMES = {"text": "text 1280x720", "noise": "random RGB 1280x540", "ct": "CT 480x480"}

# The page's main thread draws every video frame and also decodes, draws and hashes tiles:
# record tasks over 50 ms, and how late a 10 ms timer fires (how long the thread was busy).
LONG_TASKS_JS = """(() => {
  window.longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longTasks.push([e.startTime, e.duration]);
  }).observe({type: 'longtask'});
  window.lags = [];
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    window.lags.push(Math.max(0, now - last - 10));
    last = now;
  }, 10);
})()"""


class Pool:
    """Every picture the source uses, built once so both modes show identical frames."""

    def __init__(self, quick: bool, areas: tuple[str, ...] = AREAS) -> None:
        n = 3 if quick else 8
        self.areas = areas
        self.background = content.desktop_bgra(WIDTH, HEIGHT)
        self.cine = [content.grey_to_bgra(content.grey8(content.ct_phantom(CINE[2], 12, s), 12))
                     for s in range(n)]
        self.text = [content.text_screen_bgra(1280, 720, seed=s) for s in range(3)]
        self.noise = [content.noise_bgra(1280, 540, seed=s) for s in range(3)]
        self.ct = [content.grey_to_bgra(content.grey8(content.ct_phantom(480, 12, 50 + s), 12))
                   for s in range(3)]

    def repaint(self, base: np.ndarray, k: int) -> str:
        """Paint the k-th still-area update into ``base``; returns what it was."""
        kind, i = self.areas[k % len(self.areas)], k // len(self.areas)
        if kind == "text":
            base[0:720, 640:1920] = self.text[i % len(self.text)]
        elif kind == "noise":
            base[540:1080, 640:1920] = self.noise[i % len(self.noise)]
        else:
            base[600:1080, 64:544] = self.ct[i % len(self.ct)]
        return kind


class BusyScreen:
    """A FrameSource: the moving viewport and id strip every frame, a still area repainted
    every ``repaint_frames`` frames. Frame content depends only on the frame id."""

    def __init__(self, pool: Pool, repaint_frames: int) -> None:
        self.pool = pool
        self.repaint_frames = repaint_frames
        self.base = pool.background.copy()
        self._lock = threading.Lock()
        self._next_id = 1
        self.produced: dict[int, float] = {}
        self.repaints: dict[str, int] = {}

    @property
    def size(self) -> tuple[int, int]:
        return WIDTH, HEIGHT

    def next_frame(self) -> Frame:
        with self._lock:
            frame_id = self._next_id % (1 << ID_BITS)
            self._next_id += 1
            if self.repaint_frames and frame_id % self.repaint_frames == 0:
                kind = self.pool.repaint(self.base, frame_id // self.repaint_frames)
                self.repaints[kind] = self.repaints.get(kind, 0) + 1
            frame = self.base.copy()
        x, y, n = CINE
        frame[y:y + n, x:x + n] = self.pool.cine[frame_id % len(self.pool.cine)]
        stamp_frame_id(frame, frame_id)
        self.produced[frame_id] = time.time()
        return frame

    def handle_input(self, event: InputEvent) -> None:
        pass

    def close(self) -> None:
        pass


def tile_summary(server: HdxServer) -> dict[str, Any] | None:
    sessions = server.session_summaries()
    return sessions[0]["lossless"] if sessions else None


async def measure(browser: Any, mode: str, pool: Pool, args: argparse.Namespace
                  ) -> dict[str, Any]:
    """One run: latencies of every frame drawn in ``args.seconds`` after the warm-up."""
    repaint_frames = max(1, round(args.repaint_ms / 1000 * args.fps)) if args.repaint_ms else 0
    source = BusyScreen(pool, repaint_frames)
    config = Config(port=0, fps=args.fps, lossless=mode == "refine",
                    lossless_budget_kbps=args.budget)
    server = HdxServer(source, config, encoder=EncoderChoice("libx264", "benchmark"))
    await server.start()
    context = await browser.new_context(viewport={"width": WIDTH + 40, "height": HEIGHT + 120})
    try:
        page = await context.new_page()
        await page.goto(server.url)
        await wait_until(page, "!!(window.hdx && window.hdx.status().framesDrawn > 0)")
        await page.evaluate(HDX_PROBE_JS)
        await page.evaluate(LONG_TASKS_JS)
        server_ms = watch_server_side(server)
        await asyncio.sleep(args.warmup)
        await page.evaluate("window.g2g.length = 0; window.longTasks.length = 0; "
                            "window.lags.length = 0")
        receiver_before = await page.evaluate("window.hdx.receiverStats()") or {}
        server_ms.clear()
        machine0, process0 = cpu_times(), time.process_time()
        before = tile_summary(server)
        video_before = server.session_summaries()[0]
        repaints_before = dict(source.repaints)
        started = time.time()
        coverage: list[float] = []
        while time.time() - started < args.seconds:
            await asyncio.sleep(0.1)
            tiles = (tile_summary(server) or {}).get("tiles")
            if tiles:
                coverage.append(tiles["coverage"])
        samples = await page.evaluate("window.g2g")
        elapsed = time.time() - started
        server_side = list(server_ms)
        machine1, process1 = cpu_times(), time.process_time()
        long_tasks = await page.evaluate("window.longTasks")
        lags = sorted(await page.evaluate("window.lags")) or [0.0]
        after = tile_summary(server)
        video_after = server.session_summaries()[0]
        status = await page.evaluate("window.hdx.status()")
        receiver = await page.evaluate("window.hdx.receiverStats()") or {}
    finally:
        await context.close()
        await server.stop()
    latencies, bad, seen = latencies_from(samples, source.produced)
    run: dict[str, Any] = {
        "mode": mode, "latencies_ms": latencies, "server_ms": server_side,
        "fps": len(seen) / elapsed, "unreadable": bad,
        "machine_cpu_pct": round(100 * (os.cpu_count() or 1) * (machine1[0] - machine0[0])
                                 / max(machine1[1] - machine0[1], 1e-9)),
        "server_cpu_pct": round(100 * (process1 - process0) / elapsed),
        "seconds": round(elapsed, 2),
        "video_frames_sent": video_after["frames_sent"] - video_before["frames_sent"],
        "video_frames_skipped": video_after["frames_skipped"] - video_before["frames_skipped"],
        "video_kbps": round((video_after["bytes_sent"] - video_before["bytes_sent"]) * 8
                            / elapsed / 1000),
        "client_latency_ms": status.get("latencyMs"),
        "long_tasks": len(long_tasks),
        "long_task_ms_per_s": round(sum(d for _, d in long_tasks) / elapsed, 1),
        "longest_task_ms": round(max((d for _, d in long_tasks), default=0.0), 1),
        "page_lag_p95_ms": round(pct(lags, 0.95), 1),
        "page_lag_max_ms": round(lags[-1], 1),
        "tile_counters": status.get("tileCounters"),
        "frames_dropped_by_browser": receiver.get("framesDropped"),
        **browser_delays(receiver_before, receiver),
        "repaints": {k: v - repaints_before.get(k, 0) for k, v in source.repaints.items()},
    }
    if before is not None and after is not None:
        run.update({
            "tile_bytes": after["bytes_sent"] - before["bytes_sent"],
            "tile_kBps": round((after["bytes_sent"] - before["bytes_sent"]) / elapsed / 1000, 1),
            "rects_sent": after["rects_sent"] - before["rects_sent"],
            "budget_waits": after["budget_waits"] - before["budget_waits"],
            "flow_waits": after["flow_waits"] - before["flow_waits"],
            "hash_mismatches": after["hash_mismatches"] - before["hash_mismatches"],
            "nacks": after["nacks"] - before["nacks"],
            "mean_coverage": round(statistics.mean(coverage), 3) if coverage else None,
            "formats": {f: n - before["formats"].get(f, 0) for f, n in after["formats"].items()
                        if n - before["formats"].get(f, 0)},
        })
    return run


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (zeros elsewhere)."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def watch_server_side(server: HdxServer) -> list[float]:
    """Record, for every frame the session sends, capture -> encoded and announced (ms): the
    server's share of the latency. Wraps the track's ``on_sent`` hook of this one session
    (instrumentation only; hdx is unchanged)."""
    session = next(iter(server.sessions.values()))
    out: list[float] = []
    original = session.track.on_sent

    def on_sent(frame: Any) -> None:
        out.append((time.time() - frame.captured_at) * 1000)
        if original is not None:
            original(frame)

    session.track.on_sent = on_sent
    return out


def browser_delays(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Chromium's mean jitter-buffer delay and decode time per frame over the window."""
    def delta(key: str) -> float:
        return float(after.get(key) or 0) - float(before.get(key) or 0)
    emitted, decoded = delta("jitterBufferEmittedCount"), delta("framesDecoded")
    return {
        "jitter_buffer_ms": round(delta("jitterBufferDelay") / emitted * 1000, 1)
        if emitted else None,
        "decode_ms": round(delta("totalDecodeTime") / decoded * 1000, 1) if decoded else None,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        lat = [x for r in mine for x in r["latencies_ms"]]
        if not lat:
            out[mode] = {"samples": 0}
            continue
        server_side = [x for r in mine for x in r["server_ms"]]
        out[mode] = {
            "samples": len(lat),
            "server_p50_ms": round(statistics.median(server_side), 1) if server_side else None,
            "server_p95_ms": round(pct(server_side, 0.95), 1) if server_side else None,
            "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(pct(lat, 0.95), 1),
            "p99_ms": round(pct(lat, 0.99), 1),
            "per_run_p95_ms": [round(pct(r["latencies_ms"], 0.95), 1) for r in mine
                               if r["latencies_ms"]],
            "mean_fps": round(statistics.mean(r["fps"] for r in mine), 1),
            "video_kbps": round(statistics.mean(r["video_kbps"] for r in mine)),
            "unreadable_frames": sum(r["unreadable"] for r in mine),
            "long_task_ms_per_s": round(statistics.mean(r["long_task_ms_per_s"] for r in mine),
                                        1),
            "longest_task_ms": max(r["longest_task_ms"] for r in mine),
            "page_lag_p95_ms": round(statistics.mean(r["page_lag_p95_ms"] for r in mine), 1),
            "page_lag_max_ms": max(r["page_lag_max_ms"] for r in mine),
            "jitter_buffer_ms": round(statistics.mean(
                r["jitter_buffer_ms"] for r in mine if r.get("jitter_buffer_ms") is not None), 1),
            "decode_ms": round(statistics.mean(
                r["decode_ms"] for r in mine if r.get("decode_ms") is not None), 1),
            "machine_cpu_pct": round(statistics.mean(r["machine_cpu_pct"] for r in mine)),
            "server_cpu_pct": round(statistics.mean(r["server_cpu_pct"] for r in mine)),
        }
        if mode == "refine":
            out[mode]["tile_kBps"] = round(statistics.mean(r.get("tile_kBps", 0) for r in mine), 1)
            out[mode]["mean_coverage"] = round(statistics.mean(
                r["mean_coverage"] for r in mine if r.get("mean_coverage") is not None), 3)
            out[mode]["budget_waits"] = sum(r.get("budget_waits", 0) for r in mine)
    if out["refine"].get("samples") and out["off"].get("samples"):
        out["ratio_p50"] = round(out["refine"]["p50_ms"] / out["off"]["p50_ms"], 3)
        out["ratio_p95"] = round(out["refine"]["p95_ms"] / out["off"]["p95_ms"], 3)
        out["target_met"] = out["ratio_p95"] <= TARGET
    return out


def markdown(summary: dict[str, Any], runs: list[dict[str, Any]],
             args: argparse.Namespace) -> str:
    lines = [
        "# Video latency during refinement (glass to glass, Chromium)", "",
        f"1920x1080 at {args.fps} fps: a 512x512 cine viewport and the frame-id strip change "
        f"every frame; every {args.repaint_ms} ms a large still area gets new content "
        f"({', '.join(AREA_NAMES[a] for a in args.areas)} in turn). {args.rounds} alternating "
        f"rounds of {args.seconds:.0f} s per mode after {args.warmup:.0f} s of warm-up; default "
        f"lossless settings (quiet {Config().lossless_quiet_ms} ms, budget "
        f"{args.budget} kbps while video moves).", "",
    ]
    if args.quick:
        lines += ["**Quick run (smoke test): too few samples to be representative.**", ""]
    lines += ["| mode | frames | p50 ms | p95 ms | p99 ms | fps | video kbps | tile kB/s | "
              "server p50 / p95 ms | jitter buffer ms | decode ms | page busy p95 / max ms | "
              "CPU % machine / server |",
              "| --- |" + " ---: |" * 12]
    for mode in MODES:
        s = summary[mode]
        if s.get("samples"):
            lines.append(f"| {mode} | {s['samples']} | {s['p50_ms']} | {s['p95_ms']} | "
                         f"{s['p99_ms']} | {s['mean_fps']} | {s['video_kbps']} | "
                         f"{s.get('tile_kBps', '-')} | {s['server_p50_ms']} / {s['server_p95_ms']} "
                         f"| {s['jitter_buffer_ms']} | {s['decode_ms']} "
                         f"| {s['page_lag_p95_ms']} / {s['page_lag_max_ms']} | "
                         f"{s['machine_cpu_pct']} / {s['server_cpu_pct']} |")
    if "ratio_p95" in summary:
        verdict = "met" if summary["target_met"] else "NOT met"
        lines += ["", f"**p95 ratio refine / off: {summary['ratio_p95']}** (target <= {TARGET}: "
                  f"{verdict}); p50 ratio {summary['ratio_p50']}. While refining, the server "
                  f"sent {summary['refine']['tile_kBps']} kB/s of tiles (budget "
                  f"{args.budget / 8:.0f} kB/s), waited on the budget "
                  f"{summary['refine']['budget_waits']} times, and on average "
                  f"{summary['refine']['mean_coverage']:.0%} of the tiles were verified exact."]
    lines += ["", "Every run:", "",
              "| mode | p50 ms | p95 ms | fps | frames skipped (server) | tile kB/s | rects "
              "(formats) | tile counters (page) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in runs:
        lat = r["latencies_ms"]
        if not lat:
            lines.append(f"| {r['mode']} | no frames |")
            continue
        formats = ", ".join(f"{n} {f}" for f, n in sorted(r.get("formats", {}).items()))
        counters = r.get("tile_counters") or {}
        shown = {k: v for k, v in counters.items() if v} if r["mode"] == "refine" else {}
        lines.append(
            f"| {r['mode']} | {statistics.median(lat):.1f} | {pct(lat, 0.95):.1f} | "
            f"{r['fps']:.1f} | {r['video_frames_skipped']} | {r.get('tile_kBps', '-')} | "
            f"{r.get('rects_sent', '-')} ({formats}) | {shown or '-'} |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in MODES:
        lat = np.sort([x for r in runs if r["mode"] == mode for x in r["latencies_ms"]])
        if len(lat):
            ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat),
                    label=f"refinement {'on (busy)' if mode == 'refine' else 'off'}")
    ax.set_xlabel("glass-to-glass latency (ms)")
    ax.set_ylabel("fraction of frames")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


async def main(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    log("[rvv] building content...")
    pool = Pool(args.quick, tuple(args.areas))
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            for round_no in range(args.rounds):
                order = MODES if round_no % 2 == 0 else MODES[::-1]
                for mode in order:
                    log(f"[rvv] round {round_no + 1}/{args.rounds}: refinement {mode} "
                        f"({args.seconds:.0f} s)...")
                    try:
                        run = await measure(browser, mode, pool, args)
                    except Exception as exc:  # reported; the program then exits 1
                        errors.append(f"round {round_no} {mode}: {exc!r}")
                        log(f"[rvv]   failed: {exc!r}")
                        continue
                    runs.append(run)
                    lat = run["latencies_ms"] or [float("nan")]
                    log(f"[rvv]   {len(run['latencies_ms'])} frames, p50 "
                        f"{statistics.median(lat):.1f} ms, p95 {pct(lat, 0.95):.1f} ms, "
                        f"{run['fps']:.1f} fps, tiles {run.get('tile_kBps', '-')} kB/s")
        finally:
            await browser.close()
    summary = summarize(runs)
    report = {
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_s": round(time.monotonic() - started, 1),
        "summary": summary,
        "errors": errors,
        "runs": [{k: v for k, v in r.items() if k not in ("latencies_ms", "server_ms")}
                 | {k: [round(x, 2) for x in r[k]] for k in ("latencies_ms", "server_ms")}
                 for r in runs],
    }
    name = NAME + ("_quick" if args.quick else "")
    text = markdown(summary, runs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plot and plot(runs, args.out / f"{name}.png"):
        text += f"\n![latency CDF]({name}.png)\n"
    write_report(args.out, name, report, text)
    print(text)
    log(f"[rvv] done in {report['wall_s']} s")
    return 1 if errors else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Exits non-zero only when a run fails, never on a target miss.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each runs both modes, alternating which goes first")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after the first frame before measuring")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--budget", type=int, default=Config().lossless_budget_kbps,
                        metavar="KBPS", help="lossless_budget_kbps for the refine runs "
                        "(default: the server's default)")
    parser.add_argument("--repaint-ms", type=int, default=500,
                        help="how often a large still area gets new content (0: never, so only "
                             "the moving part changes: the cost of refinement being on at all)")
    parser.add_argument("--areas", nargs="+", choices=AREAS, default=list(AREAS),
                        help="which still-area contents to cycle through")
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 4 s (smoke test; writes refine_vs_video_quick.*)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 4.0, 2.0
    return args


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
