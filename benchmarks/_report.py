"""The benchmark scripts' shared helpers: the same module as :mod:`hdx.bench.report`.

Run benchmarks as ``python benchmarks/NAME.py``: Python then puts ``benchmarks/`` on ``sys.path``
and ``import _report`` finds this module. ``RESULTS`` is this machine-and-commit's results folder.
"""

from __future__ import annotations

from hdx.bench.report import (  # noqa: F401  (re-exported for the scripts)
    REPO,
    cpu_model,
    default_out,
    git_commit,
    machine_info,
    pyplot,
    write_report,
)

RESULTS = default_out()
