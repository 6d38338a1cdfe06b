"""Cross-encoder reranking speed: ours against the peers, same run, same model, same candidates.

Model: all-MiniLM-L6-v2's encoder with a seeded, untrained one-logit head
(exported by tools/export_onnx.py; scores are meaningless, speed is not), fp32
and a dynamic-int8 copy. Workloads: benchmarks/rerank_workloads.py. Contenders:
benchmarks/rerank_contenders.py. Every contender, at 1 and 2 threads, fp32 and
int8, reranks each query's 100 pairs once per round; one round per query.

    .venv/bin/pip install -e '.[test,bench]'   # or: pip install torch==2.13.0 ...
    SECONDOPINION_BENCH_QUERIES=2 .venv/bin/python -m pytest benchmarks/bench_rerank.py \\
        --benchmark-json=build/bench-rerank.json
    .venv/bin/python benchmarks/report_rerank.py build/bench-rerank.json

Cost: with 2 queries the whole matrix took 29 minutes on the 2-core development
machine while it was shared (load average 10-15); the default 20 queries take
roughly ten times the timed part. Peak memory stays near 6.5 GB: flashrank-style
on RAG chunks pads 100 pairs to 512 tokens, and ONNX Runtime's arena keeps that peak.

Environment: SECONDOPINION_BENCH_QUERIES (default 20), SECONDOPINION_BENCH_REPEATS
(passes over the queries, default 1), SECONDOPINION_BENCH_THREADS ("1,2"),
SECONDOPINION_BENCH_PRECISIONS ("fp32,int8"); ``-k`` selects contenders and workloads.

Each benchmark's extra_info holds what the report needs: pairs/s over all timed
queries, padding waste (pad tokens computed per real token), useful GFLOP/s
(benchmarks/encoder_flops.py, real tokens only) and agreement with the first
fp32 result of the same workload. test_gemm_peak measures numpy's float32 GEMM
in the same run, the peak the GFLOP/s are compared with.
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from encoder_flops import EncoderShape, useful_flops
from rerank_contenders import (
    Contender,
    FastembedStyle,
    FlashRankStyle,
    Ours,
    SentenceTransformersTorch,
    SortedBatches,
    ort_session,
    padding_waste,
)
from rerank_workloads import WORKLOADS, Workload, find_data_dir, load_workload


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    value = int(raw) if raw.strip() else default
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


N_QUERIES = _env_int("SECONDOPINION_BENCH_QUERIES", 20)
REPEATS = _env_int("SECONDOPINION_BENCH_REPEATS", 1)
THREADS = [int(t) for t in _env_list("SECONDOPINION_BENCH_THREADS", "1,2")]
PRECISIONS = _env_list("SECONDOPINION_BENCH_PRECISIONS", "fp32,int8")
CONTENDERS = ["ours", "flashrank-style", "fastembed-style", "sentence-transformers", "sorted-16"]
GEMM_SIZE = 2048
GEMM_ROUNDS = 10
# fp32 contenders must compute the same scores, or they are not doing the same work.
FP32_AGREEMENT = 1e-3


@dataclass(frozen=True)
class Case:
    workload: str
    precision: str
    threads: int
    contender: str

    def __str__(self) -> str:
        return f"{self.workload}-{self.precision}-t{self.threads}-{self.contender}"


# fp32 before int8 within a workload, so int8 results find their fp32 reference.
CASES = [
    Case(w, p, t, c) for w in WORKLOADS for p in PRECISIONS for t in THREADS for c in CONTENDERS
]


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
def test_gemm_peak(benchmark, threads):
    """numpy float32 matmul 2048×2048 at the same thread counts: the machine's peak."""
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    out = np.empty_like(a)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
        benchmark.pedantic(np.matmul, args=(a, b), kwargs={"out": out}, rounds=GEMM_ROUNDS)
    benchmark.group = f"gemm t{threads}"
    if benchmark.stats is None:  # --benchmark-disable
        return
    flop = 2.0 * GEMM_SIZE**3
    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture")}
        for info in threadpool_info()
        # numpy's own OpenBLAS; scipy's, loaded by the torch peers, is not the one timed
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", "")
    ]
    benchmark.extra_info.update(
        kind="gemm",
        threads=threads,
        size=GEMM_SIZE,
        gflops_median=flop / benchmark.stats.stats.median / 1e9,
        gflops_best=flop / benchmark.stats.stats.min / 1e9,
        blas=blas,
    )


@pytest.fixture(scope="session")
def workloads(bench_cache) -> Callable[[str], Workload]:
    built: dict[str, Workload] = {}

    def get(name: str) -> Workload:
        if name not in built:
            try:
                data_dir = find_data_dir()
            except FileNotFoundError as exc:
                pytest.skip(str(exc))
            built[name] = load_workload(name, N_QUERIES, bench_cache / "workloads", data_dir)
        return built[name]

    return get


@pytest.fixture(scope="session")
def real_lengths(cross_encoder_models, workloads) -> Callable[[str], list[np.ndarray]]:
    """Per query, each pair's token count after truncation, without padding."""
    from tokenizers import Tokenizer

    computed: dict[str, list[np.ndarray]] = {}

    def get(name: str) -> list[np.ndarray]:
        if name not in computed:
            workload = workloads(name)
            tokenizer = Tokenizer.from_file(str(cross_encoder_models.fp32 / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(workload.max_length)
            computed[name] = [
                np.array([len(e.ids) for e in tokenizer.encode_batch(q.pairs())])
                for q in workload.queries
            ]
        return computed[name]

    return get


@pytest.fixture(scope="session")
def contenders(cross_encoder_models):
    """Builds contenders; the peers of one cell share a session, torch models are reused.

    Only the current (precision, threads) cell's sessions are kept: an ONNX
    Runtime arena keeps its peak, about 2.5 GB after a flashrank-style call on
    RAG chunks, and four of them exhausted a 24 GB machine.
    """
    sessions: dict[tuple, object] = {}
    torch_models: dict[tuple, SentenceTransformersTorch] = {}
    ours: dict[tuple, Ours] = {}

    def get(case: Case, max_length: int) -> Contender:
        model_dir = cross_encoder_models.onnx_dir(case.precision)
        cell = (case.precision, case.threads)
        if any(key[:2] != cell for key in [*sessions, *ours]):
            sessions.clear()
            ours.clear()
            gc.collect()
        if case.contender == "ours":
            import secondopinion

            if not hasattr(secondopinion, "CrossEncoder"):
                pytest.skip(
                    "secondopinion.CrossEncoder is not in this build (the inference "
                    "branch is not merged yet)"
                )
            key = (case.precision, case.threads, max_length)
            if key not in ours:
                ours[key] = Ours(model_dir, case.threads, max_length)
            return ours[key]
        if case.contender == "sentence-transformers":
            key = (case.precision, max_length)
            if key not in torch_models:
                torch_models[key] = SentenceTransformersTorch(
                    cross_encoder_models.torch, 1, max_length, int8=case.precision == "int8"
                )
            torch_models[key].threads = case.threads
            return torch_models[key]
        key = (case.precision, case.threads)
        if key not in sessions:
            sessions[key] = ort_session(model_dir / "model.onnx", case.threads)
        kind = {
            "flashrank-style": FlashRankStyle,
            "fastembed-style": FastembedStyle,
            "sorted-16": SortedBatches,
        }[case.contender]
        return kind(sessions[key], model_dir / "tokenizer.json", max_length)

    return get


@pytest.fixture(scope="session")
def fp32_reference() -> dict[str, tuple[str, list[np.ndarray]]]:
    """Workload name -> (contender, scores per query) of its first fp32 case."""
    return {}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rerank(
    benchmark, case, workloads, real_lengths, contenders, cross_encoder_models, fp32_reference
):
    workload = workloads(case.workload)
    contender = contenders(case, workload.max_length)
    pairs = [q.pairs() for q in workload.queries]
    lengths = real_lengths(case.workload)

    contender.rerank(pairs[0])  # warm-up: arena growth, thread pools, lazy set-up
    scores: list[np.ndarray | None] = [None] * len(pairs)
    cursor = itertools.count()

    def next_query():
        return (next(cursor) % len(pairs),), {}

    def rerank_one(index: int) -> None:
        scores[index] = contender.rerank(pairs[index])

    benchmark.group = f"rerank {case.workload} {case.precision} t{case.threads}"
    benchmark.pedantic(rerank_one, setup=next_query, rounds=len(pairs) * REPEATS)
    if benchmark.stats is None:  # --benchmark-disable
        return

    stats = benchmark.stats.stats
    timed_pairs = REPEATS * sum(len(p) for p in pairs)
    shape = EncoderShape.from_config(cross_encoder_models.torch / "config.json")
    flop = REPEATS * sum(useful_flops(n, shape) for n in lengths)
    real = sum(int(n.sum()) for n in lengths)
    plans = [contender.batch_plan(n) for n in lengths]
    padded = None if None in plans else sum(r * t for plan in plans for r, t in plan)
    info = dict(
        kind="rerank",
        contender=case.contender,
        baseline=contender.baseline,
        workload=case.workload,
        precision=case.precision,
        threads=case.threads,
        max_length=workload.max_length,
        queries=len(pairs),
        repeats=REPEATS,
        pairs_per_query=float(np.mean([len(p) for p in pairs])),
        truncated_fraction=float(np.mean(np.concatenate(lengths) >= workload.max_length)),
        pairs_per_s=timed_pairs / stats.total,
        median_ms_per_query=stats.median * 1e3,
        real_tokens=real,
        padded_tokens=padded,
        padding_waste=None if padded is None else (padded - real) / real,
        padding_source="batch plan",
        useful_gflops=flop / stats.total / 1e9,
    )
    if padded is not None:
        # Cross-check: the summed plan equals the per-query waste formula.
        assert np.isclose(
            padded - real,
            sum(padding_waste(p, n) * n.sum() for p, n in zip(plans, lengths, strict=True)),
        )

    reference = fp32_reference.get(case.workload)
    if reference is None and case.precision == "fp32":
        fp32_reference[case.workload] = (str(case), list(scores))
    elif reference is not None:
        diff = np.abs(np.concatenate(scores) - np.concatenate(reference[1]))
        info.update(
            reference=reference[0], max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean())
        )
    benchmark.extra_info.update(info)
    if reference is not None and case.precision == "fp32":
        assert info["max_abs_diff"] <= FP32_AGREEMENT, (
            f"{case} scores differ from {reference[0]} by {info['max_abs_diff']:.3g}: "
            "the contenders are not computing the same thing"
        )
