"""Cost of tracing one query (100 candidates) against simpler ways to store it.

Budget (issue 4): tracing costs <= 5% of a query's time. Reranking 100
candidates takes about 1 s on CPU, so the budget is ~50 ms; the target here is
~1 ms per query. Same run, same 100-candidate result, a file on local disk:

* ``TraceStore.record``: one transaction, ``executemany`` (WAL, synchronous=NORMAL);
* ``row-by-row``: the same schema, one transaction, an ``execute`` per candidate;
* ``autocommit``: an ``execute`` and a commit per candidate (the careless way);
* ``jsonl``: one JSON line per query appended to a file (no schema, no query).

Also timed: ``TraceStore.arrays()`` over 1,000 traced queries (100,000 rows),
what calibration and diagnosis read. Run briefly on a shared machine::

    .venv/bin/python -m pytest benchmarks/bench_traces.py --benchmark-min-rounds=3 \\
        --benchmark-max-time=0.5 --benchmark-columns=median,rounds --benchmark-group-by=group
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from trace_fakes import make_result  # noqa: E402

from secondopinion.traces import _INSERT_CANDIDATE, _INSERT_TRACE, TraceStore  # noqa: E402

N = 100


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    scores = np.sort(rng.random(N))[::-1]
    return make_result(scores, ids=[f"doc-{i:06d}" for i in range(N)], query="what causes x?")


@pytest.mark.benchmark(group="trace one query (100 candidates)")
def test_record(benchmark, tmp_path, result):
    with TraceStore(tmp_path / "t.db") as store:
        benchmark(store.record, result, query_id="q", model_id="m", labels=None)
        assert store.arrays().score.size == N * len(store)


def _rows(result):
    from secondopinion.traces import _candidate_row

    return [_candidate_row(i, c) for i, c in enumerate(result.candidates)]


def _trace_row():
    return ("q", "what causes x?", "evidence", "m", 0.5, 0.9, N, 100.0, "{}", 0.0)


@pytest.mark.benchmark(group="trace one query (100 candidates)")
def test_row_by_row(benchmark, tmp_path, result):
    with TraceStore(tmp_path / "t.db") as store:
        conn = store._connection()

        def record() -> None:
            rows = _rows(result)
            conn.execute("BEGIN IMMEDIATE")
            trace_id = conn.execute(_INSERT_TRACE, _trace_row()).lastrowid
            for row in rows:
                conn.execute(_INSERT_CANDIDATE, (trace_id, *row))
            conn.execute("COMMIT")

        benchmark(record)


@pytest.mark.benchmark(group="trace one query (100 candidates)")
def test_autocommit(benchmark, tmp_path, result):
    with TraceStore(tmp_path / "t.db") as store:
        conn = store._connection()

        def record() -> None:
            trace_id = conn.execute(_INSERT_TRACE, _trace_row()).lastrowid
            for row in _rows(result):
                conn.execute(_INSERT_CANDIDATE, (trace_id, *row))

        benchmark(record)


@pytest.mark.benchmark(group="trace one query (100 candidates)")
def test_jsonl(benchmark, tmp_path, result):
    with open(tmp_path / "t.jsonl", "a", encoding="utf-8") as out:

        def record() -> None:
            line = {
                "query": result.query,
                "candidates": [dataclasses.asdict(c) for c in result.candidates],
            }
            out.write(json.dumps(line) + "\n")
            out.flush()

        benchmark(record)


@pytest.mark.benchmark(group="read 1,000 traced queries")
def test_arrays(benchmark, tmp_path, result):
    path = tmp_path / "t.db"
    with TraceStore(path) as store:
        for q in range(1000):
            store.record(result, query_id=f"q{q}", model_id="m")
        store.add_labels({f"q{q}": {"doc-000003": 1} for q in range(0, 1000, 2)})
        arrays = benchmark(store.arrays)
    assert arrays.score.size == 1000 * N
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
