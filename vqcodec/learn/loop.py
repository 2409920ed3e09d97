"""The one training loop of vqcodec: every trainer in ``vqcodec.learn`` runs on it.

A trainer describes one optimisation step (``Task``: the module being trained, its optimiser
parameter groups, a ``step`` function that draws a batch and returns the loss, and a ``save``
function that writes the weights). ``Loop`` owns everything around that step, once for all
trainers:

* the schedule: Adam, linear warm-up then cosine decay (``lr_at``), gradient clipping;
* precision: the step runs under ``torch.autocast`` in bf16 (CPU with AVX512-BF16 or AMX, and
  CUDA) or fp32; the parameters, the optimiser state, the quantiser (``vqcodec.model`` keeps its
  nearest-codeword search and EMA statistics in fp32 under autocast) and the losses stay fp32;
* the ``minutes`` budget (``TimeBudget``: the step count that fills it is fixed after a short
  timing, so ``steps`` reproduces the run);
* checkpoints every ``checkpoint_every`` steps and resume: ``<out>.train.safetensors`` holds the
  optimiser moments and the torch generator, ``<out>.train.json`` the step, the numpy generator,
  the history and the run's settings (``TrainConfig``). The saved settings are the truth: a resumed
  run continues the same schedule (``resume_config``); an option that contradicts them is refused
  in one line, except ``steps``, which stretches the cosine tail (larger) or shortens it to anneal
  sooner (smaller, but more than the steps done: the learning rate drops to the new schedule's);
* logging: metrics averaged over the last ``window`` steps, every ``log_every`` steps, into the
  history and a ``progress(step, metrics)`` callback (the library never prints).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from channels.base import ParameterError
from vqcodec.checkpoint import CheckpointError
from vqcodec.files import replace_atomically, template_text
from vqcodec.precision import autocast, cpu_has_bf16

TRAIN_PRECISIONS = ("auto", "fp32", "bf16")


def training_precision(precision: str, device: str = "cpu") -> str:
    """The precision a training run uses: ``auto`` -> bf16 on CUDA and on CPUs with bf16
    instructions (``vqcodec.precision.cpu_has_bf16``), else fp32. (Inference's ``auto`` keeps fp32
    on CUDA, where fp16 is the mixed precision recommended for decoding.)"""
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if str(device).startswith("cuda") or cpu_has_bf16() else "fp32"


@dataclass(frozen=True)
class BaseTrainConfig:
    """The first fields of every trainer's config (``TrainConfig`` and the trainers' own, which
    redeclare the defaults they change and add their fields after these), with TrainConfig's
    defaults."""

    steps: int = 20000
    batch: int = 16
    crop: int = 64
    lr: float = 1.5e-3
    warmup: int = 500
    min_lr_ratio: float = 0.01


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    """The settings of one training run, saved with its checkpoints (the truth on resume)."""

    clip: float = 1.0  # gradient-norm clip; 0: none
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 25
    precision: str = "auto"  # resolved when the run starts (``training_precision``) and saved resolved

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "crop", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.warmup < 0 or not 0 <= self.min_lr_ratio <= 1 or not (self.clip >= 0 and math.isfinite(self.clip)):
            raise ValueError("need warmup >= 0, 0 <= min_lr_ratio <= 1 and a finite clip >= 0")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A saved config; runs saved before ``precision`` existed ran fp32."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("precision", "fp32")
        return cls(**known)


def settings_of(config: BaseTrainConfig, **changes) -> TrainConfig:
    """The loop's settings of a trainer's own config (a ``BaseTrainConfig``): its fields that ``TrainConfig``
    has, checkpoints only at the end unless it says otherwise, and ``changes``."""
    known = {k: v for k, v in asdict(config).items() if k in TrainConfig.__dataclass_fields__}
    known.setdefault("checkpoint_every", known.get("steps", 1))
    return TrainConfig(**{**known, **changes})


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to lr * min_lr_ratio."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


CALIBRATION_STEPS = (300, 480)


class TimeBudget:
    """A training run bounded by wall time instead of a step count: steps ``CALIBRATION_STEPS``
    (inside a warm-up of at least 480 steps, which does not depend on the step count) are timed,
    and the step count that fills the budget is fixed then, so the cosine schedule ends with the
    budget; the checkpoint records that count, and ``steps`` reproduces the schedule. Should the
    machine slow down later, ``over()`` stops the run at 1.1 x the budget. ``minutes`` None: no
    budget (every method is a no-op)."""

    def __init__(self, minutes: float | None, tc: TrainConfig):
        if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
            raise ValueError(f"minutes must be a positive number, got {minutes}")
        if minutes is not None and tc.warmup < CALIBRATION_STEPS[1]:
            raise ValueError(f"a time budget needs a warm-up of at least {CALIBRATION_STEPS[1]} steps")
        self.minutes, self.t0, self.t_calib, self.stopped_early = minutes, None, None, False

    def schedule(self, step: int, tc: TrainConfig) -> TrainConfig:
        """``tc`` with the budget's step count once calibrated (call before every step; the clock
        starts at the first call, after the data are loaded)."""
        if self.t0 is None:
            self.t0 = time.time()
        c0, c1 = CALIBRATION_STEPS
        if self.minutes is not None and step == c0:
            self.t_calib = time.time()
        if self.minutes is not None and step == c1 and self.t_calib is not None:
            per_step = (time.time() - self.t_calib) / (c1 - c0)
            left = self.minutes * 60 - (time.time() - self.t0)
            tc = dataclasses.replace(tc, steps=max(c1 + 1, c1 + int(left / per_step)))
        return tc

    def over(self) -> bool:
        """True (and ``stopped_early``) once the run is past 1.1 x its budget."""
        if self.minutes is not None and self.t0 is not None and time.time() - self.t0 > 1.1 * 60 * self.minutes:
            self.stopped_early = True
        return self.stopped_early

    def seconds(self) -> float:
        return 0.0 if self.t0 is None else time.time() - self.t0


# --------------------------------------------------------------------------- training state files

def state_paths(out) -> tuple[Path, Path]:
    """(``<out>.train.safetensors``, ``<out>.train.json``): what a resume needs beside the weights."""
    p = Path(out)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".train.safetensors"), p.with_name(p.name + ".train.json")


def read_state(out) -> dict:
    """The saved run (``step``, ``train_config``, ``history``, ...) of ``out``; one-line errors."""
    wpath, jpath = state_paths(out)
    if not (wpath.exists() and jpath.exists()):
        raise CheckpointError(f"{jpath}: no training state to resume from")
    try:
        doc = json.loads(jpath.read_text())
        doc["train_config"] = TrainConfig.from_dict(doc["train_config"])
        int(doc["step"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{jpath}: corrupt training state ({exc.__class__.__name__})") from None
    return doc


def resume_config(out, overrides: dict | None = None) -> TrainConfig:
    """The saved settings of ``out``'s run, with ``overrides`` (the options given on a resume)
    checked against them: one that contradicts the saved run is refused, except ``steps`` (the
    cosine tail stretches or shrinks to it; it must exceed the steps done) and ``precision``
    ``auto``."""
    doc = read_state(out)
    saved, done = doc["train_config"], int(doc["step"])
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in TrainConfig.__dataclass_fields__:
            raise ValueError(f"unknown training setting {key!r}")
        old = getattr(saved, key)
        if key == "precision" and value == "auto":
            continue
        if key == "steps" and value != old:
            if value <= done:
                raise ParameterError(f"{template_text(out)}: the run has done {done} of its {old} steps; a resumed run "
                                     "needs {0} above that (larger than the run's to stretch its schedule, smaller "
                                     "to anneal sooner)", key)
            changes[key] = value
            continue
        if value != old:
            raise ParameterError(f"{template_text(out)}: the run was started with {{0}} {old}; a resumed run keeps its saved "
                                 "settings (drop {0}, or start a new run)", key)
    return dataclasses.replace(saved, **changes)


def _save_state(out, step: int, opt: torch.optim.Optimizer, rng: np.random.Generator, gen: torch.Generator,
                tc: TrainConfig, history: list) -> None:
    from safetensors.torch import save_file  # looked up per call: tests patch safetensors.torch.save_file

    wpath, jpath = state_paths(out)
    tensors, scalars = {}, {}
    for pi, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pi}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pi}.{k}"] = v
    tensors["torch_generator"] = gen.get_state()
    replace_atomically(wpath, lambda tmp: save_file(tensors, str(tmp)))
    doc = {"step": step, "train_config": asdict(tc), "numpy_rng": rng.bit_generator.state,
           "scalars": scalars, "history": history}
    replace_atomically(jpath, lambda tmp: tmp.write_text(json.dumps(doc)))


def compact_state(out) -> tuple[int, int]:
    """Rewrite ``out``'s training state with the optimiser moments in bf16 (half the size: a long
    run's state committed beside its weights); the optimiser casts them back to fp32 on resume,
    so the resumed run is close to, not bitwise equal to, an uninterrupted one. Returns the file's
    size before and after."""
    from safetensors.torch import load_file, save_file  # looked up per call: tests patch safetensors.torch.save_file

    wpath, jpath = state_paths(out)
    before = wpath.stat().st_size
    tensors = {k: v.to(torch.bfloat16) if v.is_floating_point() and v.dim() and k != "torch_generator" else v
               for k, v in load_file(str(wpath)).items()}
    doc = json.loads(jpath.read_text())
    doc["compact"] = True
    replace_atomically(wpath, lambda tmp: save_file(tensors, str(tmp)))
    replace_atomically(jpath, lambda tmp: tmp.write_text(json.dumps(doc)))
    return before, wpath.stat().st_size


def _load_state(out, opt: torch.optim.Optimizer, rng: np.random.Generator, gen: torch.Generator) -> dict:
    from safetensors import SafetensorError  # safetensors only where a file is saved or loaded
    from safetensors.torch import load_file

    doc = read_state(out)
    wpath = state_paths(out)[0]
    try:
        tensors = load_file(str(wpath))
        sd = opt.state_dict()
        n_params = sum(len(g["params"]) for g in sd["param_groups"])
        state = {}
        for pi in range(n_params):
            st = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(pi)}
            st.update({k.split(".", 1)[1]: v for k, v in doc["scalars"].items() if k.split(".", 1)[0] == str(pi)})
            if st:
                state[pi] = st
        sd["state"] = state
        opt.load_state_dict(sd)
        rng.bit_generator.state = doc["numpy_rng"]
        gen.set_state(tensors["torch_generator"])
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{wpath}: corrupt training state ({str(exc).splitlines()[0][:100] or exc.__class__.__name__})") \
            from None
    return doc


# --------------------------------------------------------------------------- the loop

@dataclass
class Task:
    """One trainer's part of the loop.

    ``module``: what is trained (``train()`` for a step, ``eval()`` while saving); ``groups``: the
    optimiser's parameter groups (a group's ``lr`` is its peak learning rate, default ``tc.lr``;
    the schedule scales every group alike); ``step(tc, rng, gen)``: draws a batch and returns
    ``(loss, metrics)``, run under the loop's autocast (return an fp32 loss: cast the network's
    output with ``.float()`` before the loss); ``save(run)``: writes the weights with the run's
    record (``Run.record``), at checkpoints and at the end; ``train_mode``: modules to switch to
    ``train()`` for a step instead of the whole ``module`` (a frozen encoder stays in eval mode)."""

    module: torch.nn.Module
    groups: list
    step: Callable[[TrainConfig, np.random.Generator, torch.Generator], tuple[torch.Tensor, dict]]
    save: Callable[[Run], None] | None = None
    train_mode: list | None = None


@dataclass
class Run:
    """The state of a run that ``Task.save`` and the caller read."""

    tc: TrainConfig
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)
    minutes: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    device: str = "cpu"

    def record(self) -> dict:
        """The run's record for a checkpoint's json: steps done, settings, budget, device, torch."""
        return {"steps_done": self.step, "train_config": asdict(self.tc), "precision": self.tc.precision,
                "device": self.device,
                **({"minutes": self.minutes, "stopped_early": self.stopped_early} if self.minutes else {}),
                "seconds": round(self.seconds, 1), "torch": torch.__version__}


DIVERGENCE_FACTOR = 4.0


class TrainingDiverged(ValueError):
    """A run whose loss blew up: its last checkpoint is kept, not overwritten."""


def check_divergence(run: Run, recent: list[dict], window: int, saved_at: int | None) -> None:
    """Refuse to checkpoint a run whose loss over the last ``window`` steps is more than
    ``DIVERGENCE_FACTOR`` times the best it logged after warm-up (a collapse: Deep JSCC at width 128
    and lr 1.5e-3 fell from 23.9 to 6.3 dB train PSNR in 200 steps and never came back); raises
    ``TrainingDiverged`` so that the last good checkpoint stays on disk."""
    floor = run.tc.warmup + window
    past = [h["loss"] for h in run.history if h["step"] >= floor and "loss" in h]
    if len(past) < 2 or not recent:
        return
    now, best = float(np.mean([r["loss"] for r in recent])), min(past)
    if best > 0 and now > DIVERGENCE_FACTOR * best:
        kept = f"the checkpoint of step {saved_at} is kept" if saved_at else "no checkpoint was written"
        raise TrainingDiverged(f"training diverged at step {run.step}: loss {now:.4g} over the last {len(recent)} "
                               f"steps is more than {DIVERGENCE_FACTOR:g}x the best {best:.4g}; {kept} (start again "
                               "with a lower learning rate)")


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class Loop:
    """One training run. Build it first (its generators ``rng`` and ``gen``, seeded by
    ``tc.seed``, are for the trainer's data and model), then ``run(task)``.

    ``out``: where checkpoints and the training state go (None: no checkpoints, no resume);
    ``resume``: continue ``out``'s run (``tc`` should come from ``resume_config``); ``minutes``:
    a time budget instead of ``tc.steps`` (not with ``resume``)."""

    def __init__(self, tc: TrainConfig, *, out=None, resume: bool = False, minutes: float | None = None,
                 device: str = "cpu", progress: Callable[[int, dict], None] | None = None, window: int = 200):
        if minutes is not None and resume:
            raise ValueError("a resumed run keeps its recorded step count; give steps, not minutes")
        if resume and out is None:
            raise ValueError("resume needs the run's output path")
        self.tc = dataclasses.replace(tc, precision=training_precision(tc.precision, device))
        self.budget = TimeBudget(minutes, self.tc)
        self.out, self.resume, self.device, self.progress, self.window = out, resume, device, progress, window
        self.rng = np.random.default_rng(tc.seed)
        self.gen = torch.Generator().manual_seed(tc.seed)
        self.run_state = Run(self.tc, minutes=minutes, device=str(device))

    def autocast(self):
        return autocast(self.tc.precision, "cuda" if str(self.device).startswith("cuda") else "cpu")

    def _metrics(self, recent: list[dict], step: int, run: Run) -> dict:
        keys = [k for k in recent[-1] if all(k in m for m in recent)]
        m = {k: np.mean([r[k] for r in recent], axis=0) for k in keys}  # per element for list-valued metrics
        m = {k: v.tolist() if np.ndim(v) else float(v) for k, v in m.items()}
        if "mse" in m:
            m["psnr"] = _psnr(m["mse"])
        m.update(lr=lr_at(step - 1, run.tc), elapsed=self.budget.seconds())
        if self.budget.minutes is not None:
            m["steps"] = run.tc.steps
        return m

    def run(self, task: Task, *, weights_step: int | None = None) -> Run:
        """Train ``task`` to the end of the schedule (or the budget); returns the ``Run``.
        ``weights_step``: on resume, the step of the weights the trainer loaded (a pair of weights
        and state from different steps, left by an interrupted checkpoint write, is refused)."""
        run, tc = self.run_state, self.tc
        groups = [g if isinstance(g, dict) else {"params": g} for g in task.groups]
        peaks = [g.get("lr", tc.lr) for g in groups]
        params = [p for g in groups for p in g["params"]]
        opt = torch.optim.Adam([{**g, "lr": lr} for g, lr in zip(groups, peaks)])
        if self.resume:
            doc = _load_state(self.out, opt, self.rng, self.gen)
            run.step, run.history = int(doc["step"]), list(doc.get("history", []))
            if weights_step is not None and weights_step != run.step:
                raise CheckpointError(f"{self.out}: the weights are at step {weights_step} but the training state is "
                                      f"at step {run.step} (an interrupted checkpoint write); cannot resume from "
                                      "this pair")
        trainable = task.train_mode if task.train_mode is not None else [task.module]
        recent: list[dict] = []
        saved_at = None

        def checkpoint() -> None:
            check_divergence(run, recent, self.window, saved_at)
            run.seconds, run.stopped_early = self.budget.seconds(), self.budget.stopped_early
            task.module.eval()
            if task.save is not None:
                task.save(run)
            if self.out is not None:
                _save_state(self.out, run.step, opt, self.rng, self.gen, run.tc, run.history)

        while run.step < run.tc.steps:
            run.tc = self.budget.schedule(run.step, run.tc)
            if self.budget.over():
                break
            scale = lr_at(run.step, run.tc) / run.tc.lr
            for g, peak in zip(opt.param_groups, peaks):
                g["lr"] = peak * scale
            for m in trainable:
                m.train()
            with self.autocast():
                loss, metrics = task.step(run.tc, self.rng, self.gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if run.tc.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, run.tc.clip)
            opt.step()
            for m in trainable:
                m.eval()
            recent = (recent + [{"loss": float(loss.detach()), **metrics}])[-self.window:]
            run.step += 1
            if run.step % run.tc.log_every == 0 or run.step == run.tc.steps:
                run.metrics = self._metrics(recent, run.step, run)
                run.history.append({"step": run.step, **{k: [round(x, 4) for x in v] if isinstance(v, list)
                                                         else round(v, 6) for k, v in run.metrics.items()}})
                if self.progress:  # with the step count, so that a bar knows its total from the first call
                    self.progress(run.step, {**run.metrics, "steps": run.tc.steps})
            if run.step % run.tc.checkpoint_every == 0 or run.step == run.tc.steps:
                checkpoint()
                saved_at = run.step
        if recent:
            run.metrics = self._metrics(recent, run.step, run)
        if saved_at != run.step:  # stopped by the budget, or nothing left to run: the last state
            checkpoint()
        run.seconds = self.budget.seconds()
        task.module.eval()
        return run
