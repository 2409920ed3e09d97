"""Training and preparation as API calls: what ``vqcodec train``, ``train-jscc``, ``train-decoder``,
``finetune``, ``train-codebook``, ``train-receiver``, ``prepare`` and ``train-entropy`` do.

Every function checks its arguments and its output before any work (one-line ``ValueError``s
naming the parameter), then runs the trainer of :mod:`vqcodec.learn`. A training setting left
``None`` was not given: a new run takes the trainer's default (defined once, in its config
dataclass), and a resumed run (``resume=True``) keeps the run's saved setting; a given one that
contradicts it is refused. ``progress(step, metrics)`` (``progress(stage, done, total[, metrics])``
for the staged ones) reports progress; ``command`` is recorded with the weights.

>>> from vqcodec import training
>>> sorted(training.TRAIN_SETTINGS)
['batch', 'checkpoint_every', 'crop', 'lr', 'precision', 'seed', 'steps']
"""
from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import torch

from channels.base import ParameterError
from channels.options import channel_spec, param_value
from vqcodec.checkpoint import checkpoint_paths
from vqcodec.context import ContextConfig
from vqcodec.files import check_output, template_text
from vqcodec.images import default_kodak_folder
from vqcodec.jscc import JsccConfig
from vqcodec.learn.codec import decoder_config, decoder_train_config, training_folder, warm_start_config
from vqcodec.learn.codec import train as run_train
from vqcodec.learn.codec import train_decoder as run_decoder
from vqcodec.learn.entropy import train_entropy_model
from vqcodec.learn.jscc import train_jscc as run_jscc
from vqcodec.learn.loop import TrainConfig, resume_config
from vqcodec.learn.prepare import prepare_checkpoint
from vqcodec.learn.receiver import ContextTrainConfig, PixelTrainConfig, train_checkpoint
from vqcodec.learn.through_channel import CodebookConfig, FinetuneConfig, check_codebook_output, finetune_decoder
from vqcodec.learn.through_channel import train_codebook as run_codebook
from vqcodec.model import ModelConfig
from vqcodec.receivers import REGISTRY as RECEIVERS
from vqcodec.receivers import check_receivers
from vqcodec.zoo import (
    ModelSource,
    check_not_shipped,
    checkpoint_stem,
    load_codec,
    open_model,
    require_own,
    resolve_device,
)

__all__ = ["TRAIN_SETTINGS", "train", "train_jscc", "train_decoder", "finetune", "train_codebook",
           "train_receiver", "prepare", "train_entropy"]

#: the loop's settings a training command takes (``learn.loop.TrainConfig``)
TRAIN_SETTINGS = ("steps", "batch", "crop", "lr", "seed", "checkpoint_every", "precision")

Progress = Callable[..., None] | None


def given(**values) -> dict:
    """The arguments given (None: not given, the callee's default)."""
    return {k: v for k, v in values.items() if v is not None}


def _threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _settings(out, resume: bool, minutes: float | None, make, **values):
    """A run's ``TrainConfig``: ``make(**given)`` for a new run; on resume, the saved settings of
    ``out`` with the given ones checked against them."""
    if not resume:
        return make(**given(**values))
    if minutes is not None:
        raise ParameterError("{0} starts a timed run; a resumed run keeps its recorded step count (give {1} to "
                             "stretch it)", "minutes", "steps")
    return resume_config(out, given(**values))


def _new_output(out, resume: bool, overwrite: bool) -> None:
    """A new run's checkpoint may not replace one unless ``overwrite``; resume continues it."""
    if resume and overwrite:
        raise ParameterError("{0} continues OUT and {1} replaces it: choose one", "resume", "overwrite")
    if not resume:
        check_output(str(checkpoint_paths(out)[1]), overwrite)


def train(out, *, images=None, f: int | None = None, K: int | None = None, d: int | None = None,
          channels: str | None = None, res_blocks: int | None = None, decoder_res_blocks: int | None = None,
          decoder_channels: int | None = None, decoder_head: str | None = None, stages: int | None = None,
          stage_dropout: bool = False, init=None, minutes: float | None = None, resume: bool = False,
          overwrite: bool = False, device: str = "auto", threads: int | None = None, progress: Progress = None,
          command: str | None = None, **settings) -> dict:
    """Train a VQ-VAE (``stages`` > 1: residual VQ) on an image folder into ``out`` (weights +
    config). Architecture: ``f`` (4, 8, 16; default 4), ``K`` (256), ``d`` (32), ``channels``,
    ``res_blocks`` (1), ``decoder_res_blocks``, ``decoder_channels``, ``decoder_head`` (stages);
    or ``init``: warm start from a checkpoint's weights and architecture (then only ``stages``,
    at most its own, may be given). ``settings``: ``TRAIN_SETTINGS``. Returns the final metrics."""
    _threads(threads)
    if init is not None and resume:
        raise ParameterError("{0} starts a new training and {1} continues OUT's: choose one", "init", "resume")
    folder = training_folder(images)
    arch = given(f=f, K=K, d=d, channels=channels, res_blocks=res_blocks, decoder_res_blocks=decoder_res_blocks,
                  decoder_channels=decoder_channels, decoder_head=decoder_head)
    init_model = None
    if init is None:
        cfg = ModelConfig.for_stride(int(arch.pop("f", 4)), stages=stages or 1, stage_dropout=stage_dropout, **arch)
    else:
        if arch:
            raise ParameterError(f"{{0}} takes the architecture of {template_text(init)}; drop "
                                 + ", ".join(f"{{{i + 1}}}" for i in range(len(arch))), "init", *arch)
        init_model = load_codec(None, str(init)).model
        cfg = warm_start_config(init_model.cfg, stages or init_model.cfg.stages, stage_dropout)
    tc = _settings(out, resume, minutes, TrainConfig, **settings)
    _new_output(out, resume, overwrite)
    if init is not None and not resume and \
            Path(checkpoint_paths(out)[1]).resolve() == Path(checkpoint_paths(init)[1]).resolve():
        raise ParameterError(f"{{0}} {template_text(out)} would overwrite the {{1}} checkpoint", "out", "init")
    return run_train(cfg, tc, folder, out, resume=resume, device=resolve_device(device), command=command,
                     progress=progress, init=init_model, init_name=None if init is None else str(init),
                     minutes=minutes, overwrite=overwrite)


def train_jscc(out, *, images=None, cbr="1/12", width: int = 32, snr_db=(0.0, 15.0), minutes: float | None = None,
               resume: bool = False, overwrite: bool = False, device: str = "auto", threads: int | None = None,
               progress: Progress = None, command: str | None = None, **settings) -> dict:
    """Train the Deep JSCC analog reference (Bourtsoulatze et al. 2019) over AWGN with Es/N0
    uniform in ``snr_db`` = (low, high) per crop: ``c = 96 cbr`` symbol channels, ``width``
    inner channels. ``settings``: ``TRAIN_SETTINGS``. Returns the final metrics."""
    _threads(threads)
    folder = training_folder(images)
    try:
        c = Fraction(str(cbr)) * 96
    except (ValueError, ZeroDivisionError):
        raise ParameterError(f"{{0}} must be a number or a fraction like 1/12, got {template_text(repr(cbr))}", "cbr") from None
    if c.denominator != 1:
        raise ParameterError(f"{{0}} {cbr} needs c = 96 cbr = {float(c):g} symbol channels, not a whole number",
                             "cbr")
    lo, hi = (float(v) for v in snr_db)
    cfg = JsccConfig(c=int(c), width=width)
    tc = _settings(out, resume, minutes, TrainConfig, **settings)
    _new_output(out, resume, overwrite)
    return run_jscc(cfg, tc, folder, out, snr_range=(lo, hi), resume=resume, command=command, progress=progress,
               device=resolve_device(device), minutes=minutes, overwrite=overwrite)


def train_decoder(out, *, model: str | None = None, checkpoint=None, images=None, decoder_channels: int | None = None,
                  decoder_res_blocks: int | None = None, decoder_head: str | None = None, grow: bool = False,
                  minutes: float | None = None, resume: bool = False, overwrite: bool = False,
                  device: str = "auto", threads: int | None = None, progress: Progress = None,
                  command: str | None = None, **settings) -> dict:
    """Train a new decoder for a model (``model`` or ``checkpoint``) whose encoder and codebook
    stay frozen; ``grow``: start from the base decoder grown to the new width and depth (it first
    decodes the same image). ``settings``: ``TRAIN_SETTINGS`` (default 20000 steps, batch 16,
    crop 64, lr 1.5e-3). Returns the final metrics."""
    _threads(threads)
    if resume and overwrite:
        raise ParameterError("{0} continues OUT and {1} replaces it: choose one", "resume", "overwrite")
    dev = resolve_device(device)
    codec = load_codec(model, None if checkpoint is None else str(checkpoint), "cpu")
    require_own(codec, "train-decoder")
    folder = training_folder(images)
    if not resume:
        check_output(str(out) + ".json", overwrite)
    cfg = decoder_config(codec.model.cfg, decoder_channels, decoder_res_blocks, decoder_head)
    defaults = TrainConfig()

    def make(**given):
        kw = {k: given.get(k, getattr(defaults, k)) for k in TRAIN_SETTINGS}
        return decoder_train_config(minutes=minutes, **kw)

    tc = _settings(out, resume, minutes if resume else None, make, **settings)
    return run_decoder(codec, cfg, tc, folder, out, device=dev, minutes=minutes, resume=resume, grow=grow, command=command,
               progress=progress, overwrite=overwrite)


def finetune(out, channel: str, *, receiver: str = "spatial-mmse", model: str | None = None, checkpoint=None,
             images=None, p: float | None = None, snr_db: float | None = None, overwrite: bool = False,
             device: str = "auto", threads: int | None = None, progress: Progress = None,
             command: str | None = None, **settings) -> tuple[dict, str]:
    """Fine-tune a model's decoder (codebook frozen) on what ``receiver`` hands it after
    ``channel`` at ``p`` / ``snr_db``, or ``"mix"``: a random channel per crop from the
    receiver-training mix. ``settings``: ``learn.through_channel.FinetuneConfig``'s (steps, lr,
    batch, crop, seed, precision). Returns (final metrics, what it was fine-tuned for)."""
    _threads(threads)
    if receiver not in RECEIVERS:
        raise ValueError(f"unknown receiver {receiver!r} (known: {', '.join(sorted(RECEIVERS))})")
    codec = load_codec(model, None if checkpoint is None else str(checkpoint), device)
    require_own(codec, "finetune")
    check_receivers([receiver], codec)
    if channel == "mix":
        if p is not None or snr_db is not None:
            raise ParameterError("{0} mix draws its own parameters; drop {1} / {2}", "channel", "p", "snr_db")
        ch, what = "mix", "the channel mix"
    else:
        spec = channel_spec(channel, index_bits=codec.bits_per_index)
        ch = spec.make(param_value(spec, p, snr_db))
        what = f"{channel} {spec.param}={ch.param_value:g}"
    folder = training_folder(images)
    check_output(str(out) + ".json", overwrite)
    fc = FinetuneConfig(**given(**settings))
    final = finetune_decoder(codec, ch, receiver, folder, fc, out, command=command, progress=progress,
                             overwrite=overwrite)
    return final, what


def train_codebook(out, *, model: str | None = None, checkpoint=None, images=None, overwrite: bool = False,
                   device: str = "auto", threads: int | None = None, progress: Progress = None,
                   command: str | None = None, **settings) -> tuple[dict, object]:
    """Channel-optimised codebook: train a model's codebook and decoder through a BSC (encoder
    and index assignment fixed). ``settings``: ``learn.through_channel.CodebookConfig``'s.
    Returns (final metrics, the config used)."""
    _threads(threads)
    codec = load_codec(model, None if checkpoint is None else str(checkpoint), device)
    require_own(codec, "train-codebook")
    folder = training_folder(images)
    cc = CodebookConfig(**given(**settings))
    check_codebook_output(checkpoint_stem(model, checkpoint), out, overwrite)
    return run_codebook(codec, folder, cc, out, command=command, progress=progress, overwrite=overwrite), cc


def side_info_source(model, checkpoint, weights, overwrite: bool, out=None, check: bool = True) -> ModelSource:
    """The model whose side information a command writes (prepare, train-receiver,
    train-entropy): a shipped name, a plug-in (name or spec, with ``weights``), a protocol object,
    or a ``checkpoint``; refused in the shipped weights folder unless the model is named and
    ``overwrite`` given (``zoo.check_not_shipped``; ``out``: the stem written instead)."""
    if overwrite and model is None and checkpoint is None and out is None:
        raise ParameterError("{0} rewrites a model's files: name it with {1} or {2}", "overwrite", "model",
                             "checkpoint")
    source = open_model(model, None if checkpoint is None else str(checkpoint), weights=weights, check=check)
    check_not_shipped(source.require_stem() if out is None else out, overwrite)
    return source


def train_receiver(*, model=None, checkpoint=None, weights=None, out=None, overwrite: bool = False, images=None,
                   steps: int = 4000, minutes: float | None = None, batch: int = 16, crop: int = 32,
                   lr: float = 2e-3, width: int = 64, blocks: int = 4, decoder_steps: int = 1000,
                   decoder_crop: int = 128, seed: int = 0, threads: int | None = None, precision: str = "auto",
                   progress: Progress = None, command: str | None = None) -> tuple[dict, Path]:
    """Train the learned context receiver of a model: a first stage on the index posteriors
    (``steps``, ``crop`` in index sites, ``lr``), a second through the frozen decoder
    (``decoder_steps``, 0 skips it; ``decoder_crop`` pixels). Stored beside the model, or with a
    copy of it at ``out``. Returns (the training record, the stem written)."""
    _threads(threads)
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise ParameterError(f"{{0}} must be a positive number, got {minutes}", "minutes")
    if not (lr > 0 and math.isfinite(lr)):
        raise ParameterError(f"{{0}} must be a positive number, got {lr}", "lr")
    source = side_info_source(model, checkpoint, weights, overwrite, out)
    if out is not None:
        check_output(str(checkpoint_paths(out)[1]), overwrite)
    folder = training_folder(images)
    cfg = ContextConfig(channels=width, blocks=blocks)
    tc = ContextTrainConfig(steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                            warmup=min(200, max(1, steps // 10)), precision=precision)
    pc = PixelTrainConfig(steps=decoder_steps, batch=batch, crop=decoder_crop, seed=seed + 1,
                          precision=precision) if decoder_steps else None
    record = train_checkpoint(source, folder, cfg, tc, pc, minutes=minutes, command=command, progress=progress,
                              out=out, overwrite=overwrite)
    return record, Path(out) if out is not None else source.stem


def prepare(*, model=None, checkpoint=None, weights=None, images=None, kodak=None, keep_assignment=None,
            overwrite: bool = False, progress: Progress = None) -> tuple[dict, Path]:
    """Learn a model's index prior and pseudo-Gray index assignment (per stage), tune its
    spatial receiver and record its clean Kodak metrics (``kodak``: a folder, default the shared
    Kodak set when present), stored with the model. ``model``: as :func:`load`'s, with ``weights``
    for a plug-in (its side information goes beside the weights file, keyed by the model's
    fingerprint; a changed model is prepared afresh). Returns (summary, stem)."""
    source = side_info_source(model, checkpoint, weights, overwrite, check=False)
    folder = training_folder(images)
    kodak = kodak if kodak is not None else default_kodak_folder()
    return prepare_checkpoint(source, folder, kodak_folder=kodak, keep_assignment=keep_assignment,
                              progress=progress, overwrite=overwrite), source.stem


def train_entropy(*, model=None, checkpoint=None, weights=None, images=None, steps: int = 1500, rank: int = 64,
                  seed: int = 0, threads: int | None = None, overwrite: bool = False,
                  progress: Progress = None) -> tuple[dict, Path]:
    """Train the entropy coder's context model of a model's indices (``encode_file(entropy=True)``,
    ``evaluate(entropy=True)``), stored as ``<stem>.entropy.safetensors``. Returns (record, stem)."""
    source = side_info_source(model, checkpoint, weights, overwrite)
    folder = training_folder(images)
    return train_entropy_model(source, folder, steps=steps, rank=rank, seed=seed, threads=threads, progress=progress,
                               overwrite=overwrite), source.stem
