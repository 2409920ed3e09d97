"""Progressive decoding of a residual (multi-stage) model: PSNR against stages received."""
import numpy as np
import pytest
import torch
from conftest import tiny_config


@pytest.fixture
def two_stage_checkpoint(tmp_path):
    from dataclasses import replace

    from vqcodec.model import VQVAE, save_model

    torch.manual_seed(0)
    m = VQVAE(replace(tiny_config(), stages=3)).eval()
    with torch.no_grad():
        for s, q in enumerate(m.quantizers):
            q.embedding.copy_(torch.randn(16, 4) / (s + 1))
            q.initialised.fill_(1)  # as after training: a warm start keeps these codebooks
    stem = tmp_path / "rvq"
    save_model(m, stem, {"name": "rvq"})
    return stem


def test_progressive_points_decode_each_prefix_of_the_stages(two_stage_checkpoint, image_dir):
    from vqcodec.metrics import psnr
    from vqcodec.simulate import Decision, decode_image, encode_images, progressive_points
    from vqcodec.zoo import load_codec

    codec = load_codec(None, two_stage_checkpoint)
    encs = encode_images(codec, image_dir, with_ms_ssim=False)[0]
    rows = progressive_points(codec, encs)
    assert [r["stages"] for r in rows] == [1, 2, 3]
    pixels = sum(e.image.shape[0] * e.image.shape[1] for e in encs)
    sites = encs[0].indices[0].size + encs[1].indices[0].size
    assert [r["bpp"] for r in rows] == pytest.approx([s * sites * 4 / pixels for s in (1, 2, 3)])
    assert rows[-1]["psnr"] == pytest.approx(np.mean([e.psnr_clean for e in encs]))
    e = encs[0]
    first = psnr(e.image, decode_image(codec, Decision(e.indices[:1]), *e.image.shape[:2]))
    one_stage = np.mean([psnr(x.image, decode_image(codec, Decision(x.indices[:1]), *x.image.shape[:2])) for x in encs])
    assert rows[0]["psnr"] == pytest.approx(one_stage) and first != pytest.approx(e.psnr_clean)


def test_eval_progressive_prints_the_table_and_refuses_a_one_stage_model(two_stage_checkpoint, tiny_checkpoint,
                                                                          image_dir):
    from click.testing import CliRunner

    from cli import main

    r = CliRunner().invoke(main, ["eval", "--checkpoint", str(two_stage_checkpoint), "--images", str(image_dir),
                                  "--progressive"])
    assert r.exit_code == 0 and "progressive" in r.output, r.output
    r = CliRunner().invoke(main, ["eval", "--checkpoint", str(tiny_checkpoint), "--images", str(image_dir),
                                  "--progressive"])
    assert r.exit_code != 0 and "one stage; --progressive needs a residual model (trained with --stages)" in r.output


def test_clean_point_reports_each_stage_codebook_usage(two_stage_checkpoint, image_dir):
    from dataclasses import replace

    from vqcodec.simulate import clean_point, encode_images
    from vqcodec.zoo import load_codec

    codec = load_codec(None, two_stage_checkpoint)
    encs = encode_images(codec, image_dir)[0]
    used = (16, 8, 4)  # entries each stage uses, every one of them somewhere
    encs = [replace(e, indices=np.stack([(np.arange(e.indices[0].size) % u).reshape(e.indices[0].shape)
                                         for u in used])) for e in encs]
    assert all(e.indices[0].size >= 16 for e in encs)
    point = clean_point(codec, encs)
    assert point["codebook_usage_stages"] == pytest.approx([u / 16 for u in used])
    assert point["codebook_usage"] == pytest.approx(4 / 16)  # the least used stage, not the pooled 16 / 16


def test_train_init_warm_starts_from_the_first_stages(two_stage_checkpoint, image_dir, tmp_path):
    """``train --init CKPT --stages 2`` keeps CKPT's first two codebooks and the rest of its
    weights; architecture options are refused, and so is writing over the init checkpoint."""
    from click.testing import CliRunner

    from cli import main
    from vqcodec.model import load_model

    out = tmp_path / "warm"
    r = CliRunner().invoke(main, ["train", "--init", str(two_stage_checkpoint), "--stages", "2", "--images",
                                  str(image_dir), "-o", str(out), "--steps", "1", "--lr", "1e-12", "--crop", "16",
                                  "--batch", "2", "--threads", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    init, _ = load_model(two_stage_checkpoint)
    warm, meta = load_model(out)
    assert warm.cfg.stages == 2 and meta["training"]["init"] == str(two_stage_checkpoint)
    for part in ("encoder", "decoder"):  # lr 1e-12: one step leaves the warm start's weights in place
        a, b = getattr(warm, part).state_dict(), getattr(init, part).state_dict()
        assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    r = CliRunner().invoke(main, ["train", "--init", str(two_stage_checkpoint), "--K", "8", "--images",
                                  str(image_dir), "-o", str(tmp_path / "x"), "--steps", "1"])
    assert r.exit_code != 0 and "--K" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", "--init", str(two_stage_checkpoint), "--stages", "4", "--images",
                                  str(image_dir), "-o", str(tmp_path / "x"), "--steps", "1"])
    assert r.exit_code != 0 and "3 stage" in r.output
    r = CliRunner().invoke(main, ["train", "--init", str(two_stage_checkpoint), "--images", str(image_dir),
                                  "-o", str(two_stage_checkpoint), "--steps", "1", "--overwrite"])
    assert r.exit_code != 0 and "init" in r.output


def test_prepare_gives_a_residual_model_a_prior_and_an_assignment_per_stage(two_stage_checkpoint, image_dir):
    from vqcodec.assignment import one_flip_cost
    from vqcodec.bits import identity_assignment, indices_to_bits, labels_to_bits
    from vqcodec.checkpoint import read_checkpoint_meta
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.prior import IndexPrior
    from vqcodec.receivers import default_receivers
    from vqcodec.simulate import clean_point, encode_images
    from vqcodec.zoo import load_codec

    summary = prepare_checkpoint(two_stage_checkpoint, image_dir, kodak_folder=image_dir)
    meta = read_checkpoint_meta(two_stage_checkpoint)
    codec = load_codec(None, two_stage_checkpoint)
    S, K = 3, codec.K
    assert meta["kodak"] == summary["kodak"] and len(summary["assignment"]) == S
    assert isinstance(codec.prior, tuple) and len(codec.prior) == S
    assert all(isinstance(p, IndexPrior) and p.lam == summary["lam"] and p.beta == summary["beta"] for p in codec.prior)
    assert codec.assignment.shape == (S, K)
    encs = encode_images(codec, image_dir)[0]
    cbs = codec.model.codebooks.detach().numpy().astype(np.float64)
    for s in range(S):
        # each stage's prior counts that stage's indices, and its assignment is BSA on that stage's codebook
        assert codec.prior[s].unigram.sum() > 0
        assert sorted(codec.assignment[s]) == sorted(set(codec.assignment[s]))
        uni = codec.prior[s].unigram
        assert one_flip_cost(cbs[s], uni, codec.assignment[s]) <= one_flip_cost(cbs[s], uni, identity_assignment(K)) + 1e-12
        assert summary["assignment"][s]["final_cost"] == pytest.approx(one_flip_cost(cbs[s], uni, codec.assignment[s]))
    assert not np.array_equal(codec.assignment[0], codec.assignment[1])  # different codebooks, different labels
    idx = encs[0].indices
    want = np.concatenate([labels_to_bits(codec.assignment[s][idx[s]], 4) for s in range(S)])
    assert np.array_equal(indices_to_bits(idx, K, codec.assignment), want)  # stage by stage, each its own labels
    assert default_receivers(codec) == ["naive", "spatial-mmse"]
    fp32 = load_codec(None, two_stage_checkpoint, precision="fp32")  # prepare records fp32 measurements
    pt = clean_point(fp32, encode_images(fp32, image_dir)[0])
    assert meta["kodak"]["psnr"] == pytest.approx(pt["psnr"]["mean"])
    assert meta["kodak"]["codebook_usage_stages"] == pytest.approx(pt["codebook_usage_stages"])



@pytest.mark.parametrize("receiver", ["naive", "spatial-mmse"])
def test_finetune_takes_a_residual_model_and_train_receiver_refuses_its_decoder_stage(two_stage_checkpoint, image_dir, tmp_path,
                                                                        receiver):
    from click.testing import CliRunner

    from cli import main
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.zoo import load_codec

    prepare_checkpoint(two_stage_checkpoint, image_dir)
    base = load_codec(None, two_stage_checkpoint)
    out = tmp_path / "ft"
    r = CliRunner().invoke(main, ["finetune", "--checkpoint", str(two_stage_checkpoint), "--channel", "bsc", "--p",
                                  "0.05", "-r", receiver, "--images", str(image_dir), "-o", str(out), "--steps", "3",
                                  "--batch", "2", "--crop", "16", "--threads", "1"])
    assert r.exit_code == 0, r.output
    ft = load_codec(None, out)
    assert np.array_equal(ft.assignment, base.assignment) and ft.assignment.shape == (3, base.K)
    assert all(np.array_equal(a.unigram, b.unigram) for a, b in zip(ft.prior, base.prior))
    assert torch.equal(ft.model.codebooks, base.model.codebooks)
    assert any(not torch.equal(a, b) for a, b in zip(ft.model.decoder.parameters(), base.model.decoder.parameters()))
    r = CliRunner().invoke(main, ["train-receiver", "--checkpoint", str(two_stage_checkpoint), "--images",
                                  str(image_dir), "--steps", "2"])
    assert r.exit_code == 1 and "--decoder-steps 0" in r.output and "Traceback" not in r.output


def test_train_receiver_gives_each_stage_of_a_residual_model_its_own_learned_receiver(two_stage_checkpoint,
                                                                                       image_dir):
    from click.testing import CliRunner

    import channels
    from cli import main
    from vqcodec.bits import indices_to_bits
    from vqcodec.context import ContextNet, context_posterior
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.receivers import bit_llrs, default_receivers, get_receiver, receiver_context
    from vqcodec.simulate import encode_images
    from vqcodec.zoo import load_codec

    prepare_checkpoint(two_stage_checkpoint, image_dir)
    r = CliRunner().invoke(main, ["train-receiver", "--checkpoint", str(two_stage_checkpoint), "--images",
                                  str(image_dir), "--steps", "3", "--crop", "4", "--batch", "2", "--channels", "8",
                                  "--blocks", "1", "--decoder-steps", "0", "--threads", "1"])
    assert r.exit_code == 0, r.output
    codec = load_codec(None, two_stage_checkpoint)
    assert isinstance(codec.context, tuple) and len(codec.context) == 3
    assert all(isinstance(n, ContextNet) for n in codec.context)
    for s, net in enumerate(codec.context):  # each stage's network reads its stage's labels
        assert np.array_equal(net.signs.numpy(), 1 - 2 * ((codec.assignment[s][:, None] >> np.arange(3, -1, -1)) & 1))
    assert not torch.equal(codec.context[0].embed, codec.context[1].embed)
    assert len(codec.meta["context"]["validation"]["bsc p=0.01"]["stages"]) == 3
    assert default_receivers(codec) == ["naive", "learned-mmse"]
    enc = encode_images(codec, image_dir)[0][0]
    ch = channels.get_channel("bsc", p=0.05)
    rx = ch(indices_to_bits(enc.indices, codec.K, codec.assignment), np.random.default_rng(0))
    ctx = receiver_context(codec, ch)
    dec = get_receiver("learned-mmse")(rx, enc.indices.shape, ctx)
    S, h, w = enc.indices.shape
    llr = bit_llrs(rx, ch, 4).reshape(S, h * w, 4)
    want = sum(context_posterior(codec.context[s], llr[s], (h, w)) @ ctx.codebooks[s] for s in range(S))
    np.testing.assert_allclose(dec.embeddings, want, atol=1e-5)
    assert dec.indices.shape == (S, h, w)
