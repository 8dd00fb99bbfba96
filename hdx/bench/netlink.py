"""A shaped network link for the VNC peer: a network namespace joined to this one by a veth
pair, with ``tbf`` limiting the rate in both directions.

A module of its own because the plumbing (set-up, bounded clean-up, counters) has nothing to
do with what :mod:`hdx.bench.vnc_peer` measures, and the test that the rig really enforces
its rate needs the link without any VNC or hdx around it.

Servers run inside the namespace (:meth:`Link.exec_prefix`), clients stay in this one, so
everything between them crosses the veth and its two ``tbf`` queues. This kernel has no
``netem``: the link has a rate but no added delay, jitter or loss (the round trip stays
that of a veth, tens of microseconds). Needs root (CAP_NET_ADMIN) and iproute2.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

QUEUE_MS = 100
"""How long ``tbf`` may queue a packet before dropping it (its ``latency``): the queue
holds 100 ms of the rate plus the burst, a home router's buffer rather than a loss-free pipe."""
HOW = "veth + tbf, no added delay"
_COMMAND_TIMEOUT_S = 10.0
_serial = itertools.count()


def burst_bytes(mbit: float) -> int:
    """The token bucket's depth: 4 ms of the rate, at least 32 kB."""
    return max(32 * 1024, int(mbit * 1e6 / 8 / 250))


@dataclass(frozen=True)
class Link:
    """One namespace, its veth pair (``root_dev`` here, ``ns_dev`` there) and addresses."""

    namespace: str
    mbit: float
    root_dev: str
    ns_dev: str
    root_addr: str
    ns_addr: str

    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def counters(self) -> tuple[int, int]:
        """(bytes received, bytes sent) by the root end: what crossed the link each way,
        Ethernet/IP/transport headers included."""
        stats = f"/sys/class/net/{self.root_dev}/statistics"
        with open(f"{stats}/rx_bytes") as rx, open(f"{stats}/tx_bytes") as tx:
            return int(rx.read()), int(tx.read())

    def qdisc_stats(self) -> dict[str, dict[str, int]]:
        """``tc -s`` of both queues: bytes and packets sent, dropped, over the limit."""
        return {"to_namespace": _tbf_stats([], self.root_dev),
                "from_namespace": _tbf_stats(["-n", self.namespace], self.ns_dev)}

    def describe(self) -> dict[str, Any]:
        return {"mbit": self.mbit, "how": HOW, "namespace": self.namespace,
                "burst_bytes": burst_bytes(self.mbit), "queue_ms": QUEUE_MS,
                "server_address": self.ns_addr, "client_address": self.root_addr}


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, timeout=_COMMAND_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode(errors='replace')}")


def _tc(*args: str) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, timeout=_COMMAND_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {done.stderr.decode(errors='replace')}")


def _tbf_stats(where: list[str], dev: str) -> dict[str, int]:
    out = subprocess.run(["tc", *where, "-s", "qdisc", "show", "dev", dev], capture_output=True,
                         timeout=_COMMAND_TIMEOUT_S, check=False).stdout.decode()
    found = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
    if found is None:
        return {}
    keys = ("bytes", "packets", "dropped", "overlimits")
    return dict(zip(keys, (int(v) for v in found.groups()), strict=True))


def _free_subnet() -> int:
    """A third octet x such that 10.213.x.0/30 is not on any interface here."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                          timeout=_COMMAND_TIMEOUT_S, check=False).stdout.decode()
    for step in range(256):
        x = (os.getpid() + step) % 256
        if f" 10.213.{x}." not in used:
            return x
    raise RuntimeError("no free 10.213.x.0/30 subnet for the shaped link")


def _delete(link: Link) -> None:
    """Remove the namespace (which takes its veth end, and so the pair, with it) and the root
    end if it survived; bounded, never raises."""
    for command in (["ip", "netns", "delete", link.namespace],
                    ["ip", "link", "delete", link.root_dev]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(command, capture_output=True, timeout=_COMMAND_TIMEOUT_S,
                           check=False)


@contextlib.contextmanager
def shaped_link(mbit: float) -> Iterator[Link]:
    """A namespace linked to this one at ``mbit`` Mbit/s each way; deleted on the way out,
    also on errors and KeyboardInterrupt. Stop the processes inside it first."""
    if not mbit > 0:
        raise ValueError(f"link rate must be positive, not {mbit}")
    name = f"hdxb{os.getpid()}n{next(_serial) % 100}"
    x = _free_subnet()
    link = Link(name, float(mbit), f"{name}a", f"{name}b", f"10.213.{x}.1", f"10.213.{x}.2")
    shape = ["root", "tbf", "rate", f"{int(mbit * 1e6)}bit", "burst", str(burst_bytes(mbit)),
             "latency", f"{QUEUE_MS}ms"]
    try:
        _ip("netns", "add", name)
        _ip("link", "add", link.root_dev, "type", "veth", "peer", "name", link.ns_dev,
            "netns", name)
        # No IPv6 link-local addresses: their duplicate-address detection finishes a second or
        # two after "up", and Chromium aborts page loads in flight (ERR_NETWORK_CHANGED) on
        # every address change. The link is IPv4 only.
        _ip("link", "set", link.root_dev, "addrgenmode", "none")
        _ip("-n", name, "link", "set", link.ns_dev, "addrgenmode", "none")
        _ip("addr", "add", f"{link.root_addr}/30", "dev", link.root_dev)
        _ip("link", "set", link.root_dev, "up")
        _ip("-n", name, "addr", "add", f"{link.ns_addr}/30", "dev", link.ns_dev)
        _ip("-n", name, "link", "set", link.ns_dev, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _tc("qdisc", "add", "dev", link.root_dev, *shape)
        _tc("-n", name, "qdisc", "add", "dev", link.ns_dev, *shape)
        yield link
    finally:
        _delete(link)


def available_link() -> str | None:
    """None when a shaped link can be set up here (tried: a namespace, veth and tbf are made
    and removed again); else why not."""
    if os.geteuid() != 0:
        return "a shaped link needs root (network namespaces, veth, tc)"
    for program in ("ip", "tc"):
        if shutil.which(program) is None:
            return f"{program} not installed: apt-get install iproute2"
    try:
        with shaped_link(1.0):
            pass
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return f"cannot set up a shaped link: {exc}"
    return None
