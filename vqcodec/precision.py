"""Arithmetic precision of the torch networks: fp32, or bf16 / fp16 autocast.

``resolve_precision`` turns what a user asked for (``auto``, ``fp32``, ``bf16``, ``fp16``) into
the precision that runs on a device; ``autocast`` is the one autocast context every network's
inference uses. Under it the convolutions and matrix products run in bf16 (fp32 accumulation
inside oneDNN / cuDNN); whatever must stay exact is computed outside it, in fp32: the
nearest-codeword search and the encoder that feeds it, channel LLRs and log-likelihoods, and
the posteriors handed to numba (network outputs are cast to fp32 before softmax).

bf16 on the CPU pays where the processor has bf16 instructions (AVX512-BF16, AMX-BF16:
Intel Cooper Lake and Sapphire Rapids onwards, AMD Zen 4 onwards); elsewhere oneDNN emulates
it, slower than fp32, so ``auto`` picks bf16 only where ``cpu_has_bf16`` says so.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: what ``auto`` means on a CPU with bf16 instructions (on CUDA, and on other CPUs, it means fp32)
AUTO_CPU_BF16 = "bf16"


def cpu_has_bf16() -> bool:
    """True when this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16) that oneDNN uses.

    Asks torch (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``), or where
    this torch lacks those, the flags of ``/proc/cpuinfo``. Tests monkeypatch this function to
    simulate another processor."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(p is not None for p in probes):
        try:
            return any(bool(p()) for p in probes)
        except RuntimeError:
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str | None, device: str | torch.device = "cpu") -> str:
    """The precision that runs on ``device`` (a device name, or a ``torch.device``):
    ``auto`` (or None) gives bf16 on a CPU with bf16 instructions and fp32 elsewhere (CUDA
    included); fp16 needs CUDA (the CPU's fp16 convolutions are slower than fp32 and lose more).
    Raises ``ValueError`` (one line) for an unknown name or fp16 on the CPU."""
    dev = torch.device(device).type
    if precision is None or precision == "auto":
        return AUTO_CPU_BF16 if dev == "cpu" and cpu_has_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "fp16" and dev != "cuda":
        raise ValueError("precision fp16 needs a CUDA device (the CPU runs fp32 or bf16)")
    return precision


def on_cpu(precision: str) -> str:
    """The precision of a network that runs on the CPU beside a codec at ``precision`` (the
    learned receiver, Deep JSCC): bf16 stays bf16, fp16 (CUDA only) becomes fp32."""
    return "bf16" if precision == "bf16" else "fp32"


def autocast(precision: str, device: str | torch.device = "cpu"):
    """The autocast context of a resolved precision on ``device`` (a no-op context for fp32, so
    an enclosing autocast, a training loop's, stays in force)."""
    dtype = DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def fp32_region(device: str | torch.device = "cpu"):
    """A region that runs fp32 even inside an enclosing autocast (LLRs, likelihoods, softmax)."""
    return torch.autocast(torch.device(device).type, enabled=False)
