"""Bounded waits and bounded children: what keeps ``hdx bench`` (and the tests that run it) from
hanging on a browser or server that stopped answering. Real processes and real event loops; no
durations are asserted, only outcomes (what ended, what was killed, what was recorded)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from hdx.bench import cli, deadlines, latency, processes, summary

pytestmark = pytest.mark.unit


async def _stubborn(seconds: float) -> str:
    """Work that ignores the first cancellation (a ``finally`` awaiting something that hangs)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.sleep(seconds)
    return "done"


def test_bounded_returns_raises_and_leaves_stubborn_work_behind() -> None:
    async def scenario() -> None:
        assert await deadlines.bounded(asyncio.sleep(0, "x"), 5) == "x"
        with pytest.raises(ZeroDivisionError):
            await deadlines.bounded(asyncio.to_thread(lambda: 1 / 0), 5)
        with pytest.raises(deadlines.Overrun, match="left"):
            await deadlines.bounded(_stubborn(60), 0.05, grace_s=0.05, what="stubborn")
        with pytest.raises(deadlines.Overrun) as caught:
            await deadlines.bounded(asyncio.sleep(60), 0.05, what="polite")
        assert "left" not in str(caught.value) and "polite" in str(caught.value)

    deadlines.run(scenario(), grace_s=0.1)


def test_run_does_not_wait_for_a_task_that_will_not_end() -> None:
    async def main() -> int:
        asyncio.get_running_loop().create_task(_stubborn(3600))
        await asyncio.sleep(0)
        return 7

    assert deadlines.run(main(), grace_s=0.1) == 7


def _pids_from(folder: Path, names: tuple[str, ...]) -> list[int]:
    deadline = time.monotonic() + 30
    while not all((folder / n).is_file() and (folder / n).read_text().strip() for n in names):
        assert time.monotonic() < deadline, f"the command never wrote {names}"
        time.sleep(0.05)
    return [int((folder / n).read_text()) for n in names]


def test_run_bounded_kills_the_tree_and_the_group_of_a_command_that_overruns(
        tmp_path: Path) -> None:
    # A grandchild in a session of its own (found through the tree, as Playwright's Chromium
    # is) and an orphan in the command's own group (found through the group, as the zygotes
    # of a dead browser are).
    script = ("setsid sleep 300 & echo $! > own-session; (sleep 300 & echo $! > orphan); "
              "touch ready; sleep 300")
    with (tmp_path / "out").open("wb") as out:
        code = processes.run_bounded(["bash", "-c", script], 5, stdout=out, stderr=out,
                                     cwd=tmp_path)
    assert code is None
    pids = _pids_from(tmp_path, ("own-session", "orphan"))
    assert (tmp_path / "ready").exists(), "the command did not get going in time"
    assert processes.wait_gone(pids) == []


def test_run_bounded_leaves_nothing_behind_a_command_that_ends(tmp_path: Path) -> None:
    code = processes.run_bounded(["bash", "-c", "(sleep 300 & echo $! > orphan); exit 4"], 60,
                                 cwd=tmp_path)
    assert code == 4
    assert processes.wait_gone(_pids_from(tmp_path, ("orphan",))) == []


def test_processes_naming_finds_by_command_line_and_kill_processes_kills(
        tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-word")
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)", marker]
    code = processes.run_bounded(
        [sys.executable, "-c", "import subprocess, sys; "
         f"subprocess.Popen({sleeper!r}, start_new_session=True)"], 60)
    assert code == 0  # its child, in a session of its own, outlived it
    found = processes.processes_naming(marker, "python")
    assert len(found) == 1 and processes.alive(found[0])
    assert processes.processes_naming(marker, "bash") == []
    assert processes.kill_processes(found) == found
    assert processes.wait_gone(found) == []


def _all_args(out: Path, *only: str) -> argparse.Namespace:
    return argparse.Namespace(out=out, quick=True, no_plot=True, kind_timeout=None,
                              skip=[k for k in cli.ALL_ORDER if k not in only])


def test_bench_all_records_a_kind_that_overruns_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = {"pipeline": "import time; time.sleep(300)",
            "gpu": f"import pathlib; pathlib.Path({str(tmp_path)!r}, 'gpu.json')"
                   ".write_text('{\"targets\": []}')"}
    monkeypatch.setattr(summary, "kind_command",
                        lambda name, args: [sys.executable, "-c", fake[name]])
    monkeypatch.setattr(summary, "time_limit",
                        lambda name, args: 1.0 if name == "pipeline" else 120.0)
    (tmp_path / "pipeline.json").write_text("{}")  # from an earlier run: must not count
    assert summary.run_all(_all_args(tmp_path, "pipeline", "gpu")) == 1
    runs = json.loads((tmp_path / "all.json").read_text())["runs"]
    assert runs["gpu"]["status"] == 0
    assert runs["pipeline"]["status"].startswith("timed out: still running after 1 s")
    reports = json.loads((tmp_path / "all.json").read_text())["reports"]
    assert list(reports) == ["gpu"]
    assert "pipeline timed out" in capsys.readouterr().err


def test_kind_commands_and_time_limits() -> None:
    args = _all_args(Path("out"))
    assert summary.kind_command("latency", args) == [
        sys.executable, "-m", "hdx.bench", "latency", "--out", "out", "--quick", "--no-plot"]
    assert set(summary.TIME_LIMITS_S) == set(cli.ALL_ORDER)
    # latency's own deadline (every round and one retry) ends before bench all's limit does,
    # with room for Playwright, the report and the interpreter, so that its report is written.
    for quick, (seconds, warmup_s, rounds) in ((True, (latency.QUICK_SECONDS,
                                                       latency.QUICK_WARMUP_S,
                                                       latency.QUICK_ROUNDS)),
                                               (False, (latency.SECONDS, latency.WARMUP_S,
                                                        latency.ROUNDS))):
        args.quick = quick
        own = latency.deadlines_for(seconds, warmup_s, rounds)["deadline_s"]
        assert own + 120 < summary.time_limit("latency", args)
    args.kind_timeout = 5.0
    assert summary.time_limit("encoders", args) == 5.0
