"""Clean-channel evaluation, index files, figures and exports, and what is installed (models,
channels, receivers). Part of :mod:`vqcodec.api`, which re-exports every public name."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import channels
from channels.base import ParameterError
from channels.options import KIND_OPTIONS
from vqcodec.api.runs import ImagesArg, load, refuse_rate_search
from vqcodec.bits import read_index_file as read_vqc
from vqcodec.checkpoint import CheckpointError, checkpoint_paths
from vqcodec.files import check_output, replace_atomically, template_text
from vqcodec.images import check_image_output, list_images, save_image
from vqcodec.plot import curve_label, plot_curves, plot_rd, select_curves
from vqcodec.receivers import REGISTRY as RECEIVERS
from vqcodec.results import (
    ResultsError,
    atomic_write_text,
    clean_results,
    merge_curves,
    new_results,
    read_compressai,
    read_results,
    to_compressai,
)
from vqcodec.simulate import EncodedImage, clean_point, decode_index_file, encode_images, index_file, progressive_points
from vqcodec.zoo import DEFAULT_MODEL, Codec, meta, plugins
from vqcodec.zoo import REGISTRY as MODELS


def _figure_files(output) -> list[str]:
    output = str(output)
    return [output] if Path(output).suffix.lower() in (".png", ".pdf", ".svg") else [output + ".png", output + ".pdf"]


def plot_files(files: Sequence, output, *, metric: str = "psnr", title: str | None = None,
               select: Sequence[str] = (), rd: bool = False, overwrite: bool = False) -> list[Path]:
    """Draw the curves of results files to ``output``: against the channel parameter, or with
    ``rd`` a rate-distortion figure of clean-channel results (CompressAI-style files among
    ``files`` are drawn as labelled anchors). ``select``: glob patterns of the curves' labels.
    Refuses existing figures without ``overwrite``; writes nothing when a figure cannot be drawn."""
    for out in _figure_files(output):
        check_output(out, overwrite)
    try:
        if rd:
            ours, anchors = [], []
            for f in files:
                ca = read_compressai(f)
                if ca is not None:
                    anchors.append(ca)
                else:
                    ours += read_results(f)
            return plot_rd(clean_results(ours) if ours or not anchors else [], output, anchors=anchors,
                           metric=metric, title=title)
        results = merge_curves([r for f in files for r in read_results(f)])
        if select:
            chosen = select_curves(results, select)
            if not chosen:
                raise ParameterError(f"no curve matches {{0}} {template_text(' '.join(select))} (the curves: "
                                     f"{template_text(', '.join(curve_label(r) for r in results))})", "select")
            results = chosen
        return plot_curves(results, output, metric=metric, title=title)
    except (ResultsError, ParameterError):
        raise
    except ValueError as exc:  # matplotlib: a label with broken mathtext ($\frac{1}{$), a bad style
        raise ValueError(f"cannot draw the figure: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r} "
                         "(a label from the results files?); nothing was written") from None


def export_compressai(files: Sequence, output, *, name: str = "vqcodec", overwrite: bool = False) -> dict:
    """Write the clean-channel results of ``files`` (``vqcodec eval`` / kodak-rd) as a
    CompressAI-style rate-distortion file; returns the document written."""


    check_output(output, overwrite)
    doc = to_compressai([r for f in files for r in read_results(f)], name=name)
    try:
        atomic_write_text(output, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise ValueError(f"{output}: cannot write ({exc.strerror or exc.__class__.__name__}); the previous file, "
                         "if any, is unchanged") from None
    return doc


# --------------------------------------------------------------------------- clean evaluation and index files

@dataclass(frozen=True)
class Evaluation:
    """A clean-channel evaluation: the results object (one point, ``channel.kind == "none"``),
    the encoded images (in the point's per-image order) and, for a residual model evaluated
    progressively, the PSNR of decoding from the first s stages alone."""
    results: dict
    images: list
    progressive: list | None = None


def evaluate(codec: Codec, images: ImagesArg = None, *, entropy: bool = False, progressive: bool = False,
             with_ms_ssim: bool = True, progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """PSNR, MS-SSIM and rate of every image through the clean channel. ``entropy``: the rates
    of the entropy-coded index files (real sizes) instead of the fixed-length stream;
    ``progressive``: also decode a residual model from its first s stages alone."""
    if progressive and codec.model.stages == 1:
        raise ParameterError(f"model {template_text(codec.name)} has one stage; {{0}} needs a residual model "
                             "(trained with {1})", "progressive", "stages")
    if not entropy:
        refuse_rate_search(codec, "a fixed-length evaluation")
    encoded, desc = encode_images(codec, images, with_ms_ssim, progress)
    point = clean_point(codec, encoded, entropy=entropy)
    prog = progressive_points(codec, encoded) if progressive else None
    res = new_results(name=f"eval-{codec.name}", description=f"clean-channel evaluation of {codec.name}",
                      seed=0, model=codec.describe(), images=desc, channel={"kind": "none", "param": "p"},
                      receiver="none", points=[point], extra={"progressive": prog} if prog else None)
    return Evaluation(res, encoded, prog)


@dataclass(frozen=True)
class IndexFile:
    """What :func:`encode_file` wrote: the encoded image and the file's size in bytes."""
    image: EncodedImage
    path: Path
    size: int
    entropy: bool
    bits_per_index: int
    precision: str  # the decoder's, for the clean PSNR

    @property
    def fixed_bits(self) -> int:
        """Bits of the fixed-length index stream."""
        return self.image.indices.size * self.bits_per_index


def encode_file(image, output, *, codec: Codec | None = None, model=None, checkpoint=None, weights=None,
                device: str = "cpu", precision: str = "auto", search=None, entropy: bool = False,
                overwrite: bool = False, progress=None) -> IndexFile:
    """Encode one image file into a ``.vqc`` index file (fixed-length, or entropy-coded with the
    model's context model) with ``codec``, else the model :func:`load` gives for the other
    arguments (loaded after the paths are checked); refuses an existing ``output`` without
    ``overwrite`` and leaves no partial file. ``progress(done, total)``: the encoder-side search's,
    after each group of sites."""
    check_output(output, overwrite)
    paths = list_images(image)
    if len(paths) != 1:
        raise ValueError(f"{image}: holds {len(paths)} images; encode takes one image file")
    if codec is None:
        codec = load(model, checkpoint=checkpoint, weights=weights, device=device, precision=precision, search=search)
    if not entropy:
        refuse_rate_search(codec, "a fixed-length index file")
    enc = encode_images(codec, paths, with_ms_ssim=False, progress=progress)[0][0]
    data = index_file(codec, enc, entropy=entropy)
    try:
        replace_atomically(output, lambda tmp: tmp.write_bytes(data))
    except OSError as exc:
        raise ValueError(f"{output}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    return IndexFile(enc, Path(output), len(data), entropy, codec.bits_per_index, codec.precision)


def read_index_file(path) -> tuple:
    """(indices, header) of a ``.vqc`` file; ``header["model"]`` names the model that made it."""
    return read_vqc(path)


def decode_file(index_path, output, *, codec: Codec | None = None, model=None, checkpoint=None, weights=None,
                device: str = "cpu", precision: str = "auto", overwrite: bool = False) -> tuple[dict, Codec]:
    """Decode a ``.vqc`` index file into an image file with ``codec``, else ``model`` (with
    ``weights``) or ``checkpoint``, else the shipped model or installed plug-in its header names.
    Returns (header, codec)."""
    check_output(output, overwrite)
    check_image_output(output)
    idx, header = read_index_file(index_path)
    if codec is None:
        named = model if model is not None or checkpoint is not None else header["model"]
        codec = load(named, checkpoint=checkpoint, weights=weights, device=device, precision=precision)
    try:
        img = decode_index_file(codec, idx, header)
    except ValueError as exc:
        raise ValueError(f"{index_path}: {exc}") from None
    save_image(output, img)
    return header, codec


# --------------------------------------------------------------------------- what is there

def _side_columns(m: dict) -> dict:
    return {"kodak_psnr": m.get("kodak", {}).get("psnr"),
            "receivers": "+".join(k for k, key in (("S", "prior"), ("L", "context")) if m.get(key)) or "-",
            "entropy": "trained" if m.get("entropy_model") else ("prior" if m.get("prior") else "-")}


def models() -> list[dict]:
    """Every shipped model, then every installed plug-in (entry-point group ``vqcodec.codecs``):
    ``name``, ``default``, ``description``, ``plugin`` and, when its weights are installed (a
    plug-in: when it loads), ``f``, ``K``, ``stages``, ``bpp``, ``kodak_psnr``, ``receivers``
    (``S``: spatial, ``L``: learned; after ``prepare`` / ``train-receiver``) and ``entropy``
    (``trained``, ``prior`` or ``-``); else ``installed`` False (a plug-in: with ``error``)."""
    out = []
    for name in sorted(MODELS):
        row = {"name": name, "default": name == DEFAULT_MODEL, "description": MODELS[name].description,
               "plugin": False}
        try:
            m = meta(name)
        except CheckpointError:
            out.append({**row, "installed": False})
            continue
        cfg = m["config"]
        stages = int(cfg.get("stages", 1))
        out.append({**row, "installed": True, "f": cfg["f"], "K": cfg["K"], "stages": stages,
                    "bpp": stages * math.ceil(math.log2(cfg["K"])) / cfg["f"] ** 2, **_side_columns(m)})
    for name, ep in sorted(plugins().items()):
        row = {"name": name, "default": False, "description": f"plug-in {ep.value}", "plugin": True}
        try:
            codec = load(name)
        except ValueError as exc:
            out.append({**row, "installed": False, "error": str(exc)})
            continue
        out.append({**row, "installed": True, "f": codec.f, "K": codec.K, "stages": codec.stages, "bpp": codec.bpp,
                    **_side_columns(codec.meta)})
    return out


def jscc_models() -> list[dict]:
    """Every shipped Deep JSCC model (the analog reference, ``--baselines deepjscc``): ``name``,
    ``cbr``, ``c``, ``width``, ``parameters``, ``steps`` (training steps) and ``kodak`` (its recorded
    Kodak PSNR over AWGN: ``snr_db`` and ``psnr`` lists, or None); ``installed`` False where its
    files are missing or unreadable."""
    from vqcodec.jscc import SHIPPED, DeepJSCC, JsccConfig, jscc_path

    out = []
    for name in SHIPPED:
        try:
            m = json.loads(checkpoint_paths(jscc_path(name))[1].read_text())
            cfg = JsccConfig(**m["jscc"])
        except (OSError, ValueError, KeyError, TypeError):
            out.append({"name": name, "installed": False})
            continue
        out.append({"name": name, "installed": True, "cbr": cfg.cbr, "c": cfg.c, "width": cfg.width,
                    "parameters": sum(p.numel() for p in DeepJSCC(cfg).parameters()),
                    "steps": m.get("training", {}).get("steps_done"), "kodak": m.get("kodak")})
    return out


def channel_kinds() -> list[dict]:
    """Every channel model: ``name``, its swept ``param``, its ``options`` (``channel_spec``'s
    keywords) and the first paragraph of its documentation (``doc``)."""
    return [{"name": name, "param": cls.param, "options": list(KIND_OPTIONS.get(name, ())),
             "doc": " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())}
            for name, cls in sorted(channels.REGISTRY.items())]


def receivers() -> dict[str, str]:
    """Every receiver by name, with the first line of its documentation."""
    return {name: ((fn.__doc__ or "").strip().splitlines() or [""])[0] for name, fn in sorted(RECEIVERS.items())}
