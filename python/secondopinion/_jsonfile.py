"""Reading the JSON files the package writes and loads (model configs,
pipeline manifests), with one set of errors for every bad file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(
    path: Path, error: type[ValueError] = ValueError, *, problem: str = "not valid JSON"
) -> Any:  # noqa: ANN401 - any JSON value
    """The parsed contents of ``path``.

    Raises:
        error: naming the file, when it is not valid JSON. Besides bad JSON
            that covers bad UTF-8, an integer past Python's digit limit
            (ValueError) and nesting too deep for the parser (RecursionError;
            found by fuzzing).
        OSError: the file cannot be read.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise error(f"{path}: {problem} ({exc})") from None


def read_json_object(path: Path, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """Like :func:`read_json`, for a file that must hold a JSON object."""
    value = read_json(path, error)
    if not isinstance(value, dict):
        raise error(f"{path}: must hold a JSON object")
    return value
