"""Figures from results files only.

``plot_curves`` draws a metric against the channel parameter: one curve per
results object (model x receiver x channel), its 95% confidence band, and
each curve's clean PSNR as a dashed line. Probabilities get a log x-axis
(zero is left out of the axis and reported in the legend label). Saved as
PNG and/or PDF by the file suffix.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from vqcodec.results import ResultsError, metrics_in, search_tag

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
    return [r for r in results if any(fnmatch.fnmatch(curve_label(r), pat) for pat in patterns)]


def curve_label(res: dict) -> str:
    label = res.get("label")
    if label:
        return label
    return f"{res['model'].get('name', '?')}{search_tag(res['model'].get('search'))} · {res['receiver']}"


def budget_caption(results: Sequence[dict]) -> str:
    """' · cbr 1/12 (channel uses / 3 pixels)' when every point of every curve states a bandwidth
    ratio and they agree within 3% (whole symbols round a stream up a little); else ''."""
    cbrs = [float(p["cbr"]) for r in results for p in r["points"] if isinstance(p.get("cbr"), (int, float))]
    if not cbrs or len(cbrs) != sum(len(r["points"]) for r in results) or max(cbrs) > 1.03 * min(cbrs):
        return ""
    c = float(np.median(cbrs))
    f = Fraction(1, round(1 / c))  # the unit fractions papers use (1/6, 1/12, 1/24, ...)
    return f" · cbr 1/{f.denominator} (channel uses / 3 pixels)" if abs(float(f) - c) < 0.015 * c \
        else f" · cbr {c:.4g} (channel uses / 3 pixels)"


#: line styles of code rates (fixed designs); solid is the main curves' and oracles', dashed the bounds'
RATE_STYLES = [":", "-.", (0, (6, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (10, 2, 2, 2)), (0, (2, 2)),
               (0, (8, 2, 1, 2, 1, 2)), (0, (4, 1)), (0, (1, 2, 4, 2))]
CLEAN_STYLE = (0, (1, 4))  # a model's clean-channel PSNR line (sparse dots; no curve uses it)
_SHARED = (("modulation", "{}"), ("demapping", "{} demapping"), ("hard", "hard decisions"), ("code", "{}"),
           ("block_bits", "coherence {} bits"), ("burst_length", "bursts of {} bits"), ("packet_bits", "{}-bit packets"))


def curve_role(res: dict) -> tuple[str, str, str]:
    """(colour key, style key, kind) of a curve: one colour per codec (a VQ model with its receiver,
    a classical codec, Deep JSCC, vqcodec best) and one line style per code rate; ``kind`` is
    ``main`` (a VQ receiver or Deep JSCC), ``fixed`` (a fixed design: one code rate of a baseline,
    one configuration of ``best``), ``oracle`` (best digital, vqcodec best) or ``bound``."""
    model = res.get("model", {})
    name = str(model.get("name", "?"))
    if model.get("codec") is not None and "K" not in model:  # classical baselines
        key = f"codec:{model['codec']}"
        if name.endswith("best digital"):
            return key, "solid", "oracle"
        if name.endswith("separation bound"):
            return key, "bound", "bound"
        return key, f"rate:{model.get('rate', name)}", "fixed"
    if res.get("configuration"):  # one configuration of `vqcodec best`
        c = res["configuration"]
        return f"vq:{c.get('model')}{search_tag(c.get('search'))}", f"rate:{c.get('modulation')} {c.get('code')}", "fixed"
    if name == "vqcodec best":
        return f"vqcodec best{search_tag(model.get('search'))}", "solid", "oracle"
    if model.get("kind") == "deepjscc":
        return f"jscc:{name}", "solid", "main"
    code = res.get("channel", {}).get("code") or "none"
    key = f"vq:{name}{search_tag(model.get('search'))} · {res.get('receiver')}"
    return key, "solid" if code == "none" else f"rate:{code}", "main"


def _palette(n: int) -> list:
    import matplotlib  # matplotlib (~0.6 s to import) only when drawing

    base = list(matplotlib.colormaps["tab10"].colors)
    extra = list(matplotlib.colormaps["tab20"].colors)[1::2]  # the lighter tab20 shades
    cols = base + extra
    if n > len(cols):
        cols += [matplotlib.colormaps["hsv"](i / (n - len(cols) + 1)) for i in range(n - len(cols))]
    return cols


def _rate_order(key: str):
    """Code rates from the highest (uncoded) down, then anything else by name."""
    text = key.split(":", 1)[1].split()[-1].replace("ldpc-", "").replace("cc-", "")
    try:
        return (0, -(1.0 if text in ("uncoded", "none") else float(Fraction(text))), key)
    except (ValueError, ZeroDivisionError):
        return (1, 0.0, key)


def _rate_style(i: int):
    return RATE_STYLES[i] if i < len(RATE_STYLES) else (0, (1 + i % 7, 1 + i // 7))


def assign_styles(results: Sequence[dict]) -> list[dict]:
    """Colour, line style and weight of every curve: no two curves share both colour and line style
    (a clash, e.g. the same curve from two files, moves the later one to the next free style)."""
    roles = [curve_role(r) for r in results]
    colours = {}
    for key, _, _kind in sorted(roles, key=lambda r: r[2] == "fixed"):  # the heavy curves take the first colours
        colours.setdefault(key, len(colours))
    palette = _palette(len(colours))
    rate_keys = sorted({s for _, s, _ in roles if s.startswith("rate:")}, key=_rate_order)
    base = {"solid": "-", "bound": "--", **{k: _rate_style(i) for i, k in enumerate(rate_keys)}}
    used, out = set(), []
    for key, skey, kind in roles:
        ls = base[skey]
        n = len(rate_keys)
        while (key, str(ls)) in used:
            ls = _rate_style(n)
            n += 1
        used.add((key, str(ls)))
        out.append({"color": palette[colours[key]], "ls": ls, "kind": kind,
                    "lw": {"fixed": 1.0, "main": 1.8, "oracle": 2.4, "bound": 1.8}[kind],
                    "alpha": 0.45 if kind == "fixed" else 1.0,
                    "marker": {"fixed": ".", "main": "o", "oracle": "s", "bound": ""}[kind]})
    return out


def no_fit_note(res: dict) -> str:
    """' · 1/2 images do not fit (grey)' for a baseline curve some of whose images fit the budget at
    no quality (never sent; not channel failures); else ''."""
    counts = [p.get("no_fit") or 0 for p in res["points"]]
    if not any(counts):
        return ""
    worst = res["points"][int(np.argmax(counts))]
    n = len(worst.get("per_image") or []) or res.get("images", {}).get("count", "?")
    some = "" if len(set(counts)) == 1 else "up to "
    return f" · {some}{max(counts)}/{n} images do not fit (grey, not sent)"


def shared_caption(results: Sequence[dict]) -> str:
    """What every curve's channel shares beyond its kind (modulation, code, ...), e.g. ' · qpsk'."""
    parts = []
    for key, fmt in _SHARED:
        values = {str(r["channel"].get(key)) for r in results}
        if len(values) == 1 and all(r["channel"].get(key) not in (None, False, "none") for r in results):
            parts.append(fmt.format(results[0]["channel"][key]))
    if results and all(r["channel"].get("scramble") is False for r in results):
        parts.append("not scrambled")
    return "".join(f" · {p}" for p in parts)


def plot_curves(results: Sequence[dict], out: str | Path, metric: str = "psnr", title: str | None = None,
                anchors: Sequence[dict] = ()) -> list[Path]:
    """Draw ``metric`` against the channel parameter for every results object; returns files written.
    ``anchors`` ({name, x, y}: published PSNR points at channel parameters x) are drawn as labelled
    markers, never as our runs."""
    return _save(draw_curves(results, metric, title, anchors), out)


def draw_curves(results: Sequence[dict], metric: str = "psnr", title: str | None = None,
                anchors: Sequence[dict] = ()):
    """The figure of :func:`plot_curves` (not saved). One colour per codec and one line style per
    code rate (``assign_styles``); fixed designs drawn light and thin, the oracle and the bound
    heavy; confidence bands for the main curves only; the legend outside the axes, on the right;
    the title states the channel, what its curves share (modulation, code, cbr) and the images."""
    import matplotlib  # matplotlib (~0.6 s to import) only when drawing

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
    styles = assign_styles(results)
    clean_drawn = set()
    any_nofit = False
    for res, st in zip(results, styles):
        pts = sorted(res["points"], key=lambda p: float(p["param"]))
        x = np.array([float(p["param"]) for p in pts])
        y, ci = map(np.array, zip(*[_value(p, metric) for p in pts])) if pts else (np.array([]), np.array([]))
        keep = x > 0 if log_x else np.ones_like(x, dtype=bool)
        ax.plot(x[keep], y[keep], marker=st["marker"], ms=3 if st["kind"] == "fixed" else 4, lw=st["lw"],
                color=st["color"], ls=st["ls"], alpha=st["alpha"], label=curve_label(res) + no_fit_note(res),
                zorder=3 if st["kind"] == "fixed" else 4)
        nofit = np.array([bool(p.get("no_fit")) for p in pts], dtype=bool) & keep
        if nofit.any():  # images that fit the budget at no quality: marked apart from channel losses
            ax.scatter(x[nofit], y[nofit], marker="x", s=22, color=st["color"], alpha=max(st["alpha"], 0.7),
                       lw=1.0, zorder=5)
            any_nofit = True
        ci = np.nan_to_num(ci, nan=0.0)
        if st["kind"] == "main" and np.any(ci[keep] > 0):
            ax.fill_between(x[keep], (y - ci)[keep], (y + ci)[keep], color=st["color"], alpha=0.12, lw=0)
        clean = [p.get("psnr_clean") for p in pts if p.get("psnr_clean") is not None]
        model_name = res["model"].get("name")
        if metric == "psnr" and clean and "K" in res["model"] and model_name not in clean_drawn:
            clean_drawn.add(model_name)
            ax.axhline(float(clean[0]), color=st["color"], ls=CLEAN_STYLE, lw=1.0, alpha=0.8,
                       label=f"{model_name} clean channel ({float(clean[0]):.2f} dB)")
    for i, a in enumerate(anchors if metric == "psnr" else ()):
        ax.plot(a["x"], a["y"], "*^vD"[i % 4], ms=8, ls=":", lw=0.8, color="k", alpha=0.8,
                label=f"{a['name']} (published)")
    if any_nofit:
        ax.scatter([], [], marker="x", s=22, color="0.3", lw=1.0,
                   label="x: some images fit the budget at no quality (never sent, shown grey; not a CRC failure)")
    if log_x:
        ax.set_xscale("log")
    if metric in ("ber", "index_error_rate", "failure_rate") and any(
            _value(p, metric)[0] > 0 for r in results for p in r["points"]):
        ax.set_yscale("log")
    ax.set_xlabel(param_label(results[0]["channel"]) if len(kinds) == 1 else "channel parameter")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    images = results[0].get("images", {})
    ax.set_title(title or f"{', '.join(sorted(k for k in kinds if k))} channel{shared_caption(results)} · "
                          f"{Path(str(images.get('source', '?'))).name or '?'} ({images.get('count', '?')} images)"
                          f"{budget_caption(results)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    n = len(ax.get_legend_handles_labels()[1])
    legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                       ncol=2 if n > 24 else 1, frameon=False)
    fig.canvas.draw()  # the legend's size: the figure grows by it, so the axes keep theirs
    box = legend.get_window_extent()
    fig.set_size_inches(7.0 + box.width / fig.dpi + 0.15, max(4.6, box.height / fig.dpi + 0.9))
    fig.tight_layout()
    return fig


def _save(fig, out) -> list[Path]:
    import matplotlib.pyplot as plt  # matplotlib (~0.6 s to import) only when drawing

    out = Path(out)
    written = []
    known = out.suffix.lower() in (".png", ".pdf", ".svg")
    for suf in [out.suffix.lower()] if known else [".png", ".pdf"]:
        p = out if known else out.with_name(out.name + suf)
        tmp = p.with_name(f".{p.stem}.tmp{suf}")
        try:
            fig.savefig(tmp, bbox_inches="tight")  # a legend outside the axes stays in the file
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
    import matplotlib  # matplotlib (~0.6 s to import) only when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for r in results:
        if not r["points"] or any(p.get("bpp") is None or isinstance(p["bpp"], dict) for p in r["points"]):
            raise ResultsError(f"{r.get('name', '?')} ({curve_label(r)}): a rate-distortion plot needs a 'bpp' "
                               "number in every point (clean-channel results from eval, bench kodak-rd)")
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    models = sorted((r for r in results if "K" in r["model"]), key=lambda r: r["points"][0]["bpp"])
    def kind(r):
        coding = "fixed" if r["points"][0].get("coding", "fixed") == "fixed" else "entropy"
        search = r["model"].get("search")
        return coding + ("-rd" if search and search.get("rate") else "-search" if search else "")

    labels = []
    for coding, style, color, what, offset in (
            ("fixed", "o-", "C3", "fixed-length indices", (5, -12)),
            ("fixed-search", "s-", "C2", "fixed-length, encoder search", (5, 6)),
            ("fixed-rd", "s:", "C2", "fixed-length, rate-distortion search", (5, 6)),
            ("entropy", "D--", "C4", "entropy-coded files", (-12, 7)),
            ("entropy-search", "D-", "C4", "entropy-coded files, encoder search", (-12, 7)),
            ("entropy-rd", "D-", "C4", "entropy-coded files, rate-distortion search", (-12, 7))):
        curve = [r for r in models if kind(r) == coding]
        if not curve:
            continue
        x = [float(r["points"][0]["bpp"]) for r in curve]
        y = [_value(r["points"][0], metric)[0] for r in curve]
        ax.plot(x, y, style, lw=2, ms=6, color=color, label=f"vqcodec ({what})")
        labels += [ax.annotate(r["model"]["name"], (xi, yi), textcoords="offset points", xytext=offset, fontsize=8,
                               color=color) for r, xi, yi in zip(curve, x, y)]
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
    # outside the axes, on the right: inside, it covered the vqcodec curves between 0.45 and 0.8 bpp
    legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.canvas.draw()
    fig.set_size_inches(7.0 + legend.get_window_extent().width / fig.dpi + 0.15, 4.8)
    fig.tight_layout()
    separate_labels(fig, labels)
    return _save(fig, out)


def separate_labels(fig, labels) -> None:
    """Move each model label (an annotation offset from its marker) whose box overlaps an earlier
    label's to the other side of its marker, below instead of above or the reverse: models close in
    rate (f8-k256 and f8-k1024) would otherwise print over each other."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for a in labels:
        box = a.get_window_extent(renderer)
        if any(box.overlaps(b) for b in placed):
            dx, dy = a.xyann
            a.xyann = (dx, -dy - 8)  # the text's baseline mirrored about the marker (8-point text)
            box = a.get_window_extent(renderer)
        placed.append(box)


def plot_speed(doc: dict, out: str | Path, title: str | None = None) -> list[Path]:
    """Horizontal bars of the speed suite's image throughputs (log axis), one bar per row in images/s."""
    import matplotlib  # matplotlib (~0.6 s to import) only when drawing

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
