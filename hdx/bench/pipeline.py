"""``hdx bench pipeline``: what hdx's server pipeline costs, against baselines in the same run.

1. **Stages** at 720p, 1080p and 4K. The real ``SyntheticDesktop`` pages its CT viewport one
   slice per frame (after one untimed lap, so every slice image is cached and the render is
   steady state) and each new frame goes through every stage in turn on this thread:
   capture (``next_frame``; and ``PushSource.push`` + ``next_frame``, the hand-off an embedding
   program pays), change map (native, and its numpy twin as the baseline), colour (hdx's OpenCV
   ``bgra_to_i420``, and PyAV's ``from_ndarray(...).reformat('yuv420p')`` as the baseline),
   encode (``H264Encoder('libx264', fps=30, 8 Mbit/s).encode``, which includes the colour
   conversion; "x264" = encode - colour for the same frame) and send (aiortc's H.264 packetizer
   and ``RtpPacket.serialize`` of every payload: the Python-side CPU of sending, without SRTP or
   the socket). total = capture + change map (native) + encode + send, and 1000 / total p50 is
   the frame rate one thread could sustain. OpenCV and x264 keep their default helper threads,
   as in the server; hdx overlaps capture and encode on two threads, so this is a floor.
2. **Change detection** at 1080p and 4K: random BGRA frames with about 1% of the 64x64 tiles
   changed (every pixel of a changed tile differs); native and numpy against ``np.copyto`` of
   one frame. GB/s counts both frames' bytes (the two frames compared; for the copy, the frame
   read plus the frame written) over the median time.
3. **Idle CPU** of a real ``hdx serve`` subprocess (libx264, 30 fps capture): user + system CPU
   seconds of the server process from ``/proc/PID/stat`` over a fixed window, with no viewer,
   with one Python viewer (:class:`hdx.client.viewer.Viewer`) on a still desktop once it has
   been refined to lossless, and with that viewer during cine (the busy reference).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiortc
import av
import cv2
import numpy as np
import numpy.typing as npt
from aiortc.codecs.h264 import H264Encoder as RtpH264Packetizer
from aiortc.rtp import RtpPacket

import hdx.damage as damage
from hdx.bench import report
from hdx.bench.processes import stop_process
from hdx.bench.progress import Progress
from hdx.sources.base import Frame
from hdx.sources.push import PushSource
from hdx.sources.synthetic import SLICE_COUNT, SyntheticDesktop
from hdx.video.encoder import H264Encoder, bgra_to_i420

T = TypeVar("T")
NAME = "pipeline"
DESCRIPTION = ("hdx's server pipeline: ms per stage at 720p/1080p/4K, change detection vs a "
               "frame copy, idle CPU of a running hdx serve")
PARTS = ("stages", "change", "idle")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
"""name -> (width, height)."""
STAGE_FRAMES = {"720p": 60, "1080p": 60, "4K": 30}
"""Measured frames per size in a full run."""
QUICK_STAGE_SIZES, QUICK_STAGE_FRAMES, QUICK_WARMUP = ("720p", "1080p"), 6, 2
WARMUP = 5
"""Frames encoded but not counted: the IDR and x264's first frames."""
FPS, BITRATE, TILE = 30, 8_000_000, 64
TARGET_SIZE, TARGET_FPS = "1080p", 30.0
STAGES = {
    "capture": "capture: SyntheticDesktop.next_frame",
    "capture_push": "capture: PushSource.push + next_frame",
    "change_native": "change map: native",
    "change_numpy": "change map: numpy",
    "colour_hdx": "colour: bgra_to_i420 (OpenCV)",
    "colour_pyav": "colour: PyAV reformat",
    "encode": "encode: H264Encoder.encode (incl. colour)",
    "x264": "  of which x264 (encode - colour)",
    "send": "send: aiortc pack + RtpPacket.serialize",
    "total": "total (capture+change+encode+send)",
}
BASELINES = {"change_native": "change_numpy", "colour_hdx": "colour_pyav"}
"""stage -> the stage it is compared with (same frames, same run)."""
COLOURS = dict(zip(["capture", "change_native", "colour_hdx", "x264", "send", "colour_pyav",
                    "change_numpy"], [f"C{i}" for i in range(7)], strict=True))
CHANGE_SIZES = ("1080p", "4K")
CHANGED_FRACTION = 0.01
CHANGE_REPEATS, QUICK_CHANGE_REPEATS = 100, 5
CHANGE_TARGET = 0.5
IDLE_STATES = ("no viewer", "viewer, still desktop", "viewer, cine")
IDLE_SECONDS, QUICK_IDLE_SECONDS = 10.0, 2.0
IDLE_SIZE, QUICK_IDLE_SIZE = "1920x1080", "640x360"
IDLE_TARGET = 2.0
SETTLE_S = 2.0
"""Seconds after the viewer's first frame (or the server's start) before the window opens."""
LOSSLESS_TIMEOUT_S = 20.0
"""A still desktop is first refined to lossless; the idle window starts once it is (or after
this long, noted in the report)."""
SERVER_START_S = 30.0

Array = npt.NDArray[Any]


# -- 1. stages ---------------------------------------------------------------------------------

def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and its wall time in ms."""
    t0 = time.perf_counter_ns()
    result = fn(*args)
    return result, (time.perf_counter_ns() - t0) / 1e6


def push_and_pull(source: PushSource, frame: Frame) -> Frame:
    """What an embedding program's frame hand-off costs: push, then the capture loop's pull."""
    source.push(frame)
    return source.next_frame()


def pyav_i420(frame: Frame) -> Any:
    """The baseline colour conversion: what aiortc's own encoders do with an ndarray frame."""
    return av.VideoFrame.from_ndarray(frame, format="bgra").reformat(format="yuv420p")


def send(packetizer: RtpH264Packetizer, packet: Any, seq: int) -> tuple[int, int]:
    """Packetize and serialize as aiortc's RTCRtpSender does; returns (packets, bytes)."""
    payloads, timestamp = packetizer.pack(packet)
    wire = 0
    for i, payload in enumerate(payloads):
        rtp = RtpPacket(payload_type=96, marker=int(i == len(payloads) - 1),
                        sequence_number=(seq + i) & 0xFFFF, timestamp=timestamp,
                        ssrc=0x1234, payload=payload)
        wire += len(rtp.serialize())
    return len(payloads), wire


def psnr(a: Array, b: Array) -> float:
    """PSNR in dB of two uint8 images (99 when identical): a check that encode really ran."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _cine_desktop(w: int, h: int) -> tuple[SyntheticDesktop, Frame]:
    """A desktop in endless cine after one untimed lap (every slice cached), and its last
    frame."""
    desktop = SyntheticDesktop(w, h, cine_seconds=-1, fps=FPS)
    prev = desktop.next_frame()
    for _ in range(SLICE_COUNT - 1):
        prev = desktop.next_frame()
    return desktop, prev


def measure_stages(name: str, frames: int, warmup: int, progress: Progress) -> dict[str, Any]:
    """Run ``warmup + frames`` cine frames through every stage; per-frame samples in ms."""
    w, h = SIZES[name]
    progress.note(f"stages {name}: one untimed cine lap ({SLICE_COUNT} frames)")
    desktop, prev = _cine_desktop(w, h)
    push = PushSource(w, h)
    encoder = H264Encoder("libx264", w, h, fps=FPS, bitrate_bps=BITRATE)
    decoder: Any = av.CodecContext.create("h264", "r")
    packetizer = RtpH264Packetizer()
    samples: dict[str, list[float]] = {key: [] for key in STAGES}
    stats: dict[str, list[float]] = {"kbytes": [], "rtp_packets": [], "psnr_db": [],
                                     "changed_tiles": []}
    expected: dict[int, Array] = {}  # pts -> the I420 the decoder should give back
    seq = 0
    try:
        for i in range(warmup + frames):
            cur, t_capture = timed(desktop.next_frame)
            if cur is prev:
                raise RuntimeError("the synthetic desktop stopped changing; cine must not end")
            _, t_push = timed(push_and_pull, push, cur)
            changed, t_native = timed(damage.tile_change_map_native, prev, cur, TILE)
            changed_np, t_numpy = timed(damage.tile_change_map_numpy, prev, cur, TILE)
            if not np.array_equal(changed, changed_np):
                raise RuntimeError("the native and numpy change maps disagree")
            i420, t_hdx = timed(bgra_to_i420, cur)
            _, t_pyav = timed(pyav_i420, cur)
            pts = i * (90000 // FPS)
            encoded, t_encode = timed(encoder.encode, cur, pts)
            (n_packets, _), t_send = timed(send, packetizer, encoded.packet, seq)
            seq += n_packets
            expected[pts] = i420
            for decoded in decoder.decode(encoded.packet):  # quality check, untimed
                want = expected.pop(decoded.pts)
                if i >= warmup:
                    stats["psnr_db"].append(psnr(decoded.to_ndarray(format="yuv420p"), want))
            prev = cur
            if i < warmup:
                continue
            row = {"capture": t_capture, "capture_push": t_push, "change_native": t_native,
                   "change_numpy": t_numpy, "colour_hdx": t_hdx, "colour_pyav": t_pyav,
                   "encode": t_encode, "x264": t_encode - t_hdx, "send": t_send,
                   "total": t_capture + t_native + t_encode + t_send}
            for key, ms in row.items():
                samples[key].append(ms)
            stats["kbytes"].append(encoded.size / 1000)
            stats["rtp_packets"].append(n_packets)
            stats["changed_tiles"].append(float(changed.mean()))
            progress.note(f"stages {name}: {i - warmup + 1}/{frames} frames")
    finally:
        encoder.close()
    return {"size": name, "width": w, "height": h, "frames": frames, "warmup": warmup,
            "samples": samples, "stats": stats}


def summarize_stages(run: dict[str, Any]) -> dict[str, Any]:
    """p50/p95 per stage, speed-ups over the baselines, max fps and what was sent."""
    stages: dict[str, dict[str, Any]] = {
        key: {"p50_ms": round(float(np.median(v)), 3),
              "p95_ms": round(float(np.percentile(v, 95)), 3)}
        for key, v in run["samples"].items()}
    for key, base in BASELINES.items():  # how many times faster than the baseline, at p50
        stages[key] |= {"baseline": base,
                        "x_baseline": round(stages[base]["p50_ms"] / stages[key]["p50_ms"], 2)}
    max_fps = 1000.0 / stages["total"]["p50_ms"]
    st = run["stats"]
    return {
        **{k: run[k] for k in ("size", "width", "height", "frames", "warmup")},
        "stages": stages, "max_fps": round(max_fps, 1), "meets_30fps": max_fps >= TARGET_FPS,
        "encoded_kbytes_p50": round(float(np.median(st["kbytes"])), 1),
        "rtp_packets_p50": float(np.median(st["rtp_packets"])),
        "psnr_i420_db_p50": (round(float(np.median(st["psnr_db"])), 2) if st["psnr_db"]
                             else None),
        "changed_tiles_fraction_p50": round(float(np.median(st["changed_tiles"])), 4),
        "samples_ms": {k: [round(x, 3) for x in v] for k, v in run["samples"].items()},
    }


# -- 2. change detection -----------------------------------------------------------------------

def change_frames(h: int, w: int, seed: int) -> tuple[Array, Array, int]:
    """prev, cur and the number of changed tiles (about 1%, every pixel of each differs)."""
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, 256, size=(h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    rows, cols = -(-h // TILE), -(-w // TILE)
    n = max(1, round(rows * cols * CHANGED_FRACTION))
    for i in rng.choice(rows * cols, size=n, replace=False):
        ty, tx = divmod(int(i), cols)
        cur[ty * TILE:(ty + 1) * TILE, tx * TILE:(tx + 1) * TILE] ^= 0xFF
    return prev, cur, n


def samples_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    """``repeats`` timed runs of ``fn`` after 3 untimed ones (caches and page faults)."""
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def measure_change(name: str, repeats: int) -> list[dict[str, Any]]:
    """One row per method (copy, native, numpy) at one size; the backends are checked first."""
    w, h = SIZES[name]
    prev, cur, n_changed = change_frames(h, w, seed=h)
    want = damage.tile_change_map_numpy(prev, cur, TILE)
    if int(want.sum()) != n_changed or not np.array_equal(
            damage.tile_change_map_native(prev, cur, TILE), want):
        raise RuntimeError(f"change maps at {name} are wrong: the backends disagree")
    dst = np.empty_like(cur)
    methods: dict[str, Callable[[], object]] = {
        "copy": lambda: np.copyto(dst, cur),
        "native": lambda: damage.tile_change_map_native(prev, cur, TILE),
        "numpy": lambda: damage.tile_change_map_numpy(prev, cur, TILE),
    }
    both = 2 * cur.nbytes
    timings = {method: samples_ms(fn, repeats) for method, fn in methods.items()}
    copy_gbps = both / statistics.median(timings["copy"]) / 1e6
    rows = []
    for method, ms in timings.items():
        gbps = both / statistics.median(ms) / 1e6
        rows.append({"size": name, "width": w, "height": h, "tiles": int(want.size),
                     "changed_tiles": n_changed, "method": method,
                     "median_ms": round(statistics.median(ms), 4), "gb_per_s": round(gbps, 2),
                     "ratio_to_copy": round(gbps / copy_gbps, 3),
                     "samples_ms": [round(x, 4) for x in ms]})
    return rows


# -- 3. idle CPU of a real server ------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, all its threads (fields 14 and 15 of
    /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(width: int, height: int, cine: bool) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``hdx serve`` (synthetic desktop, libx264, 30 fps) on loopback until the block ends;
    its log is shown if it does not come up."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hdx", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--encoder", "x264", "--width", str(width), "--height", str(height),
             "--cine-seconds", "-1" if cine else "0", "--fps", str(FPS)],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_healthy(process, url, log)
            yield process, url
        finally:
            stop_process(process)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Any) -> None:
    """Poll ``/healthz`` until the server answers; RuntimeError with its log if it never does."""
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            urllib.request.urlopen(url + "healthz", timeout=1).read()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"hdx serve did not start:\n{tail}") from None
            time.sleep(0.2)


async def _consume(viewer: Any, seconds: float) -> int:
    """Receive frames for ``seconds`` (so a streaming server really streams); how many."""
    end, frames = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        await viewer.next_frame(timeout_s=5.0)
        frames += 1
    return frames


async def measure_idle(state: str, width: int, height: int, seconds: float) -> dict[str, Any]:
    """CPU of a fresh server in one state over a ``seconds`` window."""
    from hdx.client.viewer import ClientError, Viewer

    cine = state == "viewer, cine"
    row: dict[str, Any] = {"state": state}
    with served(width, height, cine) as (process, url):
        viewer = None if state == "no viewer" else Viewer(url)
        try:
            if viewer is not None:
                await viewer.connect()
                await viewer.next_frame()
            if viewer is not None and not cine:
                started = time.monotonic()
                try:
                    await viewer.until_lossless(LOSSLESS_TIMEOUT_S)
                    row["settled_lossless_s"] = round(time.monotonic() - started, 2)
                except ClientError as exc:
                    row["settled_lossless_s"] = None
                    row["note"] = f"not lossless before the window: {exc}"
            if cine and viewer is not None:
                await _consume(viewer, SETTLE_S)
            else:
                await asyncio.sleep(SETTLE_S)
            before, started = cpu_seconds(process.pid), time.monotonic()
            if cine and viewer is not None:
                row["frames_received"] = await _consume(viewer, seconds)
            else:
                await asyncio.sleep(seconds)
            used, elapsed = cpu_seconds(process.pid) - before, time.monotonic() - started
        finally:
            if viewer is not None:
                await viewer.close()
    return row | {"cpu_s": round(used, 3), "seconds": round(elapsed, 2),
                  "percent_of_one_core": round(100 * used / elapsed, 2)}


async def measure_idle_states(width: int, height: int, seconds: float,
                              progress: Progress) -> list[dict[str, Any]]:
    """Every idle state, each on a fresh server, in order."""
    rows = []
    for state in IDLE_STATES:
        progress.step(f"idle CPU: {state} ({seconds:g} s)")
        rows.append(await measure_idle(state, width, height, seconds))
    return rows


# -- the report ------------------------------------------------------------------------------

def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--idle-size must be WIDTHxHEIGHT, not {text!r}") from None
    if w < 64 or h < 64:
        raise SystemExit("--idle-size must be at least 64x64")
    return w, h


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What this run measures, with --quick's smaller defaults where an option was not given."""
    quick = bool(args.quick)
    sizes = args.sizes or list(QUICK_STAGE_SIZES if quick else SIZES)
    return {
        "parts": list(args.parts),
        "sizes": sizes,
        "frames": {s: args.frames or (QUICK_STAGE_FRAMES if quick else STAGE_FRAMES[s])
                   for s in sizes},
        "warmup": QUICK_WARMUP if quick else WARMUP,
        "fps": FPS, "bitrate_bps": BITRATE, "tile": TILE, "codec": "libx264",
        "change_sizes": list(CHANGE_SIZES),
        "change_repeats": args.repeats or (QUICK_CHANGE_REPEATS if quick else CHANGE_REPEATS),
        "changed_fraction": CHANGED_FRACTION,
        "idle_size": args.idle_size or (QUICK_IDLE_SIZE if quick else IDLE_SIZE),
        "idle_seconds": args.idle_seconds or (QUICK_IDLE_SECONDS if quick else IDLE_SECONDS),
        "settle_s": SETTLE_S,
        "targets": {"fps_size": TARGET_SIZE, "fps": TARGET_FPS,
                    "change_vs_copy": CHANGE_TARGET, "idle_percent": IDLE_TARGET},
    }


def _versions() -> dict[str, str]:
    return {"pyav": av.__version__, "ffmpeg": str(getattr(av, "ffmpeg_version_info", "unknown")),
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "opencv": str(cv2.__version__), "aiortc": str(aiortc.__version__),
            "damage_backend": str(damage.backend)}


def run(s: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Measure the parts ``s`` asks for and return the report."""
    results: dict[str, Any] = {"stages": [], "change_detection": [], "idle": []}
    if "stages" in s["parts"]:
        for name in s["sizes"]:
            progress.step(f"stages {name}")
            results["stages"].append(summarize_stages(
                measure_stages(name, s["frames"][name], s["warmup"], progress)))
    if "change" in s["parts"]:
        for name in s["change_sizes"]:
            progress.step(f"change detection {name} ({s['change_repeats']} repeats)")
            results["change_detection"] += measure_change(name, s["change_repeats"])
    if "idle" in s["parts"]:
        w, h = _parse_size(s["idle_size"])
        results["idle"] = asyncio.run(measure_idle_states(w, h, s["idle_seconds"], progress))
    result = {"benchmark": NAME, "description": DESCRIPTION, "settings": s,
              "stages": STAGES, "baselines": BASELINES,
              "machine": report.machine_info(**_versions()), "results": results}
    return result | {"headline": headline(results), "targets": targets(results, s)}


def _idle(results: dict[str, Any], state: str) -> float | None:
    row = next((r for r in results["idle"] if r["state"] == state), None)
    return None if row is None else float(row["percent_of_one_core"])


def _change_ratios(results: dict[str, Any]) -> dict[str, float]:
    """size -> the native backend's bandwidth / the copy's."""
    return {r["size"]: r["ratio_to_copy"] for r in results["change_detection"]
            if r["method"] == "native"}


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The figures ``--compare`` checks."""
    out: dict[str, Any] = {}
    for r in results["stages"]:
        out[f"pipeline_{r['size']}_total_ms_p50"] = report.headline(
            r["stages"]["total"]["p50_ms"], "lower", "ms",
            f"capture + change map + encode + send per frame at {r['size']}, p50")
    for size, ratio in _change_ratios(results).items():
        out[f"change_map_vs_copy_{size}"] = report.headline(
            ratio, "higher", "x", f"native change map bandwidth / a frame copy's at {size}")
    for key, state, what in (
            ("idle_no_viewer_cpu_percent", "no viewer", "server CPU, no viewer"),
            ("idle_still_cpu_percent", "viewer, still desktop",
             "server CPU, a viewer on a still desktop"),
            ("cine_cpu_percent", "viewer, cine", "server CPU, a viewer during cine")):
        value = _idle(results, state)
        if value is not None:
            out[key] = report.headline(value, "lower", "% of one core", what)
    return out


def targets(results: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three targets, each measured in this run (None with the reason if not)."""
    ratios = _change_ratios(results)
    change = report.target(
        "change detection ≥ 0.5x a plain frame copy's bandwidth (native backend)",
        min(ratios.values()) if ratios else None, CHANGE_TARGET, "higher",
        ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) + " (the smaller counts)"
        if ratios else "change detection not measured (--parts)")
    still, cine = _idle(results, "viewer, still desktop"), _idle(results, "viewer, cine")
    idle = report.target(
        "idle (nothing changing) CPU ≤ 2% of one core at 30 fps capture", still, IDLE_TARGET,
        "lower", f"hdx serve at {s['idle_size']}, a viewer on a still desktop, "
        f"{s['idle_seconds']:g} s window (cine: {cine}%)" if still is not None
        else "idle CPU not measured (--parts)")
    row = next((r for r in results["stages"] if r["size"] == TARGET_SIZE), None)
    fps = report.target(
        "1080p pipeline ≥ 30 fps on one thread", None if row is None else row["max_fps"],
        TARGET_FPS, "higher",
        f"1000 / total p50 ({row['stages']['total']['p50_ms']:.1f} ms) over {row['frames']} "
        "cine frames" if row is not None else "1080p stages not measured (--sizes, --parts)")
    return [change, idle, fps]


def _stage_tables(result: dict[str, Any]) -> list[str]:
    s, rows = result["settings"], result["results"]["stages"]
    if not rows:
        return []
    lines = [
        "## Pipeline stages: milliseconds per frame", "",
        f"Synthetic desktop in cine (a new CT slice every frame), libx264 at {s['fps']} fps and "
        f"{s['bitrate_bps'] // 1_000_000} Mbit/s, {s['warmup']} warm-up frames excluded. "
        "Medians (p50) and p95 over the frames shown; \"x baseline\" is the baseline's p50 over "
        "this stage's, measured on the same frames in the same run. total = capture + change map "
        "(native) + encode (which contains the colour conversion) + send; max fps = 1000 / total "
        "p50 on one thread.", "",
        "| size | stage | p50 ms | p95 ms | x baseline |",
        "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        for key, label in STAGES.items():
            st = r["stages"][key]
            ratio = (f"{st['x_baseline']:.2f} ({STAGES[st['baseline']].split(': ')[1]})"
                     if "x_baseline" in st else "")
            lines.append(f"| {r['size']} ({r['frames']} fr) | {label} | {st['p50_ms']:.2f} | "
                         f"{st['p95_ms']:.2f} | {ratio} |")
    lines += ["", "| size | total p50 ms | total p95 ms | max fps | >= 30 fps | KB/frame | "
              "RTP packets/frame | PSNR (I420) dB | tiles changed |",
              "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        total = r["stages"]["total"]
        flag = ("yes" if r["meets_30fps"] else "**no**") + (
            " (target)" if r["size"] == TARGET_SIZE else "")
        lines.append(f"| {r['size']} | {total['p50_ms']:.1f} | {total['p95_ms']:.1f} | "
                     f"{r['max_fps']:.1f} | {flag} | {r['encoded_kbytes_p50']:.1f} | "
                     f"{r['rtp_packets_p50']:.0f} | {r['psnr_i420_db_p50']} | "
                     f"{r['changed_tiles_fraction_p50']:.1%} |")
    return [*lines, ""]


def _change_table(result: dict[str, Any]) -> list[str]:
    s, rows = result["settings"], result["results"]["change_detection"]
    if not rows:
        return []
    lines = ["## Tile change detection vs a frame copy", "",
             f"Random BGRA frames, {s['tile']}x{s['tile']} tiles, about "
             f"{s['changed_fraction']:.0%} of tiles changed, median of {s['change_repeats']} "
             "runs. GB/s counts the bytes of both frames; the ratio is to `np.copyto` of one "
             "frame in the same run.", "",
             "| size | changed tiles | method | median ms | GB/s | x copy bandwidth |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['changed_tiles']}/{r['tiles']} | {r['method']} | "
                     f"{r['median_ms']:.3f} | {r['gb_per_s']:.1f} | {r['ratio_to_copy']:.2f} |")
    return [*lines, ""]


def _idle_table(result: dict[str, Any]) -> list[str]:
    s, rows = result["settings"], result["results"]["idle"]
    if not rows:
        return []
    busy = rows[-1]["percent_of_one_core"] if rows[-1]["state"] == "viewer, cine" else 0
    lines = ["## Server CPU on a still desktop", "",
             f"`hdx serve` at {s['idle_size']}, {s['fps']} fps capture, libx264, one Python "
             f"viewer on loopback; user + system CPU of the server process over "
             f"{s['idle_seconds']:g} s (a fresh server per state; the still desktop is refined "
             "to lossless first).", "",
             "| state | % of one core | x cine | notes |", "| --- | ---: | ---: | --- |"]
    for r in rows:
        ratio = f"{r['percent_of_one_core'] / busy:.3f}" if busy else "–"
        notes = r.get("note", "")
        if r.get("settled_lossless_s") is not None:
            notes = f"lossless after {r['settled_lossless_s']} s"
        if "frames_received" in r:
            notes = f"{r['frames_received']} frames received"
        lines.append(f"| {r['state']} | {r['percent_of_one_core']} | {ratio} | {notes} |")
    return [*lines, ""]


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: targets first, then the tables of each part."""
    m = result["machine"]
    lines = [f"# hdx bench {NAME}", "", DESCRIPTION + "." + (
        " **Quick run**: small sizes, few frames, short windows." if result["quick"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, PyAV {m['pyav']}, "
        f"FFmpeg {m['ffmpeg']}, OpenCV {m['opencv']}, aiortc {m['aiortc']}, change "
        f"detection backend {m['damage_backend']}, commit {m['git_commit'] or 'none'}.", "",
        *report.targets_markdown(result["targets"]), ""]
    lines += _stage_tables(result) + _change_table(result) + _idle_table(result)
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path, plt: Any) -> None:
    """Stacked stages, hdx vs its baselines, change detection GB/s and idle CPU."""
    res = result["results"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    _plot_stages(axes[0][0], axes[0][1], res["stages"])
    _plot_change(axes[1][0], res["change_detection"])
    _plot_idle(axes[1][1], res["idle"])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_stages(left: Any, right: Any, rows: list[dict[str, Any]]) -> None:
    names = [r["size"] for r in rows]
    offset = np.zeros(len(rows))
    for key in ("capture", "change_native", "colour_hdx", "x264", "send"):
        ms = np.array([r["stages"][key]["p50_ms"] for r in rows])
        left.barh(names, ms, left=offset, color=COLOURS[key], label=STAGES[key].strip())
        offset += ms
    left.axvline(1000 / TARGET_FPS, color="k", ls="--", lw=1, label="33.3 ms (30 fps)")
    left.set_xlabel("p50 ms per frame (stacked)")
    left.set_title("pipeline stages")
    left.legend(fontsize=7, loc="lower right")
    x = np.arange(len(rows))
    pairs = [("colour_hdx", "colour_pyav"), ("change_native", "change_numpy")]
    for j, key in enumerate(k for pair in pairs for k in pair):
        p50 = [r["stages"][key]["p50_ms"] for r in rows]
        right.bar(x + (j - 1.5) * 0.2, p50, 0.2, color=COLOURS[key], label=STAGES[key])
    right.set_xticks(x, names)
    right.set_ylabel("p50 ms")
    right.set_yscale("log")
    right.set_title("hdx vs baseline, same run")
    right.legend(fontsize=7)


def _plot_change(ax: Any, rows: list[dict[str, Any]]) -> None:
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    x = np.arange(len(sizes))
    for j, method in enumerate(("copy", "native", "numpy")):
        gbps = [next(r["gb_per_s"] for r in rows if r["size"] == s and r["method"] == method)
                for s in sizes]
        ax.bar(x + (j - 1) * 0.25, gbps, 0.25, label=method)
    ax.set_xticks(x, sizes)
    ax.set_ylabel("GB/s (both frames)")
    ax.set_title("change detection vs a frame copy")
    ax.legend(fontsize=7)


def _plot_idle(ax: Any, rows: list[dict[str, Any]]) -> None:
    ax.bar([r["state"] for r in rows], [r["percent_of_one_core"] for r in rows], color="C4")
    ax.axhline(IDLE_TARGET, color="k", ls="--", lw=1, label=f"{IDLE_TARGET:g}% target (still)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("% of one core (hdx serve)")
    ax.set_title("server CPU")
    ax.legend(fontsize=7)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench pipeline`` (unset ones follow --quick)."""
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default all: stages change idle)")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None,
                        help="stage sizes (default 720p 1080p 4K; --quick: 720p 1080p)")
    parser.add_argument("--frames", type=int, default=None,
                        help="measured frames per stage size (default 60, 30 at 4K; --quick 6)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed runs per change detection method (default {CHANGE_REPEATS};"
                        f" --quick {QUICK_CHANGE_REPEATS})")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help=f"CPU window per idle state (default {IDLE_SECONDS:g}; --quick "
                        f"{QUICK_IDLE_SECONDS:g})")
    parser.add_argument("--idle-size", default=None, metavar="WxH",
                        help=f"desktop size of the idle server (default {IDLE_SIZE}; --quick "
                        f"{QUICK_IDLE_SIZE})")


def _steps(s: dict[str, Any]) -> int:
    return ((len(s["sizes"]) if "stages" in s["parts"] else 0)
            + (len(s["change_sizes"]) if "change" in s["parts"] else 0)
            + (len(IDLE_STATES) if "idle" in s["parts"] else 0))


def main(args: argparse.Namespace) -> int:
    """Run, print the Markdown, write JSON, Markdown and a plot into ``args.out``; 2 if the
    native change detector is not built (nothing to compare)."""
    for option in ("frames", "repeats"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise SystemExit(f"--{option} must be at least 1")
    if args.idle_seconds is not None and args.idle_seconds <= 0:
        raise SystemExit("--idle-seconds must be positive")
    if damage.NATIVE_IMPORT_ERROR is not None:
        print(f"hdx bench pipeline: the native change detector is not built "
              f"({damage.NATIVE_IMPORT_ERROR}); run `pip install -e .` with a C compiler",
              file=sys.stderr)
        return 2
    s = settings(args)
    with Progress(_steps(s), NAME) as progress:
        result = run(s, progress)
    result = {"benchmark": NAME, "quick": bool(args.quick)} | result
    text = markdown(result)
    plt = None if args.no_plot else report.pyplot()
    if plt is not None:
        plot(result, args.out / f"{NAME}.png", plt)
        print(f"wrote {args.out / f'{NAME}.png'}", file=sys.stderr)
        text += f"\n![stages, change detection and idle CPU]({NAME}.png)\n"
    for path in report.write_report(args.out, NAME, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text, end="")
    return 0
