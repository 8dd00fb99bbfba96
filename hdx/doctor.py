"""``hdx doctor``: what this machine offers hdx, and in plain words what will be used and why."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import Any

import aiortc
import av

from hdx.config import EncoderPreference
from hdx.errors import EncoderUnavailable
from hdx.video.gpu_probe import probe_gpus
from hdx.video.selection import select_encoder, try_encoder

_INTERESTING_ENCODERS = ("libx264", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "libvpx",
                         "libsvtav1", "h264_qsv", "h264_vaapi", "h264_amf")


def available_video_encoders() -> list[str]:
    """The encoders this FFmpeg build offers that matter for remote display."""
    names = []
    for name in _INTERESTING_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # UnknownCodecError and friends
            continue
        names.append(name)
    return names


def diagnose(preference: EncoderPreference = "auto",
             x_display: str | None = None) -> dict[str, Any]:
    """Collect everything ``hdx doctor`` prints, as JSON-ready data.

    ``x_display`` (default: ``$DISPLAY``) is also checked for what X11 capture needs.
    """
    ffmpeg = str(getattr(av, "ffmpeg_version_info", "unknown"))
    gpu = probe_gpus()
    nvenc_failure = try_encoder("h264_nvenc") if gpu.nvenc_possible else gpu.reason
    try:
        choice = select_encoder(preference)
        selected: dict[str, Any] = {"codec": choice.codec, "reason": choice.reason}
    except EncoderUnavailable as exc:
        selected = {"codec": None, "reason": str(exc)}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyav": av.__version__,
        "ffmpeg": ffmpeg,
        "aiortc": aiortc.__version__,
        "encoders": available_video_encoders(),
        "gpu": {
            "driver": gpu.driver_version,
            "gpus": [asdict(g) for g in gpu.gpus],
            "probe": gpu.reason,
        },
        "nvenc": {"usable": nvenc_failure is None,
                  "why": "an H.264 test frame encoded on the GPU" if nvenc_failure is None
                  else nvenc_failure},
        "selected_encoder": selected,
        "x11": _x11_report(x_display),
    }


def _x11_report(name: str | None) -> dict[str, Any] | None:
    display = name if name is not None else os.environ.get("DISPLAY")
    if not display:
        return None
    from hdx.x11.probe import probe_display

    return probe_display(display)


def render(report: dict[str, Any]) -> str:
    """The doctor report as lines for a terminal."""
    gpus = report["gpu"]["gpus"]
    lines = [
        f"Python      {report['python']} ({report['platform']})",
        f"PyAV        {report['pyav']} (FFmpeg {report['ffmpeg']})",
        f"aiortc      {report['aiortc']}",
        f"encoders    {', '.join(report['encoders']) or 'none'}",
        f"NVIDIA      driver {report['gpu']['driver'] or 'not loaded'}; "
        + (", ".join(f"GPU {g['index']}: {g['name']} ({g['encoder_note']})" for g in gpus)
           or "no GPU"),
        f"NVENC       {'usable' if report['nvenc']['usable'] else 'not usable'}: "
        f"{report['nvenc']['why']}",
        f"hdx uses    {report['selected_encoder']['codec'] or 'nothing'}: "
        f"{report['selected_encoder']['reason']}",
    ]
    if report.get("x11") is None:
        lines.append("X display   none checked (set DISPLAY or pass --display :N)")
    else:
        from hdx.x11.probe import render_display

        lines.extend(render_display(report["x11"]))
    return "\n".join(lines)
