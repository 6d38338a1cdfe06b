"""Command line: ``secondopinion COMMAND ...`` (also ``python -m secondopinion``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__, runtime_version

    print(f"secondopinion {__version__}, ONNX Runtime {runtime_version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secondopinion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("version", help="print library and ONNX Runtime versions")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
