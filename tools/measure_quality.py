"""Quality of every pipeline stage from one run over a BEIR split: hybrid,
hybrid + rerank, and the gate.

For each judged query the whole pipeline runs once (full corpus, nothing
deleted) with ``candidates`` candidates; from that one result come three
rankings of the same candidates:

* hybrid: the candidates by fused rank (stage 1);
* rerank: the candidates by the final relevance probability (the learned
  score when the model ships one);
* gate: the chunks kept (at most ``top_n`` above the calibrated floor), with
  answered / refused counts, mean chunks kept per answered query, and how
  many answered queries keep at least one relevant chunk.

nDCG@10, Recall@100 and MRR@10 come from :mod:`secondopinion.metrics` (the
one tested against pytrec_eval). With ``--subset FILE`` (a JSON list of query
ids, or an object of lists keyed by dataset name) the same numbers are also
given for that subset, e.g. the validation queries the default
cross-encoder never trained on (``tools/data/validation_queries.json``).
The pipeline is built once and saved under ``--cache``, so a second run (or
``tools/pipeline_latency.py --pipeline``) skips the corpus encoding::

    python tools/measure_quality.py --data ../shared/data/scifact --split train \\
        --subset tools/data/validation_queries.json --json build/quality_scifact.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from secondopinion.beir import BeirDataset, load_beir
from secondopinion.gate import Evidence
from secondopinion.metrics import Judgements, evaluate
from secondopinion.pipeline import Pipeline


def build_or_load(dataset: BeirDataset, cache: Path | None) -> Pipeline:
    if cache is not None and cache.exists():
        print(f"loading {cache}", file=sys.stderr)
        return Pipeline.load(cache)
    corpus = dataset.corpus
    docs = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
    ]
    start = time.perf_counter()
    pipe = Pipeline.from_corpus(docs, show_progress=True)
    print(f"indexed {len(docs)} documents in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if cache is not None:
        pipe.save(cache)
    return pipe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", required=True)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--top-n", type=int, default=10)
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument(
        "--max-queries", type=int, default=None, help="a seeded random sample of this many"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--subset", type=Path, default=None)
    parser.add_argument("--only-subset", action="store_true", help="run only the --subset queries")
    parser.add_argument("--cache", type=Path, default=None, help="saved pipeline folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_beir(str(args.data), args.split)
    wanted = None
    if args.subset is not None:
        chosen = json.loads(args.subset.read_text(encoding="utf-8"))
        wanted = set(chosen.get(args.data.name, []) if isinstance(chosen, dict) else chosen)
    judged = list(dataset.judged_queries())
    if args.only_subset:
        if wanted is None:
            parser.error("--only-subset needs --subset")
        judged = [(q, t) for q, t in judged if q in wanted]
    if args.max_queries is not None and args.max_queries < len(judged):
        # A seeded sample, not the first N: queries.jsonl groups queries by
        # kind (NFCorpus's first 120 dev queries score a third of the rest).
        chosen_ids = set(random.Random(args.seed).sample([q for q, _ in judged], args.max_queries))
        judged = [(q, t) for q, t in judged if q in chosen_ids]
    pipe = build_or_load(dataset, args.cache)

    runs: dict[str, dict[str, list[str]]] = {"hybrid": {}, "rerank": {}, "gate": {}}
    status: dict[str, bool] = {}
    kept_relevant: dict[str, bool] = {}
    chunks: dict[str, int] = {}
    timings: list[dict[str, float]] = []
    floor = float("nan")
    start = time.perf_counter()
    for n, (qid, text) in enumerate(judged, 1):
        result = pipe.search(text, candidates=args.candidates, top_n=args.top_n, floor=args.floor)
        by_fused = sorted(result.candidates, key=lambda c: c.fused_rank)
        runs["hybrid"][qid] = [c.id for c in by_fused]
        runs["rerank"][qid] = [c.id for c in result.candidates]
        answered = isinstance(result, Evidence)
        status[qid] = answered
        shown = result.chunks if answered else []
        runs["gate"][qid] = [c.id for c in shown]
        chunks[qid] = len(shown)
        relevant = {d for d, rel in dataset.qrels[qid].items() if rel >= 1}
        kept_relevant[qid] = any(c.id in relevant for c in shown)
        timings.append(result.timings_ms)
        floor = result.floor
        if n % 50 == 0:
            rate = n / (time.perf_counter() - start)
            print(f"{n}/{len(judged)} queries, {rate:.2f} q/s", file=sys.stderr)
    elapsed = time.perf_counter() - start

    subsets: dict[str, list[str]] = {"all": [q for q, _ in judged]}
    if wanted is not None:
        subsets["subset"] = [q for q, _ in judged if q in wanted]

    report: dict[str, object] = {
        "data": args.data.name,
        "split": args.split,
        "candidates": args.candidates,
        "top_n": args.top_n,
        "floor": floor,
        "qps": len(judged) / elapsed,
    }
    for name, qids in subsets.items():
        if not qids:
            continue
        rows: dict[str, object] = {}
        # Judgements of these queries only: evaluate() scores a judged query
        # missing from the run as 0, which would dilute a subset's mean.
        subset_judgements = Judgements({q: dataset.qrels[q] for q in qids}, dataset.corpus.ids)
        for stage in ("hybrid", "rerank", "gate"):
            run = {q: runs[stage][q] for q in qids}
            summary = evaluate(run, subset_judgements).summary()
            rows[stage] = {k: round(v, 4) for k, v in summary.items()}
        answered = [q for q in qids if status[q]]
        rows["gate"] |= {  # type: ignore[operator]
            "answered": len(answered),
            "refused": len(qids) - len(answered),
            "mean_chunks": round(float(np.mean([chunks[q] for q in answered])), 2)
            if answered
            else 0.0,
            "answered_with_relevant": sum(kept_relevant[q] for q in answered),
        }
        rows["queries"] = len(qids)
        report[name] = rows
    stages = sorted({k for t in timings for k in t})
    report["timings_ms"] = {
        s: {
            "p50": round(float(np.percentile([t.get(s, 0.0) for t in timings], 50)), 3),
            "p95": round(float(np.percentile([t.get(s, 0.0) for t in timings], 95)), 3),
        }
        for s in stages
    }
    report["runs"] = runs  # per query, so any other subset can be scored later
    text = json.dumps(report, indent=2)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
