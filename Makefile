# Everything a fresh machine needs goes through these targets.
#   make demo   - create .venv, install, build the C++ core, run the main job
#   make test   - the same set-up, then the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
BUILD_FLAGS := --no-build-isolation --no-deps
SOURCES := $(shell find cpp python cmake -type f -not -name '*.pyc' 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: demo test bench lint build test-sanitize clean model fuzz fuzz-build fuzz-ci

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "scikit-build-core>=0.10" "pybind11>=2.13" cmake ninja numpy setuptools wheel
	$(PIP) install --no-build-isolation ".[test]"
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PIP) install $(BUILD_FLAGS) .
	touch $@

build: $(VENV)/.built

demo: build
	$(PY) -m secondopinion demo

test: build
	$(PY) -m pytest tests -q

bench: build
	$(PY) -m pytest benchmarks -q --benchmark-columns=median,ops,rounds --benchmark-sort=name

lint: $(VENV)/.deps
	$(PY) -m ruff check python tests benchmarks tools fuzz
	$(PY) -m ruff format --check python tests benchmarks tools fuzz

# Core tests under AddressSanitizer + UndefinedBehaviorSanitizer: a separate
# venv and build directory, the ASan runtime preloaded into Python.
SAN_VENV := .venv-sanitize
test-sanitize: $(VENV)/.deps
	test -d $(SAN_VENV) || $(PYTHON) -m venv --system-site-packages $(SAN_VENV)
	$(SAN_VENV)/bin/pip --disable-pip-version-check -q install "scikit-build-core>=0.10" "pybind11>=2.13" cmake ninja numpy pytest hypothesis onnxruntime tokenizers tqdm onnx
	$(SAN_VENV)/bin/pip --disable-pip-version-check -q install $(BUILD_FLAGS) \
	  --config-settings=build-dir=build/sanitize \
	  --config-settings=cmake.define.SECONDOPINION_SANITIZE=ON \
	  --config-settings=cmake.build-type=RelWithDebInfo .
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(SAN_VENV)/bin/python -m pytest -q -p no:cacheprovider --capture=sys -m "not slow" $(SANITIZE_TESTS)

# Fuzzing (fuzz/): libFuzzer targets for the C++ index loader and analyzer,
# built with clang + ASan/UBSan in build/fuzz, and atheris targets for the
# Python side (model directories, index loading and text through the API).
# FUZZ_SECONDS per target; corpora persist in build/fuzz/corpus.
FUZZ_SECONDS ?= 600
FUZZ_BUILD := build/fuzz
FUZZ_TARGETS ?= bm25_load bm25_load_fixed analyzer model_dir bm25_load_py analyzer_py
fuzz-build: build
	@command -v clang++ >/dev/null || { echo "make fuzz needs clang with libFuzzer: apt-get install clang" >&2; exit 1; }
	$(PY) -c "import atheris" 2>/dev/null || $(PIP) install atheris
	CC=clang CXX=clang++ $(VENV)/bin/cmake -S fuzz -B $(FUZZ_BUILD) -G Ninja \
	  -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) -DCMAKE_BUILD_TYPE=Debug >/dev/null
	$(VENV)/bin/cmake --build $(FUZZ_BUILD)
	$(PY) fuzz/make_seeds.py $(FUZZ_BUILD)/seeds
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_BUILD) $(PY) $(FUZZ_TARGETS)
# CI: a short run of every target (clang comes from Debian on the CI machine).
fuzz-ci:
	command -v clang++ >/dev/null || { apt-get update -qq && apt-get install -y -qq clang >/dev/null; }
	$(MAKE) fuzz FUZZ_SECONDS=$(or $(FUZZ_CI_SECONDS),20)

# Rebuild the shipped models (tools/build_models.sh; DEVICE_RUN=folder reuses a GPU run).
model: build
	PY=$(PY) DEVICE_RUN=$(DEVICE_RUN) bash tools/build_models.sh
	$(MAKE) build

clean:
	rm -rf build $(VENV) $(SAN_VENV)
