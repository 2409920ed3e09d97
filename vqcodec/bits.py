"""Index <-> label <-> bits packing, and the ``.vqc`` index file.

A model with K codewords sends each index as a fixed-length label of
``b = ceil(log2 K)`` bits, most significant bit first. The label of index i
is ``assignment[i]`` (a permutation of range(K); identity unless an index
assignment has been optimised, see ``vqcodec.assignment``). When K is not a
power of two, labels K .. 2^b - 1 are unused: receiving one is a detectable
error that the receiver resolves. A residual model's indices (S, h, w) are sent
stage by stage, first stage first; its assignment is (S, K), one row per stage
(each stage's codebook has its own geometry), or (K,) for every stage alike.

A ``.vqc`` file holds the fixed-length labels, or (header "coding" other than "fixed") an
entropy-coded bitstream of the indices (``vqcodec.entropy``). Version 2 (magic ``VQC2``, written
since issue 27) ends in a CRC-32 of everything before it, so a flipped byte in the header or the
payload of either kind is refused instead of decoding to a wrong image; version 1 files (``VQC1``,
no CRC) are still read.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from vqcodec.files import InputError, read_input_bytes, replace_atomically

#: Largest image (pixels), one limit for both ends: ``images.load_image`` refuses a bigger file
#: (bigger images are refused, not tiled: a 768x512 image needs ~60 MB of activations; this
#: limit keeps one image under ~5 GB), and the index-file reader a header that declares one.
MAX_IMAGE_PIXELS = 64_000_000


def bits_per_label(K: int) -> int:
    if K < 2:
        raise ValueError(f"K must be >= 2, got {K}")
    return max(1, math.ceil(math.log2(K)))


def identity_assignment(K: int) -> np.ndarray:
    return np.arange(K, dtype=np.int64)


def check_assignment(assignment: np.ndarray, K: int, stages: int = 1) -> np.ndarray:
    """``assignment`` as int64 when it is K distinct labels in [0, 2^b), or (for ``stages`` > 1)
    one such row per stage; else ``ValueError``."""
    a = np.asarray(assignment, dtype=np.int64)
    rows = a if a.ndim == 2 and stages > 1 else a[None]
    if a.ndim == 2 and stages > 1 and a.shape[0] != stages:
        raise ValueError(f"assignment has {a.shape[0]} rows, the model has {stages} stages")
    for row in rows:
        if row.shape != (K,) or row.min(initial=0) < 0 or row.max(initial=0) >= 2 ** bits_per_label(K) \
                or len(np.unique(row)) != K:
            raise ValueError(f"assignment must be {K} distinct labels in [0, {2 ** bits_per_label(K)})"
                             + (" per stage" if stages > 1 else ""))
    return a


def stage_assignment(assignment: np.ndarray, stage: int) -> np.ndarray:
    """The (K,) assignment of one stage: row ``stage`` of an (S, K) one, else the assignment itself."""
    a = np.asarray(assignment)
    return a[stage] if a.ndim == 2 else a


def inverse_assignment(assignment: np.ndarray, K: int) -> np.ndarray:
    """Table label -> index over all 2^b labels; unused labels map to -1."""
    inv = np.full(2 ** bits_per_label(K), -1, dtype=np.int64)
    inv[np.asarray(assignment)] = np.arange(K)
    return inv


def labels_to_bits(labels: np.ndarray, b: int) -> np.ndarray:
    """Labels (any shape, ints in [0, 2^b)) -> uint8 bits (n*b,), MSB first, in C order."""
    flat = np.asarray(labels, dtype=np.int64).reshape(-1)
    shifts = np.arange(b - 1, -1, -1, dtype=np.int64)
    return ((flat[:, None] >> shifts[None, :]) & 1).astype(np.uint8).reshape(-1)


def bits_to_labels(bits: np.ndarray, b: int) -> np.ndarray:
    """uint8 bits (n*b,) of 0/1, MSB first -> labels int64 (n,)."""
    bits = np.asarray(bits)
    if bits.size % b:
        raise ValueError(f"bit count {bits.size} is not a multiple of {b}")
    weights = (1 << np.arange(b - 1, -1, -1, dtype=np.int64))
    return bits.reshape(-1, b).astype(np.int64) @ weights


def indices_to_bits(indices: np.ndarray, K: int, assignment: np.ndarray | None = None) -> np.ndarray:
    """Index grid (any shape; (S, ...) with an (S, K) assignment) -> transmitted bits uint8
    (indices.size * b,), in C order (a residual model's first stage first)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise ValueError(f"indices must be in [0, {K})")
    if assignment is None:
        labels = idx
    elif np.ndim(assignment) == 2:
        a = np.asarray(assignment, dtype=np.int64)
        if idx.shape[:1] != a.shape[:1]:
            raise ValueError(f"indices of shape {idx.shape} do not have the assignment's {a.shape[0]} stages")
        labels = np.take_along_axis(a, idx.reshape(len(a), -1), axis=1)
    else:
        labels = np.asarray(assignment, dtype=np.int64)[idx]
    return labels_to_bits(labels, bits_per_label(K))


def bits_to_indices(bits: np.ndarray, K: int, assignment: np.ndarray | None = None) -> np.ndarray:
    """Bits -> indices int64 (n,) (with an (S, K) assignment: n / S per stage, first stage first);
    a label that no index uses gives -1."""
    labels = bits_to_labels(bits, bits_per_label(K))
    a = identity_assignment(K) if assignment is None else np.asarray(assignment)
    if a.ndim == 1:
        return inverse_assignment(a, K)[labels]
    if labels.size % len(a):
        raise ValueError(f"{labels.size} labels do not split into {len(a)} stages")
    per = labels.reshape(len(a), -1)
    return np.concatenate([inverse_assignment(a[s], K)[per[s]] for s in range(len(a))])


# --------------------------------------------------------------------------- .vqc files

VQC_MAGIC = b"VQC2"  # written: header, payload, then a CRC-32 of all the bytes before it
VQC_MAGIC_V1 = b"VQC1"  # read only: no CRC
MAX_HEADER = 65536
#: Largest .vqc file read (bytes): the largest payload a valid header allows (10^8 indices of 16
#: bits) plus its header; a bigger file is refused before it is read into memory.
MAX_FILE_BYTES = 8 + MAX_HEADER + 2 * 10 ** 8 + 4


class IndexFileError(ValueError):
    """A .vqc file that is truncated, corrupt, or inconsistent (one-line message)."""


def index_file_bytes(indices: np.ndarray, *, model: str, K: int, height: int, width: int,
                     fingerprint: str | None = None, coding: str = "fixed", payload: bytes | None = None,
                     coding_info: dict | None = None) -> bytes:
    """``VQC2`` | u32 header length | JSON header | payload | u32 CRC-32 of the bytes before it.

    ``coding`` "fixed": the payload is the packed fixed-length labels (identity assignment) of
    ``indices`` (h, w), or (S, h, w) for a residual model of S stages (stage-major). Any other
    ``coding`` names an entropy code (``vqcodec.entropy``): ``payload`` is its bitstream and
    ``coding_info`` what its decoder needs (kept in the header as "entropy").
    ``fingerprint``: the transmitter's (``zoo.Codec.fingerprint``), checked when decoding."""
    idx = np.asarray(indices)
    grid = idx.shape[-2:]
    head = {"model": model, "K": int(K), "height": int(height), "width": int(width),
            "grid": [int(grid[0]), int(grid[1])]}
    if idx.ndim == 3:
        head["stages"] = int(idx.shape[0])
    if fingerprint is not None:
        head["fingerprint"] = str(fingerprint)
    if coding == "fixed":
        payload = np.packbits(indices_to_bits(idx, K)).tobytes()
    else:
        if payload is None:
            raise ValueError(f"coding {coding!r} needs its payload")
        head["coding"] = str(coding)
        head["entropy"] = dict(coding_info or {})
    header = json.dumps(head).encode()
    body = VQC_MAGIC + struct.pack("<I", len(header)) + header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def write_index_file(path, indices: np.ndarray, **kwargs) -> None:
    """Write ``index_file_bytes(indices, **kwargs)`` to ``path`` atomically (``files.replace_atomically``)."""
    data = index_file_bytes(indices, **kwargs)
    replace_atomically(path, lambda tmp: tmp.write_bytes(data))


def read_index_file(path) -> tuple[np.ndarray | bytes, dict]:
    """(indices int64 (h, w) or (S, h, w), header dict) of a fixed-length file; for an
    entropy-coded one (header "coding" not "fixed") the payload bytes instead of the indices, to be
    decoded with the model's context model (``simulate.decode_index_file``). Raises IndexFileError
    on any malformed input."""
    path = Path(path)
    try:
        data = read_input_bytes(path, MAX_FILE_BYTES)
    except InputError as exc:  # a FIFO or a device (would block or never end), or far too big
        raise IndexFileError(str(exc)) from None
    except OSError as exc:
        raise IndexFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_index_file(data, str(path))


def parse_index_file(data: bytes, name: str = "index file") -> tuple[np.ndarray, dict]:
    if len(data) < 8 or data[:4] not in (VQC_MAGIC, VQC_MAGIC_V1):
        raise IndexFileError(f"{name}: not a .vqc index file (bad magic)")
    if data[:4] == VQC_MAGIC:
        if len(data) < 12:
            raise IndexFileError(f"{name}: truncated (no CRC-32)")
        (crc,) = struct.unpack("<I", data[-4:])
        if zlib.crc32(data[:-4]) != crc:
            raise IndexFileError(f"{name}: damaged or edited (its CRC-32 does not match; truncated, a flipped "
                                 "byte, or a changed header)")
        data = data[:-4]
    (hlen,) = struct.unpack("<I", data[4:8])
    if hlen > MAX_HEADER or 8 + hlen > len(data):
        raise IndexFileError(f"{name}: truncated or corrupt header")
    try:
        header = json.loads(data[8:8 + hlen].decode("utf-8"))
        if not isinstance(header, dict):
            raise TypeError
        K, H, W = int(header["K"]), int(header["height"]), int(header["width"])
        h, w = (int(v) for v in header["grid"])
        S = int(header.get("stages", 1))
        model = str(header["model"])
        fp = header.get("fingerprint")
        if fp is not None and not isinstance(fp, str):
            raise TypeError
        coding = header.get("coding", "fixed")
        info = header.get("entropy", {})
        if not isinstance(coding, str) or not isinstance(info, dict):
            raise TypeError
    except RecursionError:
        raise IndexFileError(f"{name}: corrupt header (JSON nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise IndexFileError(f"{name}: corrupt header ({exc.__class__.__name__})") from None
    if not (2 <= K <= 65536) or min(H, W, h, w) < 1 or not 1 <= S <= 64 or S * h * w > 10 ** 8 \
            or H > h * 64 or W > w * 64:
        raise IndexFileError(f"{name}: header values out of range")
    if H * W > MAX_IMAGE_PIXELS:
        raise IndexFileError(f"{name}: a {W}x{H} image is larger than the limit of {MAX_IMAGE_PIXELS} pixels")
    header = {"model": model, "K": K, "height": H, "width": W, "grid": [h, w], "stages": S, "fingerprint": fp,
              "coding": coding}
    payload = data[8 + hlen:]
    if coding != "fixed":
        header["entropy"] = info
        return payload, header
    b = bits_per_label(K)
    h_all = S * h
    nbytes = (h_all * w * b + 7) // 8
    if len(payload) != nbytes:
        raise IndexFileError(f"{name}: payload is {len(payload)} bytes, header says {nbytes}")
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: h_all * w * b]
    idx = bits_to_indices(bits, K)
    if (idx < 0).any():
        raise IndexFileError(f"{name}: payload holds labels >= K={K}")
    return idx.reshape((S, h, w) if S > 1 else (h, w)), header
