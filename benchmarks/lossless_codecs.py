"""Lossless tile codecs: hdx's choice against PNG, WebP, JPEG-LS, JPEG XL, zlib, zstd and QOI.

The same program as ``hdx bench lossless`` (``hdx/bench/lossless.py`` says what it measures).
Run from the repository root: ``python benchmarks/lossless_codecs.py [--quick]``. Writes
``benchmarks/results/lossless_codecs.json``, ``.md`` and ``.png`` (the PNG needs matplotlib).
"""

from __future__ import annotations

import argparse

from hdx.bench import lossless


def main() -> int:
    parser = argparse.ArgumentParser(description=lossless.DESCRIPTION)
    lossless.add_arguments(parser)
    return lossless.main(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
