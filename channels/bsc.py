"""Binary symmetric channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import (
    _SPARSE_BELOW,
    Channel,
    Received,
    _set,
    bernoulli_mask,
    bernoulli_positions,
    check_prob,
    clipped_llr,
    hard_llr,
    register,
)
from .capacity import bsc_capacity

__all__ = ["BinarySymmetric"]


@register("bsc")
@dataclass(frozen=True)
class BinarySymmetric(Channel):
    """Binary symmetric channel: each bit is flipped independently.

    Parameters
    ----------
    p : float in [0, 0.5]
        Flip (crossover) probability; the CLI's ``--p``.

    Output: ``hard`` = received bits (never erased); ``llr`` =
    ``+-log((1-p)/p)`` (clipped to ``+-30`` so p = 0 stays finite).
    Flips are drawn exactly: geometric gaps between flips for small p,
    32-bit integer thresholds otherwise (see ``base.bernoulli_mask``).
    """

    param: ClassVar[str] = "p"

    p: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "p", check_prob(self.p, "p", "bsc", hi=0.5))

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        n = bits.shape[0]
        p = self.p
        if p < _SPARSE_BELOW:
            hard = bits.astype(np.int8)  # copy
            pos = bernoulli_positions(n, p, rng)
            hard[pos] ^= 1
        else:
            flips = bernoulli_mask(n, p, rng)
            hard = np.bitwise_xor(bits, flips.view(np.uint8)).view(np.int8)
        return Received(hard=hard, llr=hard_llr(hard, clipped_llr(p)))

    def capacity(self) -> float:
        """``1 - h(p)`` bits per channel use."""
        return bsc_capacity(self.p)
