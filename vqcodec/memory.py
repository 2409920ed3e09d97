"""glibc malloc thresholds, for loops whose large temporary buffers would otherwise fragment the heap.

glibc serves a request below ``M_MMAP_THRESHOLD`` from the heap and raises that threshold
(up to 32 MiB) each time a large mmapped block is freed. A long loop of convolutions over
images of varying size then leaves freed activation buffers scattered between long-lived small
objects: encoding the 500 BSDS500 images with 2 torch threads grew the resident set to 7.7 GB.
Serving large buffers by mmap returns them to the system on free; it costs page faults, so it
is used only around such loops. No effect (and no error) off glibc.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_MMAP = 32 << 20  # glibc's ceiling for the dynamic threshold
DEFAULT_TRIM = 64 << 20


def set_malloc_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Fix glibc's mmap and trim thresholds; False where they cannot be set (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def large_buffers_mmapped(threshold: int = 1 << 20):
    """Within the block, buffers of ``threshold`` bytes or more are mmapped (returned on free);
    afterwards the thresholds are fixed at glibc's defaults for large buffers (32 MiB, 64 MiB)."""
    set_malloc_thresholds(threshold, DEFAULT_TRIM)
    try:
        yield
    finally:
        set_malloc_thresholds(DEFAULT_MMAP, DEFAULT_TRIM)
