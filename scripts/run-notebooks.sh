#!/usr/bin/env bash
# Execute notebooks headless (nbconvert + the tslab kernel).
# Usage: scripts/run-notebooks.sh [--in-place] [--jobs N] MODE_OR_PROFILE [notebook ...]
#   teach            the shipped checkpoints (checkpoints/), profile transfer: what the committed notebooks show
#   PROFILE          a built-in profile name, or a profile file (path ending in .json), everything trained as needed
#   --in-place       write the executed notebooks back over the sources (how the committed outputs are made:
#                    `make notebooks`); otherwise executed copies go to executed-notebooks/NAME.TAG.ipynb
#   --jobs N         run N notebooks side by side
# Default notebooks: every notebooks/NN-*.ipynb, in order. Each notebook's wall time is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
inplace=0
jobs=1
while [[ ${1:-} == --* ]]; do
  case $1 in
    --in-place) inplace=1 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    *) echo "run-notebooks: unknown option $1 (--in-place, --jobs N)" >&2; exit 2 ;;
  esac
  shift
done
profile=${1:-teach}; shift || true
mode_arg=$profile
tag=$profile
mode=full
if [ "$profile" = teach ]; then mode=teach; profile=transfer; fi
# A profile file: the kernel runs in notebooks/, so pass an absolute path.
if [[ $profile == *.json ]]; then [ -f "$profile" ] || { echo "run-notebooks: profile file $profile not found" >&2; exit 1; }; profile=$(realpath "$profile"); tag=$(node -p "require(process.argv[1]).name" "$profile"); fi
nbs=("$@")
[ ${#nbs[@]} -gt 0 ] || mapfile -t nbs < <(ls notebooks/[0-9][0-9]-*.ipynb | sort)
mkdir -p executed-notebooks
# --jobs N: N notebooks at a time, each in its own kernel (a notebook computes on one core: WASM runs single-threaded
# in Node). Fails when any of them fails.
if [ "$jobs" -gt 1 ] && [ ${#nbs[@]} -gt 1 ]; then
  opts=(); [ $inplace = 1 ] && opts+=(--in-place)
  printf '%s\n' "${nbs[@]}" | xargs -P "$jobs" -I{} bash "$0" "${opts[@]}" "$mode_arg" {}
  exit $?
fi
for nb in "${nbs[@]}"; do
  name=$(basename "$nb" .ipynb)
  if [ $inplace = 1 ]; then outdir=$(dirname "$nb"); out=$name; else outdir=executed-notebooks; out=$name.$tag; fi
  printf '[notebooks] %s (%s)\n' "$name" "$tag" >&2
  start=$(date +%s)
  # RVPT_BATCH: no progress lines and static figures only (notebook.ts); RVPT_QUIET: no cache-path log lines.
  RVPT_MODE=$mode RVPT_PROFILE="$profile" RVPT_BATCH=1 RVPT_QUIET=1 "$PY" -m nbconvert --to notebook --execute "$nb" \
    --ExecutePreprocessor.kernel_name=tslab --ExecutePreprocessor.timeout=7200 --ExecutePreprocessor.record_timing=False \
    --output-dir "$outdir" --output "$out.ipynb" 2> >(grep -v -E 'Debugger warning|frozen modules|Xfrozen_modules|PYDEVD_DISABLE|^\s*$|\[NbConvertApp\]' >&2)
  printf '[notebooks] %s done in %ss\n' "$name" "$(( $(date +%s) - start ))" >&2
done
