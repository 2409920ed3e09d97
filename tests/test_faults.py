"""Faults: kill -9 in the middle of a sweep, then --resume, gives the undisturbed results; a full disk
is a one-line error that keeps the previous output and leaves no temporary file."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


# the CLI, pausing after each write that holds a finished point: the parent's kill -9 lands in the
# middle of the sweep, every time
_PAUSING = ("import time, cli, vqcodec.api.runs as runs; real = runs.save_results; "
            "runs.save_results = lambda path, res: (real(path, res), time.sleep(10 if res[0]['points'] else 0)); "
            "cli.main()")


def _finished_points(path):
    try:
        return json.loads(path.read_text())[0]["points"]
    except (OSError, ValueError, IndexError, KeyError):
        return []


def test_kill_9_then_resume_is_identical(tiny_checkpoint, image_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    full = tmp_path / "full.json"
    subprocess.run(_cmd(tiny_checkpoint, image_dir, full), cwd=ROOT, env=env, check=True, capture_output=True)

    part = tmp_path / "part.json"
    cmd = _cmd(tiny_checkpoint, image_dir, part)
    cmd[2] = _PAUSING
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not _finished_points(part) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None  # still sweeping
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    data = json.loads(part.read_text())
    assert [len(r["points"]) for r in data] == [1, 1]  # a valid, partial file survived the kill
    # the other five points had run 3 of their 4 trials (the rounds run every point's next trial)
    assert [[len(u["trials"]) for u in r["unfinished"]] for r in data] == [[3] * 5] * 2
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # no half-written file
    # a finished point is reused, not recomputed: a value that --resume does not check survives it
    data[0]["points"][0]["psnr"]["mean"] += 1.0
    part.write_text(json.dumps(data))
    subprocess.run(_cmd(tiny_checkpoint, image_dir, part, "--resume"), cwd=ROOT, env=env, check=True,
                   capture_output=True)
    resumed = _strip(part)
    expected = _strip(full)
    assert resumed[0]["points"][0]["psnr"]["mean"] == expected[0]["points"][0]["psnr"]["mean"] + 1.0
    resumed[0]["points"][0]["psnr"]["mean"] -= 1.0
    assert resumed == expected


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


def _full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def _assert_disk_full_error(r):
    assert r.exit_code != 0 and (r.exception is None or isinstance(r.exception, SystemExit)), repr(r.exception)
    lines = r.output.strip().splitlines()
    assert lines[-1].startswith("Error:") and "No space left on device" in lines[-1], r.output
    assert "Traceback" not in r.output and sum(ln.startswith("Error:") for ln in lines) == 1, r.output


@pytest.mark.parametrize("command", ["plot", "export"])
def test_disk_full_in_plot_and_export_keeps_the_previous_output(tmp_path, monkeypatch, command):
    import matplotlib.figure
    from click.testing import CliRunner

    import vqcodec.results as R
    from cli import main

    res = tmp_path / "e.json"
    R.write_results(res, R.new_results(
        name="e", description="d", seed=0, model={"name": "m", "f": 4, "K": 16, "bpp": 0.5},
        images={"source": "x", "count": 1}, channel={"kind": "none", "param": "p"}, receiver="none",
        points=[{"param": 0.0, "bpp": 0.5, "psnr": {"mean": 27.0, "ci95": 0.0}, "ms_ssim": {"mean": 0.9, "ci95": 0.0}}]))
    out = tmp_path / ("rd.png" if command == "plot" else "ca.json")
    args = (["plot", "--rd", res, "-o", out, "--overwrite"] if command == "plot"
            else ["export", res, "--compressai", "-o", out, "--overwrite"])
    args = [str(a) for a in args]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = out.read_bytes()

    def savefig(self, fname, *a, **kw):  # half a figure, then the disk is full
        Path(fname).write_bytes(b"\x89PNG partial")
        _full()

    if command == "plot":
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    else:
        monkeypatch.setattr(R.os, "fsync", _full)
    _assert_disk_full_error(CliRunner().invoke(main, args))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([res.name, out.name])


@pytest.mark.parametrize("fail_at", [3, 4])  # the second checkpoint's weights, then its training state
def test_disk_full_in_train_keeps_the_last_checkpoint(tmp_path, image_dir, monkeypatch, fail_at):
    import safetensors.torch
    from click.testing import CliRunner

    from cli import main

    calls, save_file = [], safetensors.torch.save_file

    def filling(tensors, filename, *a, **kw):
        calls.append(filename)
        save_file(tensors, filename, *a, **kw)
        if len(calls) == fail_at:
            _full()

    monkeypatch.setattr(safetensors.torch, "save_file", filling)
    out = tmp_path / "m"
    r = CliRunner().invoke(main, ["train", "--images", str(image_dir), "-o", str(out), "--K", "16", "--d", "4",
                                  "--channels", "8,16", "--steps", "4", "--batch", "2", "--crop", "16",
                                  "--checkpoint-every", "2", "--threads", "1"])
    _assert_disk_full_error(r)
    assert len(calls) == fail_at and all(c.endswith(".tmp") for c in calls)
    steps = json.loads((tmp_path / "m.json").read_text())["training"]["steps_done"]
    assert steps == (2 if fail_at == 3 else 4)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    # resume: weights and state from the same step continue; weights at 4 with the state at 2 are refused
    monkeypatch.undo()
    r = CliRunner().invoke(main, ["train", "--images", str(image_dir), "-o", str(out), "--steps", "4", "--batch", "2",
                                  "--crop", "16", "--checkpoint-every", "2", "--threads", "1", "--resume"])
    if fail_at == 3:
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / "m.train.json").read_text())["step"] == 4
    else:
        assert r.exit_code != 0 and (r.exception is None or isinstance(r.exception, SystemExit)), repr(r.exception)
        lines = r.output.strip().splitlines()
        assert lines[-1].startswith("Error:") and "step 4" in lines[-1] and "step 2" in lines[-1], r.output
        assert sum(ln.startswith("Error:") for ln in lines) == 1 and "Traceback" not in r.output
        assert json.loads((tmp_path / "m.json").read_text())["training"]["steps_done"] == 4


def _filling_write_bytes(self, data):  # a full disk: half the bytes land, then ENOSPC (empty files still fit)
    with open(self, "wb") as fh:
        fh.write(data[: len(data) // 2])
    if data:
        _full()


def _filling_image_save(self, fp, *a, **kw):
    Path(fp).write_bytes(b"\x89PNG partial")
    _full()


@pytest.mark.parametrize("command", ["encode", "decode", "simulate --save-dir"])
def test_disk_full_in_encode_decode_and_save_dir_leaves_nothing(tiny_checkpoint, image_dir, tmp_path, monkeypatch,
                                                                  command):
    import PIL.Image
    from click.testing import CliRunner

    from cli import main

    vqc, out = tmp_path / "a.vqc", tmp_path / "out"
    ck = ["--checkpoint", str(tiny_checkpoint)]
    if command == "encode":
        monkeypatch.setattr(Path, "write_bytes", _filling_write_bytes)
        args = ["encode", str(image_dir / "a.png"), "-o", str(vqc), *ck]
    else:
        assert CliRunner().invoke(main, ["encode", str(image_dir / "a.png"), "-o", str(vqc), *ck]).exit_code == 0
        monkeypatch.setattr(PIL.Image.Image, "save", _filling_image_save)
        args = (["decode", str(vqc), "-o", str(out) + ".png", *ck] if command == "decode" else
                ["simulate", "--channel", "bsc", "--p", "0.01", *ck, "--images", str(image_dir), "--receiver", "naive",
                 "--trials", "1", "--no-ms-ssim", "--save-dir", str(out)])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    _assert_disk_full_error(CliRunner().invoke(main, args))
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in after if p not in before and p != Path("out")] == [], after  # no output, no temporary
