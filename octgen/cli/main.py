"""The ``octgen`` console script: a thin layer over the library.

Each subcommand lives in its own module with ``add_parser(subparsers)``, which
registers it and sets ``func``. User errors (:class:`octgen.errors.InputError`)
print one line and exit with code 2. A failing disk or file system (no space
left, read-only, quota, permission) prints one line naming the file and exits
with code 1. Either way nothing half-written is left behind because every writer
goes through :func:`octgen.export.atomic_path`.
"""
from __future__ import annotations

import argparse
import errno
import sys

from ..errors import InputError

EXIT_USAGE = 2
EXIT_IO = 1
# File-system failures reported as one line instead of a traceback.
_IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad flags in one line (exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from . import bench, decode, tokenize
    from . import eval as eval_cmd
    from . import generate, ship, train

    parser = _OneLineParser(
        prog="octgen",
        description="Generate 3D shapes and molecules with an octree autoregressive transformer. "
                    "Run 'octgen COMMAND --help' for each command.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"octgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for module in (tokenize, decode, bench, train, ship, generate, eval_cmd):
        if module is bench:
            module.add_parser(sub, argv)
        else:
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        msg = " ".join(str(e).split())
        print(f"octgen: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if e.errno not in _IO_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"octgen: error: {where}{(e.strerror or str(e)).lower()}", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        print("octgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
