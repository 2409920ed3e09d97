"""The Python API: what the ``vqcodec`` command does, for notebooks and scripts.

>>> import vqcodec.api as vq
>>> codec = vq.load("f4-k256")                                   # a shipped model (or checkpoint=...)
>>> results = vq.sweep("bsc", [0.01, 0.03], codec=codec, receivers=["naive", "learned-mmse"],
...                    trials=2)                                 # one results object per receiver
>>> vq.plot(results, "bsc.png")                                  # PSNR against p, CI bands
>>> codec = vq.load(vq.wrap(my_tokenizer, f=8, K=1000, weights="tok.safetensors"))  # a model of yours

Every function returns the same dicts as the results files (schema ``vqcodec.results/1``;
``vqcodec.results.write_results`` stores them). Images are the scikit-image sample photos by
default, or a folder / file path, a list of paths, or ``{name: uint8 array (H, W, 3)}``.

The command line is a thin layer over :func:`experiment`: it validates every option before any
work (a one-line ``ValueError`` naming the problem), then ``Experiment.run`` does the Monte
Carlo trials and ``Experiment.run_baselines`` the classical codecs at the same channel budget.
"""
from __future__ import annotations

from channels.base import ParameterError
from channels.options import param_value, parse_grid
from vqcodec.api.bench import BenchRun, bench, bench_suites, use_bench_folders
from vqcodec.api.files import (
    Evaluation,
    IndexFile,
    channel_kinds,
    decode_file,
    encode_file,
    evaluate,
    export_compressai,
    jscc_models,
    models,
    plot_files,
    read_index_file,
    receivers,
)
from vqcodec.api.runs import (
    Experiment,
    UserError,
    best_sweep,
    channel,
    check_output,
    encode,
    experiment,
    load,
    plot,
    save_results,
    simulate,
    sweep,
)
from vqcodec.api.training import (
    finetune,
    prepare,
    train,
    train_codebook,
    train_decoder,
    train_entropy,
    train_jscc,
    train_receiver,
)
from vqcodec.cluster import executor_for
from vqcodec.images import ImageNote
from vqcodec.links import DeprecatedSpelling
from vqcodec.protocol import ProtocolError, wrap
from vqcodec.search import SearchConfig

__all__ = ["load", "channel", "encode", "experiment", "Experiment", "simulate", "sweep", "best_sweep", "plot",
           "param_value", "parse_grid", "executor_for", "evaluate", "Evaluation", "encode_file", "decode_file",
           "read_index_file", "IndexFile", "models", "jscc_models", "channel_kinds", "receivers", "UserError", "ParameterError",
           "train", "train_jscc", "train_decoder", "finetune", "train_codebook", "train_receiver", "prepare",
           "train_entropy", "plot_files", "export_compressai", "save_results",
           "check_output", "bench", "bench_suites", "BenchRun", "ImageNote", "DeprecatedSpelling",
           "use_bench_folders", "wrap", "ProtocolError", "SearchConfig"]
