"""The codec protocol: what a discrete-token image model gives vqcodec, per level of service.

Any object with these members runs through the simulator; vqcodec's own ``VQVAE`` has them all,
and a model of yours gets them from ``wrap``. Shapes for a batch of B images of H x W pixels:

Required (the hard receivers ``naive``, ``map`` and, after ``vqcodec prepare``, ``spatial``;
index files; entropy coding after ``vqcodec prepare`` or ``train-entropy``):

* ``f`` (int): the stride; an image of H x W gives an index grid of h = ceil(H / f) x w = ceil(W / f).
* ``K`` (int, 2 .. 65536): the codebook size of every stage. It need not be a power of two: a
  label is sent in ceil(log2 K) bits, and a received label that no index uses is caught at the
  receiver.
* ``stages`` (int S >= 1): indices per site (residual or product stages, stage 0 first).
* ``encode(x)``: float32 (B, 3, H, W) in [0, 1], any H and W -> integer indices in [0, K),
  (B, h, w) for S = 1, (B, S, h, w) for S > 1. The padding rule is the model's: ``wrap`` pads
  to a multiple of f by reflection (replication where reflection cannot) unless told the model
  pads itself.
* ``decode(indices)``: (B, h, w), or (B, s, h, w) with 1 <= s <= S -> float images
  (B, 3, h f, w f), not necessarily clamped; vqcodec crops the padding and rounds.

Soft (``mmse``, ``spatial-mmse``, ``learned-mmse``; index assignment from the codebook's
geometry in ``prepare``; decoding a learned receiver's expected code vector):

* ``codebooks``: float tensor (S, K, d), each stage's code vectors in index order.
* ``decode_embeddings(z)``: z float (B, d, h, w), any code vector per site (the sum over
  stages of the stages' code vectors) -> images, with ``decode_embeddings(e[i]) == decode(i)``
  for hard indices i.

A model without the soft members runs with the hard receivers; the soft ones are refused in one
line naming what is missing (``missing_capability``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vqcodec.images import pad_tensor

REQUIRED = ("f", "K", "stages", "encode", "decode")
SOFT = ("codebooks", "decode_embeddings")
PADS = ("reflect", "model")


class ProtocolError(ValueError):
    """A model that does not satisfy the codec protocol, or broke it at run time (one line)."""


def check_model(model, name: str = "model") -> None:
    """Refuse (``ProtocolError``) an object without the required members or with f, K or S out of
    range; the soft members are optional (``has_codebooks``)."""
    missing = [m for m in REQUIRED if not hasattr(model, m)]
    if missing:
        raise ProtocolError(f"{name}: not a codec model: it has no {', '.join(missing)} "
                            "(see vqcodec.protocol; wrap your module with vqcodec.wrap)")
    for attr, lo, hi in (("f", 1, 1024), ("K", 2, 65536), ("stages", 1, 64)):
        value = getattr(model, attr)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ProtocolError(f"{name}: {attr} must be an integer in [{lo}, {hi}], got {value!r}")
    for m in ("encode", "decode"):
        if not callable(getattr(model, m)):
            raise ProtocolError(f"{name}: {m} is not callable")


def has_codebooks(model) -> bool:
    """Whether ``model`` has the soft members (codebooks and a decode from code vectors)."""
    return all(getattr(model, m, None) is not None for m in SOFT)


def missing_capability(model, what: str, name: str = "model") -> str | None:
    """Why ``what`` (a receiver or a step, for the message) cannot run with ``model`` for lack of
    the soft members; None when it can."""
    if has_codebooks(model):
        return None
    absent = [m for m in SOFT if getattr(model, m, None) is None]
    return f"{what} needs the model's {' and '.join(absent)}, and {name} has none (hard receivers only)"


def model_device(model) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for one without either)."""
    if isinstance(model, nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return torch.device("cpu")


def model_fingerprint(model) -> str:
    """16 hex digits of SHA-256 over the model's codebooks and every tensor of its state (names,
    shapes, float32 values): side information prepared for one version of a model is refused for
    another (``vqcodec.zoo``)."""
    h = hashlib.sha256()
    tensors = []
    if has_codebooks(model):
        tensors.append(("codebooks", model.codebooks))
    if isinstance(model, nn.Module):
        tensors += sorted(model.state_dict().items())
    if not tensors:
        raise ProtocolError("model has neither codebooks nor a state dict to fingerprint")
    for key, t in tensors:
        t = t.detach().cpu()
        h.update(f"{key}{tuple(t.shape)}".encode())
        h.update(t.float().numpy().astype("<f4").tobytes())
    return h.hexdigest()[:16]


def _method(module, spec, role: str) -> Callable | None:
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str):
        fn = getattr(module, spec, None)
        if not callable(fn):
            raise ProtocolError(f"{type(module).__name__} has no method {spec!r} to {role}")
        return fn
    raise ProtocolError(f"{role} must be a method name or a callable, got {type(spec).__name__}")


class Wrapped(nn.Module):
    """A model of yours behind the codec protocol (made by ``wrap``): pads inputs, checks every
    output against the contract (a ``ProtocolError`` in one line when broken), returns int64
    indices, and serves ``codebooks`` as (S, K, d)."""

    def __init__(self, module, *, f: int, K: int, stages: int = 1, encode="encode", decode="decode",
                 codebooks=None, decode_embeddings=None, pad: str = "reflect", name: str | None = None,
                 weights=None):
        super().__init__()
        if pad not in PADS:
            raise ProtocolError(f"pad must be one of {', '.join(PADS)}, got {pad!r}")
        if isinstance(module, nn.Module):
            self.module = module
        else:
            object.__setattr__(self, "module", module)
        self.f, self.K, self.stages, self.pad = f, K, stages, pad
        self.name = name or type(module).__name__
        self.weights = None if weights is None else Path(weights)
        self._encode = _method(module, encode, "encode")
        self._decode = _method(module, decode, "decode")
        self._decode_embeddings = _method(module, decode_embeddings, "decode embeddings")
        self._codebooks = codebooks
        if (codebooks is None) != (decode_embeddings is None):
            raise ProtocolError("give codebooks and decode_embeddings together (the soft receivers need both), "
                                "or neither")
        check_model(self, self.name)

    @property
    def codebooks(self) -> torch.Tensor | None:
        if self._codebooks is None:
            return None
        cb = self._codebooks() if callable(self._codebooks) else self._codebooks
        if not isinstance(cb, torch.Tensor):
            raise ProtocolError(f"{self.name}: codebooks must be a tensor, got {type(cb).__name__}")
        if cb.dim() == 2 and self.stages == 1:
            cb = cb[None]
        if cb.dim() != 3 or tuple(cb.shape[:2]) != (self.stages, self.K) or not cb.is_floating_point():
            raise ProtocolError(f"{self.name}: codebooks must be float (S, K, d) = ({self.stages}, {self.K}, d), "
                                f"got {cb.dtype} {tuple(cb.shape)}")
        return cb

    @property
    def codebook(self) -> torch.Tensor | None:
        """(K, d): the first stage's codebook (None without codebooks)."""
        cb = self.codebooks
        return None if cb is None else cb[0]

    @property
    def decode_embeddings(self):
        return None if self._decode_embeddings is None else self._run_decode_embeddings

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        h, w = -(-H // self.f), -(-W // self.f)
        out = self._encode(pad_tensor(x, self.f) if self.pad == "reflect" else x)
        if isinstance(out, (tuple, list)):
            raise ProtocolError(f"{self.name}: encode returned a {type(out).__name__}; it must return the index "
                                "tensor alone (wrap with encode=lambda x: model.encode(x)[1], say)")
        want = (B, h, w) if self.stages == 1 else (B, self.stages, h, w)
        if not isinstance(out, torch.Tensor) or out.is_floating_point() or out.is_complex() \
                or tuple(out.shape) != want:
            got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ProtocolError(f"{self.name}: encode must give integer indices {want} for a {H}x{W} input, got {got}")
        out = out.long()
        if out.numel() and (int(out.min()) < 0 or int(out.max()) >= self.K):
            raise ProtocolError(f"{self.name}: encode gave indices outside [0, {self.K})")
        return out

    def _check_image(self, x, z_shape, what: str) -> torch.Tensor:
        want = (z_shape[0], 3, z_shape[-2] * self.f, z_shape[-1] * self.f)
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != want:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ProtocolError(f"{self.name}: {what} must give images {want}, got {got}")
        return x.float() if not x.is_floating_point() else x

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        ok = (indices.dim() == 3 and self.stages == 1) or (indices.dim() == 4 and 1 <= indices.shape[1] <= self.stages)
        if not ok:
            raise ProtocolError(f"{self.name}: indices must be (B, h, w) or (B, s, h, w) with 1 <= s <= {self.stages}, "
                                f"got {tuple(indices.shape)}")
        return self._check_image(self._decode(indices), indices.shape, "decode")

    def _run_decode_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        return self._check_image(self._decode_embeddings(z), z.shape, "decode_embeddings")

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, d, h, w) of indices: the sum of the stages' code vectors."""
        cb = self.codebooks
        if cb is None:
            raise ProtocolError(missing_capability(self, "embedding indices", self.name))
        if indices.dim() == 3:
            indices = indices[:, None]
        z = sum(cb[s][indices[:, s]] for s in range(indices.shape[1]))
        return z.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def wrap(module, *, f: int, K: int, stages: int = 1, encode="encode", decode="decode", codebooks=None,
         decode_embeddings=None, pad: str = "reflect", name: str | None = None, weights=None) -> Wrapped:
    """Put a discrete-token model of yours behind the codec protocol.

    ``encode`` / ``decode`` / ``decode_embeddings``: method names on ``module`` or callables (see
    the module docstring for their shapes); ``codebooks``: a tensor (S, K, d) (or (K, d) for one
    stage), or a callable returning one (it is called when needed, so it follows training);
    ``pad``: "reflect" (inputs are padded to a multiple of f here) or "model" (the model takes any
    size itself); ``name``: how results files and messages call it; ``weights``: the file the
    module was loaded from, beside which ``vqcodec prepare`` stores the side information
    (``<weights stem>.vqcodec.json`` and the prior, receiver and entropy files).

    Without codebooks and decode_embeddings the model runs with the hard receivers only."""
    return Wrapped(module, f=f, K=K, stages=stages, encode=encode, decode=decode, codebooks=codebooks,
                   decode_embeddings=decode_embeddings, pad=pad, name=name, weights=weights)
