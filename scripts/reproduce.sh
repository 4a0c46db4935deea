#!/usr/bin/env bash
# The main job: every table and figure of the paper at a profile (default transfer, the fair setting), then REPRODUCTION.md.
# Heavy stages run first through the CLI (live progress bars in the terminal); the notebooks 00-08 then run headless
# on the cached results and write the executed copies. Every stage is cached, so a killed run resumes where it
# stopped. One progress line per stage: which step, elapsed, and time left estimated from the last run's timings.
# Usage: scripts/reproduce.sh [PROFILE]   (a profile name, or a profile file: a path ending in .json)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-transfer}
PY=${PYTHON:-/usr/bin/python3}
tag=$profile
if [[ $profile == *.json ]]; then [ -f "$profile" ] || { echo "reproduce: profile file $profile not found" >&2; exit 1; }; profile=$(realpath "$profile"); tag=$(node -p "require(process.argv[1]).name" "$profile"); fi
times=".cache/reproduce-times-$tag.json"
mkdir -p .cache

mapfile -t notebooks < <(ls notebooks/[0-9][0-9]-*.ipynb | sort)
steps=("setup" "pretrain" "preconditions" "tables" "figures" "ablations")
for nb in "${notebooks[@]}"; do steps+=("notebook $(basename "$nb" .ipynb)"); done
steps+=("slides" "report")
total=${#steps[@]}

# Seconds each step took last time (the estimate of time left); empty on a first run.
last() { [ -f "$times" ] && "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$times" "$1" 2>/dev/null || true; }
record() { "$PY" -c 'import json,os,sys; f=sys.argv[1]; d=json.load(open(f)) if os.path.exists(f) else {}; d[sys.argv[2]]=int(sys.argv[3]); json.dump(d,open(f+".tmp","w")); os.replace(f+".tmp",f)' "$times" "$1" "$2"; }
hms() { printf '%d:%02d:%02d' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }

start=$(date +%s)
run_step() {
  local i=$1 name=$2; shift 2
  local left=0 known=1
  for ((j = i; j < total; j++)); do
    local t; t=$(last "${steps[$j]}")
    if [ -n "$t" ]; then left=$((left + t)); else known=0; fi
  done
  local est; if [ $known = 1 ]; then est="about $(hms $left) left"; else est="time left unknown until one full run has been timed"; fi
  printf '\n[reproduce %d/%d] %s (elapsed %s, %s)\n' $((i + 1)) "$total" "$name" "$(hms $(($(date +%s) - start)))" "$est" >&2
  local t0; t0=$(date +%s)
  "$@"
  record "$name" $(($(date +%s) - t0))
}

i=0
run_step $((i++)) setup bash scripts/setup.sh
run_step $((i++)) pretrain node bin/rvpt.js pretrain --profile "$profile"
# The paper's preconditions are measured before any defense cell runs (they also make the backdoored models).
run_step $((i++)) preconditions node bin/rvpt.js preconditions --profile "$profile"
run_step $((i++)) tables node bin/rvpt.js tables --profile "$profile"
# The figures each run on one core. With two jobs (small's default), the PR figure (which first trains the supervised
# ViT, about four minutes) runs in the background from the figures step through the ablations step, beside the
# attention and embedding figures (which train the prompts the PR figure then finds cached) and then the ablations'
# two processes: run after the other figures, it left one core idle for minutes. Its output goes to a log file, so
# that the foreground keeps one progress view. Measured on the 2-core machine: 9 min 25 s for the figures in one process.
jobs=$(node -p "require('./dist/index.js').getProfile(process.argv[1]).jobs || 1" "$profile")
prlog=".cache/reproduce-pr-$tag.log"
pr_pid=""
trap '[ -z "$pr_pid" ] || kill "$pr_pid" 2>/dev/null || true' EXIT
figures() {
  if [ "$jobs" -lt 2 ]; then node bin/rvpt.js figures --profile "$profile" --only pr,attention,embeddings; return; fi
  echo "[reproduce] the PR figure runs in the background until the end of the ablations (log: $prlog)" >&2
  node bin/rvpt.js figures --profile "$profile" --only pr > "$prlog" 2>&1 & pr_pid=$!
  node bin/rvpt.js figures --profile "$profile" --only attention,embeddings
}
ablations() {
  node bin/rvpt.js figures --profile "$profile" --only ablations
  [ -n "$pr_pid" ] || return 0
  echo "[reproduce] waiting for the PR figure (log: $prlog)" >&2
  local rc=0; wait "$pr_pid" || rc=$?
  pr_pid=""
  if [ $rc != 0 ]; then tail -n 30 "$prlog" >&2; echo "reproduce: the PR figure failed (exit $rc); its log: $prlog" >&2; return $rc; fi
  grep '^fig' "$prlog" >&2 || true
}
run_step $((i++)) figures figures
run_step $((i++)) ablations ablations
for nb in "${notebooks[@]}"; do
  run_step $((i++)) "notebook $(basename "$nb" .ipynb)" bash scripts/run-notebooks.sh "$profile" "$nb"
done
run_step $((i++)) slides node bin/rvpt.js slides --profile "$profile"
run_step $((i++)) report node bin/rvpt.js report --profile "$profile"
printf '\n[reproduce] done in %s: executed notebooks in executed-notebooks/, tables and figures in %s, report %s\n' \
  "$(hms $(($(date +%s) - start)))" "$([ "$tag" = transfer ] && echo figures/ || echo ".cache/results/$tag/")" \
  "$([ "$tag" = transfer ] && echo REPRODUCTION.md || echo ".cache/results/$tag/REPRODUCTION.md")" >&2
