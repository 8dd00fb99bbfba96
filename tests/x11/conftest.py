"""X tier: a real X server per test module (see ``xservers.py``) and a real X application."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.x11.xservers import XApp, XServer, x_server


@pytest.fixture(scope="module")
def xvfb() -> Iterator[XServer]:
    with x_server("xvfb", "1280x720", 24) as server:
        yield server


@pytest.fixture
def x_app_factory() -> Iterator[Any]:
    apps: list[XApp] = []

    def start(server: XServer, geometry: str, pattern: str = "noise", seed: int = 1) -> XApp:
        app = XApp(server, geometry, pattern, seed)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.close()
