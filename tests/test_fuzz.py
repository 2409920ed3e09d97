"""Regression cases found by benchmarks/fuzz.py, and a short run of the fuzzer itself (the
10-minute runs are the script's job)."""
import json
import random
import struct

import numpy as np
import pytest

from benchmarks import fuzz
from vqcodec.bits import VQC_MAGIC_V1, IndexFileError, parse_index_file
from vqcodec.results import ResultsError, read_results, to_compressai


def _vqc(header: str, payload: bytes = b"\0") -> bytes:
    h = header.encode()
    return VQC_MAGIC_V1 + struct.pack("<I", len(h)) + h + payload  # version 1: no CRC, the header checks run


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e400", '"x"', "[]", "null"])
def test_vqc_header_with_non_integers(value):
    header = f'{{"model": "f4-k256", "K": {value}, "height": 4, "width": 4, "grid": [1, 1]}}'
    with pytest.raises(IndexFileError):
        parse_index_file(_vqc(header))


def _results(**point):
    return {"schema": "vqcodec.results/1", "name": "n", "model": {"name": "m"}, "channel": {"kind": "none"},
            "receiver": "none", "points": [{"param": 0.0, "bpp": 0.5, "psnr": {"mean": 28.0}, **point}]}


@pytest.mark.parametrize("edit", [
    {"param": "x"}, {"param": None}, {"param": float("inf")}, {"param": True}, {"psnr": "abc"},
    {"psnr": {"mean": [1]}}, {"psnr": {"ci95": 1}}, {"bpp": 10 ** 400}, {"ms_ssim": {"mean": 0.9, "ci95": {}}},
])
def test_results_points_with_wrong_types_are_refused(tmp_path, edit):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(_results(**edit)))
    with pytest.raises(ResultsError):
        read_results(p)


@pytest.mark.parametrize("edit", [
    {"model": None}, {"model": {"name": 3}}, {"channel": {"kind": None}}, {"receiver": 1}, {"label": 5},
    {"style": []}, {"points": {}}, {"images": []},
])
def test_results_objects_with_wrong_types_are_refused(tmp_path, edit):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({**_results(), **edit}))
    with pytest.raises(ResultsError):
        read_results(p)


def test_export_of_points_without_bpp_or_with_null_ms_ssim(tmp_path):
    r = _results(ms_ssim=None)
    assert to_compressai([r])["results"]["ms-ssim-rgb"] == [None]
    with pytest.raises(ResultsError, match="bpp is nan"):
        to_compressai([_results(bpp="nan")])
    del r["points"][0]["bpp"]
    with pytest.raises(ResultsError, match="bpp"):
        to_compressai([r])


@pytest.mark.parametrize("target", ["vqc", "results"])
def test_a_short_fuzz_run_finds_nothing(tmp_path, target):
    seeds_fn, run, mutate = {"vqc": (fuzz.vqc_seeds, fuzz.vqc_target, fuzz.mutate_bytes),
                             "results": (fuzz.results_seeds, fuzz.results_target, fuzz.results_mutate)}[target]
    rng = random.Random(1)
    pool = seeds_fn(tmp_path)
    accepted = sum(bool(run(mutate(rng.choice(pool), rng, pool), tmp_path)) for _ in range(1500))
    assert 0 < accepted < 1500  # the mutations reach both the accepting and the refusing paths


@pytest.mark.parametrize("bpp,ok", [(None, False), ({"mean": 1}, False), ("inf", True), (1e308, True), ("nan", True)])
def test_rd_plot_of_odd_rates(tmp_path, bpp, ok):
    from vqcodec.plot import plot_rd

    r = _results(bpp=bpp) if bpp is not None else _results()
    if bpp is None:
        del r["points"][0]["bpp"]
    r["model"]["K"] = 256
    jpeg = {**_results(bpp=0.3), "model": {"name": "jpeg"}}
    if ok:
        assert plot_rd([r, jpeg], tmp_path / "f.png")[0].stat().st_size > 1000
    else:
        with pytest.raises(ResultsError, match="bpp"):
            plot_rd([r, jpeg], tmp_path / "f.png")


def test_curves_without_a_drawable_positive_point_are_drawn_on_linear_axes(tmp_path):
    """A log axis needs a drawable point above zero: PSNR drawn only at p = 0 (the p = 0.01 point
    has none; found by the fuzzer) goes on linear axes with its point at 0 shown; a BER that is 0
    everywhere on a linear y axis (its p = 0.01 point keeps the log x axis)."""
    import matplotlib.pyplot as plt

    from vqcodec.plot import draw_curves, plot_curves

    r = {**_results(psnr_clean=28.5, ber=0.0), "channel": {"kind": "bsc", "param": "p"},
         "model": {"name": "m", "K": 256}}
    r["points"].append({"param": 0.01, "psnr": None, "psnr_clean": 28.5, "ber": 0.0})  # found by the fuzzer
    for metric, xscale, drawn in (("psnr", "linear", [[0.0, 28.0]]), ("ber", "log", [[0.01, 0.0]])):
        fig = draw_curves([r], metric)
        ax = fig.axes[0]
        assert (ax.get_xscale(), ax.get_yscale()) == (xscale, "linear"), metric
        xy = ax.get_lines()[0].get_xydata()
        assert xy[np.isfinite(xy[:, 1])].tolist() == drawn, metric
        plt.close(fig)
        assert plot_curves([r], tmp_path / f"{metric}.png", metric=metric)[0].stat().st_size > 1000
    r["points"][1]["psnr"] = {"mean": 20.0}  # now drawable above zero: log x
    fig = draw_curves([r], "psnr")
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
