"""Benchmark of vqcodec.baselines (a script, not a test).

JPEG and WebP on Kodak at 0.5 channel bits per pixel over a BSC, p in
{1e-3, 3e-3, 1e-2, 3e-2, 1e-1}, code rates uncoded, 3/4, 2/3, 1/2, 1/3, 1/4
(CRC-32 receiver, grey fallback). Prints the oracle best digital PSNR (and
the rate it picked) and the separation bound per p, then the PSNR of every
fixed rate.

Run:  NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py [--quick] [--json OUT]

``--quick`` uses the first 6 Kodak images and 2 trials. Kodak is read from
../shared/datasets/kodak relative to the repository root; without it the
script says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "datasets" / "kodak"
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 images, 2 trials")
    ap.add_argument("--images", type=int, default=None, help="use the first N Kodak images")
    ap.add_argument("--trials", type=int, default=None, help="trials per point (default 4, --quick 2)")
    ap.add_argument("--budget", type=float, default=0.5, help="channel bits per pixel (default 0.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results objects here")
    args = ap.parse_args(argv)

    if not KODAK.is_dir():
        print(f"skipped: {KODAK} not present")
        return 0
    sys.path.insert(0, str(ROOT))
    from vqcodec import baselines as bl
    from vqcodec.images import list_images

    paths = list_images(KODAK)
    n_images = args.images if args.images is not None else (6 if args.quick else len(paths))
    trials = args.trials if args.trials is not None else (2 if args.quick else 4)
    paths = paths[:n_images]
    imgs = bl.as_baseline_images(paths)

    t0 = time.perf_counter()
    results = []
    for codec in ("webp", "jpeg"):
        t = time.perf_counter()
        results += bl.baseline_sweep(imgs, codecs=(codec,), rates=bl.RATES, channel_kind="bsc", grid=GRID,
                                     budget_bpp=args.budget, seed=args.seed, trials=trials,
                                     images_source=f"kodak[:{n_images}]")
        print(f"{codec}: {time.perf_counter() - t:.1f} s", flush=True)
    elapsed = time.perf_counter() - t0

    by = {r["model"]["name"]: r for r in results}
    print(f"\nKodak ({n_images} images), {args.budget:g} channel bits/pixel, BSC, {trials} trials per point, "
          f"CRC-32 receiver, grey fallback; PSNR dB (RGB), mean over trials of the mean over images")
    head = (f"{'p':>7} | {'oracle WebP (rate)':>20} | {'oracle JPEG (rate)':>20} | "
            f"{'WebP bound':>10} | {'JPEG bound':>10}")
    print(head)
    print("-" * len(head))
    for i, p in enumerate(GRID):
        w = by["webp best digital"]["points"][i]
        j = by["jpeg best digital"]["points"][i]
        wb = by["webp separation bound"]["points"][i]
        jb = by["jpeg separation bound"]["points"][i]
        print(f"{p:>7g} | {w['psnr']['mean']:>11.2f} ({w['rate']:>7}) | {j['psnr']['mean']:>11.2f} ({j['rate']:>7}) | "
              f"{wb['psnr']['mean']:>10.2f} | {jb['psnr']['mean']:>10.2f}")

    print("\nfixed rates: PSNR dB / failure rate; clean PSNR and mean source bpp of the chosen qualities")
    for codec in ("webp", "jpeg"):
        print(f"{codec:>5} {'rate':>8} {'clean':>6} {'src bpp':>7} no-fit | "
              + " | ".join(f"p={p:<10g}" for p in GRID))
        for r in bl.RATES:
            name = f"{codec}+r{r}" if r != "uncoded" else f"{codec}+uncoded"
            pts = by[name]["points"]
            print(f"{'':>5} {r:>8} {pts[0]['psnr_clean']:>6.2f} {pts[0]['source_bpp']:>7.3f} {pts[0]['no_fit']:>6} | "
                  + " | ".join(f"{pt['psnr']['mean']:5.2f} {pt['failure_rate']:4.2f}" for pt in pts))
    print(f"\ntotal {elapsed:.1f} s")
    if args.json:
        from vqcodec.results import write_results

        write_results(args.json, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
