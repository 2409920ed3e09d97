"""VQ-VAE: convolutional encoder, EMA vector quantiser, mirrored decoder.

Contract (shapes for a batch of B images of H x W pixels, f = stride, S = cfg.stages):

* ``encode(x)``  x float32 (B, 3, H, W) in [0, 1]  ->  indices int64 (B, h, w) when S = 1,
  (B, S, h, w) when S > 1 (stage axis second; stage 0 first), h = ceil(H / f),
  w = ceil(W / f). Inputs whose size is not a multiple of f are padded (reflect,
  replicate where reflect cannot) inside ``encode``.
* ``decode(indices)``  indices (B, h, w) (S = 1 only) or (B, s, h, w) with 1 <= s <= S:
  the first s stages ->  x_hat float32 (B, 3, h*f, w*f), not clamped; the caller
  crops the padding (``vqcodec.images.crop``). ``decode(indices[:, :s])`` decodes the
  sum of the first s stages' codewords (a lower rate: s * bits_per_index per site).
* ``decode_embeddings(z)``  z float32 (B, d, h, w), any code vectors, e.g. the
  expected codeword of a soft posterior (MMSE reconstruction); with S > 1 the code
  vector is the sum over stages.
* ``forward(x)`` returns a dict with keys ``x_hat``, ``indices`` (shaped as
  ``encode``'s, all S stages), ``commit_loss`` (summed over the stages used),
  ``perplexity`` (mean over stages), ``perplexities`` and ``usage`` (S,) per stage,
  ``stages_used``; in eval mode ``decode(encode(x))`` equals ``forward(x)["x_hat"]``.
* ``codebook`` (K, d): the (first stage's) codebook; ``codebooks`` (S, K, d) all of
  them; ``quantizers`` the per-stage ``EMAQuantizer`` modules.

The quantiser follows van den Oord et al., "Neural Discrete Representation
Learning" (NeurIPS 2017): nearest-neighbour assignment, straight-through
gradient, commitment loss, with EMA codebook updates (their appendix; also
Razavi et al., VQ-VAE-2, 2019), k-means initialisation on the first
training batch and restart of dead codes from encoder outputs.

With ``stages`` S > 1 the quantiser is residual (multi-stage) VQ (Juang & Gray,
"Multiple stage vector quantization for speech coding", ICASSP 1982; as in
SoundStream, Zeghidour et al. 2021, and EnCodec, Défossez et al. 2022): stage s
quantises what stages < s left, each stage an EMA quantiser of its own, and with
``stage_dropout`` each training batch uses a random number of stages 1..S, so that
every prefix of the stages decodes. With S = 1 the model is the single-stage one
(same state-dict keys, same arithmetic).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vqcodec.checkpoint import load_checkpoint, save_checkpoint
from vqcodec.images import pad_tensor
from vqcodec.precision import fp32_region

ALLOWED_F = (4, 8, 16)
DECODER_HEADS = ("stages", "subpixel")
DEFAULT_CHANNELS = {4: (48, 96), 8: (32, 64, 128), 16: (32, 64, 128, 192)}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a VQ-VAE. Stored as JSON beside every checkpoint."""

    f: int = 4
    K: int = 256
    d: int = 32
    channels: tuple[int, ...] = (48, 96)
    res_blocks: int = 1
    decoder_res_blocks: int = 2
    decoder_channels: int | None = None  # width at the latent resolution (None: channels[-1])
    decoder_head: str = "stages"  # "stages": 2x pixel-shuffle stages; "subpixel": one f x f pixel shuffle
    commitment: float = 0.25
    ema_decay: float = 0.99
    stages: int = 1  # residual VQ stages, each a codebook of K entries (1: plain VQ)
    stage_dropout: bool = False  # train each batch with a random number of stages 1..S
    architecture: str = field(default="vqvae-conv-v1")

    @classmethod
    def for_stride(cls, f: int, K: int = 256, d: int = 32, channels=None, res_blocks: int = 1,
                   decoder_res_blocks: int | None = None, decoder_channels: int | None = None,
                   decoder_head: str = "stages", stages: int = 1,
                   stage_dropout: bool = False) -> ModelConfig:
        """The config of ``vqcodec train``: ``channels`` per 2x stage and ``decoder_res_blocks``
        default by stride (f=4: (48, 96) and 2; f=8, 16: wider and 3). ``channels`` may be text
        ('32,64,128')."""
        if f not in ALLOWED_F:
            raise ValueError(f"f must be one of {ALLOWED_F}, got {f}")
        if isinstance(channels, str):
            try:
                channels = tuple(int(c) for c in channels.split(","))
            except ValueError:
                raise ValueError(f"channels must be comma-separated integers, got {channels!r}") from None
        return cls(f=f, K=K, d=d, channels=tuple(channels) if channels else DEFAULT_CHANNELS[f],
                   res_blocks=res_blocks,
                   decoder_res_blocks=decoder_res_blocks if decoder_res_blocks is not None else (2 if f == 4 else 3),
                   decoder_channels=decoder_channels, decoder_head=decoder_head, stages=stages,
                   stage_dropout=stage_dropout)

    def __post_init__(self) -> None:
        if self.f not in ALLOWED_F:
            raise ValueError(f"f must be one of {ALLOWED_F}, got {self.f}")
        if len(self.channels) != int(math.log2(self.f)):
            raise ValueError(
                f"channels needs one entry per 2x downsampling stage "
                f"({int(math.log2(self.f))} for f={self.f}), got {len(self.channels)}")
        if not 2 <= self.K <= 65536:
            raise ValueError(f"K must be in [2, 65536], got {self.K}")
        if self.d < 1 or any(c < 1 for c in self.channels):
            raise ValueError("d and channels must be positive")
        if self.res_blocks < 0 or self.decoder_res_blocks < 0:
            raise ValueError("res_blocks must be >= 0")
        if self.decoder_channels is not None and self.decoder_channels < 1:
            raise ValueError(f"decoder_channels must be positive, got {self.decoder_channels}")
        if self.decoder_head not in DECODER_HEADS:
            raise ValueError(f"decoder_head must be one of {DECODER_HEADS}, got {self.decoder_head!r}")
        if isinstance(self.stages, bool) or not isinstance(self.stages, int) or not 1 <= self.stages <= 64:
            raise ValueError(f"stages must be an integer in [1, 64], got {self.stages!r}")
        if not isinstance(self.stage_dropout, bool):
            raise ValueError(f"stage_dropout must be true or false, got {self.stage_dropout!r}")
        if self.stage_dropout and self.stages == 1:
            raise ValueError("stage_dropout needs stages > 1")
        if self.architecture != "vqvae-conv-v1":
            raise ValueError(f"unknown architecture {self.architecture!r}")

    @property
    def bits_per_index(self) -> int:
        """Bits of one stage's index."""
        return max(1, math.ceil(math.log2(self.K)))

    @property
    def bits_per_site(self) -> int:
        """Bits per latent site: one index per stage."""
        return self.stages * self.bits_per_index

    @property
    def bpp(self) -> float:
        """Bits per pixel of the fixed-length index stream (all stages)."""
        return self.bits_per_site / (self.f * self.f)

    def bpp_at(self, stages: int) -> float:
        """Bits per pixel when only the first ``stages`` stages are sent."""
        if not 1 <= stages <= self.stages:
            raise ValueError(f"stages must be in [1, {self.stages}], got {stages}")
        return stages * self.bits_per_index / (self.f * self.f)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
        # "stages" / "stage_dropout" absent (checkpoints before residual VQ): one stage
        return cls(**known)


class ResBlock(nn.Module):
    """x + conv1x1(act(conv3x3(act(x))))."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class LightBlock(nn.Module):
    """x + pw(silu(pw(dw3x3(x)))): a cheap block for the high-resolution stages."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pw1 = nn.Conv2d(c, 2 * c, 1)
        self.pw2 = nn.Conv2d(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(F.silu(self.pw1(self.dw(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(cfg.channels):
            k = 4 if i == 0 else 3  # 4x4 on the 3-channel input is cheap; 3x3 after
            layers += [nn.Conv2d(c_in, c, k, stride=2, padding=1), nn.SiLU()]
            c_in = c
        layers += [ResBlock(c_in) for _ in range(cfg.res_blocks)]
        layers += [nn.SiLU(), nn.Conv2d(c_in, cfg.d, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)


class Decoder(nn.Module):
    """3x3 conv to the decoder width, residual blocks at the latent resolution, then either
    ``stages``: per 2x upsampling a 1x1 conv + pixel shuffle and a light depthwise block,
    3x3 conv + pixel shuffle to RGB; or ``subpixel``: one 3x3 conv to 3 f^2 channels and an
    f x f pixel shuffle (Shi et al., "Real-Time Single Image and Video Super-Resolution Using
    an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016): no work at the higher
    resolutions, which on a CPU cost more time than their arithmetic suggests."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = list(cfg.channels)
        if cfg.decoder_channels is not None:
            chans[-1] = cfg.decoder_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.d, chans[-1], 3, padding=1)]
        layers += [ResBlock(chans[-1]) for _ in range(cfg.decoder_res_blocks)]
        if cfg.decoder_head == "subpixel":
            layers += [nn.SiLU(), nn.Conv2d(chans[-1], 3 * cfg.f * cfg.f, 3, padding=1), nn.PixelShuffle(cfg.f)]
        else:
            for i in range(len(chans) - 1, 0, -1):
                # upsample 2x: 1x1 conv to 4x the next channel count, pixel shuffle
                layers += [nn.SiLU(), nn.Conv2d(chans[i], 4 * chans[i - 1], 1), nn.PixelShuffle(2),
                           LightBlock(chans[i - 1])]
            layers += [nn.SiLU(), nn.Conv2d(chans[0], 12, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # fp32 under autocast: the mid-grey offset added in bf16 would round every pixel to 1/256
        # (-0.005 dB on Kodak), and the training losses are fp32
        return self.net(z).float() + 0.5


def nearest_codeword(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Indices (N,) of the nearest row of ``codebook`` (K, d) to each row of ``flat`` (N, d), in
    fp32 whatever autocast region it is called from (the transmitted indices never depend on the
    networks' precision)."""
    with fp32_region(flat.device):
        flat, codebook = flat.float(), codebook.float()
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None, :]
    return dist.argmin(1)


def fp32(forward):
    """Run a quantiser's ``forward(self, z, ...)`` in fp32 with autocast off: under bf16 autocast the
    encoder hands it bf16 latents, and its distances, commitment loss and EMA statistics must stay
    fp32 (the gradient of the straight-through estimator flows back through the cast)."""
    @functools.wraps(forward)
    def wrapped(self, z, *args, **kwargs):
        with fp32_region(z.device):
            return forward(self, z.float(), *args, **kwargs)

    return wrapped


class EMAQuantizer(nn.Module):
    """Nearest-codeword quantiser with EMA codebook updates.

    Buffers (saved in checkpoints): ``embedding`` (K, d), ``cluster_size`` (K,),
    ``embed_sum`` (K, d), ``initialised`` (scalar).
    """

    def __init__(self, K: int, d: int, decay: float = 0.99, eps: float = 1e-5,
                 dead_fraction: float = 0.03):
        super().__init__()
        self.K, self.d, self.decay, self.eps = K, d, decay, eps
        self.dead_fraction = dead_fraction
        self.generator: torch.Generator | None = None  # set by the trainer for reproducible restarts
        self.register_buffer("embedding", torch.randn(K, d) * 0.1)
        self.register_buffer("cluster_size", torch.ones(K))
        self.register_buffer("embed_sum", self.embedding.clone())
        self.register_buffer("initialised", torch.tensor(0, dtype=torch.uint8))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the nearest codeword to each row of flat (N, d)."""
        return nearest_codeword(flat, self.embedding)

    def _size(self) -> torch.Tensor:
        """Laplace-smoothed cluster sizes (K,): the EMA codebook is ``embed_sum / size``."""
        n = self.cluster_size.sum()
        return (self.cluster_size + self.eps) / (n + self.K * self.eps) * n

    @torch.no_grad()
    def set_codebook(self, embedding: torch.Tensor) -> None:
        """Replace the codebook, keeping the EMA state consistent with it (embed_sum = e * size)."""
        self.embedding.copy_(embedding)
        self.embed_sum.copy_(embedding * self._size()[:, None])

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor, iters: int = 10) -> None:
        g = torch.Generator().manual_seed(0)
        n = flat.shape[0]
        pick = torch.randint(n, (self.K,), generator=g) if n < self.K else torch.randperm(n, generator=g)[: self.K]
        centres = flat[pick].clone()
        for _ in range(iters):
            idx = nearest_codeword(flat, centres)
            counts = torch.bincount(idx, minlength=self.K).float()
            sums = torch.zeros_like(centres).index_add_(0, idx, flat)
            used = counts > 0
            centres[used] = sums[used] / counts[used, None]
        self.embedding.copy_(centres)
        self.embed_sum.copy_(centres)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(1)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.K).float()
        sums = torch.zeros(self.K, self.d, dtype=flat.dtype, device=flat.device).index_add_(0, idx, flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.embedding.copy_(self.embed_sum / self._size()[:, None])
        # dead-code restart: codes whose usage fell far below average take encoder outputs
        dead = self.cluster_size < self.dead_fraction * flat.shape[0] / self.K
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(flat.shape[0], (n_dead,), generator=self.generator).to(flat.device)
            self.embedding[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0

    @fp32
    def forward(self, z: torch.Tensor) -> dict:
        B, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training and not bool(self.initialised):
            self._kmeans_init(flat.detach().float())
        idx = self.nearest(flat.detach())
        if self.training:
            self._ema_update(flat.detach(), idx)
        z_q = self.embedding[idx].view(B, h, w, d).permute(0, 3, 1, 2)
        commit = F.mse_loss(z, z_q.detach())
        z_st = z + (z_q - z).detach()
        probs = torch.bincount(idx, minlength=self.K).float() / idx.numel()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return {"z_q": z_st, "indices": idx.view(B, h, w), "commit_loss": commit, "perplexity": perplexity}


def _perplexity_usage(idx: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity of the index histogram and the fraction of the K codes used."""
    counts = torch.bincount(idx.reshape(-1), minlength=K).float()
    probs = counts / idx.numel()
    return torch.exp(-(probs * torch.log(probs + 1e-10)).sum()), (counts > 0).float().mean()


class ResidualQuantizer(nn.Module):
    """Residual (multi-stage) VQ: S ``EMAQuantizer`` stages in cascade, stage s quantising the
    residual that stages < s left. Every stage has its own codebook of K entries, k-means
    initialised on its residuals of the first training batch, EMA-updated on them, and its
    dead codes restarted from them (``EMAQuantizer._ema_update``).

    In training all S codebooks are updated on every batch; with ``dropout`` the code vector
    passed on (and the commitment loss) uses a random number n of stages, 1..S, drawn with
    ``generator`` (set by the trainer). Commitment loss: sum over the n stages used of
    ``mse(z, sum of the first s codewords)``: stage s's ``mse(residual_s, codeword_s)``.
    """

    def __init__(self, S: int, K: int, d: int, decay: float = 0.99, dropout: bool = False):
        super().__init__()
        self.S, self.K, self.d, self.dropout = S, K, d, dropout
        self.stages = nn.ModuleList(EMAQuantizer(K, d, decay=decay) for _ in range(S))

    @property
    def generator(self) -> torch.Generator | None:
        return self.stages[0].generator

    @generator.setter
    def generator(self, gen: torch.Generator | None) -> None:
        for q in self.stages:
            q.generator = gen

    @property
    def embeddings(self) -> torch.Tensor:
        """(S, K, d): a new tensor (write through ``stages[s].set_codebook``)."""
        return torch.stack([q.embedding for q in self.stages])

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices (N, S): greedy residual nearest-codeword search of each row of flat (N, d)."""
        out, r = [], flat
        for q in self.stages:
            idx = q.nearest(r)
            out.append(idx)
            r = r - q.embedding[idx]
        return torch.stack(out, 1)

    def draw_stages(self) -> int:
        """The number of stages of one training batch: S, or uniform in 1..S with dropout."""
        if not (self.training and self.dropout):
            return self.S
        return 1 + int(torch.randint(self.S, (1,), generator=self.generator))

    @fp32
    def forward(self, z: torch.Tensor, n_stages: int | None = None) -> dict:
        B, d, h, w = z.shape
        n = self.draw_stages() if n_stages is None else int(n_stages)
        if not 1 <= n <= self.S:
            raise ValueError(f"n_stages must be in [1, {self.S}], got {n}")
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        r = flat.detach()
        acc = torch.zeros_like(r)
        commit = flat.new_zeros(())
        idxs, ppl, usage = [], [], []
        for s, q in enumerate(self.stages):
            if self.training and not bool(q.initialised):
                q._kmeans_init(r.float())
            idx = q.nearest(r)
            if self.training:
                q._ema_update(r, idx)
            e = q.embedding[idx]
            r = r - e
            if s < n:
                acc = acc + e
                commit = commit + F.mse_loss(flat, acc)
            idxs.append(idx)
            p, u = _perplexity_usage(idx, self.K)
            ppl.append(p)
            usage.append(u)
        z_q = acc.view(B, h, w, d).permute(0, 3, 1, 2)
        z_st = z + (z_q - z).detach()
        ppl_t, usage_t = torch.stack(ppl), torch.stack(usage)
        return {"z_q": z_st, "indices": torch.stack(idxs, 1).view(B, h, w, self.S).permute(0, 3, 1, 2),
                "commit_loss": commit, "perplexity": ppl_t.mean(), "perplexities": ppl_t, "usage": usage_t,
                "stages_used": n}


class VQVAE(nn.Module):
    """Encoder, quantiser (``EMAQuantizer`` for one stage, ``ResidualQuantizer`` for several) and
    decoder; see the module docstring for the shapes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        if cfg.stages == 1:
            self.quantizer = EMAQuantizer(cfg.K, cfg.d, decay=cfg.ema_decay)
        else:
            self.quantizer = ResidualQuantizer(cfg.stages, cfg.K, cfg.d, decay=cfg.ema_decay,
                                               dropout=cfg.stage_dropout)
        self.decoder = Decoder(cfg)

    @property
    def f(self) -> int:
        return self.cfg.f

    @property
    def K(self) -> int:
        return self.cfg.K

    @property
    def stages(self) -> int:
        return self.cfg.stages

    @property
    def quantizers(self) -> list[EMAQuantizer]:
        """The per-stage quantisers (one for S = 1)."""
        return [self.quantizer] if self.cfg.stages == 1 else list(self.quantizer.stages)

    @property
    def codebook(self) -> torch.Tensor:
        """(K, d): the codebook; with S > 1 the first stage's (``codebooks`` holds all)."""
        return self.quantizers[0].embedding

    @property
    def codebooks(self) -> torch.Tensor:
        """(S, K, d): every stage's codebook (a view for S = 1, a new tensor for S > 1)."""
        if self.cfg.stages == 1:
            return self.quantizer.embedding[None]
        return self.quantizer.embeddings

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_tensor(x, self.f)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Indices int64 (B, h, w) for one stage, (B, S, h, w) for S > 1."""
        z = self.encoder(self._pad(x).contiguous(memory_format=torch.channels_last))
        B, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.cfg.stages == 1:
            return self.quantizer.nearest(flat).view(B, h, w)
        return self.quantizer.nearest(flat).view(B, h, w, self.cfg.stages).permute(0, 3, 1, 2).contiguous()

    def decode_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        # one memory layout for every caller: the CPU convolutions pick their kernels by
        # strides, and hard indices and MMSE vectors must decode to identical pixels.
        # channels-last: about 1.8x faster on CPU (depthwise convs, pixel shuffle)
        return self.decoder(z.contiguous().contiguous(memory_format=torch.channels_last))

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, d, h, w) of indices (B, h, w) (one stage), or of (B, s, h, w), the first
        s <= S stages: the sum of their codewords, stage 0 first."""
        if indices.dim() == 3:
            if self.cfg.stages != 1:
                raise ValueError(f"a {self.cfg.stages}-stage model decodes indices (B, s, h, w), "
                                 f"got shape {tuple(indices.shape)}")
            return self.codebook[indices].permute(0, 3, 1, 2)
        if indices.dim() != 4 or not 1 <= indices.shape[1] <= self.cfg.stages:
            raise ValueError(f"indices must be (B, s, h, w) with 1 <= s <= {self.cfg.stages}, "
                             f"got shape {tuple(indices.shape)}")
        qs = self.quantizers
        z = qs[0].embedding[indices[:, 0]]
        for s in range(1, indices.shape[1]):
            z = z + qs[s].embedding[indices[:, s]]
        return z.permute(0, 3, 1, 2)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Images of indices (B, h, w) or (B, s, h, w) (the first s stages); see ``embed``."""
        return self.decode_embeddings(self.embed(indices))

    def forward(self, x: torch.Tensor, n_stages: int | None = None) -> dict:
        """``n_stages``: decode from the first n stages (S > 1; default S, or a random number
        with stage dropout in training)."""
        z = self.encoder(self._pad(x))
        if self.cfg.stages == 1:
            if n_stages not in (None, 1):
                raise ValueError(f"n_stages must be 1 for a one-stage model, got {n_stages}")
            q = self.quantizer(z)
            ppl, usage = q["perplexity"], _perplexity_usage(q["indices"], self.cfg.K)[1]
            return {"x_hat": self.decoder(q["z_q"]), "indices": q["indices"],
                    "commit_loss": q["commit_loss"], "perplexity": ppl, "perplexities": ppl[None],
                    "usage": usage[None], "stages_used": 1}
        q = self.quantizer(z, n_stages)
        return {"x_hat": self.decoder(q["z_q"]), **{k: v for k, v in q.items() if k != "z_q"}}


# --------------------------------------------------------------------------- checkpoints (vqcodec.checkpoint)

def save_model(model: VQVAE, path, meta: dict | None = None) -> tuple:
    """Write ``<stem>.safetensors`` (tensors) and ``<stem>.json`` (config + meta), atomically."""
    return save_checkpoint(model, model.cfg.to_dict(), path, meta)


def load_model(path, device: str = "cpu") -> tuple[VQVAE, dict]:
    """Load ``(model in eval mode, meta)`` from a checkpoint stem. Never unpickles."""
    model, doc = load_checkpoint(path, ModelConfig.from_dict, VQVAE)
    return model.to(device=device, memory_format=torch.channels_last), doc
