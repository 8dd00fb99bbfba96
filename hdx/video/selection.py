"""Choose the H.264 encoder once at start: NVENC where it really works, libx264 otherwise.

``auto`` asks NVML whether an NVIDIA GPU with an encoder is present, then proves NVENC by opening
``h264_nvenc`` and encoding one frame: drivers and datacenter GPUs (H100/H200 have no NVENC
engine) fail in many ways, and only a real encode is truthful. Any failure falls back to libx264
with the reason in one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hdx.config import EncoderPreference
from hdx.errors import EncoderUnavailable
from hdx.video.encoder import CodecName, H264Encoder
from hdx.video.gpu_probe import GpuProbe, probe_gpus

log = logging.getLogger(__name__)
_TEST_SIZE = (256, 144)


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """Which encoder runs, and in plain words why."""

    codec: CodecName
    reason: str

    @property
    def label(self) -> str:
        """Short name for status lines: ``nvenc`` or ``x264``."""
        return "nvenc" if self.codec == "h264_nvenc" else "x264"


def try_encoder(codec: CodecName) -> str | None:
    """Open ``codec`` and encode one test frame; None on success, else the reason it failed."""
    width, height = _TEST_SIZE
    try:
        encoder = H264Encoder(codec, width, height, fps=30, bitrate_bps=1_000_000)
    except EncoderUnavailable as exc:
        return str(exc)
    try:
        frame = np.zeros((height, width, 4), np.uint8)
        encoder.encode(frame, pts=0, keyframe=True)
    except Exception as exc:  # a driver can accept the open and fail the first frame
        return f"{codec} opened but could not encode a test frame: {exc}"
    finally:
        encoder.close()
    return None


def select_encoder(
    preference: EncoderPreference,
    probe: Callable[[], GpuProbe] = probe_gpus,
    attempt: Callable[[CodecName], str | None] = try_encoder,
) -> EncoderChoice:
    """Pick the encoder for ``preference``; ``nvenc`` raises if NVENC is not usable.

    ``probe`` and ``attempt`` are the real NVML probe and a real test encode by default; they are
    parameters so a GPU machine's answers can be replayed in tests without one.
    """
    if preference == "x264":
        return _x264("libx264 was requested (--encoder x264)")
    gpu = probe()
    nvenc_failure = _nvenc_failure(gpu, attempt)
    if nvenc_failure is None:
        choice = EncoderChoice("h264_nvenc", f"NVENC works on {gpu.gpus[0].name}")
        log.info("encoder: h264_nvenc (%s)", choice.reason)
        return choice
    if preference == "nvenc":
        raise EncoderUnavailable(
            f"NVENC was requested but is not usable: {nvenc_failure}. "
            "Use --encoder auto to fall back to libx264."
        )
    return _x264(f"NVENC unavailable: {nvenc_failure}")


def _nvenc_failure(gpu: GpuProbe, attempt: Callable[[CodecName], str | None]) -> str | None:
    if not gpu.gpus:
        return gpu.reason
    if not gpu.nvenc_possible:
        return gpu.reason
    failure = attempt("h264_nvenc")
    if failure is not None:
        return f"{gpu.gpus[0].name} found, but {failure}"
    return None


def _x264(reason: str) -> EncoderChoice:
    failure = try_encoder("libx264")
    if failure is not None:
        raise EncoderUnavailable(f"no H.264 encoder works: {reason}; and libx264: {failure}")
    log.info("encoder: libx264 (%s)", reason)
    return EncoderChoice("libx264", reason)
