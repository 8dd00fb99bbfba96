"""The `hdx` command as a user runs it: serve (with SIGTERM), client --save --json, doctor."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests import procs
from tests.browser.conftest import serve

pytestmark = pytest.mark.integration


def hdx(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return procs.run([sys.executable, "-m", "hdx", *args], timeout_s=timeout)


def test_client_saves_the_last_frame_and_reports_json(tmp_path: Path) -> None:
    served = serve("--width", "640", "--height", "360", "--cine-seconds", "1")
    desktop = next(served)
    try:
        out = tmp_path / "last.png"
        result = hdx("client", desktop.url, "--frames", "90", "--save", str(out), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["frames"] >= 20 and report["ended_idle"] is True
        assert (report["width"], report["height"]) == (640, 360)
        assert report["encoder"] == "x264" and 0 < report["first_frame_s"] < 10
        image = cv2.imread(str(out))
        assert image is not None and image.shape == (360, 640, 3)
        assert image.std() > 10  # a real picture, not a blank frame

        desktop.process.send_signal(signal.SIGTERM)
        assert desktop.process.wait(timeout=15) == 0, desktop.log()
        assert "stopping: closing" in desktop.log()
    finally:
        served.close()


def test_client_against_nothing_fails_with_a_clear_message() -> None:
    result = hdx("client", "http://127.0.0.1:9/", "--timeout", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("hdx: error: cannot reach http://127.0.0.1:9/")


def test_serve_refuses_bad_settings_in_words() -> None:
    result = hdx("serve", "--fps", "0")
    assert result.returncode == 2
    assert "setting 'fps' must be 1..240 (got 0)" in result.stderr
    result = hdx("serve", "--source", "vnc:host")
    assert result.returncode == 2 and "synthetic" in result.stderr


def test_doctor_explains_the_encoder_choice() -> None:
    result = hdx("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "libx264" in report["encoders"] and "h264_nvenc" in report["encoders"]
    assert report["selected_encoder"]["codec"] in ("libx264", "h264_nvenc")
    if not report["nvenc"]["usable"]:
        assert report["selected_encoder"]["reason"].startswith("NVENC unavailable: ")
        assert report["nvenc"]["why"]
    text = hdx("doctor").stdout
    assert "NVENC" in text and "hdx uses" in text and "PyAV" in text


def test_a_killed_client_is_freed_by_the_server() -> None:
    """SIGKILL gives the server no goodbye: ICE consent freshness (RFC 7675, 30 s in aioice)
    notices the silence, and the session, track, encoder and capture subscription go."""
    import time
    import urllib.request

    served = serve("--width", "320", "--height", "240", "--cine-seconds", "-1")
    desktop = next(served)

    def health() -> dict[str, object]:
        with urllib.request.urlopen(desktop.url + "healthz", timeout=5) as response:
            return json.load(response)  # type: ignore[no-any-return]
    try:
        client = subprocess.Popen([sys.executable, "-m", "hdx", "client", desktop.url,
                                   "--frames", "1000000"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while health()["sessions"] != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert health()["sessions"] == 1
        client.kill()
        client.wait()
        deadline = time.monotonic() + 60
        while health()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.5)
        state = health()
        assert state["sessions"] == 0
        assert state["capture"] == {**state["capture"], "viewers": 0}  # type: ignore[dict-item]
        assert "closed" in desktop.log()
    finally:
        served.close()


def test_serve_logs_json_lines_with_the_encoder_choice() -> None:
    served = serve("--width", "320", "--height", "240", "--log-format", "json")
    desktop = next(served)
    served.close()
    entries = [json.loads(line) for line in desktop.log().splitlines() if line.startswith("{")]
    messages = [e["msg"] for e in entries]
    assert any(m.startswith("encoder: libx264 (") for m in messages)
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)

