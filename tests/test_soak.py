"""Soak: eight threads share one Pipeline for thousands of mixed searches.

Skipped unless ``SECONDOPINION_SOAK_CALLS`` is set: ``make soak`` runs 10,000
calls, CI runs ``make soak SOAK_CALLS=500``. It uses the shipped models over
the shipped demo corpus plus passages recombined from its sentences (a corpus
big enough for a real HNSW graph and BM25 postings), and checks the promise in
:class:`~secondopinion.pipeline.Pipeline`'s docstring: one pipeline serves any
number of threads at once.

* Every concurrent result equals the single-threaded result of the same job:
  type, floor, best score, reason, and every candidate's id, text, scores,
  ranks and ``kept`` flag (timings aside).
* The only exceptions are the documented ones (``ValueError`` / ``TypeError``
  for an empty or non-str query or a bad argument), with the same message as
  in the single-threaded run.
* Resident memory (``VmRSS``) after the run is at most 5% above its value
  after warm-up.

Warm-up is: the single-threaded reference run (every job once), then each of
the eight threads running every job once, in its own shuffled order, all at
the same time. Only then is the baseline read. By that point every thread has
met the largest inputs (the long queries, 40 candidates), so what grows with
use rather than with time (ONNX Runtime's buffers, glibc's per-thread malloc
arenas, the tokenizers' caches) has reached its working size; growth after it
is a leak. The measured calls run on the same eight threads (new threads would
get fresh malloc arenas).
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from secondopinion.beir import load_demo_corpus, load_demo_queries
from secondopinion.gate import Evidence, Refusal
from secondopinion.pipeline import Pipeline

CALLS_ENV = "SECONDOPINION_SOAK_CALLS"
THREADS = 8
RSS_GROWTH_LIMIT = 0.05
SYNTHETIC_DOCS = 200
#: What Pipeline.search documents for bad input.
DOCUMENTED = (ValueError, TypeError)

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(
        not os.environ.get(CALLS_ENV), reason=f"soak test: set {CALLS_ENV} (make soak)"
    ),
]


@dataclass(frozen=True)
class Job:
    """One search call: the query and arguments given to Pipeline.search."""

    kind: str
    query: Any
    candidates: Any = 20
    top_n: Any = 10
    floor: Any = None
    #: The documented exception this job must raise, if any.
    raises: type[Exception] | None = None

    def run(self, pipe: Pipeline) -> Evidence | Refusal:
        return pipe.search(
            self.query, candidates=self.candidates, top_n=self.top_n, floor=self.floor
        )


def soak_calls() -> int:
    value = os.environ.get(CALLS_ENV, "")
    try:
        calls = int(value)
    except ValueError:
        raise ValueError(f"{CALLS_ENV} must be a positive integer, got {value!r}") from None
    if calls < 1:
        raise ValueError(f"{CALLS_ENV} must be a positive integer, got {value!r}")
    return calls


def rss_mib() -> float:
    """This process's resident set size, from /proc/self/status (VmRSS, kB)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def corpus() -> list[dict[str, str]]:
    """The demo corpus plus passages recombined from its sentences (fixed seed)."""
    demo = load_demo_corpus()
    documents = [
        {"id": i, "title": t, "text": x}
        for i, t, x in zip(demo.ids, demo.titles, demo.texts, strict=True)
    ]
    sentences = [s.strip() + "." for text in demo.texts for s in text.split(". ") if s.strip()]
    rng = np.random.default_rng(20240611)
    for i in range(SYNTHETIC_DOCS):
        picked = rng.choice(len(sentences), size=int(rng.integers(2, 7)), replace=False)
        text = " ".join(sentences[j] for j in picked)
        documents.append({"id": f"mix-{i:03d}", "title": " ".join(text.split()[:6]), "text": text})
    return documents


def jobs() -> list[Job]:
    """Answerable, unanswerable, odd, very long, empty and invalid searches."""
    demo = [q.query for q in load_demo_queries()]  # answerable and off-topic ones
    answerable = [
        "ibuprofen dose for children by weight",
        "aspirin and Reye's syndrome in teenagers",
        "liver damage from an acetaminophen overdose",
        "how long does naproxen work",
    ]
    unanswerable = [
        "who won the 1998 football world cup",
        "how do I reset my wifi router password",
        "best sourdough bread recipe",
        "xqzv plorb wuggle",
        "the of and to in",  # stop words only: BM25 finds nothing, dense still does
    ]
    odd = [
        "IBUPROFEN!!! dose??? ... ;;;",
        "ибупрофен доза для детей",
        "イブプロフェンの用量",
        "ibuprofen\x00dose\x01",
        "\U0001f642\U0001f642 \U0001f48a",
    ]
    long_queries = [
        demo[0] + " " + " ".join(load_demo_corpus().texts) * 4,  # ~100k characters of prose
        "dose " * 20_000,
        "\U0001f48a\u00e9\u4e2d " * 5_000,
        "x" * 100_000,  # one enormous word
    ]
    # Mostly few candidates: the cross-encoder's cost grows with them, and more
    # calls per CPU-second mean more interleavings; two jobs take 40.
    cycle = itertools.cycle(
        [(5, None, None), (8, 3, 0.0), (12, 10, 0.5), (3, 0, None), (8, 10, 1.0), (5, 5, 0.3)]
    )
    out: list[Job] = []
    for kind, queries in [("demo", demo), ("answerable", answerable),
                          ("unanswerable", unanswerable), ("odd", odd)]:  # fmt: skip
        for q in queries:
            c, t, f = next(cycle)
            out.append(Job(kind, q, c, t, f))
    out.append(Job("answerable", answerable[0], 40, 10, None))
    out.append(Job("unanswerable", unanswerable[0], 40, 10, 0.5))
    for q in long_queries:
        out.append(Job("long", q, 5, 5, None))
    for q in ["", "   ", "\n\t "]:
        out.append(Job("empty", q, raises=ValueError))
    for q in [None, 42, b"ibuprofen", ["ibuprofen"]]:
        out.append(Job("invalid", q, raises=TypeError))
    out += [
        Job("invalid", "ibuprofen", candidates=0, raises=ValueError),
        Job("invalid", "ibuprofen", floor=1.5, raises=ValueError),
        Job("invalid", "ibuprofen", floor=math.nan, raises=ValueError),
        Job("invalid", "ibuprofen", top_n=-1, raises=ValueError),
        Job("invalid", "ibuprofen", candidates="20", raises=TypeError),
    ]
    return out


def _plain(value: object) -> object:
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def outcome(job: Job, pipe: Pipeline) -> tuple:
    """What a call gives, comparable with ==: the result without timings, or the error."""
    try:
        result = job.run(pipe)
    except Exception as exc:  # noqa: BLE001 - compared with the reference run
        return ("raised", type(exc).__name__, str(exc))
    return (
        type(result).__name__,
        result.floor,
        _plain(result.best_score),
        getattr(result, "reason", None),
        result.query,
        tuple(c.id for c in result.chunks),
        tuple(tuple(_plain(v) for v in vars(c).values()) for c in result.candidates),
    )


def test_eight_threads_share_one_pipeline(capsys):
    calls = soak_calls()
    rss_start = rss_mib()
    pipe = Pipeline.from_corpus(corpus(), show_progress=False)
    work = jobs()
    rng = np.random.default_rng(7)
    schedule = rng.integers(0, len(work), size=calls)

    # Single-threaded reference, which is also the first part of the warm-up.
    reference = [outcome(job, pipe) for job in work]
    for job, ref in zip(work, reference, strict=True):
        if job.raises is None:
            assert ref[0] in ("Evidence", "Refusal"), (job.kind, repr(job.query)[:60], ref[:3])
        else:
            assert ref[:2] == ("raised", job.raises.__name__), (job.kind, repr(job.query), ref)
    kinds = Counter(ref[0] for ref in reference)
    assert kinds["Evidence"] and kinds["Refusal"], kinds

    counter = itertools.count()
    gate = threading.Barrier(THREADS + 1, timeout=3600)
    mismatches: list[list[str]] = [[] for _ in range(THREADS)]
    raised: list[Counter[str]] = [Counter() for _ in range(THREADS)]

    def check(t: int, j: int, *, measured: bool) -> None:
        got = outcome(work[j], pipe)
        if measured and got[0] == "raised":
            raised[t][got[1]] += 1
        if got != reference[j]:
            mismatches[t].append(f"job {j} ({work[j].kind}): {str(got)[:300]}")

    def worker(t: int) -> None:
        order = np.random.default_rng(t).permutation(len(work))
        try:
            for j in order:  # warm-up: every thread meets every job
                check(t, int(j), measured=False)
        finally:
            gate.wait()  # main reads the baseline
            gate.wait()
        while (i := next(counter)) < calls:
            check(t, int(schedule[i]), measured=True)

    threads = [threading.Thread(target=worker, args=(t,), name=f"soak-{t}") for t in range(THREADS)]
    for thread in threads:
        thread.start()
    gate.wait()
    gc.collect()
    rss_warm = rss_mib()
    warm_mismatches = sum(len(m) for m in mismatches)
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    gc.collect()
    rss_after = rss_mib()

    found = [m for per_thread in mismatches for m in per_thread]
    exceptions = sum(raised, Counter())
    figures = {
        "calls": calls,
        "threads": THREADS,
        "distinct_jobs": len(work),
        "warmup_calls": len(work) * (THREADS + 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_after_warmup_mib": round(rss_warm, 1),
        "rss_after_mib": round(rss_after, 1),
        "rss_growth_pct": round(100 * (rss_after / rss_warm - 1), 2),
        "mismatches": len(found),
        "mismatches_in_warmup": warm_mismatches,
        "wall_s": round(wall, 1),
        "calls_per_s": round(calls / wall, 1),
        "exceptions": dict(sorted(exceptions.items())),
    }
    with capsys.disabled():
        print("\nsoak:", json.dumps(figures))

    assert not found, f"{len(found)} results differ from the single-threaded run:\n" + "\n".join(
        found[:5]
    )
    documented = {e.__name__ for e in DOCUMENTED}
    assert set(exceptions) <= documented, exceptions
    assert rss_after <= rss_warm * (1 + RSS_GROWTH_LIMIT), figures
