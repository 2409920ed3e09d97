"""Issue 31, bar 1: every training recipe of the README, end to end at tiny scale (two tiny images,
a few steps, one torch thread): train, finetune, train-decoder, train-codebook, train-receiver,
train-jscc, train-entropy and prepare, then eval and simulate of what they made. Nothing is
written into the shipped weights (the recipes write to tmp_path; item 2)."""
import json

import pytest
from click.testing import CliRunner

from cli import main

FAST = ["--threads", "1"]
CROP = ["--steps", "2", "--batch", "2", "--crop", "16"]


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, f"vqcodec {' '.join(map(str, args))}\n{r.output}"
    return r.output


def eval_and_simulate(stem, images, receivers="naive", entropy=False):
    out = stem.parent / f"{stem.name}.eval.json"
    run("eval", "--checkpoint", stem, "--images", images, "--json", out, "--precision", "fp32",
        *(["--entropy"] if entropy else []))
    (pt,) = json.loads(out.read_text())["points"]
    assert pt["psnr"]["mean"] > 5
    sim = stem.parent / f"{stem.name}.sim.json"
    run("simulate", "--checkpoint", stem, "--images", images, "--channel", "bsc", "--p", "0.01", "--receiver",
        receivers, "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--json", sim, "--precision", "fp32")
    curves = json.loads(sim.read_text())
    assert {c["receiver"] for c in curves} == set(receivers.split(","))


@pytest.fixture
def shipped_untouched():
    """The shipped weights folder's files are the same after the recipe."""
    import hashlib

    from vqcodec.zoo import WEIGHTS

    def snap():
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(WEIGHTS.glob("f4-k256.*"))}

    before = snap()
    yield
    assert snap() == before


def test_train_prepare_train_entropy_then_eval_and_simulate(tmp_path, image_dir, shipped_untouched):
    m = tmp_path / "mymodel"
    run("train", "--images", image_dir, "-o", m, "--f", "4", "--K", "16", "--d", "4", "--channels", "8,16",
        "--device", "cpu", "--precision", "fp32", *CROP, *FAST)
    run("prepare", "--checkpoint", m, "--images", image_dir, "--kodak", image_dir)
    run("train-entropy", "--checkpoint", m, "--images", image_dir, "--steps", "2", "--rank", "2", *FAST)
    eval_and_simulate(m, image_dir, "naive,spatial-mmse", entropy=True)


@pytest.mark.parametrize("recipe", ["finetune", "train-decoder"])
def test_decoder_recipes_on_a_shipped_model(tmp_path, image_dir, recipe, shipped_untouched):
    out = tmp_path / "mine"
    args = {"finetune": ["finetune", "--model", "f4-k256", "--channel", "bsc", "--p", "0.02", "--receiver",
                         "spatial-mmse"],
            "train-decoder": ["train-decoder", "--model", "f4-k256", "--device", "cpu", "--precision", "fp32"]}[recipe]
    run(*args, "--images", image_dir, "-o", out, *CROP, *FAST)
    eval_and_simulate(out, image_dir, "naive,spatial-mmse,learned-mmse", entropy=True)


def test_train_codebook_then_prepare_and_train_receiver(tmp_path, image_dir, shipped_untouched):
    covq = tmp_path / "mycovq"
    run("train-codebook", "--model", "f4-k256", "--images", image_dir, "-o", covq, *CROP, *FAST)
    run("prepare", "--checkpoint", covq, "--images", image_dir, "--kodak", image_dir)
    run("train-receiver", "--checkpoint", covq, "--images", image_dir, "--steps", "2", "--batch", "2", "--crop", "4",
        "--channels", "8", "--blocks", "1", "--decoder-steps", "1", "--decoder-crop", "16", *FAST)
    eval_and_simulate(covq, image_dir, "naive,spatial-mmse,learned-mmse")


def test_train_receiver_writes_a_copy_of_a_shipped_model(tmp_path, image_dir, shipped_untouched):
    rx = tmp_path / "myreceiver"
    run("train-receiver", "--model", "f4-k256", "--images", image_dir, "-o", rx, "--steps", "2", "--batch", "2",
        "--crop", "4", "--channels", "8", "--blocks", "1", "--decoder-steps", "1", "--decoder-crop", "16", *FAST)
    eval_and_simulate(rx, image_dir, "naive,learned-mmse", entropy=True)


def test_train_jscc_then_its_sweep(tmp_path, image_dir):
    """Deep JSCC has no codec to eval: its trained checkpoint goes through the analog sweep."""
    from vqcodec.analog import deepjscc_sweep
    from vqcodec.images import list_images, load_image

    j = tmp_path / "myjscc"
    run("train-jscc", "--images", image_dir, "-o", j, "--device", "cpu", "--precision", "fp32", "--width", "8",
        *CROP, *FAST)
    images = [(p.name, load_image(p)) for p in list_images(image_dir)]
    res = deepjscc_sweep(images, "awgn", [5.0], checkpoint=j, trials=1, precision="fp32")
    assert res["points"][0]["psnr"]["mean"] > 5


def test_every_option_has_help_and_channels_speak_cli():
    import click

    missing = [f"{name} {p.opts[0]}" for name, cmd in main.commands.items() for p in cmd.params
               if isinstance(p, click.Option) and not p.help]
    assert not missing, missing
    text = run("channels")
    assert "--packet-bits" in text and "packet_bits" not in text and "--block-bits" in text
