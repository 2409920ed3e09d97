"""Capacity formulas (bits per channel use) and BPSK error-rate helpers.

All SNRs are Es/N0 per BPSK symbol in dB (DESIGN.md). With ``Es = 1`` and
``sigma^2 = N0 / 2`` the LLR of a BPSK symbol sent as bit 0 over AWGN is
Gaussian ``N(mu, 2 mu)`` with ``mu = 4 Es/N0``; the binary-input AWGN
capacity is ``1 - E[log2(1 + exp(-L))]`` over that distribution.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import integrate, special

__all__ = [
    "binary_entropy",
    "bsc_capacity",
    "erasure_capacity",
    "biawgn_capacity",
    "rayleigh_biawgn_capacity",
    "q_function",
    "bpsk_hard_crossover",
    "rayleigh_bpsk_hard_crossover",
    "db_to_linear",
]

_LN2 = math.log(2.0)


def db_to_linear(db: float) -> float:
    return 10.0 ** (db / 10.0)


def binary_entropy(p: float) -> float:
    """h(p) = -p log2 p - (1-p) log2 (1-p), with h(0) = h(1) = 0."""
    p = float(p)
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p)))


def bsc_capacity(p: float) -> float:
    """Capacity of the binary symmetric channel: ``1 - h(p)``."""
    return 1.0 - binary_entropy(p)


def erasure_capacity(p: float) -> float:
    """Capacity of the binary erasure channel: ``1 - p``."""
    return 1.0 - float(p)


def q_function(x: float) -> float:
    """Gaussian tail ``Q(x) = P(N(0,1) > x)``."""
    return float(0.5 * special.erfc(x / math.sqrt(2.0)))


def bpsk_hard_crossover(snr_db: float) -> float:
    """Crossover probability of hard-decision BPSK over AWGN:
    ``Q(sqrt(2 Es/N0))``."""
    return q_function(math.sqrt(2.0 * db_to_linear(snr_db)))


def rayleigh_bpsk_hard_crossover(snr_db: float) -> float:
    """Average hard-decision BPSK error rate over Rayleigh fading with
    ``E[a^2] = 1``: ``E_a[Q(a sqrt(2 Es/N0))] = (1 - sqrt(g / (1 + g))) / 2``."""
    g = db_to_linear(snr_db)
    return 0.5 * (1.0 - math.sqrt(g / (1.0 + g)))


def _biawgn_linear(snr: float) -> float:
    """BI-AWGN capacity for linear Es/N0 ``snr`` (>= 0), by quadrature over
    the standard normal ``z`` with ``L = mu + sqrt(2 mu) z``."""
    if snr <= 0.0:
        return 0.0
    mu = 4.0 * snr
    s = math.sqrt(2.0 * mu)

    def integrand(z: float) -> float:
        # phi(z) * log2(1 + exp(-L)), stable for both signs of L
        return math.exp(-0.5 * z * z) * np.logaddexp(0.0, -(mu + s * z))

    z0 = -mu / s  # where L = 0: the integrand's knee
    lo, hi = -40.0, 40.0
    points = [z0] if lo < z0 < hi else None
    val, _ = integrate.quad(integrand, lo, hi, points=points, limit=200, epsabs=1e-13, epsrel=1e-11)
    loss = val / (math.sqrt(2.0 * math.pi) * _LN2)
    return float(min(1.0, max(0.0, 1.0 - loss)))


@lru_cache(maxsize=1024)
def biawgn_capacity(snr_db: float) -> float:
    """Capacity (bits per channel use) of BPSK over AWGN with soft output at
    Es/N0 = ``snr_db`` (0 dB -> 0.486), by numerical integration."""
    return _biawgn_linear(db_to_linear(float(snr_db)))


@lru_cache(maxsize=1024)
def rayleigh_biawgn_capacity(snr_db: float) -> float:
    """Ergodic capacity of BPSK over Rayleigh fading with receiver CSI:
    ``E_g[C_BIAWGN(g * Es/N0)]`` with fade power ``g = a^2 ~ Exp(1)``."""
    snr = db_to_linear(float(snr_db))

    def integrand(g: float) -> float:
        return math.exp(-g) * _biawgn_linear(g * snr)

    # the knee of C(g*snr) sits near g ~ 1/snr; split there for accuracy
    knee = min(1.0 / snr, 40.0)
    a, _ = integrate.quad(integrand, 0.0, knee, limit=200, epsabs=1e-12)
    b, _ = integrate.quad(integrand, knee, 50.0, limit=200, epsabs=1e-12)
    return float(min(1.0, max(0.0, a + b)))
