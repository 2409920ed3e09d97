"""What the commands share: one-line failures, progress bars, and the options several commands take
(one helper each, so that an option is added in one place)."""
from __future__ import annotations

import contextlib
import functools
import shlex
import sys

import click


def fail(msg: str) -> None:
    """End the command with ``Error: <the first line of msg>`` and exit status 1."""
    raise click.ClickException(str(msg).splitlines()[0] if msg else "failed")


@contextlib.contextmanager
def bars():
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


def run_with_progress(desc: str, steps: int | None, run, postfix):
    """``run(progress, command)`` under a progress bar; ``progress(step, metrics)`` shows
    ``postfix(metrics)`` (the metrics' ``steps`` is the total). ``command`` is the command line,
    for the training record. An OSError or SafetensorError (a full disk: the checkpoint writers
    leave no temporary file) becomes one line."""
    from safetensors import SafetensorError

    try:
        with bars() as show:
            return run(lambda step, m: show(desc, step, m.get("steps", steps), postfix(m), "step"), command_line())
    except (OSError, SafetensorError) as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{desc} stopped: {where}{getattr(exc, 'strerror', None) or exc} (no partial file is left)")


TRAIN_IMAGES = click.option(
    "--images", type=click.Path(), default=None,
    help="Folder of training images [default: ../shared/datasets/bsds500 when present (relative to the vqcodec "
         "project folder, not the current directory)].")
OUT_STEM = click.option("--out", "-o", required=True, type=click.Path(),
                         help="Output stem: writes OUT.safetensors + OUT.json.")
RESUME = click.option("--resume", is_flag=True,
                      help="Continue OUT's run with its saved settings, not these options' defaults (a larger --steps "
                           "stretches its schedule; a smaller one, above the steps done, anneals sooner).")
THREADS = click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
NOISE_SEED = click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
                           help="Seed of the initialisation, the crops and the channel noise [default: 0].")


def overwrite_option(what: str):
    return click.option("--overwrite", is_flag=True, help=f"Replace an existing {what}.")


TRAIN_PRECISION = click.option(
    "--precision", type=click.Choice(["auto", "bf16", "fp32"]), default=None,
    help="Training arithmetic: bf16 autocast (fp32 weights, quantiser and loss), or fp32; auto: bf16 on CUDA "
         "and on CPUs with AVX512-BF16 or AMX, else fp32 [default: auto].")


def training_options(fn):
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
        THREADS,
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, or auto."),
        TRAIN_PRECISION,
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def given(**options) -> dict:
    """The options given on the command line (an option not given is None: the library's default)."""
    return {k: v for k, v in options.items() if v is not None}


def command_line() -> str:
    """The command as typed, for the training record."""
    return "vqcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])

def flag(name: str) -> str:
    """The command line's spelling of a parameter of the library."""
    return {"scramble": "--no-scramble", "kind": "--channel"}.get(name, "--" + name.replace("_", "-"))


def model_options(fn):
    """The model a command runs and where: --model, --checkpoint, --device (every command that loads
    a codec by name takes them from here)."""
    fn = click.option("--device", default="auto", show_default=True,
                      help="cpu, cuda or auto (cuda when available) for encoding and decoding.")(fn)
    fn = click.option("--checkpoint", type=click.Path(), default=None,
                      help="Use your own checkpoint (stem, .json or .safetensors) instead of --model.")(fn)
    fn = click.option("--model", "-m", default=None, help="Shipped model or installed plug-in (see `vqcodec models`) [default: f4-k256].")(fn)
    return fn


def plugin_options(fn):
    """A model of another library through the codec protocol: --codec package.module:factory (or
    file.py:factory) and --weights FILE, which its factory loads (an installed plug-in is named
    with --model). --codec stands for --model; the command gets it as ``model``."""
    @functools.wraps(fn)
    def run(*args, codec_spec=None, **kwargs):
        if codec_spec is not None:
            if kwargs.get("model") is not None or kwargs.get("checkpoint") is not None:
                fail("give one of --codec, --model and --checkpoint")
            kwargs["model"] = codec_spec
        return fn(*args, **kwargs)

    run = click.option("--weights", type=click.Path(), default=None,
                       help="The weights file a plug-in model's factory loads (its side information is kept "
                            "beside it).")(run)
    return click.option("--codec", "codec_spec", default=None, metavar="MODULE:FACTORY",
                        help="A model of yours through the codec protocol: package.module:factory or "
                             "path/file.py:factory, a function weights -> vqcodec.wrap(...) model.")(run)


def precision_option(fn):
    return click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                        show_default=True,
                        help="Arithmetic of the decoder, the learned receiver and Deep JSCC: auto = bf16 on a CPU "
                             "with bf16 instructions (AVX512-BF16 / AMX), else fp32; fp16 needs CUDA. The "
                             "encoder and the indices are always fp32.")(fn)


def echo_precision(codec, requested) -> None:
    """One line: the precision in use, and why when ``auto`` chose it."""
    if requested == "auto":
        why = ("auto: this CPU has bf16 instructions; --precision fp32 for fp32" if codec.precision == "bf16"
               else "auto: " + ("fp32 on CUDA" if codec.device.type == "cuda"
                                else "this CPU has no bf16 instructions"))
    else:
        why = "--precision"
    click.echo(f"precision {codec.precision} ({why})")


def encode_bar(show, search):
    """The ``progress(done, total)`` of encoding: an "encode" bar for three images or more, and for
    any number while the encoder-side ``search`` (minutes per image) runs."""
    return lambda done, total: (total >= 3 or search is not None) and show("encode", done, total, unit="img")


def _search_setting(ctx, param, value):
    from vqcodec import api

    try:
        return api.SearchConfig.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def search_option(fn):
    return click.option(
        "--search", default="1", show_default=True, metavar="N[,guided=G,spacing=S,sweeps=W,rate=R]",
        callback=_search_setting,
        help="Encoder-side index search: at each site try the N nearest codewords (and G more that the "
             "decoder's gradient points to) and keep the one whose decoded pixels come closest (same rate, "
             "same decoder; encoding takes about 20 s per Kodak image on one core for 4, about 150 s for "
             "4,guided=3,spacing=7,sweeps=5); 1: nearest codeword. rate=R (entropy-coded files only, "
             "--entropy): weigh the entropy coder's code length too, squared error + R x (error / bits) "
             "x bits; 4,rate=1 gives smaller files that decode better.")(fn)


def codec_options(fn):
    """The codec a run encodes with: the model (model_options, plugin_options), its arithmetic
    (precision_option) and the encoder-side search (search_option)."""
    return model_options(plugin_options(precision_option(search_option(fn))))


def cluster_options(fn):
    fn = click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help="Run the trials on this running Dask scheduler.")(fn)
    fn = click.option("--workers", type=click.IntRange(1, 1024), default=None,
                      help="Run the trials on a local Dask cluster of this many processes [default: serial].")(fn)
    return fn


def channel_options(fn):
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


def stop_options(fn):
    fn = click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Base seed of every channel realisation.")(fn)
    fn = click.option("--ci", "ci", type=float, default=0.05, show_default=True,
                      help="Stop a point when the 95% CI half-width of mean PSNR is at most this (dB).")(fn)
    fn = click.option("--min-trials", type=click.IntRange(1), default=3, show_default=True,
                      help="Trials every point runs before the --ci rule may stop it (at most --trials).")(fn)
    fn = click.option("--trials", type=click.IntRange(1), default=10, show_default=True,
                      help="Trial budget per point (a trial = one channel realisation per image).")(fn)
    return fn
