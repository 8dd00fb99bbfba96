"""Child processes of benchmarks: stop them for sure, in bounded time."""

from __future__ import annotations

import subprocess

STOP_TIMEOUT_S = 10.0


def stop_process(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait up to :data:`STOP_TIMEOUT_S`, then SIGKILL: a benchmark never leaves a
    server behind, and never waits forever for one (idempotent)."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=STOP_TIMEOUT_S)
