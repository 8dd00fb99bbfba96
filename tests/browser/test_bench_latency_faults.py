"""A Chromium that hangs or dies mid-round becomes a recorded failure and a retry in a fresh
browser, within the round's deadline, and leaves no Chromium process behind.

Real faults, not mocks: ``tests/browser/latency_faults.py`` stops every process of the round's
browser (SIGSTOP) or kills its browser process (SIGKILL) once the page draws frames. It runs as
a child process under a time limit (``tests/procs.py``), so a deadline that does not hold fails
this test instead of hanging the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests import procs
from tests.browser import latency_faults
from tests.browser.conftest import _require_browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 150.0
"""Two rounds' deadlines, the close, and Playwright's start and stop, with room to spare."""


def _round_with(fault: str) -> dict[str, object]:
    _require_browser()
    done = procs.run([sys.executable, "-m", "tests.browser.latency_faults", fault],
                     timeout_s=LIMIT_S, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["hit"], "the fault was never injected"
    # Nothing of the failed browser is left: neither the processes hit nor any other process
    # that names its profile (re-parented zygotes do), nor any Chromium below the runner.
    assert result["left"] == [] and result["profile_left"] == [], result
    assert result["chromium_below_me"] == [], result
    return result


def _measured_after_one_failure(record: dict[str, object], words: str) -> None:
    assert "error" not in record, record
    assert record["attempts"] == 2, record
    failures = record["browser_failures"]
    assert isinstance(failures, list) and len(failures) == 1, record
    assert failures[0].startswith("Chromium ") and words in failures[0], record
    assert isinstance(record["frames_drawn"], int) and record["frames_drawn"] > 0, record


def test_a_hung_browser_is_killed_and_the_round_retried() -> None:
    result = _round_with("stop")
    record = result["round"]
    assert isinstance(record, dict)
    _measured_after_one_failure(record, "hung")
    assert f"{latency_faults.ROUND_DEADLINE_S:g} s" in record["browser_failures"][0]


def test_a_browser_killed_mid_round_is_a_failure_and_the_round_retried() -> None:
    result = _round_with("kill")
    record = result["round"]
    assert isinstance(record, dict)
    # Playwright may notice the death (the pipe closes) or not (zygotes keep it open): either
    # way the round ends, recorded, and the retry measures.
    _measured_after_one_failure(record, "Chromium")
