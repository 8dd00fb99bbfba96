"""An X desktop served to a real aiortc viewer: it ends exactly the X screen, the cursor shape
arrives on `control`, input is injected, and whatever a vanished viewer held is released."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from hdx.client.viewer import Viewer
from hdx.sources.x11 import X11Screen, X11Source
from tests.conftest import running_server, wait_for
from tests.x11.xservers import XServer

pytestmark = pytest.mark.x11


async def test_viewer_ends_exact_gets_the_cursor_and_leaves_nothing_held(
        xvfb: XServer, x_app_factory: Any) -> None:
    app = x_app_factory(xvfb, "320x240+200+100", "noise", 11)
    source = X11Source(X11Screen(xvfb.display))
    async with running_server(source) as server:
        viewer = Viewer(server.url)
        await viewer.connect()
        try:
            await viewer.until_lossless(30)
            shown = viewer.framebuffer()
            exact = await asyncio.get_running_loop().run_in_executor(None, source.grab_raw)
            rgb = exact.astype("<u4").view(np.uint8).reshape(*exact.shape, 4)[..., 2::-1]
            assert np.array_equal(shown, rgb)
            cursors = [m for m in viewer.report.messages if m.get("t") == "cursor"]
            assert cursors and cursors[0]["visible"] and cursors[0]["png"]
            # Hold a key and a button, then vanish without releasing them.
            app.events.clear()
            for message in ({"t": "pointer", "a": "move", "x": 250, "y": 150},
                            {"t": "key", "key": "Control", "code": "ControlLeft",
                             "down": True},
                            {"t": "pointer", "a": "down", "x": 250, "y": 150, "b": 0}):
                viewer.send(message)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: app.wait_for(lambda e: e["type"] == "button" and e["down"]))
            assert json.dumps(app.events)  # the application saw the press
        finally:
            await viewer.close()
        await wait_for(lambda: not server.sessions, 30)
        released = await asyncio.get_running_loop().run_in_executor(
            None, lambda: app.wait_for(lambda e: e["type"] == "button" and not e["down"]))
        assert released["button"] == 1
        app.wait_for(lambda e: e["type"] == "key" and not e["down"]
                     and e["name"] == "Control_L")


async def test_depth30_detail_is_never_called_lossless(x_app_factory: Any) -> None:
    from hdx.client.viewer import NotLossless
    from tests.x11.xservers import x_server

    with x_server("xvfb", "320x240", 30) as server:
        app = x_app_factory(server, "100x80+20+30", "noise", 6)  # 10-bit values
        source = X11Source(X11Screen(server.display))
        async with running_server(source) as hdx:
            viewer = Viewer(hdx.url)
            await viewer.connect()
            try:
                with pytest.raises(NotLossless, match="10 bits per channel"):
                    await viewer.until_lossless(4)
                fidelity = [m for m in viewer.report.messages if m.get("t") == "fidelity"]
                assert fidelity and fidelity[-1]["exact"] is False
                app.close()  # what remains (black) is exact in 8 bits: lossless again
                await viewer.until_lossless(30)
                assert viewer.compositor is not None and viewer.compositor.fidelity is None
            finally:
                await viewer.close()
