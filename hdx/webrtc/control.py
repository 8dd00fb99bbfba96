"""The ``control`` data channel: the one parser of what clients send, and the server's replies.

Messages are small JSON objects with a type field ``t`` (version 1; see docs/protocol.md).
Client to server: ``pointer``, ``wheel``, ``key`` (optionally numbered with ``i``), ``ping``,
``floor`` (ask for, hand over or release control), ``stats`` (the client's experience report),
and for lossless refinement ``caps``, ``ack``, ``nack``, ``refresh``. Server to client:
``hello``, ``pong``, ``origin``, ``frame``, ``verified``, ``bye``, ``cursor``, ``fidelity``,
``floor``, ``experience``. Anything malformed raises
:class:`~hdx.errors.ProtocolError` with the reason; the session counts it and goes on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from hdx.errors import ProtocolError
from hdx.sources.base import InputEvent, KeyEvent, PointerEvent, WheelEvent

PROTOCOL_VERSION = 1
MAX_INPUT_SERIAL = 2**31 - 1
_MAX_SAMPLES = {"g2g": 64, "i2p": 16, "ttl": 16}
_MAX_LATENCY_MS = 600_000.0
_MAX_COUNT = 1_000_000
_MAX_KEY_CHARS = 32
_MAX_COORD = 1 << 20


@dataclass(frozen=True, slots=True)
class Ping:
    """A clock probe: the server echoes ``id`` and ``ts`` and adds its own time."""

    id: int
    ts: float


@dataclass(frozen=True, slots=True)
class Caps:
    """What the client decodes: tile format names (see :mod:`hdx.lossless.codec`)."""

    formats: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TileAck:
    """The client drew tile ``id``; ``digest`` is the SHA-256 (hex) of what it drew."""

    id: int
    digest: str


@dataclass(frozen=True, slots=True)
class TileNack:
    """The client did not draw tile ``id`` (``stale``: changed meanwhile; ``decode``: broken)."""

    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Refresh:
    """The client lost track of the video (a frame it cannot identify, or announced frames
    that never arrived): send the picture again as an IDR. ``dropped``: the client also threw
    away its exact tiles (unidentified video may have changed anything), so every tile must be
    refined again, including those the server had verified."""

    dropped: bool = False


@dataclass(frozen=True, slots=True)
class FloorAction:
    """About the input floor: ``request`` it, ``grant`` it to session ``to``, ``release`` it."""

    action: str
    to: str | None = None


@dataclass(frozen=True, slots=True)
class TaggedInput:
    """An input event the client numbered (``i``): the server names the first frame showing
    its effect, so the client can time input-to-photon."""

    event: InputEvent
    serial: int


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What the client experienced over the last ``period_ms`` (see docs/telemetry.md)."""

    period_ms: float
    g2g_ms: tuple[float, ...] = ()
    """Glass-to-glass latency of frames presented in the period."""
    i2p_ms: tuple[float, ...] = ()
    """Input-to-photon latency of numbered inputs whose frame was presented."""
    ttl_ms: tuple[float, ...] = ()
    """Time-to-lossless of static events the client saw complete."""
    presented: int = 0
    decoded: int = 0
    dropped: int = 0
    """Frames the browser's decoder dropped."""
    received: int = 0
    """RTP packets received."""
    lost: int = 0
    decode_ms: float | None = None
    """Mean decode time per frame."""
    jitter_ms: float | None = None
    jitter_buffer_ms: float | None = None
    lossy_share: float | None = None
    """Share of the period during which some visible tile was not verified exact."""
    decoder: str | None = None
    screen: tuple[int, int] | None = None
    device_pixel_ratio: float | None = None
    hidden: bool = False


ControlMessage = (InputEvent | TaggedInput | Ping | Caps | TileAck | TileNack | Refresh
                  | FloorAction | ClientStats)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SESSION_ID = re.compile(r"[0-9a-f]{16}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NACK_REASONS = ("stale", "decode", "size")
_FLOOR_ACTIONS = ("request", "grant", "release")


def parse_control(data: str | bytes, max_bytes: int) -> ControlMessage:
    """Parse one message; raises ProtocolError saying what was wrong."""
    size = len(data) if isinstance(data, bytes) else _utf8_size(data, max_bytes)
    if size > max_bytes:
        raise ProtocolError(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:  # "[[[[..." nests deeper than the parser's stack
        raise ProtocolError("not JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a control message must be a JSON object")
    kind = obj.get("t")
    if kind in ("pointer", "wheel", "key"):
        event = _parse_input(kind, obj)
        if "i" not in obj:
            return event
        return TaggedInput(event, _int(obj, "i", 1, MAX_INPUT_SERIAL))
    if kind == "stats":
        return _parse_stats(obj)
    if kind == "ping":
        return Ping(_int(obj, "id", 0, 2**53), _num(obj, "ts"))
    if kind == "ack":
        digest = _field(obj, "hash")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ProtocolError("ack 'hash' must be 64 lowercase hex digits (SHA-256)")
        return TileAck(_int(obj, "id", 0, 2**32 - 1), digest)
    if kind == "nack":
        reason = obj.get("reason")
        if reason not in _NACK_REASONS:
            raise ProtocolError(f"nack 'reason' must be one of {', '.join(_NACK_REASONS)}")
        return TileNack(_int(obj, "id", 0, 2**32 - 1), reason)
    if kind == "refresh":
        dropped = obj.get("dropped", False)
        if not isinstance(dropped, bool):
            raise ProtocolError("refresh 'dropped' must be true or false")
        return Refresh(dropped)
    if kind == "floor":
        action = obj.get("a")
        if action not in _FLOOR_ACTIONS:
            raise ProtocolError(f"floor 'a' must be one of {', '.join(_FLOOR_ACTIONS)}")
        to = obj.get("to") if action == "grant" else None
        if action == "grant" and not (isinstance(to, str) and _SESSION_ID.fullmatch(to)):
            raise ProtocolError("floor grant 'to' must be a session id (16 hex digits)")
        return FloorAction(action, to)
    if kind == "caps":
        formats = _field(obj, "formats")
        if (not isinstance(formats, list) or len(formats) > 16
                or not all(isinstance(f, str) and 0 < len(f) <= 16 for f in formats)):
            raise ProtocolError("caps 'formats' must be a list of up to 16 short names")
        return Caps(tuple(formats))
    if not isinstance(kind, str):
        raise ProtocolError("a control message needs a type 't' (a string)")
    raise ProtocolError(f"unknown message type {kind[:32]!r}")


def _parse_input(kind: str, obj: dict[str, Any]) -> InputEvent:
    if kind == "pointer":
        action = obj.get("a")
        if action not in ("move", "down", "up"):
            raise ProtocolError("pointer 'a' must be move, down or up")
        button = _int(obj, "b", 0, 4) if "b" in obj else 0
        return PointerEvent(action, _coord(obj, "x"), _coord(obj, "y"), button)
    if kind == "wheel":
        return WheelEvent(_coord(obj, "x"), _coord(obj, "y"), _num(obj, "dx"), _num(obj, "dy"))
    if kind == "key":
        down = obj.get("down")
        if not isinstance(down, bool):
            raise ProtocolError("key 'down' must be true or false")
        return KeyEvent(_text(obj, "key"), _text(obj, "code"), down)
    raise ProtocolError(f"unknown input type {kind!r}")  # callers pass input kinds only


def _parse_stats(obj: dict[str, Any]) -> ClientStats:
    """A client report: every field bounded, so a hostile page cannot skew metrics beyond
    its own session's plausible range or make the server keep more than a few samples."""
    period = _num(obj, "period_ms")
    if not 0 < period <= 3_600_000:
        raise ProtocolError("stats 'period_ms' must be in (0, 3600000]")
    screen = None
    if obj.get("sw") is not None or obj.get("sh") is not None:
        screen = (_int(obj, "sw", 0, 1 << 16), _int(obj, "sh", 0, 1 << 16))
    dpr = _optional_num(obj, "dpr", 16.0)
    hidden = obj.get("hidden", False)
    if not isinstance(hidden, bool):
        raise ProtocolError("stats 'hidden' must be true or false")
    decoder = obj.get("decoder")
    if decoder is not None and (not isinstance(decoder, str) or len(decoder) > 64
                                or _SURROGATE.search(decoder)):
        raise ProtocolError("stats 'decoder' must be null or a string of up to 64 characters")
    lossy = _optional_num(obj, "lossy", 1.0)
    return ClientStats(
        period_ms=period,
        g2g_ms=_samples(obj, "g2g"), i2p_ms=_samples(obj, "i2p"), ttl_ms=_samples(obj, "ttl"),
        presented=_count(obj, "presented"), decoded=_count(obj, "decoded"),
        dropped=_count(obj, "dropped"), received=_count(obj, "received"),
        lost=_count(obj, "lost"),
        decode_ms=_optional_num(obj, "decode_ms", _MAX_LATENCY_MS),
        jitter_ms=_optional_num(obj, "jitter_ms", _MAX_LATENCY_MS),
        jitter_buffer_ms=_optional_num(obj, "jb_ms", _MAX_LATENCY_MS),
        lossy_share=lossy, decoder=decoder or None, screen=screen, device_pixel_ratio=dpr,
        hidden=hidden)


def _samples(obj: dict[str, Any], name: str) -> tuple[float, ...]:
    values = obj.get(name, [])
    limit = _MAX_SAMPLES[name]
    if not isinstance(values, list) or len(values) > limit:
        raise ProtocolError(f"stats {name!r} must be a list of at most {limit} numbers")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= _MAX_LATENCY_MS:  # NaN fails the comparison too
            raise ProtocolError(f"stats {name!r} holds a value that is not 0..600000 ms")
        out.append(float(value))
    return tuple(out)


def _count(obj: dict[str, Any], name: str) -> int:
    return _int(obj, name, 0, _MAX_COUNT) if name in obj else 0


def _optional_num(obj: dict[str, Any], name: str, high: float) -> float | None:
    if obj.get(name) is None:
        return None
    value = _num(obj, name)
    if not 0 <= value <= high:
        raise ProtocolError(f"stats {name!r} must be null or in 0..{high:g}")
    return value


def _utf8_size(text: str, limit: int) -> int:
    # Limits are in bytes, as the wire counts them; a string over the limit in characters is
    # over it in bytes too, so huge strings are not encoded just to be refused.
    return len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise ProtocolError(f"missing field {name!r}")
    return obj[name]


def _num(obj: dict[str, Any], name: str) -> float:
    value = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"field {name!r} must be a finite number")
    try:  # an integer like 10**400 is valid JSON but no float
        number = float(value)
    except OverflowError:
        raise ProtocolError(f"field {name!r} is out of range") from None
    if not math.isfinite(number):
        raise ProtocolError(f"field {name!r} must be a finite number")
    return number


def _int(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"field {name!r} must be an integer in {low}..{high}")
    return value


def _coord(obj: dict[str, Any], name: str) -> int:
    value = _num(obj, name)
    if abs(value) > _MAX_COORD:
        raise ProtocolError(f"field {name!r} is out of range")
    return math.floor(value)


def _text(obj: dict[str, Any], name: str) -> str:
    value = _field(obj, name)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_KEY_CHARS:
        raise ProtocolError(f"field {name!r} must be a string of 1..{_MAX_KEY_CHARS} characters")
    if _SURROGATE.search(value):  # JSON's "\ud800" escape makes text no keyboard produces
        raise ProtocolError(f"field {name!r} holds a lone surrogate, which is not text")
    return value


def clamp_to_desktop(event: InputEvent, width: int, height: int) -> InputEvent:
    """Keep pointer coordinates on the desktop (a client can send anything)."""
    if isinstance(event, PointerEvent):
        return PointerEvent(event.action, _clamp(event.x, width), _clamp(event.y, height),
                            event.button)
    if isinstance(event, WheelEvent):
        return WheelEvent(_clamp(event.x, width), _clamp(event.y, height), event.dx, event.dy)
    return event


def _clamp(value: int, size: int) -> int:
    return min(max(value, 0), size - 1)


def hello(session_id: str, encoder: str, width: int, height: int, *, lossless: bool = False,
          bits: int = 8, tile: int = 64, user: str = "local", role: str = "control",
          watermark: bool = False, single_controller: bool = True) -> str:
    """The first server message on ``control``: ``bits`` is the depth of the exact samples
    (16 for a 16-bit grey source), ``tile`` the refinement grid; ``user`` and ``role`` are
    what the join token says (``view`` sessions never drive), ``watermark`` asks the client to
    draw user and time over the screen."""
    return json.dumps({"t": "hello", "v": PROTOCOL_VERSION, "session": session_id,
                       "encoder": encoder, "width": width, "height": height,
                       "lossless": lossless, "bits": bits, "tile": tile, "user": user,
                       "role": role, "watermark": watermark,
                       "single_controller": single_controller})


def floor(holder: str | None, you: bool, requests: list[dict[str, str]],
          asked: bool = False) -> str:
    """Who drives now: ``holder`` (a user name; null when free), ``you`` (this viewer's person
    holds it), ``asked`` (this viewer's request waits), and, for the holder, who asked
    (``[{"session", "user"}]``)."""
    return json.dumps({"t": "floor", "holder": holder, "you": you, "asked": asked,
                       "requests": requests})


def refused(what: str, reason: str) -> str:
    """Something the client sent was refused (``what``: ``input`` or ``floor``), and why; sent
    once per kind, so a page can explain instead of silently ignoring the user."""
    return json.dumps({"t": "refused", "what": what, "reason": reason})


def origin(rtp_origin: int) -> str:
    """The stream's RTP timestamp origin: a decoded frame with RTP time ``r`` is the frame
    announced with ``pts = (r - origin) mod 2**32``."""
    return json.dumps({"t": "origin", "origin": rtp_origin})


def frame_sent(pts: int, captured_at: float, keyframe: bool, size: int,
               dirty: str | None = None, grid: tuple[int, int] | None = None,
               input_serial: int | None = None) -> str:
    """Announce a frame before its packets leave: the client pairs it with the decoded frame
    whose RTP timestamp is ``origin + pts``, to measure latency and, with ``dirty`` (the
    changed tiles, see :func:`hdx.lossless.protocol.pack_dirty`, over ``grid`` = (rows, cols)),
    to drop lossless tiles the moment the video showing their change is drawn. ``input``: this
    is the first frame showing the effect of the client's numbered input ``input_serial``."""
    message: dict[str, Any] = {"t": "frame", "pts": pts, "ts": round(captured_at, 6),
                               "key": keyframe, "bytes": size}
    if dirty is not None and grid is not None:
        message.update(dirty=dirty, rows=grid[0], cols=grid[1])
    if input_serial is not None:
        message["input"] = input_serial
    return json.dumps(message)


def verified(tile_id: int, tiles: int) -> str:
    """The server checked the client's hash of tile ``tile_id``: ``tiles`` of its tiles are
    now verified exact (0 when the hash did not match or the content changed meanwhile)."""
    return json.dumps({"t": "verified", "id": tile_id, "tiles": tiles})


def pong(ping: Ping, server_ts: float) -> str:
    """The reply to a ping, with the server's wall-clock time for clock-offset estimates."""
    return json.dumps({"t": "pong", "id": ping.id, "ts": ping.ts, "server_ts": server_ts})


def bye(reason: str) -> str:
    """The server is going away (ops are stopping it): the client shows ``reason`` and stops
    reconnecting on its own, rather than hammering a server that refuses offers meanwhile."""
    return json.dumps({"t": "bye", "reason": reason})


def cursor(png_base64: str, xhot: int, yhot: int, visible: bool, serial: int) -> str:
    """The desktop pointer's shape (PNG with alpha), which the client uses as its own cursor
    over the screen; sent when the shape changes (hidden: ``visible`` false, no image)."""
    return json.dumps({"t": "cursor", "png": png_base64 if visible else "", "hx": xhot,
                       "hy": yhot, "visible": visible, "serial": serial})


def fidelity(reason: str | None) -> str:
    """Whether exact tiles are the exact desktop: ``reason`` says why not (10-bit detail on a
    depth-30 screen, carried as 8 bits); the client must not claim LOSSLESS meanwhile."""
    return json.dumps({"t": "fidelity", "exact": reason is None, "reason": reason})


def experience(summary: dict[str, Any]) -> str:
    """The server's verdict on this session (score, grade, likely cause and the numbers behind
    them), for the client's overlay; see :mod:`hdx.telemetry.experience`."""
    return json.dumps({"t": "experience", **summary})
