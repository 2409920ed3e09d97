"""Output paths: refuse, before any work, an output that would replace something unasked or
cannot be written."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot or may not be written (one-line message naming it)."""


def check_output(path, overwrite: bool = False) -> None:
    """Raise ``OutputError`` when ``path`` is a directory, exists (unless ``overwrite``), or its
    folder is missing or not writable (probed with an empty file, removed at once)."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and p.is_dir():
        raise OutputError(f"{p}: is a directory")
    if p.exists() and not overwrite:
        raise OutputError(f"{p}: exists (use --overwrite to replace it)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{parent}: output directory does not exist")
    probe = parent / f".vqcodec-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{parent}: output directory is not writable "
                          f"({exc.strerror or exc.__class__.__name__})") from None


@contextlib.contextmanager
def exclusive(path):
    """Hold an exclusive lock on output ``path`` for a run (a ``.NAME.lock`` file beside it, flock):
    a second run writing the same file is refused with ``OutputError`` instead of one silently
    losing the other's results. No-op for ``None``."""
    if path is None:
        yield
        return
    p = Path(path)
    lock = p.with_name(f".{p.name}.lock")
    try:
        fh = open(lock, "a+")
    except OSError:  # no such or no writable folder: check_output says so, with its own message
        yield
        return
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{p}: another run is writing it now (lock {lock.name})") from None
        yield
        lock.unlink(missing_ok=True)
    finally:
        fh.close()


def replace_atomically(path, write) -> None:
    """``write(tmp_path)`` beside ``path``, then rename over it: readers never see half a file, and a
    failed write (a full disk) leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
