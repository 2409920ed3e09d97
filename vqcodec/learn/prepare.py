"""``vqcodec prepare``: learn and store what the receivers need beside a checkpoint (index
prior, pseudo-Gray index assignment, spatial-receiver tuning by simulation, clean Kodak metrics).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

import channels
from vqcodec.assignment import one_flip_cost, optimise_assignment
from vqcodec.bits import check_assignment, identity_assignment, indices_to_bits, stage_assignment
from vqcodec.checkpoint import CheckpointError
from vqcodec.images import list_images, load_image, to_tensor
from vqcodec.memory import large_buffers_mmapped
from vqcodec.metrics import psnr
from vqcodec.prior import IndexPrior, learn_stage_priors, prior_path, save_prior
from vqcodec.protocol import has_codebooks, model_fingerprint
from vqcodec.receivers import get_receiver, receiver_context
from vqcodec.simulate import clean_point, decode_image, encode_image, trial_rng
from vqcodec.zoo import Codec, as_source, check_not_shipped, clear_cache


def index_maps(model, paths, progress=None, stage: str = "index maps") -> list[np.ndarray]:
    """The model's index map of each image (int64, as ``model.encode`` gives it), with
    ``progress(stage, done, total)`` after each."""
    grids = []
    with torch.inference_mode(), large_buffers_mmapped():
        for i, p in enumerate(paths):
            grids.append(model.encode(to_tensor(load_image(p)))[0].numpy())
            if progress:
                progress(stage, i + 1, len(paths))
    return grids


def prepare_checkpoint(source, images_folder, *, kodak_folder=None, keep_assignment: bool | None = None,
                       progress=None, overwrite: bool = False) -> dict:
    """Learn and store what the receivers need beside a model (``zoo.open_model``'s source: a
    vqcodec checkpoint, whose JSON gets the records, or a plug-in model, whose side document
    ``<stem>.vqcodec.json`` gets them under its fingerprint).

    1. Encode every training image; count index statistics -> ``<stem>.prior.safetensors``.
    2. Optimise the index assignment (binary switching algorithm) on the codebook,
       weighted by the training index frequencies -> ``assignment`` in ``<stem>.json``
       (a model without codebooks keeps the identity: there is no geometry to optimise on);
       ``keep_assignment`` keeps the checkpoint's own instead. The default (None) keeps it
       for a codebook trained for it (``learn.through_channel.train_codebook``) and optimises otherwise.
    3. When ``kodak_folder`` is given: the clean-channel Kodak metrics and codebook
       health -> ``kodak`` in ``<stem>.json`` (shown by ``vqcodec models``).

    A residual model gets all of it per stage: one prior and one assignment for each stage's
    indices and codebook (``assignment`` (S, K)), and one (lam, beta) for all stages.

    ``progress(stage, done, total)`` is called along the way. Returns the summary written.
    ``overwrite``: allow a stem in the shipped weights folder (``zoo.check_not_shipped``).
    """
    source = as_source(source, check=False)
    stem = source.require_stem()
    check_not_shipped(stem, overwrite)

    model = source.model
    doc = dict(source.doc)
    if not source.own and doc.get("fingerprint") != model_fingerprint(model):
        doc = {}  # records of another version of the model: prepared afresh
    S = model.stages
    if keep_assignment is None:
        keep_assignment = "codebook_training" in doc
    kept = None
    if keep_assignment:
        if doc.get("assignment") is None:
            raise CheckpointError(f"{stem}: has no index assignment to keep")
        try:
            kept = check_assignment(np.asarray(doc["assignment"]), model.K, S)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{stem}: invalid index assignment in checkpoint ({exc})") from None
    paths = list_images(images_folder)
    kpaths = list_images(kodak_folder) if kodak_folder is not None else []
    grids = index_maps(model, paths, progress, stage="index statistics")
    if progress:
        progress("receiver tuning", 0, 1)
    counts = learn_stage_priors(grids, model.K)
    soft = has_codebooks(model)
    if not soft and kept is None:  # no codebook geometry: the identity, as the receivers had it
        kept = identity_assignment(model.K) if S == 1 else np.stack([identity_assignment(model.K)] * S)
    cbs = model.codebooks.detach().cpu().numpy().astype(np.float64) if soft else None
    rows, infos = [], []
    for s in range(S):  # each stage's codebook has its own geometry: an assignment of its own
        if not soft:
            row, info = stage_assignment(kept, s), {"kept": True, "no_codebooks": True}
        elif kept is not None:
            row = stage_assignment(kept, s)
            info = {"kept": True, "identity_cost": one_flip_cost(cbs[s], counts[s].unigram, identity_assignment(model.K)),
                    "final_cost": one_flip_cost(cbs[s], counts[s].unigram, row)}
        else:
            row, info = optimise_assignment(cbs[s], counts[s].unigram)
        rows.append(row)
        infos.append({k: float(v) if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) else v
                      for k, v in info.items()})
    assignment = rows[0] if S == 1 else np.stack(rows)
    tuned_with = "spatial-mmse" if soft else "spatial"
    lam, beta, tuning = tune_receiver(model, doc, assignment, grids, paths, receiver=tuned_with)
    if progress:
        progress("receiver tuning", 1, 1)
    priors = tuple(IndexPrior(c.unigram, c.horizontal, c.vertical, lam=lam, beta=beta) for c in counts)
    summary = {"images": str(images_folder), "image_count": len(paths),
               "entropy_bits": priors[0].entropies() if S == 1 else [p.entropies() for p in priors],
               "lam": lam, "beta": beta, "tuning": tuning, "tuned_with": tuned_with, "assignment": infos[0] if S == 1 else infos}
    doc["assignment"] = np.asarray(assignment).tolist()
    doc["prior"] = summary
    if kodak_folder is not None:
        summary["kodak"] = doc["kodak"] = _kodak_record(doc, model, np.asarray(assignment), priors, kpaths, progress)
    save_prior(priors, prior_path(stem))
    source.write(doc)
    clear_cache()
    return summary


def _kodak_record(doc, model, assignment, priors, kpaths, progress) -> dict:
    """The clean-channel Kodak metrics and codebook health of ``doc["kodak"]``."""
    clear_cache()
    codec = Codec(name=doc.get("name", "model"), model=model, meta=doc, assignment=assignment, prior=priors)
    encs = []
    for i, p in enumerate(kpaths):
        encs.append(encode_image(codec, p))
        if progress:
            progress("kodak", i + 1, len(kpaths))
    pt = clean_point(codec, encs)
    out = {"psnr": pt["psnr"]["mean"], "ms_ssim": pt["ms_ssim"]["mean"], "bpp": pt["bpp"],
           "codebook_usage": pt["codebook_usage"], "perplexity": pt["perplexity"], "images": len(encs)}
    if "codebook_usage_stages" in pt:
        out["codebook_usage_stages"] = pt["codebook_usage_stages"]
    maps = [np.reshape(e.indices, (len(priors), *e.indices.shape[-2:])) for e in encs]  # (S, h, w) each
    bits = [p.cross_entropy([m[s] for m in maps], beta=1.0) for s, p in enumerate(priors)]
    out["cross_entropy_bits"] = bits[0] if len(priors) == 1 else bits
    return out


def tune_receiver(model, doc, assignment, grids, paths, *, holdout_every: int = 5, n_eval: int = 8,
                  ps=(0.01, 0.03), lams=(0.6, 0.8, 0.9, 0.95), betas=(0.4, 0.6, 0.8, 1.0), seed: int = 0,
                  receiver: str = "spatial-mmse"):
    """Choose the prior smoothing ``lam`` and temperature ``beta`` of the spatial receivers on
    training images only: statistics from all images but every ``holdout_every``-th, the
    ``receiver``'s PSNR loss (``spatial`` for a model without codebooks) measured on ``n_eval`` of the held-out ones over BSC points
    ``ps`` (fixed seeds); one (lam, beta) for all stages of a residual model. Returns (lam, beta,
    table of mean losses)."""

    train = [g for i, g in enumerate(grids) if i % holdout_every]
    held = [p for i, p in enumerate(paths) if i % holdout_every == 0][:n_eval]
    counts = learn_stage_priors(train, model.K)
    base = Codec(name="tuning", model=model, meta=doc, assignment=np.asarray(assignment), prior=None)
    encs = [encode_image(base, p, with_ms_ssim=False) for p in held]
    receiver = get_receiver(receiver)
    table = {}
    for lam in lams:
        for beta in betas:
            priors = tuple(IndexPrior(c.unigram, c.horizontal, c.vertical, lam=lam, beta=beta) for c in counts)
            losses = []
            for p in ps:
                ch = channels.get_channel("bsc", p=p)
                ctx = replace(receiver_context(base, ch), prior=priors)
                for e in encs:
                    rx = ch(indices_to_bits(e.indices, model.K, assignment), trial_rng(seed, e.name, p, 0))
                    out = decode_image(base, receiver(rx, e.indices.shape, ctx), *e.image.shape[:2])
                    losses.append(psnr(e.image, out) - e.psnr_clean)
            table[f"lam={lam},beta={beta}"] = float(np.mean(losses))
    best = max(table, key=table.get)
    lam, beta = (float(kv.split("=")[1]) for kv in best.split(","))
    return lam, beta, table
