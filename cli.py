"""The ``vqcodec`` command: parse, call the library, print.

Every failure the user can cause (bad paths, bad images, bad parameters,
corrupt files) ends in a one-line ``Error: ...`` and exit status 1 (click's
usage errors: 2); no traceback, no half-written output.
"""
from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path

import click


class _Ratio(click.ParamType):
    """A number or a fraction such as 1/12."""

    name = "ratio"

    def convert(self, value, param, ctx):
        from fractions import Fraction

        if isinstance(value, float):
            return value
        try:
            return float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number or a fraction like 1/12", param, ctx)


_RATIO = _Ratio()


def _fail(msg: str) -> None:
    raise click.ClickException(str(msg).splitlines()[0] if msg else "failed")


def _stage_bars():
    """A context manager giving ``progress(stage, done, total)``: one progress bar per stage, all
    closed on the way out (an error included)."""
    import contextlib

    from tqdm import tqdm

    @contextlib.contextmanager
    def bars():
        open_bars = {}

        def progress(stage, done, total):
            if stage not in open_bars:
                open_bars[stage] = tqdm(total=total, desc=stage, leave=False, dynamic_ncols=True)
            open_bars[stage].n = done
            open_bars[stage].refresh()

        try:
            yield progress
        finally:
            for b in open_bars.values():
                b.close()

    return bars()


def _run_with_progress(desc: str, steps: int, run, postfix, errors: tuple = ()):
    """``run(progress, command)`` under a progress bar of ``steps`` steps; ``progress(step, metrics)``
    shows ``postfix(metrics)`` (a ``steps`` entry in the metrics resets the total). ``command`` is
    the command line, for the training record. ImageError, ValueError and ``errors`` become
    one-line errors, and so do OSError and SafetensorError (a full disk: the checkpoint writers leave
    no temporary file)."""
    from safetensors import SafetensorError
    from tqdm import tqdm

    from vqcodec.images import ImageError

    bar = tqdm(total=steps, desc=desc, unit="step", dynamic_ncols=True)

    def progress(step, m):
        bar.total = m.get("steps", bar.total)
        bar.n = step
        bar.set_postfix(**postfix(m), refresh=False)
        bar.refresh()

    command = "vqcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        return run(progress, command)
    except (ImageError, ValueError, *errors) as exc:
        _fail(str(exc))
    except (OSError, SafetensorError) as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _fail(f"{desc} stopped: {where}{getattr(exc, 'strerror', None) or exc} (no partial file is left)")
    finally:
        bar.close()


def _check_output(path: str | None, overwrite: bool) -> None:
    """Refuse, before any work, an output path that exists (without --overwrite) or cannot be written."""
    from vqcodec.files import OutputError, check_output

    try:
        check_output(path, overwrite)
    except OutputError as exc:
        _fail(str(exc))


def _write_results(path, results) -> None:
    """Atomic write; a failed write (full disk, permissions) is a one-line error and leaves the
    previous file intact."""
    from vqcodec.results import write_results

    try:
        write_results(path, results)
    except OSError as exc:
        _fail(f"{path}: cannot write the results ({exc.strerror or exc.__class__.__name__}); "
              "the previous file, if any, is unchanged")


def _load_codec(model, checkpoint, device="cpu", precision="fp32", search=None):
    from vqcodec.model import CheckpointError
    from vqcodec.zoo import load_codec

    try:
        return load_codec(model, checkpoint, device, precision, search)
    except CheckpointError as exc:
        _fail(str(exc))


def _load_images(codec, images, with_ms_ssim=True, desc="encode"):
    from tqdm import tqdm

    from vqcodec.images import ImageError
    from vqcodec.simulate import encode_images

    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None and total >= 3:
            bar = tqdm(total=total, desc=desc, unit="img", leave=False)
        if bar is not None:
            bar.n = done
            bar.refresh()

    try:
        return encode_images(codec, images, with_ms_ssim, progress)
    except (ImageError, ValueError) as exc:
        _fail(str(exc))
    finally:
        if bar is not None:
            bar.close()


_TRAIN_PRECISION = click.option(
    "--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
    help="Training arithmetic: bf16 autocast (fp32 weights, quantiser and loss), or fp32; auto: bf16 on CUDA "
         "and on CPUs with AVX512-BF16 or AMX, else fp32.")


def _training_options(fn):
    """Options shared by train and train-decoder."""
    opts = [
        click.option("--steps", type=click.IntRange(1), default=20000, show_default=True,
                     help="Training steps (optimiser updates)."),
        click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Crops per step."),
        click.option("--crop", type=click.IntRange(8), default=64, show_default=True,
                     help="Crop size in pixels (square training crops)."),
        click.option("--lr", type=float, default=1.5e-3, show_default=True,
                     help="Peak learning rate (Adam; warm-up, then cosine decay)."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
                     help="Seed of the initialisation and the crops."),
        click.option("--checkpoint-every", type=click.IntRange(1), default=1000, show_default=True,
                     help="Write the checkpoint and the training state (for --resume) every N steps."),
        click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads."),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, or auto."),
        _TRAIN_PRECISION,
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _train_settings(ctx, out, resume: bool, make, **values):
    """A run's TrainConfig: ``make(**values)`` for a new run; on --resume, OUT's saved settings,
    with the options given on this command line checked against them."""
    from vqcodec.learn.loop import TrainConfig, resume_config
    from vqcodec.model import CheckpointError

    try:
        if not resume:
            return make(**values)
        if values.get("minutes") is not None or ctx.params.get("minutes") is not None:
            _fail("--minutes starts a timed run; a resumed run keeps its recorded step count (give --steps to "
                  "stretch it)")
        given = {k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__
                 and ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        return resume_config(out, given)
    except CheckpointError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc).replace(" = ", " ").replace("(drop ", "(drop --").replace("_", "-")
              if "saved settings" in str(exc) else str(exc))


def _side_info_stem(model, checkpoint, overwrite: bool, out=None):
    """The checkpoint whose side information a command writes (prepare, train-receiver,
    train-entropy): refused in the shipped weights folder unless the model is named and
    --overwrite given (``zoo.check_not_shipped``; ``out``: the stem written instead)."""
    from vqcodec.zoo import check_not_shipped, checkpoint_stem

    if overwrite and model is None and checkpoint is None and out is None:
        _fail("--overwrite rewrites a model's files: name it with --model or --checkpoint")
    try:
        stem = checkpoint_stem(model, checkpoint)
        check_not_shipped(stem if out is None else out, overwrite)
    except ValueError as exc:
        _fail(str(exc))
    return stem


def _train_device(device: str) -> str:
    from vqcodec.model import CheckpointError
    from vqcodec.zoo import resolve_device

    try:
        return resolve_device(device)
    except CheckpointError as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="vqcodec", prog_name="vqcodec", message="%(prog)s %(version)s")
def main() -> None:
    """Send images over noisy digital links with a learned vector-quantised codec."""
    import warnings

    from vqcodec.images import ImageNote

    def show(message, category, *args, **kwargs):
        if issubclass(category, ImageNote):  # the library says; the CLI prints one line
            click.echo(f"Note: {message}", err=True)
        else:
            warnings._showwarning_orig(message, category, *args, **kwargs)

    warnings.showwarning = show  # (in-process repeated calls replace it, never chain it)


@main.command()
@click.option("--images", type=click.Path(), default=None,
              help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output stem: writes OUT.safetensors + OUT.json.")
@click.option("--f", "f", type=click.Choice(["4", "8", "16"]), default="4", show_default=True, help="Downsampling factor.")
@click.option("--K", "K", type=click.IntRange(2, 65536), default=256, show_default=True, help="Codebook size.")
@click.option("--d", "d", type=click.IntRange(1, 1024), default=32, show_default=True, help="Code vector dimension.")
@click.option("--channels", default=None, help="Channels per downsampling stage, comma-separated [default by f].")
@click.option("--res-blocks", type=click.IntRange(0, 16), default=1, show_default=True,
              help="Residual blocks at the end of the encoder (at the latent resolution).")
@click.option("--decoder-res-blocks", type=click.IntRange(0, 16), default=None,
              help="Residual blocks at the start of the decoder [default: 2 for f=4, 3 otherwise].")
@click.option("--decoder-channels", type=click.IntRange(1, 1024), default=None,
              help="Decoder width at the latent resolution [default: the last of --channels].")
@click.option("--decoder-head", type=click.Choice(["stages", "subpixel"]), default="stages", show_default=True,
              help="Upsampling: 2x stages, or one sub-pixel convolution.")
@click.option("--stages", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Residual VQ stages, each a codebook of K entries (bits per site = stages x log2 K).")
@click.option("--stage-dropout", is_flag=True,
              help="Train each batch with a random number of stages 1..S, so that every prefix decodes.")
@_training_options
@click.option("--minutes", type=float, default=None,
              help="Train for this long instead of --steps (the step count that fills it is fixed after a "
                   "short timing and recorded; not with --resume).")
@click.option("--init", "init", type=click.Path(), default=None,
              help="Warm start from this checkpoint's weights and architecture (codebooks included); "
                   "--stages keeps its first S stages [default: all of them].")
@click.option("--resume", is_flag=True, help="Continue from OUT's training state (its config, not these options).")
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT (its state is lost).")
@click.pass_context
def train(ctx, images, out, f, K, d, channels, res_blocks, decoder_res_blocks, decoder_channels, decoder_head, stages,
          stage_dropout, steps, batch, crop, lr, seed, checkpoint_every, threads, device, precision, minutes, init,
          resume, overwrite):
    """Train a VQ-VAE on an image folder (with --stages S > 1: residual VQ)."""
    import torch

    from vqcodec.learn.codec import train as run_train
    from vqcodec.learn.codec import training_folder, warm_start_config
    from vqcodec.learn.loop import TrainConfig
    from vqcodec.model import CheckpointError, ModelConfig, checkpoint_paths

    if threads:
        torch.set_num_threads(threads)
    if init is not None and resume:
        _fail("--init starts a new training and --resume continues OUT's: choose one")
    init_model = None
    try:
        images = training_folder(images)
        if init is None:
            cfg = ModelConfig.for_stride(int(f), K=K, d=d, channels=channels, res_blocks=res_blocks,
                                         decoder_res_blocks=decoder_res_blocks, decoder_channels=decoder_channels,
                                         decoder_head=decoder_head, stages=stages, stage_dropout=stage_dropout)
        else:
            given = [name for name in ("f", "K", "d", "channels", "res_blocks", "decoder_res_blocks",
                                       "decoder_channels", "decoder_head")
                     if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
            if given:
                _fail(f"--init takes the architecture of {init}; drop "
                      + ", ".join("--" + g.replace("_", "-") for g in given))
            init_model = _load_codec(None, init).model
            explicit = ctx.get_parameter_source("stages") == click.core.ParameterSource.COMMANDLINE
            cfg = warm_start_config(init_model.cfg, stages if explicit else init_model.cfg.stages, stage_dropout)
        tc = _train_settings(ctx, out, resume, TrainConfig, steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                             checkpoint_every=checkpoint_every, precision=precision)
    except ValueError as exc:
        _fail(str(exc))
    if resume and overwrite:
        _fail("--resume continues OUT and --overwrite replaces it: choose one")
    if not resume:
        _check_output(str(checkpoint_paths(out)[1]), overwrite)
        if init is not None and Path(checkpoint_paths(out)[1]).resolve() == Path(checkpoint_paths(init)[1]).resolve():
            _fail(f"--out {out} would overwrite the --init checkpoint")
    dev = _train_device(device)
    final = _run_with_progress(
        "train", tc.steps,
        lambda progress, command: run_train(cfg, tc, images, out, resume=resume, device=dev, command=command,
                                            progress=progress, init=init_model, init_name=init, minutes=minutes,
                                            overwrite=overwrite),
        lambda m: dict(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}", ppl=f"{m['perplexity']:.0f}",
                       lr=f"{m['lr']:.1e}"),
        errors=(CheckpointError, FileNotFoundError))
    click.echo(f"wrote {out}.safetensors / {out}.json  train PSNR {final.get('train_psnr', float('nan')):.2f} dB, "
               f"perplexity {final.get('train_perplexity', float('nan')):.0f}")



@main.command("train-jscc")
@click.option("--images", type=click.Path(), default=None,
              help="Training image folder [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output stem: writes OUT.safetensors + OUT.json.")
@click.option("--cbr", default="1/12", show_default=True,
              help="Bandwidth ratio, complex channel uses / (3 x pixels): c = 96 cbr symbol channels (an even number).")
@click.option("--width", type=click.IntRange(4, 512), default=32, show_default=True, help="Inner channels.")
@click.option("--snr-db", "snr_range", default="0:15", show_default=True,
              help="Training Es/N0 range LOW:HIGH in dB (uniform per crop).")
@click.option("--resume", is_flag=True, help="Continue from OUT's training state.")
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT.")
@_training_options
@click.option("--minutes", type=float, default=None,
              help="Train for this long instead of --steps (the step count that fills it is fixed after a "
                   "short timing and recorded; not with --resume).")
@click.pass_context
def train_jscc_cmd(ctx, images, out, cbr, width, snr_range, resume, overwrite, steps, batch, crop, lr, seed,
                   checkpoint_every, threads, device, precision, minutes):
    """Train the Deep JSCC analog reference (Bourtsoulatze et al. 2019) over AWGN."""
    from fractions import Fraction

    import torch

    from vqcodec.jscc import JsccConfig
    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.jscc import train_jscc
    from vqcodec.learn.loop import TrainConfig
    from vqcodec.model import CheckpointError, checkpoint_paths

    if threads:
        torch.set_num_threads(threads)
    try:
        images = training_folder(images)
        c = Fraction(cbr) * 96
        if c.denominator != 1:
            raise ValueError(f"--cbr {cbr} needs c = 96 cbr = {float(c):g} symbol channels, not a whole number")
        lo, hi = (float(v) for v in snr_range.split(":"))
        cfg = JsccConfig(c=int(c), width=width)
        tc = _train_settings(ctx, out, resume, TrainConfig, steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                             checkpoint_every=checkpoint_every, precision=precision)
    except (ValueError, ZeroDivisionError) as exc:
        _fail(f"{exc}" if str(exc) else f"bad --cbr or --snr-db: {cbr!r}, {snr_range!r}")
    if resume and overwrite:
        _fail("--resume continues OUT and --overwrite replaces it: choose one")
    if not resume:
        _check_output(str(checkpoint_paths(out)[1]), overwrite)
    dev = _train_device(device)
    final = _run_with_progress(
        "train-jscc", tc.steps,
        lambda progress, command: train_jscc(cfg, tc, images, out, snr_range=(lo, hi), resume=resume,
                                             command=command, progress=progress, device=dev, minutes=minutes,
                                             overwrite=overwrite),
        lambda m: dict(psnr=f"{m['psnr']:.2f}", lr=f"{m['lr']:.1e}"),
        errors=(CheckpointError, FileNotFoundError))
    click.echo(f"wrote {out}.safetensors / {out}.json  train PSNR {final.get('train_psnr', float('nan')):.2f} dB "
               f"(at Es/N0 {lo:g}..{hi:g} dB)")


@main.command("train-decoder")
@click.option("--model", "-m", default=None, help="Base model whose encoder and codebook stay frozen [default: f4-k256].")
@click.option("--checkpoint", type=click.Path(), default=None, help="A base checkpoint instead of --model.")
@click.option("--images", type=click.Path(), default=None,
              help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output stem: writes OUT.safetensors + OUT.json.")
@click.option("--decoder-channels", type=click.IntRange(1, 1024), default=None,
              help="Decoder width at the latent resolution [default: the base model's].")
@click.option("--decoder-res-blocks", type=click.IntRange(0, 16), default=None,
              help="Residual blocks at the latent resolution [default: the base model's].")
@click.option("--decoder-head", type=click.Choice(["stages", "subpixel"]), default=None,
              help="Upsampling: 2x stages, or one sub-pixel convolution [default: the base model's].")
@click.option("--minutes", type=float, default=None, help="Train for this long instead of --steps (the step count "
              "that fills it is fixed after a timing of steps 300-480 and recorded).")
@_training_options
@click.option("--grow", is_flag=True, help="Start from the base model's decoder, grown to the new width and depth "
                                           "so that it first decodes the same image (sub-pixel heads only).")
@click.option("--resume", is_flag=True, help="Continue OUT's run (its saved settings; a larger --steps stretches "
                                             "the schedule's tail).")
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT (its state is lost).")
@click.pass_context
def train_decoder_cmd(ctx, model, checkpoint, images, out, decoder_channels, decoder_res_blocks, decoder_head, steps,
                      minutes, batch, crop, lr, seed, checkpoint_every, threads, device, precision, grow, resume,
                      overwrite):
    """Train a new decoder for a model whose encoder and codebook stay frozen.

    The transmitted indices do not change, so the base model's index assignment, prior and
    receiver tuning carry over; use it to make a faster or better decoder."""
    import torch

    from vqcodec.learn.codec import decoder_config, decoder_train_config, train_decoder, training_folder
    from vqcodec.model import CheckpointError

    if threads:
        torch.set_num_threads(threads)
    if resume and overwrite:
        _fail("--resume continues OUT and --overwrite replaces it: choose one")
    dev = _train_device(device)
    codec = _load_codec(model, checkpoint, "cpu")
    try:
        images = training_folder(images)
    except ValueError as exc:
        _fail(str(exc))
    if not resume:
        _check_output(str(out) + ".json", overwrite)
    try:
        cfg = decoder_config(codec.model.cfg, decoder_channels, decoder_res_blocks, decoder_head)
        tc = _train_settings(ctx, out, resume, lambda minutes, **kw: decoder_train_config(minutes=minutes, **kw),
                             steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                             checkpoint_every=checkpoint_every, precision=precision, minutes=minutes)
    except ValueError as exc:
        _fail(str(exc))
    final = _run_with_progress(
        "train-decoder", tc.steps,
        lambda progress, command: train_decoder(codec, cfg, tc, images, out, device=dev, minutes=minutes,
                                                resume=resume, grow=grow, command=command, progress=progress,
                                                overwrite=overwrite),
        lambda m: dict(loss=f"{m['loss']:.5f}", psnr=f"{m['psnr']:.2f}", lr=f"{m['lr']:.1e}"),
        errors=(CheckpointError,))
    click.echo(f"wrote {out}.safetensors / {out}.json  ({final.get('step', 0)} steps, "
               f"train PSNR {final.get('psnr', float('nan')):.2f} dB)")


def _model_options(fn):
    fn = click.option("--device", default="auto", show_default=True,
                      help="cpu, cuda or auto (cuda when available) for encoding and decoding.")(fn)
    fn = click.option("--checkpoint", type=click.Path(), default=None,
                      help="Use your own checkpoint (stem, .json or .safetensors) instead of --model.")(fn)
    fn = click.option("--model", "-m", default=None, help="Shipped model name (see `vqcodec models`) [default: f4-k256].")(fn)
    return fn


def _precision_option(fn):
    return click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                        show_default=True,
                        help="Arithmetic of the decoder, the learned receiver and Deep JSCC: auto = bf16 on a CPU "
                             "with bf16 instructions (AVX512-BF16 / AMX), else fp32; fp16 needs CUDA. The "
                             "encoder and the indices are always fp32.")(fn)


def _echo_precision(codec, requested) -> None:
    """One line: the precision in use, and why when ``auto`` chose it."""
    if requested == "auto":
        why = ("auto: this CPU has bf16 instructions; --precision fp32 for fp32" if codec.precision == "bf16"
               else "auto: " + ("fp32 on CUDA" if codec.model.codebook.device.type == "cuda"
                                else "this CPU has no bf16 instructions"))
    else:
        why = "--precision"
    click.echo(f"precision {codec.precision} ({why})")


def _search_option(fn):
    return click.option(
        "--search", type=click.IntRange(1, 64), default=1, show_default=True,
        help="Encoder-side index search: at each site try the N nearest codewords and keep the one whose decoded "
             "pixels come closest (same rate, same decoder; encoding takes about 10-40 s per Kodak image on one "
             "core for N = 4); 1: nearest codeword.")(fn)


def _cluster_options(fn):
    fn = click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help="Run the trials on this running Dask scheduler.")(fn)
    fn = click.option("--workers", type=click.IntRange(1, 1024), default=None,
                      help="Run the trials on a local Dask cluster of this many processes [default: serial].")(fn)
    return fn


def _executor(workers, scheduler):
    from vqcodec.cluster import ClusterError, executor_for

    try:
        return executor_for(workers, scheduler)
    except ClusterError as exc:
        _fail(str(exc))


def _channel_options(fn):
    opts = [
        click.option("--channel", "-c", "kind", required=True, help="Channel model (see `vqcodec channels`)."),
        click.option("--packet-bits", type=int, default=None,
                     help="packet-erasure: bits per packet [default: one index]."),
        click.option("--burst-length", type=float, default=None, help="burst: mean burst length in bits [default: 10]."),
        click.option("--block-bits", type=int, default=None,
                     help="fading: coherence length in bits, one fade per block [default: the multiple of the bits "
                          "per symbol nearest 64: 64, or 66 for qam64]."),
        click.option("--hard", "hard", is_flag=True, help="awgn/fading: give the receiver hard decisions only."),
        click.option("--modulation", type=click.Choice(["bpsk", "qpsk", "qam16", "qam64", "qam256"]), default=None,
                     help="awgn/fading: Gray-labelled constellation [default: bpsk]; --snr-db is Es/N0 per "
                          "complex channel use."),
        click.option("--demapping", type=click.Choice(["app", "maxlog"]), default=None,
                     help="awgn/fading: exact (app) or max-log soft demapping [default: app]."),
        click.option("--no-scramble", is_flag=True,
                     help="awgn/fading: modulate the payload's bits as they are, without the 3GPP "
                          "TS 38.211 Gold-sequence scrambling real links use (on by default)."),
        click.option("--code", default=None, metavar="none|ldpc-A/B|cc-A/B",
                     help="Channel code protecting the index payload: 5G NR LDPC, e.g. ldpc-1/2 (rate A/B in "
                          "[0.1, 0.95]), or the K=7 convolutional codes cc-1/2, cc-2/3, cc-3/4, cc-1/3, cc-1/4 "
                          "(BCJR); the soft receivers get the decoder's a-posteriori LLRs. Unequal protection: "
                          "codes joined by '+', one per equal part of the payload in order (a residual model's "
                          "stages: ldpc-2/5+ldpc-2/3 has ldpc-1/2's channel uses) [default: none]."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _stop_options(fn):
    fn = click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Base seed of every channel realisation.")(fn)
    fn = click.option("--ci", "ci_target", type=float, default=0.05, show_default=True,
                      help="Stop a point when the 95% CI half-width of mean PSNR is at most this (dB).")(fn)
    fn = click.option("--min-trials", type=click.IntRange(1), default=3, show_default=True,
                      help="Trials every point runs before the --ci rule may stop it (at most --trials).")(fn)
    fn = click.option("--trials", type=click.IntRange(1), default=10, show_default=True,
                      help="Trial budget per point (a trial = one channel realisation per image).")(fn)
    return fn


def _channel(kind, codec, p=None, snr_db=None, **options):
    """A channel from the command line's options (one-line errors); the value is ``p``/``snr_db``."""
    from channels.options import channel_spec, param_value

    try:
        spec = channel_spec(kind, index_bits=codec.bits_per_index,
                            **{k: v for k, v in options.items() if k != "code"})
        return spec, spec.make(param_value(spec, p, snr_db))
    except ValueError as exc:
        _fail(str(exc))


@main.command()
def models():
    """List the shipped models."""
    from vqcodec.model import CheckpointError
    from vqcodec.zoo import DEFAULT_MODEL, REGISTRY, meta

    click.echo(f"{'name':<16} {'f':>3} {'K':>6} {'bpp':>7} {'Kodak PSNR':>11} {'receivers':<9} {'entropy':<7}  "
               "description")
    for name in sorted(REGISTRY):
        try:
            m = meta(name)
        except CheckpointError:
            click.echo(f"{name:<16} {'':>3} {'':>6} {'':>7} {'':>11} {'':<9} {'':<7}  (weights not installed)")
            continue
        cfg = m["config"]
        stages = int(cfg.get("stages", 1))
        bpp = stages * math.ceil(math.log2(cfg["K"])) / cfg["f"] ** 2
        K = f"{stages}x{cfg['K']}" if stages > 1 else cfg["K"]
        kodak = m.get("kodak", {}).get("psnr")
        star = " (default)" if name == DEFAULT_MODEL else ""
        recv = "+".join(k for k, key in (("S", "prior"), ("L", "context")) if m.get(key)) or "-"
        ent = "trained" if m.get("entropy_model") else ("prior" if m.get("prior") else "-")
        click.echo(f"{name:<16} {cfg['f']:>3} {K:>6} {bpp:>7.4f} "
                   f"{(f'{kodak:.2f} dB' if kodak else 'n/a'):>11} {recv:<9} {ent:<7}  "
                   f"{REGISTRY[name].description}{star}")
    click.echo("K: codebook size (SxK: S residual stages of K); receivers: S = spatial (index prior), "
               "L = learned (context receiver); naive and map always work")
    click.echo("entropy (encode/eval --entropy): the context model of its entropy-coded files, trained "
               "(vqcodec train-entropy) or from the index prior")


@main.command(name="channels")
def channels_cmd():
    """List the channel models, their parameter and their options (as `simulate` and `sweep` take them)."""
    import re

    import channels
    from channels.options import KIND_OPTIONS

    def flag(name):  # the command line's spelling of an option (scrambling is on unless turned off)
        return "--no-scramble" if name == "scramble" else "--" + name.replace("_", "-")

    for name in sorted(channels.REGISTRY):
        cls = channels.REGISTRY[name]
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        known = (*KIND_OPTIONS.get(name, ()), cls.param)
        doc = re.sub(r"``(\w+)``", lambda m, known=known: flag(m.group(1)) if m.group(1) in known else m.group(1), doc)
        opts = ", ".join(flag(o) for o in KIND_OPTIONS.get(name, ()))
        click.echo(f"{name:<15} {flag(cls.param):<9} {doc}" + (f" Options: {opts}." if opts else ""))


@main.command()
@click.argument("image", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Index file to write (.vqc).")
@_model_options
@_precision_option
@_search_option
@click.option("--entropy", is_flag=True,
              help="Entropy-code the indices (ANS with the model's causal context model): a smaller file, "
                   "for storage or a clean link; without it every index keeps its fixed-length bits.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
def encode(image, output, model, checkpoint, device, precision, search, entropy, overwrite):
    """Encode IMAGE into a .vqc index file."""
    from vqcodec.files import replace_atomically
    from vqcodec.images import ImageError, list_images
    from vqcodec.simulate import index_file

    _check_output(output, overwrite)
    try:
        paths = list_images(image)
    except ImageError as exc:
        _fail(str(exc))
    if len(paths) != 1:
        _fail(f"{image}: holds {len(paths)} images; encode takes one image file")
    codec = _load_codec(model, checkpoint, device, precision, search)
    encs, _ = _load_images(codec, image, with_ms_ssim=False)
    enc = encs[0]
    H, W = enc.image.shape[:2]
    try:
        data = index_file(codec, enc, entropy=entropy)
    except ValueError as exc:
        _fail(str(exc))
    try:
        replace_atomically(output, lambda tmp: tmp.write_bytes(data))
    except OSError as exc:
        _fail(f"{output}: cannot write ({exc.strerror or exc.__class__.__name__})")
    n = enc.indices.size * codec.bits_per_index
    size = (f"{len(data)} bytes entropy-coded ({8 * len(data) / (H * W):.4f} bpp; fixed-length {n / (H * W):.4f})"
            if entropy else f"{n} bits ({n / (H * W):.4f} bpp)")
    grid = f"{enc.indices.shape[-1]}x{enc.indices.shape[-2]}" + (f"x{enc.indices.shape[0]} stages"
                                                                  if enc.indices.ndim == 3 else "")
    click.echo(f"{image}: {W}x{H} -> {grid} indices, {size}, "
               f"clean PSNR {enc.psnr_clean:.2f} dB (decoded in {codec.precision}) -> {output}")


@main.command()
@click.argument("index_file", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Image to write (.png).")
@click.option("--checkpoint", type=click.Path(), default=None, help="Checkpoint to decode with (if not a shipped model).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto (cuda when available).")
@_precision_option
@click.option("--overwrite", is_flag=True, help="Replace an existing --output image.")
def decode(index_file, output, checkpoint, device, precision, overwrite):
    """Decode a .vqc index file into an image."""
    from vqcodec.bits import IndexFileError, read_index_file
    from vqcodec.images import ImageError, check_image_output, save_image
    from vqcodec.simulate import decode_index_file

    _check_output(output, overwrite)
    try:
        check_image_output(output)
        idx, header = read_index_file(index_file)
    except (IndexFileError, ImageError) as exc:
        _fail(str(exc))
    codec = _load_codec(None if checkpoint else header["model"], checkpoint, device, precision)
    try:
        img = decode_index_file(codec, idx, header)
    except ValueError as exc:
        _fail(f"{index_file}: {exc}")
    try:
        save_image(output, img)
    except ImageError as exc:
        _fail(str(exc))
    click.echo(f"{index_file} -> {output} ({header['width']}x{header['height']}, decoded in {codec.precision})")


@main.command(name="eval")
@_model_options
@_precision_option
@_search_option
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--entropy", is_flag=True,
              help="Rates of the entropy-coded .vqc files (real sizes, header included) instead of the "
                   "fixed-length stream.")
@click.option("--progressive", is_flag=True,
              help="A residual model (--stages): also the PSNR of decoding from the first s stages alone.")
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write a results file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json results file.")
def eval_cmd(model, checkpoint, device, precision, search, images, entropy, progressive, json_out, overwrite):
    """Clean-channel evaluation: PSNR, MS-SSIM and bpp per image."""
    from vqcodec.results import new_results
    from vqcodec.simulate import clean_point, progressive_points

    _check_output(json_out, overwrite)
    codec = _load_codec(model, checkpoint, device, precision, search)
    _echo_precision(codec, precision)
    if progressive and getattr(codec.model, "stages", 1) == 1:
        _fail(f"model {codec.name} has one stage; --progressive needs a residual model (trained with --stages)")
    encs, img_desc = _load_images(codec, images)
    try:
        point = clean_point(codec, encs, entropy=entropy)
        prog = progressive_points(codec, encs) if progressive else None
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"{'image':<24} {'size':>10} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8}")
    for e, pi in zip(encs, point["per_image"]):
        click.echo(f"{e.name:<24} {e.image.shape[1]:>5}x{e.image.shape[0]:<4} {pi['bpp']:>7.4f} "
                   f"{pi['psnr']:>8.2f} {pi['ms_ssim']:>8.4f}")
    click.echo(f"{'mean':<24} {'':>10} {point['bpp']:>7.4f} {point['psnr']['mean']:>8.2f} "
               f"{point['ms_ssim']['mean']:>8.4f}   ({codec.name}, {len(encs)} images)")
    usage = point.get("codebook_usage_stages", [point["codebook_usage"]])
    click.echo("codebook entries used: " + ", ".join(f"{100 * u:.1f}%" for u in usage)
               + (" (per stage)" if len(usage) > 1 else ""))
    if prog:
        click.echo("progressive: decoded from the first s stages alone")
        click.echo(f"{'stages':>8} {'bpp':>8} {'PSNR dB':>8}")
        for row in prog:
            click.echo(f"{row['stages']:>8} {row['bpp']:>8.4f} {row['psnr']:>8.2f}")
    if json_out:
        res = new_results(name=f"eval-{codec.name}", description=f"clean-channel evaluation of {codec.name}",
                          seed=0, model=codec.describe(), images=img_desc, channel={"kind": "none", "param": "p"},
                          receiver="none", points=[point], extra={"progressive": prog} if prog else None)
        _write_results(json_out, res)
        click.echo(f"wrote {json_out}")


@main.command()
@_channel_options
@click.option("--p", "p", type=float, default=None, help="Flip (bsc) / erasure / loss / average error probability.")
@click.option("--snr-db", type=float, default=None, help="Es/N0 in dB (awgn, fading).")
@_model_options
@_precision_option
@_search_option
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--receiver", "-r", "receivers", default=None,
              help="Receiver(s), comma-separated (see `vqcodec receivers`) "
                   "[default: naive plus the model's best soft receiver: learned-mmse, else spatial-mmse].")
@_stop_options
@_cluster_options
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write a results file.")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="Write the originals and the first trial's reconstructions here.")
@click.option("--no-ms-ssim", is_flag=True, help="Skip MS-SSIM (faster).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json results file.")
def simulate(kind, packet_bits, burst_length, block_bits, hard, modulation, demapping, no_scramble, code, p, snr_db, model, checkpoint, device, precision, search, images,
             receivers, trials, min_trials, ci_target, seed, json_out, save_dir, no_ms_ssim, overwrite, workers,
             scheduler):
    """Send images through one channel point and measure what arrives."""
    options = dict(packet_bits=packet_bits, burst_length=burst_length, block_bits=block_bits, hard=hard,
                   modulation=modulation, demapping=demapping, scramble=not no_scramble, code=code)
    _run_sweep("simulate", kind, options, p, snr_db, model, checkpoint, images, receivers, trials, min_trials, ci_target, seed, json_out, save_dir, no_ms_ssim, overwrite,
               device=device, precision=precision, workers=workers, scheduler=scheduler, search=search)


@main.command()
@_channel_options
@click.option("--p", "p", default=None, help="Grid: '1e-4,1e-3,1e-2' or a log range 'START:STOP:N'.")
@click.option("--snr-db", default=None, help="Grid of Es/N0 values in dB: '0,2,4' or 'START:STOP:N' (linear).")
@_model_options
@_precision_option
@_search_option
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--receiver", "-r", "receivers", default=None,
              help="Receivers, comma-separated [default: naive plus the model's best soft receiver: learned-mmse, "
                   "else spatial-mmse].")
@_stop_options
@_cluster_options
@click.option("--json", "json_out", type=click.Path(), required=True, help="Results file to write.")
@click.option("--baselines", default=None,
              help="Also send classical codecs + CRC + channel code: any of jpeg, webp, heic, avif, jpeg2000, jpegxl "
                   "(comma-separated).")
@click.option("--rates", default="uncoded,3/4,2/3,1/2,1/3,1/4", show_default=True,
              help="Code rates the baselines may use: uncoded, convolutional 3/4 2/3 1/2 1/3 1/4, "
                   "5G LDPC ldpc-A/B (e.g. ldpc-1/2).")
@click.option("--budget-bpp", type=float, default=None,
              help="Channel bits per pixel of the baselines [default: the VQ model's bpp].")
@click.option("--cbr", type=_RATIO, default=None,
              help="awgn/fading: the baselines' budget as a bandwidth ratio, complex channel uses / (3 x pixels).")
@click.option("--no-ms-ssim", is_flag=True, help="Skip MS-SSIM (faster).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json results file.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted sweep: keep the points already in --json, run the rest.")
def sweep(kind, packet_bits, burst_length, block_bits, hard, modulation, demapping, no_scramble, code, p, snr_db, model, checkpoint, device, precision, search, images,
          receivers, trials, min_trials, ci_target, seed, json_out, baselines, rates, budget_bpp, cbr, no_ms_ssim,
          overwrite, resume, workers, scheduler):
    """Sweep a grid of channel parameters; one curve per receiver (and per baseline)."""
    options = dict(packet_bits=packet_bits, burst_length=burst_length, block_bits=block_bits, hard=hard,
                   modulation=modulation, demapping=demapping, scramble=not no_scramble, code=code)
    _run_sweep("sweep", kind, options, p, snr_db, model, checkpoint, images, receivers, trials, min_trials, ci_target, seed, json_out, None, no_ms_ssim, overwrite,
               baselines=baselines, rates=rates, budget_bpp=budget_bpp, cbr=cbr, device=device, resume=resume,
               precision=precision, workers=workers, scheduler=scheduler, search=search)


def _run_sweep(command, kind, options, p, snr_db, model, checkpoint, images,
               receivers, trials, min_trials, ci_target, seed, json_out, save_dir, no_ms_ssim, overwrite,
               baselines=None, rates=None, budget_bpp=None, cbr=None, device="cpu", resume=False,
               precision="auto", workers=None, scheduler=None, search=None):
    from vqcodec.files import OutputError, exclusive

    try:
        with exclusive(json_out):
            _run_sweep_locked(command, kind, options, p, snr_db, model, checkpoint, images, receivers, trials,
                              min_trials, ci_target, seed, json_out, save_dir, no_ms_ssim, overwrite, baselines,
                              rates, budget_bpp, cbr, device, resume, precision, workers, scheduler, search)
    except OutputError as exc:
        _fail(str(exc))


def _run_sweep_locked(command, kind, options, p, snr_db, model, checkpoint, images, receivers, trials, min_trials,
                      ci_target, seed, json_out, save_dir, no_ms_ssim, overwrite, baselines, rates, budget_bpp,
                      cbr, device, resume, precision, workers, scheduler, search=None):
    from tqdm import tqdm

    from channels.options import channel_spec, param_value, parse_grid
    from vqcodec.api import experiment
    from vqcodec.cluster import ClusterError
    from vqcodec.results import ResultsError, read_results

    t_start = time.perf_counter()
    previous = []
    if resume and json_out and Path(json_out).exists():
        try:
            previous = read_results(json_out)
        except ResultsError as exc:
            _fail(f"cannot resume: {exc}")
    _check_output(json_out, overwrite or resume)
    codec = _load_codec(model, checkpoint, device, precision, search)
    try:
        spec = channel_spec(kind, index_bits=codec.bits_per_index,
                            **{k: v for k, v in options.items() if k != "code"})
        value = param_value(spec, p, snr_db)
        values = [value]
        if command == "sweep":
            try:
                values = parse_grid(value, spec.param)
            except ValueError as exc:
                raise click.BadParameter(str(exc)) from None
        exp = experiment(codec, kind, values, receivers=receivers, trials=trials, min_trials=min_trials,
                         ci=ci_target, seed=seed, with_ms_ssim=not no_ms_ssim, name=command, baselines=baselines,
                         rates=rates, budget_bpp=budget_bpp, cbr=cbr, save_dir=save_dir,
                         images_folder=images, workers=workers,
                         scheduler=scheduler, **options)
    except (ValueError, ClusterError) as exc:
        _fail(str(exc))
    encs, img_desc = _load_images(codec, images, with_ms_ssim=not no_ms_ssim)
    executor = _executor(workers, scheduler)
    grid, param = exp.grid, exp.param
    bar = tqdm(total=len(grid) * trials, desc=command, unit="trial", leave=False, dynamic_ncols=True)

    def on_trial(i, t):
        bar.update(1)
        bar.set_postfix_str(f"{param}={grid[i]:g}")

    try:
        results = exp.run(encs, img_desc, previous=previous, executor=executor, on_trial=on_trial,
                          on_point=(lambda res: _write_results(json_out, res)) if (json_out and command == "sweep")
                          else None)
    except (ValueError, KeyboardInterrupt) as exc:  # a --resume of another run, or Ctrl-C
        bar.close()
        if hasattr(executor, "close"):
            executor.close()
        if isinstance(exc, ValueError):
            _fail(str(exc))
        _fail("interrupted" + (f"; the trials so far are in {json_out} (continue with --resume)"
                               if json_out and command == "sweep" and Path(json_out).exists() else ""))
    bar.close()
    _print_table(results, param)
    if exp.baselines:
        bbar = tqdm(total=len(grid) * len(exp.baselines), desc="baselines", unit="point", leave=False)

        def bprog(done, total, message):
            bbar.total = total
            bbar.n = done
            bbar.set_postfix_str(message[:40])
            bbar.refresh()

        try:
            base = exp.run_baselines(encs, img_desc, progress=bprog, executor=executor)
        finally:
            bbar.close()
            if hasattr(executor, "close"):
                executor.close()
        _print_baselines(base, param, exp.budget)
        results += base
    elif hasattr(executor, "close"):
        executor.close()
    _echo_precision(codec, precision)  # after the work: a run that fails says one line, its error
    click.echo("side information (image size, model, index assignment) is assumed to arrive error-free; "
               "only the index payload crosses the channel")
    if json_out:
        _write_results(json_out, results[0] if len(results) == 1 else results)
        click.echo(f"wrote {json_out}")
    click.echo(f"time {time.perf_counter() - t_start:.1f} s")


def _print_table(results, param):
    head = f"{'receiver':<14} {param:>9} {'trials':>6} {'stop':>10} {'clean dB':>9} {'PSNR dB':>14} {'loss dB':>8} " \
           f"{'BER':>9} {'erased':>9} {'idx err':>9}"
    click.echo(head)
    for res in results:
        for pt in res["points"]:
            ci = pt["psnr"]["ci95"]
            ci_s = "±n/a" if ci is None else f"±{ci:.3f}" if math.isfinite(ci) else "±inf"
            click.echo(f"{res['receiver']:<14} {pt['param']:>9.3g} {pt['trials']:>6} {pt['stop']:>10} "
                       f"{pt['psnr_clean']:>9.2f} {pt['psnr']['mean']:>7.2f} {ci_s:>6} "
                       f"{pt['psnr']['mean'] - pt['psnr_clean']:>8.2f} {pt['ber']:>9.2e} "
                       f"{pt.get('erased_bits', 0) / max(pt['bits'], 1):>9.2e} {pt['index_error_rate']:>9.2e}")


@main.command()
@click.option("--channel", "-c", "kind", type=click.Choice(["awgn", "fading"]), default="awgn", show_default=True,
              help="Channel of complex symbols (the budget counts channel uses).")
@click.option("--snr-db", required=True, help="Grid of Es/N0 values in dB: '1,4,7,10,13' or 'START:STOP:N'.")
@click.option("--cbr", default="1/12", show_default=True,
              help="Bandwidth ratio to fill: complex channel uses / (3 x pixels), e.g. 1/12.")
@click.option("--models", default="all", show_default=True,
              help="Shipped models to try, comma-separated, or all: every model `vqcodec models` lists (f4-k256 "
                   "and its fine-tuned variants, f8-k256, f8-k1024, f8-s2-k256).")
@click.option("--min-rate", type=click.FloatRange(0.1, 0.95), default=0.1, show_default=True,
              help="Leave out LDPC codes below this rate.")
@click.option("--block-bits", type=int, default=None,
              help="fading: coherence length in bits, one fade per block [default: the multiple of the bits per "
                   "symbol nearest 64: 64, or 66 for qam64].")
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@_precision_option
@_stop_options
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Run the trials on a local Dask cluster of this many processes [default: serial].")
@click.option("--json", "json_out", type=click.Path(), required=True, help="Results file to write.")
@click.option("--no-ms-ssim", is_flag=True, help="Skip MS-SSIM (faster).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json results file.")
def best(kind, snr_db, cbr, models, min_rate, block_bits, images, precision, trials, min_trials, ci_target, seed,
         workers, json_out, no_ms_ssim, overwrite):
    """Best configuration at equal channel uses: every (model, modulation, 5G LDPC rate) that fills
    --cbr, swept over --snr-db with the model's best soft receiver, and their envelope."""
    from tqdm import tqdm

    from vqcodec.api import best_sweep
    from vqcodec.images import ImageError
    from vqcodec.model import CheckpointError

    t_start = time.perf_counter()
    _check_output(json_out, overwrite)
    names = "all" if models.strip() == "all" else [m.strip() for m in models.split(",") if m.strip()]
    bar = None

    def progress(i, n, label):
        nonlocal bar
        bar = bar or tqdm(total=n, desc="configurations", unit="config", leave=False, dynamic_ncols=True)
        bar.n = i
        bar.set_postfix_str(label[:40])
        bar.refresh()

    options = {} if block_bits is None else {"block_bits": block_bits}
    try:
        results = best_sweep(kind, snr_db, models=names, cbr=cbr, images=images, trials=trials,
                             min_trials=min_trials, ci=ci_target, seed=seed, with_ms_ssim=not no_ms_ssim,
                             min_rate=min_rate, workers=workers, precision=precision, on_configuration=progress,
                             **options)
    except (ValueError, ImageError, CheckpointError) as exc:
        _fail(str(exc))
    finally:
        if bar is not None:
            bar.close()
    grid = [pt["param"] for pt in results[0]["points"]]
    click.echo(f"precision {results[0]['model']['precision']} ({'auto' if precision == 'auto' else '--precision'})")
    click.echo(f"mean PSNR (dB) over {results[0]['images']['count']} images, {kind}, cbr {cbr}, "
               "Es/N0 per complex channel use")
    width = max(len(r["label"]) for r in results) + 2
    click.echo(f"{'configuration':<{width}}" + "".join(f"{g:>9g}" for g in grid))
    for res in results:
        click.echo(f"{res['label']:<{width}}" + "".join(f"{pt['psnr']['mean']:>9.2f}" for pt in res["points"]))
    click.echo("chosen by the oracle (model, modulation, code, receiver):")
    for g, pt in zip(grid, results[-1]["points"]):
        click.echo(f"  {g:>7g} dB  {pt['configuration']}")
    _write_results(json_out, results)
    click.echo(f"wrote {json_out}")
    click.echo(f"time {time.perf_counter() - t_start:.1f} s")


@main.command()
@_model_options
@click.option("--channel", "-c", "kind", required=True,
              help="Channel to fine-tune for, or 'mix': a random channel per crop from the receiver-training "
                   "mix (BSC, AWGN, packet and bit erasures; `vqcodec train-receiver`).")
@click.option("--p", "p", type=float, default=None, help="Channel probability (bsc, erasure, ...).")
@click.option("--snr-db", type=float, default=None, help="Es/N0 in dB (awgn, fading).")
@click.option("--receiver", "-r", default="spatial-mmse", show_default=True,
              help="The receiver whose output the decoder learns from.")
@click.option("--images", type=click.Path(), default=None,
              help="Training images [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output checkpoint stem (a new model).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output checkpoint.")
@click.option("--steps", type=click.IntRange(1), default=3000, show_default=True, help="Training steps.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Decoder learning rate.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Crops per step.")
@click.option("--crop", type=click.IntRange(8), default=64, show_default=True, help="Crop size in pixels.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the initialisation, the crops and the channel noise.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@_TRAIN_PRECISION
def finetune(model, checkpoint, device, kind, p, snr_db, receiver, images, out, overwrite, steps, lr, batch, crop,
             seed, threads, precision):
    """Fine-tune a model's decoder (codebook frozen) on what a receiver hands it after a channel."""
    import torch

    from vqcodec.correct import REGISTRY as RECEIVERS
    from vqcodec.correct import check_receivers
    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.through_channel import FinetuneConfig, finetune_decoder

    if threads:
        torch.set_num_threads(threads)
    if receiver not in RECEIVERS:
        _fail(f"unknown receiver {receiver!r} (known: {', '.join(sorted(RECEIVERS))})")
    codec = _load_codec(model, checkpoint, device)
    try:
        check_receivers([receiver], codec)
    except ValueError as exc:
        _fail(str(exc))
    if kind == "mix":
        if p is not None or snr_db is not None:
            _fail("--channel mix draws its own parameters; drop --p / --snr-db")
        ch = "mix"
    else:
        spec, ch = _channel(kind, codec, p=p, snr_db=snr_db)
        param = spec.param
    try:
        images = training_folder(images)
    except ValueError as exc:
        _fail(str(exc))
    _check_output(str(out) + ".json", overwrite)
    try:
        fc = FinetuneConfig(steps=steps, lr=lr, seed=seed, batch=batch, crop=crop, precision=precision)
    except ValueError as exc:
        _fail(str(exc))
    final = _run_with_progress(
        "finetune", steps,
        lambda progress, command: finetune_decoder(codec, ch, receiver, images, fc, out, command=command,
                                                   progress=progress, overwrite=overwrite),
        lambda m: dict(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}"))
    what = "the channel mix" if kind == "mix" else f"{kind} {param}={ch.param_value:g}"
    click.echo(f"wrote {out}.safetensors / {out}.json (decoder fine-tuned for {what} through {receiver}; "
               f"train PSNR {final.get('psnr', float('nan')):.2f} dB)")


@main.command("train-codebook")
@_model_options
@click.option("--images", type=click.Path(), default=None,
              help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output checkpoint stem (a new model).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output checkpoint.")
@click.option("--steps", type=click.IntRange(1), default=4000, show_default=True, help="Training steps.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Crops per step.")
@click.option("--crop", type=click.IntRange(8), default=96, show_default=True,
              help="Crop size in pixels (a multiple of the model's stride).")
@click.option("--lr", type=float, default=3e-4, show_default=True, help="Decoder learning rate.")
@click.option("--codebook-lr", type=float, default=1e-3, show_default=True, help="Codebook learning rate.")
@click.option("--p-min", type=float, default=0.003, show_default=True,
              help="BSC crossover probability per crop: log-uniform in [p-min, p-max].")
@click.option("--p-max", type=float, default=0.1, show_default=True, help="Upper end of that range.")
@click.option("--clean-fraction", type=float, default=0.25, show_default=True,
              help="Share of crops decoded from clean indices.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the initialisation, the crops and the channel noise.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@_TRAIN_PRECISION
def train_codebook_cmd(model, checkpoint, device, images, out, overwrite, steps, batch, crop, lr, codebook_lr, p_min,
                       p_max, clean_fraction, seed, threads, precision):
    """Channel-optimised codebook: train the codebook and decoder through a noisy channel.

    The encoder and the index assignment stay fixed; the decoder sees the channel-only MMSE
    code vector of each received label, which is differentiable in the codebook, so codewords
    one bit flip apart move closer. Bit errors then cost less, at some clean-channel PSNR.
    The transmitter changes: prepare the new checkpoint with
    `vqcodec prepare --checkpoint OUT --keep-assignment` and, for the learned receivers,
    `vqcodec train-receiver --checkpoint OUT`.
    """
    import torch

    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.through_channel import CodebookConfig, check_codebook_output, train_codebook
    from vqcodec.zoo import checkpoint_stem

    if threads:
        torch.set_num_threads(threads)
    codec = _load_codec(model, checkpoint, device)
    try:
        images = training_folder(images)
        cc = CodebookConfig(steps=steps, batch=batch, crop=crop, lr=lr, codebook_lr=codebook_lr, p_min=p_min,
                            p_max=p_max, clean_fraction=clean_fraction, seed=seed, precision=precision)
        check_codebook_output(checkpoint_stem(model, checkpoint), out, overwrite)
    except ValueError as exc:
        _fail(str(exc))
    final = _run_with_progress(
        "train-codebook", steps,
        lambda progress, command: train_codebook(codec, images, cc, out, command=command, progress=progress,
                                                 overwrite=overwrite),
        lambda m: dict(psnr=f"{m['psnr']:.2f}", codebook=f"{m['codebook']:.4f}"))
    click.echo(f"wrote {out}.safetensors / {out}.json (codebook and decoder trained through BSC "
               f"p in [{p_min:g}, {p_max:g}]; train PSNR {final.get('psnr', float('nan')):.2f} dB, noisy and clean "
               f"crops together)")
    click.echo(f"next: vqcodec prepare --checkpoint {out} --keep-assignment; "
               f"vqcodec train-receiver --checkpoint {out}")


@main.command("train-receiver")
@click.option("--model", "-m", default=None, help="Model to train the receiver for [default: f4-k256].")
@click.option("--checkpoint", type=click.Path(), default=None, help="A checkpoint of yours instead of --model.")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Write a copy of the model with the new receiver here (weights, json, index prior, entropy "
                   "model) [default: store the receiver beside the model itself].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out, or rewrite a shipped model's receiver in place (name it with --model).")
@click.option("--images", type=click.Path(), default=None,
              help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--steps", type=click.IntRange(1), default=4000, show_default=True, help="First stage: training steps.")
@click.option("--minutes", type=float, default=None, help="Bound each stage to this long (its schedule ends with it).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Crops per step (both stages).")
@click.option("--crop", type=click.IntRange(4), default=32, show_default=True, help="Crop size in index sites.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="First stage: peak learning rate.")
@click.option("--channels", "width", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Network width.")
@click.option("--blocks", type=click.IntRange(1, 32), default=4, show_default=True, help="Residual blocks.")
@click.option("--decoder-steps", type=click.IntRange(0), default=1000, show_default=True,
              help="Second stage: steps through the frozen decoder (pixel MSE); 0 skips it.")
@click.option("--decoder-crop", type=click.IntRange(8), default=128, show_default=True,
              help="Second stage: crop size in pixels.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the initialisation, the crops and the channel noise.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@_TRAIN_PRECISION
def train_receiver(model, checkpoint, out, overwrite, images, steps, minutes, batch, crop, lr, width, blocks,
                   decoder_steps, decoder_crop, seed, threads, precision):
    """Train the learned context receiver of a model (receivers `learned`, `learned-mmse`).

    A small CNN learns the posterior of every index from the channel evidence of its
    neighbourhood, on the model's index maps of the training images sent through a random mix
    of channels (BSC, AWGN, packet and bit erasures). Stored beside the model; the transmitter
    does not change."""
    import torch
    from tqdm import tqdm

    from vqcodec.context import ContextConfig
    from vqcodec.images import ImageError
    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.receiver import ContextTrainConfig, PixelTrainConfig, train_checkpoint
    from vqcodec.model import CheckpointError, checkpoint_paths

    if threads:
        torch.set_num_threads(threads)
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        _fail(f"--minutes must be a positive number, got {minutes}")
    if not (lr > 0 and math.isfinite(lr)):
        _fail(f"--lr must be a positive number, got {lr}")
    stem = _side_info_stem(model, checkpoint, overwrite, out)
    if out is not None:
        _check_output(str(checkpoint_paths(out)[1]), overwrite)
    try:
        images = training_folder(images)
    except ValueError as exc:
        _fail(str(exc))
    bars = {}

    def progress(stage, done, total, m):
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="step" if stage == "train" else "it",
                               leave=False, dynamic_ncols=True)
        bars[stage].n = done
        if "bits" in m:
            post = {"bits": f"{m['bits']:.3f}"}
            post.update({"psnr": f"{m['psnr']:.2f}"} if "psnr" in m else {"lr": f"{m['lr']:.1e}"})
            bars[stage].set_postfix(post, refresh=False)
        bars[stage].refresh()

    command = "vqcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cfg = ContextConfig(channels=width, blocks=blocks)
    tc = ContextTrainConfig(steps=steps, batch=batch, crop=crop, lr=lr, seed=seed, warmup=min(200, max(1, steps // 10)),
                            precision=precision)
    pc = PixelTrainConfig(steps=decoder_steps, batch=batch, crop=decoder_crop, seed=seed + 1,
                          precision=precision) if decoder_steps else None
    try:
        record = train_checkpoint(stem, images, cfg, tc, pc, minutes=minutes, command=command, progress=progress,
                                  out=out, overwrite=overwrite)
    except (CheckpointError, ImageError, ValueError) as exc:
        for b in bars.values():
            b.close()
        _fail(str(exc))
    for b in bars.values():
        b.close()
    click.echo(f"{out or stem}: context receiver trained ({record['training']['steps_run']} steps); "
               "held-out training images:")
    for key, v in record["validation"].items():
        click.echo(f"  {key:<22} {v['bits']:.3f} bits/index, MAP index error rate {v['index_error_rate']:.4f}")


@main.command()
@_model_options
@click.option("--images", type=click.Path(), default=None,
              help="Training images for the index statistics [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@click.option("--kodak", type=click.Path(), default=None,
              help="Also record clean Kodak metrics in the checkpoint [default: ../shared/datasets/kodak if present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--keep-assignment/--new-assignment", default=None,
              help="Keep the checkpoint's index assignment, or optimise a new one [default: keep it for a "
                   "codebook trained for it by `vqcodec train-codebook`, else optimise].")
@click.option("--overwrite", is_flag=True,
              help="Rewrite a shipped model's prior, assignment and tuning in place (name it with --model).")
def prepare(model, checkpoint, device, images, kodak, keep_assignment, overwrite):
    """Learn the index prior and the pseudo-Gray index assignment of a model and store them with it."""
    from vqcodec.images import ImageError, default_kodak_folder
    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.prepare import prepare_checkpoint
    from vqcodec.model import CheckpointError

    stem = _side_info_stem(model, checkpoint, overwrite)
    try:
        images = training_folder(images)
    except ValueError as exc:
        _fail(str(exc))
    kodak = kodak if kodak is not None else default_kodak_folder()
    with _stage_bars() as progress:
        try:
            summary = prepare_checkpoint(stem, images, kodak_folder=kodak, keep_assignment=keep_assignment,
                                         progress=progress, overwrite=overwrite)
        except (CheckpointError, ImageError, ValueError) as exc:
            _fail(str(exc))
    ents, asgs = summary["entropy_bits"], summary["assignment"]
    staged = isinstance(ents, list)
    for s, (ent, a) in enumerate(zip(ents, asgs) if staged else [(ents, asgs)]):
        who = f"stage {s + 1}: " if staged else ""
        click.echo(f"{stem}: {who}index prior from {summary['image_count']} images: H = {ent['H']:.2f} bits, "
                   f"H(x|left) = {ent['H_given_left']:.2f}, H(x|up) = {ent['H_given_up']:.2f} "
                   f"(log2 K = {ent['log2K']:.0f})")
        click.echo(f"{who}index assignment: one-flip distortion identity {a['identity_cost']:.4f} -> "
                   + (f"kept {a['final_cost']:.4f}" if a.get("kept") else f"BSA {a['final_cost']:.4f}"))
    click.echo(f"spatial receiver tuned on held-out training images: lam = {summary['lam']}, "
               f"beta = {summary['beta']} (mean spatial-mmse loss {max(summary['tuning'].values()):.3f} dB "
               f"over BSC p = 0.01, 0.03)")
    if "kodak" in summary:
        k = summary["kodak"]
        usage = ", ".join(f"{100 * u:.1f}%" for u in k.get("codebook_usage_stages", [k["codebook_usage"]]))
        xent = k["cross_entropy_bits"] if staged else [k["cross_entropy_bits"]]
        click.echo(f"Kodak: PSNR {k['psnr']:.2f} dB, MS-SSIM {k['ms_ssim']:.4f}, {k['bpp']:.4f} bpp, codebook usage "
                   f"{usage}{' per stage' if staged else ''}, perplexity {k['perplexity']:.1f}, context cross-entropy "
                   + ", ".join(f"{x['context_bits']:.2f}" for x in xent) + " bits/index (unigram "
                   + ", ".join(f"{x['unigram_bits']:.2f}" for x in xent) + ")")


@main.command("train-entropy")
@_model_options
@click.option("--images", type=click.Path(), default=None,
              help="Training images [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)]; every tenth is held out.")
@click.option("--steps", type=click.IntRange(1, 10 ** 7), default=1500, show_default=True,
              help="Training steps (per stage of a residual model).")
@click.option("--rank", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Rank of each neighbour's K x K table.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the batches.")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="torch threads [default: torch's].")
@click.option("--overwrite", is_flag=True,
              help="Rewrite a shipped model's entropy model in place (name it with --model).")
def train_entropy(model, checkpoint, device, images, steps, rank, seed, threads, overwrite):
    """Train the entropy coder's context model of a model's indices (used by `encode --entropy`
    and `eval --entropy`; stored as <stem>.entropy.safetensors)."""
    from vqcodec.images import ImageError
    from vqcodec.learn.codec import training_folder
    from vqcodec.learn.entropy import train_entropy_model
    from vqcodec.model import CheckpointError

    stem = _side_info_stem(model, checkpoint, overwrite)
    try:
        images = training_folder(images)
    except ValueError as exc:
        _fail(str(exc))
    with _stage_bars() as progress:
        try:
            rec = train_entropy_model(stem, images, steps=steps, rank=rank, seed=seed, threads=threads,
                                      progress=progress, overwrite=overwrite)
        except (CheckpointError, ImageError, ValueError) as exc:
            _fail(str(exc))
    click.echo(f"{stem}: context model trained ({steps} steps, rank {rank}, {rec['seconds']} s); held-out "
               f"training images: {rec['held_out_bits_per_index']:.3f} bits per index "
               f"(fixed-length {rec['fixed_bits_per_index']:.0f})")


def _print_baselines(results, param, budget):
    if any(r["model"].get("kind") != "deepjscc" for r in results):
        click.echo(f"digital baselines at {budget:.4g} channel bits per pixel (CRC-32 + channel code, fallback: grey)"
                   + ("; Deep JSCC at its own cbr (analog)" if any(r["model"].get("kind") == "deepjscc"
                                                                    for r in results) else "") + ":")
    else:
        click.echo(f"Deep JSCC (analog) at cbr {results[0]['model']['cbr']:.4g}:")
    click.echo(f"{'curve':<34} {param:>9} {'PSNR dB':>8} {'fail':>6} {'no fit':>7} {'rate':>8}")
    for res in results:
        for pt in res["points"]:
            click.echo(f"{res.get('label', res['model']['name']):<34} {pt['param']:>9.3g} {pt['psnr']['mean']:>8.2f} "
                       f"{pt.get('failure_rate', 0.0):>6.2f} "
                       f"{(str(pt['no_fit']) + '/' + str(len(pt.get('per_image', [])))) if 'no_fit' in pt else '':>7} "
                       f"{str(pt.get('rate', '')):>8}")
    if any(pt.get("no_fit") for res in results for pt in res["points"]):
        click.echo("fail: transmissions sent and lost (CRC); no fit: images that fit the budget at no quality, "
                   "never sent and shown grey (in the mean PSNR, not in fail)")


@main.command()
@click.argument("suite", required=False)
@click.option("--list", "list_", is_flag=True, help="List the suites.")
@click.option("--resume", type=click.Path(file_okay=False), default=None,
              help="Continue an interrupted run in this results/<suite>/<timestamp> directory.")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root of the run directories.")
@click.option("--regenerate-expected", is_flag=True, help="Rewrite the suite's stored expected values (on purpose only).")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda or auto: where a speed suite measures (the other suites run on the CPU).")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(),
              help="speed suites: also measure this checkpoint of yours (repeatable).")
@click.option("--batch", type=click.IntRange(1, 4096), default=None,
              help="speed suites: images per batch of the batched codec path [default: the suite's].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
              help="The networks' arithmetic (see `simulate --help`) [default: the suite's, fp32 unless it says].")
@_cluster_options
def bench(suite, list_, resume, out, regenerate_expected, device, checkpoints, batch, precision, workers, scheduler):
    """Run a named benchmark suite from benchmarks/suites."""
    import json as _json

    from tqdm import tqdm

    from vqcodec import suites as S
    from vqcodec.images import ImageError
    from vqcodec.model import CheckpointError

    if list_ or not suite:
        for name in S.available():
            try:
                click.echo(f"{name:<16} {S.load_suite(name).description}")
            except S.SuiteError as exc:
                click.echo(f"{name:<16} (invalid: {exc})")
        return
    try:
        st = S.load_suite(suite)
    except S.SuiteError as exc:
        _fail(str(exc))
    if (checkpoints or batch) and st.kind != "speed":
        _fail("--checkpoint and --batch apply to speed suites only")
    if batch or precision:
        import dataclasses

        st = dataclasses.replace(st, **({"batch": batch} if batch else {}),
                                 **({"precision": precision} if precision else {}))
    from vqcodec.precision import resolve_precision

    try:  # a speed suite resolves auto on its own --device; the others run on the CPU
        shown = st.precision if st.kind == "speed" else resolve_precision(st.precision, "cpu")
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"precision {shown} ({'--precision' if precision else 'the suite'}"
               + (", auto" if st.precision == "auto" and shown != "auto" else "") + ")")
    folder = st.images_folder()
    if folder is not None and not Path(folder).exists():
        _fail(f"suite {st.name} needs images at {folder}, which does not exist")
    if resume:
        run_dir = Path(resume)
        try:
            S.check_resume_dir(st, run_dir)
        except S.SuiteError as exc:
            _fail(str(exc))
    else:
        try:
            run_dir = S.new_run_dir(st, Path(out))
        except OSError as exc:  # a read-only current folder, a file named like --out
            _fail(f"{exc.filename or out}: cannot create the run folder ({exc.strerror or exc.__class__.__name__}); "
                  "name a writable one with --out")
    if st.expected and not regenerate_expected and not (S.EXPECTED / st.expected).is_file():
        _fail(f"suite {st.name}: its expected file {S.EXPECTED / st.expected} does not exist "
              "(run with --regenerate-expected to make it)")
    bar = tqdm(desc=st.name, unit="step" if st.kind == "speed" else "point", leave=False)

    def progress(msg):
        bar.update(1)
        bar.set_postfix_str(msg[:40])

    t0 = time.perf_counter()
    try:
        executor = _executor(workers, scheduler) if st.kind == "sweep" else None
        try:
            results, figs = S.run(st, run_dir, progress, device=device, checkpoints=checkpoints, executor=executor)
        finally:
            if hasattr(executor, "close"):
                executor.close()
    except (ImageError, CheckpointError, ValueError) as exc:
        bar.close()
        _fail(str(exc))
    except OSError as exc:
        bar.close()
        _fail(f"{exc.filename or run_dir}: cannot write ({exc.strerror or exc.__class__.__name__}); the finished "
              f"points are in {run_dir}")
    except KeyboardInterrupt:
        bar.close()
        _fail(f"interrupted; the trials so far are in {run_dir} (continue with --resume {run_dir})")
    bar.close()
    click.echo((run_dir / "summary.md").read_text())
    data = run_dir / ("speed.json" if st.kind == "speed" else "results.json")
    click.echo(f"wrote {data}, " + ", ".join(str(f) for f in figs) + f"  ({time.perf_counter() - t0:.1f} s)")
    if st.expected:
        if regenerate_expected:
            (S.EXPECTED / st.expected).write_text(_json.dumps(S.expected_values(results), indent=1) + "\n")
            click.echo(f"regenerated {S.EXPECTED / st.expected}")
        else:
            problems = S.check_expected(st, results)
            if problems:
                _fail(f"{st.name}: {len(problems)} values differ from {st.expected}, e.g. {problems[0]}")
            click.echo(f"{st.name}: all {len(S.expected_values(results))} values match {st.expected}")


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path())
@click.option("--compressai", "fmt", flag_value="compressai", required=True,
              help="Write CompressAI's {name, description, results: {psnr-rgb, ms-ssim-rgb, bpp}} form.")
@click.option("--output", "-o", required=True, type=click.Path(), help="File to write.")
@click.option("--name", default="vqcodec", show_default=True, help="The name the exported file gives the method.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
def export(results_files, fmt, output, name, overwrite):
    """Export clean-channel results (vqcodec eval / kodak-rd) for other tools."""
    import json

    from vqcodec.results import ResultsError, atomic_write_text, read_results, to_compressai

    _check_output(output, overwrite)
    try:
        results = [r for f in results_files for r in read_results(f)]
        doc = to_compressai(results, name=name)
        atomic_write_text(output, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    except ResultsError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{output}: cannot write ({exc.strerror or exc.__class__.__name__}); the previous file, if any, "
              "is unchanged")
    click.echo(f"wrote {output} ({len(doc['results']['bpp'])} rate points)")


@main.command()
def receivers():
    """List the receivers (index decoders)."""
    from vqcodec.correct import REGISTRY

    for name in sorted(REGISTRY):
        doc = (REGISTRY[name].__doc__ or "").strip().splitlines()
        click.echo(f"{name:<16} {doc[0] if doc else ''}")


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Figure file (.png, .pdf; no suffix: both).")
@click.option("--metric", default="psnr", show_default=True,
              type=click.Choice(["psnr", "ms_ssim", "ber", "index_error_rate", "failure_rate"]),
              help="What to draw against the channel parameter (failure_rate: the baselines' CRC losses).")
@click.option("--title", default=None, help="Figure title [default: the channel, what its curves share, the images].")
@click.option("--select", "select", multiple=True,
              help="Only curves whose legend label matches this glob (repeatable), e.g. --select '*best*'.")
@click.option("--rd", is_flag=True, help="Rate-distortion plot of clean-channel results (PSNR or MS-SSIM vs bpp); "
                                         "CompressAI result files are drawn as labelled anchors.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output figure.")
def plot(results_files, output, metric, title, select, rd, overwrite):
    """Draw curves from results files."""
    try:
        _plot(results_files, output, metric, title, select, rd, overwrite)
    except ValueError as exc:  # matplotlib: a label with broken mathtext ($\frac{1}{$), a bad style
        _fail(f"cannot draw the figure: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r} "
              "(a label from the results files?); nothing was written")


def _plot(results_files, output, metric, title, select, rd, overwrite):
    from vqcodec.plot import curve_label, plot_curves, plot_rd, select_curves
    from vqcodec.results import ResultsError, clean_results, merge_curves, read_compressai, read_results

    suffix = Path(output).suffix.lower()
    for out in ([output] if suffix in (".png", ".pdf", ".svg") else [output + ".png", output + ".pdf"]):
        _check_output(out, overwrite)
    if rd:
        try:
            ours, anchors = [], []
            for f in results_files:
                ca = read_compressai(f)
                if ca is not None:
                    anchors.append(ca)
                else:
                    ours += read_results(f)
            written = plot_rd(clean_results(ours) if ours or not anchors else [], output, anchors=anchors,
                              metric=metric, title=title)
        except ResultsError as exc:
            _fail(str(exc))
        click.echo("wrote " + ", ".join(str(w) for w in written))
        return
    try:
        results = merge_curves([r for f in results_files for r in read_results(f)])
        if select:
            chosen = select_curves(results, select)
            if not chosen:
                _fail(f"no curve matches --select {' '.join(select)} (the curves: "
                      f"{', '.join(curve_label(r) for r in results)})")
            results = chosen
        written = plot_curves(results, output, metric=metric, title=title)
    except ResultsError as exc:
        _fail(str(exc))
    click.echo("wrote " + ", ".join(str(w) for w in written))


if __name__ == "__main__":
    main()
