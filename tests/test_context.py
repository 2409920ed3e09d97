"""The learned context receiver (vqcodec.context; receivers learned, learned-mmse)."""
import itertools

import numpy as np
import pytest
import torch

import channels
from vqcodec.bits import identity_assignment, indices_to_bits, labels_to_bits
from vqcodec.context import (
    ContextConfig,
    ContextNet,
    context_path,
    context_posterior,
    label_signs,
    load_context,
    save_context,
)
from vqcodec.learn.receiver import ContextTrainConfig, evaluate, train_context
from vqcodec.receivers import ReceiverContext, bit_llrs, get_receiver, missing_side_info


def _net(K, assignment=None, seed=0, **cfg):
    torch.manual_seed(seed)
    net = ContextNet(K, identity_assignment(K) if assignment is None else assignment, ContextConfig(**cfg))
    with torch.no_grad():  # a non-trivial network (the output layer starts at zero)
        net.out.weight.normal_(0, 0.3)
        net.out.bias.normal_(0, 0.3)
    return net.eval()


@pytest.mark.parametrize("K", [2, 12, 16])
def test_label_signs_follow_the_transmitted_bits(K):
    rng = np.random.default_rng(K)
    b = int(np.ceil(np.log2(K)))
    assignment = rng.permutation(2 ** b)[:K]
    bits = labels_to_bits(assignment, b).reshape(K, b)
    assert np.array_equal(label_signs(assignment, K), 1.0 - 2.0 * bits)


@pytest.mark.parametrize("K", [5, 16])
def test_channel_loglik_is_the_exact_bitwise_posterior(K):
    """softmax of the channel term = prod_j P(bit_j | llr_j) over the K labels, normalised (brute force)."""
    rng = np.random.default_rng(0)
    b = int(np.ceil(np.log2(K)))
    assignment = rng.permutation(2 ** b)[:K]
    net = _net(K, assignment, channels=8, blocks=1, embed=4)
    llr = rng.normal(0, 3, (1, 2, 3, b)).astype(np.float32)
    got = torch.softmax(net.channel_loglik(torch.from_numpy(llr)), -1).numpy()
    p0 = 1.0 / (1.0 + np.exp(-llr.astype(np.float64)))  # P(bit = 0)
    for y, x in itertools.product(range(2), range(3)):
        ref = np.array([np.prod([p0[0, y, x, j] if ((assignment[k] >> (b - 1 - j)) & 1) == 0 else 1 - p0[0, y, x, j]
                                 for j in range(b)]) for k in range(K)])
        assert np.allclose(got[0, y, x], ref / ref.sum(), atol=1e-5)


def test_network_input_is_the_expected_embedding_and_the_entropy_of_the_channel_posterior():
    """features() against the direct formula (numpy, float64): E_c[embed] and -sum c log c / log K of
    c = softmax(ll), also where certain bits give ll = -inf for some labels (0 log 0 = 0), and its
    gradient stays finite there (training sees certain bits)."""
    rng = np.random.default_rng(1)
    K, b = 16, 4
    net = _net(K, np.arange(K), channels=8, blocks=1, embed=4)
    llr = rng.normal(0, 3, (1, 3, 4, b)).astype(np.float32)
    llr[0, 0, :2, :2] = 40.0  # certain bits: 12 of the 16 labels impossible there
    ll = net.channel_loglik(torch.from_numpy(llr))
    assert torch.isinf(ll).any()
    got = net.features(ll)[0].permute(1, 2, 0).detach().numpy()
    l64 = ll.double().numpy()[0]
    c = np.exp(l64 - l64.max(-1, keepdims=True))
    c /= c.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(c > 0, c * np.log(c), 0.0).sum(-1) / np.log(K)
    np.testing.assert_allclose(got[..., :4], c @ net.embed.detach().double().numpy(), atol=1e-5)
    np.testing.assert_allclose(got[..., 4], ent, atol=1e-5)
    x = torch.from_numpy(llr).requires_grad_(False)
    net.features(net.channel_loglik(x)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_certain_bits_are_never_flipped_and_unused_labels_fall_back():
    K = 12  # labels 12..15 are unused
    net = _net(K, channels=8, blocks=1, embed=4)
    llr = np.full((1, 1, 2, 4), 30.0, np.float32)
    llr[0, 0, 0] = [-30, -30, 30, -30]  # label 0b1101 = 13: no index has it
    llr[0, 0, 1] = [30, -30, 30, 0.5]  # bits 010? certain, last uncertain: index 4 or 5
    with torch.no_grad():
        q = torch.softmax(net(torch.from_numpy(llr)), -1).numpy()[0, 0]
    assert np.isfinite(q).all() and np.allclose(q.sum(-1), 1.0)
    assert set(np.flatnonzero(q[1] > 0)) <= {4, 5}


@pytest.mark.parametrize("K", [16, 12])
def test_posterior_sums_to_one_and_clean_channel_is_exact(K):
    rng = np.random.default_rng(3)
    grid = rng.integers(0, K, (5, 7))
    net = _net(K, channels=8, blocks=2, embed=4)
    ch = channels.get_channel("bsc", p=0.0)
    ctx = ReceiverContext(K=K, assignment=identity_assignment(K), codebook=rng.normal(size=(K, 3)).astype(np.float32),
                          channel=ch, context=(net,))
    rx = ch(indices_to_bits(grid, K), rng)
    for name in ("learned", "learned-mmse"):
        dec = get_receiver(name)(rx, grid.shape, ctx)
        assert np.array_equal(dec.indices, grid)
        if dec.embeddings is not None:
            assert np.array_equal(dec.embeddings, ctx.codebook[grid])
    noisy = channels.get_channel("bsc", p=0.2)
    q = context_posterior(net, bit_llrs(noisy(indices_to_bits(grid, K), rng), noisy, ctx.b), grid.shape)
    assert q.shape == (5, 7, K) and np.allclose(q.sum(-1), 1.0, atol=1e-5) and (q >= 0).all()
    with pytest.raises(ValueError, match="needs"):
        context_posterior(net, np.zeros((30, ctx.b)), grid.shape)


def test_learned_receivers_need_a_context_network():
    class C:
        name, prior, context = "m", object(), None

    assert "train-receiver" in missing_side_info("learned-mmse", C())
    assert missing_side_info("spatial", C()) is None
    assert missing_side_info("naive", C()) is None
    ch = channels.get_channel("bsc", p=0.01)
    ctx = ReceiverContext(K=16, assignment=identity_assignment(16), codebook=np.zeros((16, 2)), channel=ch)
    rx = ch(indices_to_bits(np.zeros((2, 2), int), 16), np.random.default_rng(0))
    with pytest.raises(ValueError, match="context"):
        get_receiver("learned")(rx, (2, 2), ctx)


def test_save_load_round_trip_and_corrupt_file(tmp_path):
    from vqcodec.checkpoint import CheckpointError

    K = 16
    net = _net(K, channels=8, blocks=2, embed=4, dilations=(1, 2))
    path = context_path(tmp_path / "m")
    save_context((net,), path)
    cfg = {"channels": 8, "blocks": 2, "embed": 4, "dilations": [1, 2]}
    (back,) = load_context(path, K, identity_assignment(K), cfg)
    llr = torch.randn(1, 6, 5, 4) * 3
    with torch.no_grad():
        assert torch.equal(net(llr), back(llr))
    with pytest.raises(CheckpointError, match="corrupt context"):
        load_context(path, K, identity_assignment(K), {**cfg, "channels": 9})
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt context"):
        load_context(path, K, identity_assignment(K), cfg)


def _blocky_grids(n, K, rng, size=24, block=4):
    """A source with strong spatial structure: constant 4x4 blocks of random indices."""
    out = []
    for _ in range(n):
        small = rng.integers(0, K, (size // block, size // block))
        out.append(np.kron(small, np.ones((block, block), dtype=np.int64)))
    return out


def test_training_learns_the_spatial_structure_of_a_source():
    """On blocky index maps the trained receiver corrects most BSC index errors that the
    channel alone cannot (index error rate well below the per-index MAP's)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    K = 16
    grids = _blocky_grids(40, K, rng)
    net, hist = train_context(grids, K, identity_assignment(K), ContextConfig(channels=24, blocks=2, embed=8),
                              ContextTrainConfig(steps=300, batch=8, crop=12, lr=3e-3, warmup=10, log_every=50))
    assert hist[-1]["step"] == 300 and hist[-1]["bits"] < hist[0]["bits"]
    ch = channels.get_channel("bsc", p=0.08)
    held = _blocky_grids(6, K, np.random.default_rng(1))
    learned = evaluate(net, held, K, identity_assignment(K), ch)
    untrained = ContextNet(K, identity_assignment(K), ContextConfig(channels=24, blocks=2, embed=8)).eval()
    channel_only = evaluate(untrained, held, K, identity_assignment(K), ch)  # zero output layer: per-index MAP
    assert channel_only["index_error_rate"] > 0.2
    assert learned["index_error_rate"] < 0.5 * channel_only["index_error_rate"]
    assert learned["bits"] < channel_only["bits"]


def test_train_context_rejects_grids_smaller_than_the_crop():
    with pytest.raises(ValueError, match="smaller than the crop"):
        train_context([np.zeros((4, 40), np.int64)], 16, identity_assignment(16), ContextConfig(),
                      ContextTrainConfig(steps=1, crop=8))


def test_cli_train_receiver_then_simulate_and_finetune_carry_it(tmp_path, tiny_checkpoint, image_dir):
    import json

    from click.testing import CliRunner

    from cli import main
    from vqcodec.zoo import load_codec

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    out = tmp_path / "r.json"
    r = run("simulate", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--channel", "bsc", "--p", "0.05",
            "--receiver", "learned-mmse", "--json", out)
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1].startswith("Error: receiver learned-mmse needs")
    assert not out.exists()
    r = run("train-receiver", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--steps", "3", "--crop", "8",
            "--decoder-steps", "2", "--decoder-crop", "16", "--batch", "2", "--channels", "8", "--blocks", "1")
    assert r.exit_code == 0, r.output
    assert "held-out training images" in r.output
    doc = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    assert doc["context"]["training"]["steps_run"] == 3 and doc["context"]["training"]["held_out"] == 1
    assert doc["context"]["training"]["through_decoder"]["history"][-1]["step"] == 2
    assert context_path(tiny_checkpoint).exists()
    assert load_codec(checkpoint=str(tiny_checkpoint)).context is not None
    r = run("simulate", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--channel", "bsc", "--p", "0.05",
            "--receiver", "naive,learned,learned-mmse", "--trials", "1", "--no-ms-ssim", "--json", out)
    assert r.exit_code == 0, r.output
    assert {c["receiver"] for c in json.loads(out.read_text())} == {"naive", "learned", "learned-mmse"}
    r = run("finetune", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--channel", "mix",
            "--receiver", "learned-mmse", "--steps", "2", "--batch", "2", "--crop", "16", "-o", tmp_path / "ft")
    assert r.exit_code == 0, r.output
    assert "the channel mix" in r.output
    ft = load_codec(checkpoint=str(tmp_path / "ft"))
    assert ft.meta["finetune"]["channel"]["kind"] == "mix"
    llr = torch.randn(1, 4, 4, 4) * 2
    with torch.no_grad():
        assert torch.equal(ft.context[0](llr), load_codec(checkpoint=str(tiny_checkpoint)).context[0](llr))
    context_path(tiny_checkpoint).unlink()
    r = run("simulate", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--channel", "bsc", "--p", "0.05")
    assert r.exit_code == 1 and "is missing" in r.output.strip().splitlines()[-1]


def test_a_suite_with_a_receiver_its_model_cannot_run_is_refused(tmp_path):
    from vqcodec import suites as S

    f = tmp_path / "s.toml"
    f.write_text('name = "s"\ndescription = "x"\nkind = "sweep"\nimages = "samples"\nmodels = ["f8-k256"]\n'
                 'channel = "bsc"\ngrid = [0.01]\nreceivers = ["naive", "learned-mmse"]\ntrials = 1\nmin_trials = 1\n')
    st = S.load_suite(str(f))
    with pytest.raises(S.SuiteError, match="learned-mmse needs a learned context receiver"):
        S.run(st, tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


def test_shipped_receiver_beats_the_spatial_one_on_the_sample_photos():
    """The shipped f4-k256 context receiver against loopy BP with the pairwise prior, paired noise
    (BSC p = 0.05, two bundled sample photos, two trials): higher PSNR and fewer index errors."""
    from vqcodec.images import list_images
    from vqcodec.simulate import StopRule, encode_image, run_point
    from vqcodec.zoo import load_codec

    codec = load_codec("f4-k256")
    assert codec.context is not None
    encs = [encode_image(codec, p, with_ms_ssim=False) for p in list_images(None)[:2]]
    pts = run_point(codec, encs, channels.get_channel("bsc", p=0.05), ["spatial-mmse", "learned-mmse"], seed=0,
                    param=0.05, stop=StopRule(2, 2), with_ms_ssim=False)
    spatial, learned = pts["spatial-mmse"], pts["learned-mmse"]
    assert learned["psnr"]["mean"] > spatial["psnr"]["mean"] + 0.1
    assert learned["index_errors"] < spatial["index_errors"]


def test_shipped_channel_optimised_codebook_trades_clean_psnr_for_cheaper_errors():
    """f4-k256-covq against f4-k256 on two bundled sample photos (BSC p = 0.03, two trials, each
    model's own noise): it loses less against its own clean PSNR with the naive and the spatial
    receiver, and its clean PSNR is lower, by less than 1 dB."""
    from vqcodec.images import list_images
    from vqcodec.simulate import StopRule, encode_image, run_point
    from vqcodec.zoo import load_codec

    loss, clean = {}, {}
    for name in ("f4-k256", "f4-k256-covq"):
        codec = load_codec(name)
        encs = [encode_image(codec, p, with_ms_ssim=False) for p in list_images(None)[:2]]
        clean[name] = float(np.mean([e.psnr_clean for e in encs]))
        pts = run_point(codec, encs, channels.get_channel("bsc", p=0.03), ["naive", "spatial-mmse"], seed=0,
                        param=0.03, stop=StopRule(2, 2), with_ms_ssim=False)
        loss[name] = {r: pts[r]["psnr"]["mean"] - clean[name] for r in pts}
    for r in ("naive", "spatial-mmse"):
        assert loss["f4-k256-covq"][r] > loss["f4-k256"][r] + 0.2, (r, loss)
    assert clean["f4-k256"] - 1.0 < clean["f4-k256-covq"] < clean["f4-k256"]


def test_learned_receiver_uses_the_memory_of_a_burst_channel():
    """On a Gilbert-Elliott channel (p = 0.03, mean burst 10 bits), the two-pass learned posterior
    (detection pass, state estimate, second pass) beats one memoryless pass on the same noise
    (two bundled photos, two realisations each)."""
    from vqcodec.bits import indices_to_bits
    from vqcodec.context import context_posterior
    from vqcodec.images import list_images
    from vqcodec.metrics import psnr
    from vqcodec.receivers import Decision, bit_llrs, receiver_context
    from vqcodec.receivers.learned import _context_posterior
    from vqcodec.simulate import decode_image, encode_image
    from vqcodec.zoo import load_codec

    codec = load_codec("f4-k256")
    ch = channels.get_channel("burst", p=0.03, burst_length=10.0)
    ctx = receiver_context(codec, ch)
    cb = ctx.codebook
    gain = []
    for i, path in enumerate(list_images(None)[:2]):
        enc = encode_image(codec, path, with_ms_ssim=False)
        H, W = enc.image.shape[:2]
        for t in range(2):
            rx = ch(indices_to_bits(enc.indices, codec.K, codec.assignment), np.random.default_rng(10 * i + t))
            one = context_posterior(codec.context[0], bit_llrs(rx, ch, ctx.b), enc.indices.shape)
            two = _context_posterior(rx, enc.indices.shape, ctx)
            p1, p2 = (psnr(enc.image, decode_image(codec, Decision(q.argmax(-1), (q @ cb).astype(np.float32)), H, W))
                      for q in (one, two))
            gain.append(p2 - p1)
    assert np.mean(gain) > 0.15, gain
