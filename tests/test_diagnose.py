"""diagnose: known misses split by kind and leg; depth estimates; the CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trace_fakes import make_result

from secondopinion.calibrate import calibrate_floor
from secondopinion.cli import main
from secondopinion.diagnose import _fit_power_law, diagnose
from secondopinion.traces import TraceStore

QRELS = {
    "q1": {"a": 1, "b": 2, "c": 1, "z": 1, "x": 0},
    "q2": {"m": 1},
    "q4": {"a": 0},  # judged, nothing relevant: not counted
}


def record_known(store: TraceStore) -> None:
    # q1: a kept (both legs), b below the floor (BM25 only), c above the floor but
    # cut by top_n = 1 (dense only), z never a candidate; x is not relevant.
    store.record(
        make_result(
            [0.9, 0.3, 0.7, 0.2],
            ids=["a", "b", "c", "x"],
            top_n=1,
            bm25_ranks=[1, 5, None, 2],
            dense_ranks=[2, None, 3, None],
            rerank_ms=100.0,
        ),
        query_id="q1",
        model_id="m",
    )
    # q2: its one relevant document never reached the reranker.
    store.record(make_result([0.6, 0.1, 0.05], rerank_ms=60.0), query_id="q2", model_id="m")
    store.record(make_result([0.8]), query_id="q3", model_id="m")  # not judged
    store.record(make_result([0.8], ids=["a"]), query_id="q4", model_id="m")


def test_known_misses(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        record_known(store)
        d = diagnose(store, QRELS)
    assert (d.n_queries, d.n_relevant) == (2, 5)
    assert (d.kept, d.ranking_misses, d.recall_misses) == (1, 2, 2)
    assert (d.below_floor, d.cut_by_top_n) == (1, 1)
    assert d.queries_without_candidate == 1
    assert d.reached_by_leg == {"bm25 only": 1, "dense only": 1, "both": 1, "neither": 0}
    assert d.ranking_misses_by_leg == {"bm25 only": 1, "dense only": 1, "both": 0, "neither": 0}
    assert d.per_candidate_ms == pytest.approx(160.0 / 7)
    assert d.leg_depth == {"bm25": 5, "dense": 3}
    text = d.format()
    assert "recall misses" in text and "ranking misses" in text
    json.dumps(d.as_json())


def test_stored_labels_are_used_when_no_qrels_given(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        record_known(store)
        with pytest.raises(ValueError, match="judgements"):
            diagnose(store)
        store.add_labels(QRELS)
        assert diagnose(store).recall_misses == 2


def test_latest_trace_of_a_query_counts(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        store.record(make_result([0.1], ids=["a"]), query_id="q", model_id="m")
        store.record(make_result([0.9], ids=["a"]), query_id="q", model_id="m")
        d = diagnose(store, {"q": {"a": 1}})
    assert (d.n_queries, d.kept, d.ranking_misses) == (1, 1, 0)


def test_chunks_of_one_document(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        store.record(make_result([0.2, 0.9], ids=["a#0", "a#1"]), query_id="q", model_id="m")
        d = diagnose(store, {"q": {"a": 1}}, doc_id_of=lambda c: c.split("#")[0])
    assert (d.n_relevant, d.kept, d.ranking_misses, d.recall_misses) == (1, 1, 0, 0)


def test_query_ids_that_do_not_match_are_an_error(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        record_known(store)
        with pytest.raises(ValueError, match="query ids"):
            diagnose(store, {"other": {"a": 1}})


def test_power_law_fit_recovers_known_parameters():
    ranks = np.concatenate([np.full(int(round(2000 * r**-0.8)), r) for r in range(1, 201)])
    a, b = _fit_power_law(ranks, n_queries=10, depth=200)
    assert b == pytest.approx(0.8, abs=0.05)
    assert a == pytest.approx(200, rel=0.1)


def test_power_law_fit_on_poisson_samples_predicts_the_tail():
    rng = np.random.default_rng(3)
    a, b, n_queries, depth = 0.4, 1.2, 2000, 100
    r = np.arange(1, 1001)
    counts = rng.poisson(n_queries * a * r**-b)  # relevant documents found at each rank
    ranks = np.repeat(r, counts)
    fit_a, fit_b = _fit_power_law(ranks[ranks <= depth], n_queries, depth)
    predicted = fit_a * np.sum(np.arange(depth + 1, 301.0) ** -fit_b) * n_queries
    expected = n_queries * a * np.sum(np.arange(depth + 1, 301.0) ** -b)  # the true tail
    assert fit_b == pytest.approx(b, abs=0.05)
    assert predicted == pytest.approx(expected, rel=0.15)


def test_depth_estimates_are_monotone_capped_and_priced(tmp_path):
    rng = np.random.default_rng(0)
    depth = 50
    qrels = {}
    with TraceStore(tmp_path / "t.db") as store:
        for q in range(60):
            # Relevant documents spread over ranks 1..200 with a decaying density;
            # those beyond the depth are recall misses.
            ranks = np.unique(np.minimum(rng.zipf(1.6, size=4), 200))
            qrels[f"q{q}"] = {f"q{q}r{r}": 1 for r in ranks}
            ids = [f"q{q}r{r}" if r in set(ranks) else f"q{q}j{r}" for r in range(1, depth + 1)]
            scores = [0.9 if i.startswith(f"q{q}r") else 0.1 for i in ids]
            store.record(
                make_result(scores, ids=ids, rerank_ms=200.0), query_id=f"q{q}", model_id="m"
            )
        d = diagnose(store, qrels, depths=[75, 100, 250])
    assert d.depth == depth and d.recall_misses > 0
    assert [e.depth for e in d.estimates] == [75, 100, 250]
    found = [e.recovered for e in d.estimates]
    assert found == sorted(found) and found[0] > 0
    assert all(r <= d.recall_misses for r in found)
    for e in d.estimates:
        assert e.extra_rerank_ms == pytest.approx((e.depth - depth) * 200.0 / depth)


# --- CLI -------------------------------------------------------------------------------


def make_store(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "t.db"
    qrels = {}
    with TraceStore(path) as store:
        for q in range(40):
            rel = rng.random(20) < 0.1
            scores = np.where(rel, rng.uniform(0.6, 1.0, 20), rng.uniform(0.0, 0.3, 20))
            ids = [f"q{q}d{i}" for i in range(20)]
            qrels[f"q{q}"] = {ids[i]: 1 for i in np.flatnonzero(rel)} | {f"q{q}miss": 1}
            store.record(make_result(scores, ids=ids), query_id=f"q{q}", model_id="m")
    tsv = tmp_path / "qrels.tsv"
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{r}" for q, docs in qrels.items() for d, r in docs.items()]
    tsv.write_text("\n".join(lines) + "\n")
    return path, tsv, qrels


def test_cli_calibrate_plots_and_writes(tmp_path, capsys):
    db, tsv, qrels = make_store(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "secondopinion.json").write_text(
        json.dumps({"format": 1, "kind": "cross-encoder", "max_length": 512, "other": "kept"})
    )
    argv = ["calibrate", "--traces", str(db), "--qrels", str(tsv), "--target-recall", "0.9"]
    argv += ["--plot", str(tmp_path / "f.png"), "--write-to", str(model), "--json"]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    with TraceStore(db) as store:
        expected = calibrate_floor(store, target_recall=0.9)
    assert shown["floor"] == expected.floor and shown["method"] == "target-recall"
    config = json.loads((model / "secondopinion.json").read_text())
    assert config["floor"] == expected.floor and config["other"] == "kept"
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_cli_calibrate_unlabelled_text(tmp_path, capsys):
    db, _, _ = make_store(tmp_path)
    assert main(["calibrate", "--traces", str(db)]) == 0
    assert "Ashman" in capsys.readouterr().out


def test_cli_diagnose(tmp_path, capsys):
    db, tsv, qrels = make_store(tmp_path)
    assert main(["diagnose", "--traces", str(db), "--qrels", str(tsv), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["recall_misses"] == 40  # the one "miss" document of each query
    assert shown["n_relevant"] == sum(len(d) for d in qrels.values())
    assert main(["diagnose", "--traces", str(db), "--qrels", str(tsv)]) == 0
    assert "recall misses" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["diagnose", "--traces", str(tmp_path / "none.db"), "--qrels", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"junk" * 1000)
    assert main(["calibrate", "--traces", str(junk)]) == 2
    assert "not a trace store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "calibrate",
                "--traces",
                "x",
                "--target-recall",
                "0.9",
                "--target-refusal-precision",
                "0.9",
            ]
        )
