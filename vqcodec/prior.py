"""Index statistics learned from training data: the prior the spatial receivers use.

From the index maps of the training images we count

* ``unigram[i]``: how often index i occurs;
* ``horizontal[i, j]``: how often index j sits right of index i;
* ``vertical[i, j]``: how often index j sits below index i.

The receivers use a pairwise Markov random field over the index grid,

    P(x) ∝ prod_s P(x_s) * prod_(s,t) [ P(x_s, x_t) / (P(x_s) P(x_t)) ]^beta,

i.e. unigram unaries and tempered pointwise mutual information (PMI) on
horizontal and vertical edges (beta < 1 compensates for the loops of the grid
double-counting evidence). Probabilities are add-alpha smoothed.

Stored beside the model as ``<stem>.prior.safetensors`` (float32 counts) so
it travels with the checkpoint; never pickled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqcodec.checkpoint import CheckpointError, checkpoint_paths, stage_prefixes
from vqcodec.files import replace_atomically


def count_pairs(indices: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unigram (K,), horizontal (K, K), vertical (K, K)) counts of one index grid (h, w)."""
    g = np.asarray(indices, dtype=np.int64)
    uni = np.bincount(g.ravel(), minlength=K).astype(np.float64)
    hor = np.bincount((g[:, :-1] * K + g[:, 1:]).ravel(), minlength=K * K).reshape(K, K).astype(np.float64)
    ver = np.bincount((g[:-1, :] * K + g[1:, :]).ravel(), minlength=K * K).reshape(K, K).astype(np.float64)
    return uni, hor, ver


@dataclass(frozen=True, eq=False)
class IndexPrior:
    unigram: np.ndarray  # counts (K,)
    horizontal: np.ndarray  # counts (K, K): [left, right]
    vertical: np.ndarray  # counts (K, K): [up, down]
    alpha: float = 0.5  # add-alpha smoothing of the unigram counts
    lam: float = 0.6  # weight of the empirical pair distribution (Jelinek-Mercer)
    beta: float = 0.8  # PMI temperature the receivers use (tuned with lam on held-out training images)

    @property
    def K(self) -> int:
        return int(self.unigram.shape[0])

    def log_unigram(self) -> np.ndarray:
        u = self.unigram + self.alpha
        return np.log(u / u.sum())

    def pmi(self, direction: str) -> np.ndarray:
        """Smoothed log P(i, j) / (P(i) P(j)) for 'h' ([left, right]) or 'v' ([up, down]), float64 (K, K).

        Jelinek-Mercer interpolation of the empirical pair distribution with
        independence, P(i, j) = lam * P_emp(i, j) + (1 - lam) * P(i) P(j), so
        PMI = log(lam * P_emp(i, j) / (P(i) P(j)) + 1 - lam): pairs never seen in
        training get log(1 - lam), not -inf, and seen pairs keep their evidence.
        """
        pairs = self.horizontal if direction == "h" else self.vertical
        n = max(pairs.sum(), 1.0)
        row = (pairs.sum(axis=1) + self.alpha) / (n + self.alpha * self.K)
        col = (pairs.sum(axis=0) + self.alpha) / (n + self.alpha * self.K)
        return np.log(self.lam * (pairs / n) / (row[:, None] * col[None, :]) + (1.0 - self.lam))

    # --- statistics reported to users -------------------------------------------------
    def entropies(self) -> dict:
        """H(X), H(X | left), H(X | up) in bits, from the (unsmoothed) training pair counts."""
        def cond(pairs):
            n = pairs.sum()
            pj = pairs / n
            first = pj.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(pj > 0, pj * np.log2(pj / first), 0.0)
            return float(-t.sum())

        pu = self.unigram / self.unigram.sum()
        h = float(-(pu[pu > 0] * np.log2(pu[pu > 0])).sum())
        return {"H": h, "H_given_left": cond(self.horizontal), "H_given_up": cond(self.vertical),
                "log2K": float(np.log2(self.K))}

    def cross_entropy(self, grids: list[np.ndarray], beta: float = 1.0) -> dict:
        """Bits per index of held-out grids under (a) the unigram, (b) the product of left and up
        models, log P(x | l, u) = log P(x) + beta * (PMI_h(l, x) + PMI_v(u, x)) - log Z."""
        lu = self.log_unigram()
        ph, pv = self.pmi("h"), self.pmi("v")
        tot_u = tot_p = 0.0
        n = 0
        for g in grids:
            g = np.asarray(g, dtype=np.int64)
            tot_u -= lu[g].sum()
            inner = g[1:, 1:]
            left, up = g[1:, :-1], g[:-1, 1:]
            logits = lu[None, :] + beta * (ph[left.ravel()] + pv[up.ravel()])
            m = logits.max(axis=1, keepdims=True)
            logits -= m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
            tot_p -= logits[np.arange(inner.size), inner.ravel()].sum()
            tot_p -= lu[g[0]].sum() + lu[g[1:, 0]].sum()  # border: unigram
            n += g.size
        return {"unigram_bits": tot_u / n / np.log(2), "context_bits": tot_p / n / np.log(2)}


def prior_path(model_path) -> Path:
    w, _ = checkpoint_paths(model_path)
    return w.with_suffix(".prior.safetensors")


def save_prior(priors: tuple[IndexPrior, ...], path) -> None:
    """Store a model's index priors, one per stage (a tuple of one for a single-stage model; keys
    ``stage{s}.`` for several, none for one)."""
    from safetensors.numpy import save_file  # safetensors only where a file is saved or loaded

    tensors = {}
    for pre, p in zip(stage_prefixes(len(priors)), priors):
        tensors.update({pre + "unigram": p.unigram.astype(np.float32), pre + "horizontal": p.horizontal.astype(np.float32),
                        pre + "vertical": p.vertical.astype(np.float32)})
    replace_atomically(path, lambda tmp: save_file(tensors, str(tmp)))


def load_prior(path, K: int, stages: int = 1, **smoothing) -> tuple[IndexPrior, ...]:
    """The index priors stored at ``path``: a tuple of one per stage (of one for ``stages`` 1)."""
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.numpy import load_file

    try:
        t = load_file(str(path))
        priors = tuple(IndexPrior(t[pre + "unigram"].astype(np.float64), t[pre + "horizontal"].astype(np.float64),
                                  t[pre + "vertical"].astype(np.float64), **smoothing) for pre in stage_prefixes(stages))
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt index prior ({exc.__class__.__name__})") from None
    for prior in priors:
        if prior.unigram.shape != (K,) or prior.horizontal.shape != (K, K) or prior.vertical.shape != (K, K):
            raise CheckpointError(f"{path}: index prior does not match K={K}")
    return priors


def learn_prior(grids, K: int) -> IndexPrior:
    uni = np.zeros(K)
    hor = np.zeros((K, K))
    ver = np.zeros((K, K))
    for g in grids:
        u, h, v = count_pairs(g, K)
        uni += u
        hor += h
        ver += v
    return IndexPrior(uni, hor, ver)


def learn_stage_priors(grids, K: int) -> tuple[IndexPrior, ...]:
    """One prior per stage of a residual model's index maps (S, h, w); of one-stage maps (h, w), a
    tuple of one."""
    if np.ndim(grids[0]) == 2:
        return (learn_prior(grids, K),)
    return tuple(learn_prior([np.asarray(g)[s] for g in grids], K) for s in range(np.shape(grids[0])[0]))
