"""What every benchmark program shares: where results go, machine facts, and writing them.

Run benchmarks as ``python benchmarks/NAME.py``: Python then puts ``benchmarks/`` on ``sys.path``
and ``import _report`` finds this module; with the repository root on ``sys.path`` it is also
importable as ``benchmarks._report``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or whatever ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """``HEAD`` of the repository, with ``+dirty`` when the tree has changes; None without git
    or without a commit yet."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        return head + ("+dirty" if git("status", "--porcelain") else "")
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


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``NAME.json`` and ``NAME.md`` into ``out`` (created if missing); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown)
    return [json_path, md_path]


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None (with a note on stderr) when
    matplotlib is not installed: plots are optional, the JSON and Markdown are not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG plot (pip install matplotlib)",
              file=sys.stderr)
        return None
    return plt
