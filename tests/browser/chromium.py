"""How this project runs Debian's headless Chromium: the list lives in :mod:`hdx.bench.chromium`
(the installed latency benchmark needs it too); re-exported here for the browser tests."""

from hdx.bench.chromium import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]
