"""One ``hdx bench latency`` round whose Chromium fails for real, mid-round; prints a JSON line.

``python -m tests.browser.latency_faults stop|kill`` runs one round of the naive pipeline
through the benchmark's own round code (``latency._one_round``). Once the page draws frames,
every Chromium process of the first browser is stopped (SIGSTOP: a browser that hangs, which
Playwright would wait for for ever) or its browser process is killed (SIGKILL: the zygotes and
renderers are left without it, as in the CI run that never ended). The retry runs untouched.

Run by ``test_bench_latency_faults.py`` as a child process with a time limit, so that a deadline
that does not hold fails the test instead of hanging it. What it prints: the round's record
(without the latency list), the Chromium pids it hit, which of them (and of that browser's
processes, found by its profile folder) are still alive afterwards, and the fault.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from hdx.bench import fresh_browser, latency, processes
from hdx.bench.deadlines import bounded
from hdx.bench.progress import Progress

ROUND_DEADLINE_S = 25.0
"""Enough for a clean naive round on a busy 2-core machine (launch, page, 1.5 + 1 s)."""
CLOSE_TIMEOUT_S = 3.0


def _chromium_below_me() -> list[int]:
    return [pid for pid in processes.descendants(os.getpid())
            if "chrom" in os.path.basename(processes.executable(pid))]


def _profile_of(pids: list[int]) -> str:
    for pid in pids:
        for arg in processes.command_line(pid):
            if arg.startswith("--user-data-dir="):
                return arg.removeprefix("--user-data-dir=")
    return ""


async def _when_drawing(context: Any) -> None:
    """Until the page has drawn a frame (the round is in its measured part)."""
    while True:
        for page in context.pages:  # a persistent context opens with a blank page of its own
            try:
                if await page.evaluate("!!(window.g2g && window.g2g.length > 0)"):
                    return
            except Exception:  # the page is still navigating
                pass
        await asyncio.sleep(0.1)


async def main(fault: str) -> dict[str, Any]:
    fresh_browser.CLOSE_TIMEOUT_S = CLOSE_TIMEOUT_S
    s = latency.settings(argparse.Namespace(quick=True, size=None, seconds=1.0, rounds=1))
    s["round_deadline_s"] = ROUND_DEADLINE_S
    hit: dict[str, Any] = {}
    measure = latency.measure

    async def faulty(context: Any, name: str, round_no: int, st: dict[str, Any]) -> Any:
        if hit:
            return await measure(context, name, round_no, st)  # the retry runs untouched
        round_task = asyncio.ensure_future(measure(context, name, round_no, st))
        await bounded(_when_drawing(context), ROUND_DEADLINE_S, what="the page drawing")
        pids = _chromium_below_me()
        hit.update(pids=pids, profile=_profile_of(pids))
        if fault == "stop":
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
        else:
            below = {child for pid in pids for child in processes.descendants(pid)}
            [browser] = [pid for pid in pids if pid not in below]  # the others' ancestor
            hit["browser"] = browser
            os.kill(browser, signal.SIGKILL)
        hit["at"] = time.monotonic()
        return await round_task

    latency.measure = faulty  # type: ignore[assignment]
    with Progress(1, "faults", stream=sys.stderr) as progress:
        async with fresh_browser.playwright_driver() as p:
            progress.step("one round")
            record = await latency._one_round(p, "naive", 0, s, time.monotonic() + 300, progress)
    left = processes.wait_gone(hit.get("pids", []))
    profile = hit.get("profile", "")
    return {"fault": fault, "round": {k: v for k, v in record.items() if k != "latencies_ms"},
            "hit": hit.get("pids", []), "profile": profile, "left": left,
            "profile_left": fresh_browser.browser_processes(profile) if profile else [],
            "chromium_below_me": [p for p in _chromium_below_me() if processes.alive(p)]}


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1]))
    print(json.dumps(result))
