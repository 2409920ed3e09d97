"""The training commands: train, train-jscc, train-decoder, finetune, train-codebook, train-receiver,
prepare and train-entropy (cli.py registers ``COMMANDS`` on its group)."""
from __future__ import annotations

import click

from vqcodec.commands.common import (
    NOISE_SEED,
    OUT_STEM,
    RESUME,
    THREADS,
    TRAIN_IMAGES,
    TRAIN_PRECISION,
    bars,
    command_line,
    fail,
    given,
    model_options,
    overwrite_option,
    plugin_options,
    run_with_progress,
    training_options,
)


@click.command()
@TRAIN_IMAGES
@OUT_STEM
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
@training_options
@click.option("--minutes", type=float, default=None,
              help="Train for this long instead of --steps (the step count that fills it is fixed after a "
                   "short timing and recorded; not with --resume).")
@click.option("--init", "init", type=click.Path(), default=None,
              help="Warm start from this checkpoint's weights and architecture (codebooks included); "
                   "--stages keeps its first S stages [default: all of them].")
@RESUME
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT (its state is lost).")
def train(images, out, f, K, d, channels, res_blocks, decoder_res_blocks, decoder_channels, decoder_head, stages,
          stage_dropout, steps, batch, crop, lr, seed, checkpoint_every, threads, device, precision, minutes, init,
          resume, overwrite):
    """Train a VQ-VAE on an image folder (with --stages S > 1: residual VQ)."""
    from vqcodec import api

    final = run_with_progress(
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


@click.command("train-jscc")
@click.option("--images", type=click.Path(), default=None,
              help="Training image folder [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@OUT_STEM
@click.option("--cbr", default="1/12", show_default=True,
              help="Bandwidth ratio, complex channel uses / (3 x pixels): c = 96 cbr symbol channels (an even number).")
@click.option("--width", type=click.IntRange(4, 512), default=32, show_default=True, help="Inner channels.")
@click.option("--snr-db", "snr_range", default="0:15", show_default=True,
              help="Training Es/N0 range LOW:HIGH in dB (uniform per crop).")
@RESUME
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT.")
@training_options
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
        fail(f"bad --snr-db {snr_range!r}: expected LOW:HIGH in dB")
    final = run_with_progress(
        "train-jscc", steps,
        lambda progress, command: api.train_jscc(
            out, images=images, cbr=cbr, width=width, snr_db=(lo, hi), minutes=minutes, resume=resume,
            overwrite=overwrite, device=device, threads=threads, progress=progress, command=command, steps=steps,
            batch=batch, crop=crop, lr=lr, seed=seed, checkpoint_every=checkpoint_every, precision=precision),
        lambda m: dict(psnr=f"{m['psnr']:.2f}", lr=f"{m['lr']:.1e}"))
    click.echo(f"wrote {out}.safetensors / {out}.json  train PSNR {final.get('train_psnr', float('nan')):.2f} dB "
               f"(at Es/N0 {lo:g}..{hi:g} dB)")


@click.command("train-decoder")
@click.option("--model", "-m", default=None, help="Base model whose encoder and codebook stay frozen [default: f4-k256].")
@click.option("--checkpoint", type=click.Path(), default=None, help="A base checkpoint instead of --model.")
@TRAIN_IMAGES
@OUT_STEM
@click.option("--decoder-channels", type=click.IntRange(1, 1024), default=None,
              help="Decoder width at the latent resolution [default: the base model's].")
@click.option("--decoder-res-blocks", type=click.IntRange(0, 16), default=None,
              help="Residual blocks at the latent resolution [default: the base model's].")
@click.option("--decoder-head", type=click.Choice(["stages", "subpixel"]), default=None,
              help="Upsampling: 2x stages, or one sub-pixel convolution [default: the base model's].")
@click.option("--minutes", type=float, default=None, help="Train for this long instead of --steps (the step count "
              "that fills it is fixed after a timing of steps 300-480 and recorded).")
@training_options
@click.option("--grow", is_flag=True, help="Start from the base model's decoder, grown to the new width and depth "
                                           "so that it first decodes the same image (sub-pixel heads only).")
@RESUME
@click.option("--overwrite", is_flag=True, help="Start a new training over an existing OUT (its state is lost).")
def train_decoder_cmd(model, checkpoint, images, out, decoder_channels, decoder_res_blocks, decoder_head, steps,
                      minutes, batch, crop, lr, seed, checkpoint_every, threads, device, precision, grow, resume,
                      overwrite):
    """Train a new decoder for a model whose encoder and codebook stay frozen.

    The transmitted indices do not change, so the base model's index assignment, prior and
    receiver tuning carry over; use it to make a faster or better decoder."""
    from vqcodec import api

    final = run_with_progress(
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


@click.command()
@model_options
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
@overwrite_option("output checkpoint")
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps [default: 3000].")
@click.option("--lr", type=float, default=None, help="Decoder learning rate [default: 2e-4].")
@click.option("--batch", type=click.IntRange(1), default=None, help="Crops per step [default: 16].")
@click.option("--crop", type=click.IntRange(8), default=None, help="Crop size in pixels [default: 64].")
@NOISE_SEED
@THREADS
@TRAIN_PRECISION
def finetune(model, checkpoint, device, kind, p, snr_db, receiver, images, out, overwrite, steps, lr, batch, crop,
             seed, threads, precision):
    """Fine-tune a model's decoder (codebook frozen) on what a receiver hands it after a channel."""
    from vqcodec import api

    final, what = run_with_progress(
        "finetune", steps,
        lambda progress, command: api.finetune(
            out, kind, receiver=receiver, model=model, checkpoint=checkpoint, images=images, p=p, snr_db=snr_db,
            overwrite=overwrite, device=device, threads=threads, progress=progress, command=command, steps=steps,
            lr=lr, batch=batch, crop=crop, seed=seed, precision=precision),
        lambda m: dict(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}"))
    click.echo(f"wrote {out}.safetensors / {out}.json (decoder fine-tuned for {what} through {receiver}; "
               f"train PSNR {final.get('psnr', float('nan')):.2f} dB)")


@click.command("train-codebook")
@model_options
@TRAIN_IMAGES
@click.option("--out", "-o", required=True, type=click.Path(), help="Output checkpoint stem (a new model).")
@overwrite_option("output checkpoint")
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
@NOISE_SEED
@THREADS
@TRAIN_PRECISION
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

    final, cc = run_with_progress(
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


@click.command("train-receiver")
@click.option("--model", "-m", default=None, help="Model to train the receiver for [default: f4-k256].")
@click.option("--checkpoint", type=click.Path(), default=None, help="A checkpoint of yours instead of --model.")
@plugin_options
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Write a copy of the model with the new receiver here (weights, json, index prior, entropy "
                   "model) [default: store the receiver beside the model itself].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out, or rewrite a shipped model's receiver in place (name it with --model).")
@TRAIN_IMAGES
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
@NOISE_SEED
@THREADS
@TRAIN_PRECISION
def train_receiver(model, checkpoint, weights, out, overwrite, images, steps, minutes, batch, crop, lr, width, blocks,
                   decoder_steps, decoder_crop, seed, threads, precision):
    """Train the learned context receiver of a model (receivers `learned`, `learned-mmse`).

    A small CNN learns the posterior of every index from the channel evidence of its
    neighbourhood, on the model's index maps of the training images sent through a random mix
    of channels (BSC, AWGN, packet and bit erasures). Stored beside the model; the transmitter
    does not change."""
    from vqcodec import api

    settings = given(steps=steps, batch=batch, crop=crop, lr=lr, width=width, blocks=blocks,
                      decoder_steps=decoder_steps, decoder_crop=decoder_crop, seed=seed, precision=precision)
    with bars() as show:
        def progress(stage, done, total, m):
            post = {"bits": f"{m['bits']:.3f}", **({"psnr": f"{m['psnr']:.2f}"} if "psnr" in m
                                                    else {"lr": f"{m['lr']:.1e}"})} if "bits" in m else None
            show(stage, done, total, post, "step" if stage == "train" else "it")

        record, stem = api.train_receiver(model=model, checkpoint=checkpoint, weights=weights, out=out,
                                          overwrite=overwrite,
                                          images=images, minutes=minutes, threads=threads, progress=progress,
                                          command=command_line(), **settings)
    click.echo(f"{stem}: context receiver trained ({record['training']['steps_run']} steps); "
               "held-out training images:")
    for key, v in record["validation"].items():
        click.echo(f"  {key:<22} {v['bits']:.3f} bits/index, MAP index error rate {v['index_error_rate']:.4f}")


@click.command()
@model_options
@plugin_options
@click.option("--images", type=click.Path(), default=None,
              help="Training images for the index statistics [default: ../shared/datasets/bsds500 (relative to the vqcodec project folder, not the current directory)].")
@click.option("--kodak", type=click.Path(), default=None,
              help="Also record clean Kodak metrics in the checkpoint [default: ../shared/datasets/kodak if present (relative to the vqcodec project folder, not the current directory)].")
@click.option("--keep-assignment/--new-assignment", default=None,
              help="Keep the checkpoint's index assignment, or optimise a new one [default: keep it for a "
                   "codebook trained for it by `vqcodec train-codebook`, else optimise].")
@click.option("--overwrite", is_flag=True,
              help="Rewrite a shipped model's prior, assignment and tuning in place (name it with --model).")
def prepare(model, checkpoint, weights, device, images, kodak, keep_assignment, overwrite):
    """Learn the index prior and the pseudo-Gray index assignment of a model and store them with it
    (a plug-in model: beside its weights file, in <stem>.vqcodec.json)."""
    from vqcodec import api

    with bars() as progress:
        summary, stem = api.prepare(model=model, checkpoint=checkpoint, weights=weights, images=images, kodak=kodak,
                                    keep_assignment=keep_assignment, overwrite=overwrite, progress=progress)
    ents, asgs = summary["entropy_bits"], summary["assignment"]
    staged = isinstance(ents, list)
    for s, (ent, a) in enumerate(zip(ents, asgs) if staged else [(ents, asgs)]):
        who = f"stage {s + 1}: " if staged else ""
        click.echo(f"{stem}: {who}index prior from {summary['image_count']} images: H = {ent['H']:.2f} bits, "
                   f"H(x|left) = {ent['H_given_left']:.2f}, H(x|up) = {ent['H_given_up']:.2f} "
                   f"(log2 K = {ent['log2K']:.3g})")
        if a.get("no_codebooks"):
            click.echo(f"{who}index assignment: identity (the model has no codebooks to optimise it on)")
        else:
            click.echo(f"{who}index assignment: one-flip distortion identity {a['identity_cost']:.4f} -> "
                       + (f"kept {a['final_cost']:.4f}" if a.get("kept") else f"BSA {a['final_cost']:.4f}"))
    click.echo(f"spatial receiver tuned on held-out training images: lam = {summary['lam']}, "
               f"beta = {summary['beta']} (mean {summary['tuned_with']} loss {max(summary['tuning'].values()):.3f} dB "
               f"over BSC p = 0.01, 0.03)")
    if "kodak" in summary:
        k = summary["kodak"]
        usage = ", ".join(f"{100 * u:.1f}%" for u in k.get("codebook_usage_stages", [k["codebook_usage"]]))
        xent = k["cross_entropy_bits"] if staged else [k["cross_entropy_bits"]]
        click.echo(f"Kodak: PSNR {k['psnr']:.2f} dB, MS-SSIM {k['ms_ssim']:.4f}, {k['bpp']:.4f} bpp, codebook usage "
                   f"{usage}{' per stage' if staged else ''}, perplexity {k['perplexity']:.1f}, context cross-entropy "
                   + ", ".join(f"{x['context_bits']:.2f}" for x in xent) + " bits/index (unigram "
                   + ", ".join(f"{x['unigram_bits']:.2f}" for x in xent) + ")")


@click.command("train-entropy")
@model_options
@plugin_options
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
def train_entropy(model, checkpoint, weights, device, images, steps, rank, seed, threads, overwrite):
    """Train the entropy coder's context model of a model's indices (used by `encode --entropy`
    and `eval --entropy`; stored as <stem>.entropy.safetensors)."""
    from vqcodec import api

    with bars() as progress:
        rec, stem = api.train_entropy(model=model, checkpoint=checkpoint, weights=weights, images=images, threads=threads,
                                      overwrite=overwrite, progress=progress,
                                      **given(steps=steps, rank=rank, seed=seed))
    click.echo(f"{stem}: context model trained ({rec['steps']} steps, rank {rec['rank']}, {rec['seconds']} s); held-out "
               f"training images: {rec['held_out_bits_per_index']:.3f} bits per index "
               f"(fixed-length {rec['fixed_bits_per_index']:.0f})")


COMMANDS = (train, train_jscc_cmd, train_decoder_cmd, finetune, train_codebook_cmd, train_receiver, prepare,
            train_entropy)
