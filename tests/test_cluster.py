"""Scale-out: task splitting, order-independent merging, a 2-worker LocalCluster, worker death,
and clean errors for bad scheduler addresses."""
import json
import os
import random
import signal
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import channels
from cli import main
from vqcodec.bits import identity_assignment
from vqcodec.prior import learn_prior
from vqcodec.results import dumps
from vqcodec.simulate import SerialExecutor, StopRule, encode_image, run_chunk, sweep
from vqcodec.zoo import Codec


@pytest.fixture
def setup(tiny_model, image_dir, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for i in range(4):  # six images in all: several chunks per trial
        Image.fromarray(rng.integers(0, 256, (20 + 4 * i, 28, 3), dtype=np.uint8)).save(image_dir / f"r{i}.png")
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16))
    encs = [encode_image(codec, p, False) for p in sorted(image_dir.iterdir())]
    codec = Codec(name="tiny", model=tiny_model, meta={"name": "tiny"}, assignment=identity_assignment(16),
                  prior=(learn_prior([e.indices for e in encs], 16),))
    grid = [0.01, 0.05, 0.2]
    return codec, encs, grid, [channels.get_channel("bsc", p=v) for v in grid]


def run(setup, executor=None, stop=None, **kw):
    stop = stop or StopRule(2, 5, 0.3)
    codec, encs, grid, chans = setup
    res = sweep(codec, encs, chans, grid, ["naive", "spatial-mmse"], channel_desc={"kind": "bsc", "param": "p"},
                images_desc={"source": "t", "count": len(encs)}, seed=7, stop=stop, with_ms_ssim=False,
                executor=executor, **kw)
    for r in res:
        r.pop("created")
    return dumps(res)


class Recording(SerialExecutor):
    """Serial, but runs each round's tasks in a shuffled order and records them."""

    def __init__(self, seed=0):
        self.calls, self.rng = [], random.Random(seed)

    def map(self, fn, calls, on_done=None):
        order = list(range(len(calls)))
        self.rng.shuffle(order)
        out = [None] * len(calls)
        for i in order:
            args, kwargs = calls[i]
            self.calls.append(([e.name for e in args[1]], kwargs["param"], kwargs["trial"]))
            out[i] = fn(*args, **kwargs)
        return out


def test_tasks_cover_every_image_point_and_trial_once(setup):
    ex = Recording()
    out = json.loads(run(setup, ex))
    codec, encs, grid, _ = setup
    seen = [(name, p, t) for names, p, t in ex.calls for name in names]
    assert len(seen) == len(set(seen))
    trials = {pt["param"]: pt["trials"] for pt in out[0]["points"]}
    assert sorted(seen) == sorted((e.name, p, t) for p in grid for t in range(trials[p]) for e in encs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merging_is_independent_of_order_and_chunking(setup, seed, monkeypatch):
    import vqcodec.simulate as sim

    serial = run(setup)
    assert run(setup, Recording(seed)) == serial
    # other chunk sizes: one image per task, and all images in one task
    for size in (1, 6):
        real = sim.run_points
        monkeypatch.setattr(sim, "run_points", lambda *a, **k: real(*a, **{**k, "chunk_size": size}))
        assert run(setup) == serial
        monkeypatch.setattr(sim, "run_points", real)


def test_a_chunk_equals_its_images_one_by_one(setup):
    codec, encs, _, chans = setup
    whole = run_chunk(codec, encs, chans[1], ["naive"], seed=3, param=0.05, trial=2, with_ms_ssim=False)
    parts = [run_chunk(codec, [e], chans[1], ["naive"], seed=3, param=0.05, trial=2, with_ms_ssim=False)
             for e in encs]
    assert whole.psnr["naive"] == [p.psnr["naive"][0] for p in parts]
    assert whole.counts.bit_errors == sum(p.counts.bit_errors for p in parts)


def test_local_cluster_gives_the_serial_results_and_survives_a_killed_worker(setup):
    from vqcodec.cluster import DaskExecutor

    serial = run(setup)
    with DaskExecutor(workers=2) as ex:
        assert ex.workers == 2
        assert run(setup, ex) == serial
        with warnings.catch_warnings(record=True) as caught:  # sharing Kodak-sized data prints nothing
            warnings.simplefilter("always")
            ex.share(np.zeros(3 * 2 ** 20))
        assert not [w for w in caught if "large" in str(w.message).lower()], [str(w.message) for w in caught]
        pids = list(ex.client.run(os.getpid).values())
        killed = []

        def kill_one():
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        assert run(setup, ex, on_task=kill_one) == serial
        assert killed


def test_local_cluster_gives_the_serial_results_under_bf16(setup):
    import dataclasses

    from vqcodec.cluster import DaskExecutor

    codec, *rest = setup
    bf16 = (dataclasses.replace(codec, precision="bf16"), *rest)
    serial = run(bf16)
    assert json.loads(serial)[0]["model"]["precision"] == "bf16"
    assert serial != run(setup)  # bf16 decoding really ran (other pixels, other PSNR)
    with DaskExecutor(workers=2) as ex:
        assert run(bf16, ex) == serial


@pytest.mark.parametrize("address,needle", [
    ("localhost:8786", "not of the form"),
    ("tcp://127.0.0.1:1", "cannot reach the Dask scheduler"),
])
def test_bad_scheduler_addresses_give_one_line_errors(image_dir, tmp_path, address, needle):
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["sweep", "--channel", "bsc", "--p", "0.01", "--images", str(image_dir),
                                  "--receiver", "naive", "--trials", "1", "--json", str(out), "--scheduler", address])
    assert r.exit_code != 0
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and needle in last and "Traceback" not in r.output
    assert not out.exists()


@pytest.fixture
def not_dask():
    """A local TCP server that is not a Dask scheduler: ``not_dask(reply)`` accepts connections
    and sends ``reply`` (or stays silent when it is empty); returns its port."""
    import socket
    import threading

    socks = []

    def start(reply: bytes) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        socks.append(srv)

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                socks.append(conn)
                if reply:
                    conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    yield start
    for s in socks:
        s.close()


@pytest.mark.parametrize("reply,needle", [
    (b"", "no answer within"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello", "not answer as a Dask"),
])
def test_a_server_that_is_not_dask_gives_a_one_line_error_in_time(image_dir, tmp_path, not_dask, reply, needle):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "r.json"
    port = not_dask(reply)
    cmd = [sys.executable, "-c", "from cli import main; main()", "sweep", "--channel", "bsc", "--p", "0.01",
           "--images", str(image_dir), "--receiver", "naive", "--trials", "1", "--json", str(out),
           "--scheduler", f"tcp://127.0.0.1:{port}"]
    r = subprocess.run(cmd, cwd=root, env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True,
                       timeout=40)  # 10 s timeout + 5 s grace, plus start-up; it hung for minutes
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], lines
    assert list(tmp_path.glob("r.json*")) == []


def test_workers_and_scheduler_exclude_each_other(image_dir):
    r = CliRunner().invoke(main, ["simulate", "--channel", "bsc", "--p", "0.01", "--images", str(image_dir),
                                  "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert r.exit_code != 0 and "exclude each other" in r.output


def test_dask_equals_serial_over_qam_behind_an_ldpc_code(setup):
    from vqcodec.cluster import DaskExecutor
    from vqcodec.links import CodedLink

    codec, encs, _, _ = setup
    grid = [0.0, 4.0]
    chans = [CodedLink(channels.get_channel("awgn", snr_db=v, modulation="qam16"), "ldpc-2/3") for v in grid]
    coded = (codec, encs, grid, chans)
    serial = run(coded, stop=StopRule(2, 2, 0.3))
    low = json.loads(serial)[0]["points"][0]
    assert low["bit_errors"] > 0  # residual errors after the decoder at the low point: the test sees noise
    with DaskExecutor(workers=2) as ex:
        assert run(coded, ex, stop=StopRule(2, 2, 0.3)) == serial


def test_baselines_on_dask_equal_the_serial_run():
    from vqcodec.baselines import baseline_sweep
    from vqcodec.cluster import DaskExecutor

    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:40, 0:56]
    imgs = [(f"i{k}.png", np.clip(np.stack([x * 4, y * 5, (x + y) * 2], 2) + rng.normal(0, 5, (40, 56, 3)), 0, 255)
             .astype(np.uint8)) for k in range(3)]
    kw = dict(codecs=["jpeg", "webp"], rates=["none", "cc-1/2"], channel_kind="bsc", grid=[1e-3, 2e-2],
              budget_bpp=3.0, seed=4, trials=2)
    serial = baseline_sweep(imgs, **kw)
    with DaskExecutor(workers=2) as ex:
        done = []
        dask = baseline_sweep(imgs, **kw, executor=ex, progress=lambda d, t, m: done.append(d))
    strip = lambda rs: dumps([{k: v for k, v in r.items() if k != "created"} for r in rs])  # noqa: E731
    assert strip(dask) == strip(serial) and done[-1] == len(done) == 2 * 2 * 3  # 2 codecs x 2 points x (2 rates + bound)
