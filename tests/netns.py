"""A shaped veth link into a fresh network namespace for tests (root and iproute2 needed):
skipped where it cannot be made, or a failure when ``HDXTEST_REQUIRE_NETNS=1`` (the test
command sets it, so CI never skips these silently)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from hdx.bench import netlink


@contextlib.contextmanager
def link_or_skip(mbit: float) -> Iterator[netlink.Link]:
    """``netlink.shaped_link(mbit)``, or skip (fail where required) saying why not."""
    problem = netlink.available_link()
    if problem is not None:
        if os.environ.get("HDXTEST_REQUIRE_NETNS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    with netlink.shaped_link(mbit) as made:
        yield made
