"""Tests for vqcodec.assignment: one-flip cost, swap deltas, PCA start, BSA (numba vs reference)."""

import itertools

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from vqcodec import assignment as A
from vqcodec.bits import bits_per_label, check_assignment

HYP = settings(max_examples=100, deadline=None)
SMALL_K = [2, 3, 5, 8, 13, 16, 32]
STARTS = ["identity", "pca", "random"]


def _problem(K, d, seed, kind="gauss", zero_probs=False):
    """A codebook (K, d) float32 and usage counts (K,) (not normalised)."""
    rng = np.random.default_rng(seed)
    if kind == "grid":  # small integer coordinates: many exactly tied distances and duplicates
        E = rng.integers(-2, 3, size=(K, d)).astype(np.float32)
    else:
        E = rng.normal(size=(K, d)).astype(np.float32)
    counts = rng.integers(0, 50, size=K).astype(np.float64) if zero_probs else rng.gamma(1.0, size=K)
    counts[0] += 1.0  # never all zero
    return E, counts


def _brute_cost(E, probs, assignment):
    """The definition, written out: every index, every bit; unused labels are the
    probability-weighted mean codeword."""
    E = np.asarray(E, np.float64)
    K = E.shape[0]
    b = bits_per_label(K)
    p = np.ones(K) / K if probs is None else np.asarray(probs, np.float64) / np.sum(probs)
    mean = sum(p[i] * E[i] for i in range(K))
    owner = {int(assignment[i]): i for i in range(K)}
    total = 0.0
    for i in range(K):
        for k in range(b):
            j = owner.get(int(assignment[i]) ^ (1 << k))
            v = mean if j is None else E[j]
            total += p[i] / b * float(np.sum((E[i] - v) ** 2))
    return total


def _random_assignment(K, seed):
    return np.random.default_rng(seed).permutation(2 ** bits_per_label(K))[:K]


# --------------------------------------------------------------------------- cost

@pytest.mark.parametrize("K", [2, 3, 5, 8, 13, 32])
@pytest.mark.parametrize("uniform", [False, True])
def test_one_flip_cost_matches_brute_force(K, uniform):
    for seed in range(3):
        E, counts = _problem(K, 3, seed, zero_probs=seed == 2)
        probs = None if uniform else counts
        a = _random_assignment(K, seed)
        assert A.one_flip_cost(E, probs, a) == pytest.approx(_brute_cost(E, probs, a), rel=1e-12)


def test_one_flip_cost_known_values():
    E = np.arange(16, dtype=np.float32)[:, None]
    # natural binary code: a flip of bit k moves 2^k steps -> (1 + 4 + 16 + 64) / 4
    assert A.one_flip_cost(E, None, np.arange(16)) == pytest.approx(21.25)
    # K = 3 on 2 bits: label 3 unused, worth the mean (1.0)
    E3 = np.array([[0.0], [1.0], [2.0]])
    # index 0 (label 00): neighbours 01 -> e1 (1), 10 -> e2 (4); index 1 (01): 00 -> 1, 11 -> mean 0
    # index 2 (10): 11 -> mean 1, 00 -> 4
    assert A.one_flip_cost(E3, None, [0, 1, 2]) == pytest.approx((5 + 1 + 5) / 3 / 2)
    with pytest.raises(ValueError):
        A.one_flip_cost(E3, None, [0, 1, 1])
    with pytest.raises(ValueError):
        A.one_flip_cost(E3, [0.0, 0.0, 0.0], [0, 1, 2])


@pytest.mark.parametrize("K", [3, 5, 8, 13])
def test_swap_delta_equals_difference_of_full_costs(K):
    E, counts = _problem(K, 2, K)
    b = bits_per_label(K)
    N = 2 ** b
    a = _random_assignment(K, K + 1)
    base = A.one_flip_cost(E, counts, a)
    # the kernel's view: slot contents with virtual items, float64 distance matrix
    Ep, p, _, _ = A._prepare(E, counts)
    D = A._distance_matrix(A._extended(Ep, p, b)[0])
    px = A._extended(Ep, p, b)[1]
    contents = A._contents_from_assignment(a, K, b)
    inv = np.full(N, -1)
    inv[a] = np.arange(K)
    for s, t in itertools.permutations(range(N), 2):
        swapped = inv.copy()
        swapped[[s, t]] = swapped[[t, s]]
        a2 = a.copy()
        for lab in (s, t):
            if swapped[lab] >= 0:
                a2[swapped[lab]] = lab
        expected = A.one_flip_cost(E, counts, a2) - base
        assert A.swap_delta(E, counts, a, s, t) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        nb = A._swap_delta_nb(D, px, contents, b, s, t)
        assert nb == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for s in range(N):  # the vectorised reference gives the kernel's numbers bit for bit
        ref = A._swap_deltas_ref(D, px, contents, b, s)
        nb = np.array([A._swap_delta_nb(D, px, contents, b, s, t) if t != s else np.inf for t in range(N)])
        assert np.array_equal(ref, nb)


# --------------------------------------------------------------------------- BSA

@settings(max_examples=examples(100), deadline=None)
@given(K=st.sampled_from(SMALL_K), d=st.integers(1, 4), seed=st.integers(0, 2 ** 31),
       start=st.sampled_from(STARTS), kind=st.sampled_from(["gauss", "grid"]), zero=st.booleans())
def test_bsa_numba_equals_reference(K, d, seed, start, kind, zero):
    E, counts = _problem(K, d, seed, kind, zero)
    a1, h1 = A.bsa(E, counts, start, rng=seed)
    a2, h2 = A.bsa_reference(E, counts, start, rng=seed)
    assert np.array_equal(a1, a2)
    assert np.array_equal(h1, h2)


@HYP
@given(K=st.sampled_from(SMALL_K), d=st.integers(1, 4), seed=st.integers(0, 2 ** 31),
       start=st.sampled_from(STARTS), kind=st.sampled_from(["gauss", "grid"]))
def test_bsa_monotone_valid_and_locally_optimal(K, d, seed, start, kind):
    E, counts = _problem(K, d, seed, kind)
    a, hist = A.bsa(E, counts, start, rng=seed)
    assert a.dtype == np.int64 and a.shape == (K,)
    check_assignment(a, K)  # distinct labels in [0, 2^b)
    assert hist.ndim == 1 and len(hist) >= 1
    assert np.all(np.diff(hist) < 0)  # every recorded sweep made the cost strictly smaller
    assert hist[-1] == pytest.approx(A.one_flip_cost(E, counts, a), rel=1e-9, abs=1e-12)
    if len(hist) - 1 < 200:  # converged: no single switch of two slots helps any more
        N = 2 ** bits_per_label(K)
        tol = 1e-8 * hist[0] + 1e-12
        for s, t in itertools.combinations(range(N), 2):
            assert A.swap_delta(E, counts, a, s, t) > -tol


def test_bsa_start_and_sweep_limit():
    E, counts = _problem(13, 3, 7)
    a0 = _random_assignment(13, 3)
    a, hist = A.bsa(E, counts, a0, max_sweeps=0)
    assert np.array_equal(a, a0) and len(hist) == 1
    assert hist[0] == pytest.approx(A.one_flip_cost(E, counts, a0))
    a1, h1 = A.bsa(E, counts, a0, max_sweeps=1)
    assert len(h1) <= 2 and h1[-1] <= hist[0]
    # same seed, same random start
    assert np.array_equal(A.bsa(E, counts, "random", rng=5)[0], A.bsa(E, counts, "random", rng=5)[0])
    with pytest.raises(ValueError):
        A.bsa(E, counts, "nonsense")
    with pytest.raises(ValueError):
        A.bsa(np.zeros((A.MAX_K + 1, 1)), None)


def test_bsa_moves_codewords_into_unused_labels():
    # K = 5 uses labels 0..4 of 8 at the identity start; BSA may switch codewords into 5..7
    rng = np.random.default_rng(0)
    E = rng.normal(size=(5, 2))
    a, hist = A.bsa(E, None, "identity")
    assert a.max() >= 5 and hist[-1] < hist[0]
    # the global optimum over all 8*7*6*5*4 assignments is no better than BSA claims possible
    best = min(A.one_flip_cost(E, None, np.array(c)) for c in itertools.permutations(range(8), 5))
    assert best <= hist[-1] + 1e-12


def test_scalar_quantiser_beats_gray_code():
    K = 16
    E = np.arange(K, dtype=np.float32)[:, None]
    gray = A.gray_code(np.arange(K))
    gray_cost = A.one_flip_cost(E, None, gray)
    nbc_cost = A.one_flip_cost(E, None, np.arange(K))
    assert gray_cost == pytest.approx(28.0) and nbc_cost == pytest.approx(21.25)
    a, hist = A.bsa(E, None, gray)
    assert hist[-1] <= gray_cost and A.one_flip_cost(E, None, a) <= gray_cost
    for seed in range(10):
        a, hist = A.bsa(E, None, "random", rng=seed)
        assert A.one_flip_cost(E, None, a) <= gray_cost + 1e-12
    # the natural binary code is optimal here (Crimmins et al. 1969): BSA keeps it
    a, hist = A.bsa(E, None, "identity")
    assert np.array_equal(a, np.arange(K)) and len(hist) == 1
    a, info = A.optimise_assignment(E)
    assert info["final_cost"] <= gray_cost and info["final_cost"] == pytest.approx(21.25)


# --------------------------------------------------------------------------- start, driver

@pytest.mark.parametrize("K", [2, 3, 5, 16, 100, 256])
@pytest.mark.parametrize("method", ["best", "kd", "nbc", "gray"])
def test_pca_initial_is_valid(K, method):
    E, counts = _problem(K, 4, K)
    a = A.pca_initial(E, counts, method)
    check_assignment(a, K)
    assert np.array_equal(a, A.pca_initial(E, counts, method))


def test_pca_initial_on_a_line():
    E = np.arange(16, dtype=np.float32)[:, None]
    assert np.array_equal(A.pca_initial(E, None, "nbc"), np.arange(16))
    assert np.array_equal(A.pca_initial(E, None, "gray"), A.gray_code(np.arange(16)))
    assert np.array_equal(A.pca_initial(E, None, "kd"), np.arange(16))
    # reversed order along the line gives the same labels per position
    assert np.array_equal(A.pca_initial(E[::-1], None, "nbc"), np.arange(16)[::-1])
    with pytest.raises(ValueError):
        A.pca_initial(E, None, "nope")


@pytest.mark.parametrize("K", [5, 64])
def test_optimise_assignment(K):
    E, counts = _problem(K, 8, K)
    a, info = A.optimise_assignment(E, counts, seed=0, restarts=1)
    check_assignment(a, K)
    assert info["final_cost"] == pytest.approx(A.one_flip_cost(E, counts, a))
    assert info["final_cost"] <= min(info["identity_cost"], info["pca_cost"])
    assert info["final_cost"] == min(info["bsa_costs"].values())
    assert info["start"] in info["bsa_costs"]
    a2, info2 = A.optimise_assignment(E, counts, seed=0, restarts=1)
    assert np.array_equal(a, a2) and info == info2
