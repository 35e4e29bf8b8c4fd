"""What every ``python -m experiments.<script>`` entry point shares: help and argument intake."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def arguments(argv: Sequence[str] | None, doc: str | None) -> tuple[list[str], int | None]:
    """``argv`` (default ``sys.argv[1:]``) and, when no argument or ``-h``/``--help`` was given,
    the exit status after printing ``doc`` (0 for help, 2 for no argument); else None."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in ("-h", "--help"):
        return args, None
    print(doc)
    return args, 0 if args else 2
