"""BPSK ... 256-QAM over additive white Gaussian noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import Channel, Received, _set, check_real, register
from .capacity import (
    biawgn_capacity,
    bicm_capacity,
    binary_entropy,
    bit_error_probabilities,
    bpsk_hard_crossover,
    rayleigh_biawgn_capacity,
    rayleigh_bicm_capacity,
)
from .modulation import Modulation, check_demapping, check_modulation, get_modulation
from .scrambling import descramble_hard, descramble_llr, scramble

__all__ = ["AWGN", "ebn0_to_esn0_db", "esn0_to_ebn0_db", "SNR_DB_RANGE", "check_snr_db", "check_soft",
           "check_flag", "Modulated"]

#: accepted Es/N0 range in dB (keeps 10**(snr/10) and float32 LLRs finite)
SNR_DB_RANGE = (-100.0, 100.0)


def check_snr_db(value: Any, channel: str) -> float:
    return check_real(value, "snr_db", channel, *SNR_DB_RANGE, unit="dB")


def check_flag(value: Any, name: str, channel: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False for {channel}, got {value!r}")
    return bool(value)


def check_soft(value: Any, channel: str) -> bool:
    return check_flag(value, "soft", channel)


def _check_rate(rate: Any) -> np.ndarray:
    r = np.asarray(rate, dtype=float)
    if not np.all((r > 0.0) & (r <= 1.0)):
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    return r


def _check_bps(bits_per_symbol: Any) -> int:
    if isinstance(bits_per_symbol, bool) or not isinstance(bits_per_symbol, (int, np.integer)) or bits_per_symbol < 1:
        raise ValueError(f"bits_per_symbol must be an integer >= 1, got {bits_per_symbol!r}")
    return int(bits_per_symbol)


def ebn0_to_esn0_db(ebn0_db: Any, rate: Any, bits_per_symbol: int = 1) -> Any:
    """Es/N0 in dB from Eb/N0 in dB for a code of rate ``rate`` (info bits
    per channel bit) and ``bits_per_symbol`` coded bits per channel use:
    ``EsN0_dB = EbN0_dB + 10 log10(m R)``."""
    r = _check_rate(rate) * _check_bps(bits_per_symbol)
    out = np.asarray(ebn0_db, dtype=float) + 10.0 * np.log10(r)
    return float(out) if out.ndim == 0 else out


def esn0_to_ebn0_db(esn0_db: Any, rate: Any, bits_per_symbol: int = 1) -> Any:
    """Eb/N0 in dB from Es/N0 in dB: ``EbN0_dB = EsN0_dB - 10 log10(m R)``."""
    r = _check_rate(rate) * _check_bps(bits_per_symbol)
    out = np.asarray(esn0_db, dtype=float) - 10.0 * np.log10(r)
    return float(out) if out.ndim == 0 else out


def noise_sigma(snr_db: float, es: float = 1.0) -> float:
    """Noise standard deviation per real dimension: ``sigma^2 = N0 / 2``,
    ``N0 = Es / 10^(snr_db/10)``."""
    return math.sqrt(es / 10.0 ** (snr_db / 10.0) / 2.0)


def complex_noise(n_sym: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """complex64 (n_sym,) circular Gaussian noise, ``sigma^2`` per real
    dimension (``N0 = 2 sigma^2``): ``2 n_sym`` float32 standard normals drawn
    in one call, read as interleaved (re, im) pairs."""
    z = rng.standard_normal(2 * n_sym, dtype=np.float32)
    z *= np.float32(sigma)
    return z.view(np.complex64)


def bpsk(bits: np.ndarray, amplitude: float = 1.0) -> np.ndarray:
    """float32 BPSK symbols: bit 0 -> +amplitude, bit 1 -> -amplitude."""
    x = bits.astype(np.float32)
    x *= np.float32(-2.0 * amplitude)
    x += np.float32(amplitude)
    return x


class Modulated:
    """Mixin of the channels with a ``modulation`` field: bits per complex
    channel use and the number of channel uses a payload takes."""

    modulation: str

    @property
    def mod(self) -> Modulation:
        """The :class:`~channels.modulation.Modulation` in use."""
        return get_modulation(self.modulation)

    @property
    def bits_per_use(self) -> int:
        """Coded bits per complex channel use (bits per symbol, m)."""
        return get_modulation(self.modulation).bits_per_symbol

    def channel_uses(self, n_bits: int) -> int:
        """Complex channel uses (symbols) that ``n_bits`` bits take:
        ``ceil(n_bits / m)``; per pixel: ``channel_uses(bits) / pixels``."""
        return get_modulation(self.modulation).symbols(n_bits)

    @property
    def n0(self) -> float:
        """Complex noise variance ``N0 = Es / 10^(snr_db/10)``, ``Es = 1``."""
        return 10.0 ** (-self.snr_db / 10.0)  # type: ignore[attr-defined]

    #: the channel's fading for the closed forms: "awgn" or "rayleigh" (receiver CSI)
    fading: ClassVar[str] = "awgn"

    @property
    def sigma(self) -> float:
        """Noise standard deviation per real dimension (``Es = 1``)."""
        return noise_sigma(self.snr_db)  # type: ignore[attr-defined]

    def capacity(self) -> float:
        """Bits per transmitted (coded) bit, so ``bits x capacity()`` is a payload budget. BPSK
        soft: the BI-AWGN capacity by numerical integration (0.7215 bit at Es/N0 = 0 dB; 0.486 bit
        at Es/N0 = -3.01 dB, i.e. Es/sigma^2 = 1), over fading its ergodic average (receiver CSI);
        hard view: ``1 - h(crossover)`` (over fading the memoryless bound a receiver that ignores
        the block structure gets, a lower bound). QAM: the (ergodic) BICM capacity divided by m
        (soft), or the mean over label bits of ``1 - h(p_j)`` (hard)."""
        if self.modulation != "bpsk":
            return self.capacity_per_use() / self.bits_per_use
        if self.soft:  # type: ignore[attr-defined]
            return (biawgn_capacity if self.fading == "awgn" else rayleigh_biawgn_capacity)(self.snr_db)
        return 1.0 - binary_entropy(self.crossover_probability)  # type: ignore[attr-defined]

    def capacity_per_use(self) -> float:
        """Bits per complex channel use: ``m x capacity()`` (BICM for QAM)."""
        if self.modulation == "bpsk":
            return self.capacity()
        if self.soft:  # type: ignore[attr-defined]
            return (bicm_capacity if self.fading == "awgn" else rayleigh_bicm_capacity)(self.modulation, self.snr_db)
        p = bit_error_probabilities(self.modulation, self.snr_db, self.fading)  # type: ignore[attr-defined]
        return float(sum(1.0 - binary_entropy(q) for q in p))

    def _on_air(self, bits: np.ndarray) -> np.ndarray:
        """The bits the modulator sees: scrambled unless ``scramble`` is off."""
        return scramble(bits) if self.scramble else bits  # type: ignore[attr-defined]

    def _received(self, hard: np.ndarray, llr: np.ndarray | None) -> Received:
        """Hard decisions and LLRs of the payload's bits (descrambled)."""
        if self.scramble:  # type: ignore[attr-defined]
            descramble_hard(hard)
            if llr is not None:
                descramble_llr(llr)
        return Received(hard=hard, llr=llr)


@register("awgn")
@dataclass(frozen=True)
class AWGN(Modulated, Channel):
    """A Gray-labelled modulation (BPSK ... 256-QAM) over an AWGN channel.

    Parameters
    ----------
    snr_db : finite float in [-100, 100]
        Es/N0 per complex channel use in dB (the CLI's ``--snr-db``; for BPSK
        the same number as per BPSK symbol). With m bits per symbol and a
        channel code of rate R in front, ``Eb/N0 = Es/N0 / (m R)``; for BPSK
        ``EbN0_dB = snr_db - 10 log10(R)`` (see :func:`ebn0_to_esn0_db`
        and :func:`esn0_to_ebn0_db`, whose ``bits_per_symbol`` is m).
    soft : bool, default True
        ``False`` gives the hard-decision view: ``llr = None``, so the
        receiver sees (per label bit) a BSC, on average with crossover
        :attr:`crossover_probability`.
    modulation : ``"bpsk" | "qpsk" | "qam16" | "qam64" | "qam256"``, default ``"bpsk"``
        See :mod:`channels.modulation` (3GPP TS 38.211 5.1 labelling).
    demapping : ``"app"`` (exact, default) or ``"maxlog"``
        Soft demapper for QAM; for BPSK both are the same exact LLR.
    scramble : bool, default True
        XOR the bits with the 3GPP Gold sequence before modulation and undo it on the hard
        decisions and LLRs (:mod:`channels.scrambling`), as real links do, so the error
        statistics do not depend on the payload. ``False`` modulates the bits as they are.

    BPSK model (unchanged): bit 0 -> ``+sqrt(Es)``, bit 1 -> ``-sqrt(Es)``,
    ``Es = 1``; ``y = x + n`` with real ``n ~ N(0, sigma^2)``,
    ``sigma^2 = N0/2``, ``N0 = Es / 10^(snr_db/10)``. ``hard = (y < 0)``;
    ``llr = 2 y sqrt(Es) / sigma^2 = 4 (Es/N0) y`` (exact for BPSK), so
    given bit 0 the LLR is ``N(mu, 2 mu)`` with ``mu = 4 Es/N0``.

    QAM model: ``y = x + n`` per symbol with complex ``n ~ CN(0, N0)``
    (:func:`complex_noise`: ``2 n_sym`` float32 normals in one draw), the last
    symbol padded with zero bits. ``llr``: the chosen demapper,
    ``log P(b=0|y)/P(b=1|y)``; ``hard``: the nearest point's bits (the sign of
    the max-log LLR; with ``"app"`` it can differ from the LLR's sign close
    to a decision boundary).
    """

    param: ClassVar[str] = "snr_db"

    snr_db: float = 0.0
    soft: bool = True
    modulation: str = "bpsk"
    demapping: str = "app"
    scramble: bool = True

    def __post_init__(self) -> None:
        _set(self, "snr_db", check_snr_db(self.snr_db, "awgn"))
        _set(self, "soft", check_soft(self.soft, "awgn"))
        _set(self, "modulation", check_modulation(self.modulation, "awgn"))
        _set(self, "demapping", check_demapping(self.demapping, "awgn"))
        _set(self, "scramble", check_flag(self.scramble, "scramble", "awgn"))

    @property
    def crossover_probability(self) -> float:
        """Error rate of the hard decisions: ``Q(sqrt(2 Es/N0))`` for BPSK,
        the mean over label bits of the exact Gray-QAM bit error rates
        otherwise (:func:`~channels.capacity.bit_error_probabilities`)."""
        if self.modulation == "bpsk":
            return bpsk_hard_crossover(self.snr_db)
        return float(bit_error_probabilities(self.modulation, self.snr_db).mean())

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        sent = self._on_air(bits)
        if self.modulation != "bpsk":
            mod = self.mod
            y = complex_noise(mod.symbols(bits.shape[0]), self.sigma, rng)
            y += mod.modulate(sent)
            return self._received(*mod.demodulate(y, self.n0, None, self.demapping, bits.shape[0], self.soft))
        sigma = self.sigma
        y = rng.standard_normal(bits.shape[0], dtype=np.float32)
        y *= np.float32(sigma)
        y += bpsk(sent)
        hard = (y < 0).view(np.int8)
        if not self.soft:
            return self._received(hard, None)
        y *= np.float32(2.0 / sigma**2)  # llr = 2 y sqrt(Es) / sigma^2
        return self._received(hard, y)
