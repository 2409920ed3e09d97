"""Residual vector quantisation (ModelConfig.stages > 1): shapes, prefix decoding, the residual
cascade, dead-code restart, checkpoints old and new, training with stage dropout."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

from vqcodec.checkpoint import CheckpointError
from vqcodec.model import VQVAE, ModelConfig, ResidualQuantizer, load_model, save_model


def rvq_config(S=3, dropout=False, **kw):
    return dataclasses.replace(tiny_config(**kw), stages=S, stage_dropout=dropout)


@pytest.fixture
def rvq_model():
    """A 3-stage tiny model whose stages were k-means initialised on one training batch."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = VQVAE(rvq_config()).train()
    m(torch.rand(4, 3, 32, 32))
    return m.eval()


def test_config_stages_rate_and_validation():
    cfg = ModelConfig(f=8, K=256, channels=(32, 64, 128), stages=4, stage_dropout=True)
    assert cfg.bits_per_index == 8 and cfg.bits_per_site == 32 and cfg.bpp == 0.5
    assert [cfg.bpp_at(s) for s in (1, 2, 3, 4)] == [0.125, 0.25, 0.375, 0.5]
    assert ModelConfig().bits_per_site == 8 and ModelConfig().bpp == 0.5
    with pytest.raises(ValueError, match="stage_dropout needs"):
        ModelConfig(stage_dropout=True)
    with pytest.raises(ValueError, match="stages must"):
        ModelConfig(stages=0)


def test_decode_encode_equals_forward_in_eval(rvq_model):
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        idx = rvq_model.encode(x)
        out = rvq_model(x)
    assert idx.dtype == torch.int64 and idx.shape == (2, 3, 5, 7)
    assert torch.equal(idx, out["indices"])
    assert out["stages_used"] == 3 and out["perplexities"].shape == (3,) and out["usage"].shape == (3,)
    assert torch.allclose(rvq_model.decode(idx), out["x_hat"], atol=1e-6)
    # the stages are not copies of each other: later stages carry information
    assert not torch.equal(idx[:, 1], idx[:, 0]) and rvq_model.codebooks.shape == (3, 16, 4)


def test_prefix_decoding_is_the_sum_of_the_first_codewords(rvq_model):
    x = torch.rand(1, 3, 16, 24)
    idx = rvq_model.encode(x)
    cbs = rvq_model.codebooks
    with torch.no_grad():
        for s in (1, 2, 3):
            z = sum(cbs[j][idx[0, j]] for j in range(s)).permute(2, 0, 1)[None]  # (1, d, h, w)
            assert torch.allclose(rvq_model.decode(idx[:, :s]), rvq_model.decode_embeddings(z), atol=1e-6)
            assert torch.allclose(rvq_model.decode(idx[:, :s]), rvq_model(x, n_stages=s)["x_hat"], atol=1e-6)
        assert not torch.allclose(rvq_model.decode(idx[:, :1]), rvq_model.decode(idx))
    with pytest.raises(ValueError, match="B, s, h, w"):
        rvq_model.decode(idx[:, 0])
    with pytest.raises(ValueError, match="1 <= s <= 3"):
        rvq_model.decode(torch.cat([idx, idx[:, :1]], 1))


def test_residual_error_does_not_increase_with_stages():
    torch.manual_seed(0)
    q = ResidualQuantizer(4, 16, 6).train()
    z = torch.randn(8, 6, 10, 10)
    q(z)  # k-means initialisation of every stage on its residuals (and one EMA step)
    q.eval()
    flat = z.permute(0, 2, 3, 1).reshape(-1, 6)
    idx = q.nearest(flat)
    errs, acc = [float((flat ** 2).sum())], torch.zeros_like(flat)
    for s in range(4):
        acc = acc + q.stages[s].embedding[idx[:, s]]
        errs.append(float(((flat - acc) ** 2).sum()))
    assert all(b <= a + 1e-4 for a, b in zip(errs, errs[1:])), errs
    assert errs[4] < 0.6 * errs[1] < 0.6 * errs[0], errs  # the later stages do real work
    with torch.no_grad():  # forward agrees with nearest
        assert torch.equal(q(z)["indices"].permute(0, 2, 3, 1).reshape(-1, 4), idx)


def test_dead_code_restart_revives_an_unused_entry_of_a_later_stage():
    torch.manual_seed(0)
    q = ResidualQuantizer(2, 16, 4).train()
    q.generator = torch.Generator().manual_seed(1)
    z = torch.randn(4, 4, 8, 8)
    q(z)  # initialise both stages
    st = q.stages[1]
    with torch.no_grad():
        st.embedding[5] = 100.0  # far from every residual: never chosen
        st.embed_sum[5] = 100.0
        st.cluster_size[5] = 0.0
    out1 = q(z)
    assert not (out1["indices"][:, 1] == 5).any()
    assert st.embedding[5].abs().max() < 10  # re-seeded from this batch's stage-1 residuals
    out2 = q(z)
    assert (out2["indices"][:, 1] == 5).any()  # and used again


def test_commit_loss_sums_the_stages_and_gradients_reach_the_encoder(rvq_model):
    m = rvq_model  # eval mode: no EMA step, gradients all the same
    x = torch.rand(2, 3, 16, 16)
    z = m.encoder(x)
    idx = m.quantizer.nearest(z.detach().permute(0, 2, 3, 1).reshape(-1, 4))
    cbs = m.codebooks
    for n in (1, 3):
        out = m(x, n_stages=n)
        assert torch.equal(out["indices"].permute(0, 2, 3, 1).reshape(-1, 3), idx)
        acc, want = 0, 0.0
        for s in range(n):
            acc = acc + cbs[s][idx[:, s]].view(2, 4, 4, 4).permute(0, 3, 1, 2)
            want += float(((z.detach() - acc) ** 2).mean())
        assert out["commit_loss"].item() == pytest.approx(want, rel=1e-5)
        m.zero_grad()
        out["commit_loss"].backward(retain_graph=True)
        assert m.encoder.net[0].weight.grad.abs().sum() > 0
        m.zero_grad()
        ((out["x_hat"] - x) ** 2).mean().backward()  # straight-through
        assert m.encoder.net[0].weight.grad.abs().sum() > 0


def test_stage_dropout_draws_every_prefix_in_training_only():
    q = ResidualQuantizer(3, 8, 4, dropout=True).train()
    q.generator = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 4, 4)
    used = {q(z)["stages_used"] for _ in range(40)}
    assert used == {1, 2, 3}
    assert {q.eval()(z)["stages_used"] for _ in range(5)} == {3}


def test_old_config_without_stages_loads_as_one_stage(tmp_path, tiny_model):
    cfg = ModelConfig.from_dict({k: v for k, v in tiny_model.cfg.to_dict().items()
                                 if k not in ("stages", "stage_dropout")})
    assert cfg == tiny_model.cfg and cfg.stages == 1 and not cfg.stage_dropout
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    save_model(tiny_model, tmp_path / "old", {"name": "old"})
    c = tmp_path / "old.json"
    doc = json.loads(c.read_text())
    del doc["config"]["stages"], doc["config"]["stage_dropout"]
    c.write_text(json.dumps(doc))
    m, _ = load_model(tmp_path / "old")
    x = torch.rand(1, 3, 12, 16)
    assert m.encode(x).shape == (1, 3, 4)
    assert torch.equal(m.encode(x), tiny_model.encode(x))
    assert torch.equal(m.decode(m.encode(x)), tiny_model.decode(tiny_model.encode(x)))
    # a one-stage model also takes (B, 1, h, w)
    assert torch.equal(m.decode(m.encode(x)[:, None]), m.decode(m.encode(x)))


def test_checkpoint_roundtrip_with_stages(tmp_path, rvq_model):
    save_model(rvq_model, tmp_path / "r", {"name": "r"})
    m, meta = load_model(tmp_path / "r")
    assert meta["config"]["stages"] == 3 and m.cfg == rvq_model.cfg
    assert "quantizer.stages.2.embedding" in m.state_dict()
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(m.encode(x), rvq_model.encode(x))
    assert torch.equal(m.codebooks, rvq_model.codebooks)
    assert torch.equal(m.decode(m.encode(x)), rvq_model.decode(rvq_model.encode(x)))
    doc = json.loads((tmp_path / "r.json").read_text())
    doc["config"]["stages"] = 2
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "r")


def test_thirty_steps_with_stage_dropout_lower_the_loss(tmp_path, image_dir):
    """On fixed crops, at every prefix of the stages: the trained model against the same
    initialisation whose codebooks only got their k-means start (per-step losses of random
    crops are too noisy to tell 30 steps of training from none)."""
    from vqcodec.learn.codec import CropSampler, load_training_images, train
    from vqcodec.learn.loop import TrainConfig

    torch.set_num_threads(1)
    cfg = rvq_config(S=3, dropout=True)
    xs = CropSampler(load_training_images(image_dir)[0], 16).sample(16, np.random.default_rng(123))
    torch.manual_seed(0)  # the trainer's initialisation (seed 0)
    m0 = VQVAE(cfg).train()
    m0.quantizer.generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m0(xs)
    m0.eval()
    tc = TrainConfig(steps=30, batch=4, crop=16, lr=3e-3, warmup=2, log_every=1, checkpoint_every=100)
    hist = []
    train(cfg, tc, image_dir, tmp_path / "m", progress=lambda s, m: hist.append(m))
    assert len(hist) == 30 and all(np.isfinite(h["loss"]) for h in hist)
    assert len(hist[-1]["perplexity_stages"]) == 3 and 1 < hist[-1]["stages_used"] < 3
    m1, meta = load_model(tmp_path / "m")
    assert meta["config"]["stages"] == 3 and meta["config"]["stage_dropout"]
    assert m1.encode(torch.rand(1, 3, 16, 16)).shape == (1, 3, 4, 4)
    with torch.no_grad():
        for s in (1, 2, 3):
            before = float(((m0(xs, n_stages=s)["x_hat"] - xs) ** 2).mean())
            after = float(((m1(xs, n_stages=s)["x_hat"] - xs) ** 2).mean())
            assert after < 0.85 * before, (s, before, after)


def test_resume_with_stage_dropout_gives_the_same_model(tmp_path, image_dir):
    from vqcodec.learn.codec import train
    from vqcodec.learn.loop import TrainConfig

    torch.set_num_threads(1)
    cfg = rvq_config(S=2, dropout=True)
    tc = TrainConfig(steps=6, batch=2, crop=16, warmup=1, log_every=1, checkpoint_every=3)
    train(cfg, tc, image_dir, tmp_path / "full")

    def stop(step, m):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tc, image_dir, tmp_path / "part", progress=stop)
    train(cfg, tc, image_dir, tmp_path / "part", resume=True)
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and torch.allclose(v.float(), v2.float(), atol=1e-6), k


def test_cli_train_with_stages(tmp_path, image_dir):
    from click.testing import CliRunner

    from cli import main

    out = tmp_path / "c"
    args = ["train", "--images", str(image_dir), "--out", str(out), "--K", "16", "--d", "4", "--channels", "8,16",
            "--decoder-channels", "12", "--stages", "2", "--stage-dropout", "--steps", "3", "--batch", "2",
            "--crop", "16", "--threads", "1", "--device", "cpu"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.with_suffix(".json").read_text())["config"]
    assert cfg["stages"] == 2 and cfg["stage_dropout"] and cfg["decoder_channels"] == 12
    r = CliRunner().invoke(main, args[:args.index("--stages")] + ["--stage-dropout", "--steps", "1"])
    assert r.exit_code == 1 and "stage_dropout needs stages > 1" in r.output


def test_mmse_receiver_sums_each_stage_expected_codeword():
    """Brute force on a 2-stage, K = 4 toy: per stage and site, q_k = prod_j P(bit j = label(k)_j | llr_j)
    normalised, and the decoder input is sum over stages of sum_k q_k e_{s,k}; erased bits (LLR 0)
    give the stage's mean codeword."""
    from channels import Received
    from vqcodec.bits import labels_to_bits
    from vqcodec.receivers import ReceiverContext, get_receiver

    rng = np.random.default_rng(5)
    S, K, d, grid = 2, 4, 3, (2, 1, 3)
    cbs = rng.normal(size=(S, K, d)).astype(np.float32)
    assignment = np.array([2, 0, 3, 1])
    llr = (2.5 * rng.normal(size=S * 3 * 2)).astype(np.float32)
    llr[-2:] = 0.0  # the last site of stage 2 erased
    ctx = ReceiverContext(K=K, assignment=assignment, codebook=cbs[0], codebooks=cbs)
    dec = get_receiver("mmse")(Received(hard=(llr < 0).astype(np.int8), llr=llr), grid, ctx)
    bits = labels_to_bits(assignment, 2).reshape(K, 2)
    p0 = 1 / (1 + np.exp(-llr.astype(np.float64).reshape(S, 3, 2)))  # P(bit = 0)
    want = np.zeros((3, d))
    for s in range(S):
        for n in range(3):
            q = np.array([np.prod([p0[s, n, j] if bits[k, j] == 0 else 1 - p0[s, n, j] for j in range(2)])
                          for k in range(K)])
            q /= q.sum()
            want[n] += q @ cbs[s]
            if s == 1 and n == 2:
                np.testing.assert_allclose(q @ cbs[s], cbs[1].mean(0), atol=1e-6)  # erased: the mean codeword
            assert dec.indices.reshape(S, 3)[s, n] == np.argmax(q)
    np.testing.assert_allclose(dec.embeddings.reshape(3, d), want, rtol=1e-5, atol=1e-6)
    assert dec.indices.shape == grid and dec.embeddings.shape == (1, 3, d)


def _stage_residuals(q, flat):
    """Indices (N, S) of greedy residual search and the residual (N, d) each stage quantised."""
    idx = q.nearest(flat)
    res, r = [], flat
    for s, st in enumerate(q.stages):
        res.append(r)
        r = r - st.embedding[idx[:, s]]
    return idx, res


def test_each_stage_is_kmeans_initialised_on_its_own_residuals():
    """decay = 1 freezes the EMA, so after the first training batch each codebook is exactly its
    k-means start: stage s's is k-means of what stages < s left of the batch (not of the input)."""
    from vqcodec.model import EMAQuantizer

    torch.manual_seed(0)
    S, K, d = 3, 8, 4
    q = ResidualQuantizer(S, K, d, decay=1.0).train()
    z = torch.randn(4, d, 8, 8) * 3
    with torch.no_grad():
        q(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    idx, res = _stage_residuals(q.eval(), flat)
    for s in range(S):
        ref = EMAQuantizer(K, d)
        ref._kmeans_init(res[s])
        torch.testing.assert_close(q.stages[s].embedding, ref.embedding, rtol=1e-5, atol=1e-5,
                                   msg=lambda m: f"stage {s}: {m}")
    # the later stages quantise small residuals, not the input (norm ~ 3 sqrt(d))
    assert float(q.stages[1].embedding.norm(dim=1).mean()) < 0.6 * float(q.stages[0].embedding.norm(dim=1).mean())


def test_each_stage_codebook_tracks_the_ema_mean_of_its_own_residuals():
    """After 40 EMA steps (decay 0.5) on one batch, every used entry of every stage is the mean of
    the residuals that stage assigned to it, and its cluster size is their count."""
    torch.manual_seed(1)
    S, K, d = 3, 8, 4
    q = ResidualQuantizer(S, K, d, decay=0.5).train()
    q.generator = torch.Generator().manual_seed(0)
    z = torch.randn(4, d, 8, 8) * 3
    with torch.no_grad():
        for _ in range(40):
            q(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    idx, res = _stage_residuals(q.eval(), flat)
    for s in range(S):
        counts = torch.bincount(idx[:, s], minlength=K).float()
        used = counts > 0
        assert int(used.sum()) >= K // 2, (s, counts)
        means = torch.zeros(K, d).index_add_(0, idx[:, s], res[s])[used] / counts[used, None]
        torch.testing.assert_close(q.stages[s].embedding[used], means, rtol=1e-3, atol=1e-3,
                                   msg=lambda m: f"stage {s}: {m}")
        torch.testing.assert_close(q.stages[s].cluster_size[used], counts[used], rtol=1e-3, atol=1e-3)
