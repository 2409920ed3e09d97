"""The learned receivers' wrappers: the learned context receiver (``vqcodec.context``) as the
``learned`` and ``learned-mmse`` receivers, with the burst-state pass on a channel with memory."""
from __future__ import annotations

import numpy as np

from vqcodec.context import context_posterior
from vqcodec.receivers.burst import MEMORY_FIRST_PASS_SCALE, has_memory, memory_llrs
from vqcodec.receivers.registry import NEEDS_HELP, Decision, ReceiverContext, bit_llrs, only_stage, register


def _context_posterior(received, grid, ctx: ReceiverContext) -> np.ndarray:
    """The learned posterior (h, w, K). On a channel with memory: a detection pass on tempered
    LLRs (``MEMORY_FIRST_PASS_SCALE``), then the posterior from ``memory_llrs``."""
    net = only_stage(ctx.context)
    if net is None:
        raise ValueError(f"the learned receivers need {NEEDS_HELP['context']}, and this model has none")
    llr = bit_llrs(received, ctx.channel, ctx.b)
    if not has_memory(ctx.channel):
        return context_posterior(net, llr, grid, ctx.precision)
    q1 = context_posterior(net, llr * MEMORY_FIRST_PASS_SCALE, grid, ctx.precision)
    return context_posterior(net, memory_llrs(llr, q1.reshape(-1, ctx.K), ctx), grid, ctx.precision)


@register("learned", needs="context", staged=True)
def learned_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Learned context receiver (CNN over the channel evidence of the grid); hard MAP indices."""
    q = _context_posterior(received, grid, ctx)
    return Decision(indices=np.argmax(q, axis=-1).astype(np.int64))


@register("learned-mmse", needs="context", staged=True, soft=True)
def learned_mmse_receiver(received, grid, ctx: ReceiverContext) -> Decision:
    """Learned context receiver; the decoder gets the expected codeword sum_k q_k e_k (MMSE)."""
    q = _context_posterior(received, grid, ctx)
    return Decision(indices=np.argmax(q, axis=-1).astype(np.int64),
                    embeddings=(q @ np.asarray(ctx.codebook, dtype=np.float32)).astype(np.float32))
