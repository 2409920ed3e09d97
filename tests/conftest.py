import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parent.parent

# the suites read this checkout's folders, as the command line names them
from cli import BENCH_FOLDERS  # noqa: E402
from vqcodec.api import use_bench_folders  # noqa: E402

use_bench_folders(**BENCH_FOLDERS)


def examples(n: int) -> int:
    """Hypothesis examples of a kernel-versus-reference test: n, or VQCODEC_EXAMPLES for a long run
    (VQCODEC_EXAMPLES=10000 pytest -k reference)."""
    return int(os.environ.get("VQCODEC_EXAMPLES", n))
KODAK = ROOT.parent / "shared" / "datasets" / "kodak"
BSDS = ROOT.parent / "shared" / "datasets" / "bsds500"


def tiny_config(f=4, K=16):
    from vqcodec.model import ModelConfig

    chans = {4: (8, 16), 8: (8, 12, 16), 16: (8, 8, 12, 16)}[f]
    return ModelConfig(f=f, K=K, d=4, channels=chans, res_blocks=1, decoder_res_blocks=1)


@pytest.fixture
def tiny_model():
    from vqcodec.model import VQVAE

    torch.manual_seed(0)
    m = VQVAE(tiny_config())
    # spread the codebook so that many codes are used
    with torch.no_grad():
        m.quantizer.embedding.copy_(torch.randn(16, 4))
    return m.eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    from vqcodec.model import save_model

    stem = tmp_path / "tiny"
    save_model(tiny_model, stem, {"name": "tiny"})
    return stem


@pytest.fixture
def rgb_image():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:37, 0:53]
    img = np.stack([(x * 4) % 256, (y * 6) % 256, ((x + y) * 3) % 256], axis=2).astype(np.float64)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path, rgb_image):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(rgb_image).save(d / "a.png")
    Image.fromarray(rgb_image[::-1, ::-1].copy()).save(d / "b.png")
    return d


needs_kodak = pytest.mark.skipif(not KODAK.is_dir(), reason="../shared/datasets/kodak not present")
needs_bsds = pytest.mark.skipif(not BSDS.is_dir(), reason="../shared/datasets/bsds500 not present")
