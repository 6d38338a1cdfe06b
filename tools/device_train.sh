#!/usr/bin/env bash
# The one command run on the lent GPU machine: bash tools/device_train.sh
#
# Reads .device_carry/ (made by tools/pack_for_device.py), trains the 6-, 4- and
# 2-layer cross-encoders one after the other, each within its time budget, and
# writes into $OUT at most 8 files: train_log.json (metrics per validation,
# timings, validation query ids, probe logits), train_stdout.log, and each
# variant's fp16 weight parts (ce-L6 x2, ce-L4 x1, ce-L2 x1). Bring them back and
# run tools/unpack_from_device.py on that folder.
#
# Budgets (seconds, env overridable): the whole run must end within ~8 minutes
# of wall time, data preparation and hard-negative mining included.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the folder whose files come back}"
LAYERS="${LAYERS:-6,4,2}"
BUDGETS="${BUDGETS:-215,80,50}"
DEADLINE="${DEADLINE:-420}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
mkdir -p "$OUT"
for f in .device_carry/base/model.safetensors .device_carry/data/scifact/corpus.jsonl.gz; do
    [ -f "$f" ] || { echo "missing $f: run tools/pack_for_device.py and carry .device_carry" >&2; exit 2; }
done
{
    echo "== $(date -u +%FT%TZ) $(hostname)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" -c 'import torch, transformers, safetensors, tokenizers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
    # The hard stop leaves time for $OUT to be collected even if something hangs.
    rc=0
    timeout --signal=TERM --kill-after=10 "$((${DEADLINE%.*} + 40))" \
        "$PY" tools/train_cross_encoder.py \
        --data .device_carry/data --base .device_carry/base --out "$OUT" \
        --device auto --layers "$LAYERS" --time-budget-s "$BUDGETS" --deadline-s "$DEADLINE" \
        "$@" || rc=$?
    echo "== exit $rc at $(date -u +%FT%TZ); files in OUT:"
    ls -la "$OUT"
} 2>&1 | tee "$OUT/train_stdout.log"
n=$(find "$OUT" -type f | wc -l)
[ "$n" -le 8 ] || echo "warning: $n files in OUT, only 8 come back" >&2
