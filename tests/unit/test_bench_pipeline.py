"""``hdx bench pipeline``: its report logic, a quick run of the in-process parts, and a quick run
end to end through ``hdx.bench.cli`` (that one starts real ``hdx serve`` processes and a Python
viewer over loopback, so it belongs to the integration tier).

Only the report's shape is checked, never a timing: benchmarks report, they do not fail on speed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hdx.bench import cli, pipeline

HEADLINE_KEYS = (
    "pipeline_720p_total_ms_p50", "pipeline_1080p_total_ms_p50",
    "change_map_vs_copy_1080p", "change_map_vs_copy_4K",
    "idle_no_viewer_cpu_percent", "idle_still_cpu_percent", "cine_cpu_percent",
)
TARGET_WORDS = ("change detection", "idle", "1080p pipeline")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hdx bench")
    cli.add_kinds(parser)
    return parser.parse_args(list(argv))


def _check_stages(report: dict[str, Any]) -> None:
    sizes = [r["size"] for r in report["results"]["stages"]]
    assert sizes == ["720p", "1080p"]
    for r in report["results"]["stages"]:
        assert set(r["stages"]) == set(pipeline.STAGES)
        frames = report["settings"]["frames"][r["size"]]
        for key in pipeline.STAGES:
            assert len(r["samples_ms"][key]) == frames
        # native and numpy change maps both measured, compared at p50
        assert r["stages"]["change_native"]["baseline"] == "change_numpy"
        assert r["stages"]["change_native"]["x_baseline"] > 0
        assert r["stages"]["colour_hdx"]["x_baseline"] > 0
        assert r["max_fps"] > 0 and r["psnr_i420_db_p50"] > 30  # x264 really encoded


def _check_change(report: dict[str, Any]) -> None:
    rows = report["results"]["change_detection"]
    assert {(r["size"], r["method"]) for r in rows} == {
        (s, m) for s in ("1080p", "4K") for m in ("copy", "native", "numpy")}
    for r in rows:
        assert len(r["samples_ms"]) == report["settings"]["change_repeats"]
        assert r["median_ms"] > 0 and r["gb_per_s"] > 0
        assert r["changed_tiles"] == round(r["tiles"] * pipeline.CHANGED_FRACTION)


@pytest.mark.integration
def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("pipeline", "--quick", "--no-plot", "--out", str(tmp_path))
    assert cli.run_bench(args) == 0
    report = json.loads((tmp_path / "pipeline.json").read_text())
    assert report["benchmark"] == "pipeline" and report["quick"] is True
    assert report["settings"]["parts"] == list(pipeline.PARTS)
    assert {"cpu", "cpus", "git_commit", "pyav", "opencv", "aiortc"} <= set(report["machine"])
    for key in HEADLINE_KEYS:
        figure = report["headline"][key]
        assert isinstance(figure["value"], int | float), key
        assert figure["better"] in ("lower", "higher")
    assert report["headline"]["change_map_vs_copy_1080p"]["better"] == "higher"
    assert report["headline"]["idle_still_cpu_percent"]["better"] == "lower"
    assert len(report["targets"]) == len(TARGET_WORDS)
    for target, words in zip(report["targets"], TARGET_WORDS, strict=True):
        assert words in target["target"]
        assert target["pass"] in (True, False), target
        assert isinstance(target["value"], int | float)
    _check_stages(report)
    _check_change(report)
    idle = {r["state"]: r for r in report["results"]["idle"]}
    assert list(idle) == list(pipeline.IDLE_STATES)
    assert all(r["seconds"] > 0 and r["cpu_s"] >= 0 for r in idle.values())
    assert idle["viewer, cine"]["frames_received"] > 0
    assert idle["viewer, cine"]["cpu_s"] > 0  # a streaming server does work
    page = (tmp_path / "pipeline.md").read_text()
    assert page.startswith("# hdx bench pipeline")
    assert "| target | measured | limit | result |" in page
    assert "| size | stage | p50 ms | p95 ms | x baseline |" in page
    assert "x copy bandwidth" in page and "% of one core" in page
    assert not (tmp_path / "pipeline.png").exists()  # --no-plot
    assert capsys.readouterr().out.startswith("# hdx bench pipeline")


@pytest.mark.unit
def test_quick_run_without_a_server(tmp_path: Path) -> None:
    args = _parse("pipeline", "--quick", "--no-plot", "--parts", "stages", "change",
                  "--out", str(tmp_path))
    assert cli.run_bench(args) == 0
    report = json.loads((tmp_path / "pipeline.json").read_text())
    _check_stages(report)
    _check_change(report)
    assert report["results"]["idle"] == []
    idle = next(t for t in report["targets"] if "idle" in t["target"])
    assert idle["value"] is None and idle["pass"] is None and "not measured" in idle["detail"]
    assert "idle_still_cpu_percent" not in report["headline"]


@pytest.mark.unit
def test_targets_and_headline_from_results() -> None:
    results: dict[str, Any] = {
        "stages": [{"size": "1080p", "frames": 60, "max_fps": 25.0,
                    "stages": {"total": {"p50_ms": 40.0}}}],
        "change_detection": [
            {"size": "1080p", "method": "native", "ratio_to_copy": 0.9},
            {"size": "4K", "method": "native", "ratio_to_copy": 0.4},
            {"size": "4K", "method": "numpy", "ratio_to_copy": 0.2}],
        "idle": [{"state": "no viewer", "percent_of_one_core": 0.1},
                 {"state": "viewer, still desktop", "percent_of_one_core": 1.5},
                 {"state": "viewer, cine", "percent_of_one_core": 50.0}],
    }
    s = {"idle_size": "1920x1080", "idle_seconds": 10.0}
    change, idle, fps = pipeline.targets(results, s)
    assert (change["value"], change["pass"]) == (0.4, False)  # the worst size counts
    assert (idle["value"], idle["pass"]) == (1.5, True)
    assert (fps["value"], fps["pass"]) == (25.0, False)
    head = pipeline.headline(results)
    assert head["pipeline_1080p_total_ms_p50"]["value"] == 40.0
    assert head["change_map_vs_copy_4K"] == {"value": 0.4, "better": "higher", "unit": "x",
                                             "what": head["change_map_vs_copy_4K"]["what"]}
    assert head["cine_cpu_percent"]["value"] == 50.0


@pytest.mark.unit
def test_cpu_seconds_of_this_process_grows() -> None:
    before = pipeline.cpu_seconds(os.getpid())
    deadline = before + 0.05
    for _ in range(10_000_000):  # bounded busy loop: at least one clock tick of CPU
        if pipeline.cpu_seconds(os.getpid()) >= deadline:
            break
    assert pipeline.cpu_seconds(os.getpid()) > before


@pytest.mark.unit
def test_change_frames_change_about_one_percent() -> None:
    prev, cur, n = pipeline.change_frames(256, 512, seed=1)
    tiles = (256 // pipeline.TILE) * (512 // pipeline.TILE)
    assert n == max(1, round(tiles * pipeline.CHANGED_FRACTION))
    import hdx.damage as damage

    assert int(damage.tile_change_map_numpy(prev, cur, pipeline.TILE).sum()) == n
