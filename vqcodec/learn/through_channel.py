"""Training through a noisy channel: decoder fine-tuning on what a receiver hands it, and the
channel-optimised codebook (COVQ). Both keep the encoder frozen; both draw their channels from
the receiver-training mix or a BSC range, and report through a ``progress(step, metrics)``
callback (the loops never print)."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import channels
from channels.base import ParameterError
from vqcodec.bits import indices_to_bits
from vqcodec.checkpoint import checkpoint_paths
from vqcodec.context import channel_loglik, context_path, label_signs
from vqcodec.entropy import entropy_model_path
from vqcodec.files import check_output
from vqcodec.learn.codec import CropSampler, copy_side_info, load_training_images
from vqcodec.learn.loop import BaseTrainConfig, Loop, Task, settings_of
from vqcodec.learn.receiver import TRAINING_MIX, training_channel
from vqcodec.model import VQVAE, nearest_codeword, save_model
from vqcodec.prior import prior_path
from vqcodec.receivers import bit_llrs, get_receiver, receiver_context
from vqcodec.zoo import check_not_shipped


@dataclass(frozen=True)
class FinetuneConfig(BaseTrainConfig):
    steps: int = 3000
    lr: float = 2e-4
    warmup: int = 100
    min_lr_ratio: float = 0.05
    clip: float = 1.0
    seed: int = 0
    clean_fraction: float = 0.25  # share of crops decoded without channel errors (keeps the clean PSNR)
    log_every: int = 25
    precision: str = "auto"


def finetune_decoder(codec, channel, receiver: str, images_folder, fc: FinetuneConfig, out, *,
                     name: str | None = None, command: str | None = None,
                     progress: Callable[[int, dict], None] | None = None, overwrite: bool = False) -> dict:
    """Channel-aware decoder fine-tuning: the encoder and the codebook stay frozen; the decoder
    learns from what ``receiver`` actually hands it after ``channel`` (soft MMSE code vectors
    for ``spatial-mmse``, hard codewords otherwise), on random training crops; a share
    ``clean_fraction`` of the crops is decoded from clean indices. ``channel="mix"`` draws a
    channel per crop from the receiver-training mix (``vqcodec.learn.receiver.training_channel``). Writes
    a full checkpoint to ``out`` carrying the base model's assignment and receiver side information.
    ``overwrite``: allow ``out`` in the shipped weights folder (``zoo.check_not_shipped``)."""
    check_not_shipped(out, overwrite)
    if fc.crop % codec.model.f:
        raise ParameterError(f"{{0}} ({fc.crop}) must be a multiple of the model's stride {codec.model.f}", "crop")
    if codec.stem is not None and checkpoint_paths(out)[1].resolve() == checkpoint_paths(codec.stem)[1].resolve():
        raise ValueError(f"{out}: is the checkpoint being fine-tuned; write to another stem")
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, fc.crop)
    device = codec.model.codebook.device
    loop = Loop(settings_of(fc), device=device, progress=progress)
    model = VQVAE(codec.model.cfg)
    model.load_state_dict(codec.model.state_dict())
    model.to(device=device, memory_format=torch.channels_last).eval()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    fn = get_receiver(receiver)
    mix = isinstance(channel, str)
    if mix and channel != "mix":
        raise ValueError(f"unknown channel {channel!r}")
    ctx = receiver_context(codec, None if mix else channel)
    kind = "cuda" if str(device).startswith("cuda") else "cpu"

    def step(tc, rng, gen):
        nonlocal ctx
        x = sampler.sample(tc.batch, rng).to(device)
        with torch.no_grad(), torch.autocast(kind, enabled=False):  # the transmitter and receivers: fp32
            idx_t = model.encode(x)
            z = model.embed(idx_t).permute(0, 2, 3, 1).cpu().numpy()  # (B, h, w, d), summed over the stages
            idx = idx_t.cpu().numpy()
            n_clean = int(round(fc.clean_fraction * tc.batch))
            for b in range(n_clean, tc.batch):
                bits = indices_to_bits(idx[b], codec.K, codec.assignment)
                if mix:
                    ch = training_channel(rng, codec.bits_per_index)
                    ctx = dataclasses.replace(ctx, channel=ch)
                else:
                    ch = channel
                dec = fn(ch(bits, rng), idx[b].shape, ctx)
                if dec.embeddings is not None:
                    z[b] = dec.embeddings
                else:
                    z[b] = model.embed(torch.from_numpy(dec.indices)[None].to(device))[0].permute(1, 2, 0).cpu().numpy()
        x_hat = model.decode_embeddings(torch.from_numpy(z).to(device).permute(0, 3, 1, 2))
        mse = F.mse_loss(x_hat.float(), x)
        return mse, {"mse": mse.item()}

    run = loop.run(Task(model, [list(model.decoder.parameters())], step, train_mode=[model.decoder]))
    history = run.history
    meta = {k: v for k, v in codec.meta.items() if k not in ("format", "config", "kodak", "history")}
    meta.update({"name": name or Path(out).name, "finetune": {
        "base": codec.name,
        "channel": {"kind": "mix", "mix": TRAINING_MIX} if mix
        else {"kind": channel.name, channel.param: channel.param_value},
        "receiver": receiver, "images": str(images_folder), "config": asdict(fc), "command": command,
        **run.record(), "history": history[-100:]}})
    save_model(model, out, meta)
    copy_side_info(codec, out)
    return history[-1] if history else {}


@dataclass(frozen=True)
class CodebookConfig(BaseTrainConfig):
    """Channel-optimised codebook training (``train_codebook``)."""

    steps: int = 4000
    crop: int = 96
    lr: float = 3e-4  # decoder
    warmup: int = 50
    min_lr_ratio: float = 0.0
    codebook_lr: float = 1e-3
    clip: float = 1.0
    seed: int = 0
    clean_fraction: float = 0.25  # share of crops decoded from clean indices
    p_min: float = 0.003  # BSC crossover probability per crop ~ log-uniform [p_min, p_max]
    p_max: float = 0.1
    codebook_loss: float = 0.25  # weight of |sg(z) - e|^2 (VQ-VAE's codebook term): codewords stay near their encoder outputs
    log_every: int = 25
    precision: str = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.p_min < 0.5:
            raise ValueError(f"p_min must be in (0, 0.5), got {self.p_min}")
        if not 0 < self.p_max < 0.5:
            raise ValueError(f"p_max must be in (0, 0.5), got {self.p_max}")
        if self.p_min > self.p_max:
            raise ValueError(f"p_min ({self.p_min}) must not exceed p_max ({self.p_max})")
        if not 0 <= self.clean_fraction <= 1:
            raise ValueError(f"clean_fraction must be in [0, 1], got {self.clean_fraction}")
        for key in ("steps", "batch", "crop", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "codebook_lr"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key} must be a positive number, got {getattr(self, key)}")
        if self.warmup < 0 or not (self.codebook_loss >= 0 and math.isfinite(self.codebook_loss)):
            raise ValueError(f"need warmup >= 0 and a finite codebook_loss >= 0, got {self.warmup}, "
                             f"{self.codebook_loss}")


def check_codebook_output(base_stem, out, overwrite: bool = False) -> None:
    """Refuse, before training, an output that is the base model itself or exists unasked."""
    if checkpoint_paths(out)[1].resolve() == checkpoint_paths(base_stem)[1].resolve():
        raise ValueError(f"{out}: is the model being trained from; write the new codebook to another stem")
    check_not_shipped(out, overwrite)
    check_output(checkpoint_paths(out)[1], overwrite)


def train_codebook(codec, images_folder, cc: CodebookConfig, out, *, name: str | None = None,
                   command: str | None = None, progress: Callable[[int, dict], None] | None = None,
                   overwrite: bool = False) -> dict:
    """Channel-optimised vector quantisation: train the codebook and the decoder through a noisy
    channel while the encoder and the index assignment stay fixed.

    Each crop's indices (nearest codeword of the moving codebook) go through a BSC with a
    crossover probability drawn log-uniformly from [p_min, p_max] (a share ``clean_fraction``
    stays clean); the decoder gets the channel-only MMSE code vector ``sum_k q_k e_k``, where
    q is the exact bitwise posterior of the received label under a flat index prior. That
    vector is differentiable in the codebook, so the codewords whose labels lie one bit flip
    apart are pulled towards each other as far as the clean reconstruction allows: a bit error
    then costs less, at some clean-channel PSNR. Loss: pixel MSE + ``codebook_loss`` x the
    codebook's squared distance to the encoder outputs it quantises.

    This is the classical COVQ trade (Kumazawa, Kasahara & Namekawa, 1984; Farvardin &
    Vaishampayan, IEEE Trans. IT 37(1), 1991) with the centroid step replaced by gradient
    descent through the decoder. The transmitter changes, so the new checkpoint carries the
    assignment but no index prior or context receiver: run ``vqcodec prepare --keep-assignment``
    and ``vqcodec train-receiver`` on it (any prior or context receiver left at ``out`` from an
    earlier run is removed: it belongs to another transmitter). ``overwrite``: allow ``out`` in the
    shipped weights folder (``zoo.check_not_shipped``)."""
    check_not_shipped(out, overwrite)

    if codec.meta.get("assignment") is None:
        raise ValueError(f"{codec.name} has no index assignment to train the codebook for "
                         "(run `vqcodec prepare` on it first)")
    if cc.crop % codec.model.f:
        raise ValueError(f"the crop ({cc.crop}) must be a multiple of the model's stride {codec.model.f}")
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, cc.crop)
    device = codec.model.codebook.device
    loop = Loop(settings_of(cc), device=device, progress=progress)  # lr: the decoder's
    model = VQVAE(codec.model.cfg)
    model.load_state_dict(codec.model.state_dict())
    model.to(device=device).eval()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    E = torch.nn.Parameter(model.quantizer.embedding.detach().clone())
    K, b = codec.K, codec.bits_per_index
    signs = torch.from_numpy(label_signs(codec.assignment, K)).to(device)
    n_clean = int(round(cc.clean_fraction * cc.batch))
    kind = "cuda" if str(device).startswith("cuda") else "cpu"

    def step(tc, rng, gen):
        x = sampler.sample(tc.batch, rng).to(device)
        with torch.autocast(kind, enabled=False):  # encoder, channel and posterior in fp32
            with torch.no_grad():
                z = model.encoder(x)
            B, d, h, w = z.shape
            zf = z.permute(0, 2, 3, 1).reshape(B, h * w, d)
            with torch.no_grad():  # the transmitter follows the moving codebook, as encode() will
                idx = nearest_codeword(zf.reshape(-1, d), E).view(B, h * w)
            rows = []
            for i in range(B):
                if i < n_clean:
                    rows.append(E[idx[i]])
                    continue
                ch = channels.get_channel("bsc", p=float(np.exp(rng.uniform(np.log(cc.p_min), np.log(cc.p_max)))))
                g = idx[i].cpu().numpy()
                rx = ch(indices_to_bits(g, K, codec.assignment), rng)
                llr = torch.from_numpy(bit_llrs(rx, ch, b).astype(np.float32)).to(device)
                q = torch.softmax(channel_loglik(llr, signs), dim=-1)
                rows.append(q @ E)
            z_in = torch.stack(rows).view(B, h, w, d).permute(0, 3, 1, 2)
            cb_loss = F.mse_loss(E[idx.reshape(-1)], zf.reshape(-1, d))
        rec = F.mse_loss(model.decode_embeddings(z_in).float(), x)
        return rec + cc.codebook_loss * cb_loss, {"mse": rec.item(), "codebook": cb_loss.item()}

    run = loop.run(Task(model, [{"params": list(model.decoder.parameters()), "lr": cc.lr},
                                {"params": [E], "lr": cc.codebook_lr}], step, train_mode=[model.decoder]))
    history = run.history
    model.quantizer.set_codebook(E.detach())
    meta = {k: v for k, v in codec.meta.items()
            if k not in ("format", "config", "kodak", "history", "prior", "context", "entropy_model", "finetune",
                         "metrics")}
    meta["assignment"] = [int(a) for a in codec.assignment]  # the codebook is trained for it
    meta.update({"name": name or Path(out).name, "codebook_training": {
        "base": codec.name, "images": str(images_folder), "image_count": len(paths),
        "channel": {"kind": "bsc", "p": f"logU[{cc.p_min:g}, {cc.p_max:g}]"},
        "config": asdict(cc), "command": command, **run.record(), "history": history[-100:]}})
    save_model(model, out, meta)
    for stale in (prior_path(out), context_path(out), entropy_model_path(out)):
        stale.unlink(missing_ok=True)
    return history[-1] if history else {}


