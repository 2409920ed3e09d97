"""Figures from results files only.

``plot_curves`` draws a metric against the channel parameter: one curve per
results object (model x receiver x channel), its 95% confidence band, and
each curve's clean PSNR as a dashed line. Probabilities get a log x-axis
(zero is left out of the axis and reported in the legend label). Saved as
PNG and/or PDF by the file suffix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vqcodec.results import ResultsError, metrics_in

METRIC_LABELS = {
    "psnr": "PSNR (dB, RGB)",
    "ms_ssim": "MS-SSIM (RGB)",
    "ber": "bit error rate",
    "index_error_rate": "index error rate",
    "failure_rate": "decode failure rate",
}
PARAM_LABELS = {
    "p": {"bsc": "BSC flip probability p", "erasure": "bit erasure probability p",
          "packet-erasure": "packet loss probability p", "burst": "average bit error rate p"},
    "snr_db": "Es/N0 (dB)",
}


def _value(point: dict, metric: str) -> tuple[float, float]:
    v = point.get(metric)
    if isinstance(v, dict):
        return float(v.get("mean", np.nan)), float(v.get("ci95", 0.0) if v.get("ci95") not in ("inf", None) else np.nan)
    if v is None:
        return np.nan, 0.0
    return float(v), 0.0


def param_label(channel: dict) -> str:
    param = channel.get("param", "p")
    lab = PARAM_LABELS.get(param, param)
    return lab.get(channel.get("kind"), "channel parameter p") if isinstance(lab, dict) else lab


def select_curves(results: Sequence[dict], patterns: Sequence[str]) -> list[dict]:
    """The results objects whose legend label matches any of the glob ``patterns``."""
    import fnmatch

    return [r for r in results if any(fnmatch.fnmatch(curve_label(r), pat) for pat in patterns)]


def curve_label(res: dict) -> str:
    label = res.get("label")
    if label:
        return label
    search = " +search" if res["model"].get("search") else ""  # the encoder-side index search
    return f"{res['model'].get('name', '?')}{search} · {res['receiver']}"


def budget_caption(results: Sequence[dict]) -> str:
    """' · cbr 1/12 (channel uses / 3 pixels)' when every point of every curve states a bandwidth
    ratio and they agree within 3% (whole symbols round a stream up a little); else ''."""
    from fractions import Fraction

    cbrs = [float(p["cbr"]) for r in results for p in r["points"] if isinstance(p.get("cbr"), (int, float))]
    if not cbrs or len(cbrs) != sum(len(r["points"]) for r in results) or max(cbrs) > 1.03 * min(cbrs):
        return ""
    c = float(np.median(cbrs))
    f = Fraction(1, round(1 / c))  # the unit fractions papers use (1/6, 1/12, 1/24, ...)
    return f" · cbr 1/{f.denominator} (channel uses / 3 pixels)" if abs(float(f) - c) < 0.015 * c \
        else f" · cbr {c:.4g} (channel uses / 3 pixels)"


def plot_curves(results: Sequence[dict], out: str | Path, metric: str = "psnr", title: str | None = None,
                anchors: Sequence[dict] = ()) -> list[Path]:
    """Draw ``metric`` against the channel parameter for every results object; returns files written.
    ``anchors`` ({name, x, y}: published PSNR points at channel parameters x) are drawn as labelled
    markers, never as our runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for res in results:
        have = metrics_in(res)
        if metric not in have:
            raise ResultsError(f"{res.get('name', '?')} ({curve_label(res)}) has no metric {metric!r}; "
                               f"it has: {', '.join(have) or 'none'}")
    kinds = {r["channel"].get("kind") for r in results}
    params = {r["channel"].get("param", "p") for r in results}
    if len(params) > 1:
        raise ResultsError(f"cannot draw different channel parameters on one axis: {', '.join(sorted(params))}")
    param = params.pop()
    log_x = param == "p" and any(float(p["param"]) > 0 and np.isfinite(_value(p, metric)[0])
                                 for r in results for p in r["points"])
    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    clean_drawn = set()
    for i, res in enumerate(results):
        pts = sorted(res["points"], key=lambda p: float(p["param"]))
        x = np.array([float(p["param"]) for p in pts])
        y, ci = map(np.array, zip(*[_value(p, metric) for p in pts])) if pts else (np.array([]), np.array([]))
        keep = x > 0 if log_x else np.ones_like(x, dtype=bool)
        color = colors[i % len(colors)]
        style = res.get("style", {})
        ax.plot(x[keep], y[keep], marker=style.get("marker", "o"), ms=4, lw=1.6, color=color,
                ls=style.get("ls", "-"), label=curve_label(res))
        ci = np.nan_to_num(ci, nan=0.0)
        if np.any(ci[keep] > 0):
            ax.fill_between(x[keep], (y - ci)[keep], (y + ci)[keep], color=color, alpha=0.2, lw=0)
        clean = [p.get("psnr_clean") for p in pts if p.get("psnr_clean") is not None]
        model_name = res["model"].get("name")
        if metric == "psnr" and clean and "K" in res["model"] and model_name not in clean_drawn:
            clean_drawn.add(model_name)
            ax.axhline(float(clean[0]), color=color, ls="--", lw=1.0, alpha=0.8,
                       label=f"{model_name} clean channel ({float(clean[0]):.2f} dB)")
    for i, a in enumerate(anchors if metric == "psnr" else ()):
        ax.plot(a["x"], a["y"], "*^vD"[i % 4], ms=8, ls=":", lw=0.8, color="k", alpha=0.8,
                label=f"{a['name']} (published)")
    if log_x:
        ax.set_xscale("log")
    if metric in ("ber", "index_error_rate", "failure_rate") and any(
            _value(p, metric)[0] > 0 for r in results for p in r["points"]):
        ax.set_yscale("log")
    ax.set_xlabel(param_label(results[0]["channel"]) if len(kinds) == 1 else "channel parameter")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    images = results[0].get("images", {})
    ax.set_title(title or f"{', '.join(sorted(k for k in kinds if k))} channel · "
                          f"{Path(str(images.get('source', '?'))).name or '?'} ({images.get('count', '?')} images)"
                          f"{budget_caption(results)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out) -> list[Path]:
    import matplotlib.pyplot as plt

    out = Path(out)
    written = []
    known = out.suffix.lower() in (".png", ".pdf", ".svg")
    for suf in [out.suffix.lower()] if known else [".png", ".pdf"]:
        p = out if known else out.with_name(out.name + suf)
        tmp = p.with_name(f".{p.stem}.tmp{suf}")
        try:
            fig.savefig(tmp)
            tmp.replace(p)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            plt.close(fig)
            raise ResultsError(f"{p}: cannot write the figure ({exc.strerror or exc.__class__.__name__}); "
                               "the previous file, if any, is unchanged") from None
        written.append(p)
    plt.close(fig)
    return written


def plot_rd(results: Sequence[dict], out: str | Path, anchors: Sequence[dict] = (), metric: str = "psnr",
            title: str | None = None) -> list[Path]:
    """Clean-channel rate-distortion: ``metric`` against bpp. VQ models (results with a K) form one
    curve through their rate points; every other results object (JPEG, WebP) is its own curve;
    ``anchors`` ({name, bpp, psnr}) are drawn as labelled markers (CompressAI's Kodak results)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for r in results:
        if not r["points"] or any(p.get("bpp") is None or isinstance(p["bpp"], dict) for p in r["points"]):
            raise ResultsError(f"{r.get('name', '?')} ({curve_label(r)}): a rate-distortion plot needs a 'bpp' "
                               "number in every point (clean-channel results from eval, bench kodak-rd)")
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    models = sorted((r for r in results if "K" in r["model"]), key=lambda r: r["points"][0]["bpp"])
    def kind(r):
        coding = r["points"][0].get("coding", "fixed")
        return "search" if coding == "fixed" and r["model"].get("search") else ("fixed" if coding == "fixed"
                                                                               else "entropy")

    for coding, style, color, what, offset in (("fixed", "o-", "C3", "fixed-length indices", (5, -12)),
                                               ("search", "s-", "C2", "fixed-length, encoder search", (5, 6)),
                                               ("entropy", "D--", "C4", "entropy-coded files", (-12, 7))):
        curve = [r for r in models if kind(r) == coding]
        if not curve:
            continue
        x = [float(r["points"][0]["bpp"]) for r in curve]
        y = [_value(r["points"][0], metric)[0] for r in curve]
        ax.plot(x, y, style, lw=2, ms=6, color=color, label=f"vqcodec ({what})")
        for r, xi, yi in zip(curve, x, y):
            ax.annotate(r["model"]["name"], (xi, yi), textcoords="offset points", xytext=offset, fontsize=8,
                        color=color)
    for i, r in enumerate(r for r in results if "K" not in r["model"]):
        pts = sorted(r["points"], key=lambda p: float(p["bpp"]))
        ax.plot([float(p["bpp"]) for p in pts], [_value(p, metric)[0] for p in pts], "-", lw=1.4, color=f"C{i}",
                label=r.get("label") or f"{r['model']['name'].upper()} (our run)")
    markers = "s^vD<>p*h"
    for i, a in enumerate(anchors):
        if metric != "psnr":
            break
        ax.plot(a["bpp"], a["psnr"], markers[i % len(markers)], ms=4, alpha=0.7, ls=":", lw=0.8,
                label=f"{a['name']} (CompressAI Kodak results)")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    model_bpp = [b for b in (float(r["points"][0]["bpp"]) for r in models) if np.isfinite(b)]
    xmax = max(model_bpp + [0.5]) * 2.0  # the region of the models, not the codecs' whole range
    ax.set_xlim(0, xmax if np.isfinite(xmax) else 1.0)
    xmax = ax.get_xlim()[1]
    ys = [_value(p, metric)[0] for r in results for p in r["points"] if float(p["bpp"]) <= xmax]
    ys += [v for a in anchors if metric == "psnr" for b, v in zip(a["bpp"], a["psnr"]) if b <= xmax]
    ys = [y for y in ys if np.isfinite(y)]
    if ys:
        ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.set_title(title or "clean-channel rate-distortion", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, out)


def plot_speed(doc: dict, out: str | Path, title: str | None = None) -> list[Path]:
    """Horizontal bars of the speed suite's image throughputs (log axis), one bar per row in images/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if r["unit"] == "images/s"]
    fig, ax = plt.subplots(figsize=(8.0, 0.32 * len(rows) + 1.4), dpi=120)
    labels = [f"{r['component']}: {r['detail']}"[:95] for r in rows]
    colors = {"encode": "C0", "decode": "C1", "encode+decode": "C3", "simulate": "C2"}
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r["value"] for r in rows], color=[colors.get(r["component"], "C7") for r in rows])
    for yi, r in zip(y, rows):
        ax.annotate(f"{r['value']:,.1f}", (r["value"], yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=6.5)
    ax.set_xscale("log")
    ax.set_xlabel("throughput (images per second, log scale)")
    ax.set_title(title or "speed", fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)
