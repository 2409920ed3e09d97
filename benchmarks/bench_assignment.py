"""Benchmark of vqcodec.assignment (a script, not a test).

1. Speed and quality of BSA (numba) on random Gaussian codebooks, d = 32,
   K = 256 and K = 1024, with Dirichlet(1) usage probabilities: seconds for
   BSA from the identity and from the PCA start, and the one-flip costs
   (identity, PCA start, BSA final = the better of the two runs).
2. numba kernel vs the numpy reference on K = 64 (same start, identical
   results required): the speed ratio.
3. The shipped checkpoints (vqcodec/weights/*.safetensors, codebook
   'quantizer.embedding', usage 'quantizer.cluster_size'), when present.

Run:  NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_assignment.py [--quick]

Costs are ``one_flip_cost``: the expected squared error (in codebook units)
of one uniformly random bit flip of the label.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vqcodec import assignment as A

WEIGHTS = Path(__file__).resolve().parent.parent / "vqcodec" / "weights"


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def run_case(name, E, p):
    K = E.shape[0]
    ident = np.arange(K)
    pca, t_pca = timed(A.pca_initial, E, p)
    (a_id, h_id), t_id = timed(A.bsa, E, p, ident)
    (a_pca, h_pca), t_bsa = timed(A.bsa, E, p, pca)
    c_id, c_pca = A.one_flip_cost(E, p, ident), A.one_flip_cost(E, p, pca)
    f_id, f_pca = A.one_flip_cost(E, p, a_id), A.one_flip_cost(E, p, a_pca)
    gray = A.one_flip_cost(E, p, A.pca_initial(E, p, "gray"))
    print(f"{name}: K={K} d={E.shape[1]}")
    print(f"  pca_initial {t_pca:.3f} s   BSA from identity {t_id:.2f} s ({len(h_id) - 1} sweeps)"
          f"   BSA from PCA {t_bsa:.2f} s ({len(h_pca) - 1} sweeps)")
    print(f"  cost identity {c_id:.5g}   PCA-Gray {gray:.5g}   PCA start {c_pca:.5g}   "
          f"BSA(identity) {f_id:.5g}   BSA(PCA) {f_pca:.5g}   final {min(f_id, f_pca):.5g}"
          f"   ({100 * (1 - min(f_id, f_pca) / c_id):.1f}% below identity)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip K = 1024")
    args = ap.parse_args()

    # warm up / compile (cache=True makes later runs start warm)
    E, p = np.random.default_rng(0).normal(size=(8, 2)), None
    _, t = timed(A.bsa, E, p)
    print(f"warm-up (numba compile or cache load): {t:.2f} s")

    for K in (256,) if args.quick else (256, 1024):
        rng = np.random.default_rng(K)
        E = rng.normal(size=(K, 32)).astype(np.float32)
        p = rng.dirichlet(np.ones(K))
        run_case("gaussian", E, p)

    rng = np.random.default_rng(64)
    E = rng.normal(size=(64, 32)).astype(np.float32)
    p = rng.dirichlet(np.ones(64))
    (a1, h1), t_nb = timed(A.bsa, E, p, "identity")
    (a2, h2), t_ref = timed(A.bsa_reference, E, p, "identity")
    same = np.array_equal(a1, a2) and np.array_equal(h1, h2)
    print(f"K=64 d=32 from identity: numba {t_nb * 1e3:.1f} ms, reference {t_ref * 1e3:.0f} ms, "
          f"ratio {t_ref / t_nb:.0f}x, identical results: {same}")

    for path in sorted(WEIGHTS.glob("*.safetensors")):
        if path.name.endswith(".train.safetensors"):
            continue
        from safetensors.numpy import load_file

        t = load_file(str(path))
        if "quantizer.embedding" not in t:
            continue
        E = t["quantizer.embedding"]
        counts = t.get("quantizer.cluster_size")
        if args.quick and E.shape[0] > 256:
            continue
        run_case(f"checkpoint {path.stem}", E, counts)
        (_, info), secs = timed(A.optimise_assignment, E, counts)
        print(f"  optimise_assignment: {secs:.2f} s, start={info['start']}, final {info['final_cost']:.5g}")


if __name__ == "__main__":
    main()
