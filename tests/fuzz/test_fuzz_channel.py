"""Hostile control messages over a REAL data channel: a real aiortc viewer (hdx.client.viewer)
against the real server sends ~1000 malformed, mistyped, oversized and deeply nested messages,
then floods: the session stays connected, still answers a ping with a pong, counts every
malformed or rate-limited message in ``session_summaries()``, and its memory stays bounded."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdx.client.viewer import Viewer
from hdx.errors import ProtocolError
from hdx.sources.synthetic import SyntheticDesktop
from hdx.webrtc.control import parse_control
from tests.conftest import wait_for
from tests.fuzz.common import ANY_CHAR, Live, dumps, examples, json_values, live_server, nested
from tests.fuzz.test_fuzz_control import mutated_messages, valid_messages

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings(
    # aiortc uses the random module on the loop thread while hypothesis draws on this one
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")]
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_BYTES = 4096
SCTP_MAX = 262144
"""The largest message aiortc (and Chromium) sends on a data channel."""
MEMORY_FILES = ("/hdx/", "/aiortc/", "/aioice/", "/pyee/")
"""Where the server and both peers allocate (hypothesis's own bookkeeping is left out)."""
MEMORY_BOUND = 8 << 20
"""What the session, its channel and both SCTP stacks may still hold after the hostile run,
beyond what they held before it: the run sends more than this (oversized messages alone are
~60 KB each), so a session that kept what it was sent fails."""


def summary(live: Live) -> dict[str, Any]:
    (only,) = live.call(live.server.session_summaries)
    return only


@pytest.fixture
def connected(request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[tuple[Live, Viewer]]:
    rate = getattr(request, "param", 100_000)
    # (At the floor rate, refinement is off: the viewer's own acks would spend tokens too.)
    with live_server(SyntheticDesktop(320, 240, cine_seconds=0), state_dir=str(tmp_path),
                     max_control_messages_per_s=rate, lossless=rate > 10,
                     max_control_message_bytes=MAX_BYTES) as live:
        viewer = Viewer(live.server.url)
        live.run(viewer.connect())
        live.run(viewer.wait_control_open())
        pump = live.call(lambda: asyncio.ensure_future(_pump(viewer)))
        try:
            yield live, viewer
        finally:
            live.call(pump.cancel)
            live.run(viewer.close())


async def _pump(viewer: Viewer) -> None:
    """Decode frames as they come, as a client does (aiortc queues them otherwise)."""
    while True:
        await viewer.next_frame(timeout_s=3600)


def ping_pong(live: Live, viewer: Viewer, ping_id: int) -> None:
    """The session answers a ping with its pong (the same id)."""
    live.call(lambda: viewer.send({"t": "ping", "id": ping_id, "ts": 1.0}))
    live.run(wait_for(lambda: any(m.get("t") == "pong" and m.get("id") == ping_id
                                  for m in viewer.report.messages), timeout_s=20))


HOSTILE = st.one_of(
    mutated_messages(),
    st.binary(max_size=300),
    st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=300),
    st.builds(dumps, json_values(), st.booleans()),
    st.integers(2, 60_000).map(lambda depth: nested(depth // 2)),  # 4 KB deep: the limit
    st.integers(MAX_BYTES + 1, 60_000).map(lambda n: json.dumps({"t": "ping", "pad": "é" * n},
                                                                      ensure_ascii=False)),
)
"""Text must be UTF-8 for aiortc to send it at all; lone surrogates go in JSON escapes."""


def _is_malformed(data: str | bytes) -> bool:
    try:
        parse_control(data, MAX_BYTES)
    except ProtocolError:
        return True
    return False


def test_hostile_messages_are_counted_and_the_session_goes_on(
        connected: tuple[Live, Viewer]) -> None:
    live, viewer = connected
    ping_pong(live, viewer, 1)
    session = next(iter(live.server.sessions.values()))
    hostile = _draw(HOSTILE, examples(400))
    # Valid but hostile: acks and nacks of tiles never sent, caps of unknown formats, floor
    # grants to no one, input at the desktop's edges: handled (or refused), no handler error.
    valid = _draw(valid_messages().map(lambda pair: json.dumps(pair[0])), examples(200))
    sent = {"malformed": 0, "valid": 0}

    def send(batch: list[str | bytes]) -> None:
        for data in batch:
            sent["malformed" if _is_malformed(data) else "valid"] += 1
        live.call(lambda: [viewer.control.send(data) for data in batch])
        live.run(wait_for(lambda: session.stats.malformed_messages >= sent["malformed"],
                          timeout_s=60))

    send(hostile)  # a first round warms up every lazily allocated path
    gc.collect()
    tracemalloc.start(1)
    try:
        before = live.call(_traced)
        started = time.monotonic()
        send(hostile)
        send(valid)
        ping_pong(live, viewer, 2)
        took = time.monotonic() - started
        gc.collect()
        grown = live.call(_traced) - before
    finally:
        tracemalloc.stop()
    stats = summary(live)
    assert stats["state"] == "connected"
    assert stats["malformed_messages"] == sent["malformed"], (stats, sent)
    assert stats["rate_limited"] == 0
    assert session.stats.handler_errors == 0, session.stats
    assert grown < MEMORY_BOUND, f"{grown >> 20} MB still held after the hostile run"
    assert sent["malformed"] > len(hostile), "two rounds, nearly all of them malformed"
    print(f"{sum(sent.values())} messages, {took:.1f} s traced, {grown / 1e6:.2f} MB kept")


def _draw(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples of ``strategy``, made before anything is sent (hypothesis then
    runs with no network on other threads, and the send itself is not traced)."""
    drawn: list[Any] = []

    @settings(max_examples=count)
    @given(strategy)
    def collect(value: Any) -> None:
        if isinstance(value, str) and _SURROGATE.search(value):
            value = value.encode("utf-8", "surrogatepass")  # aiortc sends only UTF-8 as text
        if len(value if isinstance(value, bytes) else value.encode()) <= SCTP_MAX:
            drawn.append(value)  # (larger: no peer can send it, aiortc and Chromium refuse)

    collect()
    return drawn


def _traced() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, f"*{name}*") for name in MEMORY_FILES])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.parametrize("connected", [10], indirect=True)
def test_a_flood_is_rate_limited_and_every_message_counted(
        connected: tuple[Live, Viewer]) -> None:
    """A flood over the real channel: malformed messages are all parsed and counted; of the
    valid ones the bucket passes its burst and its refill and drops (and counts) the rest;
    nothing goes missing. The limit is at its floor (10/s, bursts of 20): aiortc's SCTP
    delivers only a few hundred small messages a second between two aiortc peers on this
    machine, below the default 400/s (a browser can send faster)."""
    live, viewer = connected
    session = next(iter(live.server.sessions.values()))
    junk = ["{", "[]", '{"t": "teleport"}', "x" * (MAX_BYTES + 1), nested(2000)]
    valid = [json.dumps({"t": "ping", "id": 100 + i, "ts": 0}) if i % 2 else
             json.dumps({"t": "pointer", "a": "move", "x": i, "y": -i}) for i in range(300)]
    flood = [m for pair in zip(valid, junk * 60, strict=True) for m in pair]
    stats = session.stats

    def accounted() -> int:
        return (stats.malformed_messages + stats.rate_limited + stats.pings
                + stats.input_events + stats.input_refused)

    started = time.monotonic()
    live.call(lambda: [viewer.control.send(message) for message in flood])
    live.run(wait_for(lambda: accounted() >= len(flood), timeout_s=60))
    elapsed = time.monotonic() - started
    assert accounted() == len(flood), stats
    listed = summary(live)
    assert listed["malformed_messages"] == len(junk) * 60 == stats.malformed_messages
    assert listed["rate_limited"] == stats.rate_limited
    passed = len(valid) - stats.rate_limited
    assert 20 <= passed <= 20 + 10 * (elapsed + 1), (stats, elapsed)
    assert stats.handler_errors == 0
    time.sleep(0.5)  # the bucket refills: a real ping is heard again
    ping_pong(live, viewer, 3)
    assert summary(live)["state"] == "connected"
