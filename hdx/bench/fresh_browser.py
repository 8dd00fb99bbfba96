"""Work in a fresh headless Chromium that cannot hang a benchmark.

Seen in CI: Chromium's browser process went defunct, two of its zygotes spun at full CPU, and
Playwright's ``page.evaluate`` waited for ever (the zygotes held the DevTools pipe open, so the
driver never learnt that the browser had gone). Here a launch, the work and the close run under
one deadline; after a crash, a hang or an overrun the browser's processes are killed (found by
the profile folder named in their command lines, which re-parented zygotes still carry, plus
their process groups) and :class:`BrowserFailed` says what happened, for the caller to record
and, if it likes, to retry with a fresh browser.

Playwright's driver (a Node.js child of this process) is started and stopped in bounded time
too, by :func:`playwright_driver`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from hdx.bench import processes
from hdx.bench.chromium import CHROMIUM, CHROMIUM_ARGS
from hdx.bench.deadlines import Overrun, bounded

T = TypeVar("T")

CLOSE_TIMEOUT_S = 10.0
"""How long a browser may take to close before its processes are killed."""
DRIVER_START_S = 60.0
"""How long Playwright's driver may take to start (Node.js on a busy 2-core machine)."""
PROFILE_PREFIX = "hdx-bench-chromium-"
_GONE_WORDS = ("crash", "closed", "disconnected")


class BrowserFailed(Exception):
    """The browser crashed, hung or did not finish in time; a fresh one may do better."""


def _browser_gone(exc: BaseException) -> bool:
    """Whether a Playwright error says the browser, context or page is gone (as opposed to an
    error of the page's own script or of the server the page talks to)."""
    from playwright.async_api import Error as PlaywrightError

    if not isinstance(exc, PlaywrightError):
        return False
    text = str(exc).lower()
    return type(exc).__name__ == "TargetClosedError" or any(w in text for w in _GONE_WORDS)


def browser_processes(profile: str) -> list[int]:
    """The live Chromium processes of the browser that uses ``profile``."""
    return processes.processes_naming(profile, "chrom")


def kill_browser(profile: str) -> list[int]:
    """SIGKILL every process of the browser that uses ``profile``, and their groups."""
    return processes.kill_processes(browser_processes(profile))


async def _close(context: Any, profile: str) -> list[int]:
    """Close the context within :data:`CLOSE_TIMEOUT_S`, then kill whatever is left of the
    browser (nothing, after a clean close); the pids killed."""
    from playwright.async_api import Error as PlaywrightError

    if context is not None:
        with contextlib.suppress(Overrun, PlaywrightError):
            await bounded(context.close(), CLOSE_TIMEOUT_S, grace_s=1.0, what="closing Chromium")
    return kill_browser(profile)


async def in_fresh_browser(playwright: Any, work: Callable[[Any], Awaitable[T]], *,
                           deadline_s: float, viewport: dict[str, int]) -> T:
    """``work(context)`` in a new persistent context of Debian's Chromium with a fresh
    profile; launch and work within ``deadline_s``, the close within :data:`CLOSE_TIMEOUT_S`
    more. :class:`BrowserFailed` if the browser died or the deadline passed (its processes are
    then killed); other errors of ``work`` propagate, after the same clean-up."""
    profile = tempfile.mkdtemp(prefix=PROFILE_PREFIX)
    opened: list[Any] = []

    async def launch_and_work() -> T:
        opened.append(await playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport=viewport))
        return await work(opened[0])

    failure = ""
    try:
        return await bounded(launch_and_work(), deadline_s, what="the browser's round")
    except Overrun as exc:
        failure = f"hung: {exc}"
    except Exception as exc:
        if not _browser_gone(exc):
            raise
        failure = f"died: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    finally:
        killed = await _close(opened[0] if opened else None, profile)
        shutil.rmtree(profile, ignore_errors=True)
    if killed:
        failure += f" (killed {len(killed)} Chromium processes left behind)"
    raise BrowserFailed(f"Chromium {failure}")


@contextlib.asynccontextmanager
async def playwright_driver() -> AsyncIterator[Any]:
    """Playwright (async API), whose driver is started within :data:`DRIVER_START_S` and stopped
    within :data:`CLOSE_TIMEOUT_S`, or killed."""
    from playwright.async_api import async_playwright

    before = set(processes.descendants(os.getpid()))

    def kill_driver() -> None:
        processes.kill_processes(p for p in processes.descendants(os.getpid()) if p not in before)

    manager = async_playwright()
    try:
        playwright = await bounded(manager.start(), DRIVER_START_S,
                                   what="starting Playwright's driver")
    except Overrun:
        kill_driver()
        raise
    try:
        yield playwright
    finally:
        try:
            await bounded(manager.__aexit__(None, None, None), CLOSE_TIMEOUT_S, grace_s=1.0,
                          what="stopping Playwright's driver")
        except Overrun as exc:
            print(f"hdx bench: {exc}; killing it", file=sys.stderr)
            kill_driver()
