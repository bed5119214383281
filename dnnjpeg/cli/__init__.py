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
import warnings
from collections.abc import Callable, Sequence

from .. import __version__
from ..advice import Fixable
from ..errors import DnnjpegError
from ..qtable import SixteenBitTableWarning
from ._flags import Deprecated

__all__ = ["build_parser", "examples_epilog", "main", "register_command"]

Configure = Callable[[argparse.ArgumentParser], None]
_REGISTRY: dict[str, tuple[str, tuple[str, ...], Configure]] = {}


def register_command(name: str, help: str, example: str | Sequence[str] = ()) -> Callable[[Configure], Configure]:
    """Register ``configure(parser)``, which adds arguments and ``parser.set_defaults(handler=fn)``.

    The handler takes the parsed ``argparse.Namespace`` and returns an exit code.  ``example``: one or
    more real command lines (``dnnjpeg NAME ...``, an optional ``  # comment`` after them) shown at the end
    of ``dnnjpeg NAME --help``; the tests parse them.
    """
    examples = (example,) if isinstance(example, str) else tuple(example)

    def deco(configure: Configure) -> Configure:
        if name in _REGISTRY:
            raise ValueError(f"command {name!r} is already registered")
        _REGISTRY[name] = (help, examples, configure)
        return configure

    return deco


def examples_epilog(examples: Sequence[str]) -> str | None:
    """The ``--help`` epilog listing ``examples`` (``None`` for none)."""
    if not examples:
        return None
    return ("example:\n" if len(examples) == 1 else "examples:\n") + "\n".join(f"  {e}" for e in examples)


def build_parser() -> argparse.ArgumentParser:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    parser = argparse.ArgumentParser(
        prog="dnnjpeg",
        description="JPEG quantization tables tuned for classification networks.",
        epilog="Every command has --help with an example; the flags they share are listed in docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"dnnjpeg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, examples, configure) in _REGISTRY.items():
        configure(sub.add_parser(name, help=help_text, description=help_text, epilog=examples_epilog(examples),
                                 formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def error_message(exc: BaseException, parser: argparse.ArgumentParser, command: str) -> str:
    """``exc``'s message in the command line's words: a :class:`~dnnjpeg.advice.Fix` for the Python
    keyword ``allow_16bit`` becomes ``--allow-16bit`` (the option of ``command`` with that ``dest``),
    and is left out when ``command`` has no such option."""
    if not isinstance(exc, Fixable) or exc.fix is None:
        return str(exc)
    return exc.message(_spell_option(_subparser(parser, command), exc.fix.option))


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command)
    return None


def _spell_option(parser: argparse.ArgumentParser | None, dest: str) -> str | None:
    """``--flag`` or ``--flag METAVAR`` of the option of ``parser`` (or of its sub-commands) storing ``dest``."""
    if parser is None:
        return None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                spelled = _spell_option(sub, dest)
                if spelled is not None:
                    return spelled
        elif action.dest == dest and action.option_strings and not isinstance(action, Deprecated):
            flag = max(action.option_strings, key=len)
            if action.nargs == 0:
                return flag
            return f"{flag} {action.metavar or dest.upper()}"
    return None


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
        with warnings.catch_warnings():
            # --allow-16bit is the user's informed choice (its help and the errors say why it is risky)
            warnings.simplefilter("ignore", SixteenBitTableWarning)
            return int(handler(args) or 0)
    except (DnnjpegError, ValueError, OSError) as exc:
        print(f"dnnjpeg {args.command}: error: {error_message(exc, parser, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dnnjpeg {args.command}: interrupted", file=sys.stderr)
        return 130
