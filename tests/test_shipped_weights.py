"""Issue 31, item 2: no command writes into the shipped weights folder unless the user names the
file and says --overwrite. Every writer is tried against a copy of the folder (f4-k256's files
only), never the real one."""
import hashlib
import shutil

import pytest
from click.testing import CliRunner

from cli import main

TINY = ["--steps", "2", "--batch", "2", "--crop", "16", "--threads", "1"]


@pytest.fixture
def weights(tmp_path, monkeypatch):
    import vqcodec.zoo as zoo

    d = tmp_path / "weights"
    d.mkdir()
    for f in zoo.WEIGHTS.glob("f4-k256.*"):
        shutil.copyfile(f, d / f.name)
    monkeypatch.setattr(zoo, "WEIGHTS", d)
    zoo.clear_cache()
    yield d
    zoo.clear_cache()


def snapshot(folder):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def writers(w, imgs):
    """Each writer as a README user would run it, pointed at the shipped folder."""
    return {
        "train": ["train", "--images", imgs, "-o", w / "mine", "--f", "4", "--K", "16", "--device", "cpu", *TINY],
        "train-jscc": ["train-jscc", "--images", imgs, "-o", w / "jscc", "--device", "cpu", *TINY],
        "train-decoder": ["train-decoder", "--model", "f4-k256", "--images", imgs, "-o", w / "dec", "--device", "cpu",
                          *TINY],
        "finetune": ["finetune", "--model", "f4-k256", "--channel", "bsc", "--p", "0.02", "--receiver", "naive",
                     "--images", imgs, "-o", w / "f4-k256-bsc0.02", *TINY],
        "train-codebook": ["train-codebook", "--model", "f4-k256", "--images", imgs, "-o", w / "covq", *TINY],
        "train-receiver": ["train-receiver", "--model", "f4-k256", "--images", imgs, "--decoder-steps", "0",
                           "--steps", "2", "--threads", "1"],
        "prepare": ["prepare", "--images", imgs],
        "prepare-named": ["prepare", "--model", "f4-k256", "--images", imgs],
        "train-entropy": ["train-entropy", "--model", "f4-k256", "--images", imgs, "--steps", "2", "--threads", "1"],
    }


@pytest.mark.parametrize("writer", ["train", "train-jscc", "train-decoder", "finetune",
                                    "train-codebook", "train-receiver", "prepare", "prepare-named", "train-entropy"])
def test_every_writer_refuses_the_shipped_folder_without_overwrite(weights, image_dir, writer):
    before = snapshot(weights)
    args = [str(a) for a in writers(weights, image_dir)[writer]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "Traceback" not in r.output
    assert "shipped weights folder" in last, last
    assert snapshot(weights) == before


def test_overwrite_without_naming_the_model_is_refused(weights, image_dir):
    r = CliRunner().invoke(main, ["prepare", "--images", str(image_dir), "--overwrite"])
    assert r.exit_code == 1 and "name it with --model" in r.output


def test_train_receiver_writes_a_copy_and_overwrite_rewrites_in_place(weights, image_dir, tmp_path):
    """-o leaves the shipped model alone; --overwrite with the model named rewrites it on purpose."""
    import json

    before = snapshot(weights)
    out = tmp_path / "mine" / "f4-k256-rx"
    out.parent.mkdir()
    r = CliRunner().invoke(main, ["train-receiver", "--model", "f4-k256", "--images", str(image_dir), "-o", str(out),
                                  "--decoder-steps", "0", "--steps", "2", "--crop", "4", "--batch", "2", "--channels", "8", "--blocks", "1",
                                  "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert snapshot(weights) == before
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["name"] == "f4-k256-rx" and meta["context"]["config"]["channels"] == 8
    for suffix in (".safetensors", ".prior.safetensors", ".entropy.safetensors", ".context.safetensors"):
        assert out.with_name(out.name + suffix).exists(), suffix
    r = CliRunner().invoke(main, ["train-entropy", "--model", "f4-k256", "--images", str(image_dir), "--steps", "2",
                                  "--rank", "2", "--threads", "1", "--overwrite"])
    assert r.exit_code == 0, r.output
    after = snapshot(weights)
    assert after["f4-k256.entropy.safetensors"] != before["f4-k256.entropy.safetensors"]
