"""ICE address control: loopback host candidates for loopback servers, and candidate filtering."""

import aioice.ice
import pytest

from hdx.webrtc.ice import (
    addresses_for_bind,
    filter_remote_candidates,
    host_addresses,
    is_loopback,
)

pytestmark = pytest.mark.unit

OFFER = (
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=candidate:1 1 udp 2122260223 10.1.2.3 50000 typ host generation 0\r\n"
    "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host generation 0\r\n"
    "a=candidate:3 1 udp 2122194687 ::1 50002 typ host\r\n"
    "a=candidate:broken\r\n"
    "a=end-of-candidates\r\n"
)


def test_host_addresses_applies_only_inside_the_block() -> None:
    with host_addresses(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == [
            "127.0.0.1", "::1"]
    outside = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    assert "127.0.0.1" not in outside  # aioice's own behaviour is back


async def test_aioice_gathers_a_loopback_candidate_inside_the_block() -> None:
    connection = aioice.Connection(ice_controlling=False)
    with host_addresses(["127.0.0.1"]):
        await connection.gather_candidates()
    try:
        hosts = {c.host for c in connection.local_candidates}
        assert hosts == {"127.0.0.1"}
    finally:
        await connection.close()


def test_filter_keeps_only_wanted_candidates() -> None:
    filtered = filter_remote_candidates(OFFER, is_loopback)
    assert "10.1.2.3" not in filtered and "broken" not in filtered
    assert "127.0.0.1 50001" in filtered and "::1 50002" in filtered
    assert "a=end-of-candidates" in filtered and filtered.endswith("\r\n")


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.5.5.5", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("10.0.0.1", False), ("example.org", False)])
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_addresses_for_bind() -> None:
    assert addresses_for_bind("127.0.0.1", ()) == ("127.0.0.1",)
    assert addresses_for_bind("0.0.0.0", ()) is None
    assert addresses_for_bind("0.0.0.0", ("192.0.2.1",)) == ("192.0.2.1",)
