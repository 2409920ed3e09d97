"""Learned context receiver: a small convolutional network that turns the channel evidence of a
whole index grid into the posterior of every index.

The pairwise prior of ``prior.py`` sees only the four neighbours, one pair at a time, and loopy
BP needs a temperature to hide its double counting. This receiver learns the posterior directly:
    log q(x_s = k | y) = L_s(k) + g_k(y)_s - log Z_s,

where ``L_s(k) = 1/2 sum_j s_kj llr_sj`` is the exact channel log-likelihood of index k at site
s (``s_kj = +1`` when bit j of k's label is 0, else -1; the same for every k up to a constant)
and ``g`` is a convolutional network over the channel evidence of the whole neighbourhood
(receptive field 2 * blocks + 1 sites each way, more with dilation). Its input at every site is
the expected learned embedding and the normalised entropy of the channel-only posterior
``softmax(L_s)``, so one network serves every channel that yields per-bit LLRs (BSC, erasures,
AWGN, fading, bursts) and K need not be a power of two (unused labels have no row in ``s``).

Training (``train_context``) is supervised and needs no decoder: index maps of the training
images (frozen encoder), a random channel from ``TRAINING_MIX`` per crop, cross-entropy of q
against the transmitted indices. Cross-entropy is a proper scoring rule, so q is calibrated
and the expected codeword ``sum_k q_k e_k`` is the MMSE code vector the decoder gets.

The idea of learning the source-decoder's a-priori knowledge from data rather than from
fixed-order Markov statistics follows the softbit-source-decoding line (Fingscheidt & Vary,
IEEE JSAC 2001) with the context model replaced by a CNN, as in learned image-prior work
(e.g. PixelCNN, van den Oord et al. 2016), but non-causal: the whole received grid is known.

Stored beside the model as ``<stem>.context.safetensors`` with its config under ``context`` in
``<stem>.json``; never pickled.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from channels import LLR_CLIP
from vqcodec.bits import bits_per_label
from vqcodec.checkpoint import CheckpointError, checkpoint_paths, stage_prefixes
from vqcodec.files import replace_atomically
from vqcodec.precision import autocast, fp32_region


@dataclass(frozen=True)
class ContextConfig:
    channels: int = 64
    blocks: int = 4
    embed: int = 32
    dilations: tuple[int, ...] = (1, 2)  # cycled over the residual blocks


def label_signs(assignment: np.ndarray, K: int) -> np.ndarray:
    """(K, b) float32: +1 where bit j (MSB first) of index k's label is 0, -1 where it is 1."""
    b = bits_per_label(K)
    lab = np.asarray(assignment, dtype=np.int64)[:K]
    bits = (lab[:, None] >> np.arange(b - 1, -1, -1)[None, :]) & 1
    return (1.0 - 2.0 * bits).astype(np.float32)


def channel_loglik(llr: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """log P(y_s | x_s = k) up to a constant per site, (..., K), from per-bit LLRs (..., b) and
    ``label_signs`` (K, b); an index whose label contradicts a bit with |llr| >= ``LLR_CLIP`` (the
    clip: a bit this sure is wrong with probability < 1e-13) gets -inf (such a bit is never flipped,
    as in the spatial receiver, so a clean channel gives exactly the sent indices)."""
    ll = 0.5 * llr @ signs.t()
    certain = (llr.abs() >= LLR_CLIP).to(llr.dtype)
    if bool(certain.any()):
        agree = (certain * torch.sign(llr)) @ signs.t()  # = number of certain bits if all agree
        bad = agree < certain.sum(-1, keepdim=True) - 0.5
        bad &= ~bad.all(-1, keepdim=True)  # an unused label (K not a power of two): no mask there
        ll = ll.masked_fill(bad, float("-inf"))
    return ll


class _Block(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.b(F.silu(self.a(F.silu(x))))


class ContextNet(nn.Module):
    """Per-bit LLRs (B, h, w, b) -> posterior logits (B, h, w, K)."""

    def __init__(self, K: int, assignment: np.ndarray, cfg: ContextConfig = ContextConfig()):
        super().__init__()
        self.K, self.cfg = K, cfg
        self.register_buffer("signs", torch.from_numpy(label_signs(assignment, K)))
        self.embed = nn.Parameter(torch.randn(K, cfg.embed) / math.sqrt(cfg.embed))
        self.inp = nn.Conv2d(cfg.embed + 1, cfg.channels, 3, padding=1)
        self.body = nn.Sequential(*[_Block(cfg.channels, cfg.dilations[i % len(cfg.dilations)])
                                    for i in range(cfg.blocks)])
        self.out = nn.Conv2d(cfg.channels, K, 1)
        nn.init.zeros_(self.out.weight)  # start as the channel-only posterior
        nn.init.zeros_(self.out.bias)

    def channel_loglik(self, llr: torch.Tensor) -> torch.Tensor:
        """``channel_loglik`` with this network's label signs."""
        return channel_loglik(llr, self.signs)

    def features(self, ll: torch.Tensor) -> torch.Tensor:
        """The network's input (B, embed + 1, h, w) from the channel log-likelihoods (B, h, w, K):
        the expected embedding under c = softmax(ll) and c's entropy over log K. The entropy is
        computed as log Z - sum_k c_k ll_k from the softmax's own max and sum (0 * -inf taken as
        0), a third fewer passes over the (h, w, K) array than -sum c log c."""
        m = ll.amax(-1, keepdim=True)
        e = torch.exp(ll - m)
        z = e.sum(-1, keepdim=True)
        c = e / z
        dot = (c.unsqueeze(-2) @ torch.nan_to_num(ll, neginf=0.0).unsqueeze(-1)).squeeze(-1)
        ent = (m + torch.log(z) - dot) / math.log(self.K)
        return torch.cat([c @ self.embed, ent], dim=-1).permute(0, 3, 1, 2)

    def forward(self, llr: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """Posterior logits, float32. The channel log-likelihoods and the input features are
        computed in fp32 even inside an enclosing autocast; the convolutions and the output
        layer run at ``precision`` (a resolved one, ``vqcodec.precision``; fp32 leaves an
        enclosing autocast in force), and their output is cast to fp32 before it is added."""
        with fp32_region(llr.device):
            ll = self.channel_loglik(llr.float())  # (B, h, w, K)
            x = self.features(ll)
        with autocast(precision, llr.device):
            f = self.body(self.inp(x))
            # the 1x1 output conv as a matmul on channels-last features: no (B, K, h, w) intermediate
            g = F.linear(f.permute(0, 2, 3, 1), self.out.weight.flatten(1), self.out.bias)
        return ll + g.float()


# --------------------------------------------------------------------------- storage

def context_path(model_path) -> Path:
    w, _ = checkpoint_paths(model_path)
    return w.with_suffix(".context.safetensors")


def save_context(nets: tuple[ContextNet, ...], path) -> None:
    """Store a model's context receivers, one ``ContextNet`` per stage (a tuple of one for a
    single-stage model; keys ``stage{s}.`` for several, none for one)."""
    from safetensors.torch import save_file  # looked up per call: tests patch safetensors.torch.save_file

    state = {}
    for pre, n in zip(stage_prefixes(len(nets)), nets):
        state.update({pre + k: v.detach().cpu().contiguous() for k, v in n.state_dict().items() if k != "signs"})
    replace_atomically(path, lambda tmp: save_file(state, str(tmp)))


def load_context(path, K: int, assignment: np.ndarray, cfg: dict, stages: int = 1) -> tuple[ContextNet, ...]:
    """The context receivers stored at ``path``: a tuple of one ``ContextNet`` per stage (of one for
    ``stages`` 1), each with its stage's row of ``assignment``."""
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.torch import load_file

    a = np.asarray(assignment)
    try:
        c = ContextConfig(channels=int(cfg["channels"]), blocks=int(cfg["blocks"]), embed=int(cfg["embed"]),
                          dilations=tuple(int(d) for d in cfg["dilations"]))
        if min(c.channels, c.blocks, c.embed, *c.dilations) < 1:
            raise ValueError("non-positive size")
        state = load_file(str(path))
        nets = []
        for s, pre in enumerate(stage_prefixes(stages)):
            net = ContextNet(K, a[s] if a.ndim == 2 else a, c)
            part = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)} if pre else dict(state)
            part["signs"] = net.signs
            net.load_state_dict(part)
            nets.append(net.eval())
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt context receiver ({exc.__class__.__name__})") from None
    return tuple(nets)


# --------------------------------------------------------------------------- inference

def context_posterior(net: ContextNet, llr: np.ndarray, grid: tuple[int, int], precision: str = "fp32") -> np.ndarray:
    """Dense posterior float32 (h, w, K) of one grid from per-bit LLRs (h*w, b); the network at
    ``precision`` (fp32 or bf16 autocast; the softmax is fp32 either way)."""
    h, w = grid
    b = net.signs.shape[1]
    llr = np.asarray(llr, dtype=np.float32)
    if llr.shape != (h * w, b):
        raise ValueError(f"llr has shape {llr.shape}, the {h}x{w} grid of {b}-bit labels needs {(h * w, b)}")
    with torch.inference_mode():
        logits = net(torch.from_numpy(llr).reshape(1, h, w, b), precision)[0]
        return torch.softmax(logits.float(), dim=-1).numpy()


def config_dict(cfg: ContextConfig) -> dict:
    d = asdict(cfg)
    d["dilations"] = list(cfg.dilations)
    return d

