"""Encoder selection: the real probe on this machine, and replayed answers of GPU machines."""

import logging

import pytest

from hdx.errors import EncoderUnavailable
from hdx.video.gpu_probe import GpuInfo, GpuProbe, probe_gpus
from hdx.video.selection import select_encoder, try_encoder

pytestmark = pytest.mark.unit

ZERO_CAPACITY = GpuProbe("580.1", (GpuInfo(0, "NVIDIA X", 0, "H.264 encoder capacity 0%"),),
                         "no GPU with an NVENC engine (NVIDIA X: H.264 encoder capacity 0)")
# Recorded on a lent H100 (driver 580.159.04, PyAV 19.0.2): NVML reports an H.264 encoder
# capacity of 100 % although the GPU has no NVENC engine; only opening h264_nvenc tells, and
# FFmpeg logs these two lines.
H100 = GpuProbe("580.159.04", (GpuInfo(0, "NVIDIA H100 80GB HBM3", 100,
                                       "H.264 encoder capacity 100%"),),
                "NVIDIA H100 80GB HBM3 may have NVENC (H.264 encoder capacity 100%)")
H100_FFMPEG_LOG = ["OpenEncodeSessionEx failed: unsupported device (2): (no details)",
                   "No capable devices found"]
L4 = GpuProbe("580.1", (GpuInfo(0, "NVIDIA L4", 100, "H.264 encoder capacity 100%"),),
              "NVIDIA L4 may have NVENC")
NO_DRIVER = GpuProbe(None, (), "no NVIDIA driver: NVML could not start (NVML Shared Library "
                     "Not Found)")


def test_real_probe_never_raises_and_explains() -> None:
    probe = probe_gpus()
    assert probe.reason
    if not probe.gpus:
        assert not probe.nvenc_possible


def test_auto_on_this_machine_logs_one_line_with_encoder_and_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hdx.video.selection"):
        choice = select_encoder("auto")
    lines = [r.getMessage() for r in caplog.records if r.name == "hdx.video.selection"]
    assert len(lines) == 1
    assert lines[0].startswith(f"encoder: {choice.codec} (")
    if choice.codec == "libx264":
        assert "NVENC unavailable: " in lines[0]


def test_x264_requested_skips_the_probe() -> None:
    def probe() -> GpuProbe:
        raise AssertionError("must not probe")
    assert select_encoder("x264", probe=probe).codec == "libx264"


def test_no_driver_falls_back_with_the_nvml_reason() -> None:
    choice = select_encoder("auto", probe=lambda: NO_DRIVER)
    assert choice.codec == "libx264" and choice.label == "x264"
    assert choice.reason == f"NVENC unavailable: {NO_DRIVER.reason}"


def test_gpu_without_nvenc_engine_is_not_even_opened() -> None:
    attempts: list[str] = []

    def attempt(codec: str) -> str | None:
        attempts.append(codec)
        return None
    choice = select_encoder("auto", probe=lambda: ZERO_CAPACITY, attempt=attempt)
    assert attempts == [] and choice.codec == "libx264"
    assert "NVIDIA X" in choice.reason and "capacity 0" in choice.reason


def test_h100_says_in_words_that_it_has_no_nvenc_engine() -> None:
    from av.error import ExternalError

    from hdx.video.encoder import describe_failure

    error = ExternalError(542398533, "Generic error in an external library")
    words = describe_failure(error, H100_FFMPEG_LOG)
    assert words.startswith("the NVIDIA driver reports no NVENC engine on this GPU")
    assert "unsupported device" in words
    choice = select_encoder("auto", probe=lambda: H100,
                            attempt=lambda codec: f"cannot open {codec} at 256x144: {words}")
    assert choice.codec == "libx264"
    assert choice.reason.startswith("NVENC unavailable: NVIDIA H100 80GB HBM3 found, but "
                                    "cannot open h264_nvenc at 256x144: the NVIDIA driver "
                                    "reports no NVENC engine")


def test_missing_driver_library_is_named() -> None:
    if probe_gpus().gpus:
        pytest.skip("this machine has an NVIDIA driver")
    failure = try_encoder("h264_nvenc")
    assert failure is not None
    assert "FFmpeg: Cannot load" in failure or "driver" in failure


def test_gpu_whose_driver_refuses_falls_back_naming_gpu_and_failure() -> None:
    refusal = try_encoder("h264_nvenc") or "Operation not permitted"
    choice = select_encoder("auto", probe=lambda: L4, attempt=lambda codec: refusal)
    assert choice.codec == "libx264"
    assert "NVIDIA L4 found, but " in choice.reason and refusal in choice.reason


def test_working_nvenc_is_chosen() -> None:
    choice = select_encoder("auto", probe=lambda: L4, attempt=lambda codec: None)
    assert choice.codec == "h264_nvenc" and choice.label == "nvenc"


def test_nvenc_demanded_but_unusable_is_an_error_with_advice() -> None:
    with pytest.raises(EncoderUnavailable, match=r"NVENC was requested but is not usable: .*"
                       r"--encoder auto"):
        select_encoder("nvenc", probe=lambda: NO_DRIVER)
