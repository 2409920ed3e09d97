"""Registry of shipped models: name -> weights + config in ``vqcodec/weights/``.

Each entry is a checkpoint pair ``NAME.safetensors`` + ``NAME.json`` trained by
``vqcodec train`` (the command is recorded in the JSON and in
``weights/README.md``). ``load(name)`` is cached per process.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vqcodec.bits import check_assignment, identity_assignment
from vqcodec.checkpoint import CheckpointError, checkpoint_paths, read_checkpoint_meta
from vqcodec.context import context_path, load_context
from vqcodec.entropy import entropy_model_path, load_entropy_stages
from vqcodec.model import VQVAE, load_model
from vqcodec.precision import PRECISIONS, resolve_precision
from vqcodec.prior import load_prior, prior_path
from vqcodec.search import SearchConfig, search_indices

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
register("f8-s2-k256", "stride 8, residual VQ of 2 x 256 codewords, 0.25 bpp, receivers per stage")
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


def check_not_shipped(stem, overwrite: bool = False) -> None:
    """Refuse, before any work, to write a checkpoint or any of its side files (``stem``: a stem
    or one of its files) into the shipped weights folder ``WEIGHTS`` unless ``overwrite`` says so
    (the CLI's ``--overwrite``, given with the file named). Every command that writes a checkpoint
    or side information calls it; its ``wip/`` subfolder holds no shipped model and is not checked.
    Raises ``OutputRefused`` (an ``OutputError``, a ValueError)."""
    from vqcodec.files import OutputRefused, template_text

    if overwrite or stem is None:
        return
    if Path(stem).resolve().parent == Path(WEIGHTS).resolve():
        raise OutputRefused(f"{template_text(stem)}: is in the shipped weights folder ({template_text(WEIGHTS)}); "
                            "write to a folder of your own (name the shipped file and add {0} only to replace it "
                            "on purpose)", "overwrite")


def checkpoint_stem(name: str | None = None, checkpoint=None) -> Path:
    """The checkpoint stem of a user checkpoint, or of a shipped model (default f4-k256)."""
    return Path(checkpoint) if checkpoint is not None else resolve(name or DEFAULT_MODEL)


@lru_cache(maxsize=8)
def _load(path: str, device: str = "cpu") -> tuple[VQVAE, dict]:
    return load_model(path, device=device)


def clear_cache() -> None:
    """Forget loaded checkpoints (after a checkpoint on disk was rewritten)."""
    _load.cache_clear()


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
    checkpoint ships an optimised one; a residual model's may hold one row per stage).

    The per-stage side information is, for a model of S stages (S = 1: single-stage), always a
    tuple of S, stage 0 first, or None when the checkpoint has none (never a tuple of Nones: a
    checkpoint has a part for every stage or none): ``prior``, the index priors of the spatial
    receivers (``vqcodec.prior.IndexPrior``); ``context``, the learned context receivers
    (``vqcodec.context.ContextNet``); ``entropy_model``, the entropy coder's trained context
    models (``vqcodec.entropy.ContextModel``; the coder's own model is
    ``vqcodec.entropy.coder_model`` of them). Anything else is refused on construction.
    """

    name: str
    model: VQVAE
    meta: dict
    assignment: object
    prior: tuple | None = None  # one IndexPrior per stage
    precision: str = "fp32"  # the networks' arithmetic (resolved: fp32, bf16, or fp16 on CUDA); see load_codec
    context: tuple | None = None  # one learned context receiver (vqcodec.context.ContextNet) per stage
    entropy_model: tuple | None = None  # one trained context model of the entropy coder per stage
    stem: Path | None = None  # the checkpoint it was loaded from (None: built in memory)
    search: object = None  # encoder-side index search (vqcodec.search.SearchConfig), None: nearest codewords

    def __post_init__(self):
        check_per_stage(self.model.stages, prior=self.prior, context=self.context, entropy_model=self.entropy_model)

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

    @property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the codebook(s) and the index assignment: what a receiver
        must share with the transmitter to read its indices."""
        import hashlib

        import numpy as np

        cb = getattr(self.model, "codebooks", None)
        cb = self.model.codebook if cb is None else cb
        h = hashlib.sha256(cb.detach().cpu().float().numpy().astype("<f4").tobytes())
        h.update(np.asarray(self.assignment, dtype="<i8").tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        out = {"name": self.name, "f": self.f, "K": self.K, "bpp": self.bpp, "precision": self.precision}
        if self.search is not None:
            out["search"] = self.search.to_dict()
        return out

    def encode_indices(self, x):
        """Indices of one image x (1, 3, H, W) in [0, 1] (``VQVAE.encode``'s shape): the encoder's
        nearest codewords, or with ``search`` the encoder-side index search's
        (``vqcodec.search``; its trial decodes at the codec's precision)."""
        if self.search is None:
            return self.model.encode(x)
        return search_indices(self.model, x, self.search, precision=self.precision)


def check_per_stage(stages: int, **side) -> None:
    """Refuse per-stage side information (name=value) that is neither None nor a tuple of
    ``stages`` (``Codec``'s and ``receivers.ReceiverContext``'s form); a ValueError."""
    for name, value in side.items():
        if value is not None and not (isinstance(value, tuple) and len(value) == stages):
            raise ValueError(f"{name} must be None or a tuple of one per stage ({stages}), got "
                             f"{type(value).__name__}" + (f" of {len(value)}" if isinstance(value, tuple) else ""))


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


def load_codec(name: str | None = None, checkpoint: str | None = None, device: str = "cpu",
               precision: str = "auto", search=None) -> Codec:
    """The codec for a registered model name or a user checkpoint (``--checkpoint``).

    ``precision`` (``PRECISIONS``): the arithmetic of the decoder and the learned receiver:
    fp32, bf16 autocast (CPU or CUDA), fp16 autocast (CUDA only), or ``auto``: bf16 on a CPU
    with bf16 instructions, fp32 elsewhere (``precision.resolve_precision``). The codec holds
    the resolved one. The encoder and the quantiser always run in float32, so the transmitted
    indices never depend on it (unless ``search``: a ``SearchConfig``, or a number of candidates,
    turns on the encoder-side index search, whose choices depend on the decoder's output)."""
    import numpy as np

    if search is not None and not isinstance(search, SearchConfig):
        try:
            search = SearchConfig(candidates=search) if search > 1 else None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(str(exc)) from None

    if precision not in PRECISIONS:
        raise CheckpointError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    device = resolve_device(device)
    try:
        precision = resolve_precision(precision, device)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None

    model, meta_ = load(name, checkpoint, device)
    label = name or DEFAULT_MODEL
    if checkpoint is not None:
        label = meta_.get("name") or Path(checkpoint).stem
    S = model.stages
    assignment = identity_assignment(model.K)
    if meta_.get("assignment") is not None:
        try:
            assignment = check_assignment(np.asarray(meta_["assignment"]), model.K, S)
        except ValueError as exc:
            raise CheckpointError(f"{label}: invalid index assignment in checkpoint ({exc})") from None

    stem = Path(checkpoint) if checkpoint is not None else resolve(label)
    ppath = prior_path(stem)
    smoothing = {k: float(meta_["prior"][k]) for k in ("lam", "beta") if k in (meta_.get("prior") or {})}
    prior = load_prior(ppath, model.K, S, **smoothing) if ppath.exists() else None
    context = None
    if meta_.get("context") is not None:
        cpath = context_path(stem)
        if not cpath.exists():
            raise CheckpointError(f"{label}: its config names a context receiver but {cpath} is missing")
        context = load_context(cpath, model.K, assignment, meta_["context"].get("config") or {}, S)
    entropy_model = None
    if meta_.get("entropy_model") is not None:
        epath = entropy_model_path(stem)
        if not epath.exists():
            raise CheckpointError(f"{label}: its config names a trained context model but {epath} is missing")
        entropy_model = load_entropy_stages(epath, model.K, S)
    return Codec(name=label, model=model, meta=meta_, assignment=assignment, prior=prior, precision=precision,
                 context=context, entropy_model=entropy_model, stem=stem, search=search)
