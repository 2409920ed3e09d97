"""Scale-out on Dask (issue 8): identity and speed-up of a Kodak BSC sweep.

    .venv/bin/python benchmarks/bench_cluster.py [--images DIR] [--workers 2] [--trials 3]

Runs the same sweep (f4-k256, BSC p = 0.01, 0.03, 0.1, receivers naive and
spatial-mmse, seed 0) four times in this process: serially with torch's
default thread count and with one thread; on a LocalCluster
of ``--workers`` one-thread processes; and on a scheduler started with
``dask scheduler`` plus ``--workers`` ``dask worker`` processes on loopback.
Prints the wall time of each, the speed-up against serial, and whether the
three results files are byte-identical (apart from their creation time).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import channels  # noqa: E402
from benchmarks._common import images_arg  # noqa: E402
from vqcodec.cluster import DaskExecutor  # noqa: E402
from vqcodec.images import list_images  # noqa: E402
from vqcodec.results import dumps  # noqa: E402
from vqcodec.simulate import StopRule, encode_image, sweep  # noqa: E402
from vqcodec.zoo import load_codec  # noqa: E402

GRID = [0.01, 0.03, 0.1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(codec, encs, trials, executor) -> tuple[str, float]:
    t = time.perf_counter()
    res = sweep(codec, encs, [channels.get_channel("bsc", p=v) for v in GRID], GRID, ["naive", "spatial-mmse"],
                channel_desc={"kind": "bsc", "param": "p"}, images_desc={"source": "kodak", "count": len(encs)},
                seed=0, stop=StopRule(min(2, trials), trials, 0.05), with_ms_ssim=False, executor=executor)
    dt = time.perf_counter() - t
    for r in res:
        r.pop("created")
    return dumps(res), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    codec = load_codec("f4-k256")
    encs = [encode_image(codec, p, with_ms_ssim=False) for p in list_images(images_arg(args.images))]
    import torch

    threads = torch.get_num_threads()
    serial, t_serial = run(codec, encs, args.trials, None)
    torch.set_num_threads(1)
    serial1, t_serial1 = run(codec, encs, args.trials, None)
    torch.set_num_threads(threads)
    with DaskExecutor(workers=args.workers) as ex:
        local, t_local = run(codec, encs, args.trials, ex)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        time.sleep(3)
        procs += [subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--no-dashboard"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                  for _ in range(args.workers)]
        with DaskExecutor(scheduler=f"tcp://127.0.0.1:{port}", timeout=30) as ex:
            t_wait = time.time() + 60
            while ex.workers < args.workers and time.time() < t_wait:
                time.sleep(0.5)
            remote, t_remote = run(codec, encs, args.trials, ex)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    n = len(encs)
    print(f"sweep: f4-k256, {n} images, BSC p={GRID}, naive + spatial-mmse, up to {args.trials} trials per point")
    print(f"serial, {threads} torch threads         {t_serial:7.1f} s")
    print(f"serial, 1 torch thread          {t_serial1:7.1f} s")
    print(f"LocalCluster, {args.workers} workers           {t_local:7.1f} s   speed-up {t_serial / t_local:.2f}x "
          f"(vs 1-thread serial {t_serial1 / t_local:.2f}x)")
    print(f"dask scheduler + {args.workers} dask workers  {t_remote:7.1f} s   speed-up {t_serial / t_remote:.2f}x "
          f"(vs 1-thread serial {t_serial1 / t_remote:.2f}x)")
    print(f"results identical: serial == serial 1 thread: {serial == serial1}; serial == LocalCluster: "
          f"{serial == local}; serial == scheduler: {serial == remote}")


if __name__ == "__main__":
    main()
