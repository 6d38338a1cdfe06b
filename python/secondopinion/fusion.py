"""Score fusion: one ranked list out of several retrieval stages.

Both methods fuse the union of the candidates, joined on ``Hits.indices``:

* :func:`fuse_rrf`, reciprocal rank fusion (Cormack et al., 2009): a document
  scores ``sum_i weights[i] / (k + rank_i)`` over the lists that hold it, rank
  1-based. A document missing from a list gets nothing from that list.
* :func:`fuse_weighted`, a weighted sum of normalised scores. A document missing
  from a list gets that list's smallest normalised score: a stage that did not
  return a document is taken to rate it no better than the worst one it did
  return (with ``"minmax"`` that is 0, as in ranx's ``wsum``).

The result is a :class:`FusedHits`: sorted by fused score descending, ties
broken by the lower index, so the same input always gives the same order; it
also keeps every document's rank and score in each input list.

Inputs are :class:`~secondopinion.hits.Hits` or ``(indices, scores)`` tuples.
Each list must be sorted by score descending (its order is its ranking), hold
no NaN score, no negative index and no index twice; these per-element checks
run in the C++ core (one pass it makes anyway) and raise :class:`ValueError`
naming the list as ``hits_list[i]``. Everything else is checked here first.
A document's id is taken from the first list that holds it; a tuple has no
ids, so its documents' ids are their indices written in decimal.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

from . import _core
from .hits import Hits

__all__ = ["FusedHits", "RankedInput", "fuse_rrf", "fuse_weighted"]

#: What the fusion functions accept for one list.
RankedInput = Union[Hits, "tuple[np.ndarray, np.ndarray]"]

Norm = Literal["minmax", "zscore", "none"]
_NORMS = ("minmax", "zscore", "none")

_INT64 = np.dtype(np.int64)
_FLOAT32 = np.dtype(np.float32)
_OBJECT = np.dtype(object)
_MAX_K = 2.0**53  # below it, float(k) is exact for an int and k is finite


@dataclass(frozen=True, repr=False, eq=False, init=False)
class FusedHits(Hits):
    """Fused :class:`Hits` that remember where each document came from.

    Attributes:
        stage_ranks: int32 ``[n_lists, n]``; ``stage_ranks[i, j]`` is the
            1-based rank of document ``j`` in input list ``i``, 0 if absent.
        stage_scores: float32 ``[n_lists, n]``; the document's score in input
            list ``i`` as given (not normalised), NaN if absent.

    ``ids`` and ``stage_scores`` are gathered from the input lists on first
    use, not during fusion: together they cost about as much as the fusion
    itself (taking a reference to every id object, reading scores scattered
    over the lists), and a pipeline that cuts the fused list short or never
    explains a result needs few or none of them. (So an input array changed
    in place before that first use would show through; Hits' arrays are
    meant to be left alone.)
    """

    stage_ranks: np.ndarray
    stage_scores: np.ndarray  # a property below; the field is its storage

    def __init__(
        self,
        indices: np.ndarray,
        scores: np.ndarray,
        ids: np.ndarray | _Sources,
        stage_ranks: np.ndarray,
        stage_scores: np.ndarray | _Sources,
    ) -> None:
        # Frozen: fields are set around __setattr__, all at once (fusion is
        # timed in microseconds, and this is on its path).
        self.__dict__.update(
            indices=indices,
            scores=scores,
            _ids=ids,
            stage_ranks=stage_ranks,
            _stage_scores=stage_scores,
        )

    @property
    def ids(self) -> np.ndarray:  # type: ignore[override]
        ids = self._ids
        if type(ids) is _Sources:
            ids = _core.fusion_gather_ids(ids.ids, ids.stage_ranks)
            object.__setattr__(self, "_ids", ids)
        return ids

    def _get_stage_scores(self) -> np.ndarray:
        scores = self._stage_scores
        if type(scores) is _Sources:
            scores = _core.fusion_stage_scores(scores.scores, scores.stage_ranks)
            object.__setattr__(self, "_stage_scores", scores)
        return scores


# After the class body: defined in it, the property would become the
# dataclass field's default value.
FusedHits.stage_scores = property(  # type: ignore[assignment]
    FusedHits._get_stage_scores,
    doc="float32 ``[n_lists, n]``: each document's score in each input list, NaN if absent.",
)


class _Sources:
    """What a fusion read: the input id and score arrays, one per list, and
    the fused documents' ranks in them. A fused document's id is in the first
    list where its ``stage_ranks`` column has a rank, at that rank - 1. (The
    ranks are kept here too: a copy made by ``dataclasses.replace`` may carry
    other stage_ranks.)"""

    __slots__ = ("ids", "scores", "stage_ranks")

    def __init__(
        self, ids: list[np.ndarray], scores: list[np.ndarray], stage_ranks: np.ndarray
    ) -> None:
        self.ids = ids
        self.scores = scores
        self.stage_ranks = stage_ranks


def fuse_rrf(
    hits_list: Sequence[RankedInput],
    k: float = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> FusedHits:
    """Reciprocal rank fusion of ranked lists.

    Args:
        hits_list: the lists to fuse (``Hits`` or ``(indices, scores)``).
        k: the RRF constant, > 0; larger values flatten the rank differences.
        weights: one non-negative weight per list; ``None`` weighs all by 1.
        limit: keep only the best ``limit`` documents (> 0); ``None`` keeps all.

    Returns:
        The fused documents with scores ``sum_i weights[i] / (k + rank_i)``.
    """
    indices, scores, ids = _split(hits_list)
    # The usual k (a plain positive number) skips _check_k: fusion is timed in
    # microseconds, and checking costs a few hundred nanoseconds.
    if not ((type(k) is float or type(k) is int) and 0 < k < _MAX_K):
        k = _check_k(k)
    w = [] if weights is None else _check_weights(weights, len(indices))
    result = _core.fuse_rrf(indices, scores, float(k), w, _check_limit(limit))
    return _result(result, ids, scores)


def fuse_weighted(
    hits_list: Sequence[RankedInput],
    weights: Sequence[float] | None = None,
    norm: Norm = "minmax",
    limit: int | None = None,
) -> FusedHits:
    """Weighted sum of normalised scores.

    Args:
        hits_list: the lists to fuse (``Hits`` or ``(indices, scores)``); their
            scores must be finite.
        weights: one non-negative weight per list; ``None`` weighs all by 1.
        norm: how each list's scores are made comparable:
            ``"minmax"``: ``(s - min) / (max - min)``, in [0, 1];
            ``"zscore"``: ``(s - mean) / std`` (population std);
            ``"none"``: the raw scores.
            A constant list (max = min) carries no ranking and contributes 0
            under ``"minmax"`` and ``"zscore"``.
        limit: keep only the best ``limit`` documents (> 0); ``None`` keeps all.

    Returns:
        The fused documents with scores ``sum_i weights[i] * norm_i(score)``,
        where a document missing from list ``i`` counts as that list's
        smallest normalised score.
    """
    indices, scores, ids = _split(hits_list)
    w = [1.0] * len(indices) if weights is None else _check_weights(weights, len(indices))
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    result = _core.fuse_weighted(indices, scores, w, norm, _check_limit(limit))
    return _result(result, ids, scores)


def _result(core_result: tuple, ids: list[np.ndarray], scores: list[np.ndarray]) -> FusedHits:
    fused_indices, fused_scores, stage_ranks = core_result
    sources = _Sources(ids, scores, stage_ranks)
    return FusedHits(fused_indices, fused_scores, sources, stage_ranks, sources)


def _split(
    hits_list: Sequence[RankedInput],
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Parallel lists of index, score and id arrays, in the dtypes the core takes.

    The common case (``Hits`` built by this library) costs a few attribute
    reads per list; anything else goes through the slower converting path.
    """
    kind = type(hits_list)  # type() first: isinstance of an ABC is slow
    if (
        kind is not list
        and kind is not tuple
        and (isinstance(hits_list, (Hits, np.ndarray, str)) or not isinstance(hits_list, Sequence))
    ):
        raise TypeError(
            "hits_list must be a list of Hits or (indices, scores) tuples, "
            f"got {type(hits_list).__name__}"
        )
    if len(hits_list) == 0:
        raise ValueError("hits_list is empty: give at least one ranked list")
    indices, scores, ids = [], [], []
    for position, item in enumerate(hits_list):
        if isinstance(item, Hits):
            ind, sc, names = item.indices, item.scores, item.ids
        elif isinstance(item, tuple) and len(item) == 2:
            (ind, sc), names = item, None
        else:
            raise TypeError(
                f"hits_list[{position}] must be a Hits or an (indices, scores) tuple, "
                f"got {type(item).__name__}"
            )
        if type(ind) is not np.ndarray or ind.dtype is not _INT64:
            ind = _as_indices(ind, position)
        if type(sc) is not np.ndarray or sc.dtype is not _FLOAT32:
            sc = _as_scores(sc, position)
        if names is None:
            names = ind.astype(str).astype(object)
        elif type(names) is not np.ndarray or names.dtype is not _OBJECT:
            names = np.asarray(names, dtype=object)
        n = len(ind) if ind.ndim == 1 else -1
        if sc.ndim != 1 or names.ndim != 1 or len(sc) != n or len(names) != n:
            raise ValueError(
                f"hits_list[{position}]: indices {ind.shape}, scores {sc.shape} and ids "
                f"{names.shape} must be 1-D arrays of one length"
            )
        indices.append(ind)
        scores.append(sc)
        ids.append(names)
    return indices, scores, ids


def _as_indices(values: object, position: int) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"hits_list[{position}]: indices must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"hits_list[{position}]: indices do not fit in int64")
    return np.ascontiguousarray(array, dtype=np.int64)


def _as_scores(values: object, position: int) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.float32)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"hits_list[{position}]: scores must be numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_k(k: float) -> float:
    if isinstance(k, (bool, str, bytes)):
        raise TypeError(f"k must be a number, got {type(k).__name__}")
    try:
        value = float(k)
    except (TypeError, ValueError):
        raise TypeError(f"k must be a number, got {type(k).__name__}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"k must be finite and > 0, got {k!r}")
    return value


def _check_weights(weights: Sequence[float], n_lists: int) -> list[float]:
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError(f"weights must be a sequence of numbers, got {type(weights).__name__}")
    if len(weights) != n_lists:
        raise ValueError(f"weights has {len(weights)} entries for {n_lists} lists in hits_list")
    values = [float(w) for w in weights]
    for i, w in enumerate(values):
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weights[{i}] must be finite and non-negative, got {w!r}")
    return values


def _check_limit(limit: int | None) -> int:
    """The core's encoding of ``limit``: 0 keeps every document."""
    if limit is None:
        return 0
    if isinstance(limit, bool):
        raise TypeError("limit must be an int or None, got bool")
    try:
        value = operator.index(limit)
    except TypeError:
        raise TypeError(f"limit must be an int or None, got {type(limit).__name__}") from None
    if value <= 0:
        raise ValueError(f"limit must be > 0 or None, got {value}")
    return value
