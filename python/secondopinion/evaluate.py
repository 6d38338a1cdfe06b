"""Running one retrieval stage over a BEIR dataset and scoring it.

This is the one place ``secondopinion eval`` goes through; later stages
(dense, hybrid, rerank, gate) add a runner to ``STAGES``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .beir import BeirDataset
from .bm25 import BM25Index
from .hits import Hits
from .metrics import Judgements, evaluate

#: A run: query id -> ranking, best first.
Run = dict[str, Hits]


@dataclass
class StageReport:
    """What one evaluation measured.

    ``metrics`` holds ``ndcg@10``, ``recall@100`` and ``mrr@10`` (means over
    the judged queries); ``qps`` is single-thread queries per second of the
    stage itself, one query at a time (index building excluded, reported as
    ``index_s``).
    """

    stage: str
    metrics: dict[str, float]
    queries: int
    qps: float
    index_s: float
    run: Run = field(repr=False)

    def as_json(self) -> dict[str, float | int | str]:
        return {
            "stage": self.stage,
            **self.metrics,
            "qps": self.qps,
            "queries": self.queries,
            "index_s": self.index_s,
        }


def _run_bm25(dataset: BeirDataset, queries: list[tuple[str, str]], k: int) -> tuple[Run, float]:
    start = time.perf_counter()
    index = BM25Index.build(
        dataset.corpus.indexable_texts(), ids=dataset.corpus.ids, show_progress=sys.stderr.isatty()
    )
    index_s = time.perf_counter() - start
    run: Run = {}
    for qid, text in queries:
        run[qid] = index.search(text, k=k)
    return run, index_s


#: stage name -> runner(dataset, queries, k) -> (run, index seconds)
STAGES: dict[str, Callable[[BeirDataset, list[tuple[str, str]], int], tuple[Run, float]]] = {
    "bm25": _run_bm25,
}


def evaluate_stage(dataset: BeirDataset, stage: str, *, k: int = 1000) -> StageReport:
    """Run ``stage`` for every query judged in the dataset's split and score it.

    Args:
        dataset: a loaded BEIR dataset (see :func:`secondopinion.beir.load_beir`).
        stage: one of :data:`STAGES`.
        k: retrieval depth per query (>= 100 so that Recall@100 is meaningful).

    Raises:
        ValueError: unknown stage, k < 1, or a split that judges no query.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    queries = list(dataset.judged_queries())
    if not queries:
        raise ValueError(f"split {dataset.split!r} judges none of the queries in queries.jsonl")
    judgements = Judgements(dataset.qrels, dataset.corpus.ids)
    start = time.perf_counter()
    run, index_s = STAGES[stage](dataset, queries, k)
    elapsed = time.perf_counter() - start - index_s
    metrics = evaluate(run, judgements).summary()
    return StageReport(
        stage=stage,
        metrics=metrics,
        queries=len(queries),
        qps=len(queries) / elapsed if elapsed > 0 else float("inf"),
        index_s=index_s,
        run=run,
    )
