"""The ``dnnjpeg`` command line, written as ``main(argv) -> exit code``.

Each sub-command lives in its own module of this package and registers itself with
:func:`register_command`; every module of this package is loaded when the parser is built.  Heavy
imports (torch, models) happen inside the command handlers, so ``dnnjpeg tables``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import DnnjpegError

__all__ = ["build_parser", "main", "register_command"]

Configure = Callable[[argparse.ArgumentParser], None]
_REGISTRY: dict[str, tuple[str, Configure]] = {}


def register_command(name: str, help: str) -> Callable[[Configure], Configure]:
    """Register ``configure(parser)``, which adds arguments and ``parser.set_defaults(handler=fn)``.

    The handler takes the parsed ``argparse.Namespace`` and returns an exit code.
    """

    def deco(configure: Configure) -> Configure:
        if name in _REGISTRY:
            raise ValueError(f"command {name!r} is already registered")
        _REGISTRY[name] = (help, configure)
        return configure

    return deco


def build_parser() -> argparse.ArgumentParser:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    parser = argparse.ArgumentParser(
        prog="dnnjpeg",
        description="JPEG quantization tables tuned for classification networks.",
    )
    parser.add_argument("--version", action="version", version=f"dnnjpeg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure) in _REGISTRY.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Exit codes: 0 success, 1 some work failed (e.g. files in a batch), 2 usage or input error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse exits on --help / usage errors
        return int(exc.code or 0)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (DnnjpegError, ValueError, OSError) as exc:
        print(f"dnnjpeg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dnnjpeg {args.command}: interrupted", file=sys.stderr)
        return 130
