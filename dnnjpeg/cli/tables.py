"""``dnnjpeg tables`` and ``dnnjpeg tables show NAME``."""

from __future__ import annotations

import argparse
import json

from ..families import Family, find_family, load, load_family, tables
from . import examples_epilog, register_command
from ._flags import add_allow_16bit, add_json, add_quality

SHOW_EXAMPLE = "dnnjpeg tables show efficientnet_lite0 --quality 50"


@register_command("tables", help="list shipped quantization tables, or show one",
                  example=("dnnjpeg tables", SHOW_EXAMPLE))
def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tables_command", metavar="show")
    show = sub.add_parser("show", help="print one table (a family member)", epilog=examples_epilog([SHOW_EXAMPLE]),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("name", help="table family name or JSON path")
    add_quality(show)
    add_json(show, "print the table's JSON")
    add_allow_16bit(show)
    parser.set_defaults(handler=run)


def members_text(family: Family) -> str:
    """``"q30..q90"``-style span of a family's members (``"q50"`` for one member)."""
    qs = family.qualities
    return f"q{qs[0]}..q{qs[-1]}" if len(qs) > 1 else f"q{qs[0]}"


def run(args: argparse.Namespace) -> int:
    if getattr(args, "tables_command", None) != "show":
        print(f"{'family':<20} {'members':<10} {'default':<8} description")
        for name, description in tables().items():
            family = load_family(name)
            print(f"{name:<20} {members_text(family):<10} {'q' + str(family.default_quality):<8} {description}")
        return 0
    qt = load(args.name, args.quality, allow_16bit=args.allow_16bit)
    if args.json:
        print(qt.to_json(), end="")
        return 0
    title = qt.meta.get("name", args.name)
    if qt.meta.get("quality") is not None:
        title += f" (quality {qt.meta['quality']})"
    print(title)
    family = find_family(args.name, allow_16bit=args.allow_16bit)
    if family is not None:
        qs = family.qualities
        listed = members_text(family) if len(qs) > 10 else ", ".join(f"q{q}" for q in qs)
        print(f"family {family.name}: members {listed}; default member q{family.default_quality}"
              + (" (this one; --quality Q shows another)" if args.quality is None and len(qs) > 1 else ""))
    print(qt)
    provenance = qt.meta.get("provenance")
    if provenance:
        print("provenance:")
        print(json.dumps(provenance, indent=2))
    return 0
