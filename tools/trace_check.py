"""Real-data check of traces, calibration and diagnosis (BM25 + cross-encoder).

Stage 1 is BM25 alone (this tool does not need the pipeline or an embedder):
the top ``--depth`` documents of each judged query are reranked by the
cross-encoder in ``--model``, kept when their probability clears ``--floor``
(best ``--top-n``), and traced. For a share of the queries
(``--unanswerable``) the relevant documents are removed from the candidates
first, as if deleted from the corpus, so that refusals can be calibrated.
Then it prints the floors that calibration chooses and the diagnosis::

    .venv/bin/python tools/trace_check.py --data ../shared/data/scifact --split train \\
        --model build/models/ce-L6-int8 --queries 30 --traces /tmp/scifact.db --plot /tmp/f.png

About 1 s per query on a quiet CPU for 100 candidates (10 s on a shared 2-core
machine). The unanswerable queries are labelled with their original judgements, so the
diagnosis counts their removed documents as recall misses; read the
diagnosis of a run with ``--unanswerable 0``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secondopinion import BM25Index, CrossEncoder
from secondopinion.beir import load_beir
from secondopinion.calibrate import calibrate_floor, plot_floor
from secondopinion.diagnose import diagnose
from secondopinion.traces import TraceStore


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str
    score: float
    ce_logit: float
    ce_score: float
    truncated: bool
    bm25_rank: int
    bm25_score: float | None
    dense_rank: int
    dense_score: float | None
    fused_rank: int
    fused_score: float | None
    kept: bool


@dataclass(frozen=True)
class Result:
    candidates: list[Candidate]
    timings_ms: dict[str, float]
    floor: float
    query: str
    status: str


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--model", required=True, help="cross-encoder model directory")
    parser.add_argument("--traces", required=True, help="trace store to (re)create")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--top-n", type=int, default=10)
    parser.add_argument("--floor", type=float, default=0.5)
    parser.add_argument("--unanswerable", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", help="calibration plot (target recall 0.95)")
    args = parser.parse_args()

    data = load_beir(args.data, args.split)
    corpus = data.corpus
    texts = corpus.indexable_texts()
    position = {doc_id: i for i, doc_id in enumerate(corpus.ids)}
    index = BM25Index.build(texts, corpus.ids)
    model = CrossEncoder(args.model, threads=args.threads)
    rng = np.random.default_rng(0)
    judged = [(q, t) for q, t in data.judged_queries()]
    chosen = [judged[i] for i in sorted(rng.choice(len(judged), args.queries, replace=False))]
    path = Path(args.traces)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    record_ms = []
    with TraceStore(path) as store:
        for n, (qid, query) in enumerate(chosen):
            relevant = {d for d, rel in data.qrels[qid].items() if rel > 0}
            drop = rng.random() < args.unanswerable
            t0 = time.perf_counter()
            hits = index.search(query, k=args.depth + (len(relevant) if drop else 0))
            t1 = time.perf_counter()
            ranked = [
                (rank, doc_id, float(score))
                for rank, (doc_id, score) in enumerate(hits, start=1)
                if not (drop and doc_id in relevant)
            ][: args.depth]
            docs = [texts[position[d]] for _, d, _ in ranked]
            logits, truncated = model.predict(
                [(query, d) for d in docs], activation="none", return_truncated=True
            )
            t2 = time.perf_counter()
            probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
            order = np.argsort(-logits, kind="stable")
            keep = set(order[: args.top_n][probs[order[: args.top_n]] >= args.floor].tolist())
            candidates = [
                Candidate(
                    id=ranked[i][1],
                    text=docs[i],
                    score=float(probs[i]),
                    ce_logit=float(logits[i]),
                    ce_score=float(probs[i]),
                    truncated=bool(truncated[i]),
                    bm25_rank=ranked[i][0],
                    bm25_score=ranked[i][2],
                    dense_rank=0,
                    dense_score=None,
                    fused_rank=i + 1,
                    fused_score=ranked[i][2],
                    kept=i in keep,
                )
                for i in order.tolist()
            ]
            timings = {"bm25": (t1 - t0) * 1e3, "rerank": (t2 - t1) * 1e3}
            result = Result(
                candidates, timings, args.floor, query, "evidence" if keep else "refusal"
            )
            t3 = time.perf_counter()
            # The dropped queries keep their judgements: calibration sees them as
            # queries without a relevant candidate, which is what they now are.
            store.record(result, query_id=qid, model_id=model.config.name, labels=data.qrels[qid])
            record_ms.append((time.perf_counter() - t3) * 1e3)
            print(
                f"{n + 1}/{len(chosen)} {qid} rerank {timings['rerank']:.0f} ms"
                f" record {record_ms[-1]:.2f} ms{' (relevant removed)' if drop else ''}",
                file=sys.stderr,
            )
        rerank = store.arrays().rerank_ms
        print(
            f"record: median {np.median(record_ms):.2f} ms, p95 {np.percentile(record_ms, 95):.2f}"
            f" ms; rerank median {np.median(rerank):.0f} ms"
            f" ({100 * np.median(record_ms) / np.median(rerank):.2f}% of it)"
        )
        for title, kwargs in (
            ("unlabelled (gap between modes)", {}),
            ("target recall 0.95", {"target_recall": 0.95}),
            ("target refusal precision 0.9", {"target_refusal_precision": 0.9}),
        ):
            arrays = store.arrays()
            if not kwargs:
                from secondopinion.calibrate import CalibrationData

                choice = calibrate_floor(CalibrationData(arrays.score, arrays.trace))
            else:
                choice = calibrate_floor(arrays, **kwargs)
            print(f"\n== {title}\n{choice.summary()}")
            if args.plot and kwargs.get("target_recall"):
                plot_floor(arrays, choice, args.plot)
        print("\n== diagnosis\n" + diagnose(store).format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
