"""The gate on answerable and unanswerable questions.

Makes some judged queries unanswerable by deleting their relevant documents
from the corpus (seeded choice), indexes what is left, runs the whole
pipeline on every judged query, and reports at the chosen floor (and, from
the same run, at a grid of floors: a query is refused exactly when its best
probability is below the floor):

* refusal recall: unanswerable queries refused / unanswerable queries;
* false-refusal rate: answerable queries refused / answerable queries;
* answered, refused, mean chunks kept per answered query, and answered
  queries keeping at least one relevant chunk.

::

    python tools/measure_gate.py --data ../shared/data/scifact --split train \\
        --unanswerable 0.2 [--floor F] [--embedder DIR --cross-encoder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import numpy as np

from secondopinion import CrossEncoder, Embedder
from secondopinion.beir import load_beir
from secondopinion.gate import Evidence
from secondopinion.pipeline import Pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--unanswerable", type=float, default=0.2, help="fraction of queries")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument("--top-n", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument(
        "--subset",
        default=None,
        help="JSON file: a list of query ids, or lists keyed by dataset folder name; "
        "only those queries are run (e.g. tools/data/validation_queries.json)",
    )
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--cross-encoder", default=None)
    parser.add_argument("--json", default=None, help="also write the numbers as JSON here")
    args = parser.parse_args()

    dataset = load_beir(args.data, args.split)
    judged = list(dataset.judged_queries())
    if args.subset:
        with open(args.subset, encoding="utf-8") as file:
            chosen = json.load(file)
        if isinstance(chosen, dict):
            chosen = chosen.get(os.path.basename(os.path.normpath(args.data)), [])
        wanted = set(chosen)
        judged = [(q, t) for q, t in judged if q in wanted]
    rng = random.Random(args.seed)
    rng.shuffle(judged)
    if args.max_queries:
        judged = judged[: args.max_queries]
    relevant = {qid: {d for d, rel in dataset.qrels[qid].items() if rel >= 1} for qid, _ in judged}
    chosen = {qid for qid, _ in judged[: int(round(args.unanswerable * len(judged)))]}
    removed = set().union(*(relevant[q] for q in chosen)) if chosen else set()
    corpus = dataset.corpus
    docs = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
        if i not in removed
    ]
    present = {d["id"] for d in docs}
    # A query whose relevant documents all went with another query's is unanswerable too.
    unanswerable = {q for q, _ in judged if not (relevant[q] & present)}
    print(
        f"{len(judged)} queries, {len(unanswerable)} unanswerable "
        f"({len(removed)} documents deleted of {len(corpus)})",
        file=sys.stderr,
    )
    pipe = Pipeline.from_corpus(
        docs,
        embedder=Embedder(args.embedder),
        cross_encoder=CrossEncoder(args.cross_encoder),
        show_progress=True,
    )
    best: dict[str, float] = {}
    answered_with_relevant = 0
    chunks_kept: list[int] = []
    refused_answerable = refused_unanswerable = 0
    floor_used = None
    for qid, text in judged:
        result = pipe.search(text, candidates=args.candidates, top_n=args.top_n, floor=args.floor)
        floor_used = result.floor
        best[qid] = result.best_score
        if isinstance(result, Evidence):
            chunks_kept.append(len(result.chunks))
            answered_with_relevant += any(c.id in relevant[qid] for c in result.chunks)
        elif qid in unanswerable:
            refused_unanswerable += 1
        else:
            refused_answerable += 1
    n_unans = len(unanswerable)
    n_ans = len(judged) - n_unans
    summary = {
        "floor": floor_used,
        "queries": len(judged),
        "unanswerable": n_unans,
        "answered": len(chunks_kept),
        "refused": refused_answerable + refused_unanswerable,
        "mean_chunks": float(np.mean(chunks_kept)) if chunks_kept else 0.0,
        "answered_with_relevant": answered_with_relevant,
        "refusal_recall": refused_unanswerable / n_unans if n_unans else None,
        "false_refusal_rate": refused_answerable / n_ans if n_ans else None,
    }
    print(json.dumps(summary, indent=2))
    print(f"{'floor':>6} {'refusal recall':>15} {'false refusals':>15}")
    sweep = []
    for floor in np.round(np.arange(0.05, 1.0, 0.05), 2):
        rec = sum(best[q] < floor for q in unanswerable) / max(n_unans, 1)
        false = sum(best[q] < floor for q, _ in judged if q not in unanswerable) / max(n_ans, 1)
        sweep.append({"floor": float(floor), "refusal_recall": rec, "false_refusal_rate": false})
        print(f"{floor:6.2f} {rec:15.3f} {false:15.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"summary": summary, "sweep": sweep}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
