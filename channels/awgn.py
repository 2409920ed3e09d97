"""BPSK over additive white Gaussian noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import Channel, Received, _set, check_real, register
from .capacity import binary_entropy, biawgn_capacity, bpsk_hard_crossover

__all__ = ["AWGN", "ebn0_to_esn0_db", "esn0_to_ebn0_db", "SNR_DB_RANGE", "check_snr_db", "check_soft"]

#: accepted Es/N0 range in dB (keeps 10**(snr/10) and float32 LLRs finite)
SNR_DB_RANGE = (-100.0, 100.0)


def check_snr_db(value: Any, channel: str) -> float:
    return check_real(value, "snr_db", channel, *SNR_DB_RANGE, unit="dB")


def check_soft(value: Any, channel: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"soft must be True or False for {channel}, got {value!r}")
    return bool(value)


def _check_rate(rate: Any) -> np.ndarray:
    r = np.asarray(rate, dtype=float)
    if not np.all((r > 0.0) & (r <= 1.0)):
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    return r


def ebn0_to_esn0_db(ebn0_db: Any, rate: Any) -> Any:
    """Es/N0 in dB from Eb/N0 in dB for a code of rate ``rate`` (info bits
    per channel bit): ``EsN0_dB = EbN0_dB + 10 log10(R)``."""
    r = _check_rate(rate)
    out = np.asarray(ebn0_db, dtype=float) + 10.0 * np.log10(r)
    return float(out) if out.ndim == 0 else out


def esn0_to_ebn0_db(esn0_db: Any, rate: Any) -> Any:
    """Eb/N0 in dB from Es/N0 in dB: ``EbN0_dB = EsN0_dB - 10 log10(R)``."""
    r = _check_rate(rate)
    out = np.asarray(esn0_db, dtype=float) - 10.0 * np.log10(r)
    return float(out) if out.ndim == 0 else out


def noise_sigma(snr_db: float, es: float = 1.0) -> float:
    """Noise standard deviation: ``sigma^2 = N0 / 2``, ``N0 = Es / 10^(snr_db/10)``."""
    return math.sqrt(es / 10.0 ** (snr_db / 10.0) / 2.0)


def bpsk(bits: np.ndarray, amplitude: float = 1.0) -> np.ndarray:
    """float32 BPSK symbols: bit 0 -> +amplitude, bit 1 -> -amplitude."""
    x = bits.astype(np.float32)
    x *= np.float32(-2.0 * amplitude)
    x += np.float32(amplitude)
    return x


@register("awgn")
@dataclass(frozen=True)
class AWGN(Channel):
    """BPSK over an AWGN channel.

    Parameters
    ----------
    snr_db : finite float in [-100, 100]
        Es/N0 per BPSK channel symbol in dB (the CLI's ``--snr-db``). With a
        channel code of rate R in front, ``Eb/N0 = Es/N0 / R``, i.e.
        ``EbN0_dB = snr_db - 10 log10(R)`` (see :func:`ebn0_to_esn0_db`
        and :func:`esn0_to_ebn0_db`).
    soft : bool, default True
        ``False`` gives the hard-decision view: ``llr = None``, so the
        receiver sees a BSC with crossover :attr:`crossover_probability`.

    Model: bit 0 -> ``+sqrt(Es)``, bit 1 -> ``-sqrt(Es)``, ``Es = 1``;
    ``y = x + n`` with ``n ~ N(0, sigma^2)``, ``sigma^2 = N0/2``,
    ``N0 = Es / 10^(snr_db/10)``. ``hard = (y < 0)``;
    ``llr = 2 y sqrt(Es) / sigma^2 = 4 (Es/N0) y`` (exact for BPSK), so
    given bit 0 the LLR is ``N(mu, 2 mu)`` with ``mu = 4 Es/N0``.
    """

    param: ClassVar[str] = "snr_db"

    snr_db: float = 0.0
    soft: bool = True

    def __post_init__(self) -> None:
        _set(self, "snr_db", check_snr_db(self.snr_db, "awgn"))
        _set(self, "soft", check_soft(self.soft, "awgn"))

    @property
    def sigma(self) -> float:
        """Noise standard deviation (``Es = 1``)."""
        return noise_sigma(self.snr_db)

    @property
    def crossover_probability(self) -> float:
        """Error rate of the hard decisions: ``Q(sqrt(2 Es/N0))``."""
        return bpsk_hard_crossover(self.snr_db)

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        sigma = self.sigma
        y = rng.standard_normal(bits.shape[0], dtype=np.float32)
        y *= np.float32(sigma)
        y += bpsk(bits)
        hard = (y < 0).view(np.int8)
        if not self.soft:
            return Received(hard=hard, llr=None)
        y *= np.float32(2.0 / sigma**2)  # llr = 2 y sqrt(Es) / sigma^2
        return Received(hard=hard, llr=y)

    def capacity(self) -> float:
        """Soft: BI-AWGN capacity by numerical integration (0.7215 bit at
        Es/N0 = 0 dB; 0.486 bit at Es/N0 = -3.01 dB, i.e. Es/sigma^2 = 1).
        Hard view: ``1 - h(Q(sqrt(2 Es/N0)))``."""
        if self.soft:
            return biawgn_capacity(self.snr_db)
        return 1.0 - binary_entropy(self.crossover_probability)
