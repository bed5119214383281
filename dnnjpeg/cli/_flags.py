"""The flags the ``dnnjpeg`` commands share: one spelling, one default and one help text per concept.

Every command builds its common flags here (the vocabulary is tabulated in ``docs/cli.md``):

* ``--workers N`` always counts *processes*; ``--jpeg-threads N`` the JPEG encoding threads.
* ``--seed N`` seeds the search; ``--fold-seed N`` the class-to-fold assignment; ``--bootstrap-seed N``
  the bootstrap.
* ``-o/--out PATH`` is where a command writes its result (a file, or a folder for several files);
  ``--report DIR`` a folder of human-readable report files; ``--report-json FILE`` a JSON report;
  ``--json`` prints one JSON object on standard output.
* ``--writer NAME`` is the encoder that writes the tables; ``--compare-encoders LIST`` the other
  encoders measured beside them.
* ``--keep-metadata/--strip-metadata``, ``--project/--no-project`` and ``--progress/--no-progress``
  are on/off pairs.

Defaults are defined once: where the library has one (a module constant or a keyword default of the
function a command calls), the flag takes it from there; help texts show it with ``%(default)s``.

Old spellings stay for one release (:func:`add_deprecated`): they store what the new flag stores and
say on stderr which flag to use instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..evaluation.curve import DEFAULT_QUALITIES as SWEEP_QUALITIES
from ..evaluation.data import PROTOCOLS
from ..evaluation.evaluate import Evaluator
from ..qtable import SUBSAMPLINGS
from ..search.family import FamilyTuneOptions
from ..search.runner import CURVE_QUALITIES
from ..search.runner import tune as search_tune
from ..validation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED

__all__ = [
    "Deprecated",
    "add_allow_16bit",
    "add_bootstrap_arguments",
    "add_compare_encoders",
    "add_deprecated",
    "add_encode_arguments",
    "add_evaluator_arguments",
    "add_fold_seed",
    "add_jpeg_threads",
    "add_json",
    "add_limit",
    "add_model",
    "add_objective",
    "add_out",
    "add_progress",
    "add_project",
    "add_quality",
    "add_qualities",
    "add_seed",
    "add_space",
    "add_table",
    "add_workers",
    "add_writer",
    "default_of",
    "parse_qualities",
    "progress_wanted",
    "qualities_text",
]

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def default_of(func: Callable[..., Any], name: str) -> Any:
    """The default of ``func``'s keyword ``name``: the library's default, which the matching flag uses.

    A function whose settings live in an options dataclass (``options: TuneOptions | None``) gives that
    dataclass's field default; a dataclass itself gives its own.
    """
    params = inspect.signature(func).parameters
    own = params.get(name)
    if own is not None and own.default is not None:
        return own.default
    options = params.get("options")
    if options is not None and not dataclasses.is_dataclass(func):
        annotation = options.annotation
        if isinstance(annotation, str):  # "TuneOptions | Mapping[str, Any] | None"
            annotation = getattr(inspect.getmodule(func), annotation.split("|")[0].strip(), None)
        if dataclasses.is_dataclass(annotation) and name in {f.name for f in dataclasses.fields(annotation)}:
            return default_of(annotation, name)  # a keyword given as None means "the options' default"
    if own is not None:
        return own.default
    raise KeyError(f"{getattr(func, '__qualname__', func)} has no setting {name!r}")


def qualities_text(qualities: Sequence[int]) -> str:
    """``(5, 10, ..., 95)`` -> ``"5:95:5"``; anything else -> ``"10,20,...,95"``; :func:`parse_qualities` reads both."""
    qs = list(qualities)
    steps = {b - a for a, b in zip(qs, qs[1:])}
    if len(qs) > 2 and len(steps) == 1 and qs[1] > qs[0]:
        return f"{qs[0]}:{qs[-1]}:{qs[1] - qs[0]}"
    return ",".join(str(q) for q in qs)


def parse_qualities(text: str) -> list[int]:
    """``"5:95:5"`` -> 5, 10, ..., 95; ``"10,50,90"`` -> [10, 50, 90]."""
    text = text.strip()
    if ":" in text:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(f"--qualities {text!r}: expected START:STOP[:STEP]")
        start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 5
        qs = list(range(start, stop + 1, step))
    else:
        qs = [int(p) for p in text.split(",") if p.strip()]
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise ValueError(f"--qualities {text!r}: qualities must be integers in 1..100")
    return qs


# -- defaults: each defined once, most of them by the library -----------------------------------------------------
#: Standard qualities a command sweeps (``curve``, ``validate``, ``crossval``): the library's standard curve.
SWEEP = qualities_text(SWEEP_QUALITIES)
#: Standard qualities of the objective's reference curve in ``tune`` (the search's own default).
TUNE_CURVE = qualities_text(CURVE_QUALITIES)
#: Members of a tuned family.
FAMILY_QUALITIES = qualities_text(default_of(FamilyTuneOptions, "qualities"))
#: Search seed (fold i of a cross-validation searches with seed + i).
SEED = default_of(search_tune, "seed")
#: Image protocol of the evaluator.
PROTOCOL = default_of(Evaluator.__init__, "protocol")
#: Encoders that write files from the command line (``compress``, ``recompress``); the evaluator takes any
#: encoder family of :mod:`dnnjpeg.encoders`.
FILE_WRITERS = ("libjpeg", "trellis")


# -- deprecated spellings -------------------------------------------------------------------------------------
class Deprecated(argparse.Action):
    """An old spelling kept for one release: it stores what the new flag stores (``const`` for a flag without
    a value) and prints ``dnnjpeg CMD: OLD is deprecated, use NEW`` on stderr.  Hidden from ``--help``."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, use: str, flag: bool = False,
                 const: Any = None, type: Any = None, metavar: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0 if flag else None, const=const, default=argparse.SUPPRESS,
                         type=type, metavar=metavar, help=argparse.SUPPRESS)
        self.use = use

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated, use {self.use}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated(parser: Parser, *old: str, use: str, dest: str, **kwargs: Any) -> None:
    """``old`` spellings of the flag ``use`` storing ``dest``: ``flag=True, const=V`` for a flag without a value."""
    parser.add_argument(*old, action=Deprecated, dest=dest, use=use, **kwargs)


def _add_pair(parser: Parser, name: str, *, dest: str, default: bool, on: str, off: str) -> None:
    """``--NAME/--no-NAME``-style pair storing ``dest``; the help of the default side says so."""
    on_flag, off_flag = name.split("/")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(on_flag, dest=dest, action="store_true", default=default,
                       help=on + (" (the default)" if default is True else ""))
    group.add_argument(off_flag, dest=dest, action="store_false",
                       help=off + (" (the default)" if default is False else ""))


# -- the model and its data ---------------------------------------------------------------------------------------
MODEL_HELP = "efficientnet_lite0|1|2, torchvision:NAME or timm:NAME"


def add_model(parser: Parser, *, repeatable: bool = False, help: str = MODEL_HELP) -> None:
    """``--model NAME`` (required), or repeatable and optional (``recompress``: the models in the loop)."""
    if repeatable:
        parser.add_argument("--model", action="append", default=[], metavar="NAME", help=help)
    else:
        parser.add_argument("--model", required=True, metavar="NAME", help=help)


def add_device(parser: Parser) -> None:
    parser.add_argument("--device", default=None, metavar="DEV",
                        help="torch device: cuda, cuda:1, cpu, ... (default: CUDA when available, else the CPU)")


def add_limit(parser: Parser, help: str = "use only the first N images") -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N", help=help)


def add_workers(parser: Parser, *, default: int | None, help: str) -> None:
    """``--workers N``: worker *processes*, in every command that has the flag."""
    parser.add_argument("--workers", type=int, default=default, metavar="N", help=f"worker processes: {help}")


def add_jpeg_threads(parser: Parser, help: str = "JPEG encoding threads (default: the usable cores)") -> None:
    parser.add_argument("--jpeg-threads", type=int, default=None, metavar="N", help=help)


def add_weights(parser: Parser) -> None:
    """``--weights PATH``: a torchvision:/timm: model's weights from a file (``dnnjpeg.evaluation.models.get(weights=...)``)."""
    parser.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="torchvision:/timm: models: load the weights from this file (a state dict or checkpoint saved with "
        "torch.save) instead of downloading them",
    )


def add_writer(parser: Parser, *, choices: Sequence[str] | None = None) -> None:
    """``--writer NAME``: the encoder that writes the tables; ``None`` (the default) is libjpeg."""
    if choices is None:
        help = ("encoder family of dnnjpeg.encoders that writes every table (e.g. trellis: what "
                "recompress --writer trellis writes; default: libjpeg); standard JPEG stays libjpeg's")
    else:
        help = ("encoder that writes the files: libjpeg (default) or trellis (mozjpeg's trellis quantization "
                "with the same table: fewer bytes, slower; baseline unless --progressive)")
    parser.add_argument("--writer", default=None, choices=choices, metavar="NAME", help=help)


def add_fold_batchnorm(parser: Parser) -> None:
    """``--no-fold-batchnorm``: the model exactly as given (see ``Evaluator(fold_batchnorm=...)``)."""
    parser.add_argument(
        "--no-fold-batchnorm",
        action="store_true",
        help="run the model exactly as given, without folding its batch norms into the convolutions "
        "(slower; bit-identical to results and journals made before dnnjpeg folded them)",
    )


def add_evaluator_arguments(parser: argparse.ArgumentParser, *, old_workers: bool = True,
                            jpeg_threads_help: str | None = None) -> None:
    """The model, the data and how they are evaluated: every command that runs an evaluator.

    ``old_workers``: also accept ``--workers`` as the deprecated spelling of ``--jpeg-threads`` (not where a
    command's ``--workers`` counts processes, as in ``tune``).
    """
    add_model(parser)
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="dataset folder (labels.csv, ImageFolder or unlabelled)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=PROTOCOL,
        help="crop224: the seed's Resize(256)+CenterCrop(224) then JPEG; native: JPEG at stored resolution, "
        "then the model's preprocessing (default: %(default)s)",
    )
    add_limit(parser)
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="inference batch size (default: 64 on CUDA, 8 on CPU)")
    if jpeg_threads_help is None:
        add_jpeg_threads(parser)
    else:
        add_jpeg_threads(parser, jpeg_threads_help)
    if old_workers:
        add_deprecated(parser, "--workers", use="--jpeg-threads", dest="jpeg_threads", type=int, metavar="N")
    add_device(parser)
    parser.add_argument("--no-pretrained", action="store_true",
                        help="torchvision:/timm: models with random weights (tests; no download)")
    add_weights(parser)
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk caches")
    add_writer(parser)
    add_fold_batchnorm(parser)


# -- tables -------------------------------------------------------------------------------------------------------
def add_table(parser: Parser, *, required: bool = True, help: str = "table family name or JSON path") -> None:
    parser.add_argument("--table", required=required, default=None, metavar="NAME", help=help)


def add_quality(parser: Parser, help: str = "family member (default: the family default)") -> None:
    parser.add_argument("--quality", type=int, default=None, metavar="Q", help=help)


def add_qualities(parser: Parser, *, default: str = SWEEP, help: str) -> None:
    """``--qualities START:STOP[:STEP]|Q,Q,...``; ``help`` should end with ``(default: %(default)s)``."""
    parser.add_argument("--qualities", default=default, metavar="LIST", help=help)


def add_allow_16bit(parser: Parser) -> None:
    """``--allow-16bit``: accept and write tables with steps above 255 (``allow_16bit=True``)."""
    parser.add_argument(
        "--allow-16bit",
        action="store_true",
        help="accept a table with steps above 255: a 16-bit (extended, non-baseline) JPEG table, which many "
        "decoders reject",
    )


def add_encode_arguments(parser: Parser, *, strip_help: str = "drop EXIF, ICC profile, XMP and comments") -> None:
    """How ``compress`` and ``recompress`` write a JPEG: subsampling, Huffman tables, progressive, the writer,
    metadata and 16-bit tables."""
    parser.add_argument("--subsampling", choices=SUBSAMPLINGS, default=None, help="override the table's subsampling")
    parser.add_argument("--optimize", action="store_true", help="optimized Huffman tables")
    parser.add_argument("--progressive", action="store_true", help="progressive JPEG (default: baseline)")
    add_writer(parser, choices=FILE_WRITERS)
    add_deprecated(parser, "--trellis", use="--writer trellis", dest="writer", flag=True, const="trellis")
    _add_pair(parser, "--keep-metadata/--strip-metadata", dest="keep_metadata", default=True,
              on="keep EXIF, ICC profile, XMP, comments and DPI", off=strip_help)
    add_deprecated(parser, "--strip", use="--strip-metadata", dest="keep_metadata", flag=True, const=False)
    add_allow_16bit(parser)


# -- outputs ------------------------------------------------------------------------------------------------------
def add_out(parser: Parser, *, required: bool, help: str, metavar: str = "FILE", old: Sequence[str] = ()) -> None:
    """``-o/--out PATH``: where the command writes its result; ``old``: deprecated spellings of it."""
    parser.add_argument("-o", "--out", required=required, default=None, metavar=metavar, help=help)
    if old:
        add_deprecated(parser, *old, use="--out", dest="out", metavar=metavar)


def add_json(parser: Parser, help: str = "print one JSON object") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_progress(parser: Parser) -> None:
    """``--progress/--no-progress``: default (``None``) is progress when stderr is a terminal."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="progress on stderr even when it is not a terminal")
    group.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress (default when stderr is not a terminal)")


def progress_wanted(args: argparse.Namespace, default: bool | None = None) -> bool:
    """``--progress``/``--no-progress`` when given, else ``default`` (else: stderr is a terminal)."""
    progress = getattr(args, "progress", None)
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() if default is None else default


# -- searches -----------------------------------------------------------------------------------------------------
class _Noted(argparse.Action):
    """Stores the value and prints ``note`` on stderr: a flag whose meaning changed in this release."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, note: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.note = note

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: note: {self.note}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_seed(parser: Parser, *, default: int = SEED, help: str = "search seed (default: %(default)s)",
             changed: str | None = None) -> None:
    """``--seed N``: the search seed; ``changed``: a note printed when it is given (its meaning changed)."""
    if changed is None:
        parser.add_argument("--seed", type=int, default=default, metavar="N", help=help)
    else:
        parser.add_argument("--seed", type=int, default=default, metavar="N", help=help, action=_Noted, note=changed)


def add_fold_seed(parser: Parser, *, default: int) -> None:
    parser.add_argument("--fold-seed", type=int, default=default, metavar="N",
                        help="seed of the class-to-fold assignment (default: %(default)s)")


def add_space(parser: Parser, *, default: str) -> None:
    parser.add_argument("--space", default=default,
                        help="search space: single (one table for Y, Cb, Cr), separate, single+subsampling, "
                        "separate+subsampling, KIND@4:4:4 (default: %(default)s)")


def add_objective(parser: Parser, *, default: str) -> None:
    parser.add_argument("--objective", default=default,
                        help="fitness (the seed's), fitness-kl, fitness-ce, size-matched:Q, target-accuracy:A, ... "
                        "(KIND[-SIGNAL][:ARG], see docs/search.md; default: %(default)s)")


def add_project(parser: Parser, *, default: bool, on: str) -> None:
    """``--project/--no-project``: scale every candidate to a size before evaluating it."""
    _add_pair(parser, "--project/--no-project", dest="project", default=default, on=on,
              off="evaluate every candidate at its own size")


# -- statistics ---------------------------------------------------------------------------------------------------
def add_bootstrap_arguments(parser: Parser, *, resamples: int = DEFAULT_RESAMPLES, confidence: bool = True,
                            seed: int = DEFAULT_SEED, old_seed: bool = True) -> None:
    """``--resamples``, ``--confidence`` and ``--bootstrap-seed``; ``old_seed``: also ``--seed``, its deprecated
    spelling (not where ``--seed`` is the search seed, as in ``crossval``)."""
    parser.add_argument("--resamples", type=int, default=resamples, metavar="N",
                        help="paired bootstrap resamples for the confidence intervals (default: %(default)s)")
    if confidence:
        parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                            help="confidence level (default: %(default)s)")
    parser.add_argument("--bootstrap-seed", type=int, default=seed, metavar="N",
                        help="bootstrap seed (default: %(default)s)")
    if old_seed:
        add_deprecated(parser, "--seed", use="--bootstrap-seed", dest="bootstrap_seed", type=int, metavar="N")


def add_compare_encoders(parser: Parser, *, default: str | None, help: str) -> None:
    """``--compare-encoders LIST``: other encoders measured beside the table (``--encoders``: deprecated)."""
    parser.add_argument("--compare-encoders", default=default, metavar="LIST", help=help)
    add_deprecated(parser, "--encoders", use="--compare-encoders", dest="compare_encoders", metavar="LIST")

