"""Issue 31, items 3 and 4: a sweep with classical baselines and three receivers gives a figure whose
legend covers no curve, in which no two curves share colour and line style, whose title states what
the curves share, and in which images that do not fit the budget are reported apart from CRC
failures (table, results file, figure)."""
import json

import pytest
from click.testing import CliRunner

from cli import main


@pytest.fixture(scope="module")
def sweep_json(tmp_path_factory):
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("fig")
    imgs = d / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96]
    for i in range(2):  # one smooth image (fits the budget at a low code rate), one noisy (does not)
        img = np.stack([(x * 2 + 40 * i) % 256, (y * 3) % 256, (x + y) % 256], axis=2).astype(float)
        img += rng.normal(0, 2 + 60 * i, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(imgs / f"i{i}.png")
    out = d / "s.json"
    r = CliRunner().invoke(main, ["sweep", "--channel", "awgn", "--modulation", "qpsk", "--snr-db", "1,7",
                                  "--cbr", "1/12", "--receiver", "naive,spatial-mmse,learned-mmse",
                                  "--baselines", "jpeg,webp", "--rates", "none,cc-1/2,cc-1/4", "--images", str(imgs),
                                  "--trials", "1", "--min-trials", "1", "--no-ms-ssim", "--precision", "fp32",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_no_fit_is_counted_apart_from_crc_failures(sweep_json):
    out, text = sweep_json
    results = json.loads(out.read_text())
    fixed = [r for r in results if r["model"].get("rate")]
    pts = [p for r in fixed for p in r["points"]]
    assert any(p["no_fit"] for p in pts), "the test images should include one that does not fit"
    for p in pts:
        assert p["no_fit_rate"] == p["no_fit"] / len(p["per_image"])
        sent = [im for im in p["per_image"] if im["fits"]]
        assert all(im["failures"] == 0 for im in p["per_image"] if not im["fits"])
        lost = sum(im["failures"] for im in sent)
        assert p["failure_rate"] == (lost / (p["trials"] * len(sent)) if sent else 0.0)
    assert "no fit" in text and "fail" in text


def test_sweep_figure_legend_outside_unique_styles_and_a_title_that_says_what_is_shared(sweep_json):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from vqcodec.plot import draw_curves
    from vqcodec.results import read_results

    results = read_results(sweep_json[0])
    results = results if isinstance(results, list) else [results]
    fig = draw_curves(results)
    try:
        fig.canvas.draw()
        (ax,) = fig.axes
        legend = ax.get_legend()
        lb, ab = legend.get_window_extent(), ax.get_window_extent()
        assert lb.x0 >= ab.x1, (lb, ab)  # right of the axes: it covers no curve
        assert lb.x1 <= fig.bbox.x1 + 1 and lb.y0 >= fig.bbox.y0 - 1  # and inside the figure
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert len(lines) >= len(results)
        pairs = [(to_hex(ln.get_color()), ln.get_linestyle(), repr(ln._unscaled_dash_pattern)) for ln in lines]
        assert len(set(pairs)) == len(pairs), [ln.get_label() for ln in lines]
        by_label = {ln.get_label().split(" · ")[0]: ln for ln in lines}
        # one colour per codec: JPEG's fixed rates, oracle and bound share it; fixed designs are lighter
        jpeg = [ln for label, ln in by_label.items() if label.startswith("JPEG")]
        assert len({to_hex(ln.get_color()) for ln in jpeg}) == 1 and len(jpeg) == 5
        oracle = by_label["JPEG best digital (oracle)"]
        fixed = by_label["JPEG + CC r=1/2"]
        assert (fixed.get_alpha() or 1) < (oracle.get_alpha() or 1) and fixed.get_linewidth() < oracle.get_linewidth()
        title = ax.get_title()
        assert "qpsk" in title and "cbr 1/12" in title, title
        assert any("do not fit" in ln.get_label() for ln in lines)
    finally:
        plt.close(fig)


def test_model_labels_close_in_rate_are_moved_apart():
    """separate_labels: two models 0.02 bpp apart (f8-k256 and f8-k1024 on Kodak) print over each
    other at the same offset; afterwards no two label boxes overlap, and a lone label stays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vqcodec.plot import separate_labels

    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    ax.set_xlim(0, 1)
    ax.set_ylim(20, 36)
    labels = [ax.annotate(name, xy, textcoords="offset points", xytext=(-12, 7), fontsize=8)
              for name, xy in [("f8-k256", (0.072, 25.68)), ("f8-k1024", (0.091, 25.83)), ("f4-k256", (0.5, 29.0))]]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert labels[0].get_window_extent(r).overlaps(labels[1].get_window_extent(r))
    separate_labels(fig, labels)
    boxes = [a.get_window_extent(r) for a in labels]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(3) for j in range(i))
    assert labels[0].xyann == (-12, 7) and labels[1].xyann == (-12, -15) and labels[2].xyann == (-12, 7)
    plt.close(fig)
