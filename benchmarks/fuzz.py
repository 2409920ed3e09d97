"""Mutation fuzzing of the two parsers that read files a user may be handed (issue 9).

    .venv/bin/python benchmarks/fuzz.py --target vqc --seconds 600
    .venv/bin/python benchmarks/fuzz.py --target results --seconds 600

Starts from valid files (a real .vqc written by the shipped model; real results
files of a sweep, a clean evaluation and a baseline curve), mutates them
(bit flips, byte replacement with interesting values, truncation, extension,
deletion and duplication of byte runs, splices of two inputs; for results,
also structure-aware edits of the parsed JSON: deleting keys, swapping values
for other JSON types, NaN/inf/huge numbers, nesting) and feeds every input to

* ``vqc``: ``vqcodec.bits.parse_index_file`` (documented error: ``IndexFileError``);
* ``results``: ``read_results`` and what ``vqcodec plot`` / ``export`` do with
  what it returns: ``merge_curves``, ``metrics_in``, ``to_compressai`` and the
  point values the figures read (documented error: ``ResultsError``); every
  200th accepted input is also drawn with ``plot_curves``.

Any other exception is a defect: the input is saved under ``--crashes`` and
counted. Prints inputs tried, accepted, documented errors and defects.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, ord("{"), ord("}"), ord("["), ord("]"), ord('"'), ord(","), ord(":"),
               ord("-"), ord("e"), ord("9"), ord("0")]
JSON_VALUES = [None, True, False, 0, -1, 1, 2**63, -2**63, 10**400, 1e308, -1e-308, 0.5, "nan", "inf", "-inf",
               "", "x" * 50, [], {}, [1, 2], {"mean": "nan"}, {"mean": 1.0, "ci95": "inf"}, {"mean": None},
               [[[]]], "1e400", "NaN", float("nan"), float("inf")]


def mutate_bytes(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        op = rng.randrange(7)
        n = len(b)
        if op == 0 and n:  # bit flip
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # interesting byte
            b[rng.randrange(n)] = rng.choice(INTERESTING)
        elif op == 2:  # truncate
            del b[rng.randrange(n + 1):]
        elif op == 3:  # extend with random bytes
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        elif op == 4 and n:  # delete a run
            i = rng.randrange(n)
            del b[i:i + rng.randrange(1, 32)]
        elif op == 5 and n:  # duplicate a run
            i = rng.randrange(n)
            b[i:i] = b[i:i + rng.randrange(1, 64)]
        elif op == 6 and pool:  # splice with another input
            other = rng.choice(pool)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
    return bytes(b)


def mutate_json(obj, rng: random.Random, depth: int = 0):
    """Structure-aware edit of a parsed JSON value."""
    if depth > 6 or rng.random() < 0.15:
        return rng.choice(JSON_VALUES)
    if isinstance(obj, dict) and obj:
        obj = dict(obj)
        k = rng.choice(list(obj))
        r = rng.random()
        if r < 0.25:
            del obj[k]
        elif r < 0.35:
            obj[k + "x"] = rng.choice(JSON_VALUES)
        else:
            obj[k] = mutate_json(obj[k], rng, depth + 1)
        return obj
    if isinstance(obj, list) and obj:
        obj = list(obj)
        i = rng.randrange(len(obj))
        r = rng.random()
        if r < 0.2:
            del obj[i]
        elif r < 0.3:
            obj.append(rng.choice(obj))
        else:
            obj[i] = mutate_json(obj[i], rng, depth + 1)
        return obj
    return rng.choice(JSON_VALUES)


# --------------------------------------------------------------------------- seeds and targets

def vqc_seeds(workdir: Path) -> list[bytes]:
    from vqcodec.bits import write_index_file

    seeds = []
    rng = np.random.default_rng(0)
    for K, (h, w) in ((256, (4, 6)), (1024, (3, 5)), (2, (1, 1)), (65536, (2, 2))):
        p = workdir / f"s{K}.vqc"
        write_index_file(p, rng.integers(0, K, (h, w)), model="f4-k256", K=K, height=h * 4, width=w * 4 - 1)
        seeds.append(p.read_bytes())
    return seeds


def vqc_target(data: bytes, workdir: Path) -> bool:
    from vqcodec.bits import IndexFileError, parse_index_file

    try:
        idx, header = parse_index_file(data)
    except IndexFileError:
        return False
    K = header["K"]
    assert idx.shape == tuple(header["grid"]) and idx.dtype.kind == "i"
    assert idx.min() >= 0 and idx.max() < K
    return True


def results_seeds(workdir: Path) -> list[bytes]:
    from vqcodec.results import dumps, new_results

    pts = [{"param": p, "trials": 3, "stop": "budget", "psnr": {"mean": 28.0 - 100 * p, "ci95": 0.1},
            "psnr_clean": 28.5, "ms_ssim": {"mean": 0.95, "ci95": 0.0}, "ber": p, "bits": 1000, "bit_errors": 10,
            "index_error_rate": 2 * p, "per_image": [{"image": "a.png", "psnr": 27.0}]} for p in (0.0, 0.01, 0.05)]
    sweep = [new_results(name="s", description="d", seed=0, model={"name": "f4-k256", "f": 4, "K": 256, "bpp": 0.5},
                         images={"source": "x", "count": 1}, channel={"kind": "bsc", "param": "p"}, receiver=r,
                         points=pts) for r in ("naive", "spatial-mmse")]
    clean = new_results(name="e", description="d", seed=0, model={"name": "f4-k256", "f": 4, "K": 256, "bpp": 0.5},
                        images={"source": "x", "count": 1}, channel={"kind": "none", "param": "p"}, receiver="none",
                        points=[{"param": 0.0, "bpp": 0.5, "psnr": {"mean": 28.4, "ci95": 0.0},
                                 "ms_ssim": {"mean": 0.95, "ci95": 0.0}, "psnr_clean": 28.4}])
    base = new_results(name="b", description="d", seed=0, model={"name": "jpeg"}, images={"source": "x", "count": 1},
                       channel={"kind": "awgn", "param": "snr_db"}, receiver="crc+viterbi",
                       points=[{"param": s, "psnr": {"mean": 20.0 + s, "ci95": "inf"}, "failure_rate": 0.1}
                               for s in (0.0, 2.0)], extra={"label": "JPEG · rate 1/2", "style": {"ls": "--"}})
    return [dumps(sweep).encode(), dumps(clean).encode(), dumps([base, clean]).encode()]


_drawn = [0]


def results_target(data: bytes, workdir: Path) -> bool:
    from vqcodec.plot import _value, plot_curves, plot_rd
    from vqcodec.results import ResultsError, merge_curves, metrics_in, read_results, to_compressai

    path = workdir / "r.json"
    path.write_bytes(data)
    try:
        results = read_results(path)
    except ResultsError:
        return False
    merged = merge_curves(results)
    for r in merged:
        for m in metrics_in(r):
            for p in r["points"]:
                _value(p, m)
    try:
        to_compressai(results)
    except ResultsError:
        pass
    _drawn[0] += 1
    if _drawn[0] % 200 == 0:
        for draw in (plot_curves, plot_rd):
            try:
                draw(merged, workdir / "f.png")
            except ResultsError:
                pass
    return True


def results_mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    if rng.random() < 0.5:
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return mutate_bytes(data, rng, pool)
        return json.dumps(mutate_json(obj, rng)).encode()
    return mutate_bytes(data, rng, pool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["vqc", "results"], required=True)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crashes", default="fuzz-crashes", help="folder for inputs that raised an undocumented error")
    args = ap.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="vqcfuzz"))
    seeds_fn, target, mutate = {"vqc": (vqc_seeds, vqc_target, mutate_bytes),
                                "results": (results_seeds, results_target, results_mutate)}[args.target]
    pool = seeds_fn(workdir)
    tried = accepted = defects = 0
    signatures: dict[str, int] = {}
    t_end = time.time() + args.seconds
    while time.time() < t_end:
        data = mutate(rng.choice(pool), rng, pool)
        tried += 1
        try:
            if target(data, workdir):
                accepted += 1
                if len(pool) < 500 and rng.random() < 0.05:
                    pool.append(data)  # accepted inputs seed further mutation
        except Exception as exc:  # noqa: BLE001 - every undocumented exception is a finding
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            sig = f"{type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}"
            if sig not in signatures:
                out = Path(args.crashes)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{args.target}-{len(signatures)}.bin").write_bytes(data)
                print(f"DEFECT {sig}: {str(exc)[:120]}", flush=True)
            signatures[sig] = signatures.get(sig, 0) + 1
            defects += 1
    print(f"target {args.target}: {tried} inputs in {args.seconds:.0f} s, {accepted} accepted, "
          f"{tried - accepted - defects} documented errors, {defects} undocumented exceptions "
          f"({len(signatures)} distinct)")
    for sig, n in signatures.items():
        print(f"  {n:6d}  {sig}")
    sys.exit(1 if defects else 0)


if __name__ == "__main__":
    main()
