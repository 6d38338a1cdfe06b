"""Shared by the Python fuzz targets (atheris): the rule for allowed outcomes.

A target calls the library on a hostile input. It may return normally or
raise one of the documented exceptions, and then the message must name what
was wrong (the file or the argument), so the user can act on it. Anything
else -- another exception type, a message that names nothing, a crash, a
hang -- is a finding: :func:`check_error` re-raises it and atheris stops with
the input saved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable


class Finding(AssertionError):
    """An outcome the library does not document for this input."""


def check_error(
    exc: BaseException, allowed: tuple[type[BaseException], ...], names: Iterable[str]
) -> None:
    """Accept ``exc`` if it is an ``allowed`` type whose message mentions one of ``names``."""
    if not isinstance(exc, allowed):
        raise Finding(f"undocumented {type(exc).__name__}: {exc}") from exc
    message = str(exc)
    if not any(name in message for name in names):
        raise Finding(f"{type(exc).__name__} names none of {list(names)}: {message}") from exc


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with the command line's libFuzzer flags."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
