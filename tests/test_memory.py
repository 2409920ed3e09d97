import ctypes
import platform

import pytest

from vqcodec import memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_are_set_on_glibc_and_restored_after_the_block(monkeypatch):
    calls = []
    real = memory.set_malloc_thresholds
    monkeypatch.setattr(memory, "set_malloc_thresholds", lambda m, t: calls.append((m, t)) or real(m, t))
    assert real(memory.DEFAULT_MMAP, memory.DEFAULT_TRIM) is True
    with memory.large_buffers_mmapped(1 << 20):
        assert calls == [(1 << 20, memory.DEFAULT_TRIM)]
    assert calls[-1] == (memory.DEFAULT_MMAP, memory.DEFAULT_TRIM)


def test_without_glibc_nothing_is_set_and_nothing_raises(monkeypatch):
    def no_libc(*a, **k):
        raise OSError("no libc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.set_malloc_thresholds(1 << 20, 1 << 26) is False
    with memory.large_buffers_mmapped():
        pass
