# The README's two commands: `make demo` and `make test`. Both work on a fresh machine: they create
# .venv when missing and install torch first where it is absent (torch==2.13.0 is the CPU wheel on
# our CPU machines; a plain `torch` requirement would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean install serve

# The browser test (tests/test_app.py) drives Debian's chromium: Playwright's own browser download needs a
# network we lack. It skips, saying so, where none can be installed. fonts-nanum renders its Korean text.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev,web]"
	$(PY) -m pip install -q -e ".[onnx,openvino]"
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-nanum) \
		|| echo "note: could not install chromium; the browser test will skip"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) demo.py

serve: $(STAMP)
	@test -f runs/demo/fine-tuned/config.json || { echo "no demo model in runs/demo/fine-tuned: run make demo first"; exit 2; }
	HF_HUB_OFFLINE=1 $(PY) -m ko_mrs.app --model runs/demo/fine-tuned

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf runs outputs data/demo .pytest_cache
