import json
import os

import pytest
import torch
from conftest import tiny_config

from vqcodec.checkpoint import CheckpointError
from vqcodec.model import VQVAE, ModelConfig, load_model, save_model


@pytest.mark.parametrize("f", [4, 8, 16])
def test_decode_encode_equals_forward_in_eval(f):
    torch.manual_seed(0)
    m = VQVAE(tiny_config(f=f)).eval()
    x = torch.rand(2, 3, 2 * f, 3 * f)
    with torch.no_grad():
        idx = m.encode(x)
        out = m(x)
        assert idx.shape == (2, 2, 3)
        assert torch.equal(idx, out["indices"])
        assert torch.allclose(m.decode(idx), out["x_hat"], atol=1e-6)


@pytest.mark.parametrize("H,W", [(1, 1), (3, 2), (5, 7), (9, 4), (17, 33)])
def test_any_size_is_padded(tiny_model, H, W):
    x = torch.rand(1, 3, H, W)
    idx = tiny_model.encode(x)
    assert idx.shape == (1, -(-H // 4), -(-W // 4))
    y = tiny_model.decode(idx)
    assert y.shape == (1, 3, idx.shape[1] * 4, idx.shape[2] * 4)


def test_decode_embeddings_of_codewords_equals_decode(tiny_model):
    idx = torch.randint(0, 16, (1, 3, 4))
    z = tiny_model.codebook[idx].permute(0, 3, 1, 2)
    assert torch.allclose(tiny_model.decode_embeddings(z), tiny_model.decode(idx))


def test_quantiser_picks_nearest_codeword(tiny_model):
    q = tiny_model.quantizer
    flat = torch.randn(100, 4)
    brute = torch.cdist(flat, q.embedding).argmin(1)
    assert torch.equal(q.nearest(flat), brute)


def test_ema_update_moves_codewords_towards_data():
    torch.manual_seed(0)
    m = VQVAE(tiny_config()).train()
    z = torch.randn(4, 4, 6, 6)
    q = m.quantizer
    out = q(z)  # first call: k-means initialisation on this batch
    assert bool(q.initialised)
    # the data moves away from the initial codebook: 50 EMA steps (decay 0.99) must follow it
    z = z + 1.0
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    start = q.embedding.clone()
    before = ((flat - q.embedding[q.nearest(flat)]) ** 2).sum()
    for _ in range(50):
        q(z)
    after = ((flat - q.embedding[q.nearest(flat)]) ** 2).sum()
    assert after < 0.7 * before
    assert (q.embedding - start).abs().max() > 0.3
    assert out["perplexity"] > 1


def test_dead_codes_are_restarted():
    torch.manual_seed(0)
    m = VQVAE(tiny_config(K=16)).train()
    q = m.quantizer
    q.initialised.fill_(1)
    q.embedding.copy_(torch.randn(16, 4) + 100.0)  # every code far from the data
    q.embedding[0] = 0.0
    q.cluster_size.fill_(0.0)
    q(torch.randn(2, 4, 8, 8))
    # all but the one used code were dead and now sit on data points (near the origin)
    assert (q.embedding.abs().max(dim=1).values < 10).sum() >= 15


def test_straight_through_gradient_reaches_encoder():
    torch.manual_seed(0)
    m = VQVAE(tiny_config()).train()
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    loss = ((out["x_hat"] - x) ** 2).mean() + 0.25 * out["commit_loss"]
    loss.backward()
    g = m.encoder.net[0].weight.grad
    assert g is not None and g.abs().sum() > 0


def test_config_validation():
    with pytest.raises(ValueError, match="f must be"):
        ModelConfig(f=5)
    with pytest.raises(ValueError, match="channels"):
        ModelConfig(f=8, channels=(8, 16))
    with pytest.raises(ValueError, match="K must"):
        ModelConfig(K=1)
    assert ModelConfig(f=4, K=256).bpp == 0.5
    assert ModelConfig(f=8, K=1024, channels=(1, 2, 3)).bpp == 10 / 64
    assert ModelConfig(f=4, K=100).bits_per_index == 7


def test_checkpoint_roundtrip(tmp_path, tiny_model):
    wpath, cpath = save_model(tiny_model, tmp_path / "m", {"name": "m"})
    mask = os.umask(0o022)
    os.umask(mask)
    assert {oct(p.stat().st_mode & 0o777) for p in (wpath, cpath)} == {oct(0o666 & ~mask)}  # not safetensors' 0600
    m2, meta = load_model(tmp_path / "m.json")
    assert meta["name"] == "m"
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(m2.encode(x), tiny_model.encode(x))
    assert torch.equal(m2.decode(m2.encode(x)), tiny_model.decode(tiny_model.encode(x)))


def test_corrupt_weights_give_checkpoint_error(tiny_checkpoint):
    w = tiny_checkpoint.with_suffix(".safetensors")
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt weights"):
        load_model(tiny_checkpoint)


def test_garbage_weights_give_checkpoint_error(tiny_checkpoint):
    tiny_checkpoint.with_suffix(".safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(CheckpointError):
        load_model(tiny_checkpoint)


def test_mismatched_config_gives_checkpoint_error(tiny_checkpoint):
    c = tiny_checkpoint.with_suffix(".json")
    doc = json.loads(c.read_text())
    doc["config"]["K"] = 32
    c.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tiny_checkpoint)


def test_corrupt_config_gives_checkpoint_error(tiny_checkpoint):
    tiny_checkpoint.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tiny_checkpoint)
    tiny_checkpoint.with_suffix(".json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not a vqcodec checkpoint"):
        load_model(tiny_checkpoint)


def test_decoding_does_not_depend_on_memory_layout(tiny_model):
    idx = torch.randint(0, 16, (1, 5, 7))
    z = tiny_model.codebook[idx]  # (1, h, w, d)
    a = tiny_model.decode(idx)
    b = tiny_model.decode_embeddings(z[0].permute(2, 0, 1)[None])  # other strides, same values
    assert torch.equal(a, b)


def test_checkpoint_names_with_dots(tmp_path, tiny_model):
    from vqcodec.checkpoint import checkpoint_paths

    w, c = checkpoint_paths(tmp_path / "f4-k256-bsc0.02")
    assert w.name == "f4-k256-bsc0.02.safetensors" and c.name == "f4-k256-bsc0.02.json"
    assert checkpoint_paths(tmp_path / "m.v2.json") == (tmp_path / "m.v2.safetensors", tmp_path / "m.v2.json")
    save_model(tiny_model, tmp_path / "a.b", {"name": "a.b"})
    assert load_model(tmp_path / "a.b")[1]["name"] == "a.b"


def _shipped():
    from vqcodec.zoo import REGISTRY

    return sorted(REGISTRY)


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_model_loads_and_codes_an_image(name):
    import numpy as np
    from skimage import data

    from vqcodec.metrics import psnr
    from vqcodec.receivers import Decision
    from vqcodec.simulate import decode_image, encode_array
    from vqcodec.zoo import load_codec

    img = data.astronaut()[100:164, 150:246].copy()
    codec = load_codec(name)
    enc = encode_array(codec, "crop", img, with_ms_ssim=False)
    grid = (-(-64 // codec.f), -(-96 // codec.f))
    assert enc.indices.shape == (grid if codec.model.stages == 1 else (codec.model.stages, *grid))
    out = decode_image(codec, Decision(enc.indices), 64, 96)
    assert out.shape == img.shape and np.isfinite(psnr(img, out)) and psnr(img, out) > 20.0
