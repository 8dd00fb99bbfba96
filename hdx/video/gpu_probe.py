"""What NVIDIA hardware is present, read through NVML (the ``pynvml`` module of nvidia-ml-py).

The probe never raises: a machine without a driver, a GPU without an NVENC engine (H100/H200)
and a broken driver all come back as a :class:`GpuProbe` whose ``reason`` says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One NVIDIA GPU as NVML sees it; ``h264_encoder_capacity`` is None where NVML can't tell."""

    index: int
    name: str
    h264_encoder_capacity: int | None
    encoder_note: str


@dataclass(frozen=True, slots=True)
class GpuProbe:
    """The outcome of probing: driver version, GPUs, and why NVENC is (not) likely usable."""

    driver_version: str | None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    reason: str = ""

    @property
    def nvenc_possible(self) -> bool:
        """True when some GPU may have an NVENC engine; only opening the encoder proves it."""
        return any(g.h264_encoder_capacity is None or g.h264_encoder_capacity > 0
                   for g in self.gpus)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_gpus() -> GpuProbe:
    """Probe NVIDIA GPUs via NVML; safe on machines with no NVIDIA driver at all."""
    try:
        import pynvml
    except ImportError as exc:  # nvidia-ml-py is a dependency, but be truthful if it's gone
        return GpuProbe(None, (), f"pynvml is not importable ({exc}); install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuProbe(None, (), f"no NVIDIA driver: NVML could not start ({_text(exc)})")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = tuple(_probe_one(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount()))
    except pynvml.NVMLError as exc:
        return GpuProbe(None, (), f"NVML failed while listing GPUs ({_text(exc)})")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    if not gpus:
        return GpuProbe(driver, (), f"NVIDIA driver {driver} is loaded but reports no GPU")
    with_nvenc = [g for g in gpus if g.h264_encoder_capacity != 0]
    if not with_nvenc:
        names = ", ".join(g.name for g in gpus)
        reason = f"no GPU with an NVENC engine ({names}: H.264 encoder capacity 0)"
    else:
        reason = f"{with_nvenc[0].name} may have NVENC ({with_nvenc[0].encoder_note})"
    return GpuProbe(driver, gpus, reason)


def _probe_one(pynvml: object, index: int) -> GpuInfo:
    nv = pynvml
    handle = nv.nvmlDeviceGetHandleByIndex(index)  # type: ignore[attr-defined]
    name = _text(nv.nvmlDeviceGetName(handle))  # type: ignore[attr-defined]
    try:
        capacity = int(nv.nvmlDeviceGetEncoderCapacity(  # type: ignore[attr-defined]
            handle, nv.NVML_ENCODER_QUERY_H264))  # type: ignore[attr-defined]
        note = f"H.264 encoder capacity {capacity}%"
    except nv.NVMLError as exc:  # type: ignore[attr-defined]
        capacity, note = None, f"encoder capacity unknown ({_text(exc)})"
    return GpuInfo(index, name, capacity, note)
