"""Set the shipped cross-encoder's floor from persisted score traces.

Builds the pipeline over SciFact with the default models, but with the
relevant documents of a seeded half of the validation queries deleted from the
corpus, so those queries have no answer. Every validation query is searched
with traces on (labels from the qrels), and the floor is chosen from the trace
store by `calibrate_floor` with a target refusal precision, then written into
the model's secondopinion.json (`--write`).

    python tools/calibrate_default_floor.py --data ../shared/data/scifact \
        --train-log build/device_run/train_log.json --queries 80 --traces build/floor.db
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from secondopinion.beir import load_beir
from secondopinion.calibrate import calibrate_floor, write_floor
from secondopinion.pipeline import Pipeline
from secondopinion.traces import TraceStore


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-log", required=True, help="train_log.json with data.val_query_ids")
    ap.add_argument("--queries", type=int, default=80)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--traces", required=True)
    ap.add_argument("--target-refusal-precision", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--write", metavar="MODEL_DIR", help="write the floor into MODEL_DIR")
    args = ap.parse_args()

    if Path(args.traces).exists():
        # The floor is chosen from every trace in the store: traces of another
        # model (an earlier run) would be mixed in.
        sys.exit(f"{args.traces} exists: remove it, or give --traces a new file")
    ds = load_beir(args.data, "train")
    with open(args.train_log, encoding="utf-8") as f:
        val_ids = json.load(f)["data"]["val_query_ids"]["scifact"]
    rng = random.Random(args.seed)
    val_ids = [q for q in val_ids if q in ds.qrels]
    rng.shuffle(val_ids)
    chosen = val_ids[: args.queries]
    unanswerable = set(chosen[: len(chosen) // 2])
    removed = {d for q in unanswerable for d, rel in ds.qrels[q].items() if rel > 0}
    # A removed document may also answer a query kept answerable: that query loses it too.
    docs = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(ds.corpus.ids, ds.corpus.titles, ds.corpus.texts, strict=True)
        if i not in removed
    ]
    print(
        f"{len(docs)} documents ({len(removed)} removed), {len(chosen)} queries, "
        f"{len(unanswerable)} made unanswerable",
        file=sys.stderr,
    )
    pipe = Pipeline.from_corpus(docs)
    store = TraceStore(args.traces)
    pipe.traces = store
    results = pipe.search_batch(
        [ds.queries[q] for q in chosen], candidates=args.candidates, query_ids=chosen, floor=0.0
    )
    kept_ids = {d["id"] for d in docs}
    # Full judgements, removed documents included: an unanswerable query stays
    # judged (it has relevant documents, none of which can be a candidate).
    store.add_labels({q: dict(ds.qrels[q]) for q in chosen})
    choice = calibrate_floor(store, target_refusal_precision=args.target_refusal_precision)
    answerable = [q for q in chosen if any(d in kept_ids and r > 0 for d, r in ds.qrels[q].items())]
    best = {
        q: r.best_score if r.status == "refusal" else r.chunks[0].score
        for q, r in zip(chosen, results, strict=True)
    }
    refused_unans = sum(best[q] < choice.floor for q in chosen if q not in answerable)
    refused_ans = sum(best[q] < choice.floor for q in answerable)
    n_unans = len(chosen) - len(answerable)
    report = {
        "floor": choice.floor,
        "method": choice.method,
        "target": choice.target,
        "met": choice.met,
        "refusal_rate": choice.refusal_rate,
        "false_refusal_rate": choice.false_refusal_rate,
        "refusal_precision": choice.refusal_precision,
        "recall_of_relevant": choice.recall,
        "unanswerable_refused": f"{refused_unans}/{n_unans}",
        "answerable_refused": f"{refused_ans}/{len(answerable)}",
    }
    print(json.dumps(report, indent=2))
    if args.write:
        write_floor(args.write, choice.floor)
        print(f"floor {choice.floor:.4f} written to {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
