"""Registry of shipped models: name -> weights + config in ``vqcodec/weights/``.

Each entry is a checkpoint pair ``NAME.safetensors`` + ``NAME.json`` trained by
``vqcodec train`` (the command is recorded in the JSON and in
``weights/README.md``). ``load(name)`` is cached per process.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vqcodec.model import VQVAE, CheckpointError, checkpoint_paths, load_model, read_checkpoint_meta

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "f4-k256"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str

    @property
    def path(self) -> Path:
        return WEIGHTS / self.name


REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, description: str) -> None:
    REGISTRY[name] = ZooEntry(name, description)


register("f4-k256", "default: stride 4, 256 codewords, 0.5 bpp")
register("f8-k1024", "stride 8, 1024 codewords, 0.156 bpp")
register("f8-k256", "stride 8, 256 codewords, 0.125 bpp")
register("f4-k256-bsc0.02", "f4-k256 with its decoder fine-tuned for BSC p=0.02 through spatial-mmse")
register("f4-k256-mix", "f4-k256 with its decoder fine-tuned through learned-mmse over a channel mix")
register("f4-k256-covq", "f4-k256's encoder with a channel-optimised codebook and decoder (BSC 0.003-0.1): "
                         "cheaper bit errors, lower clean PSNR")


def available() -> list[str]:
    """Registered models whose weights are present, sorted."""
    return sorted(n for n, e in REGISTRY.items() if checkpoint_paths(e.path)[1].exists())


def resolve(name: str) -> Path:
    if name not in REGISTRY:
        raise CheckpointError(f"unknown model {name!r} (known: {', '.join(sorted(REGISTRY))})")
    entry = REGISTRY[name]
    if not checkpoint_paths(entry.path)[1].exists():
        raise CheckpointError(f"model {name!r} is registered but its weights are not installed ({entry.path}.json)")
    return entry.path


@lru_cache(maxsize=8)
def _load(path: str, device: str = "cpu") -> tuple[VQVAE, dict]:
    return load_model(path, device=device)


def load(name: str | None = None, checkpoint: str | None = None, device: str = "cpu") -> tuple[VQVAE, dict]:
    """(model in eval mode, checkpoint meta) for a registered name or a user checkpoint path."""
    if checkpoint is not None:
        model, meta = _load(str(Path(checkpoint).resolve()), device)
    else:
        model, meta = _load(str(resolve(name or DEFAULT_MODEL)), device)
    return model, meta


def meta(name: str) -> dict:
    return read_checkpoint_meta(resolve(name))


@dataclass(frozen=True, eq=False)
class Codec:
    """A model plus the side information a transmission needs.

    ``assignment`` maps index -> transmitted label (identity unless the
    checkpoint ships an optimised one); ``prior`` is the index prior used by
    the spatial receivers (None when the checkpoint has none).
    """

    name: str
    model: VQVAE
    meta: dict
    assignment: "object"
    prior: "object" = None
    precision: str = "fp32"  # decoder arithmetic: fp32, or bf16 / fp16 autocast (CUDA)
    context: "object" = None  # learned context receiver (vqcodec.context.ContextNet), None when not shipped

    @property
    def K(self) -> int:
        return self.model.K

    @property
    def f(self) -> int:
        return self.model.f

    @property
    def bits_per_index(self) -> int:
        return self.model.cfg.bits_per_index

    @property
    def bpp(self) -> float:
        return self.model.cfg.bpp

    def describe(self) -> dict:
        out = {"name": self.name, "f": self.f, "K": self.K, "bpp": self.bpp}
        if self.precision != "fp32":
            out["precision"] = self.precision
        return out


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> 'cuda' when a CUDA device is visible, else 'cpu'."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CheckpointError(f"unknown device {device!r} (use cpu, cuda or auto)")
    return device


PRECISIONS = ("fp32", "bf16", "fp16")


def load_codec(name: str | None = None, checkpoint: str | None = None, device: str = "cpu",
               precision: str = "fp32") -> Codec:
    """The codec for a registered model name or a user checkpoint (``--checkpoint``).

    ``precision``: decoder arithmetic (fp32, or bf16 / fp16 autocast on CUDA); the encoder and
    the quantiser always run in float32, so the transmitted indices never depend on it."""
    import numpy as np

    if precision not in PRECISIONS:
        raise CheckpointError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")

    from vqcodec.bits import check_assignment, identity_assignment

    model, meta_ = load(name, checkpoint, resolve_device(device))
    label = name or DEFAULT_MODEL
    if checkpoint is not None:
        label = meta_.get("name") or Path(checkpoint).stem
    assignment = identity_assignment(model.K)
    if meta_.get("assignment") is not None:
        try:
            assignment = check_assignment(np.asarray(meta_["assignment"]), model.K)
        except ValueError as exc:
            raise CheckpointError(f"{label}: invalid index assignment in checkpoint ({exc})") from None
    from vqcodec.prior import load_prior, prior_path

    stem = Path(checkpoint) if checkpoint is not None else resolve(label)
    ppath = prior_path(stem)
    smoothing = {k: float(meta_["prior"][k]) for k in ("lam", "beta") if k in (meta_.get("prior") or {})}
    prior = load_prior(ppath, model.K, **smoothing) if ppath.exists() else None
    if precision != "fp32" and not str(model.codebook.device).startswith("cuda"):
        raise CheckpointError(f"precision {precision} needs a CUDA device (the CPU path runs fp32)")
    context = None
    if meta_.get("context") is not None:
        from vqcodec.context import context_path, load_context

        cpath = context_path(stem)
        if not cpath.exists():
            raise CheckpointError(f"{label}: its config names a context receiver but {cpath} is missing")
        context = load_context(cpath, model.K, assignment, meta_["context"].get("config") or {})
    return Codec(name=label, model=model, meta=meta_, assignment=assignment, prior=prior, precision=precision,
                 context=context)


def prepare_checkpoint(stem, images_folder, *, kodak_folder=None, keep_assignment: bool | None = None,
                       progress=None) -> dict:
    """Learn and store what the receivers need beside a checkpoint.

    1. Encode every training image; count index statistics -> ``<stem>.prior.safetensors``.
    2. Optimise the index assignment (binary switching algorithm) on the codebook,
       weighted by the training index frequencies -> ``assignment`` in ``<stem>.json``;
       ``keep_assignment`` keeps the checkpoint's own instead. The default (None) keeps it
       for a codebook trained for it (``train.train_codebook``) and optimises otherwise.
    3. When ``kodak_folder`` is given: the clean-channel Kodak metrics and codebook
       health -> ``kodak`` in ``<stem>.json`` (shown by ``vqcodec models``).

    ``progress(stage, done, total)`` is called along the way. Returns the summary written.
    """
    import numpy as np
    import torch

    from vqcodec.assignment import one_flip_cost, optimise_assignment
    from vqcodec.bits import check_assignment, identity_assignment
    from vqcodec.images import list_images, load_image, to_tensor
    from vqcodec.memory import large_buffers_mmapped
    from vqcodec.model import write_checkpoint_meta
    from vqcodec.prior import IndexPrior, learn_prior, prior_path, save_prior

    model, doc = load_model(stem)
    if keep_assignment is None:
        keep_assignment = "codebook_training" in doc
    kept = None
    if keep_assignment:
        if doc.get("assignment") is None:
            raise CheckpointError(f"{stem}: has no index assignment to keep")
        try:
            kept = check_assignment(np.asarray(doc["assignment"]), model.K)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{stem}: invalid index assignment in checkpoint ({exc})") from None
    paths = list_images(images_folder)
    kpaths = list_images(kodak_folder) if kodak_folder is not None else []
    grids = []
    with torch.inference_mode(), large_buffers_mmapped():
        for i, p in enumerate(paths):
            grids.append(model.encode(to_tensor(load_image(p)))[0].numpy())
            if progress:
                progress("index statistics", i + 1, len(paths))
    if progress:
        progress("receiver tuning", 0, 1)
    counts = learn_prior(grids, model.K)
    cb = model.codebook.detach().cpu().numpy().astype(np.float64)
    if kept is not None:
        assignment = kept
        info = {"kept": True, "identity_cost": one_flip_cost(cb, counts.unigram, identity_assignment(model.K)),
                "final_cost": one_flip_cost(cb, counts.unigram, assignment)}
    else:
        assignment, info = optimise_assignment(cb, counts.unigram)
    lam, beta, tuning = tune_receiver(model, doc, assignment, grids, paths)
    if progress:
        progress("receiver tuning", 1, 1)
    prior = IndexPrior(counts.unigram, counts.horizontal, counts.vertical, lam=lam, beta=beta)
    summary = {"images": str(images_folder), "image_count": len(paths), "entropy_bits": prior.entropies(),
               "lam": lam, "beta": beta, "tuning": tuning,
               "assignment": {k: float(v) if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
                              else v for k, v in info.items()}}
    doc["assignment"] = [int(a) for a in assignment]
    doc["prior"] = summary
    if kodak_folder is not None:
        from vqcodec.simulate import clean_point, encode_image

        _load.cache_clear()
        codec = Codec(name=doc.get("name", "model"), model=model, meta=doc,
                      assignment=np.asarray(assignment), prior=prior)
        encs = []
        for i, p in enumerate(kpaths):
            encs.append(encode_image(codec, p))
            if progress:
                progress("kodak", i + 1, len(kpaths))
        pt = clean_point(codec, encs)
        held = prior.cross_entropy([e.indices for e in encs], beta=1.0)
        doc["kodak"] = {"psnr": pt["psnr"]["mean"], "ms_ssim": pt["ms_ssim"]["mean"], "bpp": pt["bpp"],
                        "codebook_usage": pt["codebook_usage"], "perplexity": pt["perplexity"],
                        "cross_entropy_bits": held, "images": len(encs)}
        summary["kodak"] = doc["kodak"]
    save_prior(prior, prior_path(stem))
    write_checkpoint_meta(stem, doc)
    _load.cache_clear()
    return summary


def tune_receiver(model, doc, assignment, grids, paths, *, holdout_every: int = 5, n_eval: int = 8,
                  ps=(0.01, 0.03), lams=(0.6, 0.8, 0.9, 0.95), betas=(0.4, 0.6, 0.8, 1.0), seed: int = 0):
    """Choose the prior smoothing ``lam`` and temperature ``beta`` of the spatial receivers on
    training images only: statistics from all images but every ``holdout_every``-th, the
    ``spatial-mmse`` PSNR loss measured on ``n_eval`` of the held-out ones over BSC points
    ``ps`` (fixed seeds). Returns (lam, beta, table of mean losses)."""
    import numpy as np

    import channels
    from vqcodec.bits import indices_to_bits
    from vqcodec.correct import Decision, ReceiverContext, SpatialParams, bit_llrs, spatial_posterior
    from vqcodec.metrics import psnr
    from vqcodec.prior import IndexPrior, learn_prior
    from vqcodec.simulate import decode_image, encode_image, trial_rng

    train = [g for i, g in enumerate(grids) if i % holdout_every]
    held = [p for i, p in enumerate(paths) if i % holdout_every == 0][:n_eval]
    counts = learn_prior(train, model.K)
    base = Codec(name="tuning", model=model, meta=doc, assignment=np.asarray(assignment), prior=None)
    encs = [encode_image(base, p, with_ms_ssim=False) for p in held]
    cb = model.codebook.detach().cpu().numpy()
    table = {}
    for lam in lams:
        prior = IndexPrior(counts.unigram, counts.horizontal, counts.vertical, lam=lam)
        for beta in betas:
            losses = []
            for p in ps:
                ch = channels.get_channel("bsc", p=p)
                ctx = ReceiverContext(K=model.K, assignment=np.asarray(assignment), codebook=cb, channel=ch,
                                      prior=prior)
                for e in encs:
                    rx = ch(indices_to_bits(e.indices, model.K, assignment), trial_rng(seed, e.name, p, 0))
                    post = spatial_posterior(bit_llrs(rx, ch, ctx.b), e.indices.shape, ctx, SpatialParams(beta=beta))
                    out = decode_image(base, Decision(post.map(), post.mmse(cb)), *e.image.shape[:2])
                    losses.append(psnr(e.image, out) - e.psnr_clean)
            table[f"lam={lam},beta={beta}"] = float(np.mean(losses))
    best = max(table, key=table.get)
    lam, beta = (float(kv.split("=")[1]) for kv in best.split(","))
    return lam, beta, table
