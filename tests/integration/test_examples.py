"""The examples run as users run them: a subprocess, watched by the real Python viewer."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hdx.client.viewer import Viewer
from tests.conftest import psnr

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EMBED_NUMPY = ROOT / "examples" / "embed_numpy.py"
URL_LINE = re.compile(r"^hdx: serving (\d+)x(\d+) at (http://\S+)$")


def load_example(path: Path) -> ModuleType:
    """Import an example file as a module (its ``main()`` only runs under ``__main__``)."""
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def read_until(stdout: asyncio.StreamReader, pattern: re.Pattern[str],
                     seen: list[str], timeout_s: float) -> re.Match[str]:
    """Read output lines into ``seen`` until one matches ``pattern``."""
    async def scan() -> re.Match[str]:
        while line := await stdout.readline():
            seen.append(line.decode(errors="replace").rstrip())
            if match := pattern.search(seen[-1]):
                return match
        raise AssertionError("the example exited early:\n" + "\n".join(seen))
    try:
        return await asyncio.wait_for(scan(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"no line matching {pattern.pattern!r} within {timeout_s} s:\n"
                             + "\n".join(seen)) from None


async def test_embed_numpy_streams_what_it_draws_and_exits_cleanly() -> None:
    example = load_example(EMBED_NUMPY)
    # The repository root on PYTHONPATH (as pytest's ``pythonpath`` setting gives the tests)
    # runs the example against this checkout, however hdx happens to be installed.
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EMBED_NUMPY), "--port", "0", "--seconds", "8",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        served = await read_until(proc.stdout, URL_LINE, seen, timeout_s=30)
        assert (int(served[1]), int(served[2])) == (example.WIDTH, example.HEIGHT)
        async with Viewer(served[3]) as viewer:
            await viewer.receive(10, timeout_s=10, idle_s=None)
            frame = viewer.last_frame
            assert frame is not None and frame.shape == (example.HEIGHT, example.WIDTH, 3)

            # Content: the decoded frame is one of the frames the example draws (the picture
            # is a pure function of the frame number), and clearly no other.
            scores = [psnr(frame, example.draw(n)) for n in range(9 * example.FPS)]
            best = int(np.argmax(scores))
            assert scores[best] >= 30.0, f"best match frame {best}: {scores[best]:.1f} dB"
            assert np.median(scores) < scores[best] - 6, "frames are not told apart"
            # Coarse, encoder-independent: green grows from top to bottom.
            green = frame[..., 1].astype(np.float64)
            assert green[-40:].mean() - green[:40].mean() > 150

            # Input: a click reaches the example's on_input callback.
            await viewer.wait_control_open()
            viewer.send({"t": "pointer", "a": "down", "x": 123, "y": 45, "b": 0})
            await read_until(proc.stdout, re.compile(
                r"^input: PointerEvent\(action='down', x=123, y=45, button=0\)$"),
                seen, timeout_s=5)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        seen += rest.decode(errors="replace").splitlines()
        assert proc.returncode == 0, "\n".join(seen)
        assert seen[-1] == "hdx: stopped", "\n".join(seen)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
