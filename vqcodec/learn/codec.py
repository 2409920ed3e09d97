"""Codec training: the VQ-VAE from scratch, and a new decoder for a frozen transmitter, both on
the one training loop (``vqcodec.learn.loop``: schedule, bf16 autocast, budget, checkpoints and
resume, logging).

Random crops with horizontal/vertical flips from an image folder, MSE loss
plus the commitment term (summed over the stages of a residual quantiser). A
residual model with ``stage_dropout`` decodes each batch from a random number of
stages, drawn from the loop's torch generator (saved for ``--resume``).

Files written for ``out = DIR/NAME``:

* ``NAME.safetensors`` + ``NAME.json``: the model (see ``model.save_model``),
  written at the end and at every checkpoint interval;
* ``NAME.train.safetensors`` + ``NAME.train.json``: optimiser and RNG state
  for ``--resume`` (not needed to use the model).
"""
from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from channels.base import ParameterError
from vqcodec.checkpoint import CheckpointError
from vqcodec.context import context_path, save_context
from vqcodec.entropy import entropy_model_path
from vqcodec.images import default_training_folder, list_images, load_image
from vqcodec.learn.loop import Loop, Task, TrainConfig, read_state
from vqcodec.model import VQVAE, ModelConfig, load_model, save_model
from vqcodec.prior import prior_path, save_prior
from vqcodec.zoo import check_not_shipped


def training_folder(images=None) -> Path:
    """The training images: ``images``, else ../shared/datasets/bsds500 when present."""
    folder = images or default_training_folder()
    if folder is None:
        raise ParameterError("{0} is required (../shared/datasets/bsds500 not found)", "images")
    return Path(folder)


class CropSampler:
    """Random crops (with flips) from images held in memory as uint8 arrays."""

    def __init__(self, images: list[np.ndarray], crop: int):
        small = [i for i, im in enumerate(images) if min(im.shape[:2]) < crop]
        if small:
            raise ValueError(f"{len(small)} training images are smaller than the crop size {crop}")
        self.images = images
        self.crop = crop

    def sample(self, batch: int, rng: np.random.Generator) -> torch.Tensor:
        c = self.crop
        out = np.empty((batch, c, c, 3), dtype=np.uint8)
        which = rng.integers(len(self.images), size=batch)
        for b, i in enumerate(which):
            im = self.images[i]
            y = rng.integers(im.shape[0] - c + 1)
            x = rng.integers(im.shape[1] - c + 1)
            patch = im[y:y + c, x:x + c]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            out[b] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def load_training_images(folder) -> tuple[list[np.ndarray], list[Path]]:
    paths = list_images(folder)
    return [load_image(p) for p in paths], paths


def warm_start_config(init_cfg: ModelConfig, stages: int, stage_dropout: bool) -> ModelConfig:
    """The config of a model warm-started from one of ``init_cfg``: its architecture with its first
    ``stages`` residual stages (at most as many as it has)."""
    if not 1 <= stages <= init_cfg.stages:
        raise ParameterError(f"{{0}} {stages}: the initial checkpoint has {init_cfg.stages} stage(s); "
                             f"a warm start keeps 1..{init_cfg.stages} of them", "stages")
    return dataclasses.replace(init_cfg, stages=stages, stage_dropout=stage_dropout and stages > 1)


def warm_start_weights(init: VQVAE, cfg: ModelConfig) -> dict:
    """``init``'s weights for a model of ``cfg`` (``warm_start_config``): everything but the
    residual stages beyond ``cfg.stages``, renamed when one stage is left (``EMAQuantizer``)."""
    out = {}
    for key, value in init.state_dict().items():
        if key.startswith("quantizer.stages."):
            s, rest = key[len("quantizer.stages."):].split(".", 1)
            if int(s) >= cfg.stages:
                continue
            key = f"quantizer.{rest}" if cfg.stages == 1 else key
        out[key] = value
    return out


def train(model_cfg: ModelConfig, tc: TrainConfig, images_folder, out, *, resume: bool = False,
          device: str = "cpu", name: str | None = None, command: str | None = None,
          progress: Callable[[int, dict], None] | None = None, init: VQVAE | None = None,
          init_name: str | None = None, minutes: float | None = None, overwrite: bool = False) -> dict:
    """Train a VQ-VAE and write it to ``out``; returns the final metrics.

    ``init`` (with ``model_cfg`` from ``warm_start_config``): start from its weights, codebooks
    included (no k-means initialisation), instead of a random initialisation. ``resume``: continue
    ``out``'s run from its checkpoint, in its own config (``tc`` from ``loop.resume_config``).
    ``minutes``: train for this long instead of ``tc.steps`` (``TimeBudget``; not with ``resume``).
    ``overwrite``: allow ``out`` in the shipped weights folder (``zoo.check_not_shipped``)."""
    check_not_shipped(out, overwrite)
    loop = Loop(tc, out=out, resume=resume, minutes=minutes, device=device, progress=progress)
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, tc.crop)
    torch.manual_seed(tc.seed)  # parameter initialisation only
    model = VQVAE(model_cfg)
    if init is not None and not resume:
        model.load_state_dict(warm_start_weights(init, model_cfg))
    weights_step = None
    if resume:
        read_state(out)  # a missing or corrupt state says so before the weights are read
        model, saved = load_model(out)
        init_name = (saved.get("training") or {}).get("init")
        weights_step = (saved.get("training") or {}).get("steps_done")
    model_cfg = model.cfg  # a resumed run keeps the checkpoint's own config
    model.to(device=device, memory_format=torch.channels_last).train()
    model.quantizer.generator = loop.gen

    def step(tc, rng, gen):
        x = sampler.sample(tc.batch, rng).to(device).contiguous(memory_format=torch.channels_last)
        outd = model(x)
        mse = F.mse_loss(outd["x_hat"].float(), x)
        m = {"mse": mse.item(), "perplexity": outd["perplexity"].item()}
        if model_cfg.stages > 1:  # per stage, and the number of stages decoded
            m.update(perplexity_stages=outd["perplexities"].tolist(), stages_used=outd["stages_used"])
        return mse + model_cfg.commitment * outd["commit_loss"], m

    def summary(m: dict) -> dict:
        if not m:
            return {}
        out_ = {"train_mse": m["mse"], "train_psnr": m["psnr"], "train_perplexity": m["perplexity"]}
        if model_cfg.stages > 1:
            out_.update(train_perplexity_stages=m["perplexity_stages"], train_stages_used=m["stages_used"])
        return out_

    def save(run) -> None:
        save_model(model, out, {
            "name": name or Path(out).name,
            "training": {"command": command, "images": str(images_folder), "image_count": len(paths),
                         **({"init": init_name} if init_name else {}), **run.record()},
            "metrics": summary(run.metrics), "history": run.history[-200:]})

    run = loop.run(Task(model, [list(model.parameters())], step, save), weights_step=weights_step)
    return summary(run.metrics)


def copy_side_info(codec, out) -> None:
    """Store the base codec's receiver and entropy-coder side information (index prior, context
    receiver, the entropy coder's context model) beside a new checkpoint whose transmitter is the
    base's: its json names them, so they must be there for it to load."""
    if codec.prior is not None:
        save_prior(codec.prior, prior_path(out))
    if getattr(codec, "context", None) is not None:
        save_context(codec.context, context_path(out))
    if codec.entropy_model is not None and codec.stem is not None and entropy_model_path(codec.stem).exists():
        if entropy_model_path(codec.stem).resolve() != entropy_model_path(out).resolve():
            shutil.copyfile(entropy_model_path(codec.stem), entropy_model_path(out))


class TensorCropSampler:
    """Random crops with flips drawn on the training device: the images sit in one padded
    uint8 tensor there, so a GPU is not held up by per-crop work on the host."""

    def __init__(self, images: list[np.ndarray], crop: int, device: str = "cpu", seed: int = 0,
                 generator: torch.Generator | None = None):
        small = [i for i, im in enumerate(images) if min(im.shape[:2]) < crop]
        if small:
            raise ValueError(f"{len(small)} training images are smaller than the crop size {crop}")
        H = max(im.shape[0] for im in images)
        W = max(im.shape[1] for im in images)
        data = torch.zeros((len(images), H, W, 3), dtype=torch.uint8)
        for i, im in enumerate(images):
            data[i, : im.shape[0], : im.shape[1]] = torch.tensor(im)
        self.data = data.to(device)
        self.sizes = torch.tensor([im.shape[:2] for im in images], dtype=torch.long, device=device)
        self.crop, self.device = crop, device
        self.gen = generator if generator is not None else torch.Generator(device=device).manual_seed(seed)
        self.ar = torch.arange(crop, device=device)

    def sample(self, batch: int) -> torch.Tensor:
        c, g, dev = self.crop, self.gen, self.device
        which = torch.randint(len(self.data), (batch,), generator=g, device=dev)
        hw = self.sizes[which]
        u = torch.rand((batch, 4), generator=g, device=dev)
        y = (u[:, 0] * (hw[:, 0] - c + 1)).long()
        x = (u[:, 1] * (hw[:, 1] - c + 1)).long()
        rows = torch.where((u[:, 2] < 0.5)[:, None], y[:, None] + c - 1 - self.ar, y[:, None] + self.ar)
        cols = torch.where((u[:, 3] < 0.5)[:, None], x[:, None] + c - 1 - self.ar, x[:, None] + self.ar)
        patch = self.data[which[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, c, c, 3)
        return patch.permute(0, 3, 1, 2).float().div_(255.0)


def decoder_config(base: ModelConfig, channels: int | None = None, res_blocks: int | None = None,
                   head: str | None = None) -> ModelConfig:
    """A new decoder's config: the base model's, with the given width, depth or head changed."""
    return dataclasses.replace(
        base, decoder_channels=channels if channels is not None else base.decoder_channels,
        decoder_res_blocks=res_blocks if res_blocks is not None else base.decoder_res_blocks,
        decoder_head=head or base.decoder_head)


def decoder_train_config(steps: int, batch: int, crop: int, lr: float, seed: int, checkpoint_every: int,
                         minutes: float | None = None, precision: str = "auto") -> TrainConfig:
    """``train_decoder``'s schedule: 500 warm-up steps for a long run (or a timed one), a tenth of
    the steps for a short one."""
    if minutes is not None and not (minutes > 0 and np.isfinite(minutes)):
        raise ParameterError(f"{{0}} must be a positive number, got {minutes}", "minutes")
    return TrainConfig(steps=steps, batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                       precision=precision, warmup=500 if (steps >= 1000 or minutes is not None) else max(1, steps // 10))


@torch.no_grad()
def grow_decoder(model: VQVAE, base: VQVAE) -> None:
    """Start ``model``'s decoder as ``base``'s, grown wider and deeper so that it computes the same
    image (Net2Net, Chen, Goodfellow & Shlens, ICLR 2016, in its simplest form): ``base``'s weights
    fill the leading channels; the weights from new channels into old ones, and the second conv of
    every new residual block (ReZero-like), start at zero; the rest keeps its random initialisation,
    so the new channels carry signal and their outgoing weights get gradients from the first step.
    Both decoders must have the sub-pixel head, and ``model`` at least ``base``'s width and depth."""
    c0, c1 = base.cfg.decoder_channels or base.cfg.channels[-1], model.cfg.decoder_channels or model.cfg.channels[-1]
    n0, n1 = base.cfg.decoder_res_blocks, model.cfg.decoder_res_blocks
    if base.cfg.decoder_head != "subpixel" or model.cfg.decoder_head != "subpixel":
        raise ValueError("growing a decoder needs the sub-pixel head in both the base and the new decoder")
    if c1 < c0 or n1 < n0:
        raise ValueError(f"a grown decoder needs at least the base's width and depth ({c0} channels x {n0} blocks), "
                         f"got {c1} x {n1}")
    old, new = base.decoder.net, model.decoder.net

    def put(dst: torch.Tensor, src: torch.Tensor) -> None:
        dst[tuple(slice(0, n) for n in src.shape)] = src

    put(new[0].weight, old[0].weight)
    put(new[0].bias, old[0].bias)
    for i in range(n1):
        blk = new[1 + i]
        if i < n0:
            for conv in ("conv1", "conv2"):
                put(getattr(blk, conv).weight, getattr(old[1 + i], conv).weight)
                put(getattr(blk, conv).bias, getattr(old[1 + i], conv).bias)
                getattr(blk, conv).weight[:c0, c0:] = 0  # new channels do not reach old ones
        else:
            blk.conv2.weight.zero_()
            blk.conv2.bias.zero_()
    head_new, head_old = new[n1 + 2], old[n0 + 2]
    put(head_new.weight, head_old.weight)
    head_new.weight[:, c0:] = 0
    head_new.bias.copy_(head_old.bias)


def train_decoder(codec, decoder_cfg: ModelConfig, tc: TrainConfig, images_folder, out, *,
                  device: str = "cpu", minutes: float | None = None, name: str | None = None, resume: bool = False,
                  grow: bool = False, command: str | None = None,
                  progress: Callable[[int, dict], None] | None = None, overwrite: bool = False) -> dict:
    """Train a new decoder (any ``decoder_*`` architecture) for a model whose encoder and
    codebook stay frozen: the transmitted indices, index assignment, index prior and receiver
    tuning of ``codec`` remain valid. MSE on random crops, the decoder in the loop's precision
    (the encoder and the quantiser run in fp32, so the indices are those of inference).

    ``minutes``: a time budget instead of ``tc.steps`` (``loop.TimeBudget``: the step count that
    fills it is fixed after timing steps 300..480 and recorded, so ``steps`` reproduces the run).
    ``grow``: start from the base decoder, grown to the new width and depth (``grow_decoder``), instead
    of a random initialisation. ``resume``: continue ``out``'s run (its weights must hold ``codec``'s
    codebook). Writes a full
    checkpoint to ``out`` carrying the base model's assignment, tuning and index prior.
    ``overwrite``: allow ``out`` in the shipped weights folder (``zoo.check_not_shipped``)."""
    check_not_shipped(out, overwrite)
    base = codec.model.cfg
    if (decoder_cfg.f, decoder_cfg.K, decoder_cfg.d, decoder_cfg.channels, decoder_cfg.res_blocks,
            decoder_cfg.stages) != (base.f, base.K, base.d, base.channels, base.res_blocks, base.stages):
        raise ValueError("the new decoder's config must keep the base model's f, K, d, channels, res_blocks "
                         "and stages")
    loop = Loop(tc, out=out, resume=resume, minutes=minutes, device=device, progress=progress)
    images, paths = load_training_images(images_folder)
    # on the CPU the crops come from the loop's generator (saved for resume); a GPU draws its own
    cpu = not str(device).startswith("cuda")
    sampler = TensorCropSampler(images, tc.crop, device, tc.seed, generator=loop.gen if cpu else None)
    torch.manual_seed(tc.seed)  # decoder initialisation
    model = VQVAE(decoder_cfg)
    frozen = {k: v for k, v in codec.model.state_dict().items() if not k.startswith("decoder.")}
    missing = model.load_state_dict(frozen, strict=False).missing_keys
    assert all(k.startswith("decoder.") for k in missing)
    if grow:
        grow_decoder(model, codec.model)  # copies across devices; the codec's model stays where it is
    weights_step = None
    if resume:
        read_state(out)
        model, saved = load_model(out)
        if not torch.equal(model.codebooks, codec.model.codebooks.cpu()):
            raise CheckpointError(f"{out}: its transmitter is not {codec.name}'s; resume it with its own base model")
        weights_step = (saved.get("training") or {}).get("steps_done")
    model.to(device=device, memory_format=torch.channels_last).eval()
    for p in list(model.encoder.parameters()) + list(model.quantizer.parameters()):
        p.requires_grad_(False)
    kind = "cuda" if not cpu else "cpu"

    def step(tc, rng, gen):
        x = sampler.sample(tc.batch)
        with torch.no_grad(), torch.autocast(kind, enabled=False):  # the transmitter as in inference: fp32
            z = model.embed(model.encode(x))
        mse = F.mse_loss(model.decode_embeddings(z).float(), x)
        return mse, {"mse": mse.item()}

    def save(run) -> None:
        meta = {k: v for k, v in codec.meta.items()
                if k not in ("format", "config", "kodak", "history", "training", "metrics", "finetune")}
        meta.update({"name": name or Path(out).name, "training": {
            "command": command, "decoder_only": True, "base": codec.name, "grown": grow, "images": str(images_folder),
            "image_count": len(paths), **run.record()}, "history": run.history[-200:]})
        save_model(model, out, meta)

    copy_side_info(codec, out)  # first: every checkpoint of a long run loads, with the base's side information
    run = loop.run(Task(model, [list(model.decoder.parameters())], step, save, train_mode=[model.decoder]),
                   weights_step=weights_step)
    return {"step": run.step, **run.metrics}
