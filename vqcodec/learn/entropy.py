"""``vqcodec train-entropy``: the entropy coder's context model of a model's indices.

A log-linear model over the 12 causal neighbours of ``entropy.LEARNED_OFFSETS``,

    logits(x) = bias[x] + (sum_k emb_k[n_k]) . out[x],

i.e. one K x K table per neighbour of rank ``rank`` (emb_k @ out^T; a neighbour outside the grid
contributes nothing), trained by cross-entropy on the index maps of the training images (the
model's frozen encoder; every tenth image held out for the validation record). Adam with a cosine
schedule, random sites in batches. The tables, not a network, are what the coder evaluates
(``entropy.ContextModel.from_factors``): table lookups and sums, the same on every machine.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from vqcodec.entropy import LEARNED_OFFSETS, code_length, entropy_model_path, load_entropy_model, save_entropy_model
from vqcodec.images import list_images
from vqcodec.learn.prepare import index_maps
from vqcodec.model import load_model, write_checkpoint_meta


def neighbour_table(grids, K: int, offsets=LEARNED_OFFSETS) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours (n, m) with K where a neighbour is outside the grid, targets (n,)) of every site."""
    pad_i = max(-di for di, _ in offsets)
    pad_j = max(abs(dj) for _, dj in offsets)
    xs, ys = [], []
    for g in grids:
        h, w = g.shape
        p = np.full((h + pad_i, w + 2 * pad_j), K, dtype=np.int64)
        p[pad_i:, pad_j:pad_j + w] = g
        xs.append(np.stack([p[pad_i + di:pad_i + di + h, pad_j + dj:pad_j + dj + w].ravel()
                            for di, dj in offsets], axis=1))
        ys.append(g.ravel())
    return np.concatenate(xs), np.concatenate(ys)


def train_entropy_model(stem, images_folder, *, steps: int = 1500, rank: int = 64, batch: int = 8192,
                        lr: float = 3e-3, seed: int = 0, threads: int | None = None, progress=None) -> dict:
    """Train, store (``<stem>.entropy.safetensors``) and record (``entropy_model`` in the json) the
    context model of a checkpoint's indices; returns the record."""
    if steps < 1 or rank < 1 or batch < 1 or not lr > 0:
        raise ValueError("steps, rank and batch must be >= 1 and lr > 0")
    if threads is not None:
        torch.set_num_threads(threads)
    model, doc = load_model(stem)
    if getattr(model, "stages", 1) != 1:
        raise ValueError(f"{stem}: has {model.stages} stages; entropy coding supports single-stage models only")
    K = model.K
    paths = list_images(images_folder)
    if len(paths) < 2:
        raise ValueError(f"{images_folder}: needs at least 2 images (every tenth is held out)")
    grids = index_maps(model, paths, progress)
    held = [g for i, g in enumerate(grids) if i % 10 == 9] or grids[-1:]
    train = [g for i, g in enumerate(grids) if i % 10 != 9] or grids[:-1]
    X, Y = (torch.from_numpy(a) for a in neighbour_table(train, K))
    gen = torch.Generator().manual_seed(seed)
    m = len(LEARNED_OFFSETS)
    emb = torch.nn.Parameter(torch.randn(m * (K + 1), rank, generator=gen) * 0.01)
    out = torch.nn.Parameter(torch.randn(K, rank, generator=gen) * 0.01)
    freq = torch.bincount(Y, minlength=K).double() + 0.5
    bias = torch.nn.Parameter(torch.log(freq / freq.sum()).float())
    shift = torch.arange(m) * (K + 1)
    opt = torch.optim.Adam([emb, out, bias], lr=lr)
    t0 = time.time()
    losses = []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        sel = torch.randint(0, Y.numel(), (batch,), generator=gen)
        x = X[sel]
        e = torch.nn.functional.embedding(x + shift, emb) * (x != K).unsqueeze(-1)
        loss = torch.nn.functional.cross_entropy(e.sum(1) @ out.T + bias, Y[sel])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) / np.log(2))
        if progress:
            progress("training", step + 1, steps)
    e_np = emb.detach().numpy().reshape(m, K + 1, rank)[:, :K]
    path = entropy_model_path(stem)
    save_entropy_model(path, bias.detach().numpy(), e_np, out.detach().numpy(), LEARNED_OFFSETS)
    cm = load_entropy_model(path, K)
    bits = lambda gs: sum(code_length(g, cm) for g in gs) / sum(g.size for g in gs)  # noqa: E731
    record = {"offsets": [list(o) for o in LEARNED_OFFSETS], "rank": rank, "steps": steps, "batch": batch, "lr": lr,
              "seed": seed, "images": str(images_folder), "train_images": len(train), "held_out_images": len(held),
              "train_loss_bits_last100": float(np.mean(losses[-100:])),
              "held_out_bits_per_index": float(bits(held)), "fixed_bits_per_index": float(np.log2(K)),
              "seconds": round(time.time() - t0, 1), "fingerprint": cm.fingerprint}
    doc["entropy_model"] = record
    write_checkpoint_meta(stem, doc)
    return record
