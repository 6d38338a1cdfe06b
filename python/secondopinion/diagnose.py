"""Recall diagnosis from labelled traces: why relevant documents were not kept.

Reranking cannot fix a recall miss. For every judged query that was traced,
each relevant document (qrels relevance > 0) is one of:

- kept: it reached the reranker and the gate kept it;
- a ranking miss: it reached the reranker but was cut, either below the
  floor or (score above the floor) by ``top_n``;
- a recall miss: stage 1 never put it among the candidates.

Documents that reached the reranker are split by stage-1 leg (in BM25's list
only, in the dense list only, in both), which shows which leg carries the
relevant documents and where they sit in each leg's ranking.

What a larger candidate depth would recover is estimated from where the
relevant candidates sit in the fused list: relevant documents found per fused
rank are fitted with a power law ``a * r**-b`` (maximum likelihood, ``b`` in
[0, 4], i.e. flat at worst) and the fit is summed over the ranks a
larger depth would add, capped at the recall misses. This is a rough,
optimistic-by-construction guide (it assumes stage 1 ranks the missing
documents just below the cut); the true gain is measured by re-running with
the larger depth. The cost is the traces' second-stage time (tokenize + rerank)
per candidate times the extra candidates per query.

Query ids of the traces must match the qrels, and candidate ids are taken as
document ids (one chunk per document, as in BEIR); pass ``doc_id_of`` to map
chunk ids to document ids otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .traces import TraceArrays, TraceStore

__all__ = ["DepthEstimate", "Diagnosis", "diagnose"]

LEGS = ("bm25 only", "dense only", "both", "neither")


@dataclass(frozen=True)
class DepthEstimate:
    """What a candidate depth of ``depth`` would recover and cost, per the fit."""

    depth: int
    recovered: float  # relevant documents, all queries together
    recovered_fraction: float  # of the recall misses
    extra_rerank_ms: float  # per query


@dataclass(frozen=True)
class Diagnosis:
    n_queries: int
    n_relevant: int
    kept: int
    ranking_misses: int
    below_floor: int
    cut_by_top_n: int
    recall_misses: int
    queries_without_candidate: (
        int  # judged queries none of whose relevant docs reached the reranker
    )
    reached_by_leg: dict[str, int]
    ranking_misses_by_leg: dict[str, int]
    leg_depth: dict[str, int]  # deepest rank seen per leg
    leg_deep_quarter: dict[str, int]  # relevant reached from the deepest quarter of each leg
    depth: int
    per_candidate_ms: float
    estimates: list[DepthEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        out = dict(self.__dict__)
        out["estimates"] = [e.__dict__ for e in self.estimates]
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    def format(self) -> str:
        def pct(n: float, of: int) -> str:
            return f"{100 * n / of:5.1f}%" if of else "  n/a"

        r = self.n_relevant
        lines = [
            f"{self.n_queries} judged queries, {r} relevant documents, depth {self.depth}",
            f"  kept               {self.kept:6d}  {pct(self.kept, r)}",
            f"  ranking misses     {self.ranking_misses:6d}  {pct(self.ranking_misses, r)}"
            f"   (below floor {self.below_floor}, cut by top_n {self.cut_by_top_n})",
            f"  recall misses      {self.recall_misses:6d}  {pct(self.recall_misses, r)}"
            "   (never reached the reranker: no floor or model fixes these)",
            f"  queries with no relevant candidate: {self.queries_without_candidate}",
            "relevant documents that reached the reranker, by stage-1 leg:",
        ]
        reached = sum(self.reached_by_leg.values())
        for leg in LEGS:
            n = self.reached_by_leg.get(leg, 0)
            if n or leg != "neither":
                lines.append(
                    f"  {leg:<11} {n:6d}  {pct(n, reached)}"
                    f"   ranking misses {self.ranking_misses_by_leg.get(leg, 0)}"
                )
        for leg, deepest in self.leg_depth.items():
            lines.append(
                f"  {leg}: deepest rank seen {deepest}; relevant from its deepest quarter: "
                f"{self.leg_deep_quarter.get(leg, 0)}"
            )
        if self.estimates:
            ms = "n/a" if math.isnan(self.per_candidate_ms) else f"{self.per_candidate_ms:.2f} ms"
            lines.append(f"larger depth (estimate; rerank {ms} per candidate):")
            for e in self.estimates:
                cost = (
                    "n/a" if math.isnan(e.extra_rerank_ms) else f"+{e.extra_rerank_ms:.0f} ms/query"
                )
                lines.append(
                    f"  depth {e.depth:5d}: ~{e.recovered:.1f} relevant recovered"
                    f" ({100 * e.recovered_fraction:.0f}% of recall misses), {cost}"
                )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _leg(bm25_rank: int, dense_rank: int) -> str:
    if bm25_rank > 0 and dense_rank > 0:
        return "both"
    if bm25_rank > 0:
        return "bm25 only"
    if dense_rank > 0:
        return "dense only"
    return "neither"


def _fit_power_law(ranks: np.ndarray, n_queries: int, depth: int) -> tuple[float, float] | None:
    """Maximum-likelihood fit of relevant documents per query per rank ~ a * r**-b.

    The count at each rank 1..depth is taken as Poisson; with ``a`` profiled
    out, the likelihood of ``b`` is ``sum(-b log r_i) - n log sum_r r**-b``,
    maximised on a grid of b in [0, 4] (a regression on binned log counts is
    biased toward flat fits, which overstates the gain of a larger depth).
    """
    ranks = ranks[(ranks >= 1) & (ranks <= depth)]
    if ranks.size < 5 or np.unique(ranks).size < 2 or depth < 2:
        return None
    log_r = np.log(np.arange(1, depth + 1, dtype=np.float64))
    b_grid = np.linspace(0.0, 4.0, 801)
    mass = np.exp(-np.outer(b_grid, log_r)).sum(axis=1)  # sum_r r**-b, per b
    loglik = -b_grid * np.log(ranks.astype(np.float64)).sum() - ranks.size * np.log(mass)
    i = int(np.argmax(loglik))
    return float(ranks.size / (n_queries * mass[i])), float(b_grid[i])


def diagnose(
    source: TraceStore | TraceArrays,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    model_id: str | None = None,
    depths: Sequence[int] | None = None,
    doc_id_of: Callable[[str], str] | None = None,
) -> Diagnosis:
    """Split the misses of the traced, judged queries; see the module docstring.

    Args:
        source: a trace store (its labels are used when ``qrels`` is None) or
            its arrays (then ``qrels`` is needed).
        qrels: ``{query_id: {doc_id: relevance}}``.
        depths: candidate depths to estimate (default: 1.5x, 2x, 3x and 5x the traced depth).
        doc_id_of: maps a candidate id to its document id (default: the same).

    Raises:
        ValueError: no qrels, or no traced query is judged with a relevant document.
    """
    if isinstance(source, TraceStore):
        if qrels is None:
            qrels = source.labels()
        arrays = source.arrays(model_id)
    elif isinstance(source, TraceArrays):
        arrays = source
    else:
        raise TypeError(f"source must be a TraceStore or TraceArrays, got {type(source).__name__}")
    if not qrels:
        raise ValueError("diagnosis needs relevance judgements (qrels or the store's labels)")
    to_doc = doc_id_of or (lambda chunk_id: chunk_id)

    # The latest trace of each judged query id (a query may have been traced more than once).
    latest: dict[str, int] = {}
    for t, qid in enumerate(arrays.query_ids.tolist()):
        if qid is not None and any(rel > 0 for rel in qrels.get(qid, {}).values()):
            latest[qid] = t
    if not latest:
        raise ValueError(
            "no traced query has a relevant document in the judgements; do the query ids match?"
        )
    starts = np.searchsorted(arrays.trace, np.arange(arrays.n_traces + 1))

    kept = below_floor = cut = recall = no_candidate = 0
    reached_by_leg = dict.fromkeys(LEGS, 0)
    ranking_by_leg = dict.fromkeys(LEGS, 0)
    leg_ranks: dict[str, list[int]] = {"bm25": [], "dense": []}
    fused_ranks: list[int] = []
    n_relevant = 0
    for qid, t in latest.items():
        relevant = {d for d, rel in qrels[qid].items() if rel > 0}
        n_relevant += len(relevant)
        lo, hi = int(starts[t]), int(starts[t + 1])
        # One document may be several chunks: its outcome is the best among them (kept beats cut).
        outcome: dict[str, int] = {}
        for i in range(lo, hi):
            doc = to_doc(arrays.doc_ids[i])
            if doc in relevant and (doc not in outcome or arrays.kept[i]):
                outcome[doc] = i
        for i in outcome.values():
            b, d = int(arrays.bm25_rank[i]), int(arrays.dense_rank[i])
            leg = _leg(b, d)
            reached_by_leg[leg] += 1
            if b > 0:
                leg_ranks["bm25"].append(b)
            if d > 0:
                leg_ranks["dense"].append(d)
            if arrays.fused_rank[i] > 0:
                fused_ranks.append(int(arrays.fused_rank[i]))
            if arrays.kept[i]:
                kept += 1
            else:
                ranking_by_leg[leg] += 1
                if arrays.score[i] >= arrays.floor[t]:
                    cut += 1
                else:
                    below_floor += 1
        recall += len(relevant) - len(outcome)
        no_candidate += not outcome

    used = np.fromiter(latest.values(), dtype=np.int64)
    depth = int(np.median(arrays.n_candidates[used]))
    timed = used[~np.isnan(arrays.rerank_ms[used]) & (arrays.n_candidates[used] > 0)]
    per_candidate_ms = (
        float(arrays.rerank_ms[timed].sum() / arrays.n_candidates[timed].sum())
        if timed.size
        else math.nan
    )
    notes: list[str] = []
    if math.isnan(per_candidate_ms):
        notes.append("the traces have no rerank timing; costs not estimated")
    leg_depth = {}
    leg_deep = {}
    for leg, ranks in (
        ("bm25", arrays.bm25_rank[np.isin(arrays.trace, used)]),
        ("dense", arrays.dense_rank[np.isin(arrays.trace, used)]),
    ):
        if ranks.size and ranks.max() > 0:
            deepest = int(ranks.max())
            leg_depth[leg] = deepest
            leg_deep[leg] = int(sum(1 for r in leg_ranks[leg] if r > 0.75 * deepest))

    estimates: list[DepthEstimate] = []
    if depth > 0:
        fit = _fit_power_law(np.array(fused_ranks), len(latest), depth) if fused_ranks else None
        if fit is None:
            notes.append("too few relevant candidates with a fused rank to estimate larger depths")
        else:
            a, b = fit
            chosen = sorted(set(depths)) if depths else [int(depth * f) for f in (1.5, 2, 3, 5)]
            for new_depth in chosen:
                if new_depth <= depth:
                    continue
                r = np.arange(depth + 1, new_depth + 1, dtype=np.float64)
                found = min(float(a * np.sum(r**-b)) * len(latest), float(recall))
                estimates.append(
                    DepthEstimate(
                        depth=new_depth,
                        recovered=found,
                        recovered_fraction=found / recall if recall else 0.0,
                        extra_rerank_ms=(new_depth - depth) * per_candidate_ms,
                    )
                )
    return Diagnosis(
        n_queries=len(latest),
        n_relevant=n_relevant,
        kept=kept,
        ranking_misses=below_floor + cut,
        below_floor=below_floor,
        cut_by_top_n=cut,
        recall_misses=recall,
        queries_without_candidate=no_candidate,
        reached_by_leg=reached_by_leg,
        ranking_misses_by_leg=ranking_by_leg,
        leg_depth=leg_depth,
        leg_deep_quarter=leg_deep,
        depth=depth,
        per_candidate_ms=per_candidate_ms,
        estimates=estimates,
        notes=notes,
    )
