"""A small image tokenizer: a conv encoder with stride 8, finite scalar quantisation (FSQ) with
levels (8, 5, 5, 5), so K = 1000 codes, and a mirrored decoder."""

import torch
from torch import nn
from vector_quantize_pytorch import FSQ

LEVELS = (8, 5, 5, 5)
F = 8  # stride: one index per 8x8 pixels


class ResBlock(nn.Module):
    """x + conv1x1(silu(conv3x3(silu(x))))."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(width, hidden, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(hidden, width, 1))

    def forward(self, x):
        return x + self.body(x)


class FSQTokenizer(nn.Module):
    """encode: images (B, 3, H, W) in [0, 1], H and W multiples of 8 -> int64 indices (B, H/8, W/8) in [0, 1000);
    decode: indices -> images; decode_codes: FSQ code vectors (B, 4, h, w) -> images."""

    def __init__(self, widths=(32, 64, 128), levels=LEVELS):
        super().__init__()
        w1, w2, w3 = widths
        dim = len(levels)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w2, w3, 3, stride=2, padding=1),
            ResBlock(w3, w2), ResBlock(w3, w2), nn.SiLU(),
            nn.Conv2d(w3, dim, 1),
        )
        self.fsq = FSQ(levels=list(levels))
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, w3, 1),
            ResBlock(w3, w2), ResBlock(w3, w2), nn.SiLU(),
            nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(w1, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w1, 3, 3, padding=1),
        )

    @property
    def K(self) -> int:
        return int(self.fsq.codebook_size)

    def quantize(self, x):
        """Images -> (code vectors (B, 4, h, w), indices (B, h, w) int64); the codes carry straight-through
        gradients. FSQ rounds in float32 (its own autocast guard covers CUDA only, so cast here)."""
        z = self.encoder(x).float()
        codes, indices = self.fsq(z)
        return codes, indices.long()

    def forward(self, x):
        codes, _ = self.quantize(x)
        return self.decode_codes(codes)

    def encode(self, x):
        return self.quantize(x)[1]

    def decode_codes(self, z):
        return self.decoder(z) + 0.5  # centred on mid-grey, so training starts near the images' mean

    def decode(self, indices):
        return self.decode_codes(self.fsq.indices_to_codes(indices.long()))

    def codebook(self):
        """All K code vectors in index order, (K, 4) float32 (FSQ's implicit codebook)."""
        return self.fsq.indices_to_codes(torch.arange(self.K, device=self.fsq._levels.device))
