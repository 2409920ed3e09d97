import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r


def one_line_error(r):
    assert r.exit_code != 0
    err = r.output.strip().splitlines()
    assert err and err[-1].startswith("Error:"), r.output
    assert "Traceback" not in r.output
    return err[-1]


def test_help_lists_commands():
    """Whole command names from the Commands section of --help ("train" is not found inside
    "train-codebook"): the design's commands, and exactly the commands registered."""
    r = run("--help")
    assert r.exit_code == 0
    section = r.output.split("Commands:\n", 1)[1]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()]
    for cmd in ("simulate", "sweep", "eval", "encode", "decode", "train", "plot", "models", "prepare", "bench"):
        assert cmd in listed, (cmd, listed)
    assert listed == sorted(main.commands) and len(set(listed)) == len(listed)


def test_version_is_the_package_version():
    from vqcodec import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.output.strip() == f"vqcodec {__version__}"


def test_eval_writes_results(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "e.json"
    r = run("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--json", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["schema"] == "vqcodec.results/1" and res["channel"]["kind"] == "none"
    (pt,) = res["points"]
    from vqcodec.model import load_model

    cfg = load_model(tiny_checkpoint)[0].cfg
    # bits over the real 37 x 53 pixels, not over the padded 40 x 56
    exact = -(-37 // cfg.f) * -(-53 // cfg.f) * math.ceil(math.log2(cfg.K)) / (37 * 53)
    assert len(pt["per_image"]) == 2 and pt["bpp"] == pytest.approx(exact, rel=1e-12)
    assert [d["bpp"] for d in pt["per_image"]] == pytest.approx([exact, exact], rel=1e-12)


def test_encode_decode_bit_exact(tiny_checkpoint, image_dir, tmp_path):
    from vqcodec.receivers import Decision
    from vqcodec.simulate import decode_image, encode_image
    from vqcodec.zoo import load_codec

    vqc, png = tmp_path / "a.vqc", tmp_path / "a.png"
    assert run("encode", image_dir / "a.png", "-o", vqc, "--checkpoint", tiny_checkpoint).exit_code == 0
    r = run("decode", vqc, "-o", png, "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    codec = load_codec(checkpoint=str(tiny_checkpoint))
    enc = encode_image(codec, image_dir / "a.png", False)
    got = np.asarray(Image.open(png))
    assert np.array_equal(got, enc.clean)
    assert np.array_equal(got, decode_image(codec, Decision(enc.indices), *enc.image.shape[:2]))


def test_simulate_and_plot(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "s.json"
    r = run("sweep", "--channel", "bsc", "--p", "0,1e-2", "--checkpoint", tiny_checkpoint, "--images", image_dir,
            "--trials", "2", "--json", out, "--no-ms-ssim")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(out.read_text()) if isinstance(json.loads(out.read_text()), list) else [json.loads(out.read_text())]
    assert [p["param"] for p in res["points"]] == [0.0, 0.01]
    fig = tmp_path / "f.png"
    r = run("plot", out, "-o", fig)
    assert r.exit_code == 0, r.output
    assert fig.stat().st_size > 5000 and Image.open(fig).size[0] > 400
    msg = one_line_error(run("plot", out, "-o", fig, "--metric", "ms_ssim", "--overwrite"))
    assert "has no metric 'ms_ssim'" in msg and "psnr" in msg


@pytest.mark.parametrize("args,needle", [
    (["--channel", "nope", "--p", "0.1"], "unknown channel 'nope'"),
    (["--channel", "bsc"], "needs --p"),
    (["--channel", "bsc", "--p", "0.7"], "p must be"),
    (["--channel", "bsc", "--p", "-0.1"], "p must be"),
    (["--channel", "bsc", "--p", "nan"], "p"),
    (["--channel", "awgn", "--snr-db", "inf"], "snr_db"),
    (["--channel", "bsc", "--p", "0.1", "--receiver", "magic"], "unknown receiver 'magic'"),
    (["--channel", "bsc", "--p", "0.1", "--model", "nomodel"], "unknown model 'nomodel'"),
])
def test_simulate_bad_arguments(args, needle, tmp_path, image_dir):
    out = tmp_path / "r.json"
    r = run("simulate", *args, "--images", image_dir, "--json", out)
    msg = one_line_error(r)
    assert needle in msg
    assert not out.exists()


def test_existing_output_needs_overwrite(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "e.json"
    out.write_text("keep")
    msg = one_line_error(run("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--json", out))
    assert "--overwrite" in msg and out.read_text() == "keep"


def test_corrupt_checkpoint_is_one_line(tiny_checkpoint, image_dir):
    tiny_checkpoint.with_suffix(".safetensors").write_bytes(b"garbage")
    msg = one_line_error(run("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir))
    assert "corrupt weights" in msg


def test_same_seed_same_file_different_seed_different_noise(tiny_checkpoint, image_dir, tmp_path):
    def once(name, seed):
        out = tmp_path / name
        r = run("simulate", "--channel", "bsc", "--p", "0.05", "--checkpoint", tiny_checkpoint, "--images", image_dir,
                "--trials", "3", "--seed", seed, "--json", out, "--receiver", "naive,map")
        assert r.exit_code == 0, r.output
        text = out.read_text()
        return text, json.loads(text)

    t1, a = once("a.json", 7)
    t2, b = once("b.json", 7)
    _, c = once("c.json", 8)
    strip = lambda t: "\n".join(line for line in t.splitlines() if '"created"' not in line)  # noqa: E731
    assert strip(t1) == strip(t2)
    assert a[0]["points"][0]["bit_errors"] != c[0]["points"][0]["bit_errors"]


def test_export_compressai_and_rd_plot(tiny_checkpoint, image_dir, tmp_path):
    ev = tmp_path / "e.json"
    assert run("eval", "--checkpoint", tiny_checkpoint, "--images", image_dir, "--json", ev).exit_code == 0
    ca = tmp_path / "ca.json"
    r = run("export", ev, "--compressai", "-o", ca)
    assert r.exit_code == 0, r.output
    doc = json.loads(ca.read_text())
    assert set(doc["results"]) >= {"psnr-rgb", "ms-ssim-rgb", "bpp"} and len(doc["results"]["bpp"]) == 1
    fig = tmp_path / "rd.png"
    r = run("plot", "--rd", ev, ca, "-o", fig)
    assert r.exit_code == 0, r.output
    assert fig.stat().st_size > 5000


def test_plot_select_keeps_the_matching_curves(tmp_path, monkeypatch):
    import vqcodec.plot as P
    from vqcodec.results import new_results, write_results

    def curve(receiver, psnrs):
        return new_results(name="s", description="d", seed=0, model={"name": "m", "f": 4, "K": 16, "bpp": 0.5},
                           images={"source": "x", "count": 1}, channel={"kind": "bsc", "param": "p"},
                           receiver=receiver, points=[{"param": p, "psnr": {"mean": v, "ci95": 0.1}}
                                                      for p, v in zip((0.01, 0.1), psnrs)])

    res, fig = tmp_path / "s.json", tmp_path / "f.png"
    write_results(res, [curve("naive", (20.0, 10.0)), curve("spatial-mmse", (25.0, 15.0))])
    drawn, draw = [], P.plot_curves
    import vqcodec.api.files as api_files  # the API draws what the command asks for
    monkeypatch.setattr(api_files, "plot_curves", lambda rs, *a, **kw: drawn.append([P.curve_label(r) for r in rs])
                        or draw(rs, *a, **kw))
    r = run("plot", res, "-o", fig, "--select", "*mmse")
    assert r.exit_code == 0, r.output
    assert drawn == [["m · spatial-mmse"]] and fig.stat().st_size > 5000
    msg = one_line_error(run("plot", res, "-o", tmp_path / "g.png", "--select", "*bp*"))
    assert "no curve matches --select *bp*" in msg and "m · naive" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "s.json"]


def test_export_refuses_an_infinite_psnr(tmp_path):
    from vqcodec.results import new_results, write_results

    ev, ca = tmp_path / "e.json", tmp_path / "ca.json"
    write_results(ev, new_results(name="e", description="d", seed=0, model={"name": "lossless", "K": 256},
                                  images={"source": "x", "count": 1}, channel={"kind": "none", "param": "p"},
                                  receiver="none", points=[{"param": 0.0, "bpp": 0.5,
                                                            "psnr": {"mean": float("inf"), "ci95": 0.0}}]))
    msg = one_line_error(run("export", ev, "--compressai", "-o", ca))
    assert "lossless: psnr is inf" in msg
    assert sorted(tmp_path.iterdir()) == [ev]


@pytest.fixture
def prepared_tiny(tiny_checkpoint, image_dir):
    from vqcodec.learn.prepare import prepare_checkpoint

    prepare_checkpoint(tiny_checkpoint, image_dir)
    return tiny_checkpoint


def test_train_codebook_then_prepare_keeping_the_assignment(prepared_tiny, image_dir, tmp_path):
    from vqcodec.prior import prior_path

    out = tmp_path / "covq"
    prior_path(out).write_bytes(b"left over from an earlier transmitter")
    r = run("train-codebook", "--checkpoint", prepared_tiny, "--images", image_dir, "-o", out, "--steps", 3,
            "--batch", 2, "--crop", 16, "--threads", 1)
    assert r.exit_code == 0, r.output
    assert "--keep-assignment" in r.output
    assert not prior_path(out).exists()  # the stale prior is gone
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["assignment"] == json.loads(prepared_tiny.with_suffix(".json").read_text())["assignment"]
    assert "prior" not in doc and "codebook_training" in doc
    r = run("prepare", "--checkpoint", out, "--images", image_dir, "--kodak", image_dir)  # keeps by default
    assert r.exit_code == 0, r.output
    assert "kept" in r.output
    assert json.loads(out.with_suffix(".json").read_text())["assignment"] == doc["assignment"]
    r = run("simulate", "--checkpoint", out, "--images", image_dir, "--channel", "bsc", "--p", 0.01,
            "--receiver", "naive,spatial-mmse", "--trials", 1, "--no-ms-ssim")
    assert r.exit_code == 0, r.output
    r = run("train-codebook", "--checkpoint", prepared_tiny, "--images", image_dir, "-o", out, "--steps", 1)
    assert "exists" in one_line_error(r)
    r = run("train-codebook", "--checkpoint", prepared_tiny, "--images", image_dir, "-o", prepared_tiny,
            "--steps", 1, "--overwrite")
    assert "model being trained from" in one_line_error(r)


def test_train_codebook_needs_an_assignment(tiny_checkpoint, image_dir, tmp_path):
    r = run("train-codebook", "--checkpoint", tiny_checkpoint, "--images", image_dir, "-o", tmp_path / "x",
            "--steps", 1, "--crop", 16)
    assert "no index assignment" in one_line_error(r)
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("args,msg", [(("--p-min", 0.2, "--p-max", 0.1), "must not exceed p_max"),
                                      (("--p-max", 0.7), "p_max must be in"), (("--clean-fraction", 2), "clean_fraction"),
                                      (("--lr", "inf"), "lr must be a positive number"),
                                      (("--crop", 10), "multiple of the model's stride")])
def test_train_codebook_bad_input_gives_one_line_errors(prepared_tiny, image_dir, tmp_path, args, msg):
    r = run("train-codebook", "--checkpoint", prepared_tiny, "--images", image_dir, "-o", tmp_path / "x",
            "--steps", 1, *args)
    assert msg in one_line_error(r)
    assert not (tmp_path / "x.json").exists()


def test_best_writes_every_configuration_and_the_envelope(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    out = tmp_path / "best.json"
    r = run("best", "--snr-db", "0,9", "--models", "f8-k256", "--cbr", "1/12", "--images", tmp_path / "n.png",
            "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--json", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert [x["label"] for x in res][:3] == ["f8-k256 bpsk ldpc-1/2 spatial-mmse", "f8-k256 qpsk ldpc-1/4 spatial-mmse",
                                             "f8-k256 qam16 ldpc-1/8 spatial-mmse"]
    assert res[-1]["model"]["name"] == "vqcodec best" and "chosen" in r.output
    for args, needle in [(["--cbr", "x"], "fraction like 1/12"), (["--models", "nope"], "nope"),
                         (["--cbr", "1/400"], "fills cbr 1/400"), (["--snr-db", "a"], "comma-separated list")]:
        base = ["best", "--snr-db", "1", "--images", tmp_path / "n.png", "--json", tmp_path / "x.json"]
        if args[0] == "--snr-db":
            base[2] = args[1]
            args = []
        line = one_line_error(run(*base, *args))
        assert needle in line.lower() or needle in line, line
    assert not (tmp_path / "x.json").exists()
    assert "exists" in one_line_error(run("best", "--snr-db", "1", "--json", out))


def test_best_with_the_encoder_side_search_encodes_closer_and_labels_it(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    clean = {}
    for search in ("1", "2,guided=1"):
        out = tmp_path / f"best{search}.json"
        r = run("best", "--snr-db", "12", "--models", "f8-k256", "--images", tmp_path / "n.png", "--search", search,
                "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--json", out)
        assert r.exit_code == 0, r.output
        res = json.loads(out.read_text())
        clean[search] = res[0]["points"][0]["psnr_clean"]
        if search == "1":
            assert "search" not in res[0]["model"] and "+search" not in r.output
        else:
            assert res[0]["label"] == "f8-k256 +search bpsk ldpc-1/2 spatial-mmse"
            assert res[0]["configuration"]["search"] == res[0]["model"]["search"] == {
                "candidates": 2, "spacing": 5, "sweeps": 2, "guided": 1}
            assert res[-1]["label"].startswith("vqcodec best +search (")
            assert res[-1]["model"]["search"] == {"f8-k256": res[0]["model"]["search"]}
    assert clean["2,guided=1"] > clean["1"]


def test_cbr_takes_a_fraction(image_dir, tmp_path):
    out = tmp_path / "r.json"
    r = run("sweep", "--channel", "awgn", "--modulation", "qpsk", "--snr-db", "9", "--images", image_dir,
            "--receiver", "naive", "--trials", "1", "--baselines", "jpeg", "--rates", "ldpc-1/2", "--cbr", "1/12",
            "--no-ms-ssim", "--json", out)
    assert r.exit_code == 0, r.output
    base = [x for x in json.loads(out.read_text()) if x["model"].get("codec") == "jpeg"]
    assert base[0]["points"][0]["budget_bpp"] == pytest.approx(0.5)  # 1/12 x 3 x 2 bits per QPSK symbol
    assert "fraction like 1/12" in one_line_error(run("sweep", "--channel", "awgn", "--snr-db", "9", "--cbr", "x",
                                                      "--json", tmp_path / "x.json"))


def test_plot_select_without_a_match_names_curves_with_braces_in_one_line(tmp_path):
    from vqcodec.results import new_results, write_results

    res = new_results(name="s", description="d", seed=0, model={"name": "m"}, images={}, channel={"kind": "bsc"},
                      receiver="naive", points=[{"param": 0.01, "psnr": {"mean": 20.0, "ci95": 0.1}}])
    write_results(tmp_path / "s.json", [{**res, "label": "$R_{1/2}$"}])
    msg = one_line_error(run("plot", tmp_path / "s.json", "-o", tmp_path / "f.png", "--select", "{nomatch}"))
    assert "no curve matches --select {nomatch}" in msg and "$R_{1/2}$" in msg


def test_parameter_errors_pickle_with_their_template():
    import pickle

    from vqcodec.api import ParameterError

    e = pickle.loads(pickle.dumps(ParameterError("{0} at {{x}}/y: bad", "snr_db")))
    assert str(e) == "snr_db at {x}/y: bad" and e.spelled(lambda n: "--snr-db") == "--snr-db at {x}/y: bad"


def test_models_lists_the_deep_jscc_reference_with_its_recorded_kodak_row(monkeypatch, tmp_path):
    import vqcodec.jscc as jscc
    from vqcodec import api

    net, meta = jscc.load_jscc()
    (row,) = [j for j in api.jscc_models() if j["name"] == "deepjscc-c8"]
    assert row["installed"] and row["cbr"] == pytest.approx(1 / 12) and row["width"] == meta["jscc"]["width"]
    assert row["parameters"] == sum(p.numel() for p in net.parameters())
    assert len(row["kodak"]["psnr"]) == len(row["kodak"]["snr_db"]) and row["steps"] > 0
    r = run("models")
    line = next(ln for ln in r.output.splitlines() if ln.startswith("deepjscc-c8"))
    assert r.exit_code == 0 and "cbr 1/12" in line and f"{row['kodak']['psnr'][0]:.2f} dB at 1 dB" in line
    monkeypatch.setattr(jscc, "WEIGHTS", tmp_path)  # its files missing: listed as such, no traceback
    r = run("models")
    assert r.exit_code == 0 and "deepjscc-c8      (weights not installed)" in r.output
