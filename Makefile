# rvpt-notebooks. The two commands a user needs:
#   make reproduce   the reproduction on the embedded data (PROFILE=transfer by default, the fair setting; PROFILE=tiny for a quick run)
#   make test        the test suite, plus the notebooks executed at the tiny profile and at the paper-toy fixture
PROFILE ?= transfer
export PYDEVD_DISABLE_FILE_VALIDATION = 1

# The research probes have their own Makefile: make -C research TARGET (research/README.md).
# The unit tests alone, for development: jest without the end-to-end suites that train models (under a minute).
FAST_SKIP := (efficacy|transfer-data|cell-pool|resume|repulsion-probe|tuning-probe|seed-probe|strength-probe|attribute-probe|pretrain|/cli)\.test

.PHONY: setup build test test-fast unit notebooks reproduce pretrain bench kernels clean

setup:
	@bash scripts/setup.sh

build: setup

unit: setup
	npx jest

test-fast: setup
	npx jest --testPathIgnorePatterns '$(FAST_SKIP)'

test: setup
	mkdir -p .cache
	npx jest --json --outputFile=.cache/jest-results.json
	bash scripts/run-notebooks.sh tiny
	# The paper-scale path (real-CLIP weights file, image folders, distribution shifts) on the committed toy fixture.
	bash scripts/run-notebooks.sh test/fixtures/paper-toy/profile.json
	# The lab's notebook, on the committed probe results (it trains nothing).
	bash scripts/run-notebooks.sh small research/notebooks/probes.ipynb
	@node -e 'const r=require("./.cache/jest-results.json"); console.log(`jest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests} skipped`)'

notebooks: setup
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
	rm -rf dist research/dist executed-notebooks
