"""parse_control, the one parser of every control-channel message: anything at all gives a
message or a ProtocolError (nothing else escapes), valid messages of every type round-trip to
the right dataclass, and the size limit is counted in UTF-8 bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hdx.errors import ProtocolError
from hdx.sources.base import KeyEvent, PointerEvent, WheelEvent
from hdx.webrtc.control import (
    MAX_INPUT_SERIAL,
    Caps,
    ClientStats,
    ControlMessage,
    FloorAction,
    Ping,
    Refresh,
    TaggedInput,
    TileAck,
    TileNack,
    parse_control,
)
from tests.fuzz.common import ANY_CHAR, NUMBERS, dumps, examples, json_values, nested

pytestmark = pytest.mark.fuzz
LIMIT = 4096
LIMITS = st.sampled_from([256, 4096, 65536, 1 << 20])
"""The server's ``max_control_message_bytes`` (>= 256); a large one lets deep nesting through
to the JSON parser itself."""


def parse_or_refuse(data: str | bytes, limit: int = LIMIT) -> ControlMessage | None:
    """The parser's verdict; anything but a message or a ProtocolError fails the test."""
    try:
        return parse_control(data, limit)
    except ProtocolError as exc:
        assert str(exc), "a refusal says why"
        return None


# -- valid messages and what they must parse to ----------------------------------------------------
COORD = st.one_of(st.integers(-(1 << 20), 1 << 20),
                  st.floats(-(1 << 20), 1 << 20, allow_nan=False))
FINITE = st.one_of(st.integers(-2**53, 2**53), st.floats(allow_nan=False, allow_infinity=False))
KEY_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=32)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
SESSION = st.text("0123456789abcdef", min_size=16, max_size=16)
EXTRAS = st.dictionaries(st.sampled_from(["zz", "v", "extra", "_"]), json_values(4), max_size=2)
BUTTON = st.none() | st.integers(0, 4)
FORMATS = st.lists(st.text(min_size=1, max_size=16), max_size=16)


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[dict[str, Any], ControlMessage]:
    """A valid message of any type, and the dataclass it must parse to."""
    kind = draw(st.sampled_from(["pointer", "wheel", "key", "ping", "caps", "ack", "nack",
                                 "refresh", "floor", "stats"]))
    obj: dict[str, Any] = {"t": kind}
    expected: ControlMessage
    if kind == "pointer":
        obj |= {"a": draw(st.sampled_from(["move", "down", "up"])), "x": draw(COORD),
                "y": draw(COORD)}
        button = draw(BUTTON)
        if button is not None:
            obj["b"] = button
        expected = PointerEvent(obj["a"], math.floor(obj["x"]), math.floor(obj["y"]),
                                button or 0)
    elif kind == "wheel":
        obj |= {"x": draw(COORD), "y": draw(COORD), "dx": draw(FINITE), "dy": draw(FINITE)}
        expected = WheelEvent(math.floor(obj["x"]), math.floor(obj["y"]), float(obj["dx"]),
                              float(obj["dy"]))
    elif kind == "key":
        obj |= {"key": draw(KEY_TEXT), "code": draw(KEY_TEXT), "down": draw(st.booleans())}
        expected = KeyEvent(obj["key"], obj["code"], obj["down"])
    elif kind == "ping":
        obj |= {"id": draw(st.integers(0, 2**53)), "ts": draw(FINITE)}
        expected = Ping(obj["id"], float(obj["ts"]))
    elif kind == "caps":
        obj["formats"] = draw(FORMATS)
        expected = Caps(tuple(obj["formats"]))
    elif kind == "ack":
        obj |= {"id": draw(st.integers(0, 2**32 - 1)), "hash": draw(HEX64)}
        expected = TileAck(obj["id"], obj["hash"])
    elif kind == "nack":
        obj |= {"id": draw(st.integers(0, 2**32 - 1)),
                "reason": draw(st.sampled_from(["stale", "decode", "size"]))}
        expected = TileNack(obj["id"], obj["reason"])
    elif kind == "refresh":
        expected = Refresh()
    elif kind == "stats":
        obj, expected = draw(stats_reports())
    else:
        action = draw(st.sampled_from(["request", "grant", "release"]))
        obj["a"] = action
        if action == "grant":
            obj["to"] = draw(SESSION)
        elif draw(st.booleans()):
            obj["to"] = draw(json_values(4))  # ignored unless granting
        expected = FloorAction(action, obj.get("to") if action == "grant" else None)
    if kind in ("pointer", "wheel", "key") and draw(st.booleans()):
        obj["i"] = draw(st.integers(1, MAX_INPUT_SERIAL))  # numbered for input-to-photon
        expected = TaggedInput(expected, obj["i"])  # type: ignore[arg-type]
    for name, value in draw(EXTRAS).items():
        obj[name] = value  # unknown fields are ignored
    return obj, expected


MS = st.one_of(st.integers(0, 600_000), st.floats(0, 600_000))


@st.composite
def stats_reports(draw: st.DrawFn) -> tuple[dict[str, Any], ClientStats]:
    """A valid client experience report and what it parses to."""
    counts = {name: draw(st.integers(0, 1_000_000))
              for name in ("presented", "decoded", "dropped", "received", "lost")}
    samples = {name: draw(st.lists(MS, max_size=size))
               for name, size in (("g2g", 64), ("i2p", 16), ("ttl", 16))}
    optional = {name: draw(st.none() | MS) for name in ("decode_ms", "jitter_ms", "jb_ms")}
    obj: dict[str, Any] = {"t": "stats", "period_ms": draw(st.integers(1, 3_600_000)),
                           **counts, **samples, **optional,
                           "lossy": draw(st.none() | st.floats(0, 1)),
                           "decoder": draw(st.none() | st.text(max_size=64).filter(
                               lambda t: not _has_surrogate(t))),
                           "sw": draw(st.integers(0, 1 << 16)),
                           "sh": draw(st.integers(0, 1 << 16)),
                           "dpr": draw(st.none() | st.floats(0, 16)),
                           "hidden": draw(st.booleans())}
    expected = ClientStats(
        period_ms=float(obj["period_ms"]),
        **{f"{name}_ms": tuple(float(v) for v in values) for name, values in samples.items()},
        **counts,
        decode_ms=_float(obj["decode_ms"]), jitter_ms=_float(obj["jitter_ms"]),
        jitter_buffer_ms=_float(obj["jb_ms"]), lossy_share=_float(obj["lossy"]),
        decoder=obj["decoder"] or None, screen=(obj["sw"], obj["sh"]),
        device_pixel_ratio=_float(obj["dpr"]), hidden=obj["hidden"])
    return obj, expected


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


@settings(max_examples=examples(150))
@given(valid_messages(), st.booleans(), st.booleans())
def test_valid_messages_round_trip(message: tuple[dict[str, Any], ControlMessage],
                                   ascii_only: bool, as_bytes: bool) -> None:
    obj, expected = message
    text = dumps(obj, ascii_only)
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    if len(data if isinstance(data, bytes) else text.encode("utf-8", "surrogatepass")) > LIMIT:
        return  # the extras made it oversized; the size property covers that
    got = parse_or_refuse(data)
    if got is None and as_bytes and not ascii_only and _has_surrogate(text):
        return  # a lone surrogate is not UTF-8 on the wire: refused, rightly
    assert got == expected, (obj, got)
    assert type(got) is type(expected)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# -- structure-aware mutations of valid messages ---------------------------------------------------
FIELDS = ["t", "a", "x", "y", "b", "dx", "dy", "key", "code", "down", "id", "ts", "hash",
          "reason", "formats", "to", "i", "period_ms", "g2g", "i2p", "ttl", "presented",
          "lost", "decode_ms", "lossy", "decoder", "sw", "dpr", "hidden"]
EDGE_VALUES = st.one_of(
    json_values(6), NUMBERS,
    st.sampled_from([1 << 20, (1 << 20) + 1, -(1 << 20) - 1, 2**53 + 1, 2**32, -1, 5, True,
                     False, "", "move", "grant", "stale", "x" * 33, "0" * 64, "A" * 64,
                     "0" * 16, "0" * 15, ["png"] * 17, ["x" * 17], [""], "\ud800", "\udfff"]),
    st.lists(st.text(ANY_CHAR, max_size=20), max_size=20),
    st.integers(0, 6000).map(lambda n: [[]] * n))

TYPES = st.sampled_from(["pointer", "wheel", "key", "ping", "caps", "ack", "nack", "refresh",
                         "floor", "stats", "hello", "pong", "", "POINTER"]) | EDGE_VALUES
NAMES = st.text(ANY_CHAR, max_size=4)


@st.composite
def mutated_messages(draw: st.DrawFn) -> str | bytes:
    obj, _ = draw(valid_messages())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "set", "add", "retype"]))
        if op == "drop" and obj:
            obj.pop(draw(st.sampled_from(sorted(obj))))
        elif op in ("set", "add"):
            name = draw(st.sampled_from(FIELDS) if op == "set" else NAMES)
            obj[name] = draw(EDGE_VALUES)
        else:
            obj["t"] = draw(TYPES)
    shape = draw(st.sampled_from(["object", "in a list", "duplicate t", "raw mangle"]))
    text = dumps(obj, draw(st.booleans()))
    if shape == "in a list":
        text = f"[{text}]"
    elif shape == "duplicate t":
        text = text[:-1] + (', ' if len(obj) else '') + '"t": ' + dumps(draw(EDGE_VALUES), True) \
            + "}"
    elif shape == "raw mangle":
        raw = bytearray(text.encode("utf-8", "surrogatepass"))
        for _ in range(draw(st.integers(1, 3))):
            if raw:
                at = draw(st.integers(0, len(raw) - 1))
                raw[at:at + draw(st.integers(0, 3))] = draw(st.binary(max_size=3))
        return bytes(raw) if draw(st.booleans()) else raw.decode("utf-8", "replace")
    return text


@settings(max_examples=examples(300))
@given(mutated_messages(), LIMITS)
@example('{"t": "key", "key": "\\ud800", "code": "KeyA", "down": true}', 4096)
@example('{"t": ' + nested(990) + "}", 1 << 20)
def test_mutated_messages_parse_or_are_refused(data: str | bytes, limit: int) -> None:
    message = parse_or_refuse(data, limit)
    if isinstance(message, KeyEvent):  # keys are real text: they reach logs and X keysyms
        assert not _has_surrogate(message.key) and not _has_surrogate(message.code), message
    if isinstance(message, (PointerEvent, WheelEvent)):
        assert abs(message.x) <= 1 << 20 and abs(message.y) <= 1 << 20
        assert isinstance(message.x, int) and isinstance(message.y, int)
    if isinstance(message, WheelEvent):
        assert math.isfinite(message.dx) and math.isfinite(message.dy)
    if isinstance(message, ClientStats):  # reports feed metrics: bounded, finite, sane
        assert len(message.g2g_ms) <= 64 and len(message.i2p_ms) <= 16
        values = [*message.g2g_ms, *message.i2p_ms, *message.ttl_ms, message.period_ms]
        assert all(math.isfinite(v) and v >= 0 for v in values), message
        assert message.lossy_share is None or 0 <= message.lossy_share <= 1


# -- anything at all -------------------------------------------------------------------------------
@settings(max_examples=examples(200))
@given(st.one_of(
    st.binary(max_size=600),
    st.text(ANY_CHAR, max_size=600),
    st.builds(dumps, json_values(), st.booleans()),
    st.builds(lambda v: json.dumps({"t": v}), json_values()),
    st.tuples(st.integers(1, 200_000), st.sampled_from(["[", "{"])).map(lambda a: nested(*a)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '{"t": NaN}', "1" * 5000, "1e999999",
                     '{"t": "ping", "id": 1, "ts": 1e400}', '{"t": "ping", "id": 1' + "0" * 400
                     + ', "ts": 0}', "\ufeff{}", '"\\ud800"', "{" * 4000]),
), LIMITS)
@example(b"\xff\xfe{\x00}\x00", 4096)  # a UTF-16 byte-order mark
@example(b'{"t": "ping", "id": 1, "ts": 0}\x80', 4096)
def test_anything_parses_or_is_refused(data: str | bytes, limit: int) -> None:
    parse_or_refuse(data, limit)


# -- the size limit --------------------------------------------------------------------------------
PAD_CHARS = st.sampled_from(["a", "é", "€", "😀", "\ud800"])
"""1, 2, 3 and 4 UTF-8 bytes (a lone surrogate counts 3, as surrogatepass writes it)."""


@settings(max_examples=examples(200))
@given(PAD_CHARS, st.integers(0, 3000), st.integers(256, 5000), st.booleans())
def test_the_limit_counts_utf8_bytes(pad: str, repeat: int, limit: int, as_bytes: bool) -> None:
    text = json.dumps({"t": "ping", "id": 1, "ts": 0, "zz": pad * repeat}, ensure_ascii=False)
    size = len(text.encode("utf-8", "surrogatepass"))
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    if size > limit:
        with pytest.raises(ProtocolError, match=f"exceeds the {limit}-byte limit"):
            parse_control(data, limit)
    else:  # (json.loads reads bytes with surrogatepass: an encoded lone surrogate passes)
        assert parse_control(data, limit) == Ping(1, 0.0)
