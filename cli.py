"""The ``vqcodec`` command: parse, call the library, print.

Every failure the user can cause (bad paths, bad images, bad parameters,
corrupt files) ends in a one-line ``Error: ...`` and exit status 1 (click's
usage errors: 2); no traceback, no half-written output.

The training commands are in
vqcodec/commands/training.py, the options and helpers the commands share in
vqcodec/commands/common.py; this group registers them.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path

import click

from vqcodec.commands.common import (
    bars,
    channel_options,
    cluster_options,
    codec_options,
    echo_precision,
    encode_bar,
    fail,
    flag,
    given,
    overwrite_option,
    plugin_options,
    precision_option,
    search_option,
    stop_options,
)
from vqcodec.commands.training import COMMANDS


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


class _Main(click.Group):
    """The command group: every error the library raises for bad input (a ``ValueError`` of its
    own kind, or a cluster that cannot start) ends as one line and exit status 1."""

    def invoke(self, ctx):
        from vqcodec.api import ParameterError, UserError

        try:
            return super().invoke(ctx)
        except ParameterError as exc:  # named as the command line spells it
            fail(exc.spelled(flag))
        except UserError as exc:
            fail(str(exc))


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
def models():
    """List the shipped models and the installed plug-ins (entry-point group vqcodec.codecs)."""
    from vqcodec import api

    click.echo(f"{'name':<16} {'f':>3} {'K':>6} {'bpp':>7} {'Kodak PSNR':>11} {'receivers':<9} {'entropy':<7}  "
               "description")
    for m in api.models():
        if not m["installed"]:
            why = f"{m['description']}: {m['error']}" if m["plugin"] else "(weights not installed)"
            click.echo(f"{m['name']:<16} {'':>3} {'':>6} {'':>7} {'':>11} {'':<9} {'':<7}  {why}")
            continue
        K = f"{m['stages']}x{m['K']}" if m["stages"] > 1 else m["K"]
        kodak = f"{m['kodak_psnr']:.2f} dB" if m["kodak_psnr"] else "n/a"
        click.echo(f"{m['name']:<16} {m['f']:>3} {K:>6} {m['bpp']:>7.4f} {kodak:>11} {m['receivers']:<9} "
                   f"{m['entropy']:<7}  {m['description']}{' (default)' if m['default'] else ''}")
    click.echo("K: codebook size (SxK: S residual stages of K); receivers: S = spatial (index prior), "
               "L = learned (context receiver); naive and map always work")
    click.echo("entropy (encode/eval --entropy): the context model of its entropy-coded files, trained "
               "(vqcodec train-entropy) or from the index prior")
    click.echo("\nDeep JSCC, the analog reference (sweep --baselines deepjscc, over awgn or fading):")
    for j in api.jscc_models():
        if not j["installed"]:
            click.echo(f"{j['name']:<16} (weights not installed)")
            continue
        k = j["kodak"]
        kodak = ("; Kodak over AWGN " + ", ".join(f"{p:.2f} dB at {s:g} dB" for s, p in zip(k["snr_db"], k["psnr"]))
                 if k else "")
        click.echo(f"{j['name']:<16} cbr {Fraction(j['c'], 96)}, width {j['width']}, "
                   f"{j['parameters'] / 1e6:.1f} M parameters, {j['steps']} training steps{kodak}")


@main.command(name="channels")
def channels_cmd():
    """List the channel models, their parameter and their options (as `simulate` and `sweep` take them)."""
    import re

    from vqcodec import api

    for c in api.channel_kinds():
        known = (*c["options"], c["param"])
        doc = re.sub(r"``(\w+)``", lambda m, known=known: flag(m.group(1)) if m.group(1) in known else m.group(1),
                     c["doc"])
        opts = ", ".join(flag(o) for o in c["options"])
        click.echo(f"{c['name']:<15} {flag(c['param']):<9} {doc}" + (f" Options: {opts}." if opts else ""))


@main.command()
@click.argument("image", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Index file to write (.vqc).")
@codec_options
@click.option("--entropy", is_flag=True,
              help="Entropy-code the indices (ANS with the model's causal context model): a smaller file, "
                   "for storage or a clean link; without it every index keeps its fixed-length bits.")
@overwrite_option("--output file")
def encode(image, output, model, checkpoint, weights, device, precision, search, entropy, overwrite):
    """Encode IMAGE into a .vqc index file."""
    from vqcodec import api

    with bars() as show:
        f = api.encode_file(image, output, model=model, checkpoint=checkpoint, weights=weights, device=device,
                            precision=precision, search=search, entropy=entropy, overwrite=overwrite,
                            progress=None if search is None else lambda done, total: show("search", done, total,
                                                                                          unit="img"))
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
@plugin_options
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto (cuda when available).")
@precision_option
@overwrite_option("--output image")
def decode(index_file, output, checkpoint, weights, device, precision, overwrite, model=None):
    """Decode a .vqc index file into an image (with the model its header names, or the one given)."""
    from vqcodec import api

    header, codec = api.decode_file(index_file, output, model=model, checkpoint=checkpoint, weights=weights,
                                    device=device, precision=precision, overwrite=overwrite)
    click.echo(f"{index_file} -> {output} ({header['width']}x{header['height']}, decoded in {codec.precision})")


@main.command(name="eval")
@codec_options
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--entropy", is_flag=True,
              help="Rates of the entropy-coded .vqc files (real sizes, header included) instead of the "
                   "fixed-length stream.")
@click.option("--progressive", is_flag=True,
              help="A residual model (--stages): also the PSNR of decoding from the first s stages alone.")
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write a results file.")
@overwrite_option("--json results file")
def eval_cmd(model, checkpoint, weights, device, precision, search, images, entropy, progressive, json_out, overwrite):
    """Clean-channel evaluation: PSNR, MS-SSIM and bpp per image."""
    from vqcodec import api

    api.check_output(json_out, overwrite)
    codec = api.load(model, checkpoint=checkpoint, weights=weights, device=device, precision=precision,
                     search=search)
    echo_precision(codec, precision)
    with bars() as show:
        ev = api.evaluate(codec, images, entropy=entropy, progressive=progressive,
                          progress=encode_bar(show, search))
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
@channel_options
@click.option("--p", "p", type=float, default=None, help="Flip (bsc) / erasure / loss / average error probability.")
@click.option("--snr-db", type=float, default=None, help="Es/N0 in dB (awgn, fading).")
@codec_options
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--receiver", "-r", "receivers", default=None,
              help="Receiver(s), comma-separated (see `vqcodec receivers`) "
                   "[default: naive plus the model's best soft receiver: learned-mmse, else spatial-mmse].")
@stop_options
@cluster_options
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write a results file.")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="Write the originals and the first trial's reconstructions here.")
@click.option("--ms-ssim/--no-ms-ssim", "with_ms_ssim", default=True, help="Also measure MS-SSIM [default: on; off is faster].")
@overwrite_option("--json results file")
def simulate(**opts):
    """Send images through one channel point and measure what arrives."""
    _run_sweep("simulate", opts)


@main.command()
@channel_options
@click.option("--p", "p", default=None, help="Grid: '1e-4,1e-3,1e-2' or a log range 'START:STOP:N'.")
@click.option("--snr-db", default=None, help="Grid of Es/N0 values in dB: '0,2,4' or 'START:STOP:N' (linear).")
@codec_options
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@click.option("--receiver", "-r", "receivers", default=None,
              help="Receivers, comma-separated [default: naive plus the model's best soft receiver: learned-mmse, "
                   "else spatial-mmse].")
@stop_options
@cluster_options
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
@overwrite_option("--json results file")
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
        with bars() as show:
            results = run(**opts, on_plan=plan.append,
                          on_encode=encode_bar(show, opts.get("search")),
                          on_trial=on_trial,
                          on_baseline=lambda done, total, label: show("baselines", done, total, label, "point"),
                          on_results=lambda curves: _print_table(curves, plan[0].param))
    except KeyboardInterrupt:
        json_out = opts["json_out"]
        fail("interrupted" + (f"; the trials so far are in {json_out} (continue with --resume)"
                               if json_out and command == "sweep" and Path(json_out).exists() else ""))
    exp = plan[0]
    vq = results[:len(exp.receivers)]  # one per receiver (printed when they finished), then the baselines'
    if len(results) > len(vq):
        _print_baselines(results[len(vq):], exp.param, exp.budget)
    echo_precision(exp.codec, opts["precision"])  # after the work: a run that fails says one line, its error
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
              help="Shipped models or installed plug-ins to try, comma-separated, or all: every model `vqcodec models` lists (f4-k256 "
                   "and its fine-tuned variants, f8-k256, f8-k1024, f8-s2-k256).")
@click.option("--min-rate", type=click.FloatRange(0.1, 0.95), default=0.1, show_default=True,
              help="Leave out LDPC codes below this rate.")
@click.option("--block-bits", type=int, default=None,
              help="fading: coherence length in bits, one fade per block [default: the multiple of the bits per "
                   "symbol nearest 64: 64, or 66 for qam64].")
@click.option("--images", type=click.Path(), default=None, help="Image folder or file [default: scikit-image samples].")
@precision_option
@search_option
@stop_options
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Run the trials on a local Dask cluster of this many processes [default: serial].")
@click.option("--json", "json_out", type=click.Path(), required=True, help="Results file to write.")
@click.option("--ms-ssim/--no-ms-ssim", "with_ms_ssim", default=True, help="Also measure MS-SSIM [default: on; off is faster].")
@overwrite_option("--json results file")
def best(kind, snr_db, cbr, models, min_rate, block_bits, images, precision, search, trials, min_trials, ci, seed,
         workers, json_out, with_ms_ssim, overwrite):
    """Best configuration at equal channel uses: every (model, modulation, 5G LDPC rate) that fills
    --cbr, swept over --snr-db with the model's best soft receiver, and their envelope."""
    from vqcodec import api

    t_start = time.perf_counter()
    with bars() as show:
        results = api.best_sweep(kind, snr_db, models=models, cbr=cbr, images=images, trials=trials,
                                 min_trials=min_trials, ci=ci, seed=seed, with_ms_ssim=with_ms_ssim,
                                 min_rate=min_rate, workers=workers, precision=precision, search=search,
                                 on_configuration=lambda i, n, label: show("configurations", i, n, label, "config"),
                                 on_encode=encode_bar(show, search),
                                 json_out=json_out, overwrite=overwrite, **given(block_bits=block_bits))
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
@cluster_options
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
        with bars() as show:
            def progress(message):
                steps[0] += 1
                show(suite, steps[0], None, message)

            run = api.bench(suite, out=out, resume=resume, regenerate_expected=regenerate_expected, device=device,
                            checkpoints=checkpoints, batch=batch, precision=precision, workers=workers,
                            scheduler=scheduler, progress=progress, on_start=started)
    except KeyboardInterrupt:
        where = folder[0] if folder else resume or out
        fail(f"interrupted; the trials so far are in {where} (continue with --resume {where})")
    st = run.suite
    click.echo((run.run_dir / "summary.md").read_text())
    data = run.run_dir / ("speed.json" if st.kind == "speed" else "results.json")
    click.echo(f"wrote {data}, " + ", ".join(str(f) for f in run.figures) + f"  ({time.perf_counter() - t0:.1f} s)")
    if run.regenerated:
        click.echo(f"regenerated {run.regenerated}")
    elif run.mismatches:
        fail(f"{st.name}: {len(run.mismatches)} values differ from {st.expected}, e.g. {run.mismatches[0]}")
    elif run.mismatches is not None:
        click.echo(f"{st.name}: all {run.checked} values match {st.expected}")


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path())
@click.option("--compressai", "fmt", flag_value="compressai", required=True,
              help="Write CompressAI's {name, description, results: {psnr-rgb, ms-ssim-rgb, bpp}} form.")
@click.option("--output", "-o", required=True, type=click.Path(), help="File to write.")
@click.option("--name", default="vqcodec", show_default=True, help="The name the exported file gives the method.")
@overwrite_option("--output file")
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
@overwrite_option("--output figure")
def plot(results_files, output, metric, title, select, rd, overwrite):
    """Draw curves from results files."""
    from vqcodec import api

    written = api.plot_files(results_files, output, metric=metric, title=title, select=select, rd=rd,
                             overwrite=overwrite)
    click.echo("wrote " + ", ".join(str(w) for w in written))


for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
