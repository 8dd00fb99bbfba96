"""``hdx bench latency --quick``: every pipeline delivers frames to Chromium, the page's
marker samples become latencies, and CPU per frame is measured. No figure is judged: the
benchmark reports, it does not pass or fail on speed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from hdx.bench import cli, latency
from tests import procs
from tests.browser.conftest import _require_browser

pytestmark = pytest.mark.browser


def test_quick_run_measures_every_pipeline(tmp_path: Path) -> None:
    # A child process, as a user runs it: a browser that hangs in spite of the benchmark's own
    # deadlines is then killed with everything else it started, and the test fails with its
    # output instead of hanging.
    _require_browser()
    quick = latency.deadlines_for(latency.QUICK_SECONDS, latency.QUICK_WARMUP_S,
                                  latency.QUICK_ROUNDS)
    done = procs.run([sys.executable, "-m", "hdx.bench", "latency", "--quick", "--no-plot",
                      "--out", str(tmp_path)], timeout_s=quick["deadline_s"] + 120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "latency.json").read_text())
    assert report["benchmark"] == "latency" and report["quick"] is True
    assert report["settings"]["rounds"] == 1
    assert report["settings"]["round_deadline_s"] == quick["round_deadline_s"]
    assert report["settings"]["deadline_s"] == quick["deadline_s"]
    runs = report["runs"]
    assert sorted(r["pipeline"] for r in runs) == sorted(latency.PIPELINES)
    for run in runs:
        assert "error" not in run, run
        # A browser that failed and was replaced says so (and is retried at most once).
        assert run["attempts"] == 1 + len(run.get("browser_failures", [])) <= 2, run
        assert run["frames_drawn"] > 0 and len(run["latencies_ms"]) == run["frames_drawn"]
        assert run["cpu_s"] > 0 and run["cpu_ms_per_frame"] > 0
    summary = report["summary"]
    for name in latency.PIPELINES:
        assert summary[name]["samples"] > 0
        assert summary[name]["p50_ms"] > 0 and summary[name]["cpu_ms_per_frame"] > 0
    assert "H264" in summary["naive-h264"]["codec"] and "VP8" in summary["naive"]["codec"]
    assert summary["ratio_p50_hdx_over_naive"] > 0
    for key in ("hdx_p50_ms", "hdx_p95_ms", "naive_p50_ms", "ratio_p50_hdx_over_naive",
                "hdx_cpu_ms_per_frame", "naive_cpu_ms_per_frame", "hdx_fps"):
        figure = report["headline"][key]
        assert isinstance(figure["value"], int | float) and figure["value"] > 0, key
        assert figure["better"] in ("lower", "higher")
    [target] = report["targets"]
    assert "glass-to-glass" in target["target"]
    assert target["value"] == summary["ratio_p50_hdx_over_naive"]
    assert target["pass"] in (True, False)
    page = (tmp_path / "latency.md").read_text()
    assert page.startswith("# hdx bench latency") and "server CPU ms/frame" in page
    assert not (tmp_path / "latency.png").exists()  # --no-plot
    assert done.stdout.startswith("# hdx bench latency")


def test_missing_browser_exits_2_with_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(latency, "CHROMIUM", "/nonexistent/chromium")
    parser = argparse.ArgumentParser(prog="hdx bench")
    cli.add_kinds(parser)
    args = parser.parse_args(["latency", "--quick", "--out", str(tmp_path)])
    assert cli.run_bench(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "/nonexistent/chromium" in err
    assert "./scripts/setup.sh test" in err
    assert not (tmp_path / "latency.json").exists()
