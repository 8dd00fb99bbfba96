"""``hdx bench all``: every kind into one results folder, then one page of targets.

Each kind runs with its defaults and writes its own files; ``all.json`` gathers their reports
(so ``--compare`` can check a whole run at once) and ``all.md`` puts every target of the issue,
with its same-run ratio, on one page. A kind that fails is reported and the others still run.

Each kind runs as a child process (``python -m hdx.bench KIND``) in a session of its own, with a
time limit: a kind that hangs (a browser that died under Playwright, a VNC server that stopped
answering) is killed with everything it started, recorded as failed with the reason, and the
run goes on. The limits are generous: they stop hangs, they do not judge speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hdx.bench import report
from hdx.bench.processes import run_bounded

TIME_LIMITS_S: dict[str, tuple[float, float]] = {
    "encoders": (600, 4 * 3600), "lossless": (600, 2 * 3600), "pipeline": (600, 3600),
    "peers": (600, 2 * 3600), "latency": (600, 1800), "gpu": (600, 3600),
}
"""kind -> (limit of a --quick run, limit of a full run), in seconds. A quick run takes seconds
to a minute per kind on a 2-core machine; latency's limit stays above its own deadline for all
its rounds (``hdx.bench.latency.deadlines_for``), so that it can still write its report."""


def kind_command(name: str, args: argparse.Namespace) -> list[str]:
    """``python -m hdx.bench NAME`` with its defaults and the common options of ``args``."""
    return [sys.executable, "-m", "hdx.bench", name, "--out", str(args.out),
            *(["--quick"] if args.quick else []), *(["--no-plot"] if args.no_plot else [])]


def time_limit(name: str, args: argparse.Namespace) -> float:
    """How long kind ``name`` may run: ``--kind-timeout``, else :data:`TIME_LIMITS_S`."""
    if getattr(args, "kind_timeout", None) is not None:
        return float(args.kind_timeout)
    quick, full = TIME_LIMITS_S[name]
    return quick if args.quick else full


def run_all(args: argparse.Namespace) -> int:
    """Run every kind of :data:`hdx.bench.cli.ALL_ORDER` not in ``--skip``; 0 if all ran."""
    from hdx.bench.cli import ALL_ORDER

    out: Path = args.out
    statuses: dict[str, Any] = {}
    for n, name in enumerate(k for k in ALL_ORDER if k not in args.skip):
        print(f"\n=== hdx bench {name} ({n + 1}/{len(ALL_ORDER) - len(args.skip)}) ===",
              file=sys.stderr, flush=True)
        (out / f"{name}.json").unlink(missing_ok=True)  # a kind that dies must not look done
        started, limit = time.monotonic(), time_limit(name, args)
        sys.stdout.flush()
        code = run_bounded(kind_command(name, args), limit)
        status: Any = code if code is not None else (
            f"timed out: still running after {limit:g} s; killed with every process it started")
        if code is None:
            print(f"hdx bench all: {name} {status}", file=sys.stderr, flush=True)
        statuses[name] = {"status": status, "seconds": round(time.monotonic() - started, 1)}
    reports = {}
    for name in statuses:
        path = out / f"{name}.json"
        if path.is_file():
            reports[name] = json.loads(path.read_text())
    summary = {"benchmark": "all", "machine": report.machine_info(), "runs": statuses,
               "reports": reports}
    text = markdown(summary)
    for path in report.write_report(out, "all", summary, text):
        print(f"wrote {path}", file=sys.stderr)
    print(text)
    return 0 if all(s["status"] == 0 for s in statuses.values()) else 1


def markdown(summary: dict[str, Any]) -> str:
    """Every kind's targets on one page, then how each kind's run went."""
    m = summary["machine"]
    lines = ["# hdx bench all", "",
             f"Machine: {m['cpu']} ({m['cpus']} CPUs), Python {m['python']}, "
             f"commit {m['git_commit']}. Every ratio is measured within one run.", ""]
    targets = [dict(t, target=f"{kind}: {t['target']}")
               for kind, r in summary["reports"].items() for t in r.get("targets") or []]
    lines += [*report.targets_markdown(targets), "",
              "| kind | exit | seconds | details |", "| --- | --- | ---: | --- |"]
    for kind, s in summary["runs"].items():
        lines.append(f"| {kind} | {s['status']} | {s['seconds']} | [{kind}.md]({kind}.md) |")
    return "\n".join(lines) + "\n"
