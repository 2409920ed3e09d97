"""The README's headline numbers on Kodak (../shared/datasets/kodak; skipped where it is absent):
every shipped model's clean PSNR as `vqcodec models` and the README report it, and one noisy
point of the default model and receiver."""
import numpy as np
import pytest
from conftest import KODAK, needs_kodak

import vqcodec.api as vq
from vqcodec.zoo import REGISTRY

pytestmark = needs_kodak


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_shipped_model_clean_kodak_psnr_is_the_recorded_one(name):
    codec = vq.load(name)
    encoded, desc = vq.encode(codec, KODAK, with_ms_ssim=False)
    assert desc["count"] == 24
    measured = float(np.mean([e.psnr_clean for e in encoded]))
    assert measured == pytest.approx(codec.meta["kodak"]["psnr"], abs=0.01)


def test_default_receiver_at_bsc_0_01_matches_the_readme():
    # README, receivers table: f4-k256 with learned-mmse gives 27.46 dB at BSC p = 0.01 (clean 28.47);
    # one trial of the 24 images with seed 0 lies within 0.05 dB of that four-trial mean
    res = vq.simulate("bsc", 0.01, model="f4-k256", images=KODAK, receivers=["learned-mmse"], trials=1,
                      min_trials=1, seed=0, with_ms_ssim=False)
    pt = res[0]["points"][0]
    assert pt["psnr_clean"] == pytest.approx(28.47, abs=0.005)
    assert pt["psnr"]["mean"] == pytest.approx(27.46, abs=0.05)
    assert 0.009 < pt["ber"] < 0.011


def test_residual_model_per_stage_receivers_at_bsc_0_01_match_the_readme():
    # README, f8-s2-k256 over the BSC: spatial-mmse 26.09 dB and naive 25.69 at p = 0.01 (two trials, clean
    # 27.23); one trial with seed 0 lies within 0.05 dB of those means (26.08 and 25.66 when measured)
    res = vq.simulate("bsc", 0.01, model="f8-s2-k256", images=KODAK, receivers=["naive", "spatial-mmse"], trials=1,
                      min_trials=1, seed=0, with_ms_ssim=False)
    got = {r["receiver"]: r["points"][0] for r in res}
    assert got["spatial-mmse"]["psnr_clean"] == pytest.approx(27.23, abs=0.005)
    assert got["spatial-mmse"]["psnr"]["mean"] == pytest.approx(26.09, abs=0.05)
    assert got["naive"]["psnr"]["mean"] == pytest.approx(25.69, abs=0.05)


def test_deepjscc_at_1_and_7_db_matches_the_readme():
    # README, cbr 1/12 table: Deep JSCC (deepjscc-c8, width 128) gives 28.01 / 30.76 dB at AWGN Es/N0 = 1 / 7 dB
    # (two trials, fp32); issue 30's bars are 28.0 and 29.5. One trial in the default precision here.
    from vqcodec.analog import deepjscc_sweep
    from vqcodec.images import list_images, load_image

    images = [(p.name, load_image(p)) for p in list_images(KODAK)]
    res = deepjscc_sweep(images, "awgn", [1.0, 7.0], trials=1, seed=0)
    got = [pt["psnr"]["mean"] for pt in res["points"]]
    assert got == pytest.approx([28.01, 30.76], abs=0.05)
    assert all(pt["cbr"] == pytest.approx(1 / 12) for pt in res["points"])


@pytest.mark.parametrize("name, bpp, db", [("f4-k256", 0.2940, 28.47), ("f8-s2-k256", 0.1714, 27.23)])
def test_entropy_coded_files_match_the_readme_and_the_model_code_length(name, bpp, db):
    # README, entropy-coded files: f4-k256's Kodak files average 0.2940 bpp (fixed-length 0.5) at the same
    # 28.47 dB, the residual f8-s2-k256's 0.1714 (fixed 0.25) at 27.23; every file decodes to its indices and
    # its payload is within 1% of the model's code length
    from vqcodec import entropy
    from vqcodec.bits import parse_index_file
    from vqcodec.simulate import clean_point, index_file

    codec = vq.load(name)
    encoded, _ = vq.encode(codec, KODAK)
    pt = clean_point(codec, encoded, entropy=True)
    assert pt["bpp"] == pytest.approx(bpp, abs=0.0005)
    assert pt["psnr"]["mean"] == pytest.approx(db, abs=0.005)
    cm = codec.coder_model()
    assert cm.kind == "learned"
    for e in encoded[:3]:
        payload, header = parse_index_file(index_file(codec, e, entropy=True))
        assert np.array_equal(entropy.decode_indices(payload, *header["grid"], cm, header["entropy"]["crc32"]),
                              e.indices)
        ideal = entropy.code_length(e.indices, cm)
        assert abs(8 * len(payload) - ideal) / ideal < 0.01


def test_encoder_side_search_on_kodim02_matches_the_readme():
    # README, encoder-side index search: f4-k256 --search 4 lifts kodim02 from 28.87 to 30.90 dB at the
    # same 0.5 bpp (Kodak-24 mean 28.47 -> 29.44)
    plain = vq.load("f4-k256")
    searched = vq.load("f4-k256", search=4)
    a, _ = vq.encode(plain, [KODAK / "kodim02.png"], with_ms_ssim=False)
    b, _ = vq.encode(searched, [KODAK / "kodim02.png"], with_ms_ssim=False)
    assert a[0].psnr_clean == pytest.approx(28.87, abs=0.01)
    assert b[0].psnr_clean == pytest.approx(30.90, abs=0.02)
    assert b[0].indices.shape == a[0].indices.shape and b[0].indices.dtype == a[0].indices.dtype


def test_the_guided_search_on_kodim02_matches_the_readme():
    # README, encoder-side index search: --search 4,guided=3,spacing=7,sweeps=5 lifts kodim02 to 31.10 dB
    # (about 2.5 minutes on one core)
    c, _ = vq.encode(vq.load("f4-k256", search="4,guided=3,spacing=7,sweeps=5"), [KODAK / "kodim02.png"],
                     with_ms_ssim=False)
    assert c[0].psnr_clean == pytest.approx(31.10, abs=0.02)


def test_the_rate_distortion_search_on_kodim02_matches_the_readme():
    # README, entropy-coded files: f8-k256 with --search 4,rate=1 writes kodim02 in 0.0536 bpp at 27.60 dB
    # (suite kodak-rd-search, bf16), a smaller file than the nearest-codeword encoder's at a higher PSNR
    from vqcodec.simulate import clean_point

    def point(codec):
        encoded, _ = vq.encode(codec, [KODAK / "kodim02.png"], with_ms_ssim=False)
        return clean_point(codec, encoded, entropy=True)["per_image"][0]

    plain, searched = point(vq.load("f8-k256")), point(vq.load("f8-k256", search="4,rate=1"))
    assert searched["bpp"] == pytest.approx(0.0536, abs=0.0003)
    assert searched["psnr"] == pytest.approx(27.60, abs=0.01)
    assert searched["bpp"] < 0.9 * plain["bpp"] and searched["psnr"] > plain["psnr"]
