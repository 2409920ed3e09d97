#!/usr/bin/env bash
# One prepared GPU session for the training the CPU cannot do (issues 17 and 18), run from the
# repository root on a CUDA machine whose python3 has torch, numba, click, safetensors,
# scikit-image, scipy, matplotlib, tqdm:
#
#   DATA=.gpudata OUT=/tmp/gpu MINUTES=6 bash benchmarks/gpu_train.sh   # about 9 minutes of a 15-minute lease
#
# DATA holds bsds500/ (training) and kodak/ (the 24 test images); they are linked to
# ../shared/datasets, where the code looks for them. Three runs share the GPU, in parallel, each
# bounded by --minutes (the step count that fills the budget is fixed after a short timing and
# recorded in the checkpoint, so `--steps` reproduces the schedule):
#   a. q05-f4: a 0.5 bpp single-stage model, f4-k256 with a wider encoder and decoder;
#   b. q05-f8s4: a 0.5 bpp residual model, 4 stages of 256 at stride 8, wider decoder;
#   c. deepjscc-w128: Deep JSCC at cbr 1/12 with 128 inner channels (deepjscc-c8 has 32).
# Then each is evaluated on Kodak (clean PSNR of a and b; Deep JSCC at AWGN Es/N0 7 dB, the
# kodak-jscc table's point) into OUT/summary.txt, and the checkpoints are tarred into OUT.
# Everything runs under a timeout, so one failure cannot eat the session. Check it on the CPU at
# tiny scale first:
#
#   DATA=../shared/datasets OUT=/tmp/gpu DEVICE=cpu MINUTES=0.05 BATCH=2 CROP=32 PY=.venv/bin/python \
#       bash benchmarks/gpu_train.sh
set -u
DATA=${DATA:-.gpudata}
OUT=${OUT:?set OUT}
MINUTES=${MINUTES:-6}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-64}
PY=${PY:-python3}
CROP=${CROP:-128}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NUMBA_NUM_THREADS=4
mkdir -p ../shared/datasets "$OUT/ckpt"
for d in bsds500 kodak; do
  [ -e ../shared/datasets/$d ] || ln -s "$(cd "$DATA/$d" && pwd)" ../shared/datasets/$d
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"

echo "== 1. three trainings ($MINUTES min each, in parallel)"
common=(--minutes "$MINUTES" --batch "$BATCH" --crop "$CROP" --device "$DEVICE" --checkpoint-every 2000
        --images ../shared/datasets/bsds500 --seed 0)
t_limit=$("$PY" -c "print(int(60 * $MINUTES * 1.1 + 120))")
timeout "$t_limit" "$PY" -m cli train "${common[@]}" --f 4 --K 256 --channels 96,192 --res-blocks 2 \
    --decoder-head subpixel --decoder-channels 128 --decoder-res-blocks 6 --lr 1e-3 \
    -o "$OUT/ckpt/q05-f4" > "$OUT/ckpt/q05-f4.log" 2>&1 &
timeout "$t_limit" "$PY" -m cli train "${common[@]}" --f 8 --K 256 --stages 4 --channels 64,128,256 \
    --decoder-head subpixel --decoder-channels 256 --decoder-res-blocks 6 --lr 1e-3 \
    -o "$OUT/ckpt/q05-f8s4" > "$OUT/ckpt/q05-f8s4.log" 2>&1 &
timeout "$t_limit" "$PY" -m cli train-jscc "${common[@]}" --cbr 1/12 --width 128 --lr 1e-3 \
    -o "$OUT/ckpt/deepjscc-w128" > "$OUT/ckpt/deepjscc-w128.log" 2>&1 &
wait
for f in "$OUT"/ckpt/*.log; do echo "-- $f"; tr '\r' '\n' < "$f" | grep -v '^$' | tail -2; done

echo "== 2. Kodak"
{
  for m in q05-f4 q05-f8s4; do
    [ -e "$OUT/ckpt/$m.json" ] || { echo "$m: no checkpoint"; continue; }
    echo "$m: $(timeout 300 "$PY" -m cli eval --checkpoint "$OUT/ckpt/$m" --images ../shared/datasets/kodak \
        --device "$DEVICE" 2>&1 | tr '\r' '\n' | grep -E '^mean|^codebook' | tr '\n' ' ')"
  done
  if [ -e "$OUT/ckpt/deepjscc-w128.json" ]; then
    timeout 300 "$PY" - "$OUT/ckpt/deepjscc-w128" <<'EOF'
import sys
from vqcodec.analog import deepjscc_sweep
from vqcodec.images import list_images, load_image
images = [(p.name, load_image(p)) for p in list_images("../shared/datasets/kodak")]
pt = deepjscc_sweep(images, "awgn", [7.0], checkpoint=sys.argv[1], trials=1, seed=0)["points"][0]
print(f"deepjscc-w128: Kodak AWGN Es/N0 7 dB, cbr 1/12: {pt['psnr']['mean']:.2f} dB")
EOF
  fi
} 2>&1 | tee "$OUT/summary.txt"
tar -cf "$OUT/checkpoints.tar" -C "$OUT" ckpt && rm -rf "$OUT/ckpt"
echo "== done"
