"""Choosing the relevance floor from traces.

With labels (judged queries), the floor follows from a target:

- ``target_recall=R``: the largest floor that keeps at least a fraction ``R``
  of the relevant candidates (candidates are kept when ``score >= floor``).
  That is the ``ceil(R * n_relevant)``-th largest relevant score.
- ``target_refusal_precision=P``: the largest floor whose refusals are right
  at least a fraction ``P`` of the time. A query is refused when its best
  score is below the floor; a refusal is right when no candidate of the query
  is relevant. Raising the floor refuses more queries; among the floors at
  which the refused set changes, the highest one whose refusal precision is
  still ``>= P`` is chosen (refusing as much as the target allows).

Either way the choice reports the recall of relevant candidates, the refusal
rate (refused / judged queries) and the false-refusal rate (queries with a
relevant candidate that the floor refuses / queries with a relevant candidate).
Without a target, labels give ``target_recall=0.95``.

Without labels the floor is put in the gap between the junk mode and the
evidence mode of the score distribution. Scores are probabilities crowded at
0 and 1, so the modes are looked for on their logit. Two estimates:

- Otsu's threshold on a 256-bin histogram of the logits (the split that
  maximises the between-class variance): deterministic, no assumptions on the
  shapes, but it drifts toward the smaller class when the classes are very
  unequal in size, which is the usual case (a few relevant among 100).
- A two-component Gaussian mixture on the logits, fitted by EM from Otsu's
  split; its floor is where the two weighted densities cross between the two
  means, which accounts for the unequal sizes.

The mixture's floor is used when it has a crossing between the means, else
Otsu's. Reliability is reported as Ashman's D = |mu1 - mu2| * sqrt(2) /
sqrt(s1^2 + s2^2): D > 2 means the modes are cleanly apart and the floor in
the gap is meaningful; below 2 the distribution is not clearly bimodal and a
labelled calibration (even 50 judged queries) should be preferred.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._jsonfile import read_json_object
from .traces import TraceArrays, TraceStore

__all__ = [
    "CalibrationData",
    "FloorChoice",
    "calibrate_floor",
    "plot_floor",
    "write_floor",
]

#: Probabilities are clipped to [EPS, 1 - EPS] before taking the logit.
EPS = 1e-6
DEFAULT_TARGET_RECALL = 0.95
#: Ashman's D above which the two modes count as cleanly separated.
SEPARATED_D = 2.0


@dataclass(frozen=True)
class CalibrationData:
    """What calibration needs, one entry per candidate.

    Attributes:
        score: relevance probabilities in [0, 1].
        query: int64 index of each candidate's query (0..n_queries-1).
        label: int64 relevance, or None when nothing is labelled. Queries with
            any label < 0 are treated as not judged and left out.
    """

    score: np.ndarray
    query: np.ndarray
    label: np.ndarray | None = None

    @classmethod
    def from_traces(cls, arrays: TraceArrays) -> CalibrationData:
        label = arrays.label if arrays.labelled else None
        return cls(arrays.score, arrays.trace, label)


@dataclass(frozen=True)
class FloorChoice:
    """The chosen floor and what it implies.

    ``method`` is "target-recall", "target-refusal-precision", "mixture" or
    "otsu". Rates are fractions (NaN where undefined); the label-based ones
    are NaN when the traces are not labelled.
    """

    floor: float
    method: str
    target: float | None
    met: bool
    n_queries: int
    n_candidates: int
    refusal_rate: float
    n_relevant: int = 0
    recall: float = math.nan
    false_refusal_rate: float = math.nan
    refusal_precision: float = math.nan
    separation: float = math.nan
    modes: tuple[float, float] | None = None
    otsu_floor: float = math.nan
    mixture_floor: float = math.nan
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        how = self.method
        if self.target is not None:
            how += f", target {self.target:g}" + ("" if self.met else ", NOT met")
        lines = [f"floor {self.floor:.4f}  ({how})"]
        lines.append(f"  {self.n_queries} queries, {self.n_candidates} candidates")
        lines.append(f"  refusal rate        {_pct(self.refusal_rate)}")
        if self.n_relevant:
            lines.append(f"  recall (relevant)   {_pct(self.recall)} of {self.n_relevant}")
            lines.append(f"  false-refusal rate  {_pct(self.false_refusal_rate)}")
            lines.append(f"  refusal precision   {_pct(self.refusal_precision)}")
        if self.modes is not None:
            lo, hi = self.modes
            lines.append(f"  modes (probability) junk {lo:.4f}, evidence {hi:.4f}")
            lines.append(
                f"  separation (Ashman's D) {self.separation:.2f}"
                f" ({'clean' if self.separation > SEPARATED_D else 'weak: prefer labels'})"
            )
            lines.append(
                f"  otsu floor {self.otsu_floor:.4f}, mixture floor {self.mixture_floor:.4f}"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def as_json(self) -> dict:
        # NaN is not JSON; undefined rates become null.
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in self.__dict__.items()
        }


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _as_data(
    source: TraceStore | TraceArrays | CalibrationData, model_id: str | None
) -> CalibrationData:
    if isinstance(source, TraceStore):
        source = source.arrays(model_id)
    if isinstance(source, TraceArrays):
        return CalibrationData.from_traces(source)
    if isinstance(source, CalibrationData):
        return source
    raise TypeError(
        f"source must be a TraceStore, TraceArrays or CalibrationData, got {type(source).__name__}"
    )


def _check_target(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def calibrate_floor(
    source: TraceStore | TraceArrays | CalibrationData,
    *,
    target_recall: float | None = None,
    target_refusal_precision: float | None = None,
    model_id: str | None = None,
) -> FloorChoice:
    """Choose a floor from traces; see the module docstring for the methods.

    Raises:
        ValueError: both targets given, a target outside (0, 1], a target
            without labels, no candidates, or scores outside [0, 1].
    """
    _check_target("target_recall", target_recall)
    _check_target("target_refusal_precision", target_refusal_precision)
    if target_recall is not None and target_refusal_precision is not None:
        raise ValueError("give target_recall or target_refusal_precision, not both")
    data = _as_data(source, model_id)
    score = np.asarray(data.score, dtype=np.float64)
    query = np.asarray(data.query, dtype=np.int64)
    if score.ndim != 1 or score.shape != query.shape:
        raise ValueError(
            f"score and query must be 1-D of one length, got {score.shape}, {query.shape}"
        )
    if score.size == 0:
        raise ValueError("no candidates to calibrate on")
    if not np.all((score >= 0.0) & (score <= 1.0)):
        raise ValueError("scores must be probabilities in [0, 1]")
    if data.label is None:
        if target_recall is not None or target_refusal_precision is not None:
            raise ValueError("a target needs labelled traces (add_labels or --qrels)")
        return _unlabelled(score, query)
    label = np.asarray(data.label, dtype=np.int64)
    if label.shape != score.shape:
        raise ValueError(f"label must have the shape of score, got {label.shape}, {score.shape}")
    # Leave out the queries that are not judged.
    _, query = np.unique(query, return_inverse=True)
    unjudged = np.zeros(int(query.max()) + 1, dtype=bool)
    np.logical_or.at(unjudged, query, label < 0)
    keep = ~unjudged[query]
    if not keep.any():
        raise ValueError("no judged query among the traces")
    score, label = score[keep], label[keep]
    _, query = np.unique(query[keep], return_inverse=True)
    if target_refusal_precision is not None:
        return _by_refusal_precision(score, query, label, target_refusal_precision)
    return _by_recall(score, query, label, target_recall or DEFAULT_TARGET_RECALL)


# --- labelled ----------------------------------------------------------------------------


def _rates(score: np.ndarray, query: np.ndarray, label: np.ndarray, floor: float) -> dict:
    n_q = int(query.max()) + 1
    best = np.full(n_q, -np.inf)
    np.maximum.at(best, query, score)
    has_rel = np.zeros(n_q, dtype=bool)
    np.logical_or.at(has_rel, query, label > 0)
    refused = best < floor
    relevant = label > 0
    n_rel = int(relevant.sum())
    n_refused = int(refused.sum())
    return {
        "n_queries": n_q,
        "n_candidates": int(score.size),
        "n_relevant": n_rel,
        "recall": float((score[relevant] >= floor).sum() / n_rel) if n_rel else math.nan,
        "refusal_rate": n_refused / n_q,
        "false_refusal_rate": float((refused & has_rel).sum() / has_rel.sum())
        if has_rel.any()
        else math.nan,
        "refusal_precision": float((refused & ~has_rel).sum() / n_refused)
        if n_refused
        else math.nan,
    }


def _by_recall(
    score: np.ndarray, query: np.ndarray, label: np.ndarray, target: float
) -> FloorChoice:
    rel_scores = np.sort(score[label > 0])[::-1]
    if rel_scores.size == 0:
        raise ValueError("the judged queries have no relevant candidate; cannot target recall")
    # The k-th largest relevant score keeps >= k of them; any higher floor keeps < k.
    # The small slack keeps e.g. 0.95 * 20 = 19.000000000000004 from asking for 20.
    k = max(1, math.ceil(target * rel_scores.size - 1e-9))
    floor = float(rel_scores[k - 1])
    rates = _rates(score, query, label, floor)
    return FloorChoice(
        floor=floor,
        method="target-recall",
        target=target,
        met=rates["recall"] >= target - 1e-12,
        **rates,
    )


def _by_refusal_precision(
    score: np.ndarray, query: np.ndarray, label: np.ndarray, target: float
) -> FloorChoice:
    n_q = int(query.max()) + 1
    best = np.full(n_q, -np.inf)
    np.maximum.at(best, query, score)
    has_rel = np.zeros(n_q, dtype=bool)
    np.logical_or.at(has_rel, query, label > 0)
    # Floor = the j-th smallest distinct best score refuses exactly the queries below it.
    # A floor just above the top best score refuses everything.
    levels = np.unique(best)
    candidates = np.append(levels, np.nextafter(levels[-1], np.inf))
    chosen, met = float(levels[0]), False
    order = np.sort(best)
    wrong_sorted = (has_rel[np.argsort(best, kind="stable")]).cumsum()
    for floor in candidates[1:]:
        n_refused = int(np.searchsorted(order, floor, side="left"))
        wrong = int(wrong_sorted[n_refused - 1]) if n_refused else 0
        if n_refused and (n_refused - wrong) / n_refused >= target - 1e-12:
            chosen, met = float(floor), True
    notes = []
    if chosen > 1.0:
        chosen = 1.0
        notes.append("the target is met only by refusing every query; floor capped at 1")
    if not met:
        notes.append("no floor refuses with that precision; the floor refuses nothing")
    rates = _rates(score, query, label, chosen)
    return FloorChoice(
        floor=chosen,
        method="target-refusal-precision",
        target=target,
        met=met,
        notes=notes,
        **rates,
    )


# --- unlabelled --------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def otsu_threshold(x: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``x`` on a ``bins``-bin histogram: the bin edge that
    maximises the between-class variance (ties: the lowest such edge)."""
    counts, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)[:-1].astype(np.float64)
    w1 = counts.sum() - w0
    s0 = np.cumsum(counts * centres)[:-1]
    m0 = np.divide(s0, w0, out=np.zeros_like(s0), where=w0 > 0)
    m1 = np.divide((counts * centres).sum() - s0, w1, out=np.zeros_like(s0), where=w1 > 0)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1 + int(np.argmax(between))])


def _mixture(x: np.ndarray, split: float, iterations: int = 200) -> tuple[np.ndarray, ...]:
    """Two-Gaussian EM on ``x``, started from the split at ``split``."""
    lo, hi = x[x < split], x[x >= split]
    if lo.size < 2 or hi.size < 2:
        lo, hi = np.sort(x)[: x.size // 2], np.sort(x)[x.size // 2 :]
    w = np.array([lo.size, hi.size], dtype=np.float64) / x.size
    mu = np.array([lo.mean(), hi.mean()])
    floor_var = max(1e-6, 1e-4 * float(x.var()))
    var = np.maximum(np.array([lo.var(), hi.var()]), floor_var)
    previous = -np.inf
    for _ in range(iterations):
        dens = w / np.sqrt(2 * np.pi * var) * np.exp(-((x[:, None] - mu) ** 2) / (2 * var))
        total = dens.sum(axis=1, keepdims=True) + 1e-300
        resp = dens / total
        nk = resp.sum(axis=0) + 1e-12
        w = nk / x.size
        mu = (resp * x[:, None]).sum(axis=0) / nk
        var = np.maximum((resp * (x[:, None] - mu) ** 2).sum(axis=0) / nk, floor_var)
        loglik = float(np.log(total).sum())
        if loglik - previous < 1e-8 * abs(loglik):
            break
        previous = loglik
    order = np.argsort(mu)
    return w[order], mu[order], var[order]


def _crossing(w: np.ndarray, mu: np.ndarray, var: np.ndarray) -> float | None:
    """Where w0 N(mu0, var0) = w1 N(mu1, var1) between the means, or None."""
    # log w0 - log s0 - (x-m0)^2/2v0 = log w1 - log s1 - (x-m1)^2/2v1: a quadratic a x^2 + b x + c.
    a = 1 / (2 * var[1]) - 1 / (2 * var[0])
    b = mu[0] / var[0] - mu[1] / var[1]
    c = (
        mu[1] ** 2 / (2 * var[1])
        - mu[0] ** 2 / (2 * var[0])
        + math.log(w[0] / math.sqrt(var[0]))
        - math.log(w[1] / math.sqrt(var[1]))
    )
    if abs(a) < 1e-12:
        roots = [] if abs(b) < 1e-12 else [-c / b]
    else:
        disc = b * b - 4 * a * c
        if disc < 0:
            return None
        roots = [(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)]
    inside = [r for r in roots if mu[0] <= r <= mu[1]]
    return inside[0] if inside else None


def _unlabelled(score: np.ndarray, query: np.ndarray) -> FloorChoice:
    x = _logit(score)
    n_q = int(np.unique(query).size)
    notes: list[str] = []
    if np.ptp(x) == 0:
        raise ValueError("all scores are equal; there is no gap to put a floor in")
    otsu = otsu_threshold(x)
    w, mu, var = _mixture(x, otsu)
    cross = _crossing(w, mu, var)
    separation = float(abs(mu[1] - mu[0]) * math.sqrt(2) / math.sqrt(var[0] + var[1]))
    if cross is not None:
        method, floor_logit = "mixture", cross
    else:
        method, floor_logit = "otsu", otsu
        notes.append(
            "the mixture's densities do not cross between its means; Otsu's threshold used"
        )
    if separation <= SEPARATED_D:
        notes.append(
            "the score distribution is not clearly bimodal "
            f"(D = {separation:.2f} <= {SEPARATED_D}); calibrate with labels if you can"
        )
    if min(w) < 0.01:
        notes.append(f"one mode holds only {100 * min(w):.1f}% of the candidates")
    floor = _sigmoid(floor_logit)
    best = np.full(int(query.max()) + 1, -np.inf)
    np.maximum.at(best, query, score)
    present = np.isfinite(best)
    return FloorChoice(
        floor=floor,
        method=method,
        target=None,
        met=True,
        n_queries=n_q,
        n_candidates=int(score.size),
        refusal_rate=float((best[present] < floor).sum() / n_q),
        separation=separation,
        modes=(_sigmoid(float(mu[0])), _sigmoid(float(mu[1]))),
        otsu_floor=_sigmoid(otsu),
        mixture_floor=math.nan if cross is None else _sigmoid(cross),
        notes=notes,
    )


# --- writing and plotting ----------------------------------------------------------------


def write_floor(model_dir: str | os.PathLike[str], floor: float) -> Path:
    """Set ``floor`` in ``model_dir/secondopinion.json``, keeping the other keys.

    The file is replaced atomically (written beside it, then renamed), so a
    crash leaves the old file or the new one, never half of one.

    Raises:
        ValueError: ``floor`` is not a number in [0, 1], or the file is not a
            JSON object.
        FileNotFoundError: the directory or its ``secondopinion.json`` is missing.
    """
    from .model_dir import CONFIG_FILE, ModelFormatError

    if isinstance(floor, bool) or not isinstance(floor, (int, float)):
        raise TypeError(f"floor must be a number, got {type(floor).__name__}")
    if not 0.0 <= floor <= 1.0 or math.isnan(floor):
        raise ValueError(f"floor must be in [0, 1], got {floor!r}")
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {str(model_dir)!r} a model directory?")
    config = read_json_object(path, ModelFormatError)
    config["floor"] = float(floor)
    fd, tmp = tempfile.mkstemp(prefix=".secondopinion.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(config, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def plot_floor(
    source: TraceStore | TraceArrays | CalibrationData,
    choice: FloorChoice,
    path: str | os.PathLike[str],
    *,
    model_id: str | None = None,
) -> Path:
    """Draw the score distribution(s) and the chosen floor into ``path`` (PNG, SVG, PDF).

    Labelled: relevant and non-relevant candidates as two histograms. Unlabelled:
    all candidates, with the two fitted modes marked. The x axis is the logit of
    the probability (where the modes are apart), labelled in probabilities.
    Needs matplotlib (``pip install 'secondopinion[plot]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'secondopinion[plot]' (or matplotlib)"
        ) from None
    data = _as_data(source, model_id)
    x = _logit(np.asarray(data.score, dtype=np.float64))
    # A Figure with an Agg canvas, not pyplot: no global backend state, works headless.
    fig = Figure(figsize=(8, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bins = np.linspace(x.min(), x.max(), 61)
    if data.label is not None and (np.asarray(data.label) >= 0).any():
        label = np.asarray(data.label)
        ax.hist(
            x[label == 0],
            bins=bins,
            color="#9e9e9e",
            alpha=0.75,
            label=f"not relevant ({int((label == 0).sum())})",
        )
        ax.hist(
            x[label > 0],
            bins=bins,
            color="#2e7d32",
            alpha=0.8,
            label=f"relevant ({int((label > 0).sum())})",
        )
    else:
        ax.hist(x, bins=bins, color="#5c6bc0", alpha=0.8, label=f"all candidates ({x.size})")
        if choice.modes is not None:
            for p, name in zip(choice.modes, ("junk mode", "evidence mode"), strict=True):
                ax.axvline(_logit(np.array([p]))[0], color="#5c6bc0", ls=":", lw=1.5)
                ax.annotate(
                    name,
                    (_logit(np.array([p]))[0], 0.02),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="#3949ab",
                    backgroundcolor="white",
                )
    fx = _logit(np.array([choice.floor]))[0]
    ax.axvline(fx, color="#c62828", lw=2.5, label=f"floor {choice.floor:.3f} ({choice.method})")
    ax.set_yscale("log")
    ax.set_ylabel("candidates (log scale)")
    ticks = [
        p
        for p in (1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
        if x.min() <= _logit(np.array([p]))[0] <= x.max()
    ]
    ax.set_xticks(_logit(np.array(ticks)) if ticks else [])
    ax.set_xticklabels([f"{p:g}" for p in ticks])
    ax.set_xlabel("relevance probability (logit scale)")
    stats = f"refused {_pct(choice.refusal_rate)} of {choice.n_queries} queries"
    if choice.n_relevant:
        stats += f", recall {_pct(choice.recall)}, false refusals {_pct(choice.false_refusal_rate)}"
    elif not math.isnan(choice.separation):
        stats += f", separation D = {choice.separation:.2f}"
    ax.set_title(f"Relevance floor {choice.floor:.3f}: {stats}", fontsize=10)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out
