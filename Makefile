# Everything a newcomer needs: `make run` serves a model, `make test` is what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
ROWS ?= 20000
SAMPLE ?= data/sample/leads.csv
SPEC ?= data/specs/sample.yaml
MODELS ?= models
BENCHMARKS ?= bench/train.py bench/serve.py bench/quality.py bench/fuzz.py bench/poison.py bench/spark.py
SOAK_SECONDS ?= 600

.PHONY: run test lint bench soak install install-dev requirements image clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# requirements/runtime.txt pins every runtime dependency: the image installs exactly these, so bundles
# trained here load there.
# No -q: the first install takes minutes, and pip's own lines and progress bars show where it is.
$(VENV)/.installed: pyproject.toml requirements/runtime.txt | $(BIN)/python
	@echo "== installing leadscore and its pinned dependencies into $(VENV) (about 3 minutes the first time)"
	$(BIN)/pip install -c requirements/runtime.txt -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/runtime.txt | $(BIN)/python
	@echo "== installing leadscore, its pinned dependencies and the development tools into $(VENV)"
	$(BIN)/pip install -c requirements/runtime.txt -e ".[dev,spark]"
	# the CoIL 2000 Caravan data ships in this package; its own dependencies are not needed
	$(BIN)/pip install -q --no-deps "islp>=0.4,<1"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(SAMPLE): | $(VENV)/.installed
	$(BIN)/leadscore generate --rows $(ROWS) --seed 0 --out $(SAMPLE)

run: $(VENV)/.installed $(SAMPLE)
	@if [ -e $(MODELS)/champion/bundle.json ]; then echo "champion model found in $(MODELS)/champion"; \
	else $(BIN)/leadscore train --data $(SAMPLE) --spec $(SPEC) --output-dir $(MODELS) --promote; fi
	$(BIN)/leadscore serve --host $(HOST) --port $(PORT) --model $(MODELS)/champion

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	@for script in $(BENCHMARKS); do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# the 10-minute load run at 80% of the measured maximum (a 30-second version runs in make test)
soak: $(VENV)/.installed-dev
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python bench/soak.py

# after upgrading a runtime package in .venv on purpose
requirements: $(VENV)/.installed
	$(BIN)/python requirements/pin_runtime.py > requirements/runtime.txt

image:
	docker build -t leadscore .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
