import math

import numpy as np
import pytest
from scipy import stats

from vqcodec.metrics import bd_psnr, bd_rate, mean_ci95, ms_ssim, ms_ssim_reduced, psnr


def test_psnr_closed_form():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE = 100 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (100 / 48)))
    assert psnr(a, a) == math.inf


def test_ms_ssim_identity_and_order(rgb_image):
    big = np.tile(rgb_image, (6, 4, 1))[:200, :200]
    assert ms_ssim(big, big) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    n1 = np.clip(big + rng.normal(0, 5, big.shape), 0, 255).astype(np.uint8)
    n2 = np.clip(big + rng.normal(0, 25, big.shape), 0, 255).astype(np.uint8)
    assert 1 > ms_ssim(big, n1) > ms_ssim(big, n2) > 0


def test_ms_ssim_is_the_five_scale_definition(rgb_image):
    """The library (float32) against the independent float64 implementation on a 256 x 320 image
    (even sides at every scale, where both follow Wang et al. exactly), and not single-scale SSIM."""
    import torch

    from vqcodec.metrics import _gaussian_window, _ssim_parts

    a = np.tile(rgb_image, (8, 8, 1))[:256, :320]
    rng = np.random.default_rng(1)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    v = ms_ssim(a, b)
    assert v == pytest.approx(ms_ssim_reduced(a, b), abs=1e-5)
    x, y = (torch.from_numpy(t.astype(np.float64)).permute(2, 0, 1)[None] / 255 for t in (a, b))
    single = float(_ssim_parts(x, y, _gaussian_window())[0].mean())
    assert abs(v - single) > 0.01


def test_ms_ssim_small_image(rgb_image):
    small = rgb_image[:20, :20]
    assert ms_ssim(small, small) == pytest.approx(1.0)


def test_ci_matches_t_interval():
    v = np.array([1.0, 2.0, 4.0, 3.0])
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    r = mean_ci95(v)
    assert r["mean"] == pytest.approx(2.5)
    assert r["ci95"] == pytest.approx((hi - lo) / 2)
    assert mean_ci95([3.0])["ci95"] == math.inf


def test_bd_rate_known_answer():
    r = np.array([0.1, 0.2, 0.4, 0.8])
    p = np.array([25.0, 28.0, 31.0, 34.0])
    # same PSNR at 20% fewer bits everywhere: BD-rate is exactly -20%
    assert bd_rate(r, p, 0.8 * r, p) == pytest.approx(-20.0, abs=1e-9)
    # +1 dB everywhere at the same rates: BD-PSNR is exactly 1
    assert bd_psnr(r, p, r, p + 1.0) == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(bd_rate(r, p, r, p + 100))  # no overlap
