"""Bad input through the real CLI, in-process: a one-line error naming the problem, a non-zero
exit, no traceback, and no output file left behind. Inputs that are odd but valid (grayscale,
RGBA, palette, CMYK, 16-bit, tiny) must work."""
import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(r, needle, out=None):
    assert r.exit_code != 0, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("Error:"), r.output
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert needle.lower() in lines[-1].lower(), lines[-1]
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if ".tmp" in p.name], list(out.parent.iterdir())


def png_with_header(path, w, h):
    """A PNG whose header declares w x h but carries almost no data."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d / "r.json"


def eval_args(ck, images, out):
    return ["eval", "--checkpoint", ck, "--images", images, "--json", out]


IMAGE_CASES = {
    "missing path": (lambda d: d / "nope", "no such file"),
    "empty directory": (lambda d: (d / "empty").mkdir() or d / "empty", "no image files"),
    "directory with no images": (lambda d: ((d / "txt").mkdir(), (d / "txt" / "a.txt").write_text("x"))
                                 and d / "txt", "no image files"),
    "text file named png": (lambda d: (d / "t.png").write_text("hello") and d / "t.png", "not a readable image"),
    "truncated png": (lambda d: _truncated(d, "png"), "t.png"),
    "truncated jpeg": (lambda d: _truncated(d, "jpeg"), "t.jpeg"),
    "too large": (lambda d: png_with_header(d / "big.png", 20000, 20000) or d / "big.png", "larger than the limit"),
}


def _truncated(d, fmt):
    rng = np.random.default_rng(0)
    p = d / f"t.{fmt}"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p, format=fmt.upper())
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_images(case, tmp_path, tiny_checkpoint, out):
    make, needle = IMAGE_CASES[case]
    path = make(tmp_path)
    assert_clean_error(invoke(*eval_args(tiny_checkpoint, path, out)), needle, out)


GOOD_CASES = {
    "16-bit png": lambda: Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)),
    "grayscale": lambda: Image.fromarray(np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)),
    "rgba": lambda: Image.fromarray(np.full((30, 40, 4), 120, np.uint8), "RGBA"),
    "palette": lambda: Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).convert("P"),
    "cmyk jpeg": lambda: Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).convert("CMYK"),
    "1x1": lambda: Image.fromarray(np.full((1, 1, 3), 200, np.uint8)),
    "smaller than stride": lambda: Image.fromarray(np.full((3, 2, 3), 10, np.uint8)),
}


@pytest.mark.parametrize("case", sorted(GOOD_CASES))
def test_odd_but_valid_images_work(case, tmp_path, tiny_checkpoint, out):
    p = tmp_path / ("x.jpg" if "jpeg" in case else "x.png")
    GOOD_CASES[case]().save(p)
    r = invoke(*eval_args(tiny_checkpoint, p, out))
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["points"][0]["per_image"][0]["image"] == p.name


SIM_CASES = {
    "p < 0": (["--channel", "bsc", "--p", "-0.01"], "p must be"),
    "p > 0.5 for bsc": (["--channel", "bsc", "--p", "0.6"], "p must be"),
    "p = nan": (["--channel", "bsc", "--p", "nan"], "p"),
    "snr inf": (["--channel", "awgn", "--snr-db", "inf"], "snr_db"),
    "snr nan": (["--channel", "awgn", "--snr-db", "nan"], "snr_db"),
    "unknown channel": (["--channel", "wifi", "--p", "0.1"], "unknown channel"),
    "unknown model": (["--channel", "bsc", "--p", "0.1", "--model", "f3-k7"], "unknown model"),
    "unknown receiver": (["--channel", "bsc", "--p", "0.1", "--receiver", "oracle"], "unknown receiver"),
    "missing parameter": (["--channel", "bsc"], "needs --p"),
    "wrong parameter": (["--channel", "awgn", "--p", "0.1"], "needs --snr-db"),
    "half precision on the cpu": (["--channel", "bsc", "--p", "0.1", "--device", "cpu", "--precision", "fp16"],
                                  "needs a CUDA device"),
}


@pytest.mark.parametrize("case", sorted(SIM_CASES))
def test_bad_simulate_arguments(case, image_dir, out):
    args, needle = SIM_CASES[case]
    assert_clean_error(invoke("simulate", *args, "--images", image_dir, "--json", out), needle, out)


def test_corrupt_weights(tiny_checkpoint, image_dir, out):
    tiny_checkpoint.with_suffix(".safetensors").write_bytes(b"\0" * 64)
    assert_clean_error(invoke(*eval_args(tiny_checkpoint, image_dir, out)), "corrupt weights", out)


def test_weights_not_matching_config(tiny_checkpoint, image_dir, out):
    c = tiny_checkpoint.with_suffix(".json")
    doc = json.loads(c.read_text())
    doc["config"]["d"] = 8
    c.write_text(json.dumps(doc))
    assert_clean_error(invoke(*eval_args(tiny_checkpoint, image_dir, out)), "do not match", out)


def test_truncated_results_file_to_plot(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"schema": "vqcodec.results/1", "points": [')
    fig = tmp_path / "f.png"
    assert_clean_error(invoke("plot", p, "-o", fig), "not valid json", fig)


def test_unknown_schema_to_plot(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema": "someone.else/3"}))
    fig = tmp_path / "f.png"
    assert_clean_error(invoke("plot", p, "-o", fig), "unknown schema", fig)


def test_unwritable_output_directory(tiny_checkpoint, image_dir):
    # /proc refuses new files even for root
    assert_clean_error(invoke(*eval_args(tiny_checkpoint, image_dir, "/proc/r.json")), "not writable")


def test_missing_output_directory(tiny_checkpoint, image_dir, tmp_path):
    assert_clean_error(invoke(*eval_args(tiny_checkpoint, image_dir, tmp_path / "no" / "r.json")), "does not exist")


def test_existing_output_without_overwrite(tiny_checkpoint, image_dir, out):
    out.write_text("previous")
    r = invoke(*eval_args(tiny_checkpoint, image_dir, out))
    assert_clean_error(r, "--overwrite")
    assert out.read_text() == "previous"


def test_corrupt_index_file(tmp_path):
    p = tmp_path / "x.vqc"
    p.write_bytes(b"VQC1\xff\xff\xff\xff")
    o = tmp_path / "x.png"
    assert_clean_error(invoke("decode", p, "-o", o), "x.vqc", o)
