#!/bin/bash
# Build the C++ core without Python, install it to a fresh temporary prefix,
# build examples/cpp against the installed package, and run it: one ranking,
# then the concurrency check (8 threads sharing one Reranker).
#
#   tools/cpp_example.sh [CALLS]     CALLS: concurrency-check calls (default 1000;
#                                    10000 for the soak run, `make soak-cpp`)
#
# Environment: PY (a Python with onnxruntime, to locate libonnxruntime.so and
# flatten the demo corpus; default .venv/bin/python), SECONDOPINION_ORT_LIBRARY
# (skip the lookup), CMAKE (default: the venv's cmake, else cmake on PATH),
# SO_CPP_BUILD (build folder, kept between runs; default build/cpp),
# THREADS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1000}
threads=${THREADS:-8}
PY=${PY:-.venv/bin/python}
if [ -z "${CMAKE:-}" ]; then
  if [ -x .venv/bin/cmake ]; then CMAKE=.venv/bin/cmake; else CMAKE=cmake; fi
fi
build=${SO_CPP_BUILD:-build/cpp}
jobs=$(nproc 2>/dev/null || echo 2)
prefix=$(mktemp -d "${TMPDIR:-/tmp}/secondopinion-prefix.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "configure + build the core (SECONDOPINION_PYTHON=OFF)"
"$CMAKE" -S . -B "$build/core" -DSECONDOPINION_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
"$CMAKE" --build "$build/core" --parallel "$jobs"

# Configured without a prefix, installed to another: the package must not
# depend on where it was configured to go.
step "install to $prefix"
"$CMAKE" --install "$build/core" --prefix "$prefix" >/dev/null

step "build examples/cpp against the installed package"
rm -rf "$build/example"
"$CMAKE" -S examples/cpp -B "$build/example" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
"$CMAKE" --build "$build/example" --parallel "$jobs"
example="$build/example/secondopinion_rerank"

if [ -z "${SECONDOPINION_ORT_LIBRARY:-}" ]; then
  SECONDOPINION_ORT_LIBRARY=$("$PY" -c \
    'from secondopinion._runtime import find_onnxruntime_library as f; print(f())' 2>/dev/null ||
    "$PY" -c 'import glob, os, onnxruntime as o
d = os.path.join(os.path.dirname(o.__file__), "capi")
print(sorted(glob.glob(os.path.join(d, "libonnxruntime.so*")), key=len)[-1])')
  export SECONDOPINION_ORT_LIBRARY
fi

# One text per line for the example (it reads no JSON): title + text as the
# pipeline reranks them, and the demo queries that have an answer.
data=python/secondopinion/data
"$PY" - "$data" "$build" <<'EOF'
import json, sys
from pathlib import Path
data, out = Path(sys.argv[1]), Path(sys.argv[2])
docs = [json.loads(line) for line in (data / "demo_corpus.jsonl").read_text().splitlines()]
flat = lambda s: " ".join(s.split())
(out / "passages.txt").write_text(
    "".join(flat(f"{d['title']} {d['text']}" if d["title"] else d["text"]) + "\n" for d in docs))
queries = json.loads((data / "demo_queries.json").read_text())
(out / "queries.txt").write_text("".join(q["query"] + "\n" for q in queries if q["answer"]))
EOF

model=python/secondopinion/models/cross-encoder
step "rerank the demo corpus for one query"
"$example" --model "$model" --passages "$build/passages.txt" --top 100 \
  --query "how much ibuprofen can a 6 year old take"

step "BM25 (C++) picks 10 candidates, the cross-encoder reranks them"
"$example" --model "$model" --passages "$build/passages.txt" --top 5 --bm25 10 \
  --query "can I give my child aspirin when she has the flu"

step "concurrency check: $threads threads, $calls calls"
"$example" --model "$model" --passages "$build/passages.txt" --queries "$build/queries.txt" \
  --concurrency-check --threads "$threads" --calls "$calls" \
  --distinct $((calls / 10 < 400 ? (calls + 9) / 10 : 400)) --warmup $((calls / 10))
