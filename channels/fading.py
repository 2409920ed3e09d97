"""BPSK ... 256-QAM over Rayleigh block fading with receiver channel knowledge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .awgn import Modulated, bpsk, check_flag, check_snr_db, check_soft, complex_noise
from .base import Channel, Received, _set, check_int, register
from .capacity import (
    bit_error_probabilities,
    rayleigh_bpsk_hard_crossover,
)
from .modulation import check_demapping, check_modulation, get_modulation

__all__ = ["RayleighBlockFading"]


@register("fading")
@dataclass(frozen=True)
class RayleighBlockFading(Modulated, Channel):
    """A Gray-labelled modulation (BPSK ... 256-QAM) over Rayleigh block fading.

    Parameters
    ----------
    snr_db : finite float in [-100, 100]
        Average Es/N0 per complex channel use in dB (the CLI's ``--snr-db``;
        for BPSK the same number as per BPSK symbol).
    block_bits : int >= 1, default 64
        Consecutive coded bits sharing one fade (the last block may be
        shorter). With m bits per symbol a fade block is ``block_bits / m``
        symbols, so ``block_bits`` must be a multiple of m (ValueError
        otherwise; e.g. 60 or 66 for qam64, whose m = 6 does not divide the
        default 64). ``block_bits = m`` is per-symbol (fast) fading.
    soft : bool, default True
        ``False`` gives the hard-decision view (``llr = None``).
    modulation : ``"bpsk" | "qpsk" | "qam16" | "qam64" | "qam256"``, default ``"bpsk"``
    demapping : ``"app"`` (exact, default) or ``"maxlog"`` (QAM only; equal for BPSK)
    scramble : bool, default True
        The 3GPP bit scrambling of ``awgn`` (:mod:`channels.scrambling`); ``False`` turns it off.

    Model: ``y = a x + n``, ``Es = 1``, noise as for ``awgn`` (real with
    ``sigma^2 = N0/2`` for BPSK, ``CN(0, N0)`` for QAM), and amplitude ``a``
    Rayleigh with ``E[a^2] = 1``, drawn once per block. The receiver knows
    ``a`` (CSI); a fade's phase would not matter to it, so ``a`` is real.
    BPSK: ``llr = 2 a y sqrt(Es) / sigma^2``; ``hard = (y < 0)``. QAM: the
    demapper of :mod:`channels.modulation` with ``h = a``; ``hard`` = the
    nearest point's bits. Draw order: all fades, then all noise.
    """

    param: ClassVar[str] = "snr_db"
    fading: ClassVar[str] = "rayleigh"

    snr_db: float = 0.0
    block_bits: int = 64
    soft: bool = True
    modulation: str = "bpsk"
    demapping: str = "app"
    scramble: bool = True

    def __post_init__(self) -> None:
        _set(self, "snr_db", check_snr_db(self.snr_db, "fading"))
        _set(self, "scramble", check_flag(self.scramble, "scramble", "fading"))
        _set(self, "block_bits", check_int(self.block_bits, "block_bits", "fading", lo=1))
        _set(self, "soft", check_soft(self.soft, "fading"))
        _set(self, "modulation", check_modulation(self.modulation, "fading"))
        _set(self, "demapping", check_demapping(self.demapping, "fading"))
        m = get_modulation(self.modulation).bits_per_symbol
        if self.block_bits % m:
            raise ValueError(
                f"block_bits must be a multiple of the {m} bits per symbol of {self.modulation} "
                f"for fading, got {self.block_bits}"
            )

    @property
    def block_symbols(self) -> int:
        """Channel uses (symbols) sharing one fade: ``block_bits / m``."""
        return self.block_bits // self.bits_per_use

    @property
    def crossover_probability(self) -> float:
        """Average error rate of the hard decisions. BPSK:
        ``E_a[Q(a sqrt(2 Es/N0))] = (1 - sqrt(g/(1+g)))/2``, g = Es/N0; QAM:
        the mean over label bits of the exact Rayleigh-averaged Gray bit error
        rates (:func:`~channels.capacity.bit_error_probabilities`)."""
        if self.modulation == "bpsk":
            return rayleigh_bpsk_hard_crossover(self.snr_db)
        return float(bit_error_probabilities(self.modulation, self.snr_db, "rayleigh").mean())

    def fades(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Fade amplitudes per channel use (float32 (ceil(n/m),), constant over
        each block of :attr:`block_symbols`; for BPSK one per bit) for ``n``
        bits; consumes exactly the draws a call on ``n`` bits makes first."""
        k = self.block_symbols
        n_sym = self.channel_uses(n)
        n_blocks = -(-n_sym // k)
        a = rng.rayleigh(scale=np.sqrt(0.5), size=n_blocks).astype(np.float32)
        return a[np.arange(n_sym) // k]  # not np.repeat(a, k): a huge block_bits would allocate n_blocks * k

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        n = bits.shape[0]
        sigma = self.sigma
        a = self.fades(n, rng)
        sent = self._on_air(bits)
        if self.modulation != "bpsk":
            mod = self.mod
            y = complex_noise(a.shape[0], sigma, rng)
            y += a * mod.modulate(sent)
            return self._received(*mod.demodulate(y, self.n0, a, self.demapping, n, self.soft))
        y = rng.standard_normal(n, dtype=np.float32)
        y *= np.float32(sigma)
        y += a * bpsk(sent)
        hard = (y < 0).view(np.int8)
        if not self.soft:
            return self._received(hard, None)
        a *= np.float32(2.0 / sigma**2)
        a *= y  # llr = 2 a y sqrt(Es) / sigma^2
        return self._received(hard, a)
