"""``vqcodec train-entropy``: the entropy coder's context model of a model's indices.

A log-linear model over the 12 causal neighbours of ``entropy.LEARNED_OFFSETS`` (and, for each
later stage of a residual model, 5 sites of the stage before it, ``entropy.CROSS_OFFSETS``; one
model per stage),

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

from channels.base import ParameterError
from vqcodec.entropy import (
    CROSS_OFFSETS,
    LEARNED_OFFSETS,
    code_length,
    entropy_model_path,
    full_offset,
    load_entropy_model,
    save_entropy_model,
)
from vqcodec.files import check_output, template_text
from vqcodec.images import list_images
from vqcodec.learn.loop import Loop, Task, TrainConfig
from vqcodec.learn.prepare import index_maps
from vqcodec.zoo import as_source, check_not_shipped, clear_cache


def neighbour_table(grids, K: int, offsets=LEARNED_OFFSETS, stage: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours (n, m) with K where a neighbour is outside the grid, targets (n,)) of every site
    of ``stage`` of each map ((h, w), or (S, h, w) for a residual model); offsets as in
    ``entropy.ContextModel``."""
    offs = [full_offset(o) for o in offsets]
    pad_i = max(abs(di) for _, di, _ in offs)
    pad_j = max(abs(dj) for _, _, dj in offs)
    xs, ys = [], []
    for g in grids:
        g = g.reshape(-1, *g.shape[-2:])
        S, h, w = g.shape
        p = np.full((S, h + 2 * pad_i, w + 2 * pad_j), K, dtype=np.int64)
        p[:, pad_i:pad_i + h, pad_j:pad_j + w] = g
        xs.append(np.stack([p[stage + ds, pad_i + di:pad_i + di + h, pad_j + dj:pad_j + dj + w].ravel()
                            for ds, di, dj in offs], axis=1))
        ys.append(g[stage].ravel())
    return np.concatenate(xs), np.concatenate(ys)


def stage_offsets(stage: int) -> tuple:
    """The context of a stage: ``LEARNED_OFFSETS``, and after the first stage ``CROSS_OFFSETS``."""
    return LEARNED_OFFSETS + (CROSS_OFFSETS if stage > 0 else ())


def _fit(X: torch.Tensor, Y: torch.Tensor, K: int, m: int, *, steps: int, rank: int, batch: int, lr: float,
         gen: torch.Generator, progress, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Cross-entropy fit of one log-linear model on the training loop (fp32: table lookups and
    sums, nothing for bf16 to speed up); returns (bias, emb (m, K, rank), out, losses)."""
    emb = torch.nn.Parameter(torch.randn(m * (K + 1), rank, generator=gen) * 0.01)
    out = torch.nn.Parameter(torch.randn(K, rank, generator=gen) * 0.01)
    freq = torch.bincount(Y, minlength=K).double() + 0.5
    bias = torch.nn.Parameter(torch.log(freq / freq.sum()).float())
    shift = torch.arange(m) * (K + 1)
    losses = []

    def step(tc, rng, loop_gen):
        sel = torch.randint(0, Y.numel(), (batch,), generator=gen)
        x = X[sel]
        e = torch.nn.functional.embedding(x + shift, emb) * (x != K).unsqueeze(-1)
        loss = torch.nn.functional.cross_entropy(e.sum(1) @ out.T + bias, Y[sel])
        losses.append(float(loss.detach()) / np.log(2))
        if progress:
            progress(label, len(losses), steps)
        return loss, {"bits": losses[-1]}

    tc = TrainConfig(steps=steps, batch=batch, lr=lr, warmup=0, min_lr_ratio=0.0, clip=0.0, checkpoint_every=steps,
                     log_every=steps, precision="fp32")
    params = torch.nn.ParameterList([emb, out, bias])
    Loop(tc).run(Task(params, [list(params)], step))
    return (bias.detach().numpy(), emb.detach().numpy().reshape(m, K + 1, rank)[:, :K], out.detach().numpy(),
            losses)


def train_entropy_model(source, images_folder, *, steps: int = 1500, rank: int = 64, batch: int = 8192,
                        lr: float = 3e-3, seed: int = 0, threads: int | None = None, progress=None,
                        overwrite: bool = False) -> dict:
    """Train, store (``<stem>.entropy.safetensors``) and record (``entropy_model`` in the model's
    record: a checkpoint's json or a plug-in's side document; ``zoo.open_model``'s source) the
    context model of a checkpoint's indices (one per stage for a residual model, ``steps`` each);
    returns the record. ``overwrite``: allow a stem in the shipped weights folder
    (``zoo.check_not_shipped``), and replacing an existing context model (every entropy-coded file
    made with it becomes undecodable), which is refused without it."""
    source = as_source(source)
    stem = source.require_stem()
    check_not_shipped(stem, overwrite)
    if entropy_model_path(stem).exists() and not overwrite:
        raise ParameterError(f"{template_text(entropy_model_path(stem))}: exists; replacing it makes every "
                             "entropy-coded .vqc file made with it undecodable (use {0} to replace it)", "overwrite")
    check_output(entropy_model_path(stem), overwrite=True)
    if steps < 1 or rank < 1 or batch < 1 or not lr > 0:
        raise ValueError("steps, rank and batch must be >= 1 and lr > 0")
    if threads is not None:
        torch.set_num_threads(threads)
    model, doc = source.model, dict(source.doc)
    S = model.stages
    K = model.K
    paths = list_images(images_folder)
    if len(paths) < 2:
        raise ValueError(f"{images_folder}: needs at least 2 images (every tenth is held out)")
    grids = index_maps(model, paths, progress)
    held = [g for i, g in enumerate(grids) if i % 10 == 9] or grids[-1:]
    train = [g for i, g in enumerate(grids) if i % 10 != 9] or grids[:-1]
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    parts, last = [], []
    for s in range(S):
        offsets = stage_offsets(s)
        X, Y = (torch.from_numpy(a) for a in neighbour_table(train, K, offsets, s))
        bias, emb, out, losses = _fit(X, Y, K, len(offsets), steps=steps, rank=rank, batch=batch, lr=lr, gen=gen,
                                      progress=progress, label="training" if S == 1 else f"training stage {s + 1}")
        parts.append((bias, emb, out, offsets))
        last.append(float(np.mean(losses[-100:])))
    path = entropy_model_path(stem)
    save_entropy_model(path, parts)
    cm = load_entropy_model(path, K, S)
    bits = lambda gs: sum(code_length(g, cm) for g in gs) / sum(g.size for g in gs)  # noqa: E731
    record = {"offsets": [list(o) for o in LEARNED_OFFSETS], "rank": rank, "steps": steps, "batch": batch, "lr": lr,
              **({"stages": S, "cross_offsets": [list(o) for o in CROSS_OFFSETS]} if S > 1 else {}),
              "seed": seed, "images": str(images_folder), "train_images": len(train), "held_out_images": len(held),
              "train_loss_bits_last100": last[0] if S == 1 else last,
              "held_out_bits_per_index": float(bits(held)), "fixed_bits_per_index": float(np.log2(K)),
              "seconds": round(time.time() - t0, 1), "fingerprint": cm.fingerprint}
    doc["entropy_model"] = record
    source.write(doc)
    clear_cache()  # a model loaded before this run must not be served without its new context model
    return record
