"""Run a command from a test so that it cannot hang the test run.

``subprocess.run(..., capture_output=True, timeout=...)`` does not bound a command that starts
processes of its own: on timeout it kills only the direct child and then waits for end-of-file
on the pipes, which grandchildren (Chromium, ``hdx serve``, x11vnc, Xvfb) keep open for ever.
Here the command runs in a session of its own with its output in temporary files, and on
timeout its whole tree and process group are killed (:func:`hdx.bench.processes.run_bounded`)
and the test fails with the tail of what it printed.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest

from hdx.bench.processes import run_bounded

TAIL_CHARS = 4000


def _text(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def run(command: Sequence[str], *, timeout_s: float, cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end within ``timeout_s`` and return its exit status and output
    (text); past ``timeout_s``, kill it and everything it started and fail the test."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = run_bounded(command, timeout_s, stdout=out, stderr=err, cwd=cwd,
                           env=env)
        stdout, stderr = _text(out), _text(err)
    if code is None:
        pytest.fail(f"{shlex.join(command)} was still running after {timeout_s:g} s; killed "
                    f"with every process it started.\n--- stdout, last {TAIL_CHARS} chars:\n"
                    f"{stdout[-TAIL_CHARS:]}\n--- stderr, last {TAIL_CHARS} chars:\n"
                    f"{stderr[-TAIL_CHARS:]}", pytrace=False)
    return subprocess.CompletedProcess(list(command), code, stdout, stderr)

