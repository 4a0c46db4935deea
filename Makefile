# rvpt-notebooks. The two commands a user needs:
#   make reproduce   the reproduction on the embedded data (PROFILE=small by default, PROFILE=tiny for a quick run)
#   make test        the test suite, plus the notebooks executed at the tiny profile and at the paper-toy fixture
PROFILE ?= small
export PYDEVD_DISABLE_FILE_VALIDATION = 1

.PHONY: setup build test unit notebooks reproduce pretrain bench kernels scale-probe strength-probe tuning-probe repulsion-probe repulsion-probe-wide256 repulsion-probe-deep12 repulsion-probe-wide-deep12 repulsion-probe-pretrain-15k repulsion-probe-pretrain-4000 seed-probe attribute-probe attribute-probe-wide clean

setup:
	@bash scripts/setup.sh

build: setup

unit: setup
	npx jest

test: setup
	mkdir -p .cache
	npx jest --json --outputFile=.cache/jest-results.json
	bash scripts/run-notebooks.sh tiny
	# The paper-scale path (real-CLIP weights file, image folders, distribution shifts) on the committed toy fixture.
	bash scripts/run-notebooks.sh test/fixtures/paper-toy/profile.json
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

# The scale probe (notebook 03): Table 1 with the image tower twice as wide (profiles/wide.json), from its own
# pre-training on; about 80 min on 2 cores (82 min measured). Cached like the tables; the result is copied to figures/wide/.
scale-probe: setup
	node bin/rvpt.js tables -p profiles/wide.json --only table1
	mkdir -p figures/wide
	cp "$${RVPT_CACHE:-.cache}/results/wide/table1.json" "$${RVPT_CACHE:-.cache}/results/wide/table1.md" figures/wide/

# RVPT and VPT against Blended and BadCLIP pressed in at other poisoning rates and fine-tuning lrs, and with crops
# and flips (notebook 03): 14 backdoored models and 28 cells, about 35 min on two cores from the clean model (29 min
# measured for the first 12, 5 for the last 2); cached; writes figures/strength-probe.{json,md}.
strength-probe: setup
	node bin/rvpt.js strength-probe

# VPT and RVPT on the tables' BadNet, Blended and BadCLIP models with 16, 64 and 256 clean shots per class at the
# tables' 100 steps, with and without augmentation (notebook 03): 36 cells, cached; writes figures/tuning-probe.{json,md}.
# Then 256 shots at 1, 4 and 16 times the tables' steps (the paper takes about 900-25,000): 24 more cells (13 min on two
# cores), figures/tuning-probe-budget.{json,md}. Then the 16-times runs with RVPT's repulsion capped at margin 0.5
# and 0.7: 12 more cells (about 9 min; 6 of them took 4.4), figures/tuning-probe-margin.{json,md}. Last, Table 2's
# emoji models with the tables' 16 shots at 1, 4 and 16 times their steps: 36 cells (about 10 min from the emoji
# backdoors; 20 of them took 6), figures/tuning-probe-budget-emoji.{json,md}.
tuning-probe: setup
	node bin/rvpt.js tuning-probe
	node bin/rvpt.js tuning-probe --budgets 1,4,16
	node bin/rvpt.js tuning-probe --margins -1,0.5,0.7
	node bin/rvpt.js tuning-probe --dataset emoji --budgets 1,4,16

# RVPT at alpha 1, 2, 4 and 8 (VPT as 0) on the BadNet, Blended and BadCLIP models of small and of profiles/wide.json
# (notebook 03): each width's trade-off. Needs the scale probe's wide models (made here if missing: about 30 min more);
# 30 cells, cached (the 18 beyond the two tables took 10 min on two cores); writes figures/repulsion-probe.{json,md}.
# Then on emoji (small only: Table 2's models), alpha 1, 2, 3, 4, 8: figures/repulsion-probe-emoji.{json,md}.
repulsion-probe: setup
	node bin/rvpt.js repulsion-probe
	node bin/rvpt.js repulsion-probe --profile small --dataset emoji --alphas 1,2,3,4,8

# The repulsion probe's third width (notebook 03): profiles/wide256.json, the image tower four times as wide as small's
# (64 -> 256), from its own pre-training (22 min on two cores) and BadNet, Blended and BadCLIP backdoors (about 8 min
# each), then VPT and RVPT at alpha 1, 2, 4, 8: 15 cells, 24 min (about 75 min in all). Then VPT and RVPT on its
# BadNet model at 4 times the tables' steps, with and without augmentation (4 cells, 11 min). Cached; the results are
# copied to figures/wide256/.
repulsion-probe-wide256: setup
	node bin/rvpt.js repulsion-probe --profiles profiles/wide256.json
	node bin/rvpt.js tuning-probe -p profiles/wide256.json --attacks BadNet --shots 16 --budgets 4
	mkdir -p figures/wide256
	cp "$${RVPT_CACHE:-.cache}/results/wide256/repulsion-probe.json" "$${RVPT_CACHE:-.cache}/results/wide256/repulsion-probe.md" figures/wide256/
	cp "$${RVPT_CACHE:-.cache}/results/wide256/tuning-probe-budget.json" "$${RVPT_CACHE:-.cache}/results/wide256/tuning-probe-budget.md" figures/wide256/

# The repulsion probe along depth (notebook 03): the image tower twelve blocks deep as ViT-B/32's, prompted from D = 3
# as in the paper (9 of 12 blocks), at small's width (profiles/deep12.json) and at twice it (profiles/wide-deep12.json).
# Each from its own pre-training and BadNet, Blended and BadCLIP backdoors, then VPT and RVPT at alpha 1, 2, 4, 8 (15
# cells): 14 min (deep12) and 36 min (wide-deep12) on two cores from nothing. Then VPT and RVPT at seeds 1-4 (24 cells):
# 7 and 17 min. Cached; the results are copied to figures/NAME/.
# The same two probes along pre-training: small's tower pre-trained on 15,000 of its 55,000 Fashion-MNIST images
# (profiles/pretrain-15k.json) and for four times the steps (profiles/pretrain-4000.json): 19 and 30 min in all (curve
# and seeds) on two cores from nothing.
repulsion-probe-deep12 repulsion-probe-wide-deep12 repulsion-probe-pretrain-15k repulsion-probe-pretrain-4000: repulsion-probe-%: setup
	node bin/rvpt.js repulsion-probe --profiles profiles/$*.json
	node bin/rvpt.js seed-probe -p profiles/$*.json --attacks BadNet,Blended,BadCLIP
	mkdir -p figures/$*
	cp "$${RVPT_CACHE:-.cache}/results/$*/repulsion-probe.json" "$${RVPT_CACHE:-.cache}/results/$*/repulsion-probe.md" figures/$*/
	cp "$${RVPT_CACHE:-.cache}/results/$*/seed-probe.json" "$${RVPT_CACHE:-.cache}/results/$*/seed-probe.md" figures/$*/

# VPT and RVPT at defense seeds 0-4 (0: the tables' cells) on Table 1's six models and Table 2's three emoji ones
# (notebook 03): how far one cell moves with the seed alone; then Table 1's again with the tables' shots at every
# seed (only the initialisation, batch order and augmentation change). 138 cells, cached (the 120 new ones took 17
# min on two cores); writes figures/seed-probe.{json,md}, seed-probe-emoji.{json,md}, seed-probe-fixed-shots.{json,md}.
# Last, RVPT's FR on the last block's class token after ln_post instead of the residual stream (the paper does not
# say which): 30 more cells (4 min), figures/seed-probe-fr-ln-post.{json,md}. Then RVPT's FR at the last block alone
# and at every prompted block but the last (does the last block's repelling fight the projection, at width 64 =
# embedDim?): 60 more cells (about 10 min), figures/seed-probe-fr-layers-6.{json,md}, seed-probe-fr-layers-3-4-5.{json,md}.
# Then RVPT on Table 2's emoji models at 16 times the tables' steps (1,600: the paper's Table 2 datasets take about
# 900-2,500): 15 cells (10 min), figures/seed-probe-emoji-budget-16.{json,md}. Last, the same on Table 1's six
# Fashion-MNIST models: 30 cells, figures/seed-probe-budget-16.{json,md}.
seed-probe: setup
	node bin/rvpt.js seed-probe
	node bin/rvpt.js seed-probe --dataset emoji
	node bin/rvpt.js seed-probe --fixed-shots
	node bin/rvpt.js seed-probe --methods RVPT --fr-token ln_post
	node bin/rvpt.js seed-probe --methods RVPT --fr-layers 6
	node bin/rvpt.js seed-probe --methods RVPT --fr-layers 3,4,5
	node bin/rvpt.js seed-probe --dataset emoji --methods RVPT --budget 16
	node bin/rvpt.js seed-probe --methods RVPT --budget 16

# A MiniCLIP whose Fashion-MNIST captions also name each image's darkness, size, texture and shape within its class
# (profiles/attributes.json): its own pre-training and six backdoors, then VPT and RVPT at seeds 0-4 on both models
# (the small ones' are the seed probe's cells) and how much of each attribute each clean embedding holds beyond the
# class; about 16 min on two cores from the clean small model (pre-training 2.5, backdoors 5.5, cells 6.5); writes
# figures/attribute-probe.{json,md}.
attribute-probe: setup
	node bin/rvpt.js attribute-probe

# The same at width 128 (profiles/wide.json against profiles/wide-attributes.json): room and reason together. Three
# attacks (BadNet, Blended, BadCLIP) at seeds 0-2; about 45 min on two cores from nothing (two pre-trainings of 5.5
# and 6.5 min, three backdoors and 18 cells per model); the result is copied to figures/wide/.
attribute-probe-wide: setup
	node bin/rvpt.js attribute-probe -p profiles/wide.json --with profiles/wide-attributes.json --attacks BadNet,Blended,BadCLIP --seeds 0,1,2
	mkdir -p figures/wide
	cp "$${RVPT_CACHE:-.cache}/results/wide/attribute-probe.json" "$${RVPT_CACHE:-.cache}/results/wide/attribute-probe.md" figures/wide/

# Rebuild the hand-written WASM kernels (src/kernels/*.c -> src/kernels/*Wasm.ts, committed) after editing them.
kernels:
	bash scripts/build-kernels.sh

clean:
	rm -rf dist executed-notebooks
