"""Named benchmark suites: ``NAME.toml`` in the suites folder, run by ``vqcodec bench NAME``.

A suite file names its images, models, channel, grid, receivers, baselines,
seed and trial budget (see ``SCHEMA``; unknown keys and bad values are
errors). Two kinds:

* ``kind = "sweep"``: every model over the channel grid with every receiver
  (and the JPEG/WebP baselines), one figure of PSNR against the parameter;
* ``kind = "rd"``: clean-channel rate-distortion of every model against
  JPEG and WebP over their quality range, with BD-rate / BD-PSNR of the
  model curve against JPEG and CompressAI's published Kodak anchors;
* ``kind = "speed"``: component throughputs on the run's device (codec at
  batch 1 and ``batch``, decoder mixed precision, JPEG, channels, receiver,
  end-to-end simulation), each with the baseline it is judged by
  (``vqcodec.speed``); writes ``speed.json`` instead of ``results.json``.

Output: ``<root>/<suite>/<timestamp>/`` (``new_run_dir``) with ``results.json`` (a list of
results objects, rewritten atomically after every finished curve point),
``figure.png`` / ``figure.pdf`` and ``summary.md``. ``resume=DIR`` re-uses
the finished points of an interrupted run in DIR: with the per-point seeds
of ``vqcodec.simulate`` the result is identical to an uninterrupted run. An rd
suite re-uses a model's curves only while the model is unchanged (its weights,
assignment, search and entropy coder: ``_rd_sources``), so resuming it after
retraining one model measures that model alone again.

Folders: the suite files, their expected values, the published anchors and the named image
sets lie outside the package; the caller names them with ``use_folders`` (``vqcodec bench``:
its checkout's benchmarks/suites, benchmarks/expected and ../shared). The run folder's root
is the caller's too (``new_run_dir``).
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import math
import platform
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import channels
from channels.options import channel_spec
from vqcodec import speed
from vqcodec.analog import deepjscc_sweep
from vqcodec.baselines import (
    ANALOG_BASELINES,
    CODECS,
    RATES,
    as_baseline_images,
    baseline_sweep,
    check_options,
    clean_rd,
    rd_qualities,
)
from vqcodec.files import read_document
from vqcodec.images import image_name, list_images, load_image
from vqcodec.metrics import bd_psnr, bd_rate
from vqcodec.pictures import draw_grid, received_pictures
from vqcodec.plot import curve_label, plot_curves, plot_rd, plot_speed
from vqcodec.precision import PRECISIONS
from vqcodec.receivers import REGISTRY as RECEIVERS
from vqcodec.receivers import missing_side_info
from vqcodec.results import ResultsError, atomic_write_text, envelope_points, new_results, read_results, write_results
from vqcodec.search import SearchConfig
from vqcodec.simulate import StopRule, clean_point, encode_image, sweep
from vqcodec.zoo import REGISTRY as MODELS
from vqcodec.zoo import load_codec, plugins, resolve_device

#: The folders outside the package that suites read, named by the caller (``use_folders``):
SUITES: Path | None = None  # NAME.toml of every suite (``load_suite(NAME)``, ``available()``)
EXPECTED: Path | None = None  # the stored expected values a suite's ``expected`` names
ANCHORS: Path | None = None  # CompressAI's published Kodak RD points, NAME.json per codec (rd suites' ``anchors``)
JSCC_ANCHORS: Path | None = None  # published Deep JSCC points, NAME.json (sweep suites' ``jscc_anchors``)
DATASETS: Path | None = None  # image sets by name: ``images = "kodak"`` is DATASETS / "kodak"


def use_folders(*, suites, expected, anchors, jscc_anchors, datasets) -> None:
    """Name the folders outside the package that suites read (see the module variables); every
    later call reads these."""
    global SUITES, EXPECTED, ANCHORS, JSCC_ANCHORS, DATASETS
    SUITES, EXPECTED, ANCHORS, JSCC_ANCHORS, DATASETS = (
        Path(p) for p in (suites, expected, anchors, jscc_anchors, datasets))


SCHEMA = {  # key: (type, required)
    "name": (str, True), "description": (str, True), "kind": (str, True), "images": (str, True),
    "models": (list, True), "channel": (str, False), "grid": (list, False), "channel_params": (dict, False),
    "receivers": (list, False), "baselines": (list, False), "rates": (list, False), "seed": (int, False),
    "trials": (int, False), "min_trials": (int, False), "ci": (float, False), "ms_ssim": (bool, False),
    "budget_bpp": (float, False), "expected": (str, False), "anchors": (list, False), "figure": (list, False),
    "batch": (int, False), "repeat": (int, False),
    "cbr": (str, False), "modulations": (list, False), "best_models": (list, False), "jscc_anchors": (list, False),
    "picture": (str, False), "picture_crop": (list, False), "picture_snrs": (list, False),
    "entropy": (bool, False), "precision": (str, False), "search": (str, False),
}
KINDS = ("sweep", "rd", "speed")


class SuiteError(ValueError):
    """A suite file that is missing or invalid (one-line message)."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    kind: str
    images: str
    models: tuple
    channel: str = "bsc"
    grid: tuple = ()
    channel_params: dict = field(default_factory=dict)
    receivers: tuple = ("naive",)
    baselines: tuple = ()
    rates: tuple = RATES
    seed: int = 0
    trials: int = 10
    min_trials: int = 3
    ci: float = 0.05
    ms_ssim: bool = False
    budget_bpp: float | None = None
    expected: str | None = None
    anchors: tuple = ()
    figure: tuple = ()  # glob patterns of the legend labels drawn in the figure (default: all curves)
    batch: int = 16  # speed: images per batch of the batched codec path
    repeat: int = 5  # speed: timed calls per measurement (the median is reported)
    cbr: str | None = None  # sweep on awgn/fading: the baselines' budget as a bandwidth ratio ("1/12")
    modulations: tuple = ()  # with cbr: the baselines' modulations (default: the channel's own)
    best_models: tuple = ()  # with cbr: vqcodec best over these models (api.best_sweep)
    jscc_anchors: tuple = ()  # JSCC_ANCHORS files drawn as published points at cbr
    picture: str | None = None  # with cbr: one image of the suite's folder drawn as each scheme receives it
    picture_crop: tuple = ()  # (top, left, height, width) of the picture
    picture_snrs: tuple = ()  # the grid's Es/N0 columns [default: the first, middle and last grid value]
    entropy: bool = False  # rd: also each model's entropy-coded files (vqcodec.entropy), a second curve
    # the networks' arithmetic (vqcodec.precision): fp32 by default, so a suite's numbers (and its
    # expected values) are the same on every machine; "auto" or "bf16" to measure the fast path
    precision: str = "fp32"
    search: str | None = None  # rd: the encoder-side index search of every model (SearchConfig.parse's form)

    def images_folder(self):
        """None for the bundled samples, else a folder (``kodak`` = DATASETS / kodak)."""
        if self.images == "samples":
            return None
        if self.images == "kodak":
            return DATASETS / "kodak"
        return Path(self.images)


def _suites_folder() -> Path:
    if SUITES is None:
        raise SuiteError("the suites' folders are not named (vqcodec.api.use_bench_folders)")
    return SUITES


def available() -> list[str]:
    return sorted(p.stem for p in _suites_folder().glob("*.toml"))


#: Largest suite file read (bytes); a suite is a page of TOML.
MAX_SUITE_BYTES = 1 << 20


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = _suites_folder() / f"{name_or_path}.toml"
    if not path.exists():
        raise SuiteError(f"unknown suite {name_or_path!r} (known: {', '.join(available()) or 'none'})")
    data = read_document(path, MAX_SUITE_BYTES, tomllib.loads, SuiteError, parse_errors=(tomllib.TOMLDecodeError,),
                         invalid=lambda exc: f"{path}: not valid TOML ({exc})",
                         too_deep=f"{path}: not a suite (TOML nested too deeply)")
    return validate(data, str(path))


def validate(data: dict, where: str = "suite") -> Suite:
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(SCHEMA))})")
    for key, (typ, required) in SCHEMA.items():
        if key not in data:
            if required:
                raise SuiteError(f"{where}: missing key {key!r}")
            continue
        v = data[key]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = data[key] = float(v)
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise SuiteError(f"{where}: {key!r} must be {typ.__name__}, got {type(v).__name__}")
    for key in ("models", "receivers", "baselines", "rates", "anchors", "figure", "modulations", "best_models",
                "jscc_anchors"):
        if key in data and not all(isinstance(v, str) for v in data[key]):
            raise SuiteError(f"{where}: {key!r} must be a list of strings")
    for key, v in data.get("channel_params", {}).items():
        if isinstance(v, (dict, list)):
            raise SuiteError(f"{where}: channel_params.{key} must be a number, string or boolean")
    if not (isinstance(data["name"], str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", data["name"])):
        raise SuiteError(f"{where}: 'name' must be letters, digits, '.', '_' or '-' (it names the output "
                         f"folder), got {str(data['name'])[:40]!r}")
    if data.get("precision", "fp32") not in PRECISIONS:
        raise SuiteError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {data['precision']!r}")
    if data["kind"] not in KINDS:
        raise SuiteError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if "search" in data:
        if data["kind"] != "rd":
            raise SuiteError(f"{where}: 'search' is a key of rd suites")
        try:
            SearchConfig.parse(data["search"])
        except ValueError as exc:
            raise SuiteError(f"{where}: {exc}") from None
    if not data["models"]:
        raise SuiteError(f"{where}: 'models' is empty")

    known = sorted(MODELS) + sorted(plugins())  # shipped models and installed plug-ins
    bad = [m for m in data["models"] if m not in known]
    if bad:
        raise SuiteError(f"{where}: unknown model {bad[0]!r} (known: {', '.join(known)})")
    if data["kind"] == "sweep":
        if data.get("channel") not in channels.REGISTRY:
            raise SuiteError(f"{where}: unknown channel {data.get('channel')!r} "
                             f"(known: {', '.join(sorted(channels.REGISTRY))})")
        if not data.get("grid") or not all(isinstance(g, (int, float)) and math.isfinite(g) for g in data["grid"]):
            raise SuiteError(f"{where}: 'grid' must be a non-empty list of finite numbers")
        bad = [r for r in data.get("receivers", ["naive"]) if r not in RECEIVERS]
        if bad:
            raise SuiteError(f"{where}: unknown receiver {bad[0]!r} (known: {', '.join(sorted(RECEIVERS))})")
    try:
        check_options(data.get("baselines", []), data.get("rates", RATES))
    except ValueError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    link_keys = [k for k in ("cbr", "modulations", "best_models", "jscc_anchors", "picture", "picture_crop",
                             "picture_snrs") if k in data]
    if link_keys:
        if data.get("kind") != "sweep" or data.get("channel") not in ("awgn", "fading") or "cbr" not in data:
            raise SuiteError(f"{where}: {', '.join(link_keys)} need a sweep over awgn or fading with a 'cbr'")
        try:
            if not 0 < Fraction(data["cbr"]) <= 1:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise SuiteError(f"{where}: 'cbr' must be a fraction in (0, 1] like \"1/12\", got {data['cbr']!r}") \
                from None
        crop = data.get("picture_crop", [])
        if crop and (len(crop) != 4 or not all(isinstance(v, int) and v >= 0 for v in crop) or min(crop[2:]) < 16):
            raise SuiteError(f"{where}: 'picture_crop' must be [top, left, height, width], sides >= 16 pixels")
        if not all(isinstance(v, (int, float)) for v in data.get("picture_snrs", [])):
            raise SuiteError(f"{where}: 'picture_snrs' must be a list of numbers")
        bad = [m for m in data.get("modulations", []) if m not in channels.MODULATIONS]
        bad += [m for m in data.get("best_models", []) if m not in known]
        if bad:
            raise SuiteError(f"{where}: unknown modulation or model {bad[0]!r}")

    if data.get("trials", 10) < 1 or data.get("min_trials", 3) < 1:
        raise SuiteError(f"{where}: trials and min_trials must be >= 1")
    if data.get("ci", 0.05) <= 0:
        raise SuiteError(f"{where}: ci must be > 0")
    if data.get("batch", 16) < 1 or data.get("repeat", 5) < 1:
        raise SuiteError(f"{where}: batch and repeat must be >= 1")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Suite(**kw)


# --------------------------------------------------------------------------- running

def new_run_dir(suite: Suite, root: Path) -> Path:
    """A new run folder ``root/<suite>/<timestamp>`` (the CLI's root: --out, default results)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = Path(root) / suite.name / stamp
    d.mkdir(parents=True, exist_ok=False)
    return d


def check_resume_dir(suite: Suite, run_dir: Path) -> None:
    """Refuse to continue in a run directory of another suite (its results would be replaced)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SuiteError(f"{run_dir}: no such run directory")
    p = run_dir / "results.json"
    if not p.exists():
        return
    try:
        names = {r["name"] for r in read_results(p)}
    except ResultsError as exc:
        raise SuiteError(f"cannot resume in {run_dir}: {exc}") from None
    # a suite's own curves carry its name; its baselines' curves are named baseline-<codec>-<channel>
    # and deepjscc-<channel>
    # and deepjscc-<channel>; a sweep suite's curves are named <suite>-<channel> (simulate.sweep)
    own = {suite.name, f"{suite.name}-{suite.channel}"} if suite.channel else {suite.name}
    other = sorted(n for n in names if n not in own and not n.startswith(("baseline-", "deepjscc-")))
    if other:
        raise SuiteError(f"{run_dir}: holds results of {other[0]!r}, not of suite {suite.name}; "
                         "resume a run directory of this suite")


def _finished(run_dir: Path) -> list[dict]:
    p = run_dir / "results.json"
    if not p.exists():
        return []
    try:
        return read_results(p)
    except ResultsError:
        return []


def run_sweep_suite(suite: Suite, run_dir: Path, progress: Callable[[str], None] | None = None,
                    executor=None) -> list[dict]:
    previous = _finished(run_dir)
    stop = StopRule(min(suite.min_trials, suite.trials), suite.trials, suite.ci)
    paths = list_images(suite.images_folder())
    img_desc = {"source": suite.images, "count": len(paths)}
    cls = channels.REGISTRY[suite.channel]
    grid = [float(g) for g in suite.grid]
    all_results: list[dict] = []

    for model in suite.models:
        codec = load_codec(model, precision=suite.precision)
        why = next(filter(None, (missing_side_info(r, codec) for r in suite.receivers)), None)
        if why:
            raise SuiteError(f"suite {suite.name}: {why}")
        try:
            spec = channel_spec(suite.channel, index_bits=codec.bits_per_index, **dict(suite.channel_params))
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"suite {suite.name}: channel_params: {str(exc).splitlines()[0]}") from None
        chans = [spec.make(v) for v in grid]
        todo = [v for v in grid if not all(any(r.get("receiver") == rc and r["model"].get("name") == model
                                               and any(float(p["param"]) == v for p in r["points"])
                                               for r in previous) for rc in suite.receivers)]
        encs = [encode_image(codec, p, suite.ms_ssim) for p in paths] if todo else []

        seen: set = set()

        # the models still to run keep their earlier results (and kept trials) in every write
        later = tuple(r for r in previous if r["model"].get("name") in suite.models[suite.models.index(model) + 1:])

        def on_point(res, model=model, seen=seen, todo=todo, done=tuple(all_results), later=later):
            new = {float(p["param"]) for p in res[0]["points"]} - seen if res else set()
            seen |= new
            for v in sorted(new & set(todo)):
                if progress:
                    progress(f"{model} {cls.param}={v:g}")
            write_results(run_dir / "results.json", [*done, *res, *later])

        all_results += sweep(codec, encs, chans, grid, list(suite.receivers), channel_desc=spec.describe(),
                             images_desc=img_desc, seed=suite.seed, stop=stop, name=suite.name,
                             with_ms_ssim=suite.ms_ssim, on_point=on_point,
                             previous=[r for r in previous if r["model"].get("name") == codec.name],
                             executor=executor)
    images = [(image_name(p), load_image(p)) for p in paths] if (suite.baselines or suite.best_models) else []
    digital = [b for b in suite.baselines if b not in ANALOG_BASELINES]
    if digital:
        if progress:
            progress("baselines")
        codec = load_codec(suite.models[0], precision=suite.precision)
        extra = {k: v for k, v in dict(suite.channel_params).items() if k != "code"}
        if suite.cbr is None:
            all_results += baseline_sweep(images, codecs=digital, rates=list(suite.rates), channel_kind=suite.channel,
                                          grid=grid, channel_extra=extra, budget_bpp=suite.budget_bpp or codec.bpp,
                                          seed=suite.seed, trials=suite.trials, with_ms_ssim=suite.ms_ssim,
                                          images_source=suite.images, executor=executor)
        else:
            all_results += link_baselines(suite, images, digital, grid, extra, executor)
        write_results(run_dir / "results.json", all_results)
    if "deepjscc" in suite.baselines:
        if progress:
            progress("deepjscc")
        all_results.append(deepjscc_sweep(images, suite.channel, grid, trials=suite.trials, seed=suite.seed,
                                          with_ms_ssim=suite.ms_ssim, images_source=suite.images,
                                          precision=suite.precision))
        write_results(run_dir / "results.json", all_results)
    if suite.best_models:
        if progress:
            progress("vqcodec best")
        from vqcodec.api.runs import best_sweep  # at the top a cycle: vqcodec.api -> api.bench -> suites

        all_results += best_sweep(suite.channel, grid, models=list(suite.best_models), cbr=suite.cbr,
                                  images=dict(images), trials=suite.trials, min_trials=suite.min_trials,
                                  ci=suite.ci, seed=suite.seed, with_ms_ssim=suite.ms_ssim, executor=executor,
                                  name=suite.name, precision=suite.precision)
        write_results(run_dir / "results.json", all_results)
    return all_results


def link_baselines(suite: Suite, images, codecs, grid, extra, executor=None) -> list[dict]:
    """The digital baselines at the suite's bandwidth ratio: per modulation (the suite's
    ``modulations``, else the channel's own) every codec x code rate with its budget
    cbr x 3 x bits per symbol channel bits per pixel, then per codec the envelope over
    modulations of the per-modulation oracles: "<codec> best (modulation x rate)"."""
    mods = list(suite.modulations) or [extra.get("modulation", "bpsk")]
    imgs = as_baseline_images(images)  # one set of objects: encodings and RD curves are reused across modulations
    out = []
    best = {c: [] for c in codecs}
    bound = {c: [] for c in codecs}
    for mod in mods:
        m = channels.get_modulation(mod).bits_per_symbol
        curves = baseline_sweep(imgs, codecs=codecs, rates=list(suite.rates), channel_kind=suite.channel,
                                grid=grid, channel_extra={**extra, "modulation": mod},
                                budget_bpp=float(Fraction(suite.cbr)) * 3 * m, seed=suite.seed, trials=suite.trials,
                                with_ms_ssim=suite.ms_ssim, images_source=suite.images, executor=executor)
        for r in curves:
            r["label"] = f"{r.get('label', curve_label(r))} ({mod})"
            name = r["model"]["name"]
            if name.endswith(" best digital"):
                best[r["model"]["codec"]].append((mod, r))
            elif name.endswith(" separation bound"):
                bound[r["model"]["codec"]].append((mod, r))
        out += curves
    for codec in codecs:
        label = CODECS[codec].label
        for per_mod, what, text, style in (
                (best[codec], "best (modulation x rate)", "+ 5G LDPC, best modulation and rate (oracle)", "-"),
                (bound[codec], "separation bound (best modulation)", "separation bound (best modulation's BICM "
                                                                      "capacity)", "--")):
            if len(per_mod) < 2:
                continue
            first = per_mod[0][1]
            out.append(new_results(
                name=first["name"], description=f"{label}: per point the best of {', '.join(m for m, _ in per_mod)} "
                                                f"at cbr {suite.cbr}: {text}",
                seed=suite.seed, model={"name": f"{codec} {what}", "codec": codec,
                                        "modulations": [m for m, _ in per_mod]},
                images=first["images"], channel={"kind": suite.channel, "param": "snr_db"},
                receiver=first["receiver"], points=envelope_points([r for _, r in per_mod], [m for m, _ in per_mod]),
                extra={"label": f"{label} {text}", "style": {"ls": style, "marker": "s" if style == "-" else ""}}))
    return out


def picture_grid(suite: Suite, out: Path) -> list[Path]:
    """The suite's ``picture`` (cropped) as vqcodec, the first digital baseline and Deep JSCC show it
    at ``picture_snrs`` (``vqcodec.pictures``), drawn to ``out`` (.png and .pdf)."""
    paths = [p for p in list_images(suite.images_folder()) if p.name == suite.picture]
    if not paths:
        raise SuiteError(f"suite {suite.name}: picture {suite.picture!r} is not among its images")
    img = load_image(paths[0])
    if suite.picture_crop:
        top, left, h, w = suite.picture_crop
        img = np.ascontiguousarray(img[top:top + h, left:left + w])
    grid = [float(g) for g in suite.grid]
    snrs = [float(v) for v in suite.picture_snrs] or sorted({grid[0], grid[len(grid) // 2], grid[-1]})
    params = dict(suite.channel_params)
    mod = params.get("modulation", "bpsk")
    digital = [b for b in suite.baselines if b not in ANALOG_BASELINES]
    rows = received_pictures(img, suite.picture, snrs, model=suite.models[0], receiver=suite.receivers[0],
                             modulation=mod, code=params.get("code"), codec=digital[0] if digital else "heic",
                             rates=[r for r in suite.rates if r.startswith("ldpc-")] or ["ldpc-1/2"],
                             budget_bpp=float(Fraction(suite.cbr)) * 3 * channels.get_modulation(mod).bits_per_symbol,
                             deepjscc="deepjscc" in suite.baselines, seed=suite.seed, precision=suite.precision)
    return draw_grid(rows, snrs, out, title=f"{suite.picture} over AWGN at cbr {suite.cbr} ({mod})")


def jscc_anchor_points(suite: Suite) -> list[dict]:
    """Published JSCC points (``jscc_anchors``) at the suite's cbr and channel: {name, x, y}."""
    out = []
    for a in suite.jscc_anchors:
        path = JSCC_ANCHORS / f"{a}.json"
        if not path.exists():  # anchors absent: the figure goes without
            continue
        d = json.loads(path.read_text())
        pts = [p for p in d["points"] if abs(float(p["cbr"]) - float(Fraction(suite.cbr))) < 1e-3
               and d.get("channel", suite.channel) == suite.channel]
        if pts:
            out.append({"name": d["name"], "x": [float(p["snr_db"]) for p in pts], "y": [float(p["psnr"]) for p in pts]})
    return out


def _rd_sources(codec, codings, images: dict) -> dict:
    """Per coding, what an rd curve of ``codec`` was computed from: every tensor of its network,
    its index assignment, its search and precision, the entropy coder's context model (for coded
    files) and the images; a resumed run re-uses a finished curve only when this is unchanged
    (None: a model it cannot fingerprint, never re-used)."""
    if (weights := codec.weights_fingerprint) is None:
        return dict.fromkeys(codings)
    base = json.dumps([codec.describe(), images, weights], sort_keys=True)
    return {coded: hashlib.sha256((base + (codec.coder_model().fingerprint if coded else "")).encode()).hexdigest()[:16]
            for coded in codings}


def run_rd_suite(suite: Suite, run_dir: Path, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Every model's clean point (fixed-length, and entropy-coded with ``entropy``), then the
    baselines' curves; ``results.json`` is rewritten after each model. Continuing in ``run_dir``
    re-uses the finished curves whose source is unchanged (``_rd_sources``: a retrained model or
    entropy coder is measured again) and the baselines' curves of the same qualities."""
    previous = _finished(run_dir)
    paths = list_images(suite.images_folder())
    img_desc = {"source": suite.images, "count": len(paths)}
    codings = (False, True) if suite.entropy else (False,)
    curves: dict[bool, list] = {coded: [] for coded in codings}

    def finished(description: str, source: str | None = None) -> dict | None:
        return next((r for r in previous if r.get("description") == description
                     and r.get("rd_source") == source and r.get("images") == img_desc), None)

    for model in suite.models:
        codec = load_codec(model, precision=suite.precision, search=suite.search)
        desc = {coded: f"clean channel, {model}" + (", entropy-coded files" if coded else "") for coded in codings}
        source = _rd_sources(codec, codings, img_desc)
        kept = {coded: source[coded] and finished(desc[coded], source[coded]) for coded in codings}
        if all(kept.values()):
            for coded in codings:
                curves[coded].append(kept[coded])
            continue
        encs = []  # once for both codings
        for i, p in enumerate(paths):
            encs.append(encode_image(codec, p))
            if progress and suite.search:  # minutes per image: say which
                progress(f"{model} image {i + 1}/{len(paths)}")
        for coded in codings:
            curves[coded].append(new_results(
                name=suite.name, description=desc[coded], seed=suite.seed, model=codec.describe(), images=img_desc,
                channel={"kind": "none", "param": "p"}, receiver="none",
                points=[clean_point(codec, encs, entropy=coded)], extra={"rd_source": source[coded]}))
        # an interruption keeps the curves finished so far and the earlier run's other curves
        done = [r for coded in codings for r in curves[coded]]
        names = {r["description"] for r in done}
        write_results(run_dir / "results.json", done + [r for r in previous if r.get("description") not in names])
        if progress:
            progress(model)
    out = [r for coded in codings for r in curves[coded]]
    imgs = [(image_name(p), load_image(p)) for p in paths]
    for codec_name in suite.baselines:
        label = CODECS[codec_name].label
        desc = f"clean channel, {label}, qualities {list(rd_qualities(codec_name))} (our run)"
        if (kept := finished(desc)) is not None and kept["model"] == {"name": codec_name}:
            out.append(kept)
            continue
        rd = clean_rd(imgs, codec_name, with_ms_ssim=suite.ms_ssim)
        per_q = np.array([[c[:2] for c in rd[i]] for i in range(len(imgs))])  # (images, qualities, 2)
        points = [{"param": 0.0, "trials": 1, "stop": "clean", "quality_index": qi,
                   "bpp": float(per_q[:, qi, 0].mean()),
                   "psnr": {"mean": float(per_q[:, qi, 1].mean()), "ci95": 0.0}}
                  for qi in range(per_q.shape[1])]
        out.append(new_results(name=suite.name, description=desc,
                               seed=0, model={"name": codec_name}, images=img_desc,
                               channel={"kind": "none", "param": "p"}, receiver="none", points=points,
                               extra={"label": f"{label} (our run)"}))
        if progress:
            progress(codec_name)
    write_results(run_dir / "results.json", out)
    return out


def run_speed_suite(suite: Suite, run_dir: Path, progress: Callable[[str], None] | None = None,
                    device: str = "cpu", checkpoints: tuple = ()) -> dict:
    device = resolve_device(device)
    paths = list_images(suite.images_folder())
    images = [load_image(p) for p in paths]
    rows: list = []

    def step(msg, new):
        rows.extend(new)
        if progress:
            progress(msg)

    codecs = [(m, None) for m in suite.models] + [(None, c) for c in checkpoints]
    for name, ckpt in codecs:
        codec = load_codec(name, ckpt, device=device, precision=suite.precision)
        model = codec.name
        step(f"{model} codec", speed.codec_rows(codec, images, suite.batch, suite.repeat))
        encs = [encode_image(codec, p, with_ms_ssim=False) for p in paths]
        if codec.prior is not None:
            step(f"{model} receiver", speed.receiver_rows(codec, encs[0].indices, suite.repeat))
        step(f"{model} simulate", speed.simulate_rows(codec, encs))
    step("jpeg", speed.jpeg_rows(images, suite.repeat))
    step("channels", speed.channel_rows(suite.repeat))
    if device.startswith("cuda"):
        dev_name = torch.cuda.get_device_name()
    else:
        dev_name = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads"
    doc = {"format": "vqcodec.speed/1", "suite": suite.name, "device": device, "device_name": dev_name,
           "images": {"source": suite.images, "count": len(paths)}, "batch": suite.batch, "repeat": suite.repeat,
           "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "rows": speed.to_dicts(rows)}
    atomic_write_text(run_dir / "speed.json", json.dumps(doc, indent=1) + "\n")
    return doc


def rd_table(results: list[dict]) -> tuple[list[dict], dict]:
    """Rows (name, coding, bpp, PSNR, MS-SSIM) of the VQ models, and BD-rate / BD-PSNR of each of
    their curves (fixed-length; entropy-coded where run) against JPEG and WebP where those ran."""
    models = [r for r in results if "K" in r["model"]]
    rows = [{"name": r["model"]["name"], "coding": r["points"][0].get("coding", "fixed"),
             "bpp": r["points"][0]["bpp"], "psnr": r["points"][0]["psnr"]["mean"],
             "ms_ssim": r["points"][0].get("ms_ssim", {}).get("mean")} for r in models]
    summary = {}
    for ref in ("jpeg", "webp"):
        base = next((r for r in results if r["model"]["name"] == ref), None)
        if base is None:
            continue
        br = [p["bpp"] for p in base["points"]]
        bp = [p["psnr"]["mean"] for p in base["points"]]
        for coding in sorted({r["coding"] for r in rows}):
            curve = [r for r in rows if r["coding"] == coding]
            if len(curve) < 2:
                continue
            key = "" if coding == "fixed" else "entropy_"
            mr, mp = [r["bpp"] for r in curve], [r["psnr"] for r in curve]
            summary[f"{key}bd_rate_vs_{ref}"] = bd_rate(br, bp, mr, mp)
            summary[f"{key}bd_psnr_vs_{ref}"] = bd_psnr(br, bp, mr, mp)
    return rows, summary


#: our codec runs and CompressAI's published run of the same coding tools (BPG is HEVC intra
#: through x265, as pillow-heif's HEIC)
MATCHING_ANCHOR = {"jpeg": "jpeg", "webp": "webp", "jpeg2000": "jpeg2000", "heic": "bpg_444_x265_ycbcr",
                   "avif": "av1"}


def anchor_gap(bpp, psnr, anchor_bpp, anchor_psnr, lo: float = 0.15, hi: float = 0.7) -> dict | None:
    """Our curve against a published one at equal rate: at each of our points with bpp in [lo, hi],
    our PSNR minus the anchor's, interpolated linearly in (log bpp, dB) between its points.
    {mean, min, max (dB), points}; None when no point of ours lies in the range."""
    ab, ap = np.log(np.asarray(anchor_bpp, float)), np.asarray(anchor_psnr, float)
    order = np.argsort(ab)
    diffs = [p - float(np.interp(np.log(b), ab[order], ap[order])) for b, p in zip(bpp, psnr) if lo <= b <= hi]
    if not diffs:
        return None
    return {"mean": float(np.mean(diffs)), "min": float(np.min(diffs)), "max": float(np.max(diffs)),
            "points": len(diffs)}


def anchor_gaps(results: list[dict]) -> list[dict]:
    """For every codec run of an rd suite with a matching CompressAI anchor: its :func:`anchor_gap`."""
    rows = []
    for r in results:
        anchor = MATCHING_ANCHOR.get(r["model"]["name"])
        path = ANCHORS / f"{anchor}.json" if anchor else None
        if path is None or not path.exists() or "K" in r["model"]:
            continue
        a = json.loads(path.read_text())
        gap = anchor_gap([p["bpp"] for p in r["points"]], [p["psnr"]["mean"] for p in r["points"]],
                         a["results"]["bpp"], a["results"]["psnr-rgb"])
        if gap:
            rows.append({"codec": r["model"]["name"], "anchor": a.get("name", anchor), **gap})
    return rows


def load_anchors(names) -> list[dict]:
    """CompressAI's published Kodak RD points (name, bpp list, psnr list) for labelled markers."""
    out = []
    for n in names:
        p = ANCHORS / f"{n}.json"
        if not p.exists():
            continue
        d = json.loads(p.read_text())
        out.append({"name": d.get("name", n), "bpp": d["results"]["bpp"], "psnr": d["results"]["psnr-rgb"]})
    return out


def write_summary(suite: Suite, results: list[dict], run_dir: Path) -> Path:
    """``summary.md``: a table a person can read without opening anything else."""
    noise = (f"; seed {suite.seed}; trials per point up to {suite.trials} (stop at a 95% CI half-width of {suite.ci} dB)"
             if suite.kind == "sweep" else "; clean images, no channel")  # an rd suite has no trials to count
    lines = [f"# {suite.name}", "", suite.description, "", f"images: {suite.images}{noise}", ""]
    if suite.kind == "speed":
        lines = [f"# {suite.name}", "", suite.description, "",
                 f"device: {results['device_name']} ({results['device']}); images: {suite.images} "
                 f"({results['images']['count']}); median of {suite.repeat} timed calls", "",
                 "| component | detail | throughput | vs baseline |", "|---|---|---|---|"]
        for r in results["rows"]:
            ratio = f"{r['ratio']:.2f}x {r['baseline']}" if r["ratio"] is not None else ""
            lines.append(f"| {r['component']} | {r['detail']} | {r['value']:,.1f} {r['unit']} | {ratio} |")
        lines += ["", "Throughput: higher is better; ratio = this row's throughput / the baseline's, same run.",
                  "Files: speed.json (format vqcodec.speed/1), figure.png, figure.pdf."]
        path = run_dir / "summary.md"
        path.write_text("\n".join(lines) + "\n")
        return path
    if suite.kind == "rd":
        rows, bd = rd_table(results)
        lines += ["| model | indices | bpp | PSNR (dB) | MS-SSIM |", "|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {'fixed-length' if r['coding'] == 'fixed' else 'entropy-coded file'} | "
                  f"{r['bpp']:.4f} | {r['psnr']:.2f} | "
                  f"{(r['ms_ssim'] if r['ms_ssim'] is not None else float('nan')):.4f} |" for r in rows]
        for r in results:
            if "K" not in r["model"]:
                pts = sorted(r["points"], key=lambda p: p["bpp"])
                lines += ["", f"{r['model']['name']}: " + ", ".join(
                    f"{p['bpp']:.3f} bpp {p['psnr']['mean']:.2f} dB" for p in pts[:: max(1, len(pts) // 8)])]
        gaps = anchor_gaps(results)
        if gaps:
            lines += ["", "Our codec runs against CompressAI's published Kodak runs of the same coding tools, at "
                          "equal bpp over 0.15-0.7 bpp (our PSNR minus theirs, interpolated in log-rate):", "",
                      "| our run | published | mean dB | min dB | max dB | points |", "|---|---|---|---|---|---|"]
            lines += [f"| {g['codec']} | {g['anchor']} | {g['mean']:+.2f} | {g['min']:+.2f} | {g['max']:+.2f} | "
                      f"{g['points']} |" for g in gaps]
        if bd:
            lines += ["", "Bjøntegaard deltas of the vqcodec model curves (PCHIP, scipy; over the rates both "
                          "curves cover; negative BD-rate = fewer bits at equal PSNR):", ""]
            for key, what in (("", "fixed-length indices"), ("entropy_", "entropy-coded files")):
                for ref in ("jpeg", "webp"):
                    if f"{key}bd_rate_vs_{ref}" in bd:
                        lines.append(f"- {what} against {ref.upper()} (our run): BD-rate "
                                     f"{bd[f'{key}bd_rate_vs_{ref}']:+.1f}%, BD-PSNR "
                                     f"{bd[f'{key}bd_psnr_vs_{ref}']:+.2f} dB")
    else:
        params = sorted({p["param"] for r in results for p in r["points"]})
        lines += ["| curve | " + " | ".join(f"{suite.channel} {v:g}" for v in params) + " |",
                  "|---|" + "---|" * len(params)]
        for r in results:
            by = {p["param"]: p for p in r["points"]}
            cells = []
            for v in params:
                p = by.get(v)
                if p is None:
                    cells.append("")
                    continue
                ci = p["psnr"].get("ci95")
                ci = float(ci) if ci is not None else float("nan")
                cells.append(f"{p['psnr']['mean']:.2f}" + (f" ± {ci:.2f}" if 0 < ci < 1e9 else ""))
            lines.append(f"| {curve_label(r)} | " + " | ".join(cells) + " |")
        for a in jscc_anchor_points(suite):  # published points, at the grid values they were reported for
            by = {round(float(x), 6): y for x, y in zip(a["x"], a["y"])}
            cells = [f"{by[round(float(v), 6)]:.2f}" if round(float(v), 6) in by else "" for v in params]
            lines.append(f"| {a['name']} (published, not our run) | " + " | ".join(cells) + " |")
        clean = {r["model"]["name"]: r["points"][0].get("psnr_clean") for r in results if "K" in r["model"]}
        lines += ["", "clean-channel PSNR: " + ", ".join(f"{k} {v:.2f} dB" for k, v in clean.items() if v)]
    lines += ["", "PSNR in dB on 8-bit RGB, mean over images"
              + ("." if suite.kind == "rd" else "; ± is the 95% confidence half-width over trials."),
              "Files: results.json (schema vqcodec.results/1), figure.png, figure.pdf."]
    path = run_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_expected(suite: Suite, results: list[dict], rtol: float = 0.0, atol: float = 0.01) -> list[str]:
    """Compare PSNR means (within ``atol`` dB: float differences between CPUs can move a
    near-tie index) and bit error counts (exact: the channel noise is numpy-deterministic)
    with the stored expected file; returns the mismatches."""
    if not suite.expected:
        return []
    path = EXPECTED / suite.expected
    try:
        exp = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"expected file {path} does not exist (make it with `vqcodec bench {suite.name} "
                "--regenerate-expected`)"]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [f"expected file {path} is unreadable ({exc.__class__.__name__})"]
    got = expected_values(results)
    problems = []
    for key, v in exp.items():
        if key not in got:
            problems.append(f"{key}: missing")
        elif not np.isclose(got[key], v, rtol=rtol, atol=atol if key.endswith("|psnr") else 0):
            problems.append(f"{key}: expected {v}, got {got[key]}")
    return problems


def expected_values(results: list[dict]) -> dict:
    out = {}
    for r in results:
        for p in r["points"]:
            key = f"{r['model']['name']}|{r['receiver']}|{p['param']:g}"
            out[key + "|psnr"] = round(float(p["psnr"]["mean"]), 6)
            if "bit_errors" in p:
                out[key + "|bit_errors"] = int(p["bit_errors"])
    return out


def run(suite: Suite, run_dir: Path, progress=None, device: str = "cpu",
        checkpoints: tuple = (), executor=None) -> tuple[list[dict], list[Path]]:
    """Run a suite into ``run_dir``; ``device`` and ``checkpoints`` (your own models, measured
    beside the suite's) apply to ``speed`` suites (the others run on the CPU); ``executor``
    (serial by default, or a ``vqcodec.cluster.DaskExecutor``) runs a sweep suite's trials."""

    if suite.kind == "speed":
        results = run_speed_suite(suite, run_dir, progress, device, checkpoints)
        figs = plot_speed(results, run_dir / "figure", title=f"{suite.name}: {results['device_name']}")
    elif suite.kind == "rd":
        results = run_rd_suite(suite, run_dir, progress)
        figs = plot_rd(results, run_dir / "figure", anchors=load_anchors(suite.anchors),
                       title=f"{suite.name}: clean-channel rate-distortion")
    else:
        results = run_sweep_suite(suite, run_dir, progress, executor)
        shown = [r for r in results if not suite.figure
                 or any(fnmatch.fnmatch(curve_label(r), pat) for pat in suite.figure)]
        figs = plot_curves(shown or results, run_dir / "figure", title=f"{suite.name}",
                           anchors=jscc_anchor_points(suite) if suite.jscc_anchors else ())
        if suite.picture:
            figs += picture_grid(suite, run_dir / "pictures")
    write_summary(suite, results, run_dir)
    return results, figs
