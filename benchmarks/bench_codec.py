"""fp32 against bf16 autocast for every shipped network, in one process (issue 26).

    .venv/bin/python benchmarks/bench_codec.py [--models all|f4-k256,...] [--threads 2] [--count 6]
                                               [--images DIR] [--repeat 3]

Per shipped network, on the first ``--count`` images (Kodak when present: 768x512), the median
wall time per image or grid in fp32 and in bf16 autocast, their ratio, the arithmetic rate in
GMAC/s (multiply-accumulates of the convolutions and matrix products, counted once with
``torch.utils.flop_counter``) and what bf16 changes:

* encode (``--threads``): the encoder + nearest-codeword search as vqcodec runs it (fp32), and
  the encoder under bf16 autocast with the search in fp32, which vqcodec does not do: the
  percentage of index sites that change says why;
* decode (``--threads``): ``simulate.decode_image`` of the image's indices at each precision,
  with the mean PSNR change;
* the learned context receiver (one thread, as a receiver runs beside the others): its
  posterior over the image's grid through BSC p = 0.01, with the largest change of a posterior
  probability;
* Deep JSCC (``--threads``): encode + decode of one image without noise, with the PSNR change.

bf16 pays on processors with bf16 instructions (AVX512-BF16, AMX); the header says what this
one has. Timings depend on what else runs on the machine: say so when you quote them.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import channels  # noqa: E402
from benchmarks._common import images_arg, timeit  # noqa: E402
from vqcodec.bits import indices_to_bits  # noqa: E402
from vqcodec.context import context_posterior  # noqa: E402
from vqcodec.images import list_images, load_image, to_tensor  # noqa: E402
from vqcodec.jscc import SHIPPED as JSCC_SHIPPED  # noqa: E402
from vqcodec.jscc import load_jscc, transmit
from vqcodec.metrics import psnr  # noqa: E402
from vqcodec.model import pad_tensor  # noqa: E402
from vqcodec.precision import autocast, cpu_has_bf16  # noqa: E402
from vqcodec.receivers import Decision, bit_llrs, receiver_context  # noqa: E402
from vqcodec.simulate import decode_image  # noqa: E402
from vqcodec.zoo import available, load_codec  # noqa: E402


def macs(fn) -> float:
    """Multiply-accumulates of one call of ``fn`` (convolutions, matrix products)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2


def row(name, part, t32, t16, mac, note=""):
    g32 = f"{mac / t32 / 1e9:8.1f}" if mac else f"{'':>8}"
    g16 = f"{mac / t16 / 1e9:8.1f}" if mac else f"{'':>8}"
    print(f"{name:<18} {part:<20} {1000 * t32:9.1f} {1000 * t16:9.1f} {t32 / t16:6.2f}x {g32} {g16}  {note}",
          flush=True)


def encoder_bf16_indices(model, x):
    """Indices with the encoder under bf16 autocast and the nearest-codeword search in fp32."""
    z = model.encoder(pad_tensor(x, model.f).contiguous(memory_format=torch.channels_last))
    with torch.autocast("cpu", enabled=False):
        z = z.float()
        return model.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))


def bench_codec(name, paths, threads, repeat):
    torch.set_num_threads(threads)
    fp32, bf16 = load_codec(name, precision="fp32"), load_codec(name, precision="bf16")
    model = fp32.model
    t_e, t_eb, t_d, t_db, d_psnr, changed, sites = [], [], [], [], [], 0, 0
    mac_e = mac_d = 0.0
    with torch.inference_mode():
        for i, p in enumerate(paths):
            img = load_image(p)
            H, W = img.shape[:2]
            x = to_tensor(img)
            idx = model.encode(x)[0].numpy().astype(np.int64)
            dec = Decision(idx)
            if i == 0:
                mac_e = macs(lambda: model.encode(x))
                mac_d = macs(lambda: decode_image(fp32, dec, H, W))
            t_e.append(timeit(lambda: model.encode(x), repeat=repeat))
            with autocast("bf16"):
                t_eb.append(timeit(lambda: encoder_bf16_indices(model, x), repeat=repeat))
                got = encoder_bf16_indices(model, x)
            ref = model.encode(x)
            ref = ref.permute(0, 2, 3, 1) if ref.dim() == 4 else ref  # (B, S, h, w) -> sites x stages
            changed += int((got.reshape(-1) != ref.reshape(-1)).sum())
            sites += ref.numel()
            t_d.append(timeit(lambda: decode_image(fp32, dec, H, W), repeat=repeat))
            t_db.append(timeit(lambda: decode_image(bf16, dec, H, W), repeat=repeat))
            d_psnr.append(psnr(img, decode_image(bf16, dec, H, W)) - psnr(img, decode_image(fp32, dec, H, W)))
    med = statistics.median
    row(name, f"encode ({threads} thr)", med(t_e), med(t_eb), mac_e,
        f"bf16 encoder would change {100 * changed / sites:.2f}% of index sites: vqcodec encodes in fp32")
    row(name, f"decode ({threads} thr)", med(t_d), med(t_db), mac_d,
        f"PSNR {np.mean(d_psnr):+.4f} dB (worst image {min(d_psnr):+.4f})")
    return fp32


def bench_receiver(codec, paths, repeat, p=0.01):
    torch.set_num_threads(1)
    ch = channels.get_channel("bsc", p=p)
    ctx = receiver_context(codec, ch)
    net = codec.context[0]  # a single-stage model's one context receiver
    t32, t16, dq = [], [], 0.0
    mac = 0.0
    shape = None
    with torch.inference_mode():
        for i, path in enumerate(paths):
            idx = codec.model.encode(to_tensor(load_image(path)))[0].numpy().astype(np.int64)
            rx = ch(indices_to_bits(idx, codec.K, codec.assignment), np.random.default_rng(i))
            llr = bit_llrs(rx, ch, ctx.b)
            shape = idx.shape
            if i == 0:
                mac = macs(lambda: context_posterior(net, llr, idx.shape))
            t32.append(timeit(lambda: context_posterior(net, llr, idx.shape, "fp32"), repeat=repeat))
            t16.append(timeit(lambda: context_posterior(net, llr, idx.shape, "bf16"), repeat=repeat))
            dq = max(dq, float(np.abs(context_posterior(net, llr, idx.shape, "bf16")
                                      - context_posterior(net, llr, idx.shape, "fp32")).max()))
    row(f"{codec.name} rx", "learned (1 thr)", statistics.median(t32), statistics.median(t16), mac,
        f"{shape[1]}x{shape[0]} grid, BSC {p}; max |dq| {dq:.3f}")


def bench_jscc(name, paths, threads, repeat):
    torch.set_num_threads(threads)
    net, _ = load_jscc(name)
    t32, t16, d_psnr = [], [], []
    mac = 0.0
    for i, path in enumerate(paths):
        img = load_image(path)
        if i == 0:
            mac = macs(lambda: transmit(net, img, lambda s, rng: s, None))
        t32.append(timeit(lambda: transmit(net, img, lambda s, rng: s, None, "fp32"), repeat=repeat))
        t16.append(timeit(lambda: transmit(net, img, lambda s, rng: s, None, "bf16"), repeat=repeat))
        d_psnr.append(psnr(img, transmit(net, img, lambda s, rng: s, None, "bf16")[0])
                      - psnr(img, transmit(net, img, lambda s, rng: s, None, "fp32")[0]))
    row(name, f"enc+dec ({threads} thr)", statistics.median(t32), statistics.median(t16), mac,
        f"PSNR {np.mean(d_psnr):+.4f} dB (worst image {min(d_psnr):+.4f}), no noise")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated shipped models, or all")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of encode, decode, Deep JSCC")
    ap.add_argument("--images", default=None)
    ap.add_argument("--count", type=int, default=6, help="images to time")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per image (the median is kept)")
    ap.add_argument("--no-receivers", action="store_true")
    ap.add_argument("--no-jscc", action="store_true")
    args = ap.parse_args()
    names = available() if args.models == "all" else args.models.split(",")
    paths = list_images(images_arg(args.images))[: args.count]
    size = load_image(paths[0]).shape[:2]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 instructions: "
          f"{'yes' if cpu_has_bf16() else 'no (bf16 is emulated: slower)'}")
    print(f"{len(paths)} images (first {size[1]}x{size[0]}); medians per image; GMAC/s from counted MACs")
    print(f"{'network':<18} {'part':<20} {'fp32 ms':>9} {'bf16 ms':>9} {'ratio':>7} {'GMAC/s':>8} {'GMAC/s':>8}")
    print(f"{'':<18} {'':<20} {'':>9} {'':>9} {'':>7} {'fp32':>8} {'bf16':>8}")
    for name in names:
        codec = bench_codec(name, paths, args.threads, args.repeat)
        if codec.context is not None and not args.no_receivers and getattr(codec.model, "stages", 1) == 1:
            bench_receiver(codec, paths, args.repeat)
    if not args.no_jscc:
        for name in JSCC_SHIPPED:
            bench_jscc(name, paths, args.threads, args.repeat)


if __name__ == "__main__":
    main()
