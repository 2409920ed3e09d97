"""Genie-aided bound for the BSC bars of issue 5: how much would a receiver lose if it were told
exactly which indices arrived wrong (but not what they should be)?

    .venv/bin/python benchmarks/genie_bound.py [--model f4-k256] [--p 0.01,0.03,0.1] [--images DIR]

Per image and p, one channel realisation (seeded per image), three receivers on the same noise,
each handing the decoder the MMSE code vector of the learned context posterior:

* ``learned-mmse``: the shipped receiver (no genie);
* ``genie``: every correctly received index is given as certain; at the wrong sites the learned
  posterior (computed with all other sites certain) is renormalised without the received,
  known-wrong index, so the received label's evidence (mostly one bit flip away) is kept;
* ``genie-erase``: the same, but the wrong sites are erased (their received labels discarded).

A model without a learned context receiver, or a residual model (after ``vqcodec prepare``), gets
the same comparison with its ``spatial-mmse`` receiver (per stage): ``spatial-mmse`` against
``genie-erase`` (correct sites certain, wrong sites erased, the spatial prior conceals them).

With ``--channel burst`` (Gilbert-Elliott, ``--burst-length``, default 10 bits) the rows are
``learned-mmse`` (which uses the channel's memory in two passes), ``one-pass`` (the learned
posterior from the memoryless LLRs alone) and ``genie-states``: the receiver is told the channel
state of every bit, so bits in the bad state are erased and the others are certain.

Prints the mean PSNR change against the clean decode (dB). The genie uses the learned network to
conceal, which was not trained on such evidence, so it estimates rather than bounds what perfect
error detection could give.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import channels  # noqa: E402
from benchmarks._common import images_arg  # noqa: E402
from channels import LLR_CLIP  # noqa: E402
from vqcodec.bits import bits_to_indices, indices_to_bits  # noqa: E402
from vqcodec.context import context_posterior  # noqa: E402
from vqcodec.images import list_images  # noqa: E402
from vqcodec.metrics import psnr  # noqa: E402
from vqcodec.receivers import Decision, bit_llrs, receiver_context  # noqa: E402
from vqcodec.receivers.learned import _context_posterior  # noqa: E402
from vqcodec.simulate import decode_image, encode_image  # noqa: E402
from vqcodec.zoo import load_codec  # noqa: E402


def mmse_psnr(codec, enc, q: np.ndarray, cb: np.ndarray) -> float:
    H, W = enc.image.shape[:2]
    dec = Decision(np.argmax(q, -1), (q @ cb).astype(np.float32))
    return psnr(enc.image, decode_image(codec, dec, H, W)) - enc.psnr_clean


def burst_rows(codec, encs, cb, p: float, burst_length: float) -> None:
    from channels.base import Received

    ch = channels.get_channel("burst", p=p, burst_length=burst_length)
    ctx = receiver_context(codec, ch)
    res: dict[str, list[float]] = {"learned-mmse": [], "one-pass": [], "genie-states": []}
    for i, enc in enumerate(encs):
        g = enc.indices
        bits = indices_to_bits(g, codec.K, codec.assignment)
        states, flips = ch.simulate(bits.size, np.random.default_rng(1000 + i))  # what ch(bits, rng) draws
        hard = (bits ^ flips).view(np.int8)
        rx = Received(hard=hard, llr=None)
        llr = bit_llrs(rx, ch, ctx.b)
        res["learned-mmse"].append(mmse_psnr(codec, enc, _context_posterior(rx, g.shape, ctx), cb))
        res["one-pass"].append(mmse_psnr(codec, enc, context_posterior(codec.context[0], llr, g.shape), cb))
        told = np.where(states.reshape(-1, ctx.b) == 1, 0.0, np.sign(llr) * LLR_CLIP)
        res["genie-states"].append(mmse_psnr(codec, enc, context_posterior(codec.context[0], told, g.shape), cb))
    print(f"burst p={p:g}: " + ", ".join(f"{k} {np.mean(v):+.2f}" for k, v in res.items()), flush=True)


def spatial_rows(codec, args) -> None:
    """``spatial-mmse`` against its genie (wrong sites erased, the rest certain), every stage."""
    from channels.base import Received
    from vqcodec.receivers import get_receiver

    receiver = get_receiver("spatial-mmse")
    encs = [encode_image(codec, p, with_ms_ssim=False) for p in list_images(images_arg(args.images))]
    print(f"model {args.model}, {len(encs)} images, one bsc realisation per image and p; PSNR change (dB)")
    for p in [float(v) for v in args.p.split(",")]:
        ch = channels.get_channel("bsc", p=p)
        ctx = receiver_context(codec, ch)
        res: dict[str, list[float]] = {"spatial-mmse": [], "genie-erase": []}
        for i, enc in enumerate(encs):
            g = enc.indices
            H, W = enc.image.shape[:2]
            rx = ch(indices_to_bits(g, codec.K, codec.assignment), np.random.default_rng(1000 + i))
            res["spatial-mmse"].append(psnr(enc.image, decode_image(codec, receiver(rx, g.shape, ctx), H, W))
                                       - enc.psnr_clean)
            wrong = bits_to_indices(rx.hard, codec.K, codec.assignment) != g.reshape(-1)
            told = np.sign(bit_llrs(rx, ch, ctx.b)) * LLR_CLIP
            told[wrong] = 0.0
            told_rx = Received(hard=rx.hard, llr=told.reshape(-1).astype(np.float32))
            res["genie-erase"].append(psnr(enc.image, decode_image(codec, receiver(told_rx, g.shape, ctx), H, W))
                                      - enc.psnr_clean)
        print(f"p={p:g}: " + ", ".join(f"{k} {np.mean(v):+.2f}" for k, v in res.items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="f4-k256")
    ap.add_argument("--p", default="0.01,0.03,0.1")
    ap.add_argument("--images", default=None)
    ap.add_argument("--channel", choices=("bsc", "burst"), default="bsc")
    ap.add_argument("--burst-length", type=float, default=10.0)
    args = ap.parse_args()
    codec = load_codec(args.model)
    if codec.context is None or codec.model.stages > 1:
        if codec.prior is None or args.channel != "bsc":
            sys.exit(f"error: {args.model} has no learned context receiver (and the spatial rows need an index "
                     "prior and --channel bsc)")
        return spatial_rows(codec, args)
    cb = codec.model.codebook.detach().cpu().numpy().astype(np.float32)
    encs = [encode_image(codec, p, with_ms_ssim=False) for p in list_images(images_arg(args.images))]
    print(f"model {args.model}, {len(encs)} images, one {args.channel} realisation per image and p; "
          "PSNR change (dB)")
    for p in [float(v) for v in args.p.split(",")]:
        if args.channel == "burst":
            burst_rows(codec, encs, cb, p, args.burst_length)
            continue
        ch = channels.get_channel("bsc", p=p)
        ctx = receiver_context(codec, ch)
        res: dict[str, list[float]] = {"learned-mmse": [], "genie": [], "genie-erase": []}
        for i, enc in enumerate(encs):
            g = enc.indices
            rx = ch(indices_to_bits(g, codec.K, codec.assignment), np.random.default_rng(1000 + i))
            llr = bit_llrs(rx, ch, ctx.b)
            res["learned-mmse"].append(mmse_psnr(codec, enc, context_posterior(codec.context[0], llr, g.shape), cb))
            recv = bits_to_indices(rx.hard, codec.K, codec.assignment)
            wrong = recv != g.reshape(-1)
            told = llr.copy()
            told[~wrong] = np.sign(told[~wrong]) * LLR_CLIP  # certain: never flipped by the receiver
            q = context_posterior(codec.context[0], told, g.shape).reshape(-1, codec.K)
            known = wrong & (recv >= 0)  # an unused label (K not a power of two) names no index to exclude
            q[known, recv[known]] = 0.0
            tot = q[wrong].sum(-1, keepdims=True)
            q[wrong] = np.where(tot > 0, q[wrong] / np.maximum(tot, 1e-30), 1.0 / (codec.K - 1))
            q[known, recv[known]] = 0.0  # also where the uniform fallback filled it
            res["genie"].append(mmse_psnr(codec, enc, q.reshape(g.shape + (codec.K,)), cb))
            told[wrong] = 0.0
            res["genie-erase"].append(mmse_psnr(codec, enc, context_posterior(codec.context[0], told, g.shape), cb))
        print(f"p={p:g}: " + ", ".join(f"{k} {np.mean(v):+.2f}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
