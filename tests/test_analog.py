"""Deep JSCC (vqcodec.jscc, vqcodec.learn.jscc, vqcodec.analog) and the analog channels."""
import json

import numpy as np
import pytest
import torch

import vqcodec.api as vq
from channels.analog import AnalogAWGN, AnalogRayleighBlock
from vqcodec.analog import deepjscc_sweep
from vqcodec.checkpoint import CheckpointError
from vqcodec.jscc import DeepJSCC, JsccConfig, load_jscc, pad4, save_jscc, to_complex, transmit
from vqcodec.learn.jscc import train_jscc
from vqcodec.learn.loop import TrainConfig
from vqcodec.results import validate


def test_awgn_noise_power_is_es_over_n0():
    x = np.exp(2j * np.pi * np.random.default_rng(0).random(200_000)).astype(np.complex64)  # |x| = 1
    for snr in (0.0, 10.0):
        y = AnalogAWGN(snr)(x, np.random.default_rng(1))
        n0 = np.mean(np.abs(y - x) ** 2)
        assert n0 == pytest.approx(10 ** (-snr / 10), rel=0.02)
        assert np.mean((y - x).real ** 2) == pytest.approx(n0 / 2, rel=0.03)  # circular
    a, b = AnalogAWGN(3.0)(x, np.random.default_rng(5)), AnalogAWGN(3.0)(x, np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="snr_db"):
        AnalogAWGN(float("nan"))


def test_rayleigh_block_equalised_noise_follows_the_fade():
    x = np.ones(64 * 4000, np.complex64)
    ch = AnalogRayleighBlock(20.0, block=64)
    e = (ch(x, np.random.default_rng(0)) - x).reshape(-1, 64)
    # within a block the noise is N0 / |h|^2 of that block: per-block powers spread over decades
    p = np.mean(np.abs(e) ** 2, axis=1)
    assert np.percentile(p, 90) / np.percentile(p, 10) > 20
    assert np.median(p) == pytest.approx(0.01 / np.log(2), rel=0.25)  # median of N0/|h|^2, |h|^2 ~ Exp(1)
    assert np.allclose(AnalogRayleighBlock(60.0, 8)(x[:64], np.random.default_rng(1)), x[:64], atol=0.05)


def test_power_normalisation_and_bandwidth_ratio():
    torch.manual_seed(0)
    net = DeepJSCC(JsccConfig(c=8, width=8)).eval()
    img = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    with torch.no_grad():
        z = net.encode(pad4(img))
    s = to_complex(z)
    assert z.shape == (1, 8, 10, 13) and np.mean(np.abs(s) ** 2) == pytest.approx(1.0, rel=1e-4)
    out, uses = transmit(net, img, AnalogAWGN(10.0), np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and uses == s.size == 8 * 10 * 13 // 2
    assert JsccConfig(c=8).cbr == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="even"):
        JsccConfig(c=7)


def test_training_learns_resumes_bit_for_bit_and_checkpoints_round_trip(tmp_path, image_dir):
    cfg = JsccConfig(c=8, width=8)
    tc = TrainConfig(steps=40, batch=4, crop=16, lr=3e-3, warmup=5, checkpoint_every=20, log_every=10)
    train_jscc(cfg, tc, image_dir, tmp_path / "a")
    first, _ = load_jscc(checkpoint=tmp_path / "a")
    hist = json.loads((tmp_path / "a.json").read_text())["history"]
    assert hist[-1]["mse"] < hist[0]["mse"]  # it learns
    def stop_at_30(step, metrics):  # the last checkpoint before it is step 20
        if step == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_jscc(cfg, tc, image_dir, tmp_path / "b", progress=stop_at_30)
    seen = []
    train_jscc(cfg, tc, image_dir, tmp_path / "b", resume=True, progress=lambda step, m: seen.append(step))
    assert seen == [30, 40]  # continued from step 20, not retrained
    second, _ = load_jscc(checkpoint=tmp_path / "b")
    for (k, v), (_, w) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(v, w), k
    save_jscc(first, tmp_path / "c")
    again, meta = load_jscc(checkpoint=tmp_path / "c")
    assert meta["jscc"] == {"c": 8, "width": 8}
    (tmp_path / "c.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="corrupt Deep JSCC checkpoint"):
        load_jscc(checkpoint=tmp_path / "c")
    with pytest.raises(CheckpointError, match="unknown Deep JSCC model"):
        load_jscc("nope")


def test_sweep_points_carry_the_channel_noise_and_repeat_with_the_seed(tmp_path, image_dir):
    from PIL import Image

    cfg = JsccConfig(c=8, width=8)
    train_jscc(cfg, TrainConfig(steps=60, batch=4, crop=16, lr=3e-3, warmup=5, checkpoint_every=60), image_dir,
               tmp_path / "m")
    images = [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in sorted(image_dir.iterdir())]
    res = deepjscc_sweep(images, "awgn", [-20.0, 50.0], checkpoint=tmp_path / "m", trials=2, seed=3)
    validate(res, "sweep")
    low, high = res["points"]
    assert high["psnr"]["mean"] == pytest.approx(high["psnr_clean"], abs=0.02)  # no noise left at 50 dB
    assert abs(low["psnr"]["mean"] - low["psnr_clean"]) > 0.1 and low["psnr"]["ci95"] > 0  # the noise arrives
    uses = sum(4 * -(-im.shape[0] // 4) * -(-im.shape[1] // 4) for _, im in images)  # c / 2 per 4x4 block
    pixels = sum(im.shape[0] * im.shape[1] for _, im in images)
    assert high["cbr"] == pytest.approx(uses / (3 * pixels)) and res["model"]["kind"] == "deepjscc"
    assert deepjscc_sweep(images, "awgn", [-20.0, 50.0], checkpoint=tmp_path / "m", trials=2, seed=3)["points"] \
        == res["points"]  # same seed, same noise
    fading = deepjscc_sweep(images, "fading", [10.0], checkpoint=tmp_path / "m", trials=1, block=4)
    assert fading["channel"]["block_symbols"] == 4 and fading["points"][0]["psnr"]["ci95"] is None
    with pytest.raises(ValueError, match="awgn or fading"):
        deepjscc_sweep(images, "bsc", [0.1], checkpoint=tmp_path / "m")


def test_deepjscc_baseline_options_are_checked():
    codec = vq.load()
    with pytest.raises(ValueError, match="analog symbols: use awgn or fading"):
        vq.experiment(codec, "bsc", [0.01], baselines="deepjscc")
    with pytest.raises(ValueError, match="takes no code"):
        vq.experiment(codec, "awgn", [1.0], modulation="qam16", code="ldpc-1/2", baselines="deepjscc")
    with pytest.raises(ValueError, match="named twice"):
        vq.experiment(codec, "awgn", [1.0], baselines="deepjscc,deepjscc")
    assert vq.experiment(codec, "awgn", [1.0], baselines="deepjscc").baselines == ["deepjscc"]


def test_deep_jscc_trains_at_the_channels_noise_level(tmp_path, image_dir, monkeypatch):
    """The training loop's noise at Es/N0 s is the channel's: both take channels.analog.noise_std,
    and its level is sqrt(N0 / 2) per real dimension (measured on the channel, recorded in training)."""
    import torch

    import vqcodec.learn.jscc as lj
    from channels.analog import AnalogAWGN, noise_std

    rng = np.random.default_rng(0)
    for snr in (0.0, 7.0):
        y = AnalogAWGN(snr)(np.zeros(200000, np.complex64), rng)
        assert np.var(y.real) == pytest.approx(10 ** (-snr / 10) / 2, rel=0.02)
        assert noise_std(snr) == pytest.approx(np.sqrt(10 ** (-snr / 10) / 2))
    seen = []
    monkeypatch.setattr(lj, "noise_std", lambda s: seen.append(s.clone()) or noise_std(s))
    tc = TrainConfig(steps=2, batch=4, crop=16, warmup=1, checkpoint_every=2, precision="fp32")
    lj.train_jscc(JsccConfig(c=8, width=8), tc, image_dir, tmp_path / "n", snr_range=(3.0, 3.0))
    assert len(seen) == 2 and all(torch.allclose(s, torch.full((4,), 3.0)) for s in seen)
