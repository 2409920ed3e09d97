"""PSNR, MS-SSIM, bits per pixel, confidence intervals, Bjøntegaard deltas (BD-rate, BD-PSNR).

PSNR is computed on 8-bit RGB (peak 255) over all three channels, the way
CompressAI's ``psnr-rgb`` is. MS-SSIM follows Wang, Simoncelli & Bovik,
"Multi-scale structural similarity for image quality assessment" (Asilomar
2003): 11x11 Gaussian window (sigma 1.5), five scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), K1 = 0.01, K2 = 0.03, computed per
RGB channel on [0, 1] data and averaged (as pytorch-msssim does). Images too
small for five scales (shorter side < 161 px) use the scales that fit, with
the weights renormalised.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as library_ms_ssim

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two uint8 images; identical images give +inf."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    c = x.shape[1]
    wh = win.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wv = win.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wh, groups=c), wv, groups=c)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    cs = (2 * sxy + C2) / (sxx + syy + C2)
    ssim = ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * cs
    return ssim.mean(dim=(2, 3)), cs.mean(dim=(2, 3))


#: Smallest image side the 5-scale MS-SSIM takes (the 11-tap window after 4 halvings).
MS_SSIM_MIN_SIDE = 161


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB images (H, W, 3), in [0, 1] (1 = identical): Wang, Simoncelli &
    Bovik 2003, 5 scales with their weights, 11-tap Gaussian window (sigma 1.5), per channel
    and averaged over R, G, B, data range 255.

    Computed by ``pytorch_msssim`` (float32) for images whose smaller side is at least
    ``MS_SSIM_MIN_SIDE``; smaller images, which the 5-scale definition does not cover, use
    ``ms_ssim_reduced`` (as many scales as fit)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return ms_ssim_reduced(a, b)
    # channels-last: the library's depthwise Gaussian filters run 2.6x faster on the CPU (same
    # values to float32 rounding)
    x = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    y = torch.tensor(b, dtype=torch.float32).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return float(library_ms_ssim(x, y, data_range=255.0, size_average=True, weights=list(MSSSIM_WEIGHTS)))


def ms_ssim_reduced(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM in float64 with as many scales as the image allows (at most 5; a smaller window
    below 11 pixels); equal to the 5-scale definition where it applies and the sides stay even
    at every scale. Used for small images, and as the independent check of ``ms_ssim``."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    x = torch.from_numpy(np.array(a, dtype=np.float64)).permute(2, 0, 1)[None] / 255.0
    y = torch.from_numpy(np.array(b, dtype=np.float64)).permute(2, 0, 1)[None] / 255.0
    win = _gaussian_window()
    side = min(a.shape[:2])
    levels = 1
    while levels < 5 and side // (2 ** levels) >= 11:
        levels += 1
    if side < 11:
        win = _gaussian_window(side if side % 2 else side - 1 or 1, 1.5)
    weights = torch.tensor(MSSSIM_WEIGHTS[:levels], dtype=torch.float64)
    weights = weights / weights.sum()
    values = []
    for i in range(levels):
        ssim, cs = _ssim_parts(x, y, win)
        if i < levels - 1:
            values.append(torch.relu(cs))
            x = F.avg_pool2d(x, 2, ceil_mode=False)
            y = F.avg_pool2d(y, 2, ceil_mode=False)
        else:
            values.append(torch.relu(ssim))
    stack = torch.stack(values, dim=0)  # (levels, 1, C)
    out = torch.prod(stack ** weights.view(-1, 1, 1), dim=0)
    return float(out.mean())


def bpp(bits: int, height: int, width: int) -> float:
    return bits / float(height * width)


def mean_ci95(values) -> dict:
    """Mean and 95% confidence half-width (Student t) of a sample; half-width inf for n < 2."""
    from scipy import stats  # scipy.stats (~0.5 s to import) only for confidence intervals

    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        return {"mean": float("nan"), "ci95": float("inf")}
    if n == 1:
        return {"mean": float(v[0]), "ci95": float("inf")}
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": float(v.mean()), "ci95": half}


# --------------------------------------------------------------------------- Bjøntegaard deltas

def _pchip_mean(x, y, lo, hi):
    """Mean of the PCHIP interpolant of y(x) over [lo, hi] (x strictly increasing)."""
    from scipy.interpolate import PchipInterpolator  # scipy.interpolate (~0.2 s to import) only for BD rates

    return PchipInterpolator(x, y).integrate(lo, hi) / (hi - lo)


def _sorted_unique(x, y):
    """(x, y) sorted by x, keeping the first of equal x values."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    keep = np.concatenate([[True], np.diff(x) > 0])
    return x[keep], y[keep]


def _bd(xa, ya, xb, yb) -> float:
    """Mean difference of curve b over curve a (y as a function of x) on the overlap of x."""
    xa, ya = _sorted_unique(xa, ya)
    xb, yb = _sorted_unique(xb, yb)
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if len(xa) < 2 or len(xb) < 2 or hi <= lo:
        return float("nan")
    return float(_pchip_mean(xb, yb, lo, hi) - _pchip_mean(xa, ya, lo, hi))


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjøntegaard delta rate (%) of curve b against anchor a: the average rate difference
    at equal PSNR over the overlapping PSNR range, log-rate interpolated with monotone
    piecewise-cubic (PCHIP, scipy) as in the current Bjøntegaard practice (VCEG-AL22 / JVET).
    Negative: b needs fewer bits. NaN when the PSNR ranges do not overlap."""
    d = _bd(psnr_a, np.log(rate_a), psnr_b, np.log(rate_b))
    return float((np.exp(d) - 1) * 100) if np.isfinite(d) else d


def bd_psnr(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjøntegaard delta PSNR (dB) of curve b against anchor a over the overlapping log-rate range."""
    return _bd(np.log(rate_a), psnr_a, np.log(rate_b), psnr_b)
