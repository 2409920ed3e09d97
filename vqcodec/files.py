"""Output paths: refuse, before any work, an output that would replace something unasked or
cannot be written, or that is not a regular file (a device, a FIFO: the atomic rename would replace
it with a regular file). Input paths: refuse a FIFO or a device instead of blocking on it."""
from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path

from channels.base import ParameterError


class OutputError(ValueError):
    """An output path that cannot or may not be written (one-line message naming it)."""


class OutputRefused(OutputError, ParameterError):
    """An output refused until a parameter (``overwrite``) allows it: a ``ParameterError`` naming
    it, ``OutputRefused(template, *names)``."""


def template_text(text) -> str:
    """``text`` (a path, a name) as it is inside a ``ParameterError`` template: braces doubled."""
    return str(text).replace("{", "{{").replace("}", "}}")


class InputError(ValueError):
    """An input path that is not a regular file (a FIFO, a device, a socket): reading it could hang
    or never end (one-line message naming it)."""


def _kind(mode: int) -> str:
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "a special file")


def special_kind(path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (following links): "a FIFO",
    "a character device", ...; ``None`` for a regular file or a path that does not exist."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def check_input(path) -> None:
    """Raise ``InputError`` when ``path`` exists and is not a regular file (a FIFO or a device
    would block a reader or never end); a missing file is left to the reader's own message."""
    kind = special_kind(path)
    if kind is not None and kind != "a directory":
        raise InputError(f"{path}: is {kind}, not a regular file")


def read_input_bytes(path, limit: int | None = None) -> bytes:
    """The bytes of regular file ``path``, opened without blocking (a FIFO or a device is refused
    with ``InputError``, never waited on); more than ``limit`` bytes is an ``InputError`` too.
    Other failures raise ``OSError`` as ``open`` does."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: is {_kind(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            raise InputError(f"{path}: {st.st_size} bytes is more than the limit of {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def read_document(path, max_bytes: int, parse: Callable[[str], object], error: type[Exception], *,
                  invalid: Callable[[Exception], str], too_deep: str, parse_errors: tuple[type[Exception], ...] = (),
                  unreadable: Callable[[OSError], str] | None = None):
    """``parse`` of the UTF-8 text of input file ``path`` (``read_input_bytes``: at most ``max_bytes``),
    every failure a one-line ``error`` of the caller's class: ``invalid(exc)`` for text that is not
    UTF-8 or that ``parse`` refuses with one of ``parse_errors``, ``too_deep`` for nesting past the
    recursion limit, ``InputError``'s own line (a FIFO, a device, too large), and ``unreadable(exc)``
    for an ``OSError`` (by default "PATH: cannot read (reason)")."""
    try:
        return parse(read_input_bytes(path, max_bytes).decode("utf-8"))
    except (UnicodeDecodeError, *parse_errors) as exc:
        raise error(invalid(exc)) from None
    except RecursionError:
        raise error(too_deep) from None
    except InputError as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})" if unreadable is None
                    else unreadable(exc)) from None


def check_output(path, overwrite: bool = False) -> None:
    """Raise ``OutputError`` when ``path`` is a directory, exists (unless ``overwrite``), or its
    folder is missing or not writable (probed with an empty file, removed at once)."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and p.is_dir():
        raise OutputError(f"{p}: is a directory")
    _refuse_special(p)
    if p.exists() and not overwrite:
        raise OutputRefused(f"{template_text(p)}: exists (use {{0}} to replace it)", "overwrite")
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


def _refuse_special(p: Path) -> None:
    kind = special_kind(p)
    if kind is not None:
        raise OutputError(f"{p}: is {kind}, not a regular file; outputs are written to a new regular "
                          "file and renamed over the old one, which would replace it (name a file)")


@contextlib.contextmanager
def exclusive(path):
    """Hold an exclusive lock on output ``path`` for a run (a ``.NAME.lock`` file beside it, flock):
    a second run writing the same file is refused with ``OutputError`` instead of one silently
    losing the other's results. No-op for ``None``."""
    if path is None:
        yield
        return
    p = Path(path)
    _refuse_special(p)
    lock = p.with_name(f".{p.name}.lock")
    try:
        fh = open(lock, "a+")
    except OSError:  # no such or no writable folder: check_output says so, with its own message
        yield
        return
    held = False
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{p}: another run is writing it now (lock {lock.name})") from None
        held = True
        yield
    finally:
        if held:  # on every way out, Ctrl-C and errors included: no .NAME.lock is left behind
            lock.unlink(missing_ok=True)
        fh.close()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_new_file(path) -> None:
    """Give ``path`` the mode of any new file (0644 under the usual umask), whatever mode its writer
    created it with (safetensors writes its files 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def replace_atomically(path, write) -> None:
    """``write(tmp_path)`` beside ``path``, then rename over it: readers never see half a file, and a
    failed write (a full disk) leaves no temporary file. The file gets the mode of any new file
    (0644 under the usual umask), whatever mode ``write`` created it with."""
    path = Path(path)
    _refuse_special(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        as_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
