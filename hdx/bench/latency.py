"""``hdx bench latency``: glass-to-glass latency to Chromium, and server CPU per delivered frame.

Three pipelines serve the same content in the same run, in alternating rounds, on this machine:

- **hdx**: ``HdxServer`` with its own web client (pre-encoded H.264, latest-frame-only, jitter
  buffer target 0, frames drawn from ``MediaStreamTrackProcessor``);
- **naive**: the textbook aiortc server, a ``VideoStreamTrack`` whose ``recv()`` returns ndarray
  frames, encoded by aiortc itself with the codec Chromium prefers (VP8), shown in a plain
  ``<video>``: the baseline the issue's target is written against;
- **naive-h264**: the same naive server with H.264 negotiated (aiortc's own libx264 encoder), to
  show how much of the gap is the codec and how much the pipeline.

Every frame carries its id in a 24-cell black/white strip at the top-left (20 id bits and a
4-bit check). The source records when it produced each id; the page decodes the strip from the
pixels it drew and records when. Both clocks are this machine's wall clock.

**Server CPU per frame** = CPU time of this process (every thread: it runs the server, the
source and aiortc; Chromium is a separate process) over each measured window, divided by the
frames the page drew in it. The Python side of Playwright also lives in this process; during a
window it only waits, and it is there for every pipeline alike, as is the source's copy and id
stamp of each frame.

**Deadlines.** A Chromium that crashes or hangs must not stop the run (one did, in CI: its
browser process defunct, its zygotes spinning, ``page.evaluate`` waiting for ever). Each round
has a deadline (``round_deadline_s`` in the settings), the whole run another (``deadline_s``);
a round whose browser died or hung is recorded, its processes are killed, and it runs once more
in a fresh browser (``attempts`` and ``browser_failures`` in its record, a line in the report).
See :mod:`hdx.bench.fresh_browser`.

Needs Debian's Chromium (``/usr/bin/chromium``) and Playwright: ``./scripts/setup.sh test``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from hdx.bench import deadlines, report
from hdx.bench.chromium import CHROMIUM
from hdx.bench.fresh_browser import BrowserFailed, in_fresh_browser, playwright_driver
from hdx.bench.progress import Progress
from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.base import Frame, InputEvent
from hdx.sources.synthetic import SyntheticDesktop
from hdx.video.selection import EncoderChoice
from hdx.webrtc.ice import filter_remote_candidates, host_addresses, is_loopback

NAME = "latency"
DESCRIPTION = ("Glass-to-glass latency (frame produced on the server -> its pixels drawn in "
               "Chromium) and server CPU per delivered frame: hdx vs the naive aiortc pipeline")
PIPELINES = ("hdx", "naive", "naive-h264")
SIZE, SECONDS, ROUNDS, WARMUP_S = "1920x1080", 12.0, 2, 3.0
QUICK_SIZE, QUICK_SECONDS, QUICK_ROUNDS, QUICK_WARMUP_S = "640x360", 3.0, 1, 1.5
FPS = 30
TARGET = 0.6
"""hdx's p50 over the naive (VP8) pipeline's p50 must be at most this."""
PAGE_TIMEOUT_S = 30.0
LAUNCH_S, ROUND_SLACK_S = 20.0, 15.0
"""A round's deadline: launching Chromium, the page becoming ready (:data:`PAGE_TIMEOUT_S`), the
warm-up and the measured window, and the rest (servers, stats, page close) all within it."""
RETRIES = 1
"""A round whose browser died or hung runs again, once, in a fresh browser."""
CELL, ID_BITS, CHECK_BITS = 16, 20, 4
SETUP_HINT = "install them with ./scripts/setup.sh test"

# Reads the strip from a 2D context; shared by both pages so decoding is identical.
READ_MARKER_JS = f"""
function hdxReadMarker(ctx) {{
  const w = {(ID_BITS + CHECK_BITS) * CELL}, d = ctx.getImageData(0, 0, w, {CELL}).data;
  let id = 0, check = 0, ones = 0;
  for (let i = 0; i < {ID_BITS + CHECK_BITS}; i++) {{
    const o = ({CELL // 2} * w + i * {CELL} + {CELL // 2}) * 4;
    const bit = d[o + 1] > 128 ? 1 : 0;
    if (i < {ID_BITS}) {{ id = id * 2 + bit; ones += bit; }} else {{ check = check * 2 + bit; }}
  }}
  return check === (ones % 16) ? id : -1;
}}
"""

HDX_PROBE_JS = "(() => {" + READ_MARKER_JS + """
window.g2g = [];
window.hdx.onFrameDrawn(({canvas}) => {
  const id = hdxReadMarker(canvas.getContext('2d'));
  window.g2g.push([id, performance.timeOrigin + performance.now()]);
});
})()"""

NAIVE_PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted playsinline autoplay></video>
<script>""" + READ_MARKER_JS + """
window.g2g = [];
const pc = new RTCPeerConnection();
pc.addTransceiver('video', {direction: 'recvonly'});
const video = document.getElementById('v');
const strip = document.createElement('canvas');
strip.width = 384; strip.height = 16;
const sctx = strip.getContext('2d', {willReadFrequently: true});
pc.ontrack = (e) => {
  video.srcObject = new MediaStream([e.track]);
  const onFrame = () => {
    sctx.drawImage(video, 0, 0, 384, 16, 0, 0, 384, 16);
    window.g2g.push([hdxReadMarker(sctx), performance.timeOrigin + performance.now()]);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
};
(async () => {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
    setTimeout(r, 2000); });
  const res = await fetch('/offer', {method: 'POST', body: JSON.stringify(pc.localDescription)});
  await pc.setRemoteDescription(await res.json());
})();
</script></body></html>"""

NAIVE_STATS_JS = """(async () => {
  const report = await pc.getStats(); let inbound = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s; });
  const codec = inbound && inbound.codecId ? report.get(inbound.codecId) : null;
  return {codec: codec ? codec.mimeType : null,
          framesDecoded: inbound ? inbound.framesDecoded : 0,
          framesDropped: inbound ? inbound.framesDropped : 0};
})()"""
"""``pc`` is a top-level const of the naive page's script, visible to evaluated scripts."""


def stamp_frame_id(frame: Frame, frame_id: int) -> None:
    """Draw ``frame_id`` (20 bits + a 4-bit check) as black/white cells at the top-left."""
    bits = [(frame_id >> (ID_BITS - 1 - i)) & 1 for i in range(ID_BITS)]
    check = sum(bits) % 16
    bits += [(check >> (CHECK_BITS - 1 - i)) & 1 for i in range(CHECK_BITS)]
    for i, bit in enumerate(bits):
        frame[0:CELL, i * CELL:(i + 1) * CELL, :3] = 255 if bit else 0


def latencies_from(samples: list[list[float]], produced: dict[int, float]
                   ) -> tuple[list[float], int, set[int]]:
    """(latencies ms, unreadable markers, frame ids seen) from the page's (id, drawn ms)
    samples; a frame drawn twice counts once."""
    latencies: list[float] = []
    bad = 0
    seen: set[int] = set()
    for raw_id, shown in samples:
        frame_id = int(raw_id)
        if frame_id < 0 or frame_id not in produced:
            bad += 1
            continue
        if frame_id in seen:
            continue  # the same frame drawn again
        seen.add(frame_id)
        latencies.append((shown / 1000.0 - produced[frame_id]) * 1000.0)
    return latencies, bad, seen


class MarkedDesktop:
    """The synthetic desktop in endless cine, each frame stamped with its id; thread-safe."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self._desktop = SyntheticDesktop(width, height, cine_seconds=-1, fps=fps)
        self._lock = threading.Lock()
        self._next_id = 1
        self.produced: dict[int, float] = {}
        """frame id -> wall-clock seconds when it was produced."""

    @property
    def size(self) -> tuple[int, int]:
        return self._desktop.size

    def next_frame(self) -> Frame:
        frame = self._desktop.next_frame().copy()
        with self._lock:
            frame_id = self._next_id % (1 << ID_BITS)
            self._next_id += 1
        stamp_frame_id(frame, frame_id)
        self.produced[frame_id] = time.time()
        return frame

    def handle_input(self, event: InputEvent) -> None:
        self._desktop.handle_input(event)

    def close(self) -> None:
        self._desktop.close()


class NaiveTrack(VideoStreamTrack):
    """What the aiortc examples do: return ndarray frames, let aiortc encode them."""

    def __init__(self, source: MarkedDesktop) -> None:
        super().__init__()
        self._source = source

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._source.next_frame(), format="bgra")
        frame.pts, frame.time_base = pts, time_base
        return frame


class NaiveServer:
    """The textbook aiortc server on loopback: a page, ``/offer``, one track per viewer."""

    def __init__(self, source: MarkedDesktop, h264: bool) -> None:
        self._source, self._h264 = source, h264
        self._peers: list[Any] = []
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_post("/offer", self._offer)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        for pc in self._peers:
            await pc.close()
        await self._runner.cleanup()

    async def _page(self, _: web.Request) -> web.Response:
        return web.Response(text=NAIVE_PAGE, content_type="text/html")

    async def _offer(self, request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection()
        self._peers.append(pc)
        transceiver = pc.addTransceiver(NaiveTrack(self._source), direction="sendonly")
        if self._h264:
            codecs = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])
        sdp = filter_remote_candidates(body["sdp"], is_loopback)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        with host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer"})


async def wait_until(page: Any, expression: str, timeout_s: float = PAGE_TIMEOUT_S) -> None:
    """Poll a JS expression (hdx's CSP forbids the eval behind Playwright's wait_for_function)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} not true within {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def _window(page: Any, seconds: float) -> tuple[list[list[float]], float, float]:
    """Clear the page's samples, wait ``seconds``; (samples, wall s, CPU s of this process)."""
    await page.evaluate("window.g2g.length = 0")
    started, cpu = time.time(), time.process_time()
    await asyncio.sleep(seconds)
    used = time.process_time() - cpu
    samples: list[list[float]] = await page.evaluate("window.g2g")
    return samples, time.time() - started, used


async def _measure_hdx(page: Any, source: MarkedDesktop, s: dict[str, Any]
                       ) -> tuple[list[list[float]], float, float, dict[str, Any]]:
    server = HdxServer(source, Config(port=0, fps=FPS),
                       encoder=EncoderChoice("libx264", "benchmark"))
    await server.start()
    try:
        await page.goto(server.url)
        await wait_until(page, "!!(window.hdx && window.hdx.status().framesDrawn > 0)")
        await page.evaluate(HDX_PROBE_JS)
        await asyncio.sleep(s["warmup_s"])
        samples, wall, cpu = await _window(page, s["seconds"])
        stats = await page.evaluate("window.hdx.receiverStats()") or {}
        stats["self_reported_latency_ms"] = await page.evaluate("window.hdx.status().latencyMs")
        stats["codec_label"] = "H.264 (hdx, libx264)"
        await page.close()
    finally:
        await server.stop()
    return samples, wall, cpu, stats


async def _measure_naive(page: Any, source: MarkedDesktop, h264: bool, s: dict[str, Any]
                         ) -> tuple[list[list[float]], float, float, dict[str, Any]]:
    server = NaiveServer(source, h264)
    await server.start()
    try:
        await page.goto(server.url)
        await wait_until(page, "window.g2g.length > 0")
        await asyncio.sleep(s["warmup_s"])
        samples, wall, cpu = await _window(page, s["seconds"])
        stats: dict[str, Any] = await page.evaluate(NAIVE_STATS_JS)
        stats["codec_label"] = f"{stats.get('codec')} (aiortc's own encoder)"
        await page.close()
    finally:
        await server.stop()
    return samples, wall, cpu, stats


async def measure(context: Any, name: str, round_no: int, s: dict[str, Any]) -> dict[str, Any]:
    """One round of one pipeline: latency of every frame drawn after the warm-up, and CPU."""
    width, height = s["width"], s["height"]
    source = MarkedDesktop(width, height, FPS)
    page = await context.new_page()
    if name == "hdx":
        samples, wall, cpu, stats = await _measure_hdx(page, source, s)
    else:
        samples, wall, cpu, stats = await _measure_naive(page, source, name == "naive-h264", s)
    latencies, bad, seen = latencies_from(samples, source.produced)
    return {"pipeline": name, "round": round_no, "codec": stats.pop("codec_label"),
            "frames_drawn": len(seen), "seconds": round(wall, 3), "fps": len(seen) / wall,
            "cpu_s": round(cpu, 4),
            "cpu_ms_per_frame": round(cpu * 1000 / len(seen), 3) if seen else None,
            "unreadable": bad, "receiver": stats, "latencies_ms": latencies}


async def run_rounds(s: dict[str, Any], progress: Progress) -> list[dict[str, Any]]:
    """Every round of every pipeline, alternating the order; a fresh browser for each, and all
    of it within the run's deadline (``s["deadline_s"]``): what does not fit is recorded as not
    run."""
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + s["deadline_s"]
    async with playwright_driver() as p:
        for round_no in range(s["rounds"]):
            order = PIPELINES if round_no % 2 == 0 else PIPELINES[::-1]
            for name in order:
                progress.step(f"round {round_no + 1}/{s['rounds']}: {name} "
                              f"({s['seconds']:g} s)")
                runs.append(await _one_round(p, name, round_no, s, deadline, progress))
                last = runs[-1]
                if "error" not in last:
                    p50 = report.percentile(last["latencies_ms"], 50)
                    progress.note(f"{name}: {last['frames_drawn']} frames, p50 {p50 or 0:.1f} ms")
    return runs


def _say(text: str) -> None:
    print(f"hdx bench latency: {text}", file=sys.stderr, flush=True)


async def _one_round(p: Any, name: str, round_no: int, s: dict[str, Any], deadline: float,
                     progress: Progress) -> dict[str, Any]:
    """One pipeline in a fresh Chromium, within ``s["round_deadline_s"]`` and the run's
    ``deadline`` (monotonic). A browser that dies or hangs is killed and the round retried
    once in a fresh one (``browser_failures`` in the record says so); a page that does not
    become ready is recorded as an error, not raised, and not retried."""
    from playwright.async_api import Error as PlaywrightError

    where = f"{name} round {round_no + 1}"
    record: dict[str, Any] = {"pipeline": name, "round": round_no, "attempts": 0}
    failures: list[str] = []
    viewport = {"width": s["width"], "height": s["height"] + 40}
    while record["attempts"] <= RETRIES:
        left = deadline - time.monotonic()
        if left <= LAUNCH_S:
            failures.append(f"not run: the latency run's deadline ({s['deadline_s']:g} s) "
                            "had passed")
            break
        record["attempts"] += 1
        try:
            result = await in_fresh_browser(
                p, lambda context: measure(context, name, round_no, s), viewport=viewport,
                deadline_s=min(s["round_deadline_s"], left))
        except BrowserFailed as exc:
            failures.append(str(exc))
            again = record["attempts"] <= RETRIES
            _say(f"{where}: {exc}" + ("; again in a fresh browser" if again else ""))
            progress.note(f"{name}: the browser failed; "
                          + ("retrying in a fresh one" if again else "giving up"))
            continue
        except (TimeoutError, PlaywrightError) as exc:
            _say(f"{where}: {exc}")
            record["error"] = str(exc)
            break
        return result | record | ({"browser_failures": failures} if failures else {})
    if failures:
        record["browser_failures"] = failures
    record.setdefault("error", "; ".join(failures))
    return record


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pipeline: p50/p95 over every round's frames, fps, CPU per frame; and the ratios."""
    out: dict[str, Any] = {}
    for name in PIPELINES:
        mine = [r for r in runs if r["pipeline"] == name and "error" not in r]
        lat = [x for r in mine for x in r["latencies_ms"]]
        frames = sum(r["frames_drawn"] for r in mine)
        if not lat or not frames:
            out[name] = {"samples": 0, "errors": [r["error"] for r in runs
                                                  if r["pipeline"] == name and "error" in r]}
            continue
        reported = [r["receiver"].get("self_reported_latency_ms") for r in mine]
        out[name] = {
            "codec": mine[0]["codec"], "samples": len(lat),
            "p50_ms": _rounded(report.percentile(lat, 50)),
            "p95_ms": _rounded(report.percentile(lat, 95)),
            "mean_fps": round(statistics.mean(r["fps"] for r in mine), 1),
            "cpu_ms_per_frame": round(sum(r["cpu_s"] for r in mine) * 1000 / frames, 2),
            "unreadable_frames": sum(r["unreadable"] for r in mine),
            "client_reported_median_ms": _rounded(statistics.median(
                [x for x in reported if x is not None])) if any(
                x is not None for x in reported) else None,
        }
    for base in PIPELINES[1:]:
        hdx, other = out["hdx"], out[base]
        if hdx.get("samples") and other.get("samples"):
            out[f"ratio_p50_hdx_over_{base}"] = round(hdx["p50_ms"] / other["p50_ms"], 3)
            out[f"ratio_p95_hdx_over_{base}"] = round(hdx["p95_ms"] / other["p95_ms"], 3)
            out[f"cpu_ratio_hdx_over_{base}"] = round(
                hdx["cpu_ms_per_frame"] / other["cpu_ms_per_frame"], 3)
    return out


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures ``--compare`` checks."""
    hdx, naive = summary["hdx"], summary["naive"]
    figures: tuple[tuple[str, float | None, report.Better, str, str], ...] = (
        ("hdx_p50_ms", hdx.get("p50_ms"), "lower", "ms", "hdx glass-to-glass p50"),
        ("hdx_p95_ms", hdx.get("p95_ms"), "lower", "ms", "hdx glass-to-glass p95"),
        ("naive_p50_ms", naive.get("p50_ms"), "lower", "ms",
         "naive aiortc (VP8) glass-to-glass p50"),
        ("ratio_p50_hdx_over_naive", summary.get("ratio_p50_hdx_over_naive"), "lower", "x",
         "hdx p50 / naive (VP8) p50, same run"),
        ("hdx_cpu_ms_per_frame", hdx.get("cpu_ms_per_frame"), "lower", "ms",
         "server-process CPU per frame drawn, hdx"),
        ("naive_cpu_ms_per_frame", naive.get("cpu_ms_per_frame"), "lower", "ms",
         "server-process CPU per frame drawn, naive (VP8)"),
        ("hdx_fps", hdx.get("mean_fps"), "higher", "fps", "frames hdx delivered and the page "
         "drew per second"),
    )
    return {key: report.headline(value, better, unit, what)
            for key, value, better, unit, what in figures if value is not None}


def targets(summary: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's latency target, as a ratio measured in this run."""
    ratio = summary.get("ratio_p50_hdx_over_naive")
    hdx, naive = summary["hdx"], summary["naive"]
    detail = (f"hdx p50 {hdx['p50_ms']} ms vs naive aiortc VP8 {naive['p50_ms']} ms at "
              f"{s['size']}, {s['rounds']} x {s['seconds']:g} s" if ratio is not None
              else "hdx or the naive pipeline drew no frames")
    return [report.target("glass-to-glass p50 latency to Chromium ≤ 0.6x the naive pipeline's",
                          ratio, TARGET, "lower", detail)]


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: the target, then the per-pipeline table."""
    s, summary, m = result["settings"], result["summary"], result["machine"]
    lines = [f"# hdx bench {NAME}", "", DESCRIPTION + "." + (
        " **Quick run**: small size, one short round." if result["quick"] else ""), "",
        f"{s['size']} synthetic desktop in cine at {s['fps']} fps, {s['rounds']} alternating "
        f"round(s) of {s['seconds']:g} s per pipeline after {s['warmup_s']:g} s of warm-up, "
        f"loopback. Machine: {m['cpu']}, {m['cpus']} CPUs, Chromium {m.get('chromium')}, "
        f"commit {m['git_commit'] or 'none'}.", "",
        *report.targets_markdown(result["targets"]), "",
        "| pipeline | codec | frames | p50 ms | p95 ms | fps | server CPU ms/frame |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in PIPELINES:
        p = summary[name]
        if p.get("samples"):
            lines.append(f"| {name} | {p['codec']} | {p['samples']} | {p['p50_ms']} | "
                         f"{p['p95_ms']} | {p['mean_fps']} | {p['cpu_ms_per_frame']} |")
        else:
            lines.append(f"| {name} | – | 0 | – | – | – | – |")
    lines += ["", "Server CPU ms/frame: CPU time of this process (the server, the source's copy "
              "and id stamp of each frame, aiortc; the Python side of Playwright, which only "
              "waits during a window, for every pipeline alike) over each window / frames the "
              "page drew. Chromium is a separate process and not counted.", ""]
    for base in PIPELINES[1:]:
        if f"ratio_p50_hdx_over_{base}" in summary:
            lines.append(f"- hdx / {base}: p50 {summary[f'ratio_p50_hdx_over_{base}']}, p95 "
                         f"{summary[f'ratio_p95_hdx_over_{base}']}, CPU per frame "
                         f"{summary[f'cpu_ratio_hdx_over_{base}']}.")
    for run in result["runs"]:
        if run.get("browser_failures"):
            outcome = "not measured" if "error" in run else "then measured in a fresh browser"
            lines.append(f"- {run['pipeline']} round {run['round'] + 1}: "
                         f"{'; '.join(run['browser_failures'])}; {outcome}.")
    own = summary["hdx"].get("client_reported_median_ms")
    if own is not None:
        lines.append(f"- hdx's web client measures the same latency itself (RTP timestamps "
                     f"paired with the server's frame announcements, no pixel markers): median "
                     f"{own} ms at the end of each round, vs {summary['hdx']['p50_ms']} ms from "
                     "the markers.")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], summary: dict[str, Any], path: Path, plt: Any) -> None:
    """Latency CDF of every pipeline, and server CPU per frame."""
    fig, (cdf, cpu) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[2, 1])
    for name in PIPELINES:
        lat = np.sort([x for r in runs if r["pipeline"] == name and "error" not in r
                       for x in r["latencies_ms"]])
        if len(lat):
            cdf.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=name)
    cdf.set_xlabel("glass-to-glass latency (ms)")
    cdf.set_ylabel("fraction of frames")
    cdf.grid(alpha=0.3)
    cdf.legend()
    names = [n for n in PIPELINES if summary[n].get("samples")]
    cpu.bar(names, [summary[n]["cpu_ms_per_frame"] for n in names], color="C4")
    cpu.set_ylabel("server CPU ms per frame drawn")
    cpu.set_title("CPU per delivered frame")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size must be WIDTHxHEIGHT, not {text!r}") from None
    if w < (ID_BITS + CHECK_BITS) * CELL or h < 2 * CELL:
        raise SystemExit(f"--size must be at least {(ID_BITS + CHECK_BITS) * CELL}x{2 * CELL} "
                         "(the frame id strip)")
    return w, h


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What this run measures, with --quick's smaller defaults where an option was not given,
    and the deadlines that keep a dead or hung browser from stopping the run."""
    quick = bool(args.quick)
    size = args.size or (QUICK_SIZE if quick else SIZE)
    width, height = _parse_size(size)
    seconds = args.seconds or (QUICK_SECONDS if quick else SECONDS)
    rounds = args.rounds or (QUICK_ROUNDS if quick else ROUNDS)
    warmup_s = QUICK_WARMUP_S if quick else WARMUP_S
    return {"size": size, "width": width, "height": height, "fps": FPS, "seconds": seconds,
            "rounds": rounds, "warmup_s": warmup_s, "pipelines": list(PIPELINES),
            "target_ratio": TARGET, **deadlines_for(seconds, warmup_s, rounds)}


def deadlines_for(seconds: float, warmup_s: float, rounds: int) -> dict[str, float]:
    """The deadline of one round, and of the whole run: every round plus one retry's worth,
    so that one browser failure costs time but not the results."""
    round_s = LAUNCH_S + PAGE_TIMEOUT_S + warmup_s + seconds + ROUND_SLACK_S
    return {"round_deadline_s": round_s,
            "deadline_s": round_s * (rounds * len(PIPELINES) + RETRIES)}


def missing_browser() -> str | None:
    """Why Chromium cannot be driven here, in one line; None when it can."""
    if not os.path.exists(CHROMIUM):
        return f"hdx bench latency needs Chromium at {CHROMIUM}: {SETUP_HINT}"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"hdx bench latency needs Playwright (pip install playwright): {SETUP_HINT}"
    return None


def _chromium_version() -> str:
    try:
        done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip().removeprefix("Chromium ") or "unknown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hdx bench latency`` (unset ones follow --quick)."""
    parser.add_argument("--size", default=None, metavar="WxH",
                        help=f"desktop size (default {SIZE}; --quick {QUICK_SIZE})")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"measured seconds per pipeline and round (default {SECONDS:g}; "
                        f"--quick {QUICK_SECONDS:g})")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"alternating rounds (default {ROUNDS}; --quick {QUICK_ROUNDS})")


def main(args: argparse.Namespace) -> int:
    """Run, print the Markdown, write JSON, Markdown and the CDF plot into ``args.out``;
    2 without Chromium or Playwright, 1 if hdx or the naive pipeline drew nothing."""
    if args.seconds is not None and args.seconds <= 0:
        raise SystemExit("--seconds must be positive")
    if args.rounds is not None and args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    why = missing_browser()
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    s = settings(args)
    with Progress(s["rounds"] * len(PIPELINES), NAME) as progress:
        runs = deadlines.run(run_rounds(s, progress))
    summary = summarize(runs)
    result = {
        "benchmark": NAME, "description": DESCRIPTION, "quick": bool(args.quick),
        "settings": s,
        "machine": report.machine_info(chromium=_chromium_version(), pyav=av.__version__),
        "summary": summary, "headline": headline(summary), "targets": targets(summary, s),
        "runs": [r | {"latencies_ms": [round(x, 2) for x in r.get("latencies_ms", [])]}
                 for r in runs],
    }
    text = markdown(result)
    plt = None if args.no_plot else report.pyplot()
    if plt is not None:
        plot(runs, summary, args.out / f"{NAME}.png", plt)
        print(f"wrote {args.out / f'{NAME}.png'}", file=sys.stderr)
        text += f"\n![latency CDF and CPU per frame]({NAME}.png)\n"
    for path in report.write_report(args.out, NAME, result, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text, end="")
    return 0 if summary["hdx"].get("samples") and summary["naive"].get("samples") else 1
