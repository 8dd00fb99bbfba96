"""Benchmark scenarios: named, deterministic screen recordings described in a TOML manifest.

A scenario is what a remote display actually has to carry: a document being typed into, a CT
cine on a workstation, a 5 MP grey diagnostic screen paging through slices (8-bit, or 10-bit
samples of which video carries the top 8), a scrolling document, full-frame noisy video, or
the user's own images (PNG/TIFF, DICOM with the ``dicom`` extra). Every generated frame depends
only on the manifest entry, so sizes and qualities compare across machines and commits.

The manifest (``benchmarks/scenarios/default.toml``) is a list of ``[[scenario]]`` tables with
``name``, ``kind`` (one of :data:`KINDS`), ``width``, ``height``, ``frames``, ``fps`` and
optionally ``bits``, ``seed``, ``path`` and ``description``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hdx.bench import content
from hdx.bench.report import REPO
from hdx.errors import HdxError
from hdx.sources.synthetic import SyntheticDesktop, _phantom_hu

BGRA = npt.NDArray[np.uint8]
Grey16 = npt.NDArray[np.uint16]
DEFAULT_MANIFEST = REPO / "benchmarks" / "scenarios" / "default.toml"
QUICK_SIZE = (320, 192)
"""``--quick`` shrinks every scenario to this (grey portrait screens to its transpose)."""
QUICK_FRAMES = 8
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".dcm")


class ScenarioError(HdxError, ValueError):
    """A manifest entry or user image that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One entry of the manifest."""

    name: str
    kind: str
    width: int
    height: int
    frames: int = 60
    fps: int = 30
    bits: int = 8
    seed: int = 0
    path: Path | None = None
    description: str = ""
    content: str = field(default="ui")
    """``ui`` (text and edges: edge PSNR matters), ``medical`` or ``video``."""

    def frame_list(self) -> list[BGRA]:
        """Every frame as BGRA (what hdx captures): generated once, shared by all encoders."""
        return list(KINDS[self.kind].frames(self))

    def high_bit_samples(self) -> Grey16 | None:
        """For grey scenarios with more than 8 bits: the first frame's samples (what a lossless
        path must keep); None otherwise."""
        if self.bits <= 8:
            return None
        maker = KINDS[self.kind].samples
        return None if maker is None else maker(self)

    def describe(self) -> dict[str, Any]:
        """The entry as JSON for reports."""
        return {"name": self.name, "kind": self.kind, "width": self.width,
                "height": self.height, "frames": self.frames, "fps": self.fps,
                "bits": self.bits, "seed": self.seed, "content": self.content,
                "path": None if self.path is None else str(self.path),
                "description": self.description or KINDS[self.kind].description}

    def quick(self) -> Scenario:
        """A tiny version for smoke tests: the same kind at :data:`QUICK_SIZE`, few frames."""
        w, h = QUICK_SIZE if self.width >= self.height else QUICK_SIZE[::-1]
        if self.kind in ("image", "images"):
            w, h = self.width, self.height
        return replace(self, width=w, height=h, frames=min(self.frames, QUICK_FRAMES))


@dataclass(frozen=True, slots=True)
class Kind:
    """How a scenario kind makes its frames."""

    frames: Callable[[Scenario], Iterator[BGRA]]
    description: str
    content: str
    samples: Callable[[Scenario], Grey16] | None = None


# -- generators ---------------------------------------------------------------------------

_SENTENCE = ("Findings: no focal liver lesion. Spleen and kidneys unremarkable. Impression: "
             "normal abdominal CT. ")


def _typing(s: Scenario) -> Iterator[BGRA]:
    """A document screen; each frame types two more characters of a report and blinks a caret:
    the small, sharp changes of office work."""
    base = content.text_screen_bgra(s.width, s.height, seed=s.seed)
    scale = max(0.35, s.height / 1600)
    line_h = int(28 * scale / 0.45) or 1
    x0, y0 = max(8, s.width // 5), max(line_h, s.height // 3)
    cv2.rectangle(base, (x0 - 6, y0 - line_h), (s.width - 16, y0 + 3 * line_h),
                  (255, 255, 255, 255), cv2.FILLED)
    frame = base.copy()
    typed = ""
    for i in range(s.frames):
        typed += _SENTENCE[(2 * i) % len(_SENTENCE)] + _SENTENCE[(2 * i + 1) % len(_SENTENCE)]
        frame[...] = base
        lines = [typed[k:k + 70] for k in range(0, len(typed), 70)][-3:]
        for n, text in enumerate(lines):
            cv2.putText(frame, text, (x0, y0 + n * line_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (20, 20, 20, 255), 1, cv2.LINE_AA)
        if (i // 8) % 2 == 0:  # caret blinks about twice a second at 30 fps
            width = int(cv2.getTextSize(lines[-1], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0])
            y = y0 + (len(lines) - 1) * line_h
            cv2.line(frame, (x0 + width + 2, y - line_h + 6), (x0 + width + 2, y + 4),
                     (0, 0, 0, 255), 1)
        frame[..., 3] = 255
        yield frame.copy()


def _ct_cine(s: Scenario) -> Iterator[BGRA]:
    """hdx's synthetic radiology workstation with its CT viewport paging one slice a frame."""
    desktop = SyntheticDesktop(s.width, s.height, cine_seconds=-1, fps=s.fps)
    for _ in range(s.frames):
        yield np.array(desktop.next_frame(), copy=True)


def _grey_slices(s: Scenario, index: int) -> Grey16:
    """Slice ``index`` of the 3-D phantom, windowed to ``bits`` significant bits, on a
    portrait diagnostic screen: the image fills the width, text overlays top and bottom."""
    side = min(s.width, s.height)
    n = min(side, 1024)  # the phantom at most 1024 px, magnified as a viewer would
    z = -0.6 + 1.2 * ((index * 0.37 + s.seed * 0.11) % 1.0)
    hu = _phantom_hu(z, n)
    rng = np.random.default_rng(s.seed * 1000 + index)
    hu = hu + cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), 0.8) * 12
    full = 2**s.bits - 1
    grey = np.clip((hu + 160.0) * (full / 400.0), 0, full)
    if n != side:
        grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_CUBIC)
    screen = np.zeros((s.height, s.width), np.float32)
    top = (s.height - side) // 2
    screen[top:top + side, (s.width - side) // 2:(s.width - side) // 2 + side] = grey
    scale = max(0.4, s.width / 1400)
    overlay = np.zeros((s.height, s.width), np.uint8)  # OpenCV draws text into 8 bits only
    for k, text in enumerate((f"Se 2 Im {index + 1}", "W:400 L:40", "5 MP diagnostic")):
        cv2.putText(overlay, text, (16, 40 + k * int(40 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, 255, 1, cv2.LINE_AA)
    screen = np.maximum(screen, overlay.astype(np.float32) * np.float32(full / 255))
    samples: Grey16 = np.clip(np.rint(screen), 0, full).astype(np.uint16)
    return samples


def _grey_screen(s: Scenario) -> Iterator[BGRA]:
    """A grey diagnostic screen paging through slices; video carries the top 8 bits."""
    for i in range(s.frames):
        yield content.grey_to_bgra(content.grey8(_grey_slices(s, i), s.bits))


def _scroll(s: Scenario) -> Iterator[BGRA]:
    """A long document scrolled by a fixed step a frame, as a wheel-driven reader does."""
    step = max(2, s.height // 120)
    page = content.text_screen_bgra(s.width, s.height * 3, seed=s.seed)
    for i in range(s.frames):
        top = (i * step) % (page.shape[0] - s.height)
        yield np.ascontiguousarray(page[top:top + s.height])


def _noisy_video(s: Scenario) -> Iterator[BGRA]:
    """Full-frame camera-like video: a drifting, slowly rotating smooth colour field with
    sensor noise, so every pixel changes every frame."""
    rng = np.random.default_rng(s.seed)
    big = max(s.width, s.height) * 2
    noise = rng.standard_normal((big // 8, big // 8, 3)).astype(np.float32)
    smooth = np.asarray(cv2.resize(cv2.GaussianBlur(noise, (0, 0), 3.0), (big, big),
                                   interpolation=cv2.INTER_CUBIC), np.float32)
    field = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6) * 200 + 28
    centre = (big / 2, big / 2)
    for i in range(s.frames):
        angle = 0.2 * i
        matrix = np.asarray(cv2.getRotationMatrix2D(centre, angle, 1.0), np.float64)
        matrix[:, 2] += np.array([-big / 4 - 3 * i, -big / 4 - 2 * i])
        view = np.asarray(cv2.warpAffine(field, matrix, (s.width, s.height),
                                         flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT), np.float32)
        view = view + rng.normal(0, 6, view.shape).astype(np.float32)
        out = np.empty((s.height, s.width, 4), np.uint8)
        out[..., :3] = np.clip(view, 0, 255).astype(np.uint8)
        out[..., 3] = 255
        yield out


def _load_image(path: Path) -> tuple[npt.NDArray[Any], int]:
    """A user image as (samples, significant bits): PNG/TIFF through OpenCV, DICOM through
    pydicom (the ``dicom`` extra)."""
    if path.suffix.lower() == ".dcm":
        try:
            import pydicom  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise ScenarioError(f"{path}: DICOM needs the dicom extra "
                                "(pip install 'hdx[dicom]')") from exc
        try:
            ds = pydicom.dcmread(path)
            pixels = np.asarray(ds.pixel_array)
        except Exception as exc:  # pydicom raises many types for bad or compressed files
            raise ScenarioError(f"{path}: cannot read DICOM pixels: {exc}") from exc
        bits = int(getattr(ds, "BitsStored", 8 * pixels.dtype.itemsize))
        if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
            pixels = pixels[0]  # a multi-frame series: its first frame
        if pixels.dtype.kind == "i":
            pixels = (pixels.astype(np.int32) - int(pixels.min())).astype(np.uint16)
        return pixels, min(16, max(1, bits))
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ScenarioError(f"{path}: not a readable PNG or TIFF image")
    return image, 8 * image.dtype.itemsize


def _image_bgra(path: Path, bits_out: list[int]) -> BGRA:
    samples, bits = _load_image(path)
    bits_out.append(bits)
    if samples.dtype != np.uint8:
        top = max(8, min(16, bits))
        samples = (np.clip(samples, 0, 2**top - 1).astype(np.uint32) >> (top - 8)).astype(np.uint8)
    if samples.ndim == 2:
        return content.grey_to_bgra(samples)
    if samples.shape[2] == 3:
        return np.asarray(cv2.cvtColor(samples, cv2.COLOR_BGR2BGRA), np.uint8)
    out = np.array(samples[..., :4], np.uint8, copy=True)
    out[..., 3] = 255
    return out


def _image_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ScenarioError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} files in this folder")
        return files
    if not path.is_file():
        raise ScenarioError(f"{path}: no such file or folder")
    return [path]


def _images(s: Scenario) -> Iterator[BGRA]:
    """The user's images as a slide show: each shown for ``frames / len(images)`` frames (a
    single image is a still screen), padded or cropped to the scenario size."""
    assert s.path is not None
    files = _image_files(s.path)
    hold = max(1, math.ceil(s.frames / len(files)))
    made = 0
    for file in files:
        image = _image_bgra(file, [])
        canvas = np.zeros((s.height, s.width, 4), np.uint8)
        canvas[..., 3] = 255
        h, w = min(s.height, image.shape[0]), min(s.width, image.shape[1])
        canvas[:h, :w] = image[:h, :w]
        for _ in range(hold):
            if made == s.frames:
                return
            made += 1
            yield canvas


KINDS: dict[str, Kind] = {
    "typing": Kind(_typing, "a document screen, two characters typed a frame, caret blinking",
                   "ui"),
    "ct_cine": Kind(_ct_cine, "the synthetic radiology workstation, CT viewport in cine",
                    "medical"),
    "grey_screen": Kind(_grey_screen, "a portrait grey diagnostic screen paging CT slices",
                        "medical", lambda s: _grey_slices(s, 0)),
    "scroll": Kind(_scroll, "a long document scrolling at a fixed step a frame", "ui"),
    "noisy_video": Kind(_noisy_video, "full-frame camera-like video with sensor noise", "video"),
    "images": Kind(_images, "user images (PNG/TIFF/DICOM), a slide show or a still", "medical"),
}


def _int(entry: dict[str, Any], key: str, default: int | None, low: int, high: int,
         where: str) -> int:
    value = entry.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}: '{key}' is required")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ScenarioError(f"{where}: '{key}' must be an integer from {low} to {high}, "
                            f"not {value!r}")
    return value


def scenario_from(entry: dict[str, Any], where: str, base: Path) -> Scenario:
    """Check one manifest table and make its :class:`Scenario` (``base``: for relative paths)."""
    known = {"name", "kind", "width", "height", "frames", "fps", "bits", "seed", "path",
             "description"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ScenarioError(f"{where}: 'name' must be letters, digits, '-' or '_', not {name!r}")
    if kind not in KINDS:
        raise ScenarioError(f"{where} ({name}): kind {kind!r} is not one of {sorted(KINDS)}")
    width = _int(entry, "width", None, 64, 8192, f"{where} ({name})")
    height = _int(entry, "height", None, 64, 8192, f"{where} ({name})")
    if width % 2 or height % 2:
        raise ScenarioError(f"{where} ({name}): 4:2:0 video needs even sizes, not "
                            f"{width}x{height}")
    path = entry.get("path")
    if kind == "images":
        if not isinstance(path, str):
            raise ScenarioError(f"{where} ({name}): kind 'images' needs a 'path'")
    description = entry.get("description", "")
    return Scenario(
        name=name, kind=kind, width=width, height=height,
        frames=_int(entry, "frames", 60, 1, 10_000, f"{where} ({name})"),
        fps=_int(entry, "fps", 30, 1, 240, f"{where} ({name})"),
        bits=_int(entry, "bits", 8, 8, 16, f"{where} ({name})"),
        seed=_int(entry, "seed", 0, 0, 2**31, f"{where} ({name})"),
        path=None if not isinstance(path, str) else (base / path).resolve(),
        description=str(description), content=KINDS[kind].content)


def load_manifest(path: Path) -> list[Scenario]:
    """Every scenario of the TOML manifest at ``path``, checked; names must be unique."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ScenarioError(f"scenario manifest {path} not found (pass --scenarios FILE; the "
                            "default lives in a source checkout's benchmarks/scenarios/)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("scenario")
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{path}: no [[scenario]] tables")
    out = [scenario_from(e, f"{path.name} [[scenario]] #{i + 1}", path.parent)
           for i, e in enumerate(entries)]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: scenario names repeat: {names}")
    return out


def user_scenarios(paths: list[Path], frames: int = 30, fps: int = 30) -> list[Scenario]:
    """One scenario per image file or folder the user named (``--images``), sized to its first
    image (rounded down to even); the first image must be readable now, so errors come early."""
    out = []
    for path in paths:
        first = _image_files(path)[0]
        bits: list[int] = []
        image = _image_bgra(first, bits)
        h, w = image.shape[0] & ~1, image.shape[1] & ~1
        if w < 64 or h < 64:
            raise ScenarioError(f"{first}: {w}x{h} is too small (at least 64x64)")
        out.append(Scenario(name=f"user-{path.stem}"[:40], kind="images", width=w, height=h,
                            frames=frames, fps=fps, bits=bits[0], path=path,
                            description=f"user images from {path}", content="medical"))
    return out


def select(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    """The scenarios called ``names`` (all when None), in manifest order."""
    if not names:
        return scenarios
    known = {s.name for s in scenarios}
    missing = [n for n in names if n not in known]
    if missing:
        raise ScenarioError(f"no scenario named {missing}; the manifest has {sorted(known)}")
    return [s for s in scenarios if s.name in names]
