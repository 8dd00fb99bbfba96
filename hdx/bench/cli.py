"""The ``hdx bench`` command: one sub-command per benchmark kind, plus ``all``.

A kind is a module with ``add_arguments(parser)`` (its own options) and ``main(args) -> int``
that writes ``KIND.json`` and ``KIND.md`` (and plots) into ``args.out``. Every kind also gets the
common options added here: ``--out``, ``--quick``, ``--no-plot`` and ``--compare OLD.json``.
Adding a kind is a module plus a line in :data:`KINDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Protocol, cast

from hdx.bench import report


class BenchKind(Protocol):
    """What a benchmark module offers the command line."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace) -> int: ...


KINDS: dict[str, tuple[str, str]] = {
    "encoders": ("hdx.bench.encoders",
                 "video encoders on the scenario manifest: x264 presets and tunings, VP8, VP9, "
                 "SVT-AV1, NVENC where present (encode ms, fps, kbit/s, PSNR, SSIM, edge PSNR)"),
    "lossless": ("hdx.bench.lossless",
                 "lossless tile codecs: hdx's choice vs PNG, WebP, JPEG-LS, JPEG XL, zlib, zstd, "
                 "QOI (ratio, MB/s, exactness)"),
    "pipeline": ("hdx.bench.pipeline",
                 "hdx's server pipeline: ms per stage at 720p/1080p/4K, change detection vs a "
                 "frame copy, idle CPU of a running server"),
    "latency": ("hdx.bench.latency",
                "glass-to-glass latency to Chromium and server CPU per frame: hdx vs the naive "
                "aiortc pipeline (needs Chromium)"),
    "peers": ("hdx.bench.peers",
              "hdx against its peers on the same content: the naive aiortc pipeline (CPU per "
              "frame at equal PSNR), a VNC server on the same Xvfb, PNG/zlib"),
    "gpu": ("hdx.bench.gpu",
            "the GPU: NVML facts, NVENC availability, and the optional CuPy change detection "
            "and colour conversion against the device's memory bandwidth"),
}
"""kind -> (module, one-line help)."""
ALL_ORDER = ("encoders", "lossless", "pipeline", "peers", "latency", "gpu")
"""What ``hdx bench all`` runs, cheapest dependencies first."""


def _kind(name: str) -> BenchKind:
    return cast(BenchKind, importlib.import_module(KINDS[name][0]))


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every kind takes."""
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default benchmarks/results/<machine>-<commit>/, "
                        "with -quick appended for --quick runs)")
    parser.add_argument("--quick", action="store_true",
                        help="small content, few repeats: a smoke test of the whole path")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    parser.add_argument("--compare", type=Path, default=None, metavar="OLD.json",
                        help="compare this run's headline figures with an earlier run's JSON "
                        "(a kind's JSON, or all.json) and flag regressions (exit 3 if any)")
    parser.add_argument("--tolerance", type=float, default=0.15,
                        help="a headline figure worse by more than this share is a regression "
                        "(default 0.15: this machine is shared and noisy)")


def add_kinds(parser: argparse.ArgumentParser) -> None:
    """Add one sub-command per kind, and ``all``, to ``parser``."""
    kinds = parser.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    for name, (_, help_text) in KINDS.items():
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        _kind(name).add_arguments(sub)
        add_common_arguments(sub)
    every = kinds.add_parser("all", help="every kind in turn, then one summary (all.md)",
                             description="Run " + ", ".join(ALL_ORDER) + " with their defaults "
                             "into one results folder and summarise the targets in all.md.")
    every.add_argument("--skip", nargs="+", default=[], choices=ALL_ORDER, metavar="KIND",
                       help="kinds to leave out")
    every.add_argument("--kind-timeout", type=float, default=None, metavar="SECONDS",
                       help="stop a kind still running after this long, record it as failed "
                       "and go on (default: per kind, generous; see hdx.bench.summary)")
    add_common_arguments(every)


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` command to the ``hdx`` command's sub-commands."""
    bench = subparsers.add_parser(
        "bench", help="benchmark hdx against baselines and peers",
        description="Benchmark hdx against baselines and peers measured in the same run; "
        "results go to benchmarks/results/<machine>-<commit>/ (see benchmarks/README.md).")
    add_kinds(bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the kind that ``args`` (from a parser built with :func:`add_bench_parser`) names."""
    if args.out is None:
        args.out = report.default_out(quick=bool(args.quick))
    if args.tolerance < 0:
        raise SystemExit("--tolerance must be >= 0")
    if getattr(args, "kind_timeout", None) is not None and args.kind_timeout <= 0:
        raise SystemExit("--kind-timeout must be positive")
    if args.bench_kind == "all":
        from hdx.bench.summary import run_all

        status = run_all(args)
        new = args.out / "all.json"
    else:
        status = _kind(args.bench_kind).main(args)
        new = args.out / f"{args.bench_kind}.json"
    if args.compare is not None:
        from hdx.bench.compare import compare_files

        regressions = compare_files(args.compare, new, args.tolerance, sys.stdout)
        if regressions and status == 0:
            status = 3
    return status
