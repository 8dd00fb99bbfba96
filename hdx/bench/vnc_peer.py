"""The VNC peer of ``hdx bench peers``: x11vnc and hdx serving the same static CT screen.

What a radiologist sees on opening a remote session: how long until the screen is there, how
long (and how many bytes) until every pixel is exact. One real Xvfb shows the screen (painted
as the root window's background, so nothing can expose it away); x11vnc (Debian's) and an
``hdx serve``-equivalent subprocess both serve that display on loopback. Each repeat connects
a fresh client to each peer, alternating, so a noisy neighbour hits both alike:

- VNC: :class:`hdx.bench.rfb.RfbClient` asks for the whole screen (non-incremental) in one
  encoding (ZRLE, zlib, raw); *first complete screen* is when the rectangles received cover
  every pixel, *pixel-exact* when the framebuffer equals the X screen byte for byte (the same
  moment for these lossless encodings: both are reported). Both include decoding in Python.
- hdx: :class:`hdx.client.viewer.Viewer` (aiortc, as the browser connects); *first paint* is
  its first decoded video frame, *time to lossless* when the server has verified every tile.

Bytes, for both at the application layer (above TCP or UDP, no IP/TCP/UDP headers): VNC,
every byte read from the TCP socket (RFB handshake + updates); hdx, every datagram the DTLS
transport received (DTLS handshake, SRTP video, SRTCP, SCTP data channels with the tiles and
control messages) plus the SDP answer of the HTTP offer. STUN and HTTP headers are left out
(well under 1 kB).

Over loopback VNC raw wins on bandwidth it would never have at home; ``measure(...,
link_mbit=N)`` serves both peers from a network namespace behind a veth shaped to N Mbit/s
each way (:mod:`hdx.bench.netlink`: ``tbf``, no added delay, since this kernel has no netem),
with the clients here, and counts what crossed the veth per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hdx.bench.content import ct_phantom, grey8, grey_to_bgra
from hdx.bench.netlink import Link, shaped_link
from hdx.bench.netlink import available_link as available_link  # re-exported
from hdx.bench.processes import stop_process
from hdx.bench.rfb import RfbClient, RfbError

BGRA = npt.NDArray[np.uint8]

ENCODINGS = ("zrle", "zlib", "raw")
TIMEOUT_S = 60.0
"""Bound on each connect-to-exact run and on every process start; nothing waits longer."""
SETTLE_S = 0.3
"""Pause between runs so the previous client's teardown is not measured by the next."""

X11VNC_FLAGS = (
    "-localhost",  # loopback only, as the hdx server here
    "-noipv6",
    "-nopw",       # no password: security type None, like hdx on loopback without tokens
    "-shared", "-forever",  # repeated connects, never exits after the first client
    "-norc",       # no ~/.x11vncrc can change what is measured
    "-noncache",   # no client-side cache: the framebuffer is the screen, not 11 screens tall
    "-nocursor",   # no cursor drawn into the pixels (hdx sends the cursor separately)
    "-nosel", "-nobell",   # no clipboard or bell traffic counted as screen bytes
    "-nolookup",   # no DNS lookup of the connecting client (a delay, not a codec)
    "-threads",    # a thread per client: accepted at once, not after the polling loop's turn
    "-nonap",      # no idle napping: a connect after a quiet spell is answered at once
    "-defer", "0",  # send the first update without x11vnc's default 20 ms deferral
    "-wait", "10",  # poll every 10 ms (default 20): favours x11vnc, costs it CPU
)
"""x11vnc's flags. Each either keeps traffic to the screen's pixels or removes a delay that
only exists to save CPU, so the VNC peer is measured at its fastest: a generous baseline.
Measured on a 1080p Xvfb, ``-threads`` and ``-defer 0`` took x11vnc's time to a full raw
screen from ~210 ms to ~125 ms. What remains is libvncserver's own: it waits 100 ms after
accepting for a WebSockets client to speak first before it greets a plain RFB client (no
flag turns that off; every VNC viewer pays it), reported per run as ``greeting_ms``."""


# -- the screen -------------------------------------------------------------------------------
def static_ct_screen(width: int = 1920, height: int = 1080) -> BGRA:
    """A reading-room screen: a dark desktop with a title bar, a study list and a 12-bit CT
    slice (its top 8 bits) in a viewport as large as fits, up to 1024x1024. Deterministic."""
    screen = np.empty((height, width, 4), np.uint8)
    screen[...] = (26, 22, 20, 255)
    bar = max(8, height // 40)
    screen[:bar] = (64, 44, 32, 255)
    side = width // 6
    screen[bar:, :side] = (40, 34, 30, 255)
    if bar >= 16:
        cv2.putText(screen, "hdx - CT CHEST 1.0 mm - slice 112/240", (8, bar - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, bar / 40, (230, 230, 230, 255), 1, cv2.LINE_AA)
    for row, y in enumerate(range(bar + 24, height - 8, 22)):
        if side >= 60:
            cv2.putText(screen, f"CT {2024 - row} study {row:03d}", (6, y),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 190, 255), 1, cv2.LINE_AA)
    size = min(1024, height - bar - 8, width - side - 8)
    if size >= 16:
        ct = grey_to_bgra(grey8(ct_phantom(size, 12), 12))
        top = bar + (height - bar - size) // 2
        left = side + (width - side - size) // 2
        screen[top:top + size, left:left + size] = ct
    return screen


def available() -> str | None:
    """None when Xvfb, x11vnc, python-xlib and libX11 are there; else what is missing."""
    for program, package in (("Xvfb", "xvfb"), ("x11vnc", "x11vnc")):
        if shutil.which(program) is None:
            return f"{program} not installed: apt-get install {package}"
    try:
        import Xlib  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return "python-xlib not installed: pip install 'hdx[bench]'"
    from hdx.errors import SourceError
    from hdx.x11.xlib import xlib

    try:
        xlib()
    except SourceError as exc:
        return str(exc)
    return None


# -- processes --------------------------------------------------------------------------------
@dataclass
class _Process:
    """A child process with its log file; stopped (TERM, then KILL) by :meth:`stop`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: str
    drainer: threading.Thread | None = None

    def log_tail(self, limit: int = 2000) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return f.read()[-limit:]
        return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}): "
                               f"{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.popen)
        if self.drainer is not None:
            self.drainer.join(timeout=5)
        for stream in (self.popen.stdout, self.popen.stdin):
            if stream is not None:
                stream.close()


@dataclass
class _Children:
    """Every process this run started, stopped in reverse order whatever happens."""

    workdir: str
    started: list[_Process] = field(default_factory=list)

    def start(self, name: str, command: Sequence[str], stdout: int | None = None,
              pass_fds: Sequence[int] = (), env: dict[str, str] | None = None) -> _Process:
        log_path = os.path.join(self.workdir, f"{name}.log")
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(list(command), stdout=stdout if stdout else log,
                                     stderr=log, stdin=subprocess.DEVNULL,
                                     pass_fds=tuple(pass_fds), env=env)
        process = _Process(name, popen, log_path)
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        """The whole log of the child called ``name`` so far."""
        with contextlib.suppress(OSError), open(os.path.join(self.workdir, f"{name}.log"),
                                                errors="replace") as f:
            return f.read()
        return ""

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def _read_line(fd: int, process: _Process, deadline: float, prefix: bytes) -> str:
    """The first line read from ``fd`` that starts with ``prefix``, before ``deadline``."""
    buffered = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffered += chunk
            for line in buffered.split(b"\n")[:-1]:
                if line.startswith(prefix):
                    return line[len(prefix):].decode().strip()
        process.check_alive()
    process.check_alive()
    raise RuntimeError(f"{process.name} did not say {prefix.decode()!r} in time: "
                       f"{process.log_tail()}")


def _announced(process: _Process, prefix: bytes) -> str:
    """What the child printed after ``prefix`` on its stdout; the rest of its stdout is then
    drained by a thread (joined by :meth:`_Process.stop`), so it never blocks on the pipe."""
    assert process.popen.stdout is not None
    stdout = process.popen.stdout
    value = _read_line(stdout.fileno(), process, time.monotonic() + TIMEOUT_S, prefix)
    process.drainer = threading.Thread(target=_drain, args=(stdout.fileno(),), daemon=True)
    process.drainer.start()
    return value


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def _start_xvfb(children: _Children, width: int, height: int) -> str:
    """Xvfb at the screen's size, depth 24, no TCP; its display name (``-displayfd``).
    ``-noreset``: the painted background must survive the moments with no client."""
    read_fd, write_fd = os.pipe()
    try:
        process = children.start("Xvfb", ["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                                           f"{width}x{height}x24", "-nolisten", "tcp",
                                           "-noreset"], pass_fds=[write_fd])
        os.close(write_fd)
        write_fd = -1
        number = _read_line(read_fd, process, time.monotonic() + 20, b"")
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    return f":{int(number)}"


def _x11vnc_flags(link: Link | None) -> list[str]:
    """:data:`X11VNC_FLAGS`; on a shaped link listening on the namespace's address instead."""
    if link is None:
        return list(X11VNC_FLAGS)
    return ["-listen", link.ns_addr, *(f for f in X11VNC_FLAGS if f != "-localhost")]


_SHM_FAILED = re.compile(r"(XShm\w+|shmget|shmat)\(.*\) failed|XShm extension is not "
                         r"available|does not support XShm|failed to attach to shm")
"""What x11vnc logs when it cannot share memory with the X server (it then polls slower)."""


def _start_x11vnc(children: _Children, display: str, link: Link | None = None
                  ) -> tuple[int, str]:
    """x11vnc on ``display`` (inside ``link``'s namespace if given); (port, version). It
    prints ``PORT=n`` once listening."""
    done = subprocess.run(["x11vnc", "-version"], capture_output=True, timeout=20, check=False)
    version = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()[0]
    prefix = link.exec_prefix() if link is not None else []
    process = children.start("x11vnc", [*prefix, "x11vnc", "-display", display, "-autoport",
                                        "5900", *_x11vnc_flags(link)], stdout=subprocess.PIPE)
    return int(_announced(process, b"PORT=")), version


@contextlib.contextmanager
def x11vnc_server(display: str) -> Iterator[tuple[int, str]]:
    """x11vnc with :data:`X11VNC_FLAGS` on ``display``: yields (port, version), stops it
    afterwards. Paint the screen first: x11vnc's first poll is its first copy."""
    with _children() as children:
        yield _start_x11vnc(children, display)


def _start_hdx(children: _Children, display: str, link: Link | None = None) -> str:
    """``hdx serve --source x11:DISPLAY --port 0`` as a subprocess (its own CPU, like
    x11vnc); its URL. Runs :func:`_serve` in this module rather than the ``hdx`` command so
    the benchmark depends only on the server, not on the command line around it. On a
    shaped link it runs in the namespace, bound to its address (it then warns that it
    listens beyond loopback, and offers that address, its only one, as ICE host candidate)."""
    where = [*link.exec_prefix()] if link is not None else []
    host = [link.ns_addr] if link is not None else []
    process = children.start("hdx", [*where, sys.executable, "-m", "hdx.bench.vnc_peer",
                                     "--serve", display, *host], stdout=subprocess.PIPE)
    return _announced(process, b"URL ")


def x_server_version(display: str) -> str:
    """The X server's vendor and release as it announces them (Xvfb has no ``-version``):
    X.Org's release 12101007 is 1.21.1.7."""
    from Xlib import display as xdisplay  # type: ignore[import-untyped, unused-ignore]

    d = xdisplay.Display(display)
    try:
        info = d.display.info
        release = int(info.release_number)
        dotted = ".".join(str(v) for v in (release // 10_000_000, release // 100_000 % 100,
                                           release // 1000 % 100, release % 1000))
        return f"{info.vendor} {dotted}"
    finally:
        d.close()


# -- the X screen -----------------------------------------------------------------------------
def paint(display: str, screen: BGRA) -> None:
    """Make ``screen`` the root window's background pixmap: no window manager or exposure
    can then change what is shown (and no client has to stay connected to keep it)."""
    from Xlib import X  # type: ignore[import-untyped, unused-ignore]
    from Xlib import display as xdisplay

    height, width = screen.shape[:2]
    d = xdisplay.Display(display)
    try:
        root = d.screen().root
        depth = d.screen().root_depth
        if depth != 24:
            raise RuntimeError(f"{display} has depth {depth}; the VNC peer needs 24")
        pixmap = root.create_pixmap(width, height, depth)
        gc = pixmap.create_gc()
        rows = max(1, 65536 // (width * 4))  # keep each PutImage request small
        data = np.ascontiguousarray(screen)
        for top in range(0, height, rows):
            block = data[top:top + rows]
            pixmap.put_image(gc, 0, top, width, block.shape[0], X.ZPixmap, depth, 0,
                             block.tobytes())
        root.change_attributes(background_pixmap=pixmap)
        root.clear_area(0, 0, 0, 0)
        gc.free()
        pixmap.free()
        d.sync()
    finally:
        d.close()


def x_screen(display: str) -> BGRA:
    """What the X server shows now, through hdx's own capture (alpha 255)."""
    from hdx.sources.x11 import X11Screen, X11Source

    source = X11Source(X11Screen(display))
    try:
        raw = source.grab_raw()
    finally:
        source.close()
    out = raw.astype("<u4").view(np.uint8).reshape(*raw.shape, 4).copy()
    out[..., 3] = 255
    return out


# -- one run per peer -------------------------------------------------------------------------
def vnc_once(port: int, encoding: str, reference: BGRA, timeout_s: float = TIMEOUT_S,
             host: str = "127.0.0.1") -> dict[str, Any]:
    """Connect a fresh RFB client, ask for the whole screen, read until pixel-exact.

    Times run from the start of the TCP connect. A frame that is complete but not exact
    (x11vnc's copy stale) is followed by incremental requests until it is, or ``timeout_s``.
    """
    height, width = reference.shape[:2]
    client = RfbClient(timeout_s=min(timeout_s, 20.0))
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(host, port, [encoding, "desktopsize"])
        if (client.width, client.height) != (width, height):
            raise RfbError(f"x11vnc serves {client.width}x{client.height}, the screen is "
                           f"{width}x{height}")
        client.request_update(incremental=False)
        covered = np.zeros((height, width), bool)
        complete: tuple[float, int, float] | None = None
        updates = rects = 0
        for _ in range(10_000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = client.read_update(left)
            now = time.perf_counter() - started
            updates, rects = updates + 1, rects + len(got)
            for r in got:
                covered[r.y:r.y + r.height, r.x:r.x + r.width] = True
            if complete is None and covered.all():
                complete = (now, client.bytes_received, client.clock.decode_s)
            if complete is not None and np.array_equal(client.framebuffer[..., :3],
                                                       reference[..., :3]):
                return {
                    "encoding": encoding,
                    "greeting_ms": _ms(client.greeting_s),
                    "connect_ms": _ms(client.connect_s),
                    "first_complete_ms": _ms(complete[0]),
                    "pixel_exact_ms": _ms(now),
                    "first_complete_without_decode_ms": _ms(complete[0] - complete[2]),
                    "pixel_exact_without_decode_ms": _ms(now - client.clock.decode_s),
                    "bytes": client.bytes_received,
                    "bytes_first_complete": complete[1],
                    "handshake_bytes": client.handshake_bytes,
                    "recv_wait_ms": _ms(client.clock.recv_s),
                    "decode_ms": _ms(client.clock.decode_s),
                    "updates": updates,
                    "rects": rects,
                    "exact": True,
                }
            client.request_update(incremental=True)
        raise RfbError(f"{encoding}: not pixel-exact within {timeout_s:.0f} s "
                       f"({covered.mean():.0%} of the screen received)")
    finally:
        client.close()


async def hdx_once(url: str, reference: BGRA, timeout_s: float = TIMEOUT_S,
                   ice_addresses: Sequence[str] = ()) -> dict[str, Any]:
    """Connect hdx's Python viewer, wait until every tile is verified, check every pixel.
    ``ice_addresses``: the viewer's only ICE host candidates (default: aioice's choice)."""
    from hdx.client.viewer import Viewer
    from hdx.webrtc.ice import host_addresses

    viewer = Viewer(url, connect_timeout_s=timeout_s)
    try:
        with host_addresses(ice_addresses) if ice_addresses else contextlib.nullcontext():
            await viewer.connect()
        report = await viewer.until_lossless(timeout_s)
        transport = _transport_bytes(viewer.pc)
        answer = len(viewer.pc.remoteDescription.sdp.encode())
        shown = viewer.framebuffer()
        exact = bool(np.array_equal(shown, reference[..., 2::-1]))
        return {
            "first_paint_ms": _ms(report.first_frame_s or 0.0),
            "time_to_lossless_ms": _ms(report.time_to_lossless_s or 0.0),
            "bytes": transport + answer,
            "transport_bytes": transport,
            "signalling_bytes": answer,
            "tile_bytes": report.tile_bytes,
            "tiles": report.tiles_received,
            "frames": report.frames,
            "encoder": report.encoder,
            "exact": exact,
        }
    finally:
        await viewer.close()


def _transport_bytes(pc: Any) -> int:
    """Bytes of every datagram the peer connection's DTLS transports received (aiortc counts
    them before decrypting: DTLS records, SRTP, SRTCP, SCTP). Deduplicated: with BUNDLE
    video and data share one transport."""
    transports = {id(r.transport): r.transport for r in pc.getReceivers()}
    if pc.sctp is not None:
        transports[id(pc.sctp.transport)] = pc.sctp.transport
    total = 0
    for transport in transports.values():
        for stats in transport._get_stats().values():
            if stats.type == "transport":
                total += int(stats.bytesReceived)
    return total


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


# -- the measurement --------------------------------------------------------------------------
def measure(screen: np.ndarray, repeats: int = 5, encodings: Sequence[str] = ENCODINGS,
            progress: Callable[[str], None] | None = None, link_mbit: float | None = None
            ) -> dict[str, Any]:
    """x11vnc vs hdx on one Xvfb showing ``screen`` (BGRA, (h, w, 4) uint8): per-repeat
    samples, medians, the three target ratios, versions and settings (JSON-ready).

    One unrecorded warm-up run per peer first (imports, first-use allocations in this
    process and the servers); then ``repeats`` rounds, each one run per VNC encoding and one
    hdx run. Every child process is stopped on the way out, also on errors.

    ``link_mbit``: serve over a link shaped to that rate each way instead of loopback (see
    :mod:`hdx.bench.netlink`): x11vnc and the hdx server run in a network namespace (Xvfb
    stays here; they reach it through its filesystem socket, MIT-SHM included), the clients
    here. Each sample then also has ``link_rx_bytes``/``link_tx_bytes``, what crossed the
    link to/from the client from connect to close, headers included; ``link`` in the result
    describes the link, with its queues' ``tc -s`` counters over the whole run.
    """
    if repeats < 1 or not encodings:
        raise ValueError("measure() needs repeats >= 1 and at least one encoding")
    missing = available() or (available_link() if link_mbit is not None else None)
    if missing is not None:
        raise RuntimeError(f"the VNC peer cannot run here: {missing}")
    note = progress or (lambda _message: None)
    screen = np.ascontiguousarray(screen, dtype=np.uint8)
    height, width = screen.shape[:2]
    with (shaped_link(link_mbit) if link_mbit is not None else contextlib.nullcontext()
          ) as link, _children() as children:  # children stop before the link goes
        note(f"Xvfb {width}x{height}")
        display = _start_xvfb(children, width, height)
        paint(display, screen)
        reference = x_screen(display)
        if not np.array_equal(reference[..., :3], screen[..., :3]):
            raise RuntimeError("the X screen does not show the painted pixels exactly")
        versions = {"xvfb": x_server_version(display)}
        port, versions["x11vnc"] = _start_x11vnc(children, display, link)
        url = _start_hdx(children, display, link)
        host = link.ns_addr if link is not None else "127.0.0.1"
        ice = [link.root_addr] if link is not None else []
        where = f" over {link_mbit:g} Mbit/s ({link.namespace})" if link is not None else ""
        note(f"x11vnc on {host}:{port}, hdx at {url}{where}; warm-up")

        def vnc_run(encoding: str) -> dict[str, Any]:
            return _counted(link, lambda: vnc_once(port, encoding, reference, host=host))

        def hdx_run() -> dict[str, Any]:
            return _counted(link, lambda: asyncio.run(hdx_once(url, reference,
                                                               ice_addresses=ice)))

        for encoding in encodings:
            vnc_run(encoding)
        hdx_run()
        vnc: dict[str, list[dict[str, Any]]] = {e: [] for e in encodings}
        hdx: list[dict[str, Any]] = []
        for repeat in range(repeats):
            for encoding in encodings:
                time.sleep(SETTLE_S)
                vnc[encoding].append(vnc_run(encoding))
            time.sleep(SETTLE_S)
            hdx.append(hdx_run())
            note(f"repeat {repeat + 1}/{repeats}: hdx {hdx[-1]['time_to_lossless_ms']:.0f} ms "
                 "to lossless; " + ", ".join(
                     f"{e} {vnc[e][-1]['pixel_exact_ms']:.0f} ms" for e in encodings))
        result = _result(screen, repeats, vnc, hdx, versions)
        result["settings"]["x11vnc_flags"] = _x11vnc_flags(link)
        result["settings"]["x11vnc_mit_shm"] = _SHM_FAILED.search(children.log("x11vnc")) is None
        result["link"] = None if link is None else {**link.describe(),
                                                    "queues": link.qdisc_stats()}
    return result


def _counted(link: Link | None, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s sample; on a link with the bytes that crossed it meanwhile each way."""
    if link is None:
        return run()
    rx, tx = link.counters()
    sample = run()
    rx_after, tx_after = link.counters()
    return {**sample, "link_rx_bytes": rx_after - rx, "link_tx_bytes": tx_after - tx}


@contextlib.contextmanager
def _children() -> Iterator[_Children]:
    workdir = tempfile.mkdtemp(prefix="hdx-vnc-peer-")
    children = _Children(workdir)
    try:
        yield children
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def _medians(samples: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in samples[0].items() if isinstance(v, int | float)
            and not isinstance(v, bool)]
    return {k: round(float(statistics.median(s[k] for s in samples)), 2) for k in keys}


def _ratio(hdx: float, vnc: float, limit: float, vnc_no_decode: float | None = None
           ) -> dict[str, Any]:
    """hdx / VNC against ``limit`` (lower is better). For times also against the VNC time
    less its Python decoding: a client that decoded in no time would see that, so a pass
    there does not depend on how slow our decoder is."""
    value = round(hdx / vnc, 3) if vnc > 0 else None
    out: dict[str, Any] = {"hdx": hdx, "vnc": vnc, "ratio": value, "target": round(limit, 4),
                           "pass": value is not None and value <= limit}
    if vnc_no_decode is not None:
        bound = round(hdx / vnc_no_decode, 3) if vnc_no_decode > 0 else None
        out.update(vnc_without_decode=vnc_no_decode, ratio_without_decode=bound,
                   pass_without_decode=bound is not None and bound <= limit)
    return out


def _ratios(hdx: dict[str, float], vnc: dict[str, float]) -> dict[str, Any]:
    return {
        "first_paint": _ratio(hdx["first_paint_ms"], vnc["first_complete_ms"], 1 / 3,
                              vnc["first_complete_without_decode_ms"]),
        "time_to_lossless": _ratio(hdx["time_to_lossless_ms"], vnc["pixel_exact_ms"], 1.0,
                                   vnc["pixel_exact_without_decode_ms"]),
        "bytes": _ratio(hdx["bytes"], vnc["bytes"], 1.0),
    }


def _result(screen: BGRA, repeats: int, vnc: dict[str, list[dict[str, Any]]],
            hdx: list[dict[str, Any]], versions: dict[str, str]) -> dict[str, Any]:
    import hdx as hdx_package

    height, width = screen.shape[:2]
    vnc_medians = {e: _medians(samples) for e, samples in vnc.items()}
    hdx_medians = _medians(hdx)
    best = min(vnc_medians, key=lambda e: vnc_medians[e]["pixel_exact_ms"])
    return {
        "screen": {"width": width, "height": height,
                   "sha256": hashlib.sha256(np.ascontiguousarray(screen).tobytes()).hexdigest()},
        "settings": {
            "repeats": repeats, "warmup_runs": 1, "encodings": list(vnc),
            "x11vnc_flags": list(X11VNC_FLAGS), "settle_s": SETTLE_S,
            "timeout_s": TIMEOUT_S, "order": "alternating: every VNC encoding, then hdx",
            "hdx": "HdxServer(X11Source) in a subprocess, default Config (as hdx serve) "
                   "but without TLS or tokens, like x11vnc",
            "hdx_poll_ms": 10,  # until_lossless() checks every 10 ms: TTL is up to 10 ms late
        },
        "versions": {**versions, "hdx": hdx_package.__version__, "python": sys.version.split()[0],
                     "numpy": np.__version__},
        "counted": {
            "vnc": "every byte read from the TCP socket: RFB handshake + every server "
                   "message until pixel-exact (no TCP/IP headers); times include decoding "
                   "in Python (recv_wait_ms vs decode_ms split them)",
            "hdx": "every datagram received by the DTLS transport until lossless (DTLS "
                   "handshake, SRTP video, SRTCP, SCTP with tiles and control; no UDP/IP "
                   "headers) + the SDP answer; STUN and HTTP headers not counted",
        },
        "vnc": {e: {"samples": vnc[e], "median": vnc_medians[e]} for e in vnc},
        "hdx": {"samples": hdx, "median": hdx_medians},
        "best_vnc_encoding": best,
        "targets": _ratios(hdx_medians, vnc_medians[best]),
        "per_encoding": {e: _ratios(hdx_medians, vnc_medians[e]) for e in vnc},
        "all_exact": all(s["exact"] for s in hdx) and all(
            s["exact"] for samples in vnc.values() for s in samples),
    }


# -- the hdx server subprocess ----------------------------------------------------------------
async def _serve(display: str, host: str = "127.0.0.1") -> None:
    """What ``hdx serve --source x11:DISPLAY --host HOST --port 0`` does, minus the drain;
    prints the URL and serves until SIGTERM/SIGINT."""
    from hdx.config import Config
    from hdx.server.server import HdxServer
    from hdx.sources.factory import open_source

    # Like the x11vnc it is compared with (no password, no TLS), and on the benchmark's own
    # veth: the comparison stays like for like. Never a setting to copy for real service.
    config = Config(source=f"x11:{display}", host=host, port=0, tls="off", auth="none",
                    insecure=True)
    source = open_source(config.source, None, None, config.cine_seconds, config.fps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with HdxServer(source, config) as server:
        print(f"URL {server.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hdx.bench.vnc_peer --serve :N [HOST]`` (the hdx peer), or ``[WxH]
    [repeats] [link Mbit/s]`` to measure and print the result as JSON."""
    import json
    import logging

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--serve"] and len(args) in (2, 3):
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(_serve(*args[1:]))
        return 0
    size = args[0] if args else "1920x1080"
    repeats = int(args[1]) if len(args) > 1 else 3
    mbit = float(args[2]) if len(args) > 2 else None
    width, height = (int(v) for v in size.split("x"))
    result = measure(static_ct_screen(width, height), repeats,
                     progress=lambda m: print(m, file=sys.stderr, flush=True), link_mbit=mbit)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
