"""Faults: kill -9 in the middle of a sweep, then --resume, gives the undisturbed results."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cmd(ck, images, out, *extra):
    return [sys.executable, "-c", "from cli import main; main()", "sweep", "--channel", "bsc",
            "--p", "0.01,0.02,0.04,0.08,0.16,0.3", "--checkpoint", str(ck), "--images", str(images), "--trials", "4",
            "--min-trials", "4", "--receiver", "naive,map", "--no-ms-ssim", "--json", str(out), *extra]


def _strip(path):
    data = json.loads(Path(path).read_text())
    for r in data:
        r.pop("created", None)
    return data


def test_kill_9_then_resume_is_identical(tiny_checkpoint, image_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    full = tmp_path / "full.json"
    subprocess.run(_cmd(tiny_checkpoint, image_dir, full), cwd=ROOT, env=env, check=True, capture_output=True)

    part = tmp_path / "part.json"
    proc = subprocess.Popen(_cmd(tiny_checkpoint, image_dir, part), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not part.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    killed_early = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if killed_early:
        n_points = len(json.loads(part.read_text())[0]["points"])
        assert 1 <= n_points < 6  # a valid, partial file survived the kill
    subprocess.run(_cmd(tiny_checkpoint, image_dir, part, "--resume"), cwd=ROOT, env=env, check=True,
                   capture_output=True)
    assert _strip(part) == _strip(full)


def test_a_failed_write_reports_and_keeps_the_previous_results(image_dir, tmp_path, monkeypatch):
    import errno

    from click.testing import CliRunner

    import vqcodec.results as R
    from cli import main

    out = tmp_path / "r.json"
    args = ["simulate", "--channel", "bsc", "--p", "0.01", "--images", str(image_dir), "--receiver", "naive",
            "--trials", "1", "--no-ms-ssim", "--json", str(out), "--overwrite"]
    assert CliRunner().invoke(main, args).exit_code == 0
    args += ["--seed", "5"]
    before = out.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(R.os, "fsync", full)
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "No space left on device" in last and "Traceback" not in r.output
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
