"""The picture grid: one image as each scheme's receiver shows it at a few SNRs, so a reader sees
what a dB means.

Rows: the original, vqcodec (a model over a modulation, uncoded or behind a 5G LDPC code, with a
receiver), a classical codec + CRC + 5G LDPC (per SNR the code rate that gives this image the
highest PSNR, the oracle of the baselines), and Deep JSCC; columns: Es/N0 values. Every
transmission is the first trial of the per-image seeds the sweeps use (``simulate.trial_rng``), so
the pictures are the realisations behind trial 0 of a sweep with the same seed. Each tile is
captioned with its PSNR.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

import channels
from vqcodec.analog import analog_channel
from vqcodec.baselines import CODECS, BaselineImage, received_image
from vqcodec.jscc import load_jscc, transmit
from vqcodec.links import CodedLink, code_rate
from vqcodec.metrics import psnr
from vqcodec.plot import _save
from vqcodec.precision import on_cpu
from vqcodec.simulate import encode_array, run_chunk, trial_rng
from vqcodec.zoo import load_codec


def received_pictures(image: np.ndarray, name: str, snrs: Sequence[float], *, model: str = "f4-k256",
                      receiver: str = "learned-mmse", modulation: str = "qpsk", code: str | None = None,
                      codec: str = "heic", rates: Sequence[str] = ("ldpc-1/3", "ldpc-1/2", "ldpc-2/3"),
                      budget_bpp: float | None = None, deepjscc: bool = True, seed: int = 0,
                      precision: str = "auto") -> dict:
    """{row label: [(uint8 image, PSNR) per SNR]} over AWGN with ``modulation``; the classical
    codec's budget is ``budget_bpp`` channel bits per pixel (default: the vqcodec stream's own);
    the networks at ``precision`` (``vqcodec.precision``)."""
    vq = load_codec(model, precision=precision)
    enc = encode_array(vq, name, image, with_ms_ssim=False)
    code = None if code_rate(code) is None else code
    links = [channels.get_channel("awgn", snr_db=float(s), modulation=modulation) for s in snrs]
    links = [CodedLink(c, code) if code else c for c in links]
    if budget_bpp is None:
        bits = enc.indices.size * vq.bits_per_index
        budget_bpp = (links[0].coded_bits(bits) if code else bits) / (image.shape[0] * image.shape[1])
    rows: dict = {"original": [(image, float("inf"))]}
    label = f"vqcodec {model} {modulation}{' ' + code if code else ''} {receiver}"
    rows[label] = []
    for s, link in zip(snrs, links):
        got = []
        run_chunk(vq, [enc], link, [receiver], seed=seed, param=float(s), trial=0, with_ms_ssim=False,
                  on_image=lambda r, n, t, img, got=got: got.append(img))
        rows[label].append((got[0], psnr(image, got[0])))
    base = BaselineImage(name, image)
    label = f"{CODECS[codec].label} + CRC + 5G LDPC (best rate)"
    rows[label] = []
    for s in snrs:
        ch = channels.get_channel("awgn", snr_db=float(s), modulation=modulation)
        tries = [received_image(base, codec, r, ch, budget_bpp=budget_bpp, seed=seed, param=float(s)) for r in rates]
        rows[label].append(max(tries, key=lambda t: t[1]))
    if deepjscc:
        net, meta = load_jscc()
        label = f"Deep JSCC ({meta.get('name', 'deepjscc')}, cbr {net.cfg.cbr:.3g})"
        rows[label] = []
        for s in snrs:
            out, _ = transmit(net, image, analog_channel("awgn", float(s)), trial_rng(seed, name, float(s), 0),
                              on_cpu(vq.precision))
            rows[label].append((out, psnr(image, out)))
    return rows


def draw_grid(rows: dict, snrs: Sequence[float], out, title: str = "") -> list[Path]:
    """The rows of :func:`received_pictures` as a grid figure (PNG, and PDF when ``out`` has no suffix)."""
    import matplotlib  # matplotlib (~0.6 s to import) only when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(snrs)
    h, w = next(iter(rows.values()))[0][0].shape[:2]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.6 * n_rows * h / w + 0.4), dpi=130,
                             squeeze=False)
    for r, (label, tiles) in enumerate(rows.items()):
        for ax in axes[r][len(tiles):]:
            ax.axis("off")
        for c, (img, value) in enumerate(tiles):
            ax = axes[r][c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 1:
                ax.set_title(f"Es/N0 {snrs[c]:g} dB", fontsize=8)
            if label != "original":
                ax.text(0.02, 0.04, f"{value:.2f} dB", transform=ax.transAxes, fontsize=7, color="w",
                        bbox={"facecolor": "k", "alpha": 0.6, "pad": 1, "lw": 0})
            if c == 0:
                ax.set_ylabel(label, fontsize=6.5, rotation=90)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out)
