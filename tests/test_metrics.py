"""Metrics against pytrec_eval (trec_eval) on random runs without ties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secondopinion.hits import Hits
from secondopinion.metrics import Judgements, evaluate

pytrec_eval = pytest.importorskip("pytrec_eval")

N_DOCS = 300
DOC_IDS = [f"d{i}" for i in range(N_DOCS)]


def random_case(seed: int):
    """Graded qrels (with 0 and negative grades, judged documents outside the
    corpus, queries with nothing relevant) and a run with distinct scores."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.choice(N_DOCS, size=int(rng.integers(1, 30)), replace=False)
        grades = rng.choice([-1, 0, 0, 1, 1, 2, 3], size=len(judged))
        if q % 7 == 3:
            grades[:] = 0  # nothing relevant
        qrels[qid] = {DOC_IDS[d]: int(g) for d, g in zip(judged, grades, strict=True)}
        if q % 5 == 1:
            qrels[qid]["not-in-corpus"] = 2
        if q % 9 == 4:
            continue  # judged but absent from the run
        depth = int(rng.integers(0, 160))
        weight = np.ones(N_DOCS)
        weight[judged] = 40.0  # judged documents tend to rank high, as in a real run
        docs = rng.choice(N_DOCS, size=depth, replace=False, p=weight / weight.sum())
        scores = np.sort(rng.choice(10**6, size=depth, replace=False))[::-1] / 1e3
        run[qid] = (docs, scores)
    return qrels, run


def pytrec(qrels, run, measures, cut: int | None = None):
    as_dict = {
        qid: {DOC_IDS[d]: float(s) for d, s in list(zip(docs, scores, strict=True))[:cut]}
        for qid, (docs, scores) in run.items()
    }
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(as_dict)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("ndcg_k", "recall_k", "mrr_k"), [(10, 100, 10), (3, 5, 1), (50, 20, 100)])
def test_agrees_with_pytrec_eval(seed, ndcg_k, recall_k, mrr_k):
    qrels, run = random_case(seed)
    ours = evaluate(
        {qid: docs for qid, (docs, _) in run.items()},
        Judgements(qrels, DOC_IDS),
        ndcg_k=ndcg_k,
        recall_k=recall_k,
        mrr_k=mrr_k,
    )
    theirs = pytrec(qrels, run, {f"ndcg_cut.{ndcg_k}", f"recall.{recall_k}"})
    # MRR@k is trec_eval's recip_rank on the ranking cut at k.
    theirs_rr = pytrec(qrels, run, {"recip_rank"}, cut=mrr_k)
    assert set(ours.ndcg) == set(qrels)
    for qid in qrels:
        if qid not in run:  # pytrec_eval skips it; we score it 0
            assert qid not in theirs
            assert ours.ndcg[qid] == ours.recall[qid] == ours.mrr[qid] == 0.0
            continue
        assert ours.ndcg[qid] == pytest.approx(theirs[qid][f"ndcg_cut_{ndcg_k}"], abs=1e-6)
        assert ours.recall[qid] == pytest.approx(theirs[qid][f"recall_{recall_k}"], abs=1e-6)
        assert ours.mrr[qid] == pytest.approx(theirs_rr[qid]["recip_rank"], abs=1e-6)


def test_summary_is_the_mean_over_judged_queries():
    qrels, run = random_case(42)
    ours = evaluate({qid: docs for qid, (docs, _) in run.items()}, Judgements(qrels, DOC_IDS))
    summary = ours.summary()
    assert list(summary) == ["ndcg@10", "recall@100", "mrr@10"]
    assert summary["ndcg@10"] == pytest.approx(sum(ours.ndcg.values()) / len(qrels))
    assert summary["mrr@10"] == pytest.approx(sum(ours.mrr.values()) / len(qrels))


def test_by_hand():
    qrels = {"q": {"a": 2, "b": 0, "c": -1, "d": 1, "e": 3}, "empty": {"a": 0}}
    judgements = Judgements(qrels, ["a", "b", "c", "d", "e", "x"])
    result = evaluate({"q": ["c", "a", "b", "x", "d"], "other": ["a"]}, judgements, ndcg_k=5)
    dcg = 2 / math.log2(3) + 1 / math.log2(6)  # c's -1 counts as 0
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert result.ndcg["q"] == pytest.approx(dcg / ideal)
    assert result.recall["q"] == pytest.approx(2 / 3)  # a, d of a, d, e
    assert result.mrr["q"] == pytest.approx(1 / 2)
    assert result.ndcg["empty"] == result.recall["empty"] == result.mrr["empty"] == 0.0
    assert "other" not in result.ndcg  # not judged: ignored


def test_ranking_forms_agree():
    qrels, run = random_case(7)
    judgements = Judgements(qrels, DOC_IDS)
    base = evaluate({q: d for q, (d, _) in run.items()}, judgements)
    as_ids = {q: [DOC_IDS[i] for i in d] for q, (d, _) in run.items()}
    as_hits = {
        q: Hits(d.astype(np.int64), s.astype(np.float32), np.array([DOC_IDS[i] for i in d], object))
        for q, (d, s) in run.items()
    }
    as_int32 = {q: d.astype(np.int32) for q, (d, _) in run.items()}
    for other in (as_ids, as_hits, as_int32):
        result = evaluate(other, judgements)
        assert result.ndcg == base.ndcg and result.recall == base.recall and result.mrr == base.mrr
    unknown = evaluate({"q0": ["nope", "also-not"]}, judgements)
    assert unknown.ndcg["q0"] == 0.0


def test_errors():
    judgements = Judgements({"q": {"a": 1}}, ["a", "b"])
    with pytest.raises(ValueError, match=r"run\['q'\]: a document appears twice"):
        evaluate({"q": np.array([1, 0, 1])}, judgements)
    with pytest.raises(ValueError, match="ndcg_k must be a positive int"):
        evaluate({}, judgements, ndcg_k=0)
    with pytest.raises(ValueError, match="recall_k must be a positive int"):
        evaluate({}, judgements, recall_k=True)
    with pytest.raises(ValueError, match="judgements cover no query"):
        evaluate({}, Judgements({}, ["a"]))
    with pytest.raises(TypeError, match=r"run\['q'\]: an array ranking must hold int"):
        evaluate({"q": np.array([0.5, 1.5])}, judgements)
    with pytest.raises(ValueError, match="must be 1-D"):
        evaluate({"q": np.zeros((2, 2), np.int64)}, judgements)
    with pytest.raises(ValueError, match="doc_ids: document ids must be unique"):
        Judgements({}, ["a", "a"])
