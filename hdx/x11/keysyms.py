"""Browser key names to X keysyms: the character the user typed, not the key's position.

The browser's ``key`` is what the user's own layout produced ("ä", "@", "Enter"); sending
that keysym (not the US-layout meaning of ``code``) is what makes a German or French keyboard
type the right characters on the hospital's desktop. ``code`` only tells left from right for
modifiers and keypad keys.
"""

from __future__ import annotations

# Named keys (https://www.w3.org/TR/uievents-key/) -> X keysym values (X11/keysymdef.h).
_NAMED: dict[str, int] = {
    "Backspace": 0xFF08, "Tab": 0xFF09, "Enter": 0xFF0D, "Pause": 0xFF13,
    "ScrollLock": 0xFF14, "Escape": 0xFF1B, "Delete": 0xFFFF, "Home": 0xFF50,
    "ArrowLeft": 0xFF51, "ArrowUp": 0xFF52, "ArrowRight": 0xFF53, "ArrowDown": 0xFF54,
    "PageUp": 0xFF55, "PageDown": 0xFF56, "End": 0xFF57, "PrintScreen": 0xFF61,
    "Insert": 0xFF63, "ContextMenu": 0xFF67, "Help": 0xFF6A, "NumLock": 0xFF7F,
    "CapsLock": 0xFFE5, "AltGraph": 0xFE03, "Clear": 0xFF0B,
    "AudioVolumeMute": 0x1008FF12, "AudioVolumeDown": 0x1008FF11,
    "AudioVolumeUp": 0x1008FF13,
}
_MODIFIERS: dict[str, int] = {
    "ShiftLeft": 0xFFE1, "ShiftRight": 0xFFE2, "ControlLeft": 0xFFE3, "ControlRight": 0xFFE4,
    "AltLeft": 0xFFE9, "AltRight": 0xFFEA, "MetaLeft": 0xFFEB, "MetaRight": 0xFFEC,
    "OSLeft": 0xFFEB, "OSRight": 0xFFEC,
}
_MODIFIER_KEYS = {"Shift": 0xFFE1, "Control": 0xFFE3, "Alt": 0xFFE9, "Meta": 0xFFEB}
_KEYPAD: dict[str, int] = {
    "NumpadEnter": 0xFF8D, "NumpadMultiply": 0xFFAA, "NumpadAdd": 0xFFAB,
    "NumpadSubtract": 0xFFAD, "NumpadDecimal": 0xFFAE, "NumpadDivide": 0xFFAF,
    **{f"Numpad{d}": 0xFFB0 + d for d in range(10)},
}
SHIFT_KEYSYMS = frozenset({0xFFE1, 0xFFE2})


def keysym_for(key: str, code: str) -> int | None:
    """The keysym to send for a browser key event, or ``None`` for keys hdx ignores
    ("Dead": the composed character arrives with the next key; "Unidentified")."""
    if code in _MODIFIERS and key in (*_MODIFIER_KEYS, "OS", code):
        return _MODIFIERS[code]
    if key in _MODIFIER_KEYS:
        return _MODIFIER_KEYS[key]
    if code in _KEYPAD and len(key) == 1 and not _ascii_digits(key) and key != ".":
        return _KEYPAD[code]
    if code.startswith("Numpad") and _ascii_digits(key) and len(key) == 1:
        return 0xFFB0 + int(key)
    if key in _NAMED:
        return _NAMED[key]
    if len(key) >= 2 and key[0] == "F" and _ascii_digits(key[1:]) and 1 <= int(key[1:]) <= 35:
        return 0xFFBE + int(key[1:]) - 1
    if len(key) == 1:
        return char_keysym(key)
    return None


def char_keysym(char: str) -> int:
    """The keysym of one character: Latin-1 keysyms equal the code point; the rest use the
    Unicode keysym range (0x01000000 + code point)."""
    cp = ord(char)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 + cp


def _ascii_digits(text: str) -> bool:
    # str.isdigit() is true for "²" too, which int() refuses.
    return text.isascii() and text.isdigit()
