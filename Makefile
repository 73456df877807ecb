# The README's commands. Each one creates .venv and installs deepfer first (offline-safe).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test docs docs-samples results reproduce bench ablation members teachers prior-attention clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev,onnx,serve,distributed,reid]"
	touch $(STAMP)

install: $(STAMP)

# The bundled NASA photo through the default detector and weights (MODEL=path.pt to pick others);
# the annotated copy goes to DEMO_OUT.
DEMO_OUT ?= out/demo.jpg

demo: $(STAMP)
	$(BIN)/deepfer predict src/deepfer/assets/astronaut.png --annotate $(DEMO_OUT) $(if $(MODEL),--model $(MODEL))
	@echo "To run deepfer yourself, activate its environment first: . $(VENV)/bin/activate"

# Best effort, never fatal: tests/serve's browser test drives Debian's chromium, installed here when
# missing and we are root with apt (about 1 min); without it that one test skips and says why.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1; \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } || true
	$(BIN)/python -m pytest -q tests

results: $(STAMP)
	$(BIN)/python benchmarks/results.py

# The documentation site (docs/, mkdocs.yml) into site/; a warning fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Rerun the commands whose output README.md and docs/*.md show, and write it in.
docs-samples: $(STAMP)
	$(BIN)/python docs/gen_samples.py

# Order matters: DeepFER's FER2013 warm restart and FER+ recipe start from its shipped FER2013
# weights, its CK+ and JAFFE recipes from the FER+ ones, Deep-Emotion's from its FER2013 weights;
# the distilled FER2013 recipes (both models) learn from DeepFER's stage 1 and 2 weights. Recipes in
# REPORT_ONLY (k-fold sets: ten models each, 20 MB for deepfer) are evaluated in place and leave
# benchmarks/reports/NAME.json instead of weights in the package.
RECIPES ?= deep-emotion_fer2013 deep-emotion_ckplus-10fold deep-emotion_ckplus-random \
	deep-emotion_jaffe-loso deep-emotion_jaffe-random \
	deepfer_fer2013 deepfer_fer2013-restart deep-emotion_fer2013-kd deepfer_fer2013-kd deepfer_ferplus deepfer_ferplus-kdinit deepfer_jaffe-random deepfer_jaffe-loso \
	deepfer_ckplus-10fold deepfer_ckplus-random deepfer_fer2013-balanced
REPORT_ONLY ?= deep-emotion_ckplus-10fold deep-emotion_jaffe-loso deepfer_jaffe-loso deepfer_ckplus-10fold \
	deepfer_fer2013-balanced
# Recipes that need a GPU: deepfer-l (4.7M parameters) trains at ~37 images/s on the 2-core CPU, so
# its 160 epochs would take ~35 hours there (benchmarks/MODELS_SPEED.md; the 48-wide variant ~18 hours);
# minutes on one H100/H200.
# `make reproduce` lists and skips them; `make reproduce GPU=1` trains them after the CPU recipes.
GPU_RECIPES ?= deepfer-l_fer2013 deepfer-l_fer2013-w48

# ship_weights.py fits each shipped model's temperature on its validation split (calibrated scores).
reproduce: $(STAMP)
	for n in $(RECIPES) $(if $(GPU),$(GPU_RECIPES)); do \
		$(BIN)/deepfer -v train --config configs/$$n.yaml --resume && \
		$(BIN)/python scripts/ship_weights.py runs/$$n $$n --config configs/$$n.yaml \
			$$(case " $(REPORT_ONLY) " in *" $$n "*) echo --report-only;; esac) || exit 1; \
	done
	$(if $(GPU),,@echo "skipped, they need a GPU (make reproduce GPU=1): $(GPU_RECIPES)")
	$(BIN)/python benchmarks/results.py

# Trains the "NAME SEED" lines on stdin, $(1) at a time: configs/$(2)/NAME.yaml into
# runs/$(2)/NAME/seedSEED, with its log beside it (seedSEED.log); --resume makes it safe to restart.
train_lines = xargs -L 1 -P $(1) sh -c 'mkdir -p runs/$(2)/$$0 && \
	$(BIN)/deepfer -v train --config configs/$(2)/$$0.yaml --seed $$1 --out runs/$(2)/$$0/seed$$1 --resume \
	>> runs/$(2)/$$0/seed$$1.log 2>&1 || { echo "$(2): $$0 seed $$1 failed, see runs/$(2)/$$0/seed$$1.log"; exit 255; }'

# Every recipe in configs/ablation/ (one change each against its dataset's base), seed 0 of all
# first, then seed 1. Many hours on a 2-core CPU; on a GPU, ABLATION_JOBS=8 trains eight runs at once.
ABLATION ?= fer2013_base ferplus_base \
	$(filter-out %_base,$(basename $(notdir $(wildcard configs/ablation/*.yaml))))
ABLATION_SEEDS ?= 0 1
ABLATION_JOBS ?= 1

ablation: $(STAMP)
	for s in $(ABLATION_SEEDS); do for n in $(ABLATION); do echo $$n $$s; done; done | \
		$(call train_lines,$(ABLATION_JOBS),ablation)
	$(BIN)/python benchmarks/ablation.py

# Prior attention: its ablation recipes (both seeds), the full-budget FER2013 recipe, CK+
# subject-10fold (starts from the ablation's seed 0), then benchmarks/PRIOR_ATTENTION.md and
# ALIGNMENT.md. Training faces are aligned on dlib's landmarks, so the landmarks extra is installed
# first (the points are found once per dataset, ~4 min for FER2013, and cached). About 1.5 hours a
# 15-epoch run on a 2-core CPU (two at once), 2.5 hours the full budget; minutes on a GPU.
PRIOR_ATTENTION ?= fer2013_prior-attention fer2013_prior-attention-noface fer2013_prior-attention-attn

prior-attention: $(STAMP)
	$(BIN)/pip install -q -e ".[landmarks]"
	for s in $(ABLATION_SEEDS); do for n in $(PRIOR_ATTENTION); do echo $$n $$s; done; done | \
		$(call train_lines,$(ABLATION_JOBS),ablation)
	$(BIN)/deepfer -v train --config configs/prior-attention_fer2013.yaml --resume
	$(BIN)/deepfer -v train --config configs/prior-attention_ckplus-10fold.yaml --resume
	$(BIN)/python benchmarks/alignment.py
	$(BIN)/python benchmarks/ablation.py
	$(BIN)/python benchmarks/prior_attention.py

# Ensemble members for benchmarks/ensemble.py: configs/ensemble/grid.yaml, eight seeds, into
# runs/ensemble/grid/seedS. About 1.5 hours a seed on a 2-core CPU; MEMBER_JOBS=8 on one GPU.
MEMBER_SEEDS ?= 0 1 2 3 4 5 6 7
MEMBER_JOBS ?= 1

members: $(STAMP)
	for s in $(MEMBER_SEEDS); do echo grid $$s; done | $(call train_lines,$(MEMBER_JOBS),ensemble)

# Teacher runs side by side on one GPU within a time budget (scripts/gpu_teachers.py; see its
# docstring for a device session's steps): float16 checkpoints and probabilities packed in PACK.
TEACHER_PLAN ?= configs/teachers/plan-fer2013.yaml
PACK ?= runs/teachers/pack

teachers: $(STAMP)
	$(BIN)/python scripts/gpu_teachers.py --plan $(TEACHER_PLAN) --pack $(PACK) $(if $(MINUTES),--minutes $(MINUTES))

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/faithfulness.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
