"""BPSK over Rayleigh block fading with receiver channel knowledge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .awgn import bpsk, check_snr_db, check_soft, noise_sigma
from .base import Channel, Received, _set, check_int, register
from .capacity import binary_entropy, rayleigh_biawgn_capacity, rayleigh_bpsk_hard_crossover

__all__ = ["RayleighBlockFading"]


@register("fading")
@dataclass(frozen=True)
class RayleighBlockFading(Channel):
    """BPSK over Rayleigh block fading.

    Parameters
    ----------
    snr_db : finite float in [-100, 100]
        Average Es/N0 per BPSK symbol in dB (the CLI's ``--snr-db``).
    block_bits : int >= 1, default 64
        Consecutive bits sharing one fade (the last block may be shorter).
    soft : bool, default True
        ``False`` gives the hard-decision view (``llr = None``).

    Model: ``y = a x + n`` with BPSK ``x = +-1`` (``Es = 1``), noise as for
    ``awgn`` (``sigma^2 = N0/2``), and amplitude ``a`` Rayleigh with
    ``E[a^2] = 1``, drawn once per block. The receiver knows ``a`` (CSI):
    ``llr = 2 a y sqrt(Es) / sigma^2``; ``hard = (y < 0)``.
    Draw order: all fades, then all noise.
    """

    param: ClassVar[str] = "snr_db"

    snr_db: float = 0.0
    block_bits: int = 64
    soft: bool = True

    def __post_init__(self) -> None:
        _set(self, "snr_db", check_snr_db(self.snr_db, "fading"))
        _set(self, "block_bits", check_int(self.block_bits, "block_bits", "fading", lo=1))
        _set(self, "soft", check_soft(self.soft, "fading"))

    @property
    def sigma(self) -> float:
        return noise_sigma(self.snr_db)

    @property
    def crossover_probability(self) -> float:
        """Average error rate of the hard decisions:
        ``E_a[Q(a sqrt(2 Es/N0))] = (1 - sqrt(g/(1+g)))/2``, g = Es/N0."""
        return rayleigh_bpsk_hard_crossover(self.snr_db)

    def fades(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Per-bit fade amplitudes (float32, constant over each block);
        consumes exactly the draws a call on ``n`` bits makes first."""
        k = self.block_bits
        n_blocks = -(-n // k)
        a = rng.rayleigh(scale=np.sqrt(0.5), size=n_blocks).astype(np.float32)
        return np.repeat(a, k)[:n]

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        n = bits.shape[0]
        sigma = self.sigma
        a = self.fades(n, rng)
        y = rng.standard_normal(n, dtype=np.float32)
        y *= np.float32(sigma)
        y += a * bpsk(bits)
        hard = (y < 0).view(np.int8)
        if not self.soft:
            return Received(hard=hard, llr=None)
        a *= np.float32(2.0 / sigma**2)
        a *= y  # llr = 2 a y sqrt(Es) / sigma^2
        return Received(hard=hard, llr=a)

    def capacity(self) -> float:
        """Soft: ergodic average over the fade of the BI-AWGN capacity
        (numerical integration; receiver CSI). Hard view:
        ``1 - h(average crossover)``, the memoryless bound a receiver that
        ignores the block structure gets (a lower bound)."""
        if self.soft:
            return rayleigh_biawgn_capacity(self.snr_db)
        return 1.0 - binary_entropy(self.crossover_probability)
