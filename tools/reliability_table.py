"""Render README's Reliability table by running every bad-input case.

The cases are declared in tests/test_bad_inputs.py (``CASES``): an input and
the call that makes it. This tool runs each one and records what really
happened -- the exception's type and message, or what the call returned --
and writes that, not what the case expects, between README's markers. The
test module checks both the expectations and that README matches this output,
so the table cannot drift from the code.

Usage:
    python tools/reliability_table.py            # print the table
    python tools/reliability_table.py --write    # replace README's table
    python tools/reliability_table.py --check    # exit 1 if README differs
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CASES_FILE = ROOT / "tests" / "test_bad_inputs.py"
BEGIN = "<!-- reliability-table:begin (tools/reliability_table.py --write) -->"
END = "<!-- reliability-table:end -->"
MAX_MESSAGE = 240


@dataclass(frozen=True)
class Outcome:
    """What one case did: ``error`` is the exception type's name, or None if it returned."""

    error: str | None
    text: str  # the message, or the call's own summary of what it returned


def run_case(
    call: Callable[[Any], object], world: Any, replace: Sequence[tuple[str, str]]
) -> Outcome:  # noqa: ANN401
    """Run one case; paths that differ between machines are replaced (``replace``)."""
    try:
        result = call(world)
    except Exception as exc:  # noqa: BLE001 - recording whatever happens is the point
        return Outcome(type(exc).__name__, _normalise(str(exc), replace))
    return Outcome(None, _normalise(str(result), replace))


def _normalise(text: str, replace: Sequence[tuple[str, str]]) -> str:
    for old, new in replace:
        text = text.replace(old, new)
    # Temporary files are named after the process id (BM25Index.save).
    text = re.sub(r"\.tmp\.\d+", ".tmp.<pid>", text)
    return " ".join(text.split())


def _cell(text: str) -> str:
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    # A double-backtick code span holds the single backticks some messages
    # contain; a pipe would end the table cell, even inside code.
    return "`` " + text.replace("|", "\\|") + " ``"


def render(rows: Sequence[tuple[str, str, Outcome]]) -> str:
    """The Markdown table: one row per (area, input, outcome)."""
    lines = ["| Area | Bad input | What you get |", "|---|---|---|"]
    for area, what, outcome in rows:
        got = (
            f"`{outcome.error}`: {_cell(outcome.text)}"
            if outcome.error
            else f"no error: {_cell(outcome.text)}"
        )
        lines.append(f"| {area} | {what.replace('|', chr(92) + '|')} | {got} |")
    return "\n".join(lines) + "\n"


def load_cases_module() -> ModuleType:
    """tests/test_bad_inputs.py as a module (it is not a package)."""
    sys.path.insert(0, str(CASES_FILE.parent))
    spec = importlib.util.spec_from_file_location("test_bad_inputs", CASES_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def table(module: ModuleType, world: Any) -> str:  # noqa: ANN401 - the module's World
    """Run every case of ``module`` against ``world`` and render the table."""
    rows = [(c.area, c.what, run_case(c.call, world, world.replacements())) for c in module.CASES]
    return render(rows)


def readme_table(readme: str) -> str:
    """The table currently between README's markers."""
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the table in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's table differs")
    args = parser.parse_args(argv)
    module = load_cases_module()
    with tempfile.TemporaryDirectory() as tmp:
        rendered = table(module, module.World(Path(tmp)))
    text = README.read_text(encoding="utf-8")
    if args.write:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        README.write_text(f"{before}{BEGIN}\n{rendered}{END}{after}", encoding="utf-8")
        print(f"wrote {len(module.CASES)} rows to {README}")
    elif args.check:
        if readme_table(text) != rendered:
            print(f"{README}: the Reliability table is stale; run {__file__} --write")
            return 1
        print("README's Reliability table is current")
    else:
        print(rendered, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
