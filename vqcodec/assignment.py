"""Index-assignment optimisation: which b-bit label each codebook index is sent as.

A codec with K codewords ``e_0 .. e_{K-1}`` sends index i as the label
``assignment[i]`` of ``b = ceil(log2 K)`` bits (see ``vqcodec.bits``). On a
binary symmetric channel with a small flip probability almost every index
error is a single bit flip, so a good assignment gives codewords that are
close in Euclidean distance labels that are one bit flip apart.

The figure of merit is the **one-flip cost**: the expected squared error
caused by one bit flip at a uniformly random position,

    C(assignment) = sum_i p_i * (1/b) * sum_{k<b} || e_i - v(label(i) XOR 2^k) ||^2

where ``v(l)`` is the codeword whose label is ``l``. For a BSC with flip
probability p the expected distortion is ``b * p * C + O(p^2)``.

Unused labels (K not a power of two)
------------------------------------
Labels ``K .. 2^b - 1`` (more precisely: the ``2^b - K`` labels the
assignment does not use) hold **virtual codewords**: probability 0, vector
equal to the probability-weighted mean ``m = sum_i p_i e_i`` of the codebook
(the MMSE estimate of a codeword when nothing about it is known). A flip of
a real label into an unused one costs ``||e_i - m||^2``. The convention is
used everywhere in this module (``one_flip_cost``, ``swap_delta``, ``bsa``,
``bsa_reference``), and because it does not depend on where the other
codewords sit, the optimiser works over all ``2^b`` label *slots*: it may move
a real codeword into an unused label (a swap with a virtual codeword). Note
that this is a cost model only: the ``naive`` receiver in ``vqcodec.correct``
maps an unused label to the index of the nearest used label in Hamming distance.

Probabilities are normalised to sum 1 (usage counts may be passed as they
are); ``probs=None`` means uniform.

Algorithm
---------
``bsa`` is the binary switching algorithm of K. Zeger and A. Gersho,
"Pseudo-Gray coding", IEEE Trans. Commun. 38(12):2147-2158, 1990. It works
in sweeps. In a sweep every real codeword is *tried* once: repeatedly the
untried codeword whose slot has the highest cost contribution
``p_x (1/b) sum_k ||e_x - v(s XOR 2^k)||^2`` (ties: lowest label) is
tentatively switched with the content of every other label slot (real or
virtual); the switch that lowers the total cost most (ties: lowest label) is
made if it lowers the cost by more than ``1e-9 * initial cost``; the codeword
is marked as tried either way. The search stops after a sweep without a
switch (then no single switch of two slots lowers the cost: a local optimum)
or after ``max_sweeps`` sweeps. A switch of slots s and t only changes the
terms of the edges at s and t, so with the pairwise squared-distance matrix
D (``2^b x 2^b``, float64) its cost change is O(b); one sweep costs
O(K 2^b b).

The hot loop is a numba kernel (``_bsa_nb``); ``bsa_reference`` is the same
algorithm written with numpy over all swap partners at once, with the same
arithmetic order and the same tie-breaking, so both return identical
assignments and cost histories (the tests check this).

Limit: K <= 4096 (D is 2^b x 2^b float64: 128 MiB at K = 4096).
"""
from __future__ import annotations

import numba
import numpy as np

from vqcodec.bits import bits_per_label, check_assignment, identity_assignment, inverse_assignment

MAX_K = 4096
REL_TOL = 1e-9  # a switch must lower the cost by more than REL_TOL * initial cost

__all__ = ["one_flip_cost", "swap_delta", "gray_code", "pca_initial", "bsa", "bsa_reference",
           "optimise_assignment", "MAX_K"]


# --------------------------------------------------------------------------- inputs

def _prepare(codebook, probs) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(codebook float64 (K, d), probs float64 (K,) summing to 1, K, b)."""
    E = np.asarray(codebook, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] < 2:
        raise ValueError(f"codebook must be (K, d) with K >= 2, got shape {E.shape}")
    if not np.all(np.isfinite(E)):
        raise ValueError("codebook has non-finite entries")
    K = E.shape[0]
    if probs is None:
        p = np.full(K, 1.0 / K)
    else:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (K,):
            raise ValueError(f"probs must have shape ({K},), got {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("probs must be finite, non-negative and not all zero")
        p = p / p.sum()
    return E, p, K, bits_per_label(K)


def _virtual_mean(E: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The vector of every unused label: the probability-weighted codebook mean."""
    return p @ E


def _extended(E: np.ndarray, p: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Items 0..K-1 are the codewords, items K..2^b-1 virtual codewords (mean vector, prob 0)."""
    K = E.shape[0]
    N = 1 << b
    Ex = np.empty((N, E.shape[1]))
    Ex[:K] = E
    Ex[K:] = _virtual_mean(E, p)
    px = np.zeros(N)
    px[:K] = p
    return Ex, px


def _distance_matrix(Ex: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, N) float64, exactly symmetric, zero diagonal."""
    sq = np.einsum("ij,ij->i", Ex, Ex)
    G = Ex @ Ex.T
    D = sq[:, None] + sq[None, :] - 2.0 * G
    D = 0.5 * (D + D.T)
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def _contents_from_assignment(assignment: np.ndarray, K: int, b: int) -> np.ndarray:
    """Slot (label) -> item; unused slots get the virtual items K, K+1, ... in label order."""
    N = 1 << b
    contents = np.full(N, -1, dtype=np.int64)
    contents[assignment] = np.arange(K)
    free = np.flatnonzero(contents < 0)
    contents[free] = K + np.arange(free.size)
    return contents


def _assignment_from_contents(contents: np.ndarray, K: int) -> np.ndarray:
    a = np.empty(K, dtype=np.int64)
    real = np.flatnonzero(contents < K)
    a[contents[real]] = real
    return a


def _start(start, E, p, K, rng) -> np.ndarray:
    if start is None or (isinstance(start, str) and start == "pca"):
        return pca_initial(E, p)
    if isinstance(start, str):
        if start == "identity":
            return identity_assignment(K)
        if start == "random":
            g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            return g.permutation(1 << bits_per_label(K))[:K].astype(np.int64)
        raise ValueError(f"unknown start {start!r} (use an array, 'pca', 'identity' or 'random')")
    return check_assignment(start, K)


# --------------------------------------------------------------------------- cost

def one_flip_cost(codebook, probs, assignment) -> float:
    """Expected squared error of one uniformly random bit flip of the sent label.

    ``sum_i p_i (1/b) sum_k ||e_i - v(assignment[i] ^ 2^k)||^2`` with ``p``
    normalised to sum 1 (None: uniform) and unused labels worth the
    probability-weighted codebook mean (see the module docstring). O(K b d).
    """
    E, p, K, b = _prepare(codebook, probs)
    a = check_assignment(assignment, K)
    inv = inverse_assignment(a, K)
    ext = np.vstack([E, _virtual_mean(E, p)[None, :]])
    total = 0.0
    for k in range(b):
        j = inv[a ^ (1 << k)]
        j = np.where(j < 0, K, j)
        diff = E - ext[j]
        total += float(p @ np.einsum("ij,ij->i", diff, diff))
    return total / b


def swap_delta(codebook, probs, assignment, label_a: int, label_b: int) -> float:
    """Change of ``one_flip_cost`` when the contents of label slots ``label_a`` and
    ``label_b`` are exchanged (either may be an unused label). O(b d): only the
    edges at the two slots change."""
    E, p, K, b = _prepare(codebook, probs)
    a = check_assignment(assignment, K)
    N = 1 << b
    s, t = int(label_a), int(label_b)
    if not (0 <= s < N and 0 <= t < N):
        raise ValueError(f"labels must be in [0, {N})")
    if s == t:
        return 0.0
    inv = inverse_assignment(a, K)
    m = _virtual_mean(E, p)

    def vec(lab):
        return E[inv[lab]] if inv[lab] >= 0 else m

    def prob(lab):
        return p[inv[lab]] if inv[lab] >= 0 else 0.0

    def dist(u, v):
        diff = u - v
        return float(diff @ diff)

    x, y, px, py = vec(s), vec(t), prob(s), prob(t)
    d = 0.0
    for k in range(b):
        n = s ^ (1 << k)
        if n != t:
            z, pz = vec(n), prob(n)
            d += (py + pz) * dist(y, z) - (px + pz) * dist(x, z)
        n = t ^ (1 << k)
        if n != s:
            z, pz = vec(n), prob(n)
            d += (px + pz) * dist(x, z) - (py + pz) * dist(y, z)
    return d / b


# --------------------------------------------------------------------------- start

def gray_code(r):
    """Binary-reflected Gray code of r (int or integer array)."""
    return r ^ (r >> 1)


def _kd_labels(proj: np.ndarray, b: int) -> np.ndarray:
    """Recursive median split: bit b-1-l splits each cell of level l at the median of
    principal component l (mod the number of components); low half -> bit 0."""
    K = proj.shape[0]
    labels = np.zeros(K, dtype=np.int64)
    ncomp = proj.shape[1]
    stack = [(np.arange(K), 0, 0)]
    while stack:
        idx, level, prefix = stack.pop()
        if idx.size == 0:
            continue
        if level == b:
            labels[idx] = prefix  # idx.size == 1 here since size <= 2^(b - level)
            continue
        order = idx[np.argsort(proj[idx, level % ncomp], kind="stable")]
        h = (order.size + 1) // 2
        stack.append((order[:h], level + 1, prefix))
        stack.append((order[h:], level + 1, prefix | (1 << (b - 1 - level))))
    return labels


def pca_initial(codebook, probs=None, method: str = "best") -> np.ndarray:
    """A starting assignment from the principal components of the codebook.

    The components come from the covariance weighted by ``(p_i + 1/K) / 2``
    (half the usage probability, half uniform, so that rarely used codewords
    still shape the axes); each component's sign is fixed so that its largest
    entry is positive (deterministic). Candidates:

    * ``"gray"``: rank along the first component r -> label ``gray_code(r)``
      (neighbours along the axis one bit flip apart);
    * ``"nbc"``: rank along the first component r -> label r (the natural
      binary code, which is optimal for a uniform scalar quantiser on a BSC:
      Crimmins et al., IEEE Trans. Inf. Theory 15(1):72-78, 1969);
    * ``"kd"``: recursive median splits, the most significant bit along the
      first component, the next bit along the second component inside each
      half, and so on: a flip of bit k moves mostly along one principal axis,
      which suits codebooks spread over many dimensions;
    * ``"best"`` (default): the candidate with the lowest ``one_flip_cost``
      (ties: kd, nbc, gray in that order).
    """
    E, p, K, b = _prepare(codebook, probs)
    if method == "best":
        cands = [pca_initial(E, p, m) for m in ("kd", "nbc", "gray")]
        costs = [one_flip_cost(E, p, c) for c in cands]
        return cands[int(np.argmin(costs))]
    w = 0.5 * p + 0.5 / K
    mu = w @ E
    X = E - mu
    cov = (X * w[:, None]).T @ X
    vals, vecs = np.linalg.eigh(cov)
    vecs = vecs[:, ::-1]  # descending variance
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    proj = X @ vecs
    if method in ("gray", "nbc"):
        rank = np.empty(K, dtype=np.int64)
        rank[np.argsort(proj[:, 0], kind="stable")] = np.arange(K)
        return gray_code(rank) if method == "gray" else rank
    if method == "kd":
        return _kd_labels(proj[:, :max(1, min(b, proj.shape[1]))], b)
    raise ValueError(f"unknown method {method!r} (use 'best', 'kd', 'nbc' or 'gray')")


# --------------------------------------------------------------------------- numba kernel

@numba.njit(cache=True)
def _slot_costs_nb(D, p, contents, b, out):
    """out[s] = p[x] * (sum_k D[x, contents[s ^ 2^k]]) / b with x = contents[s]; returns the sum."""
    N = contents.shape[0]
    total = 0.0
    for s in range(N):
        x = contents[s]
        acc = 0.0
        for k in range(b):
            acc += D[x, contents[s ^ (1 << k)]]
        c = p[x] * acc / b
        out[s] = c
        total += c
    return total


@numba.njit(inline="always")
def _moved_in_delta(D, p, contents, b, s, t, x, y, d):
    """``d`` plus the cost change at the neighbours of slot s (other than t) when y replaces x
    there (D exactly symmetric: D[y, z] is D[z, y])."""
    px = p[x]
    py = p[y]
    for k in range(b):
        n = s ^ (1 << k)
        if n != t:
            z = contents[n]
            pz = p[z]
            d += (py + pz) * D[y, z] - (px + pz) * D[x, z]
    return d


@numba.njit(cache=True)
def _swap_delta_nb(D, p, contents, b, s, t):
    """Cost change of exchanging the contents of slots s != t (D symmetric)."""
    x = contents[s]
    y = contents[t]
    d = _moved_in_delta(D, p, contents, b, s, t, x, y, 0.0)
    return _moved_in_delta(D, p, contents, b, t, s, y, x, d) / b


@numba.njit(cache=True)
def _bsa_nb(D, p, contents, K, b, max_sweeps, tol, history):
    """BSA in place on ``contents`` (slot -> item); writes the cost after each sweep
    with a switch into ``history`` (history[0] = initial). Returns the history length."""
    N = contents.shape[0]
    sc = np.empty(N)
    tried = np.zeros(N, dtype=np.bool_)
    history[0] = _slot_costs_nb(D, p, contents, b, sc)
    nh = 1
    for _sweep in range(max_sweeps):
        for i in range(N):
            tried[i] = i >= K
        nswitch = 0
        for _step in range(K):
            s = -1
            best_c = -1.0
            for u in range(N):
                if not tried[contents[u]] and sc[u] > best_c:
                    best_c = sc[u]
                    s = u
            best = np.inf
            bt = -1
            for t in range(N):
                if t != s:
                    dl = _swap_delta_nb(D, p, contents, b, s, t)
                    if dl < best:
                        best = dl
                        bt = t
            x = contents[s]
            if bt >= 0 and best < -tol:
                contents[s] = contents[bt]
                contents[bt] = x
                _slot_costs_nb(D, p, contents, b, sc)
                nswitch += 1
            tried[x] = True
        if nswitch == 0:
            break
        history[nh] = _slot_costs_nb(D, p, contents, b, sc)
        nh += 1
    return nh


# --------------------------------------------------------------------------- reference

def _slot_costs_ref(D, p, contents, b):
    N = contents.size
    slots = np.arange(N)
    acc = np.zeros(N)
    for k in range(b):
        acc = acc + D[contents, contents[slots ^ (1 << k)]]
    sc = p[contents] * acc / b
    total = 0.0
    for c in sc.tolist():  # sequential, like the kernel
        total += c
    return sc, total


def _moved_in_deltas_ref(D, p, contents, b, s, t, x, y, d):
    """``_moved_in_delta`` for every slot t at once (s or t a vector of all slots, x, y their
    contents): ``d`` plus the cost changes at the neighbours of s other than t."""
    for k in range(b):
        n = s ^ (1 << k)
        z = contents[n]
        pz = p[z]
        term = (p[y] + pz) * D[y, z] - (p[x] + pz) * D[x, z]
        d = d + np.where(t == n, 0.0, term)
    return d


def _swap_deltas_ref(D, p, contents, b, s):
    """Cost change of exchanging slot s with every slot t (inf at t = s)."""
    N = contents.size
    t = np.arange(N)
    d = _moved_in_deltas_ref(D, p, contents, b, s, t, contents[s], contents, np.zeros(N))
    d = _moved_in_deltas_ref(D, p, contents, b, t, s, contents, contents[s], d) / b
    d[s] = np.inf
    return d


def _bsa_ref(D, p, contents, K, b, max_sweeps, tol):
    contents = contents.copy()
    N = contents.size
    sc, total = _slot_costs_ref(D, p, contents, b)
    history = [total]
    for _sweep in range(max_sweeps):
        tried = np.arange(N) >= K
        nswitch = 0
        for _step in range(K):
            s = int(np.argmax(np.where(tried[contents], -1.0, sc)))
            deltas = _swap_deltas_ref(D, p, contents, b, s)
            bt = int(np.argmin(deltas))
            x = contents[s]
            if deltas[bt] < -tol:
                contents[s], contents[bt] = contents[bt], x
                sc, _ = _slot_costs_ref(D, p, contents, b)
                nswitch += 1
            tried[x] = True
        if nswitch == 0:
            break
        history.append(_slot_costs_ref(D, p, contents, b)[1])
    return contents, np.array(history)


# --------------------------------------------------------------------------- public BSA

def _bsa_setup(codebook, probs, assignment, rng):
    E, p, K, b = _prepare(codebook, probs)
    if K > MAX_K:
        raise ValueError(f"bsa supports K <= {MAX_K} (a 2^b x 2^b distance matrix), got K = {K}")
    a0 = _start(assignment, E, p, K, rng)
    Ex, px = _extended(E, p, b)
    D = _distance_matrix(Ex)
    contents = _contents_from_assignment(a0, K, b)
    return D, px, contents, K, b


def _tol(D, px, contents, b):
    return REL_TOL * _slot_costs_ref(D, px, contents, b)[1]


def bsa(codebook, probs=None, assignment=None, *, max_sweeps: int = 200,
        rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Binary switching algorithm (Zeger & Gersho 1990), numba kernel.

    ``assignment``: the start, an index -> label array, or ``"pca"`` (also
    None: ``pca_initial``), ``"identity"`` or ``"random"`` (a random assignment
    drawn from ``rng``, a Generator or seed; ``rng`` is used for nothing else).

    Returns ``(assignment int64 (K,), cost_history float64)``: the history
    holds the initial cost and the cost after every sweep that made a switch;
    it never increases. Costs follow ``one_flip_cost`` (computed here from the
    float64 distance matrix, so they agree with it to rounding).
    """
    if max_sweeps < 0:
        raise ValueError("max_sweeps must be >= 0")
    D, px, contents, K, b = _bsa_setup(codebook, probs, assignment, rng)
    history = np.empty(max_sweeps + 1)
    nh = _bsa_nb(D, px, contents, K, b, int(max_sweeps), _tol(D, px, contents, b), history)
    return _assignment_from_contents(contents, K), history[:nh].copy()


def bsa_reference(codebook, probs=None, assignment=None, *, max_sweeps: int = 200,
                  rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``bsa`` in plain numpy (same arithmetic order and tie-breaking; for tests and
    small K: one sweep costs K numpy passes over all 2^b slots)."""
    if max_sweeps < 0:
        raise ValueError("max_sweeps must be >= 0")
    D, px, contents, K, b = _bsa_setup(codebook, probs, assignment, rng)
    contents, history = _bsa_ref(D, px, contents, K, b, int(max_sweeps), _tol(D, px, contents, b))
    return _assignment_from_contents(contents, K), history


def optimise_assignment(codebook, probs=None, seed: int = 0, *, restarts: int = 0,
                        max_sweeps: int = 200) -> tuple[np.ndarray, dict]:
    """The best assignment found by BSA from the PCA start and from the identity
    (plus ``restarts`` random starts drawn from ``seed``; with the default 0 the
    result does not depend on the seed). The final choice is the lowest
    ``one_flip_cost``; ties go to the earlier start (pca, identity, random...).

    Returns ``(assignment, info)``; ``info`` holds ``identity_cost``,
    ``pca_cost``, ``final_cost``, ``start`` (the winning start's name),
    ``sweeps`` (sweeps with a switch of the winning run) and ``bsa_costs``
    (final cost per start).
    """
    E, p, K, _ = _prepare(codebook, probs)
    rng = np.random.default_rng(seed)
    ident = identity_assignment(K)
    pca = pca_initial(E, p)
    starts = [("pca", pca), ("identity", ident)]
    starts += [(f"random{i}", _start("random", E, p, K, rng)) for i in range(restarts)]
    best = None
    bsa_costs = {}
    for name, a0 in starts:
        a, hist = bsa(E, p, a0, max_sweeps=max_sweeps)
        c = one_flip_cost(E, p, a)
        bsa_costs[name] = c
        if best is None or c < best[0]:
            best = (c, name, a, len(hist) - 1)
    c, name, a, sweeps = best
    info = {"identity_cost": one_flip_cost(E, p, ident), "pca_cost": one_flip_cost(E, p, pca),
            "final_cost": c, "start": name, "sweeps": sweeps, "bsa_costs": bsa_costs}
    return a, info
