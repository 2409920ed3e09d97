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
    assert r.exit_code != 0 and "one stage" in r.output
