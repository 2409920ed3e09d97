"""Codec training: the VQ-VAE from scratch, and a new decoder for a frozen transmitter.

Training loop for the VQ-VAE, with resumable checkpoints.

Random crops with horizontal/vertical flips from an image folder, MSE loss
plus the commitment term (summed over the stages of a residual quantiser), Adam
with linear warm-up and a cosine learning-rate schedule, gradient clipping. A
residual model with ``stage_dropout`` decodes each batch from a random number of
stages, drawn from the trainer's torch generator (saved for ``--resume``). The
loop never prints: it reports through a ``progress(step, metrics)`` callback.

Files written for ``out = DIR/NAME``:

* ``NAME.safetensors`` + ``NAME.json``: the model (see ``model.save_model``),
  written at the end and at every checkpoint interval;
* ``NAME.train.safetensors`` + ``NAME.train.json``: optimiser and RNG state
  for ``--resume`` (not needed to use the model).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vqcodec.context import context_path, save_context
from vqcodec.images import default_training_folder, list_images, load_image
from vqcodec.model import (CheckpointError, ModelConfig, VQVAE, checkpoint_paths, load_model, replace_atomically,
                           save_model)
from vqcodec.prior import prior_path, save_prior


def training_folder(images=None) -> Path:
    """The training images: ``images``, else ../shared/datasets/bsds500 when present."""
    folder = images or default_training_folder()
    if folder is None:
        raise ValueError("--images is required (../shared/datasets/bsds500 not found)")
    return Path(folder)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000
    batch: int = 16
    crop: int = 64
    lr: float = 1.5e-3
    warmup: int = 500
    min_lr_ratio: float = 0.01
    clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 25

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "crop", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to lr * min_lr_ratio."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


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


def _train_state_paths(out) -> tuple[Path, Path]:
    w, c = checkpoint_paths(out)
    return w.with_suffix(".train.safetensors"), c.with_suffix(".train.json")


def save_train_state(out, step: int, opt: torch.optim.Optimizer, rng: np.random.Generator,
                      gen: torch.Generator, tc: TrainConfig, history: list) -> None:
    from safetensors.torch import save_file

    wpath, jpath = _train_state_paths(out)
    tensors, scalars = {}, {}
    for pi, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pi}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pi}.{k}"] = v
    tensors["torch_generator"] = gen.get_state()
    replace_atomically(wpath, lambda tmp: save_file(tensors, str(tmp)))
    doc = {"step": step, "train_config": asdict(tc), "numpy_rng": rng.bit_generator.state,
           "scalars": scalars, "history": history}
    replace_atomically(jpath, lambda tmp: tmp.write_text(json.dumps(doc)))


def load_train_state(out, opt: torch.optim.Optimizer, rng: np.random.Generator, gen: torch.Generator):
    from safetensors.torch import load_file

    wpath, jpath = _train_state_paths(out)
    if not (wpath.exists() and jpath.exists()):
        raise FileNotFoundError(f"{jpath}: no training state to resume from")
    doc = json.loads(jpath.read_text())
    tensors = load_file(str(wpath))
    sd = opt.state_dict()
    state = {}
    for pi in range(len(sd["param_groups"][0]["params"])):
        st = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(pi)}
        st.update({k.split(".", 1)[1]: v for k, v in doc["scalars"].items() if k.split(".", 1)[0] == str(pi)})
        if st:
            state[pi] = st
    sd["state"] = state
    opt.load_state_dict(sd)
    rng.bit_generator.state = doc["numpy_rng"]
    gen.set_state(tensors["torch_generator"])
    return doc["step"], doc.get("history", [])


def warm_start_config(init_cfg: ModelConfig, stages: int, stage_dropout: bool) -> ModelConfig:
    """The config of a model warm-started from one of ``init_cfg``: its architecture with its first
    ``stages`` residual stages (at most as many as it has)."""
    if not 1 <= stages <= init_cfg.stages:
        raise ValueError(f"--stages {stages}: the initial checkpoint has {init_cfg.stages} stage(s); "
                         f"a warm start keeps 1..{init_cfg.stages} of them")
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
          init_name: str | None = None, minutes: float | None = None) -> dict:
    """Train a VQ-VAE and write it to ``out``; returns the final metrics.

    ``init`` (with ``model_cfg`` from ``warm_start_config``): start from its weights, codebooks
    included (no k-means initialisation), instead of a random initialisation. ``minutes``: train
    for this long instead of ``tc.steps`` (``TimeBudget``; not with ``resume``)."""
    if minutes is not None and resume:
        raise ValueError("a resumed run keeps its recorded step count; give --steps, not --minutes")
    budget = TimeBudget(minutes, tc)
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, tc.crop)
    rng = np.random.default_rng(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    torch.manual_seed(tc.seed)  # parameter initialisation only
    model = VQVAE(model_cfg)
    if init is not None and not resume:
        model.load_state_dict(warm_start_weights(init, model_cfg))
    start, history = 0, []
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    if resume:
        model, saved = load_model(out)
        model.to(device).train()  # before the optimiser state is loaded: it follows its parameters' device
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
        start, history = load_train_state(out, opt, rng, gen)
        init_name = (saved.get("training") or {}).get("init")
        # weights and state are two writes: a failure between them leaves a pair from different steps
        weights_step = (saved.get("training") or {}).get("steps_done")
        if weights_step != start:
            raise CheckpointError(f"{out}: the weights are at step {weights_step} but the training state is at "
                                  f"step {start} (an interrupted checkpoint write); cannot resume from this pair")
    model_cfg = model.cfg  # a resumed run keeps the checkpoint's own config
    model.to(device).train()
    model.quantizer.generator = gen
    window: list[tuple] = []  # (mse, loss, perplexity, per-stage perplexities, stages used)
    t0 = time.time()

    def meta(step: int) -> dict:
        return {"name": name or Path(out).name,
                "training": {"command": command, "images": str(images_folder), "image_count": len(paths),
                             **({"init": init_name} if init_name else {}),
                             "steps_done": step, "train_config": asdict(tc), "device": device,
                             **({"minutes": minutes, "stopped_early": budget.stopped_early} if minutes else {}),
                             "torch": torch.__version__},
                "metrics": summary(), "history": history[-200:]}

    def summary() -> dict:
        if not window:
            return {}
        mse = float(np.mean([w[0] for w in window]))
        out = {"train_mse": mse, "train_psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
               "train_perplexity": float(np.mean([w[2] for w in window]))}
        if model_cfg.stages > 1:  # per stage, and the mean number of stages decoded
            out["train_perplexity_stages"] = [float(v) for v in np.mean([w[3] for w in window], axis=0)]
            out["train_stages_used"] = float(np.mean([w[4] for w in window]))
        return out

    step = start
    while step < tc.steps:
        tc = budget.schedule(step, tc)
        if budget.over():
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x = sampler.sample(tc.batch, rng).to(device)
        outd = model(x)
        mse = F.mse_loss(outd["x_hat"], x)
        loss = mse + model_cfg.commitment * outd["commit_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        opt.step()
        window.append((mse.item(), loss.item(), outd["perplexity"].item(), outd["perplexities"].tolist(),
                       outd["stages_used"]))
        window = window[-200:]
        done = step + 1
        if done % tc.log_every == 0 or done == tc.steps:
            m = summary()
            m.update(lr=lr_at(step, tc), loss=float(np.mean([w[1] for w in window[-tc.log_every:]])),
                     elapsed=time.time() - t0)
            if minutes is not None:
                m["steps"] = tc.steps
            history.append({"step": done, **{k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 6)
                                             for k, v in m.items()}})
            if progress:
                progress(done, m)
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            model.eval()
            save_model(model, out, meta(done))
            save_train_state(out, done, opt, rng, gen, tc, history)
            model.train()
        step = done
    model.eval()
    save_model(model, out, meta(step))
    if budget.stopped_early:
        save_train_state(out, step, opt, rng, gen, tc, history)
    return summary()


def copy_side_info(codec, out) -> None:
    """Store the base codec's receiver side information (index prior, context receiver) beside a
    new checkpoint whose transmitter is the base's."""

    if codec.prior is not None:
        save_prior(codec.prior, prior_path(out))
    if getattr(codec, "context", None) is not None:
        save_context(codec.context, context_path(out))


class TensorCropSampler:
    """Random crops with flips drawn on the training device: the images sit in one padded
    uint8 tensor there, so a GPU is not held up by per-crop work on the host."""

    def __init__(self, images: list[np.ndarray], crop: int, device: str = "cpu", seed: int = 0):
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
        self.gen = torch.Generator(device=device).manual_seed(seed)
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


CALIBRATION_STEPS = (300, 480)


class TimeBudget:
    """A training run bounded by wall time instead of a step count: steps ``CALIBRATION_STEPS``
    (inside a warm-up of at least 480 steps, which does not depend on the step count) are timed,
    and the step count that fills the budget is fixed then, so the cosine schedule ends with the
    budget; the checkpoint records that count, and ``--steps`` reproduces the schedule. Should the
    machine slow down later, ``over()`` stops the run at 1.1 x the budget. ``minutes`` None: no
    budget (every method is a no-op)."""

    def __init__(self, minutes: float | None, tc: TrainConfig):
        if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
            raise ValueError(f"minutes must be a positive number, got {minutes}")
        if minutes is not None and tc.warmup < CALIBRATION_STEPS[1]:
            raise ValueError(f"a time budget needs a warm-up of at least {CALIBRATION_STEPS[1]} steps")
        self.minutes, self.t0, self.t_calib, self.stopped_early = minutes, None, None, False

    def schedule(self, step: int, tc: TrainConfig) -> TrainConfig:
        """``tc`` with the budget's step count once calibrated (call before every step; the clock
        starts at the first call, after the data are loaded)."""
        if self.t0 is None:
            self.t0 = time.time()
        c0, c1 = CALIBRATION_STEPS
        if self.minutes is not None and step == c0:
            self.t_calib = time.time()
        if self.minutes is not None and step == c1 and self.t_calib is not None:
            per_step = (time.time() - self.t_calib) / (c1 - c0)
            left = self.minutes * 60 - (time.time() - self.t0)
            tc = dataclasses.replace(tc, steps=max(c1 + 1, c1 + int(left / per_step)))
        return tc

    def over(self) -> bool:
        """True (and ``stopped_early``) once the run is past 1.1 x its budget."""
        if self.minutes is not None and self.t0 is not None and time.time() - self.t0 > 1.1 * 60 * self.minutes:
            self.stopped_early = True
        return self.stopped_early


def decoder_config(base: ModelConfig, channels: int | None = None, res_blocks: int | None = None,
                   head: str | None = None) -> ModelConfig:
    """A new decoder's config: the base model's, with the given width, depth or head changed."""
    return dataclasses.replace(
        base, decoder_channels=channels if channels is not None else base.decoder_channels,
        decoder_res_blocks=res_blocks if res_blocks is not None else base.decoder_res_blocks,
        decoder_head=head or base.decoder_head)


def decoder_train_config(steps: int, batch: int, crop: int, lr: float, seed: int, checkpoint_every: int,
                         minutes: float | None = None) -> TrainConfig:
    """``train_decoder``'s schedule: 500 warm-up steps for a long run (or a timed one), a tenth of
    the steps for a short one."""
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"--minutes must be a positive number, got {minutes}")
    return TrainConfig(steps=steps, batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                       warmup=500 if (steps >= 1000 or minutes is not None) else max(1, steps // 10))


def train_decoder(codec, decoder_cfg: ModelConfig, tc: TrainConfig, images_folder, out, *,
                  device: str = "cpu", minutes: float | None = None, name: str | None = None,
                  command: str | None = None, progress: Callable[[int, dict], None] | None = None) -> dict:
    """Train a new decoder (any ``decoder_*`` architecture) for a model whose encoder and
    codebook stay frozen: the transmitted indices, index assignment, index prior and receiver
    tuning of ``codec`` remain valid. MSE on random crops; bf16 autocast on CUDA (the encoder
    and the quantiser run in float32, so the indices are those of inference).

    ``minutes``: instead of ``tc.steps``, time steps 300..480 (inside the learning-rate
    warm-up, which does not depend on the step count) and fix the step count that fills the
    budget; the checkpoint records it, so ``--steps`` reproduces the same schedule. Should the
    machine slow down later, training stops at 1.1 x the budget and says so in the checkpoint
    (``stopped_early``). Writes a full checkpoint to ``out`` carrying the base model's
    assignment, tuning and index prior."""
    from dataclasses import replace

    base = codec.model.cfg
    if (decoder_cfg.f, decoder_cfg.K, decoder_cfg.d, decoder_cfg.channels, decoder_cfg.res_blocks) != \
            (base.f, base.K, base.d, base.channels, base.res_blocks):
        raise ValueError("the new decoder's config must keep the base model's f, K, d, channels and res_blocks")
    budget = TimeBudget(minutes, tc)
    images, paths = load_training_images(images_folder)
    sampler = TensorCropSampler(images, tc.crop, device, tc.seed)
    torch.manual_seed(tc.seed)  # decoder initialisation
    model = VQVAE(decoder_cfg)
    frozen = {k: v for k, v in codec.model.state_dict().items() if not k.startswith("decoder.")}
    missing = model.load_state_dict(frozen, strict=False).missing_keys
    assert all(k.startswith("decoder.") for k in missing)
    model.to(device=device, memory_format=torch.channels_last).eval()
    for p in list(model.encoder.parameters()) + list(model.quantizer.parameters()):
        p.requires_grad_(False)
    params = list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=tc.lr)
    use_amp = str(device).startswith("cuda")
    window: list[float] = []
    history: list[dict] = []
    t0 = time.time()

    def save(step: int) -> None:
        meta = {k: v for k, v in codec.meta.items()
                if k not in ("format", "config", "kodak", "history", "training", "metrics", "finetune")}
        meta.update({"name": name or Path(out).name, "training": {
            "command": command, "decoder_only": True, "base": codec.name, "images": str(images_folder),
            "image_count": len(paths), "steps_done": step, "train_config": asdict(tc), "device": device,
            "minutes": minutes, "stopped_early": budget.stopped_early, "torch": torch.__version__,
            "seconds": round(time.time() - t0, 1)}, "history": history[-200:]})
        save_model(model, out, meta)

    step = 0
    while step < tc.steps:
        tc = budget.schedule(step, tc)
        if budget.over():
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x = sampler.sample(tc.batch)
        with torch.no_grad():
            z = model.embed(model.encode(x))
        model.decoder.train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            x_hat = model.decoder(z.contiguous(memory_format=torch.channels_last))
        loss = F.mse_loss(x_hat.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.clip)
        opt.step()
        model.decoder.eval()
        step += 1
        if step % tc.log_every == 0 or step == tc.steps:
            window = (window + [loss.item()])[-20:]
            mse = float(np.mean(window))
            m = {"loss": mse, "train_psnr": 10 * math.log10(1 / max(mse, 1e-12)), "lr": lr_at(step - 1, tc),
                 "elapsed": time.time() - t0}
            history.append({"step": step, **{k: round(v, 6) for k, v in m.items()}})
            if progress:
                progress(step, {**m, "steps": tc.steps})
        if step % tc.checkpoint_every == 0 or step == tc.steps:
            save(step)
    if budget.stopped_early:
        save(step)
    copy_side_info(codec, out)
    return history[-1] if history else {}
