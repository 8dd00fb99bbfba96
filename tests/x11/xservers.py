"""Real X servers for tests: Xvfb (any user) and Xorg with the dummy driver (RandR resizes
and monitors, which this Debian's Xvfb cannot do; needs root). Each runs on a display number
it picks itself (``-displayfd``) and is killed when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

XORG_CONF = """
Section "ServerFlags"
  Option "AutoAddDevices" "false"
  Option "AutoEnableDevices" "false"
EndSection
Section "Device"
  Identifier "dummy"
  Driver "dummy"
  VideoRam 256000
EndSection
Section "Monitor"
  Identifier "m"
  HorizSync 5.0-1000.0
  VertRefresh 5.0-200.0
  Modeline "1920x1080" 148.50 1920 2008 2052 2200 1080 1084 1089 1125
  Modeline "1280x720" 74.25 1280 1390 1430 1650 720 725 730 750
  Modeline "1024x768" 65.00 1024 1048 1184 1344 768 771 777 806
EndSection
Section "Screen"
  Identifier "s"
  Device "dummy"
  Monitor "m"
  DefaultDepth 24
  SubSection "Display"
    Depth 24
    Modes "1280x720" "1920x1080" "1024x768"
    Virtual 1920 1080
  EndSubSection
EndSection
"""


@dataclass
class XServer:
    display: str
    process: subprocess.Popen[bytes]
    kind: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *command: str, timeout_s: float = 10.0) -> str:
        """Run an X client program against this server; its stdout."""
        done = subprocess.run(command, env=self.env(), capture_output=True, timeout=timeout_s,
                              check=False)
        if done.returncode != 0:
            raise AssertionError(f"{command} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")


def require_x() -> None:
    if shutil.which("Xvfb") is None:
        if os.environ.get("HDXTEST_REQUIRE_X") == "1":
            pytest.fail("X tests need Xvfb (run the test command, which installs it)")
        pytest.skip("Xvfb is not installed")


@contextlib.contextmanager
def x_server(kind: str = "xvfb", size: str = "1280x720", depth: int = 24) -> Iterator[XServer]:
    """Start Xvfb (``kind='xvfb'``) or Xorg+dummy (``'xorg'``); yields once it accepts
    clients."""
    require_x()
    workdir = tempfile.mkdtemp(prefix="hdx-x-")
    read_fd, write_fd = os.pipe()
    if kind == "xvfb":
        command = ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size}x{depth}",
                   "-nolisten", "tcp", "-noreset"]
    else:
        if shutil.which("Xorg") is None or not os.path.exists(
                "/usr/lib/xorg/modules/drivers/dummy_drv.so"):
            if os.environ.get("HDXTEST_REQUIRE_X") == "1":
                pytest.fail("RandR tests need Xorg with the dummy driver (the test command "
                            "installs xserver-xorg-core and xserver-xorg-video-dummy)")
            pytest.skip("Xorg dummy driver is not installed")
        if os.geteuid() != 0:
            pytest.skip("Xorg with the dummy driver needs root here")
        conf = os.path.join(workdir, "xorg.conf")
        with open(conf, "w") as f:
            f.write(XORG_CONF)
        command = ["Xorg", "-displayfd", str(write_fd), "-config", conf, "-noreset",
                   "-nolisten", "tcp", "-logfile", os.path.join(workdir, "xorg.log")]
    log = open(os.path.join(workdir, "server.log"), "wb")
    process = subprocess.Popen(command, pass_fds=(write_fd,), stdout=log, stderr=log)
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if ready:
                chunk = os.read(read_fd, 16)
                if not chunk:
                    break
                number += chunk
            if process.poll() is not None or time.monotonic() > deadline:
                break
        if not number.strip():
            process.kill()
            with open(os.path.join(workdir, "server.log"), errors="replace") as f:
                pytest.fail(f"{command[0]} did not start: {f.read()[-2000:]}")
        server = XServer(f":{int(number)}", process, kind)
        if kind == "xorg":
            server.run("xrandr", "--output", "DUMMY0", "--mode", size)
        yield server
    finally:
        os.close(read_fd)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def xwd_root(server: XServer) -> tuple[int, int, int, np.ndarray]:
    """The whole screen as ``xwd -root`` dumps it: an independent reference for capture."""
    done = subprocess.run(["xwd", "-root", "-silent"], env=server.env(), capture_output=True,
                          timeout=20, check=True)
    return read_xwd(done.stdout)


def read_xwd(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """``(width, height, depth, pixels as uint32 (h, w))`` of an ``xwd -root`` dump (ZPixmap,
    32 bits per pixel), parsed from its header (XWDFileHeader, big-endian CARD32s)."""
    header = np.frombuffer(data[:100], ">u4")
    header_size, version, fmt, depth, width, height = (int(v) for v in header[:6])
    byte_order, bits_per_pixel, bytes_per_line, ncolors = (int(header[7]), int(header[11]),
                                                           int(header[12]), int(header[19]))
    assert version == 7 and fmt == 2 and bits_per_pixel == 32, (version, fmt, bits_per_pixel)
    start = header_size + ncolors * 12
    rows = np.frombuffer(data[start:start + bytes_per_line * height], np.uint8)
    rows = rows.reshape(height, bytes_per_line)[:, :width * 4]
    pixels = rows.copy().view("<u4" if byte_order == 0 else ">u4").reshape(height, width)
    return width, height, depth, pixels.astype(np.uint32)


class XApp:
    """A running ``tests/x11/xclient.py``: its window and the events it has reported."""

    def __init__(self, server: XServer, geometry: str, pattern: str = "noise",
                 seed: int = 1) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.x11.xclient", "--geometry", geometry,
             "--pattern", pattern, "--seed", str(seed)],
            env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.events: list[dict[str, Any]] = []
        self.wait_for(lambda e: e["type"] == "ready", 15)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))

    def drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.events.append(self._lines.get_nowait())
            except queue.Empty:
                return self.events

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first reported event (also earlier ones) matching ``predicate``."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            self.drain()
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                err = self.process.stderr.read1(4000) if self.process.poll() is not None \
                    else b""  # type: ignore[union-attr]
                raise AssertionError(f"no matching X event within {timeout_s} s; got "
                                     f"{self.events[-10:]} {err!r}")
            time.sleep(0.02)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
