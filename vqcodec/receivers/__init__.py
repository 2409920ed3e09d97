"""Receivers, the index decoders: received bits (+ channel evidence) -> indices or a soft posterior.

Every receiver is registered by name with ``@register("name")`` and has the
signature ``receiver(received, grid, ctx) -> Decision``:

* ``received``: ``channels.Received`` for the payload bits of one image
  (``hard`` int8 in {0, 1, -1}, ``llr`` float32 or None);
* ``grid``: ``(h, w)``, the index grid shape, or ``(S, h, w)`` for a residual model;
* ``ctx``: ``ReceiverContext`` (K, bits per label, assignment, codebook,
  index prior, the channel object).

``Decision.indices`` is always the hard estimate (h, w) or (S, h, w); ``embeddings``
(h, w, d), when not None, are the code vectors to decode instead (e.g. the
MMSE estimate sum_k q_k e_k; for a residual model summed over the stages).

A residual model's payload is its stages one after the other, each with its own
assignment row, codebook and index prior (``stage_contexts``; a context's ``prior`` and
``context`` hold one per stage, a single-stage one's part is ``only_stage``): the receivers
registered with ``staged=True`` decode each stage as a single-stage grid of its own
(channel evidence and the stage's spatial statistics) and add the stages' code vectors.

Modules: ``registry`` (the registry, ``ReceiverContext``, channel evidence, the naive receiver),
``spatial`` (loopy BP: map, mmse, spatial, spatial-mmse), ``burst`` (the burst-state
forward-backward), ``learned`` (learned, learned-mmse). Importing the package registers every
receiver.
"""
from vqcodec.receivers import burst, learned, spatial  # noqa: F401  (registers their receivers)
from vqcodec.receivers.burst import has_memory, memory_llrs
from vqcodec.receivers.registry import (
    NEEDS_HELP,
    REGISTRY,
    Decision,
    ReceiverContext,
    bit_llrs,
    check_receivers,
    default_receivers,
    get_receiver,
    missing_side_info,
    only_stage,
    receiver_context,
    register,
    stage_contexts,
)
from vqcodec.receivers.spatial import DEFAULT_SPATIAL, Posterior, SpatialParams, spatial_posterior

__all__ = ["DEFAULT_SPATIAL", "NEEDS_HELP", "REGISTRY", "Decision", "Posterior", "ReceiverContext", "SpatialParams",
           "bit_llrs", "check_receivers", "default_receivers", "get_receiver", "has_memory", "memory_llrs",
           "missing_side_info", "only_stage", "receiver_context", "register", "spatial_posterior", "stage_contexts"]
