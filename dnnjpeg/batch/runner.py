"""Running a batch: :func:`recompress` checks its arguments, plans (the files, what the manifest says is
finished), runs (local process pool or Dask backend, progress) and reports (summary, report file)."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import socket
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._settings import from_keywords
from ..errors import DnnjpegError
from ..options import EncodeOptions, TableSpec
from ..qtable import QTable
from . import choices as rcb
from . import manifest as mf
from .choices import RateControlTotals
from .plan import (
    EXTENSION_RULES,
    TMP_PREFIX,
    Collision,
    Skipped,
    Task,
    check_paths,
    display,
    parse_shard,
    walk,
)
from .worker import (
    NO_SPACE,
    NO_SPACE_ERRNOS,
    Options,
    _safe_makedirs,
    init_pool_worker,
    process_batch,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..ratecontrol import RateControl

__all__ = ["DiskFull", "RecompressOptions", "Summary", "default_workers", "recompress"]

#: Records finished work; returns False when the run must stop (the disk is full).
Emit = Callable[[list[dict[str, Any]]], bool]


class DiskFull(DnnjpegError):
    """The run stopped because a file did not fit on the disk (``ENOSPC``) or in the quota (``EDQUOT``).

    Every file finished before is in the manifest and no temporary file is left: once there
    is space, the same call resumes.  ``path``: the file being written; ``finished`` and
    ``files``: files of the plan done (by this run or earlier ones), and all of them
    (``None`` when the plan was not made yet); ``summary``: the run's summary, if it had one.
    """

    def __init__(
        self,
        path: str,
        err: int,
        finished: int | None = None,
        files: int | None = None,
        summary: Summary | None = None,
    ) -> None:
        self.path, self.errno, self.finished, self.files, self.summary = path, err, finished, files, summary
        words = "disk quota exceeded" if err != errno.ENOSPC else "no space left on device"
        done = "" if finished is None else f"; {finished} of {files} files finished"
        super().__init__(
            f"{display(path)}: {words} while writing it{done}; free space and rerun the same command to resume"
        )


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Summary:
    """Outcome of a run, over every file of the plan (this run's work and what earlier runs finished).

    ``ok``: re-encoded; ``kept``: original bytes kept; ``copied``: not an image, copied
    unchanged; ``failed``: see ``failures``; ``skipped``: left alone on purpose (symlinks out
    of SRC, special files, non-images with ``images_only``), see ``skipped_entries``.
    ``warnings``: files this run finished with a warning (e.g. a CMYK image written without
    ``trellis``, an image above Pillow's pixel limit).
    ``bytes_before``/``bytes_after`` cover ok + kept + copied files; ``image_bytes_*`` only ok + kept.
    ``rate_control``: with the model in the loop, what the models chose (``None`` otherwise).
    """

    src: str
    dst: str
    files: int = 0
    processed: int = 0  # files handled by this run
    resumed: int = 0  # files an earlier run had finished (or failed), not redone
    ok: int = 0
    kept: int = 0
    copied: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    image_bytes_before: int = 0
    image_bytes_after: int = 0
    processed_bytes: int = 0  # source bytes read by this run
    seconds: float = 0.0
    interrupted: bool = False
    backend: str = ""
    workers: int = 0
    manifest: str = ""
    bad_manifest_lines: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped_entries: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: with ``rate_control``: what the models chose (:class:`RateControlTotals`)
    rate_control: RateControlTotals | None = None

    @property
    def ratio(self) -> float:
        """Image bytes before / after (compression gained by re-encoding); 0 when nothing was encoded."""
        return self.image_bytes_before / self.image_bytes_after if self.image_bytes_after else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every file is finished, 1 when any failed (or the run was interrupted)."""
        return 1 if self.failed or self.interrupted else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.rate_control is not None:
            d["rate_control"] = self.rate_control.to_dict()
        d["ratio"] = round(self.ratio, 4)
        d["exit_code"] = self.exit_code
        return d

    def format(self, max_failures: int = 20) -> str:
        """Human-readable summary (what the CLI prints)."""
        mb = 1e6
        rate = self.processed / self.seconds if self.seconds else 0.0
        mbps = self.processed_bytes / mb / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.files} files: {self.ok} recompressed, {self.kept} kept, {self.copied} copied, "
            f"{self.failed} failed"
            + (f" ({self.resumed} handled by an earlier run)" if self.resumed else "")
            + (f"; {self.skipped} entries skipped" if self.skipped else ""),
            (
                f"this run: {self.processed} files in {self.seconds:.1f} s ({rate:.1f} files/s, {mbps:.1f} MB/s)"
                f" on {self.workers} {self.backend} worker{'s' if self.workers != 1 else ''}"
                if self.processed
                else f"this run: nothing left to do ({self.seconds:.1f} s)"
            ),
            f"images: {human_size(self.image_bytes_before)} -> {human_size(self.image_bytes_after)}"
            + (f" (ratio {self.ratio:.2f}x)" if self.image_bytes_after else ""),
            f"all files: {human_size(self.bytes_before)} -> {human_size(self.bytes_after)}",
        ]
        if self.rate_control is not None:
            lines.extend(self.rate_control.format_lines())
        if self.interrupted:
            lines.append("interrupted: rerun the same command to resume")
        if self.bad_manifest_lines:
            lines.append(f"note: ignored {self.bad_manifest_lines} incomplete manifest line(s) from an interrupted run")
        if self.failures:
            lines.append(f"failures ({self.failed}):")
            for f in self.failures[:max_failures]:
                lines.append(f"  {display(f['path'])}: {f['reason']}")
            if self.failed > max_failures:
                lines.append(f"  ... and {self.failed - max_failures} more (see the report or the manifest)")
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            for w in self.warnings[:max_failures]:
                lines.append(f"  {display(w['path'])}: {w['warning']}")
            if len(self.warnings) > max_failures:
                lines.append(f"  ... and {len(self.warnings) - max_failures} more (see the report or the manifest)")
        return "\n".join(lines)


def human_size(n: int) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"23.4 kB"``, ``"1.5 MB"``, ``"2.0 GB"`` (powers of 1000).

    Example:
        >>> human_size(999), human_size(23_400), human_size(1_500_000), human_size(2 * 10**9)
        ('999 B', '23.4 kB', '1.5 MB', '2.0 GB')
    """
    if n < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("kB", "MB"):
        if value < 999.95:  # what rounds below 1000.0
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


# -- backends ------------------------------------------------------------------------


def _chunks(tasks: Sequence[Task], size: int) -> deque[list[Task]]:
    return deque(list(tasks[i : i + size]) for i in range(0, len(tasks), size))


def _guided_chunks(tasks: Sequence[Task], workers: int, cap: int) -> deque[list[Task]]:
    """Batches of ``cap`` files while much is left, then smaller and smaller (down to one
    file): few round trips to the workers, and they all run out of work at about the same time."""
    out: deque[list[Task]] = deque()
    i, n = 0, len(tasks)
    while i < n:
        size = max(1, min(cap, (n - i) // (2 * workers)))
        out.append(list(tasks[i : i + size]))
        i += size
    return out


def _crash_record(task: Task, reason: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"type": "file", "path": task.rel}
    if task.out != task.rel:
        rec["out"] = task.out
    rec.update(
        status="failed",
        src_size=task.size,
        src_mtime_ns=task.mtime_ns,
        src_sha256=None,
        dst_size=None,
        dst_sha256=None,
        reason=reason,
    )
    return rec


def _run_serial(src: str, dst: str, tasks: Sequence[Task], opts: Options, emit: Emit, batch_size: int) -> None:
    for batch in _chunks(tasks, batch_size):
        if not emit(process_batch(src, dst, batch, opts)):
            return


def _mp_context(fork_safe: bool = True) -> multiprocessing.context.BaseContext:
    """``fork`` from a single-threaded process (fast, no re-import of ``__main__``);
    otherwise ``forkserver`` (forking a threaded process is unsafe), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and fork_safe:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["dnnjpeg.batch.worker"])
    return ctx


#: Most files per task of the local pool (batches amortise the per-task cost; see _guided_chunks).
_POOL_BATCH = 32


class _PoolBroken(Exception):
    pass


def _run_pool(
    src: str, dst: str, tasks: Sequence[Task], opts: Options, emit: Emit, workers: int, batch_size: int
) -> None:
    """Local processes.  A worker that dies (a crash inside a decoder) breaks the pool: the
    batches in flight are then retried one file at a time, so the file that kills a worker
    is found and recorded as failed, and the run goes on with a fresh pool.

    When ``emit`` says stop (the disk is full), nothing more is submitted, the batches not
    started are cancelled and those running are waited for (and recorded): no worker is
    left writing when this returns.  The workers die with this process (see
    :func:`~dnnjpeg.batch.worker.init_pool_worker`)."""
    ctx = _mp_context(rcb.fork_safe(opts))
    pending = _chunks(tasks, batch_size) if batch_size else _guided_chunks(tasks, workers, _POOL_BATCH)
    suspects: deque[Task] = deque()
    limit = max(2, workers * 3)
    stopping = False
    while pending or suspects:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=init_pool_worker, initargs=(os.getpid(),)
        )
        inflight: dict[Any, tuple[list[Task], bool]] = {}
        broken = False
        try:
            while True:
                # submit() raises BrokenProcessPool when a worker died and the pool noticed it
                # before we saw the failed future: the batch goes back, the pool is replaced.
                if suspects:
                    if not inflight:
                        t = suspects.popleft()
                        try:
                            inflight[pool.submit(process_batch, src, dst, [t], opts)] = ([t], True)
                        except BrokenProcessPool:
                            suspects.appendleft(t)
                            raise _PoolBroken from None
                else:
                    while pending and len(inflight) < limit:
                        b = pending.popleft()
                        try:
                            inflight[pool.submit(process_batch, src, dst, b, opts)] = (b, False)
                        except BrokenProcessPool:
                            pending.appendleft(b)
                            raise _PoolBroken from None
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    batch, single = inflight.pop(fut)
                    if fut.cancelled():
                        continue
                    exc = fut.exception()
                    if exc is None:
                        go_on = emit(fut.result())
                    elif single:
                        why = "worker process crashed" if isinstance(exc, BrokenProcessPool) else repr(exc)
                        go_on = emit([_crash_record(batch[0], f"{why} while processing this file")])
                        if isinstance(exc, BrokenProcessPool):
                            raise _PoolBroken
                    else:
                        go_on = True
                        if not stopping:
                            suspects.extend(batch)
                        if isinstance(exc, BrokenProcessPool):
                            raise _PoolBroken
                    if not go_on and not stopping:
                        stopping = True
                        pending.clear()
                        suspects.clear()
                        for f in inflight:
                            f.cancel()
        except _PoolBroken:
            broken = True
            if not stopping:
                for batch, _single in inflight.values():
                    suspects.extend(batch)
            inflight.clear()
        finally:
            pool.shutdown(wait=broken or not inflight, cancel_futures=True)


def _run_dask(
    src: str, dst: str, tasks: Sequence[Task], opts: Options, emit: Emit, address: str, batch_size: int
) -> int:
    """Tasks on an existing Dask cluster; the client (this process) writes the manifest."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DnnjpegError("--scheduler needs dask's distributed package: pip install 'dnnjpeg[dask]'") from None
    try:
        client = Client(address, timeout="30s", set_as_default=False)
    except OSError as exc:
        raise DnnjpegError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        nthreads = sum(client.nthreads().values())
        opts = rcb.dask_options(client, opts)
        limit = max(4, 3 * nthreads)
        pending = _chunks(tasks, batch_size)
        futures: dict[Any, list[Task]] = {}

        def submit(batch: list[Task]) -> Any:
            fut = client.submit(process_batch, src, dst, batch, opts, pure=False)
            futures[fut] = batch
            return fut

        first = [submit(pending.popleft()) for _ in range(min(limit, len(pending)))]
        ac = as_completed(first, loop=client.loop)
        stopping = False  # the disk is full: submit nothing more, record what was running
        for fut in ac:
            batch = futures.pop(fut)
            try:
                records = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost worker, ...
                if stopping:
                    records = []
                elif len(batch) > 1:
                    for t in batch:  # find the culprit
                        ac.add(submit([t]))
                    records = []
                else:
                    records = [_crash_record(batch[0], f"Dask task failed: {type(exc).__name__}: {exc}")]
            fut.release()
            if records and not emit(records):
                stopping = True
            while pending and len(futures) < limit and not stopping:
                ac.add(submit(pending.popleft()))
        return nthreads
    finally:
        client.close()


# -- the options -------------------------------------------------------------------


@dataclass(frozen=True)
class RecompressOptions:
    """How a :func:`recompress` run goes: everything but the encode settings (:class:`~dnnjpeg.EncodeOptions`).

    Bad values raise :class:`~dnnjpeg.DnnjpegError` when the object is made.

    Args:
        workers: local worker processes (default: one per core; ``0``: in this process).
            With ``scheduler``, ignored (the cluster's threads work).
        report: write a JSON report (summary, every failure and skip) to this path.
        images_only: do not copy non-image files.
        in_place: replace images inside ``src`` (``dst`` must be ``None`` or ``src``).
        keep_smaller: keep a JPEG's original bytes when re-encoding would not shrink it.
        retry_failed: redo files an earlier run recorded as failed.
        restart: ignore manifest records written with other settings (redo those files)
            instead of refusing to run.
        extension: name rule for non-JPEG images: ``"keep"``, ``"replace"`` or ``"append"``.
        follow_symlinks: follow every symlink, also out of ``src`` (loops are detected).
        max_pixels: fail images with more pixels than this (default: Pillow's
            ``Image.MAX_IMAGE_PIXELS`` rule, an error beyond twice that).
        scheduler: address of a Dask scheduler (``tcp://host:8786``) to run on instead of
            local processes.  Workers must see ``src`` and ``dst`` at the same paths.
        shard: ``"I/N"`` or ``(I, N)``: process only shard I (0-based) of N, split by a hash
            of each file's relative path.  Each shard writes its own manifest.
        fsync: flush each output (and the manifest every 2 s) to disk before renaming;
            default True in place, False otherwise.
        batch_size: files per task (default: up to 32 locally, smaller towards the end of the
            run so the workers finish together; 8 on Dask; with ``rate_control``, its
            ``batch_size`` in this process and on Dask).
        progress: show a progress bar on stderr.
    """

    workers: int | None = None
    report: str | os.PathLike[str] | None = None
    images_only: bool = False
    in_place: bool = False
    keep_smaller: bool = False
    retry_failed: bool = False
    restart: bool = False
    extension: str = "keep"
    follow_symlinks: bool = False
    max_pixels: int | None = None
    scheduler: str | None = None
    shard: str | tuple[int, int] | None = None
    fsync: bool | None = None
    batch_size: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.extension not in EXTENSION_RULES:
            raise DnnjpegError(f"extension rule {self.extension!r} is not one of {', '.join(EXTENSION_RULES)}")
        if self.in_place and self.extension != "keep":
            raise DnnjpegError("--in-place keeps every file's name: --extension must be 'keep'")
        parse_shard(self.shard)  # names a bad shard
        if self.max_pixels is not None and self.max_pixels < 1:
            raise DnnjpegError("max_pixels must be a positive number of pixels")
        if self.workers is not None and self.workers < 0:
            raise DnnjpegError("workers must be >= 0")


_RUN_KEYWORDS = frozenset(f.name for f in fields(RecompressOptions))
#: recompress's encode keywords: EncodeOptions' fields, ``trellis`` and ``strip`` (``metadata="orientation"``).
_ENCODE_KEYWORDS = frozenset(f.name for f in fields(EncodeOptions)) | {"trellis", "strip"}


def _merge_options(
    table: Any, quality: int | None, workers: int | None, options: EncodeOptions | None,
    run_options: RecompressOptions | None, kwargs: dict[str, Any],
) -> tuple[EncodeOptions, RecompressOptions]:  # fmt: skip
    """recompress's arguments as its two options objects; keywords must agree with an options object given."""
    unknown = sorted(set(kwargs) - _RUN_KEYWORDS - _ENCODE_KEYWORDS)
    if unknown:
        raise TypeError(f"recompress() got an unexpected keyword argument {unknown[0]!r}")
    encode_kw = {k: v for k, v in kwargs.items() if k in _ENCODE_KEYWORDS}
    encode_kw.update({k: v for k, v in (("table", table), ("quality", quality)) if v is not None})
    run_kw = {k: v for k, v in kwargs.items() if k in _RUN_KEYWORDS}
    if workers is not None:
        run_kw["workers"] = workers
    encode = EncodeOptions.from_kwargs(options, **encode_kw)
    return encode, from_keywords(RecompressOptions, run_options, run_kw, "recompress keyword", label="run_options")


# -- the run -------------------------------------------------------------------------


def _settings(opts: Options, extension: str) -> dict[str, Any]:
    if opts.rate_control is not None:
        return rcb.settings(opts, extension)
    enc = opts.encode
    qt = enc.resolve()[0]
    return {
        "luma": list(qt.luma),
        "chroma": list(qt.chroma),
        "subsampling": qt.subsampling,
        "optimize": enc.optimize,
        "progressive": enc.progressive,
        "strip": enc.metadata != "keep",
        "keep_smaller": opts.keep_smaller,
        "extension": extension,
        "in_place": opts.in_place,
    } | (
        # runs without trellis (or with the older "strip" = keep the orientation) keep their old fingerprint
        ({"trellis": True} if enc.trellis else {}) | ({"metadata": "strip"} if enc.metadata == "strip" else {})
    )


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _remove_stale_tmp(folder: str, tag: str) -> None:
    prefix = f"{TMP_PREFIX}{tag}-"
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith(prefix) and e.is_file(follow_symlinks=False):
                    try:
                        os.unlink(e.path)
                    except OSError:
                        pass
    except OSError:
        pass


def _is_done(task: Task, entry: mf.Entry, dst_root: str, in_place: bool) -> bool:
    """Has an earlier run finished (or, when failed, tried) this exact source file?"""
    if entry.status in mf.DONE_STATUSES:
        if in_place:
            return entry.dst_size == task.size and entry.src_mtime_ns == task.mtime_ns
        if entry.src_size != task.size or entry.src_mtime_ns != task.mtime_ns:
            return False
        try:
            st = os.lstat(os.path.join(dst_root, task.out))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == entry.dst_size
    return entry.src_size == task.size and entry.src_mtime_ns == task.mtime_ns


def _unless_full(write: Callable[..., object], *args: Any) -> int | None:
    """``write(*args)``; the errno when the disk (or quota) is full instead of raising, else ``None``."""
    try:
        write(*args)
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            return exc.errno
        raise
    return None


def _write_report(path: str | os.PathLike[str], data: dict[str, Any]) -> int | None:
    """Write the JSON report atomically; the errno when the disk is full (nothing is left), else ``None``."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            json.dump(data, f, indent=1, ensure_ascii=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return exc.errno
        raise
    return None


# -- the steps: check, plan, run, report ---------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What the check step settles: resolved paths and every setting of the run."""

    src: str
    dst: str
    encode: EncodeOptions
    run: RecompressOptions
    rate_control: RateControl | None
    shard: tuple[int, int] | None
    opts: Options  # what the workers get
    settings: dict[str, Any]  # what changes the outputs (recorded in the manifest)
    cfg: str  # their fingerprint
    manifest: str


@dataclass
class _Plan:
    """The files of this run: to do, finished by an earlier run, and the folders to mirror."""

    todo: list[Task] = field(default_factory=list)
    previous: list[tuple[Task, mf.Entry]] = field(default_factory=list)
    folders: list[str] = field(default_factory=lambda: [""])
    n_files: int = 0  # todo, previous and name collisions


def _check(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | None, encode: EncodeOptions,
    run: RecompressOptions, rate_control: RateControl | None,
) -> _Job:  # fmt: skip
    """Check the paths (SRC a folder, DST outside it) and the settings that go together; settle them."""
    src_root, dst_root = check_paths(src, dst, run.in_place)
    shard = parse_shard(run.shard)
    if rate_control is not None:
        rcb.check_options(rate_control, encode, report=run.report, local=not run.scheduler)
    tag = "all" if shard is None or shard[1] == 1 else f"s{shard[0]}of{shard[1]}"
    opts = Options(
        encode=encode.with_plain_table(),
        keep_smaller=run.keep_smaller,
        max_pixels=run.max_pixels,
        fsync=run.in_place if run.fsync is None else bool(run.fsync),
        in_place=run.in_place,
        tmp_tag=tag,
        rate_control=rate_control,
    )
    settings = _settings(opts, run.extension)
    manifest = os.path.join(dst_root, mf.manifest_name(shard))
    return _Job(src_root, dst_root, encode, run, rate_control, shard, opts, settings, _fingerprint(settings), manifest)


def _open_manifest(job: _Job) -> mf.ManifestWriter:
    """Create DST (unless in place) and open the manifest for appending."""
    if not job.run.in_place:
        try:
            os.makedirs(job.dst, exist_ok=True)
        except OSError as exc:
            raise DnnjpegError(f"{job.dst}: cannot create DST: {exc.strerror or exc}") from None
    try:
        return mf.ManifestWriter(job.manifest, fsync=job.opts.fsync)
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise DiskFull(job.manifest, exc.errno) from None
        raise


def _plan(job: _Job, summary: Summary) -> _Plan:
    """List SRC's files, and sort them into work to do and work an earlier run finished (the manifest).
    Skipped entries and name collisions go into ``summary``."""
    entries, summary.bad_manifest_lines = mf.load(job.dst)
    others = sorted({e.cfg for e in entries.values() if e.cfg != job.cfg})
    if others and not job.run.restart:
        raise DnnjpegError(
            f"{job.dst} holds files recompressed with other settings ("
            + ("models, criterion, ladder, " if job.rate_control is not None else "")
            + "table, subsampling, strip, "
            "keep-smaller or extension rule differ); use another DST, the same settings, "
            "or --restart to redo those files with the new settings"
        )
    run, plan = job.run, _Plan()
    for item in walk(
        job.src, extension=run.extension, images_only=run.images_only, follow_symlinks=run.follow_symlinks,
        in_place=run.in_place, shard=job.shard, exclude=None if run.in_place else job.dst,
    ):  # fmt: skip
        if isinstance(item, str):
            plan.folders.append(item)
        elif isinstance(item, Task):
            entry = entries.get(item.rel)
            if (
                entry is not None
                and entry.cfg == job.cfg
                and not (run.retry_failed and entry.status == "failed")
                and _is_done(item, entry, job.dst, run.in_place)
            ):
                plan.previous.append((item, entry))
            else:
                plan.todo.append(item)
        elif isinstance(item, Skipped):
            summary.skipped_entries.append({"path": item.rel, "reason": item.reason})
        elif isinstance(item, Collision):
            plan.n_files += 1
            summary.failures.append({"path": item.rel, "reason": item.reason, "earlier_run": False})
    plan.n_files += len(plan.todo) + len(plan.previous)
    return plan


def _prepare_dst(job: _Job, plan: _Plan, resuming: bool, rec: _Recorder) -> None:
    """Mirror SRC's folders into DST (empty ones too); when resuming, remove this run's stale temporary files."""
    if not job.run.in_place:
        for rel_dir in plan.folders:
            try:
                folder = _safe_makedirs(job.dst, rel_dir)
            except OSError as exc:
                if exc.errno in NO_SPACE_ERRNOS:
                    rec.full = (os.path.join(job.dst, rel_dir), exc.errno)
                    raise rec.disk_full() from None
                raise DnnjpegError(f"cannot create {display(rel_dir)} in DST: {exc}") from None
            if resuming:
                _remove_stale_tmp(folder, job.opts.tmp_tag)
    elif resuming:
        for rel_dir in plan.folders:
            _remove_stale_tmp(os.path.join(job.src, rel_dir), job.opts.tmp_tag)


def _count_previous(job: _Job, plan: _Plan, summary: Summary) -> None:
    """Earlier runs' work counts in the summary (then the plan forgets it)."""
    for task, entry in plan.previous:
        _count(summary, task.kind, entry.status, entry.src_size, entry.dst_size)
        if entry.status == "failed":
            summary.failures.append({"path": task.rel, "reason": entry.reason or "", "earlier_run": True})
    summary.resumed = len(plan.previous)
    if job.rate_control is not None:
        summary.rate_control = rcb.previous_choices(job.rate_control, job.dst, plan.previous)
    summary.files = plan.n_files
    summary.skipped = len(summary.skipped_entries)
    summary.failed = len(summary.failures)
    plan.previous = []


def _backend(job: _Job, n_todo: int) -> tuple[Options, str, int, int | None]:
    """The workers' options, the backend, the number of workers and the batch size of this run."""
    workers = default_workers() if job.run.workers is None else job.run.workers
    if job.run.scheduler:
        backend, n_workers = "dask", 0
    elif workers == 0 or n_todo <= 1:
        backend, n_workers = "in-process", 1
    else:
        backend, n_workers = "process", min(workers, max(1, n_todo))
    opts, batch_size = job.opts, job.run.batch_size
    if job.rate_control is not None:
        opts, backend, n_workers, batch_size = rcb.backend_options(
            opts, backend, n_workers, batch_size, default_workers()
        )
    return opts, backend, n_workers, batch_size


def _start(job: _Job, todo: list[Task], rec: _Recorder) -> tuple[Options, str, int, int | None]:
    """Choose the backend and record the run in the manifest; :func:`_backend`'s answer."""
    opts, backend, n_workers, batch_size = _backend(job, len(todo))
    rec.summary.backend, rec.summary.workers = backend, n_workers
    no_room = _unless_full(rec.writer.append, {
        "type": "run", "t": time.time(), "dnnjpeg": __version__, "host": socket.gethostname(), "pid": os.getpid(),
        "src": job.src, "shard": list(job.shard) if job.shard else None, "backend": backend, "cfg": job.cfg,
        "settings": job.settings, "todo": len(todo),
    })  # fmt: skip
    if no_room:
        rec.full = (job.manifest, no_room)
        raise rec.disk_full()
    return opts, backend, n_workers, batch_size


def _run(job: _Job, todo: list[Task], rec: _Recorder, how: tuple[Options, str, int, int | None]) -> None:
    """Have the workers do ``todo`` (``how``: :func:`_start`'s answer); each record goes through ``rec.emit``."""
    opts, backend, n_workers, batch_size = how
    rec.start_progress(todo, job.run.progress)
    try:
        if not todo:
            pass
        elif backend == "dask":
            assert job.run.scheduler is not None
            rec.summary.workers = _run_dask(job.src, job.dst, todo, opts, rec.emit, job.run.scheduler, batch_size or 8)
        elif backend == "in-process":
            _run_serial(job.src, job.dst, todo, opts, rec.emit, batch_size or 1)
        else:
            _run_pool(job.src, job.dst, todo, opts, rec.emit, n_workers, batch_size or 0)
    except KeyboardInterrupt:
        rec.summary.interrupted = True
        raise


class _Recorder:
    """The run's bookkeeping: finished work goes into the manifest and the summary; remembers where
    the disk (or quota) turned out full, so the run stops there and says so (:class:`DiskFull`)."""

    def __init__(self, job: _Job, writer: mf.ManifestWriter, summary: Summary, plan: _Plan) -> None:
        self.job, self.writer, self.summary = job, writer, summary
        self.n_files, self.n_todo = plan.n_files, len(plan.todo)
        self.kinds = {t.rel: t.kind for t in plan.todo}
        self.full: tuple[str, int] | None = None  # (path, errno) where the disk was full
        self.manifest_full = False  # nothing more can be recorded
        self.bar: _Progress | None = None

    def start_progress(self, todo: list[Task], enabled: bool) -> None:
        self.bar = _Progress(len(todo), sum(t.size for t in todo), enabled)

    def disk_full(self) -> DiskFull:
        assert self.full is not None
        self.summary.interrupted = True
        finished = self.n_files - (self.n_todo - self.summary.processed)
        return DiskFull(self.full[0], self.full[1], finished, self.n_files, self.summary)

    def emit(self, records: list[dict[str, Any]]) -> bool:
        """Record finished files; False when the run must stop (the disk is full)."""
        if self.manifest_full:
            return False  # these files are redone by the rerun
        nospace = [rec for rec in records if rec["status"] == NO_SPACE]
        if nospace:  # not finished: never recorded
            records = [rec for rec in records if rec["status"] != NO_SPACE]
            if self.full is None:
                rec = nospace[0]
                self.full = (os.path.join(self.job.dst, rec.get("out", rec["path"])), rec.get("errno", errno.ENOSPC))
        now = time.time()
        for rec in records:
            rec["cfg"] = self.job.cfg
            rec["t"] = now
        no_room = _unless_full(self.writer.extend, records)
        if no_room:
            self.manifest_full = True
            if self.full is None:
                self.full = (self.job.manifest, no_room)
            return False
        for rec in records:
            self._add(rec)
        return self.full is None

    def _add(self, rec: dict[str, Any]) -> None:
        summary = self.summary
        _count(summary, self.kinds.pop(rec["path"], "image"), rec["status"], rec["src_size"], rec["dst_size"])
        summary.processed += 1
        summary.processed_bytes += rec["src_size"] or 0
        if rec["status"] == "failed":
            summary.failed += 1
            summary.failures.append({"path": rec["path"], "reason": rec["reason"], "earlier_run": False})
        elif rec.get("warning"):
            summary.warnings.append({"path": rec["path"], "warning": rec["warning"]})
        if summary.rate_control is not None and "held" in rec and rec["status"] in ("ok", "kept"):
            summary.rate_control.add(rec)
        if self.bar is not None:
            self.bar.update(rec["src_size"] or 0, summary.failed)


def _report(job: _Job, rec: _Recorder, t_start: float) -> None:
    """Close the summary (order, time) and write the report; a report that does not fit sets ``rec.full``."""
    summary = rec.summary
    if rec.bar is not None:
        rec.bar.close()
    summary.failures.sort(key=lambda f: f["path"])
    summary.warnings.sort(key=lambda w: w["path"])
    if summary.rate_control is not None:
        summary.rate_control.sort()
    summary.seconds = time.perf_counter() - t_start
    if rec.full is not None:
        summary.interrupted = True
    report = job.run.report
    if report is None:
        return
    no_room = _write_report(report, rcb.with_report(summary, _report_data(job, summary)))
    if summary.rate_control is not None and not no_room:
        rcb.plot_choices(summary.rate_control, rcb.plot_path(report))
    if no_room and rec.full is None:  # the run finished, the report does not fit
        rec.full = (os.fspath(report), no_room)


def _report_data(job: _Job, summary: Summary) -> dict[str, Any]:
    """The JSON report (without the model's choices, which :func:`choices.with_report` adds)."""
    qt, table = job.encode.qtable, job.encode.table
    return {
        "format": "dnnjpeg-recompress-report",
        "version": 1,
        "summary": {k: v for k, v in summary.to_dict().items() if k not in ("failures", "skipped_entries", "warnings")},
        "settings": {
            "table": qt.meta.get("name", str(table) if not isinstance(table, QTable) else None),
            "quality": qt.meta.get("quality"),
            "fingerprint": job.cfg,
            **{k: v for k, v in job.settings.items() if k not in ("luma", "chroma")},
        },
        "failures": summary.failures,
        "skipped": summary.skipped_entries,
        "warnings": summary.warnings,
    }


def recompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    table: TableSpec | None = None,
    quality: int | None = None,
    workers: int | None = None,
    *,
    options: EncodeOptions | None = None,
    run_options: RecompressOptions | None = None,
    rate_control: RateControl | None = None,
    **kwargs: Any,
) -> Summary:
    """Recompress every image under ``src`` into ``dst`` with a dnnjpeg table, mirroring the tree.

    See ``docs/recompress.md`` for the full behaviour.  In short: JPEG, PNG, BMP, TIFF and
    WebP files are re-encoded as JPEG (baseline unless ``progressive``) with ``table``
    (``quality`` picks the family member); other files are copied unchanged unless ``images_only``.  ``src`` is never
    modified (except with ``in_place=True``, which replaces images atomically).  A JSONL
    manifest in ``dst`` records finished files; calling again with the same arguments
    resumes, and ``retry_failed=True`` redoes the failures.

    Args:
        src: folder to read.
        dst: folder to write (created); must not overlap ``src``.  ``None`` with ``in_place``.
        table, quality: the table (default ``"standard"``) and family member, as in
            :class:`~dnnjpeg.EncodeOptions`.
        workers: as in :class:`RecompressOptions`.
        options: the encode settings (:class:`~dnnjpeg.EncodeOptions`, docs/encode-options.md).
            Metadata: ``"keep"`` by default; ``strip=True`` is ``metadata="orientation"`` (an
            EXIF orientation other than 1 is kept).  With ``writer="trellis"``, CMYK images are
            written without it (the record says so).
        run_options: how the run goes (:class:`RecompressOptions`: report, in_place, shard...).
        rate_control: a :class:`dnnjpeg.ratecontrol.RateControl`: the model in the loop chooses
            each image's encoding from its ladder (the smallest every model reads like the
            source), instead of ``table``/``quality``, ``subsampling``, ``optimize``,
            ``progressive`` and ``trellis`` (giving them too is an error).  Each worker process
            loads the models once (CUDA when available).  The records and the report then hold
            each image's chosen rung, KL and model evaluations, and ``summary.rate_control`` the
            totals; ``report`` also draws them into a PNG beside the report.
        **kwargs: any field of :class:`~dnnjpeg.EncodeOptions` or :class:`RecompressOptions`
            (``report=``, ``in_place=``, ``optimize=``, ``trellis=``, ``strip=``...), as before
            the options objects; each must agree with ``options``/``run_options`` when given.

    Returns:
        the :class:`Summary`; ``summary.exit_code`` is 1 when any file failed.
    """
    t_start = time.perf_counter()
    encode, run = _merge_options(table, quality, workers, options, run_options, kwargs)
    job = _check(src, dst, encode, run, rate_control)
    summary = Summary(src=job.src, dst=job.dst, manifest=job.manifest)
    resuming = os.path.exists(job.manifest)
    with _open_manifest(job) as writer:
        plan = _plan(job, summary)
        rec = _Recorder(job, writer, summary, plan)
        _prepare_dst(job, plan, resuming, rec)
        _count_previous(job, plan, summary)
        how = _start(job, plan.todo, rec)
        try:
            _run(job, plan.todo, rec, how)
        finally:
            _report(job, rec, t_start)
        if rec.full is not None:
            raise rec.disk_full()
    return summary


def _count(summary: Summary, kind: str, status: str, src_size: int | None, dst_size: int | None) -> None:
    if status == "ok":
        summary.ok += 1
    elif status == "kept":
        summary.kept += 1
    elif status == "copied":
        summary.copied += 1
    if status in mf.DONE_STATUSES:
        summary.bytes_before += src_size or 0
        summary.bytes_after += dst_size or 0
        if status != "copied":
            summary.image_bytes_before += src_size or 0
            summary.image_bytes_after += dst_size or 0


class _Progress:
    """tqdm bar: files done, MB/s of source read, failures so far."""

    def __init__(self, total: int, total_bytes: int, enabled: bool) -> None:
        self._bar = None
        self._bytes = 0
        self._t0 = time.perf_counter()
        self._last = 0.0
        if enabled and total:
            from tqdm import tqdm

            class _Bar(tqdm):  # type: ignore[misc]
                monitor_interval = 0  # no monitor thread: the pool may still fork

            self._bar = _Bar(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def update(self, nbytes: int, failed: int) -> None:
        if self._bar is None:
            return
        self._bytes += nbytes
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last >= 0.5:
            self._last = now
            mbps = self._bytes / 1e6 / max(now - self._t0, 1e-9)
            self._bar.set_postfix_str(f"{mbps:.1f} MB/s, {failed} failed", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            mbps = self._bytes / 1e6 / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.set_postfix_str(f"{mbps:.1f} MB/s", refresh=True)
            self._bar.close()
