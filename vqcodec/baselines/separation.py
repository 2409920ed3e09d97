"""Monte Carlo of the classical baselines through the channels: separation systems at a
channel-bit budget, one channel point, the oracle over code rates, the separation bound and the
sweep. The file codecs (encode, decode, quality choice, decode worker) are
``vqcodec.baselines.file_codecs``.

A *separation* system compresses the image with a classical codec (Pillow's
JPEG, WebP, AVIF and JPEG 2000; HEIC through pillow-heif's x265, the coding
tools of BPG; JPEG XL through imagecodecs' libjxl), protects the file with a CRC-32 and a channel code from
:mod:`vqcodec.fec`, and sends it over a channel from :mod:`channels`. It is
compared with the VQ stream at the same **channel-bit budget**: for a budget
of ``B`` channel bits per pixel an ``H x W`` image may use
``floor(B * H * W)`` channel bits.

Budget accounting (exact)
-------------------------
For a code of rate ``r`` (``"none"``, one of ``"cc-3/4" "cc-2/3" "cc-1/2"
"cc-1/3" "cc-1/4"``, every convolutional code terminated with 6 tail bits, or a 5G
LDPC code ``"ldpc-A/B"`` of ``ceil(n / R)`` bits, :class:`vqcodec.links.LdpcCode`;
names as :func:`vqcodec.links.parse_code` reads them), the
source may use the largest ``n`` info bits with
``code.coded_length(n + 32) <= budget`` (``n + 0`` without the CRC), i.e.
the tail and the CRC are charged exactly. The codec file (whole bytes) must
satisfy ``8 * len(file) <= n``.

Side information and receiver
-----------------------------
The image size, the codec, the quality and the file length are side
information (error-free, like the VQ side information in DESIGN.md); only
the file (+ CRC) crosses the channel. The receiver decodes the channel code
(soft LLRs when the channel gives them, else hard bits; uncoded: hard
decisions, erasures read as 0), then:

* ``crc=True`` (receiver ``"crc"``): CRC-32 over the file bits; on a CRC
  failure or any exception the **fallback image** is shown;
* ``crc=False`` (receiver ``"no-crc"``): no CRC is sent (its 32 bits go to
  the source) and whatever arrives is handed to the image decoder; only an
  exception (or a time-out, see ``file_codecs``) gives the fallback. A partially
  corrupted JPEG often beats grey.

**Fallback image**: a uniform mid-grey image, every pixel (128, 128, 128),
of the original size. ``failure_rate`` in a point is the fraction of the image
transmissions sent (image x trial) that fell back: the channel's losses. An
image that fits the budget at no quality ("no fit") is never sent; it shows
the fallback too (in the mean PSNR) but is counted apart: ``no_fit`` (images)
and ``no_fit_rate``, and the curve's legend says so.

Separation bound
----------------
For a channel of capacity ``C`` (bits per channel use) an ideal separation
system could deliver ``R = budget_bpp * C`` source bits per pixel. Each
codec's own clean rate-distortion curve per image (:func:`clean_rd`; PSNR
against the actual file bpp) is made monotone (best PSNR at a rate <= bpp,
a running maximum over the qualities sorted by bpp), then interpolated
linearly (bpp, dB) at ``R``; above the highest quality it is clamped to the
highest-quality PSNR; **below the lowest achievable bpp the codec cannot
deliver anything, and the bound gives the grey fallback's PSNR** (as the
digital systems do for no-fit). The per-image values are averaged in dB.

Oracle
------
:func:`oracle_best` picks, at each channel point, the code rate with the
highest mean PSNR (an oracle that knows the channel); the quality is not
chosen by the oracle but always follows from the budget (the highest that
fits for that rate). Ties go to the higher code rate.

Randomness: the channel realisation of (seed, image, param, trial) comes
from :func:`vqcodec.simulate.trial_rng`, the same convention as the VQ
simulator (the transmitted bit streams differ anyway).

The library never prints; progress is reported through optional callbacks.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

import channels
from channels.base import ParameterError
from vqcodec import fec
from vqcodec.baselines.file_codecs import (
    CODECS,
    FALLBACK_VALUE,
    WORKER_DECODE_TIMEOUT,
    BaselineImage,
    CodecSpec,
    _codec,
    _DecodeWorker,
    as_baseline_images,
    choose_quality,
    decode_file,
    fallback_image,
)
from vqcodec.links import LdpcCode, single_code
from vqcodec.metrics import mean_ci95, ms_ssim, psnr
from vqcodec.results import new_results
from vqcodec.simulate import SerialExecutor, trial_rng

#: code rates of a sweep, highest first (code names as ``vqcodec.links.parse_code`` reads them)
RATES = ("none", "cc-3/4", "cc-2/3", "cc-1/2", "cc-1/3", "cc-1/4")

#: baselines that are not digital codecs: Deep JSCC (``vqcodec.analog``), awgn and fading only
ANALOG_BASELINES = ("deepjscc",)

CRC_BITS = 32


# ---------------------------------------------------------------------------
# Channel codes and the budget
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Uncoded:
    """No channel code: rate 1, no tail. Hard decisions (LLR < 0 -> 1; erasures -> 0)."""

    name: str = "uncoded"
    rate: float = 1.0

    def coded_length(self, n_info: int) -> int:
        if int(n_info) < 0:
            raise ValueError("n_info must be >= 0")
        return int(n_info)

    def encode(self, bits) -> np.ndarray:
        return np.asarray(bits, np.uint8)

    def decode(self, received) -> np.ndarray:
        r = np.asarray(received)
        if np.issubdtype(r.dtype, np.floating):
            return (r < 0).astype(np.uint8)
        return (r == 1).astype(np.uint8)


_UNCODED = Uncoded()


def get_rate_code(rate_name):
    """The channel code of a code name (``vqcodec.links.parse_code``): ``none``, a
    :mod:`vqcodec.fec` convolutional code (``cc-1/2``, ...) or a 5G LDPC code (``ldpc-1/2``,
    :class:`vqcodec.links.LdpcCode`). Old spellings (``uncoded``, a bare ``1/2``) warn."""
    name = single_code(rate_name)
    if name == "none":
        return _UNCODED
    if name.startswith("cc-"):
        return fec.get_code(name[3:])
    return LdpcCode(name)


def results_rate(rate_name) -> str:
    """How a results file names a code (``rate``, curve names, legends), unchanged by the one
    code-name syntax: its code object's name, ``uncoded``, ``1/2`` or ``ldpc-1/2``."""
    return get_rate_code(rate_name).name


def rate_label(rate_name) -> str:
    """Legend text of a rate: "uncoded" or "CC r=1/2"."""
    name = results_rate(rate_name)
    if name.startswith("ldpc-"):
        return f"LDPC r={name[5:]}"
    return "uncoded" if name == "uncoded" else f"CC r={name}"


def max_payload_bits(code, budget_bits: int, crc: bool = True) -> int:
    """Largest n with ``code.coded_length(n + 32*crc) <= budget_bits``; -1 if none."""
    if isinstance(code, str):
        code = get_rate_code(code)
    extra = CRC_BITS if crc else 0
    budget_bits = int(budget_bits)
    if code.coded_length(extra) > budget_bits:
        return -1
    lo, hi = 0, budget_bits + 1  # coded_length(n) >= n, so n <= budget
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if code.coded_length(mid + extra) <= budget_bits:
            lo = mid
        else:
            hi = mid
    return lo


def _budget_bits(image: BaselineImage, budget_bpp: float) -> int:
    return int(math.floor(float(budget_bpp) * image.pixels))


def max_file_bytes(image, rate_name, budget_bpp: float, crc: bool = True) -> int:
    """Largest codec file (bytes) that fits the channel budget of ``image`` at ``rate_name`` (a
    code name, or the code of :func:`get_rate_code`); -1 if none."""
    img = image if isinstance(image, BaselineImage) else as_baseline_images([image])[0]
    n = max_payload_bits(rate_name, _budget_bits(img, budget_bpp), crc)
    return -1 if n < 0 else n // 8


# ---------------------------------------------------------------------------
# One channel point
# ---------------------------------------------------------------------------


def _ci(values) -> dict:
    out = mean_ci95(values)
    if len(values) and np.ptp(values) == 0:
        out["ci95"] = 0.0
    return out


def run_baseline_point(images, codec_name, rate_name, channel, *, budget_bpp: float, seed: int = 0,
                       param: float | None = None, trials: int = 4, crc: bool = True,
                       with_ms_ssim: bool = False, decode_timeout: float | None = None,
                       stop_rule=None, on_trial: Callable[[int], None] | None = None) -> dict:
    """Send every image ``trials`` times through ``channel`` with ``codec_name`` + ``rate_name``.

    Returns a point in the results-file format: ``param``, ``trials``, ``stop``,
    ``psnr`` {mean, ci95 over trials of the mean over images}, ``psnr_clean``
    (mean over images of the chosen quality's clean PSNR; grey for no-fit),
    ``ms_ssim`` (with ``with_ms_ssim``), ``bits`` / ``bit_errors`` / ``ber``
    (coded channel bits), ``decoded_bit_errors`` (file + CRC bits after the
    channel decoder), ``failure_rate`` (transmissions lost to the channel: CRC or
    decode failures over the transmissions sent, 0 when no image fits), ``no_fit``
    (images that fit the budget at no quality and are never sent: shown grey, counted
    in the mean PSNR but not as failures) and ``no_fit_rate`` (their share), ``source_bpp``
    and ``channel_bpp`` (means over images), ``quality`` (per image) and
    ``per_image``. ``param`` defaults to ``channel.param_value``.
    ``stop_rule`` (a :class:`vqcodec.simulate.StopRule`) replaces the fixed
    number of trials when given.
    """

    imgs = as_baseline_images(images)
    spec = _codec(codec_name)
    code = get_rate_code(rate_name)
    if param is None:
        param = channel.param_value
    trials = int(trials)
    if stop_rule is None and trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if decode_timeout is None and not crc and not spec.inprocess_corrupt:
        decode_timeout = WORKER_DECODE_TIMEOUT
    worker = _DecodeWorker(decode_timeout) if (decode_timeout is not None and not crc) else None

    # per image: the chosen quality and the transmitted bits (fixed over trials)
    plans = [_plan(img, spec, code, budget_bpp, crc, with_ms_ssim) for img in imgs]

    bits = bit_errors = erased = decoded_errors = 0
    failures = {img.name: 0 for img in imgs}
    per_psnr = {img.name: [] for img in imgs}
    per_ssim = {img.name: [] for img in imgs}
    trial_psnr, trial_ssim = [], []
    trial = 0
    reason = None
    try:
        while reason is None:
            ps, ss = [], []
            for plan in plans:
                img = plan["img"]
                H, W = img.shape
                if plan["quality"] is None:
                    ok, out = False, None
                else:
                    coded = plan["coded"]
                    rx = channel(coded, trial_rng(seed, img.name, param, trial))
                    bits += coded.size
                    bit_errors += int(np.count_nonzero((rx.hard >= 0) & (rx.hard != coded)))
                    erased += int(np.count_nonzero(rx.hard < 0))
                    ok, out, n_err = _receive(plan, rx, code, spec, crc, H, W, worker)
                    decoded_errors += n_err
                if ok:  # the file arrived intact
                    p, s = plan["clean"]
                elif out is None:  # fallback: lost to the channel, or never sent (does not fit)
                    failures[img.name] += plan["quality"] is not None
                    p, s = img.fallback_metrics(with_ms_ssim)
                else:  # a corrupted file that decoded (crc=False)

                    p = psnr(img.image, out)
                    s = ms_ssim(img.image, out) if with_ms_ssim else None
                ps.append(p)
                per_psnr[img.name].append(p)
                if with_ms_ssim:
                    ss.append(s)
                    per_ssim[img.name].append(s)
            trial_psnr.append(float(np.mean(ps)))
            if with_ms_ssim:
                trial_ssim.append(float(np.mean(ss)))
            trial += 1
            if on_trial:
                on_trial(trial)
            if stop_rule is not None:
                reason = stop_rule.decide([trial_psnr])
            elif trial >= trials:
                reason = "fixed-trials"
    finally:
        if worker is not None:
            worker.close()

    n_tx = trial * sum(1 for plan in plans if plan["quality"] is not None)  # transmissions sent
    per_image = []
    for plan in plans:
        img = plan["img"]
        q = plan["quality"]
        fb = len(plan["data"]) if q is not None else 0
        rec = {"image": img.name, "psnr": float(np.mean(per_psnr[img.name])),
               "psnr_clean": float(plan["clean"][0]), "quality": q, "fits": q is not None,
               "file_bytes": fb, "source_bpp": 8 * fb / img.pixels,
               "coded_bits": int(plan["coded"].size) if q is not None else 0,
               "budget_bits": plan["budget"], "failures": failures[img.name],
               "failure_rate": failures[img.name] / trial}
        if with_ms_ssim:
            rec["ms_ssim"] = float(np.mean(per_ssim[img.name]))
        per_image.append(rec)
    point = {"param": float(param), "trials": trial, "stop": reason,
             "psnr": _ci(trial_psnr), "psnr_clean": float(np.mean([p["psnr_clean"] for p in per_image])),
             "bits": int(bits), "bit_errors": int(bit_errors), "erased_bits": int(erased),
             "ber": bit_errors / bits if bits else 0.0,
             "decoded_bit_errors": int(decoded_errors),
             "failure_rate": sum(failures.values()) / n_tx if n_tx else 0.0,
             "no_fit": sum(1 for p in per_image if not p["fits"]),
             "no_fit_rate": sum(1 for p in per_image if not p["fits"]) / len(per_image),
             "codec": spec.name, "rate": code.name, "budget_bpp": float(budget_bpp),
             "source_bpp": float(np.mean([p["source_bpp"] for p in per_image])),
             "channel_bpp": float(np.mean([p["coded_bits"] / plan["img"].pixels
                                           for p, plan in zip(per_image, plans)])),
             "quality": {p["image"]: p["quality"] for p in per_image},
             **_budget_cbr(channel, budget_bpp), "per_image": per_image}
    if with_ms_ssim:
        point["ms_ssim"] = _ci(trial_ssim)
        point["ms_ssim_clean"] = float(np.mean([plan["clean"][1] for plan in plans]))
    return point


def _budget_cbr(channel, budget_bpp: float) -> dict:
    """{'cbr': the budget's bandwidth ratio, channel uses / (3 x pixels)} on a channel with a
    modulation (awgn, fading), else {}: the budget every baseline curve fills, as the VQ curves'."""
    bits = getattr(channel, "bits_per_use", None)
    return {"cbr": float(budget_bpp) / (3 * bits)} if isinstance(bits, int) and bits > 0 else {}


def _plan(img: BaselineImage, spec: CodecSpec, code, budget_bpp: float, crc: bool, with_ms_ssim: bool) -> dict:
    """What one image sends at a budget: the highest quality that fits (None: no-fit), its file,
    payload (+ CRC), coded bits and clean metrics (the grey fallback's for no-fit)."""
    budget = _budget_bits(img, budget_bpp)
    q = choose_quality(img, spec, max_file_bytes(img, code, budget_bpp, crc))
    plan = {"img": img, "quality": q, "budget": budget}
    if q is None:
        plan["clean"] = img.fallback_metrics(with_ms_ssim)
        return plan
    data = img.file(spec, q)
    file_bits = np.unpackbits(np.frombuffer(data, np.uint8))
    payload = fec.append_crc(file_bits) if crc else file_bits
    coded = code.encode(payload)
    assert coded.size <= budget
    plan.update(data=data, payload=payload, coded=coded, clean=img.clean_metrics(spec, q, with_ms_ssim))
    return plan


def received_image(image: BaselineImage, codec_name, rate_name, channel, *, budget_bpp: float, seed: int = 0,
                   param: float, trial: int = 0, crc: bool = True) -> tuple[np.ndarray, float]:
    """What the receiver shows of one transmission of ``image`` (the realisation of
    ``trial_rng(seed, name, param, trial)``, as in :func:`run_baseline_point`): (uint8 image, PSNR)."""
    spec, code = _codec(codec_name), get_rate_code(rate_name)
    H, W = image.shape
    plan = _plan(image, spec, code, budget_bpp, crc, False)
    if plan["quality"] is None:
        out = fallback_image(H, W)
    else:
        rx = channel(plan["coded"], trial_rng(seed, image.name, float(param), trial))
        worker = None if (crc or spec.inprocess_corrupt) else _DecodeWorker(WORKER_DECODE_TIMEOUT)
        try:
            ok, out, _ = _receive(plan, rx, code, spec, crc, H, W, worker)
        finally:
            if worker is not None:
                worker.close()
        out = decode_file(plan["data"], spec, H, W) if ok else (out if out is not None else fallback_image(H, W))
    return out, psnr(image.image, out)


def _receive(plan, rx, code, spec, crc, H, W, worker):
    """Receiver of one transmission -> (file intact?, decoded corrupted image or None,
    payload bit errors after the channel decoder).

    Never raises: any exception gives (False, None, errors), the fallback.
    """
    n_err = 0
    try:
        soft = rx.llr if rx.llr is not None else rx.hard
        dec = np.asarray(code.decode(soft), np.uint8)
        payload = plan["payload"]
        if dec.shape != payload.shape:
            return False, None, int(payload.size)
        n_err = int(np.count_nonzero(dec != payload))
        if crc:
            return fec.check_crc(dec), None, n_err
        if n_err == 0:
            return True, None, 0
        data = np.packbits(dec).tobytes()
        if worker is not None:
            out = worker.decode(data, spec.name, H, W)
        else:
            out = decode_file(data, spec, H, W)
        return False, out, n_err
    except Exception:  # noqa: BLE001 - a broken file must never stop the run
        return False, None, n_err


# ---------------------------------------------------------------------------
# Oracle over rates, clean RD, separation bound
# ---------------------------------------------------------------------------


def oracle_best(points_by_rate: Mapping[str, dict]) -> dict:
    """The point (over code rates, one channel point) with the highest mean PSNR.

    ``points_by_rate``: {rate name: point of :func:`run_baseline_point`}, all
    at the same ``param``. Returns a copy of the winning point with ``rate``
    set to the winning rate and ``rates_considered``. The oracle picks the
    rate only; the quality always follows from the budget (the highest that
    fits at that rate). Ties go to the higher code rate.
    """
    if not points_by_rate:
        raise ValueError("no points to choose from")
    params = {float(p["param"]) for p in points_by_rate.values()}
    if len(params) != 1:
        raise ValueError(f"points of different channel parameters: {sorted(params)}")
    codes = {r: get_rate_code(r) for r in points_by_rate}
    items = sorted(points_by_rate.items(), key=lambda kv: -codes[kv[0]].rate)
    best_rate, best = items[0]
    for rate, pt in items[1:]:
        if float(pt["psnr"]["mean"]) > float(best["psnr"]["mean"]):
            best_rate, best = rate, pt
    out = dict(best)
    out["rate"] = codes[best_rate].name
    out["rates_considered"] = [codes[r].name for r, _ in items]
    out["psnr_by_rate"] = {codes[r].name: float(p["psnr"]["mean"]) for r, p in items}
    return out


def clean_rd(images, codec, qualities: Iterable[int] | None = None,
             with_ms_ssim: bool = False) -> list[list[tuple]]:
    """Clean rate-distortion curves: per image, a list of ``(bpp, psnr, ms_ssim)`` tuples,
    one per quality in the order of ``qualities`` (default :func:`rd_qualities`);
    bpp = 8 * file bytes / pixels; ms_ssim is None unless ``with_ms_ssim``."""
    imgs = as_baseline_images(images)
    spec = _codec(codec)
    qs = [int(q) for q in (qualities if qualities is not None else spec.rd_grid)]
    out = []
    for img in imgs:
        curve = []
        for q in qs:
            p, s = img.clean_metrics(spec, q, with_ms_ssim)
            curve.append((8 * img.file_bytes(spec, q) / img.pixels, float(p), s))
        out.append(curve)
    return out


def _interp_rd(curve: Sequence[tuple], rate_bpp: float, grey: float, idx: int) -> float:
    """Operational RD value at ``rate_bpp``: see the module docstring (grey below the lowest bpp)."""
    pts = sorted((c[0], c[idx]) for c in curve)
    x = np.array([p[0] for p in pts], np.float64)
    y = np.maximum.accumulate(np.array([p[1] for p in pts], np.float64))
    if rate_bpp < x[0]:
        return float(grey)
    return float(max(grey, np.interp(rate_bpp, x, y)))


def separation_bound_point(images, codec, channel, *, budget_bpp: float, param: float | None = None,
                           rd: list | None = None, qualities: Iterable[int] | None = None,
                           with_ms_ssim: bool = False) -> dict:
    """The ideal-separation point: each image's clean RD curve at ``budget_bpp * capacity``.

    ``rd``: precomputed :func:`clean_rd` output for ``images`` (else computed
    with ``qualities``). Raises ``NotImplementedError`` for a channel without
    a capacity formula.
    """
    imgs = as_baseline_images(images)
    if param is None:
        param = channel.param_value
    cap = float(channel.capacity())
    rate = float(budget_bpp) * cap
    if rd is None:
        rd = clean_rd(imgs, codec, qualities, with_ms_ssim)
    per_image, ps, ss = [], [], []
    for img, curve in zip(imgs, rd):
        gp, gs = img.fallback_metrics(with_ms_ssim)
        p = _interp_rd(curve, rate, gp, 1)
        rec = {"image": img.name, "psnr": p, "source_bpp": rate,
               "fallback": rate < min(c[0] for c in curve)}
        ps.append(p)
        if with_ms_ssim:
            s = _interp_rd(curve, rate, gs, 2)
            rec["ms_ssim"] = s
            ss.append(s)
        per_image.append(rec)
    point = {"param": float(param), "trials": 0, "stop": "bound", "psnr": {"mean": float(np.mean(ps)), "ci95": 0.0},
             "capacity": cap, "source_bpp": rate, "budget_bpp": float(budget_bpp), "codec": _codec(codec).name,
             "failure_rate": float(np.mean([r["fallback"] for r in per_image])), **_budget_cbr(channel, budget_bpp),
             "per_image": per_image}
    if with_ms_ssim:
        point["ms_ssim"] = {"mean": float(np.mean(ss)), "ci95": 0.0}
    return point


# ---------------------------------------------------------------------------
# Sweep
# ---------------------------------------------------------------------------


def check_options(codecs, rates, budget_bpp: float | None = None) -> tuple[list[str], list[str]]:
    """The baseline codecs and code rates of a sweep, checked before any work: lists, or
    comma-separated text; ``budget_bpp`` (channel bits per pixel) in (0, 24] when given.
    Returns (codecs, rates), the rates by their one names (``vqcodec.links.parse_code``; an old
    spelling warns here, once); a one-line ``ValueError`` names the first problem."""

    def as_list(v):
        return [c.strip() for c in v.split(",") if c.strip()] if isinstance(v, str) else list(v or [])

    names, rate_list = as_list(codecs), as_list(rates)
    bad = [c for c in names if c not in CODECS and c not in ANALOG_BASELINES]
    if bad:
        raise ValueError(f"unknown baseline {bad[0]!r} (known: {', '.join((*CODECS, *ANALOG_BASELINES))})")
    if len(set(names)) != len(names):
        raise ValueError(f"a baseline is named twice: {', '.join(names)}")
    if any(c in CODECS for c in names):
        if not rate_list:
            raise ValueError(f"no code rates for the baselines (e.g. {','.join(RATES)})")
        rate_list = [single_code(r) for r in rate_list]
        if budget_bpp is not None and not (0 < budget_bpp <= 24 and math.isfinite(budget_bpp)):
            raise ParameterError(f"{{0}} must be in (0, 24], got {budget_bpp}", "budget_bpp")
    return names, rate_list


def baseline_sweep(images, codecs: Sequence[str] = ("jpeg", "webp"), rates: Sequence[str] = RATES, *,
                   channel_kind: str = "bsc", grid: Sequence[float] = (1e-3, 1e-2, 1e-1),
                   channel_extra: Mapping | None = None, budget_bpp: float = 0.5, seed: int = 0,
                   trials: int = 4, crc: bool = True, with_ms_ssim: bool = False,
                   decode_timeout: float | None = None, bound: bool = True, images_source: str | None = None,
                   progress: Callable[[int, int, str], None] | None = None, executor=None) -> list[dict]:
    """All baseline curves for one channel family: a list of results objects (``vqcodec.results/1``).

    Per codec: one curve per fixed code rate (model.name e.g. "jpeg+r1/2",
    receiver "crc" or "no-crc"), the oracle "best digital" curve (model.name
    "jpeg best digital", each point records its ``rate``), and the
    separation bound (model.name "jpeg separation bound", dashed; left out
    for a channel without a capacity formula or with ``bound=False``).
    Each object carries ``label`` (legend) and ``style``.
    ``progress(done, total, message)`` is called after every channel point. ``executor`` (serial
    by default, or a ``vqcodec.cluster.DaskExecutor``) runs the (codec, rate, point) tasks; the
    separation bound is computed here.
    """

    imgs = as_baseline_images(images)
    specs = [_codec(c) for c in codecs]
    rate_names = [single_code(r) for r in rates]
    if not rate_names:
        raise ValueError("no code rates")
    extra = dict(channel_extra or {})
    cls = channels.REGISTRY.get(channel_kind)
    if cls is None:
        raise ValueError(f"unknown channel {channel_kind!r} (known: {', '.join(sorted(channels.REGISTRY))})")
    pname = cls.param
    chans = [channels.get_channel(channel_kind, **{pname: v}, **extra) for v in grid]  # validate first
    ch_desc = {"kind": channel_kind, "param": pname, **extra}
    img_desc = {"source": images_source or "custom", "count": len(imgs)}
    receiver = "crc" if crc else "no-crc"
    common = {"budget_bpp": float(budget_bpp),
              "side_info": "image size, codec, quality and file length arrive error-free",
              "fallback": f"uniform grey ({FALLBACK_VALUE}, {FALLBACK_VALUE}, {FALLBACK_VALUE})"}
    if bound:
        try:
            for ch in chans:
                ch.capacity()
        except NotImplementedError:
            bound = False
    total = len(specs) * len(chans) * (len(rate_names) + (1 if bound else 0))
    done = 0
    results = []
    executor = executor if executor is not None else SerialExecutor()
    shared = executor.share(imgs)  # serial: the same objects, so their encoding caches carry over
    keys = [(spec, r, i) for spec in specs for i in range(len(chans)) for r in rate_names]

    def one_done():
        nonlocal done
        done += 1
        if progress:
            progress(done, total, f"{pname} points of the baselines")

    # every (codec, rate, channel point) is a task; a point's noise depends only on (seed, image,
    # param, trial), so the result is the serial one whatever runs where
    pts = executor.map(run_baseline_point,
                       [((shared, spec.name, r, chans[i]),
                         dict(budget_bpp=budget_bpp, seed=seed, param=float(grid[i]), trials=trials, crc=crc,
                              with_ms_ssim=with_ms_ssim, decode_timeout=decode_timeout)) for spec, r, i in keys],
                       on_done=one_done)
    by_key = {(spec.name, r, i): pt for (spec, r, i), pt in zip(keys, pts)}
    for spec in specs:
        curves = {r: [by_key[(spec.name, r, i)] for i in range(len(chans))] for r in rate_names}
        for r in rate_names:
            rate = results_rate(r)  # the results file's text, as before the one code-name syntax
            results.append(new_results(
                name=f"baseline-{spec.name}-{channel_kind}",
                description=f"{spec.label} + {rate_label(r)} over {channel_kind} at {budget_bpp:g} channel "
                            f"bits/pixel, receiver {receiver}",
                seed=seed, model={"name": f"{spec.name}+r{rate}" if rate != "uncoded" else f"{spec.name}+uncoded",
                                  "codec": spec.name, "rate": rate, "bpp": float(budget_bpp)},
                images=img_desc, channel=ch_desc, receiver=receiver, points=curves[r],
                extra={**common, "label": f"{spec.label} + {rate_label(r)}", "style": {"ls": ":", "marker": "."}}))
        best = [oracle_best({r: curves[r][i] for r in rate_names}) for i in range(len(chans))]
        results.append(new_results(
            name=f"baseline-{spec.name}-{channel_kind}",
            description=f"{spec.label} best digital: per channel point the code rate with the highest mean PSNR "
                        f"(oracle), quality the highest that fits {budget_bpp:g} channel bits/pixel",
            seed=seed, model={"name": f"{spec.name} best digital", "codec": spec.name, "bpp": float(budget_bpp),
                              "rates": [results_rate(r) for r in rate_names]},
            images=img_desc, channel=ch_desc, receiver=receiver, points=best,
            extra={**common, "label": f"{spec.label} best digital (oracle)", "style": {"ls": "-", "marker": "s"}}))
        if bound:
            # the RD grid plus every quality a digital point chose, so the curve passes through them
            chosen = {q for r in rate_names for pt in curves[r] for q in pt["quality"].values() if q is not None}
            qs = sorted(set(spec.rd_grid) | chosen)
            rd = clean_rd(imgs, spec, qs, with_ms_ssim)
            pts = []
            for value, ch in zip(grid, chans):
                pts.append(separation_bound_point(imgs, spec, ch, budget_bpp=budget_bpp, param=float(value),
                                                  rd=rd, with_ms_ssim=with_ms_ssim))
                done += 1
                if progress:
                    progress(done, total, f"{spec.name} bound {pname}={value:g}")
            results.append(new_results(
                name=f"baseline-{spec.name}-{channel_kind}",
                description=f"{spec.label} ideal separation: clean RD curve at {budget_bpp:g} x capacity "
                            f"bits/pixel (grey below the lowest achievable rate)",
                seed=seed, model={"name": f"{spec.name} separation bound", "codec": spec.name,
                                  "bpp": float(budget_bpp), "rd_qualities": qs},
                images=img_desc, channel=ch_desc, receiver="ideal", points=pts,
                extra={**common, "label": f"{spec.label} separation bound", "style": {"ls": "--", "marker": ""}}))
    return results
