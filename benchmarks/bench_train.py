"""Training speed, fp32 against bf16 autocast, in one process (issue 26's training bars).

    .venv/bin/python benchmarks/bench_train.py [--threads 1] [--steps 4]
    .venv/bin/python benchmarks/bench_train.py --converge 2000 [--out runs/converge]

The first form times one training step of each shipped network's architecture (the step of the
one training loop, ``vqcodec.learn.loop``: forward, fp32 loss, backward, Adam) at both
precisions and prints ms per step, crops per second and the bf16 / fp32 ratio. The second trains
f4-k256's architecture from the same seed for N steps (16 crops of 128^2) at each precision with
``vqcodec.learn.codec.train`` on BSDS500 and compares the training loss over the last 200 steps.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._common import ROOT  # noqa: E402
from vqcodec.learn.loop import Loop, Task, TrainConfig  # noqa: E402


def _codec_task(cfg, batch: int, crop: int, decoder_only: bool = False):
    from vqcodec.model import VQVAE

    torch.manual_seed(0)
    model = VQVAE(cfg).to(memory_format=torch.channels_last).train()
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    if decoder_only:
        model.eval()
        params = list(model.decoder.parameters())

        def step(tc, rng, gen):
            with torch.no_grad(), torch.autocast("cpu", enabled=False):
                z = model.embed(model.encode(x))
            mse = F.mse_loss(model.decode_embeddings(z).float(), x)
            return mse, {}
        return Task(model, [params], step, train_mode=[model.decoder])

    def step(tc, rng, gen):
        out = model(x)
        return F.mse_loss(out["x_hat"].float(), x) + 0.25 * out["commit_loss"], {}
    return Task(model, [list(model.parameters())], step)


def _context_task(batch: int, crop: int):
    from vqcodec.bits import identity_assignment
    from vqcodec.context import ContextConfig, ContextNet

    torch.manual_seed(0)
    net = ContextNet(256, identity_assignment(256), ContextConfig())
    llr = torch.randn(batch, crop, crop, 8) * 4
    target = torch.randint(256, (batch * crop * crop,))

    def step(tc, rng, gen):
        return F.cross_entropy(net(llr).float().reshape(-1, 256), target), {}
    return Task(net, [list(net.parameters())], step)


def _jscc_task(batch: int, crop: int, width: int = 32):
    from vqcodec.jscc import DeepJSCC, JsccConfig

    torch.manual_seed(0)
    model = DeepJSCC(JsccConfig(c=8, width=width)).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)

    def step(tc, rng, gen):
        z = model.encode(x)
        return F.mse_loss(model.decode(z + 0.1 * torch.randn_like(z)).float(), x), {}
    return Task(model, [list(model.parameters())], step)


def networks():
    """(label, crops per step, task factory) of each shipped network's training step."""
    from vqcodec.zoo import load_codec

    f4 = load_codec("f4-k256").model.cfg
    s2 = load_codec("f8-s2-k256").model.cfg
    grown = dataclasses.replace(f4, decoder_channels=96, decoder_res_blocks=6)
    return [
        ("f4-k256 codec, 16 x 128^2", 16, lambda: _codec_task(f4, 16, 128)),
        ("f4-k256 decoder only, 16 x 128^2", 16, lambda: _codec_task(f4, 16, 128, decoder_only=True)),
        ("f4-k256 grown decoder 96x6, 16 x 128^2", 16, lambda: _codec_task(grown, 16, 128, decoder_only=True)),
        ("f8-s2-k256 codec, 16 x 128^2", 16, lambda: _codec_task(s2, 16, 128)),
        ("context receiver 64x4, 16 x 32^2 sites", 16, lambda: _context_task(16, 32)),
        ("Deep JSCC c8 w32, 16 x 64^2", 16, lambda: _jscc_task(16, 64)),
        ("Deep JSCC c8 w128, 16 x 64^2", 16, lambda: _jscc_task(16, 64, 128)),
    ]


def time_steps(make, precision: str, steps: int) -> float:
    """Median seconds per step of ``steps`` loop steps after one warm-up step."""
    task = make()
    times = []
    inner = task.step

    def timed(tc, rng, gen):
        times.append(time.perf_counter())
        return inner(tc, rng, gen)

    task.step = timed
    Loop(TrainConfig(steps=steps + 2, warmup=0, log_every=10 ** 6, checkpoint_every=10 ** 6,
                     precision=precision)).run(task)
    return statistics.median(np.diff(times[1:]))


def speed(args) -> None:
    print(f"one training step, {args.threads} torch thread(s), median of {args.steps} steps; ratio = fp32 / bf16 time")
    print(f"{'network':<42} {'fp32 ms':>9} {'bf16 ms':>9} {'ratio':>6} {'bf16 crops/s':>13}")
    for label, crops, make in networks():
        t32 = time_steps(make, "fp32", args.steps)
        t16 = time_steps(make, "bf16", args.steps)
        print(f"{label:<42} {1e3 * t32:>9.0f} {1e3 * t16:>9.0f} {t32 / t16:>6.2f} {crops / t16:>13.1f}", flush=True)


def converge(args) -> None:
    from vqcodec.learn.codec import train
    from vqcodec.zoo import load_codec

    cfg = load_codec("f4-k256").model.cfg
    images = ROOT.parent / "shared" / "datasets" / "bsds500"
    out = Path(args.out)
    losses = {}
    for precision in ("fp32", "bf16"):
        tc = TrainConfig(steps=args.converge, batch=16, crop=128, warmup=min(500, args.converge // 4),
                         checkpoint_every=10 ** 6, log_every=50, precision=precision)
        t0 = time.perf_counter()
        final = train(cfg, tc, images, out / precision, device="cpu")
        dt = time.perf_counter() - t0
        losses[precision] = final["train_mse"]
        print(f"{precision}: {args.converge} steps in {dt:.0f} s, training MSE over the last 200 steps "
              f"{final['train_mse']:.6f} ({final['train_psnr']:.2f} dB)", flush=True)
    rel = losses["bf16"] / losses["fp32"] - 1
    print(f"bf16 / fp32 - 1 = {100 * rel:+.2f}% (bar: within 2%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per network and precision")
    ap.add_argument("--converge", type=int, default=None, help="train N steps at each precision instead")
    ap.add_argument("--out", default="runs/converge", help="where --converge writes its two checkpoints")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    converge(args) if args.converge else speed(args)


if __name__ == "__main__":
    main()
