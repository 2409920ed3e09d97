"""The receivers' registry and channel evidence: ``ReceiverContext`` (the receivers' view of a
codec), ``Decision``, ``register`` / ``get_receiver`` and the side-information checks, the
staging of a residual model (``stage_contexts``, ``only_stage``), per-bit LLRs (``bit_llrs``) and the naive
receiver. The receiver contract is in the package's docstring (``vqcodec.receivers``)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from channels import Received
from vqcodec.bits import bits_per_label, bits_to_labels, inverse_assignment, stage_assignment
from vqcodec.links import received_llr
from vqcodec.precision import on_cpu
from vqcodec.protocol import missing_capability
from vqcodec.zoo import check_per_stage


@dataclass(frozen=True)
class ReceiverContext:
    K: int
    assignment: np.ndarray  # index -> label, (K,); (S, K) per stage, or (K,) for all, for a residual model
    codebook: np.ndarray | None  # (K, d) float32; None: a model without codebooks (hard receivers only)
    channel: Any = None
    prior: tuple | None = None  # one IndexPrior per stage (as zoo.Codec's), None: no index prior
    context: tuple | None = None  # one learned context receiver (vqcodec.context.ContextNet) per stage, or None
    codebooks: np.ndarray | None = None  # (S, K, d) every residual stage's codebook (None: codebook[None])
    precision: str = "fp32"  # the learned context receiver's arithmetic (fp32 or bf16; it runs on the CPU)
    n_stages: int | None = None  # S of a model without codebooks (None: from ``codebooks``)

    def __post_init__(self):
        check_per_stage(self.stages, prior=self.prior, context=self.context)

    @property
    def stages(self) -> int:
        """S: ``n_stages`` when given, else the number of ``codebooks`` (1 without them)."""
        if self.n_stages is not None:
            return self.n_stages
        return 1 if self.codebooks is None else len(self.codebooks)

    @property
    def b(self) -> int:
        return bits_per_label(self.K)

    @property
    def inverse(self) -> np.ndarray:
        return inverse_assignment(self.assignment, self.K)


def receiver_context(codec, channel=None) -> ReceiverContext:
    """The receivers' view of a ``zoo.Codec`` for one channel (a model without codebooks: none
    in it, for the hard receivers)."""
    codebooks = codec.model.codebooks.detach().cpu().numpy() if codec.soft else None
    return ReceiverContext(K=codec.K, assignment=codec.assignment,
                           codebook=None if codebooks is None else codebooks[0], channel=channel,
                           prior=codec.prior, context=codec.context, codebooks=codebooks,
                           precision=on_cpu(codec.precision), n_stages=codec.stages)


@dataclass(frozen=True)
class Decision:
    indices: np.ndarray
    embeddings: np.ndarray | None = None


REGISTRY: dict[str, Callable[..., Decision]] = {}


def register(name: str, needs: str | None = None, staged: bool = False, soft: bool = False):
    """Register a receiver; ``needs`` names the side information it uses ('prior' or 'context',
    attributes of ``ReceiverContext`` and ``zoo.Codec``). ``staged``: the function decodes one
    stage, and a residual model's stages are decoded one by one (``stage_contexts``). ``soft``: it
    decodes code vectors, so the model needs codebooks (``vqcodec.protocol``'s soft members)."""
    def deco(fn):
        run = _per_stage(fn) if staged else fn
        REGISTRY[name] = run
        run.receiver_name = name
        run.needs = needs
        run.soft = soft
        return run
    return deco


def stage_contexts(ctx: ReceiverContext) -> list[ReceiverContext]:
    """One single-stage context per stage of a residual model (its assignment row, codebook, prior
    and context receiver, the last two tuples of one); ``[ctx]`` for a single-stage model."""
    if ctx.stages == 1:
        return [ctx]
    return [replace(ctx, assignment=stage_assignment(ctx.assignment, s), n_stages=1,
                    codebook=None if ctx.codebooks is None else ctx.codebooks[s], codebooks=None,
                    prior=_stage(ctx.prior, s), context=_stage(ctx.context, s)) for s in range(ctx.stages)]


def _stage(side: tuple | None, s: int) -> tuple | None:
    """Stage ``s``'s part of per-stage side information, as a single-stage context holds it."""
    return None if side is None else side[s:s + 1]


def only_stage(side: tuple | None):
    """The one part of a single-stage context's side information (``prior`` or ``context``; None
    when absent). A residual model's stages are decoded one by one (``stage_contexts``)."""
    if side is None:
        return None
    if len(side) != 1:
        raise ValueError(f"side information of {len(side)} stages: a receiver decodes one stage at a time "
                         "(stage_contexts)")
    return side[0]


def _per_stage(fn):
    @functools.wraps(fn)
    def run(received, grid, ctx: ReceiverContext) -> Decision:
        stages = stage_contexts(ctx)
        if len(stages) == 1:
            return fn(received, tuple(grid[-2:]), stages[0])
        h, w = grid[-2:]
        n = h * w * ctx.b
        if len(received) != n * len(stages):
            raise ValueError(f"{len(received)} received bits; {len(stages)} stages of {h}x{w} labels need "
                             f"{n * len(stages)}")
        parts = [fn(Received(received.hard[s * n:(s + 1) * n],
                             None if received.llr is None else received.llr[s * n:(s + 1) * n]), (h, w), c)
                 for s, c in enumerate(stages)]
        soft = parts[0].embeddings is not None  # one receiver: soft at every stage, or at none
        return Decision(indices=np.stack([p.indices for p in parts]),
                        embeddings=sum(p.embeddings for p in parts) if soft else None)
    return run


NEEDS_HELP = {"prior": "an index prior (build one with `vqcodec prepare`)",
              "context": "a learned context receiver (train one with `vqcodec train-receiver`)"}


def default_receivers(codec) -> list[str]:
    """naive, plus the best soft receiver the codec's side information allows (mmse for a
    residual model without a prior)."""
    if not codec.soft:  # hard receivers only
        return ["naive", "spatial"] if codec.prior is not None else ["naive"]
    if codec.context is not None:
        return ["naive", "learned-mmse"]
    if codec.prior is not None:
        return ["naive", "spatial-mmse"]
    if codec.stages > 1:  # a residual model before `vqcodec prepare`
        return ["naive", "mmse"]
    return ["naive"]


def missing_side_info(name: str, codec) -> str | None:
    """Why receiver ``name`` cannot run with ``codec`` (None when it can)."""
    needs = get_receiver(name).needs
    if needs is not None and getattr(codec, needs, None) is None:
        return f"receiver {name} needs {NEEDS_HELP[needs]}, and {codec.name} has none"
    if get_receiver(name).soft and not codec.soft:
        return missing_capability(codec.model, f"receiver {name}", codec.name)
    return None


def check_receivers(names, codec) -> list[str]:
    """The receivers a run uses with ``codec``: ``names`` (a list, or comma-separated text; None:
    ``default_receivers``), each known and given the side information it needs (else a one-line
    ``ValueError``)."""
    if names is None:
        return default_receivers(codec)
    if isinstance(names, str):
        names = [r.strip() for r in names.split(",") if r.strip()]
    names = list(names)
    unknown = [r for r in names if r not in REGISTRY]
    if unknown or not names:
        raise ValueError(f"unknown receiver {unknown[0] if unknown else ''!r} (known: {', '.join(sorted(REGISTRY))})")
    twice = sorted({r for r in names if names.count(r) > 1})
    if twice:
        raise ValueError(f"receiver {twice[0]} is named twice (each receiver is one curve)")
    for r in names:
        why = missing_side_info(r, codec)
        if why:
            raise ValueError(why)
    return names


def get_receiver(name: str) -> Callable[..., Decision]:
    if name not in REGISTRY:
        raise ValueError(f"unknown receiver {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


_TABLES: dict[tuple[int, bytes], np.ndarray] = {}


def nearest_valid_table(assignment: np.ndarray, K: int) -> np.ndarray:
    """label -> index for all 2^b labels: a used label maps to its index; an unused one
    (only when K is not a power of two) to the index whose label is nearest in Hamming
    distance, ties to the smaller label."""
    key = (K, np.asarray(assignment, dtype=np.int64).tobytes())
    if key not in _TABLES:
        inv = inverse_assignment(assignment, K)
        table = inv.copy()
        used = np.flatnonzero(inv >= 0)
        for lab in np.flatnonzero(inv < 0):
            dist = np.array([bin(int(lab) ^ int(u)).count("1") for u in used])
            table[lab] = inv[used[np.argmin(dist)]]
        _TABLES[key] = table
    return _TABLES[key]


@register("naive", staged=True)
def naive(received, grid, ctx: ReceiverContext) -> Decision:
    """Use the received label as it is (erased bits read as 0).

    A label that no index uses (K not a power of two) is replaced by the index
    of the nearest used label in Hamming distance, ties to the smaller label."""
    hard = received.hard
    bits = np.where(hard < 0, 0, hard).astype(np.uint8)
    labels = bits_to_labels(bits, ctx.b)
    idx = nearest_valid_table(ctx.assignment, ctx.K)[labels]
    return Decision(indices=idx.reshape(grid))


# --------------------------------------------------------------------------- channel evidence

def bit_llrs(received, channel, b: int) -> np.ndarray:
    """Per-bit LLRs float64 (n, b), llr = log P(0|y)/P(1|y): the channel's own soft output when it
    has one, else the hard decisions weighted by the channel's crossover probability
    (erased bits: 0); ``vqcodec.links.received_llr``, clipped to ``LLR_CLIP``."""
    return received_llr(received, channel).reshape(-1, b)
