"""What the command-line scripts share: flag types that reject bad values with a clear message,
and one place that turns a user's mistake into a one-line error instead of a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

EXIT_USER_ERROR = 2


def _parse(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _parse(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _parse(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _parse(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user asked for something impossible (bad value, missing file,
    unreachable hub): reported in one line. Anything else is a bug and keeps its traceback."""
    from .audio import AudioError

    errors: list[type[BaseException]] = [ValueError, FileNotFoundError, FileExistsError, AudioError]
    try:
        from .hub import HubUnreachableError

        errors.append(HubUnreachableError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def run(main: Callable[[], object]) -> None:
    """Run a script's main(); a user error prints `error: ...` and exits with status 2.
    Set AUDIODIFF_DEBUG=1 to see the full traceback instead."""
    try:
        main()
    except SystemExit:  # argparse's --help and usage errors: already reported
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except user_errors() as exc:
        if os.environ.get("AUDIODIFF_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
