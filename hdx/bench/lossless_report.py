"""Rendering of ``hdx bench lossless`` results: the Markdown report and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEED_TARGET_MB_S = 100.0
"""The hdx encoder must reach this on one core on every target content."""


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("status") != "ok":
        return "n/a"
    return f"{row['ratio']:.2f} / {row['encode_mb_s']:.0f}"


HEADLINE = ("hdx", "hdx_tiles", "jpegls", "png6", "jxl_e1")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: headline, targets, then every row."""
    m, s = report["machine"], report["settings"]
    rows = report["results"]
    by_key = {(r["content"], r["codec"]): r for r in rows}
    labels = {name: k["label"] for name, k in report["codecs"].items()}
    lines = [
        "# Lossless tile codecs: hdx's choice against the alternatives",
        "",
        ("**Quick run (tiny images, one timed run each): sizes and speeds are not "
         "representative.**\n" if report["quick"] else "")
        + "ratio = raw bytes / compressed bytes (raw = width x height x channels x bytes per "
        "sample: RGB 3, grey 1, 16-bit grey 2 bytes per pixel). MB/s = raw MB over the median "
        f"time of up to {s['repeats']} runs after a warm-up (at least {s['min_repeats']}, fewer "
        f"once they took {s['budget_s']} s), one thread. hdx is given BGRA as captured (its time "
        "includes the grey test and BGRA -> RGB); the others get RGB or one grey channel, "
        "prepared untimed (WebP and QOI take grey as RGB). Every decode is compared with the "
        "input.",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, imagecodecs "
        f"{m['imagecodecs']} (CharLS {m['charls']}, libjxl {m['libjxl']}, libwebp "
        f"{m['libwebp']}, libpng {m['libpng']}, zlib {m['zlib']}, zstd {m['zstd']}), "
        f"commit {m['git_commit'] or 'none'}.",
        "",
        "## Headline: ratio / encode MB/s",
        "",
        "| content | " + " | ".join(labels.get(k, k) for k in HEADLINE) + " | hdx format |",
        "| --- | " + " | ".join("---:" for _ in HEADLINE) + " | --- |",
    ]
    for c in report["contents"]:
        hdx = by_key.get((c["name"], "hdx"), {})
        lines.append(f"| {c['name']} | "
                     + " | ".join(_cell(by_key.get((c["name"], k))) for k in HEADLINE)
                     + f" | {hdx.get('hdx_format', '')} |")
    lines += ["", f"## Targets (hdx encoder >= {SPEED_TARGET_MB_S:.0f} MB/s on one core)", "",
              "| target | content | hdx as | hdx / baseline bytes | size | hdx encode MB/s | "
              "speed | result |", "| --- | --- | --- | ---: | --- | ---: | --- | --- |"]
    for t in report["targets"]:
        form = labels.get(t.get("hdx", "hdx"), "hdx")
        if "bytes_ratio" not in t:
            lines.append(f"| {t['target']} | {t['content']} | {form} | | | | | **FAIL** "
                         f"({t['reason']}) |")
            continue
        lines.append(
            f"| {t['target']} | {t['content']} | {form} | {t['bytes_ratio']:.3f} (max "
            f"{t['max_ratio']}) | {'pass' if t['size_pass'] else '**FAIL**'} | "
            f"{t['hdx_encode_mb_s']:.1f} | {'pass' if t['speed_pass'] else '**misses**'} | "
            f"{'pass' if t['pass'] else '**FAIL**'} |")
    lines += ["", "## Contents", "", "| content | size | channels x bits | raw KB | what |",
              "| --- | --- | --- | ---: | --- |"]
    for c in report["contents"]:
        lines.append(f"| {c['name']} | {c['width']}x{c['height']} | {c['channels']} x "
                     f"{c['bits']} | {c['raw_bytes'] / 1e3:.0f} | {c['description']} |")
    lines += ["", "## Every codec", "",
              "| content | codec | given | bytes | ratio | encode MB/s | decode MB/s | exact | "
              "note |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        label = labels.get(r["codec"], r["codec"])
        if r.get("status") != "ok":
            lines.append(f"| {r['content']} | {label} | {r.get('given', '')} | | | | | n/a | "
                         f"{r.get('reason', '')} |")
            continue
        note = r.get("hdx_format", "") or r.get("reason", "")
        lines.append(
            f"| {r['content']} | {label} | {r['given']} | {r['bytes']} | {r['ratio']:.2f} | "
            f"{r['encode_mb_s']:.1f} | {r['decode_mb_s']:.1f} | "
            f"{'yes' if r['exact'] else '**NO**'} | {note} |")
    lines += ["", "Codec settings:", ""]
    lines += [f"- {k['label']}: {k['settings']}" for k in report["codecs"].values()]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path, plt: Any) -> None:
    """Ratio against encode MB/s, one panel per content, every codec a marker."""
    contents = report["contents"]
    names = list(report["codecs"])
    style = {name: (f"C{i}", "*" if name == "hdx" else "os^vDPXh"[i % 8])
             for i, name in enumerate(names)}
    cols = 4
    rows_n = -(-(len(contents) + 1) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.4 * rows_n), squeeze=False)
    flat = [ax for row in axes for ax in row]
    speeds = [r["encode_mb_s"] for r in report["results"] if r.get("status") == "ok"]
    x_range = (min(speeds, default=1.0) / 1.6, max(speeds, default=1e3) * 1.6)
    for ax, c in zip(flat, contents, strict=False):
        for r in report["results"]:
            if r["content"] != c["name"] or r.get("status") != "ok":
                continue
            colour, marker = style[r["codec"]]
            ax.scatter(r["encode_mb_s"], r["ratio"], color=colour, marker=marker,
                       s=160 if r["codec"] == "hdx" else 50, zorder=3,
                       edgecolors="k" if r["codec"] == "hdx" else "none")
        ax.axvline(SPEED_TARGET_MB_S, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlim(*x_range)  # the same speed axis in every panel
        ax.set_title(f"{c['name']} ({c['width']}x{c['height']}, {c['channels']}x{c['bits']} bit)",
                     fontsize=9)
        ax.set_xlabel("encode MB/s (one thread)", fontsize=8)
        ax.set_ylabel("ratio (raw / compressed)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    legend_ax = flat[len(contents)]
    for name in names:
        colour, marker = style[name]
        legend_ax.scatter([], [], color=colour, marker=marker, s=80,
                          label=report["codecs"][name]["label"])
    legend_ax.plot([], [], color="grey", ls="--", lw=0.8,
                   label=f"{SPEED_TARGET_MB_S:.0f} MB/s target")
    legend_ax.legend(loc="center", fontsize=9, frameon=False)
    legend_ax.axis("off")
    for ax in flat[len(contents) + 1:]:
        ax.axis("off")
    fig.suptitle("Lossless codecs: compression ratio vs encode speed (up and right is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
