"""``python -m hdx.bench KIND [options]``: the same as ``hdx bench KIND [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hdx.bench.cli import add_kinds, run_bench


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run that benchmark."""
    parser = argparse.ArgumentParser(prog="python -m hdx.bench",
                                     description="Benchmark parts of hdx against baselines.")
    add_kinds(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
