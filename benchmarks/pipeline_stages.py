"""Per-stage wall-clock milliseconds of hdx's server pipeline on a synthetic desktop during cine.

For each size the real ``SyntheticDesktop`` pages its CT viewport one slice per frame (after one
untimed lap, so every slice image is cached and the render is steady state), and each new frame
goes through every stage in turn, one stage at a time on this thread:

- capture: ``SyntheticDesktop.next_frame()``; and ``PushSource.push`` + ``next_frame`` (the copy an
  embedding program's frame hand-off costs);
- change map: ``tile_change_map`` native and numpy (the numpy twin is the baseline);
- colour: hdx's ``bgra_to_i420`` (OpenCV) and PyAV's ``from_ndarray(...).reformat('yuv420p')``
  (the baseline);
- encode: ``H264Encoder('libx264', ..., fps=30, bitrate_bps=8_000_000).encode``, which includes
  ``bgra_to_i420``; the "x264" row is encode minus colour for the same frame;
- send: aiortc's H.264 packetizer (``pack``) and ``RtpPacket.serialize`` of every payload, the
  Python-side CPU cost of sending (SRTP and the socket are not included).

total = capture + change map (native) + encode + send: colour is inside encode, so it is not
added twice. 1000 / total is the frame rate one thread could sustain; hdx overlaps capture and
encode on two threads, so this is a floor, but x264 also wants the second core.

Run from the repository root: ``python benchmarks/pipeline_stages.py``. Writes
``benchmarks/results/pipeline_stages.json``, ``.md`` and ``.png`` (the PNG needs matplotlib).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import _report
import aiortc
import av
import cv2
import numpy as np
from aiortc.codecs.h264 import H264Encoder as RtpH264Packetizer
from aiortc.rtp import RtpPacket

import hdx.damage as damage
from hdx.sources.base import Frame
from hdx.sources.push import PushSource
from hdx.sources.synthetic import SLICE_COUNT, SyntheticDesktop
from hdx.video.encoder import H264Encoder, bgra_to_i420

T = TypeVar("T")
NAME = "pipeline_stages"
SIZES = {"720p": (1280, 720, 60), "1080p": (1920, 1080, 60), "4K": (3840, 2160, 30)}
"""name -> (width, height, measured frames)."""
WARMUP = 5  # encoded but not counted: the IDR and x264's first frames
FPS, BITRATE, TILE, TARGET = 30, 8_000_000, 64, ("1080p", 30.0)
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


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t0 = time.perf_counter_ns()
    result = fn(*args)
    return result, (time.perf_counter_ns() - t0) / 1e6


def push_and_pull(source: PushSource, frame: Frame) -> Frame:
    source.push(frame)
    return source.next_frame()


def pyav_i420(frame: Frame) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(frame, format="bgra").reformat(format="yuv420p")


def send(packetizer: RtpH264Packetizer, packet: av.Packet[Any], seq: int) -> tuple[int, int]:
    """Packetize and serialize as aiortc's RTCRtpSender does; returns (packets, bytes)."""
    payloads, timestamp = packetizer.pack(packet)
    wire = 0
    for i, payload in enumerate(payloads):
        rtp = RtpPacket(payload_type=96, marker=int(i == len(payloads) - 1),
                        sequence_number=(seq + i) & 0xFFFF, timestamp=timestamp,
                        ssrc=0x1234, payload=payload)
        wire += len(rtp.serialize())
    return len(payloads), wire


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def measure(name: str, w: int, h: int, frames: int) -> dict[str, Any]:
    """Run ``WARMUP + frames`` cine frames through every stage; per-frame samples in ms."""
    desktop = SyntheticDesktop(w, h, cine_seconds=-1, fps=FPS)
    print(f"[{name}] {w}x{h}: one untimed cine lap ({SLICE_COUNT} frames)...", file=sys.stderr,
          flush=True)
    for _ in range(SLICE_COUNT):
        prev = desktop.next_frame()
    push = PushSource(w, h)
    encoder = H264Encoder("libx264", w, h, fps=FPS, bitrate_bps=BITRATE)
    decoder: Any = av.CodecContext.create("h264", "r")
    packetizer = RtpH264Packetizer()
    samples: dict[str, list[float]] = {key: [] for key in STAGES}
    stats: dict[str, list[float]] = {"kbytes": [], "rtp_packets": [], "psnr_db": [],
                                     "changed_tiles": []}
    expected: dict[int, np.ndarray] = {}  # pts -> the I420 the decoder should give back
    seq = 0
    for i in range(WARMUP + frames):
        cur, t_capture = timed(desktop.next_frame)
        if cur is prev:
            raise SystemExit("the synthetic desktop stopped changing; cine must run forever")
        _, t_push = timed(push_and_pull, push, cur)
        changed, t_native = timed(damage.tile_change_map_native, prev, cur, TILE)
        changed_np, t_numpy = timed(damage.tile_change_map_numpy, prev, cur, TILE)
        assert np.array_equal(changed, changed_np), "backends disagree"
        i420, t_hdx = timed(bgra_to_i420, cur)
        _, t_pyav = timed(pyav_i420, cur)
        pts = i * (90000 // FPS)
        encoded, t_encode = timed(encoder.encode, cur, pts)
        (n_packets, _), t_send = timed(send, packetizer, encoded.packet, seq)
        seq += n_packets
        expected[pts] = i420
        for decoded in decoder.decode(encoded.packet):  # quality check, untimed
            want = expected.pop(decoded.pts)
            if i >= WARMUP:
                stats["psnr_db"].append(psnr(decoded.to_ndarray(format="yuv420p"), want))
        prev = cur
        if i < WARMUP:
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
        if (i - WARMUP + 1) % 10 == 0:
            print(f"[{name}]   {i - WARMUP + 1}/{frames} frames", file=sys.stderr, flush=True)
    encoder.close()
    return {"size": name, "width": w, "height": h, "frames": frames, "samples": samples,
            "stats": stats}


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    s = run["samples"]
    stages: dict[str, dict[str, Any]] = {
        key: {"p50_ms": round(float(np.median(v)), 3),
              "p95_ms": round(float(np.percentile(v, 95)), 3)} for key, v in s.items()}
    for key, base in BASELINES.items():  # how many times faster than the baseline, at p50
        stages[key] |= {"baseline": base,
                        "x_baseline": round(stages[base]["p50_ms"] / stages[key]["p50_ms"], 2)}
    max_fps = 1000.0 / stages["total"]["p50_ms"]
    st = run["stats"]
    return {"stages": stages, "max_fps": round(max_fps, 1),
            "meets_30fps": max_fps >= TARGET[1],
            "encoded_kbytes_p50": round(float(np.median(st["kbytes"])), 1),
            "rtp_packets_p50": float(np.median(st["rtp_packets"])),
            "psnr_i420_db_p50": round(float(np.median(st["psnr_db"])), 2)
            if st["psnr_db"] else None,
            "changed_tiles_fraction_p50": round(float(np.median(st["changed_tiles"])), 4)}


def markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# hdx server pipeline: milliseconds per stage",
        "",
        f"Synthetic desktop in cine (a new CT slice every frame), libx264 at {s['fps']} fps and "
        f"{s['bitrate_bps'] // 1_000_000} Mbit/s, {s['warmup']} warm-up frames excluded. "
        "Medians (p50) and p95 over the frames shown; \"x baseline\" is the baseline's p50 over "
        "this stage's, measured on the same frames in the same run. total = capture + change map "
        "(native) + encode (which contains the colour conversion) + send; max fps = 1000 / total "
        "p50 on one thread.",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, PyAV {m['pyav']}, "
        f"FFmpeg {m['ffmpeg']}, OpenCV {m['opencv']}, aiortc {m['aiortc']}, "
        f"commit {m['git_commit'] or 'none'}.",
        "",
        "| size | stage | p50 ms | p95 ms | x baseline |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        for key, label in STAGES.items():
            st = r["stages"][key]
            ratio_text = (f"{st['x_baseline']:.2f} ({STAGES[st['baseline']].split(': ')[1]})"
                          if "x_baseline" in st else "")
            lines.append(f"| {r['size']} ({r['frames']} fr) | {label} | {st['p50_ms']:.2f} | "
                         f"{st['p95_ms']:.2f} | {ratio_text} |")
    lines += ["", "| size | total p50 ms | total p95 ms | max fps | >= 30 fps | KB/frame | "
              "RTP packets/frame | PSNR (I420) dB | tiles changed |",
              "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in report["results"]:
        total = r["stages"]["total"]
        flag = ("yes" if r["meets_30fps"] else "**no**") + (" (target)" if r["size"] ==
                                                           TARGET[0] else "")
        lines.append(f"| {r['size']} | {total['p50_ms']:.1f} | {total['p95_ms']:.1f} | "
                     f"{r['max_fps']:.1f} | {flag} | {r['encoded_kbytes_p50']:.1f} | "
                     f"{r['rtp_packets_p50']:.0f} | {r['psnr_i420_db_p50']} | "
                     f"{r['changed_tiles_fraction_p50']:.1%} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> bool:
    plt = _report.pyplot()
    if plt is None:
        return False
    results = report["results"]
    names = [r["size"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    offset = np.zeros(len(results))
    for key in ("capture", "change_native", "colour_hdx", "x264", "send"):
        ms = np.array([r["stages"][key]["p50_ms"] for r in results])
        left.barh(names, ms, left=offset, color=COLOURS[key], label=STAGES[key].strip())
        offset += ms
    left.axvline(1000 / TARGET[1], color="k", ls="--", lw=1, label="33.3 ms (30 fps)")
    left.set_xlabel("p50 ms per frame (stacked)")
    left.set_title("pipeline stages")
    left.legend(fontsize=7, loc="lower right")
    x = np.arange(len(results))
    pairs = [("colour_hdx", "colour_pyav"), ("change_native", "change_numpy")]
    for j, key in enumerate(k for pair in pairs for k in pair):
        p50 = [r["stages"][key]["p50_ms"] for r in results]
        right.bar(x + (j - 1.5) * 0.2, p50, 0.2, color=COLOURS[key], label=STAGES[key])
    right.set_xticks(x, names)
    right.set_ylabel("p50 ms")
    right.set_yscale("log")
    right.set_title("hdx vs baseline, same run")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--frames", type=int, default=None,
                        help="measured frames per size (default: 60, 30 at 4K)")
    parser.add_argument("--out", type=Path, default=_report.RESULTS)
    args = parser.parse_args()
    if damage.NATIVE_IMPORT_ERROR is not None:
        raise SystemExit(f"hdx._damage_native is not built: {damage.NATIVE_IMPORT_ERROR}")
    results = []
    for name in args.sizes:
        w, h, frames = SIZES[name]
        run = measure(name, w, h, args.frames or frames)
        results.append({k: run[k] for k in ("size", "width", "height", "frames")}
                       | summarize(run)
                       | {"samples_ms": {k: [round(x, 3) for x in v]
                                         for k, v in run["samples"].items()}})
    report = {
        "benchmark": NAME,
        "description": __doc__.strip().splitlines()[0],
        "settings": {"fps": FPS, "bitrate_bps": BITRATE, "tile": TILE, "warmup": WARMUP,
                     "codec": "libx264", "target": {"size": TARGET[0], "fps": TARGET[1]}},
        "stages": STAGES,
        "baselines": BASELINES,
        "machine": _report.machine_info(
            pyav=av.__version__, ffmpeg=str(getattr(av, "ffmpeg_version_info", "unknown")),
            libavcodec=".".join(map(str, av.library_versions["libavcodec"])),
            opencv=cv2.__version__, aiortc=aiortc.__version__),
        "results": results,
    }
    text = markdown(report)
    if plot(report, args.out / f"{NAME}.png"):
        text += f"\n![stages]({NAME}.png)\n"
    _report.write_report(args.out, NAME, report, text)
    print(text, end="")


if __name__ == "__main__":
    main()
