"""Experiments: load a model, plan and run Monte Carlo sweeps over a channel (with the classical
baselines at the same channel budget), the best configuration at equal channel uses, and their
results files. Part of :mod:`vqcodec.api`, which re-exports every public name; the suites call
these functions too."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from channels import Channel
from channels.base import ParameterError
from channels.options import ChannelSpec, channel_spec, param_value, parse_grid
from vqcodec.analog import deepjscc_sweep
from vqcodec.baselines import ANALOG_BASELINES, RATES, baseline_sweep, check_options
from vqcodec.cluster import ClusterError, check_address, executor_for
from vqcodec.files import check_output, exclusive, template_text
from vqcodec.images import save_image
from vqcodec.links import CodedLink, budget_configurations, parse_code, stream_cbr
from vqcodec.plot import plot_curves
from vqcodec.precision import on_cpu
from vqcodec.receivers import check_receivers, default_receivers
from vqcodec.results import ResultsError, envelope_points, new_results, read_results, search_tag, write_results
from vqcodec.simulate import EncodedImage, StopRule, encode_images
from vqcodec.simulate import sweep as run_sweep
from vqcodec.zoo import Codec, available, load_codec

ImagesArg = Any  # None | path | list of paths | {name: array}

#: what the library raises for bad input (files, images, checkpoints, options) and for a Dask
#: cluster that cannot start: a front end shows it as one line
UserError = (ValueError, ClusterError)


def load(model=None, *, checkpoint=None, weights=None, device: str = "cpu", precision: str = "auto",
         search=None) -> Codec:
    """A model with its index assignment, prior and learned receiver: a shipped model by name
    (``vqcodec models``; default f4-k256), an installed plug-in by name, a plug-in spec
    ``"package.module:factory"`` (its factory gets ``weights``), any codec-protocol object
    (``vqcodec.wrap(module, ...)``; ``vqcodec.protocol``), or your own vqcodec ``checkpoint``. ``device``: cpu, cuda or auto;
    ``precision``: auto (bf16 on a CPU with bf16 instructions, else fp32), fp32, bf16, or fp16
    (CUDA); ``codec.precision`` is the one in use. ``search``: the encoder-side index search
    (``vqcodec.search.SearchConfig``, a number of nearest candidates per site, or a setting as the
    command line writes it, ``"4,guided=3,spacing=7,sweeps=5"``; None or 1: off)."""
    return load_codec(model, None if checkpoint is None else str(checkpoint), device, precision, search, weights)


def channel(kind: str, value: float, *, index_bits: int | None = None, **options) -> Channel:
    """One channel by name and parameter value, e.g. ``channel("bsc", 0.01)``,
    ``channel("awgn", 4.0)``, ``channel("burst", 0.01, burst_length=20)``; options as in
    ``channels.options.channel_spec``."""
    return channel_spec(kind, index_bits=index_bits, **options).make(value)


def refuse_rate_search(codec: Codec, where: str) -> None:
    """A search that weighs the entropy coder's code length (``SearchConfig.rate``) pays only in
    entropy-coded files; ``where`` (indices sent fixed-length) it would lower the PSNR for nothing."""
    if codec.search is not None and codec.search.rate:
        raise ParameterError(f"{{0}} with rate={codec.search.rate:g} weighs the entropy coder's code length; "
                             f"{where} sends fixed-length indices, where it only lowers the PSNR (leave rate "
                             "out, or use entropy-coded files: {1})", "search", "entropy")


def encode(codec: Codec, images: ImagesArg = None, *, with_ms_ssim: bool = True,
           progress: Callable[[int, int], None] | None = None) -> tuple[list[EncodedImage], dict]:
    """Encode images once (they are reused by every point and receiver): (encoded, images
    description for the results file)."""
    return encode_images(codec, images, with_ms_ssim, progress)


@dataclass(frozen=True, eq=False)
class Experiment:
    """A checked plan: one model, one channel kind over a grid, receivers, a stopping rule, and
    optionally classical baselines at a channel budget. Built by :func:`experiment`."""
    codec: Codec
    spec: ChannelSpec
    grid: list[float]
    channels: list
    receivers: list[str]
    stop: StopRule
    seed: int = 0
    with_ms_ssim: bool = True
    name: str = "sweep"
    baselines: list[str] = field(default_factory=list)
    rates: list[str] = field(default_factory=list)
    budget_bpp: float | None = None
    save_dir: Path | None = None

    @property
    def param(self) -> str:
        return self.spec.param

    @property
    def budget(self) -> float:
        """Channel bits per pixel of the baselines: ``budget_bpp``, else the model's bpp."""
        return self.budget_bpp if self.budget_bpp is not None else self.codec.bpp

    def encode(self, images: ImagesArg = None, progress=None) -> tuple[list[EncodedImage], dict]:
        return encode(self.codec, images, with_ms_ssim=self.with_ms_ssim, progress=progress)

    def run(self, encoded: Sequence[EncodedImage], images_desc: dict, *, previous: Sequence[dict] = (),
            executor=None, on_trial: Callable[[int, int], None] | None = None,
            on_point: Callable[[list[dict]], None] | None = None) -> list[dict]:
        """The Monte Carlo trials: one results object per receiver. ``previous``: results of an
        interrupted run to continue; ``executor``: serial (None) or a ``cluster.DaskExecutor``;
        ``on_trial(point, trials)`` and ``on_point(results so far)`` report progress. With
        ``save_dir``, the originals and every receiver's first-trial reconstructions are written
        there as PNG."""
        by_name = {e.name: e for e in encoded}

        def save(r, name, trial, img):
            if trial == 0:
                stem = Path(name).stem
                save_image(self.save_dir / f"{stem}.png", by_name[name].image)
                save_image(self.save_dir / f"{stem}.{r}.png", img)

        on_image = save if self.save_dir is not None else None
        return run_sweep(self.codec, encoded, self.channels, self.grid, self.receivers,
                         channel_desc=self.spec.describe(), images_desc=images_desc, seed=self.seed,
                         stop=self.stop, name=self.name, with_ms_ssim=self.with_ms_ssim, on_trial=on_trial,
                         on_image=on_image, previous=previous, on_point=on_point, executor=executor)

    def run_baselines(self, encoded: Sequence[EncodedImage], images_desc: dict,
                      progress: Callable[[int, int, str], None] | None = None, executor=None) -> list[dict]:
        """Every baseline codec x code rate at the same channel budget and noise seeds: fixed-rate
        curves, the oracle best rate per point and the separation bound (empty without baselines)."""
        digital = [b for b in self.baselines if b not in ANALOG_BASELINES]
        images = [(e.name, e.image) for e in encoded]
        out = []
        if digital:
            out += baseline_sweep(images, codecs=digital, rates=self.rates, channel_kind=self.spec.kind,
                                  grid=self.grid,
                                  channel_extra={k: v for k, v in self.spec.extra.items() if k != "code"},
                                  budget_bpp=self.budget, seed=self.seed, trials=self.stop.max_trials,
                                  with_ms_ssim=self.with_ms_ssim, images_source=images_desc["source"],
                                  progress=progress, executor=executor)
        if "deepjscc" in self.baselines:
            out.append(deepjscc_sweep(images, self.spec.kind, self.grid, trials=self.stop.max_trials, seed=self.seed,
                                      with_ms_ssim=self.with_ms_ssim, images_source=images_desc["source"],
                                      precision=on_cpu(self.codec.precision), progress=progress))
        return out


def experiment(codec: Codec, channel: str, values, *, receivers=None, trials: int = 10, min_trials: int = 3,
               ci: float = 0.05, seed: int = 0, with_ms_ssim: bool = True, name: str = "sweep",
               baselines=None, rates=RATES, budget_bpp: float | None = None, cbr: float | None = None,
               code: str | None = None, save_dir=None, images_folder=None, workers: int | None = None,
               scheduler: str | None = None, **channel_options) -> Experiment:
    """Check everything a run needs before any work and return the plan.

    ``values``: one parameter value, a list, or grid text (``'1e-3,1e-2'``, ``START:STOP:N``).
    ``receivers``: names (None: the model's default). ``channel_options``: ``packet_bits``,
    ``burst_length``, ``block_bits``, ``hard``, ``modulation``, ``demapping``. ``code``: ``none``,
    ``ldpc-A/B`` (5G LDPC) or ``cc-R`` (convolutional) protecting the index payload, or ``A+B+...``
    (``vqcodec.links.parse_code``; ``rates`` are the baselines' code names in the same syntax).
    ``workers``/``scheduler`` are only checked here
    against ``save_dir`` and the device (make the executor with ``executor_for``); ``save_dir``
    may not lie inside ``images_folder``. The baselines'
    budget is ``budget_bpp`` channel bits per pixel, or ``cbr`` complex channel uses per
    (3 x pixels) on a modulated channel (``cbr * 3 * bits per use`` bits per pixel), else the
    model's bpp."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    refuse_rate_search(codec, "a channel run")
    spec = channel_spec(channel, index_bits=codec.bits_per_index, **channel_options)
    if isinstance(values, str):
        grid = parse_grid(values, spec.param)
    elif isinstance(values, (int, float)):
        grid = [float(values)]
    else:
        grid = [float(v) for v in values]
        if not grid:
            raise ValueError("empty parameter list")
    recv = check_receivers(receivers, codec)
    stop = StopRule(min_trials=min(min_trials, trials), max_trials=trials, ci_target=ci)
    chans = [spec.make(v) for v in grid]  # validates every value before any work
    code = parse_code(code)  # its one name (an old spelling warns here, once)
    if code != "none":
        spec = ChannelSpec(spec.kind, {**spec.extra, "code": code})
        chans = [CodedLink(c, code) for c in chans]
    if cbr is not None:
        if budget_bpp is not None:
            raise ParameterError("give the baselines' budget as {0} or as {1}, not both", "budget_bpp", "cbr")
        if not hasattr(chans[0], "bits_per_use"):
            raise ParameterError(f"{{0}} counts complex channel uses; the {channel} channel has none (use {{1}})",
                                 "cbr", "budget_bpp")
        if not (0 < cbr <= 1):
            raise ParameterError(f"{{0}} must be in (0, 1], got {cbr}", "cbr")
        budget_bpp = cbr * 3 * chans[0].bits_per_use
        need = stream_cbr(codec.bpp, code, chans[0].bits_per_use)
        if need > cbr * (1 + 1e-9):
            fits = budget_configurations(Fraction(codec.bpp).limit_denominator(1 << 16),
                                         Fraction(cbr).limit_denominator(1 << 16))
            hint = ", ".join(f"{m} {c}" for m, c in fits) or "none at this model's rate"
            raise ParameterError(f"the index stream ({codec.bpp:g} bpp, {spec.extra.get('modulation', 'bpsk')}, "
                                 f"code {code}) needs cbr {need:.4g}, more than {{0}} {cbr:.4g}; "
                                 f"configurations that fill it: {hint}", "cbr")
    names, rate_list = check_options(baselines, rates, budget_bpp)
    if "deepjscc" in names:
        if spec.kind not in ("awgn", "fading"):
            raise ValueError(f"the deepjscc baseline sends analog symbols: use awgn or fading, not {channel}")
        if code != "none" or spec.extra.get("hard"):
            raise ParameterError("the deepjscc baseline is analog: it takes no {0} and no {1}", "code", "hard")
    if save_dir is not None:
        save_dir = Path(save_dir)
        if images_folder is not None and Path(images_folder).exists():
            src = Path(images_folder).resolve()
            src = src if src.is_dir() else src.parent
            if save_dir.resolve() == src or src in save_dir.resolve().parents:
                raise ParameterError(f"{{0}} {template_text(save_dir)} is inside the input images' folder "
                                     f"{template_text(src)}: the reconstructions could replace the inputs; choose "
                                     "another folder", "save_dir")
        if workers or scheduler:
            raise ParameterError("{0} works with the serial run only (drop {1}/{2})", "save_dir", "workers",
                                 "scheduler")
        save_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(save_dir, os.W_OK):
            raise ValueError(f"{save_dir}: not writable")
    if workers and scheduler:
        raise ParameterError("{0} and {1} exclude each other", "workers", "scheduler")
    if scheduler:
        check_address(scheduler)
    if (workers or scheduler) and codec.device.type != "cpu":
        raise ParameterError("{0}/{1} run on the workers' CPUs; use {2} cpu", "workers", "scheduler", "device")
    return Experiment(codec=codec, spec=spec, grid=grid, channels=chans, receivers=recv, stop=stop, seed=seed,
                      with_ms_ssim=with_ms_ssim, name=name, baselines=names, rates=rate_list,
                      budget_bpp=budget_bpp, save_dir=save_dir)


def save_results(path, results) -> Path:
    """Write results objects to ``path`` atomically; a failed write (full disk, permissions) is a
    one-line ``ValueError`` and leaves the previous file intact."""
    try:
        return write_results(path, results)
    except OSError as exc:
        raise ValueError(f"{path}: cannot write the results ({exc.strerror or exc.__class__.__name__}); "
                         "the previous file, if any, is unchanged") from None


def sweep(channel: str, values=None, *, p=None, snr_db=None, model=None, codec: Codec | None = None,
          checkpoint=None, weights=None, device: str = "cpu", precision: str = "auto", search=None, images: ImagesArg = None,
          receivers=None, trials: int = 10, min_trials: int = 3, ci: float = 0.05, seed: int = 0,
          with_ms_ssim: bool = True, baselines=None, rates=RATES, budget_bpp: float | None = None,
          cbr: float | None = None, workers: int | None = None, scheduler: str | None = None, name: str = "sweep",
          save_dir=None, json_out=None, overwrite: bool = False, resume: bool = False, keep_partial: bool = True,
          on_plan: Callable[[Experiment], None] | None = None, on_encode: Callable[[int, int], None] | None = None,
          on_trial: Callable[[int, int], None] | None = None,
          on_baseline: Callable[[int, int, str], None] | None = None,
          on_results: Callable[[list[dict]], None] | None = None, **channel_options) -> list[dict]:
    """Send ``images`` through ``channel`` at every value of ``values`` (a list, or grid text:
    ``'1e-3,1e-2'``, ``START:STOP:N``; or the one of ``p`` / ``snr_db`` the channel takes) and
    return the results objects: one per receiver, then the baselines' curves.

    ``codec`` (from :func:`load`), else the model :func:`load` gives for ``model``,
    ``checkpoint``, ``weights``, ``device``, ``precision``, ``search``. ``workers``: a local Dask cluster of
    that many processes; ``scheduler``: a running one. ``json_out``: the results file, written
    after every trial when ``keep_partial`` (finished points, and the trials of unfinished ones:
    ``resume=True`` continues from them) and at the end; refused when it exists unless
    ``overwrite`` or ``resume``. ``on_plan(experiment)`` sees the checked plan before any work;
    ``on_encode(done, total)``, ``on_trial(point, trials)`` and ``on_baseline(done, total,
    label)`` report progress; ``on_results(curves)`` sees the receivers' curves before the
    baselines run."""


    with exclusive(json_out) if json_out else nullcontext():
        previous = []
        if resume and json_out and Path(json_out).exists():
            try:
                previous = read_results(json_out)
            except ResultsError as exc:
                raise ValueError(f"cannot resume: {exc}") from None
        check_output(json_out, overwrite or resume)
        if codec is None:
            codec = load(model, checkpoint=checkpoint, weights=weights, device=device, precision=precision,
                         search=search)
        if values is None:
            spec = channel_spec(channel, index_bits=codec.bits_per_index,
                                **{k: v for k, v in channel_options.items() if k != "code"})
            values = param_value(spec, p, snr_db)
        elif p is not None or snr_db is not None:
            raise ValueError("give the grid as values or as p / snr_db, not both")
        exp = experiment(codec, channel, values, receivers=receivers, trials=trials, min_trials=min_trials, ci=ci,
                         seed=seed, with_ms_ssim=with_ms_ssim, name=name, baselines=baselines, rates=rates,
                         budget_bpp=budget_bpp, cbr=cbr, save_dir=save_dir,
                         images_folder=images if isinstance(images, (str, os.PathLike)) else None,
                         workers=workers, scheduler=scheduler, **channel_options)
        if on_plan:
            on_plan(exp)
        encoded, desc = exp.encode(images, progress=on_encode)
        executor = executor_for(workers, scheduler)
        try:
            results = exp.run(encoded, desc, previous=previous, executor=executor, on_trial=on_trial,
                              on_point=(lambda res: save_results(json_out, res)) if json_out and keep_partial
                              else None)
            if on_results:
                on_results(results)
            results += exp.run_baselines(encoded, desc, progress=on_baseline, executor=executor)
        finally:
            if hasattr(executor, "close"):
                executor.close()
        if json_out:
            save_results(json_out, results[0] if len(results) == 1 else results)
    return results


def best_sweep(channel: str, values, *, models: Sequence | str = ("f4-k256",), cbr="1/12", images: ImagesArg = None,
               trials: int = 10, min_trials: int = 3, ci: float = 0.05, seed: int = 0, with_ms_ssim: bool = True,
               min_rate: float = 0.1, modulations=None, workers: int | None = None, executor=None, name: str = "best",
               precision: str = "auto", search=None, on_configuration: Callable[[int, int, str], None] | None = None,
               on_encode: Callable[[int, int], None] | None = None,
               json_out=None, overwrite: bool = False, **channel_options) -> list[dict]:
    """The best digital configuration at equal channel uses.

    Every (model, modulation, LDPC rate) whose channel uses fill the bandwidth ratio ``cbr``
    exactly (``links.budget_configurations``) is swept over ``values`` of an awgn or fading
    channel with the model's best soft receiver behind the code (learned-mmse, else
    spatial-mmse), all on the same images and noise seeds. Returns each configuration's results
    object (its ``label`` names it; the fixed designs, with their cliffs), then the envelope
    "vqcodec best": per point the configuration with the highest mean PSNR (an oracle that
    knows the SNR, as the baselines' best digital curve). ``on_configuration(i, n, label)``
    reports progress before each configuration, ``on_encode(done, total)`` after each image a model
    encodes (once per model; long with ``search``). ``precision``, ``search``: the models' arithmetic
    and encoder-side index search (see :func:`load`; for models given by name).
    ``models``: names (shipped models, installed plug-ins) or loaded codecs (:func:`load`), or
    ``"all"``: every shipped model (``vqcodec models``).
    ``json_out``: the results file to write (refused when it exists, unless ``overwrite``)."""


    check_output(json_out, overwrite)

    if isinstance(models, str):
        models = available() if models.strip() == "all" else [m.strip() for m in models.split(",") if m.strip()]

    if channel not in ("awgn", "fading"):
        raise ValueError(f"a bandwidth ratio counts complex channel uses: use awgn or fading, not {channel}")
    try:
        ratio = Fraction(str(cbr))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cbr must be a number or a fraction like 1/12, got {cbr!r}") from None
    mods = list(modulations) if modulations else None
    plans = []
    codecs = [m if isinstance(m, Codec) else load(m, precision=precision, search=search) for m in models]
    models = [c.name for c in codecs]  # a loaded codec (a plug-in, say) is named by its codec's name
    for model, codec in zip(models, codecs):
        bpp = Fraction(codec.bpp).limit_denominator(1 << 16)  # all stages of a residual model
        configs = budget_configurations(bpp, ratio, **({"modulations": mods} if mods else {}), min_rate=min_rate)
        soft = [r for r in default_receivers(codec) if r != "naive"] or ["naive"]
        for mod, code in configs:
            exp = experiment(codec, channel, values, receivers=soft, trials=trials, min_trials=min_trials, ci=ci,
                             seed=seed, with_ms_ssim=with_ms_ssim, name=name, code=code, workers=workers,
                             modulation=mod, **channel_options)
            plans.append((model, codec.search, mod, code, soft[0], exp))
    if not plans:
        raise ValueError(f"no (modulation, code rate >= {min_rate}) fills cbr {ratio} for {', '.join(models)}")
    curves, labels, encoded = [], [], {}
    own = executor is None
    executor = executor_for(workers, None) if own else executor
    try:
        for i, (model, search_cfg, mod, code, recv, exp) in enumerate(plans):
            label = f"{model}{search_tag(search_cfg)} {mod} {code} {recv}"
            if on_configuration:
                on_configuration(i, len(plans), label)
            if (model, search_cfg) not in encoded:  # two codecs of one model may search differently
                encoded[model, search_cfg] = exp.encode(images, progress=on_encode)
            res = exp.run(*encoded[model, search_cfg], executor=executor)[0]
            res["label"] = label
            res["configuration"] = {"model": model, "modulation": mod, "code": code, "receiver": recv,
                                    **({"search": search_cfg.to_dict()} if search_cfg else {})}
            res["style"] = {"ls": ":", "marker": "."}
            curves.append(res)
            labels.append(label)
    finally:
        if own and hasattr(executor, "close"):
            executor.close()
    first = curves[0]
    searches = {c.name: c.search.to_dict() for c in codecs if c.search is not None}
    best = new_results(
        name=name, description=f"vqcodec best: per point the (model, modulation, code) with the highest mean "
                                f"PSNR among {len(curves)} that fill cbr {ratio} (oracle)",
        seed=seed, model={"name": "vqcodec best", "models": list(models), "precision": first["model"]["precision"],
                          **({"search": searches} if searches else {})},
        images=first["images"],
        channel={k: v for k, v in first["channel"].items() if k not in ("modulation", "code")},
        receiver="best soft", points=envelope_points(curves, labels),
        extra={"label": f"vqcodec best{search_tag(searches)} (oracle over {len(curves)} configurations)", "cbr": str(ratio),
               "style": {"ls": "-", "marker": "s"}})
    if json_out:
        save_results(json_out, curves + [best])
    return curves + [best]


def simulate(channel: str, value: float | None = None, **kwargs) -> list[dict]:
    """One channel point (``sweep`` with a single value, or ``p=`` / ``snr_db=``); one results
    object per receiver. A results file is written at the end only."""
    kwargs.setdefault("name", "simulate")
    kwargs.setdefault("keep_partial", False)
    return sweep(channel, None if value is None else [value], **kwargs)


def plot(results: dict | Sequence[dict], output, *, metric: str = "psnr", title: str | None = None) -> list[Path]:
    """Draw results objects (PSNR or another metric against the channel parameter) to
    ``output`` (.png, .pdf; no suffix: both). Returns the files written."""
    return plot_curves([results] if isinstance(results, dict) else list(results), output, metric=metric,
                       title=title)
