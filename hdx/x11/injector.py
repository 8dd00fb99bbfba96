"""Remote mouse and keyboard into the X server through XTEST, with nothing left held down.

Characters are typed by keysym: a keysym the server's keymap lacks ("é" on a US map) gets a
spare keycode mapped to it for the moment. Shift is pressed or released around a character
whose level needs it, so the client's layout, not the server's, decides what is typed.
Everything one viewer holds is tracked, so a disconnect or a lost focus releases it all.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from hdx.errors import SourceError
from hdx.sources.base import InputEvent, KeyEvent, PointerEvent, WheelEvent
from hdx.x11.display import XDisplay
from hdx.x11.keysyms import SHIFT_KEYSYMS, keysym_for

log = logging.getLogger(__name__)
_BUTTONS = {0: 1, 1: 2, 2: 3, 3: 8, 4: 9}
"""Browser button (0 left, 1 middle, 2 right, 3 back, 4 forward) -> X button."""
_WHEEL_STEP = 53.0
"""Browser wheel pixels per X wheel click (Chromium reports ~53 px per notch at 100 %)."""


class NoXTest(SourceError):
    """The X server has no XTEST: remote input is impossible there (not a passing failure)."""


class Injector:
    """Injects input for one X display (own connection; runs on the event loop)."""

    def __init__(self, display_name: str) -> None:
        self.display = XDisplay(display_name)
        d = self.display
        ints = d.ffi.new("int[4]")
        if d.lib.xtst is None or not d.lib.xtst.XTestQueryExtension(d.dpy, ints, ints + 1,
                                                                     ints + 2, ints + 3):
            d.close()
            raise NoXTest(f"X display {display_name!r} has no XTEST extension, so remote "
                              "input cannot be injected")
        lo, hi = d.ffi.new("int *"), d.ffi.new("int *")
        d.lib.x11.XDisplayKeycodes(d.dpy, lo, hi)
        self._min_keycode, self._max_keycode = lo[0], hi[0]
        self._pressed_keys: dict[str, int] = {}
        """Browser ``code`` -> X keycode we pressed for it."""
        self._pressed_buttons: set[int] = set()
        self._remapped: OrderedDict[int, int] = OrderedDict()
        """keysym -> spare keycode we mapped it to (least recently used first)."""
        self._spare: list[int] | None = None
        self._wheel_rest = [0.0, 0.0]
        self.events = 0

    # -- public --------------------------------------------------------------------------------
    def inject(self, event: InputEvent, origin: tuple[int, int] = (0, 0)) -> None:
        """Apply one event; pointer coordinates are relative to ``origin`` on the screen."""
        if isinstance(event, KeyEvent):
            self._key(event)
        elif isinstance(event, PointerEvent):
            self._pointer(event, origin)
        else:
            self._wheel(event, origin)
        self.events += 1
        self.display.flush()

    def release_all(self) -> int:
        """Release every key and button still held; returns how many there were."""
        x = self.display.lib.xtst
        dpy = self.display.dpy
        count = len(self._pressed_keys) + len(self._pressed_buttons)
        for keycode in self._pressed_keys.values():
            x.XTestFakeKeyEvent(dpy, keycode, 0, 0)
        for button in self._pressed_buttons:
            x.XTestFakeButtonEvent(dpy, button, 0, 0)
        self._pressed_keys.clear()
        self._pressed_buttons.clear()
        if count:
            self.display.flush()
            log.info("released %d key(s)/button(s) left held", count)
        return count

    @property
    def held(self) -> int:
        """Keys and buttons currently held down by remote input."""
        return len(self._pressed_keys) + len(self._pressed_buttons)

    def close(self) -> None:
        """Release everything, restore remapped keycodes, close the connection."""
        try:
            self.release_all()
            self._restore_remapped()
        except SourceError:
            pass
        self.display.close()

    # -- pointer -------------------------------------------------------------------------------
    def _move(self, x: int, y: int) -> None:
        d = self.display
        d.lib.xtst.XTestFakeMotionEvent(d.dpy, d.screen, x, y, 0)

    def _pointer(self, event: PointerEvent, origin: tuple[int, int]) -> None:
        self._move(origin[0] + event.x, origin[1] + event.y)
        if event.action == "move":
            return
        button = _BUTTONS.get(event.button)
        if button is None:
            return
        down = event.action == "down"
        if down == (button in self._pressed_buttons):
            return  # a repeated down or an up for a button we never pressed
        d = self.display
        d.lib.xtst.XTestFakeButtonEvent(d.dpy, button, int(down), 0)
        if down:
            self._pressed_buttons.add(button)
        else:
            self._pressed_buttons.discard(button)

    def _wheel(self, event: WheelEvent, origin: tuple[int, int]) -> None:
        self._move(origin[0] + event.x, origin[1] + event.y)
        d = self.display
        # Buttons 4/5 scroll up/down, 6/7 left/right; small deltas add up across events.
        for axis, delta, (neg, pos) in ((1, event.dy, (4, 5)), (0, event.dx, (6, 7))):
            self._wheel_rest[axis] += delta
            clicks = int(self._wheel_rest[axis] / _WHEEL_STEP)
            self._wheel_rest[axis] -= clicks * _WHEEL_STEP
            button = pos if clicks > 0 else neg
            for _ in range(min(abs(clicks), 10)):
                d.lib.xtst.XTestFakeButtonEvent(d.dpy, button, 1, 0)
                d.lib.xtst.XTestFakeButtonEvent(d.dpy, button, 0, 0)

    # -- keyboard ------------------------------------------------------------------------------
    def _key(self, event: KeyEvent) -> None:
        d = self.display
        xtst = d.lib.xtst
        if not event.down:
            keycode = self._pressed_keys.pop(event.code, None)
            if keycode is not None:
                xtst.XTestFakeKeyEvent(d.dpy, keycode, 0, 0)
            return
        if event.code in self._pressed_keys:
            return  # auto-repeat: the X server repeats by itself
        keysym = keysym_for(event.key, event.code)
        if keysym is None:
            return
        keycode, level = self._keycode_for(keysym)
        if keycode == 0:
            log.debug("no keycode for keysym %#x", keysym)
            return
        shift_codes = [kc for code, kc in self._pressed_keys.items()
                       if code.startswith("Shift")]
        want_shift = level == 1
        toggled: list[tuple[int, bool]] = []
        if keysym not in SHIFT_KEYSYMS and level in (0, 1):
            if want_shift and not shift_codes:
                shift = self._keycode_for(0xFFE1)[0]
                if shift:
                    toggled.append((shift, True))
            elif not want_shift and shift_codes and self._needs_shift_off(keysym):
                toggled.extend((kc, False) for kc in shift_codes)
        for kc, press in toggled:
            xtst.XTestFakeKeyEvent(d.dpy, kc, int(press), 0)
        xtst.XTestFakeKeyEvent(d.dpy, keycode, 1, 0)
        if toggled:
            # A character typed with a temporary shift state is released at once: holding it
            # would leave the shift state wrong for the next key.
            xtst.XTestFakeKeyEvent(d.dpy, keycode, 0, 0)
            for kc, press in reversed(toggled):
                xtst.XTestFakeKeyEvent(d.dpy, kc, int(not press), 0)
            return
        self._pressed_keys[event.code] = keycode

    def _needs_shift_off(self, keysym: int) -> bool:
        # Letters are typed with shift held in the browser as upper case already (key "A"),
        # so a level-0 keysym under a held shift is a deliberate shortcut only for
        # non-letters; releasing shift there would break e.g. Shift+Tab or Shift+Arrow.
        return 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF or keysym >= 0x01000000

    def _keycode_for(self, keysym: int) -> tuple[int, int]:
        """``(keycode, level)`` typing ``keysym``; maps a spare keycode if the map lacks it."""
        d = self.display
        keycode = int(d.lib.x11.XKeysymToKeycode(d.dpy, keysym))
        if keycode:
            level = self._level_of(keycode, keysym)
            if level in (0, 1):
                return keycode, level
        if keysym in self._remapped:
            self._remapped.move_to_end(keysym)
            return self._remapped[keysym], 0
        return self._remap(keysym), 0

    def _level_of(self, keycode: int, keysym: int) -> int:
        d = self.display
        per = d.ffi.new("int *")
        syms = d.lib.x11.XGetKeyboardMapping(d.dpy, keycode, 1, per)
        if syms == d.ffi.NULL:
            return -1
        try:
            for level in range(per[0]):
                if int(syms[level]) == keysym:
                    return level
            return -1
        finally:
            d.lib.x11.XFree(syms)

    def _remap(self, keysym: int) -> int:
        if self._spare is None:
            self._spare = self._find_spare_keycodes()
        if not self._spare:
            if not self._remapped:
                return 0
            _, keycode = self._remapped.popitem(last=False)
        else:
            keycode = self._spare.pop()
        d = self.display
        syms = d.ffi.new("KeySym[2]", [keysym, keysym])
        d.lib.x11.XChangeKeyboardMapping(d.dpy, keycode, 2, syms, 1)
        d.lib.x11.XSync(d.dpy, 0)
        self._remapped[keysym] = keycode
        return keycode

    def _find_spare_keycodes(self) -> list[int]:
        d = self.display
        count = self._max_keycode - self._min_keycode + 1
        per = d.ffi.new("int *")
        syms = d.lib.x11.XGetKeyboardMapping(d.dpy, self._min_keycode, count, per)
        if syms == d.ffi.NULL:
            return []
        try:
            spare = [self._min_keycode + i for i in range(count)
                     if all(int(syms[i * per[0] + j]) == 0 for j in range(per[0]))]
        finally:
            d.lib.x11.XFree(syms)
        return spare[-16:]

    def _restore_remapped(self) -> None:
        d = self.display
        for keycode in self._remapped.values():
            syms = d.ffi.new("KeySym[1]", [0])
            d.lib.x11.XChangeKeyboardMapping(d.dpy, keycode, 1, syms, 1)
        if self._remapped:
            d.flush()
        self._remapped.clear()
