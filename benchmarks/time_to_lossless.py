"""Time to lossless: the last change of a cine viewport -> every visible pixel verified exact.

A 1920x1080 screen (PushSource) shows a 1024x1024 CT viewport on the synthetic workstation
(or a plain grey UI). For about 2 s the viewport gets a new slice every frame (30 fps); then it
stops: a *static event*. We measure, with the server's wall clock (``time.time()``, the same
clock the page's ``performance.timeOrigin + performance.now()`` follows on one host):

- measured: the last ``push()`` -> the first time ``window.hdx.status().lossless`` is true in
  Chromium (the page polls itself every 10 ms and records every change of that flag);
- the page's own ``timeToLosslessMs`` (from the last frame announcement it received), and the
  server's ``time_to_lossless_ms`` (from the frame's send to the last tile verified);
- the tile bytes the server sent for the event (``session_summaries()[0]["lossless"]
  ["bytes_sent"]``, sampled every 5 ms, so we also know when the first tile left).

The bound is ``quiet_ms + bytes / throughput``. The throughput is the tile channel's, measured
in the same run, alternating with the events: a full 1920x1080 screen of random RGB (what no
codec compresses) is pushed once and refined from scratch; throughput = tile bytes sent after
the video-motion byte budget has lapsed (``VIDEO_ACTIVE_S`` = 0.5 s after the last changed
frame; with nothing moving, flow control alone paces tiles) / the time until the client shows
lossless. It covers the whole tile path: encode, SCTP, the client's decode, hash and ack.
The median over the rounds is used. Target: measured <= 1.25 x bound (reported, not enforced).

The same is measured with hdx's Python client (hdx.client.viewer.Viewer in a subprocess, in
``until_lossless()`` whenever it is not lossless; its compositor is polled every 10 ms).

Usage: python benchmarks/time_to_lossless.py [--events 5] [--quick] [--clients chromium python]
Writes benchmarks/results/time_to_lossless.{json,md,png} (``--quick``: time_to_lossless_quick.*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _report import REPO, RESULTS, machine_info, pyplot, write_report

sys.path.insert(0, str(REPO))  # hdx, and the Chromium flags the browser tests use
from hdx.bench import content
from hdx.config import Config
from hdx.lossless.refiner import VIDEO_ACTIVE_S
from hdx.server.server import HdxServer
from hdx.sources.push import PushSource
from hdx.video.selection import EncoderChoice
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

WIDTH, HEIGHT = 1920, 1080
CT_SIZE = 1024
CT_AT = (760, 40)  # x, y of the CT viewport: not tile-aligned, as in a real UI
BUDGET_WINDOW_S = VIDEO_ACTIVE_S + 0.1  # the budget's window plus the noise frame's capture/encode
TARGET = 1.25
NAME = "time_to_lossless"
SCRIPT = str(Path(__file__).resolve())

# Runs in the page: record every change of status().lossless with the page's wall clock.
PAGE_PROBE_JS = """(() => {
  window.ttlLog = [];
  let last = null;
  let lastVerified = -1;
  window.ttlVerified = [];
  const tick = () => {
    const s = window.hdx.status();
    const t = (performance.timeOrigin + performance.now()) / 1000;
    if (s.verified !== lastVerified) {
      lastVerified = s.verified;
      window.ttlVerified.push([t, s.verified]);
      if (window.ttlVerified.length > 4000) window.ttlVerified.splice(0, 2000);
    }
    if (s.lossless !== last) {
      last = s.lossless;
      window.ttlLog.push({t, lossless: s.lossless, reason: s.losslessReason,
        ttlMs: s.timeToLosslessMs, verified: s.verified, tiles: s.tiles});
    }
  };
  tick();
  window.ttlTimer = setInterval(tick, 10);
})()"""


# -- content -------------------------------------------------------------------------------------
@dataclass
class Content:
    background: np.ndarray
    cine: list[np.ndarray]  # full frames, each with a different CT slice in the viewport
    noise: list[np.ndarray]  # full-screen random RGB, for the throughput rounds


def build_content(slices: int, background: str) -> Content:
    if background == "desktop":
        base = content.desktop_bgra(WIDTH, HEIGHT)
    else:  # a plain UI: flat grey with a darker title bar
        base = np.full((HEIGHT, WIDTH, 4), 0xD8, np.uint8)
        base[:32] = 0x40
        base[..., 3] = 255
    x, y = CT_AT
    cine = []
    for seed in range(slices):
        frame = base.copy()
        frame[y:y + CT_SIZE, x:x + CT_SIZE] = content.grey_to_bgra(
            content.grey8(content.ct_phantom(CT_SIZE, 12, seed=seed), 12))
        cine.append(frame)
    noise = [content.noise_bgra(WIDTH, HEIGHT, seed=100 + i) for i in range(2)]
    return Content(base, cine, noise)


# -- the server side -----------------------------------------------------------------------------
class Monitor:
    """Samples the only session's refinement summary every 5 ms on the server's loop:
    (time.time(), tile bytes sent, server says lossless)."""

    def __init__(self, server: HdxServer) -> None:
        self.server = server
        self.samples: list[tuple[float, int, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self.frames: list[tuple[float, float, bool]] = []
        """(sent, captured_at, changed anything) for every video frame the session sends:
        the track's ``on_sent`` hook, wrapped (instrumentation only; hdx is unchanged)."""
        track = next(iter(server.sessions.values())).track
        original = track.on_sent

        def on_sent(frame: Any) -> None:
            self.frames.append((time.time(), frame.captured_at, bool(frame.changed.any())))
            del self.frames[:-2000]
            if original is not None:
                original(frame)

        track.on_sent = on_sent

    def last_change_sent(self, before: float) -> tuple[float, float] | None:
        """(sent, captured_at) of the last frame with changes sent before ``before``."""
        changed = [(sent, captured) for sent, captured, any_ in self.frames
                   if any_ and sent <= before]
        return changed[-1] if changed else None

    def summary(self) -> dict[str, Any]:
        sessions = self.server.session_summaries()
        if len(sessions) != 1 or sessions[0]["lossless"] is None:
            raise RuntimeError(f"expected one session with refinement, got {len(sessions)}")
        return dict(sessions[0]["lossless"])

    def bytes_sent(self) -> int:
        return int(self.summary()["bytes_sent"])

    def start(self) -> None:
        self.samples = []
        self.tile_counts: list[tuple[float, int]] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            s = self.summary()
            now = time.time()
            self.samples.append((now, int(s["bytes_sent"]), bool(s["lossless"])))
            self.tile_counts.append((now, int(s["tiles_sent"])))
            await asyncio.sleep(0.005)

    def bytes_at(self, t: float) -> int:
        """Bytes sent by time t (the last sample at or before it)."""
        before = [b for ts, b, _ in self.samples if ts <= t]
        return before[-1] if before else self.samples[0][1]

    def tiles_at(self, t: float) -> int:
        """Tiles sent by time t (64x64 tiles in the rectangles handed to the channel)."""
        before = [n for ts, n in self.tile_counts if ts <= t]
        return before[-1] if before else self.tile_counts[0][1]

    def first_increase_after(self, t: float, base: int) -> float | None:
        return next((ts for ts, b, _ in self.samples if ts >= t and b > base), None)

    def lossless_after(self, t: float) -> float | None:
        return next((ts for ts, _, ok in self.samples if ts >= t and ok), None)


# -- clients -------------------------------------------------------------------------------------
class ChromiumClient:
    kind = "chromium"

    def __init__(self, page: Any) -> None:
        self.page = page

    async def start(self) -> None:
        await self.page.evaluate(PAGE_PROBE_JS)

    async def log(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate("window.ttlLog"))

    async def progress(self) -> list[tuple[float, int]]:
        """(time, tiles verified on the client) at every change of the count."""
        return [(float(t), int(v)) for t, v in await self.page.evaluate("window.ttlVerified")]

    async def close(self) -> None:
        await self.page.close()


class PythonClient:
    """hdx's Python viewer in a subprocess (``--worker URL``); its stdout is the same log."""

    kind = "python"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.entries: list[dict[str, Any]] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def spawn(cls, url: str) -> PythonClient:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, "--worker", url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                self.entries.append(json.loads(line))

    async def start(self) -> None:
        pass

    async def log(self) -> list[dict[str, Any]]:
        if self.reader.done():
            self.reader.result()
            raise RuntimeError("the Python client exited")
        return list(self.entries)

    async def progress(self) -> list[tuple[float, int]]:
        return [(e["t"], e["verified"]) for e in self.entries]

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


async def wait_lossless(client: Any, after: float, timeout_s: float) -> dict[str, Any] | None:
    """The client's first lossless entry stamped after ``after`` (None on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in await client.log():
            if entry["lossless"] and entry["t"] > after:
                return dict(entry)
        await asyncio.sleep(0.02)
    return None


async def worker(url: str) -> None:
    """The Python client: ``Viewer.until_lossless()`` (which pumps frames, polls the compositor
    every 10 ms and asks for a refresh when an announced frame is overdue); once lossless,
    receive frames until something changes, then ``until_lossless()`` again. A side task
    prints every change of the compositor's state as a JSON line. Stops when stdin closes."""
    from hdx.client.viewer import ClientError, Viewer

    loop = asyncio.get_running_loop()
    eof = loop.create_task(asyncio.to_thread(sys.stdin.read))
    async with Viewer(url) as viewer:
        await viewer.wait_control_open()

        async def report() -> None:
            last: tuple[bool, int, bool, int] | None = None
            while True:
                comp = viewer.compositor
                now = (bool(comp is not None and comp.lossless),
                       int(comp.verified.sum()) if comp is not None else 0,
                       # why not lossless: frame on screen unknown, announced frames not shown
                       comp is None or comp.shown_pts is None,
                       len(comp._pending) if comp is not None else 0)
                if now != last:
                    last = now
                    print(json.dumps({"t": time.time(), "lossless": now[0], "ttlMs": None,
                                      "verified": now[1], "unknown_frame": now[2],
                                      "pending": now[3], "frames": viewer.report.frames,
                                      "announced": viewer.report.frames_announced}), flush=True)
                await asyncio.sleep(0.01)

        async def view() -> None:
            while True:
                await viewer.until_lossless(timeout_s=3600)
                while viewer.compositor is not None and viewer.compositor.lossless:
                    with contextlib.suppress(ClientError):  # nothing new within 0.5 s
                        await viewer.next_frame(timeout_s=0.5)

        tasks = [loop.create_task(report()), loop.create_task(view())]
        await asyncio.wait([eof, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


# -- one phase: one client, alternating static events and throughput rounds ----------------------
def push_cine(source: PushSource, frames: list[np.ndarray], offset: int, fps: float,
              seconds: float) -> tuple[float, float, int]:
    """Push a new slice every frame for ``seconds``; returns (first, last push time, pushes).
    The last frame differs from event to event (``offset``)."""
    n = max(2, round(seconds * fps))
    start = time.monotonic()
    first = last = 0.0
    for i in range(n):
        source.push(frames[(offset + i) % len(frames)])
        last = time.time()
        first = first or last
        delay = start + (i + 1) / fps - time.monotonic()
        if delay > 0 and i < n - 1:
            time.sleep(delay)
    return first, last, n


@dataclass
class Phase:
    client: str
    events: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


async def settle(client: Any, monitor: Monitor, after: float, timeout_s: float,
                 phase: Phase, what: str, log: Any) -> None:
    """Wait until the client is lossless again; a timeout is noted (a finding about hdx, not
    a failure of the benchmark) and the run goes on."""
    entry = await wait_lossless(client, after, timeout_s)
    if entry is None:
        seen = await client.log()
        note = (f"{what}: {client.kind} not lossless within {timeout_s:.0f} s (server: "
                f"{monitor.summary()['tiles']}; client: {seen[-1] if seen else None})")
        phase.errors.append(note)
        log(f"[ttl]   {note}")
    await asyncio.sleep(0.3)


async def static_event(k: int, client: Any, source: PushSource, monitor: Monitor,
                       stuff: Content, args: argparse.Namespace) -> dict[str, Any]:
    before = monitor.summary()
    server_ttl_count = len(before["time_to_lossless_ms"])
    monitor.start()
    first, last, pushes = await asyncio.to_thread(
        push_cine, source, stuff.cine, k, args.fps, args.cine_seconds)
    entry = await wait_lossless(client, last, args.timeout)
    await asyncio.sleep(0.3)  # tiles still in flight would show up here
    await monitor.stop()
    after = monitor.summary()
    if entry is None:
        return {"event": k, "error": f"not lossless within {args.timeout} s",
                "server_tiles": after["tiles"]}
    b_last = monitor.bytes_at(last)
    b_end = int(after["bytes_sent"])
    first_tile = monitor.first_increase_after(last, b_last)
    server_done = monitor.lossless_after(last)
    server_ttl = after["time_to_lossless_ms"][server_ttl_count:]
    change = monitor.last_change_sent(entry["t"])
    last_tile = next((ts for ts, b, _ in reversed(monitor.samples) if b < b_end), None)
    last_tile = next((ts for ts, b, _ in monitor.samples if last_tile and ts > last_tile), None)
    progress = [(round((t - last) * 1000, 1), v) for t, v in await client.progress()
                if last - 0.05 <= t <= entry["t"] + 0.05]

    def ms(t: float | None) -> float | None:
        return None if t is None else round((t - last) * 1000, 1)

    return {
        "event": k, "pushes": pushes, "cine_s": round(last - first, 3),
        "bytes": b_end - b_last,
        "tiles": int(after["tiles_sent"]) - monitor.tiles_at(last),
        "bytes_during_cine": b_last - int(before["bytes_sent"]),
        "measured_ms": ms(entry["t"]),
        "page_ttl_ms": None if entry.get("ttlMs") is None else round(entry["ttlMs"], 1),
        "server_ttl_ms": server_ttl[-1] if server_ttl else None,
        "last_change_captured_ms": ms(change[1]) if change else None,
        "last_change_sent_ms": ms(change[0]) if change else None,
        "first_tile_ms": ms(first_tile),
        "last_tile_ms": ms(last_tile),
        "server_lossless_ms": ms(server_done),
        "rects_sent": after["rects_sent"] - before["rects_sent"],
        "formats": delta_formats(before, after),
        "budget_waits": after["budget_waits"] - before["budget_waits"],
        "flow_waits": after["flow_waits"] - before["flow_waits"],
        "timeline": [(round((ts - last) * 1000, 1), b - b_last)
                     for ts, b, _ in monitor.samples if ts >= last - 0.05],
        "client_verified": progress,
    }


def delta_formats(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Rectangles sent per tile format between two summaries."""
    old = before["formats"]
    return {f: n - old.get(f, 0) for f, n in after["formats"].items() if n - old.get(f, 0)}


async def throughput_round(k: int, client: Any, source: PushSource, monitor: Monitor,
                           stuff: Content, args: argparse.Namespace) -> dict[str, Any]:
    before = monitor.summary()
    monitor.start()
    await asyncio.sleep(0.02)
    b0 = monitor.bytes_sent()
    source.push(stuff.noise[k % len(stuff.noise)])
    pushed = time.time()
    entry = await wait_lossless(client, pushed, args.timeout)
    await asyncio.sleep(0.2)
    await monitor.stop()
    after = monitor.summary()
    out: dict[str, Any] = {"round": k}
    if entry is None:
        out["error"] = f"noise screen not lossless within {args.timeout} s"
        return out
    done = float(entry["t"])
    first_tile = monitor.first_increase_after(pushed, b0)
    total = int(after["bytes_sent"]) - b0
    tiles0 = monitor.tiles_at(pushed)
    cut = pushed + BUDGET_WINDOW_S
    out.update({
        "bytes": total,
        "tiles": int(after["tiles_sent"]) - tiles0,
        "first_tile_ms": None if first_tile is None else round((first_tile - pushed) * 1000, 1),
        "lossless_ms": round((done - pushed) * 1000, 1),
        "budget_waits": after["budget_waits"] - before["budget_waits"],
        "flow_waits": after["flow_waits"] - before["flow_waits"],
        "formats": delta_formats(before, after),
    })
    if first_tile is not None and done > first_tile:
        out["whole_MBps"] = round(total / (done - first_tile) / 1e6, 2)
    if done > cut + 0.15:
        b_cut = monitor.bytes_at(cut)
        out["bytes_after_budget"] = int(after["bytes_sent"]) - b_cut
        out["MBps"] = round((int(after["bytes_sent"]) - b_cut) / (done - cut) / 1e6, 2)
        out["tiles_per_s"] = round((int(after["tiles_sent"]) - monitor.tiles_at(cut))
                                   / (done - cut), 1)
    return out


async def run_phase(kind: str, stuff: Content, args: argparse.Namespace, pw: Any,
                    log: Any) -> Phase:
    phase = Phase(kind)
    source = PushSource(WIDTH, HEIGHT)
    source.push(stuff.background)
    config = Config(port=0, fps=args.fps, lossless_quiet_ms=args.quiet_ms)
    server = HdxServer(source, config, encoder=EncoderChoice("libx264", "benchmark"))
    await server.start()
    browser: Any = None
    client: ChromiumClient | PythonClient | None = None
    try:
        if kind == "chromium":
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            context = await browser.new_context(
                viewport={"width": WIDTH + 40, "height": HEIGHT + 120})
            page = await context.new_page()
            await page.goto(server.url)
            client = ChromiumClient(page)
        else:
            client = await PythonClient.spawn(server.url)
        assert client is not None
        deadline = time.monotonic() + 30
        while (len(server.sessions) != 1 or server.session_summaries()[0]["lossless"] is None
               or next(iter(server.sessions.values())).track.on_sent is None):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: no session within 30 s")
            await asyncio.sleep(0.05)
        await client.start()
        monitor = Monitor(server)
        await settle(client, monitor, 0.0, args.timeout, phase, "initial refinement", log)
        for k in range(args.events):
            log(f"[ttl] {kind}: static event {k + 1}/{args.events}")
            event = await static_event(k, client, source, monitor, stuff, args)
            phase.events.append(event)
            if "error" in event:
                phase.errors.append(f"event {k}: {event['error']}")
                log(f"[ttl]   {event['error']}")
                await settle(client, monitor, time.time(), args.timeout, phase,
                             f"after event {k}", log)
            else:
                log(f"[ttl]   {event['measured_ms']:.0f} ms, {event['bytes'] / 1e3:.0f} kB, "
                    f"first tile at {event['first_tile_ms']} ms")
            if k < args.throughput_rounds:
                log(f"[ttl] {kind}: throughput round {k + 1}/{args.throughput_rounds}")
                tp = await throughput_round(k, client, source, monitor, stuff, args)
                phase.throughput.append(tp)
                if "error" in tp:
                    phase.errors.append(f"throughput {k}: {tp['error']}")
                log(f"[ttl]   {tp.get('MBps')} MB/s after the budget window "
                    f"({tp.get('whole_MBps')} from the first tile), "
                    f"{tp.get('bytes', 0) / 1e6:.1f} MB")
                source.push(stuff.background)
                await settle(client, monitor, time.time(), args.timeout, phase,
                             f"after throughput round {k}", log)
        if isinstance(client, ChromiumClient):
            phase.final["page_tile_counters"] = await client.page.evaluate(
                "window.hdx.status().tileCounters")
        phase.final["server_summary"] = monitor.summary()
    finally:
        if client is not None:
            await client.close()
        if browser is not None:
            await browser.close()
        await server.stop()
    return phase


# -- report --------------------------------------------------------------------------------------
def med(values: list[Any], digits: int = 1) -> float | None:
    known = [float(v) for v in values if v is not None]
    return round(statistics.median(known), digits) if known else None


def summarize(phase: Phase, quiet_ms: int) -> dict[str, Any]:
    rounds = [r for r in phase.throughput if "MBps" in r]
    mbps = med([r["MBps"] for r in rounds])
    whole = med([r["whole_MBps"] for r in rounds if "whole_MBps" in r])
    good = [e for e in phase.events if "error" not in e]
    tile_rate = med([r.get("tiles_per_s") for r in rounds])
    for e in good:
        if mbps:
            e["bound_ms"] = round(quiet_ms + e["bytes"] / (mbps * 1e6) * 1000, 1)
            e["ratio"] = round(e["measured_ms"] / e["bound_ms"], 3)
        if tile_rate:
            e["tile_bound_ms"] = round(quiet_ms + e["tiles"] / tile_rate * 1000, 1)
    out: dict[str, Any] = {
        "client": phase.client, "events": len(phase.events), "problems": len(phase.errors),
        "throughput_MBps": mbps, "throughput_whole_MBps": whole,
        "throughput_tiles_per_s": tile_rate,
        "quiet_ms": quiet_ms,
    }
    for key in ("measured_ms", "page_ttl_ms", "server_ttl_ms", "last_change_sent_ms",
                "first_tile_ms",
                "last_tile_ms", "server_lossless_ms", "bytes", "tiles", "bound_ms", "ratio",
                "tile_bound_ms"):
        out[f"median_{key}"] = med([e.get(key) for e in good], 3 if key == "ratio" else 1)
    if out["median_ratio"] is not None:
        out["target_met"] = out["median_ratio"] <= TARGET
    return out


def markdown(summaries: list[dict[str, Any]], phases: list[Phase],
             args: argparse.Namespace) -> str:
    lines = [
        "# Time to lossless (last change -> every visible pixel verified exact)", "",
        f"1920x1080 screen, a {CT_SIZE}x{CT_SIZE} CT viewport on the {args.background} "
        f"background gets a new slice every frame at {args.fps} fps for {args.cine_seconds} s, "
        f"then stops; {args.events} such static events per client, alternating with "
        f"{args.throughput_rounds} throughput rounds (a full screen of random RGB refined from "
        f"scratch). quiet = {args.quiet_ms} ms. Wall clock of this machine throughout.", "",
    ]
    if args.quick:
        lines += ["**Quick run (smoke test): too few samples to be representative.**", ""]
    lines += [
        "| client | throughput MB/s (tiles/s) | event kB (tiles) | measured ms | page ms | "
        "server ms | first tile ms | last tile ms | bound ms | **measured / bound** | "
        "tile-rate bound ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        kb = s["median_bytes"] / 1e3 if s["median_bytes"] is not None else float("nan")
        lines.append(
            f"| {s['client']} | {s['throughput_MBps']} ({s['throughput_tiles_per_s']}) | "
            f"{kb:.0f} ({s['median_tiles']}) | {s['median_measured_ms']} | "
            f"{s['median_page_ttl_ms']} | {s['median_server_ttl_ms']} | "
            f"{s['median_first_tile_ms']} | {s['median_last_tile_ms']} | {s['median_bound_ms']} "
            f"| **{s['median_ratio']}** | {s['median_tile_bound_ms']} |")
    lines += ["", "Medians over the events. *measured*: last push -> the client shows lossless "
              "(server clock); *page*: the page's own `timeToLosslessMs` (from the last frame "
              "announcement it received); *server*: the server's `time_to_lossless_ms` (last "
              "changed frame sent -> last tile verified); *first / last tile*: last push -> "
              "first / last tile byte handed to the data channel; *bound* = quiet + bytes / "
              "throughput, the throughput measured on the noise screen after the budget window "
              "(the target's definition); *tile-rate bound* = quiet + tiles / (64x64 tiles per "
              "second on the noise screen): the same pipeline counted in pixels instead of "
              "bytes, for reference.", ""]
    for s in summaries:
        if s.get("median_ratio") is not None:
            verdict = "met" if s["target_met"] else "NOT met"
            lines.append(f"- {s['client']}: measured / bound = {s['median_ratio']} "
                         f"(target <= {TARGET}: {verdict}).")
    for phase in phases:
        for note in phase.errors:
            lines.append(f"- {phase.client}: **{note}**")
    lines += ["", "Every event (ms after the last push; *last change sent*: the last video frame "
              "with changes left the server; *first/last tile*: first and last tile byte handed "
              "to the data channel; *server lossless*: every tile verified by the server's "
              "books):", "",
              "| client | event | kB | rects (formats) | last change sent | first tile | last tile "
              "| server lossless | client lossless (measured) | page | server | bound | ratio |",
              "| --- | ---: | ---: | --- |" + " ---: |" * 9]
    for phase in phases:
        for e in phase.events:
            if "error" in e:
                lines.append(f"| {phase.client} | {e['event']} | {e['error']} |")
                continue
            formats = ", ".join(f"{n} {f}" for f, n in sorted(e["formats"].items()))
            lines.append(
                f"| {phase.client} | {e['event']} | {e['bytes'] / 1e3:.0f} | {e['rects_sent']} "
                f"({formats}) | {e['last_change_sent_ms']} | {e['first_tile_ms']} | "
                f"{e['last_tile_ms']} | "
                f"{e['server_lossless_ms']} | {e['measured_ms']} | {e['page_ttl_ms']} | "
                f"{e['server_ttl_ms']} | {e.get('bound_ms')} | {e.get('ratio')} |")
    lines += ["", "Throughput rounds (random RGB 1920x1080):", "",
              "| client | round | MB sent | first tile ms | lossless ms | MB/s after budget | "
              "MB/s from first tile | formats |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for phase in phases:
        for r in phase.throughput:
            if "round" not in r:
                continue
            if "error" in r:
                lines.append(f"| {phase.client} | {r['round']} | {r['error']} |")
                continue
            lines.append(
                f"| {phase.client} | {r['round']} | {r['bytes'] / 1e6:.2f} | {r['first_tile_ms']} "
                f"| {r['lossless_ms']} | {r.get('MBps')} | {r.get('whole_MBps')} | "
                f"{r['formats']} |")
    return "\n".join(lines) + "\n"


def plot(phases: list[Phase], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = 0.0
    for phase, marker in zip(phases, "os", strict=False):
        good = [e for e in phase.events if "bound_ms" in e]
        if good:
            left.scatter([e["bound_ms"] for e in good], [e["measured_ms"] for e in good],
                         marker=marker, label=phase.client)
            top = max(top, *(e["measured_ms"] for e in good), *(e["bound_ms"] for e in good))
    if top:
        xs = np.array([0, top * 1.1])
        left.plot(xs, xs, "k:", lw=1, label="= bound")
        left.plot(xs, TARGET * xs, "r--", lw=1, label=f"{TARGET} x bound")
    left.set_xlabel("bound: quiet + bytes / throughput (ms)")
    left.set_ylabel("measured: last change -> lossless (ms)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    for phase, colour in zip(phases, ("C0", "C1"), strict=False):
        good = [e for e in phase.events if "timeline" in e]
        if not good:
            continue
        e = good[min(1, len(good) - 1)]
        t, b = zip(*e["timeline"], strict=True)
        right.plot(t, np.array(b) / max(e["bytes"], 1), color=colour,
                   label=f"{phase.client} event {e['event']}: tile bytes sent")
        if e["client_verified"]:
            t, v = zip(*e["client_verified"], strict=True)
            v0 = min(v)
            right.step(t, (np.array(v) - v0) / max(max(v) - v0, 1), where="post",
                       color=colour, ls="--", label=f"{phase.client}: tiles verified on client")
        right.axvline(e["measured_ms"], color=colour, lw=0.6, ls=":")
    right.set_title("one event: server sends vs client verifies", fontsize=9)
    right.legend(fontsize=7)
    right.set_xlabel("ms since the last change")
    right.set_ylabel("fraction of the event")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


async def main(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    log(f"[ttl] building content ({args.slices} CT slices of {CT_SIZE}^2)...")
    stuff = build_content(args.slices, args.background)
    clients = args.clients
    phases: list[Phase] = []
    async with async_playwright() as pw:
        for kind in clients:
            try:
                phases.append(await run_phase(kind, stuff, args, pw, log))
            except Exception as exc:  # a phase that cannot run is reported, then we exit 1
                log(f"[ttl] {kind} phase failed: {exc!r}")
                phases.append(Phase(kind, errors=[f"phase failed: {exc!r}"]))
    summaries = [summarize(p, args.quiet_ms) for p in phases]
    report = {
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_s": round(time.monotonic() - started, 1),
        "summary": summaries,
        "phases": [{"client": p.client, "errors": p.errors, "events": p.events,
                    "throughput": p.throughput, "final": p.final} for p in phases],
    }
    name = NAME + ("_quick" if args.quick else "")
    text = markdown(summaries, phases, args)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plot and plot(phases, args.out / f"{name}.png"):
        text += f"\n![measured vs bound, and tile bytes over time]({name}.png)\n"
    write_report(args.out, name, report, text)
    print(text)
    log(f"[ttl] done in {report['wall_s']} s")
    failed = [e for p in phases for e in p.errors if e.startswith("phase failed")]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Exits non-zero only when a client cannot be run at all, never on a target miss.")
    parser.add_argument("--events", type=int, default=5, help="static events per client")
    parser.add_argument("--throughput-rounds", type=int, default=3,
                        help="noise-screen throughput rounds per client, after the first events")
    parser.add_argument("--cine-seconds", type=float, default=2.0,
                        help="how long the viewport changes before each static event")
    parser.add_argument("--fps", type=int, default=30, help="capture rate and slice rate")
    parser.add_argument("--quiet-ms", type=int, default=Config().lossless_quiet_ms,
                        help="the server's lossless_quiet_ms")
    parser.add_argument("--slices", type=int, default=6,
                        help="distinct CT slices to cycle through (0.8 s each to build)")
    parser.add_argument("--background", choices=("desktop", "plain"), default="desktop")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for lossless before calling an event failed")
    parser.add_argument("--clients", nargs="+", choices=("chromium", "python"),
                        default=["chromium", "python"], help="which clients to measure")
    parser.add_argument("--quick", action="store_true",
                        help="2 events, 1 throughput round, 2 slices (smoke test; "
                             "writes time_to_lossless_quick.*)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.throughput_rounds, args.slices = 2, 1, 2
        args.cine_seconds = min(args.cine_seconds, 1.0)
    args.throughput_rounds = max(1, min(args.throughput_rounds, args.events))
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.worker:
        asyncio.run(worker(ARGS.worker))
        raise SystemExit(0)
    raise SystemExit(asyncio.run(main(ARGS)))
