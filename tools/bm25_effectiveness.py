"""Effectiveness of our BM25 against bm25s configured as the same Lucene variant.

For each BEIR-layout dataset: nDCG@10 and Recall@100 (pytrec_eval) over the
queries of one qrels split, for

* ours:  ``BM25Index.build`` (title + text, k1 0.9, b 0.4, Lucene's English stop
  set, Snowball stemmer);
* bm25s: ``method="lucene"``, the same k1, b and stop words, PyStemmer with the
  same Snowball algorithm, title and text joined by a space.

Both runs are handed to pytrec_eval as ranks (score = 1 / rank), so each
system's own order decides ties rather than trec_eval's tie rule, and
documents with score 0 (no query term) are dropped from both. A query with no
result counts as 0.

Usage::

    python tools/bm25_effectiveness.py [--data ../shared/data] [--stemmer porter] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = (("scifact", "train"), ("nfcorpus", "dev"))
K1, B, DEPTH = 0.9, 0.4, 100


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)  # header
        for qid, did, score in reader:
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def load(data: Path, name: str, split: str) -> tuple[list[dict], dict[str, str], dict]:
    folder = data / name
    corpus = read_jsonl(folder / "corpus.jsonl")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    return corpus, {qid: queries[qid] for qid in qrels}, qrels


def as_run(ranked: list[tuple[list[str], np.ndarray]], qids: list[str]) -> dict:
    run = {}
    for qid, (doc_ids, scores) in zip(qids, ranked, strict=True):
        run[qid] = {
            d: 1.0 / (rank + 1)
            for rank, (d, s) in enumerate(zip(doc_ids, scores, strict=True))
            if s > 0
        }
    return run


def evaluate(run: dict, qrels: dict) -> dict[str, float]:
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate({q: r for q, r in run.items() if r})
    ndcg = [per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels]
    recall = [per_query.get(q, {}).get("recall_100", 0.0) for q in qrels]
    return {"ndcg@10": float(np.mean(ndcg)), "recall@100": float(np.mean(recall))}


def run_ours(corpus: list[dict], queries: list[str], stemmer: str) -> list:
    from secondopinion import BM25Index

    index = BM25Index.build(corpus, k1=K1, b=B, stemmer=stemmer, stopwords="english")
    return [(h.ids.tolist(), h.scores) for h in index.search_batch(queries, k=DEPTH)]


def run_bm25s(corpus: list[dict], queries: list[str], stemmer: str) -> list:
    import bm25s
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    from secondopinion.bm25 import ENGLISH_STOPWORDS

    assert set(STOPWORDS_EN) == set(ENGLISH_STOPWORDS), "bm25s's English stop list changed"
    stem = Stemmer.Stemmer(stemmer)
    texts = [f"{d.get('title') or ''} {d.get('text') or ''}" for d in corpus]
    corpus_tokens = bm25s.tokenize(
        texts, stopwords=list(ENGLISH_STOPWORDS), stemmer=stem, show_progress=False
    )
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(corpus_tokens, show_progress=False)
    query_tokens = bm25s.tokenize(
        queries, stopwords=list(ENGLISH_STOPWORDS), stemmer=stem, show_progress=False
    )
    depth = min(DEPTH, len(corpus))
    docs, scores = retriever.retrieve(query_tokens, k=depth, show_progress=False, n_threads=1)
    ids = np.array([d["_id"] for d in corpus], dtype=object)
    return [(ids[docs[i]].tolist(), scores[i]) for i in range(len(queries))]


def find_data(explicit: Path | None) -> Path | None:
    """--data, else $SECONDOPINION_DATA, else ../shared/data beside the checkout."""
    candidates = [explicit] if explicit else []
    if os.environ.get("SECONDOPINION_DATA"):
        candidates.append(Path(os.environ["SECONDOPINION_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if (c / "scifact").is_dir()), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder with scifact/ and nfcorpus/")
    parser.add_argument("--stemmer", default="porter", choices=("porter", "english"))
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args(argv)
    data = find_data(args.data)
    if data is None:
        print("no data folder with scifact/ found (give --data)", file=sys.stderr)
        return 2
    args.data = data

    report: dict[str, dict] = {}
    print(f"{'dataset':<18} {'system':<8} {'nDCG@10':>8} {'R@100':>8} {'seconds':>8}")
    for name, split in DATASETS:
        corpus, queries, qrels = load(args.data, name, split)
        qids = list(queries)
        texts = [queries[q] for q in qids]
        report[name] = {"split": split, "queries": len(qids), "stemmer": args.stemmer}
        for system, fn in (("ours", run_ours), ("bm25s", run_bm25s)):
            t0 = time.perf_counter()
            ranked = fn(corpus, texts, args.stemmer)
            elapsed = time.perf_counter() - t0
            metrics = evaluate(as_run(ranked, qids), qrels)
            report[name][system] = metrics
            print(
                f"{name + '/' + split:<18} {system:<8} {metrics['ndcg@10']:>8.4f} "
                f"{metrics['recall@100']:>8.4f} {elapsed:>8.2f}"
            )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
