import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

from vqcodec.learn.codec import train
from vqcodec.learn.loop import TrainConfig, lr_at
from vqcodec.model import load_model


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.01)
    assert lr_at(0, tc) == pytest.approx(0.1)
    assert lr_at(9, tc) == pytest.approx(1.0)
    assert lr_at(99, tc) == pytest.approx(0.01, abs=1e-3)
    vals = [lr_at(s, tc) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_twenty_steps_lower_the_loss(tmp_path, image_dir):
    torch.set_num_threads(1)
    tc = TrainConfig(steps=20, batch=4, crop=16, lr=3e-3, warmup=2, log_every=1, checkpoint_every=100)
    hist = []
    train(tiny_config(), tc, image_dir, tmp_path / "m", progress=lambda s, m: hist.append(m["loss"]))
    assert len(hist) == 20
    assert np.mean(hist[-5:]) < np.mean(hist[:5])
    model, meta = load_model(tmp_path / "m")
    assert meta["training"]["steps_done"] == 20 and meta["config"]["K"] == 16


def test_resume_gives_the_same_model(tmp_path, image_dir):
    torch.set_num_threads(1)
    tc = TrainConfig(steps=6, batch=2, crop=16, warmup=1, log_every=1, checkpoint_every=3)
    train(tiny_config(), tc, image_dir, tmp_path / "full")
    # interrupted run: stop after the checkpoint at step 3, then resume
    tc3 = TrainConfig(steps=6, batch=2, crop=16, warmup=1, log_every=1, checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        def stop(step, m):
            if step == 4:
                raise KeyboardInterrupt
        train(tiny_config(), tc3, image_dir, tmp_path / "part", progress=stop)
    assert json.loads((tmp_path / "part.train.json").read_text())["step"] == 3
    steps = []  # a resume that retrained from scratch would report steps 1..6
    train(tiny_config(), tc3, image_dir, tmp_path / "part", resume=True, progress=lambda s, m: steps.append(s))
    assert steps == [4, 5, 6]
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    for (k, v), (_, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(v.float(), v2.float(), atol=1e-6), k


def test_finetune_keeps_encoder_and_codebook(tmp_path, image_dir, tiny_model):
    import channels
    from vqcodec.bits import identity_assignment
    from vqcodec.learn.through_channel import FinetuneConfig, finetune_decoder
    from vqcodec.prior import learn_prior
    from vqcodec.simulate import encode_image
    from vqcodec.zoo import Codec

    torch.set_num_threads(1)
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16))
    grids = [encode_image(codec, p, False).indices for p in sorted(image_dir.iterdir())]
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16),
                  prior=(learn_prior(grids, 16),))
    ch = channels.get_channel("bsc", p=0.05)
    hist = []
    finetune_decoder(codec, ch, "naive", image_dir, FinetuneConfig(steps=30, batch=4, crop=16, lr=3e-3, warmup=2,
                                                                   log_every=1),
                     tmp_path / "ft", progress=lambda s, m: hist.append(m["loss"]))
    ft, meta = load_model(tmp_path / "ft")
    assert meta["finetune"]["receiver"] == "naive" and meta["finetune"]["channel"]["p"] == 0.05
    assert torch.equal(ft.codebook, tiny_model.codebook)
    for a, b in zip(ft.encoder.parameters(), tiny_model.encoder.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(ft.decoder.parameters(), tiny_model.decoder.parameters()))
    assert np.mean(hist[-5:]) < np.mean(hist[:5])


def test_tensor_crop_sampler_draws_true_windows_with_flips():
    from vqcodec.learn.codec import TensorCropSampler

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 31, 3), dtype=np.uint8), rng.integers(0, 256, (27, 18, 3), dtype=np.uint8)]
    s = TensorCropSampler(images, 8, "cpu", seed=3)
    crops = (s.sample(64) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    seen_flips = set()
    for c in crops:
        found = None
        for im in images:
            for y in range(im.shape[0] - 7):
                for x in range(im.shape[1] - 7):
                    win = im[y:y + 8, x:x + 8]
                    for fv in (False, True):
                        for fh in (False, True):
                            w = win[::-1] if fv else win
                            w = w[:, ::-1] if fh else w
                            if np.array_equal(w, c):
                                found = (fv, fh)
        assert found is not None, "a crop is not a (flipped) window of a training image"
        seen_flips.add(found)
    assert len(seen_flips) == 4
    with pytest.raises(ValueError, match="smaller than the crop"):
        TensorCropSampler(images, 21, "cpu")


@pytest.fixture
def trained_tiny(tmp_path, image_dir):
    """A tiny model trained for 150 steps, so that its indices carry information about the image."""
    torch.set_num_threads(1)
    train(tiny_config(), TrainConfig(steps=150, batch=4, crop=16, lr=3e-3, warmup=2, checkpoint_every=10**6),
          image_dir, tmp_path / "base")
    return load_model(tmp_path / "base")[0]


def _codec_of(model, image_dir):
    from vqcodec.bits import identity_assignment
    from vqcodec.prior import learn_prior
    from vqcodec.simulate import encode_image
    from vqcodec.zoo import Codec

    codec = Codec(name="tiny", model=model, meta={"name": "tiny", "assignment": list(range(16))},
                  assignment=identity_assignment(16))
    grids = [encode_image(codec, p, False).indices for p in sorted(image_dir.iterdir())]
    return Codec(name="tiny", model=model, meta=codec.meta, assignment=codec.assignment,
                 prior=(learn_prior(grids, 16),))


def test_train_decoder_new_architecture_keeps_the_transmitter(tmp_path, image_dir, trained_tiny):
    import dataclasses

    from vqcodec.learn.codec import train_decoder
    from vqcodec.prior import prior_path

    torch.set_num_threads(1)
    tiny_model = trained_tiny
    codec = _codec_of(tiny_model, image_dir)
    cfg = dataclasses.replace(tiny_model.cfg, decoder_channels=12, decoder_res_blocks=2, decoder_head="subpixel")
    hist = []
    train_decoder(codec, cfg, TrainConfig(steps=150, batch=4, crop=16, lr=3e-3, warmup=2, log_every=1),
                  image_dir, tmp_path / "dec", progress=lambda s, m: hist.append(m["loss"]))
    new, meta = load_model(tmp_path / "dec")
    assert meta["config"]["decoder_head"] == "subpixel" and meta["config"]["decoder_channels"] == 12
    assert meta["training"]["decoder_only"] and meta["training"]["steps_done"] == 150
    assert meta["assignment"] == list(range(16))  # side information carried over
    assert prior_path(tmp_path / "dec").exists()
    assert torch.equal(new.codebook, tiny_model.codebook)
    for a, b in zip(new.encoder.parameters(), tiny_model.encoder.parameters()):
        assert torch.equal(a, b)
    x = torch.rand(2, 3, 24, 20)
    assert torch.equal(new.encode(x), tiny_model.encode(x))
    assert new.decode(new.encode(x)).shape == (2, 3, 24, 20)
    assert np.mean(hist[-10:]) < 0.8 * np.mean(hist[:10])


def test_train_decoder_rejects_a_different_transmitter(tmp_path, image_dir, tiny_model):
    import dataclasses

    from vqcodec.learn.codec import train_decoder

    codec = _codec_of(tiny_model, image_dir)
    with pytest.raises(ValueError, match="must keep the base model"):
        train_decoder(codec, dataclasses.replace(tiny_model.cfg, K=32), TrainConfig(steps=2), image_dir, tmp_path / "x")
    with pytest.raises(ValueError, match="warm-up of at least"):
        train_decoder(codec, tiny_model.cfg, TrainConfig(steps=2, warmup=10), image_dir, tmp_path / "x", minutes=1.0)


def test_train_decoder_time_budget_fixes_the_step_count(tmp_path, image_dir, tiny_model, monkeypatch):
    """A fake clock that the training loop reads: each step costs 1/256 s until the calibration
    ends at step 480, then twice that. A 3 s budget fixes 480 + (3 - 1.875) * 256 = 768 steps; the
    slowed-down run crosses 1.1 x 3 s at step 663 and stops there."""
    import types

    import vqcodec.learn.codec as C
    import vqcodec.learn.loop as L

    clock = {"t": 0.0, "n": 0}
    sample = C.TensorCropSampler.sample

    def timed_sample(self, batch):
        clock["n"] += 1
        clock["t"] += (1 if clock["n"] <= 480 else 2) / 256
        return sample(self, batch)

    monkeypatch.setattr(L, "time", types.SimpleNamespace(time=lambda: clock["t"]))
    monkeypatch.setattr(C.TensorCropSampler, "sample", timed_sample)
    torch.set_num_threads(1)
    codec = _codec_of(tiny_model, image_dir)
    C.train_decoder(codec, tiny_model.cfg, TrainConfig(steps=10**6, batch=1, crop=8, warmup=500, log_every=100,
                                                       checkpoint_every=10**6), image_dir, tmp_path / "t",
                    minutes=0.05)
    meta = json.loads((tmp_path / "t.json").read_text())["training"]
    assert meta["train_config"]["steps"] == 768
    assert meta["stopped_early"] is True and meta["steps_done"] == 663 == clock["n"]
    assert meta["seconds"] == 3.3


def _noisy_mse(model, assignment, image_dir, p: float, draws: int = 12) -> float:
    """Mean pixel MSE of the channel-only MMSE reconstruction (flat prior) through BSC p."""
    import channels
    from vqcodec.bits import indices_to_bits
    from vqcodec.context import channel_loglik, label_signs
    from vqcodec.images import load_image, to_tensor
    from vqcodec.receivers import bit_llrs

    rng = np.random.default_rng(0)
    ch = channels.get_channel("bsc", p=p)
    signs = torch.from_numpy(label_signs(assignment, model.K))
    errs = []
    with torch.no_grad():
        for path in sorted(image_dir.iterdir()):
            x = to_tensor(load_image(path))
            idx = model.encode(x)[0].numpy()
            for _ in range(draws):
                llr = torch.from_numpy(bit_llrs(ch(indices_to_bits(idx, model.K, assignment), rng), ch, 4)
                                       .astype(np.float32))
                z = torch.softmax(channel_loglik(llr, signs), -1) @ model.codebook
                x_hat = model.decode_embeddings(z.view(1, *idx.shape, -1).permute(0, 3, 1, 2))
                errs.append(float(((x_hat[..., :x.shape[2], :x.shape[3]] - x) ** 2).mean()))
    return float(np.mean(errs))


def test_train_codebook_makes_bit_errors_cheaper_than_clean_training(tmp_path, image_dir, trained_tiny):
    """The same steps and seed with every crop clean (clean_fraction = 1) is the control: training
    through the channel must give a lower noisy reconstruction error and a codebook whose
    one-flip neighbours (under the fixed assignment) lie closer together."""
    from vqcodec.assignment import one_flip_cost
    from vqcodec.learn.through_channel import CodebookConfig, train_codebook

    codec = _codec_of(trained_tiny, image_dir)
    cc = CodebookConfig(steps=80, batch=4, crop=16, lr=3e-3, codebook_lr=3e-3, warmup=2, p_min=0.05, p_max=0.1,
                        log_every=1)
    hist = []
    train_codebook(codec, image_dir, cc, tmp_path / "covq", progress=lambda s, m: hist.append(m))
    train_codebook(codec, image_dir, dataclasses.replace(cc, clean_fraction=1.0), tmp_path / "clean")
    assert len(hist) == 80 and all(np.isfinite(m["psnr"]) for m in hist)
    covq, meta = load_model(tmp_path / "covq")
    clean, _ = load_model(tmp_path / "clean")
    for m in (covq, clean):
        for a, b in zip(m.encoder.parameters(), trained_tiny.encoder.parameters()):
            assert torch.equal(a, b)
    assert not torch.equal(covq.codebook, trained_tiny.codebook)
    q = covq.quantizer  # the EMA buffers agree with the trained codebook (embedding = embed_sum / size)
    n = q.cluster_size.sum()
    size = (q.cluster_size + q.eps) / (n + 16 * q.eps) * n
    assert torch.allclose(q.embed_sum / size[:, None], covq.codebook, atol=1e-6)
    assert meta["assignment"] == list(range(16)) and "prior" not in meta and "context" not in meta
    assert meta["codebook_training"]["config"]["p_max"] == 0.1
    a = codec.assignment
    n_covq, n_clean = _noisy_mse(covq, a, image_dir, 0.07), _noisy_mse(clean, a, image_dir, 0.07)
    assert n_covq < n_clean
    uni = np.full(16, 1 / 16)
    assert one_flip_cost(covq.codebook.numpy().astype(np.float64), uni, a) < \
        one_flip_cost(clean.codebook.numpy().astype(np.float64), uni, a)


def test_codebook_config_rejects_bad_ranges():
    from vqcodec.learn.through_channel import CodebookConfig

    for kw in ({"p_min": 0.2, "p_max": 0.1}, {"p_min": 0.0}, {"p_max": 0.5}, {"clean_fraction": 1.5}):
        with pytest.raises(ValueError):
            CodebookConfig(**kw)


def test_time_budget_fixes_the_step_count_that_fills_it(monkeypatch):
    """Steps 300..480 are timed (here 0.5 s each on a fake clock): with 10 minutes and 480 steps done at
    240 s, 360 s are left, i.e. 720 more steps; past 1.1 x the budget the run is over."""
    import vqcodec.learn.loop as lc

    clock = {"t": 1000.0}
    monkeypatch.setattr(lc.time, "time", lambda: clock["t"])
    tc = lc.TrainConfig(steps=5, warmup=500)
    budget = lc.TimeBudget(10.0, tc)
    for step in range(481):
        clock["t"] = 1000.0 + 0.5 * step
        tc = budget.schedule(step, tc)
        assert not budget.over()
    assert tc.steps == 480 + 720
    clock["t"] = 1000.0 + 1.1 * 600 + 1
    assert budget.over() and budget.stopped_early
    with pytest.raises(ValueError, match="warm-up"):
        lc.TimeBudget(1.0, lc.TrainConfig(warmup=100))
    with pytest.raises(ValueError, match="positive"):
        lc.TimeBudget(float("nan"), tc)
    assert lc.TimeBudget(None, lc.TrainConfig(warmup=1)).schedule(300, tc) is tc  # no budget: nothing changes


@pytest.mark.parametrize("command", ["train", "train-jscc"])
def test_minutes_stop_a_training_on_time_and_leave_a_resumable_checkpoint(tmp_path, image_dir, command):
    import json

    from click.testing import CliRunner

    from cli import main

    out = tmp_path / "m"
    args = [command, "--images", str(image_dir), "-o", str(out), "--crop", "16", "--batch", "2", "--threads", "1",
            "--device", "cpu", "--minutes", "0.004"]
    if command == "train":
        args += ["--channels", "8,8", "--decoder-channels", "8"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    assert training["minutes"] == 0.004 and training["stopped_early"]
    assert 0 < training["steps_done"] < training["train_config"]["steps"]
    assert out.with_name("m.train.safetensors").exists()  # the state of the stopped run, for --resume --steps
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 1 and "--minutes" in r.output and "Traceback" not in r.output
