"""Route the browser's RTCP feedback (PLI/FIR keyframe requests, REMB estimates) to hdx's encoder.

When a track hands aiortc pre-encoded packets, aiortc's sender ignores PLI, FIR and REMB: they
only reach aiortc's own encoders. Rather than fork aiortc, hdx wraps the one method through
which the DTLS transport delivers RTCP to a sender (``RTCRtpSender._handle_rtcp_packet``, looked
up on the instance for every packet), observes the feedback, and then lets aiortc handle the
packet as usual (RTT, NACK retransmissions). Only this sender's instance is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiortc import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    unpack_remb_fci,
)

log = logging.getLogger(__name__)


class FeedbackSink(Protocol):
    """What receives the feedback: in hdx, an :class:`~hdx.webrtc.track.EncodedVideoTrack`."""

    def request_keyframe(self, reason: str) -> None: ...

    def on_receiver_estimate(self, bitrate_bps: int) -> None: ...


def observe_feedback(packet: Any, sink: FeedbackSink, ssrc: int) -> None:
    """Act on one RTCP packet addressed to the sender with ``ssrc``; ignores everything else."""
    if not isinstance(packet, RtcpPsfbPacket):
        return
    if packet.fmt == RTCP_PSFB_PLI:
        sink.request_keyframe("pli")
    elif packet.fmt == RTCP_PSFB_FIR:
        sink.request_keyframe("fir")
    elif packet.fmt == RTCP_PSFB_APP:
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:
            return  # an APP message that is not REMB
        if ssrc in ssrcs:
            sink.on_receiver_estimate(int(bitrate))


def route_feedback(sender: RTCRtpSender, sink: FeedbackSink) -> None:
    """Make ``sender`` tell ``sink`` about keyframe requests and bandwidth estimates."""
    original: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        try:
            observe_feedback(packet, sink, sender._ssrc)
        except Exception:  # feedback must never break aiortc's own RTCP handling
            log.exception("RTCP feedback handling failed")
        await original(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
