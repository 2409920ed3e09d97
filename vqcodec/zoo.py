"""Registry of shipped models: name -> weights + config in ``vqcodec/weights/``.

Each entry is a checkpoint pair ``NAME.safetensors`` + ``NAME.json`` trained by
``vqcodec train`` (the command is recorded in the JSON and in
``weights/README.md``). ``load(name)`` is cached per process.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vqcodec.model import VQVAE, CheckpointError, load_model, read_checkpoint_meta

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
register("f4-k1024", "stride 4, 1024 codewords, 0.625 bpp")


def available() -> list[str]:
    """Registered models whose weights are present, sorted."""
    return sorted(n for n, e in REGISTRY.items() if e.path.with_suffix(".json").exists())


def resolve(name: str) -> Path:
    if name not in REGISTRY:
        raise CheckpointError(f"unknown model {name!r} (known: {', '.join(sorted(REGISTRY))})")
    entry = REGISTRY[name]
    if not entry.path.with_suffix(".json").exists():
        raise CheckpointError(f"model {name!r} is registered but its weights are not installed ({entry.path}.json)")
    return entry.path


@lru_cache(maxsize=8)
def _load(path: str) -> tuple[VQVAE, dict]:
    return load_model(path)


def load(name: str | None = None, checkpoint: str | None = None) -> tuple[VQVAE, dict]:
    """(model in eval mode, checkpoint meta) for a registered name or a user checkpoint path."""
    if checkpoint is not None:
        model, meta = _load(str(Path(checkpoint).resolve()))
    else:
        model, meta = _load(str(resolve(name or DEFAULT_MODEL)))
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
        return {"name": self.name, "f": self.f, "K": self.K, "bpp": self.bpp}


def load_codec(name: str | None = None, checkpoint: str | None = None) -> Codec:
    """The codec for a registered model name or a user checkpoint (``--checkpoint``)."""
    import numpy as np

    from vqcodec.bits import check_assignment, identity_assignment

    model, meta_ = load(name, checkpoint)
    label = name or DEFAULT_MODEL
    if checkpoint is not None:
        label = meta_.get("name") or Path(checkpoint).stem
    assignment = identity_assignment(model.K)
    if meta_.get("assignment") is not None:
        try:
            assignment = check_assignment(np.asarray(meta_["assignment"]), model.K)
        except ValueError as exc:
            raise CheckpointError(f"{label}: invalid index assignment in checkpoint ({exc})") from None
    return Codec(name=label, model=model, meta=meta_, assignment=assignment, prior=None)
