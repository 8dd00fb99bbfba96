"""Browser tier: a real `hdx serve` process and Debian's Chromium driven by Playwright.

Chromium flags follow WEBRTC-NOTES.md: loopback ICE allowed, no mDNS hiding of local addresses,
every host name but 127.0.0.1 unresolvable (this machine has no outside network).
Set HDXTEST_REQUIRE_BROWSER=1 (the test command does) to fail instead of skip without Chromium.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS


def _require_browser() -> None:
    missing = not os.path.exists(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = True
    if missing:
        if os.environ.get("HDXTEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests need {CHROMIUM} and playwright (run the test command)")
        pytest.skip(f"{CHROMIUM} or playwright missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedDesktop:
    url: str
    process: subprocess.Popen[bytes]
    log_path: str
    log_text: str = ""
    """Everything the server printed, filled in when it has stopped."""

    def log(self) -> str:
        if self.log_text:
            return self.log_text
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def _serves_tls(args: tuple[str, ...]) -> bool:
    """Does ``hdx serve ARGS`` answer HTTPS on loopback (``--tls on``)?"""
    return any(a == "--tls" and b == "on" for a, b in itertools.pairwise(args)) \
        or "--tls=on" in args


def serve(*args: str, port: int | None = None) -> Iterator[ServedDesktop]:
    """Run `python -m hdx serve ARGS` on ``port`` (default: a free one) until the test ends.
    With ``--tls on`` the URL is https (the self-signed certificate is not checked here)."""
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix="hdx-serve-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "hdx", "serve", "--port", str(port), "--encoder", "x264", *args],
        stdout=log, stderr=subprocess.STDOUT)
    tls = _serves_tls(args)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
    context = ssl._create_unverified_context() if tls else None
    served = ServedDesktop(url, process, log.name)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "healthz", timeout=1, context=context).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"hdx serve did not start:\n{served.log()}")
            time.sleep(0.2)
    try:
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        served.log_text = served.log()
        os.unlink(log.name)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    # Module scope: the sync API keeps an event loop running in this thread while it lives,
    # which would stop the asyncio tests of other modules from running theirs.
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser_context(playwright_instance: Any) -> Iterator[Any]:
    """A fresh persistent context (Playwright refuses --user-data-dir in args)."""
    profile = tempfile.mkdtemp(prefix="hdx-chromium-")
    context = playwright_instance.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900})
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(page: Any, expression: str, timeout_s: float = 20.0) -> None:
    """Poll a JS expression until truthy. (Playwright's wait_for_function evaluates strings
    with eval inside the page, which hdx's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression!r} not true within {timeout_s} s")
        time.sleep(0.05)


def open_client(context: Any, url: str, timeout_s: float = 20.0) -> Any:
    """Open the web client and wait until frames are being drawn."""
    page = context.new_page()
    page.goto(url)
    wait_until(page, "!!(window.hdx && window.hdx.status().connected"
               " && window.hdx.status().framesDrawn > 0)", timeout_s)
    return page


def snapshot(page: Any) -> np.ndarray:
    """window.hdx.snapshot() as an (h, w, 4) RGBA array."""
    shot = page.evaluate("window.hdx.snapshotBase64()")
    data = np.frombuffer(base64.b64decode(shot["rgba"]), np.uint8)
    return data.reshape(shot["height"], shot["width"], 4)
