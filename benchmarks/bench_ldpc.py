"""Benchmark of vqcodec.ldpc (a script, not a test).

1. Throughput: information bits per second on one core, 20 iterations, no
   early stop (and, in one row, at most 20 with a stop once every check is met), for
   k=4096 n=8192 (BG1) and k=1024 rate 1/3 (BG2): our
   layered offset min-sum (the default, int16 fixed point; and in float32), our flooding
   sum-product ("boxplus"), and
   Sionna's LDPC5GDecoder (its default "boxplus-phi" flooding, and
   "boxplus") in the same process, torch on one thread.
2. BLER vs Eb/N0 over BPSK-AWGN for k = 1024, 4096 at rates 1/3, 1/2, 2/3,
   20 iterations: the Eb/N0 where BLER crosses 1e-2 (log-linear
   interpolation between the bracketing points of a 0.2 dB grid), for our
   layered offset min-sum (default; float32 and int16), our flooding boxplus (decision-identical to Sionna's
   "boxplus", see tests/test_ldpc.py) and, for a reduced set of codes
   (Sionna decodes ~0.02 Mbit/s), Sionna's default decoder itself.

Run:  NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
      python benchmarks/bench_ldpc.py [--quick] [--part 1 2] [--no-sionna]

Eb/N0 accounting: Es/N0 = Eb/N0 * k / n; y = (1 - 2c) + sigma n,
sigma^2 = 1 / (2 Es/N0), LLR = 2 y / sigma^2.  The variants option compares
layered decoders with other (alpha, beta), e.g. --variants 0.75,0 0.7,0 1,0.4.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from vqcodec import ldpc

THROUGHPUT_CODES = [(4096, 8192, 1.4), (1024, 3072, 0.9)]  # (k, n, Eb/N0 dB)
BLER_CODES = [(k, r) for k in (1024, 4096) for r in ((1, 3), (1, 2), (2, 3))]
START_DB = {(1, 3): 0.6, (1, 2): 1.4, (2, 3): 2.4}  # first grid point (k = 1024)
TARGET = 1e-2


def awgn_llr(coded, ebn0_db, rate, rng):
    sigma = math.sqrt(1.0 / (2.0 * rate * 10 ** (ebn0_db / 10)))
    y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.shape)
    return (2.0 * y / sigma**2).astype(np.float32)


# ---------------------------------------------------------------------------
# Decoders under test: callables (llr (B, n) float32) -> bits (B, k) uint8
# ---------------------------------------------------------------------------


def ours(code, iterations, **kw):
    return lambda llr: code.decode(llr, iterations, **kw).bits


class SionnaDecoder:
    """Sionna's LDPC5GDecoder on one thread; takes our LLRs (logits = -llr)."""

    def __init__(self, k, n, iterations, cn_update="boxplus-phi"):
        import torch
        from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

        torch.set_num_threads(1)
        self.torch = torch
        self.dec = LDPC5GDecoder(LDPC5GEncoder(k, n), cn_update=cn_update, num_iter=iterations)

    def __call__(self, llr):
        with self.torch.no_grad():
            out = self.dec(self.torch.from_numpy(-llr))
        return out.numpy().astype(np.uint8)


def sionna_available():
    try:
        import sionna.phy  # noqa: F401
    except Exception:
        return False
    return True


# ---------------------------------------------------------------------------
# 1. Throughput
# ---------------------------------------------------------------------------


def time_best(fn, repeats):
    """(best wall seconds, CPU seconds of that run) over ``repeats`` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        t, c = time.perf_counter() - t0, time.thread_time() - c0
        if t < best[0]:
            best = (t, c)
    return best


def part_throughput(args, rng):
    print(f"\n(1) Decoder throughput, one core, 20 iterations, no early stop "
          f"(info Mbit/s; best of {args.repeats}; wall and CPU time)")
    print(f"{'code':>16} {'decoder':>34} {'words':>6} {'wall':>8} {'cpu':>8} {'vs Sionna':>10}")
    use_sionna = not args.no_sionna and sionna_available()
    for k, n, ebn0 in THROUGHPUT_CODES:
        code = ldpc.LDPC5GCode(k, n)
        name = f"k={k} n={n} BG{code.bg}"
        words = args.tp_words
        u = rng.integers(0, 2, (words, k), dtype=np.uint8)
        llr = awgn_llr(code.encode(u), ebn0, k / n, rng)
        rows = []
        code.decode(llr[:1], 2)
        code.decode(llr[:1], 2, schedule="flooding", cn_update="boxplus")
        rows.append(("ours layered offset min-sum int16 (API)", words,
                     time_best(lambda: code.decode(llr, 20), args.repeats)))
        code.decode(llr[:2], 2, dtype=np.float32)
        rows.append(("same, float32", words,
                     time_best(lambda: code.decode(llr, 20, dtype=np.float32), args.repeats)))
        used = code.decode(llr, 20, early_stop=True).iterations
        rows.append((f"same, early stop (mean {np.mean(used):.1f} it.)", words,
                     time_best(lambda: code.decode(llr, 20, early_stop=True), args.repeats)))
        fw = max(2, words // 8)
        rows.append(("ours flooding boxplus (API)", fw,
                     time_best(lambda: code.decode(llr[:fw], 20, schedule="flooding",
                                                   cn_update="boxplus"), max(1, args.repeats // 2))))
        sionna_rate = {}
        if use_sionna:
            sw = args.sionna_tp_words
            for cn in ("boxplus-phi", "boxplus"):
                dec = SionnaDecoder(k, n, 20, cn)
                dec(llr[:2])
                t = time_best(lambda: dec(llr[:sw]), 1)
                sionna_rate[cn] = sw * k / t[0] / 1e6
                rows.append((f"Sionna LDPC5GDecoder {cn}", sw, t))
        for label, w, (t, c) in rows:
            wall, cpu = w * k / t / 1e6, w * k / c / 1e6
            ratio = ""
            if sionna_rate:
                ref = sionna_rate["boxplus" if "flooding boxplus" in label else "boxplus-phi"]
                ratio = f"{wall / ref:9.0f}x" if not label.startswith("Sionna") else ""
            print(f"{name:>16} {label:>34} {w:6d} {wall:8.3f} {cpu:8.3f} {ratio:>10}")
    if use_sionna:
        print("    ratio: our layered vs Sionna's default (boxplus-phi); our flooding boxplus vs "
              "Sionna boxplus (the same algorithm); wall time")


# ---------------------------------------------------------------------------
# 2. BLER
# ---------------------------------------------------------------------------


def simulate(code, decode, ebn0, rng, batch, min_errors, max_blocks):
    blocks = errors = 0
    while errors < min_errors and blocks < max_blocks:
        b = min(batch, max_blocks - blocks)
        u = rng.integers(0, 2, (b, code.k), dtype=np.uint8)
        bits = decode(awgn_llr(code.encode(u), ebn0, code.rate, rng))
        errors += int((bits != u).any(axis=1).sum())
        blocks += b
    return errors, blocks


def crossing(points, target=TARGET):
    """Eb/N0 where log10 BLER crosses target (log-linear), or None if not bracketed."""
    pts = sorted(points.items())
    for (x0, (e0, n0)), (x1, (e1, n1)) in zip(pts, pts[1:]):
        b0, b1 = e0 / n0, e1 / n1
        if b0 >= target > b1:
            if b1 == 0:
                b1 = 0.5 / n1  # zero errors: half an error (conservative)
            l0, l1, lt = math.log10(b0), math.log10(b1), math.log10(target)
            return x0 + (x1 - x0) * (l0 - lt) / (l0 - l1)
    return None


def search(code, decode, start, rng, args, batch, max_blocks, step=0.2, max_points=12):
    """Grid points around the 1e-2 crossing: walk down until BLER >= target,
    up until BLER < target."""
    pts = {}

    def run(x):
        x = round(x, 3)
        if x not in pts:
            pts[x] = simulate(code, decode, x, rng, batch, args.min_errors, max_blocks)
        return pts[x][0] / pts[x][1]

    x = start
    b = run(x)
    while b < TARGET and len(pts) < max_points:
        x -= step
        b = run(x)
    x = max(pts)
    b = run(x)
    while b >= TARGET and len(pts) < max_points:
        x += step
        b = run(x)
    return pts, crossing(pts)


def fmt_points(pts):
    return "  ".join(f"{x:.1f}:{e}/{n}" for x, (e, n) in sorted(pts.items()))


def part_bler(args, rng):
    print(f"\n(2) BLER vs Eb/N0, BPSK-AWGN, 20 iterations; Eb/N0 (dB) at BLER {TARGET:g}")
    print(f"    ours: >= {args.min_errors} block errors or {args.max_blocks} blocks per point; "
          f"flooding boxplus: at most {args.flood_blocks} blocks; Sionna: at most "
          f"{args.sionna_blocks} blocks, codes {args.sionna_codes}")
    print("    points: Eb/N0:errors/blocks")
    use_sionna = not args.no_sionna and sionna_available()
    variants = [tuple(float(v) for v in s.split(",")) for s in args.variants]
    results = []
    for k, (p, q) in BLER_CODES:
        if args.codes and f"{k}:{p}/{q}" not in args.codes:
            continue
        n = k * q // p
        code = ldpc.LDPC5GCode(k, n)
        start = START_DB[(p, q)] - (0.2 if k >= 4096 else 0.0)
        name = f"k={k} r={p}/{q} BG{code.bg}"
        decs = [("ours layered OMS 0.5", ours(code, 20, dtype=np.float32), 256, args.max_blocks),
                ("ours layered OMS 0.5 int16", ours(code, 20), 256, args.max_blocks)]
        for a, b in variants:
            decs.append((f"ours layered a={a:g} b={b:g}", ours(code, 20, alpha=a, beta=b, dtype=np.float32), 256,
                         args.max_blocks))
        if not args.no_flooding:
            decs.append(("ours flooding boxplus", ours(code, 20, schedule="flooding",
                                                       cn_update="boxplus"), 32, args.flood_blocks))
        if use_sionna and f"{k}:{p}/{q}" in args.sionna_codes:
            decs.append(("Sionna boxplus-phi", SionnaDecoder(k, n, 20), 100, args.sionna_blocks))
        x_ref = start
        for label, dec, batch, max_blocks in decs:
            t0 = time.perf_counter()
            s0 = x_ref if label.startswith(("Sionna", "ours flooding")) else start
            pts, x = search(code, dec, s0, rng, args, batch, max_blocks)
            if label == "ours layered OMS 0.5" and x is not None:
                x_ref = round(round(x / 0.2) * 0.2, 3)
            dt = time.perf_counter() - t0
            xs = "not bracketed" if x is None else f"{x:5.2f} dB"
            print(f"{name:>18} {label:>26} {xs:>13}  ({dt:5.0f} s)  {fmt_points(pts)}", flush=True)
            results.append((name, label, x))
    print("\n    summary, Eb/N0 at BLER 1e-2 (dB):")
    names = list(dict.fromkeys(r[0] for r in results))
    labels = list(dict.fromkeys(r[1] for r in results))
    print(f"{'':>18} " + " ".join(f"{lab:>26}" for lab in labels))
    for nm in names:
        cells = []
        for lab in labels:
            x = next((r[2] for r in results if r[0] == nm and r[1] == lab), "n/a")
            cells.append(f"{x:26.2f}" if isinstance(x, float) else f"{str(x):>26}")
        print(f"{nm:>18} " + " ".join(cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (a few minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--no-sionna", action="store_true", help="skip Sionna entirely")
    ap.add_argument("--no-flooding", action="store_true", help="skip our flooding boxplus in (2)")
    ap.add_argument("--codes", nargs="*", default=None, help="subset for (2), e.g. 1024:1/2")
    ap.add_argument("--sionna-codes", nargs="*", default=["1024:1/3", "1024:1/2", "1024:2/3"],
                    help="codes for which (2) also runs Sionna itself")
    ap.add_argument("--min-errors", type=int, default=None)
    ap.add_argument("--max-blocks", type=int, default=None)
    ap.add_argument("--flood-blocks", type=int, default=None)
    ap.add_argument("--sionna-blocks", type=int, default=None)
    ap.add_argument("--variants", nargs="*", default=[], help="extra layered alpha,beta pairs")
    args = ap.parse_args()
    q = args.quick
    args.repeats = 3 if q else 5
    args.tp_words = 32 if q else 128
    args.sionna_tp_words = 32 if q else 100
    args.min_errors = args.min_errors or (20 if q else 100)
    args.max_blocks = args.max_blocks or (2000 if q else 20000)
    args.flood_blocks = args.flood_blocks or (300 if q else 1500)
    args.sionna_blocks = args.sionna_blocks or (200 if q else 1500)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    if 1 in args.part:
        part_throughput(args, rng)
    if 2 in args.part:
        part_bler(args, rng)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
