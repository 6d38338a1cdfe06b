"""Running one pipeline stage over a BEIR dataset and scoring it.

This is the one place ``secondopinion eval`` goes through. Stages:

* ``bm25``, ``dense``: one retriever, ``k`` deep.
* ``hybrid``: BM25 and dense fused into ``candidates`` documents.
* ``rerank``: the hybrid candidates ordered by the final relevance probability
  (the learned score when the model ships one, else the cross-encoder's sigmoid).
* ``gate``: ``rerank`` plus the floor and ``top_n``: a query's ranking is its
  kept chunks (none for a refusal).

Metrics (nDCG@10, Recall@100, MRR@10) count only the queries the split judges.
For ``rerank`` and ``gate``, Recall@100 is that of the candidates the
reranker saw (reranking cannot change it; the gate's cut would only hide it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .beir import BeirDataset
from .bm25 import BM25Index
from .embed import Embedder
from .hits import Hits
from .metrics import Judgements, evaluate
from .rerank import CrossEncoder

__all__ = ["STAGES", "EvalOptions", "StageReport", "evaluate_stage"]

#: A run: query id -> ranked document ids, best first.
Run = dict[str, list[str]]


@dataclass
class EvalOptions:
    """What a stage needs besides the data; models ``None`` load the package's."""

    k: int = 1000
    candidates: int = 100
    top_n: int | None = 10
    floor: float | None = None
    embedder: Embedder | None = None
    cross_encoder: CrossEncoder | None = None
    show_progress: bool = False


@dataclass
class StageReport:
    """What one evaluation measured.

    ``metrics`` holds ``ndcg@10``, ``recall@100`` and ``mrr@10`` (means over
    the judged queries); ``qps`` is single-thread queries per second of the
    stage itself, one query at a time (index building excluded, reported as
    ``index_s``). ``records`` holds one ``--run-out`` record per query run;
    ``gate`` the refused/answered counts and mean chunks of stage ``gate``.
    """

    stage: str
    metrics: dict[str, float]
    queries: int
    qps: float
    index_s: float
    run: Run = field(repr=False)
    records: list[dict[str, Any]] = field(repr=False, default_factory=list)
    gate: dict[str, float | int] = field(default_factory=dict)

    def as_json(self) -> dict[str, float | int | str]:
        return {
            "stage": self.stage,
            **self.metrics,
            "qps": self.qps,
            "queries": self.queries,
            "index_s": self.index_s,
            **self.gate,
        }


def _hits_record(qid: str, hits: Hits, rank_key: str, timings: dict[str, float]) -> dict:
    chunks = [
        {"id": doc, "score": score, rank_key: rank}
        for rank, (doc, score) in enumerate(hits, start=1)
    ]
    best = chunks[0]["score"] if chunks else None
    return {
        "query_id": qid,
        "status": "evidence" if chunks else "refusal",
        "best_score": best,
        "chunks": chunks,
        "timings_ms": timings,
    }


@dataclass
class _Prepared:
    """Indexes built for a stage, and how long building took."""

    index_s: float
    search: Callable[[str, str], tuple[list[str], list[str], dict[str, Any]]]
    # search(qid, text) -> (ranking for nDCG/MRR, ranking for recall, run-out record)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1e3


def _prepare_bm25(dataset: BeirDataset, opts: EvalOptions) -> _Prepared:
    start = time.perf_counter()
    index = BM25Index.build(
        dataset.corpus.indexable_texts(), ids=dataset.corpus.ids, show_progress=opts.show_progress
    )
    index_s = time.perf_counter() - start

    def search(qid: str, text: str) -> tuple[list[str], list[str], dict]:
        hits, ms = _timed(lambda: index.search(text, k=opts.k))
        ids = hits.ids.tolist()
        return ids, ids, _hits_record(qid, hits, "bm25_rank", {"bm25": ms})

    return _Prepared(index_s, search)


def _prepare_dense(dataset: BeirDataset, opts: EvalOptions) -> _Prepared:
    from .retrieve import DenseIndex

    start = time.perf_counter()
    index = DenseIndex.build(
        dataset.corpus.indexable_texts(),
        dataset.corpus.ids,
        embedder=opts.embedder,
        show_progress=opts.show_progress,
    )
    index_s = time.perf_counter() - start

    def search(qid: str, text: str) -> tuple[list[str], list[str], dict]:
        vector, embed_ms = _timed(lambda: index.embed_query(text))
        hits, hnsw_ms = _timed(lambda: index.search_vector(vector, k=opts.k))
        ids = hits.ids.tolist()
        timings = {"embed": embed_ms, "hnsw": hnsw_ms}
        return ids, ids, _hits_record(qid, hits, "dense_rank", timings)

    return _Prepared(index_s, search)


def _build_retriever(dataset: BeirDataset, opts: EvalOptions):  # noqa: ANN202 - HybridRetriever
    from .retrieve import DenseIndex, HybridRetriever

    texts = dataset.corpus.indexable_texts()
    bm25 = BM25Index.build(texts, ids=dataset.corpus.ids, show_progress=opts.show_progress)
    dense = DenseIndex.build(
        texts, dataset.corpus.ids, embedder=opts.embedder, show_progress=opts.show_progress
    )
    return HybridRetriever(bm25, dense)


def _prepare_hybrid(dataset: BeirDataset, opts: EvalOptions) -> _Prepared:
    from .retrieve import HybridTimings

    start = time.perf_counter()
    retriever = _build_retriever(dataset, opts)
    index_s = time.perf_counter() - start

    def search(qid: str, text: str) -> tuple[list[str], list[str], dict]:
        timings = HybridTimings()
        fused = retriever.retrieve(text, opts.candidates, timings=timings)
        ids = fused.ids.tolist()
        chunks = [
            {
                "id": doc,
                "score": float(fused.scores[j]),
                "bm25_rank": int(fused.stage_ranks[0, j]),
                "dense_rank": int(fused.stage_ranks[1, j]),
                "fused_rank": j + 1,
            }
            for j, doc in enumerate(ids)
        ]
        record = {
            "query_id": qid,
            "status": "evidence" if chunks else "refusal",
            "best_score": chunks[0]["score"] if chunks else None,
            "chunks": chunks,
            "timings_ms": dict(vars(timings)),
        }
        return ids, ids, record

    return _Prepared(index_s, search)


def _prepare_reranked(dataset: BeirDataset, opts: EvalOptions, *, gated: bool) -> _Prepared:
    from .pipeline import Pipeline

    start = time.perf_counter()
    retriever = _build_retriever(dataset, opts)
    corpus = dataset.corpus
    pipe = Pipeline(
        list(corpus.ids),
        list(corpus.titles),
        list(corpus.texts),
        retriever,
        opts.cross_encoder if opts.cross_encoder is not None else CrossEncoder(),
    )
    index_s = time.perf_counter() - start
    # rerank: every candidate, ordered by the final probability (floor 0 cuts nothing).
    top_n, floor = (opts.top_n, opts.floor) if gated else (None, 0.0)

    def search(qid: str, text: str) -> tuple[list[str], list[str], dict]:
        result = pipe.search(text, candidates=opts.candidates, top_n=top_n, floor=floor)
        shown = result.chunks if gated else result.candidates
        best = result.best_score
        record = {
            "query_id": qid,
            "status": result.status,
            "best_score": None if math.isnan(best) else best,
            "chunks": [
                {
                    "id": c.id,
                    "score": c.score,
                    "bm25_rank": c.bm25_rank,
                    "dense_rank": c.dense_rank,
                    "fused_rank": c.fused_rank,
                }
                for c in shown
            ],
            "timings_ms": result.timings_ms,
        }
        record["floor"] = result.floor
        return [c.id for c in shown], [c.id for c in result.candidates], record

    return _Prepared(index_s, search)


#: stage name -> prepare(dataset, options) -> a prepared stage
STAGES: dict[str, Callable[[BeirDataset, EvalOptions], _Prepared]] = {
    "bm25": _prepare_bm25,
    "dense": _prepare_dense,
    "hybrid": _prepare_hybrid,
    "rerank": lambda d, o: _prepare_reranked(d, o, gated=False),
    "gate": lambda d, o: _prepare_reranked(d, o, gated=True),
}


def evaluate_stage(
    dataset: BeirDataset,
    stage: str,
    *,
    k: int = 1000,
    options: EvalOptions | None = None,
    all_queries: bool = False,
) -> StageReport:
    """Run ``stage`` for every query judged in the dataset's split and score it.

    Args:
        dataset: a loaded BEIR dataset (see :func:`secondopinion.beir.load_beir`).
        stage: one of :data:`STAGES`.
        k: retrieval depth per query of ``bm25`` and ``dense`` (>= 100 so that
            Recall@100 is meaningful); overrides ``options.k``.
        options: candidates, top_n, floor and models of the later stages.
        all_queries: run every query in queries.jsonl (each gets a record);
            metrics still count only the judged ones.

    Raises:
        ValueError: unknown stage, k < 1, or a split that judges no query.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    opts = EvalOptions() if options is None else options
    opts.k = k
    judged = list(dataset.judged_queries())
    if not judged:
        raise ValueError(f"split {dataset.split!r} judges none of the queries in queries.jsonl")
    queries = list(dataset.queries.items()) if all_queries else judged
    if stage == "gate":
        from .gate import Gate

        Gate(opts.floor, opts.top_n)  # bad floor or top_n fails before indexing
    judgements = Judgements(dataset.qrels, dataset.corpus.ids)
    prepared = STAGES[stage](dataset, opts)
    run: Run = {}
    candidate_run: Run = {}
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for qid, text in queries:
        ranking, candidates, record = prepared.search(qid, text)
        run[qid] = ranking
        candidate_run[qid] = candidates
        records.append(record)
    elapsed = time.perf_counter() - start
    metrics = evaluate(run, judgements).summary()
    metrics["recall@100"] = evaluate(candidate_run, judgements).summary()["recall@100"]
    gate_counts: dict[str, float | int] = {}
    if stage == "gate":
        answered = [r for r in records if r["status"] == "evidence"]
        gate_counts = {
            "answered": len(answered),
            "refused": len(records) - len(answered),
            "mean_chunks": (
                sum(len(r["chunks"]) for r in answered) / len(answered) if answered else 0.0
            ),
        }
    return StageReport(
        stage=stage,
        metrics=metrics,
        queries=len(queries),
        qps=len(queries) / elapsed if elapsed > 0 else float("inf"),
        index_s=prepared.index_s,
        run=run,
        records=records,
        gate=gate_counts,
    )
