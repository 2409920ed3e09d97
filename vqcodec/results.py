"""The results file: schema ``vqcodec.results/1``, read, write (atomic).

One results object is one curve (one model, one receiver, one channel); a
file holds one object or a JSON array of them. See DESIGN.md for the fields.
Writers go through a temporary file in the same directory and ``os.replace``,
so a reader never sees a half-written file and a failed write leaves the
previous file intact.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from channels.base import ParameterError
from vqcodec import __version__
from vqcodec.files import InputError, read_document, read_input_bytes, template_text

SCHEMA = "vqcodec.results/1"
REQUIRED = ("schema", "name", "model", "channel", "receiver", "points")
POINT_METRICS = ("psnr", "ms_ssim", "ber", "index_error_rate", "psnr_clean", "bpp", "failure_rate")


class ResultsError(ValueError):
    """A results file that is missing, truncated, or not of our schema (one-line message)."""


def versions() -> dict:
    """The versions every results file records (asked once per process: a sweep writes its file
    after every trial)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict:
    import torch  # torch (~1.7 s to import) only to name its version: reading and plotting results need none

    out = {"vqcodec": __version__, "torch": torch.__version__, "numpy": np.__version__}
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        out["git"] = sha.stdout.strip() if sha.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def new_results(*, name: str, description: str, seed: int, model: dict, images: dict, channel: dict,
                receiver: str, points: list | None = None, extra: dict | None = None) -> dict:
    res = {"schema": SCHEMA, "name": name, "description": description,
           "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "seed": seed, "versions": versions(), "model": model, "images": images, "channel": channel,
           "receiver": receiver, "points": points or []}
    if extra:
        res.update(extra)
    return res


def _clean(obj):
    """Replace non-finite floats (not valid JSON) by strings "inf", "-inf", "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(results) -> str:
    return json.dumps(_clean(results), indent=1, sort_keys=False) + "\n"


class ResultsExist(ParameterError, FileExistsError):
    """A results file that exists, refused without ``overwrite``."""


def write_results(path, results, *, overwrite: bool = True) -> Path:
    """Atomically write one results object or a list of them."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ResultsExist(f"{template_text(path)}: exists (use {{0}} to replace it)", "overwrite")
    return atomic_write_text(path, dumps(results))


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"{path}: is a directory")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path


def _number(v) -> bool:
    """A JSON number that fits a float, or one of the strings our writer uses for non-finite floats."""
    if isinstance(v, str):
        return v in ("nan", "inf", "-inf")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        float(v)
    except OverflowError:
        return False
    return True


#: Range of every point metric a reader uses: (low, high, whether the string "inf" is allowed).
METRIC_RANGES = {"psnr": (0.0, math.inf, True), "psnr_clean": (0.0, math.inf, True), "ms_ssim": (0.0, 1.0, False),
                 "ber": (0.0, 1.0, False), "index_error_rate": (0.0, 1.0, False),
                 "failure_rate": (0.0, 1.0, False), "bpp": (0.0, 1e6, False)}
COUNTS = ("trials", "bits", "bit_errors", "erased_bits", "indices", "index_errors")


def _in_range(v, metric: str) -> bool:
    lo, hi, inf_ok = METRIC_RANGES[metric]
    if v == "inf":
        return inf_ok
    if not _number(v) or isinstance(v, str):
        return False
    x = float(v)
    return math.isfinite(x) and lo <= x <= hi


def _check_point(p, where: str) -> None:
    if not isinstance(p, dict) or "param" not in p:
        raise ResultsError(f"{where}: 'points' must be a list of objects with a 'param'")
    param = p["param"]
    if not (_number(param) and not isinstance(param, str) and math.isfinite(float(param))):
        raise ResultsError(f"{where}: a point's 'param' must be a finite number, got {str(param)[:40]!r}")
    for m in POINT_METRICS:
        v = p.get(m)
        if v is None:
            continue
        lo, hi, _ = METRIC_RANGES[m]
        bad = f"{where}: point metric {m!r} must be a number in [{lo:g}, {hi:g}] or {{mean, ci95}} of them"
        if isinstance(v, dict):
            ci = v.get("ci95")
            if not _in_range(v.get("mean"), m) or not (
                    ci is None or ci == "inf" or (_number(ci) and not isinstance(ci, str)
                                                  and math.isfinite(float(ci)) and float(ci) >= 0)):
                raise ResultsError(f"{bad}, got {str(v)[:60]}")
        elif not _in_range(v, m):
            raise ResultsError(f"{bad}, got {str(v)[:40]}")
    for k in COUNTS:
        v = p.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ResultsError(f"{where}: point count {k!r} must be a non-negative integer, got {str(v)[:40]}")


def search_tag(search) -> str:
    """' +search' for a curve whose encoder used the encoder-side index search (a results file's
    ``model.search`` or a configuration's ``search``), else ''."""
    return " +search" if search else ""


def clean_results(results: list[dict]) -> list[dict]:
    """The clean-channel results (channel kind 'none') whose first point has a bpp and a PSNR: what
    a rate-distortion plot and an export draw on; a ResultsError when there is none."""
    clean = [r for r in results if r["channel"].get("kind") == "none"]
    if not clean:
        raise ResultsError("no clean-channel results (channel kind 'none'; from `vqcodec eval` or a kodak-rd "
                           "suite) to draw a rate-distortion curve from")
    if not all(r["points"] and "bpp" in r["points"][0] and isinstance(r["points"][0].get("psnr"), dict)
               for r in clean):
        raise ResultsError("a clean-channel result has no point with 'bpp' and 'psnr'")
    return clean


def validate(obj, name: str) -> dict:
    """Check everything a reader of ours relies on, so that no consumer meets a wrong type."""
    if not isinstance(obj, dict):
        raise ResultsError(f"{name}: results entries must be JSON objects")
    if obj.get("schema") != SCHEMA:
        raise ResultsError(f"{name}: unknown schema {str(obj.get('schema'))[:60]!r} (expected {SCHEMA!r})")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise ResultsError(f"{name}: missing field(s) {', '.join(missing)}")
    if not isinstance(obj["model"], dict) or not isinstance(obj["model"].get("name"), str):
        raise ResultsError(f"{name}: 'model' must be an object with a string 'name'")
    if not isinstance(obj["channel"], dict) or not isinstance(obj["channel"].get("kind"), str) \
            or not isinstance(obj["channel"].get("param", "p"), str):
        raise ResultsError(f"{name}: 'channel' must be an object with a string 'kind' (and 'param')")
    if not isinstance(obj["receiver"], str):
        raise ResultsError(f"{name}: 'receiver' must be a string")
    if not isinstance(obj.get("label", ""), (str, type(None))) or not isinstance(obj.get("style", {}), dict):
        raise ResultsError(f"{name}: 'label' must be a string and 'style' an object")
    if not isinstance(obj.get("images", {}), dict):
        raise ResultsError(f"{name}: 'images' must be an object")
    if not isinstance(obj["points"], list):
        raise ResultsError(f"{name}: 'points' must be a list of objects with a 'param'")
    for p in obj["points"]:
        _check_point(p, name)
    return obj


#: Largest results file read (bytes): a sweep of thousands of points with per-image values is a
#: few MB; anything near this is not a results file, and reading it would only cost memory.
MAX_RESULTS_BYTES = 1 << 30


def read_results(path) -> list[dict]:
    """All results objects in a file (a single object is returned as a list of one)."""
    path = Path(path)

    def unreadable(exc: Exception) -> str:  # an OSError, or text that is not UTF-8
        if isinstance(exc, FileNotFoundError):
            return f"{path}: no such file"
        return f"{path}: cannot read ({exc.__class__.__name__})"

    def invalid(exc: Exception) -> str:
        if isinstance(exc, json.JSONDecodeError):
            return f"{path}: not valid JSON (truncated or corrupt at line {exc.lineno})"
        return unreadable(exc)

    data = read_document(path, MAX_RESULTS_BYTES, json.loads, ResultsError, parse_errors=(json.JSONDecodeError,),
                         invalid=invalid, unreadable=unreadable,
                         too_deep=f"{path}: JSON nested too deeply to be a results file")
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ResultsError(f"{path}: holds no results")
    return [validate(obj, str(path)) for obj in items]


def metrics_in(res: dict) -> list[str]:
    """Names of the metrics that every point of a results object carries."""
    names = set()
    for p in res["points"]:
        names |= {k for k in POINT_METRICS if k in p and p[k] is not None}
    return sorted(names)


def to_compressai(results: list[dict], name: str = "vqcodec") -> dict:
    """Clean-channel results (one point each, e.g. one per model) -> CompressAI's RD file form,
    sorted by bpp. Per-image means as CompressAI reports them (PSNR averaged in dB). A ResultsError
    for a non-finite value (e.g. the infinite PSNR of a lossless result): strict JSON has none."""
    clean = clean_results(results)
    for r in clean:
        for key in ("bpp", "psnr", "ms_ssim"):
            v = mean_of(r["points"][0].get(key))
            if v is not None and not math.isfinite(v):
                raise ResultsError(f"{r['model']['name']}: {key} is {v}, which CompressAI's JSON form cannot hold")
    pts = sorted((r["points"][0] for r in clean), key=lambda p: mean_of(p["bpp"]))
    return {"name": name,
            "description": "vqcodec fixed-length VQ index stream, clean channel: "
                           + ", ".join(r["model"]["name"] for r in clean),
            "results": {"psnr-rgb": [mean_of(p["psnr"]) for p in pts],
                        "ms-ssim-rgb": [mean_of(p.get("ms_ssim")) for p in pts],
                        "bpp": [mean_of(p["bpp"]) for p in pts]}}


def mean_of(v) -> float | None:
    """A validated point metric (number, non-finite string or {mean, ci95}) as a float; None stays None."""
    if isinstance(v, dict):
        v = v.get("mean")
    return None if v is None else float(v)


def read_compressai(path) -> dict | None:
    """{name, bpp, psnr} from a CompressAI RD results file, or None when the file is not one; a
    ResultsError for one whose bpp or psnr is not a list of finite numbers of one length."""
    try:
        data = json.loads(read_input_bytes(path, MAX_RESULTS_BYTES).decode("utf-8"))
    except (OSError, InputError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("results"), dict) and "bpp" in data["results"]:
        res = data["results"]
        bpp, psnr = res["bpp"], res.get("psnr-rgb", res.get("psnr", []))

        def numbers(v):
            return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                               and math.isfinite(x) for x in v)

        if not (numbers(bpp) and numbers(psnr)) or len(bpp) != len(psnr) or not bpp:
            raise ResultsError(f"{path}: a CompressAI results file whose bpp and psnr-rgb must be lists of "
                               "finite numbers of one length")
        name = data.get("name", Path(path).stem)
        return {"name": str(name), "bpp": [float(x) for x in bpp], "psnr": [float(x) for x in psnr]}
    return None


def merge_curves(results: list[dict]) -> list[dict]:
    """Join results objects that are the same curve (model, receiver, channel, label) — e.g. one
    ``simulate`` file per channel point — into one object with all points, sorted by parameter."""
    merged: dict[str, dict] = {}
    for r in results:
        key = json.dumps([r["model"].get("name"), r["receiver"], r["channel"], r.get("label")], sort_keys=True)
        if key not in merged:
            merged[key] = {**r, "points": list(r["points"])}
        else:
            have = {float(p["param"]) for p in merged[key]["points"]}
            merged[key]["points"] += [p for p in r["points"] if float(p["param"]) not in have]
    for r in merged.values():
        r["points"].sort(key=lambda p: float(p["param"]))
    return list(merged.values())


def envelope_points(curves: Sequence[dict], labels: Sequence[str], metric: str = "psnr") -> list[dict]:
    """Per channel point, the point of the curve with the highest mean ``metric`` (an oracle that
    knows the channel), with ``configuration`` (the winner's label) and ``<metric>_by_configuration``
    (every curve's mean) added. ``curves``: results objects over the same parameter grid, named by
    ``labels``; ties go to the earlier curve."""
    if not curves or len(curves) != len(labels):
        raise ValueError("need one label per curve, and at least one curve")
    grids = [[float(p["param"]) for p in c["points"]] for c in curves]
    if any(g != grids[0] for g in grids):
        raise ValueError("the curves of an envelope must share their parameter grid")
    out = []
    for i in range(len(grids[0])):
        means = [float(c["points"][i][metric]["mean"]) for c in curves]
        best = max(range(len(curves)), key=lambda j: (means[j], -j))
        point = dict(curves[best]["points"][i])
        point["configuration"] = labels[best]
        point[f"{metric}_by_configuration"] = dict(zip(labels, means))
        out.append(point)
    return out
