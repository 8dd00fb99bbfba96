"""The real libx264 encoder as hdx configures it, decoded back with FFmpeg's H.264 decoder."""

import av
import numpy as np
import pytest

from hdx.errors import EncoderUnavailable
from hdx.video.encoder import H264Encoder, bgra_to_i420, describe_failure

pytestmark = pytest.mark.unit


def desktop(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A text-like pattern with a moving block: content x264 has to work for."""
    frame = np.full((height, width, 4), 40, np.uint8)
    frame[::8, :, :3] = 200
    frame[:, ::13, 1] = 180
    frame[20:60, 10 + shift:90 + shift, :3] = (30, 120, 240)
    frame[..., 3] = 255
    return frame


def decode(packets: list[av.Packet]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    for packet in packets:
        frames.extend(decoder.decode(av.Packet(bytes(packet))))
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_one_packet_per_frame_no_b_frames_idr_only_on_demand() -> None:
    encoder = H264Encoder("libx264", 320, 240, fps=30, bitrate_bps=2_000_000)
    results = [encoder.encode(desktop(320, 240, i), pts=i * 3000, keyframe=(i == 5))
               for i in range(10)]
    assert [r.keyframe for r in results] == [True, False, False, False, False,
                                             True, False, False, False, False]
    packets = [r.packet for r in results]
    assert [p.pts for p in packets] == [i * 3000 for i in range(10)]  # no reordering delay
    frames = decode(packets)
    assert len(frames) == 10
    picture_types = {av.video.frame.PictureType(int(f.pict_type)) for f in frames}
    assert picture_types == {av.video.frame.PictureType.I, av.video.frame.PictureType.P}
    encoder.close()
    encoder.close()  # idempotent


def test_stream_signals_bt601_limited_range_and_round_trips() -> None:
    encoder = H264Encoder("libx264", 320, 240, fps=30, bitrate_bps=4_000_000)
    source = desktop(320, 240)
    packets = [encoder.encode(source, pts=i * 3000).packet for i in range(4)]
    frame = decode(packets)[-1]
    assert frame.colorspace == 6  # AVCOL_SPC_SMPTE170M (BT.601)
    assert frame.color_range == 1  # limited ("MPEG") range, as cv2's I420 produces
    # Decode with the signalled matrix and compare with the source: the colour path is right.
    decoded_i420 = frame.to_ndarray(format="yuv420p")
    assert psnr(decoded_i420, bgra_to_i420(source)) > 35


def test_odd_sizes_are_padded_to_even() -> None:
    encoder = H264Encoder("libx264", 321, 241, fps=30, bitrate_bps=2_000_000)
    assert (encoder.width, encoder.height) == (322, 242)
    packet = encoder.encode(desktop(321, 241), pts=0).packet
    assert (decode([packet])[0].width, decode([packet])[0].height) == (322, 242)
    with pytest.raises(ValueError, match="encoder expects"):
        encoder.encode(desktop(300, 200), pts=1)


def test_bitrate_changes_apply_live_within_the_ceiling() -> None:
    encoder = H264Encoder("libx264", 320, 240, fps=30, bitrate_bps=4_000_000,
                          max_bitrate_bps=4_000_000)
    assert not encoder.set_bitrate(4_100_000)  # within hysteresis (and clamped)
    assert encoder.set_bitrate(1_000_000)
    assert encoder.bitrate_bps == 1_000_000
    assert encoder.set_bitrate(9_000_000)
    assert encoder.bitrate_bps == 4_000_000  # never above the ceiling


def test_lower_bitrate_means_fewer_bytes() -> None:
    def bits_per_second_at(bitrate: int) -> float:
        rng = np.random.default_rng(7)  # fresh noise every frame: the encoder must spend
        encoder = H264Encoder("libx264", 320, 240, fps=30, bitrate_bps=8_000_000)
        encoder.set_bitrate(bitrate)
        sizes = [encoder.encode(rng.integers(0, 255, (240, 320, 4), dtype=np.uint8),
                                pts=i * 3000).size for i in range(90)]
        return sum(sizes[30:]) * 8 / 2.0  # the last two seconds, after rate control settled

    low, high = bits_per_second_at(500_000), bits_per_second_at(8_000_000)
    assert low < 0.25 * high
    assert low < 2 * 500_000


def test_nvenc_refusal_is_reported_in_words() -> None:
    try:
        encoder = H264Encoder("h264_nvenc", 256, 144, fps=30, bitrate_bps=1_000_000)
    except EncoderUnavailable as exc:
        message = str(exc)
        assert message.startswith("cannot open h264_nvenc at 256x144: ")
        assert len(message) > len("cannot open h264_nvenc at 256x144: ") + 10
    else:  # a machine with working NVENC
        encoder.close()


def test_describe_failure_explains_permission_errors() -> None:
    text = describe_failure(PermissionError(1, "Operation not permitted"))
    assert "no NVIDIA driver" in text and "NVENC" in text
