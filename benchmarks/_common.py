"""Shared helpers of the benchmark scripts (not part of the package)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "datasets" / "kodak"


def images_arg(value: str | None):
    """Folder to use: the given one, else Kodak when present, else the bundled samples (None)."""
    if value:
        return value
    return str(KODAK) if KODAK.is_dir() else None


def timeit(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds (``vqcodec.speed.median_time`` on the CPU)."""
    from vqcodec.speed import median_time

    return median_time(fn, repeat=repeat, warmup=warmup)
