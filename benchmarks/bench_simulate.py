"""Cost of one simulation trial against the model's own encode + decode (issue 4 speed bar).

    .venv/bin/python benchmarks/bench_simulate.py [--model f4-k256] [--p 0.01] [--receiver naive]

Prints, for Kodak-24 (or the bundled samples): start-up (imports), model
load, encode (with the clean decode the simulator needs for psnr_clean),
then one trial at BSC p split into channel, receiver and decode, and the
ratio of one trial to plain encode + decode of the same images measured in
the same process.
"""
from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import channels  # noqa: E402
from benchmarks._common import images_arg  # noqa: E402
from vqcodec.bits import indices_to_bits  # noqa: E402
from vqcodec.images import list_images, load_image, to_tensor  # noqa: E402
from vqcodec.receivers import get_receiver, receiver_context  # noqa: E402
from vqcodec.simulate import StopRule, decode_image, encode_image, run_point, trial_rng  # noqa: E402
from vqcodec.zoo import load_codec  # noqa: E402

T_IMPORT = time.perf_counter() - T0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="f4-k256")
    ap.add_argument("--p", type=float, default=0.01)
    ap.add_argument("--receiver", default="naive")
    ap.add_argument("--images", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    codec = load_codec(args.model)
    t_load = time.perf_counter() - t
    paths = list_images(images_arg(args.images))
    imgs = [load_image(p) for p in paths]

    # plain encode + decode of the same images (the model's own cost)
    t_enc = t_dec = 0.0
    with torch.inference_mode():
        for img in imgs:
            x = to_tensor(img)
            t = time.perf_counter()
            idx = codec.model.encode(x)
            t_enc += time.perf_counter() - t
            t = time.perf_counter()
            codec.model.decode(idx)
            t_dec += time.perf_counter() - t

    t = time.perf_counter()
    encs = [encode_image(codec, p, with_ms_ssim=False) for p in paths]
    t_cached = time.perf_counter() - t

    ch = channels.get_channel("bsc", p=args.p)
    fn = get_receiver(args.receiver)
    ctx = receiver_context(codec, ch)
    # warm-up (numba compilation is not part of a trial's cost)
    bits0 = indices_to_bits(encs[0].indices, codec.K, codec.assignment)
    fn(ch(bits0, np.random.default_rng(0)), encs[0].indices.shape, ctx)
    t_ch = t_rx = t_de = 0.0
    for e in encs:
        bits = indices_to_bits(e.indices, codec.K, codec.assignment)
        t = time.perf_counter()
        rx = ch(bits, trial_rng(0, e.name, args.p, 0))
        t_ch += time.perf_counter() - t
        t = time.perf_counter()
        dec = fn(rx, e.indices.shape, ctx)
        t_rx += time.perf_counter() - t
        t = time.perf_counter()
        decode_image(codec, dec, *e.image.shape[:2])
        t_de += time.perf_counter() - t
    t = time.perf_counter()
    run_point(codec, encs, ch, [args.receiver], seed=0, param=args.p, stop=StopRule(1, 1), with_ms_ssim=False)
    t_trial = time.perf_counter() - t

    base = t_enc + t_dec
    print(f"model {args.model}, {len(paths)} images, BSC p={args.p}, receiver {args.receiver}, "
          f"{args.threads} torch threads")
    print(f"start-up (imports)          {T_IMPORT:7.2f} s")
    print(f"model load                  {t_load:7.2f} s")
    print(f"plain encode                {t_enc:7.2f} s")
    print(f"plain decode                {t_dec:7.2f} s")
    print(f"encode+clean decode (cache) {t_cached:7.2f} s  (once per image, reused by every trial)")
    print(f"one trial: channel          {t_ch:7.2f} s")
    print(f"one trial: receiver         {t_rx:7.2f} s")
    print(f"one trial: decode           {t_de:7.2f} s")
    print(f"one trial via run_point     {t_trial:7.2f} s  (incl. PSNR)")
    print(f"ratio one trial / (encode + decode) = {t_trial / base:.2f}")


if __name__ == "__main__":
    main()
