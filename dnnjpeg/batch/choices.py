"""Model in the loop for batch runs (``recompress(..., rate_control=RateControl(...))``): checking the
options, the settings fingerprint, the backends' model settings, the totals and the report's plot.

The per-file work is :func:`dnnjpeg.batch.worker.process_batch` (its rate-controlled path); the
choice itself is :func:`dnnjpeg.ratecontrol.choose`.  See ``docs/recompress.md``, "Model in the loop".
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import DnnjpegError
from ..options import EncodeOptions
from ..ratecontrol import RateControl
from . import manifest as mf
from .worker import CHOICE_FIELDS, Options

if TYPE_CHECKING:  # pragma: no cover
    from ..ratecontrol import RateControl
    from .plan import Task
    from .runner import Summary

__all__ = ["RateControlTotals", "plot_choices"]


@dataclass
class RateControlTotals:
    """What the models chose (runs with ``rate_control``), over every image of the plan they chose for:
    this run's and earlier runs' (read back from the manifest).

    The images fall in three groups: ``held`` (written with the smallest rung every model reads
    like the source), ``top_rung`` (no rung held: written with the top rung) and ``kept_original``
    (a JPEG whose own bytes were kept: no smaller rung held).  ``evaluations``: model forward
    passes, summed over the images and models (references included).  ``rungs``: images per
    chosen rung, in ladder order, then ``"original"``.  ``bytes_before``/``bytes_after``: source
    and output bytes of these images.  ``choices``: one dict per image (path, status, rung, held,
    kept_original, kl, top1_kept, evaluations, src_size, dst_size), sorted by path; written to the
    JSON report, left out of :meth:`to_dict`.
    """

    models: list[str]
    criterion: dict[str, Any]
    ladder: str
    min_quality: int | None
    rung_labels: list[str]
    images: int = 0
    held: int = 0
    top_rung: int = 0
    kept_original: int = 0
    evaluations: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rungs: dict[str, int] = field(default_factory=dict)
    choices: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_options(cls, rc: RateControl) -> RateControlTotals:
        labels = list(rc.get_ladder().labels)
        return cls(
            models=list(rc.model_names),
            criterion=rc.criterion.to_dict(),
            ladder=rc.ladder,
            min_quality=rc.min_quality,
            rung_labels=labels,
            rungs=dict.fromkeys([*labels, "original"], 0),
        )

    @property
    def mean_evaluations(self) -> float:
        """Model forward passes per image (0 when no image was chosen for)."""
        return self.evaluations / self.images if self.images else 0.0

    def add(self, rec: dict[str, Any]) -> None:
        """Count one manifest record of a rate-controlled image (status ``ok`` or ``kept``)."""
        choice = {"path": rec["path"], "status": rec["status"]}
        choice.update({k: rec.get(k) for k in CHOICE_FIELDS})
        choice.update(src_size=rec.get("src_size"), dst_size=rec.get("dst_size"))
        self.choices.append(choice)
        self.images += 1
        if rec.get("kept_original"):
            self.kept_original += 1
            label = "original"
        else:
            label = str(rec.get("rung"))
            if rec.get("held"):
                self.held += 1
            else:
                self.top_rung += 1
        self.rungs[label] = self.rungs.get(label, 0) + 1
        self.evaluations += int(rec.get("evaluations") or 0)
        self.bytes_before += int(rec.get("src_size") or 0)
        self.bytes_after += int(rec.get("dst_size") or 0)

    def sort(self) -> None:
        self.choices.sort(key=lambda c: c["path"])

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "choices"}
        d["mean_evaluations"] = round(self.mean_evaluations, 4)
        return d

    def describe(self) -> str:
        """E.g. ``efficientnet_lite0, max KL 0.05 (same top-1), ladder standard``."""
        c = self.criterion
        extra = ["same top-1"] if c.get("keep_top1") else []
        if c.get("top_k"):
            extra.append(f"same top-{c['top_k']} set")
        return (
            f"{' + '.join(self.models)}, max KL {c['max_kl']:g}"
            + (f" ({', '.join(extra)})" if extra else "")
            + f", ladder {self.ladder}"
            + (f" from q{self.min_quality}" if self.min_quality is not None else "")
        )

    def format_lines(self) -> list[str]:
        """The summary's lines about the choices."""
        lines = [
            f"model in the loop: {self.describe()}",
            f"  {self.images} images: {self.held} held, {self.top_rung} with no rung holding (top rung written), "
            f"{self.kept_original} kept the original JPEG; {self.mean_evaluations:.1f} model evaluations per image",
        ]
        used = [f"{k} {n}" for k, n in self.rungs.items() if n]
        if used:
            lines.append(f"  chosen rungs: {', '.join(used)}")
        return lines


# -- the run's options -----------------------------------------------------------------------


def check_options(rc: Any, encode: EncodeOptions, *, report: Any, local: bool = True) -> None:
    """Refuse what cannot go with ``rate_control`` (in the API's words; the CLI checks first in its own).
    ``local``: the models will run on this machine (not on a Dask cluster), so a CUDA device must be here."""
    from PIL import Image


    if not isinstance(rc, RateControl):
        raise DnnjpegError(f"rate_control must be a dnnjpeg.ratecontrol.RateControl, got {type(rc).__name__}")
    try:
        lad = rc.validate().get_ladder()
    except ValueError as exc:
        raise DnnjpegError(f"rate_control: {exc}") from None
    if not (isinstance(encode.table, str) and encode.table == "standard") or encode.quality is not None:
        raise DnnjpegError(
            "table and rate_control exclude each other: with rate_control the ladder chooses each image's "
            "encoding (RateControl(ladder=...)); leave table and quality at their defaults"
        )
    given = [
        name
        for name, on in (
            ("subsampling", encode.subsampling is not None),
            ("optimize", encode.optimize),
            ("progressive", encode.progressive),
            ("trellis", encode.trellis),
        )
        if on
    ]
    if given:
        raise DnnjpegError(
            f"{', '.join(given)} cannot be combined with rate_control: its ladder decides how images are encoded "
            "(e.g. RateControl(ladder='trellis') for trellis quantization, ladder='mozjpeg' for progressive files)"
        )
    if rc.device is not None:
        import torch

        try:
            device = torch.device(rc.device)
        except (RuntimeError, ValueError) as exc:
            raise DnnjpegError(f"rate_control: device {rc.device!r} is not a torch device: {exc}") from None
        if local and device.type == "cuda" and not torch.cuda.is_available():
            raise DnnjpegError(f"rate_control: device {rc.device!r}, but torch sees no CUDA device on this machine")
    try:  # a missing encoder package (jpeglib, pyjpegli) is an error now, not once per file
        lad[0].encode(Image.new("RGB", (8, 8)))
    except ImportError as exc:
        raise DnnjpegError(f"ladder {rc.ladder!r}: {exc}") from None
    if report is not None and importlib.util.find_spec("matplotlib") is None:
        raise DnnjpegError(
            "with rate_control the report also draws the choices (a PNG beside it) with matplotlib, "
            "which is not installed: pip install matplotlib"
        )


def _model_id(m: Any) -> str:
    if isinstance(m, str):
        return m
    fp = getattr(m, "fingerprint", None)
    return f"{m.name}#{fp}" if fp else str(m.name)


def settings(opts: Options, extension: str) -> dict[str, Any]:
    """The settings that change the outputs of a rate-controlled run (its fingerprint is their hash)."""
    rc = opts.rate_control
    return {
        "rate_control": {
            "models": [_model_id(m) for m in rc.models],
            "criterion": rc.criterion.to_dict(),
            "ladder": rc.ladder,
            "min_quality": rc.min_quality,
            "rungs": list(rc.get_ladder().labels),
        },
        "strip": opts.encode.metadata != "keep",
        "keep_smaller": opts.keep_smaller,
        "extension": extension,
        "in_place": opts.in_place,
    } | ({"metadata": "strip"} if opts.encode.metadata == "strip" else {})


def previous_choices(rc: RateControl, dst_root: str, previous: list[tuple[Task, mf.Entry]]) -> RateControlTotals:
    """Totals over the images earlier runs chose for (their records are read back from the manifest)."""
    totals = RateControlTotals.for_options(rc)
    wanted = {task.rel for task, entry in previous if entry.status in ("ok", "kept")}
    for rec in mf.load_records(dst_root, wanted).values():
        if "held" in rec and rec.get("status") in ("ok", "kept"):
            totals.add(rec)
    return totals


# -- backends -------------------------------------------------------------------------------


def backend_options(
    opts: Options, backend: str, n_workers: int, batch_size: int | None, cores: int
) -> tuple[Options, str, int, int | None]:
    """Options, backend, workers and batch size of a rate-controlled run.

    Local pool: each worker process gets ``cores // workers`` torch (and codec) threads.  Models
    given as objects (not names) run in this process: the pool would pickle them into every task.
    In this process and on Dask a task holds ``rc.batch_size`` files by default (one model batch).
    """
    rc = opts.rate_control
    if backend == "process" and any(not isinstance(m, str) for m in rc.models):
        backend, n_workers = "in-process", 1
    if backend == "process":
        opts = replace(opts, torch_threads=max(1, cores // n_workers))
    elif batch_size is None:
        batch_size = rc.batch_size
    return opts, backend, n_workers, batch_size


def fork_safe(opts: Options) -> bool:
    """May the local pool fork this process?  Not for a rate-controlled run once torch is loaded here
    (a child forked after torch's OpenMP threads ran can hang in its first parallel region)."""
    return opts.rate_control is None or "torch" not in sys.modules


def _host_cores() -> tuple[str, int]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return socket.gethostname(), max(1, cores)


def dask_options(client: Any, opts: Options) -> Any:
    """What the Dask tasks get as options: each worker's torch threads are its host's cores shared by
    all worker threads of that host; options holding model objects are scattered once to every worker
    (instead of being pickled into every task)."""
    if opts.rate_control is None:
        return opts
    try:
        hosts = client.run(_host_cores)  # {address: (host, cores)}
        nthreads = client.nthreads()
        per_host: Counter[str] = Counter()
        for addr, (host, _) in hosts.items():
            per_host[host] += int(nthreads.get(addr, 1))
        threads = tuple(
            sorted((addr, max(1, cores // per_host[host])) for addr, (host, cores) in hosts.items())
        )
        opts = replace(opts, torch_threads=threads)
    except Exception:  # noqa: BLE001 - workers keep torch's own setting
        pass
    if any(not isinstance(m, str) for m in opts.rate_control.models):
        return client.scatter(opts, broadcast=True, hash=False)
    return opts


# -- report --------------------------------------------------------------------------------


def with_report(summary: Summary, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON report, with every image's choice when the run was rate-controlled."""
    totals = summary.rate_control
    if totals is not None:
        data["settings"]["table"] = data["settings"]["quality"] = None
        data["choices"] = totals.choices
    return data


def plot_path(report: str | os.PathLike[str]) -> str:
    """``FILE.png`` for ``FILE.json``: where the plot of the choices goes, beside the report."""
    root, ext = os.path.splitext(os.fspath(report))
    return (root if ext.lower() != ".png" else os.fspath(report)) + ".png"


def plot_choices(totals: RateControlTotals, path: str | os.PathLike[str]) -> None:
    """Draw the chosen rungs (held / no rung held / original kept) and the bytes saved per image
    (source minus output) into a PNG at ``path`` (matplotlib's Agg canvas; written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = os.fspath(path)
    labels = list(totals.rung_labels) + ["original"]
    groups = {g: dict.fromkeys(labels, 0) for g in ("held", "top", "original")}
    saved = []
    for c in totals.choices:
        label = "original" if c.get("kept_original") else str(c.get("rung"))
        if label not in groups["held"]:
            for g in groups.values():
                g[label] = 0
            labels.insert(len(labels) - 1, label)
        group = "original" if c.get("kept_original") else "held" if c.get("held") else "top"
        groups[group][label] += 1
        if c.get("src_size") is not None and c.get("dst_size") is not None:
            saved.append((c["src_size"] - c["dst_size"]) / 1000)
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(3, 2))
    x = list(range(len(labels)))
    bottom = [0] * len(labels)
    for group, color, legend in (
        ("held", "tab:blue", "held: the smallest rung that holds"),
        ("top", "tab:red", "no rung held: the top rung"),
        ("original", "tab:gray", "no smaller rung held: the original JPEG"),
    ):
        counts = [groups[group][k] for k in labels]
        ax1.bar(x, counts, bottom=bottom, color=color, label=legend)
        bottom = [b + n for b, n in zip(bottom, counts)]
    ax1.set_xticks(x, labels, rotation=60 if len(labels) > 12 else 0, fontsize=8)
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("chosen rung (original: the source JPEG's own bytes)")
    ax1.set_ylabel("images")
    ax1.set_title(f"chosen rungs, {totals.images} images, {totals.mean_evaluations:.1f} model evaluations per image")
    ax1.legend(fontsize=8)
    if saved:
        ax2.hist(saved, bins=max(5, min(50, int(math.sqrt(len(saved))) * 2)), color="tab:green")
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        mean = sum(saved) / len(saved)
        ax2.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.1f} kB")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("bytes saved per image (kB: source minus output)")
    ax2.set_ylabel("images")
    before, after = totals.bytes_before, totals.bytes_after
    ax2.set_title(f"{before / 1e6:.2f} MB -> {after / 1e6:.2f} MB" + (f" ({before / after:.2f}x)" if after else ""))
    fig.suptitle(f"dnnjpeg recompress, model in the loop: {totals.describe()}", fontsize=10)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
