"""The burst-state receiver's channel memory: a forward-backward over a Gilbert-Elliott channel's
good/bad Markov chain (numba kernel and its numpy reference) turns a first pass's posterior into
per-bit LLRs that nearly erase the bits inside a burst."""
from __future__ import annotations

import numpy as np
from numba import njit

from vqcodec.bits import labels_to_bits
from vqcodec.receivers.registry import ReceiverContext

# the first (detection) pass on a channel with memory sees the memoryless LLRs scaled by this, so that
# index context can overrule a received label that a burst scrambled; tuned on 16 held-out BSDS500
# images at burst p = 0.01, 0.03 (mean burst 10 bits): 0.15 / 0.25 / 0.35 / 0.5 gave a mean loss of
# 1.99 / 1.95 / 1.94 / 2.05 dB against 2.16 for one memoryless pass
MEMORY_FIRST_PASS_SCALE = 0.35


@njit(cache=True)
def _ge_extrinsic_nb(e, pi_bad, p_gb, p_bg, p_good, p_bad):
    """Forward-backward over a two-state (good/bad) Markov chain of bit-error probabilities.

    e: float64 (n,), in (0, 1), the first pass's probability that bit j is in error; the observation
    likelihood of state s is ``e_j p_s + (1 - e_j)(1 - p_s)``. Returns the extrinsic
    crossover probability of every bit, ``sum_s P(s_j | e without e_j) p_s``, float64 (n,).
    """
    n = e.shape[0]
    fa = np.empty((n, 2))  # forward messages into bit j (its own evidence excluded), normalised
    bb = np.empty((n, 2))  # backward messages into bit j (its own evidence excluded), normalised
    pr = (p_good, p_bad)
    lik = np.empty((n, 2))  # observation likelihood of each state at each bit
    for j in range(n):
        lik[j, 0] = e[j] * pr[0] + (1.0 - e[j]) * (1.0 - pr[0])
        lik[j, 1] = e[j] * pr[1] + (1.0 - e[j]) * (1.0 - pr[1])
    g, b = 1.0 - pi_bad, pi_bad
    for j in range(n):
        fa[j, 0], fa[j, 1] = g, b
        g, b = g * lik[j, 0], b * lik[j, 1]
        t = g + b
        g, b = g / t, b / t
        g, b = g * (1.0 - p_gb) + b * p_bg, g * p_gb + b * (1.0 - p_bg)
    g, b = 1.0, 1.0
    for j in range(n - 1, -1, -1):
        bb[j, 0], bb[j, 1] = g, b
        g, b = g * lik[j, 0], b * lik[j, 1]
        g, b = (1.0 - p_gb) * g + p_gb * b, p_bg * g + (1.0 - p_bg) * b
        t = g + b
        g, b = g / t, b / t
    out = np.empty(n)
    for j in range(n):
        g = fa[j, 0] * bb[j, 0]
        b = fa[j, 1] * bb[j, 1]
        out[j] = (g * pr[0] + b * pr[1]) / (g + b)
    return out


def _ge_extrinsic_ref(e, pi_bad, p_gb, p_bg, p_good, p_bad):
    """Plain numpy reference of ``_ge_extrinsic_nb``: unnormalised forward-backward in log space."""
    e = np.asarray(e, dtype=np.float64)
    n = e.size
    pr = np.array([p_good, p_bad])
    T = np.array([[1 - p_gb, p_gb], [p_bg, 1 - p_bg]])
    with np.errstate(divide="ignore"):
        logL = np.log(e[:, None] * pr[None, :] + (1 - e[:, None]) * (1 - pr[None, :]))
        logT = np.log(T)
    la = np.zeros((n, 2))  # log forward message into j, own evidence excluded
    with np.errstate(divide="ignore"):
        la[0] = np.log([1 - pi_bad, pi_bad])
    for j in range(1, n):
        prev = la[j - 1] + logL[j - 1]
        la[j] = np.logaddexp(prev[0] + logT[0], prev[1] + logT[1])
    lb = np.zeros((n, 2))
    for j in range(n - 2, -1, -1):
        nxt = lb[j + 1] + logL[j + 1]
        lb[j] = np.logaddexp(logT[:, 0] + nxt[0], logT[:, 1] + nxt[1])
    lg = la + lb
    w = np.exp(lg - lg.max(axis=1, keepdims=True))
    return (w @ pr) / w.sum(axis=1)


def memory_llrs(llr: np.ndarray, q: np.ndarray, ctx: ReceiverContext) -> np.ndarray:
    """Per-bit LLRs (n, b) that use a burst channel's memory.

    ``q`` (n, K) is a first pass's posterior from the memoryless LLRs ``llr``. The probability
    that each received bit is wrong under q goes through a forward-backward over the channel's
    good/bad Markov chain (``_ge_extrinsic_nb``, in transmission order); each bit's extrinsic
    crossover probability p_j then gives |llr_j| = log((1 - p_j) / p_j), never above the
    memoryless |llr_j|. Bits inside a burst get LLRs near 0 (nearly erased) and the receiver
    conceals them from their neighbours; the others keep their memoryless reliability. Erased
    bits (llr 0) stay 0. This is one turbo-style iteration between the source decoder and the
    channel's state estimator (cf. Garcia-Frias & Villasenor, joint source-channel decoding over
    hidden Markov channels, 1997-2001)."""
    ch = ctx.channel
    label_bits = labels_to_bits(ctx.assignment, ctx.b).reshape(-1, ctx.b).astype(np.float64)  # (K, b)
    p_one = np.asarray(q, dtype=np.float64) @ label_bits  # (n, b): P(sent bit = 1)
    e = np.clip(np.where(llr < 0, 1.0 - p_one, p_one).reshape(-1), 1e-12, 1.0 - 1e-12)  # P(received bit wrong)
    crossover = _ge_extrinsic_nb(np.ascontiguousarray(e), float(ch.pi_bad), float(ch.p_gb), float(ch.p_bg),
                                 float(ch.p_good), float(ch.p_bad)).reshape(llr.shape)
    with np.errstate(divide="ignore"):
        mag = np.minimum(np.abs(llr), np.log1p(-crossover) - np.log(crossover))
    return np.where(llr == 0, 0.0, np.where(llr < 0, -mag, mag))


def has_memory(channel) -> bool:
    """A channel whose errors come from a good/bad Markov chain (Gilbert-Elliott)."""
    return all(hasattr(channel, a) for a in ("pi_bad", "p_gb", "p_bg", "p_good", "p_bad"))
