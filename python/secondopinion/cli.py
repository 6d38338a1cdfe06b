"""Command line: ``secondopinion COMMAND ...`` (also ``python -m secondopinion``).

Results go to standard output; progress bars and logs go to standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__, runtime_version

    print(f"secondopinion {__version__}, ONNX Runtime {runtime_version()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    embedder, cross_encoder = _models(args)
    return run_demo(sys.stdout, embedder=embedder, cross_encoder=cross_encoder, floor=args.floor)


def _models(args: argparse.Namespace, *, embedder: bool = True, cross_encoder: bool = True):  # noqa: ANN202
    """The models named by --embedder/--cross-encoder (None: the package's defaults)."""
    from .embed import Embedder
    from .rerank import CrossEncoder

    emb = Embedder(args.embedder) if embedder and args.embedder else None
    ce = CrossEncoder(args.cross_encoder) if cross_encoder and args.cross_encoder else None
    return emb, ce


def _cmd_eval(args: argparse.Namespace) -> int:
    from .beir import load_beir
    from .evaluate import EvalOptions, evaluate_stage

    dataset = load_beir(args.data, args.split)
    print(
        f"{args.data}: {len(dataset.corpus)} documents, split {args.split!r}, stage {args.stage}",
        file=sys.stderr,
    )
    embedder, cross_encoder = _models(
        args,
        embedder=args.stage != "bm25",
        cross_encoder=args.stage in ("rerank", "gate"),
    )
    options = EvalOptions(
        candidates=args.candidates,
        top_n=args.top_n,
        floor=args.floor,
        embedder=embedder,
        cross_encoder=cross_encoder,
        show_progress=sys.stderr.isatty(),
    )
    report = evaluate_stage(
        dataset, args.stage, k=args.k, options=options, all_queries=args.all_queries
    )
    if args.run_out:
        with open(args.run_out, "w", encoding="utf-8") as out:
            for record in report.records:
                out.write(json.dumps(record) + "\n")
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        for key, value in report.as_json().items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"{key:>12}  {shown}")
    return 0


def _read_documents(source: str) -> list[dict[str, str]] | list[str]:
    """A BEIR folder (corpus.jsonl), a .jsonl file of {"_id"|"id", "title", "text"},
    or a folder of .txt/.md files (one document each, id = relative path)."""
    import os

    from .beir import load_corpus

    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "corpus.jsonl")):
        source = os.path.join(source, "corpus.jsonl")
    if os.path.isfile(source):
        corpus = load_corpus(source)
        return [
            {"id": i, "title": t, "text": x}
            for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts, strict=True)
        ]
    if os.path.isdir(source):
        docs = []
        for folder, _, names in sorted(os.walk(source)):
            for name in sorted(names):
                if name.endswith((".txt", ".md")):
                    path = os.path.join(folder, name)
                    with open(path, encoding="utf-8") as file:
                        text = file.read()
                    docs.append({"id": os.path.relpath(path, source), "title": "", "text": text})
        if not docs:
            raise ValueError(f"{source}: no corpus.jsonl and no .txt or .md files")
        return docs
    raise FileNotFoundError(f"{source}: no such file or folder")


def _cmd_index(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline

    documents = _read_documents(args.source)
    embedder, cross_encoder = _models(args)
    start = time.perf_counter()
    pipe = Pipeline.from_corpus(
        documents, embedder=embedder, cross_encoder=cross_encoder, show_progress=True
    )
    pipe.save(args.out)
    print(
        f"indexed {len(pipe)} documents in {time.perf_counter() - start:.1f} s -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .gate import Evidence
    from .pipeline import Pipeline

    embedder, cross_encoder = _models(args)
    pipe = Pipeline.load(args.index, embedder=embedder, cross_encoder=cross_encoder)
    result = pipe.search(args.query, candidates=args.candidates, top_n=args.top_n, floor=args.floor)
    if args.json:
        from dataclasses import asdict

        payload = {k: v for k, v in vars(result).items() if k not in ("chunks", "candidates")}
        payload["status"] = result.status
        payload["chunks"] = [asdict(c) for c in result.chunks]
        best = result.best_score
        payload["best_score"] = None if math.isnan(best) else best
        print(json.dumps(payload))
        return 0
    if isinstance(result, Evidence):
        print(f"{len(result.chunks)} chunk(s) at or above the floor {result.floor:.3f}:")
        for c in result.chunks:
            print(
                f"  {c.score:.3f}  {c.id}  (bm25 #{c.bm25_rank or '-'}, dense "
                f"#{c.dense_rank or '-'}, fused #{c.fused_rank})"
            )
            snippet = " ".join(f"{c.title} {c.text}".split())[:160]
            print(f"         {snippet}")
    else:
        print(f"refused: {result.reason}")
    total = result.timings_ms.get("total", 0.0)
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings_ms.items() if k != "total")
    print(f"({total:.1f} ms: {stages})", file=sys.stderr)
    return 0


def _floor_arg(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"floor must be in [0, 1], got {text}")
    return value


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", metavar="DIR", help="embedder model folder (default: bundled)")
    p.add_argument(
        "--cross-encoder", metavar="DIR", help="cross-encoder model folder (default: bundled)"
    )


def _add_gate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--candidates", type=int, default=100, help="candidates reranked (default 100)")
    p.add_argument("--top-n", type=int, default=10, help="most chunks kept (default 10)")
    p.add_argument(
        "--floor",
        type=_floor_arg,
        default=None,
        help="relevance floor in [0, 1] (default: the model's calibrated floor, else 0.5)",
    )


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .beir import load_qrels
    from .calibrate import calibrate_floor, plot_floor, write_floor
    from .traces import TraceStore

    with TraceStore(_existing(args.traces)) as store:
        if args.qrels:
            store.add_labels(load_qrels(args.qrels))
        choice = calibrate_floor(
            store,
            target_recall=args.target_recall,
            target_refusal_precision=args.target_refusal_precision,
            model_id=args.model_id,
        )
        if args.plot:
            print(
                f"plot: {plot_floor(store, choice, args.plot, model_id=args.model_id)}",
                file=sys.stderr,
            )
    print(json.dumps(choice.as_json()) if args.json else choice.summary())
    if args.write_to:
        print(
            f"floor {choice.floor:.6g} written to {write_floor(args.write_to, choice.floor)}",
            file=sys.stderr,
        )
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .beir import load_qrels
    from .diagnose import diagnose
    from .traces import TraceStore

    traces = _existing(args.traces)
    qrels = load_qrels(args.qrels) if args.qrels else None
    with TraceStore(traces) as store:
        report = diagnose(store, qrels, model_id=args.model_id)
    print(json.dumps(report.as_json()) if args.json else report.format())
    return 0


def _existing(path: str) -> str:
    """A trace store to read must exist (TraceStore would create an empty one)."""
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--traces {path!r}: no such file")
    return path


def build_parser() -> argparse.ArgumentParser:
    from .evaluate import STAGES

    parser = argparse.ArgumentParser(prog="secondopinion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", help="print library and ONNX Runtime versions")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("demo", help="the whole pipeline over the bundled demo corpus")
    p.add_argument("--floor", type=_floor_arg, default=None, help="override the model's floor")
    _add_model_args(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("eval", help="evaluate a stage on a BEIR-layout dataset")
    p.add_argument("--data", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--split", required=True, help="qrels split to evaluate (qrels/SPLIT.tsv)")
    p.add_argument("--stage", choices=sorted(STAGES), default="bm25")
    p.add_argument("--k", type=int, default=1000, help="retrieval depth per query (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--run-out", metavar="FILE", help="write the run, one JSON line per query")
    p.add_argument(
        "--all-queries",
        action="store_true",
        help="run every query in queries.jsonl (metrics still count only judged ones)",
    )
    _add_gate_args(p)
    _add_model_args(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("index", help="index documents into a saved pipeline folder")
    p.add_argument("source", metavar="DIR_OR_FILE", help="BEIR folder, .jsonl file or text folder")
    p.add_argument("--out", required=True, metavar="PATH", help="folder to write the pipeline to")
    _add_model_args(p)
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser("search", help="search a saved pipeline")
    p.add_argument("index", metavar="PATH", help="folder written by `secondopinion index`")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_gate_args(p)
    _add_model_args(p)
    p.set_defaults(func=_cmd_search)
    p = sub.add_parser("calibrate", help="choose the relevance floor from traces")
    p.add_argument("--traces", required=True, metavar="DB", help="trace store (SQLite)")
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--target-recall", type=float, metavar="R", help="keep this share of relevant candidates"
    )
    target.add_argument(
        "--target-refusal-precision", type=float, metavar="P", help="refusals right this often"
    )
    p.add_argument(
        "--qrels", metavar="FILE", help="BEIR qrels .tsv to label the traces with (stored)"
    )
    p.add_argument("--model-id", help="which model's traces (needed when several)")
    p.add_argument(
        "--plot", metavar="OUT", help="draw the distributions and the floor (PNG, SVG, PDF)"
    )
    p.add_argument(
        "--write-to", metavar="MODEL_DIR", help="set the floor in MODEL_DIR/secondopinion.json"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("diagnose", help="split misses into recall and ranking misses")
    p.add_argument("--traces", required=True, metavar="DB", help="trace store (SQLite)")
    p.add_argument("--qrels", metavar="FILE", help="BEIR qrels .tsv (default: the store's labels)")
    p.add_argument("--model-id", help="which model's traces (needed when several)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"secondopinion {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
