"""Trace store: every reranked candidate of every traced query, in SQLite.

Traces are what the floor is calibrated from (``calibrate.py``) and what recall
misses are diagnosed from (``diagnose.py``). Tracing is opt-in: a pipeline
result is passed to :meth:`TraceStore.record` after the query is answered.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``; the
file is marked as ours with ``PRAGMA application_id``)::

    traces      one row per traced query: query id and text, status
                (evidence | refusal), model id, floor, best score, number of
                candidates, timings (JSON) and the rerank time, timestamp
    candidates  one row per (trace, candidate): every stage's rank and score,
                the cross-encoder logit and score, the final probability,
                truncated, kept
    labels      relevance judgements (query id, doc id, relevance), joined to
                candidates by (query id, candidate id) when read; kept apart
                so that labels can come later, and so that relevant documents
                that never became candidates are known too (recall misses)
    trace_rows  a view: one row per (query, candidate) with everything above

Ranks are 1-based; an absent rank (0 or None in the result) is stored as NULL
and read back as 0. The store uses WAL mode so that readers do not block the
writer, one connection per thread, and one transaction per recorded query.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "CandidateLike",
    "ResultLike",
    "TraceArrays",
    "TraceStore",
    "TraceStoreError",
]

#: ``PRAGMA application_id`` of a trace store: "SOTR" in ASCII.
APPLICATION_ID = 0x534F5452
SCHEMA_VERSION = 1
#: The keys of ``timings_ms`` whose sum is the second stage's time, the part that
#: grows with the number of candidates (what a larger depth costs).
RERANK_TIMING_KEYS = ("tokenize", "rerank")


class TraceStoreError(ValueError):
    """The file is not a trace store of a version this library reads."""


@runtime_checkable
class CandidateLike(Protocol):
    """One reranked candidate, as the pipeline's ``Chunk`` carries it."""

    id: str
    text: str
    score: float
    ce_logit: float
    ce_score: float
    truncated: bool
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    fused_rank: int | None
    fused_score: float | None
    kept: bool


@runtime_checkable
class ResultLike(Protocol):
    """What :meth:`TraceStore.record` reads from a pipeline result (``Evidence`` or
    ``Refusal``). Also read when present: ``status`` ("evidence" or "refusal"; else a
    result with a ``reason`` is a refusal) and ``best_score`` (else the top score)."""

    candidates: Sequence[CandidateLike]
    timings_ms: Mapping[str, float]
    floor: float
    query: str


@dataclass(frozen=True)
class TraceArrays:
    """Traces as numpy arrays, one entry per (trace, candidate), plus per-trace arrays.

    Attributes:
        trace: int64 index into the per-trace arrays for each candidate.
        doc_ids: object array of candidate ids.
        score: float64 final relevance probability (what the floor is compared to).
        ce_logit: float64 cross-encoder logit.
        kept: bool, the candidate was kept by the gate.
        bm25_rank, dense_rank, fused_rank: int64, 1-based, 0 when absent.
        label: int64 relevance; 0 for a candidate of a judged query that the
            judgements do not mention (the usual IR convention), -1 when the
            query is not judged at all.
        query_ids: object array per trace (None when the query had no id).
        queries: object array per trace, the query text.
        judged: bool per trace, the query id has judgements.
        floor: float64 per trace, the floor the query was answered with.
        refused: bool per trace.
        rerank_ms: float64 per trace (NaN when not timed).
        n_candidates: int64 per trace.
    """

    trace: np.ndarray
    doc_ids: np.ndarray
    score: np.ndarray
    ce_logit: np.ndarray
    kept: np.ndarray
    bm25_rank: np.ndarray
    dense_rank: np.ndarray
    fused_rank: np.ndarray
    label: np.ndarray
    query_ids: np.ndarray
    queries: np.ndarray
    judged: np.ndarray
    floor: np.ndarray
    refused: np.ndarray
    rerank_ms: np.ndarray
    n_candidates: np.ndarray

    @property
    def n_traces(self) -> int:
        return int(self.query_ids.shape[0])

    @property
    def labelled(self) -> bool:
        """Some trace has judgements."""
        return bool(self.judged.any())


_SCHEMA = """
CREATE TABLE traces (
    trace_id     INTEGER PRIMARY KEY,
    query_id     TEXT,
    query        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('evidence', 'refusal')),
    model_id     TEXT NOT NULL,
    floor        REAL,
    best_score   REAL,
    n_candidates INTEGER NOT NULL,
    rerank_ms    REAL,
    timings_ms   TEXT NOT NULL,
    created      REAL NOT NULL
);
CREATE INDEX traces_query_id ON traces(query_id);
CREATE TABLE candidates (
    trace_id    INTEGER NOT NULL REFERENCES traces(trace_id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    score       REAL NOT NULL,
    ce_logit    REAL,
    ce_score    REAL,
    truncated   INTEGER NOT NULL,
    bm25_rank   INTEGER,
    bm25_score  REAL,
    dense_rank  INTEGER,
    dense_score REAL,
    fused_rank  INTEGER,
    fused_score REAL,
    kept        INTEGER NOT NULL,
    PRIMARY KEY (trace_id, position)
) WITHOUT ROWID;
CREATE TABLE labels (
    query_id  TEXT NOT NULL,
    doc_id    TEXT NOT NULL,
    relevance INTEGER NOT NULL,
    PRIMARY KEY (query_id, doc_id)
) WITHOUT ROWID;
CREATE VIEW trace_rows AS
SELECT t.trace_id, t.query_id, t.query, t.status, t.model_id, t.floor, t.created,
       c.position, c.doc_id, c.score, c.ce_logit, c.ce_score, c.truncated,
       c.bm25_rank, c.bm25_score, c.dense_rank, c.dense_score,
       c.fused_rank, c.fused_score, c.kept,
       l.relevance AS label
FROM candidates c
JOIN traces t USING (trace_id)
LEFT JOIN labels l ON l.query_id = t.query_id AND l.doc_id = c.doc_id;
"""

_INSERT_TRACE = (
    "INSERT INTO traces (query_id, query, status, model_id, floor, best_score, n_candidates,"
    " rerank_ms, timings_ms, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CANDIDATE = "INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_LABEL = (
    "INSERT INTO labels (query_id, doc_id, relevance) VALUES (?, ?, ?)"
    " ON CONFLICT (query_id, doc_id) DO UPDATE SET relevance = excluded.relevance"
)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot), so that
    the store can close every thread's connection without keeping alive those of
    threads that have ended."""


class TraceStore:
    """A SQLite trace store at ``path`` (created when missing).

    Thread-safe: each thread gets its own connection; SQLite serialises the
    writers (a writer waits up to ``timeout`` seconds for another's transaction).

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: the folder of ``path`` does not exist.
        TraceStoreError: the file exists but is not a SQLite database, is a
            database of another application, or has a newer schema.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"timeout must be a number >= 0, got {timeout!r}")
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"trace store {self.path!r}: folder {parent!r} does not exist")
        self._timeout = float(timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._closed = False
        self._initialise(self._connection())

    # --- connections -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise ValueError(f"trace store {self.path!r} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE),
                # so a writer takes the write lock up front instead of failing to
                # upgrade a read lock. check_same_thread=False only so that close()
                # can close every thread's connection; each is used by one thread.
                conn = sqlite3.connect(
                    self.path,
                    timeout=self._timeout,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=_Connection,
                )
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise TraceStoreError(f"{self.path}: not a trace store ({exc})") from None
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def _initialise(self, conn: sqlite3.Connection) -> None:
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise TraceStoreError(f"{self.path}: not a trace store ({exc})") from None
        if app_id == 0 and tables == 0:
            self._create(conn)
            return
        if app_id != APPLICATION_ID:
            self.close()
            raise TraceStoreError(
                f"{self.path}: a SQLite database of another application "
                f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x}); not a trace store"
            )
        if version > SCHEMA_VERSION:
            self.close()
            raise TraceStoreError(
                f"{self.path}: trace schema version {version} is newer than this library "
                f"reads ({SCHEMA_VERSION}); upgrade secondopinion"
            )
        if version < 1:
            self.close()
            raise TraceStoreError(f"{self.path}: trace schema version {version} is not valid")
        conn.execute("PRAGMA journal_mode = WAL")

    def _create(self, conn: sqlite3.Connection) -> None:
        # WAL must be set outside a transaction; it persists in the file.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise TraceStoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
        # One script, one transaction: the schema and the marks that say it is ours.
        # Two processes creating the same file race; the loser sees "already exists".
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"PRAGMA application_id = {APPLICATION_ID};"
                + f"PRAGMA user_version = {SCHEMA_VERSION};"
                + "COMMIT;"
            )
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "already exists" not in str(exc):
                raise
            self._initialise(conn)

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        with self._lock:
            for conn in list(self._connections):
                conn.close()
            self._connections.clear()
            self._closed = True

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return str(self._connection().execute("PRAGMA journal_mode").fetchone()[0])

    # --- writing ---------------------------------------------------------------------

    def record(
        self,
        result: ResultLike,
        *,
        query_id: str | None = None,
        model_id: str,
        labels: Mapping[str, int] | None = None,
    ) -> int:
        """Store one pipeline result (all its candidates) in one transaction.

        Args:
            result: an ``Evidence`` or ``Refusal`` (anything with the attributes
                of :class:`ResultLike`).
            query_id: the query's id, needed to join labels.
            model_id: which cross-encoder scored the candidates (the floor is a
                property of a model, so calibration reads one model's traces).
            labels: judgements for this query ``{doc_id: relevance}``; needs
                ``query_id``.

        Returns:
            The trace id.
        """
        if query_id is not None and not isinstance(query_id, str):
            raise TypeError(f"query_id must be a str or None, got {type(query_id).__name__}")
        if not isinstance(model_id, str) or not model_id:
            raise TypeError(f"model_id must be a non-empty str, got {model_id!r}")
        if labels is not None and query_id is None:
            raise ValueError("labels need a query_id to be joined on")
        try:
            candidates = list(result.candidates)
            timings = dict(result.timings_ms)
            query = result.query
            floor = result.floor
        except AttributeError as exc:
            raise TypeError(
                "result must be an Evidence or Refusal "
                f"(candidates, timings_ms, floor, query): {exc}"
            ) from None
        status = getattr(result, "status", None)
        if status not in ("evidence", "refusal"):  # objects without the class attribute
            status = "refusal" if hasattr(result, "reason") else "evidence"
        rows = [_candidate_row(position, c) for position, c in enumerate(candidates)]
        best = getattr(result, "best_score", None)
        if best is None or not math.isfinite(best):
            best = max((row[2] for row in rows), default=None)
        label_rows = _label_rows({query_id: labels}) if labels is not None else []
        trace_row = (
            query_id,
            str(query),
            status,
            model_id,
            None if floor is None else float(floor),
            None if best is None else float(best),
            len(rows),
            _rerank_ms(timings),
            json.dumps({str(k): float(v) for k, v in timings.items()}),
            time.time(),
        )
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            trace_id = conn.execute(_INSERT_TRACE, trace_row).lastrowid
            conn.executemany(_INSERT_CANDIDATE, [(trace_id, *row) for row in rows])
            if label_rows:
                conn.executemany(_UPSERT_LABEL, label_rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        assert trace_id is not None
        return int(trace_id)

    def add_labels(self, qrels: Mapping[str, Mapping[str, int]]) -> int:
        """Add (or replace) judgements ``{query_id: {doc_id: relevance}}``; returns how many."""
        rows = _label_rows(qrels)
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT_LABEL, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    # --- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of traced queries."""
        return int(self._connection().execute("SELECT count(*) FROM traces").fetchone()[0])

    def model_ids(self) -> list[str]:
        rows = self._connection().execute("SELECT DISTINCT model_id FROM traces ORDER BY 1")
        return [r[0] for r in rows]

    def labels(self) -> dict[str, dict[str, int]]:
        """All judgements, as qrels ``{query_id: {doc_id: relevance}}``."""
        qrels: dict[str, dict[str, int]] = {}
        rows = self._connection().execute("SELECT query_id, doc_id, relevance FROM labels")
        for qid, doc_id, rel in rows:
            qrels.setdefault(qid, {})[doc_id] = int(rel)
        return qrels

    def arrays(self, model_id: str | None = None) -> TraceArrays:
        """Read the traces (of one model, or all when only one model is traced).

        Raises:
            ValueError: ``model_id`` is None but the store holds several models
                (their scores are not comparable), or no traces match.
        """
        conn = self._connection()
        if model_id is None:
            models = self.model_ids()
            if len(models) > 1:
                raise ValueError(
                    f"{self.path}: traces of {len(models)} models ({', '.join(models)}); "
                    "pass model_id= one of them"
                )
        conn.execute("BEGIN")  # one snapshot for both reads
        try:
            where, params = ("WHERE model_id = ?", (model_id,)) if model_id else ("", ())
            per_trace = conn.execute(
                "SELECT trace_id, query_id, query, status, floor, rerank_ms, n_candidates,"
                " query_id IN (SELECT query_id FROM labels)"
                f" FROM traces {where} ORDER BY trace_id",
                params,
            ).fetchall()
            # COALESCE in SQL keeps None out of the numeric columns, so that each
            # converts to numpy in one C-level pass (a Python loop per row costs 5x).
            rows = conn.execute(
                "SELECT c.trace_id, c.doc_id, c.score, COALESCE(c.ce_logit, 'nan'), c.kept,"
                " COALESCE(c.bm25_rank, 0), COALESCE(c.dense_rank, 0), COALESCE(c.fused_rank, 0),"
                " l.relevance"
                " FROM candidates c JOIN traces t USING (trace_id)"
                " LEFT JOIN labels l ON l.query_id = t.query_id AND l.doc_id = c.doc_id"
                f" {where.replace('model_id', 't.model_id')}"
                " ORDER BY c.trace_id, c.position",
                params,
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        if not per_trace:
            which = f" of model {model_id!r}" if model_id else ""
            raise ValueError(f"{self.path}: no traces{which}")
        trace_ids = np.array([r[0] for r in per_trace], dtype=np.int64)  # ascending
        columns = list(zip(*rows, strict=True)) if rows else [()] * 9

        def column(i: int, dtype: type) -> np.ndarray:
            return np.array(columns[i], dtype=dtype)

        trace = np.searchsorted(trace_ids, column(0, np.int64))
        judged = np.array([bool(r[7]) for r in per_trace], dtype=bool)
        relevance = column(8, np.float64)  # None -> NaN: not in the judgements
        missing = np.where(judged[trace], 0, -1)
        label = np.where(np.isnan(relevance), missing, np.nan_to_num(relevance)).astype(np.int64)
        return TraceArrays(
            trace=trace,
            doc_ids=_objects(columns[1]),
            score=column(2, np.float64),
            ce_logit=column(3, np.float64),
            kept=column(4, np.int64).astype(bool),
            bm25_rank=column(5, np.int64),
            dense_rank=column(6, np.int64),
            fused_rank=column(7, np.int64),
            label=label,
            judged=judged,
            query_ids=_objects(r[1] for r in per_trace),
            queries=_objects(r[2] for r in per_trace),
            floor=np.array([math.nan if r[4] is None else r[4] for r in per_trace], np.float64),
            refused=np.array([r[3] == "refusal" for r in per_trace], dtype=bool),
            rerank_ms=np.array([math.nan if r[5] is None else r[5] for r in per_trace], np.float64),
            n_candidates=np.array([r[6] for r in per_trace], dtype=np.int64),
        )


def _objects(values: Iterable[Any]) -> np.ndarray:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _rank(value: int | None) -> int | None:
    return None if value is None or value == 0 else int(value)


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _candidate_row(position: int, c: CandidateLike) -> tuple:
    try:
        return (
            position,
            str(c.id),
            float(c.score),
            _optional_float(c.ce_logit),
            _optional_float(c.ce_score),
            int(bool(c.truncated)),
            _rank(c.bm25_rank),
            _optional_float(c.bm25_score),
            _rank(c.dense_rank),
            _optional_float(c.dense_score),
            _rank(c.fused_rank),
            _optional_float(c.fused_score),
            int(bool(c.kept)),
        )
    except AttributeError as exc:
        raise TypeError(f"candidate {position} lacks a Chunk attribute: {exc}") from None


def _rerank_ms(timings: Mapping[str, float]) -> float | None:
    parts = [float(timings[k]) for k in RERANK_TIMING_KEYS if k in timings]
    return sum(parts) if parts else None


def _label_rows(qrels: Mapping[str | None, Mapping[str, int] | None]) -> list[tuple[str, str, int]]:
    if not isinstance(qrels, Mapping):
        raise TypeError(
            "qrels must be a mapping {query_id: {doc_id: relevance}}, "
            f"got {type(qrels).__name__}"
        )
    rows = []
    for qid, judged in qrels.items():
        if not isinstance(qid, str):
            raise TypeError(f"qrels: query id must be a str, got {qid!r}")
        if not isinstance(judged, Mapping):
            raise TypeError(f"qrels[{qid!r}] must be a mapping {{doc_id: relevance}}")
        for doc_id, rel in judged.items():
            if not isinstance(doc_id, str):
                raise TypeError(f"qrels[{qid!r}]: doc id must be a str, got {doc_id!r}")
            if isinstance(rel, bool) or not isinstance(rel, (int, np.integer)):
                raise TypeError(
                    f"qrels[{qid!r}][{doc_id!r}]: relevance must be an int, got {rel!r}"
                )
            rows.append((qid, doc_id, int(rel)))
    return rows
