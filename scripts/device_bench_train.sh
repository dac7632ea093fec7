#!/usr/bin/env bash
# `ddft bench train` on a lent GPU, in under 4 minutes: the machine, the versions, then the grid.
#
# Run from the repository root:
#     bash scripts/device_bench_train.sh
# It times engine.train's own set-up and optimizer step under the paper preset, so it needs what
# engine.train needs: torch, transformers, peft and accelerate (the device image has them).
# engine.train reaches the preset code through engine.jobs, which loads the store only when
# its job functions are used, so SQLAlchemy and sqlmodel are not needed here.
# Raw output goes to $OUT/bench_train.txt and every number to $OUT/bench_train.json
# (./bench-out/ when OUT is unset). Extra arguments go to `python -m engine.bench_train`
# (e.g. `--set grad_accum=4`, `--preset tiny`).
set -uo pipefail

cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"
mkdir -p "$out"
log="$out/bench_train.txt"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
# Fewer, larger blocks: the grid frees and refills most of the memory between configurations.
export PYTORCH_ALLOC_CONF="${PYTORCH_ALLOC_CONF:-expandable_segments:True}"

{
  echo "# ddft bench train — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# command: bash scripts/device_bench_train.sh $*"
  nvidia-smi || echo "nvidia-smi: not available"
  "$python" - <<'PY'
import sys
import accelerate, peft, torch, transformers
print(f"python {sys.version.split()[0]} · torch {torch.__version__} (CUDA {torch.version.cuda}) · "
      f"transformers {transformers.__version__} · peft {peft.__version__} · "
      f"accelerate {accelerate.__version__}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
PY
  # 3 warm-up + 5 timed steps per configuration; configurations that would start after 170 s
  # are skipped (reported), and `timeout` is the backstop for the 4-minute budget. bf16 on only,
  # as the paper preset trains on a GPU (`--bf16 on,off` adds float32 rows: a 28 GB model).
  timeout --signal=INT --kill-after=10 225 "$python" -m engine.bench_train \
    --batch-sizes 1,2,4 --checkpointing on,off --bf16 on \
    --warmup 3 --steps 5 --budget-s 170 --json "$out/bench_train.json" "$@"
  echo "exit status: $?"
} 2>&1 | tee "$log"
