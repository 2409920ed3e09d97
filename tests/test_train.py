import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from vqcodec.model import load_model
from vqcodec.train import TrainConfig, lr_at, train


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
    train(tiny_config(), tc3, image_dir, tmp_path / "part", resume=True)
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(v.float(), v2.float(), atol=1e-6), k


def test_finetune_keeps_encoder_and_codebook(tmp_path, image_dir, tiny_model):
    import channels
    from vqcodec.bits import identity_assignment
    from vqcodec.model import save_model
    from vqcodec.prior import learn_prior
    from vqcodec.simulate import encode_image
    from vqcodec.train import FinetuneConfig, finetune_decoder
    from vqcodec.zoo import Codec

    torch.set_num_threads(1)
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16))
    grids = [encode_image(codec, p, False).indices for p in sorted(image_dir.iterdir())]
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16),
                  prior=learn_prior(grids, 16))
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
