"""Training of the learned context receiver (``vqcodec train-receiver``).

Stage 1 (``train_context``) is supervised and needs no decoder: index maps of the training
images (frozen encoder), a random channel from ``TRAINING_MIX`` per crop, cross-entropy of the
posterior against the transmitted indices. Stage 2 (``train_through_decoder``) fine-tunes the
network through the frozen decoder on pixel MSE. ``train_checkpoint`` runs both for a checkpoint
and stores the network beside it. The network itself and its inference live in
``vqcodec.context``.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import channels
from channels.base import ParameterError
from vqcodec.bits import bits_per_label, check_assignment, identity_assignment, indices_to_bits, stage_assignment
from vqcodec.checkpoint import checkpoint_paths, write_checkpoint_meta
from vqcodec.context import ContextConfig, ContextNet, config_dict, context_path, save_context
from vqcodec.entropy import entropy_model_path
from vqcodec.files import check_output, template_text
from vqcodec.images import list_images, load_image, to_tensor
from vqcodec.learn.codec import CropSampler
from vqcodec.learn.loop import CALIBRATION_STEPS, BaseTrainConfig, Loop, Task, settings_of
from vqcodec.memory import large_buffers_mmapped
from vqcodec.precision import fp32_region
from vqcodec.prior import prior_path
from vqcodec.protocol import has_codebooks, missing_capability
from vqcodec.receivers import bit_llrs
from vqcodec.zoo import as_source, check_not_shipped, clear_cache


@dataclass(frozen=True)
class ContextTrainConfig(BaseTrainConfig):
    steps: int = 4000
    crop: int = 32  # sites
    lr: float = 2e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05
    seed: int = 0
    log_every: int = 100
    precision: str = "auto"


def training_channel(rng: np.random.Generator, b: int):
    """One random channel of the training mix (``TRAINING_MIX``): BSC, AWGN, packet and bit
    erasures, over the ranges the benchmark suites cover (and a little beyond)."""

    u = rng.random()
    if u < 0.4:
        return channels.get_channel("bsc", p=float(np.exp(rng.uniform(np.log(2e-3), np.log(0.2)))))
    if u < 0.65:
        return channels.get_channel("awgn", snr_db=float(rng.uniform(-1.0, 9.0)))
    if u < 0.8:
        return channels.get_channel("packet-erasure", p=float(rng.uniform(0.0, 0.35)), packet_bits=b)
    if u < 0.9:
        return channels.get_channel("erasure", p=float(rng.uniform(0.0, 0.35)))
    return channels.get_channel("bsc", p=float(rng.uniform(0.0, 0.02)))  # near-clean: keep clean grids clean


TRAINING_MIX = "bsc p~logU[0.002,0.2] 40%, awgn Es/N0~U[-1,9] dB 25%, packet-erasure p~U[0,0.35] 15%, " \
               "erasure p~U[0,0.35] 10%, bsc p~U[0,0.02] 10%"


def noisy_llrs(crops: np.ndarray, K: int, assignment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-bit LLRs (B, h, w, b) of index crops (B, h, w), each sent through its own random channel."""

    b = bits_per_label(K)
    out = np.empty(crops.shape + (b,), dtype=np.float32)
    for i, g in enumerate(crops):
        ch = training_channel(rng, b)
        rx = ch(indices_to_bits(g, K, assignment), rng)
        out[i] = bit_llrs(rx, ch, b).reshape(g.shape + (b,))
    return out


def sample_crops(grids: list[np.ndarray], crop: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((batch, crop, crop), dtype=np.int64)
    for i in range(batch):
        g = grids[rng.integers(len(grids))]
        y = rng.integers(g.shape[0] - crop + 1)
        x = rng.integers(g.shape[1] - crop + 1)
        out[i] = g[y:y + crop, x:x + crop]
    return out


def evaluate(net: ContextNet, grids: list[np.ndarray], K: int, assignment: np.ndarray, channel,
             seed: int = 0) -> dict:
    """Cross-entropy (bits per index) and MAP index error rate of the posterior on whole grids."""

    rng = np.random.default_rng(seed)
    b = bits_per_label(K)
    ce = err = n = 0.0
    with torch.inference_mode():
        for g in grids:
            rx = channel(indices_to_bits(g, K, assignment), rng)
            llr = torch.from_numpy(bit_llrs(rx, channel, b).astype(np.float32)).reshape(1, *g.shape, b)
            logits = net(llr)[0].reshape(-1, K)
            t = torch.from_numpy(g.reshape(-1))
            ce += F.cross_entropy(logits, t, reduction="sum").item()
            err += (logits.argmax(-1) != t).sum().item()
            n += g.size
    return {"bits": ce / n / math.log(2), "index_error_rate": err / n}


def train_context(grids: list[np.ndarray], K: int, assignment: np.ndarray, cfg: ContextConfig,
                  tc: ContextTrainConfig, *, progress: Callable[[int, dict], None] | None = None,
                  minutes: float | None = None) -> tuple[ContextNet, list[dict]]:
    """Train a context receiver on index grids (each at least ``tc.crop`` sites each way)."""
    small = [g.shape for g in grids if min(g.shape) < tc.crop]
    if small:
        raise ValueError(f"{len(small)} index grids are smaller than the crop of {tc.crop} sites")
    loop = Loop(_timed(settings_of(tc), minutes), minutes=minutes, progress=_bits_progress(progress))
    torch.manual_seed(tc.seed)
    net = ContextNet(K, assignment, cfg)

    def step(tc, rng, gen):
        crops = sample_crops(grids, tc.crop, tc.batch, rng)
        logits = net(torch.from_numpy(noisy_llrs(crops, K, assignment, rng)))
        ce = F.cross_entropy(logits.float().reshape(-1, K), torch.from_numpy(crops.reshape(-1)))
        return ce, {"bits": ce.item() / math.log(2)}

    run = loop.run(Task(net, [list(net.parameters())], step))
    return net.eval(), _record(run.history)


def _timed(tc, minutes: float | None):
    """A receiver stage bounded by ``minutes``: the loop's time budget times its steps inside the
    warm-up, so the warm-up grows to ``CALIBRATION_STEPS[1]`` steps."""
    return tc if minutes is None else dataclasses.replace(tc, warmup=max(tc.warmup, CALIBRATION_STEPS[1]))


def _record(history: list[dict]) -> list[dict]:
    """The receiver's history records: step, bits (and psnr), lr, seconds."""
    keep = ("step", "bits", "psnr", "lr")
    return [{**{k: h[k] for k in keep if k in h}, "seconds": round(h.get("elapsed", 0.0), 1)} for h in history]


def _bits_progress(progress):
    return None if progress is None else (lambda step, m: progress(step, {**m, "step": step}))


@dataclass(frozen=True)
class PixelTrainConfig(BaseTrainConfig):
    """Second stage: the receiver learns through the frozen decoder (pixel MSE of the MMSE
    reconstruction), keeping a little cross-entropy so that its MAP stays a good hard decision."""

    steps: int = 1000
    crop: int = 128  # pixels
    lr: float = 3e-4
    warmup: int = 0
    min_lr_ratio: float = 0.0
    ce_weight: float = 1e-4  # per nat of cross-entropy, against the pixel MSE on [0, 1]
    seed: int = 1
    log_every: int = 50
    precision: str = "auto"


def train_through_decoder(net: ContextNet, model, images: list[np.ndarray], assignment: np.ndarray,
                          pc: PixelTrainConfig, *, progress: Callable[[int, dict], None] | None = None,
                          minutes: float | None = None) -> list[dict]:
    """Fine-tune ``net`` in place so that the decoder's image from sum_k q_k e_k is closest to the
    original (MSE): the measure the PSNR curves report, not the index cross-entropy. The encoder,
    codebook and decoder stay frozen; crops are encoded on the fly and sent through the
    training channel mix."""

    loop = Loop(_timed(settings_of(pc), minutes), minutes=minutes, progress=_bits_progress(progress))
    sampler = CropSampler(images, pc.crop)
    for prm in model.parameters():
        prm.requires_grad_(False)
    model.eval()
    codebook = model.codebooks[0].detach()

    def step(tc, rng, gen):
        x = sampler.sample(tc.batch, rng)
        with torch.no_grad(), fp32_region():
            idx = model.encode(x)
        logits = net(torch.from_numpy(noisy_llrs(idx.numpy(), net.K, assignment, rng))).float()
        with fp32_region():
            q = torch.softmax(logits, dim=-1)
            z = (q @ codebook).permute(0, 3, 1, 2)
        mse = F.mse_loss(model.decode_embeddings(z).float(), x)
        ce = F.cross_entropy(logits.reshape(-1, net.K), idx.reshape(-1))
        return mse + pc.ce_weight * ce, {"mse": mse.item(), "bits": ce.item() / math.log(2)}

    run = loop.run(Task(net, [list(net.parameters())], step))
    net.eval()
    return [{**h, "psnr": round(h["psnr"], 3)} if "psnr" in h else h for h in _record(run.history)]


VALIDATION_CHANNELS = (("bsc", {"p": 0.01}), ("bsc", {"p": 0.03}), ("bsc", {"p": 0.1}),
                       ("packet-erasure", {"p": 0.1}), ("awgn", {"snr_db": 4.0}))


def train_checkpoint(source, images_folder, cfg: ContextConfig, tc: ContextTrainConfig,
                     pc: PixelTrainConfig | None = None, *,
                     minutes: float | None = None, holdout_every: int = 10, command: str | None = None,
                     progress: Callable[[str, int, int, dict], None] | None = None, out=None,
                     overwrite: bool = False) -> dict:
    """Train the context receiver of a model (``zoo.open_model``'s source: a vqcodec checkpoint
    or a plug-in model) and store it beside it.

    Every training image and its mirror image are encoded with the checkpoint's (frozen) encoder;
    every ``holdout_every``-th image is held out and only reported on: cross-entropy and MAP
    index error rate of the posterior on ``VALIDATION_CHANNELS`` (fixed seed). Stage 1 trains on
    cross-entropy (``tc``); stage 2, when ``pc`` is given, through the frozen decoder
    (``train_through_decoder``). ``minutes`` bounds each stage. Writes
    ``<stem>.context.safetensors`` and ``context`` in ``<stem>.json``; returns that record.
    ``out``: write a copy instead (the checkpoint with its index prior and entropy model, plus the
    new receiver, at the stem ``out``; written at the end), leaving ``stem`` as it was.
    ``overwrite``: allow the stem written to lie in the shipped weights folder
    (``zoo.check_not_shipped``), or ``out`` to exist."""
    source = as_source(source)
    stem = source.require_stem()
    if out is not None and not source.own:
        raise ParameterError(f"{template_text(source.label)}: a plug-in model's receiver is stored beside its weights; "
                             "leave out {0}", "out")
    if out is not None:
        if checkpoint_paths(out)[1].resolve() == checkpoint_paths(stem)[1].resolve():
            raise ParameterError(f"{template_text(out)}: is the model itself; leave out {{0}} to train in place",
                                 "out")
        check_output(checkpoint_paths(out)[1], overwrite)
    check_not_shipped(stem if out is None else out, overwrite)

    model, doc = source.model, dict(source.doc)
    S = model.stages
    if pc is not None and not has_codebooks(model):
        raise ParameterError(missing_capability(model, "the second stage through the decoder", source.label)
                             + "; train with {0} 0", "decoder_steps")
    if S > 1 and pc is not None:
        raise ParameterError(f"{template_text(stem)}: a residual model ({S} stages): the second stage through the "
                             "decoder is built for one-stage models only; train with {0} 0", "decoder_steps")
    K = model.K
    assignment = (check_assignment(np.asarray(doc["assignment"]), K, S) if doc.get("assignment") is not None
                  else identity_assignment(K))
    paths = list_images(images_folder)
    train, held = [], []
    with torch.inference_mode(), large_buffers_mmapped():
        for i, p in enumerate(paths):
            im = load_image(p)
            g = model.encode(to_tensor(im))[0].numpy()
            if i % holdout_every == 0:
                held.append(g)
            else:
                train.append(g)
                train.append(model.encode(to_tensor(np.ascontiguousarray(im[:, ::-1])))[0].numpy())
            if progress:
                progress("encode", i + 1, len(paths), {})
    if not train or not held:
        raise ValueError(f"{images_folder}: need at least 2 training images (one is held out)")
    nets, histories = [], []
    for s in range(S):  # a residual model: one receiver per stage, on that stage's grids and assignment row
        label = "train" if S == 1 else f"train stage {s + 1}"
        net, history = train_context([g[s] for g in train] if S > 1 else train, K, stage_assignment(assignment, s),
                                     cfg, tc, minutes=minutes,
                                     progress=(lambda i, m, label=label: progress(label, i, tc.steps, m))
                                     if progress else None)
        nets.append(net)
        histories.append(history)
    pixel_history = None
    if pc is not None:  # read again here, not kept from the encoding loop (fewer long-lived blocks there)
        train_images = [load_image(p) for i, p in enumerate(paths) if i % holdout_every]
        pixel_history = train_through_decoder(
            net, model, train_images, assignment, pc, minutes=minutes,
            progress=(lambda s, m: progress("through decoder", s, pc.steps, m)) if progress else None)
    validation = {}
    for kind, kw in VALIDATION_CHANNELS:
        ch = channels.get_channel(kind, **kw)
        key = f"{kind} {next(iter(kw))}={next(iter(kw.values()))}"
        per = [evaluate(n, [g[s] for g in held] if S > 1 else held, K, stage_assignment(assignment, s), ch)
               for s, n in enumerate(nets)]
        validation[key] = {k: round(float(np.mean([v[k] for v in per])), 5) for k in per[0]}  # mean over stages
        if S > 1:
            validation[key]["stages"] = [{k: round(v[k], 5) for k in v} for v in per]
        if progress:
            progress("validate", len(validation), len(VALIDATION_CHANNELS), {})
    history = histories[0]
    record = {"config": config_dict(cfg), "training": {
        "images": str(images_folder), "image_count": len(paths), "held_out": len(held),
        "config": asdict(tc), "minutes": minutes, "steps_run": history[-1]["step"] if history else 0,
        "channel_mix": TRAINING_MIX, "command": command, "history": history[-60:],
        **({"stages": S, "stage_histories": [h[-60:] for h in histories[1:]]} if S > 1 else {}),
        "through_decoder": None if pc is None else {"config": asdict(pc), "history": pixel_history[-40:]}},
        "validation": validation}
    if out is not None:  # the copy: weights and the side files that stay valid, then the new receiver
        for src, dst in ((checkpoint_paths(stem)[0], checkpoint_paths(out)[0]),
                         (prior_path(stem), prior_path(out)), (entropy_model_path(stem), entropy_model_path(out))):
            if src.exists():
                shutil.copyfile(src, dst)
        doc["name"] = Path(out).name
        stem = out
    save_context(tuple(nets), context_path(stem))
    doc["context"] = record
    if out is not None:
        write_checkpoint_meta(stem, doc)
    else:
        source.write(doc)
    clear_cache()
    return record
