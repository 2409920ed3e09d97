"""Entropy-coded index streams: ANS (``constriction``) driven by a causal context model.

The fixed-length stream spends log2 K bits on every index. Indices of natural images are far from
uniform and from independent, so an entropy coder driven by a model of them spends less:

* **The context model** (``ContextModel``) is log-linear in the already-coded neighbours of an
  index: log P(x | n_1 .. n_m) = bias[x] + sum_k table_k[n_k, x] - log Z (a neighbour outside
  the grid contributes nothing). A model's own trained one (``<stem>.entropy.safetensors``,
  ``vqcodec train-entropy``: the 12 causal neighbours of ``LEARNED_OFFSETS``, low-rank tables,
  trained by cross-entropy on the BSDS500 index maps) is used where it ships; otherwise the
  product of the left and upper pair experts of the spatial receivers' index prior
  (``vqcodec.prior``, beta = 1). On Kodak with f4-k256: 4.63 against 5.17 bits per index (8 fixed).
* **The order** is a wavefront, t = a i + j with the smallest slope a that puts every neighbour of
  a site on an earlier wavefront (a = 1 for left and up: the anti-diagonals; 3 for the learned
  model's neighbours): the decoder predicts a whole wavefront at once (a (h - 1) + w batched steps
  instead of h w single ones).
* **Residual (multi-stage) models** code their (S, h, w) maps stage by stage, first stage first
  (``StagedContextModel``: one context model per stage). Stage s > 0 also sees the indices of
  stage s - 1 around the same site (``CROSS_OFFSETS``, offsets (-1, di, dj): that stage is
  already decoded, so they need not be causal).
* **The coder** is constriction's ANS (``stream.stack.AnsCoder``, 32-bit words, categorical models
  quantised to 24-bit probabilities with ``perfect=False``): its output is within 0.1% of the
  model's ideal code length, the sum of -log2 P (``code_length``), on a Kodak index map.

Encoder and decoder compute the probabilities of each wavefront with the same function on the same
inputs. A CRC-32 of the indices, kept in the file header, turns a stream decoded with a different
model, a damaged file, or (rare) a machine whose float arithmetic rounds a probability differently,
into an error instead of a wrong image.
"""
from __future__ import annotations

import functools
import hashlib
import zlib
from pathlib import Path

import numpy as np

from vqcodec.checkpoint import CheckpointError, checkpoint_paths, stage_prefixes
from vqcodec.files import replace_atomically
from vqcodec.prior import IndexPrior

CODING = "ans-causal"  # the file header's "coding" for streams of this module
DEFAULT_BETA = 1.0
#: the causal neighbours of the learned context model, (row, column) offsets
LEARNED_OFFSETS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0),
                   (-1, 2), (-1, -2), (-2, -1), (-2, 1), (0, -3), (-3, 0))
#: a later stage's neighbours in the stage before it, (stage, row, column) offsets
CROSS_OFFSETS = ((-1, 0, 0), (-1, 0, -1), (-1, 0, 1), (-1, -1, 0), (-1, 1, 0))


#: The ANS coder's probability precision (constriction's default stack coder: 24 bits)
PROB_BITS = 24


class EntropyStreamError(ValueError):
    """An entropy-coded payload that does not decode (one-line message)."""


class ContextModel:
    """A log-linear causal model of the indices,

        log P(x | neighbours) = bias[x] + sum_k table_k[n_k, x] - log Z,

    over the neighbours n_k at ``offsets`` (row, column), each above or left of x (a neighbour
    outside the grid contributes nothing), or (stage, row, column) with stage < 0: anywhere in an
    earlier stage of a residual model's map. ``probabilities(neighbours)`` gives rows of K
    probabilities for an (n, len(offsets)) array of neighbour indices (-1: none).

    Two sources: ``from_prior`` (the spatial receivers' statistics, left and up) and
    ``from_factors`` (a model trained on index maps, ``vqcodec.learn.entropy``; low-rank tables
    table_k = emb_k @ out^T, computed in float64 and kept in float32 on first use, so loading a
    model that never entropy-codes costs nothing)."""

    def __init__(self, bias: np.ndarray, tables, offsets, kind: str):
        self.bias = np.asarray(bias, dtype=np.float64)
        self.offsets = tuple(_offset(o) for o in offsets)
        self.kind = kind
        self.K = int(self.bias.shape[0])
        self._tables = tables  # an array, or a function that makes it
        if not callable(tables):
            self._check(np.asarray(tables))
        same = [o for o in self.offsets if len(o) == 2]
        if any(di > 0 or (di == 0 and dj >= 0) for di, dj in same):
            raise ValueError(f"context offsets must point above or to the left, got {self.offsets}")
        self.slope = wavefront_slope(same)
        self.lookback = max([-o[0] for o in self.offsets if len(o) == 3], default=0)  # earlier stages used

    def _check(self, tables: np.ndarray) -> np.ndarray:
        if tables.shape != (len(self.offsets), self.K, self.K):
            raise ValueError(f"context tables of shape {tables.shape} do not match {len(self.offsets)} "
                             f"offsets and K={self.K}")
        return tables

    @property
    def tables(self) -> np.ndarray:
        if callable(self._tables):
            self._tables = self._check(np.asarray(self._tables()))
        return np.asarray(self._tables)

    @functools.cached_property
    def _padded(self) -> np.ndarray:
        """The tables with a row of zeros appended: index -1 (no neighbour) adds nothing."""
        t = self.tables
        return np.concatenate([t, np.zeros((t.shape[0], 1, t.shape[2]), t.dtype)], axis=1)

    @classmethod
    def from_prior(cls, prior: IndexPrior, beta: float = DEFAULT_BETA) -> ContextModel:
        """log P(x | l, u) = log P(x) + beta (PMI_h(l, x) + PMI_v(u, x)) - log Z: the product of
        the pair experts of ``vqcodec.prior``."""
        if not (np.isfinite(beta) and 0.0 <= beta <= 4.0):
            raise ValueError(f"beta must be in [0, 4], got {beta}")
        tables = np.stack([beta * prior.pmi("h"), beta * prior.pmi("v")])
        return cls(prior.log_unigram(), tables, ((0, -1), (-1, 0)), "prior")

    @classmethod
    def from_factors(cls, bias, emb, out, offsets) -> ContextModel:
        emb = np.asarray(emb, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        if emb.ndim != 3 or out.ndim != 2 or emb.shape[2] != out.shape[1]:
            raise ValueError(f"context factors of shapes {emb.shape} and {out.shape} do not fit")
        return cls(bias, lambda: np.einsum("okr,xr->okx", emb, out).astype(np.float32), offsets, "learned")

    @functools.cached_property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the model's tables: the decoder must hold the same."""
        h = hashlib.sha256(repr(self.offsets).encode())
        for t in (self.bias, self.tables):
            h.update(np.ascontiguousarray(t, dtype=t.dtype.newbyteorder("<")).tobytes())
        return h.hexdigest()[:16]

    def log_probabilities(self, neighbours: np.ndarray) -> np.ndarray:
        """(n, K) natural-log probabilities of the next index given its neighbours (n, offsets),
        -1 where a neighbour is missing."""
        nb = np.asarray(neighbours, dtype=np.int64)
        tables = self._padded
        logits = np.broadcast_to(self.bias, (nb.shape[0], self.K)).copy()
        for k in range(len(self.offsets)):
            logits += tables[k][nb[:, k]]  # -1 (no neighbour): the zero row, x + 0.0 == x exactly
        logits -= logits.max(axis=1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return logits

    def probabilities(self, neighbours: np.ndarray) -> np.ndarray:
        return np.exp(self.log_probabilities(neighbours))


def full_offset(o) -> tuple[int, int, int]:
    """An offset as (stage, row, column), stage 0 for a same-stage (row, column) one."""
    return (0, *o) if len(o) == 2 else tuple(o)


def _offset(o) -> tuple[int, ...]:
    """(row, column) in the same stage, or (stage, row, column) with stage < 0 (stage 0: the
    same stage, written (row, column))."""
    o = tuple(int(v) for v in o)
    if len(o) == 3 and o[0] == 0:
        o = o[1:]
    if len(o) not in (2, 3) or (len(o) == 3 and o[0] > 0):
        raise ValueError(f"a context offset is (row, column) or (earlier stage < 0, row, column), got {o}")
    return o


class StagedContextModel:
    """The context models of a residual model's S stages, one per stage, coded first stage first
    (stage s's model may look at earlier stages). ``fingerprint`` covers all of them."""

    def __init__(self, stages):
        self.stages = list(stages)
        if not self.stages or len({m.K for m in self.stages}) != 1:
            raise ValueError("a staged context model needs at least one stage, all of the same K")
        for s, m in enumerate(self.stages):
            if m.lookback > s:
                raise ValueError(f"stage {s}'s context model looks {m.lookback} stages back")
        self.K = self.stages[0].K
        self.kind = self.stages[0].kind

    @functools.cached_property
    def fingerprint(self) -> str:
        h = hashlib.sha256(b"staged")
        for m in self.stages:
            h.update(m.fingerprint.encode())
        return h.hexdigest()[:16]


def wavefront_slope(offsets) -> int:
    """The smallest a >= 1 with a * di + dj < 0 for every offset: along t = a i + j every
    neighbour of a site comes on an earlier wavefront."""
    a = 1
    for di, dj in offsets:
        if di < 0:
            a = max(a, dj // -di + 1)
    return a


def wavefront(h: int, w: int, slope: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) of each wavefront slope * i + j = t, t = 0 .. slope (h - 1) + w - 1, rows
    ascending (slope 1: the anti-diagonals)."""
    out = []
    for t in range(slope * (h - 1) + w):
        rows = np.arange(max(0, -((w - 1 - t) // slope)), min(h - 1, t // slope) + 1)
        out.append((rows, t - slope * rows))
    return out


def _neighbours(maps: np.ndarray, s: int, rows: np.ndarray, cols: np.ndarray, offsets) -> np.ndarray:
    """Neighbour indices (n, offsets) of the sites (rows, cols) of stage ``s`` of ``maps`` (S, h, w);
    -1 outside the grid."""
    _, h, w = maps.shape
    out = np.full((rows.size, len(offsets)), -1, dtype=np.int64)
    for k, o in enumerate(offsets):
        ds, di, dj = full_offset(o)
        r, c = rows + di, cols + dj
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out[ok, k] = maps[s + ds, r[ok], c[ok]]
    return out


def _stage_models(model) -> list[ContextModel]:
    return model.stages if isinstance(model, StagedContextModel) else [model]


def _check_grid(grid, model) -> np.ndarray:
    """``grid`` as int64 maps (S, h, w): (h, w) for a single model, (S, h, w) for a staged one."""
    g = np.asarray(grid)
    S = len(_stage_models(model))
    want = 2 if not isinstance(model, StagedContextModel) else 3
    if g.ndim != want or g.size == 0 or (want == 3 and g.shape[0] != S):
        shape = "(h, w)" if want == 2 else f"({S}, h, w)"
        raise ValueError(f"an index grid for this context model must be a non-empty {shape} array, got shape {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"an index grid must hold integers, got {g.dtype}")
    if g.min() < 0 or g.max() >= model.K:
        raise ValueError(f"indices must be in [0, {model.K})")
    return g.astype(np.int64).reshape(S, *g.shape[-2:])


def _steps(model, h: int, w: int):
    """(stage, its context model, rows, cols) of every wavefront in coding order."""
    for s, m in enumerate(_stage_models(model)):
        for rows, cols in wavefront(h, w, m.slope):
            yield s, m, rows, cols


def site_bits(maps: np.ndarray, model: ContextModel | StagedContextModel, stage: int, rows: np.ndarray,
              cols: np.ndarray) -> np.ndarray:
    """-log2 P(x | neighbours) of the indices of ``stage`` at (rows, cols) of the int64 maps (S, h, w)
    (a whole grid is known, so no coding order is needed: any set of sites at once)."""
    m = _stage_models(model)[stage]
    logp = m.log_probabilities(_neighbours(maps, stage, rows, cols, m.offsets))
    return -logp[np.arange(rows.size), maps[stage, rows, cols]] / np.log(2.0)


def dependents(model: ContextModel | StagedContextModel, stage: int) -> list[tuple[int, int, int]]:
    """(stage, row, column) offsets from a site of ``stage`` to every site whose code length
    depends on its index: the site itself, (0, 0, 0), first; then the sites (of its stage or a later
    one) that have it among their neighbours."""
    out = [(0, 0, 0)]
    for t, m in enumerate(_stage_models(model)):
        for o in m.offsets:
            ds, di, dj = full_offset(o)
            if t + ds == stage:
                out.append((t - stage, -di, -dj))
    return out


def code_length(grid, model: ContextModel | StagedContextModel) -> float:
    """The model's ideal code length of ``grid`` in bits: the sum of -log2 P(x | neighbours)."""
    g = _check_grid(grid, model)
    rows, cols = (a.ravel() for a in np.indices(g.shape[1:]))
    return float(sum(site_bits(g, model, s, rows, cols).sum() for s in range(g.shape[0])))


def _family():
    import constriction  # constriction only where indices are entropy-coded

    return constriction.stream.model.Categorical(perfect=False)


def indices_crc(grid: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(grid, dtype="<u2").tobytes())


def encode_indices(grid, model: ContextModel | StagedContextModel) -> bytes:
    """The ANS bitstream of an index grid (h, w), or (S, h, w) with a staged model: little-endian
    32-bit words."""
    import constriction  # constriction only where indices are entropy-coded

    g = _check_grid(grid, model)
    family = _family()
    coder = constriction.stream.stack.AnsCoder()
    for s, m, rows, cols in reversed(list(_steps(model, *g.shape[1:]))):  # a stack: the last wavefront first
        probs = m.probabilities(_neighbours(g, s, rows, cols, m.offsets))
        coder.encode_reverse(g[s, rows, cols].astype(np.int32), family, probs)
    return coder.get_compressed().astype("<u4").tobytes()


def decode_indices(data: bytes, h: int, w: int, model: ContextModel | StagedContextModel,
                   crc: int | None = None) -> np.ndarray:
    """The index grid (h, w) int64, or (S, h, w) with a staged model, of ``encode_indices``'s
    bitstream; ``crc`` (``indices_crc`` of the encoded grid) is checked when given. Raises
    ``EntropyStreamError`` on a stream that does not decode."""
    import constriction  # constriction only where indices are entropy-coded

    if len(data) % 4:
        raise EntropyStreamError(f"entropy-coded payload of {len(data)} bytes is not a whole number of words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if words.size and words[-1] == 0:  # an ANS stream's last word is its nonzero head
        raise EntropyStreamError("entropy-coded payload is truncated")
    # (an empty stream is valid: indices the model is nearly sure of need no words; the CRC
    # catches a payload truncated to nothing)
    family = _family()
    coder = constriction.stream.stack.AnsCoder(words)
    g = np.full((len(_stage_models(model)), h, w), -1, dtype=np.int64)
    # The bits the decoded indices cost cannot exceed the payload's (plus the coder's 64-bit head):
    # a short payload claiming a large grid (a crafted or damaged header) fails within the first
    # wavefronts that overspend it, not after decoding every index. The cost is bounded below (the
    # coder's quantised probabilities may be up to K * 2^-PROB_BITS above the model's).
    budget = 2.0 * (32.0 * words.size + 64.0) + 64.0  # twice the bits that can be there: a crafted header
    # still fails early, while a short valid stream (the coder's 64-bit head holds up to 64 bits of
    # indices; an empty payload decoded 11 indices whose model cost was over 64 bits) never does
    spent = 0.0
    slack = model.K * 2.0 ** -PROB_BITS
    try:
        for s, m, rows, cols in _steps(model, h, w):
            probs = m.probabilities(_neighbours(g, s, rows, cols, m.offsets))
            sym = coder.decode(family, probs)
            g[s, rows, cols] = sym
            p = probs[np.arange(len(sym)), np.clip(sym, 0, probs.shape[1] - 1)]
            spent -= float(np.log2(np.minimum(1.0, p + slack)).sum())
            if spent > budget:
                raise EntropyStreamError(f"entropy-coded payload of {len(data)} bytes is too short for the "
                                         f"{h}x{w} index grid its header claims (damaged or crafted)")
    except EntropyStreamError:
        raise
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise EntropyStreamError(f"entropy-coded payload does not decode ({exc.__class__.__name__})") from None
    if not coder.is_empty():
        raise EntropyStreamError("entropy-coded payload is corrupt (data left after the last index)")
    if g.min() < 0 or g.max() >= model.K:
        raise EntropyStreamError("entropy-coded payload decodes to indices out of range")
    if not isinstance(model, StagedContextModel):
        g = g[0]
    if crc is not None and indices_crc(g) != crc:
        raise EntropyStreamError("entropy-coded payload decodes to indices whose CRC-32 does not match the "
                                 "header (a different context model, or a damaged file)")
    return g


# --------------------------------------------------------------------------- storage


def entropy_model_path(model_path) -> Path:
    """``<stem>.entropy.safetensors``: a model's trained context model."""
    w, _ = checkpoint_paths(model_path)
    return w.with_suffix(".entropy.safetensors")


def _offsets_array(offsets) -> np.ndarray:
    """int32 (m, 2) for same-stage offsets only, else (m, 3) with the stage first (0: same stage)."""
    offs = [_offset(o) for o in offsets]
    if all(len(o) == 2 for o in offs):
        return np.asarray(offs, np.int32).reshape(-1, 2)
    return np.asarray([full_offset(o) for o in offs], np.int32)


def save_entropy_model(path, parts) -> None:
    """The factors of a trained context model, ``parts`` = [(bias, emb, out, offsets)], one per
    stage (float32; offsets int32, see ``_offsets_array``). One stage is stored under the keys
    bias, emb, out, offsets; several under stage<s>.bias and so on."""
    from safetensors.numpy import save_file  # safetensors only where a file is saved or loaded

    tensors = {}
    for pre, (bias, emb, out, offsets) in zip(stage_prefixes(len(parts)), parts):
        tensors.update({pre + "bias": np.asarray(bias, np.float32), pre + "emb": np.ascontiguousarray(emb, np.float32),
                        pre + "out": np.ascontiguousarray(out, np.float32), pre + "offsets": _offsets_array(offsets)})
    replace_atomically(path, lambda tmp: save_file(tensors, str(tmp)))


def _load_part(t: dict, pre: str, K: int, path) -> ContextModel:
    bias, emb, out, offsets = t[pre + "bias"], t[pre + "emb"], t[pre + "out"], t[pre + "offsets"]
    ok = (bias.shape == (K,) and emb.ndim == 3 and emb.shape[1] == K and out.ndim == 2
          and out.shape == (K, emb.shape[2]) and offsets.ndim == 2 and offsets.shape[0] == emb.shape[0]
          and offsets.shape[1] in (2, 3))
    if not ok:
        raise CheckpointError(f"{path}: context model does not match K={K}")
    if not all(np.isfinite(a).all() for a in (bias, emb, out)):
        raise CheckpointError(f"{path}: context model holds non-finite numbers")
    return ContextModel.from_factors(bias, emb, out, [tuple(o) for o in offsets.tolist()])


def coder_model(stages) -> ContextModel | StagedContextModel:
    """The entropy coder's model of per-stage context models: the one ``ContextModel`` of a
    single-stage model (it codes (h, w) grids), a ``StagedContextModel`` of a residual model's S
    ((S, h, w) grids). The two have different fingerprints, recorded in the files they code."""
    stages = tuple(stages)
    return stages[0] if len(stages) == 1 else StagedContextModel(stages)


def _load(path, K: int, stages: int) -> tuple[tuple[ContextModel, ...], ContextModel | StagedContextModel]:
    """(the per-stage context models stored at ``path``, their ``coder_model``)."""
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.numpy import load_file

    try:
        t = load_file(str(path))
        if stages > 1 and (f"stage{stages}.bias" in t or "bias" in t):
            raise CheckpointError(f"{path}: context model is not one of {stages} stages")
        parts = tuple(_load_part(t, pre, K, path) for pre in stage_prefixes(stages))
        return parts, coder_model(parts)
    except (SafetensorError, OSError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt context model ({exc.__class__.__name__})") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: invalid context model ({exc})") from None


def load_entropy_stages(path, K: int, stages: int = 1) -> tuple[ContextModel, ...]:
    """A model's trained context models: a tuple of one per stage (of one for ``stages`` 1)."""
    return _load(path, K, stages)[0]


def load_entropy_model(path, K: int, stages: int = 1) -> ContextModel | StagedContextModel:
    """A model's trained context model as the entropy coder uses it (``coder_model``): a
    ``ContextModel``, or for ``stages`` > 1 a ``StagedContextModel`` of that many stages."""
    return _load(path, K, stages)[1]
