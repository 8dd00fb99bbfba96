"""What the fuzzers share: example budgets, a real server on its own loop thread, a raw HTTP
client that sees every byte (and every dropped connection), and hostile-JSON strategies."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st

from hdx.server.server import HdxServer
from hdx.sources.base import FrameSource
from tests.conftest import running_server

T = TypeVar("T")


def examples(ci: int) -> int:
    """``ci`` examples in CI; ``HDXTEST_FUZZ_EXAMPLES`` overrides it for long local runs."""
    value = os.environ.get("HDXTEST_FUZZ_EXAMPLES")
    return max(1, int(value)) if value else ci


# -- a real server (and its clients) on a loop thread ----------------------------------------------
class LoopThread:
    """An event loop on a background thread, so plain (synchronous) hypothesis tests can drive
    long-lived asyncio objects (a server, a viewer) example by example without restarting them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hdx-fuzz-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout_s: float = 30.0) -> T:
        """Await ``coro`` on the loop and return its result."""
        async def wrapped() -> T:
            return await coro
        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout_s)

    def call(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Run ``fn`` on the loop (nothing there is thread-safe) and return its result."""
        async def wrapped() -> T:
            return fn()
        return self.run(wrapped(), timeout_s)

    def close(self) -> None:
        """Cancel what is still running (aiortc leaves connect tasks of peers that never
        connected), then stop and close the loop."""
        async def cancel_the_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_the_rest(), timeout_s=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def loop_thread() -> Iterator[LoopThread]:
    """A :class:`LoopThread` for the block."""
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@dataclass(frozen=True, slots=True)
class Live:
    """A real server and the loop it runs on."""

    thread: LoopThread
    server: HdxServer

    @property
    def port(self) -> int:
        return self.server.port

    def run(self, coro: Awaitable[T], timeout_s: float = 30.0) -> T:
        return self.thread.run(coro, timeout_s)

    def call(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        return self.thread.call(fn, timeout_s)


@contextlib.contextmanager
def live_server(source: FrameSource, **settings: Any) -> Iterator[Live]:
    """``running_server(source, **settings)`` (tests/conftest.py) kept open on a loop thread
    until the block ends."""
    with loop_thread() as thread:
        started: Future[HdxServer] = Future()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with running_server(source, **settings) as server:
                    started.set_result(server)
                    await stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        served = asyncio.run_coroutine_threadsafe(serve(), thread.loop)
        try:
            yield Live(thread, started.result(30))
        finally:
            thread.loop.call_soon_threadsafe(stop.set)
            served.result(30)


# -- raw HTTP --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Dropped(AssertionError):
    """The server closed the connection without a complete HTTP response."""


async def http(port: int, method: str, path: str, body: bytes = b"", *,
               headers: list[tuple[bytes, bytes]] | None = None, chunked: bool = False,
               content_length: int | None = None, timeout_s: float = 20.0) -> Reply:
    """One request on a fresh connection (``Connection: close``), bytes as given: headers may
    hold any bytes, the body may be chunked or carry a lying Content-Length."""
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    head += [name + b": " + value for name, value in headers or []]
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
        pieces = [body[i:i + 4096] for i in range(0, len(body), 4096)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        head.append(b"Content-Length: %d" % (len(body) if content_length is None
                                             else content_length))
        payload = body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        with contextlib.suppress(ConnectionError):  # it may answer (413) before reading all
            await writer.drain()
        raw = await asyncio.wait_for(_read_reply(reader), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return _parse_reply(raw)


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the end of the (final) response: not until EOF, since a server that answers
    before reading the whole body (413) may linger on the connection for a while."""
    data = bytearray()

    async def more() -> bool:
        try:
            chunk = await reader.read(65536)
        except ConnectionError:
            return False
        data.extend(chunk)
        return bool(chunk)

    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            if not await more():
                return bytes(data)
            continue
        if data.startswith(b"HTTP/1.1 1", start):  # an interim answer (100 Continue)
            start = end + 4
            continue
        break
    head = bytes(data[start:end]).lower()
    body_at = end + 4
    if b"transfer-encoding: chunked" in head:
        while not data.endswith(b"0\r\n\r\n") and await more():
            pass
    elif b"content-length:" in head:
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(data) - body_at < length and await more():
            pass
    else:
        while await more():
            pass
    return bytes(data)


def _parse_reply(raw: bytes) -> Reply:
    while raw.startswith(b"HTTP/1.1 1"):  # interim answers (100 Continue) come first
        raw = raw.partition(b"\r\n\r\n")[2]
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise Dropped(f"no complete HTTP response (got {len(raw)} bytes: {raw[:80]!r})")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers and len(body) != int(headers["content-length"]):
        raise Dropped(f"body of {len(body)} bytes, Content-Length {headers['content-length']}")
    return Reply(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            raise Dropped("chunked response ends early")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        data = rest[size + 2:]


def assert_refused_or_answered(reply: Reply, allowed: tuple[int, ...] = (200,)) -> None:
    """200 (or ``allowed``), or a 4xx/503 whose JSON body gives the reason: never a 5xx."""
    if reply.status in allowed and reply.status < 400:
        return
    assert 400 <= reply.status < 500 or reply.status == 503, (reply.status, reply.body[:300])
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


# -- hostile JSON ----------------------------------------------------------------------------------
ANY_CHAR = st.characters(codec=None, exclude_categories=())
"""Every code point, lone surrogates included (JSON's ``"\\ud800"`` escapes produce them)."""
WIRE_CHAR = st.characters(codec="utf-8")
"""What a valid UTF-8 text message (all aiortc delivers as ``str``) can hold."""

NUMBERS = st.one_of(
    st.integers(), st.integers(-2**64, 2**64), st.sampled_from([10**400, -10**400, 2**53,
                                                                2**53 + 1, 2**63, -2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.0, 5e-324, 1e308]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(ANY_CHAR, max_size=40),
                    st.tuples(st.sampled_from("aé€😀\ud800\x00\"\\"), st.integers(0, 9000))
                    .map(lambda pair: pair[0] * pair[1]))
"""JSON scalars, long strings (of 1-4 UTF-8 bytes a character) made cheaply."""


@functools.cache
def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values, as :func:`json.dumps` writes them (NaN and Infinity included)."""
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(ANY_CHAR, max_size=8), inner,
                                                     max_size=6)), max_leaves=max_leaves)


def nested(depth: int, kind: str = "[") -> str:
    """A JSON text nested ``depth`` deep."""
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


def dumps(value: Any, ascii_only: bool) -> str:
    """JSON text; NaN/Infinity literals kept (browsers' JSON.stringify never writes them, a
    hostile peer can)."""
    return json.dumps(value, ensure_ascii=ascii_only)


def traced_bytes(filenames: tuple[str, ...]) -> int:
    """Bytes tracemalloc holds for allocations made in files whose path contains one of
    ``filenames`` (so hypothesis's own bookkeeping does not count)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, f"*{name}*") for name in filenames])
    return sum(stat.size for stat in snapshot.statistics("filename"))
