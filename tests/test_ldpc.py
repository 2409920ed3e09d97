"""Tests for vqcodec.ldpc: 5G NR LDPC codes, decoders, CRCs, segmentation.

Sionna (``sionna-no-rt``) is the reference where it is installed; those tests
are skipped without it.  Sionna's decoders take logits log P(1)/P(0) = -llr.
"""

import numpy as np
import pytest

from vqcodec import ldpc
from vqcodec.ldpc.decoders import _fixed_point, _syndrome_ok
from vqcodec.ldpc.graphs import _graph

# (k, n) pairs covering both base graphs, all BG2 K_b cases, fillers and
# partial last blocks; plus a few random ones per test where noted.
CODES = [
    (12, 24), (40, 100), (100, 200), (192, 300), (292, 600), (500, 1000), (561, 800),
    (641, 1300), (1024, 2048), (1024, 3072), (3824, 5000), (3825, 5000), (4096, 8192),
    (8448, 8900), (8448, 25344),
]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _awgn_llr(coded, ebn0_db, rate, rng):
    """BPSK over AWGN at Eb/N0 (dB): exact LLRs log P(0)/P(1), float32."""
    sigma = np.sqrt(1.0 / (2.0 * rate * 10 ** (ebn0_db / 10)))
    y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.shape)
    return (2.0 * y / sigma**2).astype(np.float32)


def _roll_syndrome(bg, i_ls, z, cw):
    """Syndrome of a full lifted codeword straight from the base graph (np.roll)."""
    bm = ldpc.base_graph(bg, i_ls)
    blocks = cw.reshape(bm.shape[1], z)
    syn = np.zeros((bm.shape[0], z), np.uint8)
    for r, c in zip(*np.nonzero(bm >= 0)):
        syn[r] ^= np.roll(blocks[c], -(bm[r, c] % z))  # row i sees bit (i + V) mod z
    return syn


# ---------------------------------------------------------------------------
# Tables and parameters
# ---------------------------------------------------------------------------


def test_lifting_sizes_table_5_3_2_1():
    assert len(ldpc.LIFTING_SIZES) == 51 and len(set(ldpc.LIFTING_SIZES)) == 51
    assert ldpc.LIFTING_SIZES[0] == 2 and ldpc.LIFTING_SIZES[-1] == 384
    assert ldpc.LIFTING_SETS[1] == (3, 6, 12, 24, 48, 96, 192, 384)
    assert ldpc.LIFTING_SETS[7] == (15, 30, 60, 120, 240)
    assert ldpc.select_lifting(4096, 1) == (192, 1, 22)
    assert ldpc.select_lifting(1024, 2) == (104, 6, 10)
    assert ldpc.select_lifting(500, 2)[2] == 8 and ldpc.select_lifting(100, 2)[2] == 6


def test_base_graph_shapes_and_structure():
    for bg, shape, edges in ((1, (46, 68), 316), (2, (42, 52), 197)):
        for i_ls in range(8):
            bm = ldpc.base_graph(bg, i_ls)
            assert bm.shape == shape and int((bm >= 0).sum()) == edges
            kb = 22 if bg == 1 else 10
            # extension part is an identity: one shift-0 entry per row, on the diagonal
            ext = bm[4:, kb + 4 :]
            np.testing.assert_array_equal(ext >= 0, np.eye(shape[0] - 4, dtype=bool))
            assert (ext[ext >= 0] == 0).all()


def test_shipped_tables_equal_sionna():
    pytest.importorskip("sionna.phy")
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    enc = LDPC5GEncoder(100, 200)
    for bg in (1, 2):
        for i_ls in range(8):
            want = enc._load_basegraph(i_ls, f"bg{bg}").astype(np.int64)
            np.testing.assert_array_equal(ldpc.base_graph(bg, i_ls), want)


# ---------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bg", [1, 2])
def test_encoder_satisfies_every_check_all_lifting_sizes(bg):
    """Every lifting size of both base graphs: all 46 (42) block rows hold."""
    rng = _rng(bg)
    rows = 46 if bg == 1 else 42
    for i_ls, sizes in enumerate(ldpc.LIFTING_SETS):
        for z in sizes:
            g = _graph(bg, i_ls, z, rows)
            s = rng.integers(0, 2, (2, g.K), dtype=np.uint8)
            cw = g.encode(s)
            np.testing.assert_array_equal(cw[:, : g.K], s)
            for word in cw:
                assert not _roll_syndrome(bg, i_ls, z, word).any(), (bg, z)
            assert not g.syndrome(cw).any()


@pytest.mark.parametrize("k,n", CODES)
def test_code_words_satisfy_lifted_pcm(k, n):
    code = ldpc.LDPC5GCode(k, n)
    u = _rng(k).integers(0, 2, (3, k), dtype=np.uint8)
    cw = code.codeword(u)
    assert cw.shape == (3, code.n_ldpc)
    np.testing.assert_array_equal(cw[:, :k], u)
    assert not cw[:, k : code.k_ldpc].any()  # fillers are zeros
    assert not code.syndrome(cw).any()
    for word in cw:
        assert not _roll_syndrome(code.bg, code.i_ls, code.z, word).any()
    bad = cw.copy()
    bad[0, k // 2] ^= 1
    assert code.syndrome(bad)[0].any() and not code.syndrome(bad)[1].any()


def test_parity_check_indices_dense_product():
    code = ldpc.LDPC5GCode(100, 200)
    rows, cols = code.parity_check_indices()
    H = np.zeros((rows.max() + 1, code.n_ldpc), np.int64)
    np.add.at(H, (rows, cols), 1)
    assert H.max() == 1  # circulants never overlap
    u = _rng(5).integers(0, 2, (4, 100), dtype=np.uint8)
    cw = code.codeword(u).astype(np.int64)
    assert not ((cw @ H.T) % 2).any()
    assert ((H @ np.eye(code.n_ldpc, dtype=np.int64)[:, 3]) % 2).any()


def test_lifted_pcm_equals_sionna():
    pytest.importorskip("sionna.phy")
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    for k, n in [(100, 200), (1024, 2048), (4096, 8192)]:
        code = ldpc.LDPC5GCode(k, n)
        pcm = LDPC5GEncoder(k, n).pcm.tocoo()
        ours = set(zip(*code.parity_check_indices()))
        theirs = set(zip(pcm.row.tolist(), pcm.col.tolist()))
        assert ours == theirs


@pytest.mark.filterwarnings("ignore:Effective coderate")
def test_encoder_equals_sionna():
    pytest.importorskip("sionna.phy")
    import torch
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    torch.set_num_threads(1)
    rng = _rng(11)
    cases = [(k, n, 1, 0) for k, n in CODES if k / n >= 1 / 3]
    cases += [(1024, 2048, 4, 0), (4096, 8192, 2, 0), (500, 1200, 6, 0)]  # bit interleaver
    cases += [(1024, 2048, 1, 1), (4096, 8192, 1, 2), (300, 700, 1, 3)]  # rv 1..3
    for _ in range(6):
        k = int(rng.integers(12, 8449))
        cases.append((k, int(np.ceil(k / rng.uniform(0.34, 0.94))), 1, 0))
    for k, n, qm, rv in cases:
        code = ldpc.LDPC5GCode(k, n, rv=rv, bits_per_symbol=qm)
        enc = LDPC5GEncoder(k, n, num_bits_per_symbol=None if qm == 1 else qm)
        assert (code.bg, code.z, code.k_ldpc, code.n_ldpc) == (
            int(enc._bg[-1]), enc.z, enc.k_ldpc, enc.n_ldpc), (k, n)
        u = rng.integers(0, 2, (3, k))
        out = enc(torch.tensor(u, dtype=torch.float32), rv=None if rv == 0 else [rv])
        want = out.numpy().reshape(3, n).astype(np.uint8)
        np.testing.assert_array_equal(code.encode(u), want, err_msg=str((k, n, qm, rv)))


def test_rate_matching_lengths_and_positions():
    for k, n in CODES:
        code = ldpc.LDPC5GCode(k, n)
        z = code.z
        u = _rng(1).integers(0, 2, k, dtype=np.uint8)
        c = code.encode(u)
        assert c.shape == (n,) and c.dtype == np.uint8
        tx = code.tx_positions
        assert tx.shape == (n,)
        assert (tx >= 2 * z).all()  # first 2Z systematic bits punctured
        assert not ((tx >= k) & (tx < code.k_ldpc)).any()  # fillers never sent
        assert code.n_cb == code.n_ldpc - 2 * z
        buffer = code.n_cb - code.k_filler
        if n <= buffer:
            assert np.unique(tx).size == n
            np.testing.assert_array_equal(tx[: min(n, k - 2 * z)], np.arange(2 * z, min(n, k - 2 * z) + 2 * z))
        np.testing.assert_array_equal(c, code.codeword(u)[tx])
        assert code.n_rows == max(4, (int(tx.max()) // z + 1) - (22 if code.bg == 1 else 10))
    # wrap-around (repetition) below the mother rate: the buffer is read again from k0
    code = ldpc.LDPC5GCode(100, 1000)
    buffer = code.n_cb - code.k_filler
    assert code.n > buffer
    np.testing.assert_array_equal(code.tx_positions[buffer:], code.tx_positions[: code.n - buffer])
    # rv start positions (Table 5.4.2.1-2 with N_cb = N)
    assert [ldpc.LDPC5GCode(1024, 2048, rv=rv).k0 for rv in range(4)] == [0, 13 * 104, 25 * 104, 43 * 104]
    assert [ldpc.LDPC5GCode(4096, 8192, rv=rv).k0 for rv in range(4)] == [0, 17 * 192, 33 * 192, 56 * 192]


def test_base_graph_selection_rule():
    assert ldpc.LDPC5GCode(292, 320).bg == 2
    assert ldpc.LDPC5GCode(293, 320).bg == 1
    assert ldpc.LDPC5GCode(3824, 5708).bg == 2  # rate 0.67
    assert ldpc.LDPC5GCode(3825, 5000).bg == 1
    assert ldpc.LDPC5GCode(3000, 4000).bg == 1  # rate 0.75
    assert ldpc.LDPC5GCode(3000, 12000).bg == 2  # rate 0.25
    assert ldpc.LDPC5GCode(5000, 25000).bg == 1  # BG2 cannot carry k > 3840
    assert ldpc.LDPC5GCode(1000, 2000, bg=1).bg == 1


@pytest.mark.parametrize(
    "kwargs",
    [dict(k=11, n=100), dict(k=8449, n=10000), dict(k=1000, n=1050), dict(k=100, n=200, bg=3),
     dict(k=5000, n=10000, bg=2), dict(k=100, n=201, bits_per_symbol=2), dict(k=100, n=200, rv=4)],
)
def test_code_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        ldpc.LDPC5GCode(**kwargs)


def test_bad_inputs_rejected():
    code = ldpc.LDPC5GCode(100, 200)
    with pytest.raises(ValueError):
        code.encode(np.zeros(99, np.uint8))
    with pytest.raises(ValueError):
        code.encode(np.full(100, 2))
    with pytest.raises(ValueError):
        code.decode(np.zeros(199, np.float32))
    with pytest.raises(ValueError):
        code.decode(np.full(200, np.nan, np.float32))
    with pytest.raises(ValueError):
        code.decode(np.zeros(200, np.float32), schedule="serial")
    with pytest.raises(ValueError):
        code.decode(np.zeros(200, np.float32), cn_update="boxplus")  # layered is min-sum only


# ---------------------------------------------------------------------------
# Decoders: behaviour
# ---------------------------------------------------------------------------

SCHEDULES = [("layered", "minsum"), ("flooding", "boxplus"), ("flooding", "minsum")]


@pytest.mark.parametrize("schedule,cn", SCHEDULES)
def test_all_zero_and_random_words_decode_at_high_snr(schedule, cn):
    rng = _rng(3)
    for k, n in [(1024, 2048), (4096, 8192), (100, 300)]:
        code = ldpc.LDPC5GCode(k, n)
        res = code.decode(np.full(n, 3.0, np.float32), 10, schedule=schedule, cn_update=cn)
        assert not res.bits.any() and res.converged and res.bits.dtype == np.uint8
        u = rng.integers(0, 2, (4, k), dtype=np.uint8)
        llr = _awgn_llr(code.encode(u), 4.0, code.rate, rng)
        res = code.decode(llr, 20, schedule=schedule, cn_update=cn, early_stop=True,
                          return_codeword_llr=True)
        np.testing.assert_array_equal(res.bits, u)
        assert res.converged.all() and (res.iterations < 10).all()
        assert res.llr.shape == (4, k) and res.codeword_llr.shape == (4, n)
        np.testing.assert_array_equal(res.codeword_llr < 0, code.encode(u).astype(bool))
        np.testing.assert_array_equal(res.llr < 0, u.astype(bool))


@pytest.mark.parametrize("schedule,cn", SCHEDULES)
def test_decoder_fixes_a_few_flips(schedule, cn):
    rng = _rng(4)
    code = ldpc.LDPC5GCode(1024, 2048)
    u = rng.integers(0, 2, 1024, dtype=np.uint8)
    c = code.encode(u)
    llr = np.where(c == 0, 2.0, -2.0).astype(np.float32)
    flips = rng.choice(2048, 40, replace=False)
    llr[flips] *= -1
    assert ((llr < 0) != c).sum() == 40
    res = code.decode(llr, 20, schedule=schedule, cn_update=cn)
    np.testing.assert_array_equal(res.bits, u)
    assert res.converged
    # the same errors without the decoder are errors
    assert (res.llr < 0).sum() == u.sum()


def test_early_stop_only_saves_iterations():
    rng = _rng(6)
    code = ldpc.LDPC5GCode(1024, 2048)
    u = rng.integers(0, 2, (8, 1024), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), 2.0, code.rate, rng)
    full = code.decode(llr, 20)
    early = code.decode(llr, 20, early_stop=True)
    assert (full.iterations == 20).all()
    assert (early.iterations < 20).any() and (early.iterations >= 1).all()
    np.testing.assert_array_equal(early.converged, full.converged)
    conv = early.converged
    np.testing.assert_array_equal(early.bits[conv], full.bits[conv])


def test_hard_and_repeated_llrs_wraparound():
    """Below the mother rate the repeated bits' LLRs are combined."""
    rng = _rng(8)
    code = ldpc.LDPC5GCode(200, 2000)  # BG2 buffer ~ 1000 bits: sent twice
    u = rng.integers(0, 2, (6, 200), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), 1.5, code.rate, rng)
    res = code.decode(llr, 20)
    np.testing.assert_array_equal(res.bits, u)
    half = code.n_cb - code.k_filler
    part = ldpc.LDPC5GCode(200, half)
    assert (part.decode(llr[:, :half], 20).bits != u).any()  # one copy is not enough


# ---------------------------------------------------------------------------
# numba kernels == numpy references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k,n,bg", [(100, 200, None), (300, 420, 1), (40, 120, None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("early", [False, True])
def test_layered_kernel_equals_reference(k, n, bg, dtype, early):
    rng = _rng(k + n)
    code = ldpc.LDPC5GCode(k, n, bg=bg)
    u = rng.integers(0, 2, (5, k), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), 1.0, code.rate, rng)
    for alpha, beta in ((0.75, 0.0), (1.0, 0.5)):
        kw = dict(alpha=alpha, beta=beta, early_stop=early, dtype=dtype, return_codeword_llr=True)
        fast = code.decode(llr, 8, **kw)
        ref = code.decode(llr, 8, reference=True, **kw)
        np.testing.assert_array_equal(fast.codeword_llr, ref.codeword_llr)
        np.testing.assert_array_equal(fast.llr, ref.llr)
        np.testing.assert_array_equal(fast.iterations, ref.iterations)
        np.testing.assert_array_equal(fast.converged, ref.converged)
        assert fast.llr.dtype == (np.float32 if dtype == np.int16 else dtype)


def test_fixed_point_decoder_matches_float_and_survives_saturation():
    """int16 layered min-sum: the same decisions as float32 on noisy words near the waterfall
    (all but a rare word), and correct decisions where the channel LLRs saturate and the
    messages hit their limit over many iterations (saturating L instead of keeping it exact
    flips every bit of such words within 20 iterations)."""
    rng = _rng(11)
    code = ldpc.LDPC5GCode(4096, 8192)
    u = rng.integers(0, 2, (8, 4096), dtype=np.uint8)
    cw = code.encode(u)
    llr = _awgn_llr(cw, 1.4, code.rate, rng)
    fixed = code.decode(llr, 20, dtype=np.int16)
    flt = code.decode(llr, 20, dtype=np.float32)  # not the default, which is int16 itself
    assert (fixed.bits != flt.bits).any(axis=1).sum() <= 1
    assert np.array_equal(fixed.bits, u)  # this SNR decodes every word
    # one iteration: the a-posteriori LLRs are float32's to the quantisation (steps of 1/16), in
    # LLR units (a missing 1/FIXED_SCALE, or channel LLRs not scaled into steps, is far off);
    # later the float LLRs grow without bound where int16 saturates
    fixed1 = code.decode(llr, 1, dtype=np.int16)
    flt1 = code.decode(llr, 1, dtype=np.float32)
    diff = np.abs(fixed1.llr - flt1.llr)
    assert fixed1.llr.dtype == np.float32 and np.median(np.abs(flt1.llr)) > 2
    assert np.median(diff) < 0.05 and diff.max() < 0.5, (np.median(diff), diff.max())
    strong = np.where(cw == 0, 400.0, -400.0).astype(np.float32)  # saturates from the start
    res = code.decode(strong, 50, dtype=np.int16)
    assert np.array_equal(res.bits, u) and res.converged.all()
    assert np.all(np.abs(res.llr) <= 32767 / ldpc.FIXED_SCALE)
    for mag in (5.0, 50.0):  # grows into the message limit from below
        res = code.decode(np.where(cw == 0, mag, -mag).astype(np.float32), 50, dtype=np.int16)
        assert np.array_equal(res.bits, u) and res.converged.all()
    with pytest.raises(ValueError, match="sixteenths"):
        code.decode(llr, 2, dtype=np.int16, alpha=0.7)
    with pytest.raises(ValueError, match="layered"):
        code.decode(llr, 2, dtype=np.int16, schedule="flooding")


def test_fixed_point_scaling():
    """Float LLRs -> int16 steps of 1 / FIXED_SCALE (rounded, clipped at +-FIXED_CHANNEL_LIMIT),
    alpha in sixteenths, beta in steps, and a message limit that keeps channel + max_degree
    messages inside int16."""
    assert ldpc.FIXED_SCALE == 16 and ldpc.FIXED_CHANNEL_LIMIT == 2047
    full = np.array([[0.0, 0.5, -1.25, 0.03, -0.04, 127.9, 200.0, -1e6]], np.float32)
    q, consts = _fixed_point(full, 0.75, 0.5, 30)
    assert q.dtype == np.int16
    np.testing.assert_array_equal(q, [[0, 8, -20, 0, -1, 2046, 2047, -2047]])
    rlim = (32767 - 2047) // 30
    np.testing.assert_array_equal(consts, [12, 8, rlim])
    assert 2047 + 30 * rlim <= 32767
    assert _fixed_point(full, 1.0, 0.0, 1)[1].tolist() == [16, 0, 2047]  # limit: the channel's


@pytest.mark.parametrize("k,n,bg", [(100, 200, None), (300, 420, 1)])
@pytest.mark.parametrize("early", [False, True])
def test_flooding_kernel_equals_reference(k, n, bg, early):
    rng = _rng(k * n)
    code = ldpc.LDPC5GCode(k, n, bg=bg)
    u = rng.integers(0, 2, (4, k), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), 1.0, code.rate, rng)
    for dtype in (np.float32, np.float64):
        kw = dict(schedule="flooding", early_stop=early, dtype=dtype, return_codeword_llr=True)
        fast = code.decode(llr, 8, cn_update="minsum", beta=0.5, **kw)
        ref = code.decode(llr, 8, cn_update="minsum", beta=0.5, reference=True, **kw)
        np.testing.assert_array_equal(fast.codeword_llr, ref.codeword_llr)  # exact ops
        np.testing.assert_array_equal(fast.iterations, ref.iterations)
        fast = code.decode(llr, 8, cn_update="boxplus", **kw)
        ref = code.decode(llr, 8, cn_update="boxplus", reference=True, **kw)
        # tanh / atanh from libm vs numpy may differ in the last ulp
        tol = 1e-3 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(fast.codeword_llr, ref.codeword_llr, atol=tol, rtol=tol)
        np.testing.assert_array_equal(fast.bits, ref.bits)


def test_syndrome_kernel_equals_numpy():
    rng = _rng(9)
    code = ldpc.LDPC5GCode(300, 600)
    g = code._graph()
    par = np.zeros(g.z, np.uint8)
    u = rng.integers(0, 2, (6, 300), dtype=np.uint8)
    words = code._encode(u)
    words[3:, rng.integers(0, g.nv, 3)] ^= 1
    words[5] = rng.integers(0, 2, g.nv)
    for w in words:
        L = np.where(w == 1, -1.0, 1.0).astype(np.float32)
        want = not g.syndrome(w[None])[0].any()
        assert _syndrome_ok(L, g.row_ptr, g.cols, g.shifts, g.z, g.z, par) == want
    assert [not g.syndrome(w[None]).any() for w in words][:3] == [True] * 3


# ---------------------------------------------------------------------------
# Decoders == Sionna's LDPC5GDecoder
# ---------------------------------------------------------------------------


def _sionna_decode(k, n, llr, cn_update, num_iter, schedule="flooding", llr_max=20.0):
    import torch
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    torch.set_num_threads(1)
    enc = LDPC5GEncoder(k, n, precision="double")
    dec = LDPC5GDecoder(enc, cn_update=cn_update, cn_schedule=schedule, num_iter=num_iter,
                        hard_out=False, llr_max=llr_max, precision="double")
    with torch.no_grad():
        out = dec(torch.tensor(-llr.astype(np.float64)))  # logits = -llr
    return -out.numpy()  # back to llr = log P(0)/P(1)


@pytest.mark.parametrize(
    "cn_update,beta,ebn0", [("boxplus", 0.0, 1.0), ("minsum", 0.0, 1.8), ("offset-minsum", 0.5, 1.2)]
)
def test_flooding_decisions_equal_sionna(cn_update, beta, ebn0):
    pytest.importorskip("sionna.phy")
    rng = _rng(21)
    k, n = 1024, 2048
    code = ldpc.LDPC5GCode(k, n)
    u = rng.integers(0, 2, (24, k), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), ebn0, code.rate, rng)  # about half the blocks fail
    theirs = _sionna_decode(k, n, llr, cn_update, 20)
    ours = code.decode(llr, 20, schedule="flooding", cn_update="boxplus" if cn_update == "boxplus"
                       else "minsum", alpha=1.0, beta=beta, dtype=np.float64)
    failed = (ours.bits != u).any(axis=1)
    assert 3 <= failed.sum() <= 21  # a meaningful mix of decoded and failed blocks
    np.testing.assert_array_equal(ours.bits, (theirs <= 0).astype(np.uint8))
    np.testing.assert_allclose(ours.llr, theirs, atol=1e-6)


@pytest.mark.parametrize("beta,ebn0", [(0.0, 1.8), (0.5, 1.2)])
def test_layered_decisions_equal_sionna_layered(beta, ebn0):
    """Our layered min-sum (alpha = 1) == Sionna's cn_schedule='layered' (no clipping)."""
    pytest.importorskip("sionna.phy")
    rng = _rng(22)
    k, n = 1024, 2048
    code = ldpc.LDPC5GCode(k, n)
    u = rng.integers(0, 2, (16, k), dtype=np.uint8)
    llr = _awgn_llr(code.encode(u), ebn0, code.rate, rng)
    theirs = _sionna_decode(k, n, llr, "minsum" if beta == 0 else "offset-minsum", 10,
                            schedule="layered", llr_max=None)
    ours = code.decode(llr, 10, alpha=1.0, beta=beta, dtype=np.float64)
    failed = (ours.bits != u).any(axis=1)
    assert 2 <= failed.sum() <= 14
    np.testing.assert_array_equal(ours.bits, (theirs <= 0).astype(np.uint8))
    np.testing.assert_allclose(ours.llr, theirs, rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------------------
# CRC
# ---------------------------------------------------------------------------


def test_crc_kernel_equals_long_division():
    rng = _rng(12)
    for name in ldpc.CRC_POLYNOMIALS:
        for K in (0, 1, 7, 24, 100, 333):
            b = rng.integers(0, 2, (3, K), dtype=np.uint8)
            got = ldpc.crc_5g(b, name)
            for row, p in zip(b, got):
                np.testing.assert_array_equal(p, ldpc.crc_5g_reference(row, name))


def test_crc_equals_sionna():
    pytest.importorskip("sionna.phy")
    import torch
    from sionna.phy.fec.crc import CRCEncoder

    rng = _rng(13)
    for name in ldpc.CRC_POLYNOMIALS:
        b = rng.integers(0, 2, (4, 200))
        want = CRCEncoder(name)(torch.tensor(b, dtype=torch.float32)).numpy().astype(np.uint8)
        np.testing.assert_array_equal(ldpc.attach_crc_5g(b, name), want, err_msg=name)


def test_crc_detects_errors():
    rng = _rng(14)
    b = ldpc.attach_crc_5g(rng.integers(0, 2, 500, dtype=np.uint8), "CRC24B")
    assert ldpc.check_crc_5g(b, "CRC24B")
    for pos in rng.choice(b.size, 30, replace=False):
        bad = b.copy()
        bad[pos] ^= 1
        assert not ldpc.check_crc_5g(bad, "CRC24B")
    burst = b.copy()
    burst[100:124] ^= rng.integers(0, 2, 24, dtype=np.uint8) | np.eye(1, 24, 0, np.uint8)[0]
    assert not ldpc.check_crc_5g(burst, "CRC24B")  # every burst of <= 24 bits is caught


# ---------------------------------------------------------------------------
# Transport blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("A,G,bg", [
    (292, 340, 2), (293, 340, 1),  # A <= 292 at any rate (R = 0.86)
    (670, 1000, 2), (670, 999, 1),  # A <= 3824: R = 0.67 exactly, and just above
    (3824, 5708, 2), (3825, 5708, 1), (3824, 5707, 1),  # A = 3824 at R = 0.6699, A = 3825, R = 0.6701
    (5000, 20000, 2), (5000, 19999, 1),  # A > 3824: R = 0.25 exactly, and just above
    (20000, 80000, 2),  # a large A at R = 1/4: BG2 all the same, in code blocks of K_cb = 3840
])
def test_transport_block_base_graph_rule_at_its_boundaries(A, G, bg):
    """38.212 7.2.2 on A and R = A / G: BG2 when A <= 292, or A <= 3824 and R <= 0.67, or
    R <= 0.25; else BG1 (one rule, ``base_graph_rule``, for transport and code blocks)."""
    assert ldpc.base_graph_rule(A, A / G) == bg
    tb = ldpc.LDPC5GTransportBlock(A, G)
    assert tb.bg == bg and all(c.bg == bg for c in tb.block_codes)
    assert all(c.k <= (3840 if bg == 2 else 8448) for c in tb.block_codes)


def test_segmentation_parameters():
    tb = ldpc.LDPC5GTransportBlock(20000, 40000)
    assert tb.bg == 1 and tb.tb_crc == "CRC24A" and tb.num_blocks == 3 and tb.cb_crc_length == 24
    ks = [c.k for c in tb.block_codes]
    assert sum(ks) == 20000 + 24 + 3 * 24 and max(ks) - min(ks) <= 1
    assert [c.n for c in tb.block_codes] == [13333, 13333, 13334]
    small = ldpc.LDPC5GTransportBlock(1000, 3000)
    assert small.bg == 2 and small.tb_crc == "CRC16" and small.num_blocks == 1
    assert small.block_codes[0].k == 1016 and small.cb_crc_length == 0
    low = ldpc.LDPC5GTransportBlock(5000, 25000)  # R <= 1/4: BG2, K_cb = 3840
    assert low.bg == 2 and low.num_blocks == 2
    qam = ldpc.LDPC5GTransportBlock(20000, 40000, bits_per_symbol=4)
    assert all(c.n % 4 == 0 for c in qam.block_codes) and sum(c.n for c in qam.block_codes) == 40000
    with pytest.raises(ValueError):
        ldpc.LDPC5GTransportBlock(1000, 1010)  # rate above 0.95


def test_segmentation_round_trip_several_blocks():
    rng = _rng(15)
    A, G = 20001, 36000  # 3 BG1 blocks; B' = 20097 is not a multiple of 3
    tb = ldpc.LDPC5GTransportBlock(A, G)
    assert tb.num_blocks == 3
    payload = rng.integers(0, 2, (2, A), dtype=np.uint8)
    coded = ldpc.encode_payload(payload, G)
    assert coded.shape == (2, G)
    np.testing.assert_array_equal(coded, tb.encode(payload))
    llr = _awgn_llr(coded, 3.0, A / G, rng)
    res = ldpc.decode_payload(llr, A)
    np.testing.assert_array_equal(res.bits, payload)
    assert res.block_ok.shape == (2, 3) and res.block_ok.all() and res.tb_ok.all()
    np.testing.assert_array_equal(res.llr < 0, payload.astype(bool))
    one = tb.decode(llr[0])
    assert one.bits.shape == (A,) and one.tb_ok is True and one.block_ok.shape == (3,)


def test_crc_catches_a_failed_block():
    rng = _rng(16)
    A, G = 20000, 40000
    tb = ldpc.LDPC5GTransportBlock(A, G)
    payload = rng.integers(0, 2, A, dtype=np.uint8)
    llr = _awgn_llr(tb.encode(payload), 3.0, A / G, rng)
    n0 = tb.block_codes[0].n
    n1 = tb.block_codes[1].n
    llr[n0 : n0 + n1] = rng.standard_normal(n1).astype(np.float32)  # block 1 destroyed
    res = tb.decode(llr)
    np.testing.assert_array_equal(res.block_ok, [True, False, True])
    assert res.tb_ok is False
    k0 = tb.block_codes[0].k - 24
    np.testing.assert_array_equal(res.bits[:k0], payload[:k0])
    assert (res.bits != payload).any()
    # single block: the TB CRC-16 is the block check
    small = ldpc.LDPC5GTransportBlock(500, 1000)
    p = rng.integers(0, 2, 500, dtype=np.uint8)
    bad = small.decode(rng.standard_normal(1000).astype(np.float32))
    good = small.decode(_awgn_llr(small.encode(p), 4.0, 0.5, rng))
    assert bad.block_ok.tolist() == [False] and bad.tb_ok is False
    assert good.block_ok.tolist() == [True] and good.tb_ok is True


def test_transport_block_equals_sionna_tb_encoder():
    pytest.importorskip("sionna.phy")
    import torch
    from sionna.phy.nr import TBEncoder
    from sionna.phy.nr.utils import calculate_tb_size

    torch.set_num_threads(1)
    rng = _rng(17)
    for target, G, qm in [(20000, 40000, 1), (3000, 6000, 2), (9000, 36000, 4)]:
        tbs = int(calculate_tb_size(qm, target / G, target_tb_size=target, num_coded_bits=G)[0])
        enc = TBEncoder(tbs, G, tbs / G, qm, use_scrambler=False)
        assert enc.tb_size == tbs
        ours = ldpc.LDPC5GTransportBlock(tbs, G, bits_per_symbol=qm)
        assert ours.num_blocks == enc.num_cbs
        u = rng.integers(0, 2, (2, tbs))
        want = enc(torch.tensor(u, dtype=torch.float32)).numpy().astype(np.uint8)
        np.testing.assert_array_equal(ours.encode(u), want, err_msg=str((tbs, G, qm)))


@pytest.mark.parametrize("k, n", [(1024, 3072), (4096, 8192), (500, 700)])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_interleaved_batches_equal_word_by_word_decoding(k, n, dtype):
    from vqcodec import ldpc

    code = ldpc.LDPC5GCode(k, n)
    rng = np.random.default_rng(k)
    c = code.encode(rng.integers(0, 2, (11, k), dtype=np.uint8))  # groups of 8 (4), the last short
    llr = (2 * ((1 - 2.0 * c) + 0.55 * rng.standard_normal(c.shape)) / 0.3025).astype(np.float32)
    llr[3] *= 0.05  # a word that fails: its syndrome flag must stay its own
    batch = code.decode(llr, 20, dtype=dtype)
    for b in range(11):
        one = code.decode(llr[b], 20, dtype=dtype)
        assert np.array_equal(batch.llr[b], one.llr) and np.array_equal(batch.bits[b], one.bits)
        assert bool(batch.converged[b]) == one.converged and int(batch.iterations[b]) == one.iterations == 20
    assert not batch.converged[3] and batch.converged.sum() >= 3  # flags differ between words
