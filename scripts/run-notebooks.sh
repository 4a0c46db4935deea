#!/usr/bin/env bash
# Execute notebooks headless (nbconvert + the tslab kernel) at a profile; executed copies go to executed-notebooks/ (outside notebooks/, so the sources stay clean).
# Usage: scripts/run-notebooks.sh PROFILE [notebook ...]   (default: every notebooks/NN-*.ipynb, in order)
# PROFILE: a built-in profile name, or a profile file (path ending in .json; executed copies are named by its "name").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
profile=${1:-small}; shift || true
tag=$profile
# A profile file: the kernel runs in notebooks/, so pass an absolute path.
if [[ $profile == *.json ]]; then [ -f "$profile" ] || { echo "run-notebooks: profile file $profile not found" >&2; exit 1; }; profile=$(realpath "$profile"); tag=$(node -p "require(process.argv[1]).name" "$profile"); fi
nbs=("$@")
[ ${#nbs[@]} -gt 0 ] || mapfile -t nbs < <(ls notebooks/[0-9][0-9]-*.ipynb | sort)
mkdir -p executed-notebooks
for nb in "${nbs[@]}"; do
  name=$(basename "$nb" .ipynb)
  printf '[notebooks] %s (profile %s)\n' "$name" "$tag" >&2
  start=$(date +%s)
  RVPT_PROFILE="$profile" "$PY" -m nbconvert --to notebook --execute "$nb" \
    --ExecutePreprocessor.kernel_name=tslab --ExecutePreprocessor.timeout=7200 \
    --output-dir executed-notebooks --output "$name.$tag.ipynb" 2> >(grep -v -E 'Debugger warning|frozen modules|Xfrozen_modules|PYDEVD_DISABLE|^\s*$' >&2)
  printf '[notebooks] %s done in %ss\n' "$name" "$(( $(date +%s) - start ))" >&2
done
