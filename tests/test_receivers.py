import itertools

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import channels
from vqcodec.bits import indices_to_bits, inverse_assignment
from vqcodec.prior import IndexPrior, learn_prior
from vqcodec.receivers import ReceiverContext, get_receiver, spatial_posterior
from vqcodec.receivers.spatial import _bp_nb, _bp_ref, _candidates_nb, _candidates_ref, pmi_bounds


def random_prior(K, rng, strength=2.0):
    uni = rng.integers(1, 50, K).astype(float)
    hor = rng.gamma(0.3, strength, (K, K)) * 10
    ver = rng.gamma(0.3, strength, (K, K)) * 10
    return IndexPrior(uni, hor, ver)


def tables(prior, beta):
    ph, pv = beta * prior.pmi("h"), beta * prior.pmi("v")
    return prior.log_unigram(), ph, pv, np.exp(ph), np.exp(pv)


@settings(max_examples=examples(40), deadline=None)
@given(K=st.sampled_from([2, 3, 5, 13, 16, 32]), h=st.integers(1, 4), w=st.integers(1, 4),
       seed=st.integers(0, 2 ** 31), erase=st.floats(0, 1), radius=st.integers(0, 2), keep=st.integers(1, 8))
def test_kernels_equal_references(K, h, w, seed, erase, radius, keep):
    rng = np.random.default_rng(seed)
    b = int(np.ceil(np.log2(K)))
    prior = random_prior(K, rng)
    lu, ph, pv, eh, ev = tables(prior, 0.7)
    inv = inverse_assignment(rng.permutation(2 ** b)[:K], K)
    llr = rng.normal(0, 4, (h * w, b))
    llr[rng.random(llr.shape) < erase] = 0.0
    args = (llr, inv, lu, ph, pv, pmi_bounds(ph, pv), h, w, radius, keep, 0.05, 12.0)
    c1, u1, n1 = _candidates_nb(*args)
    c2, u2, n2 = _candidates_ref(*args)
    assert np.array_equal(n1, n2)
    assert np.array_equal(c1, c2)
    assert np.allclose(u1, u2, equal_nan=True)
    if (n1 == 0).any():
        return
    b1 = _bp_nb(c1, u1, n1, eh, ev, h, w, 3)
    b2 = _bp_ref(c1, u1, n1, eh, ev, h, w, 3)
    assert np.allclose(b1, b2, rtol=1e-9, atol=1e-12)
    assert np.allclose(b1.sum(axis=1), 1.0)
    e32 = (eh.astype(np.float32), ev.astype(np.float32))  # the edge tables' dtype in spatial_posterior
    assert np.allclose(_bp_nb(c1, u1, n1, *e32, h, w, 3), _bp_ref(c1, u1, n1, *e32, h, w, 3), rtol=1e-9, atol=1e-12)


def _exact_marginals(unary_full, pmi_h, pmi_v, h, w):
    K = unary_full.shape[1]
    n = h * w
    marg = np.zeros((n, K))
    for cfg in itertools.product(range(K), repeat=n):
        x = np.array(cfg)
        lp = unary_full[np.arange(n), x].sum()
        for r in range(h):
            for c in range(w):
                s = r * w + c
                if c < w - 1:
                    lp += pmi_h[x[s], x[s + 1]]
                if r < h - 1:
                    lp += pmi_v[x[s], x[s + w]]
        marg[np.arange(n), x] += np.exp(lp)
    return marg / marg.sum(axis=1, keepdims=True)


def _all_candidates_setup(K, h, w, rng):
    """Every label is a candidate: all bits 'free' (|llr| < free_llr), so BP runs over the full alphabet."""
    b = int(np.log2(K))
    llr = rng.uniform(-0.04, 0.04, (h * w, b))
    prior = random_prior(K, rng, strength=5.0)
    return b, llr, prior


def test_bp_is_exact_on_a_chain():
    rng = np.random.default_rng(3)
    K, h, w = 4, 1, 5
    b, llr, prior = _all_candidates_setup(K, h, w, rng)
    beta = 1.0
    lu, ph, pv, eh, ev = tables(prior, beta)
    inv = np.arange(K)
    cand, unary, ncand = _candidates_nb(llr, inv, lu, ph, pv, pmi_bounds(ph, pv), h, w, 0, K, 0.05, 12.0)
    assert (ncand == K).all()
    bel = _bp_nb(cand, unary, ncand, eh, ev, h, w, 4)
    unary_full = np.zeros((h * w, K))
    for s in range(h * w):
        unary_full[s, cand[s]] = unary[s]
    exact = _exact_marginals(unary_full, ph, pv, h, w)
    got = np.zeros_like(exact)
    for s in range(h * w):
        got[s, cand[s]] = bel[s]
    assert np.allclose(got, exact, atol=1e-9)


def test_bp_map_matches_brute_force_on_a_small_loopy_grid():
    # weak coupling on a 2x3 grid: loopy BP marginals are close to the exact ones and pick the same argmax
    rng = np.random.default_rng(5)
    K, h, w = 4, 2, 3
    b, llr, prior = _all_candidates_setup(K, h, w, rng)
    llr = rng.normal(0, 1.0, llr.shape).clip(-0.04, 0.04)
    beta = 0.3
    lu, ph, pv, eh, ev = tables(prior, beta)
    cand, unary, ncand = _candidates_nb(llr, np.arange(K), lu, ph, pv, pmi_bounds(ph, pv), h, w, 0, K, 0.05, 12.0)
    bel = _bp_nb(cand, unary, ncand, eh, ev, h, w, 10)
    unary_full = np.zeros((h * w, K))
    got = np.zeros((h * w, K))
    for s in range(h * w):
        unary_full[s, cand[s]] = unary[s]
        got[s, cand[s]] = bel[s]
    exact = _exact_marginals(unary_full, ph, pv, h, w)
    assert np.abs(got - exact).max() < 0.05
    top2 = np.sort(exact, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.02  # argmax is only well defined away from near-ties
    assert clear.sum() >= 3
    assert np.array_equal(got.argmax(1)[clear], exact.argmax(1)[clear])


def _ctx(K, prior=None, channel=None, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return ReceiverContext(K=K, assignment=np.arange(K), codebook=rng.normal(size=(K, d)).astype(np.float32),
                           channel=channel, prior=None if prior is None else (prior,))


@pytest.mark.parametrize("name", ["naive", "map", "spatial", "spatial-mmse"])
@pytest.mark.parametrize("K", [16, 100])
def test_clean_channel_returns_exact_indices(name, K):
    rng = np.random.default_rng(1)
    grid = rng.integers(0, K, (5, 7))
    prior = learn_prior([grid, rng.integers(0, K, (9, 9))], K)
    ch = channels.get_channel("bsc", p=0.0)
    ctx = _ctx(K, prior, ch)
    rx = ch(indices_to_bits(grid, K), np.random.default_rng(0))
    dec = get_receiver(name)(rx, grid.shape, ctx)
    assert np.array_equal(dec.indices, grid)
    if dec.embeddings is not None:
        assert np.array_equal(dec.embeddings, ctx.codebook[grid])


@pytest.mark.parametrize("K,assignment,nearest", [
    (3, [3, 0, 2], {1: 0}),  # 01: 00 and 11 at distance 1, the smaller label 00 wins
    (5, [0, 1, 2, 3, 4], {5: 1, 6: 2, 7: 3}),  # 101: 001 over 100; 110: 010 over 100; 111: 011 alone
])
def test_naive_maps_an_unused_label_to_the_nearest_used_one(K, assignment, nearest):
    """K not a power of two: a received label that no index uses becomes the index of the used label
    nearest in Hamming distance, ties to the smaller label."""
    from vqcodec.bits import labels_to_bits

    b = int(np.ceil(np.log2(K)))
    rx = channels.Received(hard=labels_to_bits(np.arange(2 ** b), b).astype(np.int8), llr=None)
    ctx = ReceiverContext(K=K, assignment=np.array(assignment), codebook=np.zeros((K, 2), np.float32))
    got = get_receiver("naive")(rx, (1, 2 ** b), ctx).indices[0]
    index_of = {lab: i for i, lab in enumerate(assignment)}
    assert list(got) == [index_of[nearest.get(lab, lab)] for lab in range(2 ** b)]


def test_posteriors_sum_to_one_and_candidates_valid():
    rng = np.random.default_rng(2)
    K = 100
    grid = rng.integers(0, K, (6, 6))
    prior = learn_prior([grid], K)
    ch = channels.get_channel("bsc", p=0.1)
    ctx = _ctx(K, prior, ch)
    rx = ch(indices_to_bits(grid, K), rng)
    from vqcodec.receivers import bit_llrs

    post = spatial_posterior(bit_llrs(rx, ch, ctx.b), grid.shape, ctx)
    assert np.allclose(post.prob.sum(-1), 1.0)
    assert ((post.cand >= 0) | (post.prob == 0)).all() and (post.cand < K).all()


def test_spatial_mmse_hands_the_decoder_the_expected_codeword():
    from vqcodec.receivers import bit_llrs

    rng = np.random.default_rng(3)
    K = 16
    grid = rng.integers(0, K, (6, 7))
    ch = channels.get_channel("bsc", p=0.1)
    ctx = _ctx(K, learn_prior([grid, rng.integers(0, K, (8, 8))], K), ch)
    rx = ch(indices_to_bits(grid, K), rng)
    dec = get_receiver("spatial-mmse")(rx, grid.shape, ctx)
    post = spatial_posterior(bit_llrs(rx, ch, ctx.b), grid.shape, ctx)
    expected = np.zeros(grid.shape + (ctx.codebook.shape[1],))
    for i, j, k in np.ndindex(post.cand.shape):
        if post.cand[i, j, k] >= 0:
            expected[i, j] += post.prob[i, j, k] * ctx.codebook[post.cand[i, j, k]]
    assert np.array_equal(dec.indices, post.map())
    assert np.allclose(dec.embeddings, expected, atol=1e-5)
    assert not np.allclose(dec.embeddings, ctx.codebook[dec.indices], atol=1e-3)


def test_erased_index_is_concealed_from_its_neighbours():
    # a field whose rows repeat one index: neighbours predict an erased index exactly
    K = 16
    rows = np.repeat(np.arange(8)[:, None] * 2, 8, axis=1)  # index 2r along row r
    prior = learn_prior([rows, rows.T.copy()], K)
    ch = channels.get_channel("packet-erasure", p=0.0, packet_bits=4)
    ctx = _ctx(K, prior, ch)
    bits = indices_to_bits(rows, K)
    hard = bits.astype(np.int8).copy()
    hard[4 * 27: 4 * 28] = -1  # erase index (3, 3)
    rx = channels.Received(hard=hard, llr=np.where(hard < 0, 0.0, np.where(hard == 0, 30.0, -30.0)).astype(np.float32))
    assert get_receiver("naive")(rx, rows.shape, ctx).indices[3, 3] == 0
    assert get_receiver("spatial")(rx, rows.shape, ctx).indices[3, 3] == rows[3, 3]


def test_spatial_receiver_needs_a_prior():
    ch = channels.get_channel("bsc", p=0.01)
    rx = ch(indices_to_bits(np.zeros((2, 2), int), 16), np.random.default_rng(0))
    with pytest.raises(ValueError, match="index prior"):
        get_receiver("spatial")(rx, (2, 2), _ctx(16, None, ch))


@pytest.mark.parametrize("name,params", [("awgn", {"snr_db": 4.0, "soft": False}), ("fading", {"snr_db": 6.0, "soft": False}),
                                         ("burst", {"p": 0.01, "burst_length": 5.0}), ("erasure", {"p": 0.1}),
                                         ("awgn", {"snr_db": 4.0}), ("packet-erasure", {"p": 0.1, "packet_bits": 4})])
def test_every_channel_feeds_every_receiver(name, params):
    from vqcodec.receivers import bit_llrs

    K = 16
    rng = np.random.default_rng(0)
    grid = rng.integers(0, K, (6, 5))
    ch = channels.get_channel(name, **params)
    ctx = _ctx(K, learn_prior([grid], K), ch)
    rx = ch(indices_to_bits(grid, K), rng)
    llr = bit_llrs(rx, ch, ctx.b)
    assert llr.shape == (30, 4) and np.isfinite(llr).all()
    if rx.llr is None:  # hard view: |llr| = log((1 - q) / q) of the crossover probability
        q = ch.crossover_probability if hasattr(ch, "crossover_probability") else ch.p
        assert np.allclose(np.abs(llr), min(30.0, np.log((1 - q) / q)))
    for r in ("naive", "map", "spatial", "spatial-mmse"):
        dec = get_receiver(r)(rx, grid.shape, ctx)
        assert dec.indices.shape == grid.shape and (dec.indices >= 0).all() and (dec.indices < K).all()


def test_spatial_posterior_rejects_llrs_that_do_not_fit_the_grid():
    from vqcodec.bits import identity_assignment
    from vqcodec.prior import learn_prior
    from vqcodec.receivers import ReceiverContext, spatial_posterior

    rng = np.random.default_rng(0)
    grids = [rng.integers(0, 16, (6, 7)) for _ in range(3)]
    ctx = ReceiverContext(K=16, assignment=identity_assignment(16), codebook=rng.normal(size=(16, 4)),
                          channel=None, prior=(learn_prior(grids, 16),))
    with pytest.raises(ValueError, match="needs"):
        spatial_posterior(np.zeros((6 * 7, 4)), (8, 8), ctx)


# --------------------------------------------------------------------------- channel memory (bursts)

@settings(max_examples=examples(40), deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2 ** 31), p_gb=st.floats(0.0, 1.0), p_bg=st.floats(0.001, 1.0),
       p_good=st.floats(0.0, 0.5), p_bad=st.floats(0.0, 0.5))
def test_ge_extrinsic_kernel_equals_reference(n, seed, p_gb, p_bg, p_good, p_bad):
    from vqcodec.receivers.burst import _ge_extrinsic_nb, _ge_extrinsic_ref

    rng = np.random.default_rng(seed)
    e = np.clip(rng.random(n) ** 3, 1e-9, 1 - 1e-9)
    pi_bad = p_gb / (p_gb + p_bg)
    got = _ge_extrinsic_nb(e, pi_bad, p_gb, p_bg, p_good, p_bad)
    assert np.allclose(got, _ge_extrinsic_ref(e, pi_bad, p_gb, p_bg, p_good, p_bad), rtol=1e-9, atol=1e-12)
    assert np.all((got >= min(p_good, p_bad) - 1e-12) & (got <= max(p_good, p_bad) + 1e-12))


def test_ge_extrinsic_theory():
    """A chain without memory (p_gb + p_bg = 1: the next state ignores the current one) says nothing
    about a bit from its neighbours: every bit gets the average error rate. With memory, a run of
    likely errors makes the bits around it likely in the bad state, and bits far away stay good."""
    from vqcodec.receivers.burst import _ge_extrinsic_nb

    rng = np.random.default_rng(0)
    e = np.clip(rng.random(40), 1e-9, 1 - 1e-9)
    p_gb, p_bg = 0.3, 0.7
    pi_bad = p_gb / (p_gb + p_bg)
    got = _ge_extrinsic_nb(e, pi_bad, p_gb, p_bg, 0.0, 0.5)
    assert np.allclose(got, pi_bad * 0.5)
    e = np.full(200, 1e-6)
    e[100:108] = 0.9  # a burst
    got = _ge_extrinsic_nb(e, 0.02, 0.002, 0.1, 0.0, 0.5)
    assert got[103] > 0.45  # inside it: nearly the bad state's 0.5
    assert got[99] > 0.2 and got[108] > 0.2  # next to it: maybe in the burst too
    assert got[50] < 1e-3 and got[150] < 1e-3  # far from it: good; the stationary average is 0.01


def test_memory_llrs_erase_bursts_and_never_add_confidence():
    import channels
    from vqcodec.receivers import memory_llrs

    K, b = 16, 4
    ctx = ReceiverContext(K=K, assignment=np.arange(K), codebook=np.zeros((K, 2), np.float32),
                          channel=channels.get_channel("burst", p=0.02, burst_length=8.0))
    sent = np.random.default_rng(1).integers(0, K, 60)
    llr = np.where(((sent[:, None] >> np.arange(b - 1, -1, -1)) & 1) == 0, 3.9, -3.9)
    llr[30:32] *= -1  # a burst scrambles indices 30 and 31
    llr[50, 0] = 0.0  # an erased bit
    q = np.zeros((60, K))
    q[np.arange(60), sent] = 1.0  # a first pass that recognises the true indices
    out = memory_llrs(llr, q, ctx)
    assert out[50, 0] == 0.0
    assert np.all(np.abs(out) <= np.abs(llr) + 1e-12)
    assert np.all(np.sign(out[out != 0]) == np.sign(llr[out != 0]))
    assert np.abs(out[30:32]).mean() < 0.3 and np.median(np.abs(out[30:32])) < 0.01  # nearly erased
    assert np.allclose(np.abs(out[:20]), 3.9)  # far from it nothing changes


def test_prior_tables_follow_the_prior_object_not_its_address():
    """A freed prior's address is soon reused by a new one; its cached tables must not be (the
    Dask-versus-serial mismatch seen in CI: the serial run used a freed prior's edge tables)."""
    import gc

    import vqcodec.receivers.spatial as corr

    rng = np.random.default_rng(0)
    before = len(corr._PRIOR_TABLES)
    for _ in range(20):
        prior = learn_prior([rng.integers(0, 8, (6, 6))], 8)
        tabs = corr.prior_tables(prior, 8, 1.0)
        np.testing.assert_array_equal(tabs[1], prior.pmi("h"))
        del prior, tabs
        gc.collect()
    assert len(corr._PRIOR_TABLES) <= before  # no entry outlives its prior, so no later prior can be handed one


def test_staged_receivers_give_each_stage_its_exact_posterior_and_sum_the_stages():
    """A 2-stage source on a 1 x 4 chain (BP is exact on a chain), K = 4, every label a candidate: per
    stage, with that stage's own assignment row and prior, the posterior is the brute-force one,
    P(x | y) ~ prod_i P(x_i) P(y_i | label_s(x_i)) prod_i exp(beta PMI_h(x_i, x_i+1)); spatial-mmse
    hands the decoder sum_s sum_k q_sk e_sk, naive reads each stage's labels with its own row."""
    from channels import Received
    from vqcodec.bits import labels_to_bits

    rng = np.random.default_rng(11)
    S, K, b, h, w, d = 2, 4, 2, 1, 4, 3
    assignment = np.array([[2, 0, 3, 1], [1, 3, 0, 2]])
    priors = tuple(IndexPrior(*(random_prior(K, rng, strength=5.0).__dict__[k] for k in
                                ("unigram", "horizontal", "vertical")), beta=0.9) for _ in range(S))
    cbs = rng.normal(size=(S, K, d)).astype(np.float32)
    llr = (1.5 * rng.normal(size=S * h * w * b)).astype(np.float32)
    rx = Received(hard=(llr < 0).astype(np.int8), llr=llr)
    ctx = ReceiverContext(K=K, assignment=assignment, codebook=cbs[0], codebooks=cbs, prior=priors)
    dec = get_receiver("spatial-mmse")(rx, (S, h, w), ctx)
    want = np.zeros((h * w, d))
    for s in range(S):
        signs = 1 - 2 * labels_to_bits(assignment[s], b).reshape(K, b).astype(np.float64)  # +1: a 0 bit
        unary = priors[s].log_unigram()[None, :] + llr.reshape(S, h * w, b)[s].astype(np.float64) @ signs.T / 2
        exact = _exact_marginals(unary, 0.9 * priors[s].pmi("h"), 0.9 * priors[s].pmi("v"), h, w)
        want += exact @ cbs[s].astype(np.float64)
        assert np.array_equal(dec.indices[s].ravel(), exact.argmax(1))
    np.testing.assert_allclose(dec.embeddings.reshape(h * w, d), want, atol=1e-5)
    assert dec.indices.shape == (S, h, w) and dec.embeddings.shape == (h, w, d)
    naive = get_receiver("naive")(rx, (S, h, w), ctx).indices
    labels = (llr < 0).astype(np.int64).reshape(S, h * w, b) @ np.array([2, 1])
    assert np.array_equal(naive.reshape(S, -1), [inverse_assignment(assignment[s], K)[labels[s]] for s in range(S)])
    with pytest.raises(ValueError, match="stages"):
        get_receiver("naive")(Received(hard=rx.hard[:-2]), (S, h, w), ctx)


def test_per_stage_side_information_is_a_tuple_of_one_per_stage_or_none():
    """issue 29: a context's prior and context receiver are None or a tuple of S, never bare."""
    prior = learn_prior([np.random.default_rng(0).integers(0, 8, (4, 4))], 8)
    assert _ctx(8, prior).prior == (prior,)
    with pytest.raises(ValueError, match="tuple of one per stage"):
        ReceiverContext(K=8, assignment=np.arange(8), codebook=np.zeros((8, 2), np.float32), prior=prior)
    with pytest.raises(ValueError, match=r"tuple of one per stage \(2\)"):
        ReceiverContext(K=8, assignment=np.arange(8), codebook=np.zeros((8, 2), np.float32),
                        codebooks=np.zeros((2, 8, 2), np.float32), prior=(prior,))
