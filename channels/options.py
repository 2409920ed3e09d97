"""Channels from user options: what the command line and the Python API both build.

A sweep names a channel kind, its options (``packet_bits``, ``burst_length``, ``block_bits``,
``hard``, ``modulation``, ``demapping``) and a grid of values of the kind's main parameter (``p`` or ``snr_db``).
:func:`channel_spec` checks the options once and returns a :class:`ChannelSpec` whose
``make(value)`` builds one channel per grid point; :func:`param_value` and :func:`parse_grid`
read the parameter the way the command line gives it. Every problem is a one-line
``ValueError``.

>>> spec = channel_spec("packet-erasure", index_bits=8)
>>> spec.param, spec.describe()
('p', {'kind': 'packet-erasure', 'param': 'p', 'packet_bits': 8})
>>> spec.make(0.1).p
0.1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import REGISTRY, Channel, ParameterError, get_channel
from .modulation import get_modulation

__all__ = ["ChannelSpec", "channel_spec", "param_value", "parse_grid", "DEFAULT_BURST_LENGTH",
           "DEFAULT_BLOCK_BITS"]

DEFAULT_BURST_LENGTH = 10.0  # burst: mean burst length in bits
DEFAULT_BLOCK_BITS = 64  # fading: coherence length in bits (rounded to whole symbols)


@dataclass(frozen=True)
class ChannelSpec:
    """A channel kind with its fixed options; ``make(value)`` adds the swept parameter."""

    kind: str
    extra: dict = field(default_factory=dict)

    @property
    def param(self) -> str:
        """Name of the swept parameter: ``"p"`` or ``"snr_db"``."""
        return REGISTRY[self.kind].param

    def make(self, value: float) -> Channel:
        """The channel at one parameter value (``ValueError`` when it is out of range). A
        ``code`` in ``extra`` is not the channel's: the caller wraps the channel in it."""
        return get_channel(self.kind, **{self.param: value}, **{k: v for k, v in self.extra.items() if k != "code"})

    def describe(self) -> dict:
        """The results file's ``channel`` object: kind, parameter name and the options."""
        return {"kind": self.kind, "param": self.param, **self.extra}


MODULATED = ("awgn", "fading")  # the channels that take a modulation and a demapper
#: the options of each kind beyond its parameter (``channel_spec``'s keywords; the CLI spells them --block-bits)
KIND_OPTIONS = {"packet-erasure": ("packet_bits",), "burst": ("burst_length",),
                "awgn": ("modulation", "demapping", "hard", "scramble"),
                "fading": ("modulation", "demapping", "hard", "scramble", "block_bits")}


def channel_spec(kind: str, *, packet_bits: int | None = None, burst_length: float | None = None,
                 block_bits: int | None = None, hard: bool = False, modulation: str | None = None,
                 demapping: str | None = None, scramble: bool = True, index_bits: int | None = None) -> ChannelSpec:
    """Check the options of channel ``kind`` and fill in their defaults.

    ``index_bits`` (bits per transmitted index) is the packet size of the packet-erasure
    channel when ``packet_bits`` is not given; each option applies to one kind only, and
    naming it for another is an error rather than silently ignored. ``scramble=False`` turns off
    the modulated channels' bit scrambling (on by default; recorded either way as ``scramble``)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown channel {kind!r} (known: {', '.join(sorted(REGISTRY))})")
    extra: dict[str, Any] = {}
    if kind == "packet-erasure":
        extra["packet_bits"] = packet_bits if packet_bits is not None else index_bits
        if extra["packet_bits"] is None:
            raise ValueError("the packet-erasure channel needs packet_bits (or the model's bits per index)")
    elif packet_bits is not None:
        raise ParameterError("{0} applies to the packet-erasure channel only", "packet_bits")
    if kind == "burst":
        extra["burst_length"] = burst_length if burst_length is not None else DEFAULT_BURST_LENGTH
    elif burst_length is not None:
        raise ParameterError("{0} applies to the burst channel only", "burst_length")
    if kind == "fading":
        if block_bits is None:  # the multiple of the bits per symbol nearest 64 (qam64: 66, 11 symbols)
            m = get_modulation(modulation or "bpsk").bits_per_symbol
            block_bits = m * max(1, round(DEFAULT_BLOCK_BITS / m))
        extra["block_bits"] = block_bits
    elif block_bits is not None:
        raise ParameterError("{0} applies to the fading channel only", "block_bits")
    if hard:
        if kind not in MODULATED:
            raise ParameterError("{0} applies to the awgn and fading channels only", "hard")
        extra["soft"] = False
    if kind in MODULATED:
        extra["modulation"] = modulation if modulation is not None else "bpsk"
        if demapping not in (None, "app"):
            extra["demapping"] = demapping
        extra["scramble"] = bool(scramble)  # recorded both ways: files from before scrambling existed hold none
        get_channel(kind, snr_db=0.0, **extra)  # checks the modulation against the other options now
    elif modulation is not None or demapping is not None:
        raise ParameterError("{0} applies to the awgn and fading channels only",
                             "modulation" if modulation is not None else "demapping")
    elif not scramble:
        raise ParameterError("{0} applies to the awgn and fading channels only", "scramble")
    return ChannelSpec(kind, extra)


def param_value(spec: ChannelSpec, p: Any = None, snr_db: Any = None) -> Any:
    """The one of ``p`` / ``snr_db`` that ``spec``'s kind takes; naming the other, or neither,
    is an error. Returns the value as given (a number, or a grid's text)."""
    name, other_name = ("p", "snr_db") if spec.param == "p" else ("snr_db", "p")
    value, other = (p, snr_db) if spec.param == "p" else (snr_db, p)
    if value is None:
        raise ParameterError(f"the {spec.kind} channel needs {{0}}", name)
    if other is not None:
        raise ParameterError(f"the {spec.kind} channel takes {{0}}, not {{1}}", name, other_name)
    return value


#: Most points a grid may have: a point simulates every image at least --min-trials times (seconds
#: each on a CPU), so a longer sweep could not finish; the bound also keeps the grid's memory small.
MAX_GRID_POINTS = 1000


class GridTooLarge(ParameterError):
    """A grid of more than ``MAX_GRID_POINTS`` points (the message names ``min_trials``)."""


def parse_grid(text: str, param: str = "p") -> list[float]:
    """A grid of parameter values from text: ``'1e-4,3e-4,1e-3'``, or ``START:STOP:N``, which is
    N log-spaced points for ``p`` (START, STOP > 0) and N linearly spaced ones for ``snr_db``."""
    text = str(text).strip()
    try:
        if ":" in text:
            a, b, n = text.split(":")
            a, b, n = float(a), float(b), int(n)
            if n > MAX_GRID_POINTS:
                where = repr(text).replace("{", "{{").replace("}", "}}")
                raise GridTooLarge(f"{where}: {n} points is more than the limit of {MAX_GRID_POINTS} "
                                   "(each point simulates every image at least {0} times)", "min_trials")
            if param == "snr_db":
                vals = [float(v) for v in np.linspace(a, b, n)] if n >= 1 else []
            elif a <= 0 or b <= 0 or n < 1:
                raise ValueError
            else:
                vals = [float(v) for v in np.geomspace(a, b, n)]
        else:
            vals = [float(v) for v in text.split(",") if v.strip()]
    except GridTooLarge:
        raise
    except ValueError:
        expected = "START:STOP:N" if param == "snr_db" and ":" in text else \
            "a comma-separated list or START:STOP:N"
        raise ValueError(f"{text!r}: expected {expected}") from None
    if not vals:
        raise ValueError("empty parameter list")
    if len(vals) > MAX_GRID_POINTS:
        raise ValueError(f"{len(vals)} points is more than the limit of {MAX_GRID_POINTS}")
    return vals
