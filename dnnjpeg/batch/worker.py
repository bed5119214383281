"""Recompressing (or copying) files: :func:`process` / :func:`process_batch` return manifest records.

Runs in worker processes (local pool or Dask workers); never raises for a bad
input, only records ``"failed"`` with the reason.  Every output is written to a
temporary file in its destination folder and renamed over the final name.

:func:`process_batch` works in two phases: it reads, checks, decodes and encodes
every image of the batch first (holding at most :data:`PENDING_BYTES` of encoded
output), then writes the outputs one after the other.  Grouping the file-system
calls keeps the kernel's code and data warm in the CPU caches between them, which
measurably cuts their cost next to the codec (see ``docs/recompress.md``).  Each
file still gets its own temporary file and rename, and its record is returned
only after its output is in place.

With ``Options.rate_control`` (the model in the loop) the images of a batch are decoded
first, :func:`dnnjpeg.ratecontrol.choose` picks the bytes of all of them in one call, and
the source's metadata is put in front of each chosen encoding (:func:`with_metadata`).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import io
import math
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

from PIL import Image, UnidentifiedImageError

from .._jpegmarkers import metadata_segments
from ..options import EncodeOptions
from ..pillow_plugin import encode, to_jpeg_mode
from ..qtable import QTable
from ..ratecontrol import KLModel, choose, load_classifiers
from .plan import TMP_PREFIX, Task

__all__ = [
    "NO_SPACE",
    "NO_SPACE_ERRNOS",
    "OPEN_FORMATS",
    "PENDING_BYTES",
    "NoSpace",
    "Options",
    "UnsafeDestination",
    "init_pool_worker",
    "process",
    "process_batch",
]

#: Formats an image input may turn out to be (by content).  Anything else fails.
OPEN_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "TIFF", "WEBP")  # "JPEG" also opens MPO files
_JPEG_FORMATS = ("JPEG", "MPO")
_COPY_CHUNK = 1 << 20
#: Encoded bytes :func:`process_batch` holds before writing them out (a batch of huge
#: images is written in several groups).
PENDING_BYTES = 64 << 20


@dataclass(frozen=True)
class Options:
    """Per-run settings shipped to every worker (cheap to pickle per task).

    ``encode`` holds its table by value (:meth:`EncodeOptions.with_plain_table`): no name,
    file or provenance to look up in the worker.
    """

    encode: EncodeOptions = dataclasses.field(default_factory=EncodeOptions)
    keep_smaller: bool = False
    max_pixels: int | None = None  # None: Pillow's Image.MAX_IMAGE_PIXELS rule
    fsync: bool = False
    in_place: bool = False
    tmp_tag: str = "all"  # temporary files are named .dnnjpeg-tmp-<tag>-<pid>-<random>
    #: a :class:`dnnjpeg.ratecontrol.RateControl`: the model in the loop chooses each image's bytes
    #: (``encode`` then only gives the metadata policy).
    rate_control: Any = None
    #: torch threads per worker process on the CPU (an int; or ``((dask worker address, n), ...)``);
    #: ``None`` leaves torch's own setting.
    torch_threads: Any = None

    @property
    def table(self) -> QTable:
        """The table written."""
        return self.encode.qtable


class UnsafeDestination(OSError):
    """A folder on the way to an output is a symlink or not a folder: writing could leave DST."""


class _ReadError(Exception):
    """Reading the source failed (the OSError is its ``__cause__``)."""


#: Errors that mean the file system holding the output is full (or the user's quota is).
NO_SPACE_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
#: Status of a record whose output could not be written for lack of space.  Such a record
#: is never written to the manifest (the file is not finished: a rerun does it); the run
#: stops at the first one, since every following file would fail the same way.
NO_SPACE = "no-space"


class NoSpace(OSError):
    """Writing an output failed with ``ENOSPC`` or ``EDQUOT`` (its temporary file is removed)."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _stop_when_full(write: _F) -> _F:
    """Raise :class:`NoSpace` instead of an ``OSError`` that says the disk (or quota) is full."""

    @functools.wraps(write)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        except NoSpace:
            raise
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpace(exc.errno, exc.strerror) from exc
            raise

    return cast(_F, wrapper)


_made_dirs: set[str] = set()
_made_lock = threading.Lock()


def _safe_makedirs(dst_root: str, rel_dir: str) -> str:
    """Create ``dst_root/rel_dir`` folder by folder, refusing symlinks or files on the way."""
    if not rel_dir:
        return dst_root
    full = os.path.join(dst_root, rel_dir)
    if full in _made_dirs:
        return full
    path = dst_root
    for part in rel_dir.split("/"):
        path = os.path.join(path, part)
        if path in _made_dirs:
            continue
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeDestination(errno.ELOOP, f"{path} is a symlink in DST; refusing to write through it")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeDestination(errno.ENOTDIR, f"{path} exists in DST and is not a folder")
        with _made_lock:
            _made_dirs.add(path)
    return full


def _read_source(path: str, follow: bool) -> tuple[bytes, os.stat_result]:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        while True:
            chunk = os.read(fd, max(st.st_size + 1, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


_PARENT_PID: int | None = None
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def init_pool_worker(run_pid: int | None = None) -> None:
    """Initializer of local pool workers: leave Ctrl-C to the parent, die with the run.

    ``run_pid``: the process running :func:`~dnnjpeg.batch.recompress`.  However the run
    dies (``kill -9``, the OOM killer), its workers stop at once instead of finishing
    their batch: on Linux the kernel kills a worker (``SIGKILL``) when its parent exits;
    a worker started by the ``forkserver`` (whose parent outlives the run) waits on the
    pipe multiprocessing keeps open to the run; elsewhere a thread notices the parent is
    gone within half a second.  A worker whose run is already gone exits at once.
    """
    import multiprocessing
    import signal

    global _PARENT_PID
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tied = _die_with_parent()
    ppid = os.getppid()
    if run_pid is not None and not _started_by(run_pid, ppid):
        os._exit(3)  # the run died between our fork and now: finish nothing
    _PARENT_PID = ppid
    run = multiprocessing.parent_process()
    if run_pid is not None and ppid != run_pid and run is not None and run.pid == run_pid:
        # forkserver: our parent is the fork server; the run holds the other end of this pipe
        threading.Thread(target=_exit_with, args=(run.sentinel,), name="dnnjpeg-run-watch", daemon=True).start()
    elif not tied:
        threading.Thread(target=_watch_parent, args=(ppid,), name="dnnjpeg-parent-watch", daemon=True).start()


def _die_with_parent() -> bool:
    """Ask Linux to ``SIGKILL`` this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _started_by(run_pid: int, ppid: int) -> bool:
    """Is ``ppid`` (our parent) the run, or the run's fork server (``forkserver`` start method)?"""
    if ppid == run_pid:
        return True
    try:
        with open(f"/proc/{ppid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1]) == run_pid
    except (OSError, ValueError, IndexError):
        return ppid != 1  # no /proc: only an orphan adopted by init is surely wrong


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])  # readable (end of file) once the run is gone
    os._exit(3)


def _watch_parent(ppid: int) -> None:
    # A killed parent (SIGKILL, OOM killer) cannot stop its pool: exit rather than linger.
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os._exit(3)


def _check_parent() -> None:
    # A local pool worker whose parent was killed finishes nothing more: the next run redoes it.
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        raise SystemExit("parent process is gone; not writing further outputs")


@_stop_when_full
def _write_output(
    dst_root: str,
    rel_out: str,
    data: bytes | None,
    opts: Options,
    src_st: os.stat_result,
    copy_from: str | None = None,
    follow: bool = False,
) -> tuple[int, str]:
    """Write ``data`` (or a copy of ``copy_from``) to DST/rel_out via a temporary file; return size, sha256."""
    rel_dir, name = rel_out.rpartition("/")[::2]
    folder = _safe_makedirs(dst_root, rel_dir)
    final = os.path.join(folder, name)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{opts.tmp_tag}-{os.getpid()}-{secrets.token_hex(6)}")
    h = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            if data is not None:
                h.update(data)
                size = len(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            else:
                assert copy_from is not None
                flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
                try:
                    sfd = os.open(copy_from, flags)
                    if not stat.S_ISREG(os.fstat(sfd).st_mode):
                        os.close(sfd)
                        raise OSError(errno.EINVAL, "not a regular file")
                except OSError as exc:
                    raise _ReadError(str(exc)) from exc
                try:
                    while True:
                        chunk = os.read(sfd, _COPY_CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        size += len(chunk)
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
                finally:
                    os.close(sfd)
            os.fchmod(fd, stat.S_IMODE(src_st.st_mode) & 0o777)
            if opts.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        # After close: a network file system may flush (and stamp) the data on close.
        os.utime(tmp, ns=(src_st.st_atime_ns, src_st.st_mtime_ns))
        _check_parent()
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if opts.fsync:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return size, h.hexdigest()


def _encode_options(im: Image.Image, opts: Options, record: dict[str, Any]) -> EncodeOptions:
    """The run's encode options for ``im``: a CMYK image is written by libjpeg (mozjpeg's trellis path
    writes L and RGB only; this keeps the file's colours), with a warning in its record."""
    if opts.encode.trellis and im.mode == "CMYK":
        _warn(record, "CMYK image written without trellis quantization")
        return opts.encode.replace(writer="libjpeg")
    return opts.encode


def _warn(record: dict[str, Any], warning: str) -> None:
    record["warning"] = f"{record['warning']}; {warning}" if record.get("warning") else warning


def _failed(record: dict[str, Any], reason: str) -> dict[str, Any]:
    record["status"] = "failed"
    record["reason"] = reason
    return record


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Output(NamedTuple):
    """Bytes waiting to be written for one file, and the record fields they will set."""

    data: bytes
    st: os.stat_result
    status: str  # "ok" or "kept"
    reason: str | None


def _new_record(task: Task) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "file", "path": task.rel}
    if task.out != task.rel:
        record["out"] = task.out
    record.update(
        status=None,
        src_size=task.size,
        src_mtime_ns=task.mtime_ns,
        src_sha256=None,
        dst_size=None,
        dst_sha256=None,
        reason=None,
    )
    return record


def _guarded(record: dict[str, Any], step: Any, *args: Any) -> Any:
    """Run one step for one file; any error becomes that file's failure (``None`` is returned)."""
    try:
        return step(*args)
    except UnsafeDestination as exc:
        _failed(record, f"unsafe destination: {exc.strerror}")
    except NoSpace as exc:
        record["status"] = NO_SPACE  # not finished, not failed: the runner stops, a rerun does it
        record["reason"] = _describe(exc)
        record["errno"] = exc.errno
    except SystemExit:
        raise
    except _ReadError as exc:
        _failed(record, f"cannot read: {_describe(exc.__cause__ or exc)}")
    except OSError as exc:
        _failed(record, f"cannot write output: {_describe(exc)}")
    except MemoryError:
        _failed(record, "out of memory while decoding")
    except Exception as exc:  # noqa: BLE001 - any decoder error is this file's failure
        _failed(record, f"{type(exc).__name__}: {exc}")
    return None


def _prepare(src_root: str, dst_root: str, task: Task, opts: Options, record: dict[str, Any]) -> _Output | None:
    """Everything for one file but writing an image's output: that is returned (``None``: the record is final)."""
    src = os.path.join(src_root, task.rel)
    if task.kind == "copy":
        _copy(src, dst_root, task, opts, record)
        return None
    return _process_image(src, dst_root, task, opts, record)


def _finish(dst_root: str, task: Task, opts: Options, record: dict[str, Any], out: _Output) -> None:
    size, digest = _write_output(dst_root, task.out, out.data, opts, out.st)
    record.update(status=out.status, dst_size=size, dst_sha256=digest, reason=out.reason)


def process(src_root: str, dst_root: str, task: Task, opts: Options) -> dict[str, Any]:
    """Recompress or copy one file; return its manifest record (never raises for bad input)."""
    t0 = time.perf_counter()
    record = _new_record(task)
    try:
        out = _guarded(record, _prepare, src_root, dst_root, task, opts, record)
        if out is not None:
            _guarded(record, _finish, dst_root, task, opts, record, out)
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 4)
    return record


def _prepare_each(src_root: str, dst_root: str, tasks: list[Task], opts: Options,
                  records: list[dict[str, Any]]) -> Iterator[tuple[Task, dict[str, Any], Any, float]]:
    """Read and prepare each task in turn (its record appended to ``records`` first): ``(task, record, the
    prepared output or None, seconds spent)``; a batch that stops early simply stops iterating."""
    for t in tasks:
        task = Task(*t)
        t0 = time.perf_counter()
        record = _new_record(task)
        records.append(record)
        out = _guarded(record, _prepare, src_root, dst_root, task, opts, record)
        yield task, record, out, time.perf_counter() - t0


def process_batch(
    src_root: str, dst_root: str, tasks: list[Task], opts: Options, pending_bytes: int = PENDING_BYTES
) -> list[dict[str, Any]]:
    """:func:`process` over several tasks (one round trip to a worker), writes grouped.

    Images are read, decoded and encoded first; their outputs are then written one after
    the other, whenever ``pending_bytes`` of output are waiting and at the end.  The
    records are the ones :func:`process` gives, in task order.  At the first output that
    does not fit on the disk (its record has status :data:`NO_SPACE`) the batch stops:
    the outputs not written yet are dropped, and their files have no record.
    """
    if opts.rate_control is not None:
        return _process_rate_controlled(src_root, dst_root, tasks, opts, pending_bytes)
    records: list[dict[str, Any]] = []
    pending: list[tuple[Task, dict[str, Any], _Output, float]] = []
    held = 0
    for task, record, out, spent in _prepare_each(src_root, dst_root, tasks, opts, records):
        if out is None:
            record["seconds"] = round(spent, 4)
            if record["status"] == NO_SPACE:
                break
            continue
        pending.append((task, record, out, spent))
        held += len(out.data)
        if held >= pending_bytes:
            if not _write_pending(dst_root, opts, pending):
                break
            held = 0
    else:
        _write_pending(dst_root, opts, pending)
    return [r for r in records if r["status"] is not None]  # None: not written (the disk is full)


def _write_pending(dst_root: str, opts: Options, pending: list[tuple[Task, dict[str, Any], _Output, float]]) -> bool:
    """Write the outputs waiting; False when one did not fit on the disk (the rest are not tried)."""
    try:
        for task, record, out, spent in pending:
            t0 = time.perf_counter()
            try:
                _guarded(record, _finish, dst_root, task, opts, record, out)
            finally:
                record["seconds"] = round(spent + time.perf_counter() - t0, 4)
            if record["status"] == NO_SPACE:
                return False
        return True
    finally:
        pending.clear()


def _copy(src: str, dst_root: str, task: Task, opts: Options, record: dict[str, Any]) -> None:
    try:
        st = os.stat(src) if task.link else os.lstat(src)
    except OSError as exc:
        raise _ReadError(str(exc)) from exc
    record["src_size"], record["src_mtime_ns"] = st.st_size, st.st_mtime_ns
    size, digest = _write_output(dst_root, task.out, None, opts, st, copy_from=src, follow=task.link)
    record.update(status="copied", src_sha256=digest, dst_size=size, dst_sha256=digest)
    if size != st.st_size:
        record["src_size"] = size  # the file changed while being copied; the copy is what was read


def _process_image(src: str, dst_root: str, task: Task, opts: Options, record: dict[str, Any]) -> _Output | None:
    """Read, check, decode and encode one image; return what to write (``None``: the record is final)."""
    try:
        data, st = _read_source(src, task.link)
    except OSError as exc:
        raise _ReadError(str(exc)) from exc
    record["src_size"], record["src_mtime_ns"] = len(data), st.st_mtime_ns
    record["src_sha256"] = hashlib.sha256(data).hexdigest()
    if not data:
        _failed(record, "empty file")
        return None
    try:
        im = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        _failed(record, f"decompression bomb: {exc}")
        return None
    except UnidentifiedImageError:
        _failed(record, "not an image Pillow can read as " + "/".join(OPEN_FORMATS))
        return None
    except (OSError, ValueError) as exc:  # a known format with a header Pillow cannot decode (odd BMP depth, ...)
        _failed(record, f"cannot decode input: {_describe(exc)}")
        return None
    with im:
        record["format"], record["mode"] = im.format, im.mode
        w, h = im.size
        if opts.max_pixels is not None and w * h > opts.max_pixels:
            _failed(record, f"decompression bomb: {w}x{h} = {w * h} pixels exceeds the limit of {opts.max_pixels}")
            return None
        if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:  # Pillow only warns up to twice that
            _warn(record, f"{w}x{h} = {w * h} pixels is above Pillow's MAX_IMAGE_PIXELS")
        if im.format not in _JPEG_FORMATS and getattr(im, "n_frames", 1) > 1:
            return _keep_original(st, data, record, opts, f"{im.n_frames}-frame image kept unchanged")
        try:
            im.load()
        except OSError as exc:
            _failed(record, f"truncated or corrupt image: {exc}")
            return None
        if opts.rate_control is not None:  # the model chooses the bytes, for the whole batch at once
            return _decoded(im, data, st, opts, record)  # type: ignore[return-value]  # a _Decoded
        out = encode(im, options=_encode_options(im, opts, record))
    if opts.keep_smaller and record["format"] in _JPEG_FORMATS and len(out) >= len(data):
        return _keep_original(st, data, record, opts, f"recompressed size {len(out)} is not smaller (--keep-smaller)")
    return _Output(out, st, "ok", None)


def _keep_original(
    st: os.stat_result, data: bytes, record: dict[str, Any], opts: Options, reason: str
) -> _Output | None:
    if opts.in_place:
        # Already where it belongs, untouched.
        record.update(status="kept", dst_size=len(data), dst_sha256=record["src_sha256"], reason=reason)
        return None
    return _Output(data, st, "kept", reason)


# -- model in the loop (Options.rate_control) ------------------------------------------------


class _Decoded(NamedTuple):
    """A decoded image of a rate-controlled batch, waiting for the model's choice."""

    image: Image.Image  # its pixels (L, RGB or CMYK), detached from the file
    data: bytes  # the source file
    st: os.stat_result
    jpeg: bool  # the source is a JPEG: its own bytes are a candidate too
    metadata: dict[str, Any]  # Pillow JPEG save keywords writing the metadata the output keeps


#: Pillow save keywords of EncodeOptions.save_kwargs that code pixels (the rest write metadata).
_CODING_KEYS = ("qtables", "subsampling", "optimize", "progressive")


def _decoded(im: Image.Image, data: bytes, st: os.stat_result, opts: Options, record: dict[str, Any]) -> _Decoded:
    """Detach a loaded image from its file, with the metadata the output will carry (as the table path keeps it)."""
    kwargs = _encode_options(im, opts, record).save_kwargs(im)
    metadata = {k: v for k, v in kwargs.items() if k not in _CODING_KEYS}
    pixels = to_jpeg_mode(im)
    if pixels is im:
        pixels = im.copy()
    if pixels.mode == "CMYK":  # the ladder's rungs write L or RGB: a CMYK profile would not fit the output
        metadata.pop("icc_profile", None)
        _warn(record, "CMYK image written as RGB by the ladder (Pillow's conversion; its ICC profile is not kept)")
    return _Decoded(pixels, data, st, record["format"] in _JPEG_FORMATS, metadata)


def _pixel_bytes(im: Image.Image) -> int:
    return im.width * im.height * len(im.getbands())


def _process_rate_controlled(
    src_root: str, dst_root: str, tasks: list[Task], opts: Options, pending_bytes: int
) -> list[dict[str, Any]]:
    """:func:`process_batch` with the model in the loop: every image of the batch is read, checked and
    decoded as on the table path, then :func:`dnnjpeg.ratecontrol.choose` picks the bytes of all of
    them in one call (images go through the models in batches), and the outputs are written as usual.

    At most ``pending_bytes`` of decoded pixels wait for a choice (a batch of huge images is
    chosen in several groups).
    """
    records: list[dict[str, Any]] = []
    group: list[tuple[Task, dict[str, Any], _Decoded, float]] = []
    pending: list[tuple[Task, dict[str, Any], _Output, float]] = []
    held = 0
    for task, record, out, spent in _prepare_each(src_root, dst_root, tasks, opts, records):
        if isinstance(out, _Decoded):
            group.append((task, record, out, spent))
            held += _pixel_bytes(out.image)
        elif out is not None:  # kept unchanged (a multi-frame image)
            pending.append((task, record, out, spent))
            held += len(out.data)
        else:
            record["seconds"] = round(spent, 4)
        if held >= pending_bytes:
            _choose_group(group, opts, pending)
            _write_pending(dst_root, opts, pending)
            held = 0
    _choose_group(group, opts, pending)
    _write_pending(dst_root, opts, pending)
    return records


def _choose_group(
    group: list[tuple[Task, dict[str, Any], _Decoded, float]],
    opts: Options,
    pending: list[tuple[Task, dict[str, Any], _Output, float]],
) -> None:
    """Let the models choose the bytes of every image of ``group``; move the outputs to ``pending``."""
    if not group:
        return
    t0 = time.perf_counter()
    rc = opts.rate_control
    try:
        classifiers = _classifiers(rc, opts)
    except Exception as exc:  # noqa: BLE001 - e.g. a model whose package is missing on this worker
        choices: list[Any] = [_ModelLoadError(f"cannot load the model: {type(exc).__name__}: {exc}")] * len(group)
    else:
        choices = _choose_each(
            [d.image for _, _, d, _ in group], [d.data if d.jpeg else None for _, _, d, _ in group], rc, classifiers
        )
    share = (time.perf_counter() - t0) / len(group)
    for (task, record, dec, spent), choice in zip(group, choices):
        t1 = time.perf_counter()
        if isinstance(choice, BaseException):
            why = str(choice) if isinstance(choice, _ModelLoadError) else f"{type(choice).__name__}: {choice}"
            _failed(record, why)
            out = None
        else:
            out = _guarded(record, _chosen_output, choice, dec, opts, record)
        spent += share + time.perf_counter() - t1
        if out is None:
            record["seconds"] = round(spent, 4)
        else:
            pending.append((task, record, out, spent))
    group.clear()


class _ModelLoadError(Exception):
    pass


def _choose_each(images: list[Image.Image], sources: list[bytes | None], rc: Any, classifiers: list[Any]) -> list[Any]:
    """``choose`` over all images at once; when that fails, image by image (so one bad image fails alone).
    Each item is a ``Choice`` or the exception that image raised."""

    kl_model = _kl_model(rc)
    try:
        return list(choose(images, rc, classifiers=classifiers, sources=sources, kl_model=kl_model))
    except Exception as exc:  # noqa: BLE001
        if len(images) == 1:
            return [exc]
    out: list[Any] = []
    for im, src in zip(images, sources):
        try:
            out.append(choose([im], rc, classifiers=classifiers, sources=[src], kl_model=kl_model)[0])
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


def _kl_model(rc: Any) -> Any:
    """The search's model of KL for ``rc``'s models and ladder, kept for the life of this worker process,
    so every batch's search starts from what the earlier batches learned (fewer evaluations per image).
    One per thread: Dask runs several tasks of a worker at once, and the model learns as it searches."""

    key = (tuple(rc.model_names), rc.ladder, rc.min_quality, threading.get_ident())
    with _MODELS_LOCK:
        model = _KL_MODELS.get(key)
        if model is None:
            model = _KL_MODELS[key] = KLModel([r.quality for r in rc.get_ladder()])
    return model


def _chosen_output(choice: Any, dec: _Decoded, opts: Options, record: dict[str, Any]) -> _Output | None:
    record.update(choice_fields(choice))
    if choice.kept_original:
        return _keep_original(dec.st, dec.data, record, opts, "no rung smaller than the original JPEG holds")
    out = with_metadata(choice.data, dec.metadata)
    if opts.keep_smaller and dec.jpeg and len(out) >= len(dec.data):
        reason = f"written with its metadata, rung {choice.rung} is {len(out)} bytes, not smaller (--keep-smaller)"
        return _keep_original(dec.st, dec.data, record, opts, reason)
    return _Output(out, dec.st, "ok", None)


#: Fields a rate-controlled image adds to its manifest record.
CHOICE_FIELDS = ("rung", "kl", "top1_kept", "held", "evaluations", "kept_original")


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # the manifest is strict JSON


def choice_fields(choice: Any) -> dict[str, Any]:
    """The manifest fields of one :class:`~dnnjpeg.ratecontrol.Choice` (:data:`CHOICE_FIELDS`)."""
    return {
        "rung": choice.rung,
        "kl": {str(k): _finite(v) for k, v in choice.kl.items()},
        "top1_kept": {str(k): bool(v) for k, v in choice.top1_kept.items()},
        "held": bool(choice.held),
        "evaluations": int(choice.evaluations),
        "kept_original": bool(choice.kept_original),
    }


_JFIF = b"JFIF\x00"
_ADOBE = b"Adobe"


def _segment_is(seg: bytes, marker: int, ident: bytes) -> bool:
    return seg[1] == marker and seg[4 : 4 + len(ident)] == ident


def _frame_components(data: bytes) -> bytes | None:
    """The component ids of the JPEG's frame header (SOFn), or ``None`` when it cannot be found."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            n = data[pos + 9] if pos + 9 < len(data) else 0
            return bytes(data[pos + 10 + 3 * i] for i in range(n) if pos + 10 + 3 * i < len(data))
        if length < 2:
            return None
        pos += 2 + length
    return None


def with_metadata(coded: bytes, metadata: dict[str, Any]) -> bytes:
    """``coded`` (a rung's bytes, pixels only) carrying the metadata Pillow writes for ``metadata``
    (EXIF, ICC profile, XMP, comment, JFIF density), as the trellis path does
    (:func:`dnnjpeg._jpegmarkers.replace_metadata`).  The segments that say how the pixels are
    coded stay the encoder's: an Adobe APP14 segment is kept, and the JFIF APP0 segment (which
    holds the density, and tells decoders the pixels are YCbCr or gray) is written when the
    encoder wrote one, or wrote none but coded YCbCr or gray (component ids 1, 2, 3; jpegli).
    """
    segments = metadata_segments(coded)
    rest = 2 + sum(len(s) for s in segments)
    adobe = [s for s in segments if _segment_is(s, 0xEE, _ADOBE)]
    jfif = any(_segment_is(s, 0xE0, _JFIF) for s in segments) or (
        not adobe and _frame_components(coded) in (b"\x01", b"\x01\x02\x03")
    )
    template = io.BytesIO()
    Image.new("RGB", (8, 8)).save(template, "JPEG", **metadata)  # only its metadata segments are used
    kept = [
        s
        for s in metadata_segments(template.getvalue())
        if not _segment_is(s, 0xEE, _ADOBE) and (jfif or not _segment_is(s, 0xE0, _JFIF))
    ]
    return coded[:2] + b"".join(kept) + b"".join(adobe) + coded[rest:]


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()
_KL_MODELS: dict[tuple[Any, ...], Any] = {}


def _model_device(spec: str | None) -> Any:
    import torch

    if spec:
        return torch.device(spec)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dask_worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


def _set_torch_threads(opts: Options, device: Any) -> None:
    """Torch (and rate-control codec) threads of this worker process: its share of the cores."""
    n = opts.torch_threads
    if isinstance(n, tuple):  # on Dask: per worker
        n = dict(n).get(_dask_worker_address())
    if n is None:
        return
    os.environ["DNNJPEG_WORKERS"] = str(n)  # codec threads of dnnjpeg.ratecontrol (this process is a worker)
    if device.type != "cpu":
        return
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(int(n))  # per thread with OpenMP: set in the thread that runs the model


def _classifiers(rc: Any, opts: Options) -> list[Any]:
    """The models of ``rc`` on this worker's device (:func:`dnnjpeg.ratecontrol.load_classifiers`),
    named models loaded once per process and kept (by name and device); model objects come with
    the task and are only moved to the device."""

    device = _model_device(rc.device)
    _set_torch_threads(opts, device)
    out = []
    with _MODELS_LOCK:
        for m in rc.models:
            key = (m, str(device)) if isinstance(m, str) else None
            clf = _MODELS.get(key) if key else None
            if clf is None:
                clf = load_classifiers(dataclasses.replace(rc, models=(m,), device=str(device)))[0]
                if key:
                    _MODELS[key] = clf
            out.append(clf)
    return out
