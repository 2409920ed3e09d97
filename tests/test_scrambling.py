"""The 3GPP scrambler of the modulated channels: the sequence against Sionna's and a
bit-by-bit reference, exact descrambling, and what the channels do with it."""

from __future__ import annotations

import numpy as np
import pytest

from channels import AWGN, RayleighBlockFading
from channels.options import channel_spec
from channels.scrambling import _CACHE, C_INIT, descramble_hard, descramble_llr, gold_sequence, scramble


def reference_sequence(length: int, c_init: int) -> np.ndarray:
    """TS 38.211 §5.2.1 one bit at a time."""
    n = length + 1600
    x1 = [1] + [0] * 30
    x2 = [(c_init >> i) & 1 for i in range(31)]
    while len(x1) < n:
        k = len(x1) - 31
        x1.append((x1[k + 3] + x1[k]) % 2)
        x2.append((x2[k + 3] + x2[k + 2] + x2[k + 1] + x2[k]) % 2)
    return np.array([(x1[i + 1600] + x2[i + 1600]) % 2 for i in range(length)], np.uint8)


@pytest.mark.parametrize("c_init", [0, 1, C_INIT, 0x2A5F_1234, 2**31 - 1])
def test_sequence_matches_the_bitwise_reference_and_sionna(c_init):
    from sionna.phy.nr.utils import generate_prng_seq

    _CACHE.clear()
    short = gold_sequence(40, c_init).copy()  # the cache grows when a longer one is asked for
    seq = gold_sequence(70_000, c_init)
    assert np.array_equal(seq[:40], short)
    assert np.array_equal(seq[:3000], reference_sequence(3000, c_init))
    assert np.array_equal(seq, generate_prng_seq(70_000, c_init).astype(np.uint8))
    assert not seq.flags.writeable


def test_default_c_init_is_pdsch_with_rnti_1_and_id_1():
    assert C_INIT == 1 * 2**15 + 0 * 2**14 + 1


@pytest.mark.parametrize("bad", [-1, 2**31, 1.5, True])
def test_bad_arguments(bad):
    with pytest.raises(ValueError, match="c_init"):
        gold_sequence(10, bad)
    with pytest.raises(ValueError, match="length"):
        gold_sequence(bad if bad != 2**31 else -5)


def test_descrambling_is_exact():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 5000).astype(np.uint8)
    c = gold_sequence(5000)
    assert np.array_equal(scramble(bits), bits ^ c)
    assert np.array_equal(scramble(scramble(bits)), bits)
    hard = scramble(bits).view(np.int8).copy()
    hard[::7] = -1  # erasures stay erasures
    descramble_hard(hard)
    assert np.all(hard[::7] == -1)
    keep = np.ones(5000, bool)
    keep[::7] = False
    assert np.array_equal(hard[keep], bits[keep].view(np.int8))
    llr = rng.normal(size=5000).astype(np.float32)
    out = descramble_llr(llr.copy())
    assert np.array_equal(out, np.where(c == 1, -llr, llr))


@pytest.mark.parametrize("make", [lambda s: AWGN(6.0, modulation="qam16", scramble=s),
                                  lambda s: AWGN(6.0, modulation="qam16", scramble=s, soft=False),
                                  lambda s: RayleighBlockFading(6.0, modulation="qam64", block_bits=6, scramble=s),
                                  lambda s: AWGN(1.0, scramble=s)])
def test_channels_descramble_what_they_scramble(make):
    # all-zero bits: without descrambling the hard decisions would follow the sequence
    bits = np.zeros(30_000, np.uint8)
    for scrambled in (True, False):
        rx = make(scrambled)(bits, 3)
        assert np.mean(rx.hard != 0) < 0.35  # about 0.5 if the sequence were left in
        if rx.llr is not None:
            assert np.mean(rx.llr < 0) < 0.35
    plain = make(False)(bits, 3)
    scr = make(True)(bits, 3)
    assert not np.array_equal(plain.hard, scr.hard)  # the air saw other symbols


def test_spec_records_the_scrambler_both_ways():
    # an unscrambled file from before scrambling existed holds no "scramble": a resume refuses to mix them
    assert channel_spec("awgn").describe()["scramble"] is True
    spec = channel_spec("fading", modulation="qam16", scramble=False)
    assert spec.describe()["scramble"] is False and spec.make(3.0).scramble is False
    with pytest.raises(ValueError, match="scramble applies to the awgn and fading channels only") as err:
        channel_spec("bsc", scramble=False)
    assert getattr(err.value, "names", None) == ("scramble",)  # the CLI spells it --no-scramble
    with pytest.raises(ValueError, match="scramble must be True or False"):
        AWGN(1.0, scramble="no")


def test_threads_share_the_cache_safely(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import channels.scrambling as sc

    rng = np.random.default_rng(4)
    lengths = [int(n) for n in rng.integers(1, 300_000, 32)]
    want = {n: np.where(reference_sequence(n, C_INIT) == 1, -1.0, 1.0).astype(np.float32) for n in set(lengths[:4])}

    def one(n):
        return n, descramble_llr(np.ones(n, np.float32))

    for _ in range(3):
        sc._CACHE.clear()
        with ThreadPoolExecutor(8) as pool:
            for n, out in pool.map(one, lengths):
                assert out.shape == (n,)
                if n in want:
                    assert np.array_equal(out, want[n])
    monkeypatch.setattr(sc, "MAX_CACHED", 1 << 16)  # longer sequences are made per call, not kept
    sc._CACHE.clear()
    long = gold_sequence(200_000)
    assert long.shape == (200_000,) and not sc._CACHE
    assert np.array_equal(long[:5000], reference_sequence(5000, C_INIT))
