"""Tests for channels.modulation, the QAM paths of AWGN / fading and the
BICM / Gaussian-input capacities.

Statistical tests use fixed seeds and a tolerance of Z = 5 standard errors,
with the standard error from the sample size and an exact (or stated upper
bound on the) variance, never hand-tuned. Tests that compare with Sionna
(``sionna-no-rt``, the trusted reference) skip when it is not installed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate, special

from channels import AWGN, MODULATIONS, Modulation, RayleighBlockFading, get_channel, get_modulation
from channels import capacity as cap
from channels.awgn import complex_noise, ebn0_to_esn0_db, esn0_to_ebn0_db
from channels.modulation import (
    demap_kernel,
    demap_reference,
    detect_reference,
    modulate_kernel,
    modulate_reference,
    pam_gray_levels,
)
from channels.scrambling import descramble_llr, scramble

Z = 5.0
BITS = {"bpsk": 1, "qpsk": 2, "qam16": 4, "qam64": 6, "qam256": 8}
QAMS = [n for n in MODULATIONS if n != "bpsk"]


def Q(x):
    return 0.5 * special.erfc(np.asarray(x, float) / math.sqrt(2.0))


def random_bits(n: int, seed: int = 12345) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n, dtype=np.uint8)


def assert_close(observed: float, expected: float, se: float) -> None:
    assert abs(observed - expected) <= Z * se, (
        f"observed {observed!r}, expected {expected!r}, |diff| = {abs(observed - expected):.3g} > {Z} SE = {Z * se:.3g}"
    )


def cgauss(rng, n):
    """CN(0, 1) samples."""
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2.0)


@pytest.fixture(scope="module")
def sionna_mapping():
    pytest.importorskip("sionna.phy")
    import sionna.phy.mapping as sm

    return sm


# ------------------------------------------------------------ constellations


def test_registry_lookup_and_validation():
    assert MODULATIONS == ("bpsk", "qpsk", "qam16", "qam64", "qam256")
    for name, m in BITS.items():
        mod = get_modulation(name)
        assert mod is get_modulation(mod) and mod == Modulation(name)
        assert mod.bits_per_symbol == m
        assert mod.points.dtype == np.complex64 and mod.points.shape == (2**m,)
        assert mod.labels.dtype == np.uint8 and mod.labels.shape == (2**m, m)
        assert not mod.points.flags.writeable and not mod.labels.flags.writeable
        assert mod.symbols(0) == 0 and mod.symbols(m + 1) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_modulation("qpsk").name = "qam16"  # type: ignore[misc]
    for bad in ("qam8", "QPSK", 4, None):
        with pytest.raises(ValueError, match=r"^modulation must be one of bpsk, qpsk, qam16, qam64, qam256") as e:
            get_modulation(bad)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", MODULATIONS)
def test_unit_energy_and_gray_neighbours(name):
    mod = get_modulation(name)
    x = mod.points.astype(np.complex128)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, abs=1e-6)
    assert abs(x.mean()) < 1e-6
    d = np.abs(x[:, None] - x[None, :])
    np.fill_diagonal(d, np.inf)
    dmin = d.min()
    # Gray: every pair of nearest neighbours differs in exactly one label bit
    ham = (mod.labels[:, None, :] != mod.labels[None, :, :]).sum(axis=2)
    nb = np.isclose(d, dmin, rtol=1e-5)
    assert np.all(nb.sum(axis=1) >= 1)
    assert np.all(ham[nb] == 1), f"{name}: neighbours differing in more than one bit"
    # square grid: interior points have 4 neighbours, a QAM point 2 to 4
    if name != "bpsk":
        assert set(nb.sum(axis=1)) <= {2, 3, 4}


def test_labels_follow_3gpp_38211():
    # TS 38.211 5.1.4 (16-QAM) and 5.1.3 (QPSK), written out by hand
    q16 = get_modulation("qam16")
    for i, b in enumerate(q16.labels.astype(float)):
        s = 1 - 2 * b
        expect = (s[0] * (2 - s[2]) + 1j * s[1] * (2 - s[3])) / math.sqrt(10)
        assert q16.points[i] == pytest.approx(expect, abs=1e-6)
    qp = get_modulation("qpsk")
    for i, b in enumerate(qp.labels.astype(float)):
        assert qp.points[i] == pytest.approx(((1 - 2 * b[0]) + 1j * (1 - 2 * b[1])) / math.sqrt(2), abs=1e-6)
    assert get_modulation("bpsk").points.tolist() == [1, -1]
    lv, lb = pam_gray_levels(3)
    assert sorted(lv.tolist()) == [-7, -5, -3, -1, 1, 3, 5, 7]
    assert lb.tolist()[0] == [0, 0, 0] and lv[0] == 3  # s0 (4 - s1 (2 - s2)) = 4 - 1 = 3


@pytest.mark.parametrize("name", MODULATIONS)
def test_points_and_bit_order_match_sionna(sionna_mapping, name):
    sm = sionna_mapping
    m = BITS[name]
    kind = "pam" if name == "bpsk" else "qam"
    ref = sm.Constellation(kind, m, precision="double")().numpy()
    ours = get_modulation(name).points
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    # label i <-> point i: the nearest Sionna point to each of ours has our index
    nearest = np.argmin(np.abs(ours[:, None] - ref[None, :]), axis=1)
    assert np.array_equal(nearest, np.arange(2**m))


# ------------------------------------------------------------ kernels vs references


@pytest.mark.parametrize("name", MODULATIONS)
def test_modulate_kernel_matches_reference(name):
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    rng = np.random.default_rng(1)
    for n in (0, 1, m - 1, m, m + 1, 5 * m + 3, 10_007):
        if n < 0:
            continue
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        out = np.empty(-(-n // m), np.complex64)
        modulate_kernel(bits, m, mod.points, out)
        ref = modulate_reference(bits, m, mod.points)
        assert out.dtype == ref.dtype == np.complex64 and out.shape == (-(-n // m),)
        assert np.array_equal(out, ref)
        assert np.array_equal(mod.modulate(bits), ref)
        # noiseless round trip; the tail padding is dropped
        assert np.array_equal(mod.detect(ref, None, n), bits)


def _h_cases(rng, n_sym):
    return {
        "none": None,
        "scalar": 0.7 - 0.2j,
        "real": rng.rayleigh(math.sqrt(0.5), n_sym),
        "complex": cgauss(rng, n_sym),
    }


@pytest.mark.parametrize("name", MODULATIONS)
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_demap_kernel_matches_reference(name, method):
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    rng = np.random.default_rng(2)
    for n0 in (3.0, 0.3, 1e-3):
        n_sym = 3001
        for hname, h in _h_cases(rng, n_sym).items():
            hh = 1.0 if h is None else h
            x = mod.points[rng.integers(0, 2**m, n_sym)]
            y = (hh * x + math.sqrt(n0) * cgauss(rng, n_sym)).astype(np.complex64)
            n_bits = n_sym * m - (m - 1)  # a padded last symbol
            hard, llr = mod.demodulate(y, n0, h, method, n_bits)
            ref = demap_reference(y, np.asarray(hh), n0, mod.points, mod.labels, method).ravel()[:n_bits]
            assert llr.dtype == np.float32 and llr.shape == (n_bits,)
            assert hard.dtype == np.int8 and hard.shape == (n_bits,)
            np.testing.assert_allclose(llr, ref, rtol=1e-5, atol=1e-5, err_msg=f"{hname} n0={n0}")
            det = detect_reference(y, np.asarray(hh), mod.points, mod.labels).ravel()[:n_bits]
            assert np.array_equal(hard, det), f"{hname} n0={n0}"
            # hard-only mode gives the same decisions and no LLRs
            hard2, none = mod.demodulate(y, n0, h, method, n_bits, soft=False)
            assert none is None and np.array_equal(hard2, hard)


def test_demap_kernel_raw_call_and_underflow_branch():
    # called directly with plain arrays. Near y = 0 the outer levels +-3 of
    # 16-QAM (inner/outer bit = 1) tie, and with a small N0 their side
    # underflows: the exact LLR is then the max-log one plus log 2, which only
    # the per-side shift gets right
    mod = get_modulation("qam16")
    y = np.array([0.0, 1e-3 - 2e-3j, 0.9 + 0.9j, -0.31 + 0.95j, 5.0 - 5.0j], np.complex128)
    h = np.ones(1, np.complex128)
    for n0 in (1e-3, 1e-4):
        llr = np.empty(20, np.float32)
        hard = np.empty(20, np.int8)
        demap_kernel(y, h, n0, mod.pam_levels, mod.pam_bits, 2, 0, llr, hard)
        ref = demap_reference(y, h, n0, mod.points, mod.labels, "app").ravel()
        assert np.all(np.isfinite(llr))
        np.testing.assert_allclose(llr, ref, rtol=1e-5)


def test_demap_input_validation():
    mod = get_modulation("qpsk")
    y = np.zeros(3, np.complex64)
    with pytest.raises(ValueError, match="n0"):
        mod.demap(y, 0.0)
    with pytest.raises(ValueError, match="n_bits"):
        mod.demap(y, 1.0, n_bits=7)
    with pytest.raises(ValueError, match="h must"):
        mod.demap(y, 1.0, h=np.ones(2))
    with pytest.raises(ValueError, match="demapping"):
        mod.demap(y, 1.0, method="exact")
    with pytest.raises(ValueError, match="1-D"):
        mod.demap(np.zeros((2, 2), np.complex64), 1.0)
    assert mod.demap(y, 1.0, n_bits=5).shape == (5,)
    assert mod.demap(np.zeros(0, np.complex64), 1.0).shape == (0,)


# ------------------------------------------------------------ LLR definition


@pytest.mark.parametrize("name", MODULATIONS)
def test_llr_against_brute_force(name):
    # P(b_j = 0 | y) by explicit enumeration of every bit vector with the
    # complex Gaussian density (1 / (pi N0)) exp(-|y - h x|^2 / N0)
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    rng = np.random.default_rng(3)
    n0 = 0.2
    y = cgauss(rng, 12) * 1.3
    h = cgauss(rng, 12)
    llr = mod.demap(y, n0, h).astype(np.float64).reshape(12, m)
    for s in range(12):
        for j in range(m):
            p = [0.0, 0.0]
            for idx in range(2**m):
                b = [(idx >> (m - 1 - t)) & 1 for t in range(m)]  # MSB first
                x = complex(mod.points[idx])
                p[b[j]] += math.exp(-abs(y[s] - h[s] * x) ** 2 / n0) / (math.pi * n0)
            assert llr[s, j] == pytest.approx(math.log(p[0] / p[1]), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", MODULATIONS)
def test_llr_sign_positive_means_zero(name):
    mod = get_modulation(name)
    bits = random_bits(600 * mod.bits_per_symbol, seed=4)
    y = mod.modulate(bits)  # noiseless
    for method in ("app", "maxlog"):
        llr = mod.demap(y, 0.01, method=method)
        assert np.all((llr > 0) == (bits == 0)), method


@pytest.mark.parametrize("name", MODULATIONS)
def test_maxlog_versus_exact(name):
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    rng = np.random.default_rng(5)
    bound = math.log(2 ** (m - 1))  # each side's log-sum-exp is within log(2^(m-1)) of its max
    gaps = []
    for n0 in (1.0, 0.1, 0.003):
        bits = rng.integers(0, 2, 20_000 * m, dtype=np.uint8)
        y = mod.modulate(bits) + math.sqrt(n0) * cgauss(rng, 20_000)
        app = mod.demap(y, n0, method="app").astype(np.float64)
        ml = mod.demap(y, n0, method="maxlog").astype(np.float64)
        assert np.all(np.abs(app - ml) <= bound + 1e-4)
        if name in ("bpsk", "qpsk"):
            # two levels per real dimension (the metric separates over I and Q): max-log is exact
            np.testing.assert_allclose(app, ml, rtol=1e-6, atol=1e-6)
        gaps.append(np.median(np.abs(app - ml) / np.maximum(np.abs(app), 1e-3)))
    if name not in ("bpsk", "qpsk"):
        # max-log becomes exact as the noise vanishes
        assert gaps[0] > gaps[1] > gaps[2]
        assert gaps[2] < 0.02


@pytest.mark.parametrize("name", MODULATIONS)
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_llrs_match_sionna_demapper(sionna_mapping, name, method):
    # Sionna: llr = log P(b=1|y)/P(b=0|y) (the opposite sign), y = x + n with
    # n ~ CN(0, no). With a known gain h: |y - h x|^2 / N0 = |y/h - x|^2 / (N0/|h|^2).
    import torch

    sm = sionna_mapping
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    kind = "pam" if name == "bpsk" else "qam"
    demapper = sm.Demapper(method, kind, m, precision="double")
    rng = np.random.default_rng(6)
    n_sym = 4000
    for n0 in (2.0, 0.1, 0.005):
        for hname, h in (("none", None), ("complex", cgauss(rng, n_sym))):
            hh = np.ones(n_sym) if h is None else h
            x = mod.points[rng.integers(0, 2**m, n_sym)]
            y = (hh * x + math.sqrt(n0) * cgauss(rng, n_sym)).astype(np.complex64)
            ours = mod.demap(y, n0, h, method).astype(np.float64)
            y_eq = torch.tensor(y.astype(np.complex128) / hh)
            no_eq = torch.tensor(n0 / np.abs(hh) ** 2)
            theirs = -demapper(y_eq, no_eq).numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5, err_msg=f"{hname} n0={n0}")


# ------------------------------------------------------------ error rates


def cho_yoon_ber(M: int, esn0: float) -> float:
    """Exact BER of Gray square M-QAM over AWGN (Cho & Yoon, IEEE Trans.
    Commun. 50(7), 2002, eq. (14)-(16)), written with Es/N0 = log2(M) Eb/N0."""
    sm = int(round(math.sqrt(M)))
    L = int(round(math.log2(sm)))
    total = 0.0
    for k in range(1, L + 1):
        pk = 0.0
        for i in range(int((1 - 2.0**-k) * sm)):
            f = math.floor(i * 2 ** (k - 1) / sm)
            w = (-1) ** f * (2 ** (k - 1) - math.floor(i * 2 ** (k - 1) / sm + 0.5))
            pk += w * special.erfc((2 * i + 1) * math.sqrt(3 * esn0 / (2 * (M - 1))))
        total += pk / sm
    return total / L


def per_dim_hamming_moments(name: str, esn0: float) -> tuple[float, float]:
    """E[H], E[H^2] of the Hamming distance H between the sent and the decided
    Gray PAM label of one real dimension over AWGN (uniform levels)."""
    mod = get_modulation(name)
    order = np.argsort(mod.pam_levels)
    lv, lb = mod.pam_levels[order], mod.pam_bits[order]
    sigma = math.sqrt(0.5 / esn0)
    edges = np.concatenate([[-np.inf], (lv[:-1] + lv[1:]) / 2, [np.inf]])
    e1 = e2 = 0.0
    for i, level in enumerate(lv):
        pk = Q((edges[:-1] - level) / sigma) - Q((edges[1:] - level) / sigma)
        hd = (lb != lb[i]).sum(axis=1)
        e1 += np.sum(pk * hd) / len(lv)
        e2 += np.sum(pk * hd**2) / len(lv)
    return e1, e2


@pytest.mark.parametrize(
    "name, snr_db",
    [("qpsk", 0.0), ("qpsk", 4.0), ("qpsk", 8.0),
     ("qam16", 4.0), ("qam16", 9.0), ("qam16", 14.0),
     ("qam64", 8.0), ("qam64", 14.0), ("qam64", 20.0)],
)
def test_hard_ber_awgn_gray_qam(name, snr_db):
    m = BITS[name]
    n_sym = 400_000
    bits = random_bits(n_sym * m, seed=7)
    ch = AWGN(snr_db, soft=False, modulation=name)
    rx = ch(bits, np.random.default_rng(8))
    assert rx.llr is None and rx.hard.dtype == np.int8
    esn0 = 10 ** (snr_db / 10)
    p = cho_yoon_ber(2**m, esn0)
    assert ch.crossover_probability == pytest.approx(p, rel=1e-9)
    # errors per symbol E = H_I + H_Q, independent dimensions: Var E = 2 Var H
    e1, e2 = per_dim_hamming_moments(name, esn0)
    assert 2 * e1 / m == pytest.approx(p, rel=1e-9)
    se = math.sqrt(2 * (e2 - e1**2) / n_sym) / m
    assert_close(float(np.mean(rx.hard != bits)), p, se)


@pytest.fixture(scope="module")
def index_payload():
    """The default payload: f4-k256's index bits of the scikit-image sample photos (641832 bits,
    far from i.i.d. uniform: neighbouring indices repeat, label bits are correlated)."""
    from vqcodec import api
    from vqcodec.bits import indices_to_bits
    from vqcodec.simulate import encode_images

    codec = api.load()
    images, _ = encode_images(codec, with_ms_ssim=False)
    return np.concatenate([indices_to_bits(e.indices, codec.K, codec.assignment) for e in images])


def _payload_ber(bits, name, snr_db, scramble, trials=4):
    """Hard BER of ``trials`` transmissions and its standard error for uniform bits (errors per
    symbol E = H_I + H_Q over independent dimensions: Var E = 2 Var H)."""
    m = BITS[name]
    ber = np.mean([np.mean(AWGN(snr_db, soft=False, modulation=name, scramble=scramble)(bits, t).hard != bits)
                   for t in range(trials)])
    e1, e2 = per_dim_hamming_moments(name, 10 ** (snr_db / 10))
    return float(ber), math.sqrt(2 * (e2 - e1**2) / (trials * (bits.size // m))) / m


@pytest.mark.parametrize("name", ["qam16", "qam64"])
@pytest.mark.parametrize("snr_db", [8.0, 12.0, 16.0])
def test_scrambled_index_payload_has_the_uniform_bit_error_rate(index_payload, name, snr_db):
    # 16-QAM: (3 Q(a) + 2 Q(3a) - Q(5a)) / 4 with a = sqrt(Es / 5 N0); 64-QAM likewise (Cho-Yoon)
    p = cho_yoon_ber(2 ** BITS[name], 10 ** (snr_db / 10))
    if name == "qam16":
        a = math.sqrt(10 ** (snr_db / 10) / 5)
        assert p == pytest.approx((3 * Q(a) + 2 * Q(3 * a) - Q(5 * a)) / 4, rel=1e-12)
    ber, se = _payload_ber(index_payload, name, snr_db, scramble=True)
    assert_close(ber, p, se)


def test_unscrambled_index_payload_error_rate_depends_on_the_image(index_payload):
    # why links scramble: the image's label statistics move 16-QAM's BER many standard errors
    ber, se = _payload_ber(index_payload, "qam16", 12.0, scramble=False)
    assert abs(ber - cho_yoon_ber(16, 10 ** 1.2)) > 5 * se


@pytest.mark.parametrize("snr_db", [0.0, 8.0, 16.0])
def test_rayleigh_bpsk_ber_complex_gain(snr_db):
    # y = h x + n with h ~ CN(0, 1) (any phase) and coherent detection:
    # BER = (1 - sqrt(g / (1 + g))) / 2
    n = 1_000_000
    rng = np.random.default_rng(9)
    mod = get_modulation("bpsk")
    bits = random_bits(n, seed=10)
    g = 10 ** (snr_db / 10)
    h = cgauss(rng, n)
    y = h * mod.modulate(bits) + math.sqrt(1 / g) * cgauss(rng, n)
    q = 0.5 * (1 - math.sqrt(g / (1 + g)))
    assert cap.bit_error_probabilities("bpsk", snr_db, "rayleigh")[0] == pytest.approx(q, rel=1e-12)
    assert_close(float(np.mean(mod.detect(y, h) != bits)), q, math.sqrt(q * (1 - q) / n))


@pytest.mark.parametrize("snr_db", [3.0, 12.0])
def test_rayleigh_qpsk_per_symbol_fading_ber(snr_db):
    # QPSK with Gray labels = two BPSK at Es/N0 / 2 sharing one fade
    n_sym = 500_000
    ch = RayleighBlockFading(snr_db, block_bits=2, soft=False, modulation="qpsk")
    assert ch.block_symbols == 1
    bits = random_bits(2 * n_sym, seed=11)
    rx = ch(bits, np.random.default_rng(12))
    g = 10 ** (snr_db / 10) / 2
    q = 0.5 * (1 - math.sqrt(g / (1 + g)))
    assert ch.crossover_probability == pytest.approx(q, rel=1e-12)
    # a symbol's two errors share the fade: Var(e1 + e2) <= 4 q (1 - q) (as e1 e2 <= e1)
    assert_close(float(np.mean(rx.hard != bits)), q, math.sqrt(4 * q * (1 - q) / n_sym) / 2)


def test_rayleigh_qam16_ber_matches_exact_average():
    n_sym = 300_000
    ch = RayleighBlockFading(10.0, block_bits=4, soft=False, modulation="qam16")
    bits = random_bits(4 * n_sym, seed=13)
    rx = ch(bits, np.random.default_rng(14))
    p = ch.crossover_probability
    # per-symbol error count E in [0, 4]: Var(E) <= E[E^2] <= 4 E[E] = 16 p
    assert_close(float(np.mean(rx.hard != bits)), p, math.sqrt(16 * p / n_sym) / 4)


# ------------------------------------------------------------ channels with a modulation


@pytest.mark.parametrize("name", QAMS)
def test_awgn_and_fading_qam_outputs(name):
    m = BITS[name]
    bits = random_bits(10 * m + 1, seed=15)  # padded last symbol
    for ch in (AWGN(5.0, modulation=name), AWGN(5.0, modulation=name, demapping="maxlog"),
               RayleighBlockFading(5.0, block_bits=2 * m, modulation=name)):
        assert ch.bits_per_use == m and ch.channel_uses(bits.size) == 11
        rx = ch(bits, np.random.default_rng(0))
        assert rx.hard.dtype == np.int8 and rx.hard.shape == bits.shape
        assert rx.llr.dtype == np.float32 and rx.llr.shape == bits.shape
        assert set(np.unique(rx.hard)) <= {0, 1}
        again = ch(bits, np.random.default_rng(0))
        assert np.array_equal(rx.llr, again.llr) and np.array_equal(rx.hard, again.hard)
        hard_only = dataclasses.replace(ch, soft=False)(bits, np.random.default_rng(0))
        assert hard_only.llr is None and np.array_equal(hard_only.hard, rx.hard)
    a = AWGN(5.0, modulation=name)(bits, np.random.default_rng(1))
    b = AWGN(5.0, modulation=name, demapping="maxlog")(bits, np.random.default_rng(1))
    assert np.array_equal(a.hard, b.hard)
    if name == "qpsk":  # one bit per real dimension: max-log is exact
        np.testing.assert_allclose(a.llr, b.llr, rtol=1e-6, atol=1e-6)
    else:
        assert not np.allclose(a.llr, b.llr, rtol=1e-3)


@pytest.mark.parametrize("name", ["qpsk", "qam64"])
@pytest.mark.parametrize("scrambled", [True, False])
def test_channel_llrs_equal_demapper_on_replayed_draws(name, scrambled):
    # documented draw order: (fading: all fades, then) 2 n_sym float32 normals; the bits on the
    # air are the payload XOR the 3GPP sequence, and the receiver's LLRs are descrambled
    m = BITS[name]
    n = 3000 * m - 1
    bits = random_bits(n, seed=16)
    sent = scramble(bits) if scrambled else bits
    undo = descramble_llr if scrambled else (lambda llr: llr)
    mod = get_modulation(name)
    ch = AWGN(4.0, modulation=name, scramble=scrambled)
    rx = ch(bits, np.random.default_rng(17))
    y = complex_noise(mod.symbols(n), ch.sigma, np.random.default_rng(17)) + mod.modulate(sent)
    assert np.array_equal(rx.llr, undo(mod.demap(y, ch.n0, None, "app", n)))
    fch = RayleighBlockFading(4.0, block_bits=3 * m, modulation=name, demapping="maxlog", scramble=scrambled)
    rx = fch(bits, np.random.default_rng(18))
    r = np.random.default_rng(18)
    a = fch.fades(n, r)
    assert a.shape == (mod.symbols(n),)
    pad = np.concatenate([a, np.repeat(a[-1:], (-a.size) % 3)]).reshape(-1, 3)
    assert np.all(pad == pad[:, :1]), "fade constant over block_bits / m symbols"
    y = complex_noise(a.size, fch.sigma, r) + a * mod.modulate(sent)
    assert np.array_equal(rx.llr, undo(mod.demap(y, fch.n0, a, "maxlog", n)))


@pytest.mark.parametrize("snr_db", [2.0, 6.0])
def test_qam_llr_consistency(snr_db):
    # an exact posterior LLR L of bit b satisfies E[(1-2b) tanh(L/2)] = E[tanh^2(L/2)]
    # (since E[1-2b | y] = tanh(L/2)); max-log LLRs are overconfident and fail it
    n_sym = 200_000
    bits = random_bits(4 * n_sym, seed=19)

    def z_score(method):
        rx = AWGN(snr_db, modulation="qam16", demapping=method)(bits, np.random.default_rng(20))
        t = np.tanh(rx.llr.astype(np.float64) * (1.0 - 2.0 * bits) / 2)
        d = (t - t * t).reshape(n_sym, 4).sum(axis=1)  # symbols are i.i.d.
        return d.mean() / (d.std(ddof=1) / math.sqrt(n_sym))

    assert abs(z_score("app")) <= Z
    assert z_score("maxlog") > Z


def test_channel_validation_one_line():
    cases = [
        (dict(snr_db=1.0, modulation="qam8"), "awgn", "modulation"),
        (dict(snr_db=1.0, demapping="exact"), "awgn", "demapping"),
        (dict(snr_db=1.0, modulation="qam16", block_bits=10), "fading", "block_bits"),
        (dict(snr_db=1.0, modulation="qam64"), "fading", "block_bits"),  # 64 is no multiple of 6
        (dict(snr_db=1.0, demapping=None), "fading", "demapping"),
    ]
    for params, kind, pname in cases:
        with pytest.raises(ValueError, match=f"^{pname} must") as e:
            get_channel(kind, **params)
        assert "\n" not in str(e.value)
    assert get_channel("awgn", snr_db=3, modulation="qam16") == AWGN(3.0, modulation="qam16")
    assert get_channel("fading", snr_db=3, block_bits=60, modulation="qam64").block_symbols == 10
    assert AWGN(1.0, modulation=get_modulation("qpsk")).modulation == "qpsk"


def test_channel_uses_and_ebn0_helpers():
    assert AWGN(0.0).bits_per_use == 1 and AWGN(0.0).channel_uses(7) == 7
    assert AWGN(0.0, modulation="qam256").channel_uses(17) == 3
    assert RayleighBlockFading(0.0, block_bits=48, modulation="qam64").channel_uses(12) == 2
    assert ebn0_to_esn0_db(3.0, 0.5, 4) == pytest.approx(3.0 + 10 * math.log10(2.0))
    assert esn0_to_ebn0_db(ebn0_to_esn0_db(1.0, 0.75, 6), 0.75, 6) == pytest.approx(1.0)
    assert ebn0_to_esn0_db(2.0, 0.5) == pytest.approx(2.0 - 10 * math.log10(2.0))
    with pytest.raises(ValueError, match="bits_per_symbol"):
        ebn0_to_esn0_db(1.0, 0.5, 0)


# ------------------------------------------------------------ unscrambled BPSK unchanged


def test_unscrambled_awgn_and_fading_unchanged():
    bits = np.array([0, 1, 1, 0, 1, 0, 0, 1], np.uint8)
    # pinned from the channels at git HEAD before modulation (and scrambling) existed
    awgn = AWGN(2.0, scramble=False)(bits, 0)
    np.testing.assert_array_equal(
        awgn.llr, np.array([10.319178, -11.278818, -7.8585, 3.478176, -4.198022, 6.0725384, 6.5521274,
                            -6.4535394], np.float32))
    fad = RayleighBlockFading(3.0, block_bits=3, scramble=False)(bits, 0)
    np.testing.assert_array_equal(
        fad.llr, np.array([5.623224, -5.532011, -6.0376325, 12.997773, -5.0010395, 2.6578536, 0.59093475,
                           -0.6473869], np.float32))
    # and byte-identical to the old formulas on a long input, RNG state included
    n = 50_001
    bits = random_bits(n, seed=21)
    for ch in (AWGN(1.5, scramble=False), AWGN(1.5, demapping="maxlog", scramble=False),
               AWGN(-2.0, soft=False, scramble=False)):
        r1, r2 = np.random.default_rng(22), np.random.default_rng(22)
        rx = ch(bits, r1)
        sigma = math.sqrt(10 ** (-ch.snr_db / 10) / 2)
        y = r2.standard_normal(n, dtype=np.float32)
        y *= np.float32(sigma)
        y += (1 - 2 * bits.astype(np.float32))
        assert rx.hard.tobytes() == (y < 0).view(np.int8).tobytes()
        if ch.soft:
            assert rx.llr.tobytes() == (y * np.float32(2.0 / sigma**2)).tobytes()
        assert r1.bit_generator.state == r2.bit_generator.state
    for k in (1, 64):
        ch = RayleighBlockFading(2.5, block_bits=k, scramble=False)
        r1, r2 = np.random.default_rng(23), np.random.default_rng(23)
        rx = ch(bits, r1)
        sigma = math.sqrt(10 ** (-2.5 / 10) / 2)
        a = np.repeat(r2.rayleigh(scale=np.sqrt(0.5), size=-(-n // k)).astype(np.float32), k)[:n]
        y = r2.standard_normal(n, dtype=np.float32)
        y *= np.float32(sigma)
        y += a * (1 - 2 * bits.astype(np.float32))
        assert rx.llr.tobytes() == (a * np.float32(2.0 / sigma**2) * y).tobytes()
        assert r1.bit_generator.state == r2.bit_generator.state
    assert AWGN(2.0).capacity() == cap.biawgn_capacity(2.0)
    assert RayleighBlockFading(2.0).capacity() == cap.rayleigh_biawgn_capacity(2.0)
    assert AWGN(2.0).crossover_probability == cap.bpsk_hard_crossover(2.0)


# ------------------------------------------------------------ capacity


def test_bpsk_capacity_at_rate_half_shannon_limit():
    esn0 = 0.187 - 10 * math.log10(2.0)  # Eb/N0 = 0.187 dB at rate 1/2
    assert cap.bicm_capacity("bpsk", esn0) == pytest.approx(0.5, abs=0.002)
    assert AWGN(esn0).capacity() == pytest.approx(0.5, abs=0.002)
    # 0.1 dB either side is clearly off the limit
    assert cap.bicm_capacity("bpsk", esn0 - 0.1) < 0.4975 < 0.5025 < cap.bicm_capacity("bpsk", esn0 + 0.1)


def test_gauss_hermite_bicm_matches_adaptive_quadrature():
    # the BPSK BICM capacity (Gauss-Hermite) against the BI-AWGN one (scipy quad)
    for s in (-20.0, -5.0, 0.0, 3.0, 8.0, 12.0):
        assert cap.bicm_capacity("bpsk", s) == pytest.approx(cap.biawgn_capacity(s), abs=1e-8)
    for s in (-5.0, 5.0, 15.0):
        assert cap.rayleigh_bicm_capacity("bpsk", s) == pytest.approx(cap.rayleigh_biawgn_capacity(s), abs=1e-7)


@pytest.mark.parametrize("s", [-6.0, 0.0, 4.0, 10.0])
def test_qpsk_is_two_bpsk_at_3db_more(s):
    d = 10 * math.log10(2.0)
    assert cap.bicm_capacity("qpsk", s + d) == pytest.approx(2 * cap.bicm_capacity("bpsk", s), abs=1e-10)
    assert cap.rayleigh_bicm_capacity("qpsk", s + d) == pytest.approx(
        2 * cap.rayleigh_bicm_capacity("bpsk", s), abs=1e-8)
    assert AWGN(s + d, modulation="qpsk").capacity() == pytest.approx(AWGN(s).capacity(), abs=1e-8)


def test_bicm_below_gaussian_input_and_limits():
    grid = [-10.0, -3.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    for name in MODULATIONS:
        m = BITS[name]
        c = cap.capacity_curve(grid, name)
        cr = cap.capacity_curve(grid, name, "rayleigh")
        g = cap.capacity_curve(grid)
        gr = cap.capacity_curve(grid, None, "rayleigh")
        assert np.all(c <= g + 1e-12) and np.all(cr <= gr + 1e-12), name
        assert np.all(cr < c), name
        # increasing until saturated at m bits
        for curve in (c, cr):
            assert np.all(np.diff(curve) >= 0), name
            assert np.all(np.diff(curve)[curve[:-1] < m - 1e-6] > 0), name
        assert np.all((c > 0) & (c <= m)), name
        assert cap.bicm_capacity(name, 45.0) == pytest.approx(m, abs=1e-9)
        assert cap.rayleigh_bicm_capacity(name, 70.0) > m - 0.01
        hard = cap.capacity_curve(grid, name, soft=False)
        assert np.all(hard <= c) and np.all(hard[c < m - 1e-6] < c[c < m - 1e-6]), name
    # low SNR: only the sign bits carry information to first order, so
    # C_BICM / log2(1 + snr) -> (E|l|)^2 / E[l^2] per real dimension: 1 for QPSK,
    # 0.8 for 16-QAM, 16/21 for 64-QAM, 64/85 for 256-QAM (Martinez, Guillen i
    # Fabregas & Caire, IEEE Trans. IT 54(12), 2008)
    for name, eff in (("qpsk", 1.0), ("qam16", 0.8), ("qam64", 16 / 21), ("qam256", 64 / 85)):
        assert cap.bicm_capacity(name, -30.0) / cap.gaussian_capacity(-30.0) == pytest.approx(eff, abs=1e-3)


def test_gaussian_input_capacities():
    assert cap.gaussian_capacity(0.0) == pytest.approx(1.0)
    assert cap.gaussian_capacity(10 * math.log10(3.0)) == pytest.approx(2.0)
    for s in (-20.0, 0.0, 10.0, 30.0):
        snr = 10 ** (s / 10)
        num = integrate.quad(lambda g: math.exp(-g) * math.log2(1 + g * snr), 0, np.inf, limit=200)[0]
        assert cap.rayleigh_gaussian_capacity(s) == pytest.approx(num, rel=1e-8)
    # low SNR: log2(1 + g snr) ~ g snr / ln 2 on average (asymptotic branch)
    assert cap.rayleigh_gaussian_capacity(-40.0) == pytest.approx(1e-4 / math.log(2), rel=1e-3)


@pytest.mark.parametrize("fading", [False, True])
def test_bicm_capacity_matches_monte_carlo_of_channel_llrs(fading):
    # C_BICM = m - sum_j E[log2(1 + exp(-lambda_j))], lambda_j = (1 - 2 b_j) llr_j
    n_sym = 150_000
    m = 4
    bits = random_bits(m * n_sym, seed=24)
    ch = RayleighBlockFading(7.0, block_bits=m, modulation="qam16") if fading else AWGN(7.0, modulation="qam16")
    rx = ch(bits, np.random.default_rng(25))
    lam = rx.llr.astype(np.float64) * (1.0 - 2.0 * bits)
    loss = (np.logaddexp(0.0, -lam) / math.log(2.0)).reshape(n_sym, m).sum(axis=1)  # i.i.d. per symbol
    assert_close(m - loss.mean(), ch.capacity_per_use(), loss.std(ddof=1) / math.sqrt(n_sym))
    assert ch.capacity() == pytest.approx(ch.capacity_per_use() / m)


def test_hard_capacity_and_bit_error_probabilities():
    p = cap.bit_error_probabilities("qam64", 12.0)
    assert p.shape == (6,) and np.all(np.diff(p[::2]) > 0)  # sign bits most reliable
    assert np.array_equal(p[0::2], p[1::2])  # I and Q alike
    ch = AWGN(12.0, modulation="qam64", soft=False)
    assert ch.capacity_per_use() == pytest.approx(sum(1 - cap.binary_entropy(q) for q in p))
    assert ch.capacity() < AWGN(12.0, modulation="qam64").capacity()
    with pytest.raises(ValueError, match="fading"):
        cap.bit_error_probabilities("qpsk", 1.0, "rician")
