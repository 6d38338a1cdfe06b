"""Turn a pytest-benchmark JSON of bench_rerank.py into a markdown table.

    python benchmarks/report_rerank.py build/bench-rerank.json [> table.md]

One row per contender × workload × precision × threads: median ms per query
(100 pairs), pairs/s over all timed queries, the ratio to the fastest of the
peers (a)-(c) and to the smart loop (d) in the same cell, padding waste (pad
tokens computed per real token), useful GFLOP/s (real tokens only) and its share
of numpy's float32 GEMM at the same thread count, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONTENDER_ORDER = [
    "ours",
    "flashrank-style",
    "fastembed-style",
    "sentence-transformers",
    "sorted-16",
]
PEERS = {"a", "b", "c"}


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _ratio(value: float, best: float | None) -> str:
    return "n/a" if not best else f"{value / best:.2f}×"


def _agreement(info: dict) -> str:
    if "max_abs_diff" not in info:
        return "reference" if info["precision"] == "fp32" else "n/a"
    if info["precision"] == "fp32":
        return f"max {info['max_abs_diff']:.1e}"
    return f"mean {info['mean_abs_diff']:.1e}"


def _modelled(info: dict) -> bool:
    """Runs before ours reported its planner's batches modelled its waste from
    its batch_tokens (greedy packing); their JSON says so."""
    return info.get("padding_waste") is not None and str(info.get("padding_source", "")).startswith(
        "modelled"
    )


def load(path: Path) -> tuple[dict, list[dict], dict[int, dict]]:
    """(run metadata, rerank extra_infos with median, gemm extra_infos by threads)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows, gemm = [], {}
    for bench in data.get("benchmarks", []):
        info = dict(bench.get("extra_info", {}))
        if info.get("kind") == "rerank":
            rows.append(info)
        elif info.get("kind") == "gemm":
            gemm[int(info["threads"])] = info
    return data, rows, gemm


def render(data: dict, rows: list[dict], gemm: dict[int, dict]) -> str:
    machine = data.get("machine_info", {})
    commit = data.get("commit_info", {})
    lines = [
        "# Cross-encoder rerank benchmark",
        "",
        f"- machine: {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"{machine.get('cpu', {}).get('count', '?')} logical CPUs, "
        f"Python {machine.get('python_version', '?')}",
        f"- run: {data.get('datetime', '?')}, commit {str(commit.get('id', '?'))[:10]}"
        + (" (dirty)" if commit.get("dirty") else ""),
    ]
    if rows:
        first = rows[0]
        lines.append(
            f"- {first['queries']} queries × {first['pairs_per_query']:.0f} pairs, "
            f"{first['repeats']} pass(es); model: all-MiniLM-L6-v2 encoder unless stated"
        )
    lines += ["", "## GEMM peak (numpy float32 2048×2048)", ""]
    lines += ["| threads | GFLOP/s (median) | GFLOP/s (best) | BLAS |", "|---:|---:|---:|---|"]
    for threads in sorted(gemm):
        g = gemm[threads]
        blas = ", ".join(
            f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}"
            for b in g.get("blas", [])
        )
        lines.append(f"| {threads} | {g['gflops_median']:.1f} | {g['gflops_best']:.1f} | {blas} |")

    lines += [
        "",
        "## Rerank",
        "",
        "× peers: pairs/s over the fastest of (a) flashrank-style, (b) fastembed-style, "
        "(c) sentence-transformers in the same workload, precision and threads; "
        "× (d): over sorted-16. % peak: useful GFLOP/s over the median float32 GEMM "
        "GFLOP/s at the same threads (int8 kernels can exceed it). Agreement: fp32 max "
        "|Δscore|, int8 mean |Δscore|, against the workload's first fp32 result.",
        "",
        "| workload | precision | threads | contender | median ms/query | pairs/s | × peers "
        "| × (d) | × own fp32 | padding waste | useful GFLOP/s | % fp32 peak | agreement |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    cells: dict[tuple, list[dict]] = {}
    for info in rows:
        cells.setdefault((info["workload"], info["precision"], info["threads"]), []).append(info)
    fp32 = {
        (i["workload"], i["threads"], i["contender"]): i["pairs_per_s"]
        for i in rows
        if i["precision"] == "fp32"
    }
    order = {name: k for k, name in enumerate(CONTENDER_ORDER)}
    for key in sorted(cells, key=lambda k: (k[0], k[1] != "fp32", k[2])):
        cell = sorted(cells[key], key=lambda i: order.get(i["contender"], len(order)))
        peer_speeds = [i["pairs_per_s"] for i in cell if i.get("baseline") in PEERS]
        best_peer = max(peer_speeds) if peer_speeds else None
        smart = next((i["pairs_per_s"] for i in cell if i.get("baseline") == "d"), None)
        peak = gemm.get(key[2], {}).get("gflops_median")
        for info in cell:
            label = info["contender"] + (f" ({info['baseline']})" if info.get("baseline") else "")
            own_fp32 = fp32.get((key[0], key[2], info["contender"]))
            waste = info.get("padding_waste")
            lines.append(
                "| "
                + " | ".join(
                    [
                        key[0],
                        key[1],
                        str(key[2]),
                        label,
                        f"{info['median_ms_per_query']:.0f}",
                        f"{info['pairs_per_s']:.1f}",
                        _ratio(info["pairs_per_s"], best_peer),
                        _ratio(info["pairs_per_s"], smart),
                        _ratio(info["pairs_per_s"], own_fp32) if key[1] != "fp32" else "",
                        _fmt(None if waste is None else 100 * waste, ".1f", "%")
                        + (" (modelled)" if _modelled(info) else ""),
                        f"{info['useful_gflops']:.1f}",
                        _fmt(None if not peak else 100 * info["useful_gflops"] / peak, ".0f", "%"),
                        _agreement(info),
                    ]
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark --benchmark-json output")
    args = parser.parse_args(argv)
    data, rows, gemm = load(args.json)
    if not rows:
        print(f"{args.json}: no bench_rerank results in it", file=sys.stderr)
        return 1
    sys.stdout.write(render(data, rows, gemm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
