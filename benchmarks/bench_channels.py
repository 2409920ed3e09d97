"""Throughput of the channel models (a script, not a test).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_channels.py [--n 10000000] [--repeats 5]

Pushes n bits through each channel (one warm-up call, then the median of
``--repeats`` timed calls) and reports Mbit/s. If scikit-commpy (the
optional ``bench`` extra) is installed, the same work goes through
``commpy.channels.bsc``, ``bec`` and ``awgn`` in the same process and the
ratio ours/commpy is printed; otherwise those columns are skipped.

Notes on "the same work": our channels return hard decisions *and* float32
LLRs; commpy's ``bsc``/``bec`` return hard bits only (so the comparison
favours commpy). For AWGN both sides include the BPSK mapping, the noise,
hard decisions and LLRs; commpy's ``snr_dB`` for a real signal is
Es/sigma^2, so it is given our Es/N0 + 3.01 dB to draw the same noise.
commpy draws from NumPy's global RNG (its API); ours from a Generator.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import timeit  # noqa: E402
from channels import get_channel  # noqa: E402


def load_commpy():
    try:
        import commpy.channels as cc  # type: ignore[import-not-found]
    except ImportError:
        return None
    return cc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="bits per call (default 1e7)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per channel (median reported)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n, reps = args.n, args.repeats

    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var) != "1":
            print(f"note: {var} is not 1; the figures are meant for one core", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    cc = load_commpy()

    # commpy counterparts: (label, callable) doing the same work on `bits`
    def commpy_bsc(p):
        return lambda: cc.bsc(bits, p)

    bits_i8 = bits.astype(np.int8)  # commpy writes -1 into a copy of its input

    def commpy_bec(p):
        return lambda: cc.bec(bits_i8, p)

    def commpy_awgn(snr_db, soft=True):
        snr = 10 ** (snr_db / 10)

        def run():
            x = 1.0 - 2.0 * bits
            y = cc.awgn(x, snr_db + 10 * math.log10(2.0))
            hard = (y < 0).view(np.int8)
            llr = (4.0 * snr * y).astype(np.float32) if soft else None
            return hard, llr

        return run

    cases = [
        ("bsc", {"p": 0.01}, commpy_bsc(0.01)),
        ("bsc", {"p": 0.1}, commpy_bsc(0.1)),
        ("erasure", {"p": 0.01}, commpy_bec(0.01)),
        ("erasure", {"p": 0.1}, commpy_bec(0.1)),
        ("packet-erasure", {"p": 0.1, "packet_bits": 8}, None),
        ("awgn", {"snr_db": 3.0}, commpy_awgn(3.0)),
        ("awgn", {"snr_db": 3.0, "soft": False}, commpy_awgn(3.0, soft=False)),
        ("burst", {"p": 0.01, "burst_length": 10}, None),
        ("fading", {"snr_db": 3.0, "block_bits": 64}, None),
    ]

    print(f"channel throughput, n = {n:.0e} bits, median of {reps} runs after a warm-up")
    if cc is None:
        print("scikit-commpy not installed: commpy comparison skipped (pip install '.[bench]')")
    else:
        np.random.seed(args.seed)  # commpy uses the global RNG
    header = f"{'channel':<38} {'ours Mbit/s':>12} {'commpy Mbit/s':>14} {'ours/commpy':>12}"
    print(header)
    print("-" * len(header))
    for name, params, theirs in cases:
        ch = get_channel(name, **params)
        t_ours = timeit(lambda: ch(bits, rng), repeat=reps)
        label = name + "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
        ours = n / t_ours / 1e6
        if cc is not None and theirs is not None:
            t_theirs = timeit(theirs, repeat=reps)
            them = n / t_theirs / 1e6
            print(f"{label:<38} {ours:>12.1f} {them:>14.1f} {ours / them:>12.2f}")
        else:
            print(f"{label:<38} {ours:>12.1f} {'-':>14} {'-':>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
