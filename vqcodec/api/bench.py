"""Named benchmark suites as one call. Part of :mod:`vqcodec.api`, which re-exports every
public name."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.base import ParameterError
from vqcodec import suites as S
from vqcodec.api.training import given
from vqcodec.cluster import executor_for
from vqcodec.files import template_text
from vqcodec.precision import resolve_precision

# --------------------------------------------------------------------------- benchmark suites

@dataclass(frozen=True)
class BenchRun:
    """A finished suite run: its folder, results, figures, the precision it ran at, and how its
    values compare with the suite's stored expected ones (``mismatches``: none is a pass; None
    when the suite stores none or they were just regenerated)."""
    suite: Any
    run_dir: Path
    results: list
    figures: list
    precision: str
    mismatches: list | None
    regenerated: Path | None = None

    @property
    def checked(self) -> int:
        """How many stored values were compared."""
        return len(S.expected_values(self.results))


def use_bench_folders(*, suites, expected, anchors, jscc_anchors, datasets) -> None:
    """Name the folders the suites read (none of them lies inside the package): the suite files,
    their stored expected values, CompressAI's and the JSCC papers' published anchor points, and
    the named image sets (``images = "kodak"`` is ``datasets/kodak``). Call it before
    :func:`bench` and :func:`bench_suites`."""
    S.use_folders(suites=suites, expected=expected, anchors=anchors, jscc_anchors=jscc_anchors, datasets=datasets)


def bench_suites() -> dict[str, str]:
    """Every named suite with its description (or why its file is invalid)."""
    out = {}
    for name in S.available():
        try:
            out[name] = S.load_suite(name).description
        except S.SuiteError as exc:
            out[name] = f"(invalid: {exc})"
    return out


def bench(name: str, *, out="results", resume=None, regenerate_expected: bool = False, device: str = "auto",
          checkpoints: Sequence = (), batch: int | None = None, precision: str | None = None,
          workers: int | None = None, scheduler: str | None = None,
          progress: Callable[[str], None] | None = None,
          on_start: Callable[[Path, str, bool], None] | None = None) -> BenchRun:
    """Run the named suite into a new folder under ``out`` (or continue ``resume``, a run folder
    of the same suite). ``checkpoints`` and ``batch``: speed suites only; ``precision``: the
    networks' arithmetic (default: the suite's). ``regenerate_expected`` rewrites the suite's
    stored expected values instead of checking them. ``progress(message)`` after each step;
    ``on_start(folder, precision, from_auto)`` names the run folder (where an interrupted run
    resumes), the precision it runs at and whether ``auto`` chose it, before the work."""


    st = S.load_suite(name)
    if (checkpoints or batch) and st.kind != "speed":
        raise ParameterError("{0} and {1} apply to speed suites only", "checkpoint", "batch")
    st = dataclasses.replace(st, **given(batch=batch, precision=precision))
    # a speed suite resolves auto on its own device; the others run on the CPU
    shown = st.precision if st.kind == "speed" else resolve_precision(st.precision, "cpu")
    folder = st.images_folder()
    if folder is not None and not Path(folder).exists():
        raise ValueError(f"suite {st.name} needs images at {folder}, which does not exist")
    if resume:
        run_dir = Path(resume)
        S.check_resume_dir(st, run_dir)
    else:
        try:
            run_dir = S.new_run_dir(st, Path(out))
        except OSError as exc:  # a read-only current folder, a file named like out
            raise ParameterError(f"{template_text(exc.filename or out)}: cannot create the run folder "
                                 f"({exc.strerror or exc.__class__.__name__}); name a writable one with {{0}}",
                                 "out") from None
    expected = S.EXPECTED / st.expected if st.expected else None
    if expected and not regenerate_expected and not expected.is_file():
        raise ParameterError(f"suite {st.name}: its expected file {template_text(expected)} does not exist (run with {{0}} to "
                             "make it)", "regenerate_expected")
    if on_start:
        on_start(run_dir, shown, st.precision == "auto" and shown != "auto")
    executor = executor_for(workers, scheduler) if st.kind == "sweep" else None
    try:
        results, figures = S.run(st, run_dir, progress, device=device, checkpoints=checkpoints, executor=executor)
    except OSError as exc:
        raise ValueError(f"{exc.filename or run_dir}: cannot write ({exc.strerror or exc.__class__.__name__}); "
                         f"the finished points are in {run_dir}") from None
    finally:
        if hasattr(executor, "close"):
            executor.close()
    if expected and regenerate_expected:
        expected.write_text(json.dumps(S.expected_values(results), indent=1) + "\n")
        return BenchRun(st, run_dir, results, figures, shown, None, expected)
    return BenchRun(st, run_dir, results, figures, shown, S.check_expected(st, results) if expected else None)
