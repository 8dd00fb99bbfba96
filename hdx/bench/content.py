"""Deterministic test content for benchmarks and tests: desktops, documents, CT and MR slices.

Every generator depends only on its arguments (sizes, bit depth, seed): the same call gives
byte-identical arrays on every machine, so compressed sizes are comparable across runs and
commits. BGRA images are ``(h, w, 4)`` uint8 with alpha 255, the layout hdx captures; grey
samples are ``(h, w)`` uint8 or uint16 with only the low ``bits`` bits used.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from hdx.sources.synthetic import SyntheticDesktop

BGRA = npt.NDArray[np.uint8]
Grey16 = npt.NDArray[np.uint16]
_F32 = npt.NDArray[np.float32]

_WORD_LETTERS = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
_LETTER_WEIGHTS = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
                            2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1])
_LETTER_P = _LETTER_WEIGHTS / _LETTER_WEIGHTS.sum()


def desktop_bgra(width: int = 1920, height: int = 1080) -> BGRA:
    """hdx's synthetic radiology workstation (worklist, CT viewport, no cine): a dark colour UI."""
    frame = SyntheticDesktop(width, height, cine_seconds=0).next_frame()
    return np.array(frame, dtype=np.uint8, copy=True)


def _words(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(1, 11, size=n)
    letters = rng.choice(_WORD_LETTERS, size=int(lengths.sum()), p=_LETTER_P)
    words, at = [], 0
    for length in lengths:
        words.append(letters[at : at + length].tobytes().decode())
        at += int(length)
    return words


def text_screen_bgra(width: int = 1280, height: int = 720, seed: int = 0) -> BGRA:
    """A document on a light desktop: title, menu, side and status bars, and many lines of
    anti-aliased text, mostly black with blue links, red marks and coloured headings."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 4), 255, np.uint8)
    font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA

    def bar(x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (*colour, 255), cv2.FILLED)

    def text(s: str, x: int, y: int, colour: tuple[int, int, int], scale: float = 0.45,
             thick: int = 1) -> int:
        cv2.putText(img, s, (x, y), font, scale, (*colour, 255), thick, aa)
        return int(cv2.getTextSize(s, font, scale, thick)[0][0])

    title_h, menu_h, status_h = 26, 24, 20
    side_w = min(200, width // 5)
    bar(0, 0, width, title_h, (64, 44, 32))
    text("report_final_v3.docx - Editor", 10, 18, (240, 240, 240), 0.5)
    bar(0, title_h, width, title_h + menu_h, (238, 238, 238))
    x = 10
    for item in ("File", "Edit", "View", "Insert", "Format", "Tools", "Help"):
        x += text(item, x, title_h + 17, (30, 30, 30)) + 18
    bar(0, height - status_h, width, height, (204, 122, 0))
    text(f"Page 1 of {int(rng.integers(2, 40))}   Words: {int(rng.integers(300, 9000))}",
         8, height - 6, (255, 255, 255), 0.4)
    top, bottom = title_h + menu_h, height - status_h
    bar(0, top, side_w, bottom, (243, 240, 236))
    y = top + 22
    for i, name in enumerate(_words(rng, max(0, (bottom - top - 10) // 22))):
        if i == 2:
            bar(0, y - 15, side_w, y + 6, (215, 120, 0))
            text(name.capitalize(), 12, y, (255, 255, 255))
        else:
            text(name.capitalize(), 12, y, (70, 70, 70))
        y += 22
    bar(width - 12, top, width, bottom, (230, 230, 230))
    bar(width - 10, top + 20, width - 2, top + 20 + max(8, (bottom - top) // 5), (180, 180, 180))

    left, right = side_w + 24, width - 30
    y = top + 28
    while y < bottom - 8:
        if rng.random() < 0.08:  # a heading
            colour = (140, 70, 20) if rng.random() < 0.5 else (40, 40, 40)
            text(" ".join(_words(rng, 4)).title(), left, y + 4, colour, 0.6, 2)
            y += 30
            continue
        x = left + (20 if rng.random() < 0.15 else 0)
        for word in _words(rng, 40):
            r = rng.random()
            colour = (200, 90, 20) if r < 0.06 else (30, 30, 200) if r < 0.08 else (20, 20, 20)
            w = int(cv2.getTextSize(word, font, 0.45, 1)[0][0])
            if x + w > right:
                break
            text(word, x, y, colour)
            if colour == (200, 90, 20):  # links are underlined
                cv2.line(img, (x, y + 2), (x + w, y + 2), (*colour, 255), 1)
            x += w + 7
        y += 18 if rng.random() > 0.12 else 30  # paragraph breaks
    img[..., 3] = 255
    return img


def _grid(size: int) -> tuple[_F32, _F32]:
    """Pixel-centre coordinates in [-1, 1]: (y, x), each (size, size)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    ones = np.ones(size, np.float32)
    return np.outer(c, ones).astype(np.float32), np.outer(ones, c).astype(np.float32)


def _ellipse(y: _F32, x: _F32, cx: float, cy: float, ax: float, ay: float,
             angle_deg: float = 0.0) -> npt.NDArray[np.bool_]:
    t = np.deg2rad(angle_deg)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(t) + dy * np.sin(t)
    v = -dx * np.sin(t) + dy * np.cos(t)
    return np.asarray((u / ax) ** 2 + (v / ay) ** 2 <= 1.0)


def _blur(image: _F32, sigma_px: float) -> _F32:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma_px), np.float32)


def _smooth_field(rng: np.random.Generator, size: int, sigma_px: float) -> _F32:
    """Gaussian-blurred white noise with unit standard deviation."""
    field = rng.standard_normal((size, size)).astype(np.float32)
    field = _blur(field, max(sigma_px, 0.3))
    return np.asarray(field / max(float(field.std()), 1e-6), np.float32)


def _to_samples(values: _F32, bits: int) -> Grey16:
    if not 8 <= bits <= 16:
        raise ValueError(f"bits must be 8..16, not {bits}")
    return np.clip(np.rint(values), 0, 2**bits - 1).astype(np.uint16)


def ct_phantom(size: int = 512, bits: int = 12, seed: int = 0) -> Grey16:
    """An abdominal CT slice as stored samples (HU + 1024 at 12 bits, scaled for other depths):
    table, fat, muscle, liver, spleen, kidneys, aorta, spine, bowel gas, fine organ texture, the
    scanner's blur and slightly correlated noise (about 12 HU); 0 outside the reconstruction
    circle."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    s = size / 512  # pixel-size-dependent parameters are tuned at 512
    j = rng.uniform(-0.02, 0.02, size=16)  # per-seed anatomy jitter
    hu = np.full((size, size), -1000.0, np.float32)
    table = (y > 0.80) & (y < 0.86) & (np.abs(x) < 0.85)
    hu[table] = 250.0
    hu[(y >= 0.86) & (y < 0.93) & (np.abs(x) < 0.8)] = -600.0
    body = _ellipse(y, x, j[0], 0.04 + j[1], 0.86 + j[2], 0.66 + j[3])
    hu[body] = -10.0  # skin
    hu[_ellipse(y, x, j[0], 0.04 + j[1], 0.845 + j[2], 0.645 + j[3])] = -100.0  # fat
    hu[_ellipse(y, x, j[0], 0.05 + j[1], 0.76 + j[2], 0.55 + j[3])] = 45.0  # muscle wall
    hu[_ellipse(y, x, 0.0, 0.02, 0.70, 0.48)] = 20.0  # peritoneum, bowel
    hu[_ellipse(y, x, -0.36 + j[4], -0.08 + j[5], 0.34, 0.30, 15.0)] = 62.0  # liver
    hu[_ellipse(y, x, 0.46 + j[6], -0.02 + j[7], 0.13, 0.20, -20.0)] = 50.0  # spleen
    hu[_ellipse(y, x, 0.22, -0.18, 0.16, 0.11)] = 30.0  # stomach (fluid)
    hu[_ellipse(y, x, 0.22, -0.25, 0.12, 0.04)] = -950.0  # stomach gas
    for side in (-1, 1):  # kidneys: cortex, medulla, fat around
        cx = side * (0.30 + j[8])
        hu[_ellipse(y, x, cx, 0.28 + j[9], 0.13, 0.17, side * 20.0)] = -90.0
        hu[_ellipse(y, x, cx, 0.28 + j[9], 0.10, 0.14, side * 20.0)] = 160.0
        hu[_ellipse(y, x, cx + side * 0.02, 0.28 + j[9], 0.05, 0.08, side * 20.0)] = 40.0
        hu[_ellipse(y, x, side * 0.16, 0.40, 0.09, 0.08)] = 55.0  # psoas
    hu[_ellipse(y, x, 0.06, 0.16, 0.045, 0.045)] = 210.0  # aorta (contrast)
    hu[_ellipse(y, x, -0.08, 0.14, 0.05, 0.04)] = 150.0  # vena cava
    hu[_ellipse(y, x, 0.0, 0.36, 0.115, 0.10)] = 1100.0  # vertebral body: cortex
    hu[_ellipse(y, x, 0.0, 0.36, 0.095, 0.08)] = 280.0  # cancellous bone
    hu[_ellipse(y, x, 0.0, 0.50, 0.045, 0.04)] = 10.0  # spinal canal
    hu[_ellipse(y, x, 0.0, 0.59, 0.03, 0.07)] = 900.0  # spinous process
    for _ in range(14):  # bowel gas and contrast-filled loops
        cx, cy = rng.uniform(-0.25, 0.35), rng.uniform(-0.05, 0.25)
        r = rng.uniform(0.015, 0.04)
        hu[_ellipse(y, x, cx, cy, r, r * rng.uniform(0.6, 1.4))] = (
            -900.0 if rng.random() < 0.6 else 300.0)
    tissue = (hu > -200) & (hu < 300)
    hu += np.where(tissue, 7.0 * _smooth_field(rng, size, 3.0 * s), 0.0).astype(np.float32)
    hu = _blur(hu, 0.9 * s)  # reconstruction kernel
    noise = _smooth_field(rng, size, 0.6 * s) * 12.0
    fov = x**2 + y**2 <= 0.97**2
    stored = np.where(fov, hu + 1024.0 + noise, 0.0).astype(np.float32)
    return _to_samples(stored * np.float32(2.0 ** (bits - 12)), bits)


def mr_phantom(size: int = 256, bits: int = 12, seed: int = 0) -> Grey16:
    """A T1-weighted axial brain MR slice: bright scalp fat, dark skull, grey and white matter
    with folded cortex, dark ventricles, a smooth receive-coil bias field, a softer blur than CT
    and Rician noise (non-zero background)."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    s = size / 256
    full = float(2**bits - 1)
    r, theta = np.hypot(x / 0.74, y / 0.90), np.arctan2(y, x)
    sig = np.zeros((size, size), np.float32)
    sig[r <= 1.0] = 0.80  # scalp fat
    sig[r <= 0.95] = 0.06  # skull
    sig[r <= 0.89] = 0.18  # CSF
    folds = sum(rng.uniform(0.1, 0.2) / k * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
                for k in (7, 11, 17, 26))
    sig[r <= 0.86 + folds] = 0.42  # cortex (grey matter)
    sig[r <= 0.74 + 1.5 * folds] = 0.62  # white matter
    sig[_ellipse(y, x, -0.25, 0.15, 0.09, 0.16)] = 0.46  # basal ganglia
    sig[_ellipse(y, x, 0.25, 0.15, 0.09, 0.16)] = 0.46
    sig[_ellipse(y, x, -0.10, -0.05, 0.06, 0.28, 12.0)] = 0.16  # lateral ventricles
    sig[_ellipse(y, x, 0.10, -0.05, 0.06, 0.28, -12.0)] = 0.16
    sig[_ellipse(y, x, 0.0, 0.32, 0.025, 0.05)] = 0.16  # third ventricle
    sig += np.where(sig > 0.3, 0.02 * _smooth_field(rng, size, 2.5 * s), 0.0).astype(np.float32)
    sig = _blur(sig, 1.2 * s)
    a, b = rng.uniform(-0.2, 0.2, size=2)
    bias = 1.0 + a * x + b * y - 0.18 * (x**2 + y**2)  # coil sensitivity falls off
    sig = sig * bias * np.float32(0.75 * full)
    sigma = np.float32(0.012 * full)
    re = sig + sigma * rng.standard_normal((size, size)).astype(np.float32)
    im = sigma * rng.standard_normal((size, size)).astype(np.float32)
    return _to_samples(np.hypot(re, im).astype(np.float32), bits)


def grey8(samples16: Grey16, bits: int) -> npt.NDArray[np.uint8]:
    """The top 8 of ``bits`` significant bits: ``samples >> (bits - 8)`` as uint8."""
    if not 8 <= bits <= 16:
        raise ValueError(f"bits must be 8..16, not {bits}")
    return (np.asarray(samples16, np.uint16) >> (bits - 8)).astype(np.uint8)


def grey_to_bgra(grey: npt.NDArray[np.uint8]) -> BGRA:
    """A grey image as BGRA with B = G = R = grey and alpha 255 (how hdx captures it)."""
    out = np.empty((*grey.shape, 4), np.uint8)
    out[..., :3] = np.asarray(grey, np.uint8)[..., None]
    out[..., 3] = 255
    return out


def noise_bgra(width: int, height: int, seed: int = 0) -> BGRA:
    """Uniformly random RGB (incompressible), alpha 255."""
    out = np.random.default_rng(seed).integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    out[..., 3] = 255
    return out


random_rgb_bgra = noise_bgra
"""The same as :func:`noise_bgra` (the name tests use)."""
