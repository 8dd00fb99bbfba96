"""`hdx doctor --display` against a real X server, and against one that is not there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import procs
from tests.x11.xservers import XServer

pytestmark = pytest.mark.x11


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    done = procs.run([sys.executable, "-m", "hdx", "doctor", *args], timeout_s=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_doctor_reports_what_the_display_offers(xvfb: XServer) -> None:
    text = doctor("--display", xvfb.display).stdout
    assert f"X display   {xvfb.display}: 1280x720, depth 24" in text
    assert "capture via MIT-SHM+DAMAGE" in text
    for ext in ("MIT-SHM", "DAMAGE", "XFIXES", "XTEST", "RANDR"):
        assert f"  {ext}" in text and "NO " not in text
    report = json.loads(doctor("--display", xvfb.display, "--json").stdout)["x11"]
    assert report["reachable"] and report["size"] == [1280, 720]
    assert report["extensions"] == dict.fromkeys(report["extensions"], True)
    assert report["monitors"][0]["geometry"] == "1280x720+0+0"


def test_doctor_says_why_a_display_is_unusable() -> None:
    text = doctor("--display", ":4711").stdout
    assert "X display   :4711: not usable: cannot open X display ':4711'" in text
