"""Component throughputs for the ``speed`` suite, each beside the baseline it is judged by.

Every measurement is the median of ``repeat`` timed calls after one warm-up,
in this process, on the suite's device (CUDA calls are synchronised before
the clock is read). Rows: ``component``, ``detail``, ``value`` + ``unit``
(throughput, higher is better) and, where there is one, ``baseline`` and
``ratio`` = value / baseline value, measured in the same run:

* codec encode and decode at batch 1 and batch B (the batched path the GPU
  needs), and decoder mixed precision (bf16 / fp16 autocast, CUDA only)
  with its largest PSNR change against fp32 on the same images;
* Pillow's JPEG encode + decode of the same images (the classical codec);
* channels: BSC and Gilbert-Elliott bursts in Mbit/s, the burst numba
  kernel against its numpy reference;
* the spatial receiver (numba) against its numpy reference on a crop;
* end to end: ``run_point`` images per second per receiver at BSC p = 0.01.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

import channels
from channels.burst import ge_kernel, ge_reference
from vqcodec.baselines import decode_file, encode_file
from vqcodec.bits import indices_to_bits
from vqcodec.context import context_posterior
from vqcodec.images import crop, to_tensor, to_uint8
from vqcodec.metrics import psnr
from vqcodec.receivers import bit_llrs, only_stage, receiver_context, spatial_posterior, stage_contexts
from vqcodec.simulate import StopRule, run_point

MIXED_PRECISION_TOLERANCE_DB = 0.01


@dataclass
class Row:
    component: str
    detail: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None


def median_time(fn, repeat: int = 5, cuda: bool = False, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls after ``warmup`` untimed ones
    (numba compilation, page faults); with ``cuda`` the device is synchronised around each call."""
    def once():
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(repeat))


def same_shape_images(images: list[np.ndarray]) -> list[np.ndarray]:
    """The images of the most common shape (batches need one size; Kodak mixes 768x512 and 512x768)."""
    shapes = [im.shape for im in images]
    common = max(set(shapes), key=shapes.count)
    return [im for im in images if im.shape == common]


def codec_rows(codec, images: list[np.ndarray], batch: int, repeat: int) -> list[Row]:
    model = codec.model
    dev = codec.device
    cuda = dev.type == "cuda"
    imgs = same_shape_images(images)
    H, W = imgs[0].shape[:2]
    batch_imgs = [imgs[i % len(imgs)] for i in range(batch)]
    x1 = to_tensor(imgs[0]).to(dev)
    xb = torch.cat([to_tensor(im) for im in batch_imgs]).to(dev)
    name, size = codec.name, f"{W}x{H}"
    rows = []
    with torch.inference_mode():
        t_e1 = median_time(lambda: model.encode(x1), repeat, cuda)
        t_eb = median_time(lambda: model.encode(xb), repeat, cuda)
        idx1, idxb = model.encode(x1), model.encode(xb)
        t_d1 = median_time(lambda: model.decode(idx1), repeat, cuda)
        t_db = median_time(lambda: model.decode(idxb), repeat, cuda)
        rows += [Row("encode", f"{name}, {size}, batch 1, fp32", 1 / t_e1, "images/s"),
                 Row("encode", f"{name}, {size}, batch {batch}, fp32", batch / t_eb, "images/s",
                     "batch 1", t_e1 * batch / t_eb),
                 Row("decode", f"{name}, {size}, batch 1, fp32", 1 / t_d1, "images/s"),
                 Row("decode", f"{name}, {size}, batch {batch}, fp32", batch / t_db, "images/s",
                     "batch 1", t_d1 * batch / t_db)]
        best = t_db
        if cuda:
            def psnrs(x):
                return [psnr(im, to_uint8(crop(x[i:i + 1].float(), H, W))) for i, im in enumerate(batch_imgs)]

            ref = psnrs(model.decode(idxb))
            for label, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                def dec(dtype=dtype):
                    with torch.autocast("cuda", dtype=dtype):
                        return model.decode(idxb)
                t = median_time(dec, repeat, cuda)
                got = psnrs(dec())
                delta = float(np.max(np.abs(np.subtract(got, ref))))
                ok = delta <= MIXED_PRECISION_TOLERANCE_DB
                rows.append(Row("decode", f"{name}, {size}, batch {batch}, {label} autocast: max |dPSNR| "
                                f"{delta:.4f} dB ({'within' if ok else 'OVER'} {MIXED_PRECISION_TOLERANCE_DB})",
                                batch / t, "images/s", "fp32 batch", t_db / t))
                if ok:
                    best = min(best, t)
        rows.append(Row("encode+decode", f"{name}, {size}, batch {batch}, fastest decoder within tolerance",
                        batch / (t_eb + best), "images/s", "batch 1 fp32", (t_e1 + t_d1) * batch / (t_eb + best)))
    return rows


def jpeg_rows(images: list[np.ndarray], repeat: int, quality: int = 20) -> list[Row]:
    im = same_shape_images(images)[0]
    H, W = im.shape[:2]
    data = encode_file(im, "jpeg", quality)
    t_e = median_time(lambda: encode_file(im, "jpeg", quality), repeat, False)
    t_d = median_time(lambda: decode_file(data, "jpeg", H, W), repeat, False)
    bpp = 8 * len(data) / (H * W)
    return [Row("jpeg (Pillow)", f"encode, {W}x{H}, quality {quality} ({bpp:.2f} bpp), 1 CPU thread", 1 / t_e,
                "images/s"),
            Row("jpeg (Pillow)", f"decode, {W}x{H}, quality {quality}, 1 CPU thread", 1 / t_d, "images/s")]


def channel_rows(repeat: int, n_bits: int = 1 << 22) -> list[Row]:
    bits = np.random.default_rng(0).integers(0, 2, n_bits, dtype=np.uint8)
    rows = []
    for kind, params in (("bsc", {"p": 0.01}), ("burst", {"p": 0.01})):
        ch = channels.get_channel(kind, **params)
        t = median_time(lambda ch=ch: ch(bits, np.random.default_rng(1)), repeat, False)
        rows.append(Row("channel", f"{kind} p=0.01, {n_bits} bits", n_bits / t / 1e6, "Mbit/s"))
    ge = channels.get_channel("burst", p=0.01)
    n = 1 << 16
    rng = np.random.default_rng(2)
    u_state, u_flip = rng.random(n), rng.random(n)
    args = (u_state, u_flip, ge.pi_bad, ge.p_gb, ge.p_bg, ge.p_good, ge.p_bad)
    t_nb = median_time(lambda: ge_kernel(*args), repeat, False)
    t_ref = median_time(lambda: ge_reference(*args), 1, warmup=0)  # plain numpy: nothing to warm
    rows.append(Row("channel kernel", f"Gilbert-Elliott state chain, {n} bits, numba", n / t_nb / 1e6, "Mbit/s",
                    "numpy reference", t_ref / t_nb))
    return rows


def receiver_rows(codec, indices: np.ndarray, repeat: int, p: float = 0.01, crop_size: int = 24) -> list[Row]:
    ch = channels.get_channel("bsc", p=p)
    ctx = stage_contexts(receiver_context(codec, ch))[0]  # a residual model: its first stage
    indices = indices[0] if indices.ndim == 3 else indices
    rx = ch(indices_to_bits(indices, codec.K, ctx.assignment), np.random.default_rng(0))
    llr = bit_llrs(rx, ch, ctx.b)
    t_full = median_time(lambda: spatial_posterior(llr, indices.shape, ctx), repeat, False)
    h, w = min(crop_size, indices.shape[0]), min(crop_size, indices.shape[1])
    sub = llr.reshape(indices.shape + (ctx.b,))[:h, :w].reshape(-1, ctx.b)
    t_nb = median_time(lambda: spatial_posterior(sub, (h, w), ctx), repeat, False)
    t_ref = median_time(lambda: spatial_posterior(sub, (h, w), ctx, reference=True), 1, warmup=0)
    gh, gw = indices.shape
    rows = [Row("receiver", f"spatial posterior, {codec.name}, {gw}x{gh} grid, BSC p={p}", indices.size / t_full,
                "indices/s"),
            Row("receiver", f"spatial posterior, {w}x{h} crop, numba", h * w / t_nb, "indices/s",
                "numpy reference", t_ref / t_nb)]
    if ctx.context is not None:  # the learned receiver runs on the CPU, as in a simulation
        t_ctx = median_time(lambda: context_posterior(only_stage(ctx.context), llr, indices.shape), repeat, False)
        rows.append(Row("receiver", f"learned context posterior, {codec.name}, {gw}x{gh} grid, BSC p={p}",
                        indices.size / t_ctx, "indices/s", "spatial posterior", t_full / t_ctx))
    return rows


def simulate_rows(codec, encs, p: float = 0.01) -> list[Row]:
    timings: dict = {}
    receivers = ["naive"] + (["spatial-mmse"] if codec.prior is not None else []) + \
        (["learned-mmse"] if codec.context is not None else [])
    run_point(codec, encs, channels.get_channel("bsc", p=p), receivers, seed=0, param=p,
              stop=StopRule(1, 1), with_ms_ssim=False, timings=timings)
    n = len(encs)
    return [Row("simulate", f"{codec.name}, BSC p={p}, receiver {r} (receiver + decode + PSNR)",
                n / timings[r], "images/s") for r in receivers] + \
        [Row("simulate", f"{codec.name}, BSC p={p}, channel", n / timings["channel"], "images/s")]


def to_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
