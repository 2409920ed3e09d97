"""5G NR base graphs 1 and 2 (3GPP TS 38.212 5.2.2, 5.3.2), their lifting, and the lifted
graph with its encoder.

* Base graph: BG1 (46 x 68, 22 systematic columns) or BG2 (42 x 52, 10
  systematic columns).  Selection from k and r = k / n as in Sionna's
  ``LDPC5GEncoder`` (the 38.212 7.2.2 rule applied to the code block):
  BG2 if k <= 292, or k <= 3824 and r <= 0.67, or r <= 0.25; else BG1.  A
  k > 3840 never uses BG2 (Sionna raises there; we fall back to BG1).
* Lifting: K_b = 22 (BG1) or, for BG2, 10 / 9 / 8 / 6 for k > 640 / 560 /
  192 / else; Z = the smallest lifting size of Table 5.3.2-1 with
  K_b Z >= k; i_LS = the set that contains Z.  The code has K = 22 Z (BG1)
  or 10 Z (BG2) systematic bits: bits k..K-1 are filler bits (known zeros,
  never sent).  The lifted parity-check matrix has a Z x Z circulant
  permutation for every base-graph entry: check ``r Z + i`` involves bit
  ``c Z + (i + V_rc mod Z) mod Z``.
* Encoding exploits the double-diagonal core of both base graphs: the four
  core parity blocks follow from the sum of the first four block rows,
  the extension parities (one per further row) from one row each.  Only
  the block rows that the rate matching reaches are computed.

The base-graph shift tables ship as ``vqcodec/data/ldpc_5g_base_graphs.npz``
(extracted once from the tables that Sionna ships, by
``benchmarks/make_ldpc_5g_tables.py``); Sionna is never imported here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

_DATA = Path(__file__).resolve().parent.parent / "data" / "ldpc_5g_base_graphs.npz"

# 38.212 Table 5.3.2-1: set i_LS holds a * 2**j <= 384 for a = 2, 3, 5, ..., 15.
_SET_BASES = (2, 3, 5, 7, 9, 11, 13, 15)
LIFTING_SETS: tuple[tuple[int, ...], ...] = tuple(
    tuple(a << j for j in range(9) if a << j <= 384) for a in _SET_BASES
)
LIFTING_SIZES: tuple[int, ...] = tuple(sorted(z for s in LIFTING_SETS for z in s))

_BG_SHAPE = {1: (46, 68), 2: (42, 52)}
_KB_MAX = {1: 22, 2: 10}  # systematic base columns
_K_CB = {1: 8448, 2: 3840}  # maximum code block size


@functools.cache
def _tables():
    with np.load(_DATA) as f:
        out = {}
        for bg in (1, 2):
            g = f"bg{bg}"
            out[bg] = (
                tuple(int(v) for v in f[f"{g}_shape"]),
                f[f"{g}_rows"].astype(np.int64),
                f[f"{g}_cols"].astype(np.int64),
                f[f"{g}_shifts"].astype(np.int64),
            )
    return out


def _check_bg(bg) -> int:
    if bg in (1, "1", "bg1"):
        return 1
    if bg in (2, "2", "bg2"):
        return 2
    raise ValueError(f"base graph must be 1 or 2 (or 'bg1', 'bg2'), got {bg!r}")


def base_graph(bg: int, i_ls: int) -> np.ndarray:
    """Base graph ``bg`` (1 or 2) for lifting set ``i_ls`` (0..7): int array
    (46, 68) or (42, 52) of shift values V_ij, -1 where the entry is zero."""
    bg = _check_bg(bg)
    if not 0 <= int(i_ls) <= 7:
        raise ValueError(f"i_ls must be in 0..7, got {i_ls}")
    shape, rows, cols, shifts = _tables()[bg]
    bm = np.full(shape, -1, np.int64)
    bm[rows, cols] = shifts[int(i_ls)]
    return bm


def base_graph_rule(a: int, rate: float) -> int:
    """The 38.212 7.2.2 rule on a payload of ``a`` bits at code rate ``rate``: BG2 if
    a <= 292, or a <= 3824 and rate <= 0.67, or rate <= 0.25; else BG1. The one copy of the
    rule: a transport block applies it to A and R = A / G, a code block
    (:func:`select_base_graph`) to k and k / n."""
    a = int(a)
    return 2 if a <= 292 or (a <= 3824 and rate <= 0.67) or rate <= 0.25 else 1


def select_base_graph(k: int, rate: float) -> int:
    """Base graph of a code block with k information bits at code rate ``rate``
    (Sionna's ``LDPC5GEncoder`` rule, see the module docstring): :func:`base_graph_rule`,
    but BG1 where k is more than BG2 can carry (k > 3840)."""
    k = int(k)
    bg = base_graph_rule(k, rate)
    if bg == 2 and k > _K_CB[2]:
        bg = 1
    return bg


def select_lifting(k: int, bg: int) -> tuple[int, int, int]:
    """``(z, i_ls, k_b)`` for k information bits on base graph ``bg`` (38.212 5.2.2):
    the smallest lifting size Z with k_b Z >= k (k_b = 22 for BG1; 10, 9, 8 or 6
    for BG2), its set index, and k_b."""
    bg = _check_bg(bg)
    k = int(k)
    if bg == 1:
        kb = 22
    else:
        kb = 10 if k > 640 else 9 if k > 560 else 8 if k > 192 else 6
    for z in LIFTING_SIZES:
        if kb * z >= k:
            i_ls = next(i for i, s in enumerate(LIFTING_SETS) if z in s)
            return z, i_ls, kb
    raise ValueError(f"k = {k} is too large for base graph {bg}")


class _Graph:
    """The lifted graph of the first ``m`` block rows of a base graph, plus the
    encoder's plan.  Read-only arrays; built once per (bg, i_ls, z, m)."""

    def __init__(self, bg: int, i_ls: int, z: int, m: int):
        shape, rows, cols, shifts = _tables()[bg]
        kb = _KB_MAX[bg]
        keep = rows < m
        rows, cols, sh = rows[keep], cols[keep], shifts[i_ls][keep] % z
        self.bg, self.i_ls, self.z, self.m, self.kb = bg, i_ls, z, m, kb
        self.K = kb * z
        self.n_cols = kb + m
        self.nv = self.n_cols * z
        self.rows = rows
        self.cols = cols
        self.shifts = sh
        self.row_ptr = np.searchsorted(rows, np.arange(m + 1)).astype(np.int64)
        self.max_degree = int(np.diff(self.row_ptr).max())
        # vn[e, i]: the bit of check (rows[e] z + i) on edge e
        self.max_bit_degree = int(np.bincount(cols).max())  # of a bit (column) of the lifted graph
        self.vn = cols[:, None] * z + (np.arange(z)[None, :] + sh[:, None]) % z
        for a in (self.rows, self.cols, self.shifts, self.row_ptr, self.vn):
            a.flags.writeable = False
        self._plan_encoder()

    def _plan_encoder(self):
        kb, m = self.kb, self.m
        rows, cols, sh = self.rows, self.cols, self.shifts
        core = [[] for _ in range(4)]  # per row: (j, shift) for core parity column kb + j
        for r, c, s in zip(rows, cols, sh):
            if r < 4 and kb <= c < kb + 4:
                core[r].append((int(c - kb), int(s)))
            if r >= 4 and c >= kb + 4 and not (c == kb + r and s == 0):
                raise ValueError("unexpected base graph: extension part is not an identity")
            if r < 4 and c >= kb + 4:
                raise ValueError("unexpected base graph: core rows reach extension columns")
        # Sum of the four core rows: every column but the first cancels out.
        odd = {}
        for r in range(4):
            for j, s in core[r]:
                odd[(j, s)] = odd.get((j, s), 0) ^ 1
        odd = [key for key, v in odd.items() if v]
        if len(odd) != 1 or odd[0][0] != 0:
            raise ValueError("unexpected base graph: core is not double-diagonal")
        self.core_p0_shift = odd[0][1]
        known, plan = {0}, []
        while len(known) < 4:
            progress = False
            for r in range(4):
                unknown = [(j, s) for j, s in core[r] if j not in known]
                if len(unknown) == 1:
                    j, s = unknown[0]
                    plan.append((j, s, r, tuple((jj, ss) for jj, ss in core[r] if jj != j)))
                    known.add(j)
                    progress = True
            if not progress:
                raise ValueError("unexpected base graph: core cannot be solved by substitution")
        self.core_plan = tuple(plan)
        sys_e = np.flatnonzero((rows < 4) & (cols < kb))
        self.sys_idx = self.vn[sys_e]
        self.sys_starts = np.searchsorted(rows[sys_e], np.arange(4))
        ext_e = np.flatnonzero((rows >= 4) & (cols < kb + 4))
        self.ext_idx = self.vn[ext_e]
        self.ext_starts = np.searchsorted(rows[ext_e], np.arange(4, m))
        if m > 4 and np.any(np.diff(np.append(self.ext_starts, ext_e.size)) == 0):
            raise ValueError("unexpected base graph: an extension row has no edges")

    def encode(self, u: np.ndarray) -> np.ndarray:
        """(B, K) systematic bits (fillers included) -> (B, nv) lifted codewords."""
        z, K, kb = self.z, self.K, self.kb
        B = u.shape[0]
        out = np.zeros((B, self.nv), np.uint8)
        step = max(1, (1 << 24) // max(1, self.vn.size))  # bound the gather's memory
        for b0 in range(0, B, step):
            c = out[b0 : b0 + step]
            c[:, :K] = u[b0 : b0 + step]
            lam = np.bitwise_xor.reduceat(c[:, self.sys_idx], self.sys_starts, axis=1)
            p = [None] * 4
            p[0] = np.roll(np.bitwise_xor.reduce(lam, axis=1), self.core_p0_shift, axis=-1)
            for j, s, r, terms in self.core_plan:
                acc = lam[:, r].copy()
                for jj, ss in terms:
                    acc ^= np.roll(p[jj], -ss, axis=-1)
                p[j] = np.roll(acc, s, axis=-1)
            for j in range(4):
                c[:, K + j * z : K + (j + 1) * z] = p[j]
            if self.m > 4:
                ext = np.bitwise_xor.reduceat(c[:, self.ext_idx], self.ext_starts, axis=1)
                c[:, (kb + 4) * z :] = ext.reshape(c.shape[0], -1)
        return out

    def syndrome(self, cw: np.ndarray) -> np.ndarray:
        """(B, nv) bits -> (B, m z) syndrome bits (numpy)."""
        return np.bitwise_xor.reduceat(cw[:, self.vn], self.row_ptr[:-1], axis=1).reshape(
            cw.shape[0], -1
        )


@functools.lru_cache(maxsize=256)
def _graph(bg: int, i_ls: int, z: int, m: int) -> _Graph:
    return _Graph(bg, i_ls, z, m)
