# rvpt-notebooks. The two commands a user needs:
#   make reproduce   the reproduction on the embedded data (PROFILE=transfer by default, the fair setting; PROFILE=tiny for a quick run)
#   make test        the test suite, plus the notebooks and their solutions executed in teach mode and checked
PROFILE ?= transfer
export PYDEVD_DISABLE_FILE_VALIDATION = 1

# The research probes have their own Makefile: make -C research TARGET (research/README.md).
# The unit tests alone, for development: jest without the end-to-end suites that train models (under a minute).
FAST_SKIP := (efficacy|transfer-data|cell-pool|resume|repulsion-probe|tuning-probe|seed-probe|strength-probe|attribute-probe|pretrain|/cli|web)\.test

# The teaching notebooks and their worked solutions: committed executed in teach mode (the shipped checkpoints),
# and checked against a fresh execution by `make test`.
TEACH_NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb)) $(sort $(wildcard notebooks/solutions/*.ipynb))

.PHONY: setup build test test-fast unit notebooks notebooks-full site web serve bench-web reproduce pretrain bench kernels clean

setup:
	@bash scripts/setup.sh

build: setup

unit: setup
	npx jest

test-fast: setup
	npx jest --testPathIgnorePatterns '$(FAST_SKIP)'

test: setup
	mkdir -p .cache
	npx tsc -p web/tsconfig.json
	npx jest --json --outputFile=.cache/jest-results.json
	# The teaching notebooks and their solutions, executed afresh in teach mode; their printed numbers must match the committed outputs.
	bash scripts/run-notebooks.sh --jobs 2 teach $(TEACH_NOTEBOOKS)
	$${PYTHON:-/usr/bin/python3} scripts/check-notebooks.py executed-notebooks teach $(TEACH_NOTEBOOKS)
	# The same notebooks in full mode at the tiny profile: the path that trains what a profile needs (about 2 minutes).
	bash scripts/run-notebooks.sh --jobs 2 tiny $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb))
	# The in-domain probe narrative (the old notebook 03), at tiny: it trains its models.
	bash scripts/run-notebooks.sh tiny research/notebooks/03-probe-narrative.ipynb
	# The lab's notebook, on the committed probe results (it trains nothing).
	bash scripts/run-notebooks.sh small research/notebooks/probes.ipynb
	@node -e 'const r=require("./.cache/jest-results.json"); console.log(`jest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests} skipped`)'

# Execute the teaching notebooks in teach mode and write their outputs into notebooks/ (commit them afterwards).
notebooks: setup
	bash scripts/run-notebooks.sh --in-place teach $(TEACH_NOTEBOOKS)

# The seminar book: site/index.html, from the committed notebooks, REPRODUCTION.md, the glossary and the figures;
# it opens from disk with no network (test/site.test.ts opens every page in headless Chromium).
site: setup
	node scripts/build-site.mjs --out site

# The browser lab: web/dist, the page bundled by esbuild from web/src and src/, with the shipped models and a few
# hundred test images (test/web.test.ts opens it in headless Chromium). `make serve` serves it on localhost (PORT=8000).
web: setup
	npx tsc -p web/tsconfig.json
	node scripts/build-web.mjs --out web/dist

serve:
	node scripts/serve-web.mjs web/dist

# The lab's timings in headless Chromium (view, one prediction, 100 steps of "Defend now"), medians of 5 page loads.
bench-web: web
	node scripts/bench-web.mjs web/dist

# Every notebook at PROFILE, training what is missing; executed copies in executed-notebooks/.
notebooks-full: setup
	bash scripts/run-notebooks.sh $(PROFILE)

pretrain: setup
	node bin/rvpt.js pretrain --profile $(PROFILE)

# Pre-train, backdoor (six attacks), defend (five methods), every table and figure, the notebooks 00-08 (executed
# copies in executed-notebooks/), then REPRODUCTION.md. Each stage is cached, so an interrupted run resumes where it
# stopped; one progress line per stage says which step it is and how long is left (from the last run's timings).
reproduce:
	bash scripts/reproduce.sh $(PROFILE)

bench: setup
	node bin/rvpt.js bench --profile $(PROFILE) --json

# Rebuild the hand-written WASM kernels (src/kernels/*.c -> src/kernels/*Wasm.ts, committed) after editing them.
kernels:
	bash scripts/build-kernels.sh

clean:
	rm -rf dist research/dist executed-notebooks site web/dist
