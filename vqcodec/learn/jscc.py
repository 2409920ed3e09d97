"""Training of the Deep JSCC analog reference (``vqcodec.jscc``).

Random crops of the training images (BSDS500 by default), each through the AWGN channel at an
Es/N0 drawn uniformly from ``snr_range`` dB (one model for every SNR, as in Bourtsoulatze et al.
2019, who trained one model per SNR; ours is not told the SNR), pixel MSE, Adam with warm-up and
cosine decay. Checkpoints every ``checkpoint_every`` steps with the optimiser and RNG state, so
``resume=True`` continues a run bit for bit where it stopped.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from channels.analog import noise_std
from vqcodec.jscc import DeepJSCC, JsccConfig, load_jscc, save_jscc
from vqcodec.learn.codec import CropSampler, load_training_images
from vqcodec.learn.loop import Loop, Task, TrainConfig, read_state
from vqcodec.zoo import check_not_shipped


def train_jscc(cfg: JsccConfig, tc: TrainConfig, images_folder, out, *, snr_range=(0.0, 15.0),
               resume: bool = False, command: str | None = None,
               progress: Callable[[int, dict], None] | None = None, device: str = "cpu",
               minutes: float | None = None, overwrite: bool = False) -> dict:
    """Train a Deep JSCC model and write it to ``out``; returns the final metrics
    (``train_mse``, ``train_psnr`` over the last 200 steps, at the training SNRs). ``device``: where
    the network runs (crops and noise are drawn on the host, so a run is the same draw everywhere);
    ``minutes``: train for this long instead of ``tc.steps`` (``TimeBudget``; not with ``resume``)."""
    check_not_shipped(out, overwrite)  # ``overwrite``: allow ``out`` in the shipped weights folder
    lo, hi = (float(v) for v in snr_range)
    if not (-10.0 <= lo <= hi <= 40.0):
        raise ValueError(f"snr range must satisfy -10 <= low <= high <= 40 dB, got {snr_range}")
    if tc.crop % 4:
        raise ValueError(f"crop must be a multiple of 4, got {tc.crop}")
    loop = Loop(tc, out=out, resume=resume, minutes=minutes, device=device, progress=progress)
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, tc.crop)
    torch.manual_seed(tc.seed)
    model = DeepJSCC(cfg)
    weights_step = None
    if resume:
        read_state(out)
        model, saved = load_jscc(checkpoint=out)
        weights_step = saved.get("training", {}).get("steps_done")
    model.to(device=device, memory_format=torch.channels_last).train()

    def step(tc, rng, gen):
        x = sampler.sample(tc.batch, rng).to(device).contiguous(memory_format=torch.channels_last)
        snr = lo + (hi - lo) * torch.rand(tc.batch, generator=gen)
        z = model.encode(x)  # fp32 symbols, energy 1 per complex use
        noise = torch.randn(z.shape, generator=gen) * noise_std(snr).reshape(-1, 1, 1, 1)  # the channel's level
        mse = F.mse_loss(model.decode(z + noise.to(device)).float(), x)
        return mse, {"mse": mse.item()}

    def summary(m: dict) -> dict:
        return {"train_mse": m["mse"], "train_psnr": m["psnr"]} if m else {}

    def save(run) -> None:
        save_jscc(model, out, {
            "name": Path(out).name,
            "training": {"command": command, "images": str(images_folder), "image_count": len(paths),
                         "snr_range_db": [lo, hi], **run.record()},
            "metrics": summary(run.metrics), "history": run.history[-200:]})

    run = loop.run(Task(model, [list(model.parameters())], step, save), weights_step=weights_step)
    return summary(run.metrics)
