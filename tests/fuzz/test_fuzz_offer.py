"""``POST /api/offer`` on the real HTTP server (loopback, raw sockets so every byte and every
dropped connection shows): random bodies, JSON of the wrong shape, deep nesting, huge bodies,
hostile headers, and a real aiortc offer mutated line by line and byte by byte. Every answer is
200 or a 4xx/503 with a JSON ``error``, never a 500 or a dropped connection, and the server
still answers ``/healthz`` afterwards."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiortc import RTCPeerConnection
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from hdx.security import tokens
from hdx.sources.synthetic import SyntheticDesktop
from hdx.webrtc.ice import host_addresses
from tests.fuzz.common import (
    ANY_CHAR,
    Live,
    Reply,
    assert_refused_or_answered,
    examples,
    http,
    json_values,
    live_server,
    nested,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings(
    # aiortc uses the random module on the loop thread while hypothesis draws on this one
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")]
LIMIT = 65536


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # Answered offers hold a session slot until connect_timeout_s (their peer never connects):
    # a short timeout and room for all of them, so every status is the offer's own.
    state: Path = tmp_path_factory.mktemp("hdx-state")
    with live_server(SyntheticDesktop(320, 240, cine_seconds=0), connect_timeout_s=0.5,
                     max_sessions=1024, state_dir=str(state)) as server:
        yield server
        health = server.run(http(server.port, "GET", "/healthz"))
        assert health.status == 200 and health.json()["status"] == "ok"
        assert server.run(post(server, REAL_OFFER)).status == 200, "still serves real offers"


async def _real_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("control")
    with host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def _make_real_offer() -> str:
    import asyncio

    return asyncio.run(_real_offer())


REAL_OFFER = _make_real_offer()
LINES = REAL_OFFER.split("\r\n")


def offer_body(sdp: object, kind: object = "offer") -> bytes:
    return json.dumps({"type": kind, "sdp": sdp}).encode()


async def post(live: Live, sdp: str) -> Reply:
    return await http(live.port, "POST", "/api/offer", offer_body(sdp),
                      headers=[(b"Content-Type", b"application/json")])


def send(live: Live, body: bytes, **options: object) -> Reply:
    headers = [(b"Content-Type", b"application/json")]
    headers += options.pop("headers", [])  # type: ignore[arg-type]
    return live.run(http(live.port, "POST", "/api/offer", body, headers=headers,
                         **options))  # type: ignore[arg-type]


# -- bodies ----------------------------------------------------------------------------------------
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda v: json.dumps(v).encode(), json_values()),
    st.builds(offer_body, json_values(6), json_values(4) | st.just("offer")),
    st.builds(lambda s: offer_body("v=0\r\n" + s), st.text(ANY_CHAR, max_size=400)),
    st.tuples(st.integers(1, 40_000), st.sampled_from(["[", "{"])).map(
        lambda a: nested(*a).encode()),
    st.integers(LIMIT - 64, LIMIT + 64).map(lambda n: b" " * n),
    st.sampled_from([b"", b"null", b"NaN", b"1" * 5000, b'{"type": "offer", "sdp": "v=0",'
                     b' "type": "answer"}', b"\xef\xbb\xbf{}", b"\"\\ud800\"",
                     offer_body("v=0\r\n\ud800"), b'{"sdp": "v=0"}' * 5000]),
)


@settings(max_examples=examples(150))
@given(BODIES, st.booleans())
@example(b"x" * 200_000, False)
@example(b"x" * 200_000, True)  # chunked: no Content-Length to refuse it by
@example(nested(60_000).encode(), False)
def test_random_bodies_get_an_answer_or_a_reason(live: Live, body: bytes,
                                                 chunked: bool) -> None:
    reply = send(live, body, chunked=chunked)
    assert_refused_or_answered(reply)
    if len(body) > LIMIT:
        assert reply.status == 413


# -- headers that are not what they say ------------------------------------------------------------
HEADER_VALUES = st.one_of(
    st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.sampled_from([b"Bearer ", b"Bearer hdx1.\x80.AAAA", b"Bearer hdx1.a.b", b"Basic YTpi",
                     b"http://127.0.0.1", b"null", b"text/plain", b"gzip, br"]))
HEADER_SETS = st.lists(st.one_of(
    st.tuples(st.sampled_from([b"Content-Type", b"Authorization", b"Origin", b"X-Forwarded-For",
                               b"Forwarded", b"Accept-Encoding", b"Cookie", b"Host"]),
              HEADER_VALUES),
    # Expect only as text: a value that is not UTF-8 is aiohttp's own 500 (S2, below).
    st.tuples(st.just(b"Expect"), st.sampled_from([b"100-continue", b"", b"fly", b"\xc3\xa9"])),
), max_size=4)


@settings(max_examples=examples(150))
@given(HEADER_SETS, st.sampled_from([b"", offer_body(REAL_OFFER)]))
@example([(b"Authorization", b"Bearer hdx1.\x80.AAAA")], b"")  # was a 500 (UnicodeEncodeError)
@example([(b"Authorization", b"Bearer hdx1.\xc3\xa9.AAAA")], b"")
def test_hostile_headers_get_an_answer_or_a_reason(live: Live, headers: list[tuple[bytes, bytes]],
                                                   body: bytes) -> None:
    reply = send(live, body, headers=headers)
    if reply.headers.get("content-type", "").startswith("text/plain") and reply.status in (
            400, 417):
        # aiohttp refused the request itself before any hdx code ran (a NUL in a header
        # value, two Host headers, an Expect it does not know), in plain text: fine.
        return
    assert_refused_or_answered(reply)
    if reply.status == 200:  # only a loopback caller without a token, or a genuine token
        assert not any(name in (b"Authorization", b"Forwarded", b"X-Forwarded-For")
                       for name, _ in headers), headers


@settings(max_examples=examples(60))
@given(st.text(ANY_CHAR, max_size=100), st.sampled_from(["monitor", "token", "monitor[]", "x"]))
def test_hostile_query_strings_get_an_answer_or_a_reason(live: Live, value: str,
                                                         name: str) -> None:
    query = urlencode({name: value.encode("utf-8", "surrogatepass")})
    reply = live.run(http(live.port, "POST", f"/api/offer?{query}", offer_body(REAL_OFFER),
                          headers=[(b"Content-Type", b"application/json")]))
    assert_refused_or_answered(reply)
    if name == "token":
        assert reply.status == 401  # tokens never travel in addresses
    elif name == "monitor" and value:
        assert reply.status == 404  # a single screen has no monitors to pick


def test_a_lying_content_length_is_refused(live: Live) -> None:
    assert send(live, b"{}", content_length=10**9).status == 413
    real = tokens.mint(b"k" * 32, "view", 60, "eve")
    reply = send(live, offer_body(REAL_OFFER), headers=[(b"Authorization",
                                                         f"Bearer {real}".encode())])
    assert reply.status == 401 and "signature" in reply.json()["error"]
    reply = live.run(http(live.port, "POST", "/api/offer?token=abc", offer_body(REAL_OFFER)))
    assert reply.status == 401 and "Authorization" in reply.json()["error"]


def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(live: Live) -> None:
    reply = send(live, b"0123456789", headers=[(b"Content-Encoding", b"gzip")])
    assert_refused_or_answered(reply)


def test_an_expect_header_that_is_not_utf8_is_refused(live: Live) -> None:
    assert_refused_or_answered(send(live, b"", headers=[(b"Expect", b"\x80")]),
                               allowed=(417,))


def test_a_compressed_body_is_bounded_after_decompression(live: Live) -> None:
    """A gzip bomb (10 MB of spaces in ~10 KB) is refused for its inflated size."""
    reply = send(live, gzip.compress(b" " * 10_000_000), headers=[(b"Content-Encoding",
                                                                   b"gzip")])
    assert reply.status == 413
    reply = send(live, gzip.compress(offer_body(REAL_OFFER)),
                 headers=[(b"Content-Encoding", b"gzip")])
    assert reply.status == 200


# -- a real offer, mutated -------------------------------------------------------------------------
SDP_LINES = st.sampled_from([
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=audio 0 RTP/AVP 0", "a=rtpmap:96 H264/90000", "a=rtpmap:96 VP8/90000",
    "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f", "a=rtcp-fb:96 nack pli",
    "a=candidate:1 1 UDP 2122252543 127.0.0.1 9 typ host", "a=candidate:x",
    "a=candidate:1 1 UDP 1 999.1.1.1 99999 typ host", "a=fingerprint:sha-256 00:11",
    "a=setup:actpass", "a=setup:banana", "a=ice-ufrag:", "a=ice-pwd:x", "a=mid:0", "a=mid:",
    "a=group:BUNDLE 0 1 2 3", "a=sctp-port:-1", "a=max-message-size:99999999999999999999",
    "a=ssrc:1 cname:x", "a=ssrc-group:FID 1", "a=extmap:99 urn:x", "a=msid:- -", "c=IN IP4",
    "c=IN IP6 ::1", "b=AS:-5", "t=0 0", "o=- 0 0 IN IP4 0.0.0.0", "v=1", "a=sendrecv",
    "a=inactive", "a=rtcp-mux", "a=rtcp:9 IN IP4 0.0.0.0", ""])
TOKENS = st.sampled_from(["", "-1", "0", "99999999999999999999", "nan", "é", "\x00", ":", "/",
                          "a" * 2000, "9", "65536", "H264", "rtx", "\ud800", " "])


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    lines = list(LINES[:-1])  # (the offer ends with CRLF: its last element is empty)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace token",
                                   "byte", "truncate", "repeat m-section"]))
        at = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines.append(draw(SDP_LINES))
        elif op == "delete":
            del lines[at]
        elif op == "duplicate":
            lines.insert(at, lines[at])
        elif op == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif op == "insert":
            lines.insert(at, draw(SDP_LINES | st.text(ANY_CHAR, max_size=40)))
        elif op == "replace token":
            parts = lines[at].replace(":", " : ").split(" ")
            parts[draw(st.integers(0, len(parts) - 1))] = draw(TOKENS)
            lines[at] = " ".join(parts).replace(" : ", ":")
        elif op == "byte" and lines[at]:
            j = draw(st.integers(0, len(lines[at]) - 1))
            lines[at] = lines[at][:j] + draw(st.text(ANY_CHAR, max_size=2)) + lines[at][j + 1:]
        elif op == "truncate":
            lines = lines[:at]
        elif op == "repeat m-section":
            start = next(i for i, line in enumerate(LINES) if line.startswith("m="))
            lines += LINES[start:-1] * draw(st.integers(1, 8))
    ending = draw(st.sampled_from(["\r\n", "\n", "\r", "\r\r\n"]))
    return ending.join(lines) + ending


@settings(max_examples=examples(150))
@given(mutated_offers())
@example(REAL_OFFER)
@example(REAL_OFFER.replace("127.0.0.1", "\ud800"))
@example(REAL_OFFER.replace("a=setup:actpass", "a=setup:"))
def test_mutated_real_offers_get_an_answer_or_a_reason(live: Live, sdp: str) -> None:
    reply = live.run(post(live, sdp))
    event(f"status {reply.status}")
    assert_refused_or_answered(reply)
    if reply.status == 200:
        answer = reply.json()
        assert answer["type"] == "answer" and answer["sdp"].startswith("v=0")
    if sdp == REAL_OFFER:
        assert reply.status == 200
