"""Bit scrambling of modulated links (3GPP TS 38.211 §7.3.1.1, sequence of §5.2.1).

Real links XOR the coded bits with a pseudo-random sequence before modulation, so the
symbols are close to uniform whatever the payload. Without it, a QAM link's error
statistics depend on the image (the bit positions of a 16-QAM label have different error
rates, and index labels are far from uniform). The receiver undoes it exactly: hard
decisions are XORed again, LLRs change sign where the sequence is 1, so no receiver loses
anything.

The sequence is the length-31 Gold sequence of TS 38.211 §5.2.1:
``c(n) = (x1(n + 1600) + x2(n + 1600)) mod 2`` with
``x1(n + 31) = (x1(n + 3) + x1(n)) mod 2``, ``x1(0) = 1``, ``x1(1..30) = 0``, and
``x2(n + 31) = (x2(n + 3) + x2(n + 2) + x2(n + 1) + x2(n)) mod 2``, ``x2`` initialised with
the bits of ``c_init``. The default ``c_init = n_RNTI 2^15 + q 2^14 + n_ID`` with
``n_RNTI = 1``, ``q = 0``, ``n_ID = 1`` (PDSCH, §7.3.1.1), the same as Sionna's
``TB5GScrambler`` defaults. Every transmission starts the sequence afresh (one transport
block per call).

>>> gold_sequence(8)
array([0, 0, 0, 1, 0, 0, 1, 1], dtype=uint8)
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["C_INIT", "gold_sequence", "scramble", "descramble_hard", "descramble_llr"]

#: 38.211 §7.3.1.1: n_RNTI 2^15 + q 2^14 + n_ID with n_RNTI = 1, q = 0, n_ID = 1
C_INIT = (1 << 15) + 1
_NC = 1600  # the sequence starts after 1600 shifts (38.211 §5.2.1)
_MAX_C_INIT = (1 << 31) - 1


def _lfsr(init: np.ndarray, taps: tuple[int, ...], length: int) -> np.ndarray:
    """``x(n + 31) = sum over taps t of x(n + t) mod 2`` from the 31 bits ``init``, ``length``
    bits in all. Each step fills 28 bits at once: bits n + 31 .. n + 58 need only
    x(n .. n + 30), the largest tap being 3."""
    x = np.zeros(max(length, 31) + 28, np.uint8)
    x[:31] = init
    for n in range(0, length - 31 + 1 if length > 31 else 0, 28):
        acc = x[n:n + 28].copy()
        for t in taps:
            if t:
                acc ^= x[n + t:n + t + 28]
        x[n + 31:n + 59] = acc
    return x[:length]


#: c_init -> (sequence, float32 signs 1 - 2c for the LLRs), both read-only, replaced together
_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()
#: longest sequence kept between calls (bits; 5 bytes each with its signs): longer ones are made per call
MAX_CACHED = 1 << 26


def _sequence(length: int, c_init: int) -> tuple[np.ndarray, np.ndarray]:
    """(c, 1 - 2c) of at least ``length`` bits, from the cache or made (thread-safe)."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    if isinstance(c_init, bool) or not isinstance(c_init, (int, np.integer)) or not 0 <= c_init <= _MAX_C_INIT:
        raise ValueError(f"c_init must be an integer in [0, 2^31 - 1], got {c_init!r}")
    key = int(c_init)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0].shape[0] >= length:
            return hit
        old = 0 if hit is None else hit[0].shape[0]
        n = max(int(length), min(2 * old, MAX_CACHED), 1 << 16)
        x1_init = np.zeros(31, np.uint8)
        x1_init[0] = 1
        x2_init = ((key >> np.arange(31)) & 1).astype(np.uint8)
        seq = _lfsr(x1_init, (0, 3), n + _NC)[_NC:] ^ _lfsr(x2_init, (0, 1, 2, 3), n + _NC)[_NC:]
        signs = 1.0 - 2.0 * seq.astype(np.float32)
        seq.flags.writeable = False
        signs.flags.writeable = False
        if n <= MAX_CACHED:
            _CACHE[key] = (seq, signs)
        return seq, signs


def gold_sequence(length: int, c_init: int = C_INIT) -> np.ndarray:
    """The first ``length`` bits of the 38.211 §5.2.1 sequence for ``c_init`` (uint8 0/1,
    read-only; cached and grown as longer sequences are asked for, up to ``MAX_CACHED``)."""
    return _sequence(length, c_init)[0][:length]


def scramble(bits: np.ndarray, c_init: int = C_INIT) -> np.ndarray:
    """``bits XOR c`` (a new uint8 array); scrambling twice gives the bits back."""
    return bits ^ gold_sequence(bits.shape[0], c_init)


def descramble_hard(hard: np.ndarray, c_init: int = C_INIT) -> np.ndarray:
    """Hard decisions (int8 in {0, 1}, or -1 for an erasure, which stays -1) in place."""
    c = gold_sequence(hard.shape[0], c_init).view(np.int8)
    np.bitwise_xor(hard, c, out=hard, where=hard >= 0)
    return hard


def descramble_llr(llr: np.ndarray, c_init: int = C_INIT) -> np.ndarray:
    """LLRs of the scrambled bits to LLRs of the bits, in place: the sign flips where
    ``c = 1`` (``P(b = 0) = P(b XOR c = c)``)."""
    np.multiply(llr, _sequence(llr.shape[0], c_init)[1][:llr.shape[0]], out=llr)
    return llr
