"""``hdx bench peers``: hdx against what a hospital could run instead, on the same content.

1. **The naive aiortc pipeline** (a ``VideoStreamTrack`` returning ndarray frames, encoded by
   aiortc's own VP8 or H.264 encoder): CPU per 1080p desktop frame against hdx's per-frame work
   (tile change map, OpenCV colour conversion, x264, RTP packetization), each at the same
   bitrate (the naive encoder's ceiling, which it reaches on loopback), with the PSNR each
   delivers. Frames are generated before timing; what both share after packetization (SRTP,
   sockets) is left out of both. Rounds alternate so a noisy neighbour hits both alike.
   Glass-to-glass latency against the same pipeline is ``hdx bench latency``.
2. **A VNC server from Debian** (x11vnc) on the same Xvfb screen as an hdx server, each read by
   a client from a cold connect: bytes and time until the client holds a pixel-exact copy of a
   static CT screen, against hdx's first paint and time-to-lossless (:mod:`hdx.bench.vnc_peer`).
3. **PNG and zlib** of the whole static screen, the naive lossless reference: bytes and encode ms
   against hdx's lossless codec on the same screen.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import av
import cv2
import imagecodecs
import numpy as np
import numpy.typing as npt
from aiortc.codecs.h264 import MAX_BITRATE as AIORTC_H264_MAX
from aiortc.codecs.h264 import H264Encoder as AiortcH264
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import MAX_BITRATE as AIORTC_VP8_MAX
from aiortc.codecs.vpx import Vp8Encoder as AiortcVp8
from aiortc.codecs.vpx import vp8_depayload

import hdx.damage as damage
from hdx.bench import report, scenarios
from hdx.bench.progress import Progress
from hdx.lossless import codec as hdx_codec
from hdx.video.encoder import TIME_BASE, H264Encoder

NAME = "peers"
TILE = 64
CPU_TARGET = 0.5
BGRA = npt.NDArray[np.uint8]


# -- 1. the naive aiortc pipeline ---------------------------------------------------------

class _Pipeline:
    """Per-frame server work of one pipeline: ``frame(bgra, index)`` returns RTP payloads."""

    family = "h264"

    def frame(self, bgra: BGRA, index: int) -> list[bytes]:
        raise NotImplementedError

    def frame_bytes(self, payloads: list[bytes]) -> bytes:
        """The encoded frame the payloads carry (what a receiver depacketizes)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the encoder."""


class HdxPipeline(_Pipeline):
    """What hdx's server does per captured frame: change map, then (if anything changed)
    colour conversion and x264 in :class:`H264Encoder`, then aiortc's H.264 packetizer."""

    def __init__(self, width: int, height: int, fps: int, bitrate: int) -> None:
        self._encoder = H264Encoder("libx264", width, height, fps, bitrate)
        self._packetizer = AiortcH264()
        self._previous: BGRA | None = None

    def frame(self, bgra: BGRA, index: int) -> list[bytes]:
        if self._previous is not None:
            changed = damage.tile_change_map(self._previous, bgra, TILE)
            if not changed.any():
                return []
        self._previous = bgra
        encoded = self._encoder.encode(bgra, index * 3000, keyframe=index == 0)
        payloads, _ = self._packetizer.pack(encoded.packet)
        return payloads

    def frame_bytes(self, payloads: list[bytes]) -> bytes:
        return b"".join(h264_depayload(p) for p in payloads)

    def close(self) -> None:
        self._encoder.close()


class NaivePipeline(_Pipeline):
    """The textbook aiortc server's per-frame work: ``VideoFrame.from_ndarray(bgra)`` in
    ``recv()``, then aiortc's encoder (PyAV reformat to I420, encode, packetize)."""

    def __init__(self, codec: str, bitrate: int) -> None:
        self.family = codec
        self._encoder: AiortcVp8 | AiortcH264 = AiortcVp8() if codec == "vp8" else AiortcH264()
        self._encoder.target_bitrate = bitrate

    def frame(self, bgra: BGRA, index: int) -> list[bytes]:
        frame = av.VideoFrame.from_ndarray(bgra, format="bgra")
        frame.pts, frame.time_base = index * 3000, TIME_BASE
        payloads, _ = self._encoder.encode(frame, force_keyframe=index == 0)
        return payloads

    def frame_bytes(self, payloads: list[bytes]) -> bytes:
        depayload = vp8_depayload if self.family == "vp8" else h264_depayload
        return b"".join(depayload(p) for p in payloads)


def _run_pipeline(make: Callable[[], _Pipeline], frames: list[BGRA]) -> dict[str, Any]:
    """CPU and wall ms per frame over ``frames``, bytes, and the RGB PSNR a viewer sees."""
    pipeline = make()
    encoded: list[bytes] = []
    wall: list[float] = []
    cpu_started = time.process_time()
    try:
        for i, frame in enumerate(frames):
            started = time.perf_counter()
            payloads = pipeline.frame(frame, i)
            wall.append((time.perf_counter() - started) * 1000)
            encoded.append(pipeline.frame_bytes(payloads) if payloads else b"")
        cpu_ms = (time.process_time() - cpu_started) * 1000 / len(frames)
    finally:
        pipeline.close()
    return {"cpu_ms_per_frame": cpu_ms, "wall_ms_p50": float(np.median(wall)),
            "bytes": sum(map(len, encoded)), "psnr_rgb": _psnr_rgb(pipeline.family, encoded,
                                                                   frames)}


def _psnr_rgb(family: str, encoded: list[bytes], frames: list[BGRA]) -> float | None:
    """Mean PSNR over RGB of every decoded frame against its source (a skipped frame shows the
    previous picture, as the viewer would)."""
    decoder: Any = av.CodecContext.create(family, "r")
    shown: BGRA | None = None
    values = []
    for data, source in zip(encoded, frames, strict=True):
        if data:
            for decoded in decoder.decode(av.Packet(data)):
                shown = decoded.to_ndarray(format="bgr24")
        if shown is None:
            continue
        h, w = source.shape[:2]
        diff = shown[:h, :w].astype(np.float32) - source[..., :3].astype(np.float32)
        mse = float(np.mean(diff * diff))
        values.append(99.0 if mse == 0 else 10 * np.log10(255 * 255 / mse))
    return round(float(statistics.fmean(values)), 3) if values else None


def naive_vs_hdx(scenario: scenarios.Scenario, rounds: int,
                 progress: Progress) -> dict[str, Any]:
    """hdx and the naive pipelines (VP8, H.264), each at the naive encoder's ceiling, in
    alternating rounds; medians over rounds."""
    frames = scenario.frame_list()
    w, h, fps = scenario.width, scenario.height, scenario.fps
    pairs = {"vp8": AIORTC_VP8_MAX, "h264": AIORTC_H264_MAX}
    makers: dict[str, Callable[[], _Pipeline]] = {}
    for codec, bitrate in pairs.items():
        makers[f"naive-{codec}"] = partial(NaivePipeline, codec, bitrate)
        makers[f"hdx@{codec}-rate"] = partial(HdxPipeline, w, h, fps, bitrate)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for r in range(rounds):
            for name, make in makers.items():
                progress.step(f"{scenario.name}: {name}, round {r + 1}/{rounds}")
                runs[name].append(_run_pipeline(make, frames))
    finally:
        cv2.setNumThreads(threads)
    summary = {name: {key: _median([run[key] for run in rs]) for key in rs[0]}
               for name, rs in runs.items()}
    comparisons = []
    for codec, bitrate in pairs.items():
        naive, ours = summary[f"naive-{codec}"], summary[f"hdx@{codec}-rate"]
        ratio = ours["cpu_ms_per_frame"] / naive["cpu_ms_per_frame"]
        quality_ok = (ours["psnr_rgb"] or 0) >= (naive["psnr_rgb"] or 0)
        comparisons.append({"naive": f"naive-{codec}", "bitrate_bps": bitrate,
                            "cpu_ratio": round(ratio, 3), "psnr_hdx": ours["psnr_rgb"],
                            "psnr_naive": naive["psnr_rgb"], "psnr_ok": quality_ok})
    return {"scenario": scenario.describe(), "rounds": rounds, "runs": runs,
            "summary": summary, "comparisons": comparisons}


def _median(values: list[Any]) -> Any:
    numbers = [v for v in values if v is not None]
    return round(float(statistics.median(numbers)), 3) if numbers else None


# -- 3. PNG / zlib ------------------------------------------------------------------------

def lossless_reference(screen: BGRA, repeats: int) -> dict[str, Any]:
    """Bytes and encode ms of the whole screen: hdx's codec, PNG 6 and zlib 6 (RGB bytes)."""
    rgb = np.ascontiguousarray(screen[..., 2::-1])

    def timed(fn: Callable[[], Any]) -> tuple[int, float]:
        times, size = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - started) * 1000)
            size = len(out.payload) if hasattr(out, "payload") else len(out)
        return size, float(np.median(times))

    rows = {}
    every = frozenset(hdx_codec.TileFormat)
    for name, fn in (("hdx", lambda: hdx_codec.encode_bgra(screen, every)),
                     ("png6", lambda: imagecodecs.png_encode(rgb, level=6)),
                     ("zlib6", lambda: zlib.compress(rgb.tobytes(), 6))):
        size, ms = timed(fn)
        rows[name] = {"bytes": size, "encode_ms": round(ms, 2)}
    return {"raw_rgb_bytes": rgb.nbytes, "codecs": rows,
            "hdx_vs_png": round(rows["hdx"]["bytes"] / rows["png6"]["bytes"], 3),
            "hdx_vs_zlib": round(rows["hdx"]["bytes"] / rows["zlib6"]["bytes"], 3)}


# -- the run ------------------------------------------------------------------------------

def _scenario(args: argparse.Namespace) -> scenarios.Scenario:
    chosen = scenarios.select(scenarios.load_manifest(args.scenarios), [args.desktop])[0]
    return chosen.quick() if args.quick else chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All three comparisons; a peer that cannot run here is reported with the reason."""
    from hdx.bench import vnc_peer

    desktop = _scenario(args)
    rounds = 1 if args.quick else args.rounds
    repeats = 1 if args.quick else args.repeats
    size = (320, 192) if args.quick else (1920, 1080)
    screen = vnc_peer.static_ct_screen(*size)
    links: list[float | None] = [] if args.skip_vnc else [None, *args.link_mbit]
    with Progress(rounds * 4 + 1 + len(links), "peers") as progress:
        naive = naive_vs_hdx(desktop, rounds, progress)
        progress.step("PNG / zlib of the static CT screen")
        reference = lossless_reference(screen, 3 if args.quick else 9)
        vnc = {}
        for mbit in links:
            label = _link_label(mbit)
            progress.step(f"VNC (x11vnc) vs hdx on Xvfb, {label}, {repeats} connects each")
            vnc[label] = _vnc_on_link(screen, repeats, mbit, progress)
    result = {
        "benchmark": NAME,
        "description": (__doc__ or NAME).split("\n\n")[0],
        "quick": bool(args.quick),
        "settings": {"rounds": rounds, "repeats": repeats, "tile": TILE,
                     "static_screen": f"{size[0]}x{size[1]}"},
        "machine": report.machine_info(pyav=av.__version__),
        "naive": naive,
        "lossless_reference": reference,
        "vnc": vnc or {"loopback": {"skipped": "--skip-vnc"}},
    }
    result["targets"] = _targets(result)
    result["headline"] = _headline(result)
    return result


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in result["naive"]["comparisons"]:
        t = report.target(
            f"hdx CPU per desktop frame ≤ {CPU_TARGET}x {c['naive']}'s, at equal or better PSNR",
            c["cpu_ratio"], CPU_TARGET, "lower",
            f"at {c['bitrate_bps'] / 1e6:g} Mbit/s; PSNR hdx {c['psnr_hdx']} dB vs "
            f"{c['psnr_naive']} dB")
        t["pass"] = bool(t["pass"]) and c["psnr_ok"]
        out.append(t)
    for label, vnc in result["vnc"].items():
        out += _vnc_targets(label, vnc)
    return out


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for c in result["naive"]["comparisons"]:
        out[f"cpu_ratio_vs_{c['naive']}"] = report.headline(
            c["cpu_ratio"], "lower", "x", f"hdx CPU per frame / {c['naive']}'s")
    for t in result["targets"]:
        if t["value"] is not None and "VNC" in t["target"]:
            out[t["target"]] = report.headline(t["value"], t["better"], "x", t["target"])
    return out


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown."""
    naive = result["naive"]
    s = naive["scenario"]
    lines = [f"# hdx bench {NAME}", "", result["description"], "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['cpus']} CPUs), "
             f"commit {result['machine']['git_commit']}.", ""]
    lines += [*report.targets_markdown(result["targets"]), ""]
    lines += [f"## hdx vs the naive aiortc pipeline: {s['name']} {s['width']}x{s['height']}, "
              f"{s['frames']} frames, medians of {naive['rounds']} alternating rounds", "",
              "| pipeline | CPU ms/frame | wall ms/frame p50 | kB sent | PSNR (RGB) dB |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in naive["summary"].items():
        lines.append(f"| {name} | {_cell(row['cpu_ms_per_frame'])} | "
                     f"{_cell(row['wall_ms_p50'])} | {_cell(row['bytes'] / 1000, 1)} | "
                     f"{_cell(row['psnr_rgb'])} |")
    ref = result["lossless_reference"]
    lines += ["", f"## Naive lossless reference: the static CT screen "
              f"({result['settings']['static_screen']}, {ref['raw_rgb_bytes'] / 1e6:.1f} MB RGB)",
              "", "| codec | bytes | encode ms |", "| --- | ---: | ---: |"]
    for name, row in ref["codecs"].items():
        lines.append(f"| {name} | {row['bytes']} | {row['encode_ms']} |")
    lines += ["", f"hdx / PNG 6 bytes: {ref['hdx_vs_png']}; hdx / zlib 6: {ref['hdx_vs_zlib']}.",
              ""]
    for label, vnc in result["vnc"].items():
        lines += _vnc_markdown(label, vnc)
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench peers``."""
    parser.add_argument("--scenarios", type=Path, default=scenarios.DEFAULT_MANIFEST,
                        metavar="MANIFEST.toml", help="scenario manifest")
    parser.add_argument("--desktop", default="ct-cine", metavar="SCENARIO",
                        help="the 1080p desktop scenario for the CPU comparison "
                        "(default ct-cine)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of the CPU comparison (default 3)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="cold connects per VNC encoding and for hdx (default 5)")
    parser.add_argument("--link-mbit", nargs="*", type=float, default=[50.0], metavar="MBIT",
                        help="also compare with VNC over a link shaped to these rates (a network "
                        "namespace, veth and tbf; needs root), besides loopback (default 50: "
                        "home broadband; give no value for loopback only)")
    parser.add_argument("--skip-vnc", action="store_true",
                        help="leave out the VNC peer (it needs Xvfb and x11vnc)")


def main(args: argparse.Namespace) -> int:
    """Run, print the Markdown, write JSON and Markdown into ``args.out``."""
    if args.rounds < 1 or args.repeats < 1:
        raise SystemExit("--rounds and --repeats must be at least 1")
    try:
        result = run(args)
    except scenarios.ScenarioError as exc:
        print(f"hdx bench peers: {exc}", file=sys.stderr)
        return 2
    text = markdown(result)
    for path in report.write_report(args.out, NAME, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text)
    return 0


def _link_label(mbit: float | None) -> str:
    return "loopback" if mbit is None else f"{mbit:g} Mbit/s link"


def _vnc_on_link(screen: BGRA, repeats: int, mbit: float | None,
                 progress: Progress) -> dict[str, Any]:
    """One VNC-vs-hdx measurement over loopback or a shaped link; the reason if it can't run."""
    from hdx.bench import vnc_peer

    missing = vnc_peer.available()
    if missing is None and mbit is not None:
        missing = vnc_peer.available_link()
    if missing is not None:
        return {"skipped": missing}
    if mbit is None:
        return vnc_peer.measure(screen, repeats=repeats, progress=progress.note)
    return vnc_peer.measure(screen, repeats=repeats, progress=progress.note, link_mbit=mbit)


def _vnc_targets(label: str, vnc: dict[str, Any]) -> list[dict[str, Any]]:
    """The static-CT-screen targets against the VNC peer's best encoding (by time to
    pixel-exact) on one link; not measured, with the reason, when the peer could not run."""
    if "skipped" in vnc:
        why = f"VNC peer not run: {vnc['skipped']}"
        return [report.target(f"{label}: {name}", None, limit, "lower", why)
                for _, name, limit in _VNC_TARGETS]
    best = vnc["best_vnc_encoding"]
    out = []
    for key, name, limit in _VNC_TARGETS:
        r = vnc["targets"][key]
        unit = "bytes" if key == "bytes" else "ms"
        t = report.target(f"{label}: {name}", r["ratio"], limit, "lower",
                          f"hdx {r['hdx']:g} {unit} vs x11vnc ({best}) {r['vnc']:g} {unit}")
        t["pass"] = bool(t["pass"]) and bool(vnc.get("all_exact"))
        out.append(t)
    return out


def _vnc_markdown(label: str, vnc: dict[str, Any]) -> list[str]:
    if "skipped" in vnc:
        return [f"## VNC peer, {label}", "", f"Not run: {vnc['skipped']}.", ""]
    screen = vnc["screen"]
    lines = [f"## hdx vs a VNC server on the same Xvfb, {label}: a static CT screen "
             f"({screen['width']}x{screen['height']}), medians of "
             f"{vnc['settings']['repeats']} cold connects", "",
             "| peer | first paint / first complete screen ms | pixel-exact ms | bytes | "
             "of which: wait / decode ms |", "| --- | ---: | ---: | ---: | --- |"]
    h = vnc["hdx"]["median"]
    lines.append(f"| hdx (video, then lossless tiles) | {h['first_paint_ms']:g} | "
                 f"{h['time_to_lossless_ms']:g} | {h['bytes']:g} | – |")
    for encoding, data in vnc["vnc"].items():
        m = data["median"]
        lines.append(f"| x11vnc, {encoding} | {m['first_complete_ms']:g} | "
                     f"{m['pixel_exact_ms']:g} | {m['bytes']:g} | {m['recv_wait_ms']:g} / "
                     f"{m['decode_ms']:g} |")
    lines += ["", f"Pixel-exact at the end, both peers, every connect: {vnc['all_exact']}. "
              f"Versions: {vnc['versions']}.", ""]
    lines += [f"- Bytes counted, VNC: {vnc['counted']['vnc']}",
              f"- Bytes counted, hdx: {vnc['counted']['hdx']}", ""]
    return lines


_VNC_TARGETS = (
    ("first_paint",
     "static CT screen: hdx first paint ≤ 1/3 of the VNC peer's first complete screen", 1 / 3),
    ("time_to_lossless",
     "static CT screen: hdx time-to-lossless ≤ the VNC peer's time to pixel-exact", 1.0),
    ("bytes",
     "static CT screen: hdx bytes to lossless ≤ the VNC peer's bytes to pixel-exact", 1.0),
)
