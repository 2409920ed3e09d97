"""The one training loop (vqcodec.learn.loop): precision, resume from the saved settings, growth."""
import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from vqcodec.learn.codec import grow_decoder, train
from vqcodec.learn.loop import (
    Loop,
    Task,
    TrainConfig,
    lr_at,
    read_state,
    resume_config,
    state_paths,
    training_precision,
)
from vqcodec.model import VQVAE, load_model


@pytest.mark.parametrize("stages", [1, 3])
def test_quantiser_under_bf16_autocast_gives_the_fp32_indices_of_fp32_latents(stages):
    torch.manual_seed(0)
    m = VQVAE(dataclasses.replace(tiny_config(), stages=stages)).eval()
    z = torch.randn(2, 4, 9, 7)
    ref = m.quantizer(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m.quantizer(z)
        z_bf16 = m.quantizer(z.bfloat16())  # what an encoder under autocast hands it
    assert torch.equal(got["indices"], ref["indices"])
    assert got["z_q"].dtype == torch.float32 and got["commit_loss"].dtype == torch.float32
    assert torch.equal(got["z_q"], ref["z_q"])
    assert z_bf16["z_q"].dtype == torch.float32
    # the distances themselves are fp32: a bf16 matmul would pick other codewords for close calls
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        from vqcodec.model import nearest_codeword
        idx = nearest_codeword(flat, m.codebooks[0])
    assert torch.equal(idx, nearest_codeword(flat, m.codebooks[0]))


def test_training_precision_auto_follows_the_processor(monkeypatch):
    import vqcodec.learn.loop as L

    monkeypatch.setattr(L, "cpu_has_bf16", lambda: True)
    assert training_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(L, "cpu_has_bf16", lambda: False)  # a processor without bf16 falls back to fp32
    assert training_precision("auto", "cpu") == "fp32"
    assert training_precision("auto", "cuda") == "bf16" and training_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        training_precision("fp16", "cpu")


def test_a_bf16_step_runs_under_autocast_and_a_fp32_step_does_not():
    seen = {}
    lin = torch.nn.Linear(4, 4)

    def step(tc, rng, gen):
        seen[tc.precision] = torch.is_autocast_enabled("cpu")
        y = lin(torch.ones(2, 4))
        seen[tc.precision + " dtype"] = y.dtype
        return y.float().pow(2).mean(), {}

    for p in ("bf16", "fp32"):
        Loop(TrainConfig(steps=1, warmup=0, precision=p)).run(Task(lin, [list(lin.parameters())], step))
    assert seen == {"bf16": True, "bf16 dtype": torch.bfloat16, "fp32": False, "fp32 dtype": torch.float32}
    assert lin.weight.dtype == torch.float32  # fp32 master weights


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_the_saved_schedule_at_each_precision(tmp_path, image_dir, precision):
    torch.set_num_threads(1)
    tc = TrainConfig(steps=6, batch=2, crop=16, warmup=1, log_every=1, checkpoint_every=3, precision=precision)
    train(tiny_config(), tc, image_dir, tmp_path / "full")

    def stop(step, m):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), tc, image_dir, tmp_path / "part", progress=stop)
    saved = resume_config(tmp_path / "part")  # no options given: the saved settings, precision resolved
    assert saved == dataclasses.replace(tc, precision=precision)
    steps = []
    train(tiny_config(), saved, image_dir, tmp_path / "part", resume=True, progress=lambda s, m: steps.append(s))
    assert steps == [4, 5, 6]
    a, meta = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    assert meta["training"]["precision"] == precision
    for (k, v), (_, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, v2), k


def test_resume_config_refuses_contradicting_settings_and_stretches_steps(tmp_path, image_dir):
    tc = TrainConfig(steps=2, batch=2, crop=16, warmup=1, checkpoint_every=1, precision="fp32")
    train(tiny_config(), tc, image_dir, tmp_path / "r")
    assert resume_config(tmp_path / "r", {"batch": 2, "precision": "auto"}) == tc
    assert resume_config(tmp_path / "r", {"steps": 5}).steps == 5
    for bad in ({"batch": 16}, {"crop": 64}, {"precision": "bf16"}, {"lr": 1.0}):
        with pytest.raises(ValueError, match="saved settings"):
            resume_config(tmp_path / "r", bad)
    with pytest.raises(ValueError, match="has done 2 of its 2 steps"):
        resume_config(tmp_path / "r", {"steps": 1})


def test_a_resumed_run_may_shorten_its_schedule_to_anneal_sooner(tmp_path, image_dir):
    """A run stopped at step 2 of 10 may continue with steps 5 (the cosine tail shrinks: the
    learning rate drops to the shorter schedule's), not with steps <= 2."""
    tc = TrainConfig(steps=2, batch=2, crop=16, warmup=1, checkpoint_every=1, precision="fp32")
    train(tiny_config(), tc, image_dir, tmp_path / "r")
    jpath = state_paths(tmp_path / "r")[1]
    doc = json.loads(jpath.read_text())
    doc["train_config"]["steps"] = 10  # as if stopped after 2 of 10 steps
    jpath.write_text(json.dumps(doc))
    short = resume_config(tmp_path / "r", {"steps": 5})
    assert short.steps == 5 and lr_at(2, short) < lr_at(2, resume_config(tmp_path / "r"))
    for bad in (2, 1):
        with pytest.raises(ValueError, match="has done 2 of its 10 steps"):
            resume_config(tmp_path / "r", {"steps": bad})


def test_cli_resume_keeps_the_runs_settings_and_refuses_contradicting_options(tmp_path, image_dir):
    """issue 27, item 1: a short run resumed without its options continues with its own batch,
    crop and steps, not the command's defaults; an option that contradicts it is refused."""
    from cli import main

    out = tmp_path / "r1"
    base = ["train", "--images", str(image_dir), "-o", str(out), "--channels", "8,8", "--decoder-channels", "8",
            "--K", "16", "--device", "cpu", "--threads", "1", "--precision", "fp32"]
    r = CliRunner().invoke(main, base + ["--steps", "4", "--checkpoint-every", "2", "--crop", "16", "--batch", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--images", str(image_dir), "-o", str(out), "--resume", "--crop", "32",
                                  "--device", "cpu", "--threads", "1"])
    assert r.exit_code == 1 and "crop 16" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()[-1]) < 200
    r = CliRunner().invoke(main, ["train", "--images", str(image_dir), "-o", str(out), "--resume", "--steps", "6",
                                  "--device", "cpu", "--threads", "1"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.with_suffix(".json").read_text())["training"]
    assert doc["steps_done"] == 6
    assert (doc["train_config"]["batch"], doc["train_config"]["crop"], doc["train_config"]["steps"]) == (2, 16, 6)
    assert read_state(out)["step"] == 6


def test_a_grown_decoder_first_decodes_what_its_base_decodes():
    torch.manual_seed(0)
    base_cfg = dataclasses.replace(tiny_config(), decoder_head="subpixel", decoder_channels=8)
    base = VQVAE(base_cfg).eval()
    for p in base.decoder.parameters():  # a trained-looking base: no zero weights anywhere
        torch.nn.init.normal_(p, std=0.2)
    new = VQVAE(dataclasses.replace(base_cfg, decoder_channels=12, decoder_res_blocks=3)).eval()
    new.load_state_dict({k: v for k, v in base.state_dict().items() if not k.startswith("decoder.")}, strict=False)
    grow_decoder(new, base)
    z = torch.randn(2, 4, 5, 6)
    assert torch.allclose(new.decode_embeddings(z), base.decode_embeddings(z), atol=1e-5)
    assert any(float(p.detach().abs().sum()) > 0 for n, p in new.decoder.named_parameters() if "net.3." in n)  # new block
    with pytest.raises(ValueError, match="at least"):
        grow_decoder(VQVAE(dataclasses.replace(base_cfg, decoder_channels=4)), base)
    with pytest.raises(ValueError, match="sub-pixel"):
        grow_decoder(VQVAE(tiny_config()), base)


def test_train_decoder_resumes_and_grows(tmp_path, image_dir, tiny_model):
    from vqcodec.bits import identity_assignment
    from vqcodec.learn.codec import train_decoder
    from vqcodec.zoo import Codec

    torch.set_num_threads(1)
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16))
    cfg = dataclasses.replace(tiny_model.cfg, decoder_channels=12, decoder_head="subpixel")
    tc = TrainConfig(steps=6, batch=2, crop=16, warmup=1, log_every=1, checkpoint_every=3, precision="bf16")
    train_decoder(codec, cfg, tc, image_dir, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train_decoder(codec, cfg, tc, image_dir, tmp_path / "part",
                      progress=lambda s, m: (_ for _ in ()).throw(KeyboardInterrupt) if s == 4 else None)
    train_decoder(codec, cfg, resume_config(tmp_path / "part"), image_dir, tmp_path / "part", resume=True)
    a, meta = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    assert meta["training"]["precision"] == "bf16" and meta["training"]["steps_done"] == 6
    for (k, v), (_, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, v2), k
    other = Codec(name="other", model=VQVAE(tiny_model.cfg).eval(), meta={"name": "o"},
                  assignment=identity_assignment(16))
    from vqcodec.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="transmitter"):
        train_decoder(other, cfg, resume_config(tmp_path / "part", {"steps": 8}), image_dir, tmp_path / "part",
                      resume=True)


@pytest.mark.parametrize("command", ["finetune", "train-decoder"])
def test_a_model_made_from_a_shipped_one_loads_with_its_side_information(tmp_path, image_dir, command):
    """issue 31, item 1: the new checkpoint's json names the base's entropy model and context
    receiver, so their files come with it, and it evaluates and simulates."""
    from cli import main

    out = tmp_path / "new"
    args = {"finetune": ["finetune", "--model", "f4-k256", "--channel", "bsc", "--p", "0.02", "--receiver", "naive"],
            "train-decoder": ["train-decoder", "--model", "f4-k256", "--device", "cpu"]}[command]
    r = CliRunner().invoke(main, args + ["--images", str(image_dir), "-o", str(out), "--steps", "2", "--batch", "2",
                                         "--crop", "16", "--threads", "1"])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["entropy_model"] and meta["context"]
    r = CliRunner().invoke(main, ["simulate", "--checkpoint", str(out), "--channel", "bsc", "--p", "0.01",
                                  "--images", str(image_dir), "--trials", "1", "--min-trials", "1", "--no-ms-ssim",
                                  "--receiver", "naive,learned-mmse"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["encode", str(image_dir / "a.png"), "-o", str(tmp_path / "a.vqc"), "--checkpoint",
                                  str(out), "--entropy"])
    assert r.exit_code == 0, r.output


def test_a_compacted_state_halves_its_moments_and_still_resumes(tmp_path, image_dir):
    from vqcodec.learn.loop import compact_state, state_paths

    tc = TrainConfig(steps=4, batch=2, crop=16, warmup=1, checkpoint_every=2, precision="fp32")
    train(tiny_config(), tc, image_dir, tmp_path / "full")

    def stop(step, m):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), dataclasses.replace(tc, log_every=1), image_dir, tmp_path / "c", progress=stop)
    before, after = compact_state(tmp_path / "c")
    assert after < 0.6 * before
    from safetensors.torch import load_file
    moments = [v for k, v in load_file(str(state_paths(tmp_path / "c")[0])).items() if "exp_avg" in k]
    assert moments and all(v.dtype == torch.bfloat16 for v in moments)
    train(tiny_config(), resume_config(tmp_path / "c"), image_dir, tmp_path / "c", resume=True)
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "c")
    for (k, v), (_, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(v, v2, atol=1e-3), k  # close, not bitwise: the moments were rounded


def test_a_damaged_training_state_is_one_line(tmp_path, image_dir):
    """issue 27, item 6: a resume from a state whose tensors were zeroed (or truncated) says so in one
    line instead of torch's 'Invalid mt19937 state' traceback."""
    from safetensors.torch import load_file, save_file

    from cli import main
    from vqcodec.learn.loop import state_paths

    out = tmp_path / "z"
    base = ["train", "--images", str(image_dir), "-o", str(out), "--channels", "8,8", "--decoder-channels", "8",
            "--K", "16", "--device", "cpu", "--threads", "1", "--precision", "fp32", "--crop", "16", "--batch", "2"]
    assert CliRunner().invoke(main, base + ["--steps", "2", "--checkpoint-every", "1"]).exit_code == 0
    wpath = state_paths(out)[0]
    save_file({k: torch.zeros_like(v) for k, v in load_file(str(wpath)).items()}, str(wpath))
    r = CliRunner().invoke(main, base[:3] + base[3:5] + ["--resume", "--steps", "4", "--device", "cpu"])
    assert r.exit_code == 1 and "corrupt training state" in r.output and "Traceback" not in r.output
    wpath.write_bytes(wpath.read_bytes()[:100])
    r = CliRunner().invoke(main, base[:5] + ["--resume", "--steps", "4", "--device", "cpu"])
    assert r.exit_code == 1 and "corrupt training state" in r.output and "Traceback" not in r.output


def test_a_diverged_run_keeps_its_last_good_checkpoint(tmp_path):
    """A loss that jumps 50x after step 60 (as Deep JSCC at lr 1.5e-3 did) stops the run at the next
    checkpoint with a one-line error, and the checkpoint before the collapse stays on disk."""
    from vqcodec.learn.loop import TrainingDiverged

    lin = torch.nn.Linear(2, 1)
    saved = []

    def step(tc, rng, gen):
        scale = 1.0 if len(saved) < 3 else 50.0  # collapses after the third checkpoint
        return lin(torch.ones(1, 2)).pow(2).mean() * 0 + scale + 0.01 * float(rng.random()), {}

    tc = TrainConfig(steps=200, warmup=2, log_every=5, checkpoint_every=20, precision="fp32")
    loop = Loop(tc, window=10)
    with pytest.raises(TrainingDiverged, match="diverged at step 80.*step 60 is kept"):
        loop.run(Task(lin, [list(lin.parameters())], step, save=lambda run: saved.append(run.step)))
    assert saved == [20, 40, 60]
