"""Glass-to-glass latency: frame produced on the server -> its pixels drawn in Chromium.

Two pipelines run the same content in the same run, alternating, on this machine:
- hdx: HdxServer with its own web client (pre-encoded H.264, latest-frame-only, jitter buffer
  target 0, frames drawn from MediaStreamTrackProcessor);
- naive: the textbook aiortc server, a ``VideoStreamTrack`` whose ``recv()`` returns ndarray
  frames, encoded by aiortc itself with the codec Chromium prefers (VP8), shown in a plain
  <video>; this is the baseline the targets are written against;
- naive-h264: the same naive server with H.264 negotiated (aiortc's own libx264 encoder), to
  show how much of the gap is the codec and how much is the pipeline.

Every frame carries its id in a 24-cell black/white strip at the top-left (20 id bits and a
4-bit check). The source records when it produced each id; the page decodes the strip from the
pixels it drew and records when. Both clocks are this machine's wall clock.

Usage: python benchmarks/glass_to_glass.py [--size 1920x1080] [--seconds 12] [--rounds 2]
Writes benchmarks/results/glass_to_glass_SIZE.{json,md} (and .png with matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from _report import REPO, RESULTS, machine_info, write_report

sys.path.insert(0, str(REPO))  # for the Chromium flags the browser tests use too
from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from hdx.config import Config
from hdx.server.server import HdxServer
from hdx.sources.base import Frame, InputEvent
from hdx.sources.synthetic import SyntheticDesktop
from hdx.video.selection import EncoderChoice
from hdx.webrtc.ice import filter_remote_candidates, host_addresses, is_loopback
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

PIPELINES = ("hdx", "naive", "naive-h264")
CELL = 16
ID_BITS = 20
CHECK_BITS = 4

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


def stamp_frame_id(frame: Frame, frame_id: int) -> None:
    """Draw ``frame_id`` (20 bits + a 4-bit check) as black/white cells at the top-left."""
    bits = [(frame_id >> (ID_BITS - 1 - i)) & 1 for i in range(ID_BITS)]
    check = sum(bits) % 16
    bits += [(check >> (CHECK_BITS - 1 - i)) & 1 for i in range(CHECK_BITS)]
    for i, bit in enumerate(bits):
        frame[0:CELL, i * CELL:(i + 1) * CELL, :3] = 255 if bit else 0


def latencies_from(samples: list[tuple[int, float]], produced: dict[int, float]
                   ) -> tuple[list[float], int, set[int]]:
    """(latencies ms, unreadable markers, frame ids seen) from the page's (id, drawn ms)
    samples; a frame drawn twice counts once."""
    latencies: list[float] = []
    bad = 0
    seen: set[int] = set()
    for frame_id, shown in samples:
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
        pass


class NaiveTrack(VideoStreamTrack):  # type: ignore[misc]
    """What the aiortc examples do: return ndarray frames, let aiortc encode them."""

    def __init__(self, source: MarkedDesktop) -> None:
        super().__init__()
        self._source = source

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._source.next_frame(), format="bgra")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def start_naive(source: MarkedDesktop,
                      h264: bool) -> tuple[web.AppRunner, str, list[Any]]:
    peers: list[Any] = []

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=NAIVE_PAGE, content_type="text/html")

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection()
        peers.append(pc)
        transceiver = pc.addTransceiver(NaiveTrack(source), direction="sendonly")
        if h264:
            codecs = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])
        sdp = filter_remote_candidates(body["sdp"], is_loopback)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        with host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/offer", offer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/", peers


async def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JS expression (hdx's CSP forbids the eval behind Playwright's wait_for_function)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} not true within {timeout_s} s")
        await asyncio.sleep(0.05)


async def measure(context: Any, name: str, width: int, height: int, fps: int,
                  seconds: float) -> dict[str, Any]:
    """One run of one pipeline: latencies (ms) of every frame drawn after a 3 s warm-up."""
    source = MarkedDesktop(width, height, fps)
    page = await context.new_page()
    if name == "hdx":
        server = HdxServer(source, Config(port=0, fps=fps),  # type: ignore[arg-type]
                           encoder=EncoderChoice("libx264", "benchmark"))
        await server.start()
        await page.goto(server.url)
        await wait_until(page, "!!(window.hdx && window.hdx.status().framesDrawn > 0)")
        await page.evaluate(HDX_PROBE_JS)
        codec = "H.264 (hdx, libx264)"
    else:
        runner, url, peers = await start_naive(source, h264=name == "naive-h264")
        await page.goto(url)
        await wait_until(page, "window.g2g.length > 0")
    await asyncio.sleep(3.0)
    await page.evaluate("window.g2g.length = 0")
    started = time.time()
    await asyncio.sleep(seconds)
    samples = await page.evaluate("window.g2g")
    elapsed = time.time() - started
    if name == "hdx":
        stats = await page.evaluate("window.hdx.receiverStats()")
        stats["self_reported_latency_ms"] = await page.evaluate("window.hdx.status().latencyMs")
        await page.close()
        await server.stop()
    else:
        stats = await naive_stats(page)
        codec = f"{stats.get('codec')} (aiortc's own encoder)"
        await page.close()
        for pc in peers:
            await pc.close()
        await runner.cleanup()
    latencies, bad, seen = latencies_from(samples, source.produced)
    return {"pipeline": name, "codec": codec, "latencies_ms": latencies,
            "fps": len(seen) / elapsed, "unreadable": bad, "receiver": stats}


async def naive_stats(page: Any) -> dict[str, Any]:
    # `pc` is a top-level const of the naive page's script, visible to evaluated scripts.
    return await page.evaluate("""(async () => {
      const report = await pc.getStats(); let inbound = null;
      report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s; });
      const codec = inbound && inbound.codecId ? report.get(inbound.codecId) : null;
      return {codec: codec ? codec.mimeType : null,
              framesDecoded: inbound ? inbound.framesDecoded : 0,
              framesDropped: inbound ? inbound.framesDropped : 0};
    })()""")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PIPELINES:
        mine = [r for r in runs if r["pipeline"] == name]
        lat = sorted(x for r in mine for x in r["latencies_ms"])
        if not lat:
            out[name] = {"samples": 0}
            continue
        out[name] = {
            "codec": mine[0]["codec"],
            "samples": len(lat),
            "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1),
            "mean_fps": round(statistics.mean(r["fps"] for r in mine), 1),
            "unreadable_frames": sum(r["unreadable"] for r in mine),
        }
        reported = [r["receiver"].get("self_reported_latency_ms") for r in mine]
        if any(x is not None for x in reported):
            out[name]["client_reported_median_ms"] = round(
                statistics.median(x for x in reported if x is not None), 1)
    for base in PIPELINES[1:]:
        if out["hdx"].get("samples") and out[base].get("samples"):
            out[f"ratio_p50_hdx_over_{base}"] = round(
                out["hdx"]["p50_ms"] / out[base]["p50_ms"], 3)
            out[f"ratio_p95_hdx_over_{base}"] = round(
                out["hdx"]["p95_ms"] / out[base]["p95_ms"], 3)
    return out


def markdown(summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Glass-to-glass latency (frame produced -> pixels drawn in Chromium)", "",
        f"{args.size} synthetic desktop in cine at {args.fps} fps, {args.rounds} alternating "
        f"rounds of {args.seconds:.0f} s per pipeline, loopback, this machine.", "",
        "| pipeline | codec | frames | p50 ms | p95 ms | fps |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name in PIPELINES:
        s = summary[name]
        if s.get("samples"):
            lines.append(f"| {name} | {s['codec']} | {s['samples']} | {s['p50_ms']} | "
                         f"{s['p95_ms']} | {s['mean_fps']} |")
    if "ratio_p50_hdx_over_naive" in summary:
        r = summary["ratio_p50_hdx_over_naive"]
        lines += ["", f"**p50 ratio hdx / naive: {r}** (target <= 0.6: "
                  f"{'met' if r <= 0.6 else 'NOT met'}); p95 ratio "
                  f"{summary['ratio_p95_hdx_over_naive']}."]
    if summary["hdx"].get("client_reported_median_ms") is not None:
        lines += [f"hdx's web client measures the same latency itself (RTP timestamps paired "
                  f"with the server's frame announcements, no pixel markers): median "
                  f"{summary['hdx']['client_reported_median_ms']} ms at the end of each run, "
                  f"vs {summary['hdx']['p50_ms']} ms from the markers."]
    if "ratio_p50_hdx_over_naive-h264" in summary:
        lines += [f"Against the naive pipeline with H.264 forced: p50 ratio "
                  f"{summary['ratio_p50_hdx_over_naive-h264']}, p95 ratio "
                  f"{summary['ratio_p95_hdx_over_naive-h264']}."]
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in PIPELINES:
        lat = np.sort([x for r in runs if r["pipeline"] == name for x in r["latencies_ms"]])
        if len(lat):
            ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=name)
    ax.set_xlabel("glass-to-glass latency (ms)")
    ax.set_ylabel("fraction of frames")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    from playwright.async_api import async_playwright

    runs: list[dict[str, Any]] = []
    async with async_playwright() as p:
        for round_no in range(args.rounds):
            order = PIPELINES if round_no % 2 == 0 else PIPELINES[::-1]
            for name in order:
                print(f"[g2g] round {round_no + 1}/{args.rounds}: {name} "
                      f"({args.seconds:.0f} s)...", file=sys.stderr, flush=True)
                context = await p.chromium.launch_persistent_context(
                    f"/tmp/hdx-g2g-{name}-{round_no}", executable_path=CHROMIUM,
                    headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": width, "height": height + 40})
                try:
                    runs.append(await measure(context, name, width, height, args.fps,
                                              args.seconds))
                finally:
                    await context.close()
                last = runs[-1]
                print(f"[g2g]   {len(last['latencies_ms'])} frames, p50 "
                      f"{statistics.median(last['latencies_ms'] or [float('nan')]):.1f} ms",
                      file=sys.stderr, flush=True)
    summary = summarize(runs)
    report = {"machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
              "summary": summary,
              "runs": [{k: v for k, v in r.items() if k != "latencies_ms"}
                       | {"latencies_ms": [round(x, 2) for x in r["latencies_ms"]]}
                       for r in runs]}
    text = markdown(summary, args)
    name = f"glass_to_glass_{args.size}"
    args.out.mkdir(parents=True, exist_ok=True)
    if plot(runs, args.out / f"{name}.png"):
        text += f"\n![latency CDF]({name}.png)\n"
    write_report(args.out, name, report, text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
