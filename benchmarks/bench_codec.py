"""Encode and decode time per image of a shipped model (issue 2 speed bar).

    .venv/bin/python benchmarks/bench_codec.py [--model f4-k256] [--threads 2] [--images DIR]

Prints the median encode and decode time per image (768x512 for Kodak) on
the given number of torch threads.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks._common import images_arg, timeit  # noqa: E402
from vqcodec.images import list_images, load_image, to_tensor  # noqa: E402
from vqcodec.zoo import load_codec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="f4-k256")
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of --model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", default=None)
    ap.add_argument("--count", type=int, default=6, help="images to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.model, args.checkpoint)
    paths = list_images(images_arg(args.images))[: args.count]
    enc_t, dec_t = [], []
    with torch.inference_mode():
        for p in paths:
            x = to_tensor(load_image(p))
            idx = codec.model.encode(x)
            enc_t.append(timeit(lambda: codec.model.encode(x), repeat=3))
            dec_t.append(timeit(lambda: codec.model.decode(idx), repeat=3))
    size = tuple(load_image(paths[0]).shape[:2])
    print(f"model {codec.name}: {len(paths)} images (first {size[1]}x{size[0]}), {args.threads} torch threads")
    print(f"encode  median {1000 * statistics.median(enc_t):7.1f} ms/image")
    print(f"decode  median {1000 * statistics.median(dec_t):7.1f} ms/image")


if __name__ == "__main__":
    main()
