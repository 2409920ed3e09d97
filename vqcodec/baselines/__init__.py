"""Classical baselines: JPEG, WebP, HEIC, AVIF, JPEG 2000, JPEG XL through the same channels,
and the separation bound (layer 4 of DESIGN.md).

* ``file_codecs``: the codecs (encode, decode corrupted files safely, the highest quality that fits
  a byte budget), images with their encoding caches, the grey fallback, the decode worker;
* ``separation``: the Monte Carlo: channel codes and budgets, one channel point, the oracle over
  code rates, the separation bound and the sweep.

The names below are the public interface; import them from ``vqcodec.baselines``.
"""

from vqcodec.baselines.file_codecs import (
    CODECS,
    FALLBACK_VALUE,
    WORKER_DECODE_TIMEOUT,
    BaselineImage,
    CodecSpec,
    DecodeTimeout,
    as_baseline_images,
    choose_quality,
    decode_file,
    decode_or_fallback,
    encode_file,
    fallback_image,
    jpeg2000_ratio,
    rd_qualities,
)
from vqcodec.baselines.separation import (
    ANALOG_BASELINES,
    RATES,
    Uncoded,
    baseline_sweep,
    check_options,
    clean_rd,
    get_rate_code,
    max_file_bytes,
    max_payload_bits,
    oracle_best,
    rate_label,
    received_image,
    results_rate,
    run_baseline_point,
    separation_bound_point,
)

__all__ = [
    "RATES",
    "CODECS",
    "ANALOG_BASELINES",
    "FALLBACK_VALUE",
    "WORKER_DECODE_TIMEOUT",
    "CodecSpec",
    "BaselineImage",
    "Uncoded",
    "as_baseline_images",
    "get_rate_code",
    "rate_label",
    "results_rate",
    "max_payload_bits",
    "max_file_bytes",
    "encode_file",
    "decode_file",
    "decode_or_fallback",
    "choose_quality",
    "fallback_image",
    "jpeg2000_ratio",
    "clean_rd",
    "rd_qualities",
    "run_baseline_point",
    "received_image",
    "oracle_best",
    "separation_bound_point",
    "check_options",
    "baseline_sweep",
    "DecodeTimeout",
]
