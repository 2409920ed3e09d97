import ctypes
import platform

import pytest

from vqcodec import memory

_PROBE = """
import ctypes, sys
from vqcodec import memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

def mmapped(n):  # served by mmap now? (mallinfo2's mmapped bytes grow); kept, so the heap cannot reuse it
    before = libc.mallinfo2().hblkhd
    libc.malloc(n)
    return libc.mallinfo2().hblkhd - before >= n

MiB = 1 << 20
raising = sys.argv[1] == "raise"
try:
    with memory.large_buffers_mmapped(1 * MiB):
        inside = mmapped(8 * MiB)
        if raising:
            raise KeyError("x")
except KeyError:
    pass
print(inside, mmapped(8 * MiB), mmapped(48 * MiB))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or tuple(map(int, platform.libc_ver()[1].split(".")[:2])) < (2, 33), reason="glibc >= 2.33 only")
@pytest.mark.parametrize("how", ["return", "raise"])
def test_large_buffers_are_mmapped_in_the_block_and_thresholds_fixed_at_the_defaults_after(how):
    """In a fresh process (the heap's state decides what a threshold changes): in the block an
    8 MiB buffer is mmapped (threshold 1 MiB); after it, also when the block raises, the
    thresholds are fixed at glibc's large-buffer defaults (mmap 32 MiB, trim 64 MiB), so the same
    buffer comes from the heap and a 48 MiB one is mmapped. Not the values from before the block:
    glibc cannot report those, and the code does not claim to restore them."""
    import subprocess
    import sys
    from pathlib import Path

    assert (memory.DEFAULT_MMAP, memory.DEFAULT_TRIM) == (32 << 20, 64 << 20)
    assert memory.set_malloc_thresholds(memory.DEFAULT_MMAP, memory.DEFAULT_TRIM) is True
    out = subprocess.run([sys.executable, "-c", _PROBE, how], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "True"]


def test_without_glibc_nothing_is_set_and_nothing_raises(monkeypatch):
    def no_libc(*a, **k):
        raise OSError("no libc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.set_malloc_thresholds(1 << 20, 1 << 26) is False
    with memory.large_buffers_mmapped():
        pass
