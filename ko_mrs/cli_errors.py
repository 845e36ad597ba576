"""User errors and the one place each CLI turns them into a one-line message and exit code 2.

Library functions (``run()``, readers, ``ResponseSelector``) raise; only ``main()`` converts, so that
code calling ``run()`` in-process (the demo, the tests) still sees the exception and its type.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from transformers.utils import logging as transformers_logging

T = TypeVar("T")

EXIT_USAGE = 2  # argparse's exit code for bad usage; every ko-mrs CLI uses it for bad input too


class UsageError(Exception):
    """Bad input or settings the user can fix: reported in one line, never with a traceback."""


def first_line(error: BaseException) -> str:
    """The error's message on one line: multi-line library messages would break the one-line promise."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def report(prog: str, error: BaseException) -> int:
    """Print ``prog: error: ...`` on stderr and return the exit code for a user error."""
    print(f"{prog}: error: {first_line(error)}", file=sys.stderr)
    return EXIT_USAGE


def cli_main(prog: str, run: Callable[[list[str] | None], object], argv: list[str] | None) -> int:
    """Run ``run(argv)``; a :class:`UsageError` or an ``OSError`` becomes one line on stderr and exit 2.

    OSError covers what a user fixes outside the code: a missing file or model, a full disk, a read-only folder.
    """
    try:
        run(argv)
    except (UsageError, OSError) as error:
        return report(prog, error)
    return 0


def load_for_cli(load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``load(*args, **kwargs)`` for a command line tool; ``OSError`` / ``ValueError`` become a :class:`UsageError`.

    transformers' load report and progress bar go to stderr before the loader can refuse a checkpoint, so they
    would break the one-line error; a CLI that reaches a model load has nothing else to say through them.
    """
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        return load(*args, **kwargs)
    except (OSError, ValueError) as error:
        raise UsageError(first_line(error)) from error


def check_output_file(path: str | Path, option: str) -> Path:
    """Refuse an output path that cannot become a file, before any work is spent on it."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a directory")
            break
    return path
