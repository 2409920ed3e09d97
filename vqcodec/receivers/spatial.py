"""The loopy-BP spatial decoder: candidate labels per index and loopy sum-product BP over the index
grid with the learned pairwise prior (numba kernels and their plain numpy references), the top-k
``Posterior``, and the receivers built on it: map, mmse (channel evidence alone), spatial and
spatial-mmse."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numba import njit

from vqcodec.bits import labels_to_bits
from vqcodec.receivers.registry import Decision, ReceiverContext, bit_llrs, nearest_valid_table, only_stage, register


@dataclass(frozen=True)
class SpatialParams:
    """Knobs of the spatial decoder (tuned on training images, never on Kodak).

    radius: most bit flips among reliable bits in a candidate label;
    keep: candidates kept per index after ranking; beta: PMI temperature;
    sweeps: BP sweeps (alternating raster directions); free_llr: bits with
    |llr| below this are 'free' (erased) and enumerated exhaustively;
    flip_llr: a reliable bit with |llr| above this is never flipped.
    """

    radius: int = 2
    keep: int = 8
    beta: float | None = None  # None: the temperature stored with the model's prior
    sweeps: int = 3
    free_llr: float = 0.05
    flip_llr: float = 12.0


DEFAULT_SPATIAL = SpatialParams()
MAX_KEEP = 64
MAX_FREE = 12


@njit(cache=True)
def _candidates_nb(llr, inv, log_uni, pmi_h, pmi_v, bounds, h, w, radius, keep, free_llr, flip_llr):
    """Candidate labels per index and their unary log-potentials.

    For each index: hard label from the LLR signs; bits sorted by |llr| (stable);
    the least reliable bits with |llr| < free_llr (at most MAX_FREE) are 'free' and
    every combination of them is tried; on top of each, up to ``radius`` flips of the
    other bits with |llr| <= flip_llr. Unused labels are dropped. Each candidate gets
    unary = channel log-likelihood (relative to the hard label) + log P(index), and is
    ranked by unary + sum over neighbours of PMI(neighbour's hard index, candidate)
    (neighbours whose hard label is unused or has free bits do not vote). The best
    ``keep`` (ties: enumeration order) are kept. ``bounds`` (4, K) = row and column
    maxima of pmi_h and pmi_v (``pmi_bounds``) let the kernel skip candidates that
    cannot enter the top ``keep``.

    Returns cand int32 (n, keep) (-1 = empty), unary float64 (n, keep), ncand int32 (n,).
    """
    n, b = llr.shape
    hard = np.zeros(n, dtype=np.int64)
    hard_idx = np.full(n, -1, dtype=np.int64)
    for s in range(n):
        lab = 0
        free = False
        for k in range(b):
            lab = lab * 2 + (1 if llr[s, k] < 0 else 0)
            if abs(llr[s, k]) < free_llr:
                free = True
        hard[s] = lab
        if not free:
            hard_idx[s] = inv[lab]
    # upper bounds for pruning: a candidate whose best possible score cannot beat the
    # current keep-th best is skipped before its table lookups (results are unchanged)
    row_h, col_h, row_v, col_v = bounds[0], bounds[1], bounds[2], bounds[3]
    max_uni = log_uni.max()
    cand = np.full((n, keep), -1, dtype=np.int32)
    unary = np.full((n, keep), -np.inf)
    rank = np.full(keep, -np.inf)
    ncand = np.zeros(n, dtype=np.int32)
    order = np.zeros(b, dtype=np.int64)
    mags = np.zeros(b)
    for s in range(n):
        for k in range(b):  # stable insertion sort of the bits by |llr| (b is small)
            mags[k] = abs(llr[s, k])
            j = k
            while j > 0 and mags[order[j - 1]] > mags[k]:
                order[j] = order[j - 1]
                j -= 1
            order[j] = k
        nf = 0
        while nf < b and nf < MAX_FREE and mags[order[nf]] < free_llr:
            nf += 1
        nflip = 0
        while nf + nflip < b and mags[order[nf + nflip]] <= flip_llr:
            nflip += 1
        r, c = s // w, s % w
        left = hard_idx[s - 1] if c > 0 else -1
        right = hard_idx[s + 1] if c < w - 1 else -1
        up = hard_idx[s - w] if r > 0 else -1
        down = hard_idx[s + w] if r < h - 1 else -1
        ctx_max = 0.0
        if left >= 0:
            ctx_max += row_h[left]
        if right >= 0:
            ctx_max += col_h[right]
        if up >= 0:
            ctx_max += row_v[up]
        if down >= 0:
            ctx_max += col_v[down]
        cnt = 0
        for fm in range(1 << nf):
            base_lab = hard[s]
            base_ch = 0.0
            for j in range(nf):
                if (fm >> j) & 1:
                    bit = order[j]
                    base_lab ^= 1 << (b - 1 - bit)
                    base_ch -= mags[bit]
            # flips of reliable bits: weight 0, then 1, then 2 (radius <= 2)
            for i1 in range(-1, nflip):
                if i1 >= 0 and radius < 1:
                    break
                for i2 in range(-1, nflip):
                    if i1 < 0 and i2 >= 0:
                        break
                    if i2 >= 0 and (radius < 2 or i2 <= i1):
                        continue
                    lab = base_lab
                    ch = base_ch
                    if i1 >= 0:
                        bit = order[nf + i1]
                        lab ^= 1 << (b - 1 - bit)
                        ch -= mags[bit]
                    if i2 >= 0:
                        bit = order[nf + i2]
                        lab ^= 1 << (b - 1 - bit)
                        ch -= mags[bit]
                    if cnt == keep and ch + max_uni + ctx_max <= rank[keep - 1]:
                        continue
                    idx = inv[lab]
                    if idx < 0:
                        continue
                    u = ch + log_uni[idx]
                    sc = u
                    if left >= 0:
                        sc += pmi_h[left, idx]
                    if right >= 0:
                        sc += pmi_h[idx, right]
                    if up >= 0:
                        sc += pmi_v[up, idx]
                    if down >= 0:
                        sc += pmi_v[idx, down]
                    # insert into the sorted top-keep list (strictly better moves up)
                    if cnt < keep or sc > rank[keep - 1]:
                        pos = cnt if cnt < keep else keep - 1
                        while pos > 0 and sc > rank[pos - 1]:
                            if pos < keep:
                                rank[pos] = rank[pos - 1]
                                cand[s, pos] = cand[s, pos - 1]
                                unary[s, pos] = unary[s, pos - 1]
                            pos -= 1
                        rank[pos] = sc
                        cand[s, pos] = idx
                        unary[s, pos] = u
                        if cnt < keep:
                            cnt += 1
        ncand[s] = cnt
        for j in range(keep):
            rank[j] = -np.inf
    return cand, unary, ncand


@njit(cache=True)
def _bp_nb(cand, unary, ncand, psi_h, psi_v, h, w, sweeps):
    """Loopy sum-product BP on the 4-connected grid over each node's candidates.

    Messages are normalised to sum 1; schedule: raster sweeps, alternating forward
    and backward. ``psi_h``/``psi_v`` may be float32 (the edge tables then take half the
    memory); the arithmetic is float64. Returns beliefs float64 (n, keep), normalised over
    each node's candidates (0 in empty slots).
    """
    n, L = cand.shape
    phi = np.zeros((n, L))
    for s in range(n):
        m = -np.inf
        for a in range(ncand[s]):
            if unary[s, a] > m:
                m = unary[s, a]
        for a in range(ncand[s]):
            phi[s, a] = np.exp(unary[s, a] - m)
    # edge compatibilities, looked up once: mh[s, a, b] = psi_h[cand[s, a], cand[s + 1, b]],
    # mv[s, a, b] = psi_v[cand[s, a], cand[s + w, b]]
    mh = np.zeros((n, L, L), dtype=psi_h.dtype)
    mv = np.zeros((n, L, L), dtype=psi_v.dtype)
    for s in range(n):
        r, c = s // w, s % w
        for a in range(ncand[s]):
            cs = cand[s, a]
            if c < w - 1:
                for bb in range(ncand[s + 1]):
                    mh[s, a, bb] = psi_h[cs, cand[s + 1, bb]]
            if r < h - 1:
                for bb in range(ncand[s + w]):
                    mv[s, a, bb] = psi_v[cs, cand[s + w, bb]]
    # inc[s, d, a]: message into s from its neighbour d (0 left, 1 right, 2 up, 3 down)
    inc = np.ones((n, 4, L))
    pre = np.zeros((4, L))  # pre[d, a]: phi times the messages from all neighbours but d
    out = np.zeros(L)
    for sweep in range(sweeps):
        for step in range(n):
            s = step if sweep % 2 == 0 else n - 1 - step
            r, c = s // w, s % w
            ns = ncand[s]
            for a in range(ns):
                p = phi[s, a]
                i0, i1, i2, i3 = inc[s, 0, a], inc[s, 1, a], inc[s, 2, a], inc[s, 3, a]
                p01 = p * i0 * i1
                p23 = i2 * i3
                pre[0, a] = p * i1 * p23
                pre[1, a] = p * i0 * p23
                pre[2, a] = p01 * i3
                pre[3, a] = p01 * i2
            # each message accumulates over the sender's candidates into independent sums
            # per receiving candidate (no serial dependency chain in the inner loop)
            if c > 0:  # to the left neighbour, into its 'from right' slot
                t = s - 1
                out[:] = 0.0
                for a in range(ns):
                    pa = pre[0, a]
                    for bb in range(ncand[t]):
                        out[bb] += pa * mh[t, bb, a]
                _store_message(inc, t, 1, ncand[t], out)
            if c < w - 1:
                t = s + 1
                out[:] = 0.0
                for a in range(ns):
                    pa = pre[1, a]
                    for bb in range(ncand[t]):
                        out[bb] += pa * mh[s, a, bb]
                _store_message(inc, t, 0, ncand[t], out)
            if r > 0:
                t = s - w
                out[:] = 0.0
                for a in range(ns):
                    pa = pre[2, a]
                    for bb in range(ncand[t]):
                        out[bb] += pa * mv[t, bb, a]
                _store_message(inc, t, 3, ncand[t], out)
            if r < h - 1:
                t = s + w
                out[:] = 0.0
                for a in range(ns):
                    pa = pre[3, a]
                    for bb in range(ncand[t]):
                        out[bb] += pa * mv[s, a, bb]
                _store_message(inc, t, 2, ncand[t], out)
    bel = np.zeros((n, L))
    for s in range(n):
        tot = 0.0
        for a in range(ncand[s]):
            v = phi[s, a] * inc[s, 0, a] * inc[s, 1, a] * inc[s, 2, a] * inc[s, 3, a]
            bel[s, a] = v
            tot += v
        for a in range(ncand[s]):
            bel[s, a] = bel[s, a] / tot if tot > 0 else 1.0 / ncand[s]
    return bel


@njit(cache=True, inline="always")
def _store_message(inc, t, d, nt, out):
    """inc[t, d, :nt] = out normalised to sum 1 (floored at 1e-300); uniform when it sums to 0."""
    tot = 0.0
    for bb in range(nt):
        tot += out[bb]
    for bb in range(nt):
        inc[t, d, bb] = max(out[bb] / tot, 1e-300) if tot > 0 else 1.0


# --------------------------------------------------------------------------- numpy references

def _candidates_ref(llr, inv, log_uni, pmi_h, pmi_v, bounds, h, w, radius, keep, free_llr, flip_llr):
    """Plain numpy/python reference of ``_candidates_nb`` (same enumeration order and ties; it
    does not prune, so it also checks that the kernel's pruning changes nothing)."""
    n, b = llr.shape
    hard = np.array([int("".join("1" if v < 0 else "0" for v in row), 2) if b else 0 for row in llr], dtype=np.int64)
    free_any = (np.abs(llr) < free_llr).any(axis=1)
    hard_idx = np.where(free_any, -1, inv[hard])
    cand = np.full((n, keep), -1, dtype=np.int32)
    unary = np.full((n, keep), -np.inf)
    ncand = np.zeros(n, dtype=np.int32)
    for s in range(n):
        mags = np.abs(llr[s])
        order = np.argsort(mags, kind="mergesort")
        nf = 0
        while nf < b and nf < MAX_FREE and mags[order[nf]] < free_llr:
            nf += 1
        nflip = 0
        while nf + nflip < b and mags[order[nf + nflip]] <= flip_llr:
            nflip += 1
        r, c = divmod(s, w)
        nb = [(hard_idx[s - 1], "l") if c > 0 else None, (hard_idx[s + 1], "r") if c < w - 1 else None,
              (hard_idx[s - w], "u") if r > 0 else None, (hard_idx[s + w], "d") if r < h - 1 else None]
        flips = [()]
        if radius >= 1:
            for i1 in range(nflip):
                flips.append((i1,))
                if radius >= 2:
                    flips.extend((i1, i2) for i2 in range(i1 + 1, nflip))
        found = []
        for fm in range(1 << nf):
            bits = [order[j] for j in range(nf) if (fm >> j) & 1]
            for fl in flips:
                lab = int(hard[s])
                ch = 0.0
                for bit in bits:
                    lab ^= 1 << (b - 1 - bit)
                    ch -= mags[bit]
                for i in fl:
                    bit = order[nf + i]
                    lab ^= 1 << (b - 1 - bit)
                    ch -= mags[bit]
                idx = inv[lab]
                if idx < 0:
                    continue
                u = ch + log_uni[idx]
                sc = u
                for item in nb:
                    if item is None or item[0] < 0:
                        continue
                    o, kind = item
                    sc += {"l": pmi_h[o, idx], "r": pmi_h[idx, o], "u": pmi_v[o, idx], "d": pmi_v[idx, o]}[kind]
                found.append((sc, idx, u))
        top = sorted(range(len(found)), key=lambda i: -found[i][0])[:keep]  # sorted() is stable
        for j, i in enumerate(top):
            cand[s, j] = found[i][1]
            unary[s, j] = found[i][2]
        ncand[s] = len(top)
    return cand, unary, ncand


def _bp_ref(cand, unary, ncand, psi_h, psi_v, h, w, sweeps):
    """Plain numpy reference of ``_bp_nb`` (same schedule; vectorised per node)."""
    n, L = cand.shape
    phi = np.zeros((n, L))
    for s in range(n):
        k = ncand[s]
        if k:
            phi[s, :k] = np.exp(unary[s, :k] - unary[s, :k].max())
    inc = np.ones((4, n, L))
    for sweep in range(sweeps):
        for step in range(n):
            s = step if sweep % 2 == 0 else n - 1 - step
            r, c = divmod(s, w)
            ns = ncand[s]
            cs = cand[s, :ns]
            targets = [(0, s - 1, c > 0), (1, s + 1, c < w - 1), (2, s - w, r > 0), (3, s + w, r < h - 1)]
            for d_out, t, ok in targets:
                if not ok:
                    continue
                others = [d for d in range(4) if d != d_out]
                pre = phi[s, :ns] * np.prod(inc[others][:, s, :ns], axis=0)
                ct = cand[t, :ncand[t]]
                if d_out == 0:
                    M = psi_h[np.ix_(ct, cs)]
                elif d_out == 1:
                    M = psi_h[np.ix_(cs, ct)].T
                elif d_out == 2:
                    M = psi_v[np.ix_(ct, cs)]
                else:
                    M = psi_v[np.ix_(cs, ct)].T
                msg = M.astype(np.float64) @ pre
                tot = msg.sum()
                inc[d_out ^ 1, t, :len(ct)] = np.maximum(msg / tot, 1e-300) if tot > 0 else 1.0
    bel = np.zeros((n, L))
    for s in range(n):
        k = ncand[s]
        v = phi[s, :k] * inc[0, s, :k] * inc[1, s, :k] * inc[2, s, :k] * inc[3, s, :k]
        bel[s, :k] = v / v.sum() if v.sum() > 0 else 1.0 / max(k, 1)
    return bel


# --------------------------------------------------------------------------- receivers

# per prior object (weakly held: an id() key could be reused by a new prior after the old one is freed,
# and hand the new prior the old tables), then per (K, beta)
_PRIOR_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FLAT_TABLES: dict = {}


def pmi_bounds(pmi_h: np.ndarray, pmi_v: np.ndarray) -> np.ndarray:
    """(4, K): row max of pmi_h, column max of pmi_h, row max of pmi_v, column max of pmi_v."""
    return np.ascontiguousarray(np.stack([pmi_h.max(axis=1), pmi_h.max(axis=0), pmi_v.max(axis=1), pmi_v.max(axis=0)]))


def prior_tables(prior, K: int, beta: float):
    """(log_unigram, beta*PMI_h, beta*PMI_v, exp(beta*PMI_h) and exp(beta*PMI_v) as float32, bounds); cached per prior."""
    cache = _FLAT_TABLES if prior is None else _PRIOR_TABLES.setdefault(prior, {})
    key = (K, beta)
    if key not in cache:
        if prior is None:
            z = np.zeros((K, K))
            tabs = (np.full(K, -np.log(K)), z, z, np.ones((K, K), np.float32), np.ones((K, K), np.float32),
                    np.zeros((4, K)))
        else:
            ph, pv = beta * prior.pmi("h"), beta * prior.pmi("v")
            # edge potentials in float32: BP copies them per edge, and half the bytes is faster
            tabs = (prior.log_unigram(), ph, pv, np.exp(ph).astype(np.float32), np.exp(pv).astype(np.float32),
                    pmi_bounds(ph, pv))
        cache[key] = tabs
    return cache[key]


@dataclass(frozen=True)
class Posterior:
    """Top-k posterior of every index: ``cand`` int32 (h, w, k) (-1 = empty), ``prob`` float64 (h, w, k)."""

    cand: np.ndarray
    prob: np.ndarray

    def map(self) -> np.ndarray:
        best = np.argmax(self.prob, axis=-1)
        return np.take_along_axis(self.cand, best[..., None], axis=-1)[..., 0].astype(np.int64)

    def mmse(self, codebook: np.ndarray) -> np.ndarray:
        """Expected code vector sum_k q_k e_k, float32 (h, w, d)."""
        cb = np.asarray(codebook, dtype=np.float64)
        safe = np.where(self.cand >= 0, self.cand, 0)
        return np.einsum("hwk,hwkd->hwd", self.prob, cb[safe]).astype(np.float32)


def spatial_posterior(llr: np.ndarray, grid: tuple[int, int], ctx: ReceiverContext,
                      params: SpatialParams = DEFAULT_SPATIAL, spatial: bool = True,
                      reference: bool = False) -> Posterior:
    """Posterior over candidates of every index from per-bit LLRs (n, b) and the index prior."""
    h, w = grid
    prior = only_stage(ctx.prior)
    if spatial and prior is None:
        raise ValueError("the spatial receivers need an index prior, and this model has none "
                         "(build one with `vqcodec prepare`)")
    keep = max(1, min(params.keep, MAX_KEEP))
    beta = params.beta if params.beta is not None else (prior.beta if prior is not None else 1.0)
    log_uni, pmi_h, pmi_v, psi_h, psi_v, bounds = prior_tables(prior if spatial else None, ctx.K, beta)
    if not spatial and prior is not None:
        log_uni = prior.log_unigram()
    inv = ctx.inverse
    llr = np.ascontiguousarray(llr, dtype=np.float64)
    if llr.shape != (h * w, ctx.b):  # the kernels index without bounds checks
        raise ValueError(f"llr has shape {llr.shape}, the {h}x{w} grid of {ctx.b}-bit labels needs {(h * w, ctx.b)}")
    cand_fn, bp_fn = (_candidates_ref, _bp_ref) if reference else (_candidates_nb, _bp_nb)
    cand, unary, ncand = cand_fn(llr, inv, log_uni, pmi_h, pmi_v, bounds, h, w, params.radius, keep,
                                 params.free_llr, params.flip_llr)
    if np.any(ncand == 0):  # nothing valid within reach (unused labels only): fall back to the naive rule
        lab = np.array([int("".join("1" if v < 0 else "0" for v in row), 2) for row in llr[ncand == 0]])
        cand[ncand == 0, 0] = nearest_valid_table(ctx.assignment, ctx.K)[lab]
        unary[ncand == 0, 0] = 0.0
        ncand[ncand == 0] = 1
    if spatial:
        prob = bp_fn(cand, unary, ncand, psi_h, psi_v, h, w, params.sweeps)
    else:
        prob = np.where(cand >= 0, np.exp(unary - np.max(unary, axis=1, keepdims=True)), 0.0)
        prob /= prob.sum(axis=1, keepdims=True)
    return Posterior(cand.reshape(h, w, keep), prob.reshape(h, w, keep))


@register("map", staged=True)
def map_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Per-index MAP from channel evidence and index frequencies (no spatial context)."""
    post = spatial_posterior(bit_llrs(received, ctx.channel, ctx.b), grid, ctx, spatial=False)
    return Decision(indices=post.map())


@register("mmse", staged=True, soft=True)
def mmse_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Per-index posterior from channel evidence alone (uniform prior); the decoder gets sum_k q_k e_k."""
    llr = bit_llrs(received, ctx.channel, ctx.b).astype(np.float32)  # (h w, b)
    signs = 1 - 2 * labels_to_bits(ctx.assignment, ctx.b).reshape(-1, ctx.b).astype(np.float32)  # +1: a 0 bit
    logq = llr @ (signs.T / 2)  # log P(y | index k) up to a constant per site
    logq -= logq.max(axis=1, keepdims=True)
    q = np.exp(logq)
    q /= q.sum(axis=1, keepdims=True)
    emb = q @ np.asarray(ctx.codebook, dtype=np.float32)
    return Decision(indices=q.argmax(axis=1).reshape(grid), embeddings=emb.reshape(*grid, -1))


@register("spatial", needs="prior", staged=True)
def spatial_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Loopy BP over the index grid with the learned pairwise prior; hard MAP indices."""
    post = spatial_posterior(bit_llrs(received, ctx.channel, ctx.b), grid, ctx)
    return Decision(indices=post.map())


@register("spatial-mmse", needs="prior", staged=True, soft=True)
def spatial_mmse_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Loopy BP as 'spatial'; the decoder gets the expected codeword sum_k q_k e_k (MMSE)."""
    post = spatial_posterior(bit_llrs(received, ctx.channel, ctx.b), grid, ctx)
    return Decision(indices=post.map(), embeddings=post.mmse(ctx.codebook))
