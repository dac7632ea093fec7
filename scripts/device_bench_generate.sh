#!/usr/bin/env bash
# `ddft bench generate` on a lent GPU, in under 4 minutes: the machine, the versions, then the
# batched-against-one-at-a-time comparison at the Video-LLaVA-7B architecture (random weights).
#
# The device image has torch, transformers, typer and rich but not av (the bench writes its
# synthetic videos with it) or decord (ddft samples frames with it). Carry them as wheels, once,
# from the repository root here:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2010_x86_64 \
#         -d .whl av==18.1.0 decord==0.6.0
# (about 48 MB together), then run with carry [".whl"]:
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#         --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && \
#         bash scripts/device_bench_generate.sh
# Raw output goes to $OUT/bench_generate.txt (./bench-out/ when OUT is unset). Extra arguments
# go to `ddft bench generate` (e.g. --batch-sizes 1,8,32 --videos 64).
set -uo pipefail

cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"
mkdir -p "$out"
log="$out/bench_generate.txt"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  echo "# ddft bench generate — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# command: bash scripts/device_bench_generate.sh $*"
  nvidia-smi || echo "nvidia-smi: not available"
  "$python" - <<'PY'
import sys
import torch, transformers
print(f"python {sys.version.split()[0]} · torch {torch.__version__} (CUDA {torch.version.cuda}) · "
      f"transformers {transformers.__version__}")
for name in ("av", "decord"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError as exc:
        print(f"{name}: missing ({exc}); carry it as a wheel (see the script's header)")
PY
  # `timeout` is the backstop for the 4-minute budget.
  timeout --signal=INT --kill-after=10 225 "$python" -m engine.cli.main bench generate "$@"
  echo "exit status: $?"
} 2>&1 | tee "$log"
