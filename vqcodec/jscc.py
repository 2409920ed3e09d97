"""Deep JSCC: the learned analog reference (Bourtsoulatze, Kurka & Gündüz, "Deep joint
source-channel coding for wireless image transmission", IEEE TCCN 5(3), 2019).

A convolutional encoder maps the image straight to channel symbols: five 5x5 convolutions
(16, 32, 32, 32, c channels; the first two with stride 2; PReLU), so an H x W image (padded to a
multiple of 4) becomes c x H/4 x W/4 real numbers, paired into c H W / 32 complex channel uses:
bandwidth ratio cbr = c / 96 (c = 8: cbr 1/12). The symbols of each image are scaled to average
energy 1 per complex use (the transmitter's power constraint), cross an analog channel
(``channels.analog``), and the mirrored decoder (transposed convolutions, sigmoid) rebuilds the
image. There is no quantisation and no channel code: quality degrades gracefully with SNR, the
opposite of a digital scheme's cliff.

Stored as ``NAME.safetensors`` + ``NAME.json`` (config under ``"jscc"``; never pickled).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqcodec.checkpoint import CheckpointError, checkpoint_paths
from vqcodec.files import replace_atomically
from vqcodec.precision import autocast, fp32_region

FORMAT = "vqcodec.deepjscc/1"
WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = ("deepjscc-c8",)


@dataclass(frozen=True)
class JsccConfig:
    c: int = 8  # real channel values per 4x4 pixels: cbr = c / 96
    width: int = 32  # channels of the inner layers (the paper: 16 after the first layer, then 32)

    def __post_init__(self) -> None:
        if not (isinstance(self.c, int) and 2 <= self.c <= 96 and self.c % 2 == 0):
            raise ValueError(f"c must be an even number in [2, 96], got {self.c!r}")
        if not (isinstance(self.width, int) and 4 <= self.width <= 512):
            raise ValueError(f"width must be in [4, 512], got {self.width!r}")

    @property
    def cbr(self) -> float:
        return self.c / 96.0


def _conv(cin, cout, stride):
    return nn.Conv2d(cin, cout, 5, stride=stride, padding=2)


def _tconv(cin, cout, stride):
    return nn.ConvTranspose2d(cin, cout, 5, stride=stride, padding=2, output_padding=stride - 1)


class DeepJSCC(nn.Module):
    """Image (B, 3, H, W) in [0, 1], H and W multiples of 4 -> power-normalised real symbols
    (B, c, H/4, W/4) -> image. ``forward(x, n0)`` runs the AWGN channel of noise power ``n0``
    (per complex use; a tensor (B,) or a number) in the loop."""

    def __init__(self, cfg: JsccConfig = JsccConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.encoder = nn.Sequential(_conv(3, w // 2, 2), nn.PReLU(w // 2), _conv(w // 2, w, 2), nn.PReLU(w),
                                     _conv(w, w, 1), nn.PReLU(w), _conv(w, w, 1), nn.PReLU(w),
                                     _conv(w, cfg.c, 1), nn.PReLU(cfg.c))
        self.decoder = nn.Sequential(_tconv(cfg.c, w, 1), nn.PReLU(w), _tconv(w, w, 1), nn.PReLU(w),
                                     _tconv(w, w, 1), nn.PReLU(w), _tconv(w, w // 2, 2), nn.PReLU(w // 2),
                                     _tconv(w // 2, 3, 2), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Symbols (B, c, H/4, W/4) with mean square 1/2 per real value (energy 1 per complex use);
        float32 under autocast too: the power normalisation runs in fp32."""
        z = self.encoder(x).float()
        with fp32_region(z.device):
            power = z.pow(2).mean(dim=(1, 2, 3), keepdim=True)
            return z / torch.sqrt(2.0 * power + 1e-12)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, n0) -> torch.Tensor:
        z = self.encode(x)
        n0 = torch.as_tensor(n0, dtype=z.dtype, device=z.device).reshape(-1, 1, 1, 1)
        return self.decode(z + torch.randn_like(z) * torch.sqrt(n0 / 2.0))


# --------------------------------------------------------------------------- symbols <-> arrays

def pad4(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H', W') in [0, 1], edge-padded to multiples of 4."""
    H, W = img.shape[:2]
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    return F.pad(x, (0, -W % 4, 0, -H % 4), mode="replicate")


def to_complex(z: torch.Tensor) -> np.ndarray:
    """Real symbols (1, c, h, w) -> complex64 (c h w / 2,): consecutive pairs are (re, im)."""
    r = z.detach().reshape(-1, 2).numpy().astype(np.float32)
    return (r[:, 0] + 1j * r[:, 1]).astype(np.complex64)


def from_complex(s: np.ndarray, shape) -> torch.Tensor:
    s = np.asarray(s, np.complex64)
    return torch.from_numpy(np.stack([s.real, s.imag], axis=1).astype(np.float32)).reshape(shape)


@torch.inference_mode()
def transmit(model: DeepJSCC, img: np.ndarray, channel, rng: np.random.Generator,
             precision: str = "fp32") -> tuple[np.ndarray, int]:
    """Send one uint8 image (H, W, 3) through ``channel`` (``channels.analog``): (received image
    uint8 (H, W, 3), complex channel uses). ``precision``: the networks' arithmetic (fp32, or
    bf16 autocast; a resolved one, ``vqcodec.precision``); the symbols on the channel and the
    pixels are fp32 either way."""
    H, W = img.shape[:2]
    with autocast(precision):
        z = model.encode(pad4(img))
    y = channel(to_complex(z), rng)
    with autocast(precision):
        x = model.decode(from_complex(y, z.shape))
    x = x.float()[0, :, :H, :W]
    out = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(out), int(y.size)


# --------------------------------------------------------------------------- storage

def save_jscc(model: DeepJSCC, path, meta: dict | None = None) -> None:
    from safetensors.torch import save_file  # looked up per call: tests patch safetensors.torch.save_file

    wpath, cpath = checkpoint_paths(path)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    replace_atomically(wpath, lambda tmp: save_file(state, str(tmp)))
    doc = {"format": FORMAT, "jscc": asdict(model.cfg), **(meta or {})}
    replace_atomically(cpath, lambda tmp: tmp.write_text(json.dumps(doc, indent=1) + "\n"))


def jscc_path(name: str | None = None, checkpoint=None) -> Path:
    """The checkpoint stem of a shipped Deep JSCC model (default deepjscc-c8) or a user checkpoint."""
    if checkpoint is not None:
        return Path(checkpoint)
    name = name or SHIPPED[0]
    if name not in SHIPPED:
        raise CheckpointError(f"unknown Deep JSCC model {name!r} (shipped: {', '.join(SHIPPED)})")
    return WEIGHTS / name


def load_jscc(name: str | None = None, checkpoint=None) -> tuple[DeepJSCC, dict]:
    """(model in eval mode, its json) of a shipped name or a checkpoint stem; one-line CheckpointError."""
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.torch import load_file

    wpath, cpath = checkpoint_paths(jscc_path(name, checkpoint))
    try:
        meta = json.loads(cpath.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError("not a Deep JSCC checkpoint")
        model = DeepJSCC(JsccConfig(**meta["jscc"]))
        model.load_state_dict(load_file(str(wpath)))
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise ValueError("non-finite weights")
    except FileNotFoundError:
        raise CheckpointError(f"{wpath.with_suffix('')}: no Deep JSCC checkpoint there") from None
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cpath}: corrupt Deep JSCC checkpoint ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0][:80] if str(exc) else ''})") from None
    return model.eval(), meta
