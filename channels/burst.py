"""Gilbert-Elliott burst-error channel (two-state hidden Markov BSC)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numba
import numpy as np

from .base import Channel, Received, _set, check_prob, check_real, clipped_llr, hard_llr, register
from .capacity import bsc_capacity

__all__ = ["GilbertElliott", "ge_kernel", "ge_reference"]


@numba.njit(cache=True)
def ge_kernel(u_state, u_flip, pi_bad, p_gb, p_bg, p_good, p_bad):  # pragma: no cover - compiled
    """Sequential Gilbert-Elliott simulation from pre-drawn uniforms.

    u_state, u_flip: float64 (n,) uniforms in [0, 1).
    State 0 starts bad iff ``u_state[0] < pi_bad``; afterwards a good state
    turns bad iff ``u_state[i] < p_gb`` and a bad state turns good iff
    ``u_state[i] < p_bg``. Bit i flips iff ``u_flip[i] < p_bad`` (bad) or
    ``< p_good`` (good). Returns (states uint8, 1 = bad; flips uint8).
    """
    n = u_state.shape[0]
    states = np.empty(n, np.uint8)
    flips = np.empty(n, np.uint8)
    bad = False
    for i in range(n):
        u = u_state[i]
        if i == 0:
            bad = u < pi_bad
        elif bad:
            bad = not (u < p_bg)
        else:
            bad = u < p_gb
        if bad:
            states[i] = 1
            flips[i] = 1 if u_flip[i] < p_bad else 0
        else:
            states[i] = 0
            flips[i] = 1 if u_flip[i] < p_good else 0
    return states, flips


def ge_reference(u_state, u_flip, pi_bad, p_gb, p_bg, p_good, p_bad):
    """Plain Python/numpy reference for :func:`ge_kernel` (same outputs)."""
    n = len(u_state)
    states = np.zeros(n, np.uint8)
    bad = False
    for i in range(n):
        if i == 0:
            bad = bool(u_state[0] < pi_bad)
        elif bad:
            bad = bool(u_state[i] >= p_bg)
        else:
            bad = bool(u_state[i] < p_gb)
        states[i] = bad
    threshold = np.where(states == 1, p_bad, p_good)
    flips = (np.asarray(u_flip, dtype=np.float64) < threshold).astype(np.uint8)
    return states, flips


@register("burst")
@dataclass(frozen=True)
class GilbertElliott(Channel):
    """Gilbert-Elliott channel: a BSC whose flip probability follows a
    two-state (good/bad) Markov chain that runs across the whole stream,
    starting from its stationary distribution.

    Parameters
    ----------
    p_gb : float in [0, 1]
        Transition probability good -> bad per bit.
    p_bg : float in [0, 1]
        Transition probability bad -> good per bit (mean bad sojourn, the
        mean burst length, is ``1 / p_bg``). ``p_gb + p_bg`` must be > 0.
    p_good : float in [0, 0.5], default 0
        Flip probability in the good state.
    p_bad : float in [0, 0.5], default 0.5
        Flip probability in the bad state.

    Usually built with :meth:`from_rate` (average error rate ``p`` and mean
    burst length); ``get_channel("burst", p=..., burst_length=...)`` does
    that. The main sweep parameter (``param``) is ``p``, the average error
    rate ``pi_good p_good + pi_bad p_bad``, available as the property ``p``.

    Output: ``hard`` = received bits; ``llr = +-log((1-p)/p)`` with the
    average error rate ``p`` (clipped at 30): the evidence of a receiver
    that ignores the channel memory.
    """

    param: ClassVar[str] = "p"

    p_gb: float = 0.0
    p_bg: float = 1.0
    p_good: float = 0.0
    p_bad: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "p_gb", check_prob(self.p_gb, "p_gb", "burst", hi=1.0))
        _set(self, "p_bg", check_prob(self.p_bg, "p_bg", "burst", hi=1.0))
        _set(self, "p_good", check_prob(self.p_good, "p_good", "burst", hi=0.5))
        _set(self, "p_bad", check_prob(self.p_bad, "p_bad", "burst", hi=0.5))
        if self.p_gb + self.p_bg <= 0.0:
            raise ValueError("p_gb + p_bg must be > 0 for burst (else the chain never moves), got 0")

    # ------------------------------------------------------------ alt ctor

    @classmethod
    def from_rate(cls, p: float, burst_length: float, p_good: float = 0.0, p_bad: float = 0.5) -> GilbertElliott:
        """Channel with average error rate ``p`` and mean bad-state sojourn
        ``burst_length`` (bits, >= 1): ``p_bg = 1/burst_length`` and
        ``pi_bad = (p - p_good) / (p_bad - p_good)``, ``p_gb = pi_bad p_bg / (1 - pi_bad)``.
        Requires ``p_good <= p < p_bad`` (or ``p == p_good``)."""
        p_good = check_prob(p_good, "p_good", "burst", hi=0.5)
        p_bad = check_prob(p_bad, "p_bad", "burst", hi=0.5)
        p = check_prob(p, "p", "burst", hi=0.5)
        burst_length = check_real(burst_length, "burst_length", "burst", 1.0, math.inf)
        p_bg = 1.0 / burst_length
        if p == p_good:
            return cls(p_gb=0.0, p_bg=p_bg, p_good=p_good, p_bad=p_bad)
        if not (p_good < p < p_bad):
            raise ValueError(
                f"p must be in [p_good, p_bad) = [{p_good:g}, {p_bad:g}) for burst, got {p:g}"
            )
        pi_bad = (p - p_good) / (p_bad - p_good)
        p_gb = pi_bad * p_bg / (1.0 - pi_bad)
        if p_gb > 1.0:
            raise ValueError(
                f"p={p:g} with burst_length={burst_length:g} needs p_gb={p_gb:g} > 1 for burst; "
                "use a longer burst_length or a smaller p"
            )
        return cls(p_gb=p_gb, p_bg=p_bg, p_good=p_good, p_bad=p_bad)

    @classmethod
    def accepted_params(cls) -> tuple[str, ...]:
        return ("p", "burst_length", "p_gb", "p_bg", "p_good", "p_bad")

    @classmethod
    def from_params(cls, **params: Any) -> GilbertElliott:
        """``p`` and/or ``burst_length`` given: :meth:`from_rate`
        (burst_length defaults to 10); otherwise the transition form."""
        if "p" in params or "burst_length" in params:
            extra = sorted(set(params) & {"p_gb", "p_bg"})
            if extra:
                raise ValueError(
                    f"burst takes either p/burst_length or p_gb/p_bg, not both (got {', '.join(extra)})"
                )
            if "p" not in params:
                raise ValueError("burst needs p (average error rate) with burst_length")
            params.setdefault("burst_length", 10.0)
            return cls.from_rate(**params)
        return cls(**params)

    # ------------------------------------------------------------ derived

    @property
    def pi_bad(self) -> float:
        """Stationary probability of the bad state."""
        return self.p_gb / (self.p_gb + self.p_bg)

    @property
    def p(self) -> float:
        """Average (stationary) error rate."""
        pb = self.pi_bad
        return (1.0 - pb) * self.p_good + pb * self.p_bad

    @property
    def burst_length(self) -> float:
        """Mean sojourn in the bad state, ``1 / p_bg`` (inf if p_bg = 0)."""
        return math.inf if self.p_bg == 0.0 else 1.0 / self.p_bg

    # ------------------------------------------------------------ simulate

    def simulate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(states, flips), both uint8 (n,), states 1 = bad. Draws
        ``rng.random(n)`` for the states then ``rng.random(n)`` for the
        flips, so a call on n bits with the same generator state sees the
        same realisation."""
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        u_state = rng.random(n)
        u_flip = rng.random(n)
        return ge_kernel(u_state, u_flip, self.pi_bad, self.p_gb, self.p_bg, self.p_good, self.p_bad)

    def simulate_states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The state sequence (uint8, 1 = bad) of :meth:`simulate`."""
        return self.simulate(n, rng)[0]

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:
        _, flips = self.simulate(bits.shape[0], rng)
        np.bitwise_xor(flips, bits, out=flips)
        hard = flips.view(np.int8)
        return Received(hard=hard, llr=hard_llr(hard, clipped_llr(self.p)))

    def capacity(self) -> float:
        """``1 - h(p)`` with the average error rate p: the memoryless bound,
        i.e. what a receiver ignoring the memory gets. It is a lower bound
        on the capacity of the channel with memory."""
        return bsc_capacity(self.p)
