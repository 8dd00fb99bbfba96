"""The VNC peer over a shaped link (:mod:`hdx.bench.netlink`): the rig enforces its rate both
ways, X clients in the namespace reach Xvfb here with MIT-SHM, and one small
``vnc_peer.measure`` over the link ends pixel-exact for both peers, its bytes crossed the
veth, and nothing (namespace, veth, process) is left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hdx.bench import netlink, vnc_peer
from hdx.bench.vnc_peer import paint, static_ct_screen
from tests import procs
from tests.bench.test_rfb import HEIGHT, WIDTH, child_processes, require_vnc
from tests.x11.xservers import XServer, x_server

MBIT = 20.0
TRANSFER = 2_000_000

# In the namespace: accept one connection, time receiving TRANSFER bytes from its first byte,
# send TRANSFER bytes back, print the receive rate.
PEER = """
import socket, sys, time
n = int(sys.argv[2])
server = socket.create_server((sys.argv[1], 0))
print(server.getsockname()[1], flush=True)
server.settimeout(30)
conn, _ = server.accept()
conn.settimeout(30)
got, first = 0, None
while got < n:
    data = conn.recv(65536)
    if not data:
        break
    first = first or time.perf_counter()
    got += len(data)
took = time.perf_counter() - first
conn.sendall(b"y" * n)
conn.close()
print(got * 8 / took / 1e6, flush=True)
"""


def require_link() -> None:
    """Skip without a shaped link (root, iproute2), unless the X tier is required."""
    missing = netlink.available_link()
    if missing is not None:
        if os.environ.get("HDXTEST_REQUIRE_X") == "1":
            pytest.fail(missing)
        pytest.skip(missing)


def leftovers() -> list[str]:
    """Namespaces and interfaces of this process's shaped links still there."""
    prefix = f"hdxb{os.getpid()}n"
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           timeout=10, check=False).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           timeout=10, check=False).stdout
    return [n for n in names if n.startswith(prefix)] + [
        line for line in links.splitlines() if prefix in line]


@pytest.fixture
def link() -> Iterator[netlink.Link]:
    require_link()
    with netlink.shaped_link(MBIT) as shaped:
        yield shaped
    assert not leftovers()


def test_link_enforces_its_rate_both_ways(link: netlink.Link) -> None:
    """The rig itself: 2 MB each way through the veth at 20 Mbit/s, ±25 %."""
    peer = subprocess.Popen([*link.exec_prefix(), sys.executable, "-c", PEER, link.ns_addr,
                             str(TRANSFER)], stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout is not None
        port = int(peer.stdout.readline())
        rx_before, tx_before = link.counters()
        with socket.create_connection((link.ns_addr, port), timeout=30) as conn:
            conn.sendall(b"x" * TRANSFER)
            got, first = 0, 0.0
            while got < TRANSFER:
                data = conn.recv(65536)
                if not data:
                    break
                first = first or time.perf_counter()
                got += len(data)
            down = got * 8 / (time.perf_counter() - first) / 1e6
        up = float(peer.stdout.readline())
        assert peer.wait(timeout=30) == 0
    finally:
        peer.kill()
        peer.wait(timeout=10)
        if peer.stdout is not None:
            peer.stdout.close()
    rx, tx = link.counters()
    assert got == TRANSFER
    assert rx - rx_before >= TRANSFER and tx - tx_before >= TRANSFER  # it crossed the veth
    for direction, rate in (("to the namespace", up), ("from the namespace", down)):
        assert 0.75 * MBIT <= rate <= 1.25 * MBIT, f"{direction}: {rate:.1f} Mbit/s"
    queues = link.qdisc_stats()
    assert queues["to_namespace"]["bytes"] >= TRANSFER
    assert queues["from_namespace"]["bytes"] >= TRANSFER


@pytest.fixture
def small_xvfb() -> Iterator[XServer]:
    require_vnc()
    with x_server("xvfb", f"{WIDTH}x{HEIGHT}", 24) as server:
        yield server


@pytest.mark.x11
def test_x_clients_in_the_namespace_reach_xvfb_with_mit_shm(small_xvfb: XServer,
                                                            link: netlink.Link) -> None:
    """Xvfb's abstract socket is not visible in another network namespace, its filesystem
    socket is; and shared memory works (same IPC namespace): hdx captures with MIT-SHM."""
    paint(small_xvfb.display, static_ct_screen(WIDTH, HEIGHT))
    probe = ("from hdx.sources.x11 import X11Screen, X11Source\n"
             f"s = X11Source(X11Screen({small_xvfb.display!r}))\n"
             "s.grab_raw()\n"
             "print(s.capture_method)\n"
             "s.close()\n")
    done = procs.run([*link.exec_prefix(), sys.executable, "-c", probe], timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("MIT-SHM"), done.stdout + done.stderr


@pytest.mark.x11
def test_measure_over_a_shaped_link() -> None:
    require_vnc()
    require_link()
    missing = vnc_peer.available()
    if missing is not None:
        if os.environ.get("HDXTEST_REQUIRE_X") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    before = child_processes()
    result = vnc_peer.measure(static_ct_screen(WIDTH, HEIGHT), repeats=1, link_mbit=MBIT)
    link = result["link"]
    assert link["mbit"] == MBIT and link["how"] == "veth + tbf, no added delay"
    assert link["namespace"].startswith(f"hdxb{os.getpid()}n")
    assert result["all_exact"] is True
    assert result["settings"]["x11vnc_mit_shm"] is True
    assert "-localhost" not in result["settings"]["x11vnc_flags"]
    assert "-listen" in result["settings"]["x11vnc_flags"]
    samples = [runs["samples"][0] for runs in result["vnc"].values()]
    (hdx,) = result["hdx"]["samples"]
    assert hdx["exact"] is True and all(s["exact"] for s in samples)
    assert hdx["time_to_lossless_ms"] >= hdx["first_paint_ms"] > 0
    assert result["vnc"]["raw"]["samples"][0]["bytes"] >= WIDTH * HEIGHT * 4
    for sample in (*samples, hdx):
        # What the client counted (no headers) crossed the veth (headers included) ...
        assert sample["link_rx_bytes"] >= sample["bytes"] > 0
        # ... and little else did: no second path, no other traffic in the window.
        assert sample["link_rx_bytes"] <= 1.25 * sample["bytes"] + 20_000
        assert sample["link_tx_bytes"] > 0
    counted = sum(s["bytes"] for s in (*samples, hdx))
    assert link["queues"]["from_namespace"]["bytes"] >= counted
    for ratios in (result["targets"], *result["per_encoding"].values()):
        assert set(ratios) == {"first_paint", "time_to_lossless", "bytes"}
    left = {pid: args for pid, args in child_processes().items() if pid not in before}
    assert not left, f"measure() left processes behind: {left}"
    assert not leftovers()
