import json

import pytest

from vqcodec.results import SCHEMA, ResultsError, new_results, read_results, write_results


def _res(points=None, **kw):
    points = points if points is not None else [{"param": 0.01, "psnr": {"mean": 20.0, "ci95": float("inf")}}]
    return new_results(name="t", description="d", seed=0, model={"name": "m", "f": 4, "K": 256, "bpp": 0.5},
                       images={"source": "x", "count": 1}, channel={"kind": "bsc", "param": "p"},
                       receiver="naive", points=points, **kw)


def test_roundtrip_single_and_list(tmp_path):
    write_results(tmp_path / "a.json", _res())
    (r,) = read_results(tmp_path / "a.json")
    assert r["schema"] == SCHEMA and r["points"][0]["psnr"]["ci95"] == "inf"
    json.loads((tmp_path / "a.json").read_text())  # strict JSON: no bare Infinity
    write_results(tmp_path / "b.json", [_res(), _res()])
    assert len(read_results(tmp_path / "b.json")) == 2


def test_no_overwrite(tmp_path):
    write_results(tmp_path / "a.json", _res())
    with pytest.raises(FileExistsError):
        write_results(tmp_path / "a.json", _res(), overwrite=False)


def test_failed_write_keeps_previous(tmp_path):
    write_results(tmp_path / "a.json", _res())
    before = (tmp_path / "a.json").read_text()

    class Boom:
        pass
    with pytest.raises(TypeError):
        write_results(tmp_path / "a.json", {"bad": Boom()})
    assert (tmp_path / "a.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("text,match", [
    ('{"schema": "vqcodec.results/1", "name"', "not valid JSON"),
    ('{"schema": "other/9"}', "unknown schema"),
    ('[]', "no results"),
    ('{"schema": "vqcodec.results/1"}', "missing field"),
])
def test_bad_files(tmp_path, text, match):
    p = tmp_path / "r.json"
    p.write_text(text)
    with pytest.raises(ResultsError, match=match):
        read_results(p)


def test_compressai_export_roundtrip(tmp_path):
    from vqcodec.results import read_compressai, to_compressai

    def clean(name, bpp, psnr_):
        return new_results(name="e", description="d", seed=0, model={"name": name, "K": 256},
                           images={"source": "x", "count": 1}, channel={"kind": "none", "param": "p"},
                           receiver="none", points=[{"param": 0.0, "bpp": bpp, "psnr": {"mean": psnr_, "ci95": 0.0},
                                                     "ms_ssim": {"mean": 0.9, "ci95": 0.0}}])
    doc = to_compressai([clean("b", 0.5, 27.0), clean("a", 0.156, 24.0)], name="vq")
    assert doc["results"]["bpp"] == [0.156, 0.5] and doc["results"]["psnr-rgb"] == [24.0, 27.0]
    p = tmp_path / "ca.json"
    p.write_text(json.dumps(doc))
    back = read_compressai(p)
    assert back == {"name": "vq", "bpp": [0.156, 0.5], "psnr": [24.0, 27.0]}
    with pytest.raises(ResultsError):
        to_compressai([_res()])


@pytest.mark.parametrize("point, match", [
    ({"psnr": {"mean": "nan", "ci95": 0.1}}, "'psnr' must be a number in"),
    ({"psnr": {"mean": -1e308, "ci95": 0.1}}, "'psnr' must be a number in"),
    ({"psnr": {"mean": 20.0, "ci95": -1.0}}, "'psnr' must be a number in"),
    ({"ber": "inf"}, "'ber' must be a number in"),
    ({"ber": 1.5}, "'ber' must be a number in"),
    ({"ms_ssim": {"mean": "-inf", "ci95": None}}, "'ms_ssim' must be"),
    ({"bit_errors": -3}, "'bit_errors' must be a non-negative integer"),
    ({"trials": 2.5}, "'trials' must be a non-negative integer"),
])
def test_out_of_range_metrics_and_counts_are_refused(tmp_path, point, match):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_res(points=[{"param": 0.01, **point}])))
    with pytest.raises(ResultsError, match=match):
        read_results(path)


def test_a_psnr_of_identical_images_and_a_single_trial_are_valid(tmp_path):
    path = tmp_path / "r.json"
    write_results(path, _res(points=[{"param": 0.0, "psnr": {"mean": float("inf"), "ci95": None}, "trials": 1}]))
    assert read_results(path)[0]["points"][0]["psnr"] == {"mean": "inf", "ci95": None}


def test_rd_plot_and_export_refuse_the_same_non_clean_file(tmp_path):
    from click.testing import CliRunner

    from cli import main

    path = tmp_path / "sweep.json"
    write_results(path, _res(points=[{"param": 0.01, "psnr": {"mean": 20.0, "ci95": 0.1}}]))
    for args in (["plot", str(path), "--rd", "-o", str(tmp_path / "f.png")],
                 ["export", str(path), "--compressai", "-o", str(tmp_path / "e.json")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and "no clean-channel results" in r.output, r.output
    assert not list(tmp_path.glob("f*")) and not (tmp_path / "e.json").exists()


def test_a_figure_states_the_bandwidth_ratio_its_curves_share():
    from vqcodec.plot import budget_caption

    def res(*cbrs):
        return {"points": [{"param": i, "cbr": c} for i, c in enumerate(cbrs)]}

    assert budget_caption([res(1 / 12, 0.0835), res(0.084)]) == " · cbr 1/12 (channel uses / 3 pixels)"
    assert budget_caption([res(1 / 12), res(1 / 6)]) == ""  # curves at different budgets
    assert budget_caption([res(1 / 12), {"points": [{"param": 0}]}]) == ""  # a curve without a budget
    assert budget_caption([res(0.0913)]).startswith(" · cbr ")
