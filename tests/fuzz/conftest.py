"""Hypothesis profiles for the fuzz tier.

``hdx-ci`` (the default) is derandomized, so every run tries the same examples and a failure
reproduces exactly; each fuzzer sets its own bounded ``max_examples`` (see
:func:`tests.fuzz.common.examples`), about 15-30 s for the whole folder on two cores.
``HDXTEST_FUZZ_EXAMPLES=N`` (not ``HDX_*``: those are server settings) switches to ``hdx-long``:
random seeds, N examples per fuzzer (the stateful and live ones scale from it), and failures
printed with their reproduction blob. ``HDXTEST_FUZZ_PROFILE`` picks a profile by name.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.large_base_example]

settings.register_profile("hdx-ci", derandomize=True, deadline=None, database=None,
                          print_blob=True, suppress_health_check=_SLOW_OK)
settings.register_profile("hdx-long", derandomize=False, deadline=None, database=None,
                          print_blob=True, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get(
    "HDXTEST_FUZZ_PROFILE", "hdx-long" if os.environ.get("HDXTEST_FUZZ_EXAMPLES") else "hdx-ci"))
