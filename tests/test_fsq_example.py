"""The example plug-in (examples/fsq_tokenizer): a tokenizer built with vector-quantize-pytorch's
FSQ, installed by `make test` and found through the entry-point group vqcodec.codecs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vqcodec.api as vq

example = pytest.importorskip("vqcodec_fsq_example", reason="the example plug-in is not installed "
                                                            "(pip install -e examples/fsq_tokenizer)")


def test_the_plugin_satisfies_the_protocol_with_fsq_codebooks():
    m = example.build()
    assert (m.f, m.K, m.stages) == (8, 1000, 1)
    x = torch.rand(1, 3, 40, 52)
    idx = m.encode(x)
    assert idx.shape == (1, 5, 7) and idx.dtype == torch.int64 and 0 <= int(idx.min()) and int(idx.max()) < 1000
    assert m.codebooks.shape == (1, 1000, 4)
    with torch.no_grad():  # the soft path decodes FSQ code vectors: the same image for hard indices
        torch.testing.assert_close(m.decode_embeddings(m.embed(idx)), m.decode(idx))


def test_the_installed_plugin_is_listed_and_loads_by_name_with_its_side_information():
    row = next(r for r in vq.models() if r["name"] == "fsq-f8")
    assert row["plugin"] and row["installed"] and row["K"] == 1000 and row["bpp"] == pytest.approx(10 / 64)
    codec = vq.load("fsq-f8")
    assert codec.bits_per_index == 10 and codec.soft
    # prepared (`vqcodec prepare --model fsq-f8`): its prior and assignment, keyed by the weights' fingerprint
    assert codec.prior is not None and codec.meta["fingerprint"]
    assert len(set(np.asarray(codec.assignment).tolist())) == 1000 and int(np.max(codec.assignment)) < 1024


def test_the_plugin_through_a_noisy_link_the_spatial_receiver_beats_naive():
    codec = vq.load("fsq-f8")
    res = vq.simulate("bsc", 0.02, codec=codec, receivers="naive,spatial-mmse", trials=1, min_trials=1,
                      with_ms_ssim=False)
    psnr = {r["receiver"]: r["points"][0]["psnr"]["mean"] for r in res}
    assert psnr["spatial-mmse"] > psnr["naive"] + 0.3, psnr  # its prior over neighbouring indices pays
