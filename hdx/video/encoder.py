"""Low-latency H.264 encoding of BGRA frames through PyAV (libx264 or h264_nvenc).

Settings follow what remote display needs rather than what file encoding needs: no B-frames,
no lookahead, one packet out for every frame in, an effectively infinite GOP with an IDR only
when asked (a new viewer, a browser PLI/FIR), and a bitrate ceiling that the receiver's estimate
can lower while running. Colour conversion is OpenCV's BT.601 limited-range I420 (measured 3-5x
faster than PyAV's reformat here) and the stream says so in its VUI (smpte170m), so the
browser's video display and its canvas readback agree. NVENC takes BGRA directly.

Thread-safety: an encoder is used by one thread at a time (the session's encode executor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import cv2
import numpy as np

from hdx.errors import EncoderUnavailable
from hdx.sources.base import Frame

CodecName = Literal["libx264", "h264_nvenc"]
TIME_BASE = Fraction(1, 90000)
"""RTP's video clock; packets carry pts in it so aiortc needs no rescaling guesswork."""

# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value 6 is SMPTE 170M
# (BT.601 525), AVColorRange 1 is limited ("MPEG") range: exactly what cv2's I420 produces.
_BT601 = 6
_LIMITED_RANGE = 1
_GOP_FRAMES = 1 << 30
# Let bitrate changes take effect only when they matter: x264 reconfig is cheap, but not free.
_BITRATE_HYSTERESIS = 0.1


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded access unit (Annex B) and facts about it for stats and tests."""

    packet: av.Packet[Any]
    keyframe: bool
    encode_ms: float
    size: int


def bgra_to_i420(frame: Frame) -> np.ndarray:
    """BGRA (h, w, 4) -> planar I420 (h*3/2, w), BT.601 limited range. Needs even sizes."""
    out: np.ndarray = cv2.cvtColor(frame, cv2.COLOR_BGRA2YUV_I420)
    return out


def even_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 needs even dimensions: odd ones are padded by one pixel (edge replicated)."""
    return width + (width & 1), height + (height & 1)


class H264Encoder:
    """A running encoder for one video stream of fixed size."""

    def __init__(
        self,
        codec: CodecName,
        width: int,
        height: int,
        fps: int,
        bitrate_bps: int,
        max_bitrate_bps: int | None = None,
    ) -> None:
        self.codec_name: CodecName = codec
        self.source_size = (width, height)
        self.width, self.height = even_size(width, height)
        self.fps = fps
        self._bitrate = bitrate_bps
        self.max_bitrate_bps = max(max_bitrate_bps or bitrate_bps, bitrate_bps)
        self._nvenc = codec == "h264_nvenc"
        self.frames_encoded = 0
        self.keyframes_encoded = 0
        ffmpeg_log: list[str] = []
        try:
            self._ctx = self._open_logged(bitrate_bps, ffmpeg_log)
        except Exception as exc:  # PyAV raises PermissionError, ValueError, FFmpegError...
            raise EncoderUnavailable(
                f"cannot open {codec} at {self.width}x{self.height}: "
                f"{describe_failure(exc, ffmpeg_log)}"
            ) from exc

    def _open_logged(self, bitrate_bps: int, ffmpeg_log: list[str]) -> Any:
        """Open, collecting FFmpeg's own error lines: they say *why* (PyAV's exception is
        often just "Generic error in an external library")."""
        previous = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.logging.Capture() as captured:
                try:
                    return self._open(bitrate_bps)
                finally:
                    ffmpeg_log.extend(str(line[2]).strip() for line in captured)
        finally:
            av.logging.set_level(previous)

    def _open(self, bitrate_bps: int) -> Any:
        ctx: Any = av.CodecContext.create(self.codec_name, "w")
        ctx.width, ctx.height = self.width, self.height
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(self.fps, 1)
        ctx.pix_fmt = "bgra" if self._nvenc else "yuv420p"
        ctx.gop_size = _GOP_FRAMES
        ctx.max_b_frames = 0
        ctx.bit_rate = bitrate_bps
        ctx.colorspace = _BT601
        ctx.color_primaries = _BT601
        ctx.color_trc = _BT601
        ctx.color_range = _LIMITED_RANGE
        if self._nvenc:
            ctx.options = {
                "preset": "p2", "tune": "ull", "zerolatency": "1", "delay": "0",
                "rc": "cbr", "forced-idr": "1", "profile": "baseline",
                "maxrate": str(self.max_bitrate_bps), "bufsize": str(self.max_bitrate_bps // 2),
            }
        else:
            # Average bitrate under a VBV ceiling. ABR (not CRF) because FFmpeg's libx264
            # wrapper re-applies a changed ``bit_rate`` live only in ABR mode, and PyAV cannot
            # change maxrate after opening: measured here, 8 -> 1 -> 4 Mbit/s took effect within
            # a second with no IDR. Half a second of VBV keeps an IDR of a text screen legible.
            ctx.options = {
                "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                "forced-idr": "1",
                "maxrate": str(self.max_bitrate_bps), "bufsize": str(self.max_bitrate_bps // 2),
                "x264-params": "keyint=infinite:scenecut=0:rc-lookahead=0:sync-lookahead=0",
            }
        ctx.open()
        return ctx

    @property
    def bitrate_bps(self) -> int:
        """The target bitrate in force."""
        return self._bitrate

    def set_bitrate(self, bitrate_bps: int) -> bool:
        """Change the target while running (clamped to the ceiling); True when applied.

        FFmpeg's libx264 and NVENC wrappers notice a changed ``bit_rate`` before the next frame
        and reconfigure without an IDR; changes within 10% are ignored to avoid churn.
        """
        bitrate_bps = min(bitrate_bps, self.max_bitrate_bps)
        if abs(bitrate_bps - self._bitrate) <= self._bitrate * _BITRATE_HYSTERESIS:
            return False
        self._bitrate = bitrate_bps
        self._ctx.bit_rate = bitrate_bps
        return True

    def encode(self, frame: Frame, pts: int, keyframe: bool = False) -> EncodedFrame:
        """Encode one BGRA frame; returns exactly one access unit (zero-latency settings)."""
        started = time.perf_counter()
        if (frame.shape[1], frame.shape[0]) != (self.width, self.height):
            frame = self._pad(frame)
        if self._nvenc:
            av_frame = av.VideoFrame.from_ndarray(frame, format="bgra")
        else:
            av_frame = av.VideoFrame.from_ndarray(bgra_to_i420(frame), format="yuv420p")
        av_frame.pts = pts
        av_frame.time_base = TIME_BASE
        if keyframe:
            av_frame.pict_type = av.video.frame.PictureType.I
        packets = self._ctx.encode(av_frame)
        if len(packets) != 1:
            raise EncoderUnavailable(
                f"{self.codec_name} returned {len(packets)} packets for one frame; "
                "zero-latency settings were not honoured"
            )
        packet = packets[0]
        packet.time_base = TIME_BASE
        self.frames_encoded += 1
        self.keyframes_encoded += int(packet.is_keyframe)
        return EncodedFrame(
            packet=packet,
            keyframe=bool(packet.is_keyframe),
            encode_ms=(time.perf_counter() - started) * 1000.0,
            size=packet.size,
        )

    def _pad(self, frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        if (w, h) != self.source_size:
            raise ValueError(f"frame is {w}x{h}, encoder expects {self.source_size}")
        padded = cv2.copyMakeBorder(frame, 0, self.height - h, 0, self.width - w,
                                    cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(padded, dtype=np.uint8)

    def close(self) -> None:
        """Release the codec context (idempotent)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            try:
                ctx.close()
            except (AttributeError, av.FFmpegError):
                pass


_NVENC_LOG_MEANINGS = (
    (("unsupported device", "no capable devices found"),
     "the NVIDIA driver reports no NVENC engine on this GPU (data-centre GPUs such as H100, "
     "H200 and A100 have none)"),
    (("cannot load libcuda", "cannot load libnvidia-encode"),
     "the NVIDIA driver's CUDA or encode library is not installed or not visible here"),
    (("out of memory", "incompatible client key"),
     "the GPU refused another NVENC session (its session limit may be reached)"),
)


def describe_failure(exc: BaseException, ffmpeg_log: list[str] | None = None) -> str:
    """Plain words for why an encoder would not open (PyAV errors are terse); FFmpeg's own
    error lines, when captured, name the cause and are quoted."""
    log_text = " / ".join(line for line in (ffmpeg_log or []) if line)
    lowered = log_text.lower()
    for phrases, meaning in _NVENC_LOG_MEANINGS:
        if any(p in lowered for p in phrases):
            return f"{meaning} (FFmpeg: {log_text})"
    if isinstance(exc, PermissionError):
        return (f"the driver refused to open it ({exc}); this usually means no NVIDIA driver "
                "with NVENC support is loaded, or the GPU has no NVENC engine")
    if isinstance(exc, av.error.EncoderNotFoundError) or "not found" in str(exc).lower():
        return f"this FFmpeg build has no such encoder ({exc})"
    return f"{type(exc).__name__}: {exc}"
