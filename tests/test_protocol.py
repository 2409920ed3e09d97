"""The codec protocol: models of other libraries through vqcodec (``vqcodec.protocol``, ``vq.wrap``,
plug-ins in ``vqcodec.zoo``).

The model here is a tiny finite scalar quantiser written in the test (Mentzer et al., "Finite
Scalar Quantization", 2023, in its simplest form): each f x f block's mean colour, each channel
rounded to one of L_c levels; K = prod(L_c) = 36 codes, not a power of two. Its decoder is
linear (code vector -> constant block), so the MMSE code vector minimises the expected pixel
MSE: a soft receiver must beat the naive one, which the tests assert.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

import vqcodec.api as vq
from vqcodec.images import list_images, load_image, save_image
from vqcodec.zoo import SIDE_FORMAT, clear_cache, side_path

LEVELS = (4, 3, 3)
ROOT = Path(__file__).resolve().parent.parent
VQCODEC = [sys.executable, "-c", "import cli; cli.main()"]


class TinyFSQ(nn.Module):
    """Block means, each RGB channel rounded to one of LEVELS levels; index = mixed radix."""

    def __init__(self, f: int = 4, levels=LEVELS):
        super().__init__()
        self.f = f
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))
        self.register_buffer("gain", torch.ones(3))  # a state to fingerprint; tests change it

    @property
    def K(self) -> int:
        return int(torch.prod(self.levels))

    def _radix(self) -> torch.Tensor:
        L = self.levels.long()
        return torch.tensor([int(L[1] * L[2]), int(L[2]), 1])

    def codes(self) -> torch.Tensor:
        """(K, 3): every index's colour in [0, 1], in index order."""
        idx = torch.arange(self.K)
        digits = torch.stack([(idx // r) % int(L) for r, L in zip(self._radix(), self.levels.long())], 1)
        return digits.float() / (self.levels - 1) * self.gain

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        m = F.avg_pool2d(x, self.f)
        d = torch.round(m.clamp(0, 1) * (self.levels - 1)[None, :, None, None]).long()
        return (d * self._radix()[None, :, None, None]).sum(1)

    def decode_codes(self, z: torch.Tensor) -> torch.Tensor:
        return F.interpolate(z, scale_factor=self.f, mode="nearest")

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        return self.decode_codes(self.codes()[idx].permute(0, 3, 1, 2))


def wrapped(module=None, weights=None, soft: bool = True, **kw):
    module = module or TinyFSQ()
    extra = dict(codebooks=module.codes, decode_embeddings="decode_codes") if soft else {}
    return vq.wrap(module, f=module.f, K=module.K, name="tiny-fsq", weights=weights, **extra, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Ten small photos (two crops of each scikit-image sample) as PNG files: prepare's training images."""
    d = tmp_path_factory.mktemp("images")
    for i, path in enumerate(list_images(None)):
        img = load_image(path)
        save_image(d / f"{i}a.png", np.ascontiguousarray(img[:160, :224]))
        save_image(d / f"{i}b.png", np.ascontiguousarray(img[-160:, -224:]))
    return d


@pytest.fixture
def tok(tmp_path):
    """A TinyFSQ saved as safetensors, and its wrapped model loaded from there."""
    path = tmp_path / "tiny.safetensors"
    save_file(TinyFSQ().state_dict(), str(path))
    module = TinyFSQ()
    module.load_state_dict(load_file(str(path)))
    return wrapped(module, weights=path), path


def test_wrap_checks_the_contract_in_one_line():
    m = TinyFSQ()
    with pytest.raises(vq.ProtocolError, match="K must be an integer in"):
        vq.wrap(m, f=4, K=1)
    with pytest.raises(vq.ProtocolError, match="has no method 'encode_it'"):
        vq.wrap(m, f=4, K=36, encode="encode_it")
    with pytest.raises(vq.ProtocolError, match="codebooks and decode_embeddings together"):
        vq.wrap(m, f=4, K=36, codebooks=m.codes)
    bad = vq.wrap(m, f=4, K=36, encode=lambda x: m.encode(x).float())
    with pytest.raises(vq.ProtocolError, match=r"encode must give integer indices \(1, 4, 5\)"):
        bad.encode(torch.rand(1, 3, 16, 20))
    short = vq.wrap(m, f=4, K=20)  # indices up to 35 do not fit K = 20
    with pytest.raises(vq.ProtocolError, match=r"outside \[0, 20\)"):
        short.encode(torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="not a codec model: it has no f, K, stages"):
        vq.load(object())


def test_wrapped_model_pads_and_its_soft_decode_matches_the_hard_one():
    m = wrapped()
    x = torch.rand(2, 3, 30, 21)  # not multiples of f = 4: padded to 32 x 24
    idx = m.encode(x)
    assert idx.shape == (2, 8, 6) and idx.dtype == torch.int64
    assert torch.equal(m.decode_embeddings(m.embed(idx)), m.decode(idx))
    assert m.codebooks.shape == (1, 36, 3)


def test_an_fsq_model_runs_through_simulate_and_a_soft_receiver_beats_the_naive_one():
    codec = vq.load(wrapped())
    assert (codec.K, codec.bits_per_index, codec.bpp) == (36, 6, 6 / 16)
    res = vq.simulate("bsc", 0.05, codec=codec, receivers="naive,mmse", trials=2, min_trials=2)
    naive, mmse = (r["points"][0]["psnr"]["mean"] for r in res)
    assert res[0]["model"]["name"] == "tiny-fsq" and res[0]["model"]["K"] == 36
    assert mmse > naive + 0.5, (naive, mmse)
    # labels 36..63 are unused: a flip onto one is still decoded to a valid index
    assert 0 < res[0]["points"][0]["index_error_rate"] < 1


def test_a_model_without_codebooks_runs_the_hard_receivers_and_refuses_the_soft_ones_in_one_line():
    codec = vq.load(wrapped(soft=False))
    assert not codec.soft
    with pytest.raises(ValueError, match="receiver mmse needs the model's codebooks and decode_embeddings, and "
                                         "tiny-fsq has none"):
        vq.simulate("bsc", 0.01, codec=codec, receivers="naive,mmse", trials=1, min_trials=1)
    res = vq.simulate("bsc", 0.01, codec=codec, trials=1, min_trials=1)
    assert [r["receiver"] for r in res] == ["naive"]


def test_prepare_a_wrapped_model_then_sweep_with_the_spatial_receiver(tok, folder, tmp_path):
    model, path = tok
    with pytest.raises(ValueError, match="spatial-mmse needs an index prior"):
        vq.sweep("bsc", [0.01], codec=vq.load(model), receivers="spatial-mmse", trials=1, min_trials=1)
    summary, stem = vq.prepare(model=model, images=folder, kodak=folder)
    assert stem == path.with_suffix("")
    doc = json.loads(side_path(stem).read_text())
    assert doc["format"] == SIDE_FORMAT and doc["K"] == 36 and len(doc["assignment"]) == 36
    info = summary["assignment"]
    assert info["final_cost"] < info["identity_cost"]  # the assignment makes one-bit errors cheaper
    codec = vq.load(model)
    assert codec.prior is not None  # 36 distinct labels of 6 bits, chosen among all 64
    assert len(set(codec.assignment.tolist())) == 36 and codec.assignment.max() < 64
    assert not np.array_equal(codec.assignment, np.arange(36))
    res = vq.sweep("bsc", [0.02], codec=codec, receivers="naive,mmse,spatial-mmse", trials=2, min_trials=2,
                   json_out=tmp_path / "tiny.json")
    psnr = {r["receiver"]: r["points"][0]["psnr"]["mean"] for r in res}
    assert psnr["spatial-mmse"] > psnr["naive"], psnr
    assert (tmp_path / "tiny.json").exists()


def test_a_changed_model_is_refused_after_prepare_and_prepared_afresh(tok, folder):
    model, path = tok
    vq.prepare(model=model, images=folder, kodak=folder)
    changed = TinyFSQ()
    changed.gain.fill_(0.9)  # another version of the model: its codebook moved
    save_file(changed.state_dict(), str(path))
    module = TinyFSQ()
    module.load_state_dict(load_file(str(path)))
    again = wrapped(module, weights=path)
    with pytest.raises(ValueError, match=r"tiny.vqcodec.json: prepared for another version of tiny-fsq "
                                         r"\(fingerprint [0-9a-f]{16}, the model's is [0-9a-f]{16}\); run"):
        vq.load(again)
    vq.prepare(model=again, images=folder, kodak=folder)  # prepare rewrites it for the new version
    assert vq.load(again).prior is not None


def test_a_model_held_in_memory_has_nowhere_to_store_side_information(folder):
    with pytest.raises(ValueError, match="has no weights file to store side information beside"):
        vq.prepare(model=wrapped(), images=folder)


def test_index_file_round_trip_with_a_wrapped_model(tok, tmp_path):
    model, _ = tok
    from skimage import data

    src = tmp_path / "in.png"
    save_image(src, data.astronaut()[:61, :83])
    out = vq.encode_file(src, tmp_path / "a.vqc", model=model)
    assert out.image.indices.shape == (16, 21) and out.bits_per_index == 6
    idx, header = vq.read_index_file(tmp_path / "a.vqc")
    assert header["model"] == "tiny-fsq" and header["K"] == 36
    np.testing.assert_array_equal(idx.reshape(16, 21), out.image.indices)
    vq.decode_file(tmp_path / "a.vqc", tmp_path / "b.png", model=model)
    np.testing.assert_array_equal(load_image(tmp_path / "b.png"), out.image.clean)


def test_vqcodec_own_model_through_wrap_gives_the_same_results_as_loaded_directly():
    codec = vq.load("f4-k256", precision="fp32")
    net = codec.model
    same = vq.wrap(net, f=4, K=256, codebooks=lambda: net.codebooks, decode_embeddings="decode_embeddings",
                   pad="model", name="f4-k256")
    other = vq.load(same, precision="fp32")
    plain = vq.load("f4-k256", precision="fp32")
    # the shipped model's side information aside (the wrapped one has none): identity assignment, no prior
    from dataclasses import replace

    plain = replace(plain, assignment=np.arange(256), prior=None, context=None, entropy_model=None)
    from skimage import data

    images = {"a": np.ascontiguousarray(data.astronaut()[:128, :160])}
    a = vq.simulate("bsc", 0.02, codec=plain, images=images, receivers="naive,mmse", trials=2, min_trials=2)
    b = vq.simulate("bsc", 0.02, codec=other, images=images, receivers="naive,mmse", trials=2, min_trials=2)
    for ra, rb in zip(a, b):
        assert ra["points"] == rb["points"]


PLUGIN = textwrap.dedent('''
    import torch
    from safetensors.torch import load_file
    import vqcodec.api as vq
    from tinyfsq_model import TinyFSQ

    def build(weights=None):
        m = TinyFSQ()
        if weights is not None:
            m.load_state_dict(load_file(weights))
        return vq.wrap(m, f=4, K=m.K, codebooks=m.codes, decode_embeddings="decode_codes", name="tiny-plugin",
                       weights=weights)
''')


@pytest.fixture
def plugin_path(tmp_path):
    """A plug-in package installed the way pip would: a module and a dist-info with an entry point
    in the group vqcodec.codecs, on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tinyfsq_model.py").write_text("import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
                                           + textwrap.dedent(inspect.getsource(TinyFSQ))
                                           .replace("LEVELS", str(LEVELS)))
    (site / "tinyfsq_plugin.py").write_text(PLUGIN)
    dist = site / "tinyfsq_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfsq-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vqcodec.codecs]\ntiny-plugin = tinyfsq_plugin:build\n")
    weights = tmp_path / "tiny-plugin.safetensors"
    save_file(TinyFSQ().state_dict(), str(weights))
    return site, weights


def _run(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(VQCODEC + args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_an_entry_point_plugin_is_listed_and_runs_by_name(plugin_path, tmp_path):
    site, weights = plugin_path
    r = _run(["models"], site, tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "tiny-plugin" in ln)
    assert "36" in line and "plug-in" in line
    r = _run(["simulate", "--model", "tiny-plugin", "--weights", str(weights), "--channel", "bsc", "--p", "0.05",
              "--receiver", "naive,mmse", "--trials", "1", "--json", str(tmp_path / "r.json")], site, tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert [x["receiver"] for x in res] == ["naive", "mmse"] and res[0]["model"]["K"] == 36


def test_codec_spec_from_a_file_and_its_errors_are_one_line(plugin_path, tmp_path):
    site, weights = plugin_path
    spec = f"{site / 'tinyfsq_plugin.py'}:build"
    r = _run(["simulate", "--codec", spec, "--weights", str(weights), "--channel", "bsc", "--p", "0.01",
              "--trials", "1"], site, tmp_path)
    assert r.returncode == 0, r.stderr
    for args, msg in ((["--codec", f"{site / 'tinyfsq_plugin.py'}:nope"], "has no callable nope"),
                      (["--codec", "no_such_module_xyz:build"], "cannot import no_such_module_xyz"),
                      (["--model", "tiny-plugin", "--weights", str(tmp_path / "absent.safetensors")],
                       "weights file not found"),
                      (["--model", "no-such-model"], "unknown model 'no-such-model'")):
        r = _run(["simulate", *args, "--channel", "bsc", "--p", "0.01", "--trials", "1"], site, tmp_path)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def teardown_module():
    clear_cache()


def test_train_receiver_and_train_entropy_take_a_wrapped_model(tok, folder):
    model, path = tok
    record, stem = vq.train_receiver(model=model, images=folder, steps=20, batch=2, crop=8, width=8, blocks=1,
                                     decoder_steps=0, threads=1)
    assert stem == path.with_suffix("") and record["training"]["steps_run"] == 20
    rec, _ = vq.train_entropy(model=model, images=folder, steps=30, rank=4, threads=1)
    codec = vq.load(model)
    assert codec.context is not None and codec.entropy_model is not None
    assert json.loads(side_path(stem).read_text())["entropy_model"]["steps"] == 30
    res = vq.simulate("bsc", 0.02, codec=codec, receivers="learned-mmse", trials=1, min_trials=1)
    assert res[0]["receiver"] == "learned-mmse"
    hard_path = path.with_name("hard.safetensors")
    hard_path.write_bytes(path.read_bytes())
    hard = vq.wrap(TinyFSQ(), f=4, K=36, name="tiny-hard", weights=hard_path)  # no codebooks
    with pytest.raises(ValueError, match="the second stage through the decoder needs the model's codebooks"):
        vq.train_receiver(model=hard, images=folder, steps=5, batch=2, crop=8, width=8, blocks=1,
                          decoder_steps=5, threads=1)


def test_best_takes_a_loaded_plugin_codec_and_names_it(tmp_path):
    codec = vq.load(wrapped())
    images = {"a": np.ascontiguousarray(load_image(list_images(None)[0])[:64, :96])}
    best = vq.best_sweep("awgn", [10.0], models=[codec], cbr="1/12", images=images, trials=1, min_trials=1,
                         with_ms_ssim=False, json_out=tmp_path / "best.json")
    assert {c["configuration"]["model"] for c in best[:-1]} == {"tiny-fsq"}
    assert best[-1]["model"]["models"] == ["tiny-fsq"] and (tmp_path / "best.json").exists()


class TwoStageFSQ(nn.Module):
    """Residual scalar quantisation in two stages of K = 27: stage 0 rounds each block-mean channel
    to 3 levels, stage 1 the remainder to 3 finer levels; the code vector is the sum of the stages'."""

    f = 4

    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.tensor([0.5, 1 / 6]))  # level spacing of each stage

    def codes(self) -> torch.Tensor:
        d = torch.stack(torch.meshgrid(*[torch.arange(3)] * 3, indexing="ij"), -1).reshape(27, 3).float() - 1
        return torch.stack([d * self.steps[0] + 0.5, d * self.steps[1]])  # (2, 27, 3)

    def encode(self, x):
        m = F.avg_pool2d(x, self.f).clamp(0, 1)
        d0 = torch.round((m - 0.5) / self.steps[0]).clamp(-1, 1)
        d1 = torch.round((m - 0.5 - d0 * self.steps[0]) / self.steps[1]).clamp(-1, 1)
        radix = torch.tensor([9, 3, 1])[None, :, None, None]
        return torch.stack([((d + 1).long() * radix).sum(1) for d in (d0, d1)], 1)

    def decode_codes(self, z):
        return F.interpolate(z, scale_factor=self.f, mode="nearest")

    def decode(self, idx):
        cb = self.codes()
        z = sum(cb[s][idx[:, s]] for s in range(idx.shape[1]))
        return self.decode_codes(z.permute(0, 3, 1, 2))


def test_a_two_stage_wrapped_model_gets_per_stage_side_information_and_receivers(tmp_path, folder):
    path = tmp_path / "rsq.safetensors"
    save_file(TwoStageFSQ().state_dict(), str(path))
    net = TwoStageFSQ()
    model = vq.wrap(net, f=4, K=27, stages=2, codebooks=net.codes, decode_embeddings="decode_codes", name="rsq",
                    weights=path)
    x = torch.rand(1, 3, 16, 16)
    idx = model.encode(x)
    assert idx.shape == (1, 2, 4, 4)
    assert torch.equal(model.decode_embeddings(model.embed(idx)), model.decode(idx))
    summary, _ = vq.prepare(model=model, images=folder, kodak=folder)
    assert len(summary["assignment"]) == 2  # one assignment per stage, each on its own codebook
    codec = vq.load(model)
    assert codec.assignment.shape == (2, 27) and len(codec.prior) == 2 and codec.bpp == 2 * 5 / 16
    res = vq.simulate("bsc", 0.03, codec=codec, receivers="naive,spatial-mmse", trials=1, min_trials=1)
    naive, spatial = (r["points"][0]["psnr"]["mean"] for r in res)
    assert spatial > naive, (naive, spatial)
    ev = vq.evaluate(codec, progressive=True, with_ms_ssim=False)
    first, both = ev.progressive
    assert first["stages"] == 1 and both["stages"] == 2 and both["psnr"] > first["psnr"]
