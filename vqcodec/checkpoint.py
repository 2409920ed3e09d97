"""Checkpoint files: a safetensors file of tensors beside a JSON file of config and records.

A checkpoint stem ``NAME`` is the pair ``NAME.safetensors`` + ``NAME.json``; the JSON holds
``"format": "vqcodec.checkpoint/1"``, the network's ``"config"`` and whatever records the
training and preparation steps add (assignment, Kodak health, ...). Side-information files
(index prior, context receiver, context model) sit beside it under their own suffixes, one
part per residual stage (``stage_prefixes``). Checkpoints are never unpickled, and a file
that is missing, corrupt or does not match its config raises ``CheckpointError`` with a
one-line message.

The network itself is the caller's: ``save_checkpoint`` stores any module's state dict with
its config, ``load_checkpoint`` builds a module from the stored config and loads the weights
into it (``vqcodec.model.save_model`` / ``load_model`` for the VQ-VAE).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from vqcodec.files import InputError, as_new_file, check_input, read_document, replace_atomically

CHECKPOINT_FORMAT = "vqcodec.checkpoint/1"


class CheckpointError(ValueError):
    """A weights file that is missing, corrupt, or does not match its config (one-line message)."""


def stage_prefixes(stages: int) -> list[str]:
    """Key prefixes of a side-information file (prior, context receiver, context model) holding one
    part per stage: none for one stage, ``stage{s}.`` for each of several."""
    return [""] if stages == 1 else [f"stage{s}." for s in range(stages)]


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights.safetensors, config.json) for a stem, either file, or a directory holding one pair."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    # names may hold dots (f4-k256-bsc0.02): append, never replace, the suffix
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(module, config: dict, path, meta: dict | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (the module's state dict) and ``<stem>.json`` (``config`` +
    ``meta``), atomically."""
    from safetensors.torch import save_file  # looked up per call: tests patch safetensors.torch.save_file

    wpath, cpath = checkpoint_paths(path)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp_w = wpath.with_name(wpath.name + ".tmp")
    doc = {"format": CHECKPOINT_FORMAT, "config": config, **(meta or {})}
    tmp_c = cpath.with_name(cpath.name + ".tmp")
    try:
        save_file(state, str(tmp_w))
        as_new_file(tmp_w)
        tmp_c.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        os.replace(tmp_w, wpath)
        os.replace(tmp_c, cpath)
    except BaseException:  # a full disk, an interrupt: no temporary file stays behind
        tmp_w.unlink(missing_ok=True)
        tmp_c.unlink(missing_ok=True)
        raise
    return wpath, cpath


def write_record(cpath, doc: dict) -> None:
    """Replace a JSON record (a checkpoint's config, a plug-in's side document) atomically."""
    replace_atomically(cpath, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"))


def read_record(cpath, fmt: str, what: str) -> dict:
    """A JSON record whose ``format`` must be ``fmt``; ``what`` names it in the one-line
    ``CheckpointError`` for a corrupt or foreign file."""
    doc = read_document(cpath, 1 << 26, json.loads, CheckpointError, parse_errors=(json.JSONDecodeError,),
                        invalid=lambda exc: f"{cpath}: corrupt {what} ({exc.__class__.__name__})",
                        too_deep=f"{cpath}: corrupt {what} (JSON nested too deeply)")
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise CheckpointError(f"{cpath}: not a vqcodec {what} (format must be {fmt!r})")
    return doc


def write_checkpoint_meta(path, doc: dict) -> None:
    """Replace a checkpoint's JSON (config and records) atomically."""
    write_record(checkpoint_paths(path)[1], doc)


def read_checkpoint_meta(path) -> dict:
    _, cpath = checkpoint_paths(path)
    if not cpath.exists():
        raise CheckpointError(f"{cpath}: checkpoint config not found")
    return read_record(cpath, CHECKPOINT_FORMAT, "checkpoint config")


def load_checkpoint(path, parse_config: Callable[[dict], object], build: Callable) -> tuple:
    """``(module in eval mode, meta)`` of a checkpoint stem: ``parse_config`` turns the stored config
    into the network's (a TypeError or ValueError: invalid config), ``build`` makes the module of
    that config, and the weights file must hold exactly its tensors, with its shapes, all finite.
    Never unpickles."""
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.torch import load_file

    wpath, cpath = checkpoint_paths(path)
    doc = read_checkpoint_meta(path)
    try:
        cfg = parse_config(doc.get("config") or {})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{cpath}: invalid model config ({exc})") from None
    if not wpath.exists():
        raise CheckpointError(f"{wpath}: weights file not found")
    try:
        check_input(wpath)
        state = load_file(str(wpath))
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{wpath}: corrupt weights file ({str(exc).splitlines()[0][:120]})") from None
    module = build(cfg)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{wpath}: weights do not match config "
                              f"({len(missing)} missing, {len(extra)} unexpected tensors, e.g. {(missing + extra)[0]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{wpath}: weights do not match config ({k}: shape {tuple(state[k].shape)}, "
                                  f"config needs {tuple(v.shape)})")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()), None)
    if bad is not None:
        raise CheckpointError(f"{wpath}: weights hold NaN or Inf values (e.g. {bad}); the training diverged "
                              "or the file is damaged")
    module.load_state_dict(state)
    module.eval()
    return module, doc
