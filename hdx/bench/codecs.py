"""The video encoders ``hdx bench encoders`` compares, opened the same way and run the same way.

Every candidate gets the same BGRA frames, the same OpenCV BT.601 I420 conversion (the one hdx
uses, so the comparison is of codecs, not colour converters), the same target bitrate and
low-delay settings: no B-frames, no lookahead, an endless GOP. ``hdx-x264`` is hdx's own
:class:`hdx.video.encoder.H264Encoder`, exactly as the server runs it. NVENC gets BGRA, as in hdx.
An encoder that cannot open here is reported with the reason (H100/H200 have no NVENC).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from hdx.errors import EncoderUnavailable
from hdx.video.encoder import TIME_BASE, H264Encoder, bgra_to_i420, describe_failure
from hdx.video.gpu_probe import probe_gpus

BGRA = npt.NDArray[np.uint8]
_GOP = 1 << 30
_BT601, _LIMITED = 6, 1
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner on stderr unless told not to


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """One encoder configuration under test."""

    name: str
    codec: str
    family: str
    """``h264``, ``hevc``, ``vp8``, ``vp9`` or ``av1``: what decodes it, what a browser needs."""
    options: dict[str, str] = field(default_factory=dict)
    label: str = ""
    bgra_input: bool = False
    """NVENC takes BGRA and converts on the GPU."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "codec": self.codec, "family": self.family,
                "options": self.options, "label": self.label or self.name,
                "input": "bgra" if self.bgra_input else "yuv420p (OpenCV BT.601)"}


_X264_LOW_DELAY = "keyint=infinite:scenecut=0:rc-lookahead=0:sync-lookahead=0"
_NVENC = {"preset": "p2", "tune": "ull", "zerolatency": "1", "delay": "0", "rc": "cbr"}
SPECS: tuple[EncoderSpec, ...] = (
    EncoderSpec("hdx-x264", "libx264", "h264", label="hdx's encoder (ultrafast, zerolatency, "
                "baseline, ABR under a VBV ceiling)"),
    *(EncoderSpec(f"x264-{preset}-zl", "libx264", "h264",
                  {"preset": preset, "tune": "zerolatency", "x264-params": _X264_LOW_DELAY},
                  f"libx264 {preset}, tune zerolatency")
      for preset in ("superfast", "veryfast", "medium")),
    EncoderSpec("x264-veryfast-still", "libx264", "h264",
                {"preset": "veryfast", "tune": "zerolatency,stillimage",
                 "x264-params": _X264_LOW_DELAY}, "libx264 veryfast, tune zerolatency+stillimage"),
    EncoderSpec("x264-veryfast-anim", "libx264", "h264",
                {"preset": "veryfast", "tune": "zerolatency,animation",
                 "x264-params": _X264_LOW_DELAY}, "libx264 veryfast, tune zerolatency+animation"),
    EncoderSpec("vp8-rt", "libvpx", "vp8",
                {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                 "error-resilient": "1"},
                "libvpx VP8, realtime, cpu-used 8 (WebRTC's default codec)"),
    EncoderSpec("vp9-rt", "libvpx-vp9", "vp9",
                {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "row-mt": "1"},
                "libvpx VP9, realtime, cpu-used 8"),
    *(EncoderSpec(f"svtav1-p{preset}", "libsvtav1", "av1",
                  {"preset": str(preset), "svtav1-params": "pred-struct=1:rc=2"},
                  f"SVT-AV1 preset {preset}, low-delay CBR")
      for preset in (12, 10)),
    EncoderSpec("x265-ultrafast-zl", "libx265", "hevc",
                {"preset": "ultrafast", "tune": "zerolatency", "x265-params": "log-level=error"},
                "libx265 ultrafast, tune zerolatency"),
    EncoderSpec("h264-nvenc", "h264_nvenc", "h264", dict(_NVENC), "NVENC H.264 (p2, ull)", True),
    EncoderSpec("hevc-nvenc", "hevc_nvenc", "hevc", dict(_NVENC), "NVENC HEVC (p2, ull)", True),
    EncoderSpec("av1-nvenc", "av1_nvenc", "av1", dict(_NVENC), "NVENC AV1 (p2, ull)", True),
)
SPEC_NAMES = tuple(s.name for s in SPECS)
DECODERS = {"h264": "h264", "hevc": "hevc", "vp8": "vp8", "vp9": "vp9", "av1": "libdav1d"}


class Encoder:
    """An open encoder: BGRA frames in, encoded packets (bytes) out."""

    def __init__(self, spec: EncoderSpec, width: int, height: int, fps: int,
                 bitrate_bps: int) -> None:
        self.spec = spec
        self._hdx: H264Encoder | None = None
        self._ctx: Any = None
        if spec.name == "hdx-x264":
            self._hdx = H264Encoder("libx264", width, height, fps, bitrate_bps)
            return
        log: list[str] = []
        try:
            self._ctx = _open(spec, width, height, fps, bitrate_bps, log)
        except Exception as exc:  # PyAV raises PermissionError, ValueError, FFmpegError...
            raise EncoderUnavailable(f"{spec.codec}: {describe_failure(exc, log)}") from exc

    def encode(self, frame: BGRA, index: int) -> list[bytes]:
        """Encode frame ``index``; the packets that came out (low-delay encoders: one)."""
        pts = index * 3000
        if self._hdx is not None:
            return [bytes(self._hdx.encode(frame, pts, keyframe=index == 0).packet)]
        if self.spec.bgra_input:
            av_frame = av.VideoFrame.from_ndarray(frame, format="bgra")
        else:
            av_frame = av.VideoFrame.from_ndarray(bgra_to_i420(frame), format="yuv420p")
        av_frame.pts = pts
        av_frame.time_base = TIME_BASE
        return [bytes(p) for p in self._ctx.encode(av_frame)]

    def flush(self) -> list[bytes]:
        """Packets still held (an encoder with delay); ends the stream."""
        if self._hdx is not None:
            return []
        try:
            return [bytes(p) for p in self._ctx.encode(None)]
        except av.FFmpegError:
            return []

    def close(self) -> None:
        if self._hdx is not None:
            self._hdx.close()
        self._ctx = None


def _open(spec: EncoderSpec, width: int, height: int, fps: int, bitrate_bps: int,
          log: list[str]) -> Any:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as captured:
            try:
                ctx: Any = av.CodecContext.create(spec.codec, "w")
                ctx.width, ctx.height = width, height
                ctx.time_base = TIME_BASE
                ctx.framerate = Fraction(fps, 1)
                ctx.pix_fmt = "bgra" if spec.bgra_input else "yuv420p"
                ctx.gop_size = _GOP
                ctx.max_b_frames = 0
                ctx.bit_rate = bitrate_bps
                ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT601
                ctx.color_range = _LIMITED
                options = dict(spec.options)
                if spec.family in ("h264", "hevc") and spec.codec.startswith("lib"):
                    options |= {"maxrate": str(bitrate_bps), "bufsize": str(bitrate_bps // 2)}
                ctx.options = options
                ctx.open()
                return ctx
            finally:
                log.extend(str(line[2]).strip() for line in captured)
    finally:
        av.logging.set_level(previous)


def availability(spec: EncoderSpec) -> str | None:
    """None if ``spec`` opens and encodes a small frame here; otherwise why not (for NVENC with
    what NVML says about the GPUs, since FFmpeg's reason alone rarely names the cause)."""
    try:
        encoder = Encoder(spec, 256, 144, 30, 1_000_000)
    except EncoderUnavailable as exc:
        if spec.bgra_input:
            gpu = probe_gpus()
            found = (f"NVML: {', '.join(g.name for g in gpu.gpus)} ({gpu.reason})" if gpu.gpus
                     else f"no NVIDIA GPU: {gpu.reason}")
            return f"{found}; opening it: {exc}"
        return str(exc)
    try:
        encoder.encode(np.zeros((144, 256, 4), np.uint8), 0)
        encoder.flush()
    except Exception as exc:  # a driver can accept the open and fail the first frame
        return f"{spec.codec} opened but could not encode a test frame: {exc}"
    finally:
        encoder.close()
    return None


class Decoder:
    """Decodes one family's packets back to the luma plane the quality metrics compare."""

    def __init__(self, family: str) -> None:
        self._ctx: Any = av.CodecContext.create(DECODERS[family], "r")

    def decode(self, packet: bytes) -> list[npt.NDArray[np.uint8]]:
        """The Y planes of the frames ``packet`` completes (cropped to the coded size)."""
        frames = self._ctx.decode(av.Packet(packet))
        return [_luma(f) for f in frames]

    def flush(self) -> list[npt.NDArray[np.uint8]]:
        try:
            return [_luma(f) for f in self._ctx.decode(None)]
        except av.FFmpegError:
            return []


def _luma(frame: Any) -> npt.NDArray[np.uint8]:
    plane = frame.planes[0]
    rows = np.frombuffer(bytes(plane), np.uint8).reshape(frame.height, plane.line_size)
    return np.ascontiguousarray(rows[:, :frame.width])
