"""Receiver index decoders: received bits (+ channel evidence) -> indices or a soft posterior.

Every receiver is registered by name with ``@register("name")`` and has the
signature ``receiver(received, grid, ctx) -> Decision``:

* ``received``: ``channels.Received`` for the payload bits of one image
  (``hard`` int8 in {0, 1, -1}, ``llr`` float32 or None);
* ``grid``: ``(h, w)``, the index grid shape, or ``(S, h, w)`` for a residual model;
* ``ctx``: ``ReceiverContext`` (K, bits per label, assignment, codebook,
  index prior, the channel object).

``Decision.indices`` is always the hard estimate (h, w) or (S, h, w); ``embeddings``
(h, w, d), when not None, are the code vectors to decode instead (e.g. the
MMSE estimate sum_k q_k e_k; for a residual model summed over the stages).

A residual model's payload is its stages one after the other, each with its own
assignment row, codebook and index prior (``stage_contexts``): the receivers
registered with ``staged=True`` decode each stage as a single-stage grid of its own
(channel evidence and the stage's spatial statistics) and add the stages' code vectors.
"""
from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numba import njit

from channels import Received
from vqcodec.bits import bits_per_label, bits_to_labels, inverse_assignment, labels_to_bits, stage_assignment
from vqcodec.context import context_posterior
from vqcodec.precision import on_cpu


@dataclass(frozen=True)
class ReceiverContext:
    K: int
    assignment: np.ndarray  # index -> label, (K,); (S, K) per stage, or (K,) for all, for a residual model
    codebook: np.ndarray  # (K, d) float32
    channel: Any = None
    prior: Any = None  # an IndexPrior; a residual model's: a tuple of one per stage
    context: Any = None  # the learned context receiver (vqcodec.context.ContextNet; one per stage), when shipped
    codebooks: np.ndarray | None = None  # (S, K, d) every residual stage's codebook (None: codebook[None])
    precision: str = "fp32"  # the learned context receiver's arithmetic (fp32 or bf16; it runs on the CPU)

    @property
    def b(self) -> int:
        return bits_per_label(self.K)

    @property
    def inverse(self) -> np.ndarray:
        return inverse_assignment(self.assignment, self.K)


def receiver_context(codec, channel=None) -> ReceiverContext:
    """The receivers' view of a ``zoo.Codec`` for one channel."""
    return ReceiverContext(K=codec.K, assignment=codec.assignment,
                           codebook=codec.model.codebook.detach().cpu().numpy(), channel=channel,
                           prior=codec.prior, context=getattr(codec, "context", None),
                           codebooks=codec.model.codebooks.detach().cpu().numpy(),
                           precision=on_cpu(getattr(codec, "precision", "fp32")))


@dataclass(frozen=True)
class Decision:
    indices: np.ndarray
    embeddings: np.ndarray | None = None


REGISTRY: dict[str, Callable[..., Decision]] = {}


def register(name: str, needs: str | None = None, staged: bool = False):
    """Register a receiver; ``needs`` names the side information it uses ('prior' or 'context',
    attributes of ``ReceiverContext`` and ``zoo.Codec``). ``staged``: the function decodes one
    stage, and a residual model's stages are decoded one by one (``stage_contexts``)."""
    def deco(fn):
        run = _per_stage(fn) if staged else fn
        REGISTRY[name] = run
        run.receiver_name = name
        run.needs = needs
        return run
    return deco


def stage_contexts(ctx: ReceiverContext) -> list[ReceiverContext]:
    """One single-stage context per stage of a residual model (its assignment row, codebook, prior
    and context receiver); ``[ctx]`` for a single-stage model."""
    if ctx.codebooks is None or len(ctx.codebooks) == 1:
        return [ctx]
    S = len(ctx.codebooks)

    def per_stage(x, what):
        xs = x if isinstance(x, (tuple, list)) else (x,) * S
        if len(xs) != S:
            raise ValueError(f"{len(xs)} {what} for a model of {S} stages")
        return xs

    priors, nets = per_stage(ctx.prior, "index priors"), per_stage(ctx.context, "context receivers")
    return [replace(ctx, assignment=stage_assignment(ctx.assignment, s), codebook=ctx.codebooks[s], codebooks=None,
                    prior=priors[s], context=nets[s]) for s in range(S)]


def _per_stage(fn):
    @functools.wraps(fn)
    def run(received, grid, ctx: ReceiverContext) -> Decision:
        stages = stage_contexts(ctx)
        if len(stages) == 1:
            return fn(received, tuple(grid[-2:]), stages[0])
        h, w = grid[-2:]
        n = h * w * ctx.b
        if len(received) != n * len(stages):
            raise ValueError(f"{len(received)} received bits; {len(stages)} stages of {h}x{w} labels need "
                             f"{n * len(stages)}")
        parts = [fn(Received(received.hard[s * n:(s + 1) * n],
                             None if received.llr is None else received.llr[s * n:(s + 1) * n]), (h, w), c)
                 for s, c in enumerate(stages)]
        soft = parts[0].embeddings is not None  # one receiver: soft at every stage, or at none
        return Decision(indices=np.stack([p.indices for p in parts]),
                        embeddings=sum(p.embeddings for p in parts) if soft else None)
    return run


NEEDS_HELP = {"prior": "an index prior (build one with `vqcodec prepare`)",
              "context": "a learned context receiver (train one with `vqcodec train-receiver`)"}


def default_receivers(codec) -> list[str]:
    """naive, plus the best soft receiver the codec's side information allows (mmse for a
    residual model without a prior)."""
    if getattr(codec, "context", None) is not None:
        return ["naive", "learned-mmse"]
    if getattr(codec, "prior", None) is not None:
        return ["naive", "spatial-mmse"]
    if getattr(getattr(codec, "model", None), "stages", 1) > 1:  # a residual model before `vqcodec prepare`
        return ["naive", "mmse"]
    return ["naive"]


def missing_side_info(name: str, codec) -> str | None:
    """Why receiver ``name`` cannot run with ``codec`` (None when it can)."""
    needs = get_receiver(name).needs
    if needs is not None and getattr(codec, needs, None) is None:
        return f"receiver {name} needs {NEEDS_HELP[needs]}, and {codec.name} has none"
    return None


def check_receivers(names, codec) -> list[str]:
    """The receivers a run uses with ``codec``: ``names`` (a list, or comma-separated text; None:
    ``default_receivers``), each known and given the side information it needs (else a one-line
    ``ValueError``)."""
    if names is None:
        return default_receivers(codec)
    if isinstance(names, str):
        names = [r.strip() for r in names.split(",") if r.strip()]
    names = list(names)
    unknown = [r for r in names if r not in REGISTRY]
    if unknown or not names:
        raise ValueError(f"unknown receiver {unknown[0] if unknown else ''!r} (known: {', '.join(sorted(REGISTRY))})")
    twice = sorted({r for r in names if names.count(r) > 1})
    if twice:
        raise ValueError(f"receiver {twice[0]} is named twice (each receiver is one curve)")
    for r in names:
        why = missing_side_info(r, codec)
        if why:
            raise ValueError(why)
    return names


def get_receiver(name: str) -> Callable[..., Decision]:
    if name not in REGISTRY:
        raise ValueError(f"unknown receiver {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


_TABLES: dict[tuple[int, bytes], np.ndarray] = {}


def nearest_valid_table(assignment: np.ndarray, K: int) -> np.ndarray:
    """label -> index for all 2^b labels: a used label maps to its index; an unused one
    (only when K is not a power of two) to the index whose label is nearest in Hamming
    distance, ties to the smaller label."""
    key = (K, np.asarray(assignment, dtype=np.int64).tobytes())
    if key not in _TABLES:
        inv = inverse_assignment(assignment, K)
        table = inv.copy()
        used = np.flatnonzero(inv >= 0)
        for lab in np.flatnonzero(inv < 0):
            dist = np.array([bin(int(lab) ^ int(u)).count("1") for u in used])
            table[lab] = inv[used[np.argmin(dist)]]
        _TABLES[key] = table
    return _TABLES[key]


@register("naive", staged=True)
def naive(received, grid, ctx: ReceiverContext) -> Decision:
    """Use the received label as it is (erased bits read as 0).

    A label that no index uses (K not a power of two) is replaced by the index
    of the nearest used label in Hamming distance, ties to the smaller label."""
    hard = received.hard
    bits = np.where(hard < 0, 0, hard).astype(np.uint8)
    labels = bits_to_labels(bits, ctx.b)
    idx = nearest_valid_table(ctx.assignment, ctx.K)[labels]
    return Decision(indices=idx.reshape(grid))


# --------------------------------------------------------------------------- channel evidence

LLR_MAX = 30.0


def bit_llrs(received, channel, b: int) -> np.ndarray:
    """Per-bit LLRs float64 (n, b), llr = log P(0|y)/P(1|y): the channel's own soft output when it
    has one, else the hard decisions weighted by the channel's crossover probability
    (erased bits: 0)."""
    if received.llr is not None:
        llr = np.clip(received.llr.astype(np.float64), -LLR_MAX, LLR_MAX)
    else:
        q = None
        if channel is not None and hasattr(channel, "crossover_probability"):
            q = float(channel.crossover_probability)
        elif channel is not None and getattr(channel, "param", None) == "p" and channel.name in ("bsc", "burst"):
            q = float(channel.param_value)
        mag = LLR_MAX if not q or q <= 0 else min(LLR_MAX, float(np.log((1 - q) / q)))
        hard = received.hard
        llr = np.where(hard < 0, 0.0, np.where(hard == 0, mag, -mag))
    return llr.reshape(-1, b)


# --------------------------------------------------------------------------- spatial decoder

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
    if spatial and ctx.prior is None:
        raise ValueError("the spatial receivers need an index prior, and this model has none "
                         "(build one with `vqcodec prepare`)")
    keep = max(1, min(params.keep, MAX_KEEP))
    beta = params.beta if params.beta is not None else (ctx.prior.beta if ctx.prior is not None else 1.0)
    log_uni, pmi_h, pmi_v, psi_h, psi_v, bounds = prior_tables(ctx.prior if spatial else None, ctx.K, beta)
    if not spatial and ctx.prior is not None:
        log_uni = ctx.prior.log_unigram()
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


@register("mmse", staged=True)
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


@register("spatial-mmse", needs="prior", staged=True)
def spatial_mmse_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Loopy BP as 'spatial'; the decoder gets the expected codeword sum_k q_k e_k (MMSE)."""
    post = spatial_posterior(bit_llrs(received, ctx.channel, ctx.b), grid, ctx)
    return Decision(indices=post.map(), embeddings=post.mmse(ctx.codebook))


# --------------------------------------------------------------------------- channel memory (bursts)

# the first (detection) pass on a channel with memory sees the memoryless LLRs scaled by this, so that
# index context can overrule a received label that a burst scrambled; tuned on 16 held-out BSDS500
# images at burst p = 0.01, 0.03 (mean burst 10 bits): 0.15 / 0.25 / 0.35 / 0.5 gave a mean loss of
# 1.99 / 1.95 / 1.94 / 2.05 dB against 2.16 for one memoryless pass
MEMORY_FIRST_PASS_SCALE = 0.35


@njit(cache=True)
def _ge_extrinsic_nb(e, pi_bad, p_gb, p_bg, p_good, p_bad):
    """Forward-backward over a two-state (good/bad) Markov chain of bit-error probabilities.

    e: float64 (n,), in (0, 1), the first pass's probability that bit j is in error; the observation
    likelihood of state s is ``e_j p_s + (1 - e_j)(1 - p_s)``. Returns the extrinsic
    crossover probability of every bit, ``sum_s P(s_j | e without e_j) p_s``, float64 (n,).
    """
    n = e.shape[0]
    fa = np.empty((n, 2))  # forward messages into bit j (its own evidence excluded), normalised
    bb = np.empty((n, 2))  # backward messages into bit j (its own evidence excluded), normalised
    pr = (p_good, p_bad)
    lik = np.empty((n, 2))  # observation likelihood of each state at each bit
    for j in range(n):
        lik[j, 0] = e[j] * pr[0] + (1.0 - e[j]) * (1.0 - pr[0])
        lik[j, 1] = e[j] * pr[1] + (1.0 - e[j]) * (1.0 - pr[1])
    g, b = 1.0 - pi_bad, pi_bad
    for j in range(n):
        fa[j, 0], fa[j, 1] = g, b
        g, b = g * lik[j, 0], b * lik[j, 1]
        t = g + b
        g, b = g / t, b / t
        g, b = g * (1.0 - p_gb) + b * p_bg, g * p_gb + b * (1.0 - p_bg)
    g, b = 1.0, 1.0
    for j in range(n - 1, -1, -1):
        bb[j, 0], bb[j, 1] = g, b
        g, b = g * lik[j, 0], b * lik[j, 1]
        g, b = (1.0 - p_gb) * g + p_gb * b, p_bg * g + (1.0 - p_bg) * b
        t = g + b
        g, b = g / t, b / t
    out = np.empty(n)
    for j in range(n):
        g = fa[j, 0] * bb[j, 0]
        b = fa[j, 1] * bb[j, 1]
        out[j] = (g * pr[0] + b * pr[1]) / (g + b)
    return out


def _ge_extrinsic_ref(e, pi_bad, p_gb, p_bg, p_good, p_bad):
    """Plain numpy reference of ``_ge_extrinsic_nb``: unnormalised forward-backward in log space."""
    e = np.asarray(e, dtype=np.float64)
    n = e.size
    pr = np.array([p_good, p_bad])
    T = np.array([[1 - p_gb, p_gb], [p_bg, 1 - p_bg]])
    with np.errstate(divide="ignore"):
        logL = np.log(e[:, None] * pr[None, :] + (1 - e[:, None]) * (1 - pr[None, :]))
        logT = np.log(T)
    la = np.zeros((n, 2))  # log forward message into j, own evidence excluded
    with np.errstate(divide="ignore"):
        la[0] = np.log([1 - pi_bad, pi_bad])
    for j in range(1, n):
        prev = la[j - 1] + logL[j - 1]
        la[j] = np.logaddexp(prev[0] + logT[0], prev[1] + logT[1])
    lb = np.zeros((n, 2))
    for j in range(n - 2, -1, -1):
        nxt = lb[j + 1] + logL[j + 1]
        lb[j] = np.logaddexp(logT[:, 0] + nxt[0], logT[:, 1] + nxt[1])
    lg = la + lb
    w = np.exp(lg - lg.max(axis=1, keepdims=True))
    return (w @ pr) / w.sum(axis=1)


def memory_llrs(llr: np.ndarray, q: np.ndarray, ctx: ReceiverContext) -> np.ndarray:
    """Per-bit LLRs (n, b) that use a burst channel's memory.

    ``q`` (n, K) is a first pass's posterior from the memoryless LLRs ``llr``. The probability
    that each received bit is wrong under q goes through a forward-backward over the channel's
    good/bad Markov chain (``_ge_extrinsic_nb``, in transmission order); each bit's extrinsic
    crossover probability p_j then gives |llr_j| = log((1 - p_j) / p_j), never above the
    memoryless |llr_j|. Bits inside a burst get LLRs near 0 (nearly erased) and the receiver
    conceals them from their neighbours; the others keep their memoryless reliability. Erased
    bits (llr 0) stay 0. This is one turbo-style iteration between the source decoder and the
    channel's state estimator (cf. Garcia-Frias & Villasenor, joint source-channel decoding over
    hidden Markov channels, 1997-2001)."""
    ch = ctx.channel
    label_bits = labels_to_bits(ctx.assignment, ctx.b).reshape(-1, ctx.b).astype(np.float64)  # (K, b)
    p_one = np.asarray(q, dtype=np.float64) @ label_bits  # (n, b): P(sent bit = 1)
    e = np.clip(np.where(llr < 0, 1.0 - p_one, p_one).reshape(-1), 1e-12, 1.0 - 1e-12)  # P(received bit wrong)
    crossover = _ge_extrinsic_nb(np.ascontiguousarray(e), float(ch.pi_bad), float(ch.p_gb), float(ch.p_bg),
                                 float(ch.p_good), float(ch.p_bad)).reshape(llr.shape)
    with np.errstate(divide="ignore"):
        mag = np.minimum(np.abs(llr), np.log1p(-crossover) - np.log(crossover))
    return np.where(llr == 0, 0.0, np.where(llr < 0, -mag, mag))


def has_memory(channel) -> bool:
    """A channel whose errors come from a good/bad Markov chain (Gilbert-Elliott)."""
    return all(hasattr(channel, a) for a in ("pi_bad", "p_gb", "p_bg", "p_good", "p_bad"))


# --------------------------------------------------------------------------- learned context receiver

def _context_posterior(received, grid, ctx: ReceiverContext) -> np.ndarray:
    """The learned posterior (h, w, K). On a channel with memory: a detection pass on tempered
    LLRs (``MEMORY_FIRST_PASS_SCALE``), then the posterior from ``memory_llrs``."""
    if ctx.context is None:
        raise ValueError(f"the learned receivers need {NEEDS_HELP['context']}, and this model has none")
    llr = bit_llrs(received, ctx.channel, ctx.b)
    if not has_memory(ctx.channel):
        return context_posterior(ctx.context, llr, grid, ctx.precision)
    q1 = context_posterior(ctx.context, llr * MEMORY_FIRST_PASS_SCALE, grid, ctx.precision)
    return context_posterior(ctx.context, memory_llrs(llr, q1.reshape(-1, ctx.K), ctx), grid, ctx.precision)


@register("learned", needs="context", staged=True)
def learned_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Learned context receiver (CNN over the channel evidence of the grid); hard MAP indices."""
    q = _context_posterior(received, grid, ctx)
    return Decision(indices=np.argmax(q, axis=-1).astype(np.int64))


@register("learned-mmse", needs="context", staged=True)
def learned_mmse_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Learned context receiver; the decoder gets the expected codeword sum_k q_k e_k (MMSE)."""
    q = _context_posterior(received, grid, ctx)
    return Decision(indices=np.argmax(q, axis=-1).astype(np.int64),
                    embeddings=(q @ np.asarray(ctx.codebook, dtype=np.float32)).astype(np.float32))
