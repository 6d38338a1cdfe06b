"""What the framework adapters share; imports no framework.

Two ways to get a gated result, both through the public API:

- :class:`PipelineSearch`: ``Pipeline.search`` with the adapter's settings,
  checked once when the adapter is built.
- :class:`PassageJudge`: rerank passages that another retriever found
  (:meth:`CrossEncoder.predict`) and gate them (:meth:`Gate.apply`).

and the metadata both put on each framework's documents (:func:`chunk_metadata`,
:func:`refusal_metadata`), under the key :data:`METADATA_KEY`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._args import check_positive_int
from ..gate import Chunk, Evidence, Gate, Refusal, SigmoidRelevance, relevance_model_for
from ..pipeline import Pipeline
from ..rerank import CrossEncoder, logits_to_probabilities

__all__ = [
    "METADATA_KEY",
    "PassageJudge",
    "PipelineSearch",
    "adapter_gate",
    "chunk_metadata",
    "metadata_is_refusal",
    "refusal_metadata",
    "refusal_text",
]

#: The metadata key every adapter writes its dict under (documents, nodes, and
#: the refusal marker alike), so that it never clobbers a key of the caller's.
METADATA_KEY = "secondopinion"


def adapter_gate(floor: object, top_n: object, *, top_n_name: str = "top_n") -> Gate:
    """The gate an adapter applies. A framework's retriever returns documents, so
    ``top_n=0`` (decide without returning any) is refused; ``top_n_name`` is
    what the framework calls it (Haystack: ``top_k``), for the error message."""
    if top_n is not None:
        check_positive_int(top_n, top_n_name)
    return Gate(floor, top_n)  # type: ignore[arg-type]


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty; give the question to retrieve evidence for")
    return query


class PipelineSearch:
    """``pipeline.search(query, candidates=..., top_n=..., floor=...)``, settings checked now.

    Raises:
        TypeError: ``pipeline`` is not a :class:`~secondopinion.Pipeline`, or a
            setting has the wrong type.
        ValueError: ``candidates`` < 1, ``top_n`` < 1, ``floor`` outside [0, 1].

    ``top_n_name`` is what the adapter's caller calls ``top_n``, for errors.
    """

    def __init__(
        self,
        pipeline: object,
        *,
        candidates: int = 100,
        top_n: int | None = 10,
        floor: float | None = None,
        top_n_name: str = "top_n",
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(
                "pipeline must be a secondopinion.Pipeline (Pipeline.from_corpus or "
                f"Pipeline.load), got {type(pipeline).__name__}"
            )
        self.pipeline = pipeline
        self.candidates, self.top_n, self.floor = self.check_settings(
            candidates=candidates, top_n=top_n, floor=floor, top_n_name=top_n_name
        )

    @staticmethod
    def check_settings(
        *, candidates: object, top_n: object, floor: object, top_n_name: str = "top_n"
    ) -> tuple[int, int | None, float | None]:
        """``(candidates, top_n, floor)`` checked, for an adapter that loads its
        pipeline later."""
        gate = adapter_gate(floor, top_n, top_n_name=top_n_name)
        return check_positive_int(candidates, "candidates"), gate.top_n, gate.floor

    def search(self, query: str) -> Evidence | Refusal:
        return self.pipeline.search(
            _check_query(query), candidates=self.candidates, top_n=self.top_n, floor=self.floor
        )


class PassageJudge:
    """Rerank another retriever's passages with the cross-encoder and gate them.

    Without the first stage's signals the learned relevance score of
    :class:`~secondopinion.Pipeline` cannot be computed, so the score gated here
    is the cross-encoder's own probability, ``sigmoid(logit)``. The floor is,
    in order: ``floor``; the model's calibrated floor when the model's
    relevance score *is* that sigmoid; else
    :data:`~secondopinion.gate.DEFAULT_FLOOR` (a floor calibrated on another
    score applies to nothing else).

    Args:
        cross_encoder: the reranker; ``None`` loads the package's.
        top_n, floor: as for :class:`~secondopinion.Gate`, but ``top_n`` >= 1.
        top_n_name: what the adapter's caller calls ``top_n``, for errors.
    """

    def __init__(
        self,
        cross_encoder: CrossEncoder | None = None,
        *,
        top_n: int | None = 10,
        floor: float | None = None,
        top_n_name: str = "top_n",
    ) -> None:
        if cross_encoder is not None and not isinstance(cross_encoder, CrossEncoder):
            raise TypeError(
                "cross_encoder must be a secondopinion.CrossEncoder or None, "
                f"got {type(cross_encoder).__name__}"
            )
        self.gate = adapter_gate(floor, top_n, top_n_name=top_n_name)
        self.cross_encoder = CrossEncoder() if cross_encoder is None else cross_encoder
        model_scores_sigmoid = isinstance(relevance_model_for(self.cross_encoder), SigmoidRelevance)
        self.model_floor = self.cross_encoder.floor if model_scores_sigmoid else None

    @property
    def floor(self) -> float:
        """The floor :meth:`judge` applies."""
        return self.gate.resolve_floor(self.model_floor)

    def judge(
        self, query: str, passages: Sequence[str], ids: Sequence[str | None]
    ) -> Evidence | Refusal:
        """Gate ``passages`` for ``query``.

        Each chunk's ``fused_rank`` is its 1-based position in ``passages``
        (the upstream retriever's order), which maps it back to its input;
        ``id`` is ``ids[i]``, or ``""`` where that is ``None``.
        """
        query = _check_query(query)
        if len(ids) != len(passages):
            raise ValueError(f"ids has {len(ids)} entries for {len(passages)} passages")
        pairs = [(query, passage) for passage in passages]
        logits, truncated = self.cross_encoder.predict(
            pairs, activation="none", return_truncated=True
        )
        scores = logits_to_probabilities(logits).tolist()
        chunks = [
            Chunk(
                id="" if ids[i] is None else str(ids[i]),
                text=passages[i],
                score=scores[i],
                ce_logit=float(logits[i]),
                ce_score=scores[i],
                truncated=bool(truncated[i]),
                bm25_rank=0,
                bm25_score=None,
                dense_rank=0,
                dense_score=None,
                fused_rank=i + 1,
                fused_score=None,
            )
            for i in range(len(passages))
        ]
        return self.gate.apply(query, chunks, model_floor=self.model_floor)


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def chunk_metadata(
    chunk: Chunk, rank: int, floor: float, *, input_rank: int | None = None
) -> dict[str, Any]:
    """Provenance of one kept chunk, as plain JSON values.

    ``rank`` is 1-based in the gate's order; ``score`` the relevance
    probability the gate compared with ``floor``. From a pipeline
    (``input_rank`` None): every stage's rank (0: the stage did not return
    it) and score (``None`` then). From :class:`PassageJudge`: ``input_rank``,
    the 1-based position the upstream retriever gave it, and ``doc_id``
    ``None`` where the input had no id.
    """
    meta: dict[str, Any] = {
        "status": "evidence",
        "doc_id": chunk.id,
        "rank": rank,
        "score": chunk.score,
        "floor": floor,
        "ce_logit": chunk.ce_logit,
        "ce_score": chunk.ce_score,
        "truncated": chunk.truncated,
    }
    if input_rank is None:
        meta.update(
            bm25_rank=chunk.bm25_rank,
            bm25_score=chunk.bm25_score,
            dense_rank=chunk.dense_rank,
            dense_score=chunk.dense_score,
            fused_rank=chunk.fused_rank,
            fused_score=chunk.fused_score,
        )
    else:
        meta["input_rank"] = input_rank
        meta["doc_id"] = chunk.id or None
    return meta


def refusal_metadata(refusal: Refusal) -> dict[str, Any]:
    """The refusal as plain JSON values (``best_score`` ``None``: no candidates)."""
    best = refusal.candidates[0] if refusal.candidates else None
    return {
        "status": "refusal",
        "reason": refusal.reason,
        "best_score": _finite_or_none(refusal.best_score),
        "best_doc_id": None if best is None else best.id or None,
        "floor": refusal.floor,
        "query": refusal.query,
        "candidates": len(refusal.candidates),
    }


def refusal_text(refusal: Refusal) -> str:
    """The text of a refusal marker: what an LLM reads if a chain stuffs it into a prompt."""
    return f"No evidence was found for this question: {refusal.reason}."


def metadata_is_refusal(metadata: object) -> bool:
    """Whether a document's metadata mapping marks a secondopinion refusal."""
    if not isinstance(metadata, dict):
        return False
    entry = metadata.get(METADATA_KEY)
    return isinstance(entry, dict) and entry.get("status") == "refusal"
