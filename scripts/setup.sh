#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: npm packages, the Fashion-MNIST data set and Jupyter
# (Debian packages, where apt-get is allowed), the built library, the tslab kernel. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*" >&2; }
PY=${PYTHON:-/usr/bin/python3}

# --- Node packages -----------------------------------------------------------------------------------------
if ! command -v node >/dev/null; then say "Node.js >= 20 is required: install it (e.g. apt-get install nodejs npm)."; exit 1; fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then say "Node.js $(node --version) is too old: version 20 or newer is required."; exit 1; fi
if [ ! -d node_modules/@tensorflow/tfjs-backend-wasm ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi

# --- Debian packages ---------------------------------------------------------------------------------------
need=()
fm=${RVPT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$fm/train-images-idx3-ubyte.gz" ] || need+=(dataset-fashion-mnist)
if [ "${RVPT_SKIP_JUPYTER:-0}" != 1 ]; then
  "$PY" -c 'import nbclient, nbconvert, ipykernel, jupyter_client' 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel)
fi
# Figures are rendered to PNG by headless Chromium (src/viz/render.ts).
if [ -z "${CHROMIUM_PATH:-}" ] && [ ! -x /usr/bin/chromium ] && [ ! -x /usr/bin/chromium-browser ]; then need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing Debian packages with sudo: ${need[*]}"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    say "missing: ${need[*]}"
    say "Install them as root: apt-get install ${need[*]}"
    say "Without Debian: put the four Fashion-MNIST .gz files in a folder and set RVPT_FASHION_MNIST_DIR to it;"
    say "install Jupyter with nbconvert/nbclient/ipykernel and set PYTHON to that python;"
    say "install Chromium and set CHROMIUM_PATH to it (figures are rendered to PNG with it)."
    exit 1
  fi
fi

# --- Build and the notebook kernel -------------------------------------------------------------------------
if [ ! -f dist/index.js ] || [ -n "$(find src -newer dist/index.js -name '*.ts' -print -quit)" ]; then
  say "building the library (tsc)"
  rm -rf dist # a module moved or removed must not linger there as a stale .js
  npx tsc -p tsconfig.json
fi
# The lab (research/) on top of the library: its command `rvpt-lab` and the probes notebook run research/dist/.
if [ ! -f research/dist/research/index.js ] || [ -n "$(find src research -path research/dist -prune -o -newer research/dist/research/index.js -name '*.ts' -print -quit)" ]; then
  say "building the lab (tsc -p research)"
  rm -rf research/dist
  npx tsc -p research/tsconfig.json
fi
# Notebooks import the library (and the lab) by package name (tslab compiles only files under the notebook's folder).
if [ ! -e node_modules/rvpt-notebooks ]; then ln -s .. node_modules/rvpt-notebooks; fi
if [ ! -e node_modules/rvpt-lab ]; then ln -s ../research node_modules/rvpt-lab; fi
# `npx rvpt` finds the command here (npm does not install a package's own bin into its node_modules).
if [ ! -e node_modules/.bin/rvpt ]; then ln -s ../../bin/rvpt.js node_modules/.bin/rvpt; fi
if [ ! -e node_modules/.bin/rvpt-lab ]; then ln -s ../../bin/rvpt-lab.js node_modules/.bin/rvpt-lab; fi
if [ "${RVPT_SKIP_JUPYTER:-0}" != 1 ]; then
  kdir=$("$PY" -c 'import jupyter_client.kernelspec as k; s=k.KernelSpecManager().find_kernel_specs(); print(s.get("tslab",""))' 2>/dev/null || true)
  if [ -z "$kdir" ] || ! grep -qF "\"$(pwd)/node_modules/.bin/tslab\"" "$kdir/kernel.json" 2>/dev/null; then
    say "registering the tslab kernel with Jupyter"
    npx tslab install --python="$PY" --binary="$(pwd)/node_modules/.bin/tslab" >/dev/null
  fi
fi
say "ready"
