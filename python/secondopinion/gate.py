"""The gate: keep the chunks whose relevance probability clears a floor, or refuse.

The gate sorts the reranked candidates by their relevance probability, keeps
at most ``top_n`` of those with probability >= floor, and returns
:class:`Evidence`; when none clears the floor it returns a :class:`Refusal`.
The floor only cuts: the kept chunks are the head of the sorted list, in that
order. A refusal is a value, never an exception.

The relevance probability comes from a *relevance model*: any object with
``score(features: CandidateFeatures) -> np.ndarray`` of probabilities. By
default it is the cross-encoder's sigmoid (:class:`SigmoidRelevance`); a model
whose ``secondopinion.json`` has a ``"relevance"`` entry gets the learned
score built from it by ``secondopinion.relevance.load_relevance(entry)``
(see :func:`relevance_model_for`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .model_dir import ModelFormatError
from .rerank import logits_to_probabilities

__all__ = [
    "DEFAULT_FLOOR",
    "CandidateFeatures",
    "Chunk",
    "Evidence",
    "Gate",
    "Refusal",
    "RelevanceModel",
    "SigmoidRelevance",
    "gate_order",
    "relevance_model_for",
]

#: The floor used when neither the caller nor the model's ``secondopinion.json``
#: gives one: a sigmoid probability of 0.5 is a logit of 0, the decision
#: boundary a cross-encoder trained with binary cross-entropy learns. It is a
#: placeholder until the floor is calibrated from traces (``calibrate``).
DEFAULT_FLOOR = 0.5


@dataclass(frozen=True)
class CandidateFeatures:
    """The signals each candidate of one query carries, as parallel arrays.

    What a relevance model scores. Ranks are 1-based, 0 where a stage did not
    return the candidate; scores are NaN there.

    Attributes:
        ce_logit: float32 cross-encoder logits.
        bm25_rank, dense_rank, fused_rank: int32 ranks.
        bm25_score, dense_score, fused_score: float32 scores (dense: cosine).
    """

    ce_logit: np.ndarray
    bm25_rank: np.ndarray
    bm25_score: np.ndarray
    dense_rank: np.ndarray
    dense_score: np.ndarray
    fused_rank: np.ndarray
    fused_score: np.ndarray

    def __len__(self) -> int:
        return int(self.ce_logit.shape[0])


class RelevanceModel(Protocol):
    """Turns a query's candidate features into relevance probabilities in [0, 1]."""

    def score(self, features: CandidateFeatures) -> np.ndarray: ...


class SigmoidRelevance:
    """The cross-encoder's own probability: ``sigmoid(logit)``."""

    def score(self, features: CandidateFeatures) -> np.ndarray:
        return logits_to_probabilities(features.ce_logit)

    def __repr__(self) -> str:
        return "SigmoidRelevance()"


def relevance_model_for(cross_encoder: Any) -> RelevanceModel:  # noqa: ANN401 - a CrossEncoder
    """The relevance model a cross-encoder's directory asks for.

    Its ``secondopinion.json`` may hold ``"relevance": {...}``, the learned
    score's parameters; then ``secondopinion.relevance.load_relevance(entry)``
    builds the model. Otherwise: :class:`SigmoidRelevance`.
    """
    entry = getattr(getattr(cross_encoder, "config", None), "relevance", None)
    model_dir = getattr(cross_encoder, "model_dir", None)
    config_file = f"{model_dir}/secondopinion.json"
    if entry is None:
        return SigmoidRelevance()
    from .relevance import load_relevance  # issue 6: the learned score

    try:
        return load_relevance(entry)
    except ValueError as exc:
        if model_dir is None:
            raise
        # Name the file at fault, as every other model-directory error does.
        raise ModelFormatError(f"{config_file}: {exc}") from None


@dataclass(frozen=True)
class Chunk:
    """One reranked candidate.

    ``score`` is the relevance probability the gate used; ``ce_logit`` and
    ``ce_score`` (its sigmoid) are the cross-encoder's own opinion. Ranks are
    1-based, 0 where the stage did not return the chunk; the stage scores are
    then ``None``. ``truncated``: the passage was cut to fit the
    cross-encoder's input. ``kept``: the gate returned it as evidence.
    """

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
    kept: bool = False
    title: str = ""


@dataclass(frozen=True)
class Evidence:
    """The gate's answer: the chunks that cleared the floor, best first.

    ``candidates`` holds every reranked candidate in the gate's order, each
    with its ``kept`` flag. ``chunks`` is empty only when the gate ran with
    ``top_n=0`` (decide, but return no chunk).
    """

    chunks: list[Chunk]
    candidates: list[Chunk]
    floor: float
    query: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    status = "evidence"

    @property
    def best_score(self) -> float:
        return self.candidates[0].score

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class Refusal:
    """The gate's honest "nothing here answers that": no candidate cleared the floor.

    ``best_score`` is the highest relevance probability seen (NaN when there
    were no candidates at all); ``reason`` says why, in words.
    """

    best_score: float
    floor: float
    reason: str
    candidates: list[Chunk]
    query: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    status = "refusal"

    @property
    def chunks(self) -> list[Chunk]:
        """No chunk: a refusal returns none (so ``result.chunks`` works on either type)."""
        return []

    def __bool__(self) -> bool:
        return False


def _check_floor(floor: object) -> float | None:
    if floor is None:
        return None
    if isinstance(floor, bool) or not isinstance(floor, (int, float, np.integer, np.floating)):
        raise TypeError(f"floor must be a number in [0, 1] or None, got {type(floor).__name__}")
    value = float(floor)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"floor must be in [0, 1], got {floor!r}")
    return value


def _check_top_n(top_n: object) -> int | None:
    if top_n is None:
        return None
    if isinstance(top_n, bool):
        raise TypeError("top_n must be an int >= 0 or None, got bool")
    try:
        value = operator.index(top_n)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"top_n must be an int >= 0 or None, got {type(top_n).__name__}") from None
    if value < 0:
        raise ValueError(f"top_n must be >= 0 or None, got {value}")
    return value


def gate_order(scores: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Candidate positions by score descending; ties by ``tiebreak`` descending,
    then by lower position (so the order is deterministic)."""
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.arange(scores.shape[0])
    if tiebreak is None:
        return np.lexsort((positions, -scores))
    return np.lexsort((positions, -np.asarray(tiebreak, dtype=np.float64), -scores))


class Gate:
    """Keep at most ``top_n`` chunks with probability >= ``floor``, or refuse.

    Args:
        floor: the relevance floor in [0, 1]. ``None``: the model's calibrated
            floor (``CrossEncoder.floor``, from its ``secondopinion.json``),
            else :data:`DEFAULT_FLOOR`.
        top_n: the most chunks to keep (>= 0). ``None`` keeps every chunk that
            clears the floor. ``0`` decides without returning chunks:
            :class:`Evidence` with an empty ``chunks`` list if any candidate
            clears the floor, :class:`Refusal` otherwise (the candidates and
            their scores are there either way).

    Raises:
        ValueError: floor outside [0, 1] (or NaN), top_n < 0.
        TypeError: floor or top_n of the wrong type.
    """

    def __init__(self, floor: float | None = None, top_n: int | None = 10) -> None:
        self.floor = _check_floor(floor)
        self.top_n = _check_top_n(top_n)

    def resolve_floor(self, model_floor: float | None = None) -> float:
        """The floor this gate applies for a model whose calibrated floor is ``model_floor``."""
        if self.floor is not None:
            return self.floor
        if model_floor is not None:
            return float(model_floor)
        return DEFAULT_FLOOR

    def apply(
        self,
        query: str,
        candidates: Sequence[Chunk],
        *,
        model_floor: float | None = None,
        timings_ms: dict[str, float] | None = None,
    ) -> Evidence | Refusal:
        """Gate already scored ``candidates`` (any order) for ``query``.

        The candidates are sorted by ``score`` descending (ties: higher
        ``ce_logit``, then the given order) and returned with ``kept`` set.

        Raises:
            ValueError: a candidate's score is NaN or outside [0, 1].
        """
        floor = self.resolve_floor(model_floor)
        scores = np.fromiter((c.score for c in candidates), dtype=np.float64, count=len(candidates))
        logits = np.fromiter(
            (c.ce_logit for c in candidates), dtype=np.float64, count=len(candidates)
        )
        order, kept = self.decide(scores, logits, floor)
        ordered = [candidates[i] for i in order.tolist()]
        ordered = [_with_kept(c, r < kept) for r, c in enumerate(ordered)]
        return self.result(query, ordered, kept, floor, timings_ms or {})

    def decide(
        self, scores: np.ndarray, tiebreak: np.ndarray | None, floor: float
    ) -> tuple[np.ndarray, int]:
        """The gate's whole decision on arrays.

        Returns:
            ``(order, kept)``: candidate positions in the gate's order, and how
            many of the first ones are kept (0 for a refusal, and for
            ``top_n=0``).

        Raises:
            ValueError: a score is NaN or outside [0, 1].
        """
        scores = np.asarray(scores, dtype=np.float64)
        if scores.size and not (np.all(scores >= 0.0) and np.all(scores <= 1.0)):
            bad = int(np.flatnonzero(~((scores >= 0.0) & (scores <= 1.0)))[0])
            raise ValueError(
                f"relevance scores must be probabilities in [0, 1]; candidate {bad} has "
                f"{scores[bad]!r}"
            )
        order = gate_order(scores, tiebreak)
        clearing = int(np.count_nonzero(scores >= floor))
        kept = clearing if self.top_n is None else min(clearing, self.top_n)
        return order, kept

    def result(
        self,
        query: str,
        ordered: list[Chunk],
        kept: int,
        floor: float,
        timings_ms: dict[str, float],
    ) -> Evidence | Refusal:
        """Evidence or Refusal for candidates already in the gate's order with ``kept`` set."""
        best = ordered[0].score if ordered else math.nan
        if ordered and best >= floor:
            return Evidence(ordered[:kept], ordered, floor, query, timings_ms)
        if not ordered:
            reason = "no candidates: stage 1 retrieved no document for this query"
        else:
            reason = (
                f"no candidate reaches the relevance floor {floor:.3f} "
                f"(best {best:.3f}, of {len(ordered)} candidates)"
            )
        return Refusal(best, floor, reason, ordered, query, timings_ms)

    def __repr__(self) -> str:
        floor = "model's" if self.floor is None else f"{self.floor:g}"
        return f"Gate(floor={floor}, top_n={self.top_n})"


def _with_kept(chunk: Chunk, kept: bool) -> Chunk:
    if chunk.kept == kept:
        return chunk
    values = dict(chunk.__dict__)
    values["kept"] = kept
    return Chunk(**values)
