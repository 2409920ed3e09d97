import json

import pytest

from vqcodec.results import SCHEMA, ResultsError, new_results, read_results, write_results


def _res(**kw):
    return new_results(name="t", description="d", seed=0, model={"name": "m", "f": 4, "K": 256, "bpp": 0.5},
                       images={"source": "x", "count": 1}, channel={"kind": "bsc", "param": "p"},
                       receiver="naive", points=[{"param": 0.01, "psnr": {"mean": 20.0, "ci95": float("inf")}}], **kw)


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
