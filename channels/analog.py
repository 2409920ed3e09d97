"""Analog channels: complex channel symbols in, noisy complex symbols out (for learned JSCC).

The digital channels of this package carry bits; an analog scheme (Deep JSCC) puts real
numbers straight onto the channel. A symbol vector ``x`` (complex64, shape (n,), average
energy E|x|^2 = 1 per complex channel use) crosses

* ``AnalogAWGN(snr_db)``: y = x + w, w ~ CN(0, N0) with N0 = 10^(-snr_db/10), i.e. ``snr_db``
  is Es/N0 per complex channel use, the same number as ``--snr-db`` of the digital links;
* ``AnalogRayleighBlock(snr_db, block)``: y = h x + w with h ~ CN(0, 1) constant over blocks
  of ``block`` consecutive symbols; the receiver knows h and equalises, x_hat = y / h (the
  noise on x_hat is CN(0, N0 / |h|^2)).

``channel(x, rng)`` returns the equalised symbols (complex64, same shape). Same seed, same noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _check_snr(snr_db: float) -> float:
    snr_db = float(snr_db)
    if not math.isfinite(snr_db) or not -30.0 <= snr_db <= 60.0:
        raise ValueError(f"snr_db must be in [-30, 60] dB, got {snr_db}")
    return snr_db


def noise_std(snr_db):
    """Standard deviation of each real dimension of the complex noise CN(0, N0) at Es/N0 = ``snr_db``
    dB for unit symbol energy: sqrt(N0 / 2), N0 = 10^(-snr_db / 10). Takes a number, a numpy array
    or a torch tensor (per-crop SNRs): the one noise level of these channels and of Deep JSCC's
    training (``vqcodec.learn.jscc``), so the two cannot drift apart."""
    return (10.0 ** (-snr_db / 10.0) / 2.0) ** 0.5


def _noise(n: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal((n, 2)) * noise_std(snr_db)
    return (w[:, 0] + 1j * w[:, 1]).astype(np.complex64)


@dataclass(frozen=True)
class AnalogAWGN:
    """Complex AWGN at Es/N0 = ``snr_db`` per channel use."""

    snr_db: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", _check_snr(self.snr_db))

    @property
    def n0(self) -> float:
        return 10.0 ** (-self.snr_db / 10.0)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, np.complex64).ravel()
        return x + _noise(x.size, self.snr_db, rng)


@dataclass(frozen=True)
class AnalogRayleighBlock:
    """Rayleigh block fading (h ~ CN(0, 1) per ``block`` symbols, known at the receiver) plus AWGN
    at average Es/N0 = ``snr_db``; returns the zero-forcing equalised symbols y / h."""

    snr_db: float
    block: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", _check_snr(self.snr_db))
        if int(self.block) < 1:
            raise ValueError(f"block must be >= 1 symbol, got {self.block}")

    @property
    def n0(self) -> float:
        return 10.0 ** (-self.snr_db / 10.0)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, np.complex64).ravel()
        nb = -(-x.size // self.block)
        g = rng.standard_normal((nb, 2)) * math.sqrt(0.5)
        h = np.repeat((g[:, 0] + 1j * g[:, 1]).astype(np.complex64), self.block)[: x.size]
        y = h * x + _noise(x.size, self.snr_db, rng)
        return (y / h).astype(np.complex64)
