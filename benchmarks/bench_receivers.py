"""Speed of the spatial decoder on one Kodak-sized index grid (issue 5 speed bar).

    .venv/bin/python benchmarks/bench_receivers.py [--model f4-k256] [--p 0.01]

Times ``spatial_posterior`` (candidates + loopy BP, numba, one thread) on a
192x128 grid of a real Kodak image through BSC p, and the numpy reference on
the same input restricted to a 24x24 crop (the reference is slow), reporting
both per index and their ratio; and, when the model ships a learned context receiver, its
posterior (one thread) on the same full grid against the spatial decoder's time.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import channels  # noqa: E402
from benchmarks._common import images_arg, timeit  # noqa: E402
from vqcodec.bits import indices_to_bits  # noqa: E402
from vqcodec.images import list_images  # noqa: E402
from vqcodec.receivers import bit_llrs, receiver_context, spatial_posterior  # noqa: E402
from vqcodec.simulate import encode_image  # noqa: E402
from vqcodec.zoo import load_codec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="f4-k256")
    ap.add_argument("--p", type=float, default=0.01)
    ap.add_argument("--images", default=None)
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of --model")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    codec = load_codec(args.model, args.checkpoint)
    enc = encode_image(codec, list_images(images_arg(args.images))[0], with_ms_ssim=False)
    grid = enc.indices
    ch = channels.get_channel("bsc", p=args.p)
    ctx = receiver_context(codec, ch)
    rx = ch(indices_to_bits(grid, codec.K, codec.assignment), np.random.default_rng(0))
    llr = bit_llrs(rx, ch, ctx.b)
    t_full = timeit(lambda: spatial_posterior(llr, grid.shape, ctx), repeat=5)
    h, w = 24, 24
    sub = llr.reshape(grid.shape + (ctx.b,))[:h, :w].reshape(-1, ctx.b)
    t_nb = timeit(lambda: spatial_posterior(sub, (h, w), ctx), repeat=5)
    t_ref = timeit(lambda: spatial_posterior(sub, (h, w), ctx, reference=True), repeat=1, warmup=0)
    print(f"model {args.model} (K={codec.K}), BSC p={args.p}, one thread")
    print(f"spatial decoder, {grid.shape[1]}x{grid.shape[0]} grid ({grid.size} indices): {1000 * t_full:.1f} ms "
          f"({1e6 * t_full / grid.size:.2f} us/index)")
    print(f"same input, {w}x{h} crop: numba {1000 * t_nb:.2f} ms, numpy reference {1000 * t_ref:.0f} ms, "
          f"ratio {t_ref / t_nb:.0f}x")
    if codec.context is not None:
        from vqcodec.context import context_posterior

        t_ctx = timeit(lambda: context_posterior(codec.context[0], llr, grid.shape), repeat=5)
        print(f"learned context receiver, same {grid.shape[1]}x{grid.shape[0]} grid: {1000 * t_ctx:.1f} ms "
              f"({t_ctx / t_full:.1f}x the spatial decoder's time)")


if __name__ == "__main__":
    main()
