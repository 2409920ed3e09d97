"""The entropy-coded index stream (vqcodec.entropy): context model against a direct formula,
bit-exact round trips, size against the model's code length, and errors on damaged files."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqcodec import entropy
from vqcodec.prior import learn_prior


def _markov_grid(rng, K, h, w, stay=0.7):
    """A grid whose indices copy a neighbour with probability ``stay``: real spatial structure."""
    g = rng.integers(0, K, (h, w))
    for i in range(h):
        for j in range(w):
            r = rng.random()
            if r < stay / 2 and j > 0:
                g[i, j] = g[i, j - 1]
            elif r < stay and i > 0:
                g[i, j] = g[i - 1, j]
    return g


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    K = 16
    prior = learn_prior([_markov_grid(rng, K, 40, 40) for _ in range(4)], K)
    return entropy.ContextModel.from_prior(prior)


def _learned(K=16, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    m = len(entropy.LEARNED_OFFSETS)
    return entropy.ContextModel.from_factors(rng.normal(0, 1, K), rng.normal(0, 1, (m, K, rank)),
                                             rng.normal(0, 1, (K, rank)), entropy.LEARNED_OFFSETS)


@pytest.fixture(scope="module", params=["prior", "learned"])
def any_model(request, model):
    return model if request.param == "prior" else _learned()


def test_prior_model_is_the_product_of_the_pair_experts(model):
    rng = np.random.default_rng(0)
    prior = learn_prior([_markov_grid(rng, 16, 40, 40) for _ in range(4)], 16)
    lu, ph, pv = prior.log_unigram(), prior.pmi("h"), prior.pmi("v")
    left = np.array([-1, 3, -1, 5, 0])
    up = np.array([-1, -1, 7, 2, 15])
    got = model.probabilities(np.stack([left, up], axis=1))
    for n in range(left.size):
        logit = lu.copy()
        if left[n] >= 0:
            logit = logit + ph[left[n]]
        if up[n] >= 0:
            logit = logit + pv[up[n]]
        want = np.exp(logit) / np.exp(logit).sum()
        np.testing.assert_allclose(got[n], want, rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_learned_model_tables_are_the_low_rank_products():
    rng = np.random.default_rng(1)
    K, r, m = 8, 2, len(entropy.LEARNED_OFFSETS)
    bias, emb, out = rng.normal(0, 1, K), rng.normal(0, 1, (m, K, r)), rng.normal(0, 1, (K, r))
    cm = entropy.ContextModel.from_factors(bias, emb, out, entropy.LEARNED_OFFSETS)
    nb = rng.integers(-1, K, (5, m))
    got = cm.log_probabilities(nb)
    for n in range(5):
        logit = bias + sum(emb[k, nb[n, k]] @ out.T for k in range(m) if nb[n, k] >= 0)
        np.testing.assert_allclose(got[n], logit - np.log(np.exp(logit).sum()), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("offsets", [((0, -1), (-1, 0)), entropy.LEARNED_OFFSETS, ((-1, 3), (0, -1))])
def test_wavefront_visits_every_site_once_after_its_causal_neighbours(offsets):
    h, w = 5, 8
    slope = entropy.wavefront_slope(offsets)
    when = np.full((h, w), -1)
    for t, (rows, cols) in enumerate(entropy.wavefront(h, w, slope)):
        assert (when[rows, cols] == -1).all()
        when[rows, cols] = t
    assert (when >= 0).all()
    for i in range(h):
        for j in range(w):
            for di, dj in offsets:
                if 0 <= i + di and 0 <= j + dj < w:
                    assert when[i + di, j + dj] < when[i, j]
    assert entropy.wavefront_slope(((0, -1), (-1, 0))) == 1 and entropy.wavefront_slope(entropy.LEARNED_OFFSETS) == 3


def test_code_length_is_the_sum_of_minus_log2_probabilities(any_model):
    g = _markov_grid(np.random.default_rng(3), any_model.K, 6, 9)
    want = 0.0
    for i in range(6):
        for j in range(9):
            nb = [g[i + di, j + dj] if i + di >= 0 and 0 <= j + dj < 9 else -1 for di, dj in any_model.offsets]
            p = any_model.probabilities(np.array([nb]))[0]
            want -= np.log2(p[g[i, j]])
    assert entropy.code_length(g, any_model) == pytest.approx(want, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2 ** 31), st.booleans())
def test_round_trip_is_bit_exact_on_random_and_structured_grids(model, h, w, seed, structured):
    rng = np.random.default_rng(seed)
    for cm in (model, _learned(seed=seed % 7)):
        g = _markov_grid(rng, cm.K, h, w) if structured else rng.integers(0, cm.K, (h, w))
        data = entropy.encode_indices(g, cm)
        assert np.array_equal(entropy.decode_indices(data, h, w, cm, entropy.indices_crc(g)), g)


def test_stream_size_matches_the_model_code_length_within_one_percent(model):
    g = _markov_grid(np.random.default_rng(5), model.K, 120, 160)
    bits = 8 * len(entropy.encode_indices(g, model))
    ideal = entropy.code_length(g, model)
    assert ideal < 0.8 * g.size * 4  # the context model does compress (4 bits fixed-length)
    assert abs(bits - ideal) / ideal < 0.01, (bits, ideal)


def test_damaged_streams_raise_a_one_line_error(model):
    g = _markov_grid(np.random.default_rng(6), model.K, 30, 30)
    data = entropy.encode_indices(g, model)
    crc = entropy.indices_crc(g)
    damaged = [data[:-4], data[:-1], data[4:], b"", bytes([data[0] ^ 1]) + data[1:],
               data[:20] + bytes([data[20] ^ 0x10]) + data[21:], data + data[-4:]]
    for bad in damaged:
        with pytest.raises(entropy.EntropyStreamError) as err:
            entropy.decode_indices(bad, 30, 30, model, crc)
        assert "\n" not in str(err.value)


def test_a_different_model_is_caught_by_the_crc(model):
    g = _markov_grid(np.random.default_rng(7), model.K, 20, 20)
    data = entropy.encode_indices(g, model)
    rng = np.random.default_rng(8)
    other = entropy.ContextModel.from_prior(learn_prior([rng.integers(0, model.K, (40, 40))], model.K))
    assert other.fingerprint != model.fingerprint
    with pytest.raises(entropy.EntropyStreamError):
        entropy.decode_indices(data, 20, 20, other, entropy.indices_crc(g))


def test_bad_grids_are_refused(model):
    for bad in (np.zeros((0, 3), np.int64), np.zeros(5, np.int64), np.full((2, 2), model.K),
                np.full((2, 2), -1), np.zeros((2, 2), np.float32)):
        with pytest.raises(ValueError):
            entropy.encode_indices(bad, model)


# --------------------------------------------------------------------------- residual (staged) models


def _staged(K=16, rank=3, seed=0, S=3):
    """A staged model with random factors: stage 0 spatial only, later stages also CROSS_OFFSETS."""
    rng = np.random.default_rng(seed)
    stages = []
    for s in range(S):
        offs = entropy.LEARNED_OFFSETS + (entropy.CROSS_OFFSETS if s else ())
        stages.append(entropy.ContextModel.from_factors(rng.normal(0, 1, K), rng.normal(0, 1, (len(offs), K, rank)),
                                                        rng.normal(0, 1, (K, rank)), offs))
    return entropy.StagedContextModel(stages)


def _stage_maps(rng, K, S, h, w):
    """(S, h, w) maps where stage s copies stage s - 1 at the same site half the time (cross-stage
    structure) on top of spatial structure."""
    g = np.stack([_markov_grid(rng, K, h, w) for _ in range(S)])
    for s in range(1, S):
        copy = rng.random((h, w)) < 0.5
        g[s][copy] = g[s - 1][copy]
    return g


def test_staged_code_length_is_the_sum_over_stages_with_the_earlier_stage_as_context():
    cm = _staged(S=2)
    g = _stage_maps(np.random.default_rng(3), cm.K, 2, 7, 9)
    want = 0.0
    for s, m in enumerate(cm.stages):
        for i in range(7):
            for j in range(9):
                nb = []
                for o in m.offsets:
                    ds, di, dj = (0, *o) if len(o) == 2 else o
                    r, c = i + di, j + dj
                    nb.append(g[s + ds, r, c] if 0 <= r < 7 and 0 <= c < 9 else -1)
                want -= m.log_probabilities(np.array([nb]))[0, g[s, i, j]] / np.log(2)
    assert entropy.code_length(g, cm) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("S", [1, 3])
def test_dependents_are_exactly_the_sites_whose_code_length_an_index_changes(S):
    """Change one index and recompute every site's code length (site_bits over the whole grid):
    the sites that changed are the site and its dependents, no more, no fewer."""
    cm = _staged(S=S) if S > 1 else _learned()
    rng = np.random.default_rng(5)
    h, w = 9, 11
    g = _stage_maps(rng, cm.K, S, h, w)
    rows, cols = (a.ravel() for a in np.indices((h, w)))

    def per_site(maps):
        return np.stack([entropy.site_bits(maps, cm, t, rows, cols).reshape(h, w) for t in range(S)])

    base = per_site(g)
    for stage, i, j in [(0, 4, 5), (S - 1, 0, 0), (S // 2, 8, 10), (0, 2, 9)]:
        moved = g.copy()
        moved[stage, i, j] = (g[stage, i, j] + 1 + rng.integers(cm.K - 1)) % cm.K
        changed = {tuple(int(v) for v in t) for t in np.argwhere(np.abs(per_site(moved) - base) > 1e-9)}
        want = {(stage + ds, i + di, j + dj) for ds, di, dj in entropy.dependents(cm, stage)
                if 0 <= i + di < h and 0 <= j + dj < w}
        assert changed == want
    assert entropy.dependents(cm, 0)[0] == (0, 0, 0)
    assert len(entropy.dependents(cm, S - 1)) == 1 + len(entropy.LEARNED_OFFSETS)  # no later stage looks at it


def test_site_bits_sum_to_the_code_length_of_the_coding_order(any_model):
    """site_bits needs no coding order (the grid is known): summed over all sites it is the sum of
    -log2 P over the wavefronts, the stream's ideal length."""
    rng = np.random.default_rng(2)
    g = _markov_grid(rng, any_model.K, 13, 17)
    want = 0.0
    for rows, cols in entropy.wavefront(13, 17, any_model.slope):
        logp = any_model.log_probabilities(entropy._neighbours(g[None], 0, rows, cols, any_model.offsets))
        want -= logp[np.arange(rows.size), g[rows, cols]].sum() / np.log(2)
    assert entropy.code_length(g, any_model) == pytest.approx(want, rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 10), st.integers(1, 10), st.integers(0, 2 ** 31))
def test_staged_round_trip_is_bit_exact(S, h, w, seed):
    rng = np.random.default_rng(seed)
    cm = _staged(S=S, seed=seed % 5)
    g = _stage_maps(rng, cm.K, S, h, w)
    data = entropy.encode_indices(g, cm)
    assert np.array_equal(entropy.decode_indices(data, h, w, cm, entropy.indices_crc(g)), g)


def test_staged_stream_size_matches_its_code_length_and_damage_is_caught():
    import torch

    from vqcodec.learn.entropy import _fit, neighbour_table, stage_offsets

    rng = np.random.default_rng(4)
    K, S = 16, 2
    maps = [_stage_maps(rng, K, S, 24, 24) for _ in range(6)]
    parts = []
    for s in range(S):  # fitted, so the cross-stage copies are learned and compress
        X, Y = (torch.from_numpy(a) for a in neighbour_table(maps[:-1], K, stage_offsets(s), s))
        bias, emb, out, _ = _fit(X, Y, K, len(stage_offsets(s)), steps=150, rank=4, batch=2048, lr=3e-2,
                                 gen=torch.Generator().manual_seed(0), progress=None, label="")
        parts.append(entropy.ContextModel.from_factors(bias, emb, out, stage_offsets(s)))
    cm = entropy.StagedContextModel(parts)
    g = maps[-1]
    bits = 8 * len(entropy.encode_indices(g, cm))
    ideal = entropy.code_length(g, cm)
    alone = entropy.StagedContextModel([parts[0], entropy.ContextModel.from_factors(
        parts[1].bias, np.zeros((len(entropy.LEARNED_OFFSETS), K, 1)), np.zeros((K, 1)), entropy.LEARNED_OFFSETS)])
    assert ideal < entropy.code_length(g, alone)  # the earlier stage is used as context
    assert abs(bits - ideal) / ideal < 0.01, (bits, ideal)
    data = entropy.encode_indices(g, cm)
    for bad in (data[:-4], data[:8] + bytes([data[8] ^ 4]) + data[9:]):
        with pytest.raises(entropy.EntropyStreamError):
            entropy.decode_indices(bad, 24, 24, cm, entropy.indices_crc(g))


def test_staged_models_refuse_wrong_grids_and_a_look_past_the_first_stage():
    cm = _staged(S=2)
    for bad in (np.zeros((4, 4), np.int64), np.zeros((3, 4, 4), np.int64)):
        with pytest.raises(ValueError, match="2, h, w"):
            entropy.encode_indices(bad, cm)
    with pytest.raises(ValueError, match="looks 1 stages back"):
        entropy.StagedContextModel([cm.stages[1], cm.stages[0]])
    with pytest.raises(ValueError, match="earlier stage"):
        entropy.ContextModel(np.zeros(4), np.zeros((1, 4, 4)), [(1, 0, 0)], "learned")


def test_staged_model_storage_round_trip(tmp_path):
    cm = _staged(S=2, K=8)
    parts = [(m.bias, np.random.default_rng(s).normal(0, 1, (len(m.offsets), 8, 2)),
              np.random.default_rng(9).normal(0, 1, (8, 2)), m.offsets) for s, m in enumerate(cm.stages)]
    path = tmp_path / "x.entropy.safetensors"
    entropy.save_entropy_model(path, parts)
    back = entropy.load_entropy_model(path, 8, stages=2)
    assert isinstance(back, entropy.StagedContextModel) and [m.offsets for m in back.stages] == [m.offsets for m in cm.stages]
    from vqcodec.checkpoint import CheckpointError

    for stages in (1, 3):
        with pytest.raises(CheckpointError):
            entropy.load_entropy_model(path, 8, stages=stages)


# --------------------------------------------------------------------------- files and commands


@pytest.fixture
def prepared_checkpoint(tiny_checkpoint, image_dir):
    """The tiny model with an index prior learned from its own index maps."""
    from vqcodec.prior import prior_path, save_prior
    from vqcodec.simulate import encode_images
    from vqcodec.zoo import load_codec

    codec = load_codec(None, tiny_checkpoint)
    encs = encode_images(codec, image_dir, with_ms_ssim=False)[0]
    save_prior((learn_prior([e.indices for e in encs] * 3, codec.K),), prior_path(tiny_checkpoint))
    return tiny_checkpoint


def test_cli_entropy_file_decodes_to_the_fixed_length_files_image(prepared_checkpoint, image_dir, tmp_path):
    from click.testing import CliRunner

    from cli import main

    ck = ["--checkpoint", str(prepared_checkpoint)]
    run = CliRunner().invoke
    src = str(image_dir / "a.png")
    assert run(main, ["encode", src, "-o", str(tmp_path / "f.vqc"), *ck]).exit_code == 0
    r = run(main, ["encode", src, "-o", str(tmp_path / "e.vqc"), "--entropy", *ck])
    assert r.exit_code == 0 and "entropy-coded" in r.output, r.output
    for name in ("f", "e"):
        r = run(main, ["decode", str(tmp_path / f"{name}.vqc"), "-o", str(tmp_path / f"{name}.png"), *ck])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "f.png").read_bytes() == (tmp_path / "e.png").read_bytes()


def test_cli_damaged_entropy_file_gives_one_line_and_writes_nothing(prepared_checkpoint, image_dir, tmp_path):
    from click.testing import CliRunner

    from cli import main

    ck = ["--checkpoint", str(prepared_checkpoint)]
    run = CliRunner().invoke
    vqc = tmp_path / "e.vqc"
    assert run(main, ["encode", str(image_dir / "a.png"), "-o", str(vqc), "--entropy", *ck]).exit_code == 0
    data = vqc.read_bytes()
    for i, bad in enumerate([data[:-4], data[:-2] + bytes([data[-2] ^ 0x21]) + data[-1:],
                             data.replace(b'"crc32": ', b'"crc32": 1')]):
        (tmp_path / f"bad{i}.vqc").write_bytes(bad)
        out = tmp_path / f"bad{i}.png"
        r = run(main, ["decode", str(tmp_path / f"bad{i}.vqc"), "-o", str(out), *ck])
        lines = r.output.strip().splitlines()
        assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), r.output
        assert "Traceback" not in r.output and not out.exists()


def test_entropy_file_of_a_changed_prior_is_refused_by_name(prepared_checkpoint, image_dir, tmp_path):
    from vqcodec.bits import read_index_file
    from vqcodec.prior import prior_path, save_prior
    from vqcodec.simulate import decode_index_file, encode_images, index_file
    from vqcodec.zoo import clear_cache, load_codec

    codec = load_codec(None, prepared_checkpoint)
    enc = encode_images(codec, image_dir, with_ms_ssim=False)[0][0]
    (tmp_path / "e.vqc").write_bytes(index_file(codec, enc, entropy=True))
    payload, header = read_index_file(tmp_path / "e.vqc")
    assert header["coding"] == entropy.CODING and isinstance(payload, bytes)
    assert np.array_equal(decode_index_file(codec, payload, header), enc.clean)
    save_prior((learn_prior([np.random.default_rng(0).integers(0, codec.K, (30, 30))], codec.K),),
               prior_path(prepared_checkpoint))
    clear_cache()
    changed = load_codec(None, prepared_checkpoint)
    with pytest.raises(ValueError, match="context model other than"):
        decode_index_file(changed, payload, header)


def test_eval_entropy_reports_the_real_file_sizes(prepared_checkpoint, image_dir):
    from vqcodec.simulate import clean_point, encode_images, index_file
    from vqcodec.zoo import load_codec

    codec = load_codec(None, prepared_checkpoint)
    encs = encode_images(codec, image_dir)[0]
    pt = clean_point(codec, encs, entropy=True)
    sizes = [8 * len(index_file(codec, e, entropy=True)) for e in encs]
    pixels = [e.image.shape[0] * e.image.shape[1] for e in encs]
    assert pt["coding"] == entropy.CODING and pt["bits"] == sum(sizes)
    assert pt["bpp"] == pytest.approx(sum(sizes) / sum(pixels))
    assert [p["bpp"] for p in pt["per_image"]] == pytest.approx([s / n for s, n in zip(sizes, pixels)])
    assert clean_point(codec, encs)["coding"] == "fixed"


def test_a_model_without_prior_cannot_entropy_code(tiny_checkpoint, image_dir, tmp_path):
    from click.testing import CliRunner

    from cli import main

    r = CliRunner().invoke(main, ["encode", str(image_dir / "a.png"), "-o", str(tmp_path / "e.vqc"), "--entropy",
                                  "--checkpoint", str(tiny_checkpoint)])
    assert r.exit_code != 0 and "index prior" in r.output and not (tmp_path / "e.vqc").exists()


def test_train_entropy_learns_a_model_that_compresses_and_codes_files(prepared_checkpoint, image_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main
    from vqcodec.zoo import clear_cache, load_codec

    ck = ["--checkpoint", str(prepared_checkpoint)]
    run = CliRunner().invoke
    r = run(main, ["train-entropy", *ck, "--images", str(image_dir), "--steps", "300", "--rank", "4", "--threads", "1"])
    assert r.exit_code == 0, r.output
    rec = json.loads(prepared_checkpoint.with_suffix(".json").read_text())["entropy_model"]
    assert rec["held_out_bits_per_index"] < rec["fixed_bits_per_index"]  # it learned something about the indices
    assert rec["train_loss_bits_last100"] < rec["fixed_bits_per_index"]
    clear_cache()
    codec = load_codec(None, prepared_checkpoint)
    assert codec.entropy_model is not None and codec.entropy_model[0].kind == "learned"
    assert codec.entropy_model[0].fingerprint == rec["fingerprint"]
    assert run(main, ["encode", str(image_dir / "b.png"), "-o", str(tmp_path / "e.vqc"), "--entropy", *ck]).exit_code == 0
    assert b'"context": "learned"' in (tmp_path / "e.vqc").read_bytes()
    assert run(main, ["encode", str(image_dir / "b.png"), "-o", str(tmp_path / "f.vqc"), *ck]).exit_code == 0
    for name in ("e", "f"):
        assert run(main, ["decode", str(tmp_path / f"{name}.vqc"), "-o", str(tmp_path / f"{name}.png"), *ck]).exit_code == 0
    assert (tmp_path / "e.png").read_bytes() == (tmp_path / "f.png").read_bytes()


def test_corrupt_or_missing_entropy_model_file_is_a_one_line_error(prepared_checkpoint, image_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main
    from vqcodec.entropy import entropy_model_path
    from vqcodec.zoo import clear_cache

    ck = ["--checkpoint", str(prepared_checkpoint)]
    assert CliRunner().invoke(main, ["train-entropy", *ck, "--images", str(image_dir), "--steps", "2", "--rank", "2",
                                     "--threads", "1"]).exit_code == 0
    path = entropy_model_path(prepared_checkpoint)
    for damage in (lambda: path.write_bytes(path.read_bytes()[:100]), lambda: path.unlink()):
        damage()
        clear_cache()
        r = CliRunner().invoke(main, ["encode", str(image_dir / "a.png"), "-o", str(tmp_path / "x.vqc"), "--entropy", *ck])
        lines = r.output.strip().splitlines()
        assert r.exit_code != 0 and len(lines) == 1 and "entropy" in lines[0], r.output
        assert not (tmp_path / "x.vqc").exists()
    assert json.loads(prepared_checkpoint.with_suffix(".json").read_text())["entropy_model"]


def test_train_entropy_on_a_residual_checkpoint_codes_files_that_decode_to_the_fixed_length_image(image_dir, tmp_path):
    import dataclasses
    import json

    import torch
    from click.testing import CliRunner
    from conftest import tiny_config

    from cli import main
    from vqcodec.model import VQVAE, save_model

    torch.manual_seed(0)
    m = VQVAE(dataclasses.replace(tiny_config(), stages=2)).train()
    m(torch.rand(4, 3, 32, 32))  # k-means start of both stages
    save_model(m.eval(), tmp_path / "r", {"name": "r"})
    ck = ["--checkpoint", str(tmp_path / "r")]
    run = CliRunner().invoke
    r = run(main, ["encode", str(image_dir / "a.png"), "-o", str(tmp_path / "x.vqc"), "--entropy", *ck])
    assert r.exit_code != 0 and "train-entropy" in r.output and not (tmp_path / "x.vqc").exists()
    r = run(main, ["train-entropy", *ck, "--images", str(image_dir), "--steps", "60", "--rank", "4", "--threads", "1"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "r.json").read_text())["entropy_model"]
    assert rec["stages"] == 2 and len(rec["train_loss_bits_last100"]) == 2
    for name, extra in (("e", ["--entropy"]), ("f", [])):
        r = run(main, ["encode", str(image_dir / "b.png"), "-o", str(tmp_path / f"{name}.vqc"), *extra, *ck])
        assert r.exit_code == 0, r.output
        r = run(main, ["decode", str(tmp_path / f"{name}.vqc"), "-o", str(tmp_path / f"{name}.png"), *ck])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "e.png").read_bytes() == (tmp_path / "f.png").read_bytes()
    assert b'"stages": 2' in (tmp_path / "e.vqc").read_bytes()


def test_train_entropy_does_not_replace_a_context_model_unasked(prepared_checkpoint, image_dir):
    from click.testing import CliRunner

    from cli import main
    from vqcodec.entropy import entropy_model_path

    args = ["train-entropy", "--checkpoint", str(prepared_checkpoint), "--images", str(image_dir), "--steps", "2",
            "--rank", "2", "--threads", "1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    path = entropy_model_path(prepared_checkpoint)
    before, meta = path.read_bytes(), prepared_checkpoint.with_suffix(".json").read_text()
    r = CliRunner().invoke(main, [*args, "--seed", "1"])
    assert r.exit_code != 0 and "use --overwrite" in r.output and "Traceback" not in r.output, r.output
    assert path.read_bytes() == before and prepared_checkpoint.with_suffix(".json").read_text() == meta
    r = CliRunner().invoke(main, [*args, "--seed", "1", "--overwrite"])
    assert r.exit_code == 0 and path.read_bytes() != before, r.output
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as any new file, not safetensors' 0600


def _umask():
    import os

    m = os.umask(0o022)
    os.umask(m)
    return m


def test_a_rate_weighted_search_writes_smaller_files_that_still_decode(prepared_checkpoint, image_dir, tmp_path):
    """``--search N,rate=R`` with ``--entropy``: the search weighs the coder's code length, so the
    file is smaller than the same search's without it, and decodes to the indices it encoded."""
    import json

    from click.testing import CliRunner

    from cli import main

    image = sorted(image_dir.iterdir())[0]
    sizes = {}
    for search in ("3", "3,rate=2"):
        out = tmp_path / f"{search}.vqc"
        r = CliRunner().invoke(main, ["encode", "--checkpoint", str(prepared_checkpoint), str(image), "-o", str(out),
                                      "--entropy", "--search", search])
        assert r.exit_code == 0, r.output
        sizes[search] = out.stat().st_size
        r = CliRunner().invoke(main, ["decode", str(out), "-o", str(tmp_path / f"{search}.png"),
                                      "--checkpoint", str(prepared_checkpoint)])
        assert r.exit_code == 0, r.output  # the stream decodes and its CRC matches
    assert sizes["3,rate=2"] < sizes["3"]
    res = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", "--checkpoint", str(prepared_checkpoint), "--images", str(image_dir),
                                  "--entropy", "--search", "3,rate=1", "--json", str(res)])
    assert r.exit_code == 0, r.output
    assert json.loads(res.read_text())["model"]["search"]["rate"] == 1.0
