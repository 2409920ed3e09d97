#!/usr/bin/env bash
# One prepared GPU session (issues 2 and 7), run from the repository root on a CUDA machine
# whose python3 has torch, numba, click, safetensors, scikit-image, scipy, matplotlib, tqdm.
#
#   DATA=.gpudata OUT=/tmp/gpu MINUTES=5.5 bash benchmarks/gpu_session.sh
#
# DATA holds bsds500/ (training) and kodak/ (a few 768x512 Kodak images for the speed suite);
# they are linked to ../shared/datasets, where the code looks for them. Steps, each under a
# timeout so that one failure cannot eat the session:
#   1. three decoder candidates for f4-k256 (encoder and codebook frozen), trained in parallel
#      for MINUTES each by `vqcodec train-decoder` (bf16 autocast), then tarred into OUT;
#   2. the speed suite on the GPU, shipped models plus the candidates;
#   3. the CUDA tests (tests/test_gpu.py).
set -u
DATA=${DATA:-.gpudata}
OUT=${OUT:?set OUT}
MINUTES=${MINUTES:-5.5}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NUMBA_NUM_THREADS=4
vq() { python3 -m cli "$@"; }
mkdir -p ../shared/datasets "$OUT/cand"
for d in bsds500 kodak; do [ -e ../shared/datasets/$d ] || ln -s "$PWD/$DATA/$d" ../shared/datasets/$d; done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, numba; print('torch', torch.__version__, 'numba', numba.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"

echo "== 1. decoder candidates ($MINUTES min each, in parallel)"
common=(--model f4-k256 --decoder-head subpixel --minutes "$MINUTES" --batch 64 --crop 128 --lr 1.5e-3
        --device "$DEVICE" --checkpoint-every 2000)
t_limit=$(python3 -c "print(int(60 * $MINUTES * 1.1 + 90))")
timeout "$t_limit" python3 -m cli train-decoder "${common[@]}" --decoder-channels 80 --decoder-res-blocks 2 \
    -o "$OUT/cand/f4-k256-s80x2" > "$OUT/cand/s80x2.log" 2>&1 &
timeout "$t_limit" python3 -m cli train-decoder "${common[@]}" --decoder-channels 64 --decoder-res-blocks 4 \
    -o "$OUT/cand/f4-k256-s64x4" > "$OUT/cand/s64x4.log" 2>&1 &
timeout "$t_limit" python3 -m cli train-decoder "${common[@]}" --decoder-channels 96 --decoder-res-blocks 1 \
    -o "$OUT/cand/f4-k256-s96x1" > "$OUT/cand/s96x1.log" 2>&1 &
wait
for f in "$OUT"/cand/*.log; do echo "-- $f"; tr '\r' '\n' < "$f" | grep -v '^$' | tail -2; done
for c in "$OUT"/cand/*.json; do
  vq eval --checkpoint "${c%.json}" --images "$DATA/kodak" --device "$DEVICE" 2>&1 | tail -1
done
tar -cf "$OUT/candidates.tar" -C "$OUT" cand && rm -rf "$OUT/cand"

echo "== 2. speed suite on the GPU"
mkdir -p "$OUT/cand_x" && tar -xf "$OUT/candidates.tar" -C "$OUT/cand_x"
ck=(); for c in "$OUT"/cand_x/cand/*.json; do ck+=(--checkpoint "${c%.json}"); done
timeout 240 python3 -m cli bench speed --device "$DEVICE" --batch "${BATCH:-64}" --out "$OUT/speedrun" "${ck[@]}" 2>&1 | tr '\r' '\n' | grep -v "it/s\]\|step/s\]\|^speed:"
tar -cf "$OUT/speed.tar" -C "$OUT" speedrun && rm -rf "$OUT/speedrun" "$OUT/cand_x"

echo "== 3. CUDA tests"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15
echo "== done"
