"""Tests for vqcodec.fec: convolutional codes, Viterbi, repetition, CRC-32."""

import dataclasses
import itertools
import zlib

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from vqcodec import fec

RATES = ["1/2", "2/3", "3/4", "1/3", "1/4"]
DFREE = {"1/2": 10, "2/3": 6, "3/4": 5, "1/3": 15, "1/4": 20}
HYP = settings(max_examples=60, deadline=None)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _shift_register_encode(bits, generators, K):
    """Independent bit-by-bit encoder (MSB of generator = current input)."""
    reg = [0] * K  # reg[0] = current input, reg[d] = input d steps ago
    out = []
    for u in list(bits) + [0] * (K - 1):
        reg = [int(u)] + reg[:-1]
        for g in generators:
            taps = [(g >> (K - 1 - d)) & 1 for d in range(K)]
            out.append(sum(t * r for t, r in zip(taps, reg)) % 2)
    return np.array(out, np.uint8)


def _flip(coded, positions):
    hard = coded.astype(np.int8).copy()
    hard[list(positions)] ^= 1
    return hard


# ---------------------------------------------------------------------------
# Registry and object
# ---------------------------------------------------------------------------


def test_registry_and_rates():
    assert list(fec.CODES) == RATES
    for name in RATES:
        code = fec.get_code(name)
        assert code.name == name
        num, den = map(int, name.split("/"))
        assert code.rate == pytest.approx(num / den)
        assert code.K == 7
    assert fec.get_code("1/2").generators == (0o133, 0o171)
    assert fec.get_code("1/3").generators == (0o133, 0o171, 0o165)
    assert fec.get_code("1/4").generators == (0o133, 0o171, 0o165, 0o117)
    assert fec.get_code("2/3").puncture == ((1, 1), (1, 0))
    assert fec.get_code("3/4").puncture == ((1, 1, 0), (1, 0, 1))


def test_get_code_unknown_lists_names():
    with pytest.raises(ValueError) as e:
        fec.get_code("5/6")
    for name in RATES:
        assert name in str(e.value)


def test_convcode_is_frozen_and_hashable():
    code = fec.get_code("1/2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.K = 5
    assert hash(code) == hash(fec.ConvCode((0o133, 0o171), 7, None, "1/2"))
    assert fec.ConvCode([0o133, 0o171]) == code  # lists normalised to tuples


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(generators=(0o133,), K=7),  # rate 1
        dict(generators=(0o133, 0o171), K=8),  # too many states
        dict(generators=(0o132, 0o171), K=7),  # does not tap the oldest input
        dict(generators=(0o033, 0o171), K=7),  # does not tap the current input
        dict(generators=(0o133, 0o171), K=7, puncture=((1, 0), (1,))),
        dict(generators=(0o133, 0o171), K=7, puncture=((1, 0), (1, 0))),  # column kept nothing
        dict(generators=(0o133, 0o171), K=7, puncture=((1, 2), (1, 0))),
    ],
)
def test_convcode_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        fec.ConvCode(**kwargs)


# ---------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------


def test_impulse_response_msb_taps_current_input():
    # 133 = 1011011, 171 = 1111001: MSB first is the response to a single 1.
    coded = fec.get_code("1/2").encode(np.array([1], np.uint8))
    assert coded.dtype == np.uint8
    np.testing.assert_array_equal(coded[0::2], [1, 0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(coded[1::2], [1, 1, 1, 1, 0, 0, 1])


@HYP
@given(st.lists(st.integers(0, 1), max_size=40), st.sampled_from(["1/2", "1/3", "1/4"]))
def test_encoder_matches_shift_register(bits, name):
    code = fec.get_code(name)
    bits = np.array(bits, np.uint8)
    np.testing.assert_array_equal(
        code.encode(bits), _shift_register_encode(bits, code.generators, code.K)
    )


def test_puncturing_patterns_80211a():
    rng = _rng(1)
    bits = rng.integers(0, 2, 30, dtype=np.uint8)  # 36 steps: multiple of 2 and 3
    mother = fec.get_code("1/2").encode(bits).reshape(-1, 2)
    A, B = mother[:, 0], mother[:, 1]
    # 2/3: A1 B1 A2 | A3 B3 A4 | ...
    want23 = np.stack([A[0::2], B[0::2], A[1::2]], axis=1).reshape(-1)
    np.testing.assert_array_equal(fec.get_code("2/3").encode(bits), want23)
    # 3/4: A1 B1 A2 B3 | A4 B4 A5 B6 | ...
    want34 = np.stack([A[0::3], B[0::3], A[1::3], B[2::3]], axis=1).reshape(-1)
    np.testing.assert_array_equal(fec.get_code("3/4").encode(bits), want34)


@pytest.mark.parametrize("name", RATES)
@pytest.mark.parametrize("n_info", [0, 1, 2, 3, 5, 10, 31, 100, 1001])
def test_coded_length(name, n_info):
    code = fec.get_code(name)
    steps = n_info + 6
    expected = {
        "1/2": 2 * steps,
        "1/3": 3 * steps,
        "1/4": 4 * steps,
        "2/3": 3 * (steps // 2) + 2 * (steps % 2),
        "3/4": 4 * (steps // 3) + [0, 2, 3][steps % 3],
    }[name]
    assert code.coded_length(n_info) == expected
    assert code.encode(np.zeros(n_info, np.uint8)).size == expected
    assert code.info_length(expected) == n_info


def test_nominal_rate_is_asymptotic_rate():
    for name in RATES:
        code = fec.get_code(name)
        n = 60000
        assert n / code.coded_length(n) == pytest.approx(code.rate, rel=1e-3)


@pytest.mark.parametrize("name", RATES)
def test_invalid_lengths_rejected(name):
    code = fec.get_code(name)
    valid = {code.coded_length(n) for n in range(0, 40)}
    for n_coded in range(0, max(valid)):
        if n_coded not in valid:
            with pytest.raises(ValueError):
                code.decode(np.zeros(n_coded, np.float32))
    with pytest.raises(ValueError):
        code.encode(np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        code.decode(np.full(code.coded_length(4), np.nan, np.float32))


# ---------------------------------------------------------------------------
# Free distance
# ---------------------------------------------------------------------------


def _exhaustive_min_weight(code, span):
    """Min weight over all nonzero terminated messages of length <= span.

    Enumerates every message that starts with a 1 (all input weights), at
    every puncturing phase (leading zeros), and encodes them all at once via
    the generator matrix of the (punctured) block code.
    """
    period = 1 if code.puncture is None else len(code.puncture[0])
    best = 10**9
    msgs = np.array(list(itertools.product([0, 1], repeat=span - 1)), np.uint8)
    msgs = np.concatenate([np.ones((len(msgs), 1), np.uint8), msgs], axis=1)
    for phase in range(period):
        n = phase + span
        # rows: codewords of unit messages (linear code)
        G = np.stack([code.encode(np.eye(n, dtype=np.uint8)[i]) for i in range(phase, n)])
        cw = (msgs.astype(np.int64) @ G.astype(np.int64)) % 2
        best = min(best, int(cw.sum(axis=1).min()))
    return best


@pytest.mark.parametrize("name", RATES)
def test_free_distance_exact_and_exhaustive(name):
    code = fec.get_code(name)
    assert code.free_distance() == DFREE[name]
    # exhaustive search over all inputs spanning up to 12 steps agrees
    assert _exhaustive_min_weight(code, 12) == DFREE[name]


def test_rate_quarter_code_meets_heller_bound():
    code = fec.get_code("1/4")
    m, n = code.K - 1, code.n
    heller = min(int(2 ** (j - 1) / (2**j - 1) * (m + j) * n) for j in range(1, 20))
    assert heller == 20
    assert code.free_distance() == heller


# ---------------------------------------------------------------------------
# Decoding: clean channel and error correction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RATES)
@pytest.mark.parametrize("n_info", [0, 1, 7, 64, 1000])
def test_clean_roundtrip_all_input_kinds(name, n_info):
    code = fec.get_code(name)
    bits = _rng(n_info).integers(0, 2, n_info, dtype=np.uint8)
    coded = code.encode(bits)
    for received in (
        coded,  # uint8 hard
        coded.astype(np.int8),  # int8 hard
        (1.0 - 2.0 * coded).astype(np.float32) * 3.5,  # LLRs
        (1.0 - 2.0 * coded),  # float64 LLRs are accepted too
    ):
        out = code.decode(received)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, bits)


def test_all_weight_le4_patterns_corrected_short_message():
    """dfree = 10: every pattern of <= 4 errors is corrected (exhaustive, 8-bit message)."""
    code = fec.get_code("1/2")
    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0], np.uint8)
    coded = code.encode(bits)
    n = coded.size  # 28
    count = 0
    for w in range(1, 5):
        for pos in itertools.combinations(range(n), w):
            out = code.decode(_flip(coded, pos))
            assert np.array_equal(out, bits), pos
            count += 1
    assert count == sum(len(list(itertools.combinations(range(n), w))) for w in range(1, 5))


def test_weight_1_and_2_exhaustive_20bit_message():
    code = fec.get_code("1/2")
    bits = _rng(3).integers(0, 2, 20, dtype=np.uint8)
    coded = code.encode(bits)
    for w in (1, 2):
        for pos in itertools.combinations(range(coded.size), w):
            assert np.array_equal(code.decode(_flip(coded, pos)), bits), pos


@pytest.mark.parametrize("name", RATES)
def test_random_correctable_patterns(name):
    """Random patterns of t errors and e erasures with 2t + e < dfree are corrected."""
    code = fec.get_code(name)
    d = DFREE[name]
    rng = _rng(7)
    bits = rng.integers(0, 2, 64, dtype=np.uint8)
    coded = code.encode(bits)
    for trial in range(300):
        t = (d - 1) // 2 if trial % 2 == 0 else int(rng.integers(0, (d - 1) // 2 + 1))
        e = int(rng.integers(0, d - 2 * t))  # 2t + e <= d - 1
        pos = rng.choice(coded.size, t + e, replace=False)
        hard = coded.astype(np.int8).copy()
        hard[pos[:t]] ^= 1
        hard[pos[t:]] = -1
        np.testing.assert_array_equal(code.decode(hard), bits)


@pytest.mark.parametrize("name", ["2/3", "3/4"])
def test_punctured_all_weight_le2_patterns_corrected(name):
    code = fec.get_code(name)
    bits = _rng(11).integers(0, 2, 12, dtype=np.uint8)
    coded = code.encode(bits)
    for w in (1, 2):
        for pos in itertools.combinations(range(coded.size), w):
            assert np.array_equal(code.decode(_flip(coded, pos)), bits), pos


def test_soft_decoding_beats_hard_on_awgn():
    code = fec.get_code("1/2")
    rng = _rng(2024)
    bits = rng.integers(0, 2, 20000, dtype=np.uint8)
    coded = code.encode(bits)
    ebn0_db = 3.0
    es_n0 = 10 ** (ebn0_db / 10) * code.rate
    sigma = np.sqrt(1 / (2 * es_n0))
    y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.size)
    llr = (2 * y / sigma**2).astype(np.float32)
    ber_soft = np.mean(code.decode(llr) != bits)
    ber_hard = np.mean(code.decode((y < 0).astype(np.int8)) != bits)
    ber_raw = np.mean((y < 0) != coded)
    assert ber_soft < 2e-3
    assert ber_hard > 5 * ber_soft
    assert ber_hard < ber_raw


def test_all_zero_llrs_decode_to_zeros():
    for name in RATES:
        code = fec.get_code(name)
        n = code.coded_length(50)
        np.testing.assert_array_equal(code.decode(np.zeros(n, np.float32)), np.zeros(50))
        np.testing.assert_array_equal(code.decode(np.full(n, -1, np.int8)), np.zeros(50))


# ---------------------------------------------------------------------------
# Viterbi kernel == numpy reference
# ---------------------------------------------------------------------------

_GENS = [
    ((0o133, 0o171), 7),
    ((0o133, 0o171, 0o165), 7),
    ((0o133, 0o171, 0o165, 0o117), 7),
    ((0o5, 0o7), 3),
    ((0o23, 0o35), 5),
]

# Few distinct values -> many exact ties in the path metrics.
_llr_values = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0]),
    st.floats(-30, 30, width=32, allow_nan=False),
)


@settings(max_examples=examples(60), deadline=None)
@given(st.data(), st.sampled_from(_GENS), st.integers(1, 60))
def test_viterbi_kernel_matches_reference(data, gk, n_steps):
    gens, K = gk
    flat = data.draw(st.lists(_llr_values, min_size=n_steps * len(gens), max_size=n_steps * len(gens)))
    llr = np.array(flat, np.float32).reshape(n_steps, len(gens))
    a = fec.viterbi_decode(llr, gens, K)
    b = fec.viterbi_decode_reference(llr, gens, K)
    assert a.dtype == b.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


@settings(max_examples=examples(60), deadline=None)
@given(st.data(), st.sampled_from(RATES), st.integers(0, 40))
def test_decode_matches_reference_hard_with_erasures(data, name, n_info):
    code = fec.get_code(name)
    n = code.coded_length(n_info)
    hard = np.array(data.draw(st.lists(st.sampled_from([0, 1, -1]), min_size=n, max_size=n)), np.int8)
    np.testing.assert_array_equal(code.decode(hard), code.decode_reference(hard))


@pytest.mark.parametrize("name", RATES)
def test_decode_matches_reference_noisy(name):
    code = fec.get_code(name)
    rng = _rng(5)
    for _ in range(5):
        bits = rng.integers(0, 2, 300, dtype=np.uint8)
        c = code.encode(bits)
        llr = ((1.0 - 2.0 * c) * 2.0 + 2.5 * rng.standard_normal(c.size)).astype(np.float32)
        llr[rng.random(c.size) < 0.1] = 0.0  # erasures
        np.testing.assert_array_equal(code.decode(llr), code.decode_reference(llr))
    zeros = np.zeros(code.coded_length(30), np.float32)
    np.testing.assert_array_equal(code.decode(zeros), code.decode_reference(zeros))


def test_long_block_metric_normalisation():
    """1e5 steps of large LLRs: float32 metrics stay bounded, decoding exact."""
    code = fec.get_code("1/2")
    bits = _rng(9).integers(0, 2, 100_000, dtype=np.uint8)
    llr = (1.0 - 2.0 * code.encode(bits)).astype(np.float32) * 1000.0
    np.testing.assert_array_equal(code.decode(llr), bits)


# ---------------------------------------------------------------------------
# Repetition code
# ---------------------------------------------------------------------------


def test_repetition_encode_and_lengths():
    rep = fec.RepetitionCode(3)
    np.testing.assert_array_equal(rep.encode(np.array([1, 0], np.uint8)), [1, 1, 1, 0, 0, 0])
    assert rep.coded_length(5) == 15
    assert rep.rate == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        fec.RepetitionCode(0)
    with pytest.raises(ValueError):
        rep.decode(np.zeros(4, np.int8))


def test_repetition_hard_majority_with_erasures_and_ties():
    rep = fec.RepetitionCode(4)
    hard = np.array(
        [1, 1, 0, -1,  # 2 ones, 1 zero -> 1
         1, 0, -1, -1,  # tie -> 0
         -1, -1, -1, -1,  # all erased -> 0
         -1, -1, -1, 1,  # single survivor -> 1
         0, 0, 1, 1],  # tie -> 0
        np.int8,
    )
    np.testing.assert_array_equal(rep.decode(hard), [1, 0, 0, 1, 0])


def test_repetition_soft_sums_llrs():
    rep = fec.RepetitionCode(3)
    llr = np.array([5.0, -1.0, -1.0, -5.0, 1.0, 1.0, 1.0, -0.5, -0.5, 0, 0, 0], np.float32)
    np.testing.assert_array_equal(rep.decode(llr), [0, 1, 0, 0])


@HYP
@given(st.lists(st.integers(0, 1), max_size=50), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_repetition_corrects_minority_errors(bits, n, seed):
    rep = fec.RepetitionCode(n)
    bits = np.array(bits, np.uint8)
    hard = rep.encode(bits).astype(np.int8).reshape(-1, n)
    rng = _rng(seed)
    for row in hard:
        row[rng.choice(n, (n - 1) // 2, replace=False)] ^= 1
    np.testing.assert_array_equal(rep.decode(hard.reshape(-1)), bits)


# ---------------------------------------------------------------------------
# CRC-32
# ---------------------------------------------------------------------------


@HYP
@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc_kernel_matches_zlib(data, init):
    arr = np.frombuffer(data, np.uint8)
    assert fec.crc32_bytes(arr) == zlib.crc32(data)
    assert fec.crc32_bytes(arr, init) == zlib.crc32(data, init)
    assert fec.crc32_bytes_reference(arr, init) == zlib.crc32(data, init)


@HYP
@given(st.integers(0, 50).flatmap(lambda k: st.lists(st.integers(0, 1), min_size=8 * k, max_size=8 * k)))
def test_crc32_bits_equals_zlib_of_packed_bytes(bits):
    bits = np.array(bits, np.uint8)
    assert fec.crc32_bits(bits) == zlib.crc32(np.packbits(bits).tobytes())


def test_crc_known_value():
    bits = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert fec.crc32_bits(bits) == 0xCBF43926


@pytest.mark.parametrize("n", [0, 1, 13, 64, 203])
def test_append_and_check_crc(n):
    bits = _rng(n).integers(0, 2, n, dtype=np.uint8)
    framed = fec.append_crc(bits)
    assert framed.dtype == np.uint8 and framed.size == n + 32
    np.testing.assert_array_equal(framed[:n], bits)
    assert fec.check_crc(framed)
    crc = int(np.packbits(framed[n:]).view(">u4")[0])
    assert crc == fec.crc32_bits(bits)


def test_crc_detects_all_single_bit_errors():
    rng = _rng(12)
    for n in (8, 100, 203, 512):
        framed = fec.append_crc(rng.integers(0, 2, n, dtype=np.uint8))
        for i in range(framed.size):
            bad = framed.copy()
            bad[i] ^= 1
            assert not fec.check_crc(bad), (n, i)


def test_crc_detects_burst_errors_up_to_32():
    rng = _rng(13)
    for n in (40, 203, 1000):
        framed = fec.append_crc(rng.integers(0, 2, n, dtype=np.uint8))
        for length in range(1, 33):  # every burst length, random positions and interiors
            for _ in range(60):
                start = int(rng.integers(0, framed.size - length + 1))
                err = rng.integers(0, 2, length, dtype=np.uint8)
                err[0] = err[-1] = 1
                bad = framed.copy()
                bad[start : start + length] ^= err
                assert not fec.check_crc(bad), (n, start, length)


def test_hard_to_llr_mapping_and_validation():
    llr = fec.hard_to_llr(np.array([0, 1, -1, 0], np.int8))
    assert llr.dtype == np.float32
    np.testing.assert_array_equal(llr, [1, -1, 0, 1])
    np.testing.assert_array_equal(fec.hard_to_llr(np.array([0, 1], np.uint8)), [1, -1])
    for bad in (np.array([0, 255]), np.array([0, 2], np.int8), np.array([-2, 0]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError):
            fec.hard_to_llr(bad)


@pytest.mark.parametrize("name", list(fec.CODES))
def test_bcjr_kernel_equals_reference_and_max_log_decides_as_viterbi(name):
    code = fec.get_code(name)
    rng = np.random.default_rng(7)
    u = rng.integers(0, 2, 300, dtype=np.uint8)
    c = code.encode(u)
    llr = ((1 - 2.0 * c) * 1.2 + rng.standard_normal(c.size) * 1.3).astype(np.float32)  # many errors
    for exact in (False, True):
        k = code.decode_llr(llr, exact=exact)
        r = code.decode_llr(llr, exact=exact, reference=True)
        np.testing.assert_allclose(k, r, rtol=1e-6, atol=1e-6)
    # max-log-MAP's bit decisions lie on the maximum-likelihood path, which Viterbi finds
    assert np.array_equal((code.decode_llr(llr) < 0).astype(np.uint8), code.decode(llr))
    # bitwise MAP minimises the bit error rate: no worse than Viterbi's sequence decisions on average
    u = rng.integers(0, 2, 5000, dtype=np.uint8)
    c = code.encode(u)
    llr = ((1 - 2.0 * c) * 2.0 + rng.standard_normal(c.size) * 2.0).astype(np.float32)
    exact = code.decode_llr(llr, exact=True)
    assert np.mean((exact < 0) != u) <= np.mean(code.decode(llr) != u) + 0.002


def test_bcjr_llrs_are_calibrated_and_signed_as_the_convention():
    code = fec.get_code("3/4")
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, 60000, dtype=np.uint8)
    c = code.encode(u)
    sigma = np.sqrt(1 / (2 * 10 ** 0.2))
    llr = (2 * ((1 - 2.0 * c) + sigma * rng.standard_normal(c.size)) / sigma ** 2).astype(np.float32)
    post = code.decode_llr(llr, exact=True).astype(np.float64)
    assert np.mean(post[u == 0] > 0) > 0.99 and np.mean(post[u == 1] < 0) > 0.99  # positive means 0
    wrong, mag = (post < 0) != u, np.abs(post)
    sel = mag < 3  # where errors happen: empirical rate within a factor 2 of 1 / (1 + e^|L|)
    assert 0.5 < wrong[sel].mean() / np.mean(1 / (1 + np.exp(mag[sel]))) < 2.0
    clean = code.decode_llr((1 - 2.0 * c).astype(np.float32) * 20)
    assert np.array_equal((clean < 0).astype(np.uint8), u) and np.all(np.abs(clean) > 20)


@pytest.mark.parametrize("code", [fec.ConvCode((0o7, 0o5), K=3), fec.get_code("3/4")], ids=["K3-7-5", "3/4"])
@pytest.mark.parametrize("reference", [False, True])
def test_bcjr_equals_brute_force_app_on_a_tiny_trellis(code, reference):
    """Every message of a short block enumerated: log-MAP (``exact``) gives the exact
    a-posteriori LLRs log sum_{u: u_t = 0} P(y | c(u)) / sum_{u: u_t = 1} P(y | c(u)), and
    max-log-MAP the same with each sum replaced by its largest term; the two differ."""
    n_info = 9 if code.K == 7 else 6
    msgs = ((np.arange(2 ** n_info)[:, None] >> np.arange(n_info)[::-1]) & 1).astype(np.uint8)
    words = np.stack([code.encode(m) for m in msgs]).astype(np.float64)  # (2^n, coded)
    rng = np.random.default_rng(3)
    c = words[rng.integers(len(msgs))]
    llr = ((1 - 2 * c) * 1.0 + 1.2 * rng.standard_normal(c.size)).astype(np.float32)  # noisy
    loglik = 0.5 * ((1 - 2 * words) @ llr.astype(np.float64))  # log P(y | c) + const, llr = log P(0)/P(1)
    for exact, red in ((True, np.logaddexp.reduce), (False, np.max)):
        want = np.array([red(loglik[msgs[:, t] == 0]) - red(loglik[msgs[:, t] == 1]) for t in range(n_info)])
        got = code.decode_llr(llr, exact=exact, reference=reference)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"exact={exact}")
    app = code.decode_llr(llr, exact=True, reference=reference)
    assert np.max(np.abs(app - code.decode_llr(llr, exact=False, reference=reference))) > 0.1
