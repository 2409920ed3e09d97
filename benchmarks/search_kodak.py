"""Clean Kodak PSNR of a model with the encoder-side index search, against its nearest-codeword
encoder, for any search setting (``vqcodec.search.SearchConfig``; the CLI writes it as ``--search
N,guided=G,spacing=S,sweeps=W``).

    .venv/bin/python benchmarks/search_kodak.py --model f4-k256 --candidates 6 --spacing 5 --sweeps 3
    .venv/bin/python benchmarks/search_kodak.py --model f4-k256 --candidates 4 --guided 3 --spacing 7 --sweeps 5

Prints the per-image and mean PSNR of both encoders and the search's seconds per image.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import vqcodec.api as vq  # noqa: E402
from benchmarks._common import images_arg  # noqa: E402
from vqcodec.search import SearchConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="f4-k256")
    ap.add_argument("--images", default=None, help="image folder [default: Kodak when present]")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--spacing", type=int, default=5)
    ap.add_argument("--sweeps", type=int, default=2)
    ap.add_argument("--guided", type=int, default=0, help="gradient-guided candidates per site")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    cfg = SearchConfig(candidates=args.candidates, spacing=args.spacing, sweeps=args.sweeps, guided=args.guided)
    folder = images_arg(args.images)
    plain, _ = vq.encode(vq.load(args.model, precision=args.precision), folder, with_ms_ssim=False)
    t0 = time.perf_counter()
    searched, _ = vq.encode(vq.load(args.model, precision=args.precision, search=cfg), folder, with_ms_ssim=False)
    dt = (time.perf_counter() - t0) / len(searched)
    for a, b in zip(plain, searched):
        print(f"{a.name:<16} {a.psnr_clean:7.3f} -> {b.psnr_clean:7.3f}", flush=True)
    mean = lambda encs: float(np.mean([e.psnr_clean for e in encs]))  # noqa: E731
    print(f"{args.model} {cfg}: mean {mean(plain):.3f} -> {mean(searched):.3f} dB over {len(plain)} images, "
          f"{dt:.1f} s per image for the search")


if __name__ == "__main__":
    main()
