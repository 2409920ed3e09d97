"""The ``vqcodec`` command: parse, call the library, print.

Every failure the user can cause (bad paths, bad images, bad parameters,
corrupt files) ends in a one-line ``Error: ...`` and exit status 1 (click's
usage errors: 2); no traceback, no half-written output.
"""
from __future__ import annotations

import contextlib
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

#: the folders of this checkout that the benchmark suites read (``api.use_bench_folders``)
ROOT = Path(__file__).resolve().parent
BENCH_FOLDERS = {"suites": ROOT / "benchmarks" / "suites", "expected": ROOT / "benchmarks" / "expected",
                 "anchors": ROOT.parent / "shared" / "anchors" / "compressai-kodak",
                 "jscc_anchors": ROOT.parent / "shared" / "anchors" / "jscc-kodak",
                 "datasets": ROOT.parent / "shared" / "datasets"}


def _fail(msg: str) -> None:
    raise click.ClickException(str(msg).splitlines()[0] if msg else "failed")


@contextlib.contextmanager
def _bars():
    """Progress bars, made at their first report and all closed on the way out (an error
    included): yields ``show(name, done, total=None, postfix=None, unit="it")``."""
    from tqdm import tqdm

    made = {}

    def show(name, done, total=None, postfix=None, unit="it"):
        if name not in made:
            # counted from here: a resumed run's rate is its steps per second, not its step number's
            made[name] = tqdm(total=total, desc=name, unit=unit, leave=False, dynamic_ncols=True, initial=done)
        bar = made[name]
        bar.total = total if total is not None else bar.total
        bar.n = done
        if postfix:
            bar.set_postfix_str(postfix[:40]) if isinstance(postfix, str) else bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        yield show
    finally:
        for bar in made.values():
            bar.close()


def _run_with_progress(desc: str, steps: int | None, run, postfix):
    """``run(progress, command)`` under a progress bar; ``progress(step, metrics)`` shows
    ``postfix(metrics)`` (the metrics' ``steps`` is the total). ``command`` is the command line,
    for the training record. An OSError or SafetensorError (a full disk: the checkpoint writers
    leave no temporary file) becomes one line."""
    from safetensors import SafetensorError

    try:
        with _bars() as show:
            return run(lambda step, m: show(desc, step, m.get("steps", steps), postfix(m), "step"), _command_line())
    except (OSError, SafetensorError) as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _fail(f"{desc} stopped: {where}{getattr(exc, 'strerror', None) or exc} (no partial file is left)")


_TRAIN_IMAGES = click.option(
    "--images", type=click.Path(), default=None,
    help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec "
         "project folder, not the current directory)].")
_OUT_STEM = click.option("--out", "-o", required=True, type=click.Path(),
                         help="Output stem: writes OUT.safetensors + OUT.json.")
_THREADS = click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
_NOISE_SEED = click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
                           help="Seed of the initialisation, the crops and the channel noise [default: 0].")


def _overwrite(what: str):
    return click.option("--overwrite", is_flag=True, help=f"Replace an existing {what}.")


_TRAIN_PRECISION = click.option(
    "--precision", type=click.Choice(["auto", "bf16", "fp32"]), default=None,
    help="Training arithmetic: bf16 autocast (fp32 weights, quantiser and loss), or fp32; auto: bf16 on CUDA "
         "and on CPUs with AVX512-BF16 or AMX, else fp32 [default: auto].")


def _training_options(fn):
    """The training loop's settings (train, train-jscc, train-decoder): an option not given takes the
    library's default for a new run, and the saved setting on --resume."""
    opts = [
        click.option("--steps", type=click.IntRange(1), default=None,
                     help="Training steps (optimiser updates) [default: 20000]."),
        click.option("--batch", type=click.IntRange(1), default=None, help="Crops per step [default: 16]."),
        click.option("--crop", type=click.IntRange(8), default=None,
                     help="Crop size in pixels (square training crops) [default: 64]."),
        click.option("--lr", type=float, default=None,
                     help="Peak learning rate (Adam; warm-up, then cosine decay) [default: 1.5e-3]."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
                     help="Seed of the initialisation and the crops [default: 0]."),
        click.option("--checkpoint-every", type=click.IntRange(1), default=None,
                     help="Write the checkpoint and the training state (for --resume) every N steps "
                          "[default: 1000]."),
        _THREADS,
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, or auto."),
        _TRAIN_PRECISION,
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _given(**options) -> dict:
    """The options given on the command line (an option not given is None: the library's default)."""
    return {k: v for k, v in options.items() if v is not None}


def _command_line() -> str:
    """The command as typed, for the training record."""
    return "vqcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class _Main(click.Group):
    """The command group: every error the library raises for bad input (a ``ValueError`` of its
    own kind, or a cluster that cannot start) ends as one line and exit status 1."""

    def invoke(self, ctx):
        from vqcodec.api import ParameterError, UserError

        try:
            return super().invoke(ctx)
        except ParameterError as exc:  # named as the command line spells it
            _fail(exc.spelled(_flag))
        except UserError as exc:
            _fail(str(exc))


def _flag(name: str) -> str:
    """The command line's spelling of a parameter of the library."""
    return {"scramble": "--no-scramble", "kind": "--channel"}.get(name, "--" + name.replace("_", "-"))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="vqcodec", prog_name="vqcodec", message="%(prog)s %(version)s")
def main() -> None:
    """Send images over noisy digital links with a learned vector-quantised codec."""
    import warnings

    from vqcodec.api import DeprecatedSpelling, ImageNote

    def show(message, category, *args, **kwargs):
        if issubclass(category, (ImageNote, DeprecatedSpelling)):  # the library says; the CLI prints one line
            click.echo(f"Note: {message}", err=True)
        else:
            warnings._showwarning_orig(message, category, *args, **kwargs)

    warnings.showwarning = show  # (in-process repeated calls replace it, never chain it)


@main.command()
@_TRAIN_IMAGES
@_OUT_STEM
@click.option("--f", "f", type=click.Choice(["4", "8", "16"]), default=None, help="Downsampling factor [default: 4].")
@click.option("--K", "K", type=click.IntRange(2, 65536), default=None, help="Codebook size [default: 256].")
@click.option("--d", "d", type=click.IntRange(1, 1024), default=None, help="Code vector dimension [default: 32].")
@click.option("--channels", default=None, help="Channels per downsampling stage, comma-separated [default by f].")
@click.option("--res-blocks", type=click.IntRange(0, 16), default=None,
              help="Residual blocks at the end of the encoder (at the latent resolution) [default: 1].")
@click.option("--decoder-res-blocks", type=click.IntRange(0, 16), default=None,
              help="Residual blocks at the start of the decoder [default: 2 for f=4, 3 otherwise].")
@click.option("--decoder-channels", type=click.IntRange(1, 1024), default=None,
              help="Decoder width at the latent resolution [default: the last of --channels].")
@click.option("--decoder-head", type=click.Choice(["stages", "subpixel"]), default=None,
              help="Upsampling: 2x stages, or one sub-pixel convolution [default: stages].")
@click.option("--stages", type=click.IntRange(1, 64), default=None,
              help="Residual VQ stages, each a codebook of K entries (bits per site = stages x log2 K) "
                   "[default: 1; with --init: all of its stages].")
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
def train(images, out, f, K, d, channels, res_blocks, decoder_res_blocks, decoder_channels, decoder_head, stages,
          stage_dropout, steps, batch, crop, lr, seed, checkpoint_every, threads, device, precision, minutes, init,
          resume, overwrite):
    """Train a VQ-VAE on an image folder (with --stages S > 1: residual VQ)."""
    from vqcodec import api

    final = _run_with_progress(
        "train", steps,
        lambda progress, command: api.train(
            out, images=images, f=f, K=K, d=d, channels=channels, res_blocks=res_blocks,
            decoder_res_blocks=decoder_res_blocks, decoder_channels=decoder_channels, decoder_head=decoder_head,
            stages=stages, stage_dropout=stage_dropout, init=init, minutes=minutes, resume=resume,
            overwrite=overwrite, device=device, threads=threads, progress=progress, command=command, steps=steps,
            batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every, precision=precision),
        lambda m: dict(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}", ppl=f"{m['perplexity']:.0f}",
                       lr=f"{m['lr']:.1e}"))
    click.echo(f"wrote {out}.safetensors / {out}.json  train PSNR {final.get('train_psnr', float('nan')):.2f} dB, "
               f"perplexity {final.get('train_perplexity', float('nan')):.0f}")


@main.command("train-jscc")
@click.option("--images", type=click.Path(), default=None,
              help="Training image folder [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@_OUT_STEM
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
def train_jscc_cmd(images, out, cbr, width, snr_range, resume, overwrite, steps, batch, crop, lr, seed,
                   checkpoint_every, threads, device, precision, minutes):
    """Train the Deep JSCC analog reference (Bourtsoulatze et al. 2019) over AWGN."""
    from vqcodec import api

    try:
        lo, hi = (float(v) for v in snr_range.split(":"))
    except ValueError:
        _fail(f"bad --snr-db {snr_range!r}: expected LOW:HIGH in dB")
    final = _run_with_progress(
        "train-jscc", steps,
        lambda progress, command: api.train_jscc(
            out, images=images, cbr=cbr, width=width, snr_db=(lo, hi), minutes=minutes, resume=resume,
            overwrite=overwrite, device=device, threads=threads, progress=progress, command=command, steps=steps,
            batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every, precision=precision),
        lambda m: dict(psnr=f"{m['psnr']:.2f}", lr=f"{m['lr']:.1e}"))
    click.echo(f"wrote {out}.safetensors / {out}.json  train PSNR {final.get('train_psnr', float('nan')):.2f} dB "
               f"(at Es/N0 {lo:g}..{hi:g} dB)")


@main.command("train-decoder")
@click.option("--model", "-m", default=None, help="Base model whose encoder and codebook stay frozen [default: f4-k256].")
@click.option("--checkpoint", type=click.Path(), default=None, help="A base checkpoint instead of --model.")
@_TRAIN_IMAGES
@_OUT_STEM
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
def train_decoder_cmd(model, checkpoint, images, out, decoder_channels, decoder_res_blocks, decoder_head, steps,
                      minutes, batch, crop, lr, seed, checkpoint_every, threads, device, precision, grow, resume,
                      overwrite):
    """Train a new decoder for a model whose encoder and codebook stay frozen.

    The transmitted indices do not change, so the base model's index assignment, prior and
    receiver tuning carry over; use it to make a faster or better decoder."""
    from vqcodec import api

    final = _run_with_progress(
        "train-decoder", steps,
        lambda progress, command: api.train_decoder(
            out, model=model, checkpoint=checkpoint, images=images, decoder_channels=decoder_channels,
            decoder_res_blocks=decoder_res_blocks, decoder_head=decoder_head, grow=grow, minutes=minutes,
            resume=resume, overwrite=overwrite, device=device, threads=threads, progress=progress, command=command,
            steps=steps, batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
            precision=precision),
        lambda m: dict(loss=f"{m['loss']:.5f}", psnr=f"{m['psnr']:.2f}", lr=f"{m['lr']:.1e}"))
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


def _channel_options(fn):
    opts = [
        click.option("--channel", "-c", "channel", required=True, help="Channel model (see `vqcodec channels`)."),
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
        click.option("--scramble/--no-scramble", default=True,
                     help="awgn/fading: --no-scramble modulates the payload's bits as they are, without the 3GPP "
                          "TS 38.211 Gold-sequence scrambling real links use [default: scrambled]."),
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
    fn = click.option("--ci", "ci", type=float, default=0.05, show_default=True,
                      help="Stop a point when the 95% CI half-width of mean PSNR is at most this (dB).")(fn)
    fn = click.option("--min-trials", type=click.IntRange(1), default=3, show_default=True,
                      help="Trials every point runs before the --ci rule may stop it (at most --trials).")(fn)
    fn = click.option("--trials", type=click.IntRange(1), default=10, show_default=True,
                      help="Trial budget per point (a trial = one channel realisation per image).")(fn)
    return fn


@main.command()
def models():
    """List the shipped models."""
    from vqcodec import api

    click.echo(f"{'name':<16} {'f':>3} {'K':>6} {'bpp':>7} {'Kodak PSNR':>11} {'receivers':<9} {'entropy':<7}  "
               "description")
    for m in api.models():
        if not m["installed"]:
            click.echo(f"{m['name']:<16} {'':>3} {'':>6} {'':>7} {'':>11} {'':<9} {'':<7}  (weights not installed)")
            continue
        K = f"{m['stages']}x{m['K']}" if m["stages"] > 1 else m["K"]
        kodak = f"{m['kodak_psnr']:.2f} dB" if m["kodak_psnr"] else "n/a"
        click.echo(f"{m['name']:<16} {m['f']:>3} {K:>6} {m['bpp']:>7.4f} {kodak:>11} {m['receivers']:<9} "
                   f"{m['entropy']:<7}  {m['description']}{' (default)' if m['default'] else ''}")
    click.echo("K: codebook size (SxK: S residual stages of K); receivers: S = spatial (index prior), "
               "L = learned (context receiver); naive and map always work")
    click.echo("entropy (encode/eval --entropy): the context model of its entropy-coded files, trained "
               "(vqcodec train-entropy) or from the index prior")


@main.command(name="channels")
def channels_cmd():
    """List the channel models, their parameter and their options (as `simulate` and `sweep` take them)."""
    import re

    from vqcodec import api

    for c in api.channel_kinds():
        known = (*c["options"], c["param"])
        doc = re.sub(r"``(\w+)``", lambda m, known=known: _flag(m.group(1)) if m.group(1) in known else m.group(1),
                     c["doc"])
        opts = ", ".join(_flag(o) for o in c["options"])
        click.echo(f"{c['name']:<15} {_flag(c['param']):<9} {doc}" + (f" Options: {opts}." if opts else ""))


@main.command()
@click.argument("image", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Index file to write (.vqc).")
@_model_options
@_precision_option
@_search_option
@click.option("--entropy", is_flag=True,
              help="Entropy-code the indices (ANS with the model's causal context model): a smaller file, "
                   "for storage or a clean link; without it every index keeps its fixed-length bits.")
@_overwrite("--output file")
def encode(image, output, model, checkpoint, device, precision, search, entropy, overwrite):
    """Encode IMAGE into a .vqc index file."""
    from vqcodec import api

    f = api.encode_file(image, output, model=model, checkpoint=checkpoint, device=device,
                        precision=precision, search=search, entropy=entropy, overwrite=overwrite)
    enc = f.image
    H, W = enc.image.shape[:2]
    size = (f"{f.size} bytes entropy-coded ({8 * f.size / (H * W):.4f} bpp; fixed-length {f.fixed_bits / (H * W):.4f})"
            if entropy else f"{f.fixed_bits} bits ({f.fixed_bits / (H * W):.4f} bpp)")
    grid = f"{enc.indices.shape[-1]}x{enc.indices.shape[-2]}" + (f"x{enc.indices.shape[0]} stages"
                                                                  if enc.indices.ndim == 3 else "")
    click.echo(f"{image}: {W}x{H} -> {grid} indices, {size}, "
               f"clean PSNR {enc.psnr_clean:.2f} dB (decoded in {f.precision}) -> {output}")


@main.command()
@click.argument("index_file", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Image to write (.png).")
@click.option("--checkpoint", type=click.Path(), default=None, help="Checkpoint to decode with (if not a shipped model).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto (cuda when available).")
@_precision_option
@_overwrite("--output image")
def decode(index_file, output, checkpoint, device, precision, overwrite):
    """Decode a .vqc index file into an image."""
    from vqcodec import api

    header, codec = api.decode_file(index_file, output, checkpoint=checkpoint, device=device, precision=precision,
                                    overwrite=overwrite)
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
@_overwrite("--json results file")
def eval_cmd(model, checkpoint, device, precision, search, images, entropy, progressive, json_out, overwrite):
    """Clean-channel evaluation: PSNR, MS-SSIM and bpp per image."""
    from vqcodec import api

    api.check_output(json_out, overwrite)
    codec = api.load(model, checkpoint=checkpoint, device=device, precision=precision, search=search)
    _echo_precision(codec, precision)
    with _bars() as show:
        ev = api.evaluate(codec, images, entropy=entropy, progressive=progressive,
                          progress=lambda done, total: total >= 3 and show("encode", done, total, unit="img"))
    (point,) = ev.results["points"]
    click.echo(f"{'image':<24} {'size':>10} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8}")
    for e, pi in zip(ev.images, point["per_image"]):
        click.echo(f"{e.name:<24} {e.image.shape[1]:>5}x{e.image.shape[0]:<4} {pi['bpp']:>7.4f} "
                   f"{pi['psnr']:>8.2f} {pi['ms_ssim']:>8.4f}")
    click.echo(f"{'mean':<24} {'':>10} {point['bpp']:>7.4f} {point['psnr']['mean']:>8.2f} "
               f"{point['ms_ssim']['mean']:>8.4f}   ({codec.name}, {len(ev.images)} images)")
    usage = point.get("codebook_usage_stages", [point["codebook_usage"]])
    click.echo("codebook entries used: " + ", ".join(f"{100 * u:.1f}%" for u in usage)
               + (" (per stage)" if len(usage) > 1 else ""))
    if ev.progressive:
        click.echo("progressive: decoded from the first s stages alone")
        click.echo(f"{'stages':>8} {'bpp':>8} {'PSNR dB':>8}")
        for row in ev.progressive:
            click.echo(f"{row['stages']:>8} {row['bpp']:>8.4f} {row['psnr']:>8.2f}")
    if json_out:
        api.save_results(json_out, ev.results)
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
@click.option("--ms-ssim/--no-ms-ssim", "with_ms_ssim", default=True, help="Also measure MS-SSIM [default: on; off is faster].")
@_overwrite("--json results file")
def simulate(**opts):
    """Send images through one channel point and measure what arrives."""
    _run_sweep("simulate", opts)


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
@click.option("--rates", default="none,cc-3/4,cc-2/3,cc-1/2,cc-1/3,cc-1/4", show_default=True,
              help="Channel codes the baselines may use, named as --code names them: none, the convolutional "
                   "codes cc-3/4 cc-2/3 cc-1/2 cc-1/3 cc-1/4, 5G LDPC ldpc-A/B (e.g. ldpc-1/2).")
@click.option("--budget-bpp", type=float, default=None,
              help="Channel bits per pixel of the baselines [default: the VQ model's bpp].")
@click.option("--cbr", type=_RATIO, default=None,
              help="awgn/fading: the baselines' budget as a bandwidth ratio, complex channel uses / (3 x pixels).")
@click.option("--ms-ssim/--no-ms-ssim", "with_ms_ssim", default=True, help="Also measure MS-SSIM [default: on; off is faster].")
@_overwrite("--json results file")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted sweep: keep the points already in --json, run the rest.")
def sweep(**opts):
    """Sweep a grid of channel parameters; one curve per receiver (and per baseline)."""
    _run_sweep("sweep", opts)


def _run_sweep(command, opts):
    from vqcodec import api

    t_start = time.perf_counter()
    plan, trials_done = [], [0]

    def on_trial(i, t):
        exp = plan[0]
        trials_done[0] += 1
        show(command, trials_done[0], len(exp.grid) * opts["trials"], f"{exp.param}={exp.grid[i]:g}", "trial")

    run = api.sweep if command == "sweep" else api.simulate
    try:
        with _bars() as show:
            results = run(**opts, on_plan=plan.append,
                          on_encode=lambda done, total: total >= 3 and show("encode", done, total, unit="img"),
                          on_trial=on_trial,
                          on_baseline=lambda done, total, label: show("baselines", done, total, label, "point"),
                          on_results=lambda curves: _print_table(curves, plan[0].param))
    except KeyboardInterrupt:
        json_out = opts["json_out"]
        _fail("interrupted" + (f"; the trials so far are in {json_out} (continue with --resume)"
                               if json_out and command == "sweep" and Path(json_out).exists() else ""))
    exp = plan[0]
    vq = results[:len(exp.receivers)]  # one per receiver (printed when they finished), then the baselines'
    if len(results) > len(vq):
        _print_baselines(results[len(vq):], exp.param, exp.budget)
    _echo_precision(exp.codec, opts["precision"])  # after the work: a run that fails says one line, its error
    click.echo("side information (image size, model, index assignment) is assumed to arrive error-free; "
               "only the index payload crosses the channel")
    if opts["json_out"]:
        click.echo(f"wrote {opts['json_out']}")
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
@click.option("--ms-ssim/--no-ms-ssim", "with_ms_ssim", default=True, help="Also measure MS-SSIM [default: on; off is faster].")
@_overwrite("--json results file")
def best(kind, snr_db, cbr, models, min_rate, block_bits, images, precision, trials, min_trials, ci, seed,
         workers, json_out, with_ms_ssim, overwrite):
    """Best configuration at equal channel uses: every (model, modulation, 5G LDPC rate) that fills
    --cbr, swept over --snr-db with the model's best soft receiver, and their envelope."""
    from vqcodec import api

    t_start = time.perf_counter()
    with _bars() as show:
        results = api.best_sweep(kind, snr_db, models=models, cbr=cbr, images=images, trials=trials,
                                 min_trials=min_trials, ci=ci, seed=seed, with_ms_ssim=with_ms_ssim,
                                 min_rate=min_rate, workers=workers, precision=precision,
                                 on_configuration=lambda i, n, label: show("configurations", i, n, label, "config"),
                                 json_out=json_out, overwrite=overwrite, **_given(block_bits=block_bits))
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
@_overwrite("output checkpoint")
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps [default: 3000].")
@click.option("--lr", type=float, default=None, help="Decoder learning rate [default: 2e-4].")
@click.option("--batch", type=click.IntRange(1), default=None, help="Crops per step [default: 16].")
@click.option("--crop", type=click.IntRange(8), default=None, help="Crop size in pixels [default: 64].")
@_NOISE_SEED
@_THREADS
@_TRAIN_PRECISION
def finetune(model, checkpoint, device, kind, p, snr_db, receiver, images, out, overwrite, steps, lr, batch, crop,
             seed, threads, precision):
    """Fine-tune a model's decoder (codebook frozen) on what a receiver hands it after a channel."""
    from vqcodec import api

    final, what = _run_with_progress(
        "finetune", steps,
        lambda progress, command: api.finetune(
            out, kind, receiver=receiver, model=model, checkpoint=checkpoint, images=images, p=p, snr_db=snr_db,
            overwrite=overwrite, device=device, threads=threads, progress=progress, command=command, steps=steps,
            lr=lr, batch=batch, crop=crop, seed=seed, precision=precision),
        lambda m: dict(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}"))
    click.echo(f"wrote {out}.safetensors / {out}.json (decoder fine-tuned for {what} through {receiver}; "
               f"train PSNR {final.get('psnr', float('nan')):.2f} dB)")


@main.command("train-codebook")
@_model_options
@_TRAIN_IMAGES
@click.option("--out", "-o", required=True, type=click.Path(), help="Output checkpoint stem (a new model).")
@_overwrite("output checkpoint")
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps [default: 4000].")
@click.option("--batch", type=click.IntRange(1), default=None, help="Crops per step [default: 16].")
@click.option("--crop", type=click.IntRange(8), default=None,
              help="Crop size in pixels (a multiple of the model's stride) [default: 96].")
@click.option("--lr", type=float, default=None, help="Decoder learning rate [default: 3e-4].")
@click.option("--codebook-lr", type=float, default=None, help="Codebook learning rate [default: 1e-3].")
@click.option("--p-min", type=float, default=None,
              help="BSC crossover probability per crop: log-uniform in [p-min, p-max] [default: 0.003].")
@click.option("--p-max", type=float, default=None, help="Upper end of that range [default: 0.1].")
@click.option("--clean-fraction", type=float, default=None,
              help="Share of crops decoded from clean indices [default: 0.25].")
@_NOISE_SEED
@_THREADS
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
    from vqcodec import api

    final, cc = _run_with_progress(
        "train-codebook", steps,
        lambda progress, command: api.train_codebook(
            out, model=model, checkpoint=checkpoint, images=images, overwrite=overwrite, device=device,
            threads=threads, progress=progress, command=command, steps=steps, batch=batch, crop=crop, lr=lr,
            codebook_lr=codebook_lr, p_min=p_min, p_max=p_max, clean_fraction=clean_fraction, seed=seed,
            precision=precision),
        lambda m: dict(psnr=f"{m['psnr']:.2f}", codebook=f"{m['codebook']:.4f}"))
    click.echo(f"wrote {out}.safetensors / {out}.json (codebook and decoder trained through BSC "
               f"p in [{cc.p_min:g}, {cc.p_max:g}]; train PSNR {final.get('psnr', float('nan')):.2f} dB, noisy and "
               "clean crops together)")
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
@_TRAIN_IMAGES
@click.option("--steps", type=click.IntRange(1), default=None, help="First stage: training steps [default: 4000].")
@click.option("--minutes", type=float, default=None, help="Bound each stage to this long (its schedule ends with it).")
@click.option("--batch", type=click.IntRange(1), default=None, help="Crops per step (both stages) [default: 16].")
@click.option("--crop", type=click.IntRange(4), default=None, help="Crop size in index sites [default: 32].")
@click.option("--lr", type=float, default=None, help="First stage: peak learning rate [default: 2e-3].")
@click.option("--channels", "width", type=click.IntRange(1, 1024), default=None,
              help="Network width [default: 64].")
@click.option("--blocks", type=click.IntRange(1, 32), default=None, help="Residual blocks [default: 4].")
@click.option("--decoder-steps", type=click.IntRange(0), default=None,
              help="Second stage: steps through the frozen decoder (pixel MSE); 0 skips it [default: 1000].")
@click.option("--decoder-crop", type=click.IntRange(8), default=None,
              help="Second stage: crop size in pixels [default: 128].")
@_NOISE_SEED
@_THREADS
@_TRAIN_PRECISION
def train_receiver(model, checkpoint, out, overwrite, images, steps, minutes, batch, crop, lr, width, blocks,
                   decoder_steps, decoder_crop, seed, threads, precision):
    """Train the learned context receiver of a model (receivers `learned`, `learned-mmse`).

    A small CNN learns the posterior of every index from the channel evidence of its
    neighbourhood, on the model's index maps of the training images sent through a random mix
    of channels (BSC, AWGN, packet and bit erasures). Stored beside the model; the transmitter
    does not change."""
    from vqcodec import api

    settings = _given(steps=steps, batch=batch, crop=crop, lr=lr, width=width, blocks=blocks,
                      decoder_steps=decoder_steps, decoder_crop=decoder_crop, seed=seed, precision=precision)
    with _bars() as show:
        def progress(stage, done, total, m):
            post = {"bits": f"{m['bits']:.3f}", **({"psnr": f"{m['psnr']:.2f}"} if "psnr" in m
                                                    else {"lr": f"{m['lr']:.1e}"})} if "bits" in m else None
            show(stage, done, total, post, "step" if stage == "train" else "it")

        record, stem = api.train_receiver(model=model, checkpoint=checkpoint, out=out, overwrite=overwrite,
                                          images=images, minutes=minutes, threads=threads, progress=progress,
                                          command=_command_line(), **settings)
    click.echo(f"{stem}: context receiver trained ({record['training']['steps_run']} steps); "
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
    from vqcodec import api

    with _bars() as progress:
        summary, stem = api.prepare(model=model, checkpoint=checkpoint, images=images, kodak=kodak,
                                    keep_assignment=keep_assignment, overwrite=overwrite, progress=progress)
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
@click.option("--steps", type=click.IntRange(1, 10 ** 7), default=None,
              help="Training steps (per stage of a residual model) [default: 1500].")
@click.option("--rank", type=click.IntRange(1, 1024), default=None,
              help="Rank of each neighbour's K x K table [default: 64].")
@click.option("--seed", type=int, default=None, help="Seed of the initialisation and the batches [default: 0].")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="torch threads [default: torch's].")
@click.option("--overwrite", is_flag=True,
              help="Rewrite a shipped model's entropy model in place (name it with --model).")
def train_entropy(model, checkpoint, device, images, steps, rank, seed, threads, overwrite):
    """Train the entropy coder's context model of a model's indices (used by `encode --entropy`
    and `eval --entropy`; stored as <stem>.entropy.safetensors)."""
    from vqcodec import api

    with _bars() as progress:
        rec, stem = api.train_entropy(model=model, checkpoint=checkpoint, images=images, threads=threads,
                                      overwrite=overwrite, progress=progress,
                                      **_given(steps=steps, rank=rank, seed=seed))
    click.echo(f"{stem}: context model trained ({rec['steps']} steps, rank {rec['rank']}, {rec['seconds']} s); held-out "
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
    from vqcodec import api

    api.use_bench_folders(**BENCH_FOLDERS)
    if list_ or not suite:
        for name, description in api.bench_suites().items():
            click.echo(f"{name:<16} {description}")
        return
    t0, steps, folder = time.perf_counter(), [0], []

    def started(run_dir, shown, from_auto):
        folder.append(run_dir)
        click.echo(f"precision {shown} ({'--precision' if precision else 'the suite'}{', auto' if from_auto else ''})")

    try:
        with _bars() as show:
            def progress(message):
                steps[0] += 1
                show(suite, steps[0], None, message)

            run = api.bench(suite, out=out, resume=resume, regenerate_expected=regenerate_expected, device=device,
                            checkpoints=checkpoints, batch=batch, precision=precision, workers=workers,
                            scheduler=scheduler, progress=progress, on_start=started)
    except KeyboardInterrupt:
        where = folder[0] if folder else resume or out
        _fail(f"interrupted; the trials so far are in {where} (continue with --resume {where})")
    st = run.suite
    click.echo((run.run_dir / "summary.md").read_text())
    data = run.run_dir / ("speed.json" if st.kind == "speed" else "results.json")
    click.echo(f"wrote {data}, " + ", ".join(str(f) for f in run.figures) + f"  ({time.perf_counter() - t0:.1f} s)")
    if run.regenerated:
        click.echo(f"regenerated {run.regenerated}")
    elif run.mismatches:
        _fail(f"{st.name}: {len(run.mismatches)} values differ from {st.expected}, e.g. {run.mismatches[0]}")
    elif run.mismatches is not None:
        click.echo(f"{st.name}: all {run.checked} values match {st.expected}")


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path())
@click.option("--compressai", "fmt", flag_value="compressai", required=True,
              help="Write CompressAI's {name, description, results: {psnr-rgb, ms-ssim-rgb, bpp}} form.")
@click.option("--output", "-o", required=True, type=click.Path(), help="File to write.")
@click.option("--name", default="vqcodec", show_default=True, help="The name the exported file gives the method.")
@_overwrite("--output file")
def export(results_files, fmt, output, name, overwrite):
    """Export clean-channel results (vqcodec eval / kodak-rd) for other tools."""
    from vqcodec import api

    doc = api.export_compressai(results_files, output, name=name, overwrite=overwrite)
    click.echo(f"wrote {output} ({len(doc['results']['bpp'])} rate points)")


@main.command()
def receivers():
    """List the receivers (index decoders)."""
    from vqcodec import api

    for name, doc in api.receivers().items():
        click.echo(f"{name:<16} {doc}")


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
@_overwrite("--output figure")
def plot(results_files, output, metric, title, select, rd, overwrite):
    """Draw curves from results files."""
    from vqcodec import api

    written = api.plot_files(results_files, output, metric=metric, title=title, select=select, rd=rd,
                             overwrite=overwrite)
    click.echo("wrote " + ", ".join(str(w) for w in written))


if __name__ == "__main__":
    main()
