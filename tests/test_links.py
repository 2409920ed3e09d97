"""The index payload behind a 5G LDPC code (vqcodec.links): rate names, budgets, what the decoder
hands the receivers, the same code in the baselines, and --code on the command line."""
import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

import channels
from cli import main
from vqcodec.links import CodedLink, LdpcCode, code_rate


def test_code_names():
    assert code_rate("none") is None and code_rate(None) is None
    assert code_rate("ldpc-1/2") == Fraction(1, 2) and code_rate("ldpc-8/9") == Fraction(8, 9)
    for bad, needle in (("turbo-1/2", "unknown code"), ("ldpc-x", "unknown code"), ("ldpc-1/0", "unknown code"),
                        ("ldpc-1/20", "outside"), ("ldpc-1/1", "outside")):
        with pytest.raises(ValueError, match=needle):
            code_rate(bad)


def test_one_code_name_syntax():
    """none, cc-R and ldpc-A/B everywhere; the old spellings (uncoded, a bare 1/2) read as the same
    code with one DeprecatedSpelling each; anything else is a one-line error."""
    import warnings

    from vqcodec.links import DeprecatedSpelling, parse_code

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [parse_code(c) for c in (None, "none", "cc-1/2", "LDPC-2/3", "ldpc-1/3+none")] == [
            "none", "none", "cc-1/2", "ldpc-2/3", "ldpc-1/3+none"]
    assert caught == []
    for old, new in (("uncoded", "none"), ("1", "none"), ("1/2", "cc-1/2"), ("3/4", "cc-3/4"),
                     ("uncoded+ldpc-1/2", "none+ldpc-1/2")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert parse_code(old) == new
        assert [w.category for w in caught] == [DeprecatedSpelling] and "old spelling" in str(caught[0].message)
    for bad, needle in (("5/6", "unknown code rate '5/6'"), ("turbo", "unknown code rate"),
                        ("cc-5/6", "unknown convolutional code 'cc-5/6'"), ("ldpc-1/40", "outside")):
        with pytest.raises(ValueError, match=needle) as err:
            parse_code(bad)
        assert "\n" not in str(err.value)
    ch = channels.get_channel("awgn", snr_db=3.0, modulation="qpsk")
    with pytest.warns(DeprecatedSpelling):
        link = CodedLink(ch, "1/2")
    assert link.code == "cc-1/2" and link.coded_bits(999) == CodedLink(ch, "cc-1/2").coded_bits(999)
    assert code_rate("cc-1/2") == Fraction(1, 2)


@pytest.mark.parametrize("modulation,m", [("bpsk", 1), ("qpsk", 2), ("qam16", 4), ("qam64", 6)])
def test_coded_bits_fill_whole_symbols(modulation, m):
    link = CodedLink(channels.get_channel("awgn", snr_db=5.0, modulation=modulation), "ldpc-1/3")
    for n in (40, 1000, 4097):
        g = link.coded_bits(n)
        assert g % m == 0 and g >= 3 * n and g - 3 * n < m + 1
        assert link.channel_uses(n) == g // m


def test_coded_link_removes_the_errors_of_a_noisy_awgn_link():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 6000).astype(np.uint8)
    ch = channels.get_channel("awgn", snr_db=2.0, modulation="qpsk")
    raw = ch(bits, np.random.default_rng(1))
    raw_errors = int(np.count_nonzero(raw.hard != bits))
    assert raw_errors > 200  # QPSK at Es/N0 2 dB: about 6 % bit errors
    rx = CodedLink(ch, "ldpc-1/3")(bits, np.random.default_rng(1))
    assert rx.hard.shape == bits.shape and rx.llr.dtype == np.float32
    assert np.array_equal(rx.hard, bits)
    # the a-posteriori LLRs agree with the decisions and are confident
    assert np.all((rx.llr < 0) == (rx.hard == 1)) and np.median(np.abs(rx.llr)) > 10


@pytest.mark.parametrize("kind,kw", [("bsc", {"p": 0.03}), ("awgn", {"snr_db": 2.0, "soft": False})])
def test_coded_link_over_a_hard_channel(kind, kw):
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, 3000).astype(np.uint8)
    ch = channels.get_channel(kind, **kw)
    raw = ch(bits, np.random.default_rng(3))
    assert np.count_nonzero(raw.hard != bits) > 30
    rx = CodedLink(ch, "ldpc-1/2")(bits, np.random.default_rng(3))
    assert np.array_equal(rx.hard, bits)


def test_a_rate_beyond_capacity_leaves_errors_and_is_not_hidden():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, 4000).astype(np.uint8)
    ch = channels.get_channel("awgn", snr_db=-2.0, modulation="qpsk")  # capacity ~0.6 bit / bit pair
    rx = CodedLink(ch, "ldpc-8/9")(bits, np.random.default_rng(5))
    assert np.count_nonzero(rx.hard != bits) > 100


def test_ldpc_code_in_the_baselines_interface():
    code = LdpcCode("ldpc-2/3")
    rng = np.random.default_rng(6)
    for n in (72, 500, 5000):
        bits = rng.integers(0, 2, n).astype(np.uint8)
        cw = code.encode(bits)
        assert cw.size == code.coded_length(n) == -(-3 * n // 2)
        assert code.info_length(cw.size) == n
        llr = (1 - 2 * cw.astype(np.float32)) * 4
        assert np.array_equal(code.decode(llr), bits)
        if n >= 500:  # a short block (k = 72 + CRC-16) under BP does not always fix 2 %
            hard = cw.astype(np.int8)
            hard[::50] ^= 1  # 2 % of the bits flipped
            assert np.array_equal(code.decode(hard), bits)
            hard[1::7] = -1  # and 14 % erased
            assert np.array_equal(code.decode(hard), bits)


def test_baselines_take_ldpc_rates():
    from skimage import data

    from vqcodec.baselines import check_options, rate_label, run_baseline_point

    assert check_options("jpeg", "cc-1/2,ldpc-1/2") == (["jpeg"], ["cc-1/2", "ldpc-1/2"])
    with pytest.raises(ValueError, match="outside"):
        check_options("jpeg", "ldpc-1/50")
    assert rate_label("ldpc-1/2") == "LDPC r=1/2"
    img = data.astronaut()[:96, :128]
    ch = channels.get_channel("awgn", snr_db=1.0, modulation="qpsk")
    cc = run_baseline_point([img], "jpeg", "cc-1/2", ch, budget_bpp=2.0, trials=2)
    ldpc = run_baseline_point([img], "jpeg", "ldpc-1/2", ch, budget_bpp=2.0, trials=2)
    assert ldpc["rate"] == "ldpc-1/2" and ldpc["channel_bpp"] <= 2.0
    # at Es/N0 1 dB a rate-1/2 LDPC code works where the K=7 convolutional code fails
    assert ldpc["failure_rate"] < cc["failure_rate"]


def test_link_budget_behind_a_code(tiny_model, image_dir):
    from vqcodec.bits import identity_assignment
    from vqcodec.simulate import encode_image, link_budget
    from vqcodec.zoo import Codec

    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16))
    encs = [encode_image(codec, p, False) for p in sorted(image_dir.iterdir())]
    ch = channels.get_channel("awgn", snr_db=5.0, modulation="qam16")
    plain, coded = link_budget(codec, encs, ch), link_budget(codec, encs, CodedLink(ch, "ldpc-1/2"))
    assert coded["source_bpp"] == plain["source_bpp"]
    assert coded["channel_bpp"] == pytest.approx(2 * plain["source_bpp"], rel=0.05)
    assert coded["cbr"] == pytest.approx(2 * plain["cbr"], rel=0.05)


def test_cli_code_option(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "r.json"
    base = ["simulate", "--channel", "awgn", "--snr-db", "3", "--modulation", "qam16", "--checkpoint",
            str(tiny_checkpoint), "--images", str(image_dir), "--receiver", "naive", "--trials", "1",
            "--no-ms-ssim"]
    r = CliRunner().invoke(main, base + ["--code", "ldpc-1/2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["channel"]["code"] == "ldpc-1/2" and res["channel"]["modulation"] == "qam16"
    pt = res["points"][0]
    assert pt["channel_bpp"] == pytest.approx(2 * pt["source_bpp"], rel=0.05)
    r = CliRunner().invoke(main, base + ["--code", "cc-1/2", "--json", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    new = json.loads(out.read_text())
    pt = new["points"][0]
    assert pt["channel_bpp"] == pytest.approx(2 * pt["source_bpp"], rel=0.1)  # rate 1/2 plus a 6-step tail
    # the old spelling of the same code: the same run, and one note
    r = CliRunner().invoke(main, base + ["--code", "1/2", "--json", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert [line for line in r.output.splitlines() if line.startswith("Note: ")] == [
        "Note: code '1/2' is an old spelling: write cc-1/2"]
    old = json.loads(out.read_text())
    assert old["channel"]["code"] == "cc-1/2" and old["points"] == new["points"]
    for bad, needle in (("turbo", "unknown code"), ("ldpc-1/40", "outside"), ("cc-5/6", "unknown convolutional"),
                        ("5/6", "unknown code rate '5/6'")):
        r = CliRunner().invoke(main, base + ["--code", bad])
        assert r.exit_code != 0 and "Traceback" not in r.output
        assert needle in r.output.strip().splitlines()[-1]


def test_budget_configurations_fill_the_bandwidth_ratio_exactly():
    from fractions import Fraction

    from vqcodec.links import budget_configurations, code_rate, stream_cbr

    assert budget_configurations("1/2", "1/12") == [("qpsk", "none"), ("qam16", "ldpc-1/2"),
                                                     ("qam64", "ldpc-1/3"), ("qam256", "ldpc-1/4")]
    assert budget_configurations("1/2", "1/12", min_rate=0.3) == [("qpsk", "none"), ("qam16", "ldpc-1/2"),
                                                                   ("qam64", "ldpc-1/3")]
    for bpp in ("1/8", "5/32", "1/2", "3/4"):
        for cbr in ("1/6", "1/12", "1/24"):
            for mod, code in budget_configurations(bpp, cbr):
                m = {"bpsk": 1, "qpsk": 2, "qam16": 4, "qam64": 6, "qam256": 8}[mod]
                assert stream_cbr(float(Fraction(bpp)), code, m) == pytest.approx(float(Fraction(cbr)))
                r = code_rate(code)
                assert r is None or 0.1 <= r <= 0.95
    assert budget_configurations("1/2", "1/48") == [("qam256", "none")]
    assert budget_configurations("1/2", "1/96") == []  # every modulation would need a rate above 1
    with pytest.raises(ValueError, match="cbr in \\(0, 1\\]"):
        budget_configurations("1/2", "2")


@pytest.mark.parametrize("code", ["cc-1/2", "cc-3/4", "cc-1/3"])
def test_a_convolutional_code_on_the_index_stream_gives_a_posteriori_llrs(code):
    from vqcodec import fec
    from vqcodec.links import CodedLink

    ch = channels.get_channel("awgn", snr_db=6.0, modulation="qpsk")  # raw BER about 2.3e-2
    link = CodedLink(ch, code)
    conv = fec.get_code(code[3:])
    assert link.coded_bits(1001) == 2 * -(-conv.coded_length(1001) // 2)  # whole QPSK symbols
    bits = np.random.default_rng(0).integers(0, 2, 20000, dtype=np.uint8)
    raw = ch(bits, np.random.default_rng(1))
    rx = link(bits, np.random.default_rng(1))
    assert rx.llr.shape == bits.shape and np.array_equal(rx.hard, (rx.llr < 0).astype(np.int8))
    assert np.mean(rx.hard != bits) < 0.2 * np.mean(raw.hard != bits)  # the code corrects
    assert np.mean(rx.llr[bits == 0] > 0) > 0.95  # positive means 0


def test_unequal_protection_names_and_budget():
    from vqcodec.links import code_segments

    assert code_segments("ldpc-2/5+ldpc-2/3") == ["ldpc-2/5", "ldpc-2/3"]
    assert code_rate("ldpc-2/5+ldpc-2/3") == Fraction(1, 2) == code_rate("ldpc-1/3+none")
    for bad, needle in (("ldpc-1/2+", "empty part"), ("none+none", "protects nothing"),
                        ("ldpc-1/2+turbo", "unknown code"), ("ldpc-1/2+ldpc-1/30", "outside")):
        with pytest.raises(ValueError, match=needle):
            code_rate(bad)
    ch = channels.get_channel("awgn", snr_db=3.0, modulation="qpsk")
    for n in (4000, 12000):  # two equal stages: the same channel uses as equal protection at 1/2
        assert CodedLink(ch, "ldpc-2/5+ldpc-2/3").coded_bits(n) == CodedLink(ch, "ldpc-1/2").coded_bits(n)
    assert CodedLink(ch, "ldpc-1/3+none").coded_bits(4000) == 2000 * 3 + 2000
    with pytest.raises(ValueError, match="index stream"):
        LdpcCode("ldpc-1/3+none")


def test_unequal_protection_codes_each_part_on_its_own():
    """A strong code on the first half and none on the second, over BSC 0.05: the first half
    arrives clean, the second with the channel's own error rate; the parts keep their order."""
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 8000).astype(np.uint8)
    ch = channels.get_channel("bsc", p=0.05)
    rx = CodedLink(ch, "ldpc-1/4+none")(bits, np.random.default_rng(4))
    assert rx.llr.shape == bits.shape
    first = np.count_nonzero(rx.hard[:4000] != bits[:4000])
    second = np.count_nonzero(rx.hard[4000:] != bits[4000:]) / 4000
    assert first == 0 and 0.04 < second < 0.06
    rx = CodedLink(ch, "none+ldpc-1/4")(bits, np.random.default_rng(4))
    assert np.count_nonzero(rx.hard[4000:] != bits[4000:]) == 0 and np.count_nonzero(rx.hard[:4000] != bits[:4000]) > 100


def test_hard_channel_llrs_are_weighted_by_the_crossover_probability():
    """A hard link without soft output (awgn soft=False) reaches the decoder as +-log((1 - q) / q)
    for its crossover probability q, erasures as 0, and a soft output passes through clipped."""
    from channels import Received
    from channels.base import LLR_CLIP
    from vqcodec.links import received_llr

    ch = channels.get_channel("awgn", snr_db=0.0, soft=False)
    q = ch.crossover_probability
    mag = np.log((1 - q) / q)
    assert 0.07 < q < 0.09 and mag == pytest.approx(2.46, abs=0.02)
    rx = Received(hard=np.array([0, 1, -1, 0], np.int8), llr=None)
    llr = received_llr(rx, ch, np.float32)
    assert llr.dtype == np.float32
    np.testing.assert_allclose(llr, [mag, -mag, 0.0, mag], rtol=1e-6)
    soft = Received(hard=np.array([0, 1], np.int8), llr=np.array([50.0, -3.0], np.float32))
    np.testing.assert_array_equal(received_llr(soft, ch, np.float32), [LLR_CLIP, -3.0])


@pytest.mark.parametrize("q", [0.0, 1e-20, 1e-6, 0.01, 0.079, 0.3, 0.5])
def test_hard_bits_llr_is_the_crossover_llr_clipped(q):
    """The one hard-bits-to-LLR rule (links and receivers): a hard bit from a channel of crossover q
    gets +-log((1 - q) / q), clipped to LLR_CLIP (q = 0: certain), an erasure 0; float64."""
    from channels.base import LLR_CLIP
    from vqcodec.links import hard_bits_llr

    llr = hard_bits_llr(np.array([0, 1, -1, 1, 0], np.int8), q)
    mag = LLR_CLIP if q == 0 else min(LLR_CLIP, np.log((1 - q) / q))
    assert llr.dtype == np.float64
    np.testing.assert_array_equal(llr, [mag, -mag, 0.0, -mag, mag])
    assert (q == 0.5) == (mag == 0.0) and (q < 1e-13) == (mag == LLR_CLIP)
    np.testing.assert_array_equal(hard_bits_llr(np.array([0, 1, -1], np.int8), None), [LLR_CLIP, -LLR_CLIP, 0.0])


def test_links_and_receivers_read_hard_bits_by_the_same_rule():
    """A BSC's hard bits without its soft output: links' LLRs (float32) and the receivers' bit_llrs
    (float64, one row per label) are hard_bits_llr of the BSC's p; a hard awgn link's use its
    crossover probability; a channel without one reads as certain."""
    from channels import Received
    from channels.base import LLR_CLIP
    from vqcodec.links import hard_bits_llr, hard_crossover, received_llr
    from vqcodec.receivers import bit_llrs

    hard = np.array([0, 1, -1, 1, 0, 0, 1, 1], np.int8)
    rx = Received(hard=hard, llr=None)
    bsc = channels.get_channel("bsc", p=0.03)
    awgn = channels.get_channel("awgn", snr_db=2.0, soft=False)
    assert hard_crossover(bsc) == 0.03 and hard_crossover(awgn) == awgn.crossover_probability
    assert hard_crossover(None) is None and hard_crossover(channels.get_channel("erasure", p=0.1)) is None
    for ch in (bsc, awgn):
        want = hard_bits_llr(hard, hard_crossover(ch))
        np.testing.assert_array_equal(bit_llrs(rx, ch, 4), want.reshape(2, 4))
        np.testing.assert_array_equal(received_llr(rx, ch, np.float32), want.astype(np.float32))
    np.testing.assert_array_equal(received_llr(rx, None), np.where(hard < 0, 0, LLR_CLIP * (1 - 2 * hard)))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind,kw", [("awgn", {"snr_db": 0.0, "soft": False}), ("bsc", {"p": 0.079})])
def test_ldpc_half_on_a_hard_link_near_threshold(kind, kw, seed):
    """LDPC 1/2 behind hard decisions with q = 0.079 (hard BPSK at Es/N0 0 dB, or a BSC; the BSC
    threshold of this code is about 0.09): the decoder fixes every error when its LLRs carry
    log((1 - q) / q) = 2.46; fed a fixed +-30 instead its threshold falls to q ~ 0.065 and about
    1000 of 8000 bits stay wrong."""
    bits = np.random.default_rng(0).integers(0, 2, 8000).astype(np.uint8)
    ch = channels.get_channel(kind, **kw)
    raw = ch(bits, np.random.default_rng(seed))
    assert np.count_nonzero(raw.hard != bits) > 500
    rx = CodedLink(ch, "ldpc-1/2")(bits, np.random.default_rng(seed))
    assert np.count_nonzero(rx.hard != bits) == 0
