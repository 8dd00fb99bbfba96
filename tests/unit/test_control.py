"""The control-channel parser: every malformed message becomes a ProtocolError with a reason."""

import json

import pytest

from hdx.errors import ProtocolError
from hdx.sources.base import KeyEvent, PointerEvent, WheelEvent
from hdx.webrtc.control import Ping, clamp_to_desktop, parse_control, pong

pytestmark = pytest.mark.unit
LIMIT = 4096


def parse(obj: object) -> object:
    return parse_control(json.dumps(obj), LIMIT)


def test_valid_messages() -> None:
    assert parse({"t": "pointer", "a": "move", "x": 10.7, "y": 3}) == PointerEvent("move", 10, 3)
    assert parse({"t": "pointer", "a": "down", "x": 1, "y": 2, "b": 2}) == PointerEvent(
        "down", 1, 2, 2)
    assert parse({"t": "wheel", "x": 5, "y": 6, "dx": 0, "dy": -120}) == WheelEvent(
        5, 6, 0.0, -120.0)
    assert parse({"t": "key", "key": "ß", "code": "Minus", "down": True}) == KeyEvent(
        "ß", "Minus", True)
    assert parse({"t": "ping", "id": 7, "ts": 1.5}) == Ping(7, 1.5)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"t": "teleport"}', "unknown message type"),
        ('{"t": "pointer", "a": "jump", "x": 1, "y": 1}', "move, down or up"),
        ('{"t": "pointer", "a": "move", "x": "1", "y": 1}', "'x' must be a finite number"),
        ('{"t": "pointer", "a": "move", "x": 1}', "missing field 'y'"),
        ('{"t": "pointer", "a": "move", "x": 1e300, "y": 1}', "out of range"),
        ('{"t": "pointer", "a": "down", "x": 1, "y": 1, "b": 9}', "'b' must be an integer"),
        ('{"t": "pointer", "a": "move", "x": true, "y": 1}', "finite number"),
        ('{"t": "wheel", "x": 1, "y": 1, "dx": NaN, "dy": 0}', "finite number"),
        ('{"t": "key", "key": "", "code": "KeyA", "down": true}', "1..32 characters"),
        ('{"t": "key", "key": "a", "code": "KeyA", "down": 1}', "true or false"),
        ('{"t": "ping", "id": -1, "ts": 0}', "'id' must be an integer"),
    ],
)
def test_malformed_messages_say_why(raw: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_control(raw, LIMIT)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="exceeds the 4096-byte limit"):
        parse_control(" " * 5000, LIMIT)


def test_coordinates_are_clamped_to_the_desktop() -> None:
    assert clamp_to_desktop(PointerEvent("move", -5, 5000), 1280, 720) == PointerEvent(
        "move", 0, 719)
    assert clamp_to_desktop(WheelEvent(9999, -1, 1, 2), 100, 50) == WheelEvent(99, 0, 1, 2)
    key = KeyEvent("a", "KeyA", True)
    assert clamp_to_desktop(key, 10, 10) is key


def test_pong_echoes_the_ping() -> None:
    assert json.loads(pong(Ping(3, 12.5), 99.0)) == {
        "t": "pong", "id": 3, "ts": 12.5, "server_ts": 99.0}


def test_random_input_only_ever_parses_or_raises_protocol_error() -> None:
    import random

    rng = random.Random(7)
    values: list[object] = [None, True, 0, -1, 2**60, 1.5, float("1e308"), "", "move", "x" * 40,
                            [], {}, {"a": 1}]
    keys = ["t", "a", "x", "y", "b", "dx", "dy", "key", "code", "down", "id", "ts", "zz"]
    kinds = ["pointer", "wheel", "key", "ping", "hello", 3, None]
    for _ in range(3000):
        obj = {k: rng.choice(values) for k in rng.sample(keys, rng.randrange(len(keys)))}
        if rng.random() < 0.8:
            obj["t"] = rng.choice(kinds)
        raw: str | bytes = json.dumps(obj)
        if rng.random() < 0.2:
            data = bytearray(raw.encode())
            data[rng.randrange(len(data))] = rng.randrange(256)
            raw = bytes(data)
        try:
            parse_control(raw, LIMIT)
        except ProtocolError:
            pass


def test_lossless_messages_parse_and_reject_with_reasons() -> None:
    from hdx.webrtc.control import Caps, Refresh, TileAck, TileNack, frame_sent, verified

    digest = "ab" * 32
    assert parse_control(json.dumps({"t": "ack", "id": 7, "hash": digest}), 4096) == \
        TileAck(7, digest)
    assert parse_control('{"t": "nack", "id": 7, "reason": "stale"}', 4096) == \
        TileNack(7, "stale")
    assert parse_control('{"t": "caps", "formats": ["jxl", "png"]}', 4096) == \
        Caps(("jxl", "png"))
    assert parse_control('{"t": "refresh"}', 4096) == Refresh()
    assert parse_control('{"t": "refresh", "dropped": true}', 4096) == Refresh(dropped=True)
    for raw, reason in [
        ('{"t": "ack", "id": 7, "hash": "AB"}', "64 lowercase hex"),
        (json.dumps({"t": "ack", "id": -1, "hash": digest}), "id"),
        ('{"t": "nack", "id": 1, "reason": "bored"}', "reason"),
        ('{"t": "caps", "formats": "jxl"}', "formats"),
        ('{"t": "refresh", "dropped": 1}', "dropped"),
        ('{"t": "caps", "formats": [1]}', "formats"),
    ]:
        with pytest.raises(ProtocolError, match=reason):
            parse_control(raw, 4096)
    announced = json.loads(frame_sent(5, 1.5, False, 100, "gA==", (1, 1)))
    assert announced | {"dirty": "gA==", "rows": 1, "cols": 1} == announced
    assert json.loads(verified(3, 12)) == {"t": "verified", "id": 3, "tiles": 12}
