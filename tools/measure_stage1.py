"""Stage-1 quality on a BEIR split: BM25, dense, and hybrid fusion variants.

Indexes the corpus once, then scores each variant on the judged queries
(nDCG@10, Recall@100) and times it, so the HybridRetriever defaults can be
chosen from measurements::

    python tools/measure_stage1.py --data ../shared/data/scifact --split train \\
        --embedder path/to/embedder [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from secondopinion import BM25Index, Embedder
from secondopinion.beir import load_beir
from secondopinion.metrics import Judgements, evaluate
from secondopinion.retrieve import DenseIndex, HybridRetriever


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--embedder", default=None, help="embedder folder (default: bundled)")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args()

    dataset = load_beir(args.data, args.split)
    queries = list(dataset.judged_queries())
    judgements = Judgements(dataset.qrels, dataset.corpus.ids)
    texts = dataset.corpus.indexable_texts()
    start = time.perf_counter()
    bm25 = BM25Index.build(texts, ids=dataset.corpus.ids)
    bm25_s = time.perf_counter() - start
    embedder = Embedder(args.embedder)
    start = time.perf_counter()
    dense = DenseIndex.build(texts, dataset.corpus.ids, embedder=embedder, show_progress=True)
    dense_s = time.perf_counter() - start
    print(
        f"{args.data} {args.split}: {len(texts)} docs, {len(queries)} queries; "
        f"BM25 index {bm25_s:.1f} s, dense index {dense_s:.1f} s",
        file=sys.stderr,
    )

    vectors = {qid: dense.embed_query(text) for qid, text in queries}
    rows = []

    def score(name: str, run: dict, seconds: float) -> None:
        summary = evaluate(run, judgements).summary()
        rows.append({"variant": name, **summary, "ms_per_query": seconds * 1e3 / len(queries)})
        print(
            f"{name:<34} nDCG@10 {summary['ndcg@10']:.4f}  R@100 {summary['recall@100']:.4f}",
            file=sys.stderr,
        )

    start = time.perf_counter()
    score("bm25", {q: bm25.search(t, k=100) for q, t in queries}, time.perf_counter() - start)
    start = time.perf_counter()
    score(
        "dense",
        {q: dense.search_vector(vectors[q], k=100) for q, _ in queries},
        time.perf_counter() - start,
    )
    variants = [
        ("rrf", 100, 100, (1.0, 1.0)),
        ("rrf", 200, 200, (1.0, 1.0)),
        ("rrf", 1000, 1000, (1.0, 1.0)),
        ("weighted", 100, 100, (1.0, 1.0)),
        ("weighted", 1000, 1000, (1.0, 1.0)),
        ("weighted", 100, 100, (0.6, 0.4)),
        ("weighted", 100, 100, (0.4, 0.6)),
    ]
    for fusion, n_bm25, n_dense, weights in variants:
        retriever = HybridRetriever(
            bm25, dense, n_bm25=n_bm25, n_dense=n_dense, fusion=fusion, weights=weights
        )
        run = {}
        start = time.perf_counter()
        for qid, text in queries:
            legs = [
                bm25.search(text, k=n_bm25),
                dense.search_vector(vectors[qid], k=n_dense),
            ]
            run[qid] = retriever._fuse(legs, 100)
        name = f"hybrid {fusion} N={n_bm25}/{n_dense} w={weights[0]:g}/{weights[1]:g}"
        score(name, run, time.perf_counter() - start)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"data": args.data, "split": args.split, "rows": rows}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
