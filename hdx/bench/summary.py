"""``hdx bench all``: every kind into one results folder, then one page of targets.

Each kind runs with its defaults and writes its own files; ``all.json`` gathers their reports
(so ``--compare`` can check a whole run at once) and ``all.md`` puts every target of the issue,
with its same-run ratio, on one page. A kind that fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hdx.bench import report


def run_all(args: argparse.Namespace) -> int:
    """Run every kind of :data:`hdx.bench.cli.ALL_ORDER` not in ``--skip``; 0 if all ran."""
    from hdx.bench.cli import ALL_ORDER, _kind, kind_defaults

    out: Path = args.out
    statuses: dict[str, Any] = {}
    for n, name in enumerate(k for k in ALL_ORDER if k not in args.skip):
        print(f"\n=== hdx bench {name} ({n + 1}/{len(ALL_ORDER) - len(args.skip)}) ===",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            status: Any = _kind(name).main(kind_defaults(name, args))
        except Exception as exc:  # one kind failing must not lose the others' results
            status = f"{type(exc).__name__}: {exc}"
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
