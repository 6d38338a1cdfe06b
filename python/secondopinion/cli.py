"""Command line: ``secondopinion COMMAND ...`` (also ``python -m secondopinion``).

Results go to standard output; progress bars and logs go to standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__, runtime_version

    print(f"secondopinion {__version__}, ONNX Runtime {runtime_version()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .beir import load_beir
    from .evaluate import evaluate_stage

    dataset = load_beir(args.data, args.split)
    print(
        f"{args.data}: {len(dataset.corpus)} documents, split {args.split!r}, stage {args.stage}",
        file=sys.stderr,
    )
    report = evaluate_stage(dataset, args.stage, k=args.k)
    if args.run_out:
        with open(args.run_out, "w", encoding="utf-8") as out:
            for qid, hits in report.run.items():
                record = {
                    "query_id": qid,
                    "hits": [{"id": i, "score": s} for i, s in hits],
                }
                out.write(json.dumps(record) + "\n")
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        for key, value in report.as_json().items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"{key:>12}  {shown}")
    return 0


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

    p = sub.add_parser("demo", help="retrieval over the bundled demo corpus")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("eval", help="evaluate a stage on a BEIR-layout dataset")
    p.add_argument("--data", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--split", required=True, help="qrels split to evaluate (qrels/SPLIT.tsv)")
    p.add_argument("--stage", choices=sorted(STAGES), default="bm25")
    p.add_argument("--k", type=int, default=1000, help="retrieval depth per query (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--run-out", metavar="FILE", help="write the run, one JSON line per query")
    p.set_defaults(func=_cmd_eval)

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
