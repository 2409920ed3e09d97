"""One 5G NR LDPC code block (3GPP TS 38.212 5.3.2, 5.4.2): ``LDPC5GCode(k, n)``, ``k``
information bits (12..8448, CRC included if any) rate-matched to ``n`` coded bits, and its decoder's
result ``LDPCDecodeResult``.

Base graph, lifting and encoder: ``vqcodec.ldpc.graphs``; the decoders: ``vqcodec.ldpc.decoders``.

* Rate matching (5.4.2.1, I_LBRM = 0): the first 2Z systematic bits are
  punctured; the circular buffer is the rest of the codeword (N = 66 Z or
  50 Z bits) with filler bits skipped; ``n`` bits are read from position
  k0 (rv 0: k0 = 0; rv 1..3 from Table 5.4.2.1-2), wrapping around (i.e.
  repetition) when n exceeds the buffer.  Optional bit interleaving
  (5.4.2.2) for ``bits_per_symbol`` = Q_m > 1.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from vqcodec.ldpc.decoders import (
    _LAYERED_FILLER,
    FIXED_SCALE,
    _fixed_point,
    _flooding_kernel,
    _flooding_reference,
    _layered_interleaved,
    _layered_kernel,
    _layered_reference,
)
from vqcodec.ldpc.graphs import _BG_SHAPE, _K_CB, _KB_MAX, _check_bg, _Graph, _graph, select_base_graph, select_lifting

_RV_COEFF = {1: (0, 17, 33, 56), 2: (0, 13, 25, 43)}  # Table 5.4.2.1-2 (k0 / Z, N_cb = N)


# ---------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------


def _as_bits_2d(bits, length: int, what: str = "bits") -> tuple[np.ndarray, bool]:
    """(B, length) uint8 view of 1-D or 2-D 0/1 input, and whether it was 1-D."""
    a = np.asarray(bits)
    if a.ndim not in (1, 2) or a.shape[-1] != length:
        raise ValueError(f"{what} must have shape ({length},) or (batch, {length}), got {a.shape}")
    if a.dtype != np.bool_ and a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array of 0/1, got dtype {a.dtype}")
    if a.size and ((a != 0) & (a != 1)).any():
        raise ValueError(f"{what} must contain only 0 and 1")
    one_d = a.ndim == 1
    return np.ascontiguousarray(a.reshape(1, length) if one_d else a, dtype=np.uint8), one_d


def _as_llr_2d(llr, length: int, dtype) -> np.ndarray:
    """(B, length) LLRs of the given dtype from 1-D or 2-D floating input."""
    a = np.asarray(llr)
    if a.ndim not in (1, 2) or a.shape[-1] != length:
        raise ValueError(f"llr must have shape ({length},) or (batch, {length}), got {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"llr must be a floating array, got dtype {a.dtype}")
    a = a.reshape(-1, length).astype(dtype, copy=False)
    if not np.isfinite(a).all():
        raise ValueError("LLRs must be finite")
    return a

# ---------------------------------------------------------------------------
# One code block
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LDPCDecodeResult:
    """Output of ``LDPC5GCode.decode``.

    bits: uint8 (k,) or (B, k) hard decisions on the information bits;
    llr: (k,) / (B, k) their a-posteriori LLRs (the decoder's float dtype; float32 for int16);
    iterations: iterations run (int, or (B,) array);
    converged: whether the final hard decisions satisfy every parity check;
    codeword_llr: a-posteriori LLRs of the n transmitted bits, in
    transmission order, when asked for (else None).
    """

    bits: np.ndarray
    llr: np.ndarray
    iterations: np.ndarray | int
    converged: np.ndarray | bool
    codeword_llr: np.ndarray | None = None


_SCHEDULES = ("layered", "flooding")
_CN_UPDATES = ("minsum", "boxplus")


@dataclasses.dataclass(frozen=True)
class LDPC5GCode:
    """A 3GPP NR LDPC code block: ``k`` information bits rate-matched to ``n`` bits.

    ``bg``: 1, 2 or None (selection rule, see ``vqcodec.ldpc.graphs``);
    ``rv``: redundancy version 0..3 (start of the circular-buffer read-out);
    ``bits_per_symbol``: Q_m of the 5.4.2.2 bit interleaver (1 = none).
    ``encode`` equals Sionna's ``LDPC5GEncoder(k, n, num_bits_per_symbol=...)`` bit
    for bit (``rv=r`` equals its ``rv=[r]``) wherever Sionna supports (k, n): it
    refuses rates below 1/5 (1/3 on BG1), where we read the circular buffer
    again (repetition), and k > 3840 at rate <= 1/4, where we use BG1.
    """

    k: int
    n: int
    bg: int | None = None
    rv: int = 0
    bits_per_symbol: int = 1

    def __post_init__(self):
        k, n = int(self.k), int(self.n)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "n", n)
        if not 12 <= k <= 8448:
            raise ValueError(f"k must be in [12, 8448], got {k}")
        if n < 1 or k / n > 0.95:
            raise ValueError(f"unsupported (k, n) = ({k}, {n}): the code rate must be <= 0.95")
        bg = select_base_graph(k, k / n) if self.bg is None else _check_bg(self.bg)
        if k > _K_CB[bg]:
            raise ValueError(f"k = {k} is too large for base graph {bg} (max {_K_CB[bg]})")
        object.__setattr__(self, "bg", bg)
        if int(self.rv) not in (0, 1, 2, 3):
            raise ValueError(f"rv must be 0, 1, 2 or 3, got {self.rv}")
        object.__setattr__(self, "rv", int(self.rv))
        qm = int(self.bits_per_symbol)
        if qm < 1 or n % qm:
            raise ValueError(f"n = {n} must be a multiple of bits_per_symbol = {qm}")
        object.__setattr__(self, "bits_per_symbol", qm)

    # -- parameters ---------------------------------------------------------

    @functools.cached_property
    def _lifting(self):
        return select_lifting(self.k, self.bg)

    @property
    def z(self) -> int:
        """Lifting size Z."""
        return self._lifting[0]

    @property
    def i_ls(self) -> int:
        """Lifting set index (0..7)."""
        return self._lifting[1]

    @property
    def k_ldpc(self) -> int:
        """K: systematic bits of the lifted code (22 Z or 10 Z), fillers included."""
        return _KB_MAX[self.bg] * self.z

    @property
    def k_filler(self) -> int:
        return self.k_ldpc - self.k

    @property
    def n_ldpc(self) -> int:
        """Length of the full lifted codeword (68 Z or 52 Z)."""
        return _BG_SHAPE[self.bg][1] * self.z

    @property
    def n_cb(self) -> int:
        """Circular buffer length N (after the 2Z punctured bits, fillers included)."""
        return self.n_ldpc - 2 * self.z

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def k0(self) -> int:
        """Start of the read-out in the circular buffer (38.212 Table 5.4.2.1-2)."""
        cols = _BG_SHAPE[self.bg][1] - 2
        return (_RV_COEFF[self.bg][self.rv] * self.n_cb // (cols * self.z)) * self.z

    @functools.cached_property
    def _rate_matching(self):
        """(circular-buffer positions (n,), interleaver perm or None, block rows used)."""
        z, k, K = self.z, self.k, self.k_ldpc
        buf = np.arange(self.n_cb, dtype=np.int64)
        buf = buf[(buf < k - 2 * z) | (buf >= K - 2 * z)]  # skip the fillers (NULL bits)
        start = int(np.searchsorted(buf, self.k0))
        circ = buf[(start + np.arange(self.n)) % buf.size] + 2 * z
        qm = self.bits_per_symbol
        perm = None
        if qm > 1:
            per = self.n // qm
            i, j = np.meshgrid(np.arange(qm), np.arange(per), indexing="xy")
            perm = (i * per + j).reshape(-1)  # f[i + j qm] = e[i per + j]
        m = max(4, int(circ.max()) // z + 1 - _KB_MAX[self.bg])
        for a in (circ, perm):
            if a is not None:
                a.flags.writeable = False
        return circ, perm, m

    @property
    def tx_positions(self) -> np.ndarray:
        """Position in the full lifted codeword of each transmitted bit (n,)."""
        circ, perm, _ = self._rate_matching
        return circ if perm is None else circ[perm]

    @property
    def n_rows(self) -> int:
        """Block rows of the base graph that the decoder uses (at least 4)."""
        return self._rate_matching[2]

    def _graph(self, full: bool = False) -> _Graph:
        m = _BG_SHAPE[self.bg][0] if full else self.n_rows
        return _graph(self.bg, self.i_ls, self.z, m)

    # -- structure ----------------------------------------------------------

    def parity_check_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the ones of the full lifted parity-check matrix
        ((46 or 42) Z by n_ldpc), edge by edge."""
        g = self._graph(full=True)
        rows = (g.rows[:, None] * g.z + np.arange(g.z)[None, :]).reshape(-1)
        return rows, g.vn.reshape(-1).copy()

    def syndrome(self, codeword) -> np.ndarray:
        """Syndrome of full lifted codewords (n_ldpc,) or (B, n_ldpc) -> uint8."""
        cw, one_d = _as_bits_2d(codeword, self.n_ldpc, "codeword")
        s = self._graph(full=True).syndrome(cw)
        return s[0] if one_d else s

    # -- encoding -----------------------------------------------------------

    def codeword(self, bits) -> np.ndarray:
        """Full lifted codeword (n_ldpc,) or (B, n_ldpc): info bits, fillers (0),
        all parity bits; before puncturing and rate matching."""
        u, one_d = _as_bits_2d(bits, self.k)
        c = self._encode(u, full=True)
        return c[0] if one_d else c

    def _encode(self, u: np.ndarray, full: bool = False) -> np.ndarray:
        g = self._graph(full)
        s = np.zeros((u.shape[0], g.K), np.uint8)
        s[:, : self.k] = u
        return g.encode(s)

    def encode(self, bits) -> np.ndarray:
        """Encode k bits (or (B, k)) -> n coded bits (or (B, n)), uint8."""
        u, one_d = _as_bits_2d(bits, self.k)
        c = self._encode(u)[:, self.tx_positions]
        return c[0] if one_d else c

    # -- decoding -----------------------------------------------------------

    def _full_llr(self, llr: np.ndarray, nv: int, filler: float) -> np.ndarray:
        """Rate recovery: (B, n) channel LLRs -> (B, nv) (punctured 0, repeats summed)."""
        circ, perm, _ = self._rate_matching
        if perm is not None:
            inv = np.empty_like(perm)
            inv[perm] = np.arange(perm.size)
            llr = llr[:, inv]
        full = np.zeros((llr.shape[0], nv), llr.dtype)
        period = self.n_cb - self.k_filler
        for s in range(0, self.n, period):  # positions are distinct within one period
            full[:, circ[s : s + period]] += llr[:, s : s + period]
        full[:, self.k : self.k_ldpc] = filler
        return full

    def decode(
        self,
        llr,
        iterations: int = 20,
        *,
        schedule: str = "layered",
        cn_update: str = "minsum",
        alpha: float = 1.0,
        beta: float = 0.5,
        early_stop: bool = False,
        llr_max: float | None = 20.0,
        dtype=None,
        return_codeword_llr: bool = False,
        reference: bool = False,
    ) -> LDPCDecodeResult:
        """Belief-propagation decoding of n channel LLRs (or (B, n)).

        ``schedule``: "layered" (min-sum only) or "flooding"; ``cn_update``:
        "minsum" (check messages ``alpha * max(min - beta, 0)``; default offset
        min-sum alpha = 1, beta = 0.5, see ``vqcodec.ldpc.decoders``) or "boxplus"
        (flooding only; exact tanh rule).  ``llr_max`` clips the flooding
        decoder's messages as Sionna does (None: no clipping); the layered
        decoder does not clip.  ``dtype``: float32 or float64 arithmetic, or int16 (layered
        min-sum only): fixed point, LLRs in steps of 1 / ``FIXED_SCALE``, channel LLRs clipped
        at +-128 and check messages at +-64 or more (``_fixed_point``), alpha in sixteenths;
        the a-posteriori LLRs come back as float32.  Default (None): int16 for the layered
        schedule (1.7x the float32 throughput, the same BLER to 0.01 dB at the 1e-2 crossing
        of six codes, benchmarks/bench_ldpc.py), float32 for flooding.
        ``reference=True`` runs the numpy reference instead of the numba
        kernel (slow; for tests).  Returns an ``LDPCDecodeResult``.
        """
        if schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}")
        if cn_update not in _CN_UPDATES:
            raise ValueError(f"cn_update must be one of {_CN_UPDATES}, got {cn_update!r}")
        if schedule == "layered" and cn_update != "minsum":
            raise ValueError("the layered schedule supports cn_update='minsum' only")
        iterations = int(iterations)
        if iterations < 0:
            raise ValueError("iterations must be >= 0")
        dtype = np.dtype(dtype if dtype is not None else np.int16 if schedule == "layered" else np.float32)
        if dtype not in (np.float32, np.float64, np.int16):
            raise ValueError(f"dtype must be float32, float64 or int16, got {dtype}")
        fixed = dtype == np.int16
        if fixed and schedule != "layered":
            raise ValueError("dtype int16 (fixed point) is for the layered schedule only")
        one_d = np.ndim(llr) == 1
        x = _as_llr_2d(llr, self.n, np.float32 if fixed else dtype)
        g = self._graph()
        z = g.z
        B = x.shape[0]
        app = np.empty((B, g.nv), dtype)
        iters = np.zeros(B, np.int64)
        ok = np.zeros(B, np.bool_)
        if schedule == "layered":
            full = self._full_llr(x, g.nv, _LAYERED_FILLER)
            consts = np.array([alpha, beta, 0.0, 1.0], dtype)
            if fixed:
                full, consts = _fixed_point(full, alpha, beta, g.max_bit_degree)
            if reference:
                app, iters, ok = _layered_reference(full, g.row_ptr, g.vn, iterations, consts,
                                                    early_stop)
            elif early_stop or B == 1:
                _layered_kernel(full, g.row_ptr, g.cols, g.shifts, z, iterations, consts,
                                bool(early_stop), app, iters, ok)
            else:
                _layered_interleaved(full, g, iterations, consts, app, iters, ok)
            if fixed:
                app = app.astype(np.float32) / np.float32(FIXED_SCALE)
        else:
            lmax = np.inf if llr_max is None else float(llr_max)
            filler = lmax if np.isfinite(lmax) else 1e4  # Sionna: llr_max, or 1e4 unclipped
            full = self._full_llr(x, g.nv, 0.0)
            full = np.clip(full, -lmax, lmax)
            full[:, self.k : self.k_ldpc] = filler
            mode = 0 if cn_update == "boxplus" else 1
            consts = np.array([1e-12, 1e-7, 1 - 1e-7, lmax, alpha, beta, 0.5, 0.0, 1.0], dtype)
            if reference:
                app, iters, ok = _flooding_reference(full, g.row_ptr, g.vn, iterations, mode,
                                                     consts, early_stop)
            else:
                _flooding_kernel(full, g.row_ptr, g.cols, g.shifts, z, iterations, mode, consts,
                                 bool(early_stop), app, iters, ok)
        info = app[:, : self.k]
        bits = (info < 0).astype(np.uint8)
        cw = app[:, self.tx_positions] if return_codeword_llr else None
        if one_d:
            return LDPCDecodeResult(bits[0], info[0].copy(), int(iters[0]), bool(ok[0]),
                                    None if cw is None else cw[0])
        return LDPCDecodeResult(bits, np.ascontiguousarray(info), iters, ok, cw)
