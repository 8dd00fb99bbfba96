"""RTCP feedback (real aiortc RTCP packets, serialized and parsed) reaches hdx's encoder."""

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    pack_remb_fci,
)

from hdx.webrtc.feedback import observe_feedback

pytestmark = pytest.mark.unit
SSRC = 0x1234


class Sink:
    def __init__(self) -> None:
        self.keyframes: list[str] = []
        self.estimates: list[int] = []

    def request_keyframe(self, reason: str) -> None:
        self.keyframes.append(reason)

    def on_receiver_estimate(self, bitrate_bps: int) -> None:
        self.estimates.append(bitrate_bps)


def wire(packet: object) -> object:
    """Serialize and parse again, as the packet would travel."""
    return RtcpPacket.parse(bytes(packet))[0]  # type: ignore[call-overload]


def test_pli_and_fir_request_keyframes() -> None:
    sink = Sink()
    observe_feedback(wire(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=SSRC)), sink, SSRC)
    observe_feedback(wire(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=1, media_ssrc=SSRC)), sink, SSRC)
    assert sink.keyframes == ["pli", "fir"]


def test_remb_for_this_stream_sets_the_estimate() -> None:
    sink = Sink()
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                          fci=pack_remb_fci(2_500_000, [SSRC]))
    observe_feedback(wire(remb), sink, SSRC)
    assert len(sink.estimates) == 1 and abs(sink.estimates[0] - 2_500_000) < 2_500_000 * 0.01


def test_remb_for_another_stream_and_other_packets_are_ignored() -> None:
    sink = Sink()
    other = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                           fci=pack_remb_fci(1_000_000, [SSRC + 1]))
    observe_feedback(wire(other), sink, SSRC)
    observe_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"JUNKJUNK"),
                     sink, SSRC)
    observe_feedback(RtcpRrPacket(ssrc=1), sink, SSRC)
    assert sink.keyframes == [] and sink.estimates == []
