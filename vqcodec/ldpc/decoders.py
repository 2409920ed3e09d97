"""Belief-propagation decoders of the lifted 5G NR LDPC graph: numba kernels and their numpy references.

The decoder works on the lifted graph of the block rows that carry
transmitted bits (unsent degree-1 parity bits and their checks are pruned;
as in Sionna this changes nothing: such a check can only send zeros).
Punctured bits get LLR 0, filler bits a large positive LLR, repeated bits
the sum of their LLRs.

* ``schedule="layered"`` (default), ``cn_update="minsum"``: layered
  (row-by-row, "turbo-decoding message passing") offset/normalised
  min-sum: check messages ``alpha * max(min|q| - beta, 0)`` with the
  extrinsic sign.  One block row of Z checks is processed at a time, and
  every inner loop runs over the Z checks of the row with contiguous memory
  (the cyclic shift is split into two contiguous runs), so LLVM vectorises
  it.  Default alpha = 1, beta = 0.5 (offset min-sum).  Why this default:
  min-sum is ~100x cheaper per edge than sum-product (no transcendental
  functions), the layered schedule converges about twice as fast as
  flooding, and of the corrections measured (benchmarks/bench_ldpc.py, 20
  iterations, k = 1024 / 4096, rates 1/3 .. 2/3) the offset 0.5 was best or
  within 0.05 dB of the best everywhere, 0.1-0.35 dB better than
  normalisation by 0.75, and better than flooding sum-product at the same
  20 iterations.  The offset assumes true LLRs (as the channels' soft
  demappers give); for LLRs of unknown scale use the scale-invariant
  normalised form ``alpha=0.75, beta=0``.  By default in int16 fixed point
  (``dtype=None``; steps of 1/16, channel LLRs clipped at +-128, check
  messages at +-64 or more, the bits' LLRs kept exact: 16 SIMD lanes where
  float32 has 8, 1.7x the throughput, the same BLER to 0.01 dB); float32 and
  float64 do not clip.
* ``schedule="flooding"``: all checks, then all bits, per iteration, exactly
  Sionna's ``LDPCBPDecoder`` arithmetic, with ``cn_update="boxplus"``
  (Sionna's "boxplus": tanh rule incl. its safeguards tanh = 0 -> 1e-12,
  |x| < 1e-7 -> 0, atanh argument clipped to 1 - 1e-7) or ``"minsum"``
  (alpha, beta as above; Sionna's "minsum" is alpha = 1, beta = 0, its
  "offset-minsum" beta = 0.5), messages and a-posteriori values clipped to
  +-``llr_max`` (20), filler bits at +``llr_max``.  In float64 it returns
  Sionna's decisions (``precision="double"``) bit for bit in practice.
* Fixed iteration count; ``early_stop=True`` stops a word as soon as its hard
  decisions satisfy every parity check (checked after each iteration).
* Hard decisions: bit = 1 where the a-posteriori LLR is < 0 (ties -> 0).

Every numba kernel has a numpy reference (``*_reference``) that the tests
compare it with; the layered and min-sum kernels and their references run
the same float (or integer) operations in the same order, so they agree exactly.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.extending import overload

_LAYERED_FILLER = 1e30  # filler-bit LLR of the min-sum decoders (never the minimum)

_PAD = 8  # the layered kernel rounds every inner loop up to a multiple of this


@numba.njit(inline="always")
def _message_buffers(rows_a, rows_b, w, z, dt):  # pragma: no cover - compiled
    """A kernel's zeroed work arrays: two message arrays (rows_a, w) and (rows_b, w), the two
    smallest magnitudes and the sign per check (w,), and a parity per check (z,) uint8."""
    return (np.zeros((rows_a, w), dt), np.zeros((rows_b, w), dt), np.zeros(w, dt), np.zeros(w, dt),
            np.zeros(w, dt), np.zeros(z, np.uint8))


@numba.njit(cache=True)
def _syndrome_ok(L, row_ptr, cols, shifts, z, zs, par):  # pragma: no cover - compiled
    """True when the hard decisions (L < 0 -> 1) satisfy every check.

    L holds bit ``c z + i`` at ``c zs + i`` (zs = z for a plain layout).
    """
    m = row_ptr.shape[0] - 1
    for r in range(m):
        for i in range(z):
            par[i] = 0
        for e in range(row_ptr[r], row_ptr[r + 1]):
            base = cols[e] * zs
            s = shifts[e]
            w = z - s
            La = L[base + s : base + z]
            Lb = L[base : base + s]
            Pb = par[w:]
            for i in range(w):
                par[i] ^= np.uint8(La[i] < 0)
            for i in range(s):
                Pb[i] ^= np.uint8(Lb[i] < 0)
        for i in range(z):
            if par[i]:
                return False
    return True


#: fixed-point layered decoding (``dtype=np.int16``): LLRs in steps of 1 / FIXED_SCALE; channel
#: LLRs clipped to +-FIXED_CHANNEL_LIMIT steps (+-127.9), check messages to +-FIXED_CHANNEL_LIMIT
#: or less (``_fixed_point``), so that L = channel + sum of messages never leaves int16
FIXED_SCALE = 16
FIXED_CHANNEL_LIMIT = 2047


# The parts of the layered kernel that differ between float and int16 arithmetic, chosen by numba
# from the argument types when it compiles the kernel (each dtype gets its own machine code).


def _min_sum_constants(x):
    """(lanes, zero, one, a value above every |message|) for LLRs of array ``x``'s dtype: the
    layered kernel's inner loops run over multiples of ``lanes`` elements (8; 16 int16 lanes per
    AVX2 register); the top value is inf for floats, the largest integer (32767) for int16."""
    t = x.dtype.type
    if x.dtype.kind == "f":
        return _PAD, t(0), t(1), t(np.inf)
    return 2 * _PAD, t(0), t(1), t(np.iinfo(x.dtype).max)


@overload(_min_sum_constants, inline="always")
def _min_sum_constants_numba(x):  # pragma: no cover - compiled
    lanes, zero, one, big = _min_sum_constants(np.zeros(0, numba.np.numpy_support.as_dtype(x.dtype)))
    return lambda x: (lanes, zero, one, big)


def _check_magnitudes(m1, m2, s1, s2, n, consts):  # pragma: no cover - compiled
    """The check messages' magnitudes s1 (edges other than the minimum's) and s2 (the
    minimum's edge) from the two smallest |q| of each check, lanes 0..n-1 (numba only).

    Floats, consts = [alpha, beta, 0, 1]: ``alpha * max(m - beta, 0)``.  int16, consts =
    [alpha in sixteenths, beta in steps, message limit]: ``min((alpha16 * max(m - beta, 0)) >> 4,
    limit)``, in int16 all through for alpha16 = 16 (offset min-sum), else the product in int32."""
    raise NotImplementedError("numba only: the numpy reference is _layered_reference")


@overload(_check_magnitudes, inline="always")
def _check_magnitudes_numba(m1, m2, s1, s2, n, consts):  # pragma: no cover - compiled
    if isinstance(m1.dtype, numba.types.Float):
        def floats(m1, m2, s1, s2, n, consts):
            alpha = consts[0]
            beta = consts[1]
            zero = consts[2]
            for i in range(n):
                t1 = m1[i] - beta
                t2 = m2[i] - beta
                s1[i] = alpha * (t1 if t1 > zero else zero)
                s2[i] = alpha * (t2 if t2 > zero else zero)
        return floats

    def fixed(m1, m2, s1, s2, n, consts):
        a16 = consts[0]
        beta = np.int16(consts[1])
        rlim = np.int16(consts[2])
        zero = np.int16(0)
        if a16 == 16:  # offset min-sum: int16 all through
            for i in range(n):
                t1 = np.int16(m1[i] - beta)
                t2 = np.int16(m2[i] - beta)
                t1 = t1 if t1 > zero else zero
                t2 = t2 if t2 > zero else zero
                s1[i] = t1 if t1 < rlim else rlim
                s2[i] = t2 if t2 < rlim else rlim
        else:
            for i in range(n):
                t1 = np.int32(m1[i]) - beta
                t2 = np.int32(m2[i]) - beta
                t1 = ((t1 if t1 > 0 else 0) * a16) >> 4
                t2 = ((t2 if t2 > 0 else 0) * a16) >> 4
                s1[i] = np.int16(t1 if t1 < rlim else rlim)
                s2[i] = np.int16(t2 if t2 < rlim else rlim)
    return fixed


@numba.njit(inline="always")
def _edge_runs(L, Qj, Re, base, s, z, P):  # pragma: no cover - compiled
    """The layered kernel's runs of an edge with cyclic shift s into bit block ``L[base:]``:
    (wp, sp, La, Lb, Qa, Qb, Ra, Rb), check i < w = z - s meets bit La[i] with messages Qa[i], Ra[i]
    and check w + i bit Lb[i] with Qb[i], Rb[i]; each run rounded up to wp, sp (multiples of P)."""
    w = z - s
    wp = (w + P - 1) // P * P
    sp = (s + P - 1) // P * P
    return wp, sp, L[base + s : base + s + wp], L[base : base + sp], Qj[:wp], Qj[w : w + sp], Re[:wp], Re[w : w + sp]


@numba.njit(cache=True)
def _layered_kernel(llr, row_ptr, cols, shifts, z, n_iter, consts, early_stop,
                    app, iters, ok):  # pragma: no cover - compiled
    """Layered normalised/offset min-sum on the lifted graph, in float32, float64 or int16.

    llr: (B, nv) full-length channel LLRs (punctured 0, fillers large), float32 or float64 with
    consts = [alpha, beta, 0, 1] in that dtype; or int16 (twice the SIMD lanes of float32) in
    steps of 1 / FIXED_SCALE within +-FIXED_CHANNEL_LIMIT with consts = [alpha in sixteenths,
    beta in steps, message limit] (int64, ``_fixed_point``; ``_check_magnitudes`` is the part
    that differs).  Writes a-posteriori LLRs to app (B, nv), iterations run to iters and
    the final syndrome check to ok.

    Layout for speed: bit block c lives at L[c zs : c zs + z] with
    zs = zr + P, zr = z rounded up to a multiple of P (8, or 16 int16 lanes per AVX2 register);
    every inner loop runs over a multiple of P elements of contiguous memory (a cyclic shift
    s is two runs, w = z - s and s long, each rounded up), so LLVM vectorises
    it without scalar remainders.  The overrun lanes hold junk that never
    reaches a real lane: the second gather run overwrites the first run's
    overrun, and the scatter writes the second run first and the first run
    after it (its overrun lands in the block's padding).  Check messages of
    row r's edges are R[e]; Q[j] holds the bit-to-check messages of edge j of
    the current row in check order.  A tie for the minimum gives min2 = min1,
    so "the edge whose |q| equals min1 gets min2" is exact.  Signs are products of +-1 (in
    int16 as fast as parities, in float32 faster).

    int16: nothing saturates but the check magnitudes: L = channel + the sum of its check
    messages is kept exactly, and the message limit (``_fixed_point``: channel limit + column
    degree x message limit <= 32767) makes every L and q = L - R fit int16.  (Saturating L
    instead loses the channel evidence of a saturated bit; the offset then shrinks its messages
    each layer until converged words collapse.)  The numpy reference ``_layered_reference``
    repeats the float or integer operations exactly.
    """
    P, zero, one, big = _min_sum_constants(llr)
    zr = (z + P - 1) // P * P
    zs = zr + P
    B = llr.shape[0]
    nv = llr.shape[1]
    ncol = nv // z
    m = row_ptr.shape[0] - 1
    E = cols.shape[0]
    dmax = 0
    for r in range(m):
        dmax = max(dmax, row_ptr[r + 1] - row_ptr[r])
    dt = llr.dtype
    L = np.zeros(ncol * zs + zs, dt)
    R, Q, m1, m2, sg, par = _message_buffers(E, dmax, zs, z, dt)
    s1 = np.zeros(zs, dt)
    s2 = np.zeros(zs, dt)
    for b in range(B):
        L[:] = zero
        for c in range(ncol):
            Lc = L[c * zs : c * zs + z]
            xc = llr[b, c * z : c * z + z]
            for i in range(z):
                Lc[i] = xc[i]
        R[:] = zero
        done = n_iter
        for it in range(n_iter):
            for r in range(m):
                e0 = row_ptr[r]
                d = row_ptr[r + 1] - e0
                for j in range(d):
                    e = e0 + j
                    Qj, Re = Q[j], R[e]
                    wp, sp, La, Lb, Qa, Qb, Ra, Rb = _edge_runs(L, Qj, Re, cols[e] * zs, shifts[e], z, P)
                    for i in range(wp):
                        Qa[i] = La[i] - Ra[i]
                    for i in range(sp):
                        Qb[i] = Lb[i] - Rb[i]
                    if j == 0:  # the first edge initialises min1, min2, sign
                        for i in range(zr):
                            q = Qj[i]
                            m1[i] = abs(q)
                            m2[i] = big
                            sg[i] = -one if q < zero else one
                        continue
                    for i in range(zr):  # one comparison per select and a sign product: LLVM vectorises
                        q = Qj[i]  # this form (numba's min()/max() and chained selects stay scalar)
                        a = abs(q)
                        o1 = m1[i]
                        o2 = m2[i]
                        lt = a < o1
                        m2[i] = o1 if lt else (a if a < o2 else o2)  # = min(o2, max(a, o1)) as o1 <= o2
                        m1[i] = a if lt else o1
                        sg[i] = sg[i] * (-one if q < zero else one)
                _check_magnitudes(m1, m2, s1, s2, zr, consts)
                for j in range(d):
                    e = e0 + j
                    Qj, Re = Q[j], R[e]
                    wp, sp, La, Lb, Qa, Qb, Ra, Rb = _edge_runs(L, Qj, Re, cols[e] * zs, shifts[e], z, P)
                    for i in range(zr):  # loads before the selects, or LLVM keeps the loop scalar
                        q = Qj[i]
                        x = s1[i]
                        y = s2[i]
                        o = m1[i]
                        g = sg[i]
                        mag = x if abs(q) > o else y
                        Re[i] = g * (mag if q >= zero else -mag)
                    for i in range(sp):
                        Lb[i] = Qb[i] + Rb[i]
                    for i in range(wp):
                        La[i] = Qa[i] + Ra[i]
            if early_stop and _syndrome_ok(L, row_ptr, cols, shifts, z, zs, par):
                done = it + 1
                break
        iters[b] = done
        ok[b] = _syndrome_ok(L, row_ptr, cols, shifts, z, zs, par)
        for c in range(ncol):
            Lc = L[c * zs : c * zs + z]
            Ac = app[b, c * z : c * z + z]
            for i in range(z):
                Ac[i] = Lc[i]


def _fixed_point(full: np.ndarray, alpha: float, beta: float, max_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Float LLRs and min-sum constants -> the fixed-point kernel's int16 LLRs and consts; the
    message limit keeps channel + ``max_degree`` messages within int16 (64 LLR units for the
    largest BG1 column degree, 30; Sionna's decoders clip messages at 20)."""
    a16 = round(alpha * 16)
    bq = round(beta * FIXED_SCALE)
    if not (1 <= a16 <= 16 and abs(a16 - alpha * 16) < 1e-9):
        raise ValueError(f"int16 decoding takes alpha in sixteenths in (0, 1], got {alpha}")
    if not (0 <= bq < FIXED_CHANNEL_LIMIT and abs(bq - beta * FIXED_SCALE) < 1e-9):
        raise ValueError(f"int16 decoding takes beta in steps of 1/{FIXED_SCALE}, >= 0, got {beta}")
    rlim = min(FIXED_CHANNEL_LIMIT, (32767 - FIXED_CHANNEL_LIMIT) // max(1, max_degree))
    q = np.clip(np.rint(full * FIXED_SCALE), -FIXED_CHANNEL_LIMIT, FIXED_CHANNEL_LIMIT).astype(np.int16)
    return q, np.array([a16, bq, rlim], np.int64)


#: codewords decoded side by side by the layered kernel without early stopping
INTERLEAVE = 4
#: the same for the int16 kernel (k = 4096 rate 1/2: 6.8 Mbit/s against 6.5 with 4, 5.6 with 1)
INTERLEAVE_FIXED = 8


def _layered_interleaved(full, g, n_iter, consts, app, iters, ok) -> None:
    """``_layered_kernel`` on groups of ``INTERLEAVE`` (int16: ``INTERLEAVE_FIXED``) codewords at
    once, without early stopping.

    Word w's bit c z + i sits at lane i G + w of a graph lifted by z G with shifts s G: each word
    sees its own copy of the code, with the same float operations in the same order, so the output
    equals word-by-word decoding bit for bit; the longer inner loops run 9-17% faster (CPU time,
    k = 4096 and 1024). ``iters`` and ``ok`` (the syndrome check) are per word."""
    B, nv = full.shape
    z = g.z
    ncol = nv // z
    par = np.zeros(z, np.uint8)
    group = INTERLEAVE_FIXED if full.dtype == np.int16 else INTERLEAVE
    for s0 in range(0, B, group):
        blk = full[s0 : s0 + group]
        G = blk.shape[0]
        il = np.ascontiguousarray(blk.reshape(G, ncol, z).transpose(1, 2, 0).reshape(1, nv * G))
        out = np.empty((1, nv * G), full.dtype)
        _layered_kernel(il, g.row_ptr, g.cols, g.shifts * G, z * G, n_iter, consts, False, out,
                        np.zeros(1, np.int64), np.zeros(1, np.bool_))
        app[s0 : s0 + G] = out.reshape(ncol, z, G).transpose(2, 0, 1).reshape(G, nv)
    iters[:] = n_iter
    for b in range(B):
        ok[b] = _syndrome_ok(app[b], g.row_ptr, g.cols, g.shifts, z, z, par)


def _layered_reference(llr, row_ptr, vn, n_iter, consts, early_stop):
    """numpy reference of ``_layered_kernel``: for float ``llr`` the same float ops in the same
    order, for int16 the same integer operations (in int32).

    ``vn`` (E, z) lists the bit of each edge; returns (app, iters, ok).
    """
    fixed = llr.dtype == np.int16
    if fixed:
        a16, beta, rlim = (int(c) for c in consts)
        work, big = np.int32, 32767

        def magnitude(mn):
            return np.minimum((np.maximum(mn - beta, 0) * a16) >> 4, rlim)
    else:
        alpha, beta, zero, _ = consts
        work, big = llr.dtype, np.inf

        def magnitude(mn):
            return alpha * np.maximum(mn - beta, zero)
    B, nv = llr.shape
    m = row_ptr.size - 1
    app = llr.astype(work)
    iters = np.zeros(B, np.int64)
    ok = np.zeros(B, bool)

    def satisfied(L):
        h = (L < 0).astype(np.uint8)
        return not np.bitwise_xor.reduceat(h[vn], row_ptr[:-1], axis=0).any()

    for b in range(B):
        L = app[b]
        R = np.zeros(vn.shape, work)
        done = n_iter
        for it in range(n_iter):
            for r in range(m):
                e = slice(row_ptr[r], row_ptr[r + 1])
                idx = vn[e]
                q = L[idx] - R[e]
                a = np.abs(q)
                p = np.argmin(a, axis=0)
                cols = np.arange(a.shape[1])
                mn1 = a[p, cols]
                masked = a.copy()
                masked[p, cols] = big
                mn2 = masked.min(axis=0)
                neg = np.count_nonzero(q < 0, axis=0) % 2 == 1
                sg = np.where(neg, -1, 1).astype(work)
                mag = np.where(np.arange(q.shape[0])[:, None] == p[None, :], magnitude(mn2), magnitude(mn1))
                rr = np.where(q >= 0, sg, -sg) * mag
                R[e] = rr
                L[idx] = q + rr
            if early_stop and satisfied(L):
                done = it + 1
                break
        iters[b] = done
        ok[b] = satisfied(L)
    return (app.astype(np.int16) if fixed else app), iters, ok


@numba.njit(inline="always")
def _shift_runs(bits, msg, e, cols, shifts, z):  # pragma: no cover - compiled
    """Edge ``e``'s cyclic shift s as two contiguous runs: (bits a, bits b, msg a, msg b), msg (z,)
    the edge's messages in check order, bits (nv,) per bit: check i < z - s meets bits_a[i] with
    msg_a[i], check z - s + i meets bits_b[i] with msg_b[i]."""
    base = cols[e] * z
    s = shifts[e]
    w = z - s
    return bits[base + s : base + z], bits[base : base + s], msg[:w], msg[w:]


@numba.njit(cache=True)
def _flooding_kernel(llr, row_ptr, cols, shifts, z, n_iter, mode, consts, early_stop,
                     app, iters, ok):  # pragma: no cover - compiled
    """Flooding BP with Sionna's ``LDPCBPDecoder`` arithmetic.

    mode 0: boxplus (tanh rule), mode 1: min-sum.  consts (working dtype) =
    [tiny 1e-12, zero threshold 1e-7, atanh clip 1 - 1e-7, llr_max, alpha,
    beta, 0.5, 0, 1].  llr (B, nv) is already clipped, fillers at +llr_max.
    Writes app (clipped a-posteriori LLRs), iters, ok.  Messages c2v, v2c
    (E, z) are in check order; the cyclic shift of edge e is two contiguous
    runs (slices, so no index arithmetic in the inner loops).
    """
    tiny = consts[0]
    thr = consts[1]
    aclip = consts[2]
    lmax = consts[3]
    alpha = consts[4]
    beta = consts[5]
    half = consts[6]
    zero = consts[7]
    one = consts[8]
    B = llr.shape[0]
    nv = llr.shape[1]
    m = row_ptr.shape[0] - 1
    E = cols.shape[0]
    dt = llr.dtype
    c2v, v2c, m1, m2, sg, par = _message_buffers(E, E, z, z, dt)
    tot = np.zeros(nv, dt)
    for b in range(B):
        ch = llr[b]
        A = app[b]
        for v in range(nv):
            A[v] = ch[v]
        for e in range(E):
            Ca, Cb, Va, Vb = _shift_runs(ch, v2c[e], e, cols, shifts, z)
            for i in range(Va.shape[0]):
                Va[i] = Ca[i]
            for i in range(Vb.shape[0]):
                Vb[i] = Cb[i]
        done = n_iter
        for it in range(n_iter):
            # check nodes
            for r in range(m):
                e0 = row_ptr[r]
                e1 = row_ptr[r + 1]
                if mode == 0:
                    for i in range(z):
                        m1[i] = one
                    for e in range(e0, e1):
                        Ve = v2c[e]
                        Ce = c2v[e]
                        for i in range(z):
                            t = math.tanh(Ve[i] * half)
                            if t == zero:
                                t = tiny
                            Ce[i] = t
                            m1[i] = m1[i] * t
                    for e in range(e0, e1):
                        Ce = c2v[e]
                        for i in range(z):
                            x = (one / Ce[i]) * m1[i]
                            if abs(x) < thr:
                                x = zero
                            x = min(max(x, -aclip), aclip)
                            y = math.atanh(x)
                            y = y + y
                            Ce[i] = min(max(y, -lmax), lmax)
                else:
                    for i in range(z):
                        m1[i] = np.inf
                        m2[i] = np.inf
                        sg[i] = one
                    for e in range(e0, e1):
                        Ve = v2c[e]
                        for i in range(z):
                            q = Ve[i]
                            a = abs(q)
                            o1 = m1[i]
                            o2 = m2[i]
                            mx = a if a > o1 else o1
                            m2[i] = mx if mx < o2 else o2
                            m1[i] = a if a < o1 else o1
                            sv = sg[i]
                            sg[i] = -sv if q < zero else sv
                    for e in range(e0, e1):
                        Ve = v2c[e]
                        Ce = c2v[e]
                        for i in range(z):
                            q = Ve[i]
                            x1 = m1[i]
                            x2 = m2[i]
                            sv = sg[i]
                            mag = x1 if abs(q) > x1 else x2
                            t = mag - beta
                            mag = alpha * (t if t > zero else zero)
                            sq = sv if q >= zero else -sv
                            y = sq * mag
                            Ce[i] = min(max(y, -lmax), lmax)
            # variable nodes: tot = sum of c2v, then + channel (Sionna's order)
            for v in range(nv):
                tot[v] = zero
            for e in range(E):
                Ta, Tb, Ca, Cb = _shift_runs(tot, c2v[e], e, cols, shifts, z)
                for i in range(Ca.shape[0]):
                    Ta[i] += Ca[i]
                for i in range(Cb.shape[0]):
                    Tb[i] += Cb[i]
            for v in range(nv):
                tot[v] = tot[v] + ch[v]
            for e in range(E):
                Ta, Tb, Ca, Cb = _shift_runs(tot, c2v[e], e, cols, shifts, z)
                _, _, Va, Vb = _shift_runs(tot, v2c[e], e, cols, shifts, z)
                for i in range(Ca.shape[0]):
                    Va[i] = min(max(Ta[i] - Ca[i], -lmax), lmax)
                for i in range(Cb.shape[0]):
                    Vb[i] = min(max(Tb[i] - Cb[i], -lmax), lmax)
            for v in range(nv):
                A[v] = min(max(tot[v], -lmax), lmax)
            if early_stop and _syndrome_ok(A, row_ptr, cols, shifts, z, z, par):
                done = it + 1
                break
        iters[b] = done
        ok[b] = _syndrome_ok(A, row_ptr, cols, shifts, z, z, par)


def _flooding_reference(llr, row_ptr, vn, n_iter, mode, consts, early_stop):
    """numpy reference of ``_flooding_kernel`` (vectorised over all edges)."""
    tiny, thr, aclip, lmax, alpha, beta, half, zero, one = consts
    B, nv = llr.shape
    dt = llr.dtype
    row_of_edge = np.repeat(np.arange(row_ptr.size - 1), np.diff(row_ptr))
    starts = row_ptr[:-1]
    flat = vn.reshape(-1)
    app = llr.copy()
    iters = np.zeros(B, np.int64)
    ok = np.zeros(B, bool)

    def satisfied(L):
        h = (L < 0).astype(np.uint8)
        return not np.bitwise_xor.reduceat(h[vn], starts, axis=0).any()

    for b in range(B):
        ch = llr[b]
        v2c = ch[vn]
        done = n_iter
        for it in range(n_iter):
            if mode == 0:
                t = np.tanh(v2c * half)
                t = np.where(t == zero, tiny, t).astype(dt)
                prod = np.multiply.reduceat(t, starts, axis=0)[row_of_edge]
                x = (one / t) * prod
                x = np.where(np.abs(x) < thr, zero, x)
                x = np.clip(x, -aclip, aclip)
                y = np.arctanh(x)
                c2v = np.clip(y + y, -lmax, lmax).astype(dt)
            else:
                a = np.abs(v2c)
                c2v = np.empty_like(v2c)
                for r in range(row_ptr.size - 1):
                    e = slice(row_ptr[r], row_ptr[r + 1])
                    ar = a[e]
                    p = np.argmin(ar, axis=0)
                    cc = np.arange(ar.shape[1])
                    mn1 = ar[p, cc]
                    masked = ar.copy()
                    masked[p, cc] = np.inf
                    mn2 = masked.min(axis=0)
                    neg = np.count_nonzero(v2c[e] < zero, axis=0) % 2 == 1
                    sg = np.where(neg, -one, one).astype(dt)
                    mag = np.where(np.arange(ar.shape[0])[:, None] == p[None, :], mn2, mn1)
                    mag = alpha * np.maximum(mag - beta, zero)
                    sgn = np.where(v2c[e] >= zero, sg, -sg)
                    c2v[e] = np.clip(sgn * mag, -lmax, lmax)
            tot = np.zeros(nv, dt)
            np.add.at(tot, flat, c2v.reshape(-1))
            tot = tot + ch
            v2c = np.clip(tot[vn] - c2v, -lmax, lmax)
            app[b] = np.clip(tot, -lmax, lmax)
            if early_stop and satisfied(app[b]):
                done = it + 1
                break
        iters[b] = done
        ok[b] = satisfied(app[b])
    return app, iters, ok
