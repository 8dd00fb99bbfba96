"""``--compare OLD.json``: flag headline figures that got worse since an earlier run.

Each report's ``headline`` names a few figures and which direction is better; a figure that moved
the wrong way by more than the tolerance (a share of the old value) is a regression. Targets
that passed before and miss now are flagged too. Figures present in only one run are listed,
not judged. An ``all.json`` holds every kind's report, so two ``all`` runs compare in one go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO


class CompareError(ValueError):
    """A file that is not a benchmark report; the message says which and why."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CompareError(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not ("headline" in data or "reports" in data):
        raise CompareError(f"{path}: not an hdx bench report (no 'headline')")
    return data


def _flatten(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(headline figures, targets) keyed ``kind/name``, from one report or an ``all.json``."""
    reports = report.get("reports", {report.get("benchmark", "?"): report})
    figures: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for kind, r in reports.items():
        for key, fig in (r.get("headline") or {}).items():
            figures[f"{kind}/{key}"] = fig
        for t in r.get("targets") or []:
            targets[f"{kind}/{t['target']}"] = t
    return figures, targets


def compare(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """One row per headline figure and target present in both runs; ``regression`` set where it
    got worse beyond ``tolerance``."""
    old_figures, old_targets = _flatten(old)
    new_figures, new_targets = _flatten(new)
    rows = []
    for key in sorted(old_figures.keys() & new_figures.keys()):
        before, after = old_figures[key].get("value"), new_figures[key].get("value")
        better = new_figures[key].get("better", "lower")
        row: dict[str, Any] = {"figure": key, "old": before, "new": after,
                               "unit": new_figures[key].get("unit", ""), "better": better,
                               "change": None, "regression": False}
        if isinstance(before, int | float) and isinstance(after, int | float) and before:
            change = (after - before) / abs(before)
            row["change"] = round(change, 4)
            worse = change > tolerance if better == "lower" else change < -tolerance
            row["regression"] = bool(worse)
        rows.append(row)
    for key in sorted(old_targets.keys() & new_targets.keys()):
        if old_targets[key].get("pass") is True and new_targets[key].get("pass") is False:
            rows.append({"figure": f"target: {key}", "old": "pass", "new": "miss", "unit": "",
                         "better": "", "change": None, "regression": True})
    return rows


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def compare_files(old_path: Path, new_path: Path, tolerance: float, out: TextIO) -> int:
    """Print the comparison of two report files as Markdown; the number of regressions."""
    rows = compare(_load(old_path), _load(new_path), tolerance)
    out.write(f"\n## Compared with {old_path} (tolerance {tolerance:.0%})\n\n")
    if not rows:
        out.write("No headline figure appears in both runs.\n")
        return 0
    out.write("| figure | old | new | change | |\n| --- | ---: | ---: | ---: | --- |\n")
    for r in rows:
        change = "" if r["change"] is None else f"{r['change']:+.1%}"
        flag = "**REGRESSION**" if r["regression"] else ""
        out.write(f"| {r['figure']} | {_fmt(r['old'])} | {_fmt(r['new'])} {r['unit']} | "
                  f"{change} | {flag} |\n")
    regressions = sum(1 for r in rows if r["regression"])
    out.write(f"\n{regressions} regression(s) among {len(rows)} figures.\n")
    return regressions
