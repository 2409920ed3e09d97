"""One transmission, and Monte Carlo sweeps with a confidence-interval stopping rule.

Data flow per image and trial (DESIGN.md): indices (encoded once, cached) ->
labels -> bits -> channel -> receiver -> indices or code vectors -> decoder
-> crop -> PSNR / MS-SSIM against the original.

Randomness: the channel realisation of (seed, image, point, trial) comes
from ``numpy.random.default_rng(SeedSequence([seed, crc32(image name),
param bits, trial]))``, so a result does not depend on the order of the
work, on how it is split, or on which other images or points are in the run.
All receivers of a run see the same channel realisations (paired
comparison).

Stopping rule (per parameter point): trials are run in rounds; after each
trial the mean PSNR over images of every finished trial is a sample; the
point stops when every receiver's 95% confidence half-width (Student t over
trials) is <= ``ci_target`` dB and at least ``min_trials`` ran
("ci-reached"), or when ``max_trials`` ran ("budget"). A channel that makes
no errors at all stops at ``min_trials`` with a zero-width interval.
"""
from __future__ import annotations

import dataclasses
import json
import math
import struct
import time
import weakref
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vqcodec.bits import index_file_bytes, indices_to_bits
from vqcodec.entropy import (
    CODING,
    decode_indices,
    encode_indices,
    indices_crc,
)
from vqcodec.images import ImageError, crop, image_name, list_images, load_image, to_rgb8, to_tensor, to_uint8
from vqcodec.metrics import mean_ci95, ms_ssim, psnr
from vqcodec.precision import autocast
from vqcodec.receivers import Decision, get_receiver, receiver_context
from vqcodec.results import new_results
from vqcodec.zoo import Codec


@dataclass
class EncodedImage:
    name: str
    image: np.ndarray  # uint8 (H, W, 3)
    indices: np.ndarray  # int64 (h, w)
    clean: np.ndarray  # uint8 (H, W, 3): decoded without channel errors
    psnr_clean: float
    ms_ssim_clean: float | None = None


# per model object, weakly held (an id() key could be reused by another model once this one is freed)
_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, EncodedImage]] = weakref.WeakKeyDictionary()


def decoder_autocast(codec: Codec):
    """The autocast context of the codec's precision on its device (a no-op for fp32). The
    decoder's input (codewords, MMSE vectors) is fp32; its output is cast back to fp32 before
    cropping and rounding."""
    return autocast(codec.precision, codec.device)


@torch.inference_mode()
def decode_image(codec: Codec, decision: Decision, H: int, W: int) -> np.ndarray:
    """Hard indices or soft code vectors -> uint8 image cropped to (H, W)."""
    model = codec.model
    dev = codec.device
    with decoder_autocast(codec):
        if decision.embeddings is not None:
            z = torch.from_numpy(np.ascontiguousarray(decision.embeddings, dtype=np.float32)).to(dev)
            x = model.decode_embeddings(z.permute(2, 0, 1)[None])
        else:
            x = model.decode(torch.from_numpy(np.asarray(decision.indices, dtype=np.int64))[None].to(dev))
    return to_uint8(crop(x.float(), H, W))


@torch.inference_mode()
def decode_images(codec: Codec, decisions: Sequence[Decision], H: int, W: int) -> list[np.ndarray]:
    """Several decisions for one image size. On CUDA they are decoded as one batch; on the CPU one
    by one (batching does not pay there, and one-by-one keeps CPU results independent of batching)."""
    model = codec.model
    dev = codec.device
    if dev.type != "cuda" or len(decisions) < 2 or not codec.soft:
        return [decode_image(codec, d, H, W) for d in decisions]
    z = torch.stack([torch.from_numpy(np.ascontiguousarray(d.embeddings, dtype=np.float32)).to(dev).permute(2, 0, 1)
                     if d.embeddings is not None  # hard indices: the codeword (summed over a residual model's stages)
                     else model.embed(torch.from_numpy(np.asarray(d.indices, dtype=np.int64))[None].to(dev))[0]
                     for d in decisions])
    with decoder_autocast(codec):
        x = model.decode_embeddings(z)
    return [to_uint8(crop(x[i:i + 1].float(), H, W)) for i in range(len(decisions))]


def index_file(codec: Codec, enc: EncodedImage, entropy: bool = False) -> bytes:
    """The ``.vqc`` file of an encoded image: fixed-length labels, or with ``entropy`` the ANS
    bitstream of ``vqcodec.entropy`` (its length is the image's real rate)."""
    H, W = enc.image.shape[:2]
    head = dict(model=codec.name, K=codec.K, height=H, width=W, fingerprint=codec.fingerprint)
    if not entropy:
        return index_file_bytes(enc.indices, **head)
    cm = codec.coder_model()
    info = {"context": cm.kind, "model_fingerprint": cm.fingerprint, "crc32": indices_crc(enc.indices)}
    return index_file_bytes(enc.indices, coding=CODING, payload=encode_indices(enc.indices, cm),
                            coding_info=info, **head)


@torch.inference_mode()
def decode_index_file(codec: Codec, indices: np.ndarray | bytes, header: dict) -> np.ndarray:
    """The image of a ``.vqc`` file's indices (or entropy-coded payload, see
    ``bits.read_index_file``), after checking that ``codec`` fits its header (K, the transmitter,
    the grid of the image size at the codec's stride, the context model)."""
    if codec.K != header["K"]:
        raise ValueError(f"made with K={header['K']}, model {codec.name} has K={codec.K}")
    if header.get("fingerprint") is not None and header["fingerprint"] != codec.fingerprint:
        raise ValueError(f"made by a transmitter (codebook + index assignment) other than {codec.name}'s: "
                         f"fingerprint {header['fingerprint']}, {codec.name} has {codec.fingerprint}")
    if header.get("stages", 1) != codec.model.stages:
        raise ValueError(f"made with {header.get('stages', 1)} stages, model {codec.name} has "
                         f"{codec.model.stages}")
    h, w = header["grid"]
    if (h, w) != (math.ceil(header["height"] / codec.f), math.ceil(header["width"] / codec.f)):
        raise ValueError(f"grid {w}x{h} does not match a {header['width']}x{header['height']} image at f={codec.f}")
    coding = header.get("coding", "fixed")
    if coding != "fixed":
        indices = _entropy_decode(codec, indices, header)
    return decode_image(codec, Decision(indices), header["height"], header["width"])


def _entropy_decode(codec: Codec, payload: bytes, header: dict) -> np.ndarray:
    if header["coding"] != CODING:
        raise ValueError(f"unknown coding {header['coding']!r} (this vqcodec reads fixed and {CODING})")
    info = header.get("entropy", {})
    try:
        kind, fp, crc = str(info["context"]), str(info["model_fingerprint"]), int(info["crc32"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ValueError("corrupt entropy-coding header") from None
    cm = codec.coder_model(kind)
    if cm.fingerprint != fp:
        raise ValueError(f"entropy-coded with a context model other than {codec.name}'s ({kind}; changed "
                         f"since?): fingerprint {fp}, {codec.name} has {cm.fingerprint}")
    return decode_indices(payload, *header["grid"], cm, crc)


def encode_array(codec: Codec, name: str, img: np.ndarray, with_ms_ssim: bool = True,
                 progress=None) -> EncodedImage:
    """Encode (and clean-decode) one uint8 RGB image (H, W, 3) known as ``name``; ``progress``: the
    encoder-side search's (``Codec.encode_indices``)."""
    H, W = img.shape[:2]
    x = to_tensor(img).to(codec.device)
    idx = codec.encode_indices(x, progress)[0].cpu().numpy().astype(np.int64)
    clean = decode_image(codec, Decision(idx), H, W)
    return EncodedImage(name, img, idx, clean, psnr(img, clean), ms_ssim(img, clean) if with_ms_ssim else None)


def encode_image(codec: Codec, path, with_ms_ssim: bool = True, progress=None) -> EncodedImage:
    """Encode (and clean-decode) an image file once per (codec, file); cached in-process.
    ``progress``: the encoder-side search's."""
    path = Path(path)
    st = path.stat()
    cache = _CACHE.setdefault(codec.model, {})
    key = (codec.precision, codec.search, str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in cache and (not with_ms_ssim or cache[key].ms_ssim_clean is not None):
        return cache[key]
    enc = encode_array(codec, image_name(path), load_image(path), with_ms_ssim, progress)
    cache[key] = enc
    return enc


def _rgb_array(name, arr) -> np.ndarray:
    try:
        img = to_rgb8(arr)
    except ImageError as exc:
        raise ImageError(f"image {name!r}: {exc}") from None
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"image {name!r}: empty array {img.shape}")
    return img


def encode_images(codec: Codec, images=None, with_ms_ssim: bool = True,
                  progress: Callable[[float, int], None] | None = None) -> tuple[list[EncodedImage], dict]:
    """Encode a set of images: ``None`` (the scikit-image sample photos), a folder or file path,
    a list of paths, or a mapping ``{name: uint8 array (H, W, 3)}``. Returns the encoded images
    and the results file's ``images`` object. ``progress(done, total)`` after each image, and with
    the encoder-side search (minutes per image) also within one: ``done`` is then fractional.
    Raises ``ImageError`` for a bad image and ``ValueError`` when two images share a name (the
    names key the per-image results)."""
    if isinstance(images, Mapping):
        items = [(str(k), _rgb_array(k, v)) for k, v in images.items()]
        source = "arrays"
        work = [lambda cb, n=n, a=a: encode_array(codec, n, a, with_ms_ssim, cb) for n, a in items]
    else:
        paths = ([Path(x) for x in images] if isinstance(images, (list, tuple))
                 else list_images(images))
        source = "scikit-image samples" if images is None else (
            str(images) if not isinstance(images, (list, tuple)) else f"{len(paths)} files")
        work = [lambda cb, p=p: encode_image(codec, p, with_ms_ssim, cb) for p in paths]
    out = []
    for i, job in enumerate(work):
        within = None
        if progress and codec.search is not None:
            def within(d, t, i=i):
                progress(round(i + d / t, 2), len(work))
        out.append(job(within))
        if progress:
            progress(i + 1, len(work))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError("image file names must be unique within a run (they key the per-image results)")
    return out, {"source": source, "count": len(out), "fingerprint": images_fingerprint(out)}


def images_fingerprint(images: Sequence[EncodedImage]) -> str:
    """CRC-32 over every image's name, size and pixels, in order: two runs on the same images (and
    only those) share it, so a resumed sweep can tell another folder or changed files."""
    crc = 0
    for e in images:
        crc = zlib.crc32(f"{e.name}:{e.image.shape}".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(e.image).tobytes(), crc)
    return f"{crc:08x}"


def trial_rng(seed: int, image_name: str, param: float, trial: int) -> np.random.Generator:
    """The generator for one channel realisation; independent of work order and split."""
    pbits = struct.unpack("<Q", struct.pack("<d", float(param)))[0]
    return np.random.default_rng(np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFFFFFFFFFF, zlib.crc32(image_name.encode()), pbits, int(trial)]))


@dataclass(frozen=True)
class StopRule:
    min_trials: int = 3
    max_trials: int = 10
    ci_target: float = 0.05  # dB, 95% half-width of the mean PSNR

    def __post_init__(self) -> None:
        if self.min_trials < 1 or self.max_trials < self.min_trials:
            raise ValueError(f"need 1 <= min_trials <= max_trials, got {self.min_trials}, {self.max_trials}")
        if not self.ci_target > 0:
            raise ValueError(f"ci_target must be > 0, got {self.ci_target}")

    def decide(self, trial_means: Sequence[Sequence[float]]) -> str | None:
        """trial_means[r] = per-trial mean PSNR of receiver r. Returns a stop reason or None."""
        n = len(trial_means[0]) if trial_means else 0
        if n >= max(self.min_trials, 2):  # one trial has no spread: never stop on it
            widths = [mean_ci95(m)["ci95"] if np.ptp(m) > 0 else 0.0 for m in trial_means]
            if all(w <= self.ci_target for w in widths):
                return "ci-reached"
        if n >= self.max_trials:
            return "budget"
        return None


@dataclass
class Counters:
    bits: int = 0
    bit_errors: int = 0
    erased_bits: int = 0
    indices: int = 0
    index_errors: int = 0


@dataclass
class ReceiverTally:
    trial_means: list = field(default_factory=list)  # mean PSNR over images, per trial
    per_image: dict = field(default_factory=dict)  # image -> list of PSNR
    ms_ssim: list = field(default_factory=list)  # per trial mean
    index_errors: int = 0
    seconds: float = 0.0


@dataclass
class ChunkResult:
    """One trial of one channel point on a chunk of images (the unit of distributed work)."""

    names: list
    psnr: dict  # receiver -> per-image PSNR, in chunk order
    ms_ssim: dict  # receiver -> per-image MS-SSIM (empty lists without MS-SSIM)
    index_errors: dict  # receiver -> count
    counts: Counters
    seconds: dict  # "channel" and each receiver (receiver + decode)


def run_chunk(codec: Codec, images: Sequence[EncodedImage], channel, receivers: Sequence[str], *, seed: int,
              param: float, trial: int, with_ms_ssim: bool = True,
              on_image: Callable[[str, str, int, np.ndarray], None] | None = None) -> ChunkResult:
    """Send every image of a chunk through one channel realisation (``trial_rng``) and every receiver."""
    funcs = {r: get_receiver(r) for r in receivers}
    ctx = receiver_context(codec, channel)
    out = ChunkResult([], {r: [] for r in receivers}, {r: [] for r in receivers}, {r: 0 for r in receivers},
                      Counters(), {"channel": 0.0, **{r: 0.0 for r in receivers}})
    c = out.counts
    for enc in images:
        bits = indices_to_bits(enc.indices, codec.K, codec.assignment)
        t0 = time.perf_counter()
        rx = channel(bits, trial_rng(seed, enc.name, param, trial))
        out.seconds["channel"] += time.perf_counter() - t0
        c.bits += bits.size
        c.bit_errors += int(np.count_nonzero((rx.hard >= 0) & (rx.hard != bits)))
        c.erased_bits += int(np.count_nonzero(rx.hard < 0))
        c.indices += enc.indices.size
        out.names.append(enc.name)
        H, W = enc.image.shape[:2]
        decisions = []
        for r, fn in funcs.items():
            t0 = time.perf_counter()
            decisions.append(fn(rx, enc.indices.shape, ctx))
            out.seconds[r] += time.perf_counter() - t0
        t0 = time.perf_counter()
        imgs = decode_images(codec, decisions, H, W)  # one batch for all receivers on CUDA
        for r in funcs:
            out.seconds[r] += (time.perf_counter() - t0) / len(funcs)
        for r, dec, img in zip(funcs, decisions, imgs):
            out.index_errors[r] += int(np.count_nonzero(dec.indices != enc.indices))
            out.psnr[r].append(psnr(enc.image, img))
            if with_ms_ssim:
                out.ms_ssim[r].append(ms_ssim(enc.image, img))
            if on_image:
                on_image(r, enc.name, trial, img)
    return out


def merge_chunks(chunks: Sequence[ChunkResult], receivers: Sequence[str]) -> ChunkResult:
    """One trial's chunks (in image order) as one chunk."""
    if len(chunks) == 1:
        return chunks[0]
    counts = Counters(*(sum(getattr(c.counts, f.name) for c in chunks) for f in dataclasses.fields(Counters)))
    return ChunkResult([n for c in chunks for n in c.names],
                       {r: [v for c in chunks for v in c.psnr[r]] for r in receivers},
                       {r: [v for c in chunks for v in c.ms_ssim[r]] for r in receivers},
                       {r: sum(c.index_errors[r] for c in chunks) for r in receivers}, counts,
                       {k: sum(c.seconds[k] for c in chunks) for k in ("channel", *receivers)})


#: results-file key of a sweep interrupted mid-point: each unfinished point's trials so far
#: (``PointRun.unfinished``), so that ``--resume`` continues the point instead of rerunning it
UNFINISHED = "unfinished"


def restore_trials(previous: Sequence[dict], receivers: Sequence[str], names: Sequence[str],
                   with_ms_ssim: bool) -> dict[float, list[ChunkResult]]:
    """The trials of unfinished points kept in ``previous`` results objects: ``{param: trials}``.
    A ``ValueError`` when they are malformed or do not fit these images and receivers."""
    try:
        by_recv = {r.get("receiver"): {float(u["param"]): u["trials"] for u in r.get(UNFINISHED, ())}
                   for r in previous}
        kept_ms_ssim = {bool(t["ms_ssim"]) for u in by_recv.values() for ts in u.values() for t in ts}
        if kept_ms_ssim and kept_ms_ssim != {with_ms_ssim} and names:
            raise _MsSsimMismatch
        params = set.intersection(*(set(by_recv.get(r, {})) for r in receivers)) if receivers else set()
        out: dict[float, list[ChunkResult]] = {}
        for param in sorted(params):
            trials = [by_recv[r][param] for r in receivers]
            n = min(len(t) for t in trials)
            restored = []
            for k in range(n):
                recs = {r: t[k] for r, t in zip(receivers, trials)}
                first = recs[receivers[0]]
                if list(first["names"]) != list(names) or any(
                        len(rec["psnr"]) != len(names) or len(rec["ms_ssim"]) != (len(names) if with_ms_ssim else 0)
                        or rec["counts"] != first["counts"] for rec in recs.values()):
                    raise ValueError
                counts = Counters(**{f.name: int(first["counts"][f.name]) for f in dataclasses.fields(Counters)})
                restored.append(ChunkResult(list(names), {r: [float(v) for v in recs[r]["psnr"]] for r in receivers},
                                            {r: [float(v) for v in recs[r]["ms_ssim"]] for r in receivers},
                                            {r: int(recs[r]["index_errors"]) for r in receivers}, counts,
                                            {"channel": 0.0, **{r: 0.0 for r in receivers}}))
            out[param] = restored
    except _MsSsimMismatch:
        raise ValueError("cannot resume: the file's unfinished trials were run with MS-SSIM "
                         + ("off" if with_ms_ssim else "on")) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
        raise ValueError("cannot resume: the file's unfinished trials are malformed or from other images") from None
    return out


class _MsSsimMismatch(Exception):
    pass


def _sample_ci(values: Sequence[float]) -> dict:
    """Mean and 95% half-width over trials; the half-width is None (null) for a single trial,
    which has no spread to estimate, and 0 when every trial gave the same value."""
    ci = mean_ci95(values)
    if len(values) < 2:
        ci["ci95"] = None
    elif np.ptp(values) == 0:
        ci["ci95"] = 0.0
    return ci


class PointRun:
    """The state of one channel point: trials so far, tallies, and the stop decision."""

    def __init__(self, param: float, receivers: Sequence[str], stop: StopRule, with_ms_ssim: bool):
        self.param, self.receivers, self.stop, self.with_ms_ssim = float(param), list(receivers), stop, with_ms_ssim
        self.tallies = {r: ReceiverTally() for r in receivers}
        self.counts = Counters()
        self.t_channel = 0.0
        self.trials = 0
        self.reason: str | None = None
        self.records: list[ChunkResult] = []  # each trial, its chunks merged

    def add_trial(self, chunks: Sequence[ChunkResult]) -> None:
        """Fold in one trial (its chunks in image order) and apply the stopping rule."""
        ch = merge_chunks(chunks, self.receivers)
        self.records.append(ch)
        for k in ("bits", "bit_errors", "erased_bits", "indices"):
            setattr(self.counts, k, getattr(self.counts, k) + getattr(ch.counts, k))
        self.t_channel += ch.seconds["channel"]
        for r in self.receivers:
            t = self.tallies[r]
            for name, v in zip(ch.names, ch.psnr[r]):
                t.per_image.setdefault(name, []).append(v)
            t.index_errors += ch.index_errors[r]
            t.seconds += ch.seconds[r]
            t.trial_means.append(float(np.mean(ch.psnr[r])))
            if self.with_ms_ssim:
                t.ms_ssim.append(float(np.mean(ch.ms_ssim[r])))
        self.trials += 1
        self.reason = self.stop.decide([self.tallies[r].trial_means for r in self.receivers])

    def unfinished(self, receiver: str) -> dict:
        """The trials so far as one receiver's results object keeps them while the point runs
        (``UNFINISHED``): enough to continue the point after an interruption."""
        return {"param": self.param,
                "trials": [{"names": list(ch.names), "psnr": list(ch.psnr[receiver]),
                            "ms_ssim": list(ch.ms_ssim[receiver]), "index_errors": ch.index_errors[receiver],
                            "counts": dataclasses.asdict(ch.counts)} for ch in self.records]}

    def points(self, images: Sequence[EncodedImage], timings: dict | None = None) -> dict[str, dict]:
        """``{receiver: point dict}`` in the results-file point format (no wall-clock times)."""
        out: dict[str, dict] = {}
        if timings is not None:
            timings["channel"] = timings.get("channel", 0.0) + self.t_channel
        counts = self.counts
        psnr_clean = float(np.mean([e.psnr_clean for e in images]))
        for r in self.receivers:
            t = self.tallies[r]
            ci = _sample_ci(t.trial_means)
            point = {"param": self.param, "trials": self.trials, "stop": self.reason,
                     "psnr": ci, "psnr_clean": psnr_clean,
                     "bits": counts.bits, "bit_errors": counts.bit_errors, "erased_bits": counts.erased_bits,
                     "ber": counts.bit_errors / counts.bits if counts.bits else 0.0,
                     "indices": counts.indices, "index_errors": t.index_errors,
                     "index_error_rate": t.index_errors / counts.indices if counts.indices else 0.0,
                     "per_image": [{"image": k, "psnr": float(np.mean(v))} for k, v in t.per_image.items()]}
            if timings is not None:
                timings[r] = timings.get(r, 0.0) + t.seconds
            if self.with_ms_ssim:
                point["ms_ssim"] = _sample_ci(t.ms_ssim)
                point["ms_ssim_clean"] = float(np.mean([e.ms_ssim_clean for e in images]))
            out[r] = point
        return out


class SerialExecutor:
    """Runs the work in this process, in order (the default; no start-up cost)."""

    workers = 1

    def share(self, obj):
        return obj

    def map(self, fn, calls: Sequence[tuple[tuple, dict]], on_done: Callable[[], None] | None = None) -> list:
        out = []
        for args, kwargs in calls:
            out.append(fn(*args, **kwargs))
            if on_done:
                on_done()
        return out


def run_points(codec: Codec, images: Sequence[EncodedImage], channel_list: Sequence, params: Sequence[float],
               receivers: Sequence[str], *, seed: int, stop: StopRule, with_ms_ssim: bool = True,
               executor=None, chunk_size: int | None = None,
               on_point: Callable[[int, dict], None] | None = None,
               on_trial: Callable[[int, int], None] | None = None,
               on_task: Callable[[], None] | None = None,
               on_image: Callable[[str, str, int, np.ndarray], None] | None = None,
               timings: dict | None = None, restored: Sequence[Sequence[ChunkResult]] = (),
               on_run: Callable[[int, PointRun], None] | None = None) -> list[dict[str, dict]]:
    """Run several channel points in rounds: each round runs the next trial of every point that
    has not stopped, split into tasks of ``chunk_size`` images, on ``executor`` (serial, or a
    Dask cluster from ``vqcodec.cluster``); then every point folds in its trial in image order
    and applies the stopping rule. The outcome depends only on the seed: not on the executor,
    the chunking, the order in which tasks finish, or which other points run beside it.

    Returns one ``{receiver: point}`` per parameter; ``on_point(i, points)`` fires when point i
    stops, ``on_trial(i, trials_done)`` after each of its trials, ``on_task()`` after each task,
    ``on_run(i, run)`` after each trial with the point's ``PointRun`` (its trials so far).
    ``restored[i]``: trials of point i already run (from ``restore_trials``); the point continues
    after them with the same per-trial seeds, so the outcome is the same as without a break.
    """
    executor = executor or SerialExecutor()
    if on_image is not None and not isinstance(executor, SerialExecutor):
        raise ValueError("saving reconstructions needs the serial executor")
    n = len(images)
    size = chunk_size or max(1, math.ceil(n / max(1, 2 * executor.workers)))
    chunks = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    shared_codec = executor.share(codec)
    shared_images = [executor.share([images[i] for i in c]) for c in chunks]
    runs = [PointRun(v, receivers, stop, with_ms_ssim) for v in params]
    done: list[dict | None] = [None] * len(params)
    for i, trials in enumerate(restored):
        for trial in trials:
            if runs[i].reason is None:
                runs[i].add_trial([trial])
        if runs[i].reason is not None:
            done[i] = runs[i].points(images, timings)
            if on_point:
                on_point(i, done[i])
    while any(d is None for d in done):
        active = [i for i, d in enumerate(done) if d is None]
        calls = [((shared_codec, shared_images[c], channel_list[i], list(receivers)),
                  {"seed": seed, "param": float(params[i]), "trial": runs[i].trials, "with_ms_ssim": with_ms_ssim,
                   **({"on_image": on_image} if on_image else {})})
                 for i in active for c in range(len(chunks))]
        results = executor.map(run_chunk, calls, on_task)
        for k, i in enumerate(active):
            runs[i].add_trial(results[k * len(chunks):(k + 1) * len(chunks)])
            if on_trial:
                on_trial(i, runs[i].trials)
            if on_run:
                on_run(i, runs[i])
            if runs[i].reason is not None:
                done[i] = runs[i].points(images, timings)
                if on_point:
                    on_point(i, done[i])
    return done


def run_point(codec: Codec, images: Sequence[EncodedImage], channel, receivers: Sequence[str], *, seed: int,
              param: float, stop: StopRule, with_ms_ssim: bool = True,
              on_trial: Callable[[int], None] | None = None,
              on_image: Callable[[str, str, int, np.ndarray], None] | None = None,
              timings: dict | None = None) -> dict[str, dict]:
    """Run trials at one channel parameter until the stop rule fires (serially, in this process).

    Returns ``{receiver: point dict}`` in the results-file point format (no wall-clock times in
    it, so equal seeds give equal results). ``on_image(receiver, image, trial, reconstruction)``
    sees every decoded image; ``timings``, when given, accumulates seconds spent in "channel"
    and in each receiver (receiver + decode).
    """
    return run_points(codec, images, [channel], [param], receivers, seed=seed, stop=stop,
                      with_ms_ssim=with_ms_ssim, on_trial=(lambda i, t: on_trial(t)) if on_trial else None,
                      on_image=on_image, timings=timings)[0]


def clean_point(codec: Codec, images: Sequence[EncodedImage], entropy: bool = False) -> dict:
    """The point of a clean-channel evaluation (channel kind "none"). Rates: the fixed-length
    index payload, or with ``entropy`` the size of each image's entropy-coded ``.vqc`` file,
    header included (``index_file``): a real file, as the classical codecs' rates are."""
    ps = [e.psnr_clean for e in images]
    ss = [e.ms_ssim_clean for e in images]
    n_idx = int(sum(e.indices.size for e in images))
    pixels = [e.image.shape[0] * e.image.shape[1] for e in images]
    if entropy:
        bits = [8 * len(index_file(codec, e, entropy=True)) for e in images]
    else:
        bits = [e.indices.size * codec.bits_per_index for e in images]
    counts = np.bincount(np.concatenate([e.indices.ravel() for e in images]), minlength=codec.K)
    probs = counts / counts.sum()
    nz = probs[probs > 0]
    S = codec.model.stages
    usage = [float(np.count_nonzero(np.bincount(np.concatenate([e.indices.reshape(S, -1)[s] for e in images]),
                                                minlength=codec.K)) / codec.K) for s in range(S)]
    return {"param": 0.0, "trials": 1, "stop": "clean", "coding": CODING if entropy else "fixed",
            "codebook_usage": min(usage),  # of the least used stage's codebook (S > 1: each in _stages)
            **({"codebook_usage_stages": usage} if S > 1 else {}),
            "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
            "psnr": {"mean": float(np.mean(ps)), "ci95": 0.0}, "psnr_clean": float(np.mean(ps)),
            **({"ms_ssim": {"mean": float(np.mean(ss)), "ci95": 0.0}} if None not in ss else {}),  # encoded without it
            "bits": int(sum(bits)), "bit_errors": 0, "ber": 0.0,
            "indices": n_idx, "index_errors": 0, "index_error_rate": 0.0,
            "bpp": sum(bits) / sum(pixels),
            "per_image": [{"image": e.name, "psnr": e.psnr_clean, "ms_ssim": e.ms_ssim_clean, "bpp": b / n}
                          for e, b, n in zip(images, bits, pixels)]}


def progressive_points(codec: Codec, images: Sequence[EncodedImage]) -> list[dict]:
    """A residual model's progressive stream: per number of stages received s = 1 .. S, the
    images decoded from the first s stages alone ({stages, bpp, psnr}; bpp of the fixed-length
    stream of those stages)."""
    S = codec.model.stages
    if S == 1:
        raise ValueError(f"model {codec.name} has one stage; a progressive table needs a residual model (--stages)")
    pixels = sum(e.image.shape[0] * e.image.shape[1] for e in images)
    rows = []
    for s in range(1, S + 1):
        ps = [e.psnr_clean if s == S else
              psnr(e.image, decode_image(codec, Decision(e.indices[:s]), *e.image.shape[:2])) for e in images]
        bits = sum(e.indices[:s].size for e in images) * codec.bits_per_index
        rows.append({"stages": s, "bpp": bits / pixels, "psnr": float(np.mean(ps))})
    return rows


def link_budget(codec: Codec, images: Sequence[EncodedImage], channel) -> dict:
    """The budgets of one channel point, per pixel of the images as they are (not padded):
    ``source_bpp`` (index payload bits), ``channel_bpp`` (bits on the channel: more behind a
    channel code, ``links.CodedLink``), and for a channel with a modulation (awgn, fading)
    ``channel_uses_per_pixel`` (complex channel uses; each image's bits fill whole symbols) and
    the bandwidth ratio ``cbr`` = channel uses / (3 x pixels), as learned-JSCC papers report."""
    pixels = sum(e.image.shape[0] * e.image.shape[1] for e in images)
    bits = [e.indices.size * codec.bits_per_index for e in images]
    sent = [channel.coded_bits(n) for n in bits] if hasattr(channel, "coded_bits") else bits
    out = {"source_bpp": sum(bits) / pixels, "channel_bpp": sum(sent) / pixels}
    if hasattr(channel, "channel_uses"):
        uses = sum(channel.channel_uses(n) for n in bits)
        out.update(channel_uses_per_pixel=uses / pixels, cbr=uses / (3 * pixels))
    return out


def stop_desc(stop: StopRule) -> dict:
    """The stopping rule as the results file records it (part of what defines a point)."""
    return {"min_trials": stop.min_trials, "max_trials": stop.max_trials, "ci_target": stop.ci_target}


def check_resumable(previous: Sequence[dict], *, codec: Codec, channel_desc: dict, images_desc: dict, seed: int,
                    stop: StopRule, receivers: Sequence[str], with_ms_ssim: bool,
                    weights: str | None = None) -> None:
    """Refuse (``ValueError`` naming the first difference) to continue ``previous`` results with
    a run that differs in anything that defines a point: model (and its weights, where the file
    records them: a model retrained under the same name), channel and its options, images (by
    content), seed, stopping rule, receivers, MS-SSIM on or off. ``weights``: the codec's
    ``weights_fingerprint``, computed once by the caller."""
    for r in previous:
        if weights is not None and r.get("model_weights") not in (None, weights):
            raise ValueError(f"cannot resume: the file was made with other weights of {codec.name} "
                             f"({r['model_weights']}, now {weights}: retrained or replaced)")
    want = {"model": codec.describe(), "channel": channel_desc, "images": images_desc, "seed": seed,
            "stop_rule": stop_desc(stop)}
    for r in previous:
        for key, value in want.items():
            got = r.get(key)
            if key == "model" and isinstance(got, dict):
                got = {"precision": "fp32", **got}  # files from before precision was recorded ran fp32
            if got != value:
                raise ValueError(f"cannot resume: the file's {key} {json_short(got)} differs from this "
                                 f"run's {json_short(value)}")
        if r.get("receiver") not in receivers:
            raise ValueError(f"cannot resume: the file has receiver {r.get('receiver')!r}, this run "
                             f"{', '.join(receivers)}")
        if any(("ms_ssim" in p) != with_ms_ssim for p in r["points"]):
            raise ValueError("cannot resume: the file was run with MS-SSIM " + ("off" if with_ms_ssim else "on"))


def json_short(v) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def sweep(codec: Codec, images: Sequence[EncodedImage], channel_list: Sequence, grid: Sequence[float],
          receivers: Sequence[str], *, channel_desc: dict, images_desc: dict, seed: int, stop: StopRule,
          name: str = "sweep", with_ms_ssim: bool = True,
          on_trial: Callable[[int, int], None] | None = None,
          on_image: Callable[[str, str, int, np.ndarray], None] | None = None,
          timings: dict | None = None, previous: Sequence[dict] = (),
          on_point: Callable[[list[dict]], None] | None = None,
          executor=None, on_task: Callable[[], None] | None = None) -> list[dict]:
    """One results object per receiver over a grid of channel points (``channel_list[i]`` at ``grid[i]``).

    ``previous``: results objects of an interrupted run of the same sweep; a point that
    every receiver already finished there (same model, channel, seed) is reused, not rerun,
    and an unfinished point continues after the trials kept there (``UNFINISHED``; the
    per-trial seeds make the outcome identical either way). ``on_point(results)`` is
    called after every trial with the results so far, finished points in grid order and the
    unfinished points' trials under ``UNFINISHED`` (for incremental, atomic writes); ``on_trial(point_index, trials_done)`` and ``on_task()``
    report progress. ``executor``: see ``run_points``.
    """
    fp = codec.weights_fingerprint  # hashes every tensor: once per sweep
    check_resumable(previous, codec=codec, channel_desc=channel_desc, images_desc=images_desc, seed=seed,
                    stop=stop, receivers=receivers, with_ms_ssim=with_ms_ssim, weights=fp)
    weights = {"model_weights": fp} if fp else {}
    done = {(r["receiver"], float(p["param"])): p for r in previous for p in r["points"]}
    kept = restore_trials(previous, receivers, [e.name for e in images], with_ms_ssim)
    finished: dict[int, dict] = {}
    running: dict[int, PointRun] = {}

    budgets = [link_budget(codec, images, ch) for ch in channel_list] if images else [{}] * len(grid)

    def results():
        order = sorted(finished)
        return [new_results(name=f"{name}-{channel_desc['kind']}",
                            description=f"{codec.name} over {channel_desc['kind']}, receiver {r}",
                            seed=seed, model=codec.describe(), images=images_desc, channel=channel_desc, receiver=r,
                            points=[{**finished[i][r], **budgets[i]} for i in order],
                            extra={"stop_rule": stop_desc(stop), **weights,
                                   **({UNFINISHED: [running[i].unfinished(r) for i in sorted(running)]}
                                      if running else {})}) for r in receivers]

    todo = []
    for i, value in enumerate(grid):
        if all((r, float(value)) in done for r in receivers):
            finished[i] = {r: done[(r, float(value))] for r in receivers}
        else:
            todo.append(i)
    for i in todo:  # kept trials stay in every write until their point runs on (an interruption loses none)
        if kept.get(float(grid[i])):
            running[i] = PointRun(grid[i], receivers, stop, with_ms_ssim)
            for trial in kept[float(grid[i])]:
                running[i].add_trial([trial])
    if on_point and (finished or running):
        on_point(results())

    def point_done(k, pts):
        finished[todo[k]] = pts
        running.pop(todo[k], None)
        if on_point:
            on_point(results())

    def point_ran(k, run):
        if run.reason is None:  # a finished point is written by point_done
            running[todo[k]] = run
            if on_point:
                on_point(results())

    if todo:
        run_points(codec, images, [channel_list[i] for i in todo], [grid[i] for i in todo], receivers, seed=seed,
                   stop=stop, with_ms_ssim=with_ms_ssim, executor=executor, on_point=point_done,
                   on_trial=(lambda k, t: on_trial(todo[k], t)) if on_trial else None, on_task=on_task,
                   on_image=on_image, timings=timings, on_run=point_ran,
                   restored=[kept.get(float(grid[i]), []) for i in todo])
    return results()
