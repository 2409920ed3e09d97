"""Common pieces of every channel: the ``Received`` record, the registry,
input/parameter checking and the exact Bernoulli-mask sampler.

Conventions (see DESIGN.md):

* input bits are a 1-D ``uint8`` array of 0/1 (any length, including 0);
* every random draw comes from the ``numpy.random.Generator`` passed to
  the call; nothing touches global RNG state;
* ``Received.hard`` is ``int8`` in {0, 1, -1} (-1 = erased);
* ``Received.llr`` is ``float32`` or ``None`` with
  ``llr = log P(bit=0 | y) / P(bit=1 | y)`` (positive: 0 more likely).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = [
    "LLR_CLIP",
    "ParameterError",
    "REGISTRY",
    "Channel",
    "Received",
    "bernoulli_mask",
    "check_bits",
    "check_rng",
    "get_channel",
    "register",
]

#: Magnitude used for "certain" LLRs (p = 0 flips, unerased bits of an
#: erasure channel): large but finite so sums stay well defined.
LLR_CLIP = 30.0


class ParameterError(ValueError):
    """A bad value, or combination, of named parameters. ``str()`` names them as the Python API
    does (``snr_db``); :meth:`spelled` as a front end does, e.g. ``--snr-db``.

    >>> e = ParameterError("{0} applies to the awgn and fading channels only", "block_bits")
    >>> str(e), e.spelled(lambda name: "--" + name.replace("_", "-"))
    ('block_bits applies to the awgn and fading channels only', '--block-bits applies to the awgn and fading channels only')
    """

    def __init__(self, template: str, *names: str):
        self.template, self.names = template, names
        super().__init__(template.format(*names))

    def __reduce__(self):  # pickles (to and from Dask workers) by its template, not its message
        return type(self), (self.template, *self.names)

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each parameter name replaced by ``spell(name)``."""
        return self.template.format(*(spell(n) for n in self.names))


@dataclass(frozen=True, eq=False)
class Received:
    """What the receiver sees for one channel realisation.

    hard: ``int8`` (n,) in {0, 1, -1}; -1 marks an erased bit.
    llr:  ``float32`` (n,) with ``log P(bit=0|y) / P(bit=1|y)``, or ``None``
          when the channel only delivers hard decisions. Erased bits have
          llr 0.
    """

    hard: np.ndarray
    llr: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.hard, np.ndarray) or self.hard.dtype != np.int8 or self.hard.ndim != 1:
            raise ValueError("Received.hard must be a 1-D int8 numpy array")
        if self.llr is not None:
            if (
                not isinstance(self.llr, np.ndarray)
                or self.llr.dtype != np.float32
                or self.llr.shape != self.hard.shape
            ):
                raise ValueError("Received.llr must be None or a float32 array shaped like hard")

    def __len__(self) -> int:
        return int(self.hard.shape[0])


# ---------------------------------------------------------------- registry

#: channel name -> channel class, filled by :func:`register`.
REGISTRY: dict[str, type] = {}

_C = TypeVar("_C", bound=type)


def register(name: str) -> Callable[[_C], _C]:
    """Class decorator: record ``cls`` in :data:`REGISTRY` under ``name``
    and set its ``name`` class attribute."""

    def deco(cls: _C) -> _C:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"channel name {name!r} is already registered")
        cls.name = name  # type: ignore[attr-defined]
        REGISTRY[name] = cls
        return cls

    return deco


def get_channel(name: str, **params: Any) -> Channel:
    """Build the channel registered as ``name`` from keyword parameters.

    Raises ``ValueError`` for an unknown name (listing the known ones), for
    unknown parameter names, and for out-of-range values.
    """
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown channel {name!r} (known: {known})") from None
    accepted = cls.accepted_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) for {name}: {', '.join(unknown)} "
            f"(accepted: {', '.join(accepted)})"
        )
    return cls.from_params(**params)


# ------------------------------------------------------------ base class


class Channel:
    """Base of every channel class (each is a frozen dataclass).

    Subclasses define ``param`` (name of the main sweep parameter, ``"p"``
    or ``"snr_db"``), ``_transmit(bits, rng) -> Received`` and
    ``capacity()`` in bits per channel use.
    """

    name: ClassVar[str] = "?"
    param: ClassVar[str] = "p"

    def __call__(self, bits: Any, rng: np.random.Generator | int) -> Received:
        return self._transmit(check_bits(bits), check_rng(rng))

    def _transmit(self, bits: np.ndarray, rng: np.random.Generator) -> Received:  # pragma: no cover
        raise NotImplementedError

    def capacity(self) -> float:  # pragma: no cover
        raise NotImplementedError

    @property
    def param_value(self) -> float:
        """Value of the main sweep parameter (``getattr(self, self.param)``)."""
        return float(getattr(self, self.param))

    @classmethod
    def accepted_params(cls) -> tuple[str, ...]:
        """Keyword parameters :func:`get_channel` accepts for this class."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]

    @classmethod
    def from_params(cls, **params: Any) -> Channel:
        """Constructor used by :func:`get_channel` (default: the dataclass one)."""
        return cls(**params)


# ------------------------------------------------------------ checking


def check_bits(bits: Any) -> np.ndarray:
    """Return ``bits`` as a 1-D ``uint8`` array of 0/1, or raise ValueError."""
    b = np.asarray(bits)
    if b.ndim != 1:
        raise ValueError(f"bits must be a 1-D array, got shape {b.shape}")
    if b.dtype == np.uint8:
        if b.size and int(b.max()) > 1:
            raise ValueError("bits must contain only 0 and 1")
        return b
    if b.dtype == np.bool_:
        return b.view(np.uint8)
    if b.size and not bool(np.all((b == 0) | (b == 1))):
        raise ValueError("bits must contain only 0 and 1")
    return b.astype(np.uint8)


def check_rng(rng: Any) -> np.random.Generator:
    """Accept a ``numpy.random.Generator`` (used as is) or an integer seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (numbers.Integral, np.random.SeedSequence)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator or an integer seed, got {type(rng).__name__}")


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_prob(value: Any, name: str, channel: str, hi: float = 1.0) -> float:
    """``value`` as a float in [0, hi], else ValueError naming it and the range."""
    msg = f"{name} must be in [0, {_fmt(hi)}] for {channel}, got {value!r}"
    if isinstance(value, bool):
        raise ValueError(msg)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if not (0.0 <= v <= hi):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, {_fmt(hi)}] for {channel}, got {_fmt(v)}")
    return v


def check_real(value: Any, name: str, channel: str, lo: float, hi: float, unit: str = "") -> float:
    """``value`` as a finite float in [lo, hi], else ValueError."""
    u = f" {unit}" if unit else ""
    rng_txt = f"a finite number in [{_fmt(lo)}, {_fmt(hi)}]{u}"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {rng_txt} for {channel}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {rng_txt} for {channel}, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name} must be {rng_txt} for {channel}, got {_fmt(v)}")
    return v


def check_int(value: Any, name: str, channel: str, lo: int = 1) -> int:
    """``value`` as an integer >= lo, else ValueError."""
    msg = f"{name} must be an integer >= {lo} for {channel}, got {value!r}"
    if isinstance(value, bool):
        raise ValueError(msg)
    try:
        v = operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            v = int(value)
        else:
            raise ValueError(msg) from None
    if v < lo:
        raise ValueError(msg)
    return v


def _set(obj: Any, name: str, value: Any) -> None:
    """Assign a field of a frozen dataclass from its ``__post_init__``."""
    object.__setattr__(obj, name, value)


# ------------------------------------------------------------ sampling

#: below this probability the sparse (geometric gap) sampler is faster
_SPARSE_BELOW = 0.05


def bernoulli_positions(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions (int64) of the successes of ``n`` i.i.d. Bernoulli(p)
    trials, drawn as cumulative sums of Geometric(p) gaps (exact)."""
    if p <= 0.0 or n == 0:
        return np.empty(0, np.int64)
    chunks = []
    last = -1  # position of the last success so far
    while True:
        remaining = n - 1 - last
        mean = remaining * p
        m = int(mean + 6.0 * math.sqrt(mean) + 16.0)
        gaps = rng.geometric(p, m)
        np.minimum(gaps, n + 1, out=gaps)  # guard cumsum overflow for tiny p
        pos = np.cumsum(gaps)
        pos += last
        k = int(np.searchsorted(pos, n))  # positions < n
        chunks.append(pos[:k])
        if k < m:
            break
        last = int(pos[-1])
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def random_bytes(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random bytes (uint8) straight from ``rng``'s bit
    generator (64 raw bits give 8 bytes; much faster than ``rng.integers``)."""
    raw = rng.bit_generator.random_raw(-(-n // 8))
    return raw.view(np.uint8)[:n]


def bernoulli_mask(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of ``n`` i.i.d. Bernoulli(p) trials, exact for any float p.

    Small p: geometric gaps between successes. Otherwise one random byte
    ``r`` per trial is compared with ``t = floor(256 p)``: ``r < t``
    succeeds, ``r > t`` fails, and a tie ``r == t`` (probability 1/256)
    succeeds with probability ``frac(256 p)`` using a float64 uniform, so
    P(success) = t/256 + frac/256 = p exactly (to double precision).
    """
    if p <= 0.0:
        return np.zeros(n, np.bool_)
    if p >= 1.0:
        return np.ones(n, np.bool_)
    if p < _SPARSE_BELOW:
        mask = np.zeros(n, np.bool_)
        mask[bernoulli_positions(n, p, rng)] = True
        return mask
    scaled = p * 256.0  # exact: scaling by a power of two
    t = math.floor(scaled)
    frac = scaled - t
    r = random_bytes(n, rng)
    mask = r < np.uint8(t)
    if frac > 0.0:
        ties = np.flatnonzero(r == np.uint8(t))
        if ties.size:
            mask[ties] = rng.random(ties.size) < frac
    return mask


def clipped_llr(p: float) -> float:
    """``log((1-p)/p)`` for a crossover probability, clipped to ``LLR_CLIP``."""
    if p <= 0.0:
        return LLR_CLIP
    return float(min(math.log1p(-p) - math.log(p), LLR_CLIP))


def hard_llr(hard: np.ndarray, magnitude: float) -> np.ndarray:
    """float32 LLRs ``+magnitude`` where hard == 0 and ``-magnitude`` where 1."""
    llr = hard.astype(np.float32)
    llr *= np.float32(-2.0 * magnitude)
    llr += np.float32(magnitude)
    return llr
