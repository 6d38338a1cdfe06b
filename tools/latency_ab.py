"""Latency of two builds of secondopinion, call for call, on a shared machine.

Each build runs in its own interpreter (``--before`` and ``--after``: the
``python`` of two virtual environments); this script sends both the same calls,
one at a time, alternating, so that background load falls on both alike. Per
workload and thread count it prints the p50 of each build and the median of the
per-call ratio after/before.

Workloads over a BEIR split's judged queries: ``rerank-abstracts`` (BM25's top
``--candidates`` documents, title + text, through ``CrossEncoder.predict``),
``rerank-short`` (the same documents cut to their first sentence, at most 200
characters), ``embed-queries`` (100 random queries per call through
``Embedder.encode``) and ``embed-abstracts`` (the rerank documents as texts).

    python tools/latency_ab.py --before ../old/.venv/bin/python \\
        --after .venv/bin/python --data ../shared/data/scifact --queries 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

WORKLOADS = ("rerank-abstracts", "rerank-short", "embed-queries", "embed-abstracts")
THREADS = (1, 2)


def worker(data: str, split: str, queries: int, candidates: int) -> None:
    """Build the workloads, say "ready", then time 'workload index threads' lines."""
    import secondopinion as so
    from secondopinion.beir import load_beir

    dataset = load_beir(data, split)
    texts = dataset.corpus.indexable_texts()
    index = so.BM25Index.build(texts, show_progress=False)
    all_queries = [text for _, text in dataset.judged_queries()]
    judged = all_queries[:queries]
    hits = [index.search(q, k=candidates).indices.tolist() for q in judged]
    rng = np.random.default_rng(0)
    work = {
        "rerank-abstracts": [[(q, texts[i]) for i in h] for q, h in zip(judged, hits, strict=True)],
        "rerank-short": [
            [(q, texts[i].split(". ")[0][:200]) for i in h]
            for q, h in zip(judged, hits, strict=True)
        ],
        "embed-queries": [
            [all_queries[j] for j in rng.choice(len(all_queries), 100, replace=False)]
            for _ in range(queries)
        ],
        "embed-abstracts": [[texts[i] for i in h] for h in hits],
    }
    rerankers = {t: so.CrossEncoder(threads=t) for t in THREADS}
    embedders = {t: so.Embedder(threads=t) for t in THREADS}

    def call(workload: str, i: int, threads: int) -> None:
        if workload.startswith("rerank"):
            rerankers[threads].predict(work[workload][i])
        else:
            embedders[threads].encode(work[workload][i])

    for workload in work:  # warm-up: each arena grows to its peak
        for t in THREADS:
            call(workload, 0, t)
    print("ready", flush=True)
    for line in sys.stdin:
        workload, i, threads = line.split()
        start = time.perf_counter()
        call(workload, int(i), int(threads))
        print((time.perf_counter() - start) * 1000, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="python of the build to compare against")
    parser.add_argument("--after", help="python of the build under test")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.data, args.split, args.queries, args.candidates)
        return 0
    if not args.before or not args.after:
        parser.error("--before and --after are required")
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    common = ["--worker", "--data", args.data, "--split", args.split]
    common += ["--queries", str(args.queries), "--candidates", str(args.candidates)]
    builds = {"before": args.before, "after": args.after}
    procs = {
        name: subprocess.Popen(
            [python, __file__, *common], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for name, python in builds.items()
    }
    for name, proc in procs.items():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            sys.exit(f"the {name} build's worker failed to start")
    samples: dict[tuple[str, int, str], list[float]] = {}
    for i in range(args.queries):
        for workload in workloads:
            for t in THREADS:
                for name, proc in procs.items():
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(f"{workload} {i} {t}\n")
                    proc.stdin.flush()
                    samples.setdefault((workload, t, name), []).append(
                        float(proc.stdout.readline())
                    )
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    report: dict[str, dict[str, float]] = {}
    for workload in workloads:
        for t in THREADS:
            before = np.array(samples[(workload, t, "before")])
            after = np.array(samples[(workload, t, "after")])
            ratio = float(np.median(after / before))
            report[f"{workload} threads={t}"] = {
                "before_p50_ms": float(np.median(before)),
                "after_p50_ms": float(np.median(after)),
                "median_after_over_before": ratio,
                "calls": len(after),
            }
            print(
                f"{workload:<17} threads={t}: p50 before {np.median(before):8.1f} ms, "
                f"after {np.median(after):8.1f} ms; median after/before {ratio:.3f}"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
