"""A small X application for tests, written with python-xlib (independent of hdx's bindings):
it opens a window, fills it with known pixels, and prints every input event it receives as a
JSON line, flushed at once, so tests can check what reached the desktop.

    python -m tests.x11.xclient --geometry 400x300+10+20 --pattern noise --seed 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from Xlib import XK, X, display

for _group in ("latin1", "latin2", "miscellany", "xkb"):
    XK.load_keysym_group(_group)
KEYSYM_NAMES = {value: name[3:] for name, value in vars(XK).items() if name.startswith("XK_")}


def pattern(kind: str, width: int, height: int, seed: int, depth: int) -> np.ndarray:
    """The window's pixels as raw uint32 values for a depth-24 or depth-30 TrueColor visual."""
    rng = np.random.default_rng(seed)
    if depth == 30:
        rgb = rng.integers(0, 1024, size=(height, width, 3), dtype=np.uint32)
        return (rgb[..., 0] << 20) | (rgb[..., 1] << 10) | rgb[..., 2]
    if kind == "noise":
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint32)
    else:  # bars: easy to see in a screenshot, and compressible
        x = np.arange(width, dtype=np.uint32)[None, :].repeat(height, 0)
        y = np.arange(height, dtype=np.uint32)[:, None].repeat(width, 1)
        rgb = np.stack([(x * 7) % 256, (y * 5) % 256, ((x // 32 + y // 32) % 2) * 255], -1)
        rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--geometry", default="400x300+0+0")
    parser.add_argument("--pattern", default="noise")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=120.0, help="exit after this long")
    args = parser.parse_args()
    size, _, pos = args.geometry.partition("+")
    width, height = (int(v) for v in size.split("x"))
    x, y = (int(v) for v in pos.split("+"))
    d = display.Display()
    screen = d.screen()
    depth = screen.root_depth
    window = screen.root.create_window(
        x, y, width, height, 0, depth, X.InputOutput, X.CopyFromParent,
        background_pixel=0, override_redirect=True,
        event_mask=(X.ExposureMask | X.KeyPressMask | X.KeyReleaseMask | X.ButtonPressMask
                    | X.ButtonReleaseMask | X.PointerMotionMask))
    gc = window.create_gc()
    pixels = pattern(args.pattern, width, height, args.seed, depth)
    window.map()
    window.set_input_focus(X.RevertToParent, X.CurrentTime)

    def paint() -> None:
        rows = max(1, 65536 // (width * 4))
        for top in range(0, height, rows):
            block = pixels[top:top + rows]
            window.put_image(gc, 0, top, width, block.shape[0], X.ZPixmap, depth, 0,
                             block.astype("<u4").tobytes())
        d.sync()

    def say(**event: object) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    deadline = time.monotonic() + args.seconds
    painted = False
    while time.monotonic() < deadline:
        while d.pending_events():
            e = d.next_event()
            if e.type == X.Expose:
                paint()
                if not painted:
                    painted = True
                    say(type="ready", width=width, height=height, depth=depth)
            elif e.type == X.MappingNotify:
                d.refresh_keyboard_mapping(e)  # what every toolkit does (hdx remaps keys)
            elif e.type in (X.KeyPress, X.KeyRelease):
                shift = bool(e.state & X.ShiftMask)
                keysym = d.keycode_to_keysym(e.detail, 1 if shift else 0)
                if keysym == 0:
                    keysym = d.keycode_to_keysym(e.detail, 0)
                say(type="key", down=e.type == X.KeyPress, keycode=e.detail, keysym=keysym,
                    name=KEYSYM_NAMES.get(keysym, hex(keysym)), state=e.state)
            elif e.type in (X.ButtonPress, X.ButtonRelease):
                say(type="button", down=e.type == X.ButtonPress, button=e.detail,
                    x=e.event_x, y=e.event_y)
            elif e.type == X.MotionNotify:
                say(type="motion", x=e.event_x, y=e.event_y)
        time.sleep(0.005)


if __name__ == "__main__":
    main()
