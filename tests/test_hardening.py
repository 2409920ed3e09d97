"""Issue 19's classes of bad input: each gives one line naming the problem, a non-zero exit, and
writes nothing (the shipped models and the CLI, in-process)."""
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from tests.test_bad_input import assert_clean_error


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def photo(tmp_path, rgb_image):
    p = tmp_path / "in" / "a.png"
    p.parent.mkdir()
    Image.fromarray(rgb_image).save(p)
    return p


def test_an_index_file_decodes_only_with_its_own_transmitter(photo, tmp_path):
    vqc = tmp_path / "a.vqc"
    r = invoke("encode", photo, "-o", vqc)
    assert r.exit_code == 0, r.output
    ok = invoke("decode", vqc, "-o", tmp_path / "ok.png")
    assert ok.exit_code == 0, ok.output
    header = json.loads(vqc.read_bytes()[8:8 + struct.unpack("<I", vqc.read_bytes()[4:8])[0]])
    assert len(header["fingerprint"]) == 16
    # f4-k256-covq has the same encoder and K but its own codebook: refused
    out = tmp_path / "other.png"
    from vqcodec.zoo import resolve

    assert_clean_error(invoke("decode", vqc, "-o", out, "--checkpoint", resolve("f4-k256-covq")), "fingerprint", out)


def test_the_decoder_refuses_what_the_encoder_would(tmp_path):
    from vqcodec.bits import write_index_file

    vqc = tmp_path / "big.vqc"
    write_index_file(vqc, np.zeros((2000, 2000), np.int64), model="f4-k256", K=256, height=8000, width=8001)
    out = tmp_path / "big.png"
    assert_clean_error(invoke("decode", vqc, "-o", out), "larger than the limit", out)


def test_an_output_type_is_checked_before_the_work(photo, tmp_path):
    vqc = tmp_path / "a.vqc"
    assert invoke("encode", photo, "-o", vqc).exit_code == 0
    out = tmp_path / "out.xyz"
    assert_clean_error(invoke("decode", vqc, "-o", out), "cannot write images of type '.xyz'", out)


def test_encode_takes_one_image_not_a_folder(photo, tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(photo.parent / "b.png")
    out = tmp_path / "a.vqc"
    assert_clean_error(invoke("encode", photo.parent, "-o", out), "holds 2 images", out)


def test_save_dir_may_not_replace_the_inputs(photo):
    before = photo.read_bytes()
    r = invoke("simulate", "--channel", "bsc", "--p", "0.1", "--images", photo.parent, "--save-dir", photo.parent,
               "--trials", "1", "--no-ms-ssim")
    assert_clean_error(r, "inside the input images' folder")
    assert photo.read_bytes() == before and sorted(p.name for p in photo.parent.iterdir()) == ["a.png"]


@pytest.mark.parametrize("args, needle", [
    (["--seed", "-1"], "-1 is not in the range"),
    (["--receiver", "naive,naive"], "named twice"),
])
def test_bad_run_options(photo, args, needle):
    r = invoke("simulate", "--channel", "bsc", "--p", "0.1", "--images", photo, "--trials", "1", *args)
    assert r.exit_code != 0 and needle in r.output, r.output


def test_one_trial_has_no_confidence_interval(photo, tmp_path):
    out = tmp_path / "r.json"
    r = invoke("simulate", "--channel", "bsc", "--p", "0.05", "--images", photo, "--trials", "1", "--min-trials", "1",
               "--receiver", "naive", "--json", out)
    assert r.exit_code == 0, r.output
    pt = json.loads(out.read_text())["points"][0]
    assert pt["stop"] == "budget" and pt["psnr"]["ci95"] is None and pt["ms_ssim"]["ci95"] is None


def test_the_decoder_limit_is_the_encoders(tmp_path):
    """One limit, bits.MAX_IMAGE_PIXELS (64e6): an image file one pixel row over it and an index
    file whose header declares the same size are both refused naming it; at the limit, neither
    is refused for its size."""
    from tests.test_bad_input import png_with_header
    from vqcodec.bits import MAX_IMAGE_PIXELS, IndexFileError, read_index_file, write_index_file
    from vqcodec.images import ImageError, load_image

    assert MAX_IMAGE_PIXELS == 8000 * 8000
    limit = f"larger than the limit of {MAX_IMAGE_PIXELS} pixels"
    png_with_header(tmp_path / "over.png", 8000, 8001)
    with pytest.raises(ImageError, match=limit):
        load_image(tmp_path / "over.png")
    png_with_header(tmp_path / "at.png", 8000, 8000)  # its header passes; its few bytes of data do not
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(tmp_path / "at.png")
    grid = np.zeros((2000, 2000), np.int64)
    write_index_file(tmp_path / "over.vqc", grid, model="f4-k256", K=256, height=8001, width=8000)
    with pytest.raises(IndexFileError, match=limit):
        read_index_file(tmp_path / "over.vqc")
    write_index_file(tmp_path / "at.vqc", grid, model="f4-k256", K=256, height=8000, width=8000)
    idx, header = read_index_file(tmp_path / "at.vqc")
    assert (header["height"], header["width"]) == (8000, 8000) and idx.shape == (2000, 2000)


def test_two_runs_cannot_write_one_results_file(photo, tmp_path):
    from vqcodec.files import exclusive

    out = tmp_path / "r.json"
    with exclusive(out):
        r = invoke("sweep", "--channel", "bsc", "--p", "0.1", "--images", photo, "--trials", "1", "--json", out)
    assert_clean_error(r, "another run is writing it now", out)
    r = invoke("sweep", "--channel", "bsc", "--p", "0.1", "--images", photo, "--trials", "1", "--no-ms-ssim",
               "--receiver", "naive", "--json", out)
    assert r.exit_code == 0 and out.exists() and not list(tmp_path.glob(".r.json.lock")), r.output


def test_train_does_not_replace_a_checkpoint_unasked(tmp_path, image_dir):
    stem = tmp_path / "m"
    (tmp_path / "m.json").write_text("{}")
    r = invoke("train", "--images", image_dir, "-o", stem, "--K", "16", "--d", "4", "--channels", "8,16",
               "--steps", "2", "--batch", "2", "--crop", "16")
    assert_clean_error(r, "exists (use --overwrite")
    assert (tmp_path / "m.json").read_text() == "{}"


def test_finetune_refuses_its_own_input_and_a_crop_off_the_stride(tmp_path, image_dir):
    import shutil

    from vqcodec.zoo import resolve

    shipped = resolve("f8-k256")
    for f in shipped.parent.glob("f8-k256.*"):
        shutil.copy(f, tmp_path / f.name)
    base = tmp_path / "f8-k256"
    before = (tmp_path / "f8-k256.json").read_bytes()
    r = invoke("finetune", "--checkpoint", base, "--channel", "bsc", "--p", "0.01", "--images", image_dir,
               "-o", base, "--steps", "1", "--overwrite")  # without --overwrite: "exists"
    assert_clean_error(r, "is the checkpoint being fine-tuned")
    assert (tmp_path / "f8-k256.json").read_bytes() == before
    r = invoke("finetune", "--channel", "bsc", "--p", "0.01", "--images", image_dir, "-o", tmp_path / "ft",
               "--steps", "1", "--crop", "17")
    assert_clean_error(r, "must be a multiple of the model's stride 4")


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, tiny_model, image_dir):
    import torch

    from vqcodec.model import save_model

    with torch.no_grad():
        next(tiny_model.decoder.parameters()).fill_(float("nan"))
    save_model(tiny_model, tmp_path / "nan", {"name": "nan"})
    out = tmp_path / "r.json"
    assert_clean_error(invoke("eval", "--checkpoint", tmp_path / "nan", "--images", image_dir, "--json", out),
                       "NaN or Inf", out)


# --------------------------------------------------------------------------- issue 27: three classes


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) when a reader blocks on a FIFO."""
    import signal

    def boom(*_):
        raise TimeoutError("blocked on a file that is not a regular file")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_files_that_are_not_regular_files_are_refused_as_input_and_output(photo, tmp_path, no_hang):
    import os
    import stat

    from vqcodec.files import OutputError, replace_atomically
    from vqcodec.results import ResultsError, read_results

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # input: an index file, an image, a results file that is a FIFO (a reader would block on it)
    assert_clean_error(invoke("decode", fifo, "-o", tmp_path / "x.png"), "is a FIFO", tmp_path / "x.png")
    assert_clean_error(invoke("encode", fifo, "-o", tmp_path / "x.vqc"), "FIFO", tmp_path / "x.vqc")
    with pytest.raises(ResultsError, match="is a FIFO"):
        read_results(fifo)
    # output: --json / -o naming a FIFO or a device (even with --overwrite) is refused before any work,
    # and the FIFO stays a FIFO (the atomic rename would have replaced it with a regular file)
    for args in (["encode", photo, "-o", fifo, "--overwrite"],
                 ["simulate", "--channel", "bsc", "--p", "0.1", "--images", photo, "--trials", "1",
                  "--json", fifo, "--overwrite"],
                 ["simulate", "--channel", "bsc", "--p", "0.1", "--images", photo, "--trials", "1",
                  "--json", os.devnull, "--overwrite"]):
        assert_clean_error(invoke(*args), "not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    with pytest.raises(OutputError, match="not a regular file"):
        replace_atomically(fifo, lambda tmp: tmp.write_bytes(b"x"))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not list(tmp_path.glob("*.lock")) + list(tmp_path.glob(".*.lock"))


def test_nesting_in_structured_input_is_one_line(tmp_path):
    from vqcodec.bits import VQC_MAGIC_V1

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 60000)
    out = tmp_path / "fig.png"
    assert_clean_error(invoke("plot", deep, "-o", out), "nested too deeply", out)
    vqc = tmp_path / "deep.vqc"
    head = b"[" * 60000
    vqc.write_bytes(VQC_MAGIC_V1 + struct.pack("<I", len(head)) + head)
    assert_clean_error(invoke("decode", vqc, "-o", out), "nested too deeply", out)
    toml = tmp_path / "deep.toml"
    toml.write_text("a = " + "[" * 60000)
    assert_clean_error(invoke("bench", toml, "--out", tmp_path / "b"), "nested too deeply")
    assert not (tmp_path / "b").exists()


def test_option_values_whose_size_explodes_work_are_bounded(tmp_path, photo):
    import time

    from channels.erasure import PacketErasure
    from channels.options import MAX_GRID_POINTS, parse_grid
    from vqcodec import entropy
    from vqcodec.prior import learn_prior

    # --packet-bits far beyond the payload: O(n) memory, one packet (was n_packets * k bytes: 93 GiB)
    bits = np.zeros(1000, np.uint8)
    rx = PacketErasure(p=0.5, packet_bits=99_999_999_999)(bits, np.random.default_rng(0))
    assert rx.hard.shape == (1000,) and len(set(rx.hard.tolist())) == 1
    small = PacketErasure(p=0.5, packet_bits=7)(bits, np.random.default_rng(3))
    assert all(len(set(small.hard[i:i + 7].tolist())) == 1 for i in range(0, 1000, 7))
    # a grid of a billion points: refused at once, naming the limit
    with pytest.raises(ValueError, match=f"limit of {MAX_GRID_POINTS}"):
        parse_grid("1e-3:1e-1:1000000000")
    r = invoke("sweep", "--channel", "bsc", "--p", "1e-3:1e-1:1000000000", "--images", photo, "--json",
               tmp_path / "s.json")
    assert_clean_error(r, f"limit of {MAX_GRID_POINTS}", tmp_path / "s.json")
    # an entropy-coded payload of 388 bytes claiming a 2000x2000 grid (an 8000x8000 image): refused
    # within the first wavefronts (was: 55 s)
    rng = np.random.default_rng(0)
    cm = entropy.ContextModel.from_prior(learn_prior([rng.integers(0, 16, (20, 20))], 16), 0.5)
    data = rng.integers(1, 2 ** 32, size=97, dtype=np.uint64).astype("<u4").tobytes()
    t = time.perf_counter()
    with pytest.raises(entropy.EntropyStreamError, match="388 bytes is too short for the 2000x2000"):
        entropy.decode_indices(data, 2000, 2000, cm)
    assert time.perf_counter() - t < 5


# --------------------------------------------------------------------------- issue 27: new failures


def test_bench_resume_accepts_its_own_sweep_curves(tmp_path):
    from vqcodec import suites as S
    from vqcodec.results import new_results, write_results

    st = S.load_suite("smoke")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    curve = dict(description="", seed=0, model={"name": "f4-k256"}, images={}, channel={"kind": "bsc"},
                 receiver="naive")
    write_results(run_dir / "results.json", [new_results(name=f"smoke-{st.channel}", **curve)])
    S.check_resume_dir(st, run_dir)  # its own curves: accepted (was refused for every sweep suite)
    write_results(run_dir / "results.json", [new_results(name="other-bsc", **curve)])
    with pytest.raises(S.SuiteError, match="not of suite smoke"):
        S.check_resume_dir(st, run_dir)


def test_bench_refuses_a_missing_expected_file_and_an_unwritable_folder_before_the_run(tmp_path, monkeypatch):
    import errno

    from vqcodec import suites as S

    toml = tmp_path / "mine.toml"
    toml.write_text((S.SUITES / "smoke.toml").read_text().replace('name = "smoke"', 'name = "mine"')
                    .replace('expected = "smoke.json"', 'expected = "no-such-file.json"'))
    assert_clean_error(invoke("bench", toml, "--out", tmp_path / "b"), "does not exist")

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", "results")

    monkeypatch.setattr(S, "new_run_dir", read_only)
    assert_clean_error(invoke("bench", "smoke", "--out", tmp_path / "b"), "cannot create the run folder")


def test_plot_needs_overwrite_and_bad_labels_or_rd_files_are_one_line(tmp_path):
    from vqcodec.results import new_results, write_results

    res = new_results(name="n", description="", seed=0, model={"name": "m"}, images={}, channel={"kind": "bsc"},
                      receiver="naive", points=[{"param": 0.01, "bpp": 0.5, "psnr": {"mean": 25.0, "ci95": 0.1}}])
    src = tmp_path / "r.json"
    write_results(src, [res])
    fig = tmp_path / "fig.png"
    fig.write_bytes(b"mine")
    assert_clean_error(invoke("plot", src, "-o", fig), "exists (use --overwrite")
    assert fig.read_bytes() == b"mine"
    assert invoke("plot", src, "-o", fig, "--overwrite").exit_code == 0 and fig.read_bytes() != b"mine"
    # a curve's own "style" is not drawn (assign_styles keeps colour x line style unique), so an
    # unknown marker or line style there cannot break the figure
    write_results(src, [{**res, "style": {"marker": "no-such-marker", "ls": 7}}])
    styled = tmp_path / "styled.png"
    assert invoke("plot", src, "-o", styled).exit_code == 0 and styled.stat().st_size > 1000
    write_results(src, [{**res, "label": r"$\frac{1}{$"}])
    out = tmp_path / "new.png"
    assert_clean_error(invoke("plot", src, "-o", out), "cannot draw the figure", out)
    for bpp in (0.5, ["a", "b"], None, [0.1, 0.2, 0.3]):
        ca = tmp_path / "ca.json"
        ca.write_text(json.dumps({"name": "x", "results": {"bpp": bpp, "psnr-rgb": [30.0, 31.0]}}))
        assert_clean_error(invoke("plot", "--rd", ca, "-o", out), "lists of finite numbers", out)


def test_no_lock_file_is_left_after_ctrl_c(tmp_path):
    from vqcodec.files import exclusive

    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        with exclusive(out):
            assert (tmp_path / ".r.json.lock").exists()
            raise KeyboardInterrupt
    assert not (tmp_path / ".r.json.lock").exists()


def test_image_names_that_are_not_utf8_and_animated_gifs(tmp_path, rgb_image):
    import os

    d = tmp_path / "imgs"
    d.mkdir()
    name = os.fsdecode(b"caf\xe9.png")
    Image.fromarray(rgb_image).save(d / name)
    out = tmp_path / "r.json"
    r = invoke("eval", "--images", d, "--json", out)
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["points"][0]["per_image"][0]["image"] == "caf\\xe9.png"
    gif = tmp_path / "anim.gif"
    frames = [Image.fromarray(rgb_image), Image.fromarray(255 - rgb_image)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    r = invoke("encode", gif, "-o", tmp_path / "a.vqc")
    assert r.exit_code == 0 and "Note: " in r.output and "2 frames; frame 0 is used" in r.output, r.output
