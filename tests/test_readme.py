"""The README's Python example runs as written (on the bundled sample photos)."""
import os
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def python_example() -> str:
    text = README.read_text()
    section = text[text.index("\n## Python\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_example_runs(tmp_path, capsys):
    code = python_example()
    for call in ("vq.evaluate(", "vq.simulate(", "vq.sweep(", "vq.best_sweep(", "vq.encode_file(", "vq.decode_file("):
        assert call in code, call
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md:Python", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "bsc.png").stat().st_size > 0
    from PIL import Image

    decoded = np.asarray(Image.open(tmp_path / "decoded.png"))
    assert decoded.shape == (64, 96, 3) and (tmp_path / "noise.vqc").stat().st_size > 0
    from vqcodec.results import read_results

    curves = read_results(tmp_path / "bsc.json")
    assert [c["receiver"] for c in curves] == ["naive", "learned-mmse"]
    naive, learned = ([p["psnr"]["mean"] for p in c["points"]] for c in curves)
    assert all(b > a for a, b in zip(naive, learned))  # the learned receiver pays on the same noise
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("naive [(0.01, ") and out[4].startswith("f4-k256 ") and out[5].endswith("96 x 64")


def test_the_plugin_example_runs_in_under_25_lines(tmp_path, capsys):
    """The README's wrap -> prepare -> BSC and 16-QAM + LDPC sweeps -> plots example, with the
    datasets swapped for three sample photos (the Kodak runs are the README's measured table)."""
    import pytest

    pytest.importorskip("vqcodec_fsq_example", reason="the example plug-in is not installed")
    from vqcodec.images import list_images

    text = README.read_text()
    section = text[text.index("\n## Your own tokenizer"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) < 25
    line = 'BSDS, KODAK = "../shared/datasets/bsds500", "../shared/datasets/kodak"'
    assert line in code
    images = tmp_path / "images"
    images.mkdir()
    for p in list_images(None)[:3]:
        (images / p.name).write_bytes(p.read_bytes())
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code.replace(line, f"BSDS, KODAK = {str(images)!r}, {str(images)!r}"), "README.md:plug-in",
                     "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    from vqcodec.results import read_results

    bsc = read_results(tmp_path / "fsq-bsc.json")
    assert [c["receiver"] for c in bsc] == ["naive", "mmse", "spatial-mmse"]
    naive, _, spatial = ([p["psnr"]["mean"] for p in c["points"]] for c in bsc)
    assert all(b > a for a, b in zip(naive, spatial))  # the prior learned by prepare pays
    awgn = read_results(tmp_path / "fsq-awgn.json")
    assert awgn[0]["channel"]["modulation"] == "qam16" and (tmp_path / "fsq-awgn.png").stat().st_size > 0
    assert (tmp_path / "my-fsq.vqcodec.json").exists()  # the side information, beside the weights
    assert len(capsys.readouterr().out.splitlines()) == 5  # one line per curve
