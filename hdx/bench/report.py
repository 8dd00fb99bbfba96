"""What every benchmark shares: machine facts, the results folder, writers, plots and targets.

Results of one run go to a folder named after the machine and the commit
(``benchmarks/results/<cpu>-<cores>c-<commit>/``), so runs on different machines or commits sit
side by side and ``--compare`` can read any two. Every report carries ``headline``: the few
figures a regression check compares, each with the direction that is better.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

REPO = Path(__file__).resolve().parents[2]
"""The source checkout this module lives in (its ``benchmarks/`` folder holds the results)."""
Better = Literal["lower", "higher"]


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or whatever ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


def git_commit() -> str | None:
    """``HEAD`` of the checkout, with ``+dirty`` when the tree has changes; None without git."""
    try:
        head = _git("rev-parse", "HEAD")
        return head + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(**versions: str) -> dict[str, Any]:
    """CPU, core count, Python, numpy and git commit, plus any library ``versions`` given."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **versions,
        "git_commit": git_commit(),
    }


def machine_slug() -> str:
    """A short file-name-safe name for this machine: CPU model words and core count, e.g.
    ``xeon-platinum-8375c-2c``."""
    model = re.sub(r"\(r\)|\(tm\)|\bcpu\b|\bintel\b|\bamd\b|@.*$|\bprocessor\b", " ",
                   cpu_model().lower())
    words = re.findall(r"[a-z0-9]+", model)[:4] or ["unknown"]
    return "-".join(words) + f"-{os.cpu_count() or 0}c"


def run_folder_name() -> str:
    """``<machine>-<commit[:10]>`` (``-dirty`` for uncommitted changes; ``nogit`` without git)."""
    commit = git_commit()
    tag = "nogit" if commit is None else commit[:10] + ("-dirty" if commit.endswith("+dirty")
                                                         else "")
    return f"{machine_slug()}-{tag}"


def results_root() -> Path:
    """``benchmarks/results`` of a source checkout; ``./hdx-bench-results`` otherwise."""
    if (REPO / "benchmarks").is_dir():
        return REPO / "benchmarks" / "results"
    return Path.cwd() / "hdx-bench-results"


def default_out(quick: bool = False) -> Path:
    """Where a run writes unless ``--out`` says otherwise (quick runs apart from full ones)."""
    return results_root() / (run_folder_name() + ("-quick" if quick else ""))


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``NAME.json`` and ``NAME.md`` into ``out`` (created if missing); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown)
    return [json_path, md_path]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None (with a note on stderr) when
    matplotlib is not installed: plots are optional, the JSON and Markdown are not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG plots (pip install matplotlib)",
              file=sys.stderr)
        return None
    return plt


def headline(value: float | None, better: Better, unit: str, what: str) -> dict[str, Any]:
    """One figure for ``--compare``: its value, which direction is better, unit and meaning."""
    return {"value": value, "better": better, "unit": unit, "what": what}


def target(name: str, value: float | None, limit: float, better: Better,
           detail: str) -> dict[str, Any]:
    """A target from the issue, checked as a ratio measured in this run (None: not measured;
    ``detail`` then says why)."""
    passed = None if value is None else (value <= limit if better == "lower" else value >= limit)
    return {"target": name, "value": value, "limit": limit, "better": better,
            "pass": passed, "detail": detail}


def targets_markdown(targets: Iterable[dict[str, Any]]) -> list[str]:
    """Markdown rows for :func:`target` results."""
    lines = ["| target | measured | limit | result |", "| --- | ---: | ---: | --- |"]
    for t in targets:
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        sign = "≤" if t["better"] == "lower" else "≥"
        verdict = {True: "**pass**", False: "**miss**", None: "not measured"}[t["pass"]]
        lines.append(f"| {t['target']} | {value} | {sign} {t['limit']:g} | {verdict}: "
                     f"{t['detail']} |")
    return lines


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``; None for no values."""
    return float(np.percentile(values, q)) if values else None
