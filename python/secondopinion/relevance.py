"""The learned relevance score: one calibrated probability per candidate.

A cross-encoder fine-tuned on little data can rank worse than the first stage
it reranks (see issue 6: on NFCorpus ours does), so the pipeline's default
final score is not the cross-encoder's logit alone. It is a logistic
regression over signals every candidate already carries, fitted on held-out
validation queries (``tools/fit_relevance.py``): where the cross-encoder is
informative the fit leans on it, where it is not the first-stage signals keep
the order. The same number is a probability that the candidate answers the
query, which is what the gate's floor is compared with.

Features (:data:`FEATURES`), built per query by :func:`candidate_features`
from the candidate arrays of ONE query's candidate list of ``n`` documents:

==================  ==========================================================
``ce_logit``        the cross-encoder's logit, clipped to [-20, 20]
``ce_gap``          ``ce_logit`` minus the query's largest ``ce_logit`` (<= 0):
                    how far the candidate is behind the query's best
``ce_max``          the query's largest ``ce_logit``: does anything match?
``bm25_rel``        BM25 score / the query's best BM25 score, in [0, 1]
                    (raw BM25 scores grow with query length; the ratio does not)
``bm25_log_rank``   log of the 1-based BM25 rank
``bm25_absent``     1 if BM25 did not return the candidate, else 0
``bm25_best``       log1p of the query's best BM25 score
``dense_score``     the dense cosine similarity
``dense_gap``       ``dense_score`` minus the query's best dense cosine (<= 0)
``dense_log_rank``  log of the 1-based dense rank
``dense_absent``    1 if the dense leg did not return the candidate, else 0
``dense_best``      the query's best dense cosine
``fused_log_rank``  log of the 1-based rank in the fused (stage-1) list
``fused_rel``       fused score / the query's best fused score, in [0, 1]
``ce_agree``        the query's Spearman correlation between the
                    cross-encoder's order and the fused order, in [-1, 1]:
                    how far the cross-encoder agrees with stage 1 here
``ce_gap_x_agree``  ``ce_gap * ce_agree``: lets the fit trust the
                    cross-encoder's order more where it agrees with stage 1
                    (a linear model cannot form this product itself)
==================  ==========================================================

A candidate missing from a leg (rank 0, score NaN, as in
:class:`~secondopinion.fusion.FusedHits`) gets rank ``leg_depth + 1`` (behind
every document that leg returned), that leg's smallest score among the
candidates it did return (a leg that did not return a document is taken to rate it no
better than its worst; the convention :func:`~secondopinion.fusion.fuse_weighted`
uses too), and ``*_absent`` = 1 so the fit can tell a filled value from a real
one. A leg that returned none of the candidates fills score 0.

The model is stored in the cross-encoder's ``secondopinion.json``::

    "relevance": {"version": 1, "features": [names], "mean": [...],
                  "scale": [...], "coef": [...], "intercept": x}

and gives ``p = sigmoid(intercept + sum_i coef[i] * (x[i] - mean[i]) / scale[i])``.
Fitting (:func:`fit_logistic`) is a few Newton (IRLS) steps with an L2 penalty
on the standardised coefficients, in numpy: no extra runtime dependency.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._jsonfile import read_json

__all__ = [
    "FEATURES",
    "RELEVANCE_VERSION",
    "RelevanceModel",
    "candidate_features",
    "fit_logistic",
]

RELEVANCE_VERSION = 1

#: Every feature :func:`candidate_features` can build, in its column order.
FEATURES: tuple[str, ...] = (
    "ce_logit",
    "ce_gap",
    "ce_max",
    "bm25_rel",
    "bm25_log_rank",
    "bm25_absent",
    "bm25_best",
    "dense_score",
    "dense_gap",
    "dense_log_rank",
    "dense_absent",
    "dense_best",
    "fused_log_rank",
    "fused_rel",
    "ce_agree",
    "ce_gap_x_agree",
)

# Logits beyond +-20 are sigmoid 0 or 1 in float32 already; clipping keeps one
# runaway logit from dominating a standardised feature.
_LOGIT_CLIP = 20.0


def _vector(value: object, name: str, n: int | None, *, integer: bool = False) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} entries, expected {n} (one per candidate)")
    kinds = "iu" if integer else "fiu"
    if array.size and array.dtype.kind not in kinds:
        what = "integers" if integer else "numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {array.dtype}")
    return array.astype(np.float64)


def _leg(
    scores: np.ndarray, ranks: np.ndarray, depth: int, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(filled scores, filled ranks, absent indicator) for one retrieval leg."""
    if np.any(ranks < 0):
        raise ValueError(f"{name}_rank must be >= 0 (0 = absent from the {name} leg)")
    if ranks.size and ranks.max() > depth:
        raise ValueError(f"{name}_rank holds {ranks.max():.0f} > leg_depth {depth}")
    absent = (ranks == 0) | np.isnan(scores)
    if np.any(np.isinf(scores)):
        raise ValueError(f"{name}_score must not hold inf")
    present = ~absent
    fill = float(scores[present].min()) if present.any() else 0.0
    filled_scores = np.where(absent, fill, scores)
    filled_ranks = np.where(absent, depth + 1.0, ranks)
    return filled_scores, filled_ranks, absent.astype(np.float64)


def candidate_features(
    *,
    ce_logit: Any,  # noqa: ANN401 - array-like
    bm25_score: Any,  # noqa: ANN401
    bm25_rank: Any,  # noqa: ANN401
    dense_score: Any,  # noqa: ANN401
    dense_rank: Any,  # noqa: ANN401
    fused_rank: Any = None,  # noqa: ANN401
    fused_score: Any = None,  # noqa: ANN401
    leg_depth: int | None = None,
) -> dict[str, np.ndarray]:
    """The features of one query's candidates, as float64 arrays by name.

    Every argument is a 1-D array with one entry per candidate, all of one
    length ``n``, for the candidates of ONE query (the per-query features
    compare candidates with each other).

    Args:
        ce_logit: cross-encoder logits (finite).
        bm25_score: BM25 scores; NaN where BM25 did not return the candidate.
        bm25_rank: 1-based BM25 ranks; 0 where absent (``FusedHits.stage_ranks``).
        dense_score: dense cosine similarities; NaN where absent.
        dense_rank: 1-based dense ranks; 0 where absent.
        fused_rank: 1-based ranks in the fused list; ``None`` means the
            candidates are given in fused order (rank = position + 1).
        fused_score: fused scores; ``None`` gives ``fused_rel`` from the rank
            as ``1 / fused_rank``.
        leg_depth: how many documents each leg (BM25, dense) was asked for;
            a candidate absent from a leg ranks ``leg_depth + 1`` there.
            ``None``: ``n`` or the largest rank given, whichever is larger
            (right when each leg was asked for as many documents as the
            fused list keeps, the pipeline's default). Must be >= every rank.

    Returns:
        ``{name: array}`` for every name in :data:`FEATURES`.

    Raises:
        ValueError: lengths differ, a rank is negative, a logit is NaN or inf,
            or a score is inf.
        TypeError: an array does not hold numbers.
    """
    ce = _vector(ce_logit, "ce_logit", None)
    n = ce.shape[0]
    if not np.all(np.isfinite(ce)):
        raise ValueError("ce_logit must be finite (no NaN or inf)")
    b_rank_in = _vector(bm25_rank, "bm25_rank", n, integer=True)
    d_rank_in = _vector(dense_rank, "dense_rank", n, integer=True)
    if leg_depth is None:
        depth = int(max(n, b_rank_in.max(initial=0), d_rank_in.max(initial=0)))
    else:
        if isinstance(leg_depth, bool) or not isinstance(leg_depth, (int, np.integer)):
            raise TypeError(f"leg_depth must be an int or None, got {type(leg_depth).__name__}")
        depth = int(leg_depth)
    b_score, b_rank, b_absent = _leg(
        _vector(bm25_score, "bm25_score", n),
        b_rank_in,
        depth,
        "bm25",
    )
    d_score, d_rank, d_absent = _leg(
        _vector(dense_score, "dense_score", n),
        d_rank_in,
        depth,
        "dense",
    )
    if fused_rank is None:
        f_rank = np.arange(1, n + 1, dtype=np.float64)
    else:
        f_rank = _vector(fused_rank, "fused_rank", n, integer=True)
        if np.any(f_rank < 1):
            raise ValueError("fused_rank must be >= 1 (every candidate is in the fused list)")
    if fused_score is None:
        f_rel = 1.0 / f_rank
    else:
        f_score = _vector(fused_score, "fused_score", n)
        if not np.all(np.isfinite(f_score)):
            raise ValueError("fused_score must be finite")
        f_rel = _ratio_to_best(f_score)

    ce = np.clip(ce, -_LOGIT_CLIP, _LOGIT_CLIP)
    ce_max = float(ce.max()) if n else 0.0
    b_best = float(b_score.max()) if n else 0.0
    d_best = float(d_score.max()) if n else 0.0
    full = np.ones(n, dtype=np.float64)
    agree = _spearman(ce, -f_rank)
    return {
        "ce_logit": ce,
        "ce_gap": ce - ce_max,
        "ce_max": full * ce_max,
        "bm25_rel": _ratio_to_best(b_score),
        "bm25_log_rank": np.log(b_rank),
        "bm25_absent": b_absent,
        "bm25_best": full * math.log1p(max(b_best, 0.0)),
        "dense_score": d_score,
        "dense_gap": d_score - d_best,
        "dense_log_rank": np.log(d_rank),
        "dense_absent": d_absent,
        "dense_best": full * d_best,
        "fused_log_rank": np.log(f_rank),
        "fused_rel": f_rel,
        "ce_agree": full * agree,
        "ce_gap_x_agree": (ce - ce_max) * agree,
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by position); 0 for n < 2."""
    if a.size < 2:
        return 0.0
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


def _ratio_to_best(scores: np.ndarray) -> np.ndarray:
    """``scores / max(scores)``, or zeros when the best is not positive."""
    best = float(scores.max()) if scores.size else 0.0
    if best <= 0.0:
        return np.zeros_like(scores)
    return scores / best


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a negative argument only: no overflow warning for large |z|.
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


@dataclass(frozen=True)
class RelevanceModel:
    """A logistic regression over named, standardised features.

    Attributes:
        features: the feature names, in column order.
        mean, scale: per-feature standardisation, ``(x - mean) / scale``.
        coef: one coefficient per standardised feature.
        intercept: the bias.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def __post_init__(self) -> None:
        names = tuple(self.features)
        if not names:
            raise ValueError("features must name at least one feature")
        unknown = [f for f in names if f not in FEATURES]
        if unknown:
            raise ValueError(f"features: unknown feature(s) {unknown}; known: {list(FEATURES)}")
        if len(set(names)) != len(names):
            raise ValueError(f"features: a name appears twice in {list(names)}")
        object.__setattr__(self, "features", names)
        for key in ("mean", "scale", "coef"):
            value = np.asarray(getattr(self, key), dtype=np.float64)
            if value.shape != (len(names),):
                raise ValueError(
                    f"{key} must hold {len(names)} numbers (one per feature), got shape "
                    f"{value.shape}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{key} must be finite")
            object.__setattr__(self, key, value)
        if np.any(self.scale <= 0):
            raise ValueError("scale must be > 0 for every feature")
        if isinstance(self.intercept, bool) or not isinstance(self.intercept, (int, float)):
            raise ValueError(f"intercept must be a number, got {self.intercept!r}")
        if not math.isfinite(self.intercept):
            raise ValueError("intercept must be finite")
        object.__setattr__(self, "intercept", float(self.intercept))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RelevanceModel:
        """Build from the ``"relevance"`` object of ``secondopinion.json``.

        ``cfg`` may be that object or the whole ``secondopinion.json`` dict
        (then its ``"relevance"`` key is used).

        Raises:
            ValueError: a key is missing or malformed (the message names it).
        """
        if not isinstance(cfg, Mapping):
            raise ValueError(f"relevance config must be a JSON object, got {type(cfg).__name__}")
        if "relevance" in cfg and "coef" not in cfg:
            cfg = cfg["relevance"]
            if not isinstance(cfg, Mapping):
                raise ValueError("'relevance' must be a JSON object")
        for key in ("version", "features", "mean", "scale", "coef", "intercept"):
            if key not in cfg:
                raise ValueError(f"relevance config: missing key {key!r}")
        if cfg["version"] != RELEVANCE_VERSION:
            raise ValueError(
                f"relevance config: 'version' must be {RELEVANCE_VERSION}, got {cfg['version']!r}"
            )
        features = cfg["features"]
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError("relevance config: 'features' must be a list of names")
        arrays = {}
        for key in ("mean", "scale", "coef"):
            value = cfg[key]
            if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise ValueError(f"relevance config: {key!r} must be a list of numbers")
            arrays[key] = value
        try:
            return cls(tuple(features), intercept=cfg["intercept"], **arrays)
        except ValueError as exc:
            raise ValueError(f"relevance config: {exc}") from None

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike[str]) -> RelevanceModel | None:
        """The model stored in ``model_dir/secondopinion.json``; ``None`` if it has none.

        Raises:
            FileNotFoundError: no ``secondopinion.json`` there.
            ValueError: the file is not JSON, or its ``"relevance"`` is malformed.
        """
        path = Path(model_dir) / "secondopinion.json"
        raw = read_json(path)
        if not isinstance(raw, dict) or "relevance" not in raw:
            return None
        try:
            return cls.from_config(raw["relevance"])
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_config(self) -> dict[str, Any]:
        """The JSON-ready ``"relevance"`` object :meth:`from_config` reads."""
        return {
            "version": RELEVANCE_VERSION,
            "features": list(self.features),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "coef": [float(v) for v in self.coef],
            "intercept": float(self.intercept),
        }

    def matrix(self, features: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """The ``[n, len(self.features)]`` float64 matrix of ``features``.

        ``features`` is a dict by name (extra names are ignored), or a 2-D
        array whose columns are already in :attr:`features` order.
        """
        if isinstance(features, Mapping):
            missing = [f for f in self.features if f not in features]
            if missing:
                raise ValueError(f"features: missing {missing}")
            columns = [np.asarray(features[f], dtype=np.float64) for f in self.features]
            for name, column in zip(self.features, columns, strict=True):
                if column.ndim != 1 or column.shape != columns[0].shape:
                    raise ValueError(f"features[{name!r}] must be a 1-D array like the others")
            x = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
        else:
            x = np.asarray(features, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != len(self.features):
                raise ValueError(
                    f"features must be a dict or a 2-D array with {len(self.features)} "
                    f"columns, got shape {x.shape}"
                )
        bad = ~np.isfinite(x)
        if bad.any():
            column = self.features[int(np.nonzero(bad.any(axis=0))[0][0])]
            raise ValueError(f"features: {column!r} holds NaN or inf")
        return x

    def decision_function(self, features: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """The log-odds ``intercept + coef . standardised(x)`` per candidate."""
        x = self.matrix(features)
        return self.intercept + ((x - self.mean) / self.scale) @ self.coef

    def predict_proba(self, features: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """The probability that each candidate is relevant, float64 in [0, 1]."""
        return _sigmoid(self.decision_function(features))

    @classmethod
    def fit(
        cls,
        features: Mapping[str, Any] | np.ndarray,
        labels: np.ndarray,
        names: Sequence[str],
        *,
        l2: float = 1.0,
        weights: np.ndarray | None = None,
    ) -> RelevanceModel:
        """Standardise ``features`` (columns ``names``) and fit by :func:`fit_logistic`."""
        probe = cls(
            tuple(names), np.zeros(len(names)), np.ones(len(names)), np.zeros(len(names)), 0
        )
        x = probe.matrix(features)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        # A constant column carries nothing; scale 1 keeps it at 0 after centring.
        scale = np.where(scale > 1e-12, scale, 1.0)
        coef, intercept = fit_logistic((x - mean) / scale, labels, l2=l2, weights=weights)
        return cls(tuple(names), mean, scale, coef, intercept)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    weights: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (IRLS).

    Minimises ``sum_i w_i * logloss(y_i, sigmoid(b + x_i . coef)) + l2/2 * |coef|^2``
    (the intercept ``b`` is not penalised). The objective is strictly convex
    for ``l2 > 0``, so Newton steps converge in a handful of iterations; each
    step is halved until the objective decreases, which keeps it safe on
    separable data.

    Returns:
        ``(coef, intercept)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, d] and y [n], got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all((y == 0) | (y == 1))):
        raise ValueError("x must be finite and y must hold only 0 and 1")
    if not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be finite and >= 0, got {l2!r}")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != y.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite, non-negative, one per row")
    n, d = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    penalty = np.full(d + 1, l2)
    penalty[0] = 0.0
    theta = np.zeros(d + 1)

    def objective(t: np.ndarray) -> float:
        z = design @ t
        # log(1 + e^z) - y z, stably.
        loss = np.logaddexp(0.0, z) - y * z
        return float(w @ loss + 0.5 * penalty @ (t * t))

    current = objective(theta)
    for _ in range(max_iter):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (w * (p - y)) + penalty * theta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        hessian[np.diag_indices_from(hessian)] += 1e-9  # keep it invertible if l2 = 0
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while True:
            candidate = theta - size * step
            value = objective(candidate)
            if value <= current or size < 1e-8:
                break
            size /= 2
        theta, previous, current = candidate, current, value
        if previous - current <= tol * max(1.0, abs(current)):
            break
    return theta[1:].copy(), float(theta[0])


class LearnedRelevance:
    """The pipeline's relevance model when a cross-encoder ships a learned score.

    Adapts :class:`RelevanceModel` to the gate's interface
    (:class:`secondopinion.gate.RelevanceModel`): it turns one query's
    :class:`~secondopinion.gate.CandidateFeatures` into this module's features
    and returns float32 probabilities.
    """

    def __init__(self, model: RelevanceModel) -> None:
        self.model = model

    def score(self, features: Any) -> np.ndarray:  # noqa: ANN401 - gate.CandidateFeatures
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        named = candidate_features(
            ce_logit=features.ce_logit,
            bm25_score=features.bm25_score,
            bm25_rank=features.bm25_rank,
            dense_score=features.dense_score,
            dense_rank=features.dense_rank,
            fused_rank=features.fused_rank,
            fused_score=features.fused_score,
        )
        return self.model.predict_proba(named).astype(np.float32)

    def __repr__(self) -> str:
        return f"LearnedRelevance({len(self.model.features)} features)"


def load_relevance(entry: Mapping[str, Any]) -> LearnedRelevance:
    """Build the learned score from a model's ``secondopinion.json`` ``"relevance"`` entry."""
    return LearnedRelevance(RelevanceModel.from_config(entry))
