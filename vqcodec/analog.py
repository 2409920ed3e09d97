"""The analog reference through the same channel: Deep JSCC (``vqcodec.jscc``) over AWGN or
Rayleigh block fading at the same Es/N0 per complex channel use as the digital links.

``deepjscc_sweep`` writes one results object (schema ``vqcodec.results/1``): per SNR point the
PSNR (and MS-SSIM) over trials, each trial one channel realisation per image drawn by
``simulate.trial_rng`` (the paired-seed convention of the VQ trials), ``psnr_clean`` the
reconstruction without noise, and the budget as the digital curves report it
(``channel_uses_per_pixel``, ``cbr``). The model's bandwidth ratio is fixed by its symbol
channels (c / 96): the curve is drawn beside digital schemes at the same cbr.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from channels.analog import AnalogAWGN, AnalogRayleighBlock
from vqcodec.jscc import load_jscc, transmit
from vqcodec.metrics import mean_ci95, ms_ssim, psnr
from vqcodec.precision import resolve_precision
from vqcodec.results import new_results
from vqcodec.simulate import trial_rng


def analog_channel(kind: str, snr_db: float, block: int = 32):
    if kind == "awgn":
        return AnalogAWGN(snr_db)
    if kind == "fading":
        return AnalogRayleighBlock(snr_db, block)
    raise ValueError(f"Deep JSCC sends analog symbols over awgn or fading, not {kind}")


def deepjscc_sweep(images: Sequence[tuple[str, np.ndarray]], channel_kind: str, grid: Sequence[float], *,
                   model: str | None = None, checkpoint=None, trials: int = 4, seed: int = 0,
                   with_ms_ssim: bool = False, block: int = 32, images_source: str | None = None,
                   precision: str = "auto", progress: Callable[[int, int, str], None] | None = None) -> dict:
    """One results object: the Deep JSCC model ``model`` (default deepjscc-c8) or ``checkpoint``
    over ``channel_kind`` (awgn or fading, ``block`` symbols per fade) at every Es/N0 of ``grid``;
    the network at ``precision`` on the CPU (``vqcodec.precision``: auto, fp32 or bf16; recorded
    in the results' model)."""
    chans = [analog_channel(channel_kind, v, block) for v in grid]  # validates before any work
    if int(trials) < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    precision = resolve_precision(precision, "cpu")
    net, meta = load_jscc(model, checkpoint)
    name = meta.get("name") or (model or "deepjscc-c8")
    clean = {}
    for img_name, img in images:
        out, _ = transmit(net, img, lambda s, rng: s, None, precision)
        clean[img_name] = (psnr(img, out), ms_ssim(img, out) if with_ms_ssim else None)
    points = []
    for k, (value, ch) in enumerate(zip(grid, chans)):
        per_psnr = {n: [] for n, _ in images}
        per_ssim = {n: [] for n, _ in images}
        trial_psnr, trial_ssim = [], []
        uses = pixels = 0
        for t in range(int(trials)):
            ps, ss = [], []
            for img_name, img in images:
                out, n_uses = transmit(net, img, ch, trial_rng(seed, img_name, float(value), t), precision)
                if t == 0:
                    uses += n_uses
                    pixels += img.shape[0] * img.shape[1]
                ps.append(psnr(img, out))
                per_psnr[img_name].append(ps[-1])
                if with_ms_ssim:
                    ss.append(ms_ssim(img, out))
                    per_ssim[img_name].append(ss[-1])
            trial_psnr.append(float(np.mean(ps)))
            if with_ms_ssim:
                trial_ssim.append(float(np.mean(ss)))
        ci = mean_ci95(trial_psnr)
        point = {"param": float(value), "trials": int(trials), "stop": "fixed-trials",
                 "psnr": {"mean": ci["mean"], "ci95": ci["ci95"] if len(trial_psnr) > 1 else None},
                 "psnr_clean": float(np.mean([c[0] for c in clean.values()])),
                 "channel_uses_per_pixel": uses / pixels, "cbr": uses / (3 * pixels),
                 "per_image": [{"image": n, "psnr": float(np.mean(v)),
                                **({"ms_ssim": float(np.mean(per_ssim[n]))} if with_ms_ssim else {})}
                               for n, v in per_psnr.items()]}
        if with_ms_ssim:
            s = mean_ci95(trial_ssim)
            point["ms_ssim"] = {"mean": s["mean"], "ci95": s["ci95"] if len(trial_ssim) > 1 else None}
            point["ms_ssim_clean"] = float(np.mean([c[1] for c in clean.values()]))
        points.append(point)
        if progress:
            progress(k + 1, len(chans), f"deepjscc snr_db={value:g}")
    desc = {"kind": channel_kind, "param": "snr_db", "analog": True}
    if channel_kind == "fading":
        desc["block_symbols"] = int(block)
    return new_results(
        name=f"deepjscc-{channel_kind}",
        description=f"Deep JSCC ({name}, Bourtsoulatze et al. 2019): analog symbols at cbr "
                    f"{net.cfg.cbr:.4g}, power 1 per complex use, {channel_kind}",
        seed=seed, model={"name": name, "kind": "deepjscc", "cbr": net.cfg.cbr, "c": net.cfg.c, "precision": precision},
        images={"source": images_source or "custom", "count": len(images)}, channel=desc, receiver="deepjscc",
        points=points, extra={"label": f"Deep JSCC ({name}, analog)", "style": {"ls": "-.", "marker": "D"}})
