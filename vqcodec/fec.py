"""Classical channel codes: convolutional codes with Viterbi decoding,
repetition codes and CRC-32.

Conventions (see DESIGN.md): bits are ``uint8`` arrays of 0/1; received
hard bits are ``int8`` in {0, 1, -1} with -1 = erased; LLRs are ``float32``
with ``llr = log P(bit=0) / P(bit=1)`` (positive: 0 is more likely).

Convolutional codes
-------------------
Binary feed-forward codes of rate 1/n, constraint length K, generators in
octal with the MATLAB ``poly2trellis`` / IEEE 802.11 convention: the most
significant bit of a K-bit generator taps the *current* input bit, the least
significant bit taps the input K-1 steps ago.  For example the impulse
response of generator 133 (binary 1011011) is 1, 0, 1, 1, 0, 1, 1.
Every message is terminated with K-1 tail zeros, so the encoder starts and
ends in state 0 and the decoder traces back from state 0.

The encoder state is the last K-1 inputs with the most recent input as the
most significant bit: from state ``s`` with input ``u`` the register is
``r = (u << (K-1)) | s``, output j is ``parity(r & g_j)`` and the next state
is ``r >> 1``.  Coded bits are sent step by step, output 0 first
(A1 B1 A2 B2 ... for rate 1/2).  Punctured codes delete bits of this stream
periodically: ``puncture[j][t % period] == 0`` deletes output j of step t.

Viterbi decoding maximises the correlation ``sum_i (1 - 2 c_i) llr_i``
between a codeword ``c`` and the LLRs (maximum likelihood for BPSK on AWGN
with exact LLRs; minimum Hamming distance for hard bits, which enter as
llr = +1 / -1 and erasures as 0).  Punctured positions get llr 0.  Ties are
broken towards the predecessor state with the smaller index (decision 0);
the numba kernel and the numpy reference use the same float32 operations in
the same order, so they return identical bits.

Shipped codes (``CODES``, ``get_code``), all K = 7 (64 states):

====  ==============================================  ================  =====
name  construction                                    generators        dfree
====  ==============================================  ================  =====
1/2   industry standard (802.11, DVB, ...)            133 171           10
2/3   1/2 punctured, 802.11a: A [1 1], B [1 0]        133 171           6
3/4   1/2 punctured, 802.11a: A [1 1 0], B [1 0 1]    133 171           5
1/3   standard K=7 rate 1/3                           133 171 165       15
1/4   chosen for a large free distance (see below)    133 171 165 117   20
====  ==============================================  ================  =====

The rate-1/4 code extends the rate-1/3 code (which extends the rate-1/2
code) by the generator 117, chosen for its large free distance: 20, which
meets the Heller upper bound for K=7, rate 1/4 (floor(4/7 * 9 * 4) = 20),
so no K=7 rate-1/4 code does better.  ``free_distance`` computes the
free distances above exactly (shortest path through the trellis); the tests
check them against an exhaustive search over short inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import zlib

import numba
import numpy as np

__all__ = [
    "ConvCode",
    "RepetitionCode",
    "CODES",
    "get_code",
    "free_distance",
    "hard_to_llr",
    "viterbi_decode",
    "viterbi_decode_reference",
    "crc32_bits",
    "crc32_bytes",
    "crc32_bytes_reference",
    "append_crc",
    "check_crc",
]


# ---------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------


def _as_bits(bits) -> np.ndarray:
    """Validate a 1-D array of 0/1 values and return it as uint8."""
    a = np.asarray(bits)
    if a.ndim != 1:
        raise ValueError(f"bits must be a 1-D array, got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"bits must be an integer array of 0/1, got dtype {a.dtype}")
    if a.size and ((a != 0) & (a != 1)).any():
        raise ValueError("bits must contain only 0 and 1")
    return a.astype(np.uint8, copy=False)


def hard_to_llr(hard) -> np.ndarray:
    """Hard received bits (0, 1, or -1 = erased) -> float32 LLRs +1, -1, 0."""
    h = np.asarray(hard)
    if h.ndim != 1:
        raise ValueError(f"hard bits must be a 1-D array, got shape {h.shape}")
    if h.size and not np.issubdtype(h.dtype, np.integer) and h.dtype != np.bool_:
        raise ValueError(f"hard bits must be an integer array, got dtype {h.dtype}")
    if h.size and (h.min() < -1 or h.max() > 1):
        raise ValueError("hard bits must contain only 0, 1 and -1 (erased)")
    h = h.astype(np.int8, copy=False)
    # 0 -> 1 * 1, 1 -> -1 * 1, -1 -> 3 * 0 (all exact in float32)
    return (np.float32(1.0) - np.float32(2.0) * h.astype(np.float32)) * (h != -1)


def _as_llr(received) -> np.ndarray:
    """LLRs (floating dtype) pass through as float32; integer arrays are hard bits."""
    r = np.asarray(received)
    if r.ndim != 1:
        raise ValueError(f"received must be a 1-D array, got shape {r.shape}")
    if np.issubdtype(r.dtype, np.floating):
        llr = r.astype(np.float32, copy=False)
        if not np.isfinite(llr).all():
            raise ValueError("LLRs must be finite")
        return llr
    return hard_to_llr(r)


# ---------------------------------------------------------------------------
# Trellis tables
# ---------------------------------------------------------------------------


def _parity(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.int64).copy()
    p = np.zeros_like(x)
    while x.any():
        p ^= x & 1
        x >>= 1
    return p


@functools.cache
def _trellis(generators: tuple[int, ...], K: int):
    """Tables of the rate-1/n trellis (read-only arrays).

    Returns ``(next_state, outputs, sign)``:

    * ``next_state[s, u]``: state after input u from state s;
    * ``outputs[s, u, j]``: coded bit j of that transition (uint8);
    * ``sign[j, i]``: float32 ``1 - 2 * outputs[2i, 0, j]``, the sign of llr
      j in the branch metric of the butterfly ``i`` (i < 2**(K-2)).

    Butterfly i joins the predecessors 2i and 2i+1 to the successors i
    (input 0) and i + 2**(K-2) (input 1).  Because every generator taps both
    the current input and the oldest one, the four branches of a butterfly
    carry the branch metrics +b, -b, -b, +b (see ``_viterbi_kernel``).
    """
    S = 1 << (K - 1)
    s = np.arange(S, dtype=np.int64)
    next_state = np.empty((S, 2), np.int64)
    outputs = np.empty((S, 2, len(generators)), np.uint8)
    for u in (0, 1):
        reg = (u << (K - 1)) | s
        next_state[:, u] = reg >> 1
        for j, g in enumerate(generators):
            outputs[:, u, j] = _parity(reg & g)
    sign = (1.0 - 2.0 * outputs[0::2, 0, :].T).astype(np.float32)
    sign = np.ascontiguousarray(sign)
    for a in (next_state, outputs, sign):
        a.flags.writeable = False
    return next_state, outputs, sign


def _encode_mother(bits: np.ndarray, generators: tuple[int, ...], K: int) -> np.ndarray:
    """Unpunctured terminated rate-1/n encoding, shape (n_info + K - 1, n)."""
    n_steps = bits.size + K - 1
    # padded[t + K - 1] = u_t, with K-1 leading zeros (initial state 0)
    padded = np.zeros(n_steps + K - 1, np.uint8)
    padded[K - 1 : K - 1 + bits.size] = bits
    out = np.zeros((n_steps, len(generators)), np.uint8)
    for j, g in enumerate(generators):
        for d in range(K):  # tap d = input d steps ago = generator bit K-1-d
            if (g >> (K - 1 - d)) & 1:
                out[:, j] ^= padded[K - 1 - d : K - 1 - d + n_steps]
    return out


# ---------------------------------------------------------------------------
# Viterbi decoder: numba kernel and numpy reference
# ---------------------------------------------------------------------------


@numba.njit(cache=True)
def _viterbi_kernel(llr, sign):  # pragma: no cover - compiled
    """Soft Viterbi over a terminated rate-1/n trellis with at most 64 states.

    llr: float32 (n_steps, n), depunctured; sign: float32 (n, S/2) from
    ``_trellis``.  Returns uint8 (n_steps,) decoded inputs (tail included).
    The survivor decisions of one step are packed into one uint64 (bit s =
    decision of state s), so memory is 8 bytes per step.
    """
    n_steps = llr.shape[0]
    n_out = llr.shape[1]
    half = sign.shape[1]
    n_states = 2 * half
    pm = np.full(n_states, -np.inf, dtype=np.float32)
    pm[0] = 0.0
    new = np.empty(n_states, dtype=np.float32)
    bm = np.empty(half, dtype=np.float32)
    dec = np.empty(n_steps, dtype=np.uint64)
    for t in range(n_steps):
        l0 = llr[t, 0]
        for i in range(half):
            bm[i] = sign[0, i] * l0
        for j in range(1, n_out):
            lj = llr[t, j]
            for i in range(half):
                bm[i] = bm[i] + sign[j, i] * lj
        word = np.uint64(0)
        for i in range(half):
            a = pm[2 * i]
            c = pm[2 * i + 1]
            b = bm[i]
            m0 = a + b  # predecessor 2i   -> state i (input 0)
            m1 = c - b  # predecessor 2i+1 -> state i
            d0 = m1 > m0
            new[i] = m1 if d0 else m0
            m0 = a - b  # predecessor 2i   -> state i + half (input 1)
            m1 = c + b  # predecessor 2i+1 -> state i + half
            d1 = m1 > m0
            new[i + half] = m1 if d1 else m0
            word |= (np.uint64(d0) << np.uint64(i)) | (np.uint64(d1) << np.uint64(i + half))
        dec[t] = word
        ref = new[0]
        for s in range(n_states):
            pm[s] = new[s] - ref
    out = np.empty(n_steps, dtype=np.uint8)
    state = 0
    for t in range(n_steps - 1, -1, -1):
        out[t] = state // half
        d = (dec[t] >> np.uint64(state)) & np.uint64(1)
        state = ((state % half) << 1) | np.int64(d)
    return out


def _viterbi_reference(llr: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """numpy reference of ``_viterbi_kernel`` (vectorised over states).

    Same float32 operations in the same order, same tie-breaking (decision 1
    only when the odd predecessor is strictly better), so the output is
    bit-identical.
    """
    n_steps, n_out = llr.shape
    half = sign.shape[1]
    n_states = 2 * half
    pm = np.full(n_states, -np.inf, np.float32)
    pm[0] = 0.0
    dec = np.empty((n_steps, n_states), np.uint8)
    with np.errstate(invalid="ignore"):
        for t in range(n_steps):
            bm = sign[0] * llr[t, 0]
            for j in range(1, n_out):
                bm = bm + sign[j] * llr[t, j]
            a = pm[0::2]
            c = pm[1::2]
            m0 = np.concatenate([a + bm, a - bm])
            m1 = np.concatenate([c - bm, c + bm])
            d = m1 > m0
            new = np.where(d, m1, m0)
            dec[t] = d
            pm = (new - new[0]).astype(np.float32, copy=False)
    out = np.empty(n_steps, np.uint8)
    state = 0
    for t in range(n_steps - 1, -1, -1):
        out[t] = state // half
        state = ((state % half) << 1) | int(dec[t, state])
    return out


def viterbi_decode(llr, generators=(0o133, 0o171), K: int = 7) -> np.ndarray:
    """Viterbi-decode depunctured LLRs of a terminated rate-1/n code (numba).

    ``llr`` is float32 of shape ``(n_steps, n)`` or flat ``(n_steps * n,)``;
    returns the decoded inputs of all ``n_steps`` steps, tail included.
    """
    gens = tuple(int(g) for g in generators)
    _check_generators(gens, K)
    _, _, sign = _trellis(gens, K)
    llr = np.ascontiguousarray(np.asarray(llr, np.float32).reshape(-1, len(gens)))
    return _viterbi_kernel(llr, sign)


def viterbi_decode_reference(llr, generators=(0o133, 0o171), K: int = 7) -> np.ndarray:
    """Pure numpy reference of ``viterbi_decode`` (identical output, slow)."""
    gens = tuple(int(g) for g in generators)
    _check_generators(gens, K)
    _, _, sign = _trellis(gens, K)
    llr = np.ascontiguousarray(np.asarray(llr, np.float32).reshape(-1, len(gens)))
    return _viterbi_reference(llr, np.asarray(sign))


# ---------------------------------------------------------------------------
# BCJR (log-MAP): a-posteriori LLRs of the inputs, numba kernel and numpy reference
# ---------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _lse(a, b, exact):  # pragma: no cover - compiled
    """log(exp(a) + exp(b)) in float64 (``exact``), else max(a, b) (max-log); -inf safe."""
    if a < b:
        a, b = b, a
    if not exact or b == -np.inf:
        return a
    return a + np.log1p(np.exp(b - a))


@numba.njit(cache=True)
def _bcjr_kernel(llr, sign, exact):  # pragma: no cover - compiled
    """BCJR (Bahl, Cocke, Jelinek & Raviv, IEEE Trans. IT 20(2), 1974) over the same terminated
    rate-1/n trellis as ``_viterbi_kernel``, in float64: log-MAP with ``exact``, else max-log-MAP
    (every log-sum-exp replaced by its larger term; about 10x faster, slightly overconfident).

    llr: float32 (n_steps, n) depunctured; returns float64 (n_steps,) input LLRs
    log P(u_t = 0 | y) / P(u_t = 1 | y) (tail steps included). A branch of butterfly i
    carries log-likelihood +-b_i / 2 with b_i = sum_j sign[j, i] llr[t, j]: predecessor
    2i -> i (input 0) and 2i+1 -> i + S/2 (input 1) get +b/2, the other two -b/2.
    """
    n_steps = llr.shape[0]
    n_out = llr.shape[1]
    half = sign.shape[1]
    S = 2 * half
    ninf = -np.inf
    bm = np.empty((n_steps, half))
    for t in range(n_steps):
        for i in range(half):
            acc = 0.0
            for j in range(n_out):
                acc += sign[j, i] * llr[t, j]
            bm[t, i] = 0.5 * acc
    alpha = np.empty((n_steps + 1, S))
    alpha[0, :] = ninf
    alpha[0, 0] = 0.0
    for t in range(n_steps):
        mx = ninf
        for i in range(half):
            a = alpha[t, 2 * i]
            c = alpha[t, 2 * i + 1]
            b = bm[t, i]
            v0 = _lse(a + b, c - b, exact)
            v1 = _lse(a - b, c + b, exact)
            alpha[t + 1, i] = v0
            alpha[t + 1, i + half] = v1
            mx = max(mx, max(v0, v1))
        for k in range(S):
            alpha[t + 1, k] -= mx
    beta = np.full(S, ninf)
    beta[0] = 0.0
    new = np.empty(S)
    out = np.empty(n_steps)
    for t in range(n_steps - 1, -1, -1):
        l0 = ninf
        l1 = ninf
        mx = ninf
        for i in range(half):
            a = alpha[t, 2 * i]
            c = alpha[t, 2 * i + 1]
            b = bm[t, i]
            z0 = beta[i]
            z1 = beta[i + half]
            l0 = _lse(l0, _lse(a + b + z0, c - b + z0, exact), exact)
            l1 = _lse(l1, _lse(a - b + z1, c + b + z1, exact), exact)
            v_even = _lse(b + z0, -b + z1, exact)
            v_odd = _lse(-b + z0, b + z1, exact)
            new[2 * i] = v_even
            new[2 * i + 1] = v_odd
            mx = max(mx, max(v_even, v_odd))
        out[t] = l0 - l1
        for k in range(S):
            beta[k] = new[k] - mx
    return out


def _bcjr_reference(llr: np.ndarray, sign: np.ndarray, exact: bool) -> np.ndarray:
    """numpy reference of ``_bcjr_kernel`` (vectorised over states; ``np.logaddexp`` or ``np.maximum``)."""
    lae = np.logaddexp if exact else np.maximum
    n_steps = llr.shape[0]
    half = sign.shape[1]
    S = 2 * half
    bm = 0.5 * (np.asarray(llr, np.float64) @ np.asarray(sign, np.float64))  # (n_steps, half)
    alpha = np.full((n_steps + 1, S), -np.inf)
    alpha[0, 0] = 0.0
    for t in range(n_steps):
        a, c, b = alpha[t, 0::2], alpha[t, 1::2], bm[t]
        nxt = np.concatenate([lae(a + b, c - b), lae(a - b, c + b)])
        alpha[t + 1] = nxt - nxt.max()
    beta = np.full(S, -np.inf)
    beta[0] = 0.0
    out = np.empty(n_steps)
    for t in range(n_steps - 1, -1, -1):
        a, c, b = alpha[t, 0::2], alpha[t, 1::2], bm[t]
        z0, z1 = beta[:half], beta[half:]
        out[t] = (lae.reduce(np.concatenate([a + b + z0, c - b + z0]))
                  - lae.reduce(np.concatenate([a - b + z1, c + b + z1])))
        new = np.empty(S)
        new[0::2] = lae(b + z0, -b + z1)
        new[1::2] = lae(-b + z0, b + z1)
        beta = new - new.max()
    return out


# ---------------------------------------------------------------------------
# ConvCode
# ---------------------------------------------------------------------------


def _check_generators(generators: tuple[int, ...], K: int) -> None:
    if not 2 <= K <= 7:
        raise ValueError(f"constraint length K must be in [2, 7] (at most 64 states), got {K}")
    if len(generators) < 2:
        raise ValueError("need at least two generators (rate 1/n, n >= 2)")
    for g in generators:
        if not 0 < g < (1 << K):
            raise ValueError(f"generator {g:o} (octal) does not fit K={K}")
        if not (g >> (K - 1)) & 1 or not g & 1:
            raise ValueError(
                f"generator {g:o} (octal) must tap both the current input (MSB) "
                f"and the oldest input (LSB) for K={K}"
            )


@dataclasses.dataclass(frozen=True)
class ConvCode:
    """A terminated, optionally punctured, rate-1/n feed-forward convolutional code.

    ``generators``: octal-convention integers (e.g. ``(0o133, 0o171)``), MSB
    taps the current input; ``K``: constraint length; ``puncture``: None or
    an n-by-period 0/1 pattern (row j = output j, 1 = transmitted);
    ``name``: label, e.g. the rate.  K is at most 7 (64 states, one packed
    survivor word per step), and every generator must tap both the current
    and the oldest input (true of all good codes).
    """

    generators: tuple[int, ...]
    K: int = 7
    puncture: tuple[tuple[int, ...], ...] | None = None
    name: str = ""

    def __post_init__(self):
        gens = tuple(int(g) for g in self.generators)
        object.__setattr__(self, "generators", gens)
        _check_generators(gens, int(self.K))
        object.__setattr__(self, "K", int(self.K))
        if self.puncture is not None:
            p = tuple(tuple(int(v) for v in row) for row in self.puncture)
            if len(p) != len(gens) or len({len(r) for r in p}) != 1 or not p[0]:
                raise ValueError(
                    f"puncture pattern must have {len(gens)} rows of equal, nonzero length"
                )
            arr = np.array(p)
            if ((arr != 0) & (arr != 1)).any():
                raise ValueError("puncture pattern must contain only 0 and 1")
            if not arr.any(axis=0).all():
                raise ValueError("every column of the puncture pattern must keep a bit")
            object.__setattr__(self, "puncture", p)
        if not self.name:
            num, den = self._rate_fraction()
            object.__setattr__(self, "name", f"{num}/{den}")

    # -- properties ---------------------------------------------------------

    @property
    def n(self) -> int:
        """Outputs per input of the mother (unpunctured) code."""
        return len(self.generators)

    @property
    def n_states(self) -> int:
        return 1 << (self.K - 1)

    def _pattern(self) -> np.ndarray:
        """(period, n) bool keep-mask, rows = trellis steps."""
        if self.puncture is None:
            return np.ones((1, self.n), bool)
        return np.array(self.puncture, bool).T

    def _rate_fraction(self) -> tuple[int, int]:
        pat = self._pattern()
        num, den = pat.shape[0], int(pat.sum())
        g = np.gcd(num, den)
        return num // g, den // g

    @property
    def rate(self) -> float:
        """Nominal code rate (tail not counted)."""
        num, den = self._rate_fraction()
        return num / den

    # -- lengths ------------------------------------------------------------

    def _kept_indices(self, n_steps: int) -> np.ndarray:
        """Positions (in the mother-code stream of ``n_steps`` steps) that are sent."""
        pat = self._pattern()
        period, n = pat.shape
        offsets = np.flatnonzero(pat.reshape(-1))
        q = -(-n_steps // period)
        idx = (np.arange(q, dtype=np.int64) * (period * n))[:, None] + offsets
        return idx.reshape(-1)[: self.coded_length(n_steps - (self.K - 1))]

    def coded_length(self, n_info: int) -> int:
        """Number of transmitted bits for ``n_info`` information bits (tail included)."""
        n_info = int(n_info)
        if n_info < 0:
            raise ValueError("n_info must be >= 0")
        pat = self._pattern()
        period = pat.shape[0]
        per_step = pat.sum(axis=1)
        n_steps = n_info + self.K - 1
        q, r = divmod(n_steps, period)
        return int(q * per_step.sum() + per_step[:r].sum())

    def info_length(self, n_coded: int) -> int:
        """Inverse of ``coded_length``; ValueError if no message length fits."""
        n_coded = int(n_coded)
        pat = self._pattern()
        period = pat.shape[0]
        cum = np.concatenate([[0], np.cumsum(pat.sum(axis=1))])  # kept in first r steps
        q, rem = divmod(n_coded, int(cum[-1]))
        hits = np.flatnonzero(cum[:period] == rem)
        if n_coded < 0 or hits.size == 0:
            raise ValueError(f"{n_coded} is not a valid coded length for code {self.name}")
        n_info = q * period + int(hits[0]) - (self.K - 1)
        if n_info < 0:
            raise ValueError(f"{n_coded} coded bits is shorter than the tail of code {self.name}")
        return n_info

    # -- encode / decode ----------------------------------------------------

    def encode(self, bits) -> np.ndarray:
        """Encode ``bits`` (uint8 0/1) -> coded uint8 bits, tail and puncturing applied."""
        b = _as_bits(bits)
        mother = _encode_mother(b, self.generators, self.K).reshape(-1)
        if self.puncture is None:
            return mother
        return mother[self._kept_indices(b.size + self.K - 1)]

    def depuncture(self, llr) -> np.ndarray:
        """Transmitted-bit LLRs -> mother-code LLRs (n_steps, n), zeros where punctured."""
        llr = np.asarray(llr, np.float32)
        n_info = self.info_length(llr.size)
        n_steps = n_info + self.K - 1
        if self.puncture is None:
            return llr.reshape(n_steps, self.n)
        full = np.zeros(n_steps * self.n, np.float32)
        full[self._kept_indices(n_steps)] = llr
        return full.reshape(n_steps, self.n)

    def decode(self, received) -> np.ndarray:
        """Viterbi-decode -> information bits (uint8).

        ``received``: float LLRs (soft decision) or integer hard bits in
        {0, 1, -1 = erased}; length ``coded_length(n_info)``.
        """
        llr = self.depuncture(_as_llr(received))
        _, _, sign = _trellis(self.generators, self.K)
        out = _viterbi_kernel(np.ascontiguousarray(llr), sign)
        return out[: out.size - (self.K - 1)]

    def decode_llr(self, received, exact: bool = False, reference: bool = False) -> np.ndarray:
        """A-posteriori LLRs float32 (n_info,) of the information bits: BCJR, max-log-MAP or
        (``exact``) log-MAP, numba (the numpy reference with ``reference``); ``received`` as
        for :meth:`decode`."""
        llr = self.depuncture(_as_llr(received))
        _, _, sign = _trellis(self.generators, self.K)
        fn = _bcjr_reference if reference else _bcjr_kernel
        out = fn(np.ascontiguousarray(llr), np.asarray(sign), bool(exact))
        return out[: out.size - (self.K - 1)].astype(np.float32)

    def decode_reference(self, received) -> np.ndarray:
        """``decode`` with the numpy reference Viterbi (slow; for tests)."""
        llr = self.depuncture(_as_llr(received))
        _, _, sign = _trellis(self.generators, self.K)
        out = _viterbi_reference(llr, np.asarray(sign))
        return out[: out.size - (self.K - 1)]

    def free_distance(self, max_weight: int = 64) -> int:
        """Exact free distance (of the punctured code if punctured)."""
        return free_distance(self.generators, self.K, self.puncture, max_weight)


def free_distance(generators, K: int = 7, puncture=None, max_weight: int = 64) -> int:
    """Free distance of a (punctured) feed-forward convolutional code.

    Dijkstra over (state, puncturing phase): the minimum output weight of a
    path that leaves state 0 with input 1 at any phase and first returns to
    state 0.  Returns ``max_weight`` if no such path is lighter (catastrophic
    or degenerate codes).
    """
    gens = tuple(int(g) for g in generators)
    _check_generators(gens, K)
    next_state, outputs, _ = _trellis(gens, K)
    if puncture is None:
        pat = np.ones((1, len(gens)), bool)
    else:
        pat = np.array(puncture, bool).T
    period = pat.shape[0]
    weight = np.einsum("suj,pj->psu", outputs.astype(np.int64), pat.astype(np.int64))
    best = max_weight
    for phase0 in range(period):
        s1 = int(next_state[0, 1])
        start = int(weight[phase0, 0, 1])
        dist = {(s1, (phase0 + 1) % period): start}
        heap = [(start, s1, (phase0 + 1) % period)]
        while heap:
            w, s, ph = heapq.heappop(heap)
            if w >= best:
                break
            if dist.get((s, ph), max_weight) < w:
                continue
            if s == 0:
                best = w
                break
            for u in (0, 1):
                ns = int(next_state[s, u])
                nw = w + int(weight[ph, s, u])
                key = (ns, (ph + 1) % period)
                if nw < dist.get(key, max_weight):
                    dist[key] = nw
                    heapq.heappush(heap, (nw, ns, key[1]))
    return best


_STD = (0o133, 0o171)
CODES: dict[str, ConvCode] = {
    "1/2": ConvCode(_STD, 7, None, "1/2"),
    "2/3": ConvCode(_STD, 7, ((1, 1), (1, 0)), "2/3"),
    "3/4": ConvCode(_STD, 7, ((1, 1, 0), (1, 0, 1)), "3/4"),
    "1/3": ConvCode((0o133, 0o171, 0o165), 7, None, "1/3"),
    "1/4": ConvCode((0o133, 0o171, 0o165, 0o117), 7, None, "1/4"),
}


def get_code(name: str) -> ConvCode:
    """Shipped convolutional code by rate name ("1/2", "2/3", "3/4", "1/3", "1/4")."""
    try:
        return CODES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown code {name!r}; known codes: {', '.join(CODES)}"
        ) from None


# ---------------------------------------------------------------------------
# Repetition code
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RepetitionCode:
    """Each bit sent ``n`` times in a row.  Soft decoding sums the LLRs;
    hard decoding takes the majority of the non-erased copies.  Ties (and
    all-erased groups) decode to 0."""

    n: int

    def __post_init__(self):
        if int(self.n) < 1:
            raise ValueError("repetition factor must be >= 1")
        object.__setattr__(self, "n", int(self.n))

    @property
    def name(self) -> str:
        return f"rep{self.n}"

    @property
    def rate(self) -> float:
        return 1.0 / self.n

    def coded_length(self, n_info: int) -> int:
        if int(n_info) < 0:
            raise ValueError("n_info must be >= 0")
        return int(n_info) * self.n

    def encode(self, bits) -> np.ndarray:
        return np.repeat(_as_bits(bits), self.n)

    def decode(self, received) -> np.ndarray:
        r = np.asarray(received)
        if r.ndim != 1 or r.size % self.n:
            raise ValueError(f"received length must be a multiple of {self.n}")
        if np.issubdtype(r.dtype, np.floating):
            s = r.astype(np.float64).reshape(-1, self.n).sum(axis=1)
            return (s < 0).astype(np.uint8)
        votes = hard_to_llr(r).astype(np.int64).reshape(-1, self.n).sum(axis=1)
        return (votes < 0).astype(np.uint8)


# ---------------------------------------------------------------------------
# CRC-32 (IEEE 802.3 / zlib)
# ---------------------------------------------------------------------------


def _crc32_table() -> np.ndarray:
    """Table of the reflected polynomial 0xEDB88320 (numpy)."""
    c = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        c = np.where(c & 1, np.uint32(0xEDB88320) ^ (c >> np.uint32(1)), c >> np.uint32(1))
    c = c.astype(np.uint32)
    c.flags.writeable = False
    return c


_CRC_TABLE = _crc32_table()


@numba.njit(cache=True)
def _crc32_kernel(data, table, crc):  # pragma: no cover - compiled
    """Table-driven reflected CRC-32 update over uint8 ``data``; reference: zlib.crc32."""
    c = np.int64(crc) ^ 0xFFFFFFFF
    for k in range(data.shape[0]):
        c = np.int64(table[(c ^ np.int64(data[k])) & 0xFF]) ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32_bytes(data, crc: int = 0) -> int:
    """CRC-32 of a uint8 array (numba); equals ``zlib.crc32(bytes(data), crc)``."""
    d = np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1))
    return int(_crc32_kernel(d, _CRC_TABLE, np.int64(int(crc) & 0xFFFFFFFF)))


def crc32_bits(bits) -> int:
    """CRC-32 of a bit array packed MSB first (``np.packbits``).

    For a length that is a multiple of 8 this is ``zlib.crc32`` of the packed
    bytes; otherwise the last byte is zero-padded (the receiver knows the
    length, so the padding is not ambiguous).
    """
    return crc32_bytes(np.packbits(_as_bits(bits)))


def _crc_to_bits(crc: int) -> np.ndarray:
    return ((np.uint32(crc) >> np.arange(31, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8)


def append_crc(bits) -> np.ndarray:
    """``bits`` followed by their CRC-32 as 32 bits, MSB first."""
    b = _as_bits(bits)
    return np.concatenate([b, _crc_to_bits(crc32_bits(b))])


def check_crc(bits_with_crc) -> bool:
    """True when the last 32 bits are the CRC-32 of the bits before them."""
    b = _as_bits(bits_with_crc)
    if b.size < 32:
        raise ValueError("need at least the 32 CRC bits")
    return bool(np.array_equal(_crc_to_bits(crc32_bits(b[:-32])), b[-32:]))


def crc32_bytes_reference(data, crc: int = 0) -> int:
    """Reference of ``crc32_bytes``: ``zlib.crc32``."""
    return zlib.crc32(np.asarray(data, np.uint8).tobytes(), int(crc) & 0xFFFFFFFF)
