#!/usr/bin/env bash
# The one command for a lent GPU machine (see ../shared/GPU.md), sized for a 15-minute lease:
#   bash benchmarks/gpu_check.sh            (from the repository root, with .whl/ carried along)
# Installs soundfile and pyroomacoustics from .whl/ when they are missing (the machine has no
# internet) and echodepth without its dependencies, then runs the stages in $STAGES (default all),
# each with its own time limit, writing into $OUT (or ./gpu_check):
#   tests  the GPU tests (the guide's exact settings at batch 256 through micro-batches, auto
#          precision, channels-last equal to contiguous)                      -> gpu_tests.txt
#   bench  bench_train.py --preset guide for both networks (model-only and end to end, FLOPs,
#          TFLOP/s, share of peak, peak memory, micro-batch)                  -> bench_train.json
#   sizes  `echodepth train` of the CPU preset's recipe at several network sizes on the same data
#          (rendered at 128 x 128), test RMSE of each: the accuracy column of the latency
#          table in docs/tutorials/deploy.md, and the guide's full-size network against the baseline U-Net  -> sizes.json
# A dry run on a CPU first, at small sizes:
#   PRESET=cpu SIZES="4:16 8:16" EPOCHS=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_check}
PRESET=${PRESET:-guide}
PYTHON=${PYTHON:-python3}
STAGES=${STAGES:-sizes bench tests}  # run in this order
SIZES=${SIZES:-"16:32 32:64 64:128 64:256 unet:256"}  # base channels (or unet):image size
EPOCHS=${EPOCHS:-16}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import soundfile, pyroomacoustics" 2>/dev/null || {
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
}
"$PYTHON" -c "import echodepth" 2>/dev/null || "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1
ECHODEPTH=("$PYTHON" -m echodepth.cli)
(nvidia-smi --query-gpu=name,memory.total --format=csv || echo "no nvidia-smi") | tee "$OUT/gpu.txt"
"$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$OUT/gpu.txt"

tests() {
  timeout 150 "$PYTHON" -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
}

bench() {
  timeout 200 "$PYTHON" benchmarks/bench_train.py --preset "$PRESET" --steps 3 --repeats 3 --json > "$OUT/bench_train.json"
  "$PYTHON" -c "
import json; r = json.load(open('$OUT/bench_train.json'))
for name, e in r['models'].items():
    m, t = e['model_only'], e.get('end_to_end', {})
    print(name, f\"model-only {m['samples_per_s']:.0f}/s micro {m['micro_batch']} {m['precision']} \"
          f\"{m['achieved_tflops']:.0f} TFLOP/s peak-mem {m['peak_memory_gb'] or 0:.1f} GB; end-to-end {t.get('samples_per_s', 0):.0f}/s\")
" | tee -a "$OUT/summary.txt"
}

sizes() {
  RES=/tmp/echodepth_sizes
  for size in $SIZES; do
    channels=${size%%:*}
    side=${size##*:}
    if [[ $channels == unet ]]; then model=(--model unet_baseline); else model=(--base_channels "$channels"); fi
    start=$(date +%s)
    timeout 150 "${ECHODEPTH[@]}" train --experiment_name "size_${channels}_${side}" "${model[@]}" \
      --image_size "$side" --synth_image_size 128 --epochs "$EPOCHS" --num_workers 4 --results_dir "$RES" \
      --cache_dir /tmp/echodepth_cache --overwrite 2>&1 | grep -E "rmse|RMSE|error|Error" | tail -4
    echo "size_${channels}_${side}: $(( $(date +%s) - start )) s" | tee -a "$OUT/sizes_time.txt"
  done
  "$PYTHON" -c "
import json, pathlib
rows = {}
for p in sorted(pathlib.Path('$RES').glob('size_*/test_metrics.json')):
    rows[p.parent.name] = json.loads(p.read_text())
pathlib.Path('$OUT/sizes.json').write_text(json.dumps(rows, indent=2))
for name, m in rows.items():
    print(name, json.dumps(m)[:300])
" | tee -a "$OUT/summary.txt"
}

for stage in $STAGES; do
  echo "== $stage ($(date +%T))"
  "$stage"
done
