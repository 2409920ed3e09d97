"""Soft-demapper throughput per modulation (a script, not a test).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_modulation.py [--n 50000] [--repeats 5]

For each modulation and demapping method ("app", "maxlog") the same
``n`` noisy received symbols (Es/N0 = 10 dB, AWGN) are demapped to LLRs by

* ``numba``: :meth:`channels.modulation.Modulation.demap` (the numba kernel,
  I/Q-separated, float64 inside, float32 out, hard decisions too);
* ``numpy``: :func:`channels.modulation.demap_reference` (the full-constellation
  numpy reference, float64);
* ``sionna``: ``sionna.phy.mapping.Demapper(method, "qam"/"pam", m)`` on CPU
  torch in its default single precision, in the same process, limited to one
  thread (``torch.set_num_threads(1)``); skipped when sionna is not installed
  or with ``--no-sionna``.

Each figure is the median wall time of ``--repeats`` calls after one warm-up
call (the numba kernel's compile / cache load is not counted). Reported: Msym/s
and Mbit/s of the kernel and the ratios kernel / numpy and kernel / sionna
(> 1: the kernel is faster).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from channels.modulation import MODULATIONS, demap_reference, get_modulation  # noqa: E402


def median_time(fn, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_sionna():
    try:
        import sionna.phy.mapping as sm  # type: ignore[import-not-found]
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(1)
    return sm, torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="received symbols per call (default 5e4)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per entry (median reported)")
    ap.add_argument("--snr-db", type=float, default=10.0, help="Es/N0 of the test symbols")
    ap.add_argument("--modulations", default=",".join(MODULATIONS), help="comma-separated names")
    ap.add_argument("--methods", default="app,maxlog", help="comma-separated demapping methods")
    ap.add_argument("--no-sionna", action="store_true", help="skip the Sionna column")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var) != "1":
            print(f"note: {var} is not 1; the figures are meant for one core", file=sys.stderr)
    sm, torch = (None, None) if args.no_sionna else load_sionna()
    if sm is None and not args.no_sionna:
        print("note: sionna not installed; its column is skipped", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    n, reps = args.n, args.repeats
    n0 = 10.0 ** (-args.snr_db / 10.0)
    print(f"demapping {n} symbols, Es/N0 = {args.snr_db:g} dB, median of {reps}; "
          f"ratios > 1: numba kernel faster")
    head = f"{'modulation':<10} {'method':<7} {'numba Msym/s':>12} {'Mbit/s':>8} {'numpy ms':>9} {'sionna ms':>10} " \
           f"{'numba/numpy':>12} {'numba/sionna':>13}"
    print(head)
    print("-" * len(head))
    for name in args.modulations.split(","):
        mod = get_modulation(name.strip())
        m = mod.bits_per_symbol
        x = mod.points[rng.integers(0, 2**m, n)]
        noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * math.sqrt(n0 / 2)
        y = (x + noise).astype(np.complex64)
        h1 = np.ones(1)
        for method in args.methods.split(","):
            method = method.strip()
            t_nb = median_time(lambda: mod.demap(y, n0, None, method), reps)
            t_np = median_time(lambda: demap_reference(y, h1, n0, mod.points, mod.labels, method), reps)
            t_si = float("nan")
            if sm is not None:
                demapper = sm.Demapper(method, "pam" if name == "bpsk" else "qam", m)
                yt = torch.from_numpy(y)
                no = torch.tensor(n0, dtype=torch.float32)
                with torch.no_grad():
                    t_si = median_time(lambda: demapper(yt, no), reps)
            print(f"{name:<10} {method:<7} {n / t_nb / 1e6:>12.2f} {n * m / t_nb / 1e6:>8.1f} "
                  f"{t_np * 1e3:>9.1f} {t_si * 1e3:>10.1f} {t_np / t_nb:>12.1f} {t_si / t_nb:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
