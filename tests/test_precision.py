"""bf16 inference on the CPU: the choice of precision, its fallback, what it changes in the
pixels and the posteriors, and that every results file records it."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import vqcodec.precision as P
from cli import main
from vqcodec.checkpoint import CheckpointError
from vqcodec.context import context_posterior
from vqcodec.images import list_images, load_image
from vqcodec.metrics import psnr
from vqcodec.receivers import Decision
from vqcodec.simulate import decode_image, encode_array
from vqcodec.zoo import load_codec

#: |PSNR(bf16) - PSNR(fp32)| of one decoded image; measured 0.0024 dB (f4-k256) and 0.0003 dB
#: (f8-s2-k256) on this crop, 0.009 dB on the worst Kodak image
DECODE_TOLERANCE_DB = 0.02


@pytest.fixture(scope="module")
def photo():
    return load_image(list_images(None)[0])[:160, :240]  # scikit-image's astronaut, a fixed crop


@pytest.mark.parametrize("name", ["f4-k256", "f8-s2-k256"])
def test_bf16_decoding_of_a_fixed_image_is_within_tolerance_of_fp32(photo, name):
    fp32, bf16 = load_codec(name, precision="fp32"), load_codec(name, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    enc = encode_array(fp32, "astronaut", photo, with_ms_ssim=False)
    assert np.array_equal(encode_array(bf16, "astronaut", photo, with_ms_ssim=False).indices, enc.indices)
    H, W = photo.shape[:2]
    decisions = [Decision(enc.indices)]
    if name == "f4-k256":  # and an MMSE code vector: a posterior spread over many codewords
        q = np.random.default_rng(0).dirichlet(np.full(fp32.K, 0.05), size=enc.indices.shape)
        decisions.append(Decision(enc.indices, (q @ fp32.model.codebook.detach().numpy()).astype(np.float32)))
    for d in decisions:
        a, b = decode_image(fp32, d, H, W), decode_image(bf16, d, H, W)
        assert b.dtype == np.uint8 and b.shape == a.shape
        assert abs(psnr(photo, b) - psnr(photo, a)) <= DECODE_TOLERANCE_DB
        assert np.abs(a.astype(int) - b).max() <= 2
        assert not np.array_equal(a, b)  # bf16 really ran


def test_bf16_learned_posterior_stays_close_and_fp32():
    codec = load_codec("f4-k256", precision="fp32")
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 256, (24, 32))
    bits = ((codec.assignment[idx][..., None] >> np.arange(7, -1, -1)) & 1).reshape(-1, 8)
    llr = ((1 - 2 * bits) * 4.6 * np.where(rng.random(bits.shape) < 0.03, -1, 1)).astype(np.float32)
    a = context_posterior(codec.context[0], llr, idx.shape, "fp32")
    b = context_posterior(codec.context[0], llr, idx.shape, "bf16")
    assert b.dtype == np.float32 and np.allclose(b.sum(-1), 1, atol=1e-5)
    assert 0 < np.abs(a - b).max() < 0.1
    assert np.mean(a.argmax(-1) != b.argmax(-1)) < 0.01


def test_channel_loglik_stays_fp32_inside_an_enclosing_autocast():
    codec = load_codec("f4-k256", precision="fp32")
    llr = torch.linspace(-8, 8, 4 * 5 * 8).reshape(1, 4, 5, 8)
    with torch.inference_mode():
        ref = codec.context[0].channel_loglik(llr)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = codec.context[0](llr)
    assert out.dtype == torch.float32
    # ll + g: the channel part is the fp32 one (g is zero-mean-ish but bounded)
    assert torch.isfinite(out).all() and (out - ref).abs().max() < 50


@pytest.mark.parametrize("has_bf16,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_takes_bf16_only_on_a_processor_that_has_it(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: has_bf16)
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.resolve_precision(None, "cpu") == expected
    assert load_codec("f4-k256").precision == expected  # auto is the default
    assert load_codec("f4-k256", precision="fp32").precision == "fp32"  # one option away
    assert load_codec("f4-k256", precision="bf16").precision == "bf16"  # asked for: emulated if need be
    assert P.resolve_precision("auto", "cuda") == "fp32"  # CUDA keeps fp32 unless asked


def test_fp16_on_the_cpu_and_unknown_names_are_refused():
    with pytest.raises(CheckpointError, match="fp16 needs a CUDA device"):
        load_codec("f4-k256", device="cpu", precision="fp16")
    with pytest.raises(CheckpointError, match="unknown precision"):
        load_codec("f4-k256", precision="int8")


def test_the_cpu_flags_are_read_when_torch_cannot_tell(monkeypatch, tmp_path):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    real = P.Path

    def fake(flags):
        f = tmp_path / "cpuinfo"
        f.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        monkeypatch.setattr(P, "Path", lambda p: f if p == "/proc/cpuinfo" else real(p))

    fake("avx512f avx512_bf16")
    assert P.cpu_has_bf16()
    fake("avx2 avx512f")
    assert not P.cpu_has_bf16()


def run_cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_results_record_the_precision(tiny_checkpoint, image_dir, tmp_path, precision):
    ev, sim = tmp_path / "eval.json", tmp_path / "sim.json"
    out = run_cli("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--precision", precision,
                  "--json", ev)
    assert f"precision {precision} (--precision)" in out
    assert json.loads(ev.read_text())["model"]["precision"] == precision
    run_cli("simulate", "--channel", "bsc", "--p", "0.05", "--checkpoint", tiny_checkpoint, "--images", image_dir,
            "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--precision", precision, "--json", sim)
    res = json.loads(sim.read_text())
    assert all(r["model"]["precision"] == precision for r in (res if isinstance(res, list) else [res]))


def test_the_cli_says_what_auto_chose(tiny_checkpoint, image_dir, monkeypatch):
    for has, line in ((False, "precision fp32 (auto: this CPU has no bf16 instructions)"),
                      (True, "precision bf16 (auto: this CPU has bf16 instructions")):
        monkeypatch.setattr(P, "cpu_has_bf16", lambda has=has: has)
        out = run_cli("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir)
        assert line in out


def test_a_results_file_from_before_precision_was_recorded_resumes_as_fp32(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "s.json"
    args = ["sweep", "--channel", "bsc", "--p", "0.01,0.05", "--checkpoint", tiny_checkpoint, "--images", image_dir,
            "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--json", out]
    run_cli(*args, "--precision", "fp32")
    full = json.loads(out.read_text())
    full = full if isinstance(full, list) else [full]
    old = [dict(r, model={k: v for k, v in r["model"].items() if k != "precision"},
                points=r["points"][:1]) for r in full]
    out.write_text(json.dumps(old))
    run_cli(*args, "--precision", "fp32", "--resume")
    again = json.loads(out.read_text())
    assert [r["points"] for r in (again if isinstance(again, list) else [again])] == [r["points"] for r in full]
    out.write_text(json.dumps(old))
    r = CliRunner().invoke(main, [str(a) for a in args] + ["--precision", "bf16", "--resume"])
    assert r.exit_code != 0 and "cannot resume" in r.output and "precision" in r.output


def test_deep_jscc_runs_bf16_and_records_it(image_dir):
    from vqcodec.analog import deepjscc_sweep
    from vqcodec.jscc import load_jscc, transmit

    net, _ = load_jscc()
    img = load_image(sorted(image_dir.iterdir())[0])
    a, n = transmit(net, img, lambda s, rng: s, None, "fp32")
    b, m = transmit(net, img, lambda s, rng: s, None, "bf16")
    assert n == m and abs(psnr(img, a) - psnr(img, b)) < 0.05
    images = [(p.name, load_image(p)) for p in sorted(image_dir.iterdir())]
    res = deepjscc_sweep(images, "awgn", [10.0], trials=1, precision="bf16")
    assert res["model"]["precision"] == "bf16"
