"""Tests for the channels package.

Statistical tests use fixed seeds and a tolerance of Z standard errors,
with the standard error computed from the sample size and the closed-form
variance (never hand-tuned).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

import channels
from channels import (
    AWGN,
    REGISTRY,
    BinaryErasure,
    BinarySymmetric,
    GilbertElliott,
    PacketErasure,
    RayleighBlockFading,
    Received,
    ebn0_to_esn0_db,
    esn0_to_ebn0_db,
    get_channel,
)
from channels import capacity as cap
from channels.base import bernoulli_mask
from channels.burst import ge_kernel, ge_reference

Z = 5.0  # tolerance in standard errors (>= 4 as required)

HYP = settings(max_examples=40, deadline=None)


def Q(x: float) -> float:
    return 0.5 * special.erfc(x / math.sqrt(2.0))


def random_bits(n: int, seed: int = 12345) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n, dtype=np.uint8)


def assert_close(observed: float, expected: float, se: float) -> None:
    assert abs(observed - expected) <= Z * se, (
        f"observed {observed!r}, expected {expected!r}, |diff| = {abs(observed - expected):.3g} > {Z} SE = {Z * se:.3g}"
    )


# One representative instance of every registered channel (plus variants).
CHANNELS = [
    BinarySymmetric(p=0.1),
    BinarySymmetric(p=0.01),
    BinaryErasure(p=0.3),
    PacketErasure(p=0.3, packet_bits=5),
    AWGN(snr_db=2.0),
    AWGN(snr_db=2.0, soft=False),
    GilbertElliott.from_rate(p=0.05, burst_length=4.0),
    RayleighBlockFading(snr_db=3.0, block_bits=7),
    RayleighBlockFading(snr_db=3.0, block_bits=7, soft=False),
]
ERASURE_KINDS = {"erasure", "packet-erasure"}


def test_every_registered_channel_is_covered():
    assert {type(c).name for c in CHANNELS} == set(REGISTRY)


# ------------------------------------------------------------ registry


def test_registry_names_and_classes():
    assert REGISTRY == {
        "bsc": BinarySymmetric,
        "erasure": BinaryErasure,
        "packet-erasure": PacketErasure,
        "awgn": AWGN,
        "burst": GilbertElliott,
        "fading": RayleighBlockFading,
    }
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.param in ("p", "snr_db")
        assert dataclasses.is_dataclass(cls)


def test_get_channel_builds_instances():
    assert get_channel("bsc", p=0.02) == BinarySymmetric(0.02)
    assert get_channel("erasure", p=0.5) == BinaryErasure(0.5)
    assert get_channel("packet-erasure", p=0.1, packet_bits=10) == PacketErasure(0.1, 10)
    assert get_channel("awgn", snr_db=3) == AWGN(3.0)
    assert get_channel("fading", snr_db=1.5, block_bits=16, soft=False) == RayleighBlockFading(1.5, 16, False)
    ge = get_channel("burst", p=0.01, burst_length=8)
    assert ge == GilbertElliott.from_rate(0.01, 8)
    assert get_channel("burst", p_gb=0.1, p_bg=0.2) == GilbertElliott(p_gb=0.1, p_bg=0.2)
    for ch in CHANNELS:
        assert isinstance(ch.param_value, float)
        assert ch.param_value == getattr(ch, type(ch).param)
    assert ge.param_value == pytest.approx(0.01)


def test_get_channel_unknown_name_lists_known():
    with pytest.raises(ValueError) as exc:
        get_channel("foo", p=0.1)
    msg = str(exc.value)
    assert "unknown channel 'foo'" in msg
    for name in REGISTRY:
        assert name in msg


def test_get_channel_unknown_parameter():
    with pytest.raises(ValueError, match="snr"):
        get_channel("bsc", snr=3)
    with pytest.raises(ValueError, match="p_gb"):
        get_channel("burst", p=0.01, p_gb=0.1)


def test_channels_are_frozen():
    ch = BinarySymmetric(0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ch.p = 0.2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Received(hard=np.zeros(1, np.int8)).llr = None  # type: ignore[misc]


# ------------------------------------------------------------ parameter errors


@pytest.mark.parametrize(
    "name, params, pname",
    [
        ("bsc", {"p": -0.1}, "p"),
        ("bsc", {"p": 0.7}, "p"),
        ("bsc", {"p": float("nan")}, "p"),
        ("bsc", {"p": "abc"}, "p"),
        ("bsc", {"p": True}, "p"),
        ("erasure", {"p": 1.5}, "p"),
        ("erasure", {"p": -1e-9}, "p"),
        ("packet-erasure", {"p": 2.0}, "p"),
        ("packet-erasure", {"p": 0.1, "packet_bits": 0}, "packet_bits"),
        ("packet-erasure", {"p": 0.1, "packet_bits": -3}, "packet_bits"),
        ("packet-erasure", {"p": 0.1, "packet_bits": 2.5}, "packet_bits"),
        ("awgn", {"snr_db": float("inf")}, "snr_db"),
        ("awgn", {"snr_db": float("-inf")}, "snr_db"),
        ("awgn", {"snr_db": float("nan")}, "snr_db"),
        ("awgn", {"snr_db": 1e6}, "snr_db"),
        ("awgn", {"snr_db": 1.0, "soft": "yes"}, "soft"),
        ("fading", {"snr_db": float("inf")}, "snr_db"),
        ("fading", {"snr_db": 1.0, "block_bits": 0}, "block_bits"),
        ("burst", {"p_gb": 1.5, "p_bg": 0.1}, "p_gb"),
        ("burst", {"p_gb": 0.1, "p_bg": -0.1}, "p_bg"),
        ("burst", {"p_gb": 0.1, "p_bg": 0.1, "p_bad": 0.9}, "p_bad"),
        ("burst", {"p_gb": 0.1, "p_bg": 0.1, "p_good": -0.1}, "p_good"),
        ("burst", {"p_gb": 0.0, "p_bg": 0.0}, "p_gb"),
        ("burst", {"p": 0.6, "burst_length": 5}, "p"),
        ("burst", {"p": 0.01, "burst_length": 0.5}, "burst_length"),
        ("burst", {"p": 0.49, "burst_length": 1.0}, "p_gb"),
    ],
)
def test_out_of_range_parameters(name, params, pname):
    with pytest.raises(ValueError, match=pname):
        get_channel(name, **params)


def test_error_message_names_range():
    with pytest.raises(ValueError, match=r"^p must be in \[0, 0\.5\] for bsc, got 0\.7$"):
        BinarySymmetric(0.7)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\] for erasure"):
        BinaryErasure(1.1)


# ------------------------------------------------------------ inputs


@pytest.mark.parametrize("ch", CHANNELS, ids=repr)
def test_bad_bit_inputs_rejected(ch):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        ch(np.zeros((2, 3), np.uint8), rng)
    with pytest.raises(ValueError):
        ch(np.array([0, 1, 2], np.uint8), rng)
    with pytest.raises(ValueError):
        ch(np.array([0, -1, 1]), rng)
    with pytest.raises(ValueError):
        ch(np.array([0.5, 1.0]), rng)


def test_other_bit_dtypes_accepted():
    ch = BinarySymmetric(0.0)
    for b in ([0, 1, 1], np.array([0, 1, 1], np.int64), np.array([False, True, True])):
        rx = ch(b, np.random.default_rng(0))
        assert rx.hard.tolist() == [0, 1, 1]


@pytest.mark.parametrize("ch", CHANNELS, ids=repr)
def test_input_not_modified_and_no_global_rng(ch):
    bits = random_bits(1000)
    before = bits.copy()
    np.random.seed(7)
    state = np.random.get_state()
    ch(bits, np.random.default_rng(1))
    after = np.random.get_state()
    assert np.array_equal(bits, before)
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


# ------------------------------------------------------------ properties


@pytest.mark.parametrize("ch", CHANNELS, ids=repr)
@HYP
@given(bits=hnp.arrays(np.uint8, st.integers(0, 300), elements=st.integers(0, 1)), seed=st.integers(0, 2**32 - 1))
def test_output_shapes_dtypes_values(ch, bits, seed):
    rx = ch(bits, np.random.default_rng(seed))
    n = bits.shape[0]
    assert isinstance(rx, Received)
    assert rx.hard.dtype == np.int8 and rx.hard.shape == (n,)
    erased = rx.hard == -1
    if type(ch).name in ERASURE_KINDS:
        assert set(np.unique(rx.hard)) <= {-1, 0, 1}
        # unerased bits are delivered correctly
        assert np.array_equal(rx.hard[~erased], bits[~erased].astype(np.int8))
    else:
        assert set(np.unique(rx.hard)) <= {0, 1}
    soft = getattr(ch, "soft", True)
    if not soft:
        assert rx.llr is None
        return
    assert rx.llr is not None
    assert rx.llr.dtype == np.float32 and rx.llr.shape == (n,)
    assert np.all(np.isfinite(rx.llr))
    assert np.all(rx.llr[erased] == 0)
    assert np.all(rx.llr[rx.hard == 1] < 0)
    assert np.all(rx.llr[rx.hard == 0] >= 0)


bits_strategy = hnp.arrays(np.uint8, st.integers(0, 500), elements=st.integers(0, 1))


@HYP
@given(bits=bits_strategy, seed=st.integers(0, 2**32 - 1))
def test_zero_probability_leaves_bits_untouched(bits, seed):
    for ch in (
        BinarySymmetric(0.0),
        BinaryErasure(0.0),
        PacketErasure(0.0, 3),
        GilbertElliott.from_rate(0.0, 5.0),
        GilbertElliott(p_gb=0.3, p_bg=0.3, p_good=0.0, p_bad=0.0),
    ):
        rx = ch(bits, np.random.default_rng(seed))
        assert np.array_equal(rx.hard, bits.astype(np.int8)), ch
        assert np.all(np.abs(rx.llr) == channels.LLR_CLIP)


@HYP
@given(bits=bits_strategy, seed=st.integers(0, 2**32 - 1), k=st.integers(1, 20))
def test_probability_one_erases_everything(bits, seed, k):
    for ch in (BinaryErasure(1.0), PacketErasure(1.0, k)):
        rx = ch(bits, np.random.default_rng(seed))
        assert np.all(rx.hard == -1)
        assert np.all(rx.llr == 0)


def test_bsc_half_gives_zero_llr():
    rx = BinarySymmetric(0.5)(random_bits(100), np.random.default_rng(0))
    assert np.all(rx.llr == 0)


def test_bsc_llr_magnitude():
    p = 0.03
    rx = BinarySymmetric(p)(random_bits(1000), np.random.default_rng(0))
    np.testing.assert_allclose(np.abs(rx.llr), math.log((1 - p) / p), rtol=1e-6)
    assert np.all((rx.llr > 0) == (rx.hard == 0))


# ------------------------------------------------------------ determinism


@pytest.mark.parametrize("ch", CHANNELS, ids=repr)
def test_determinism(ch):
    bits = random_bits(2000)
    a = ch(bits, np.random.default_rng(42))
    b = ch(bits, np.random.default_rng(42))
    c = ch(bits, np.random.default_rng(43))
    assert np.array_equal(a.hard, b.hard)
    if a.llr is None:
        assert b.llr is None
    else:
        assert np.array_equal(a.llr, b.llr)
        assert not np.array_equal(a.llr, c.llr)
    assert not np.array_equal(a.hard, c.hard)
    # an integer seed is accepted and equals default_rng(seed)
    d = ch(bits, 42)
    assert np.array_equal(a.hard, d.hard)


# ------------------------------------------------------------ statistics: BSC / erasure


@pytest.mark.parametrize("p", [1e-3, 0.01, 0.049, 0.05, 0.2, 0.5])
def test_bsc_flip_rate(p):
    n = 1_000_000
    bits = random_bits(n)
    rx = BinarySymmetric(p)(bits, np.random.default_rng(1))
    rate = np.mean(rx.hard != bits)
    assert_close(rate, p, math.sqrt(p * (1 - p) / n))


@pytest.mark.parametrize("p", [1e-3, 0.3, 1 - 1e-3])
def test_bernoulli_mask_rate(p):
    n = 1_000_000
    m = bernoulli_mask(n, p, np.random.default_rng(2))
    assert_close(m.mean(), p, math.sqrt(p * (1 - p) / n))


def test_bsc_flips_independent_of_position():
    # lag-1 correlation of flips is zero for a memoryless channel
    n, p = 1_000_000, 0.2
    bits = np.zeros(n, np.uint8)
    e = BinarySymmetric(p)(bits, np.random.default_rng(3)).hard.astype(float)
    m = n - 1
    both = np.mean(e[1:] * e[:-1])
    # products e_i e_(i+1) are Bernoulli(p^2); neighbours share a factor:
    # Var(sum) = m p^2 (1 - p^2) + 2 (m - 1) (p^3 - p^4)
    var_sum = m * p**2 * (1 - p**2) + 2 * (m - 1) * (p**3 - p**4)
    assert_close(both, p * p, math.sqrt(var_sum) / m)


@pytest.mark.parametrize("p", [0.01, 0.3])
def test_erasure_rate(p):
    n = 1_000_000
    bits = random_bits(n)
    rx = BinaryErasure(p)(bits, np.random.default_rng(4))
    erased = rx.hard == -1
    assert_close(erased.mean(), p, math.sqrt(p * (1 - p) / n))
    assert np.all(rx.llr[erased] == 0)
    assert np.all(rx.llr[~erased] == np.where(bits[~erased] == 0, 30.0, -30.0))


@pytest.mark.parametrize("p, k", [(0.05, 8), (0.4, 3), (0.2, 1)])
def test_packet_erasure_rate_and_whole_packets(p, k):
    n = 300_001  # last packet short unless k divides n
    bits = random_bits(n)
    rx = PacketErasure(p, k)(bits, np.random.default_rng(5))
    erased = rx.hard == -1
    n_packets = -(-n // k)
    padded = np.concatenate([erased, np.repeat(erased[-1:], n_packets * k - n)]).reshape(n_packets, k)
    lost = padded.all(axis=1)
    assert np.array_equal(padded.any(axis=1), lost), "erasures must cover whole packets"
    assert_close(lost.mean(), p, math.sqrt(p * (1 - p) / n_packets))


# ------------------------------------------------------------ statistics: AWGN


@pytest.mark.parametrize("snr_db", [0.0, 2.0, 4.0, 6.0, 8.0])
def test_awgn_hard_ber(snr_db):
    n = 2_000_000
    bits = random_bits(n)
    ch = AWGN(snr_db)
    rx = ch(bits, np.random.default_rng(6))
    q = Q(math.sqrt(2 * 10 ** (snr_db / 10)))
    assert ch.crossover_probability == pytest.approx(q, rel=1e-12)
    ber = np.mean(rx.hard != bits)
    assert_close(ber, q, math.sqrt(q * (1 - q) / n))


@pytest.mark.parametrize("snr_db", [-3.0, 0.0, 4.0])
def test_awgn_llr_consistency(snr_db):
    # LLR given the bit, sign-corrected, is N(mu, 2 mu), mu = 4 Es/N0
    n = 1_000_000
    bits = random_bits(n)
    rx = AWGN(snr_db)(bits, np.random.default_rng(7))
    lam = rx.llr.astype(np.float64) * (1.0 - 2.0 * bits)
    mu = 4 * 10 ** (snr_db / 10)
    var = 2 * mu
    assert_close(lam.mean(), mu, math.sqrt(var / n))
    assert_close(lam.var(ddof=1), var, var * math.sqrt(2.0 / (n - 1)))


def test_awgn_hard_view_matches_soft():
    bits = random_bits(10_000)
    soft = AWGN(1.0)(bits, np.random.default_rng(8))
    hard = AWGN(1.0, soft=False)(bits, np.random.default_rng(8))
    assert hard.llr is None
    assert np.array_equal(soft.hard, hard.hard)
    assert np.array_equal(soft.hard, (soft.llr < 0).astype(np.int8))


def test_awgn_capacity_matches_monte_carlo_of_its_llrs():
    # C = 1 - E[log2(1 + exp(-L))] with L the sign-corrected channel LLR
    n = 400_000
    bits = random_bits(n)
    snr_db = 2.0
    rx = AWGN(snr_db)(bits, np.random.default_rng(9))
    lam = rx.llr.astype(np.float64) * (1.0 - 2.0 * bits)
    loss = np.logaddexp(0.0, -lam) / math.log(2.0)
    assert_close(1.0 - loss.mean(), AWGN(snr_db).capacity(), loss.std(ddof=1) / math.sqrt(n))


def test_ebn0_conversions():
    assert ebn0_to_esn0_db(3.0, 0.5) == pytest.approx(3.0 - 10 * math.log10(2))
    assert esn0_to_ebn0_db(ebn0_to_esn0_db(1.7, 0.3), 0.3) == pytest.approx(1.7)
    assert ebn0_to_esn0_db(2.0, 1.0) == 2.0
    np.testing.assert_allclose(esn0_to_ebn0_db(np.array([0.0, 1.0]), 0.5), [3.0103, 4.0103], atol=1e-4)
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            ebn0_to_esn0_db(1.0, bad)


# ------------------------------------------------------------ statistics: fading


def test_fading_ber_per_bit_fades():
    n = 1_000_000
    snr_db = 5.0
    bits = random_bits(n)
    ch = RayleighBlockFading(snr_db, block_bits=1)
    rx = ch(bits, np.random.default_rng(10))
    g = 10 ** (snr_db / 10)
    q = 0.5 * (1 - math.sqrt(g / (1 + g)))
    assert ch.crossover_probability == pytest.approx(q)
    assert_close(np.mean(rx.hard != bits), q, math.sqrt(q * (1 - q) / n))


def test_fading_blocks_and_llr_given_fade():
    k, n_blocks = 16, 40_000
    n = k * n_blocks - 5  # short last block
    snr_db = 2.0
    bits = random_bits(n)
    ch = RayleighBlockFading(snr_db, block_bits=k)
    rx = ch(bits, np.random.default_rng(11))
    a = ch.fades(n, np.random.default_rng(11)).astype(np.float64)  # same draws
    pad = np.concatenate([a, np.repeat(a[-1:], 5)]).reshape(n_blocks, k)
    assert np.all(pad == pad[:, :1]), "fade must be constant over a block"
    g = pad[:, 0] ** 2  # Exp(1): mean 1, variance 1
    assert_close(g.mean(), 1.0, 1.0 / math.sqrt(n_blocks))
    # given a, the sign-corrected LLR is N(4 a^2 snr, 8 a^2 snr)
    snr = 10 ** (snr_db / 10)
    lam = rx.llr.astype(np.float64) * (1.0 - 2.0 * bits)
    zs = (lam - 4 * a**2 * snr) / np.sqrt(8 * a**2 * snr)
    assert_close(zs.mean(), 0.0, 1.0 / math.sqrt(n))
    assert_close(zs.var(ddof=1), 1.0, math.sqrt(2.0 / (n - 1)))


# ------------------------------------------------------------ statistics: Gilbert-Elliott


def test_gilbert_elliott_from_rate_parameters():
    ch = GilbertElliott.from_rate(0.01, 10.0)
    assert ch.p == pytest.approx(0.01)
    assert ch.burst_length == pytest.approx(10.0)
    assert ch.p_bg == pytest.approx(0.1)
    assert ch.pi_bad == pytest.approx(0.02)
    ch2 = GilbertElliott.from_rate(0.02, 3.0, p_good=0.001, p_bad=0.3)
    assert ch2.p == pytest.approx(0.02)
    assert ch2.burst_length == pytest.approx(3.0)


def _runs(states: np.ndarray, value: int) -> np.ndarray:
    """Lengths of maximal runs of ``value``, excluding a run cut by the end."""
    s = np.concatenate([[1 - value], states, [1 - value]]).astype(np.int8)
    d = np.diff((s == value).astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    lengths = ends - starts
    if states.size and states[-1] == value:
        lengths = lengths[:-1]
    return lengths


@pytest.mark.parametrize("p, L, p_good, p_bad", [(0.01, 10.0, 0.0, 0.5), (0.03, 4.0, 0.005, 0.4)])
def test_gilbert_elliott_statistics(p, L, p_good, p_bad):
    n = 2_000_000
    ch = GilbertElliott.from_rate(p, L, p_good=p_good, p_bad=p_bad)
    pi_b = ch.pi_bad
    pi_g = 1 - pi_b
    lam = 1 - ch.p_gb - ch.p_bg  # second eigenvalue of the chain
    assert 0 < lam < 1

    bits = random_bits(n)
    rx = ch(bits, np.random.default_rng(12))
    states, flips = ch.simulate(n, np.random.default_rng(12))  # same realisation
    errors = rx.hard != bits
    assert np.array_equal(errors, flips.astype(bool))
    assert np.array_equal(states, ch.simulate_states(n, np.random.default_rng(12)))

    # stationary fraction of bad states; Var(sum) <= n pi_g pi_b (1+lam)/(1-lam)
    se_state = math.sqrt(pi_g * pi_b * (1 + lam) / (1 - lam) / n)
    assert_close(states.mean(), pi_b, se_state)

    # average error rate; flips are correlated through the state:
    # Var(sum) <= n [p(1-p) + 2 (p_bad-p_good)^2 pi_g pi_b lam/(1-lam)]
    delta = p_bad - p_good
    var1 = p * (1 - p) + 2 * delta**2 * pi_g * pi_b * lam / (1 - lam)
    assert_close(errors.mean(), p, math.sqrt(var1 / n))

    # given the states, flips are independent Bernoulli(p_state)
    bad = states == 1
    nb, ng = bad.sum(), (~bad).sum()
    assert_close(errors[bad].mean(), p_bad, math.sqrt(p_bad * (1 - p_bad) / nb))
    if p_good > 0:
        assert_close(errors[~bad].mean(), p_good, math.sqrt(p_good * (1 - p_good) / ng))
    else:
        assert not errors[~bad].any()

    # bad-state sojourns are Geometric(p_bg): mean 1/p_bg, var (1-p_bg)/p_bg^2
    runs = _runs(states, 1)
    q = ch.p_bg
    assert runs.size > 1000
    assert_close(runs.mean(), 1 / q, math.sqrt((1 - q) / q**2 / runs.size))
    # good-state sojourns likewise with p_gb
    runs_g = _runs(states, 0)
    r = ch.p_gb
    assert_close(runs_g.mean(), 1 / r, math.sqrt((1 - r) / r**2 / runs_g.size))


unit = st.floats(0.0, 1.0, exclude_max=True, allow_nan=False)
prob = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))


@settings(max_examples=examples(150), deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 120),
    pi_bad=prob,
    p_gb=prob,
    p_bg=prob,
    p_good=prob,
    p_bad=prob,
)
def test_ge_kernel_matches_reference(data, n, pi_bad, p_gb, p_bg, p_good, p_bad):
    # uniforms drawn partly from the thresholds themselves to exercise ties
    elem = st.one_of(unit, st.sampled_from([t for t in (pi_bad, p_gb, p_bg, p_good, p_bad) if t < 1.0] or [0.0]))
    u_state = np.array(data.draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.float64)
    u_flip = np.array(data.draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.float64)
    s1, f1 = ge_kernel(u_state, u_flip, pi_bad, p_gb, p_bg, p_good, p_bad)
    s2, f2 = ge_reference(u_state, u_flip, pi_bad, p_gb, p_bg, p_good, p_bad)
    assert s1.dtype == s2.dtype == np.uint8 and f1.dtype == f2.dtype == np.uint8
    assert np.array_equal(s1, s2)
    assert np.array_equal(f1, f2)


def test_ge_kernel_matches_reference_long_random():
    rng = np.random.default_rng(13)
    u, v = rng.random(20_000), rng.random(20_000)
    args = (0.3, 0.05, 0.2, 0.01, 0.45)
    s1, f1 = ge_kernel(u, v, *args)
    s2, f2 = ge_reference(u, v, *args)
    assert np.array_equal(s1, s2) and np.array_equal(f1, f2)


# ------------------------------------------------------------ capacity


def test_capacity_known_values():
    # BI-AWGN at Es/sigma^2 = 1 (Es/N0 = -3.01 dB): 0.486 bit
    assert cap.biawgn_capacity(-10 * math.log10(2)) == pytest.approx(0.486, abs=0.002)
    # Es/N0 = 0 dB (sigma^2 = N0/2 = 0.5): 0.7215 bit
    assert AWGN(0.0).capacity() == pytest.approx(0.7215, abs=0.002)
    # BPSK Shannon limit: rate 1/2 needs Eb/N0 = 0.187 dB
    assert cap.biawgn_capacity(ebn0_to_esn0_db(0.187, 0.5)) == pytest.approx(0.5, abs=0.002)
    assert BinarySymmetric(0.11).capacity() == pytest.approx(0.5, abs=0.001)
    assert BinarySymmetric(0.0).capacity() == 1.0
    assert BinarySymmetric(0.5).capacity() == pytest.approx(0.0, abs=1e-12)
    assert BinaryErasure(0.3).capacity() == pytest.approx(0.7)
    assert PacketErasure(0.25, 8).capacity() == pytest.approx(0.75)
    ge = GilbertElliott.from_rate(0.11, 5.0)
    assert ge.capacity() == pytest.approx(0.5, abs=0.001)


def test_capacity_awgn_and_fading_shapes():
    snrs = [-10.0, -3.0, 0.0, 3.0, 6.0, 10.0]
    c_awgn = [AWGN(s).capacity() for s in snrs]
    c_fade = [RayleighBlockFading(s).capacity() for s in snrs]
    assert all(0 < c < 1 for c in c_fade)
    assert np.all(np.diff(c_awgn) > 0) and np.all(np.diff(c_fade) > 0)
    assert all(f < a for f, a in zip(c_fade, c_awgn))
    assert RayleighBlockFading(30.0).capacity() > 0.99
    assert AWGN(20.0).capacity() == pytest.approx(1.0, abs=1e-9)
    # hard decisions lose information
    for s in (-3.0, 0.0, 3.0):
        assert AWGN(s, soft=False).capacity() < AWGN(s).capacity()
        assert AWGN(s, soft=False).capacity() == pytest.approx(cap.bsc_capacity(cap.bpsk_hard_crossover(s)))
        assert RayleighBlockFading(s, soft=False).capacity() < RayleighBlockFading(s).capacity()
