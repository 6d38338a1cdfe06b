"""TraceStore: schema, round trip, labels, concurrency, bad files and arguments."""

from __future__ import annotations

import dataclasses
import gc
import sqlite3
import threading

import numpy as np
import pytest
from trace_fakes import Chunk, Evidence, make_result

from secondopinion.traces import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    CandidateLike,
    ResultLike,
    TraceStore,
    TraceStoreError,
)


@pytest.fixture
def store(tmp_path):
    with TraceStore(tmp_path / "t.db") as s:
        yield s


def test_new_store_is_wal_marked_and_versioned(tmp_path):
    path = tmp_path / "t.db"
    TraceStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with TraceStore(path) as again:
        assert again.journal_mode == "wal"
        assert len(again) == 0


def test_fakes_satisfy_the_protocols():
    result = make_result([0.9, 0.1])
    assert isinstance(result, ResultLike)
    assert isinstance(result.candidates[0], CandidateLike)


def test_round_trip_matches_the_results(store):
    a = make_result([0.9, 0.6, 0.2], floor=0.5, bm25_ranks=[1, None, 3], dense_ranks=[0, 2, 5])
    b = make_result([0.3, 0.1], floor=0.5, rerank_ms=40.0)  # a refusal
    store.record(a, query_id="q1", model_id="m")
    store.record(b, query_id="q2", model_id="m")
    arr = store.arrays()
    assert arr.n_traces == 2 and len(store) == 2
    np.testing.assert_array_equal(arr.trace, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(arr.doc_ids, ["d0", "d1", "d2", "d0", "d1"])
    np.testing.assert_allclose(arr.score, [0.9, 0.6, 0.2, 0.3, 0.1])
    np.testing.assert_array_equal(arr.kept, [True, True, False, False, False])
    np.testing.assert_array_equal(arr.bm25_rank, [1, 0, 3, 1, 2])  # None -> 0
    np.testing.assert_array_equal(arr.dense_rank, [0, 2, 5, 0, 0])  # 0 stays absent
    np.testing.assert_array_equal(arr.fused_rank, [1, 2, 3, 1, 2])
    np.testing.assert_allclose(arr.ce_logit[:1], [np.log(0.9 / 0.1)])
    np.testing.assert_array_equal(arr.refused, [False, True])
    np.testing.assert_allclose(arr.rerank_ms, [100.0, 40.0])
    np.testing.assert_array_equal(arr.n_candidates, [3, 2])
    np.testing.assert_array_equal(arr.query_ids, ["q1", "q2"])
    np.testing.assert_array_equal(arr.label, [-1] * 5)  # nothing judged
    assert not arr.labelled


def test_status_best_score_and_timings_as_the_pipeline_sets_them(store):
    @dataclasses.dataclass(frozen=True)
    class Answer:  # like the pipeline's Evidence: a status class attribute, best_score
        candidates: list
        floor: float | None
        query: str
        timings_ms: dict
        status = "refusal"

        @property
        def best_score(self) -> float:
            return 0.25

    chunks = make_result([0.2, 0.1]).candidates
    timings = {"bm25": 1.0, "tokenize": 3.0, "rerank": 40.0, "gate": 0.1}
    store.record(Answer(chunks, None, "q", timings), query_id="q", model_id="m")
    arr = store.arrays()
    assert arr.refused.tolist() == [True]
    assert np.isnan(arr.floor[0])  # no floor
    assert arr.rerank_ms.tolist() == [43.0]  # tokenize + rerank: what grows with depth
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT best_score FROM traces").fetchone()[0] == 0.25
    conn.close()


def test_view_has_one_row_per_query_and_candidate(store, tmp_path):
    store.record(make_result([0.9, 0.2]), query_id="q1", model_id="m", labels={"d0": 2})
    conn = sqlite3.connect(tmp_path / "t.db")
    rows = conn.execute(
        "SELECT query_id, doc_id, score, kept, label, model_id, floor, created"
        " FROM trace_rows ORDER BY position"
    ).fetchall()
    conn.close()
    assert [r[:6] for r in rows] == [
        ("q1", "d0", 0.9, 1, 2, "m"),
        ("q1", "d1", 0.2, 0, None, "m"),
    ]
    assert rows[0][6] == 0.5 and rows[0][7] > 1.6e9


def test_labels_join_now_or_later(store):
    store.record(make_result([0.9, 0.2, 0.1]), query_id="q1", model_id="m", labels={"d1": 1})
    store.record(make_result([0.8, 0.7]), query_id="q2", model_id="m")
    store.record(make_result([0.4]), model_id="m")  # no query id: never judged
    arr = store.arrays()
    np.testing.assert_array_equal(arr.label, [0, 1, 0, -1, -1, -1])
    assert store.add_labels({"q2": {"d0": 0, "d1": 3, "absent": 1}, "q9": {"x": 1}}) == 4
    arr = store.arrays()
    np.testing.assert_array_equal(arr.label, [0, 1, 0, 0, 3, -1])
    np.testing.assert_array_equal(arr.judged, [True, True, False])
    store.add_labels({"q1": {"d1": 0}})  # a relabel replaces
    assert store.labels()["q1"] == {"d1": 0}
    assert store.labels()["q2"]["absent"] == 1


def test_concurrent_writes_from_8_threads(store):
    per_thread = 25
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                result = make_result([0.9, 0.5, 0.1], query=f"t{t}-{i}")
                store.record(result, query_id=f"t{t}-{i}", model_id="m", labels={"d0": 1})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    arr = store.arrays()
    assert arr.n_traces == 8 * per_thread
    assert arr.score.size == 3 * 8 * per_thread
    assert sorted(arr.query_ids) == sorted(f"t{t}-{i}" for t in range(8) for i in range(per_thread))
    # Each trace's candidates stayed together and in order.
    np.testing.assert_array_equal(np.bincount(arr.trace), [3] * arr.n_traces)
    np.testing.assert_array_equal(arr.label, np.tile([1, 0, 0], arr.n_traces))


def test_connections_of_ended_threads_are_released(store):
    def work() -> None:
        store.record(make_result([0.5]), model_id="m")

    for _ in range(20):
        th = threading.Thread(target=work)
        th.start()
        th.join()
    gc.collect()
    assert len(store) == 20
    assert len(store._connections) <= 2  # this thread's, perhaps one not yet collected


def test_several_models_need_a_model_id(store):
    store.record(make_result([0.9]), query_id="q", model_id="a")
    store.record(make_result([0.2, 0.3]), query_id="q", model_id="b")
    with pytest.raises(ValueError, match="2 models"):
        store.arrays()
    assert store.arrays("b").score.tolist() == [0.2, 0.3]
    with pytest.raises(ValueError, match="no traces of model 'c'"):
        store.arrays("c")


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(TraceStoreError, match="not a trace store"):
        TraceStore(path)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    with pytest.raises(TraceStoreError, match="another application"):
        TraceStore(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "t.db"
    TraceStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(TraceStoreError, match="newer"):
        TraceStore(path)


def test_bad_arguments(store, tmp_path):
    result = make_result([0.9])
    with pytest.raises(TypeError, match="path"):
        TraceStore(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TraceStore(tmp_path / "no" / "t.db")
    with pytest.raises(TypeError, match="model_id"):
        store.record(result, model_id="")
    with pytest.raises(TypeError, match="query_id"):
        store.record(result, query_id=5, model_id="m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels need a query_id"):
        store.record(result, model_id="m", labels={"d0": 1})
    with pytest.raises(TypeError, match="Evidence or Refusal"):
        store.record(object(), model_id="m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="relevance must be an int"):
        store.add_labels({"q": {"d": "yes"}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="qrels must be a mapping"):
        store.add_labels([("q", "d", 1)])  # type: ignore[arg-type]
    assert len(store) == 0


def test_a_failed_record_writes_nothing(store):
    good = Chunk("a", 0.9, True)
    bad = Chunk("b", "high", False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.record(Evidence([good], [good, bad], {}, 0.5, "q"), query_id="q", model_id="m")
    assert len(store) == 0
    store.record(Evidence([good], [good], {}, 0.5, "q"), query_id="q", model_id="m")
    assert np.isnan(store.arrays().rerank_ms[0])  # no rerank timing given


def test_closed_store_refuses(tmp_path):
    s = TraceStore(tmp_path / "t.db")
    s.close()
    with pytest.raises(ValueError, match="closed"):
        len(s)
