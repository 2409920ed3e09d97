"""Receiver index decoders: received bits (+ channel evidence) -> indices or a soft posterior.

Every receiver is registered by name with ``@register("name")`` and has the
signature ``receiver(received, grid, ctx) -> Decision``:

* ``received``: ``channels.Received`` for the payload bits of one image
  (``hard`` int8 in {0, 1, -1}, ``llr`` float32 or None);
* ``grid``: ``(h, w)``, the index grid shape;
* ``ctx``: ``ReceiverContext`` (K, bits per label, assignment, codebook,
  index prior, the channel object).

``Decision.indices`` is always the hard estimate (h, w); ``embeddings``
(h, w, d), when not None, are the code vectors to decode instead (e.g. the
MMSE estimate sum_k q_k e_k).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vqcodec.bits import bits_per_label, bits_to_labels, inverse_assignment


@dataclass(frozen=True)
class ReceiverContext:
    K: int
    assignment: np.ndarray  # index -> label, (K,)
    codebook: np.ndarray  # (K, d) float32
    channel: Any = None
    prior: Any = None

    @property
    def b(self) -> int:
        return bits_per_label(self.K)

    @property
    def inverse(self) -> np.ndarray:
        return inverse_assignment(self.assignment, self.K)


@dataclass(frozen=True)
class Decision:
    indices: np.ndarray
    embeddings: np.ndarray | None = None


REGISTRY: dict[str, Callable[..., Decision]] = {}


def register(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        fn.receiver_name = name
        return fn
    return deco


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


@register("naive")
def naive(received, grid, ctx: ReceiverContext) -> Decision:
    """Use the received label as it is. Rule for what it cannot use as is: an erased
    bit is read as 0; a label that no index uses (K not a power of two) is replaced
    by the index of the nearest used label in Hamming distance."""
    hard = received.hard
    bits = np.where(hard < 0, 0, hard).astype(np.uint8)
    labels = bits_to_labels(bits, ctx.b)
    idx = nearest_valid_table(ctx.assignment, ctx.K)[labels]
    return Decision(indices=idx.reshape(grid))
