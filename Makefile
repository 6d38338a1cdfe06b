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
# venv and build directory; tools/sanitize/run_tests.py preloads the runtimes
# and fails on any sanitizer report or on a leak through our C++.
SAN_VENV := .venv-sanitize
SAN_PY   := $(SAN_VENV)/bin/python
SAN_PIP  := $(SAN_PY) -m pip --disable-pip-version-check -q

$(SAN_VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(SAN_VENV)
	$(SAN_PIP) install --upgrade pip
	$(SAN_PIP) install "scikit-build-core>=0.10" "pybind11>=2.13" cmake ninja numpy setuptools wheel
	touch $@

# tests/test_cpp_api.py builds and runs the C++ example, a separate program made
# without sanitizers: under the preloaded ASan its RSS check would measure ASan's
# quarantine of freed memory, not our code. (`make soak` runs it unsanitized.)
SANITIZE_IGNORE ?= --ignore=tests/test_cpp_api.py
test-sanitize: $(SAN_VENV)/.deps
	$(SAN_PIP) install --no-build-isolation \
	  --config-settings=build-dir=build/sanitize \
	  --config-settings=cmake.define.SECONDOPINION_SANITIZE=ON \
	  --config-settings=cmake.build-type=RelWithDebInfo ".[test]"
	$(SAN_PY) tools/sanitize/run_tests.py -m "not slow and not soak" $(SANITIZE_IGNORE) $(SANITIZE_TESTS)

# The soak test (tests/test_soak.py): 8 threads share one Pipeline for
# SOAK_CALLS mixed searches; CI runs it with SOAK_CALLS=500.
SOAK_CALLS ?= 10000
.PHONY: soak
# Both soaks: 8 threads sharing one Pipeline (Python), then 8 threads sharing one
# Reranker in the C++ example built against the installed package.
soak: build
	SECONDOPINION_SOAK_CALLS=$(SOAK_CALLS) $(PY) -m pytest tests/test_soak.py -q -m soak
	PY=$(PY) CMAKE=$(VENV)/bin/cmake bash tools/cpp_example.sh $(SOAK_CALLS)

# Fuzzing (fuzz/): libFuzzer targets for the C++ index loader and analyzer,
# built with clang + ASan/UBSan in build/fuzz, and atheris targets for the
# Python side (model directories, index loading and text through the API).
# FUZZ_SECONDS per target; corpora persist in build/fuzz/corpus.
FUZZ_SECONDS ?= 600
FUZZ_BUILD := build/fuzz
FUZZ_TARGETS ?= bm25_load bm25_load_fixed analyzer npy_load model_dir bm25_load_py analyzer_py
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
# The floor is calibrated last, from traces of the reinstalled package's pipeline.
model: build
	PY=$(PY) DEVICE_RUN=$(DEVICE_RUN) bash tools/build_models.sh
	$(MAKE) build
	rm -f build/floor.db
	$(PY) tools/calibrate_default_floor.py --data $(or $(DATA),../shared/data)/scifact \
	  --train-log build/cross_encoder/train_log.json --queries 60 --traces build/floor.db \
	  --write python/secondopinion/models/cross-encoder
	$(MAKE) build

# The C++ API without Python (tools/cpp_example.sh): the core installed to a
# temporary prefix, examples/cpp built against it, one ranking, then 8 threads
# sharing one Reranker checked against a single-threaded run (1,000 calls; soak: 10,000).
.PHONY: example-cpp soak-cpp
example-cpp: $(VENV)/.deps
	PY=$(PY) CMAKE=$(VENV)/bin/cmake bash tools/cpp_example.sh 1000
soak-cpp: $(VENV)/.deps
	PY=$(PY) CMAKE=$(VENV)/bin/cmake bash tools/cpp_example.sh 10000

clean:
	rm -rf build $(VENV) $(SAN_VENV)
