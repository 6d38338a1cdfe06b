"""Retrieval metrics that agree with trec_eval (through pytrec_eval).

* nDCG@k: ``sum_{i<=k} gain_i / log2(i + 1)`` over the ranking, divided by the
  same sum over the ideal ranking (every judged relevance, best first), with
  ``gain = relevance`` and negative relevances counted as 0: trec_eval's
  ``ndcg_cut``.
* Recall@k: relevant documents in the top k over all relevant documents.
* MRR@k: ``1 / rank`` of the first relevant document within the top k, else 0
  (trec_eval's ``recip_rank`` on the ranking cut at k).

A document is relevant when its relevance is >= 1 (pytrec_eval's default
``relevance_level``); judged documents the corpus lacks still count in the
ideal ranking and in recall's denominator, as in trec_eval. A query with no
relevant document scores 0.

Differences from pytrec_eval, on purpose: metrics cover exactly the queries in
the qrels, and a judged query missing from the run scores 0 (pytrec_eval
leaves it out, which flatters a system that returns nothing). Rankings are
taken in the order given: pytrec_eval re-sorts by score and breaks ties by
document id descending, so the two agree on rankings without tied scores
(every retrieval stage here breaks its ties deterministically).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .hits import Hits

__all__ = ["Evaluation", "Judgements", "evaluate"]

#: What a run gives for one query: Hits, int indices into the corpus, or doc ids,
#: best first.
Ranking = Hits | np.ndarray | Sequence[str]


@dataclass(frozen=True)
class _Judged:
    """One query's judgements, in corpus-index space."""

    indices: np.ndarray  # int64, sorted: judged documents present in the corpus
    gains: np.ndarray  # float64, their gains (relevance, negatives as 0)
    relevant: np.ndarray  # bool, their relevance >= 1
    ideal_gains: np.ndarray  # float64, every positive relevance, descending
    n_relevant: int  # relevance >= 1, corpus or not


class Judgements:
    """Qrels joined to a corpus: each judged document found by its index.

    Built once per dataset; :func:`evaluate` then scores rankings of int64
    corpus indices with numpy, without a Python loop over documents.
    """

    def __init__(self, qrels: Mapping[str, Mapping[str, int]], doc_ids: Sequence[str]) -> None:
        """Args:
        qrels: query id -> document id -> integer relevance.
        doc_ids: the corpus' document ids; position i is index i.
        """
        self.doc_index: dict[str, int] = {doc: i for i, doc in enumerate(doc_ids)}
        if len(self.doc_index) != len(doc_ids):
            raise ValueError("doc_ids: document ids must be unique")
        self._judged: dict[str, _Judged] = {}
        for qid, judged in qrels.items():
            pairs = sorted(
                (self.doc_index[doc], rel) for doc, rel in judged.items() if doc in self.doc_index
            )
            relevances = np.array([rel for _, rel in pairs], dtype=np.float64)
            every = np.array(list(judged.values()), dtype=np.float64)
            self._judged[qid] = _Judged(
                indices=np.array([i for i, _ in pairs], dtype=np.int64),
                gains=np.maximum(relevances, 0.0),
                relevant=relevances >= 1,
                ideal_gains=-np.sort(-every[every > 0]),
                n_relevant=int(np.count_nonzero(every >= 1)),
            )

    @property
    def queries(self) -> list[str]:
        """The judged query ids, in qrels order."""
        return list(self._judged)

    def __len__(self) -> int:
        return len(self._judged)

    def indices_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Corpus indices of doc_ids; -1 for ids the corpus lacks."""
        return np.fromiter(
            (self.doc_index.get(d, -1) for d in doc_ids), dtype=np.int64, count=len(doc_ids)
        )


@dataclass(frozen=True)
class Evaluation:
    """Per-query scores of one run (query id -> value) and their means."""

    ndcg: dict[str, float]
    recall: dict[str, float]
    mrr: dict[str, float]
    ndcg_k: int
    recall_k: int
    mrr_k: int

    def summary(self) -> dict[str, float]:
        """``{"ndcg@10": mean, "recall@100": mean, "mrr@10": mean}`` for the ks used."""
        return {
            f"ndcg@{self.ndcg_k}": _mean(self.ndcg),
            f"recall@{self.recall_k}": _mean(self.recall),
            f"mrr@{self.mrr_k}": _mean(self.mrr),
        }


def evaluate(
    run: Mapping[str, Ranking],
    judgements: Judgements,
    *,
    ndcg_k: int = 10,
    recall_k: int = 100,
    mrr_k: int = 10,
) -> Evaluation:
    """Score a run against the judgements, query by query.

    Args:
        run: query id -> ranking, best first: ``Hits``, an int array of corpus
            indices, or a sequence of document ids. Queries the judgements do
            not cover are ignored; judged queries the run lacks score 0.
        judgements: the qrels joined to the corpus.
        ndcg_k, recall_k, mrr_k: the cut-offs (> 0).

    Raises:
        ValueError: a cut-off is not positive, there are no judged queries, or a
            ranking holds a document twice (naming the query).
    """
    for name, k in (("ndcg_k", ndcg_k), ("recall_k", recall_k), ("mrr_k", mrr_k)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"{name} must be a positive int, got {k!r}")
    if len(judgements) == 0:
        raise ValueError("judgements cover no query: nothing to evaluate")
    discount = 1.0 / np.log2(np.arange(2, max(ndcg_k, recall_k, mrr_k) + 2, dtype=np.float64))
    empty = np.zeros(0, dtype=np.int64)
    ndcg, recall, mrr = {}, {}, {}
    for qid, judged in judgements._judged.items():
        ranking = _as_indices(run.get(qid, empty), judgements, qid)
        deepest = ranking[: max(ndcg_k, recall_k, mrr_k)]
        gains, relevant = _lookup(deepest, judged)
        ideal = judged.ideal_gains[:ndcg_k]
        ideal_dcg = float(ideal @ discount[: len(ideal)])
        dcg = float(gains[:ndcg_k] @ discount[: len(gains[:ndcg_k])])
        ndcg[qid] = dcg / ideal_dcg if ideal_dcg > 0 else 0.0
        recall[qid] = (
            int(np.count_nonzero(relevant[:recall_k])) / judged.n_relevant
            if judged.n_relevant
            else 0.0
        )
        first = np.flatnonzero(relevant[:mrr_k])
        mrr[qid] = 1.0 / (int(first[0]) + 1) if len(first) else 0.0
    return Evaluation(ndcg, recall, mrr, ndcg_k, recall_k, mrr_k)


def _as_indices(ranking: Ranking, judgements: Judgements, qid: str) -> np.ndarray:
    if isinstance(ranking, Hits):
        indices = ranking.indices
    elif isinstance(ranking, np.ndarray) and ranking.dtype.kind in "iu":
        indices = ranking
    elif isinstance(ranking, np.ndarray) and ranking.size == 0:
        indices = np.zeros(0, dtype=np.int64)
    elif isinstance(ranking, np.ndarray) and ranking.dtype.kind not in "OU":
        raise TypeError(
            f"run[{qid!r}]: an array ranking must hold int corpus indices, got {ranking.dtype}"
        )
    else:
        indices = judgements.indices_of(list(ranking))
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
        raise ValueError(f"run[{qid!r}]: a ranking must be 1-D, got shape {indices.shape}")
    known = indices[indices >= 0]
    if len(np.unique(known)) != len(known):
        raise ValueError(f"run[{qid!r}]: a document appears twice in the ranking")
    return indices


def _lookup(ranking: np.ndarray, judged: _Judged) -> tuple[np.ndarray, np.ndarray]:
    """Gains and relevance flags of the ranked documents (unjudged: 0, False)."""
    if len(judged.indices) == 0 or len(ranking) == 0:
        return np.zeros(len(ranking)), np.zeros(len(ranking), dtype=bool)
    at = np.minimum(np.searchsorted(judged.indices, ranking), len(judged.indices) - 1)
    found = judged.indices[at] == ranking
    return np.where(found, judged.gains[at], 0.0), found & judged.relevant[at]


def _mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0
