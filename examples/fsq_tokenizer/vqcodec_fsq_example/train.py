"""Train the FSQ tokenizer on a folder of images (a plain PyTorch loop).

    OMP_NUM_THREADS=1 python -m vqcodec_fsq_example.train --images DIR --minutes 10 --out weights/fsq-f8.safetensors

Random 128x128 crops (with horizontal flips) of every image under DIR, MSE loss, Adam with a cosine decay
over the time budget, bf16 autocast on the CPU, one thread. Writes the weights (safetensors) and, beside them,
a JSON record of the run.
"""

import argparse
import json
import math
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from vqcodec_fsq_example.model import FSQTokenizer

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def load_images(folder: Path, crop: int) -> list[torch.Tensor]:
    """Every image under folder at least crop pixels on each side, as uint8 (3, H, W) tensors."""
    images = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES):
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"))
        if min(a.shape[:2]) >= crop:
            images.append(torch.from_numpy(a.copy()).permute(2, 0, 1))
    return images


def sample(images: list[torch.Tensor], batch: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    """A batch of random crops as float32 (B, 3, crop, crop) in [0, 1]."""
    out = torch.empty(batch, 3, crop, crop, dtype=torch.uint8)
    for b in range(batch):
        im = images[int(torch.randint(len(images), (1,), generator=gen))]
        top = int(torch.randint(im.shape[1] - crop + 1, (1,), generator=gen))
        left = int(torch.randint(im.shape[2] - crop + 1, (1,), generator=gen))
        patch = im[:, top:top + crop, left:left + crop]
        out[b] = patch.flip(2) if torch.rand(1, generator=gen) < 0.5 else patch
    return out.float() / 255


def psnr(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-12))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, required=True, help="folder of training images (searched recursively)")
    p.add_argument("--minutes", type=float, required=True, help="training time budget")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=float, default=30.0, help="seconds between progress lines")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    images = load_images(args.images, args.crop)
    if not images:
        sys.exit(f"no images of at least {args.crop}x{args.crop} under {args.images}")
    model = FSQTokenizer()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(images)} images, {n_params} parameters, K = {model.K}", flush=True)

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget = args.minutes * 60
    start = last = time.monotonic()
    step, window, final_window, used = 0, [], [], torch.zeros(model.K, dtype=torch.bool)
    model.train()
    while (elapsed := time.monotonic() - start) < budget:
        # cosine decay from lr to lr / 10 over the time budget
        for group in opt.param_groups:
            group["lr"] = args.lr * (0.55 + 0.45 * math.cos(math.pi * elapsed / budget))
        x = sample(images, args.batch, args.crop, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            codes, indices = model.quantize(x)
            y = model.decode_codes(codes)
        loss = torch.mean((y.float() - x) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window.append(torch.mean((y.detach().float().clamp(0, 1) - x) ** 2).item())
        used[indices.flatten()] = True
        if time.monotonic() - last >= args.every:
            last = time.monotonic()
            print(f"step {step:6d}  {(last - start) / 60:5.1f} min  train PSNR {psnr(float(np.mean(window))):.2f} dB"
                  f"  codes used {int(used.sum())}/{model.K}  lr {opt.param_groups[0]['lr']:.2e}", flush=True)
            final_window, window, used = window, [], torch.zeros(model.K, dtype=torch.bool)
    final_window = window if len(window) >= 20 else final_window + window
    final_psnr = psnr(float(np.mean(final_window)))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={"format": "pt", "levels": "8,5,5,5", "f": "8"})
    record = {
        "command": "python -m vqcodec_fsq_example.train " + shlex.join(sys.argv[1:] if argv is None else argv),
        "steps": step,
        "minutes": round((time.monotonic() - start) / 60, 2),
        "final_train_psnr_db": round(final_psnr, 2),
        "final_window_steps": len(final_window),
        "images": len(images),
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "seed": args.seed,
        "parameters": n_params,
        "threads": torch.get_num_threads(),
        "precision": "bf16 autocast (FSQ rounding in float32)",
        "torch": torch.__version__,
        "vector_quantize_pytorch": version("vector-quantize-pytorch"),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"done: {step} steps, final train PSNR {final_psnr:.2f} dB -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
