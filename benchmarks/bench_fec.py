"""Benchmark of vqcodec.fec (a script, not a test).

1. Coding gain: soft-decision Viterbi, rate 1/2 K=7, BPSK on AWGN, BER vs
   Eb/N0, and the Eb/N0 where BER crosses 1e-5 (textbook ~4.4 dB; uncoded
   BPSK needs 9.6 dB).
2. Hard decisions on a BSC: decoded BER at p = 1e-2, 3e-2, 5e-2 for every
   shipped rate.
3. Speed: information-bit throughput of the Viterbi decoder on one core, and
   scikit-commpy's ``viterbi_decode`` on (a prefix of) the same coded bits.

Run:  NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_fec.py [--quick]

Eb/N0 accounting: Es/N0 = Eb/N0 * nominal rate (the 6 tail bits per block of
``--block`` information bits are not charged).  All simulation is inline
numpy: y = (1 - 2c) + sigma * n, LLR = 2 y / sigma^2, sigma^2 = 1 / (2 Es/N0).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import brentq
from scipy.special import erfc

from vqcodec import fec


def q_func(x):
    return 0.5 * erfc(x / math.sqrt(2))


def uncoded_bpsk_ber(ebn0_db):
    return q_func(math.sqrt(2 * 10 ** (ebn0_db / 10)))


def error_events(err_positions, gap=35):
    """Number of error bursts: errors closer than ``gap`` bits belong to one event."""
    if err_positions.size == 0:
        return 0
    return 1 + int(np.count_nonzero(np.diff(err_positions) >= gap))


def upper95(errors, bits):
    """Exact one-sided 95% upper bound for a binomial rate (Clopper-Pearson)."""
    from scipy.stats import beta

    return float(beta.ppf(0.95, errors + 1, bits - errors)) if bits else float("nan")


def simulate_awgn(code, ebn0_db, rng, block, min_errors, max_bits):
    es_n0 = 10 ** (ebn0_db / 10) * code.rate
    sigma = math.sqrt(1 / (2 * es_n0))
    bits_sent = errors = events = 0
    while errors < min_errors and bits_sent < max_bits:
        msg = rng.integers(0, 2, block, dtype=np.uint8)
        coded = code.encode(msg)
        y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.size)
        llr = (2.0 / sigma**2 * y).astype(np.float32)
        err = np.flatnonzero(code.decode(llr) != msg)
        errors += err.size
        events += error_events(err)
        bits_sent += block
    return bits_sent, errors, events


def simulate_bsc(code, p, rng, block, min_errors, max_bits):
    bits_sent = errors = 0
    while errors < min_errors and bits_sent < max_bits:
        msg = rng.integers(0, 2, block, dtype=np.uint8)
        coded = code.encode(msg)
        hard = (coded ^ (rng.random(coded.size) < p)).astype(np.int8)
        errors += int(np.count_nonzero(code.decode(hard) != msg))
        bits_sent += block
    return bits_sent, errors


def crossing_db(points, target=1e-5):
    """Eb/N0 where log10(BER) crosses ``target``, by linear interpolation."""
    pts = [(x, b) for x, b in points if b > 0]
    for (x0, b0), (x1, b1) in zip(pts, pts[1:]):
        if b0 >= target >= b1:
            l0, l1, lt = math.log10(b0), math.log10(b1), math.log10(target)
            return x0 + (x1 - x0) * (l0 - lt) / (l0 - l1)
    return None


def part_coding_gain(args, rng):
    code = fec.get_code("1/2")
    grid = [3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0]
    print("\n(1) Soft-decision Viterbi, rate 1/2 K=7 (133,171), BPSK/AWGN")
    print(f"    blocks of {args.block} info bits; stop at {args.min_errors} bit errors "
          f"or {args.max_bits:.0e} bits per point")
    print(f"{'Eb/N0 dB':>9} {'bits':>11} {'errors':>7} {'events':>7} {'BER':>10} "
          f"{'95% upper':>10} {'uncoded':>10} {'time s':>7}")
    points = []
    for ebn0 in grid:
        t0 = time.perf_counter()
        n, e, ev = simulate_awgn(code, ebn0, rng, args.block, args.min_errors, args.max_bits)
        dt = time.perf_counter() - t0
        ber = e / n
        points.append((ebn0, ber))
        print(f"{ebn0:9.2f} {n:11d} {e:7d} {ev:7d} {ber:10.2e} {upper95(e, n):10.2e} "
              f"{uncoded_bpsk_ber(ebn0):10.2e} {dt:7.1f}")
    x = crossing_db(points)
    unc = brentq(lambda d: math.log10(uncoded_bpsk_ber(d)) + 5, 0, 15)
    if x is None:
        print("    BER = 1e-5 not bracketed by the grid")
    else:
        print(f"    BER = 1e-5 at Eb/N0 = {x:.2f} dB (interpolated; textbook ~4.4 dB); "
              f"uncoded BPSK {unc:.2f} dB; coding gain {unc - x:.2f} dB")


def part_bsc(args, rng):
    ps = [1e-2, 3e-2, 5e-2]
    print("\n(2) Hard-decision Viterbi on a BSC: decoded BER (errors / bits)")
    header = f"{'code':>5} {'dfree':>5} " + " ".join(f"{'p=' + format(p, '.0e'):>24}" for p in ps)
    print(header)
    for name in ["1/4", "1/3", "1/2", "2/3", "3/4"]:
        code = fec.get_code(name)
        cells = []
        for p in ps:
            n, e = simulate_bsc(code, p, rng, args.block, args.min_errors, args.bsc_max_bits)
            if e:
                cells.append(f"{e / n:9.2e} ({e:>5d}/{n:.0e})")
            else:
                cells.append(f"<{upper95(0, n):8.1e} (    0/{n:.0e})")
        print(f"{name:>5} {code.free_distance():5d} " + " ".join(f"{c:>24}" for c in cells))


def _best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def part_speed(args, rng):
    n_info = args.speed_bits
    print(f"\n(3) Viterbi throughput, one core, {n_info:.0e} info bits per block "
          f"(best of {args.repeats}; AWGN at Eb/N0 = {args.speed_ebn0} dB; API call "
          f"code.decode incl. input checks and depuncturing)")
    print(f"{'code':>5} {'input':>6} {'Mbit/s':>8}")
    results = {}
    for name in ["1/2", "2/3", "3/4", "1/3", "1/4"]:
        code = fec.get_code(name)
        msg = rng.integers(0, 2, n_info, dtype=np.uint8)
        coded = code.encode(msg)
        sigma = math.sqrt(1 / (2 * 10 ** (args.speed_ebn0 / 10) * code.rate))
        y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.size)
        llr = (2.0 / sigma**2 * y).astype(np.float32)
        hard = (y < 0).astype(np.int8)
        code.decode(np.zeros(code.coded_length(10), np.float32))  # JIT / cache load
        for kind, inp in (("soft", llr), ("hard", hard)):
            t = _best_time(lambda: code.decode(inp), args.repeats)
            results[(name, kind)] = n_info / t / 1e6
            print(f"{name:>5} {kind:>6} {n_info / t / 1e6:8.1f}")
        if name == "1/2":
            saved = (msg, coded, y, llr, hard)
    msg, coded, y, llr, hard = saved
    code = fec.get_code("1/2")
    ours = code.decode(llr)

    try:
        import commpy.channelcoding.convcode as cc
    except ImportError:
        print("    scikit-commpy not importable: comparison skipped")
        return
    # Which commpy generator representation reproduces our encoder exactly?
    probe = rng.integers(0, 2, 500, dtype=np.uint8)
    want = code.encode(probe)
    trellis = None
    for g, fmt in (([0o133, 0o171], "MSB"), ([0o155, 0o117], "MSB"), ([0o133, 0o171], "Matlab")):
        tr = cc.Trellis(np.array([6]), np.array([g]), polynomial_format=fmt)
        same = np.array_equal(cc.conv_encode(probe, tr, "term"), want)
        print(f"    commpy Trellis(memory=[6], g_matrix=[[{g[0]:#o}, {g[1]:#o}]], "
              f"polynomial_format={fmt!r}): encoder {'matches' if same else 'differs'}")
        if same and trellis is None:
            trellis, used = tr, (g, fmt)
    if trellis is None:
        print("    no commpy representation reproduces our encoder: comparison skipped")
        return
    n_cp = args.commpy_bits
    print(f"    using g_matrix=[[{used[0][0]:#o}, {used[0][1]:#o}]], polynomial_format="
          f"{used[1]!r}; timing commpy on the first {n_cp} info bits "
          f"({2 * n_cp} coded bits) of the same stream, tb_depth default (30)")
    for kind, inp, ctype in (
        ("hard", hard[: 2 * n_cp].astype(float), "hard"),
        ("soft", -y[: 2 * n_cp], "unquantized"),  # commpy maps bit 1 -> +1
    ):
        t0 = time.perf_counter()
        dec = cc.viterbi_decode(inp, trellis, decoding_type=ctype)
        t = time.perf_counter() - t0
        rate_cp = n_cp / t / 1e6
        m = n_cp - 40  # commpy's last tb_depth bits are decided without termination
        ref = code.decode(hard) if kind == "hard" else ours
        agree = np.mean(dec[:m] == ref[:m])
        print(f"    commpy {ctype:>11}: {rate_cp * 1e3:8.2f} kbit/s; vqcodec.fec {kind} "
              f"{results[('1/2', kind)]:.1f} Mbit/s = {results[('1/2', kind)] / rate_cp:,.0f}x; "
              f"decisions agree on {agree:.4%} of the first {m} bits")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", type=int, nargs="*", default=[1, 2, 3])
    args = ap.parse_args()
    args.block = 100_000
    args.min_errors = 30 if args.quick else 300
    args.max_bits = int(2e6 if args.quick else 1e8)
    args.bsc_max_bits = int(1e6 if args.quick else 1e7)
    args.speed_bits = int(2e5 if args.quick else 1e6)
    args.repeats = 2 if args.quick else 5
    args.speed_ebn0 = 4.0
    args.commpy_bits = 500 if args.quick else 3000
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    if 1 in args.part:
        part_coding_gain(args, rng)
    if 2 in args.part:
        part_bsc(args, rng)
    if 3 in args.part:
        part_speed(args, rng)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
