"""The ``hdx bench`` command: one sub-command per benchmark kind.

A kind is a module with ``add_arguments(parser)`` and ``main(args) -> int``; adding one (say
``encoders`` or ``pipeline``) is a module plus a line in :data:`KINDS`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Protocol, cast


class BenchKind(Protocol):
    """What a benchmark module offers the command line."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace) -> int: ...


KINDS: dict[str, tuple[str, str]] = {
    "lossless": ("hdx.bench.lossless",
                 "lossless tile codecs: hdx's choice vs PNG, WebP, JPEG-LS, JPEG XL, zlib, zstd, "
                 "QOI (ratio, MB/s, exactness)"),
}
"""kind -> (module, one-line help)."""


def _kind(name: str) -> BenchKind:
    return cast(BenchKind, importlib.import_module(KINDS[name][0]))


def add_kinds(parser: argparse.ArgumentParser) -> None:
    """Add one sub-command per kind to ``parser`` (``hdx bench`` or ``python -m hdx.bench``)."""
    kinds = parser.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    for name, (_, help_text) in KINDS.items():
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        _kind(name).add_arguments(sub)


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` command to the ``hdx`` command's sub-commands."""
    bench = subparsers.add_parser(
        "bench", help="benchmark parts of hdx against baselines",
        description="Benchmark parts of hdx against baselines measured in the same run; "
        "results go to benchmarks/results/ (see benchmarks/README.md).")
    add_kinds(bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the kind that ``args`` (from a parser built with :func:`add_bench_parser`) names."""
    return _kind(args.bench_kind).main(args)
