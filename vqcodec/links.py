"""A channel code in front of a channel: the index payload itself protected by 5G NR LDPC or by
a K=7 convolutional code (``cc-1/2``, ``cc-2/3``, ``cc-3/4``, ``cc-1/3``, ``cc-1/4``,
``vqcodec.fec``; max-log-MAP BCJR gives the receivers a-posteriori LLRs).

``CodedLink(channel, "ldpc-1/2")`` has the channel contract (``link(bits, rng) -> Received``):
the payload of each transmission is one transport block (``ldpc.LDPC5GTransportBlock``: CRC,
segmentation into code blocks, rate matching to ``ceil(n / R)`` bits rounded up to whole
symbols of the channel's modulation), sent through ``channel``, and decoded by belief
propagation. What comes out is the decoder's view of the payload: its a-posteriori LLRs
(``llr``) and their hard decisions, so the soft index receivers (``learned-mmse``,
``spatial-mmse``) use the residual redundancy of the indices after the code, and the counts of
a results file (``bit_errors``, ``ber``) are residual errors after decoding.

Rates are ``ldpc-A/B`` with A/B in [0.1, 0.95], e.g. ldpc-1/3, ldpc-1/2, ldpc-2/3, ldpc-8/9.

``LdpcCode`` is the same code with the interface of the baselines' channel codes
(``coded_length``, ``encode``, ``decode``), so a JPEG file and the index payload cross the
same link.

A hard-decision channel gives the decoder LLRs of magnitude log((1 - q) / q) for its crossover
probability q (``hard_bits_llr``, the one hard-bits-to-LLR rule, which the receivers use too);
where the code cannot know q (the baselines' interface) it uses q = 0.02, magnitude 3.9.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from channels import Channel, Received
from channels.base import LLR_CLIP, ParameterError
from channels.modulation import MODULATIONS, get_modulation
from vqcodec.fec import CODES as CONV_CODES
from vqcodec.files import template_text
from vqcodec.ldpc import LDPC5GTransportBlock

CODES = ("none", "ldpc-1/3", "ldpc-1/2", "ldpc-2/3", "ldpc-3/4", "ldpc-5/6", "ldpc-8/9")
RATE_RANGE = (0.1, 0.95)


class DeprecatedSpelling(UserWarning):
    """An old spelling of a code name, still read as its one name: ``uncoded`` (also ``1``,
    ``1/1``) is ``none``, a bare convolutional rate ``1/2`` is ``cc-1/2``. The CLI prints it as
    one "Note:" line."""


_OLD_NONE = ("uncoded", "1", "1/1")


def parse_code(code: str | None) -> str:
    """The one name of a code, the one parser of code names (the index payload's ``code`` and
    the baselines' ``rates``): ``none`` (also None), ``cc-R`` (a convolutional code,
    ``vqcodec.fec.CODES``: cc-1/2, cc-2/3, cc-3/4, cc-1/3, cc-1/4) or ``ldpc-A/B`` (5G LDPC, A/B
    in ``RATE_RANGE``), any case; ``A+B+...`` is unequal protection (each part a code, see
    :func:`code_rate`). An old spelling (``uncoded``, a bare ``1/2``) gives its one name and a
    :class:`DeprecatedSpelling` warning; anything else is a one-line ValueError.

    >>> parse_code("LDPC-1/2"), parse_code(None), parse_code("ldpc-2/5+none")
    ('ldpc-1/2', 'none', 'ldpc-2/5+none')
    """
    text = "none" if code is None else str(code).strip()
    if "+" not in text:
        return _parse_one(text)
    parts = [p.strip() for p in text.split("+")]
    if not all(parts):
        raise ValueError(f"bad code {code!r}: an empty part (use e.g. ldpc-2/5+ldpc-2/3)")
    parts = [_parse_one(p) for p in parts]
    if all(p == "none" for p in parts):
        raise ValueError(f"code {code!r} protects nothing: use none")
    return "+".join(parts)


def _parse_one(text: str) -> str:
    name = text.lower()
    new = "none" if name in _OLD_NONE else f"cc-{name}" if name in CONV_CODES else None
    if new is not None:
        warnings.warn(f"code {text!r} is an old spelling: write {new}", DeprecatedSpelling, stacklevel=3)
        name = new
    if name == "none":
        return name
    if name.startswith("cc-"):
        if name[3:] not in CONV_CODES:
            raise ValueError(f"unknown convolutional code {text!r} (use {', '.join('cc-' + r for r in CONV_CODES)})")
        return name
    try:
        r = Fraction(name[5:]) if name.startswith("ldpc-") else None
    except (ValueError, ZeroDivisionError):
        r = None
    if r is None:
        raise ValueError(f"unknown code rate {text!r} (use none, cc-R with R one of {', '.join(CONV_CODES)}, "
                         f"or ldpc-A/B, e.g. {', '.join(CODES[1:])})")
    if not RATE_RANGE[0] <= r <= RATE_RANGE[1]:
        raise ValueError(f"code rate {r} of {text!r} is outside [{RATE_RANGE[0]}, {RATE_RANGE[1]}]")
    return name


def single_code(code: str | None) -> str:
    """:func:`parse_code` of one code (no unequal protection, which is the index stream's only)."""
    name = parse_code(code)
    if "+" in name:
        raise ParameterError(f"{template_text(code)}: unequal protection (A+B) is for the index stream ({{0}}) only",
                             "code")
    return name


def code_segments(code: str | None) -> list[str]:
    """The codes of an unequal-protection name ``A+B+...`` (one per equal part of the payload,
    in payload order), or ``[code]``; by their one names (:func:`parse_code`)."""
    return parse_code(code).split("+")


def code_rate(code: str | None) -> Fraction | None:
    """The rate of a code name (None for ``none``); a one-line ValueError for anything else.

    ``A+B+...`` (unequal protection: code A on the first equal part of the payload, B on the
    second, ...; for a residual model of as many stages, stage by stage) has the rate of the
    whole: parts / sum of 1 / R (an uncoded ``none`` part counts R = 1)."""
    parts = code_segments(code)
    if len(parts) == 1:
        return _single_rate(parts[0])
    return len(parts) / sum(1 / (_single_rate(p) or Fraction(1)) for p in parts)


def _single_rate(name: str) -> Fraction | None:
    """The rate of one code's one name (None for ``none``)."""
    return None if name == "none" else Fraction(name.split("-", 1)[1])


def code_name(rate: Fraction) -> str:
    """The code of rate ``rate``: ``none`` for 1, else ``ldpc-A/B`` (checked by :func:`code_rate`)."""
    rate = Fraction(rate)
    if rate == 1:
        return "none"
    name = f"ldpc-{rate.numerator}/{rate.denominator}"
    code_rate(name)
    return name


def budget_configurations(source_bpp, cbr, modulations=MODULATIONS,
                          min_rate: float = RATE_RANGE[0]) -> list[tuple[str, str]]:
    """Every (modulation, code) whose channel uses fill a bandwidth ratio exactly.

    A stream of ``source_bpp`` bits per pixel, coded at rate R and sent on m bits per complex
    channel use, takes source_bpp / (R m) uses per pixel; filling ``cbr`` = uses / (3 pixels)
    needs R = source_bpp / (3 cbr m). That is uncoded (``none``) when R = 1 and ``ldpc-A/B`` when
    R lies in [max(min_rate, 0.1), 0.95]; a modulation that needs any other rate does not fit.
    ``source_bpp`` and ``cbr`` are exact fractions (or strings like ``"1/12"``) so that
    R = 1 is recognised exactly. Ordered as ``modulations``."""
    bpp, cbr = Fraction(source_bpp), Fraction(cbr)
    if bpp <= 0 or not 0 < cbr <= 1:
        raise ValueError(f"need source_bpp > 0 and cbr in (0, 1], got {source_bpp} and {cbr}")
    out = []
    for mod in modulations:
        r = bpp / (3 * cbr * get_modulation(mod).bits_per_symbol)
        if r == 1:
            out.append((mod, "none"))
        elif max(RATE_RANGE[0], min_rate) <= r <= RATE_RANGE[1]:
            out.append((mod, code_name(r)))
    return out


def stream_cbr(source_bpp: float, code: str | None, bits_per_use: int) -> float:
    """Bandwidth ratio of a stream of ``source_bpp`` bits per pixel behind ``code`` on
    ``bits_per_use`` bits per complex channel use (before rounding up to whole symbols)."""
    r = code_rate(code)
    return float(source_bpp) / (float(r) if r is not None else 1.0) / bits_per_use / 3


@lru_cache(maxsize=64)
def _block(payload_bits: int, coded_bits: int, bits_per_symbol: int) -> LDPC5GTransportBlock:
    return LDPC5GTransportBlock(payload_bits, coded_bits, bits_per_symbol)


def hard_crossover(channel) -> float | None:
    """The crossover probability of ``channel``'s hard decisions: its ``crossover_probability``
    (hard awgn / fading), the ``p`` of a bsc or burst channel, else None (unknown)."""
    if channel is not None and hasattr(channel, "crossover_probability"):
        return float(channel.crossover_probability)
    if channel is not None and getattr(channel, "param", None) == "p" and channel.name in ("bsc", "burst"):
        return float(channel.param_value)
    return None


def hard_bits_llr(hard: np.ndarray, q: float | None) -> np.ndarray:
    """The one hard-bits-to-LLR rule: float64 LLRs of hard decisions ``hard`` (0, 1, or -1 for an
    erasure) from a channel of crossover probability ``q``: +-log((1 - q) / q) clipped to
    ``LLR_CLIP`` (q None or 0: +-LLR_CLIP), erasures 0."""
    mag = LLR_CLIP if not q or q <= 0 else min(LLR_CLIP, float(np.log((1 - q) / q)))
    return np.where(hard < 0, 0.0, np.where(hard == 0, mag, -mag))


def received_llr(rx: Received, channel, dtype=np.float64) -> np.ndarray:
    """LLRs (``dtype``) of what ``channel`` delivered: its own soft output clipped to +-LLR_CLIP
    (every channel but a hard awgn / fading link gives one), else ``hard_bits_llr`` of the hard
    decisions for the channel's ``hard_crossover``."""
    if rx.llr is not None:
        return np.clip(rx.llr.astype(dtype), -LLR_CLIP, LLR_CLIP)
    return hard_bits_llr(rx.hard, hard_crossover(channel)).astype(dtype, copy=False)


HARD_Q = 0.02  # the crossover probability LdpcCode assumes for hard bits (it cannot know the channel's)


@dataclass(frozen=True)
class LdpcCode:
    """5G LDPC of rate ``name`` (``ldpc-A/B``) as a baselines channel code: ``coded_length(n)``
    = ceil(n / R) bits, ``encode`` (the transport block), ``decode`` of LLRs (or hard bits,
    -1 erased) to the payload's hard decisions."""

    name: str = "ldpc-1/2"
    iterations: int = 20

    def __post_init__(self) -> None:
        name = single_code(self.name)
        if not name.startswith("ldpc-"):
            raise ValueError("LdpcCode needs a rate (ldpc-A/B)")
        object.__setattr__(self, "name", name)

    @property
    def rate(self) -> float:
        return float(code_rate(self.name))

    def coded_length(self, n_info: int) -> int:
        if int(n_info) < 0:
            raise ValueError("n_info must be >= 0")
        return math.ceil(Fraction(int(n_info)) / code_rate(self.name))

    def _block(self, n_info: int) -> LDPC5GTransportBlock:
        return _block(int(n_info), self.coded_length(n_info), 1)

    def encode(self, bits) -> np.ndarray:
        bits = np.asarray(bits, np.uint8)
        return self._block(bits.size).encode(bits) if bits.size else bits

    def decode(self, received, n_info: int | None = None) -> np.ndarray:
        """Payload decisions from what arrived (LLRs, or hard bits with -1 for an erasure);
        the payload length is the largest whose coded length is ``received.size``."""
        r = np.asarray(received)
        n = self.info_length(r.size) if n_info is None else int(n_info)
        if n <= 0:
            return np.zeros(0, np.uint8)
        if np.issubdtype(r.dtype, np.floating):
            llr = np.clip(r, -LLR_CLIP, LLR_CLIP).astype(np.float32)
        else:
            llr = hard_bits_llr(r, HARD_Q).astype(np.float32)
        res = self._block(n).decode(llr, self.iterations)
        return np.asarray(res.bits, np.uint8)

    def info_length(self, coded: int) -> int:
        """The largest payload whose coded length is exactly ``coded`` (0 if none)."""
        n = int(Fraction(int(coded)) * code_rate(self.name))
        while n > 0 and self.coded_length(n) > coded:
            n -= 1
        return n if n > 0 and self.coded_length(n) == coded else 0


@dataclass(frozen=True)
class CodedLink:
    """``channel`` behind a 5G LDPC code of rate ``code`` (``ldpc-A/B``, or ``cc-A/B``);
    ``iterations`` of the decoder (layered offset min-sum, ``vqcodec.ldpc``).

    Unequal protection, ``code = "A+B+..."``: the payload is cut into as many equal parts (in
    order; a residual model's payload is stage-major, so with one code per stage each stage
    gets its own), and each part is sent on its own with its own code (its own transport block
    and CRC, padded to whole symbols; ``none``: uncoded). Parts go through the channel one
    after another, drawing from the same generator."""

    channel: Channel
    code: str = "ldpc-1/2"
    iterations: int = 20

    def __post_init__(self) -> None:
        code = parse_code(self.code)
        if code == "none":
            raise ValueError("CodedLink needs a code (ldpc-A/B or cc-A/B)")
        object.__setattr__(self, "code", code)

    @property
    def _parts(self) -> list[str]:
        return code_segments(self.code)

    # the channel's identity, for results files and receivers
    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def param(self) -> str:
        return self.channel.param

    @property
    def param_value(self) -> float:
        return self.channel.param_value

    @property
    def rate(self) -> Fraction:
        return code_rate(self.code)

    @property
    def bits_per_use(self) -> int:
        return getattr(self.channel, "bits_per_use", 1)

    def coded_bits(self, n_bits: int) -> int:
        """Bits on the channel for an ``n_bits`` payload, up to whole symbols: ceil(n / R) for LDPC,
        the terminated (and punctured) length for a convolutional code (its 6 tail steps count);
        for unequal protection the sum over the parts, each up to whole symbols."""
        parts = self._parts
        return sum(self._part_bits(c, len(p)) for c, p in zip(parts, np.array_split(np.arange(n_bits), len(parts))))

    def _part_bits(self, code: str, n: int) -> int:
        m = self.bits_per_use
        if code.startswith("cc-"):
            return m * math.ceil(CONV_CODES[code[3:]].coded_length(n) / m)
        r = code_rate(code)
        return m * math.ceil(Fraction(n) / (r if r is not None else 1) / m)

    def channel_uses(self, n_bits: int) -> int:
        return self.coded_bits(n_bits) // self.bits_per_use

    def __call__(self, bits, rng) -> Received:
        bits = np.asarray(bits, dtype=np.uint8)
        if int(bits.shape[0]) == 0:
            return Received(hard=np.zeros(0, np.int8), llr=np.zeros(0, np.float32))
        parts = self._parts
        post = np.concatenate([self._send(c, b, rng) for c, b in zip(parts, np.array_split(bits, len(parts)))])
        llr = np.clip(np.asarray(post, dtype=np.float32), -LLR_CLIP, LLR_CLIP)
        return Received(hard=(llr < 0).astype(np.int8), llr=llr)

    def _send(self, code: str, bits: np.ndarray, rng) -> np.ndarray:
        """One part through its code and the channel: the payload's a-posteriori LLRs."""
        n = int(bits.shape[0])
        if n == 0:
            return np.zeros(0, np.float32)
        coded_bits = self._part_bits(code, n)
        if code.startswith("cc-"):  # zero fill to whole symbols; max-log BCJR gives a-posteriori LLRs
            conv = CONV_CODES[code[3:]]
            coded = conv.encode(bits)
            sent = np.zeros(coded_bits, np.uint8)
            sent[: coded.size] = coded
            rx = self.channel(sent, rng)
            return conv.decode_llr(received_llr(rx, self.channel, np.float32)[: coded.size])
        if code == "none":  # an unprotected part: the channel's own LLRs, zero fill to whole symbols
            sent = np.zeros(coded_bits, np.uint8)
            sent[:n] = bits
            return received_llr(self.channel(sent, rng), self.channel, np.float32)[:n]
        tb = _block(n, coded_bits, self.bits_per_use)
        rx = self.channel(tb.encode(bits), rng)
        return tb.decode(received_llr(rx, self.channel, np.float32), self.iterations).llr
