import json

import numpy as np
import pytest

import channels
from vqcodec.bits import identity_assignment
from vqcodec.prior import learn_prior
from vqcodec.simulate import StopRule, encode_image, run_point, trial_rng
from vqcodec.zoo import Codec


@pytest.fixture
def codec(tiny_model, image_dir):
    c = Codec(name="tiny", model=tiny_model, meta={}, assignment=identity_assignment(16))
    grids = [encode_image(c, p, False).indices for p in sorted(image_dir.iterdir())]
    return Codec(name="tiny", model=tiny_model, meta={}, assignment=identity_assignment(16),
                 prior=(learn_prior(grids, 16),))


@pytest.fixture
def encoded(codec, image_dir):
    return [encode_image(codec, p) for p in sorted(image_dir.iterdir())]


def test_clean_channel_gives_exactly_the_clean_psnr(codec, encoded):
    ch = channels.get_channel("bsc", p=0.0)
    out = run_point(codec, encoded, ch, ["naive", "map", "spatial", "spatial-mmse"], seed=0, param=0.0,
                    stop=StopRule(min_trials=2, max_trials=5))
    for r, pt in out.items():
        assert pt["psnr"]["mean"] == pt["psnr_clean"], r
        assert pt["index_errors"] == 0 and pt["bit_errors"] == 0
        assert pt["stop"] == "ci-reached" and pt["trials"] == 2 and pt["psnr"]["ci95"] == 0.0


def test_half_flips_randomise_indices(codec, image_dir, tmp_path):
    from PIL import Image

    big = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    enc = [encode_image(codec, tmp_path / "big.png", False)]
    ch = channels.get_channel("bsc", p=0.5)
    pt = run_point(codec, enc, ch, ["naive"], seed=1, param=0.5, stop=StopRule(4, 4), with_ms_ssim=False)["naive"]
    # the received label is uniform over K = 16 labels whatever was sent
    assert pt["indices"] == 10000
    assert abs(pt["index_error_rate"] - (1 - 1 / 16)) <= 0.01
    assert abs(pt["ber"] - 0.5) < 0.01


def test_seeds_are_order_independent_and_distinct():
    a = trial_rng(0, "x.png", 0.01, 3).random(5)
    assert np.array_equal(a, trial_rng(0, "x.png", 0.01, 3).random(5))
    for other in (trial_rng(1, "x.png", 0.01, 3), trial_rng(0, "y.png", 0.01, 3),
                  trial_rng(0, "x.png", 0.02, 3), trial_rng(0, "x.png", 0.01, 4)):
        assert not np.array_equal(a, other.random(5))


def test_trial_seeds_are_the_same_in_every_process():
    """The documented recipe, SeedSequence([seed, crc32(image name), bits of param, trial]), and
    pinned numbers: nothing per-process (Python's salted hash(), a pid, a global RNG) may enter,
    or Dask workers and resumed runs would draw other channel realisations than the serial run."""
    import struct
    import zlib

    pbits = struct.unpack("<Q", struct.pack("<d", 0.01))[0]
    want = np.random.default_rng(np.random.SeedSequence([7, zlib.crc32(b"kodim01.png"), pbits, 3]))
    assert np.array_equal(trial_rng(7, "kodim01.png", 0.01, 3).random(4), want.random(4))
    assert trial_rng(7, "kodim01.png", 0.01, 3).integers(0, 2**32, 4).tolist() == [
        448605483, 3654691539, 1438869606, 1982466611]
    assert trial_rng(0, "x.png", -2.5, 0).integers(0, 2**32, 4).tolist() == [
        3331362339, 2185074086, 3489540749, 756626519]


def test_results_do_not_depend_on_the_image_set(codec, encoded):
    ch = channels.get_channel("bsc", p=0.05)
    both = run_point(codec, encoded, ch, ["naive"], seed=0, param=0.05, stop=StopRule(3, 3), with_ms_ssim=False)
    alone = run_point(codec, encoded[1:], ch, ["naive"], seed=0, param=0.05, stop=StopRule(3, 3), with_ms_ssim=False)
    b = {d["image"]: d["psnr"] for d in both["naive"]["per_image"]}
    a = {d["image"]: d["psnr"] for d in alone["naive"]["per_image"]}
    assert a[encoded[1].name] == b[encoded[1].name]


def test_stop_rule_on_synthetic_sequences():
    rule = StopRule(min_trials=3, max_trials=6, ci_target=0.05)
    assert rule.decide([[20.0, 20.0]]) is None  # below min_trials
    assert rule.decide([[20.0, 20.0, 20.0]]) == "ci-reached"  # no spread at all
    assert rule.decide([[20.0, 20.01, 20.02]]) == "ci-reached"  # half-width 4.303*0.01/sqrt(3) = 0.0248
    assert rule.decide([[20.0, 20.1, 20.2]]) is None  # half-width 0.248
    assert rule.decide([[20.0, 20.1, 20.2, 20.0, 20.1, 20.2]]) == "budget"
    # every receiver must be precise enough
    assert rule.decide([[20.0, 20.0, 20.0], [20.0, 21.0, 22.0]]) is None
    with pytest.raises(ValueError):
        StopRule(min_trials=5, max_trials=2)


@pytest.mark.parametrize("x", [20.0, 35.5])
def test_stop_rule_never_stops_on_one_trial(x):
    """One sample has no spread: with min_trials 1 the rule waits for a second trial, or the budget."""
    assert StopRule(1, 5).decide([[x]]) is None
    assert StopRule(1, 5).decide([[x], [x]]) is None  # every receiver with one trial
    assert StopRule(1, 1).decide([[x]]) == "budget"
    assert StopRule(1, 5).decide([[x, x]]) == "ci-reached"
    assert StopRule(1, 5, ci_target=0.05).decide([[x, x + 0.001]]) == "ci-reached"  # 12.71*0.0005 = 0.0064


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_paired_noise_across_receivers(codec, encoded, monkeypatch, precision):
    """Every receiver gets the same channel realisation of every image in every trial, at each precision."""
    import dataclasses

    import vqcodec.receivers as C

    codec = dataclasses.replace(codec, precision=precision)

    seen = {}
    for r in ("naive", "map", "spatial-mmse"):
        def spy(rx, grid, ctx, _r=r, _fn=C.REGISTRY[r]):
            seen.setdefault(_r, []).append(rx.hard.copy())
            return _fn(rx, grid, ctx)
        monkeypatch.setitem(C.REGISTRY, r, spy)
    ch = channels.get_channel("bsc", p=0.05)
    out = run_point(codec, encoded, ch, ["naive", "map", "spatial-mmse"], seed=0, param=0.05, stop=StopRule(3, 3),
                    with_ms_ssim=False)
    assert out["naive"]["bit_errors"] == out["map"]["bit_errors"] > 0
    assert len(seen["naive"]) == 3 * len(encoded)  # trials x images
    for r in ("map", "spatial-mmse"):
        assert len(seen[r]) == len(seen["naive"])
        assert all(np.array_equal(a, b) for a, b in zip(seen[r], seen["naive"])), r
    # and the realisations differ between trials of the same image
    assert not np.array_equal(seen["naive"][0], seen["naive"][len(encoded)])


def test_prepare_checkpoint_stores_prior_and_assignment(tiny_checkpoint, image_dir):
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.prior import prior_path
    from vqcodec.zoo import load_codec

    summary = prepare_checkpoint(tiny_checkpoint, image_dir, kodak_folder=image_dir)
    meta = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    assert sorted(meta["assignment"]) == list(range(16))
    assert prior_path(tiny_checkpoint).exists()
    assert summary["lam"] in (0.6, 0.8, 0.9, 0.95) and summary["beta"] in (0.4, 0.6, 0.8, 1.0)
    assert summary["assignment"]["final_cost"] <= summary["assignment"]["identity_cost"]
    assert 0 < meta["kodak"]["codebook_usage"] <= 1
    codec = load_codec(checkpoint=str(tiny_checkpoint))
    assert codec.prior is not None and codec.prior[0].lam == summary["lam"] and codec.prior[0].beta == summary["beta"]
    assert np.array_equal(codec.assignment, meta["assignment"])


def test_prepare_can_keep_the_checkpoint_assignment(tiny_checkpoint, image_dir):
    """A codebook trained for its assignment (train-codebook) keeps it; a broken one is refused."""
    from vqcodec.checkpoint import CheckpointError, write_checkpoint_meta
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.zoo import load_codec

    meta = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    mine = [int(v) for v in np.random.default_rng(5).permutation(16)]
    write_checkpoint_meta(tiny_checkpoint, {**meta, "assignment": mine})
    summary = prepare_checkpoint(tiny_checkpoint, image_dir, keep_assignment=True)
    assert summary["assignment"]["kept"] is True
    assert json.loads(tiny_checkpoint.with_suffix(".json").read_text())["assignment"] == mine
    assert np.array_equal(load_codec(checkpoint=str(tiny_checkpoint)).assignment, mine)
    write_checkpoint_meta(tiny_checkpoint, {**meta, "assignment": mine, "codebook_training": {}})
    prepare_checkpoint(tiny_checkpoint, image_dir)  # a trained codebook: kept by default
    assert json.loads(tiny_checkpoint.with_suffix(".json").read_text())["assignment"] == mine
    prepare_checkpoint(tiny_checkpoint, image_dir, keep_assignment=False)  # BSA chooses again
    assert json.loads(tiny_checkpoint.with_suffix(".json").read_text())["assignment"] != mine
    write_checkpoint_meta(tiny_checkpoint, {**meta, "assignment": [0] * 16})
    with pytest.raises(CheckpointError, match="invalid index assignment"):
        prepare_checkpoint(tiny_checkpoint, image_dir, keep_assignment=True)
    write_checkpoint_meta(tiny_checkpoint, {k: v for k, v in meta.items() if k != "assignment"})
    with pytest.raises(CheckpointError, match="no index assignment to keep"):
        prepare_checkpoint(tiny_checkpoint, image_dir, keep_assignment=True)


def test_encode_cache_follows_the_model_object_not_its_address(image_dir):
    """A freed model's address is reused by a new one; the new model must not get the old indices."""
    import gc

    import torch
    from conftest import tiny_config

    import vqcodec.simulate as sim
    from vqcodec.model import VQVAE
    from vqcodec.simulate import encode_array

    path = image_dir / "a.png"
    before = len(sim._CACHE)
    for seed in range(12):
        torch.manual_seed(seed)
        model = VQVAE(tiny_config()).eval()
        with torch.no_grad():
            model.quantizer.embedding.copy_(torch.randn(16, 4))
        codec = Codec(name="tiny", model=model, meta={"name": "tiny"}, assignment=identity_assignment(16))
        cached = encode_image(codec, path, False)
        fresh = encode_array(codec, path.name, cached.image, False)
        np.testing.assert_array_equal(cached.indices, fresh.indices)
        del model, codec, cached, fresh
        gc.collect()
    assert len(sim._CACHE) <= before  # no entry outlives its model: no later model can be handed one


def test_link_budget_counts_bits_channel_uses_and_the_bandwidth_ratio(tiny_model):
    """Two images of 20x28 and 16x16 pixels (816), 35 and 16 indices of 4 bits (140 + 64 bits):
    on 64-QAM each image fills whole symbols (24 + 11 = 35 uses), and cbr = uses / (3 x pixels)."""
    from vqcodec.simulate import EncodedImage, link_budget

    codec = Codec(name="tiny", model=tiny_model, meta={}, assignment=identity_assignment(16))
    assert codec.bits_per_index == 4

    def enc(h, w):
        img = np.zeros((h, w, 3), np.uint8)
        return EncodedImage("x", img, np.zeros((-(-h // 4), -(-w // 4)), np.int64), img, 99.0)

    encs = [enc(20, 28), enc(16, 16)]
    b = link_budget(codec, encs, channels.get_channel("awgn", snr_db=3.0, modulation="qam64"))
    assert b["source_bpp"] == b["channel_bpp"] == 204 / 816
    assert b["channel_uses_per_pixel"] == 35 / 816 and b["cbr"] == 35 / (3 * 816)
    b = link_budget(codec, encs, channels.get_channel("awgn", snr_db=3.0, modulation="qpsk"))
    assert b["cbr"] == (70 + 32) / (3 * 816)
    assert "cbr" not in link_budget(codec, encs, channels.get_channel("bsc", p=0.1))  # no complex uses


def test_a_sweep_interrupted_mid_point_continues_from_its_kept_trials():
    import copy

    import vqcodec.api as vq
    from vqcodec.simulate import UNFINISHED

    codec = vq.load()
    rng = np.random.default_rng(5)
    imgs = {n: rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for n in ("a", "b")}
    exp = vq.experiment(codec, "bsc", [0.02, 0.08], receivers=["naive", "spatial-mmse"], trials=3, min_trials=3,
                        with_ms_ssim=False)
    encs, desc = exp.encode(imgs)
    whole = exp.run(encs, desc)
    assert all(UNFINISHED not in r for r in whole)  # a finished sweep keeps no trials

    written = []

    def stop_after_two_rounds(res):
        written.append(copy.deepcopy(res))
        if [len(u["trials"]) for u in res[0].get(UNFINISHED, [])] == [2, 2]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        exp.run(encs, desc, on_point=stop_after_two_rounds)
    kept = written[-1]
    assert [r["points"] for r in kept] == [[], []]  # no point had its 3 trials: before, nothing survived
    assert [u["param"] for u in kept[0][UNFINISHED]] == [0.02, 0.08]
    trials = []
    resumed = exp.run(encs, desc, previous=kept, on_trial=lambda i, t: trials.append((i, t)))
    assert sorted(trials) == [(0, 3), (1, 3)]  # only the third trial of each point ran again
    assert [r["points"] for r in resumed] == [r["points"] for r in whole]

    first_write = []

    def stop_at_once(res):
        first_write.append(copy.deepcopy(res))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a resume interrupted at once keeps what it was given
        exp.run(encs, desc, previous=kept, on_point=stop_at_once)
    assert [[len(u["trials"]) for u in r[UNFINISHED]] for r in first_write[0]] == [[2, 2], [2, 2]]

    for bad in ({"psnr": [1.0]}, {"index_errors": 1e400}, {"counts": None}):  # one image's value lost, ...
        broken = copy.deepcopy(kept)
        broken[0][UNFINISHED][0]["trials"][0].update(bad)
        with pytest.raises(ValueError, match="cannot resume: the file's unfinished trials are malformed"):
            exp.run(encs, desc, previous=broken)
    for bad in (5, [1], ["x"], [{"param": [1]}], [{"trials": []}]):
        broken = copy.deepcopy(kept)
        broken[0][UNFINISHED] = bad
        with pytest.raises(ValueError, match="cannot resume: the file's unfinished trials are malformed"):
            exp.run(encs, desc, previous=broken)
