import json

import numpy as np
import pytest

from vqcodec import suites as S
from vqcodec import zoo


def test_shipped_suites_validate():
    names = S.available()
    for required in ("smoke", "kodak-bsc", "kodak-erasure", "kodak-awgn", "kodak-burst", "kodak-rd", "speed"):
        assert required in names
    for n in names:
        S.load_suite(n)


@pytest.mark.parametrize("patch,needle", [
    ({"colour": 1}, "unknown key"),
    ({"kind": "race"}, "kind must be"),
    ({"models": ["f9-k9"]}, "unknown model"),
    ({"channel": "wifi"}, "unknown channel"),
    ({"grid": []}, "grid"),
    ({"receivers": ["psychic"]}, "unknown receiver"),
    ({"trials": "ten"}, "'trials' must be int"),
    ({"baselines": ["bpg"]}, "unknown baseline"),
    ({"kind": "speed", "batch": 0}, "batch and repeat"),
    ({"models": [["f4-k256"]]}, "'models' must be a list of strings"),
    ({"receivers": [{"a": 1}]}, "'receivers' must be a list of strings"),
    ({"figure": [1, 2]}, "'figure' must be a list of strings"),
    ({"channel_params": {"burst_length": [1]}}, "channel_params.burst_length must be"),
    ({"search": "4"}, "'search' is a key of rd suites"),
    ({"kind": "rd", "search": "4,rate=-1"}, "search rate"),
])
def test_bad_suites(patch, needle):
    base = {"name": "t", "description": "d", "kind": "sweep", "images": "samples", "models": ["f4-k256"],
            "channel": "bsc", "grid": [0.01]}
    base.update(patch)
    with pytest.raises(S.SuiteError, match=needle):
        S.validate(base)


@pytest.fixture
def tiny_zoo(monkeypatch, tmp_path, tiny_model, image_dir):
    from vqcodec.model import save_model
    from vqcodec.prior import learn_prior, prior_path, save_prior
    from vqcodec.simulate import encode_image

    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path / "w")
    (tmp_path / "w").mkdir()
    save_model(tiny_model, tmp_path / "w" / "tiny", {"name": "tiny"})
    monkeypatch.setitem(zoo.REGISTRY, "tiny", zoo.ZooEntry("tiny", "test model"))
    codec = zoo.load_codec("tiny")
    grids = [encode_image(codec, p, False).indices for p in sorted(image_dir.iterdir())]
    save_prior((learn_prior(grids, 16),), prior_path(tmp_path / "w" / "tiny"))
    zoo._load.cache_clear()
    yield
    zoo._load.cache_clear()


def _suite(image_dir, **kw):
    d = {"name": "tiny", "description": "tiny", "kind": "sweep", "images": str(image_dir), "models": ["tiny"],
         "channel": "bsc", "grid": [0.0, 0.02, 0.05], "receivers": ["naive", "spatial-mmse"], "trials": 2,
         "min_trials": 2}
    d.update(kw)
    return S.validate(d)


def test_tiny_suite_end_to_end_and_resume(tiny_zoo, image_dir, tmp_path):
    st = _suite(image_dir)
    full = tmp_path / "full"
    full.mkdir()
    res, figs = S.run(st, full)
    assert (full / "summary.md").read_text().count("|") > 10
    assert "trials per point up to 2" in (full / "summary.md").read_text()
    assert all(f.stat().st_size > 1000 for f in figs)
    assert [p["param"] for p in res[0]["points"]] == [0.0, 0.02, 0.05]

    # an interrupted run: only the first point was finished and written
    part = tmp_path / "part"
    part.mkdir()
    S.run(_suite(image_dir, grid=[0.0]), part)
    before = json.loads((part / "results.json").read_text())
    calls = []
    res2, _ = S.run(st, part, progress=calls.append)
    assert len(calls) == 2  # the finished point was not recomputed
    strip = lambda rs: [{k: v for k, v in r.items() if k != "created"} for r in rs]  # noqa: E731
    assert strip(res2) == strip(res)
    assert before[0]["points"][0] == res2[0]["points"][0]


def test_tiny_speed_suite(tiny_zoo, image_dir, tmp_path):
    st = S.validate({"name": "tspeed", "description": "d", "kind": "speed", "images": str(image_dir),
                     "models": ["tiny"], "batch": 3, "repeat": 1})
    calls = []
    doc, figs = S.run(st, tmp_path, progress=calls.append, device="cpu")
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["format"] == "vqcodec.speed/1" and saved["rows"] == doc["rows"]
    comps = {r["component"] for r in doc["rows"]}
    assert {"encode", "decode", "encode+decode", "receiver", "simulate", "jpeg (Pillow)", "channel",
            "channel kernel"} <= comps
    for r in doc["rows"]:
        assert r["value"] > 0 and np.isfinite(r["value"])
        assert (r["ratio"] is None) == (r["baseline"] is None)
    # batch rows: the value is the batch's images over its time, the ratio against batch 1
    enc = {r["detail"].split(", ")[2]: r for r in doc["rows"] if r["component"] == "encode"}
    assert enc["batch 3"]["ratio"] == pytest.approx(enc["batch 3"]["value"] / enc["batch 1"]["value"], rel=1e-9)
    text = (tmp_path / "summary.md").read_text()
    assert "| component |" in text and "numpy reference" in text
    assert all(f.stat().st_size > 1000 for f in figs)


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "", ".hidden"])
def test_suite_names_cannot_leave_the_output_folder(name):
    with pytest.raises(S.SuiteError, match="'name' must be"):
        S.validate({"name": name, "description": "d", "kind": "rd", "images": "samples", "models": ["f4-k256"]})


def test_resume_refuses_another_suites_run_directory(tmp_path):
    from vqcodec.results import new_results, write_results

    st = S.validate({"name": "mine", "description": "d", "kind": "sweep", "images": "samples",
                     "models": ["f4-k256"], "channel": "bsc", "grid": [0.01]})
    run = tmp_path / "run"
    run.mkdir()
    S.check_resume_dir(st, run)  # empty: fine
    res = new_results(name="smoke-bsc", description="d", seed=0, model={"name": "f4-k256"}, images={},
                      channel={"kind": "bsc", "param": "p"}, receiver="naive", points=[])
    write_results(run / "results.json", [res])
    with pytest.raises(S.SuiteError, match="holds results of 'smoke-bsc', not of suite mine"):
        S.check_resume_dir(st, run)
    write_results(run / "results.json", [{**res, "name": "mine"}, {**res, "name": "baseline-jpeg-bsc"},
                                         {**res, "name": "deepjscc-awgn"}])
    S.check_resume_dir(st, run)  # the suite's own curves and its baselines'
    write_results(run / "results.json", [{**res, "name": "mine-2"}])  # another suite whose name starts alike
    with pytest.raises(S.SuiteError, match="holds results of 'mine-2'"):
        S.check_resume_dir(st, run)
    with pytest.raises(S.SuiteError, match="no such run directory"):
        S.check_resume_dir(st, tmp_path / "nope")


def test_anchor_gap_is_the_difference_at_equal_rate():
    # anchor: 30 dB at 0.1 bpp, 34 dB at 0.4 bpp (2 dB per doubling in log-rate)
    gap = S.anchor_gap([0.2, 0.4, 0.8, 0.05], [32.5, 33.0, 40.0, 10.0], [0.1, 0.4], [30.0, 34.0])
    assert gap["points"] == 2  # 0.8 and 0.05 lie outside [0.15, 0.7]
    assert gap["min"] == pytest.approx(-1.0) and gap["max"] == pytest.approx(0.5)
    assert gap["mean"] == pytest.approx(-0.25)
    assert S.anchor_gap([0.9], [30.0], [0.1, 0.4], [30.0, 34.0]) is None


@pytest.mark.skipif(not (S.ANCHORS / "bpg_444_x265_ycbcr.json").exists(), reason="anchors absent")
def test_anchor_gaps_pair_our_heic_run_with_bpg():
    bpg = json.loads((S.ANCHORS / "bpg_444_x265_ycbcr.json").read_text())["results"]
    points = [{"bpp": b, "psnr": {"mean": p + 0.3}} for b, p in zip(bpg["bpp"], bpg["psnr-rgb"])]
    rows = S.anchor_gaps([{"model": {"name": "heic"}, "points": points},
                          {"model": {"name": "f4-k256", "K": 256}, "points": points}])
    assert [r["codec"] for r in rows] == ["heic"] and rows[0]["anchor"].startswith("BPG")
    assert rows[0]["mean"] == pytest.approx(0.3) and rows[0]["points"] == 3  # 0.16, 0.35 and 0.68 bpp lie in range


def test_link_suite_adds_modulation_oracles_deepjscc_vqcodec_best_and_anchors(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    for i in range(2):
        img = np.stack([x * 2, y * 2 + 20 * i, (x + y)], 2) + rng.normal(0, 4, (96, 128, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"s{i}.png")
    st = S.validate({"name": "tlink", "description": "d", "kind": "sweep", "images": str(folder),
                     "models": ["f8-k256"], "channel": "awgn", "channel_params": {"modulation": "qpsk"},
                     "grid": [1.0, 13.0], "receivers": ["spatial-mmse"], "baselines": ["jpeg", "deepjscc"],
                     "rates": ["ldpc-1/2", "ldpc-2/3"], "cbr": "1/12", "modulations": ["qpsk", "qam16"],
                     "best_models": ["f8-k256"], "jscc_anchors": ["swinjscc-awgn"], "trials": 1, "min_trials": 1,
                     "picture": "s1.png", "picture_crop": [8, 8, 64, 96], "picture_snrs": [1.0, 13.0]})
    out = tmp_path / "run"
    out.mkdir()
    res, figs = S.run(st, out)
    names = [r["model"]["name"] for r in res]
    assert "jpeg best (modulation x rate)" in names and "vqcodec best" in names and "deepjscc-c8" in names
    bounds = [r for r in res if r["model"]["name"] == "jpeg separation bound"]
    envelope = next(r for r in res if r["model"]["name"] == "jpeg separation bound (best modulation)")
    assert len(bounds) == 2 and [p["psnr"]["mean"] for p in envelope["points"]] == \
        [max(b["points"][i]["psnr"]["mean"] for b in bounds) for i in range(2)]
    per_mod = [r for r in res if r["model"]["name"] == "jpeg best digital"]
    assert [r["points"][0]["budget_bpp"] for r in per_mod] == [pytest.approx(0.5), pytest.approx(1.0)]
    env = next(r for r in res if r["model"]["name"] == "jpeg best (modulation x rate)")
    for i, pt in enumerate(env["points"]):
        assert pt["psnr"]["mean"] == max(r["points"][i]["psnr"]["mean"] for r in per_mod)
    assert all(f.stat().st_size > 1000 for f in figs) and "vqcodec best" in (out / "summary.md").read_text()
    assert (out / "pictures.png").exists() and (out / "pictures.pdf").exists()
    if (S.JSCC_ANCHORS / "swinjscc-awgn.json").exists():
        assert S.jscc_anchor_points(st)[0]["x"] == [1.0, 4.0, 7.0, 10.0, 13.0]
        row = next(ln for ln in (out / "summary.md").read_text().splitlines() if "(published, not our run)" in ln)
        assert row.endswith("| 30.35 | 35.19 |"), row  # SwinJSCC at 1 and 13 dB, cbr 1/12
    for bad, needle in [({"channel": "bsc", "grid": [0.1]}, "need a sweep over awgn or fading"),
                        ({"cbr": "x"}, "'cbr' must be a fraction"), ({"best_models": ["nope"]}, "unknown"),
                        ({"picture_crop": [0, 0, 8]}, "picture_crop")]:
        d = {"name": "t", "description": "d", "kind": "sweep", "images": "samples", "models": ["f8-k256"],
             "channel": "awgn", "grid": [1.0], "cbr": "1/12", **bad}
        with pytest.raises(S.SuiteError, match=needle):
            S.validate(d)


def test_an_rd_suite_with_a_rate_search_codes_one_encoding_both_ways(tiny_zoo, image_dir, tmp_path):
    """``search`` in an rd suite: each model is encoded once with it; its fixed-length and
    entropy-coded points share the indices (same PSNR) and say so (that the rate-weighted search
    makes smaller files: test_entropy)."""
    st = S.validate({"name": "trd", "description": "d", "kind": "rd", "images": str(image_dir),
                     "models": ["tiny"], "entropy": True, "baselines": ["jpeg"], "search": "2,rate=1"})
    fixed, coded = [r for r in S.run_rd_suite(st, tmp_path) if r["model"]["name"] == "tiny"]
    assert [fixed["points"][0]["coding"], coded["points"][0]["coding"]] == ["fixed", "ans-causal"]
    assert fixed["model"]["search"] == coded["model"]["search"] == {"candidates": 2, "spacing": 5, "sweeps": 2,
                                                                      "rate": 1.0}
    assert fixed["points"][0]["psnr"]["mean"] == coded["points"][0]["psnr"]["mean"]
    rows, summary = S.rd_table(S.read_results(tmp_path / "results.json"))
    assert {r["coding"] for r in rows} == {"fixed", "ans-causal"}
    text = S.write_summary(st, S.read_results(tmp_path / "results.json"), tmp_path).read_text()
    assert "clean images, no channel" in text and "trials" not in text  # no trials to count in an rd suite


def test_an_rd_suite_resumes_its_finished_curves_and_measures_a_changed_model_again(tiny_zoo, tiny_model, image_dir,
                                                                                  tmp_path):
    import torch

    from vqcodec.model import save_model

    st = S.validate({"name": "trd", "description": "d", "kind": "rd", "images": str(image_dir),
                     "models": ["tiny"], "entropy": True, "baselines": ["jpeg"]})
    run = tmp_path / "run"
    run.mkdir()
    S.run_rd_suite(st, run)
    first = S.read_results(run / "results.json")
    calls = []
    assert S.run_rd_suite(st, run, progress=calls.append) == first
    assert calls == []  # every curve re-used, none measured again
    assert S.read_results(run / "results.json") == first

    # the same name with another decoder (same codebook and assignment): measured again; JPEG's curve kept
    with torch.no_grad():
        next(iter(tiny_model.decoder.parameters())).mul_(0.5)
    save_model(tiny_model, tmp_path / "w" / "tiny", {"name": "tiny"})
    zoo._load.cache_clear()
    calls = []
    again = S.run_rd_suite(st, run, progress=calls.append)
    assert calls == ["tiny"]
    assert [r["description"] for r in again] == [r["description"] for r in first]
    assert [r["rd_source"] for r in again[:2]] != [r["rd_source"] for r in first[:2]]
    assert again[0]["points"][0]["psnr"]["mean"] != first[0]["points"][0]["psnr"]["mean"]
    assert again[2] == first[2] and again[2]["model"] == {"name": "jpeg"}
