"""``hdx bench encoders``: every video encoder that matters for remote display, on the scenarios.

For each scenario of the manifest (and the user's ``--images``), each encoder of
:mod:`hdx.bench.codecs` and each target bitrate (multiples of a base rate that scales with
pixels and frame rate: 4 Mbit/s at 1080p30), it encodes the scenario's frames once, in order,
timing every call, then decodes the stream and compares it with the source:

- encode ms p50/p95 (wall time of one call, colour conversion included) and CPU ms per frame
  (process CPU over the encode loop: counts an encoder's worker threads too);
- achievable fps (1000 / p50), frames of delay before the first packet (0 for real-time use);
- kbit/s over the clip and steady kbit/s without the first (key) frame;
- PSNR-Y, SSIM-Y and edge PSNR-Y (:mod:`hdx.bench.quality`) on every ``--quality-every``-th frame.

Encoders that cannot open here (NVENC without an NVENC engine) are listed with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from hdx.bench import codecs, quality, report, scenarios
from hdx.bench.progress import Progress
from hdx.errors import EncoderUnavailable

NAME = "encoders"
BASE_BPS_1080P30 = 4_000_000
RATES = (0.5, 1.0, 2.0)
PSNR_CAP = 99.0
"""Identical frames have infinite PSNR; reports cap it here so means and plots stay finite."""


def base_bitrate(width: int, height: int, fps: int) -> int:
    """The 1x rate for a size: 4 Mbit/s at 1920x1080, 30 fps, proportional to pixels x fps."""
    return max(100_000, round(BASE_BPS_1080P30 * width * height * fps / (1920 * 1080 * 30)))


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def measure(scenario: scenarios.Scenario, frames: list[Any], spec: codecs.EncoderSpec,
            rate: float, quality_every: int) -> dict[str, Any]:
    """Encode ``frames`` with ``spec`` at ``rate`` x the base bitrate, then decode and score."""
    bitrate = round(base_bitrate(scenario.width, scenario.height, scenario.fps) * rate)
    encoder = codecs.Encoder(spec, scenario.width, scenario.height, scenario.fps, bitrate)
    packets: list[bytes] = []
    times_ms: list[float] = []
    delay: int | None = None
    cpu_started = time.process_time()
    try:
        for i, frame in enumerate(frames):
            started = time.perf_counter()
            out = encoder.encode(frame, i)
            times_ms.append((time.perf_counter() - started) * 1000.0)
            if out and delay is None:
                delay = i
            packets.extend(out)
        cpu_ms = (time.process_time() - cpu_started) * 1000.0 / len(frames)
        packets.extend(encoder.flush())
    finally:
        encoder.close()
    scores = _score(spec.family, packets, frames, quality_every)
    seconds = len(frames) / scenario.fps
    sizes = [len(p) for p in packets]
    p50 = float(np.percentile(times_ms, 50))
    return {
        "scenario": scenario.name, "encoder": spec.name, "rate": rate,
        "target_kbps": round(bitrate / 1000), "frames": len(frames),
        "kbps": round(sum(sizes) * 8 / seconds / 1000, 1),
        "steady_kbps": (round(sum(sizes[1:]) * 8 / max(seconds - 1 / scenario.fps, 1e-9) / 1000,
                              1) if len(sizes) > 1 else None),
        "first_packet_bytes": sizes[0] if sizes else None,
        "encode_ms_p50": round(p50, 3),
        "encode_ms_p95": round(float(np.percentile(times_ms, 95)), 3),
        "cpu_ms_per_frame": round(cpu_ms, 3),
        "fps": round(1000.0 / p50, 1) if p50 > 0 else None,
        "delay_frames": delay,
        "encode_ms": [round(t, 3) for t in times_ms],
        **scores,
    }


def _score(family: str, packets: list[bytes], frames: list[Any],
           quality_every: int) -> dict[str, Any]:
    """Decode the whole stream (a decoder needs every frame) and score every n-th one."""
    decoder = codecs.Decoder(family)
    planes: list[Any] = []
    errors = 0
    for packet in packets:
        try:
            planes.extend(decoder.decode(packet))
        except av.FFmpegError:
            errors += 1
    planes.extend(decoder.flush())
    psnrs, ssims, edges = [], [], []
    picked = sorted({*range(0, len(frames), quality_every), len(frames) - 1})
    for i in picked:
        if i >= len(planes):
            break
        ref = quality.luma(frames[i])
        got = planes[i][: ref.shape[0], : ref.shape[1]]
        psnrs.append(min(PSNR_CAP, quality.psnr(ref, got)))
        ssims.append(quality.ssim(ref, got))
        edge = quality.edge_psnr(ref, got)
        if edge is not None:
            edges.append(min(PSNR_CAP, edge))
    return {"decoded_frames": len(planes), "decode_errors": errors,
            "decoded_ok": errors == 0 and len(planes) == len(frames),
            "psnr_y": _mean(psnrs), "ssim_y": _mean(ssims), "edge_psnr_y": _mean(edges),
            "psnr_y_min": round(min(psnrs), 3) if psnrs else None, "scored_frames": len(psnrs)}


def _scenario_list(args: argparse.Namespace) -> list[scenarios.Scenario]:
    chosen = scenarios.select(scenarios.load_manifest(args.scenarios), args.only)
    chosen += scenarios.user_scenarios(list(args.images or []))
    if args.frames:
        chosen = [dataclasses.replace(s, frames=args.frames) for s in chosen]
    return [s.quick() for s in chosen] if args.quick else chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (scenario, encoder, rate); the report as a dict."""
    chosen = _scenario_list(args)
    specs = [s for s in codecs.SPECS if s.name in args.encoders]
    unavailable = {}
    for spec in specs:
        reason = codecs.availability(spec)
        if reason is not None:
            unavailable[spec.name] = reason
    usable = [s for s in specs if s.name not in unavailable]
    rates = (1.0,) if args.quick else tuple(args.rates)
    rows: list[dict[str, Any]] = []
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the colour conversion runs on the encoding thread, as in hdx
    try:
        with Progress(len(chosen) * len(usable) * len(rates), "encoders") as progress:
            for scenario in chosen:
                progress.note(f"{scenario.name}: generating {scenario.frames} frames")
                frames = scenario.frame_list()
                for spec in usable:
                    for rate in rates:
                        progress.step(f"{scenario.name} {spec.name} {rate:g}x")
                        rows.append(_measure_or_fail(scenario, frames, spec, rate,
                                                     args.quality_every))
                del frames
    finally:
        cv2.setNumThreads(threads)
    return {
        "benchmark": NAME,
        "description": __doc__.split("\n\n")[0] if __doc__ else NAME,
        "quick": bool(args.quick),
        "settings": {"rates": list(rates), "base_bps_1080p30": BASE_BPS_1080P30,
                     "quality_every": args.quality_every, "psnr_cap": PSNR_CAP,
                     "edge_threshold": quality.EDGE_THRESHOLD,
                     "manifest": str(args.scenarios)},
        "scenarios": [s.describe() for s in chosen],
        "encoders": [s.describe() for s in specs],
        "unavailable": unavailable,
        "machine": report.machine_info(pyav=av.__version__,
                                       ffmpeg=".".join(map(str, av.library_versions["libavcodec"])),
                                       opencv=str(cv2.__version__)),
        "results": rows,
        "headline": _headline(rows),
        "targets": _targets(rows, chosen),
    }


def _measure_or_fail(scenario: scenarios.Scenario, frames: list[Any],
                     spec: codecs.EncoderSpec, rate: float, quality_every: int) -> dict[str, Any]:
    try:
        return measure(scenario, frames, spec, rate, quality_every)
    except (EncoderUnavailable, av.FFmpegError, ValueError) as exc:
        return {"scenario": scenario.name, "encoder": spec.name, "rate": rate,
                "error": f"{type(exc).__name__}: {exc}"}


def _at(rows: list[dict[str, Any]], scenario: str, encoder: str,
        rate: float = 1.0) -> dict[str, Any] | None:
    for r in rows:
        if (r["scenario"], r["encoder"], r["rate"]) == (scenario, encoder, rate) and \
                "error" not in r:
            return r
    return None


def _headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rows:
        if r["encoder"] != "hdx-x264" or r["rate"] != 1.0 or "error" in r:
            continue
        key = f"{r['scenario']}/hdx-x264"
        out[f"{key}/cpu_ms_per_frame"] = report.headline(
            r["cpu_ms_per_frame"], "lower", "ms", "CPU per frame at 1x rate")
        out[f"{key}/psnr_y"] = report.headline(r["psnr_y"], "higher", "dB", "PSNR-Y at 1x")
        out[f"{key}/kbps"] = report.headline(r["kbps"], "lower", "kbit/s", "bitrate at 1x")
    return out


def _targets(rows: list[dict[str, Any]],
             chosen: list[scenarios.Scenario]) -> list[dict[str, Any]]:
    out = []
    for s in chosen:
        r = _at(rows, s.name, "hdx-x264")
        if r is not None and s.width * s.height <= 1920 * 1080:
            out.append(report.target(
                f"{s.name}: hdx's encoder sustains {s.fps} fps", r["fps"], s.fps, "higher",
                f"encode p50 {r['encode_ms_p50']} ms at {s.width}x{s.height}"))
    return out


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: one table per scenario at the 1x rate, then the unavailable."""
    lines = [f"# hdx bench {NAME}", "", result["description"], "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['cpus']} CPUs), "
             f"PyAV {result['machine']['pyav']}, commit {result['machine']['git_commit']}.", ""]
    if result["targets"]:
        lines += [*report.targets_markdown(result["targets"]), ""]
    for s in result["scenarios"]:
        lines += [f"## {s['name']}: {s['width']}x{s['height']}, {s['frames']} frames at "
                  f"{s['fps']} fps ({s['description']})", "",
                  "| encoder | target kbit/s | kbit/s | steady kbit/s | encode ms p50 / p95 | "
                  "CPU ms/frame | fps | delay | PSNR-Y | SSIM-Y | edge PSNR-Y |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in result["results"]:
            if r["scenario"] != s["name"] or r["rate"] != 1.0:
                continue
            if "error" in r:
                lines.append(f"| {r['encoder']} | failed: {r['error']} |" + " |" * 9)
                continue
            lines.append(
                f"| {r['encoder']} | {r['target_kbps']} | {_cell(r['kbps'], 0)} | "
                f"{_cell(r['steady_kbps'], 0)} | {_cell(r['encode_ms_p50'])} / "
                f"{_cell(r['encode_ms_p95'])} | {_cell(r['cpu_ms_per_frame'])} | "
                f"{_cell(r['fps'], 0)} | {_cell(r['delay_frames'])} | {_cell(r['psnr_y'], 2)} | "
                f"{_cell(r['ssim_y'], 4)} | {_cell(r['edge_psnr_y'], 2)} |")
        lines.append("")
    if result["unavailable"]:
        lines += ["## Not available here", ""]
        lines += [f"- **{name}**: {why}" for name, why in result["unavailable"].items()]
        lines.append("")
    lines += ["Encode ms is one call's wall time (colour conversion included); CPU ms/frame is "
              "process CPU over the encode loop, worker threads included. *delay*: frames fed "
              "before the first packet came out. PSNR/SSIM on luma, on every "
              f"{result['settings']['quality_every']}. frame (1 = all); edge PSNR only over "
              "pixels next to strong source edges (text, lines). Rate-distortion curves for all "
              "rates are in the plots and the JSON.", ""]
    return "\n".join(lines)


def _grid_figure(plt: Any, names: list[str], path: Path,
                 draw: Callable[[Any, str], None]) -> Path:
    """One subplot per scenario (``draw(ax, name)``), log-x, legend on the first; saved."""
    cols = min(3, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.8 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        draw(ax, name)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(result: dict[str, Any], out: Path, plt: Any) -> list[Path]:
    """Rate-distortion curves (PSNR-Y vs kbit/s) per scenario, and encode-time CDFs."""
    names = [s["name"] for s in result["scenarios"]]
    rows = [r for r in result["results"] if "error" not in r]
    encoders = sorted({r["encoder"] for r in rows})

    def rate_distortion(ax: Any, name: str) -> None:
        for enc in encoders:
            pts = sorted((r["kbps"], r["psnr_y"]) for r in rows
                         if r["scenario"] == name and r["encoder"] == enc
                         and r["psnr_y"] is not None)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=enc)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("kbit/s")
        ax.set_ylabel("PSNR-Y dB")

    def encode_cdf(ax: Any, name: str) -> None:
        for r in rows:
            if r["scenario"] == name and r["rate"] == 1.0:
                times = np.sort(r["encode_ms"])
                ax.plot(times, np.arange(1, len(times) + 1) / len(times), label=r["encoder"])
        ax.set_title(f"{name}: encode time CDF (1x rate)", fontsize=9)
        ax.set_xlabel("ms per frame")

    return [_grid_figure(plt, names, out / "encoders_rd.png", rate_distortion),
            _grid_figure(plt, names, out / "encoders_latency_cdf.png", encode_cdf)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench encoders``."""
    parser.add_argument("--scenarios", type=Path, default=scenarios.DEFAULT_MANIFEST,
                        metavar="MANIFEST.toml",
                        help="scenario manifest (default benchmarks/scenarios/default.toml)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        help="run only these scenarios of the manifest")
    parser.add_argument("--images", nargs="+", type=Path, metavar="PATH",
                        help="add your own PNG/TIFF/DICOM files or folders as scenarios")
    parser.add_argument("--encoders", nargs="+", choices=codecs.SPEC_NAMES,
                        default=list(codecs.SPEC_NAMES), metavar="ENCODER",
                        help=f"encoders (default all: {' '.join(codecs.SPEC_NAMES)})")
    parser.add_argument("--rates", nargs="+", type=float, default=list(RATES), metavar="X",
                        help="target bitrates as multiples of the base rate (4 Mbit/s at "
                        "1080p30, scaled by pixels x fps); default 0.5 1 2")
    parser.add_argument("--frames", type=int, default=0,
                        help="frames per scenario (default: the manifest's)")
    parser.add_argument("--quality-every", type=int, default=3, metavar="N",
                        help="score every Nth decoded frame (default 3; 1 = all)")


def main(args: argparse.Namespace) -> int:
    """Run, print the Markdown, write JSON/Markdown/plots into ``args.out``."""
    if args.quality_every < 1 or args.frames < 0 or any(r <= 0 for r in args.rates):
        raise SystemExit("--quality-every must be >= 1, --frames >= 0, --rates > 0")
    try:
        result = run(args)
    except scenarios.ScenarioError as exc:
        print(f"hdx bench encoders: {exc}", file=sys.stderr)
        return 2
    text = markdown(result)
    plt = None if args.no_plot else report.pyplot()
    if plt is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for path in plot(result, args.out, plt):
            text += f"\n![{path.stem}]({path.name})\n"
    for path in report.write_report(args.out, NAME, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text)
    failed = [r for r in result["results"] if "error" in r or not r.get("decoded_ok", False)]
    return 1 if failed else 0
