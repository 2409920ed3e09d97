"""The Python API (vqcodec.api) and the channel options it shares with the command line."""
import re

import numpy as np
import pytest

import vqcodec.api as vq
from channels.options import channel_spec, param_value, parse_grid


def test_channel_by_name_parameter_and_options():
    ch = vq.channel("burst", 0.02, burst_length=20)
    assert (ch.name, ch.p, ch.burst_length) == ("burst", 0.02, 20)
    assert vq.channel("awgn", 3.0, hard=True).soft is False
    assert vq.channel("packet-erasure", 0.1, index_bits=8).packet_bits == 8
    assert vq.channel("packet-erasure", 0.1, packet_bits=64, index_bits=8).packet_bits == 64
    assert vq.channel("fading", 3.0).block_bits == 64


def flags(exc) -> str:
    """A library error as the command line spells it (parameters as flags)."""
    return exc.spelled(lambda name: "--" + name.replace("_", "-")) if isinstance(exc, vq.ParameterError) else str(exc)


@pytest.mark.parametrize("kind, options, message", [
    ("nope", {}, "unknown channel 'nope'"),
    ("bsc", {"packet_bits": 8}, "--packet-bits applies to the packet-erasure channel only"),
    ("awgn", {"burst_length": 3.0}, "--burst-length applies to the burst channel only"),
    ("bsc", {"block_bits": 8}, "--block-bits applies to the fading channel only"),
    ("erasure", {"hard": True}, "--hard applies to the awgn and fading channels only"),
])
def test_channel_options_that_do_not_fit_are_refused(kind, options, message):
    with pytest.raises(ValueError) as err:
        channel_spec(kind, index_bits=8, **options)
    assert message in flags(err.value) and "--" not in str(err.value)  # the library names parameters


def test_parameter_names_and_grids():
    spec = channel_spec("awgn")
    assert param_value(spec, snr_db="1,2") == "1,2"
    with pytest.raises(ValueError, match="takes snr_db, not p") as err:
        param_value(spec, p=0.1, snr_db=1.0)
    assert flags(err.value) == "the awgn channel takes --snr-db, not --p"
    with pytest.raises(ValueError, match="needs p") as err:
        param_value(channel_spec("bsc"))
    assert flags(err.value) == "the bsc channel needs --p"
    assert parse_grid("1e-3:1e-1:3") == pytest.approx([1e-3, 1e-2, 1e-1])
    assert parse_grid("0:8:5", "snr_db") == [0.0, 2.0, 4.0, 6.0, 8.0]  # linear for SNRs
    for bad in ("", "a,b", "0:1:3", "1:2"):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_experiment_checks_everything_before_any_work():
    codec = vq.load()
    exp = vq.experiment(codec, "bsc", "1e-3,1e-2", receivers="naive,map", baselines="jpeg", trials=4,
                        min_trials=9)
    assert exp.grid == [1e-3, 1e-2] and exp.receivers == ["naive", "map"] and exp.param == "p"
    assert exp.stop.min_trials == 4 and exp.budget == codec.bpp and exp.baselines == ["jpeg"]
    assert [c.p for c in exp.channels] == [1e-3, 1e-2]
    for kwargs, message in [({"receivers": ["naive", "oracle"]}, "unknown receiver 'oracle'"),
                            ({"baselines": "gif"}, "unknown baseline 'gif'"),
                            ({"baselines": "jpeg", "rates": "5/6"}, "unknown code rate '5/6'"),
                            ({"baselines": "jpeg", "budget_bpp": 0.0}, "--budget-bpp must be in"),
                            ({"workers": 2, "scheduler": "tcp://h:1"}, "--workers and --scheduler exclude each other")]:
        with pytest.raises(ValueError) as err:
            vq.experiment(codec, "bsc", [0.01], **kwargs)
        assert message in flags(err.value) and "--" not in str(err.value)
    with pytest.raises(ValueError, match="p must be"):
        vq.experiment(codec, "bsc", [0.01, 0.7])


def test_arrays_are_images_with_names():
    codec = vq.load()
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    encs, desc = vq.encode(codec, {"a": gray, "b": np.zeros((8, 8, 3), np.uint8)}, with_ms_ssim=False)
    assert [e.name for e in encs] == ["a", "b"] and desc["source"] == "arrays" and desc["count"] == 2
    assert encs[0].image.shape == (20, 30, 3) and encs[0].indices.shape == (5, 8)  # padded to f=4
    with pytest.raises(ValueError, match="image 'x'"):
        vq.encode(codec, {"x": np.zeros((4, 4, 7))})
    res = vq.simulate("bsc", 0.05, codec=codec, images={"a": gray}, receivers=["naive"], trials=1,
                      with_ms_ssim=False)
    assert len(res) == 1 and res[0]["name"] == "simulate-bsc" and res[0]["images"]["source"] == "arrays"
    pt = res[0]["points"][0]
    assert pt["bits"] == 5 * 8 * 8 and 0 < pt["bit_errors"] < pt["bits"]


@pytest.mark.parametrize("modulation, cbr", [("bpsk", 1 / 6), ("qpsk", 1 / 12), ("qam16", 1 / 24)])
def test_the_default_stream_bandwidth_ratio(modulation, cbr):
    from vqcodec.simulate import link_budget

    codec = vq.load()  # 0.5 bpp: 8 bits per 4x4 block
    encs, _ = vq.encode(codec, {"a": np.zeros((64, 96, 3), np.uint8), "b": np.zeros((32, 32, 3), np.uint8)},
                        with_ms_ssim=False)
    b = link_budget(codec, encs, vq.channel("awgn", 3.0, modulation=modulation))
    assert b["source_bpp"] == b["channel_bpp"] == 0.5
    assert b["cbr"] == pytest.approx(cbr) and b["channel_uses_per_pixel"] == pytest.approx(3 * cbr)
    assert "cbr" not in link_budget(codec, encs, vq.channel("bsc", 0.1))  # no complex channel uses


def test_modulation_options_and_the_baseline_budget_as_cbr():
    codec = vq.load()
    exp = vq.experiment(codec, "awgn", [1.0, 7.0], modulation="qpsk", baselines="jpeg", cbr=1 / 12,
                        receivers=["naive"])
    assert exp.spec.describe() == {"kind": "awgn", "param": "snr_db", "modulation": "qpsk", "scramble": True}
    assert [c.modulation for c in exp.channels] == ["qpsk", "qpsk"] and exp.budget == pytest.approx(0.5)
    for kwargs, message in [({"modulation": "qam32"}, "modulation must be one of"),
                            ({"cbr": 0.1, "budget_bpp": 0.5}, "as --budget-bpp or as --cbr, not both"),
                            ({"cbr": 2.0}, "--cbr must be in")]:
        with pytest.raises(ValueError) as err:
            vq.experiment(codec, "awgn", [1.0], **kwargs)
        assert message in flags(err.value) and "--" not in str(err.value)
    with pytest.raises(ValueError) as err:
        vq.experiment(codec, "bsc", [0.1], modulation="qpsk")
    assert flags(err.value) == "--modulation applies to the awgn and fading channels only"
    with pytest.raises(ValueError, match="has none"):
        vq.experiment(codec, "bsc", [0.1], cbr=0.1)


def test_the_command_line_takes_a_modulation(tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main

    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["simulate", "--channel", "awgn", "--snr-db", "8", "--modulation", "qam16",
                                    "--receiver", "naive", "--trials", "1", "--no-ms-ssim", "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["channel"]["modulation"] == "qam16" and r["points"][0]["cbr"] == pytest.approx(1 / 24, rel=0.01)
    res = CliRunner().invoke(main, ["simulate", "--channel", "bsc", "--p", "0.1", "--modulation", "qpsk"])
    assert res.exit_code == 1 and "--modulation applies to the awgn and fading channels only" in res.output


def test_a_resume_must_match_what_defines_a_point():
    codec = vq.load()
    rng = np.random.default_rng(0)
    imgs = {"a": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    exp = vq.experiment(codec, "bsc", [0.01, 0.05], receivers=["naive"], trials=2, with_ms_ssim=False)
    encs, desc = exp.encode(imgs)
    first = exp.run(encs, desc)
    assert [r["points"] for r in exp.run(encs, desc, previous=first)] == [r["points"] for r in first]
    other = {"a": imgs["a"].copy()}
    other["a"][0, 0, 0] ^= 1  # same name and size, one pixel changed
    encs2, desc2 = exp.encode(other)
    with pytest.raises(ValueError, match="cannot resume: the file's images"):
        exp.run(encs2, desc2, previous=first)
    for kwargs, what in [({"trials": 3}, "stop_rule"), ({"seed": 1}, "seed"), ({"receivers": ["map"]}, "receiver"),
                         ({"with_ms_ssim": True}, "MS-SSIM")]:
        exp2 = vq.experiment(codec, "bsc", [0.01, 0.05], **{"receivers": ["naive"], "trials": 2,
                                                            "with_ms_ssim": False, **kwargs})
        with pytest.raises(ValueError, match=what):
            exp2.run(encs, desc, previous=first)
    # the same model name with other weights (a retrained or replaced model): refused too
    import copy

    import torch

    assert {r["model_weights"] for r in first} == {codec.weights_fingerprint}
    changed = copy.deepcopy(codec)
    with torch.no_grad():
        next(iter(changed.model.decoder.parameters())).mul_(0.5)
    assert changed.fingerprint == codec.fingerprint  # same codebook and assignment: only the decoder differs
    exp3 = vq.experiment(changed, "bsc", [0.01, 0.05], receivers=["naive"], trials=2, with_ms_ssim=False)
    with pytest.raises(ValueError, match="other weights of f4-k256"):
        exp3.run(encs, desc, previous=first)
    old = [{k: v for k, v in r.items() if k != "model_weights"} for r in first]  # files from before: continued
    assert [r["points"] for r in exp3.run(encs, desc, previous=old)] == [r["points"] for r in first]


def test_a_stream_larger_than_the_cbr_budget_is_refused():
    codec = vq.load()  # f4-k256, 0.5 bpp: uncoded BPSK is cbr 1/6, QPSK 1/12
    with pytest.raises(ValueError) as err:
        vq.experiment(codec, "awgn", [1.0], modulation="bpsk", baselines="jpeg", cbr=1 / 12)
    assert re.search(r"needs cbr 0\.1667, more than --cbr 0\.08333.*qpsk none, qam16 ldpc-1/2", flags(err.value))
    with pytest.raises(ValueError, match="needs cbr 0.1667"):
        vq.experiment(codec, "awgn", [1.0], modulation="qam16", code="ldpc-1/4", cbr=1 / 12)
    vq.experiment(codec, "awgn", [1.0], modulation="qam16", code="ldpc-1/2", cbr=1 / 12)  # fills it exactly
    vq.experiment(codec, "awgn", [1.0], modulation="qam16", cbr=1 / 12)  # uses less: allowed


def test_best_sweep_fills_the_budget_and_its_envelope_is_the_pointwise_best():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    img = np.clip(np.stack([x * 4, y * 4, (x + y) * 2], 2) + rng.normal(0, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    res = vq.best_sweep("awgn", [-2.0, 12.0], models=["f8-k256"], cbr="1/12", images={"ramp.png": img}, trials=1,
                        min_trials=1, with_ms_ssim=False)
    curves, best = res[:-1], res[-1]
    assert [c["configuration"]["modulation"] for c in curves] == ["bpsk", "qpsk", "qam16"]
    assert [c["configuration"]["code"] for c in curves] == ["ldpc-1/2", "ldpc-1/4", "ldpc-1/8"]
    for c in curves:
        assert c["receiver"] == "spatial-mmse"
        for pt in c["points"]:
            assert pt["cbr"] == pytest.approx(1 / 12, rel=0.02)  # whole symbols round up a little
    for i, pt in enumerate(best["points"]):
        means = [c["points"][i]["psnr"]["mean"] for c in curves]
        assert pt["psnr"]["mean"] == max(means)
        assert pt["psnr_by_configuration"] == {c["label"]: m for c, m in zip(curves, means)}
        assert pt["configuration"] == curves[int(np.argmax(means))]["label"]
    # at -2 dB the fixed designs differ (cliffs): a test that sees noise
    assert len({c["points"][0]["psnr"]["mean"] for c in curves}) > 1
    with pytest.raises(ValueError, match="use awgn or fading"):
        vq.best_sweep("bsc", [0.1], models=["f8-k256"])
    with pytest.raises(ValueError, match="fraction like 1/12"):
        vq.best_sweep("awgn", [1.0], models=["f8-k256"], cbr="a/b")
    with pytest.raises(ValueError, match="no \\(modulation, code rate >= 0.9\\) fills cbr 1/12"):
        vq.best_sweep("awgn", [1.0], models=["f8-k256"], min_rate=0.9)


def test_best_sweep_encodes_each_search_setting_of_a_model_on_its_own():
    """Two loaded codecs of one model, one with the encoder-side search: each configuration uses
    its own codec's indices (the encodings are not shared by model name)."""
    img = np.random.default_rng(2).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    res = vq.best_sweep("awgn", [12.0], models=[vq.load("f8-k256"), vq.load("f8-k256", search="2,guided=1")],
                        cbr="1/12", images={"n.png": img}, trials=1, min_trials=1, with_ms_ssim=False,
                        modulations=["bpsk"])
    plain, searched = res[0], res[1]
    assert "+search" not in plain["label"] and "+search" in searched["label"]
    assert searched["points"][0]["psnr_clean"] > plain["points"][0]["psnr_clean"]


def test_best_sweep_fills_the_budget_with_every_stage_of_a_residual_model():
    """issue 31: f8-s2-k256 sends 16 bits per site (0.25 bpp); its configurations fill cbr 1/12,
    not twice it ("all" tries every shipped model, this one included)."""
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    res = vq.best_sweep("awgn", [6.0], models="f8-s2-k256", cbr="1/12", images={"n.png": img}, trials=1,
                        min_trials=1, with_ms_ssim=False, modulations=["bpsk", "qpsk"])
    assert [c["configuration"]["code"] for c in res[:-1]] == ["none", "ldpc-1/2"]
    assert all(c["points"][0]["cbr"] == pytest.approx(1 / 12, rel=0.02) for c in res[:-1])
    from vqcodec.zoo import available

    assert "f8-s2-k256" in available()


def test_old_code_spellings_give_the_same_plan_and_warn_once():
    import warnings

    codec = vq.load()
    kw = dict(modulation="qpsk", baselines="jpeg", receivers=["naive"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = vq.experiment(codec, "awgn", [1.0], code="cc-1/2", rates="none,cc-1/2,ldpc-1/2", **kw)
        assert caught == []
        old = vq.experiment(codec, "awgn", [1.0], code="1/2", rates="uncoded,1/2,ldpc-1/2", **kw)
    assert [w.category for w in caught] == [vq.DeprecatedSpelling] * 3  # one per old name
    assert old.rates == new.rates == ["none", "cc-1/2", "ldpc-1/2"]
    assert old.spec == new.spec and old.spec.extra["code"] == "cc-1/2"
    assert [c.code for c in old.channels] == [c.code for c in new.channels] == ["cc-1/2"]
    with pytest.raises(ValueError, match="unknown code rate 'cc1/2'") as err:
        vq.experiment(codec, "awgn", [1.0], code="cc1/2", **kw)
    assert "\n" not in str(err.value)


def test_evaluate_without_ms_ssim_leaves_it_out(tiny_checkpoint):
    codec = vq.load(checkpoint=tiny_checkpoint, precision="fp32")
    img = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    pt = vq.evaluate(codec, {"fresh.png": img}, with_ms_ssim=False).results["points"][0]
    assert "ms_ssim" not in pt and pt["per_image"][0]["ms_ssim"] is None and pt["psnr"]["mean"] > 0
    pt = vq.evaluate(codec, {"fresh.png": img}).results["points"][0]
    assert "ms_ssim" in pt  # with it: kept
