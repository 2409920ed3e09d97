"""Encoder-side index search (vqcodec.search): the decoded image gets closer, the rate stays."""
import dataclasses

import pytest
import torch
from conftest import tiny_config

from vqcodec.model import VQVAE
from vqcodec.search import (
    SearchConfig,
    _code_gradient,
    _curvature,
    _rates,
    _stage_candidates,
    guided_candidates,
    search_indices,
)


def _model(stages: int = 1) -> VQVAE:
    torch.manual_seed(3)
    m = VQVAE(dataclasses.replace(tiny_config(), stages=stages)).eval()
    with torch.no_grad():
        for q in m.quantizers:
            q.embedding.copy_(torch.randn(16, 4) * 0.7)
    return m


def _err(m, idx, x):
    with torch.no_grad():
        return float((m.decode(idx)[..., :x.shape[2], :x.shape[3]] - x).pow(2).mean())


@pytest.mark.parametrize("stages", [1, 2])
def test_search_lowers_the_pixel_error_at_the_same_rate(stages):
    m = _model(stages)
    x = torch.rand(1, 3, 29, 35)
    nn = m.encode(x)
    got = search_indices(m, x, SearchConfig(candidates=4, spacing=3, sweeps=2))
    assert got.shape == nn.shape and got.dtype == nn.dtype
    assert int(got.min()) >= 0 and int(got.max()) < 16
    assert _err(m, got, x) < 0.995 * _err(m, nn, x)
    assert torch.equal(got, search_indices(m, x, SearchConfig(candidates=4, spacing=3, sweeps=2)))  # deterministic


def test_one_candidate_is_the_nearest_codeword_encoder():
    m = _model()
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(search_indices(m, x, SearchConfig(candidates=1)), m.encode(x))


def test_each_site_keeps_its_best_candidate_when_the_window_is_exact():
    """A decoder that maps each site to its own f x f block (a 1x1 'network'): windows are exact,
    so one sweep gives, at every site, the candidate with the least block error, found by brute
    force over the site's candidates."""
    cfg = dataclasses.replace(tiny_config(), decoder_res_blocks=0, decoder_head="subpixel", decoder_channels=6)
    torch.manual_seed(0)
    m = VQVAE(cfg).eval()
    with torch.no_grad():
        m.decoder.net[0] = torch.nn.Conv2d(4, 6, 1)
        m.decoder.net[2] = torch.nn.Conv2d(6, 48, 1)
        m.quantizer.embedding.copy_(torch.randn(16, 4))
    x = torch.rand(1, 3, 12, 16)
    got = search_indices(m, x, SearchConfig(candidates=16, spacing=1, sweeps=1))[0]
    with torch.no_grad():
        blocks = [(m.decode(torch.full((1, 3, 4), k)) - x).pow(2) for k in range(16)]  # (1, 3, 12, 16) each
        per_site = torch.stack([torch.nn.functional.avg_pool2d(b.sum(1, keepdim=True), 4)[0, 0] for b in blocks])
    assert torch.equal(got, per_site.argmin(0))


def test_search_config_rejects_bad_settings():
    for kw in ({"candidates": 0}, {"spacing": 4}, {"sweeps": 0}, {"candidates": 2.5}):
        with pytest.raises(ValueError, match="search"):
            SearchConfig(**kw)
    with pytest.raises(ValueError, match="one image"):
        search_indices(_model(), torch.rand(2, 3, 8, 8))


def test_a_codec_with_search_encodes_closer_and_says_so(tiny_checkpoint, image_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main
    from vqcodec.simulate import encode_images
    from vqcodec.zoo import load_codec

    plain = load_codec(checkpoint=str(tiny_checkpoint), precision="fp32")
    searched = load_codec(checkpoint=str(tiny_checkpoint), precision="fp32", search=4)
    assert searched.search == SearchConfig(candidates=4) and plain.search is None
    a, _ = encode_images(plain, image_dir, with_ms_ssim=False)
    b, _ = encode_images(searched, image_dir, with_ms_ssim=False)  # not the cached plain encodings
    assert all(y.psnr_clean > x.psnr_clean for x, y in zip(a, b))
    assert searched.describe()["search"] == {"candidates": 4, "spacing": 5, "sweeps": 2}
    assert "search" not in plain.describe()
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", "--checkpoint", str(tiny_checkpoint), "--images", str(image_dir),
                                  "--search", "3", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["model"]["search"]["candidates"] == 3
    for bad in ("0", "4,guided=x"):
        r = CliRunner().invoke(main, ["eval", "--checkpoint", str(tiny_checkpoint), "--images", str(image_dir),
                                      "--search", bad])
        assert r.exit_code == 2 and "Traceback" not in r.output and "search" in r.output


def _linear_site_model():
    """A decoder that maps each site's code vector to its own f x f block linearly (1x1 convs, no
    nonlinearity): the squared error is exactly quadratic in each code vector."""
    cfg = dataclasses.replace(tiny_config(), decoder_res_blocks=0, decoder_head="subpixel", decoder_channels=6)
    torch.manual_seed(0)
    m = VQVAE(cfg).eval()
    with torch.no_grad():
        m.decoder.net[0] = torch.nn.Conv2d(4, 6, 1)
        m.decoder.net[1] = torch.nn.Identity()
        m.decoder.net[2] = torch.nn.Conv2d(6, 48, 1)
        m.quantizer.embedding.copy_(torch.randn(16, 4))
    return m


def test_guided_candidates_rank_codewords_by_the_quadratic_error_model():
    """Against a per-site loop over the codebook: G . (e_k - e) + lam |e_k - e|^2, least first."""
    torch.manual_seed(1)
    cb, cur, grad = torch.randn(16, 4), torch.randint(0, 16, (3, 5)), torch.randn(3, 5, 4)
    got = guided_candidates(cb, cur, grad, 0.7, 5)
    for i in range(3):
        for j in range(5):
            e = cb[cur[i, j]]
            score = [float(grad[i, j] @ (cb[k] - e) + 0.7 * (cb[k] - e).pow(2).sum()) for k in range(16)]
            want = sorted(range(16), key=lambda k: score[k])[:5]
            assert got[i, j].tolist() == want


def test_the_curvature_is_exact_for_a_decoder_linear_in_the_code_vectors():
    """E(e + d) - E(e) - G . d = |J d|^2 exactly when the decoder is affine per site, so the
    measured lam is sum |J d_s|^2 / sum |d_s|^2 over the moved sites."""
    m = _linear_site_model()
    x = torch.rand(1, 3, 48, 48)
    target = x
    with torch.no_grad():
        z = m.encoder(x)[0].permute(1, 2, 0).float()
        grid = m.quantizer.nearest(z.reshape(-1, 4)).view(1, 12, 12)
        lam = _curvature(m, z, grid, target, "fp32", *_code_gradient(m, grid, target, "fp32"), lattice=3)
        second = _stage_candidates(m, z, grid, 0, 2)[..., 1]
        cb = m.codebook
        num = den = 0.0
        for i in range(1, 12, 3):
            for j in range(1, 12, 3):
                d = cb[second[i, j]] - cb[grid[0, i, j]]
                # J d: the decoded block of d without the decoder's offsets
                zero = torch.zeros(1, 4, 1, 1)
                jd = m.decode_embeddings(d.view(1, 4, 1, 1)) - m.decode_embeddings(zero)
                num += float(jd.pow(2).sum())
                den += float(d.pow(2).sum())
    assert lam == pytest.approx(num / den, rel=1e-4)


def test_guided_candidates_alone_reach_every_sites_best_codeword_when_the_window_is_exact():
    """One nearest candidate plus K guided ones covers the codebook: one sweep with exact windows
    gives every site its least-error codeword, as the brute-force search over all K does."""
    m = _linear_site_model()
    x = torch.rand(1, 3, 12, 16)
    full = search_indices(m, x, SearchConfig(candidates=16, spacing=1, sweeps=1))
    guided = search_indices(m, x, SearchConfig(candidates=1, guided=16, spacing=1, sweeps=1))
    assert torch.equal(guided, full)
    assert _err(m, guided, x) < _err(m, m.encode(x), x)


@pytest.mark.parametrize("stages", [1, 2])
def test_guided_candidates_lower_the_error_further(stages):
    m = _model(stages)
    x = torch.rand(1, 3, 29, 35)
    plain = search_indices(m, x, SearchConfig(candidates=2, spacing=3, sweeps=2))
    guided = search_indices(m, x, SearchConfig(candidates=2, guided=3, spacing=3, sweeps=2))
    assert _err(m, guided, x) < _err(m, plain, x)


def test_search_settings_parse_as_the_command_line_writes_them():
    assert SearchConfig.parse("4") == SearchConfig(candidates=4)
    assert SearchConfig.parse(6) == SearchConfig(candidates=6)
    assert SearchConfig.parse("1") is None
    assert SearchConfig.parse("4, guided=3,spacing=7,sweeps=5") == SearchConfig(4, spacing=7, sweeps=5, guided=3)
    assert SearchConfig.parse("1,guided=2") == SearchConfig(candidates=1, guided=2)
    assert SearchConfig.parse("4, guided = 3") == SearchConfig(candidates=4, guided=3)
    assert SearchConfig(candidates=4).to_dict() == {"candidates": 4, "spacing": 5, "sweeps": 2}
    assert SearchConfig(4, guided=2).to_dict()["guided"] == 2
    assert SearchConfig.parse("4,rate=1.5") == SearchConfig(candidates=4, rate=1.5)
    assert SearchConfig(4, rate=1).to_dict()["rate"] == 1.0 and "rate" not in SearchConfig(4).to_dict()
    for bad in ("x", "4,guided", "4,foo=1", "4,guided=1,guided=2", "4,spacing=6", "0", "4,guided=-1", "",
                "4,rate=-1", "4,rate=nan", "4,rate=x", "4,rate=inf", "1,rate=1"):
        with pytest.raises(ValueError, match="search"):
            SearchConfig.parse(bad)


def test_encoding_with_a_search_reports_progress_within_each_image(tiny_checkpoint, image_dir):
    from vqcodec.simulate import encode_images
    from vqcodec.zoo import load_codec

    seen = []
    codec = load_codec(checkpoint=str(tiny_checkpoint), precision="fp32", search="2,spacing=3,sweeps=1")
    encoded, _ = encode_images(codec, image_dir, with_ms_ssim=False, progress=lambda d, t: seen.append((d, t)))
    n = len(encoded)
    assert seen[-1] == (n, n) and all(t == n for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len({d for d, _ in seen if d != int(d)}) >= n  # fractions within every image, not only per image


def _context(K=16, S=1, seed=0):
    """A random learned-style context model (a staged one for S > 1) of K indices."""
    import numpy as np

    from vqcodec import entropy

    rng = np.random.default_rng(seed)
    parts = []
    for s in range(S):
        offs = entropy.LEARNED_OFFSETS + (entropy.CROSS_OFFSETS if s else ())
        parts.append(entropy.ContextModel.from_factors(rng.normal(0, 1.5, K), rng.normal(0, 1, (len(offs), K, 3)),
                                                       rng.normal(0, 1, (K, 3)), offs))
    return entropy.coder_model(parts)


@pytest.mark.parametrize("S", [1, 2])
def test_the_rate_of_a_site_is_its_share_of_the_code_length(S):
    """_rates: moving one site's index changes the grid's code length by exactly the change of the
    bits _rates attributes to that site (the code lengths that depend on it)."""
    import numpy as np

    from vqcodec.entropy import code_length

    cm = _context(S=S)
    rng = np.random.default_rng(1)
    g = rng.integers(0, 16, (S, 10, 12))
    rows, cols = np.array([0, 4, 9, 9]), np.array([0, 6, 11, 2])

    def whole(maps):
        return code_length(maps if S > 1 else maps[0], cm)

    for stage in range(S):
        trial = g.copy()
        trial[stage, rows, cols] = (g[stage, rows, cols] + 5) % 16
        r = _rates(cm, np.stack([g, g, trial]), stage, rows, cols)
        assert np.array_equal(r[0], r[1])  # an unchanged trial: the current grid's bits
        for n in range(rows.size):
            one = g.copy()
            one[stage, rows[n], cols[n]] = trial[stage, rows[n], cols[n]]
            assert r[2, n] - r[0, n] == pytest.approx(whole(one) - whole(g), abs=1e-9)


@pytest.mark.parametrize("stages", [1, 2])
def test_a_rate_weight_trades_pixel_error_for_code_length(stages):
    """Against the same search without it: fewer bits, more pixel error, and a lower total error +
    lam_R bits than the nearest-codeword grid's."""
    from vqcodec.entropy import code_length

    m = _model(stages)
    cm = _context(S=stages)
    x = torch.rand(1, 3, 29, 35)

    def bits(idx):
        g = idx.numpy().reshape(stages, *idx.shape[-2:]).astype("int64")
        return code_length(g if stages > 1 else g[0], cm)

    nn = m.encode(x)
    plain = search_indices(m, x, SearchConfig(candidates=4, spacing=3, sweeps=2))
    light = search_indices(m, x, SearchConfig(candidates=4, spacing=3, sweeps=2, rate=1.0), context=cm)
    assert bits(light) < 0.8 * min(bits(plain), bits(nn))
    assert _err(m, plain, x) <= _err(m, light, x)
    lam = 1.0 * _err(m, nn, x) / bits(nn)  # _err is a mean: the same ratio as the search's sums
    assert _err(m, light, x) + lam * bits(light) < _err(m, nn, x) + lam * bits(nn)
    with pytest.raises(ValueError, match="context model"):
        search_indices(m, x, SearchConfig(candidates=4, rate=1.0))


def test_a_rate_search_is_refused_where_indices_go_fixed_length(tiny_checkpoint, image_dir, tmp_path):
    from click.testing import CliRunner

    from cli import main

    args = ["--checkpoint", str(tiny_checkpoint), "--images", str(image_dir), "--search", "3,rate=1"]
    r = CliRunner().invoke(main, ["eval", *args])
    assert r.exit_code != 0 and "Traceback" not in r.output and "--entropy" in r.output
    r = CliRunner().invoke(main, ["sweep", *args, "--channel", "bsc", "--p", "0.01", "--trials", "1",
                                  "--json", str(tmp_path / "s.json")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "fixed-length" in r.output
    r = CliRunner().invoke(main, ["eval", *args, "--entropy"])  # no prior, no context model: said so
    assert r.exit_code == 1 and "Traceback" not in r.output and "index prior" in r.output
