"""Stand-ins for the pipeline's results (``Evidence``, ``Refusal``, ``Chunk``).

The trace store accepts any object with these attributes; these dataclasses let
the trace, calibration and diagnosis tests build results with known answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Chunk:
    id: str
    score: float
    kept: bool
    text: str = ""
    ce_logit: float = 0.0
    ce_score: float = 0.0
    truncated: bool = False
    bm25_rank: int | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None
    fused_rank: int | None = None
    fused_score: float | None = None


@dataclass
class Evidence:
    chunks: list[Chunk]
    candidates: list[Chunk]
    timings_ms: dict[str, float]
    floor: float
    query: str


@dataclass
class Refusal:
    best_score: float
    floor: float
    reason: str
    candidates: list[Chunk]
    timings_ms: dict[str, float]
    query: str


def make_result(
    scores: list[float] | np.ndarray,
    *,
    floor: float = 0.5,
    ids: list[str] | None = None,
    query: str = "q",
    top_n: int | None = None,
    rerank_ms: float = 100.0,
    bm25_ranks: list[int | None] | None = None,
    dense_ranks: list[int | None] | None = None,
) -> Evidence | Refusal:
    """A result whose candidates have ``scores`` (in fused-rank order); kept = score
    >= floor among the ``top_n`` best; a refusal when none is kept."""
    scores = [float(s) for s in scores]
    n = len(scores)
    ids = ids if ids is not None else [f"d{i}" for i in range(n)]
    by_score = sorted(range(n), key=lambda i: -scores[i])
    allowed = set(by_score[: top_n if top_n is not None else n])
    bm25 = bm25_ranks if bm25_ranks is not None else [i + 1 for i in range(n)]
    dense = dense_ranks if dense_ranks is not None else [None] * n
    candidates = [
        Chunk(
            id=ids[i],
            score=scores[i],
            kept=scores[i] >= floor and i in allowed,
            text=f"text {ids[i]}",
            ce_logit=float(np.log(max(scores[i], 1e-9) / max(1 - scores[i], 1e-9))),
            ce_score=scores[i],
            bm25_rank=bm25[i],
            bm25_score=None if bm25[i] is None else 10.0 - i,
            dense_rank=dense[i],
            dense_score=None if dense[i] is None else 0.9,
            fused_rank=i + 1,
            fused_score=1.0 / (61 + i),
        )
        for i in range(n)
    ]
    kept = [c for c in candidates if c.kept]
    timings = {"bm25": 1.0, "dense": 2.0, "fuse": 0.1, "rerank": rerank_ms}
    if kept:
        return Evidence(kept, candidates, timings, floor, query)
    best = max(scores, default=0.0)
    return Refusal(best, floor, "nothing clears the floor", candidates, timings, query)
