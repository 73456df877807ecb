# The README's commands. Each one creates .venv and installs deepfer first (offline-safe).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test results reproduce bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev,onnx]"
	touch $(STAMP)

install: $(STAMP)

# The bundled NASA photo through the default detector and weights (MODEL=path.pt to pick others).
demo: $(STAMP)
	$(BIN)/deepfer predict src/deepfer/assets/astronaut.png --annotate out/demo.jpg $(if $(MODEL),--model $(MODEL))

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

results: $(STAMP)
	$(BIN)/python benchmarks/results.py

# Order matters: the CK+ and JAFFE recipes start from the shipped FER2013 weights.
RECIPES ?= deep-emotion_fer2013 deep-emotion_ckplus-10fold deep-emotion_ckplus-random \
	deep-emotion_jaffe-loso deep-emotion_jaffe-random

reproduce: $(STAMP)
	for n in $(RECIPES); do \
		$(BIN)/deepfer -v train --config configs/$$n.yaml --resume && \
		$(BIN)/python scripts/ship_weights.py runs/$$n $$n --config configs/$$n.yaml || exit 1; \
	done
	$(BIN)/python benchmarks/results.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/faithfulness.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
