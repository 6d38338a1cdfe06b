"""Per-stage latency of Pipeline.search on a BEIR dataset: p50 and p95 per stage.

One query at a time, one thread, after a warm-up, as a server thread sees it::

    python tools/pipeline_latency.py --data ../shared/data/scifact --split train \\
        --queries 100 --candidates 100 [--embedder DIR --cross-encoder DIR]

Prints each stage's p50/p95 in ms and its share of the mean total; the
issue's bar is that everything except the cross-encoder (tokenise + rerank)
stays under 10% of the total.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from secondopinion import CrossEncoder, Embedder
from secondopinion.beir import load_beir
from secondopinion.pipeline import Pipeline

STAGES = ("bm25", "embed", "hnsw", "fuse", "tokenize", "rerank", "gate", "total")
CROSS_ENCODER_STAGES = ("tokenize", "rerank")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--cross-encoder", default=None)
    args = parser.parse_args()

    dataset = load_beir(args.data, args.split)
    corpus = dataset.corpus
    docs = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
    ]
    pipe = Pipeline.from_corpus(
        docs,
        embedder=Embedder(args.embedder),
        cross_encoder=CrossEncoder(args.cross_encoder),
        show_progress=True,
    )
    queries = [text for _, text in dataset.judged_queries()]
    for text in queries[: args.warmup]:
        pipe.search(text, candidates=args.candidates)
    samples = {stage: [] for stage in STAGES}
    for text in queries[: args.queries]:
        result = pipe.search(text, candidates=args.candidates)
        for stage in STAGES:
            samples[stage].append(result.timings_ms[stage])
    mean_total = float(np.mean(samples["total"]))
    print(f"{len(samples['total'])} queries, {args.candidates} candidates, ms:")
    print(f"{'stage':<9} {'p50':>9} {'p95':>9} {'share':>7}")
    for stage in STAGES:
        values = np.asarray(samples[stage])
        share = float(values.mean()) / mean_total
        p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
        print(f"{stage:<9} {p50:9.2f} {p95:9.2f} {share:7.1%}")
    outside = sum(float(np.mean(samples[s])) for s in STAGES[:-1] if s not in CROSS_ENCODER_STAGES)
    print(f"everything but the cross-encoder: {outside / mean_total:.1%} of the mean total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
