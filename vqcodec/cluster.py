"""Scale-out on Dask distributed: the Monte Carlo work of sweeps and suites as tasks on a cluster.

``DaskExecutor`` plugs into ``vqcodec.simulate.run_points`` in place of the
serial executor. Tasks are (image chunk, channel point, trial); the codec and
the encoded images are sent to every worker once (a task that returns
them, replicated to every worker), so workers hold the model for the whole
run and never reload it per task. Not ``Client.scatter``: scattered data dies
with the worker that holds it, and a killed worker then cancelled the run
("already forgotten"); a task's result is recomputed by the scheduler. Results come back to the driver, which folds each trial in image
order and applies the stopping rule in rounds: the outcome is the serial one,
bit for bit, whatever the number of workers or the order tasks finish in.
A worker that dies has its tasks rerun elsewhere by the scheduler.

Local: ``DaskExecutor(workers=2)`` starts a ``LocalCluster`` of 2 one-thread
processes. Remote: ``DaskExecutor(scheduler="tcp://host:8786")`` submits to a
running scheduler (``dask scheduler`` + ``dask worker``, or dask-jobqueue).
Workers need vqcodec installed and, for ``--checkpoint`` models, nothing else:
the model travels with the tasks.
"""
from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence

import torch

from channels.base import ParameterError
from vqcodec.memory import DEFAULT_MMAP, DEFAULT_TRIM, set_malloc_thresholds
from vqcodec.simulate import SerialExecutor

ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d+)?/?$")


class ClusterError(RuntimeError):
    """The cluster cannot be started or reached (one-line message)."""


class DaskExecutor:
    """Run tasks on a Dask cluster: a new ``LocalCluster`` of ``workers`` processes, or the
    scheduler at ``scheduler``. Use as a context manager (closes what it started)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *, timeout: float = 10.0):
        if (workers is None) == (scheduler is None):
            raise ClusterError("give either a worker count or a scheduler address")
        try:
            from dask.distributed import Client, LocalCluster  # dask (~0.5-1 s to import) only on a cluster
        except ImportError:
            raise ClusterError("Dask is not installed (a vqcodec dependency): pip install 'dask[distributed]'") from None
        self._cluster = None
        if scheduler is not None:
            check_address(scheduler)
            self.client = _connect(Client, scheduler, timeout)
        else:
            if workers < 1:
                raise ParameterError(f"{{0}} must be >= 1, got {workers}", "workers")
            env = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=40,
                                         env=env)
            self.client = Client(self._cluster)
        plugin = _worker_setup_plugin()
        if hasattr(self.client, "register_plugin"):
            self.client.register_plugin(plugin, name="vqcodec-worker-setup")
        else:  # pragma: no cover - older distributed
            self.client.register_worker_plugin(plugin, name="vqcodec-worker-setup")

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def share(self, obj):
        """Send ``obj`` to every worker once; tasks receive the worker's copy. The copy is the
        result of a task, so the scheduler can recompute it when workers die."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Large object.*")  # older distributed
            warnings.filterwarnings("ignore", message=".*Sending large graph.*")  # newer distributed
            future = self.client.submit(_identity, obj, pure=False)
        future.result()
        if self.workers > 1:
            self.client.replicate([future])
        return future

    def map(self, fn: Callable, calls: Sequence[tuple[tuple, dict]], on_done: Callable[[], None] | None = None) -> list:
        from dask.distributed import as_completed  # dask (~0.5-1 s to import) only on a cluster

        futures = [self.client.submit(fn, *args, pure=False, **kwargs) for args, kwargs in calls]
        try:
            for _ in as_completed(futures):
                if on_done:
                    on_done()
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            raise

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _connect(Client, scheduler: str, timeout: float):
    """``Client(scheduler)`` under a hard wall-clock limit. Dask's own timeout covers opening the
    connection, not its handshake: a listener that accepts and stays silent held the caller for
    minutes, and a server that answers something else (HTTP) made the handshake raise whatever
    its bytes decode to (a MemoryError). So the client is made in a daemon thread, waited for at
    most ``timeout`` + 5 s, and every failure becomes a one-line ``ClusterError``; a client that
    arrives after the caller gave up is closed."""
    box: dict = {}
    lock = threading.Lock()

    def attempt():
        try:
            client = Client(scheduler, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc
            return
        with lock:
            if box.get("abandoned"):
                client.close()
            else:
                box["client"] = client

    thread = threading.Thread(target=attempt, name="vqcodec-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    with lock:
        if "client" in box:
            return box["client"]
        box["abandoned"] = True
    exc = box.get("error")
    if exc is None:
        why = f"no answer within {timeout + 5.0:g} s"
    elif isinstance(exc, (OSError, TimeoutError)):
        why = exc.__class__.__name__
    else:
        why = f"it does not answer as a Dask scheduler: {exc.__class__.__name__}"
    raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({why})")


def _identity(obj):
    return obj


def _worker_setup() -> None:
    """On every worker (also one restarted after a crash): one torch thread, since the cluster's
    processes share the cores; and glibc's dynamic malloc thresholds back. Dask's nanny starts
    workers with MALLOC_TRIM_THRESHOLD_=65536, which pins the mmap threshold, so every large
    tensor of a decode is a fresh mmap with page faults: decoding ran 1.7x slower in a worker
    than in-process until these two mallopt calls (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 64 MiB)."""
    torch.set_num_threads(1)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    set_malloc_thresholds(DEFAULT_MMAP, DEFAULT_TRIM)  # not glibc: nothing to undo


def _worker_setup_plugin():
    from dask.distributed import WorkerPlugin  # dask (~0.5-1 s to import) only on a cluster

    class WorkerSetup(WorkerPlugin):
        def setup(self, worker):
            _worker_setup()

    return WorkerSetup()


def check_address(scheduler: str) -> None:
    if not ADDRESS.match(scheduler):
        raise ClusterError(f"scheduler address {scheduler!r} is not of the form tcp://HOST:PORT")


def executor_for(workers: int | None, scheduler: str | None):
    """The executor for ``--workers`` / ``--scheduler``: serial when neither is given."""
    if workers is None and scheduler is None:
        return SerialExecutor()
    if workers is not None and scheduler is not None:
        raise ParameterError("{0} and {1} exclude each other", "workers", "scheduler")
    return DaskExecutor(workers=workers, scheduler=scheduler)

