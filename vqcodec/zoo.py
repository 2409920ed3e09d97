"""The codec bundle: shipped models, plug-ins, and loading a model with its side information.

A model is any object satisfying the codec protocol (``vqcodec.protocol``); vqcodec's own VQ-VAE
is one, loaded from a checkpoint pair ``NAME.safetensors`` + ``NAME.json`` (its side information
records in the JSON). Shipped models are such pairs in ``vqcodec/weights/``, trained by
``vqcodec train`` (the command is recorded in the JSON and in ``weights/README.md``).

Models of other libraries come in as plug-ins: a factory ``factory(weights) -> model`` (a
``vqcodec.wrap``-ed module, or any protocol object), named either by a Python entry point in the
group ``vqcodec.codecs`` (``vqcodec models`` lists them and ``--model NAME`` loads them) or by a
spec ``package.module:factory`` / ``path/to/file.py:factory`` (``--codec``). The factory builds
the module and loads its weights (safetensors, or its own loader: importing and running a plug-in
is the user's trust decision; vqcodec itself never unpickles). Their side information lives
beside their weights file: ``<stem>.vqcodec.json`` (records, keyed by ``protocol.model_fingerprint``
so a changed model is refused) and the prior, receiver and entropy files under the stem.
Loading is cached per process.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import torch

from channels.base import ParameterError
from vqcodec.bits import bits_per_label, check_assignment, identity_assignment
from vqcodec.checkpoint import CheckpointError, checkpoint_paths, read_checkpoint_meta, read_record, write_record
from vqcodec.context import context_path, load_context
from vqcodec.entropy import (
    DEFAULT_BETA,
    ContextModel,
    StagedContextModel,
    coder_model,
    entropy_model_path,
    load_entropy_stages,
)
from vqcodec.files import OutputRefused, template_text
from vqcodec.model import VQVAE, load_model
from vqcodec.precision import PRECISIONS, resolve_precision
from vqcodec.prior import load_prior, prior_path
from vqcodec.protocol import ProtocolError, check_model, has_codebooks, model_device, model_fingerprint
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
    if overwrite or stem is None:
        return
    if Path(stem).resolve().parent == Path(WEIGHTS).resolve():
        raise OutputRefused(f"{template_text(stem)}: is in the shipped weights folder ({template_text(WEIGHTS)}); "
                            "write to a folder of your own (name the shipped file and add {0} only to replace it "
                            "on purpose)", "overwrite")


def checkpoint_stem(name: str | None = None, checkpoint=None) -> Path:
    """The checkpoint stem of a user checkpoint, or of a shipped model (default f4-k256)."""
    return Path(checkpoint) if checkpoint is not None else resolve(name or DEFAULT_MODEL)


# --------------------------------------------------------------------------- plug-ins

PLUGIN_GROUP = "vqcodec.codecs"
SIDE_FORMAT = "vqcodec.side/1"


def plugins() -> dict:
    """The installed plug-ins: entry point name -> ``importlib.metadata.EntryPoint`` of the group
    ``vqcodec.codecs`` (a name a shipped model already has is left out)."""
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in REGISTRY}


def is_spec(name) -> bool:
    """Whether a model name is a plug-in spec ``module:factory`` or ``file.py:factory``."""
    return isinstance(name, str) and ":" in name


def _factory(spec: str):
    """The factory a spec ``package.module:factory`` (imported with the working directory on the
    path, as the command line runs it) or ``path/to/file.py:factory`` names."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr.isidentifier():
        raise CheckpointError(f"codec {spec!r}: give it as package.module:factory or path/to/file.py:factory")
    try:
        if where.endswith(".py"):
            if not Path(where).is_file():
                raise CheckpointError(f"codec {spec!r}: {where} not found")
            mspec = importlib.util.spec_from_file_location(Path(where).stem, where)
            module = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except CheckpointError:
        raise
    except Exception as exc:  # a plug-in's own code: any failure is one line naming it
        raise CheckpointError(f"codec {spec!r}: cannot import {where} ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise CheckpointError(f"codec {spec!r}: {where} has no callable {attr}")
    return fn


@lru_cache(maxsize=8)
def _load_plugin(name: str, weights: str | None, device: str):
    if is_spec(name):
        factory = _factory(name)
    else:
        try:
            factory = plugins()[name].load()
        except Exception as exc:  # the plug-in package's import
            raise CheckpointError(f"plug-in {name!r}: cannot load ({type(exc).__name__}: {exc})") from None
    if weights is not None and not Path(weights).is_file():
        raise CheckpointError(f"{template_text(weights)}: weights file not found")
    try:
        model = factory(weights)
    except Exception as exc:  # the plug-in's factory: its errors are the user's to read, in one line
        raise CheckpointError(f"codec {name!r}: its factory failed ({type(exc).__name__}: {exc})") from None
    try:
        check_model(model, name)
    except ProtocolError as exc:
        raise CheckpointError(str(exc)) from None
    if hasattr(model, "eval"):
        model.eval()
    return model.to(device) if hasattr(model, "to") else model


def side_path(stem) -> Path:
    """The side-information document of a plug-in model whose weights file has stem ``stem``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".vqcodec.json")


def _weights_stem(weights) -> Path | None:
    return None if weights is None else Path(weights).with_suffix("")


@dataclass(frozen=True, eq=False)
class ModelSource:
    """A model and the record of its side information: ``doc`` is a vqcodec checkpoint's JSON
    (``own``) or a plug-in's side document (``side_path``); ``stem`` names the side files (None:
    a plug-in model held in memory only, which has nowhere to store side information)."""

    model: object
    doc: dict
    stem: Path | None
    label: str
    own: bool

    def require_stem(self) -> Path:
        """The stem side information is written under; refuses a model held in memory only."""
        if self.stem is None:
            raise CheckpointError(f"{self.label}: has no weights file to store side information beside (wrap it "
                                  "with weights=PATH, or give the plug-in --weights)")
        return self.stem

    @property
    def record_path(self) -> Path:
        return checkpoint_paths(self.require_stem())[1] if self.own else side_path(self.require_stem())

    def write(self, doc: dict) -> None:
        """Store the records (assignment, prior, receivers, entropy model): a checkpoint's JSON, or a
        plug-in's side document keyed by its fingerprint."""
        if not self.own:
            doc = {**doc, "format": SIDE_FORMAT, "name": self.label, "fingerprint": model_fingerprint(self.model),
                   "f": int(self.model.f), "K": int(self.model.K), "stages": int(self.model.stages)}
        write_record(self.record_path, doc)


def _read_side(path: Path, model, label: str, check: bool) -> dict:
    if not path.exists():
        return {}
    doc = read_record(path, SIDE_FORMAT, "side document")
    if check and doc.get("fingerprint") != (fingerprint := model_fingerprint(model)):
        raise CheckpointError(f"{template_text(path)}: prepared for another version of {label} (fingerprint "
                              f"{doc.get('fingerprint')}, the model's is {fingerprint}); run "
                              "`vqcodec prepare` on it again")
    return doc


def open_model(model=None, checkpoint=None, *, weights=None, device: str = "cpu", check: bool = True) -> ModelSource:
    """A model and its side-information record: ``model`` a shipped name (default f4-k256), an
    installed plug-in's name, a plug-in spec (``module:factory``), or a protocol object (e.g. from
    ``vqcodec.wrap``); ``checkpoint`` a vqcodec checkpoint instead; ``weights`` the file a plug-in's
    factory loads. ``check``: refuse side information prepared for another version of a plug-in
    model (``prepare``, which rewrites it, opens without)."""
    if checkpoint is not None or (isinstance(model, str) and not is_spec(model) and model in REGISTRY) or model is None:
        if weights is not None:
            raise ParameterError("{0} is for plug-in models; a vqcodec checkpoint holds its own weights", "weights")
        net, doc = load(model, None if checkpoint is None else str(checkpoint), device)
        stem = checkpoint_stem(model, checkpoint)
        label = (doc.get("name") or Path(checkpoint).stem) if checkpoint is not None else model or DEFAULT_MODEL
        return ModelSource(net, doc, stem, label, own=True)
    if isinstance(model, str):
        if not is_spec(model) and model not in plugins():
            known = sorted(REGISTRY) + sorted(plugins())
            raise CheckpointError(f"unknown model {model!r} (known: {', '.join(known)})")
        net = _load_plugin(model, None if weights is None else str(Path(weights).resolve()), device)
        label = getattr(net, "name", None) or model
    else:
        try:
            check_model(model, type(model).__name__)
        except ProtocolError as exc:
            raise CheckpointError(str(exc)) from None
        net, label = model, getattr(model, "name", None) or type(model).__name__
    stem = _weights_stem(weights if weights is not None else getattr(net, "weights", None))
    doc = {} if stem is None else _read_side(side_path(stem), net, label, check)
    return ModelSource(net, doc, stem, label, own=False)


def as_source(source, check: bool = True) -> ModelSource:
    """``source`` itself when it is an opened model, else the vqcodec checkpoint at that stem, read
    afresh from disk (the caches are cleared first)."""
    if isinstance(source, ModelSource):
        return source
    clear_cache()
    return open_model(checkpoint=source, check=check)


@lru_cache(maxsize=8)
def _load(path: str, device: str = "cpu") -> tuple[VQVAE, dict]:
    return load_model(path, device=device)


def clear_cache() -> None:
    """Forget loaded checkpoints and plug-in models (after one on disk was rewritten)."""
    _load.cache_clear()
    _load_plugin.cache_clear()


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
    model: object  # any codec-protocol model (vqcodec.protocol): a VQVAE, a wrapped one, a plug-in's
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
    def stages(self) -> int:
        return self.model.stages

    @property
    def bits_per_index(self) -> int:
        return bits_per_label(self.model.K)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the fixed-length index stream (all stages)."""
        return self.model.stages * self.bits_per_index / (self.f * self.f)

    @property
    def soft(self) -> bool:
        """Whether the model has codebooks and a decode from code vectors (the soft receivers)."""
        return has_codebooks(self.model)

    @property
    def device(self):
        """The torch device the model runs on."""
        return model_device(self.model)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the codebook(s) (a model without codebooks: its
        ``protocol.model_fingerprint``) and the index assignment: what a receiver must share with
        the transmitter to read its indices."""
        if self.soft:
            h = hashlib.sha256(self.model.codebooks.detach().cpu().float().numpy().astype("<f4").tobytes())
        else:
            h = hashlib.sha256(model_fingerprint(self.model).encode())
        h.update(np.asarray(self.assignment, dtype="<i8").tobytes())
        return h.hexdigest()[:16]

    @property
    def weights_fingerprint(self) -> str | None:
        """16 hex digits over ``fingerprint`` and every tensor of the network (the encoder's and
        decoder's too, ``protocol.model_fingerprint``): results made with one version of a model are
        not continued with another of the same name. None where the model cannot be fingerprinted."""
        try:
            h = hashlib.sha256(self.fingerprint.encode())
            h.update(model_fingerprint(self.model).encode())
        except ProtocolError:
            return None
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        out = {"name": self.name, "f": self.f, "K": self.K, "bpp": self.bpp, "precision": self.precision}
        if self.search is not None:
            out["search"] = self.search.to_dict()
        return out

    def encode_indices(self, x, progress=None):
        """Indices of one image x (1, 3, H, W) in [0, 1] (``VQVAE.encode``'s shape): the encoder's
        nearest codewords, or with ``search`` the encoder-side index search's
        (``vqcodec.search``; its trial decodes at the codec's precision; ``progress(done, total)``
        after each group of sites)."""
        if self.search is None:
            return self.model.encode(x)
        context = self.coder_model() if self.search.rate else None
        return search_indices(self.model, x, self.search, precision=self.precision, progress=progress,
                              context=context)

    def coder_model(self, kind: str | None = None) -> ContextModel | StagedContextModel:
        """The entropy coder's context model: the trained one (``kind`` "learned",
        ``<stem>.entropy.safetensors``) where the model has one, else (or with ``kind`` "prior") the
        one made from its index prior (single-stage models only: a residual model needs its trained
        one, one context model per stage)."""
        if kind is None:
            kind = "learned" if self.entropy_model is not None else "prior"
        if kind == "learned":
            if self.entropy_model is None:
                raise ValueError(f"model {self.name} has no trained context model (run `vqcodec train-entropy`)")
            return coder_model(self.entropy_model)
        if kind != "prior":
            raise ValueError(f"unknown context model {kind!r}")
        if self.stages != 1:  # the prior's pair experts model one index grid, not S stages
            raise ValueError(f"model {self.name} has {self.stages} stages; entropy coding of a residual model needs "
                             "its trained context model (run `vqcodec train-entropy`)")
        if self.prior is None:
            raise ValueError(f"model {self.name} has no index prior (run `vqcodec prepare`) and no trained context "
                             "model (`vqcodec train-entropy`), which the entropy coder needs")
        return ContextModel.from_prior(self.prior[0], DEFAULT_BETA)


def require_own(codec: Codec, what: str) -> None:
    """Refuse (``CheckpointError``) a plug-in model for ``what``: a step that trains vqcodec's own
    VQ-VAE architecture (its decoder or codebook)."""
    if not isinstance(codec.model, VQVAE):
        raise CheckpointError(f"{what} trains vqcodec's own VQ-VAE; {codec.name} is a plug-in model (train it with "
                              "its own code, then `vqcodec prepare` it again)")


def check_per_stage(stages: int, **side) -> None:
    """Refuse per-stage side information (name=value) that is neither None nor a tuple of
    ``stages`` (``Codec``'s and ``receivers.ReceiverContext``'s form); a ValueError."""
    for name, value in side.items():
        if value is not None and not (isinstance(value, tuple) and len(value) == stages):
            raise ValueError(f"{name} must be None or a tuple of one per stage ({stages}), got "
                             f"{type(value).__name__}" + (f" of {len(value)}" if isinstance(value, tuple) else ""))


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> 'cuda' when a CUDA device is visible, else 'cpu'."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CheckpointError(f"unknown device {device!r} (use cpu, cuda or auto)")
    return device


def load_codec(name=None, checkpoint: str | None = None, device: str = "cpu",
               precision: str = "auto", search=None, weights=None) -> Codec:
    """The codec of a model (``open_model``: a shipped name, a plug-in's name or spec with its
    ``weights``, a protocol object, or a vqcodec ``checkpoint``) with its side information.

    ``precision`` (``PRECISIONS``): the arithmetic of the decoder and the learned receiver:
    fp32, bf16 autocast (CPU or CUDA), fp16 autocast (CUDA only), or ``auto``: bf16 on a CPU
    with bf16 instructions, fp32 elsewhere (``precision.resolve_precision``). The codec holds
    the resolved one. The encoder and the quantiser always run in float32, so the transmitted
    indices never depend on it (unless ``search``: a ``SearchConfig``, a number of candidates, or
    a setting as ``SearchConfig.parse`` reads it, turns on the encoder-side index search, whose
    choices depend on the decoder's output)."""
    if search is not None and not isinstance(search, SearchConfig):
        try:
            search = SearchConfig.parse(search)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(str(exc)) from None
    elif search is not None and not search.active:
        search = None

    if precision not in PRECISIONS:
        raise CheckpointError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    device = resolve_device(device)
    try:
        precision = resolve_precision(precision, device)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    source = open_model(name, checkpoint, weights=weights, device=device)
    if search is not None and not hasattr(source.model, "quantizers"):
        raise CheckpointError(f"{source.label}: the encoder-side index search needs the encoder's outputs before "
                              "quantisation, which only vqcodec's own models expose")
    return codec_of(source, precision=precision, search=search)


def codec_of(source: ModelSource, precision: str = "fp32", search=None) -> Codec:
    """The codec of an opened model: its index assignment (identity unless its record holds one),
    index prior, learned receiver and entropy model, read from its side information."""
    model, meta_, label, stem = source.model, source.doc, source.label, source.stem
    S = model.stages
    assignment = identity_assignment(model.K)
    if meta_.get("assignment") is not None:
        try:
            assignment = check_assignment(np.asarray(meta_["assignment"]), model.K, S)
        except ValueError as exc:
            raise CheckpointError(f"{label}: invalid index assignment in checkpoint ({exc})") from None
    if stem is None:
        return Codec(name=label, model=model, meta=meta_, assignment=assignment, precision=precision, search=search)
    ppath = prior_path(stem)
    smoothing = {k: float(meta_["prior"][k]) for k in ("lam", "beta") if k in (meta_.get("prior") or {})}
    # a plug-in's prior counts only with its fingerprinted record (a stray file is not trusted)
    prior = load_prior(ppath, model.K, S, **smoothing) if ppath.exists() and (source.own or "prior" in meta_) else None
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
