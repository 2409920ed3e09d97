"""The CUDA path. Skipped without a CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_gpu.py``. CPU and GPU float reductions differ, so indices may differ at
near-ties and PSNRs by hundredths of a dB; the tolerances below say how much."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def sample():
    from vqcodec.images import list_images

    return list_images(None)[0]


def test_cuda_encode_and_decode_match_the_cpu(sample):
    from vqcodec.images import load_image, to_tensor
    from vqcodec.metrics import psnr
    from vqcodec.receivers import Decision
    from vqcodec.simulate import decode_image
    from vqcodec.zoo import load_codec

    cpu, gpu = load_codec("f4-k256", device="cpu"), load_codec("f4-k256", device="cuda")
    img = load_image(sample)
    x = to_tensor(img)
    i_cpu = cpu.model.encode(x)[0].numpy()
    i_gpu = gpu.model.encode(x.cuda())[0].cpu().numpy()
    assert np.mean(i_cpu == i_gpu) >= 0.999
    H, W = img.shape[:2]
    a = psnr(img, decode_image(cpu, Decision(i_cpu), H, W))
    b = psnr(img, decode_image(gpu, Decision(i_cpu), H, W))
    assert abs(a - b) < 0.01


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_decoding(sample, precision):
    from vqcodec.simulate import encode_image
    from vqcodec.zoo import load_codec

    fp32 = encode_image(load_codec("f4-k256", device="cuda"), sample, with_ms_ssim=False)
    half_codec = load_codec("f4-k256", device="cuda", precision=precision)
    half = encode_image(half_codec, sample, with_ms_ssim=False)
    assert np.array_equal(fp32.indices, half.indices)  # the encoder always runs in float32
    assert abs(fp32.psnr_clean - half.psnr_clean) < 0.1
    assert half_codec.describe()["precision"] == precision


def test_cuda_simulate_through_the_cli(sample, tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main

    res = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.json"
        r = CliRunner().invoke(main, ["simulate", "--channel", "bsc", "--p", "0.01", "--images", str(sample),
                                      "--trials", "2", "--no-ms-ssim", "--device", dev, "--json", str(out)])
        assert r.exit_code == 0, r.output
        res[dev] = json.loads(out.read_text())
    for a, b in zip(res["cpu"], res["cuda"]):
        assert a["points"][0]["bit_errors"] == b["points"][0]["bit_errors"]
        assert abs(a["points"][0]["psnr"]["mean"] - b["points"][0]["psnr"]["mean"]) < 0.05


def test_cuda_train_decoder_runs_in_bf16(tmp_path):
    import dataclasses

    from vqcodec.images import list_images
    from vqcodec.learn.codec import train_decoder
    from vqcodec.learn.loop import TrainConfig
    from vqcodec.zoo import load_codec

    codec = load_codec("f4-k256")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in list_images(None)[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    cfg = dataclasses.replace(codec.model.cfg, decoder_channels=32, decoder_head="subpixel")
    hist = []
    train_decoder(codec, cfg, TrainConfig(steps=30, batch=8, crop=64, warmup=2, log_every=1), folder,
                  tmp_path / "d", device="cuda", progress=lambda s, m: hist.append(m["loss"]))
    assert len(hist) == 30 and np.isfinite(hist).all()


def test_cuda_batched_decoding_matches_one_by_one(sample):
    from vqcodec.receivers import Decision
    from vqcodec.simulate import decode_image, decode_images, encode_image
    from vqcodec.zoo import load_codec

    codec = load_codec("f4-k256", device="cuda")
    enc = encode_image(codec, sample, with_ms_ssim=False)
    H, W = enc.image.shape[:2]
    emb = codec.model.codebook.cpu().numpy()[enc.indices] * 0.9
    decisions = [Decision(enc.indices), Decision(enc.indices, emb)]
    batch = decode_images(codec, decisions, H, W)
    for d, b in zip(decisions, batch):
        one = decode_image(codec, d, H, W)
        assert np.abs(one.astype(int) - b.astype(int)).max() <= 1


def test_cuda_finetune_runs(tmp_path):
    import channels
    from vqcodec.images import list_images
    from vqcodec.learn.through_channel import FinetuneConfig, finetune_decoder
    from vqcodec.zoo import load_codec

    codec = load_codec("f4-k256", device="cuda")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in list_images(None)[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    hist = []
    finetune_decoder(codec, channels.get_channel("bsc", p=0.02), "spatial-mmse", folder,
                     FinetuneConfig(steps=5, batch=4, crop=32, log_every=1), tmp_path / "ft",
                     progress=lambda s, m: hist.append(m["loss"]))
    assert len(hist) == 5 and np.isfinite(hist).all()
