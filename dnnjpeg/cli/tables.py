"""``dnnjpeg tables`` and ``dnnjpeg tables show NAME``."""

from __future__ import annotations

import argparse
import json

from ..families import load, load_family, tables
from . import register_command


@register_command("tables", help="list shipped quantization tables, or show one")
def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tables_command", metavar="show")
    show = sub.add_parser("show", help="print one table (a family member)")
    show.add_argument("name", help="table family name or JSON path")
    show.add_argument("--quality", type=int, default=None, help="family member (default: the family default)")
    show.add_argument("--json", action="store_true", help="print the table's JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "tables_command", None) != "show":
        for name, description in tables().items():
            family = load_family(name)
            qs = family.qualities
            span = f"q{qs[0]}..q{qs[-1]}" if len(qs) > 1 else f"q{qs[0]}"
            print(f"{name:<24} {span:<10} {description}")
        return 0
    qt = load(args.name, args.quality)
    if args.json:
        print(qt.to_json(), end="")
        return 0
    title = qt.meta.get("name", args.name)
    if qt.meta.get("quality") is not None:
        title += f" (quality {qt.meta['quality']})"
    print(title)
    print(qt)
    provenance = qt.meta.get("provenance")
    if provenance:
        print("provenance:")
        print(json.dumps(provenance, indent=2))
    return 0
