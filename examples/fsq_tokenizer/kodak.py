"""The example plug-in on Kodak from Python: a BSC sweep with three receivers, the best digital link
at AWGN 7 dB and cbr 1/12, and the suite kodak-bsc-fsq.toml; results and figures under --out.

    python examples/fsq_tokenizer/kodak.py --out results/fsq-kodak     # from the vqcodec folder

Needs the plug-in installed (pip install -e examples/fsq_tokenizer) and prepared
(vqcodec prepare --model fsq-f8), and the Kodak images at ../shared/datasets/kodak.
"""
import argparse
from pathlib import Path

import vqcodec.api as vq

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent.parent / "shared"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="results/fsq-kodak", help="folder for the results files and figures")
parser.add_argument("--trials", type=int, default=2)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
kodak = SHARED / "datasets" / "kodak"

codec = vq.load("fsq-f8")  # the installed plug-in, with its prepared side information
curves = vq.sweep("bsc", [0.003, 0.01, 0.03], codec=codec, images=kodak, receivers="naive,mmse,spatial-mmse",
                  trials=args.trials, min_trials=args.trials, json_out=out / "bsc.json", overwrite=True)
for c in curves:
    print(c["receiver"], [(p["param"], round(p["psnr"]["mean"], 2)) for p in c["points"]])
vq.plot(curves, out / "bsc.png")

best = vq.best_sweep("awgn", [7.0], models=[codec], cbr="1/12", images=kodak, trials=args.trials,
                     min_trials=args.trials, json_out=out / "best.json", overwrite=True)
print("best at 7 dB:", best[-1]["points"][0]["configuration"], round(best[-1]["points"][0]["psnr"]["mean"], 2))

vq.use_bench_folders(suites=HERE, expected=HERE, anchors=SHARED / "anchors" / "compressai-kodak",
                     jscc_anchors=SHARED / "anchors" / "jscc-kodak", datasets=SHARED / "datasets")
run = vq.bench(str(HERE / "kodak-bsc-fsq.toml"), out=out)
print(f"suite kodak-bsc-fsq: {len(run.results)} curves, figures {[str(f) for f in run.figures]} in {run.run_dir}")
