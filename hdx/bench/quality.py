"""Picture quality of decoded video against what was captured, on the luma plane.

Luma because every candidate gets the same 4:2:0 conversion: the codecs differ only in what they
do to the planes. PSNR and SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5) are the usual
pair; *edge PSNR* is PSNR over the pixels next to strong source edges only, which is where text
and UI lines blur first, and where a full-frame average hides it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.uint8]
EDGE_THRESHOLD = 64.0
"""A source pixel is an edge where its Sobel gradient magnitude exceeds this (8-bit luma)."""
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def luma(bgra: npt.NDArray[np.uint8]) -> Plane:
    """The Y plane hdx's encoder feeds (OpenCV BT.601 limited range, as in I420)."""
    h, w = bgra.shape[:2]
    i420 = cv2.cvtColor(bgra, cv2.COLOR_BGRA2YUV_I420)
    return np.ascontiguousarray(i420[:h, :w])


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def psnr(reference: Plane, decoded: Plane) -> float:
    """PSNR in dB (inf when identical)."""
    diff = reference.astype(np.float32) - decoded.astype(np.float32)
    return _psnr(float(np.mean(diff * diff)))


def edge_mask(reference: Plane) -> npt.NDArray[np.bool_]:
    """Pixels within one pixel of a strong edge of ``reference``."""
    gx = cv2.Sobel(reference, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(reference, cv2.CV_32F, 0, 1, ksize=3)
    strong = (cv2.magnitude(gx, gy) > EDGE_THRESHOLD).astype(np.uint8)
    return np.asarray(cv2.dilate(strong, np.ones((3, 3), np.uint8)) > 0)


def edge_psnr(reference: Plane, decoded: Plane, mask: npt.NDArray[np.bool_] | None = None
              ) -> float | None:
    """PSNR over :func:`edge_mask` pixels only; None when the picture has no strong edges."""
    mask = edge_mask(reference) if mask is None else mask
    if not mask.any():
        return None
    diff = reference[mask].astype(np.float32) - decoded[mask].astype(np.float32)
    return _psnr(float(np.mean(diff * diff)))


def ssim(reference: Plane, decoded: Plane) -> float:
    """Mean SSIM over the picture (1.0 when identical)."""
    x, y = reference.astype(np.float32), decoded.astype(np.float32)

    def blur(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(cv2.GaussianBlur(a, (11, 11), 1.5), np.float32)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + _C1) * (2 * sxy + _C2)
    den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
    return float(np.mean(num / den))
