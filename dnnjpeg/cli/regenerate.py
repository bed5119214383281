"""``dnnjpeg regenerate [--tables DIR] [--only NAME] [--data DIR] [--dry-run]``: rerun every shipped
family's recorded ``dnnjpeg family`` command (hours on a CPU; each search resumes from its journal)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ..errors import DnnjpegError
from . import main, register_command


@register_command("regenerate", help="rerun the recorded command of every tuned family in tables/ "
                                     "(one command for all shipped tables)",
                  example="dnnjpeg regenerate --only efficientnet_lite0 --data val/ --dry-run")
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", default="tables", metavar="DIR",
                        help="folder of family JSON files (default: %(default)s)")
    parser.add_argument("--only", action="append", default=[], help="regenerate only this family (repeatable)")
    parser.add_argument("--data", default=None, help="dataset folder to use instead of the recorded one")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.set_defaults(handler=run)


def recorded_commands(tables: Path, only: list[str] | None = None, data: str | None = None) -> dict[str, list[str] | None]:
    """Family name -> the argv (after ``dnnjpeg``) that regenerates it, writing back to its file;
    ``None`` for families that were not tuned by ``dnnjpeg family`` (e.g. tables from the literature)."""
    files = sorted(tables.glob("*.json"))
    if not files:
        raise DnnjpegError(f"{tables}: no family JSON files")
    out: dict[str, list[str] | None] = {}
    for path in files:
        if only and path.stem not in only:
            continue
        try:
            prov = json.loads(path.read_text(encoding="utf-8")).get("provenance", {})
        except (OSError, ValueError) as exc:
            raise DnnjpegError(f"{path}: cannot read: {exc}") from None
        command = prov.get("command") if prov.get("tool") == "dnnjpeg family" else None
        if not command:
            out[path.stem] = None
            continue
        argv = shlex.split(command)[1:]
        if argv[:1] != ["family"]:
            raise DnnjpegError(f"{path}: recorded command {command!r} is not a 'dnnjpeg family' command")
        for flag, value in (("--out", str(path)), ("--data", data)):
            if value is None:
                continue
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        out[path.stem] = argv
    missing = sorted(set(only or []) - set(out))
    if missing:
        raise DnnjpegError(f"no family named {', '.join(missing)} in {tables}")
    return out


def run(args: argparse.Namespace) -> int:
    commands = recorded_commands(Path(args.tables), args.only, args.data)
    status = 0
    for name, argv in commands.items():
        if argv is None:
            print(f"{name}: not tuned by dnnjpeg (figures from its source); kept as is")
            continue
        print(f"{name}: dnnjpeg {shlex.join(argv)}", flush=True)
        if not args.dry_run:
            status = max(status, main(argv))
    return status
