"""Digital modulation as its own stage: Gray-labelled BPSK ... 256-QAM, mapping
bits to complex symbols and soft demapping received symbols to per-bit LLRs.

Constellations (unit average energy, ``E|x|^2 = 1``):

* ``bpsk``: real ``x = 1 - 2 b`` (bit 0 -> +1, bit 1 -> -1). This is the
  repo's historical BPSK, i.e. Sionna's 1-bit PAM; 3GPP TS 38.211 5.1.2
  rotates it by 45 degrees, which a coherent receiver does not notice.
* ``qpsk``, ``qam16``, ``qam64``, ``qam256``: square Gray QAM with the bit
  labelling of 3GPP TS 38.211 V17 section 5.1.3-5.1.6, e.g. 16-QAM
  ``x = [(1-2b0)(2-(1-2b2)) + j (1-2b1)(2-(1-2b3))] / sqrt(10)``: even label
  bits (b0, b2, ...) choose the in-phase PAM level, odd ones the quadrature
  level. The label of point ``points[i]`` is the binary representation of
  ``i``, most significant bit first (b0 = MSB), exactly as in Sionna's
  ``Constellation("qam", m)``, so LLRs compare one-to-one with Sionna.

Channel model of the demapper: ``y = h x + n`` with ``n ~ CN(0, N0)``
(variance ``N0/2`` per real dimension) and a per-symbol gain ``h`` the
receiver knows (``h = 1`` for AWGN; a real Rayleigh amplitude or a complex
gain for fading). With ``Es = 1``, ``N0 = 10^(-EsN0_dB/10)``.

LLR convention (DESIGN.md): ``llr = log P(b=0 | y) / P(b=1 | y)`` with equally
likely bits, float32, positive means bit 0. (Sionna's ``Demapper`` returns the
opposite sign, ``log P(b=1|y)/P(b=0|y)``.)

* ``"app"``: exact, ``log sum_{x: b=0} exp(-|y-hx|^2/N0) - log sum_{x: b=1} ...``
* ``"maxlog"``: max-log approximation, the sums replaced by their largest term
  (Robertson, Villebrun & Hoeher, ICC 1995); ``|app - maxlog| <= log(2^m / 2)``.

Because the QAM labels split into in-phase and quadrature bits, both are
computed exactly per real dimension from ``u = conj(h) y`` and ``g = |h|^2``:
``-|y - h x|^2 / N0 = const + sum_d (2 c_d u_d - g c_d^2) / N0`` over
``d in {I, Q}`` with PAM levels ``c_d`` (BICM demapping, Caire, Taricco &
Biglieri, IEEE Trans. IT 44(3), 1998). The numba kernels
(:func:`demap_kernel`, :func:`modulate_kernel`) take plain arrays; the numpy
references (:func:`demap_reference`, :func:`detect_reference`,
:func:`modulate_reference`) work on the full 2-D constellation instead and are
what the tests compare the kernels against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from .base import check_bits

__all__ = [
    "MODULATIONS",
    "DEMAPPINGS",
    "Modulation",
    "get_modulation",
    "check_modulation",
    "check_demapping",
    "pam_gray_levels",
    "modulate_kernel",
    "modulate_reference",
    "demap_kernel",
    "demap_reference",
    "detect_reference",
]

#: modulation name -> bits per symbol
_BITS = {"bpsk": 1, "qpsk": 2, "qam16": 4, "qam64": 6, "qam256": 8}
#: accepted modulation names, in order of bits per symbol
MODULATIONS: tuple[str, ...] = tuple(_BITS)
#: accepted demapping methods
DEMAPPINGS: tuple[str, ...] = ("app", "maxlog")
_METHOD_CODE = {"app": 0, "maxlog": 1}
_HARD_ONLY = 2


def check_modulation(value: Any, channel: str = "modulation") -> str:
    """``value`` (a name or a :class:`Modulation`) as a modulation name, else
    a one-line ValueError naming the parameter and the choices."""
    if isinstance(value, Modulation):
        return value.name
    if isinstance(value, str) and value in _BITS:
        return value
    raise ValueError(f"modulation must be one of {', '.join(MODULATIONS)} for {channel}, got {value!r}")


def check_demapping(value: Any, channel: str = "demapping") -> str:
    """``value`` as a demapping method (``"app"`` or ``"maxlog"``), else ValueError."""
    if isinstance(value, str) and value in DEMAPPINGS:
        return value
    raise ValueError(f"demapping must be one of {', '.join(DEMAPPINGS)} for {channel}, got {value!r}")


def pam_gray_levels(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gray PAM of 3GPP TS 38.211 5.1 on ``k`` bits.

    Returns ``(levels float64 (2^k,), bits uint8 (2^k, k))``: level ``p`` is the
    value of the bit vector ``bits[p]`` (binary representation of ``p``, MSB
    first) by the recursion ``v = s_{k-1}``, ``v <- s_j (2^(k-1-j) - v)`` for
    ``j = k-2 .. 0`` with ``s = 1 - 2 b``; values in {+-1, +-3, ..., +-(2^k - 1)}.
    """
    n = 1 << k
    bits = ((np.arange(n)[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1).astype(np.uint8)
    s = 1.0 - 2.0 * bits.astype(np.float64)
    v = s[:, k - 1].copy()
    for j in range(k - 2, -1, -1):
        v = s[:, j] * (2.0 ** (k - 1 - j) - v)
    return v, bits


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


_TABLES: dict[str, tuple] = {}


def _tables(name: str) -> tuple:
    """(points complex64 (M,), labels uint8 (M, m), levels float64 (P,),
    level_bits uint8 (P, k), n_dims) for modulation ``name``; cached, read-only."""
    t = _TABLES.get(name)
    if t is not None:
        return t
    m = _BITS[name]
    if name == "bpsk":
        levels, level_bits = pam_gray_levels(1)  # [+1, -1]
        n_dims = 1
    else:
        k = m // 2
        levels, level_bits = pam_gray_levels(k)
        levels = levels / math.sqrt(2.0 * ((1 << m) - 1) / 3.0)  # E|x|^2 = 1
        n_dims = 2
    M = 1 << m
    labels = ((np.arange(M)[:, None] >> np.arange(m - 1, -1, -1)[None, :]) & 1).astype(np.uint8)
    if n_dims == 1:
        points = levels.astype(np.complex128)
    else:
        w = 1 << np.arange(m // 2 - 1, -1, -1)
        p_i = labels[:, 0::2].astype(np.int64) @ w  # even bits: in-phase level
        p_q = labels[:, 1::2].astype(np.int64) @ w  # odd bits: quadrature level
        points = levels[p_i] + 1j * levels[p_q]
    t = (
        _readonly(points.astype(np.complex64)),
        _readonly(labels),
        _readonly(np.ascontiguousarray(levels, dtype=np.float64)),
        _readonly(np.ascontiguousarray(level_bits)),
        n_dims,
    )
    _TABLES[name] = t
    return t


# ------------------------------------------------------------------ kernels


@numba.njit(cache=True)
def modulate_kernel(bits, m, points, out):  # pragma: no cover - compiled
    """Map bits to symbols: ``out[s] = points[i]`` with ``i`` the integer whose
    binary representation (MSB first) is ``bits[s*m : s*m+m]``; bits past the
    end of ``bits`` count as 0.

    bits: uint8 (n,) of 0/1; m: bits per symbol; points: complex64 (2^m,);
    out: complex64 (ceil(n/m),), written in place.
    """
    n = bits.shape[0]
    for s in range(out.shape[0]):
        idx = 0
        base = s * m
        for j in range(m):
            t = base + j
            b = bits[t] if t < n else 0
            idx = (idx << 1) | b
        out[s] = points[idx]


def modulate_reference(bits: np.ndarray, m: int, points: np.ndarray) -> np.ndarray:
    """numpy reference of :func:`modulate_kernel`: complex64 (ceil(n/m),)."""
    n = bits.shape[0]
    n_sym = -(-n // m)
    padded = np.zeros(n_sym * m, np.int64)
    padded[:n] = bits
    idx = padded.reshape(n_sym, m) @ (1 << np.arange(m - 1, -1, -1))
    return points[idx].astype(np.complex64)


@numba.njit(cache=True)
def demap_kernel(y, h, n0, levels, level_bits, n_dims, method, llr, hard):  # pragma: no cover - compiled
    """Per-bit LLRs and nearest-point hard decisions of ``y = h x + n``.

    y: complex64/complex128 (n_sym,) received symbols.
    h: complex128 (n_sym,) or (1,) known channel gains (one value: all symbols).
    n0: float, N0 > 0 (complex noise variance, N0/2 per real dimension).
    levels: float64 (P,) normalised PAM levels of one real dimension.
    level_bits: uint8 (P, k) their Gray labels (MSB first).
    n_dims: 1 (BPSK: in-phase only) or 2 (square QAM, m = 2k).
    method: 0 exact ("app"), 1 max-log, 2 hard decisions only (llr untouched).
    llr: float32 (n_bits,) out, ``log P(b=0|y)/P(b=1|y)``; hard: int8 (n_bits,)
    out, the bits of the nearest point. Bit ``j`` of dimension ``d`` of symbol
    ``i`` is label bit ``d + n_dims j``, written at ``i m + d + n_dims j`` when
    that is ``< n_bits`` (tail padding bits are dropped).

    Per dimension the metric of level ``c`` is ``(2 c u_d - g c^2) / N0`` with
    ``u = conj(h) y``, ``g = |h|^2``; the exact LLR is a log-sum-exp over the
    levels with bit 0 minus that over bit 1 (stable: shifted by the best metric,
    re-shifted per side when a side's sum underflows), max-log their maxima;
    with two levels per dimension (BPSK, QPSK) both are the metric difference.
    """
    n_sym = y.shape[0]
    n_out = hard.shape[0]
    P = levels.shape[0]
    k = level_bits.shape[1]
    m = n_dims * k
    inv_n0 = 1.0 / n0
    one_h = h.shape[0] == 1
    metric = np.empty(P, np.float64)
    e = np.empty(P, np.float64)
    tiny = 1e-250
    for i in range(n_sym):
        hh = h[0] if one_h else h[i]
        hr = hh.real
        hi = hh.imag
        yr = np.float64(y[i].real)
        yi = np.float64(y[i].imag)
        g = hr * hr + hi * hi
        ur = hr * yr + hi * yi  # Re(conj(h) y)
        ui = hr * yi - hi * yr  # Im(conj(h) y)
        base = i * m
        for d in range(n_dims):
            r = ur if d == 0 else ui
            best = -np.inf
            for p in range(P):
                c = levels[p]
                v = (2.0 * c * r - g * c * c) * inv_n0
                metric[p] = v
                if v > best:
                    best = v
            if method == 0 and P > 2:
                for p in range(P):
                    e[p] = math.exp(metric[p] - best)
            for j in range(k):
                idx = base + d + n_dims * j
                if idx >= n_out:
                    continue
                max0 = -np.inf
                max1 = -np.inf
                for p in range(P):
                    v = metric[p]
                    if level_bits[p, j] == 0:
                        if v > max0:
                            max0 = v
                    elif v > max1:
                        max1 = v
                hard[idx] = 1 if max1 > max0 else 0
                if method == 1 or (method == 0 and P == 2):  # one level per side: max-log is exact
                    llr[idx] = max0 - max1
                elif method == 0:
                    s0 = 0.0
                    s1 = 0.0
                    for p in range(P):
                        if level_bits[p, j] == 0:
                            s0 += e[p]
                        else:
                            s1 += e[p]
                    if s0 > tiny and s1 > tiny:
                        llr[idx] = math.log(s0 / s1)
                    else:  # one side underflowed: shift each side by its own maximum
                        t0 = 0.0
                        t1 = 0.0
                        for p in range(P):
                            if level_bits[p, j] == 0:
                                t0 += math.exp(metric[p] - max0)
                            else:
                                t1 += math.exp(metric[p] - max1)
                        llr[idx] = (max0 + math.log(t0)) - (max1 + math.log(t1))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    mx = a.max(axis=1, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis=1, keepdims=True)))[:, 0]


def demap_reference(y: np.ndarray, h: np.ndarray, n0: float, points: np.ndarray,
                    labels: np.ndarray, method: str = "app", chunk: int = 8192) -> np.ndarray:
    """numpy reference of :func:`demap_kernel` on the full constellation.

    y: complex (n_sym,); h: complex/real (n_sym,) or (1,); n0: N0 > 0;
    points: complex (M,); labels: uint8 (M, m). Returns float64 (n_sym, m):
    ``log sum_{x: b_j=0} exp(-|y-hx|^2/N0) - log sum_{x: b_j=1} ...``
    (``method="app"``) or the same with max instead of log-sum-exp
    (``"maxlog"``). Works in chunks of ``chunk`` symbols to bound memory.
    """
    y = np.asarray(y, np.complex128)
    h = np.broadcast_to(np.asarray(h, np.complex128), y.shape)
    pts = np.asarray(points, np.complex128)
    m = labels.shape[1]
    out = np.empty((y.shape[0], m), np.float64)
    for s in range(0, y.shape[0], chunk):
        yy, hh = y[s:s + chunk, None], h[s:s + chunk, None]
        metric = -np.abs(yy - hh * pts[None, :]) ** 2 / n0  # (n, M)
        for j in range(m):
            a0, a1 = metric[:, labels[:, j] == 0], metric[:, labels[:, j] == 1]
            if method == "app":
                out[s:s + chunk, j] = _logsumexp(a0) - _logsumexp(a1)
            else:
                out[s:s + chunk, j] = a0.max(axis=1) - a1.max(axis=1)
    return out


def detect_reference(y: np.ndarray, h: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """numpy reference of the kernel's hard decisions: the labels (uint8
    (n_sym, m)) of the nearest point ``argmin_x |y - h x|``."""
    y = np.asarray(y, np.complex128)
    h = np.broadcast_to(np.asarray(h, np.complex128), y.shape)
    d = np.abs(y[:, None] - h[:, None] * np.asarray(points, np.complex128)[None, :])
    return labels[np.argmin(d, axis=1)]


# ------------------------------------------------------------------ the stage


@dataclass(frozen=True)
class Modulation:
    """One Gray-labelled constellation (immutable; compares by ``name``).

    Build with :func:`get_modulation` (``"bpsk" | "qpsk" | "qam16" | "qam64" |
    "qam256"``). See the module docstring for the labelling (3GPP TS 38.211
    5.1), the channel model and the LLR sign.
    """

    name: str

    def __post_init__(self) -> None:
        check_modulation(self.name)

    # -- tables
    @property
    def bits_per_symbol(self) -> int:
        """m = log2(number of points)."""
        return _BITS[self.name]

    @property
    def points(self) -> np.ndarray:
        """complex64 (2^m,) read-only; ``points[i]`` carries the label ``i``
        (MSB first); unit average energy."""
        return _tables(self.name)[0]

    @property
    def labels(self) -> np.ndarray:
        """uint8 (2^m, m) read-only: ``labels[i]`` = bits of ``i``, MSB first."""
        return _tables(self.name)[1]

    @property
    def pam_levels(self) -> np.ndarray:
        """float64 (2^k,) read-only normalised levels of one real dimension."""
        return _tables(self.name)[2]

    @property
    def pam_bits(self) -> np.ndarray:
        """uint8 (2^k, k) read-only Gray labels of :attr:`pam_levels`."""
        return _tables(self.name)[3]

    @property
    def n_dims(self) -> int:
        """Real dimensions used: 1 for BPSK, 2 for QAM."""
        return _tables(self.name)[4]

    def symbols(self, n_bits: int) -> int:
        """Complex channel uses for ``n_bits`` bits: ``ceil(n_bits / m)``."""
        return -(-int(n_bits) // self.bits_per_symbol)

    # -- mapping
    def modulate(self, bits: Any) -> np.ndarray:
        """bits uint8 (n,) of 0/1 -> complex64 (ceil(n/m),) symbols (the last
        symbol's missing bits are 0)."""
        b = check_bits(bits)
        out = np.empty(self.symbols(b.shape[0]), np.complex64)
        modulate_kernel(b, self.bits_per_symbol, self.points, out)
        return out

    # -- demapping
    def _prepare(self, y: Any, n0: Any, h: Any, n_bits: int | None) -> tuple[np.ndarray, np.ndarray, float, int]:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D array of received symbols, got shape {y.shape}")
        if y.dtype not in (np.complex64, np.complex128):
            y = y.astype(np.complex128)
        n_sym = y.shape[0]
        if h is None:
            hh = np.ones(1, np.complex128)
        else:
            hh = np.asarray(h, np.complex128).reshape(-1) if np.ndim(h) else np.full(1, complex(h))
            if hh.shape[0] not in (1, n_sym):
                raise ValueError(f"h must be a scalar or shaped like y ({n_sym},), got shape {np.shape(h)}")
        n0f = float(n0)
        if not (math.isfinite(n0f) and n0f > 0.0):
            raise ValueError(f"n0 must be a finite number > 0, got {n0!r}")
        m = self.bits_per_symbol
        if n_bits is None:
            n_bits = n_sym * m
        n_bits = int(n_bits)
        if self.symbols(n_bits) != n_sym or n_bits < 0:
            raise ValueError(f"n_bits must satisfy ceil(n_bits / {m}) == {n_sym} symbols, got {n_bits}")
        return y, hh, n0f, n_bits

    def demodulate(self, y: Any, n0: float, h: Any = None, method: str = "app",
                   n_bits: int | None = None, soft: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Hard decisions and LLRs in one pass.

        y: complex (n_sym,) received ``h x + n``; n0: N0 (linear, > 0);
        h: None (1), a scalar or (n_sym,) real/complex known gains;
        method: ``"app"`` or ``"maxlog"``; n_bits: bits sent (default
        ``n_sym m``; tail padding is dropped). Returns ``(hard int8 (n_bits,)
        in {0, 1} -- the nearest point's bits, i.e. the sign of the max-log
        LLR --, llr float32 (n_bits,) or None when soft=False)``.
        """
        code = _METHOD_CODE[check_demapping(method)]
        y, hh, n0f, n_bits = self._prepare(y, n0, h, n_bits)
        _, _, levels, level_bits, n_dims = _tables(self.name)
        hard = np.empty(n_bits, np.int8)
        llr = np.empty(n_bits if soft else 0, np.float32)
        demap_kernel(y, hh, n0f, levels, level_bits, n_dims, code if soft else _HARD_ONLY, llr, hard)
        return hard, (llr if soft else None)

    def demap(self, y: Any, n0: float, h: Any = None, method: str = "app",
              n_bits: int | None = None) -> np.ndarray:
        """float32 (n_bits,) LLRs ``log P(b=0|y)/P(b=1|y)`` (see :meth:`demodulate`)."""
        return self.demodulate(y, n0, h, method, n_bits)[1]

    def detect(self, y: Any, h: Any = None, n_bits: int | None = None) -> np.ndarray:
        """uint8 (n_bits,) bits of the nearest point ``argmin_x |y - h x|``."""
        return self.demodulate(y, 1.0, h, "maxlog", n_bits, soft=False)[0].view(np.uint8)


_INSTANCES = {name: Modulation(name) for name in MODULATIONS}


def get_modulation(name: Any) -> Modulation:
    """The :class:`Modulation` called ``name`` (or ``name`` itself if it is one);
    ValueError listing the choices for an unknown name."""
    return _INSTANCES[check_modulation(name)]
