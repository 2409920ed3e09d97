"""Encoder-side index search: choose each site's index by what the decoder makes of it.

The encoder's nearest-codeword rule picks, at every latent site, the codeword closest to the
encoder's output; the decoder then turns the grid of codewords into pixels through a nonlinear
network whose every output pixel mixes several sites. The index that minimises the pixel error
is often another one of the few nearest codewords. ``search_indices`` finds better grids by
coordinate descent on the decoded image, at the same rate (the indices stay fixed-length) and
with the same decoder, at the cost of encoding time:

* candidates: at each site, for each stage s, the ``candidates`` codewords of stage s nearest to
  what the other stages leave of the encoder output (for one stage: the nearest codewords), and
  ``guided`` more chosen by the decoder itself: with G the gradient of the image's squared error
  with respect to the site's code vector at the current grid, the codewords e_k with the least
  predicted change G . (e_k - e) + lam |e_k - e|^2 (a quadratic model of the error; lam, the
  decoder's mean curvature along codeword steps, is measured on the image at the start by moving
  a sparse lattice of sites to their second-nearest codeword). These are recomputed every sweep,
  so they follow the grid as it changes; they find codewords far from the encoder output that
  the decoder nevertheless prefers;
* sites are updated in ``spacing`` x ``spacing`` interleaved groups (sites of one group lie
  ``spacing`` apart); for a group, every candidate rank is tried at all of its sites at once (one
  decode per rank), and each site keeps the candidate with the least squared error in the
  ``spacing`` x ``spacing`` window of sites around it. Windows of one group do not overlap, so
  a site's choice is judged on the pixels it mostly affects; the few pixels further away that the
  decoder's receptive field reaches are the approximation;
* ``sweeps`` passes over all groups (and stages);
* for entropy-coded files, ``rate`` > 0 makes it a rate-distortion search: each candidate is
  judged by its window's squared error plus lam_R times the bits of every code length that its
  index enters under the entropy coder's context model (its own and those of the later sites that
  have it as a neighbour, ``vqcodec.entropy.dependents``: exact for one site, the others fixed).
  lam_R = rate x error / bits of the nearest-codeword grid, so ``rate`` is unit-free: at 1, a 1%
  smaller file is worth a 1% larger squared error. This is the rate-distortion optimised
  quantisation of classical coders (trellis quantisation in JPEG and H.264 encoders), with a
  learned decoder and a learned context model.

This is analysis-by-synthesis (as in CELP speech coding, Schroeder & Atal, ICASSP 1985) with a
learned synthesis filter; for learned image codecs the same idea is encoder-side latent
refinement at test time (e.g. Campos et al., "Content adaptive optimization for neural image
compression", CVPR workshops 2019; Yang et al., "Improving inference for neural image compression",
NeurIPS 2020), here over discrete indices: the gradient only proposes candidates (``guided``),
the exact decoded error chooses among them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vqcodec.entropy import code_length, dependents, site_bits
from vqcodec.images import pad_tensor
from vqcodec.model import VQVAE
from vqcodec.precision import autocast


@dataclass(frozen=True)
class SearchConfig:
    """The search's settings (recorded with every result it produced)."""

    candidates: int = 4  # nearest codewords tried per site and stage (1 and no guided: no search)
    spacing: int = 5  # sites of one group lie this far apart; each is judged on its spacing^2 window
    sweeps: int = 2  # passes over all groups and stages
    guided: int = 0  # more candidates per site and stage, chosen by the decoder's gradient each sweep
    rate: float = 0.0  # weight of the entropy coder's code length against the squared error (0: error only)

    def __post_init__(self) -> None:
        for name, lo, hi in (("candidates", 1, 64), ("spacing", 1, 15), ("sweeps", 1, 16), ("guided", 0, 64)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"search {name} must be an integer in [{lo}, {hi}], got {v!r}")
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 16.0:
            raise ValueError(f"search rate must be a number in [0, 16], got {r!r}")
        object.__setattr__(self, "rate", float(r))
        if r and not self.active:
            raise ValueError("search rate weighs the candidates of a search: it needs N >= 2 nearest candidates "
                             "or guided ones")
        if self.spacing % 2 == 0:
            raise ValueError(f"search spacing must be odd (a window centred on its site), got {self.spacing}")

    @property
    def active(self) -> bool:
        """Whether it searches at all (one nearest candidate and no guided ones is the plain encoder)."""
        return self.candidates + self.guided > 1

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("guided", "rate"):  # results written before these existed stay comparable
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def parse(cls, text) -> SearchConfig | None:
        """A setting as the command line writes it: ``N`` (N nearest candidates, the other settings
        at their defaults) or ``N,key=value,...`` with keys guided, spacing, sweeps, rate (e.g.
        ``4,guided=3,spacing=7,sweeps=5``, ``4,rate=1``). None for ``1`` (no search)."""
        head, *rest = [t.strip() for t in str(text).split(",")]
        kw = {}
        try:
            kw["candidates"] = int(head)
            for item in rest:
                key, sep, value = (t.strip() for t in item.partition("="))
                if not sep or key not in ("guided", "spacing", "sweeps", "rate") or key in kw:
                    raise ValueError(item)
                kw[key] = float(value) if key == "rate" else int(value)
        except ValueError:
            raise ValueError(f"search must be N or N,key=value,... with keys guided, spacing, sweeps, rate "
                             f"(e.g. 4,guided=3,spacing=7,sweeps=5), got {text!r}") from None
        cfg = cls(**kw)
        return cfg if cfg.active else None


def _window_error(model: VQVAE, grid: torch.Tensor, target: torch.Tensor, window: int) -> torch.Tensor:
    """Squared pixel error of the decoded ``grid`` summed over each site's ``window`` x ``window``
    window of sites: (B, h, w) for grids (B, S, h, w) and a padded target (1, 3, H, W)."""
    f = model.f
    err = (model.decode(grid if model.stages > 1 else grid[:, 0]).float() - target).pow(2).sum(1, keepdim=True)
    per_site = F.avg_pool2d(err, f) * (f * f)
    r = window // 2
    return F.avg_pool2d(per_site, window, stride=1, padding=r, count_include_pad=False)[:, 0] * (window * window)


def _stage_candidates(model: VQVAE, z: torch.Tensor, grid: torch.Tensor, stage: int, k: int) -> torch.Tensor:
    """(h, w, k): the k codewords of ``stage`` nearest to the encoder output ``z`` (h, w, d) minus
    the other stages' current codewords (nearest first)."""
    qs = model.quantizers
    rest = z.clone()
    for s, q in enumerate(qs):
        if s != stage:
            rest = rest - q.embedding[grid[s]]
    cb = qs[stage].embedding
    flat = rest.reshape(-1, rest.shape[-1])
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t() + cb.pow(2).sum(1)[None, :]
    return dist.topk(min(k, cb.shape[0]), largest=False).indices.view(*rest.shape[:2], -1)


def _code_gradient(model: VQVAE, grid: torch.Tensor, target: torch.Tensor, precision: str):
    """(squared error of the decoded ``grid`` (S, h, w) against ``target``, its gradient (h, w, d)
    with respect to the code vectors), the decoder at ``precision``; no parameter gradients."""
    e = model.embed(grid[None] if model.stages > 1 else grid[:1]).detach().float().requires_grad_(True)
    with torch.enable_grad():
        with autocast(precision, target.device):
            err = (model.decode_embeddings(e).float() - target).pow(2).sum()
        (g,) = torch.autograd.grad(err, e)
    return float(err.detach()), g[0].permute(1, 2, 0)


def _curvature(model: VQVAE, z: torch.Tensor, grid: torch.Tensor, target: torch.Tensor, precision: str,
               err: float, g: torch.Tensor, lattice: int = 11) -> float:
    """lam of the quadratic error model (half the error's mean second derivative along codeword steps),
    (E(e + delta) - E(e) - G . delta) / |delta|^2 with delta moving every ``lattice``-th site (both
    ways) of stage 0 to its second-nearest codeword (sites far apart, so their cross terms mostly
    cancel); ``err``, ``g``: ``_code_gradient`` at ``grid``. At least 1e-6: the model must penalise
    distance."""
    h, w = grid.shape[1:]
    second = _stage_candidates(model, z, grid, 0, 2)[..., -1]
    mask = torch.zeros((h, w), dtype=torch.bool, device=grid.device)
    mask[lattice // 2::lattice, lattice // 2::lattice] = True
    moved = grid.clone()
    moved[0] = torch.where(mask, second, grid[0])
    cb = model.quantizers[0].embedding.float()
    delta = cb[moved[0]] - cb[grid[0]]
    with torch.no_grad(), autocast(precision, target.device):
        err2 = float(_window_error(model, moved[None], target, 1).sum())
    norm = float(delta.pow(2).sum())
    if norm == 0.0:
        return 1e-6
    return max((err2 - err - float((g * delta).sum())) / norm, 1e-6)


def guided_candidates(codebook: torch.Tensor, current: torch.Tensor, grad: torch.Tensor, lam: float,
                      k: int) -> torch.Tensor:
    """(h, w, k): at each site, the k codewords of ``codebook`` (K, d) with the least predicted error
    change G . (e_k - e) + lam |e_k - e|^2 from the site's current codeword index ``current`` (h, w)
    and the error's gradient ``grad`` (h, w, d) (the current codeword, change 0, may be among them)."""
    cb = codebook.float()
    e = cb[current]  # (h, w, d)
    score = (grad @ cb.t() - (grad * e).sum(-1, keepdim=True)
             + lam * (cb.pow(2).sum(1) - 2 * e @ cb.t() + e.pow(2).sum(-1, keepdim=True)))
    return score.topk(min(k, cb.shape[0]), largest=False).indices


def _rates(context, trials: np.ndarray, stage: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(T, n): for each trial grid of ``trials`` (T, S, h, w), the bits of every code length that
    depends on the index of ``stage`` at site (rows[i], cols[i]) (``entropy.dependents``), summed per
    site. Trial 0 is the current grid; a later trial's sum is recomputed only where it differs
    from trial 0 at the site itself."""
    T, S, h, w = trials.shape
    out = np.zeros((T, rows.size))
    changed = [np.ones(rows.size, bool)] + [trials[k, stage, rows, cols] != trials[0, stage, rows, cols]
                                            for k in range(1, T)]
    for ds, di, dj in dependents(context, stage):
        r, c = rows + di, cols + dj
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        for k in range(T):
            sel = ok & changed[k]
            if sel.any():
                out[k, sel] += site_bits(trials[k], context, stage + ds, r[sel], c[sel])
    for k in range(1, T):
        out[k, ~changed[k]] = out[0, ~changed[k]]
    return out


@torch.no_grad()
def search_indices(model: VQVAE, x: torch.Tensor, cfg: SearchConfig = SearchConfig(), *,
                   precision: str = "fp32", progress=None, context=None) -> torch.Tensor:
    """Indices of one image x (1, 3, H, W) in [0, 1], shaped as ``model.encode``'s ((1, h, w), or
    (1, S, h, w)), chosen by the search of the module docstring. The encoder output and the
    candidates are fp32; the trial decodes run at ``precision`` (a resolved one). ``progress(done,
    total)`` after each group. Never worse than the nearest-codeword grid on the measure it
    minimises, up to the window approximation (a sweep that raised the image's error is undone).

    With ``cfg.rate`` > 0 the measure is the squared error plus lam_R times the code length, in bits,
    of the indices under ``context`` (the entropy coder's model, ``vqcodec.entropy``; required),
    lam_R = rate x (squared error / code length) of the nearest-codeword grid: a rate-distortion
    search for entropy-coded files (at the operating point, rate 1 weighs a 1% rate change as much
    as a 1% error change)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"search_indices takes one image (1, 3, H, W), got shape {tuple(x.shape)}")
    if not cfg.active:
        return model.encode(x)
    if cfg.rate and context is None:
        raise ValueError("a search with a rate weight needs the entropy coder's context model")
    S = model.stages
    target = pad_tensor(x, model.f)
    with torch.autocast(x.device.type, enabled=False):  # the encoder once: its output gives the start grid too
        z = model.encoder(target.contiguous(memory_format=torch.channels_last))[0].permute(1, 2, 0).float()
    h, w = z.shape[:2]
    grid = model.quantizer.nearest(z.reshape(h * w, -1)).reshape(h, w, S).permute(2, 0, 1).clone()  # (S, h, w)
    n = cfg.spacing
    total, done = cfg.sweeps * S * n * n, 0

    def image_error(g):
        with autocast(precision, x.device):
            return float(_window_error(model, g[None], target, 1).sum())

    def bits(g):  # the grid's code length under the coder's model ((h, w) grids for a single-stage one)
        if not cfg.rate:
            return 0.0
        maps = g.cpu().numpy().astype(np.int64)
        return code_length(maps if S > 1 else maps[0], context)

    best_err, bits0 = image_error(grid), bits(grid)
    lam_r = cfg.rate * best_err / max(bits0, 1.0)
    best_err += lam_r * bits0
    grad = lam = None
    if cfg.guided:
        err0, grad = _code_gradient(model, grid, target, precision)
        lam = _curvature(model, z, grid, target, precision, err0, grad)
    for _ in range(cfg.sweeps):
        before = grid.clone()
        for s in range(S):
            cand = _stage_candidates(model, z, grid, s, cfg.candidates)
            if cfg.guided:
                if grad is None:  # the grid has changed since the last gradient
                    grad = _code_gradient(model, grid, target, precision)[1]
                more = guided_candidates(model.quantizers[s].embedding, grid[s], grad, lam, cfg.guided)
                cand = torch.cat([cand, more], -1)
                grad = None
            # a candidate already tried at this site (a guided one among the nearest): not again
            repeat = torch.stack([(cand[..., j:j + 1] == cand[..., :j]).any(-1) for j in range(cand.shape[-1])], -1)
            for oy in range(n):
                for ox in range(n):
                    mask = torch.zeros((h, w), dtype=torch.bool, device=grid.device)
                    mask[oy::n, ox::n] = True
                    trials = [grid]
                    for j in range(cand.shape[-1]):
                        t = grid.clone()
                        t[s] = torch.where(mask & ~repeat[..., j], cand[..., j], grid[s])
                        if not torch.equal(t, grid):
                            trials.append(t)
                    if len(trials) > 1:
                        stacked_trials = torch.stack(trials)
                        with autocast(precision, x.device):
                            errs = _window_error(model, stacked_trials, target, n)  # (T, h, w)
                        if lam_r:
                            rows, cols = (a.numpy() for a in torch.nonzero(mask.cpu(), as_tuple=True))
                            r = _rates(context, stacked_trials.cpu().numpy().astype(np.int64), s, rows, cols)
                            errs[:, rows, cols] += lam_r * torch.from_numpy(r).to(errs)
                        pick = torch.where(mask, errs.argmin(0), 0)  # per site: the best trial (0: keep)
                        stacked = stacked_trials[:, s]
                        grid[s] = stacked.gather(0, pick[None])[0]
                    done += 1
                    if progress:
                        progress(done, total)
        err = image_error(grid) + lam_r * bits(grid)
        if err > best_err:  # the window approximation misjudged this sweep: keep the grid before it
            grid = before
            break
        best_err = err
    return grid[None] if S > 1 else grid[:1]
