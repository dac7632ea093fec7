#!/usr/bin/env bash
# Seconds from typing `ddft tui` to its first frame and to its first page of samples.
#
#     bash scripts/measure_tui_start.sh WORKSPACE [RUNS]
#
# Runs the workbench in a detached tmux pane (120x40) and polls the pane every 10 ms: the first
# frame is the title line "ddft — …", the first page is the label "rows 1–…". Needs tmux.
set -euo pipefail

workspace="${1:?usage: $0 WORKSPACE [RUNS]}"
runs="${2:-5}"
ddft="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/ddft"
command -v tmux >/dev/null || { echo "tmux is needed" >&2; exit 1; }

seconds_until() {  # PATTERN: seconds until PATTERN shows in a fresh pane running ddft tui
  local session="ddft-start-$$" start now
  start=$(date +%s.%N)
  tmux new-session -d -s "$session" -x 120 -y 40 "$ddft tui --workspace '$workspace'"
  until tmux capture-pane -p -t "$session" 2>/dev/null | grep -q "$1"; do
    sleep 0.01
    now=$(date +%s.%N)
    if (( $(echo "$now - $start > 30" | bc) )); then
      tmux kill-session -t "$session"; echo "timed out"; return
    fi
  done
  now=$(date +%s.%N)
  tmux kill-session -t "$session"
  printf '%.2f\n' "$(echo "$now - $start" | bc)"
}

for run in $(seq 1 "$runs"); do
  echo "run $run: first frame $(seconds_until 'ddft —') s, first page $(seconds_until 'rows 1–') s"
done
