"""Fit the learned relevance score (``secondopinion.relevance``) on validation queries.

Only the validation queries the cross-encoder never trained on are used: the
ids stored under ``data.val_query_ids`` in the training log (SciFact train
qrels, NFCorpus dev qrels). For each of them the candidates are stage 1 as the
pipeline builds it: ``fuse_rrf`` (k 60) of BM25 top-100 (title + text) and
dense top-100 (exact cosine over the embedder's corpus vectors), cut to 100;
each candidate is scored by the cross-encoder (title + text, max_length 256).

Steps (each cached under ``--cache``, so a rerun only does what changed):

1. ``features``: candidates and their signals, ``<dataset>.npz``.
2. ``fit``: 5-fold cross-validation grouped by query, out-of-fold report of
   nDCG@10 (stage 1 / cross-encoder alone / learned), expected calibration
   error, and the no-answer check; then the final fit on every validation
   query, written to ``--out`` as the ``"relevance"`` object.

Usage::

    python tools/fit_relevance.py features --cross-encoder DIR --embedder DIR
    python tools/fit_relevance.py fit [--out build/relevance.json]

The no-answer check: for a random half of the queries, the relevant
documents are deleted from the candidate list (features recomputed, since
some are per query), and each query is summarised by its largest
probability. AUC of that maximum between queries that still have a relevant
candidate and queries that do not; a floor is chosen on one half of the
queries (maximising recall of refusals minus false refusals) and evaluated
on the other half, then the halves swap.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from secondopinion.beir import load_beir
from secondopinion.bm25 import BM25Index
from secondopinion.fusion import fuse_rrf
from secondopinion.relevance import FEATURES, RelevanceModel, candidate_features, fit_logistic

DATASETS = (("scifact", "train"), ("nfcorpus", "dev"))
DEPTH = 100
RRF_K = 60.0
MAX_LENGTH = 256
# ce_gap (= ce_logit - ce_max) and dense_gap (= dense_score - dense_best) are
# left out by default: each is a linear combination of two features kept.
DEFAULT_FEATURES = (
    "ce_logit",
    "ce_max",
    "bm25_rel",
    "bm25_log_rank",
    "bm25_absent",
    "bm25_best",
    "dense_score",
    "dense_log_rank",
    "dense_absent",
    "dense_best",
    "fused_log_rank",
    # Where the cross-encoder agrees with stage 1 its order is worth more: on
    # SciFact it does, on NFCorpus it is noise. With these two the top-100 fit
    # keeps NFCorpus at stage 1 and SciFact above the cross-encoder alone, and
    # both calibrated (ECE of each query's top 10: 0.048 / 0.031, against
    # 0.109 / 0.039 without them).
    "ce_agree",
    "ce_gap_x_agree",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def model_tag(path: Path, kind: str) -> str:
    """A short hash of the model files' sizes and mtimes (model.onnx and any
    external initializers): caches go stale when one changes."""
    from secondopinion.model_dir import open_model_dir

    external = open_model_dir(path, kind).external_initializers
    files = [path / "model.onnx"] + [Path(f) for _, f in external]
    stamp = ";".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return hashlib.sha1(stamp.encode()).hexdigest()[:10]


# --------------------------------------------------------------------- features


def build_features(args: argparse.Namespace) -> None:
    from secondopinion.embed import Embedder
    from secondopinion.rerank import CrossEncoder

    val_ids = json.loads(args.train_log.read_text())["data"]["val_query_ids"]
    args.cache.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(args.embedder, threads=args.threads, max_length=MAX_LENGTH)
    cross = None
    if args.cross_encoder is not None:
        cross = CrossEncoder(args.cross_encoder, threads=args.threads, max_length=MAX_LENGTH)
    emb_tag = model_tag(args.embedder, "embedder")
    for name, split in DATASETS:
        if args.only and name != args.only:
            continue
        data = load_beir(args.data / name, split)
        qids = [q for q in val_ids[name] if q in data.qrels]
        if args.max_queries and len(qids) > args.max_queries:
            # a seeded random subset, kept in the stored order
            keep = np.random.default_rng(0).permutation(len(qids))[: args.max_queries]
            qids = [qids[i] for i in sorted(keep)]
        texts = data.corpus.indexable_texts()
        log(f"{name}: {len(qids)} validation queries, {len(texts)} docs")

        emb_file = args.cache / f"{name}_emb_{emb_tag}.npy"
        if emb_file.exists():
            doc_vectors = np.load(emb_file)
        else:
            start = time.perf_counter()
            doc_vectors = embedder.encode(texts)
            np.save(emb_file, doc_vectors)
            log(f"{name}: encoded corpus in {time.perf_counter() - start:.0f} s")
        queries = [data.queries[q] for q in qids]
        query_vectors = embedder.encode(queries)

        index = BM25Index.build(data.corpus.texts, data.corpus.ids, titles=data.corpus.titles)
        bm25_hits = index.search_batch(queries, DEPTH)
        cosines = query_vectors @ doc_vectors.T
        cand: dict[str, list[np.ndarray]] = {k: [] for k in CAND_KEYS}
        for i, qid in enumerate(qids):
            row = cosines[i]
            top = np.argpartition(-row, DEPTH)[:DEPTH]
            top = top[np.lexsort((top, -row[top].astype(np.float64)))]
            fused = fuse_rrf(
                [bm25_hits[i], (top.astype(np.int64), row[top].astype(np.float32))],
                k=RRF_K,
                limit=args.candidates,
            )
            n = len(fused.indices)
            judged = data.qrels[qid]
            ids = [data.corpus.ids[j] for j in fused.indices]
            cand["query"].append(np.full(n, i, dtype=np.int32))
            cand["doc"].append(fused.indices)
            cand["label"].append(np.array([judged.get(d, 0) for d in ids], dtype=np.int32))
            cand["bm25_rank"].append(fused.stage_ranks[0])
            cand["bm25_score"].append(fused.stage_scores[0])
            cand["dense_rank"].append(fused.stage_ranks[1])
            cand["dense_score"].append(fused.stage_scores[1])
            cand["fused_rank"].append(np.arange(1, n + 1, dtype=np.int32))
            cand["fused_score"].append(fused.scores)
        arrays = {k: np.concatenate(v) for k, v in cand.items()}

        if cross is None:
            log(f"{name}: candidates built; no --cross-encoder, so no features written")
            continue
        ce_tag = model_tag(args.cross_encoder, "cross-encoder")
        ce_file = args.cache / f"{name}_ce_{ce_tag}_{emb_tag}_{len(qids)}x{args.candidates}.npy"
        if ce_file.exists():
            logits = np.load(ce_file)
        else:
            logits = reuse_logits(args.reuse_ce, qids, arrays)
            logits = score_pairs(
                logits, cross, queries, texts, arrays, args.cache / (ce_file.stem + "_partial")
            )
            np.save(ce_file, logits)
        arrays["ce_logit"] = logits
        n_rel = {q: sum(1 for g in data.qrels[q].values() if g > 0) for q in qids}
        np.savez(
            args.cache / f"{name}.npz",
            leg_depth=np.array(DEPTH),
            qids=np.array(qids),
            n_relevant=np.array([n_rel[q] for q in qids], dtype=np.int32),
            **arrays,
        )
        log(f"{name}: wrote {args.cache / (name + '.npz')} ({len(arrays['doc'])} candidates)")


CAND_KEYS = (
    "query",
    "doc",
    "label",
    "bm25_rank",
    "bm25_score",
    "dense_rank",
    "dense_score",
    "fused_rank",
    "fused_score",
)


def reuse_logits(files: list[Path], qids: list[str], arrays: dict) -> np.ndarray:
    """Logits of (query, document) pairs already scored in earlier feature files of
    the same cross-encoder (NaN where none): a changed candidate list rescored
    only where it changed. (Dynamic int8 moves a logit slightly with the batch it
    is in, so a reused logit may differ from a fresh one by that much.)"""
    logits = np.full(len(arrays["query"]), np.nan, dtype=np.float32)
    known: dict[tuple[str, int], float] = {}
    for file in files:
        old = np.load(file)
        old_qids = old["qids"]
        for q, d, v in zip(old["query"], old["doc"], old["ce_logit"], strict=True):
            known[(str(old_qids[q]), int(d))] = float(v)
    for i, (q, d) in enumerate(zip(arrays["query"], arrays["doc"], strict=True)):
        logits[i] = known.get((qids[q], int(d)), np.nan)
    if files:
        log(f"  reused {int(np.isfinite(logits).sum())} of {len(logits)} logits")
    return logits


def score_pairs(
    logits: np.ndarray,
    cross: object,
    queries: list[str],
    texts: list[str],
    arrays: dict,
    part: Path,
) -> np.ndarray:
    """Cross-encoder logits for every candidate, saved every few queries (resumable)."""
    q, d = arrays["query"], arrays["doc"]
    if part.with_suffix(".npy").exists():
        saved = np.load(part.with_suffix(".npy"))
        if saved.shape == logits.shape:
            logits = np.where(np.isnan(logits), saved, logits)
    start = time.perf_counter()
    done_pairs = 0
    for first in range(0, len(queries), 10):
        rows = np.nonzero((q >= first) & (q < first + 10))[0]
        if not np.isnan(logits[rows]).any():
            continue
        rows = rows[np.isnan(logits[rows])]
        pairs = [(queries[q[r]], texts[d[r]]) for r in rows]
        logits[rows] = cross.predict(pairs, activation="none")  # type: ignore[attr-defined]
        np.save(part.with_suffix(".npy"), logits)
        done_pairs += len(rows)
        rate = done_pairs / (time.perf_counter() - start)
        left = int(np.isnan(logits).sum())
        log(
            f"  CE {first + 10}/{len(queries)} queries, {rate:.0f} pairs/s, "
            f"~{left / rate:.0f} s left"
        )
    return logits


# ------------------------------------------------------------------- metrics


def ndcg_at_10(order_labels: np.ndarray, ideal: float) -> float:
    """nDCG@10 with gain = relevance grade, as pytrec_eval's ndcg_cut_10."""
    top = order_labels[:10]
    dcg = float(np.sum(top / np.log2(np.arange(2, len(top) + 2))))
    return dcg / ideal if ideal > 0 else 0.0


def mean_ndcg(data: dict, score: np.ndarray) -> float:
    """Mean nDCG@10 over queries, ranking each query's candidates by ``score``
    (descending; ties by fused rank)."""
    values = []
    for qi in range(len(data["qids"])):
        rows = data["rows"][qi]
        order = np.lexsort((data["fused_rank"][rows], -score[rows]))
        values.append(
            ndcg_at_10(data["label"][rows][order].astype(np.float64), data["ideal_lin"][qi])
        )
    return float(np.mean(values))


def pytrec_ndcg(data: dict, score: np.ndarray) -> float | None:
    """The same mean nDCG@10 by pytrec_eval (an independent check), if installed."""
    try:
        import pytrec_eval
    except ImportError:
        return None
    run = {}
    for qi, rows in enumerate(data["rows"]):
        order = rows[np.lexsort((data["fused_rank"][rows], -score[rows]))]
        # scores 1/rank: pytrec_eval then keeps exactly this order
        run[str(data["qids"][qi])] = {
            str(data["doc_ids"][data["doc"][r]]): 1.0 / (i + 1) for i, r in enumerate(order)
        }
    result = pytrec_eval.RelevanceEvaluator(data["qrels"], {"ndcg_cut"}).evaluate(run)
    return float(np.mean([result[q]["ndcg_cut_10"] for q in run]))


def top10(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probability and label of each query's 10 best candidates by it."""
    p, y = [], []
    for qi in range(len(data["qids"])):
        rows = np.nonzero(data["qof"] == qi)[0]
        best = rows[np.argsort(-data["oof"][rows], kind="stable")[:10]]
        p.append(data["oof"][best])
        y.append(data["y"][best])
    return np.concatenate(p), np.concatenate(y)


def ece(prob: np.ndarray, label: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error, ``bins`` equal-width bins over [0, 1]."""
    which = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(prob[mask].mean() - label[mask].mean())
    return total / len(prob)


def auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    both = np.concatenate([scores_pos, scores_neg])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="mergesort")
    sorted_scores = both[order]
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(scores_pos), len(scores_neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------------ fit


def features_of(data: dict, keep: np.ndarray | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Feature dict, labels and query of every candidate (optionally only rows ``keep``),
    built query by query as the pipeline would."""
    parts: dict[str, list[np.ndarray]] = {f: [] for f in FEATURES}
    labels, queries = [], []
    for qi, rows in enumerate(data["rows"]):
        if keep is not None:
            rows = rows[keep[rows]]
        if len(rows) == 0:
            continue
        f = candidate_features(
            ce_logit=data["ce_logit"][rows],
            bm25_score=data["bm25_score"][rows],
            bm25_rank=data["bm25_rank"][rows],
            dense_score=data["dense_score"][rows],
            dense_rank=data["dense_rank"][rows],
            fused_rank=data["fused_rank"][rows],
            fused_score=data["fused_score"][rows],
            leg_depth=int(data["leg_depth"]),
        )
        for k, v in f.items():
            parts[k].append(v)
        labels.append((data["label"][rows] > 0).astype(np.float64))
        queries.append(np.full(len(rows), qi))
    return (
        {k: np.concatenate(v) for k, v in parts.items()},
        np.concatenate(labels),
        np.concatenate(queries),
    )


def fit(args: argparse.Namespace) -> None:
    names = tuple(args.features.split(",")) if args.features else DEFAULT_FEATURES
    rng = np.random.default_rng(args.seed)
    sets = {}
    for name, split in DATASETS:
        if not (args.cache / f"{name}.npz").exists():
            log(f"{name}: no {args.cache / (name + '.npz')}, skipped")
            continue
        data = dict(np.load(args.cache / f"{name}.npz"))
        beir = load_beir(args.data / name, split)
        qrels = beir.qrels
        data["doc_ids"] = np.array(beir.corpus.ids, dtype=object)
        data["qrels"] = {str(q): qrels[str(q)] for q in data["qids"]}
        q = data["query"]
        data["rows"] = [np.nonzero(q == i)[0] for i in range(len(data["qids"]))]
        data["ideal_lin"] = np.array(
            [ideal_linear(list(qrels[str(x)].values())) for x in data["qids"]]
        )
        feats, labels, queries = features_of(data)
        data["feats"], data["y"], data["qof"] = feats, labels, queries
        data["fold"] = rng.permutation(len(data["qids"])) % args.folds
        sets[name] = data

    # The L2 strength is chosen out of fold. The learned order must not fall
    # below stage 1 on any dataset (the cross-encoder helps SciFact and hurts
    # NFCorpus; more shrinkage leans on stage 1); of the strengths that keep
    # that, the one with the largest mean gain over stage 1. When none keeps
    # it, the one whose worst dataset does best.
    grid = [float(v) for v in args.l2.split(",")]
    print("\nL2 strength against out-of-fold nDCG@10 (learned order; stage 1 in brackets)")
    print("| L2 | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    best = None
    for l2 in grid:
        models = fold_models(sets, names, l2, args.folds)
        margins, cells = [], []
        for d in sets.values():
            z = oof_decision(d, models, names)
            learned, stage1 = mean_ndcg(d, z), mean_ndcg(d, -d["fused_rank"].astype(np.float64))
            margins.append(learned - stage1)
            cells.append(f"{learned:.4f} ({stage1:.4f})")
        print(f"| {l2:g} | " + " | ".join(cells) + " |")
        # (never below stage 1, mean gain) when possible, else (False, worst margin)
        key = (True, float(np.mean(margins))) if min(margins) >= 0 else (False, min(margins))
        if best is None or key > best[0]:
            best = (key, l2, models)
    assert best is not None
    l2, models = best[1], best[2]
    print(f"chosen L2: {l2:g}")

    # Shrinkage flattens the probabilities; a Platt rescaling of the log-odds
    # (p = sigmoid(a z + b), cross-fitted: fold k's a, b come from the other
    # folds' out-of-fold log-odds) restores calibration without changing the order.
    for d in sets.values():
        d["z"] = oof_decision(d, models, names)
    calibrated = []
    for k in range(args.folds):
        z, y, w = platt_data(sets, lambda d, k=k: d["fold"][d["qof"]] != k)
        calibrated.append(rescale(models[k], *platt(z, y, w)))
    for d in sets.values():
        d["oof"] = _sigmoid_np(oof_decision(d, calibrated, names))

    print(f"\nfeatures: {', '.join(names)}; L2 {l2:g}; {args.folds}-fold CV over queries\n")
    print(
        "| dataset | queries | stage 1 (fused) | CE alone | learned | ECE (15 bins) "
        "| ECE, each query's top 10 |"
    )
    print("|---|---|---|---|---|---|---|")
    all_p, all_y, top_p, top_y = [], [], [], []
    for name, d in sets.items():
        stage1 = mean_ndcg(d, -d["fused_rank"].astype(np.float64))
        ce_alone = mean_ndcg(d, d["ce_logit"].astype(np.float64))
        learned = mean_ndcg(d, d["oof"])
        all_p.append(d["oof"])
        all_y.append(d["y"])
        print(
            f"| {name} | {len(d['qids'])} | {stage1:.4f} | {ce_alone:.4f} | {learned:.4f} | "
            f"{ece(d['oof'], d['y']):.4f} | {ece(*top10(d)):.4f} |"
        )
        top_p.append(top10(d)[0])
        top_y.append(top10(d)[1])
    p, y = np.concatenate(all_p), np.concatenate(all_y)
    top_ece = ece(np.concatenate(top_p), np.concatenate(top_y))
    print(f"| all | | | | | {ece(p, y):.4f} | {top_ece:.4f} |")
    for name, d in sets.items():
        check = pytrec_ndcg(d, d["oof"])
        if check is not None:
            print(f"(pytrec_eval check, {name} learned: {check:.4f})")
    print(f"\nbase rate of relevant candidates: {y.mean():.4f}; mean probability {p.mean():.4f}")

    no_answer_check(sets, names, calibrated, rng)

    all_x = {f: np.concatenate([d["feats"][f] for d in sets.values()]) for f in names}
    all_w = np.concatenate([query_weights(d, np.ones(len(d["y"]), bool)) for d in sets.values()])
    final = RelevanceModel.fit(
        all_x, np.concatenate([d["y"] for d in sets.values()]), names, l2=l2, weights=all_w
    )
    a, b = platt(*platt_data(sets, lambda d: np.ones(len(d["y"]), bool)))
    print(f"\nPlatt rescaling of the final model: a = {a:.4f}, b = {b:+.4f}")
    final = rescale(final, a, b)
    config = final.to_config()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(config, indent=2) + "\n")
    print(f"\nfinal model (all {sum(len(d['qids']) for d in sets.values())} queries) -> {args.out}")
    print("| feature | coef (per std) | mean | scale |")
    print("|---|---|---|---|")
    for f, c, m, s in zip(names, final.coef, final.mean, final.scale, strict=True):
        print(f"| {f} | {c:+.3f} | {m:.4f} | {s:.4f} |")
    print(f"| intercept | {final.intercept:+.3f} | | |")


def ideal_linear(grades: list[int], k: int = 10) -> float:
    best = sorted((g for g in grades if g > 0), reverse=True)[:k]
    return sum(g / math.log2(i + 2) for i, g in enumerate(best))


def query_weights(data: dict, mask: np.ndarray) -> np.ndarray:
    """Each query weighs the same in the fit, whatever its candidate count; both
    datasets weigh by their query counts."""
    q = data["qof"][mask]
    counts = np.bincount(q, minlength=len(data["qids"]))
    return counts[counts > 0].mean() / counts[q]


def fold_models(sets: dict, names: tuple[str, ...], l2: float, folds: int) -> list[RelevanceModel]:
    """Model k is fitted on every query outside fold k, of every dataset."""
    models = []
    for k in range(folds):
        train_x = {
            f: np.concatenate([d["feats"][f][d["fold"][d["qof"]] != k] for d in sets.values()])
            for f in names
        }
        train_y = np.concatenate([d["y"][d["fold"][d["qof"]] != k] for d in sets.values()])
        train_w = np.concatenate(
            [query_weights(d, d["fold"][d["qof"]] != k) for d in sets.values()]
        )
        models.append(RelevanceModel.fit(train_x, train_y, names, l2=l2, weights=train_w))
    return models


def oof_decision(data: dict, models: list[RelevanceModel], names: tuple[str, ...]) -> np.ndarray:
    """Each candidate's log-odds under the model that did not see its query."""
    z = np.zeros(len(data["y"]))
    for k, model in enumerate(models):
        held = data["fold"][data["qof"]] == k
        z[held] = model.decision_function({f: data["feats"][f][held] for f in names})
    return z


def platt_data(sets: dict, mask_of: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    zs, ys, ws = [], [], []
    for d in sets.values():
        m = mask_of(d)  # type: ignore[operator]
        zs.append(d["z"][m])
        ys.append(d["y"][m])
        ws.append(query_weights(d, m))
    return np.concatenate(zs), np.concatenate(ys), np.concatenate(ws)


def platt(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(a, b) of ``sigmoid(a z + b)`` fitted to the labels (unpenalised)."""
    coef, intercept = fit_logistic(z[:, None], y, l2=0.0, weights=w)
    return float(coef[0]), intercept


def rescale(model: RelevanceModel, a: float, b: float) -> RelevanceModel:
    """The same model with log-odds ``a z + b``."""
    return RelevanceModel(
        model.features, model.mean, model.scale, model.coef * a, model.intercept * a + b
    )


def _sigmoid_np(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def no_answer_check(
    sets: dict,
    names: tuple[str, ...],
    models: list[RelevanceModel],
    rng: np.random.Generator,
) -> None:
    print("\nno-answer check: relevant candidates deleted from a random half of the queries")
    print(
        "| dataset | queries with / without a relevant candidate | AUC (learned max p) "
        "| AUC (CE max logit) | refusal recall | false refusals | floor |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, d in sets.items():
        n_q = len(d["qids"])
        emptied = rng.permutation(n_q) < n_q // 2
        keep = ~(emptied[d["query"]] & (d["label"] > 0))
        maxp = np.full(n_q, np.nan)
        maxce = np.full(n_q, np.nan)
        has = np.zeros(n_q, bool)
        for k, model in enumerate(models):
            # the model of fold k never saw these queries
            for qi in np.nonzero(d["fold"] == k)[0]:
                rows = d["rows"][qi]
                rows = rows[keep[rows]]
                if len(rows) == 0:
                    maxp[qi] = 0.0
                    maxce[qi] = -np.inf
                    continue
                f = candidate_features(
                    ce_logit=d["ce_logit"][rows],
                    bm25_score=d["bm25_score"][rows],
                    bm25_rank=d["bm25_rank"][rows],
                    dense_score=d["dense_score"][rows],
                    dense_rank=d["dense_rank"][rows],
                    fused_rank=d["fused_rank"][rows],
                    fused_score=d["fused_score"][rows],
                    leg_depth=int(d["leg_depth"]),
                )
                maxp[qi] = model.predict_proba(f).max()
                maxce[qi] = d["ce_logit"][rows].max()
                has[qi] = bool((d["label"][rows] > 0).any())
        a = auc(maxp[has], maxp[~has])
        a_ce = auc(maxce[has], maxce[~has])
        # floor chosen on one half of the queries, measured on the other, then swapped
        half = rng.permutation(n_q) % 2
        refused_no, n_no, refused_yes, n_yes, floors = 0, 0, 0, 0, []
        for h in (0, 1):
            sel, ev = half == h, half != h
            floor = choose_floor(maxp[sel], has[sel])
            floors.append(floor)
            refused = maxp[ev] < floor
            refused_no += int(refused[~has[ev]].sum())
            n_no += int((~has[ev]).sum())
            refused_yes += int(refused[has[ev]].sum())
            n_yes += int(has[ev].sum())
        print(
            f"| {name} | {int(has.sum())} / {int((~has).sum())} | {a:.3f} | {a_ce:.3f} | "
            f"{refused_no / max(n_no, 1):.3f} | {refused_yes / max(n_yes, 1):.3f} | "
            f"{floors[0]:.3f}, {floors[1]:.3f} |"
        )


def choose_floor(maxp: np.ndarray, has: np.ndarray) -> float:
    """The floor maximising refusal recall minus false-refusal rate (Youden's J)."""
    best, best_j = 0.5, -np.inf
    for t in np.unique(maxp):
        refused = maxp < t
        j = refused[~has].mean() - refused[has].mean() if has.any() and (~has).any() else 0.0
        if j > best_j:
            best, best_j = float(t), j
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for p in (sub.add_parser("features"), sub.add_parser("fit")):
        p.add_argument("--data", type=Path, default=Path("../shared/data"))
        p.add_argument("--cache", type=Path, default=Path("build/relevance_cache"))
        p.add_argument("--train-log", type=Path, default=Path("build/cross_encoder/train_log.json"))
    f = sub.choices["features"]
    f.add_argument("--cross-encoder", type=Path, default=None)
    f.add_argument("--embedder", type=Path, required=True)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument(
        "--max-queries", type=int, default=0, help="per dataset, a seeded subset (0: all)"
    )
    f.add_argument(
        "--candidates",
        type=int,
        default=DEPTH,
        help="fused candidates kept and scored per query (CPU time is linear in it)",
    )
    f.add_argument(
        "--reuse-ce",
        type=Path,
        nargs="*",
        default=[],
        help="earlier features .npz of the SAME cross-encoder whose pair logits to reuse",
    )
    f.add_argument("--only", default="", help="only this dataset (scifact or nfcorpus)")
    g = sub.choices["fit"]
    g.add_argument("--out", type=Path, default=Path("build/relevance.json"))
    g.add_argument("--folds", type=int, default=5)
    g.add_argument(
        "--l2", default="1,10,30,100,300,1000", help="comma-separated L2 strengths to choose from"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--features", default="", help="comma-separated names (default: a documented set)"
    )
    args = parser.parse_args(argv)
    if args.command == "features":
        build_features(args)
    else:
        fit(args)


if __name__ == "__main__":
    main()
