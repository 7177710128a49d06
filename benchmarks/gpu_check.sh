#!/usr/bin/env bash
# The one command that measures everything of the GPU issue on a lent GPU machine (see ../shared/GPU.md):
#   bash benchmarks/gpu_check.sh            (from the repository root, with .whl/ carried along)
# Installs soundfile and pyroomacoustics from .whl/ when they are missing (the machine has no
# internet), installs echodepth without its dependencies, then runs, each with its own time limit:
#   1. the GPU tests (the guide's exact settings at batch 256 through micro-batches, auto precision,
#      channels-last equal to contiguous),
#   2. bench_train.py --preset guide for both networks (model-only and end to end, FLOPs, TFLOP/s,
#      share of peak, peak memory, micro-batch), as JSON in $OUT (or ./gpu_check) and as text,
#   3. the model-only step with channels-last off and on, and with torch.compile, for the record.
# A dry run on a CPU first, at the small size: PRESET=cpu PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_check}
PRESET=${PRESET:-guide}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
"$PYTHON" -c "import soundfile, pyroomacoustics" 2>/dev/null || {
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
}
"$PYTHON" -c "import echodepth" 2>/dev/null || "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1
(nvidia-smi --query-gpu=name,memory.total --format=csv || echo "no nvidia-smi") | tee "$OUT/gpu.txt"
timeout 240 "$PYTHON" -m pytest -q -m gpu -rs tests/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
timeout 420 "$PYTHON" benchmarks/bench_train.py --preset "$PRESET" --steps 3 --repeats 3 --json > "$OUT/bench_train.json"
"$PYTHON" -c "
import json; r = json.load(open('$OUT/bench_train.json'))
for name, e in r['models'].items():
    m, t = e['model_only'], e.get('end_to_end', {})
    print(name, f\"model-only {m['samples_per_s']:.0f}/s micro {m['micro_batch']} {m['precision']} \"
          f\"{m['achieved_tflops']:.0f} TFLOP/s peak-mem {m['peak_memory_gb'] or 0:.1f} GB; end-to-end {t.get('samples_per_s', 0):.0f}/s\")
" | tee "$OUT/summary.txt"
for flags in "--no-channels_last" "--compile default"; do
  echo "model-only with $flags:" | tee -a "$OUT/summary.txt"
  timeout 240 "$PYTHON" benchmarks/bench_train.py --preset "$PRESET" --models base_residual $flags \
    --no-end_to_end --steps 3 --repeats 2 2>&1 | tail -3 | tee -a "$OUT/summary.txt"
done
