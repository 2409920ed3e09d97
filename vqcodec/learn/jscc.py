"""Training of the Deep JSCC analog reference (``vqcodec.jscc``).

Random crops of the training images (BSDS500 by default), each through the AWGN channel at an
Es/N0 drawn uniformly from ``snr_range`` dB (one model for every SNR, as in Bourtsoulatze et al.
2019, who trained one model per SNR; ours is not told the SNR), pixel MSE, Adam with warm-up and
cosine decay. Checkpoints every ``checkpoint_every`` steps with the optimiser and RNG state, so
``resume=True`` continues a run bit for bit where it stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vqcodec.jscc import DeepJSCC, JsccConfig, load_jscc, save_jscc
from vqcodec.learn.codec import (CropSampler, TimeBudget, TrainConfig, load_train_state, load_training_images,
                                 lr_at, save_train_state)
from vqcodec.model import CheckpointError


def train_jscc(cfg: JsccConfig, tc: TrainConfig, images_folder, out, *, snr_range=(0.0, 15.0),
               resume: bool = False, command: str | None = None,
               progress: Callable[[int, dict], None] | None = None, device: str = "cpu",
               minutes: float | None = None) -> dict:
    """Train a Deep JSCC model and write it to ``out``; returns the final metrics
    (``train_mse``, ``train_psnr`` over the last 200 steps, at the training SNRs). ``device``: where
    the network runs (crops and noise are drawn on the host, so a run is the same draw everywhere);
    ``minutes``: train for this long instead of ``tc.steps`` (``TimeBudget``; not with ``resume``)."""
    if minutes is not None and resume:
        raise ValueError("a resumed run keeps its recorded step count; give --steps, not --minutes")
    budget = TimeBudget(minutes, tc)
    lo, hi = (float(v) for v in snr_range)
    if not (-10.0 <= lo <= hi <= 40.0):
        raise ValueError(f"snr range must satisfy -10 <= low <= high <= 40 dB, got {snr_range}")
    if tc.crop % 4:
        raise ValueError(f"crop must be a multiple of 4, got {tc.crop}")
    images, paths = load_training_images(images_folder)
    sampler = CropSampler(images, tc.crop)
    rng = np.random.default_rng(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    torch.manual_seed(tc.seed)
    model = DeepJSCC(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    start, history = 0, []
    if resume:
        model, saved = load_jscc(checkpoint=out)
        model.to(device)  # before the optimiser state is loaded: it follows its parameters' device
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
        start, history = load_train_state(out, opt, rng, gen)
        if saved.get("training", {}).get("steps_done") != start:
            raise CheckpointError(f"{out}: the weights and the training state are from different steps")
        cfg = model.cfg
    model.to(device).train()
    window: list[float] = []
    t0 = time.time()

    def summary() -> dict:
        if not window:
            return {}
        mse = float(np.mean(window))
        return {"train_mse": mse, "train_psnr": 10 * math.log10(1.0 / max(mse, 1e-12))}

    def meta(step: int) -> dict:
        return {"name": Path(out).name,
                "training": {"command": command, "images": str(images_folder), "image_count": len(paths),
                             "steps_done": step, "train_config": asdict(tc), "snr_range_db": [lo, hi],
                             "device": device,
                             **({"minutes": minutes, "stopped_early": budget.stopped_early} if minutes else {}),
                             "torch": torch.__version__},
                "metrics": summary(), "history": history[-200:]}

    step = start
    while step < tc.steps:
        tc = budget.schedule(step, tc)
        if budget.over():
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x = sampler.sample(tc.batch, rng).to(device)
        snr = lo + (hi - lo) * torch.rand(tc.batch, generator=gen)
        z = model.encode(x)
        noise = torch.randn(z.shape, generator=gen) * torch.sqrt(10.0 ** (-snr / 10.0) / 2.0).reshape(-1, 1, 1, 1)
        mse = F.mse_loss(model.decode(z + noise.to(device)), x)
        opt.zero_grad(set_to_none=True)
        mse.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        opt.step()
        window = (window + [mse.item()])[-200:]
        done = step + 1
        if done % tc.log_every == 0 or done == tc.steps:
            m = {**summary(), "lr": lr_at(step, tc), "elapsed": time.time() - t0,
                 **({"steps": tc.steps} if minutes is not None else {})}
            history.append({"step": done, **{k: round(v, 6) for k, v in m.items()}})
            if progress:
                progress(done, m)
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            model.eval()
            save_jscc(model, out, meta(done))
            save_train_state(out, done, opt, rng, gen, tc, history)
            model.train()
        step = done
    model.eval()
    if budget.stopped_early:
        save_jscc(model, out, meta(step))
        save_train_state(out, step, opt, rng, gen, tc, history)
    return summary()
