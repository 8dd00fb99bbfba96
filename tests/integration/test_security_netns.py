"""A real bind beyond loopback: ``hdx serve`` in a network namespace on its veth address with no
security flags serves HTTPS with a self-signed certificate and requires tokens; a real viewer
in this namespace joins with a minted link and the pinned fingerprint; refusing an unsafe
configuration, and ``--insecure``, work as documented. Needs root and iproute2."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdx.bench import netlink
from hdx.client.viewer import ClientError, ServerRefused, Viewer
from tests.netns import link_or_skip

pytestmark = [pytest.mark.integration, pytest.mark.netns]
PORT = 8443


@pytest.fixture(scope="module")
def link() -> Iterator[netlink.Link]:
    with link_or_skip(1000.0) as made:
        yield made


@contextlib.contextmanager
def serve_in(link: netlink.Link, state: Path, *flags: str) -> Iterator[tuple[
        subprocess.Popen[bytes], Path]]:
    """``hdx serve`` inside the namespace on its address; stopped (and its group killed)."""
    log = Path(tempfile.mkstemp(prefix="hdx-netns-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*link.exec_prefix(), sys.executable, "-m", "hdx", "serve", "--host", link.ns_addr,
             "--port", str(PORT), "--state-dir", str(state), "--encoder", "x264", "--width",
             "320", "--height", "240", "--cine-seconds", "-1", *flags],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.unlink(missing_ok=True)


def wait_for_line(process: subprocess.Popen[bytes], log: Path, pattern: str,
                  timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not printed; hdx serve said:\n{log.read_text()}")


def hdx_token(state: Path, link: netlink.Link, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hdx", "token", "--state-dir", str(state),
                           "--host", link.ns_addr, "--port", str(PORT), *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_beyond_loopback_means_tls_and_tokens(link: netlink.Link, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with serve_in(link, state) as (process, log):
        text = wait_for_line(process, log, r"hdx: TLS certificate")
        assert f"https://{link.ns_addr}:{PORT}/" in text and "tokens required" in text
        fingerprint = re.search(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})",
                                text)
        assert fingerprint is not None, text
        url = hdx_token(state, link, "--role", "view", "--user", "ann")
        assert url.startswith(f"https://{link.ns_addr}:{PORT}/#token=hdx1.")

        async def watch() -> int:
            async with Viewer(url, tls_fingerprint=fingerprint.group(1),
                              connect_timeout_s=20) as viewer:
                report = await viewer.receive(5, timeout_s=20)
                return report.frames

        received = link.counters()[0]
        assert asyncio.run(watch()) >= 1
        assert link.counters()[0] - received > 10_000  # the pictures crossed the veth

        async def join(target: str, **kwargs: str) -> None:
            async with Viewer(target, connect_timeout_s=10, **kwargs):
                pass

        with pytest.raises(ServerRefused) as bare:
            asyncio.run(join(f"https://{link.ns_addr}:{PORT}/",
                             tls_fingerprint=fingerprint.group(1)))
        assert bare.value.status == 401
        with pytest.raises(ClientError, match="not trusted"):
            asyncio.run(join(url))


def test_unsafe_settings_are_refused_unless_insecure(link: netlink.Link, tmp_path: Path
                                                     ) -> None:
    with serve_in(link, tmp_path / "a", "--tls", "off") as (process, log):
        assert process.wait(timeout=60) == 2
        assert "refusing to listen beyond loopback unsafely" in log.read_text()
    with serve_in(link, tmp_path / "b", "--tls", "off", "--auth", "none", "--insecure") as (
            process, log):
        text = wait_for_line(process, log, r"hdx: serving")
        assert "INSECURE" in text and f"http://{link.ns_addr}:{PORT}/" in text
        with urllib.request.urlopen(f"http://{link.ns_addr}:{PORT}/readyz", timeout=10) as r:
            assert r.status == 200
