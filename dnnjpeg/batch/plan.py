"""Planning a batch run: path safety, walking SRC, the extension rule and sharding.

Nothing here writes anything.  :func:`check_paths` validates SRC and DST,
:func:`walk` yields one :class:`Task` per file to process and one
:class:`Skipped` per entry left alone (with its reason), in a deterministic
order (names sorted as strings, depth first).

Extension rule (``extension=``) for non-JPEG inputs (PNG, BMP, TIFF, WebP):

* ``"keep"`` (default): the output keeps the input's name, e.g. ``cat.png`` holds
  JPEG data.  Labels files and ``ImageFolder`` keep working, since Pillow (and
  OpenCV, TensorFlow's ``decode_image``) detect the format from the content.
* ``"replace"``: ``cat.png`` becomes ``cat.jpg``.
* ``"append"``: ``cat.png`` becomes ``cat.png.jpg``.

JPEG inputs (``.jpg .jpeg .jpe .jfif .jif``, any case) always keep their name.  When
a renamed output would collide with another entry of the same folder, the
renamed file fails with that reason rather than overwrite anything.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import DnnjpegError

__all__ = [
    "EXTENSION_RULES",
    "JPEG_EXTENSIONS",
    "LOSSLESS_EXTENSIONS",
    "MANIFEST_PREFIX",
    "TMP_PREFIX",
    "Collision",
    "Skipped",
    "Task",
    "check_paths",
    "display",
    "in_shard",
    "output_name",
    "parse_shard",
    "walk",
]

JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".jif"})
LOSSLESS_EXTENSIONS = frozenset({".png", ".bmp", ".tif", ".tiff", ".webp"})
EXTENSION_RULES = ("keep", "replace", "append")

#: Manifest files are ``DST/.dnnjpeg-recompress*.jsonl``; temporary outputs ``.dnnjpeg-tmp-*``.
MANIFEST_PREFIX = ".dnnjpeg-recompress"
TMP_PREFIX = ".dnnjpeg-tmp-"


class Task(NamedTuple):
    """One file to process.  Paths are relative to SRC / DST, ``/``-separated."""

    rel: str
    out: str  # output path relative to DST (== rel unless the extension rule renames it)
    kind: str  # "image" (re-encode) or "copy" (copy unchanged)
    size: int
    mtime_ns: int
    link: bool  # reached through a symlink (inside SRC, or any with follow_symlinks)


class Skipped(NamedTuple):
    """An entry of SRC left alone on purpose (not a failure)."""

    rel: str
    reason: str


class Collision(NamedTuple):
    """A file whose output name would collide with another entry (reported as a failure)."""

    rel: str
    out: str
    size: int
    mtime_ns: int
    reason: str


def display(rel: str) -> str:
    """A printable, single-line form of a path (control characters and undecodable bytes escaped)."""
    text = rel.encode("utf-8", "backslashreplace").decode("utf-8")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(c if 32 <= ord(c) != 127 else f"\\x{ord(c):02x}" for c in text)
    return text


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_paths(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None, in_place: bool) -> tuple[str, str]:
    """Validate SRC and DST; return their resolved absolute paths ``(src, dst)``.

    Refuses a DST equal to SRC, inside SRC, or containing SRC, unless ``in_place``
    (then DST must be omitted or be SRC itself).
    """
    src_path = Path(src)
    if not src_path.is_dir():
        raise DnnjpegError(f"{src}: not a directory")
    real_src = os.path.realpath(src_path)
    if in_place:
        if dst is not None and os.path.realpath(dst) != real_src:
            raise DnnjpegError("--in-place rewrites SRC itself: give no DST (or DST equal to SRC)")
        return real_src, real_src
    if dst is None:
        raise DnnjpegError("DST is required (or pass --in-place to replace files in SRC)")
    real_dst = os.path.realpath(dst)
    if real_dst == real_src:
        raise DnnjpegError(f"{dst}: DST is SRC; refusing (pass --in-place to replace files in SRC)")
    if _is_within(real_dst, real_src):
        raise DnnjpegError(f"{dst}: DST is inside SRC ({src}); choose a folder outside SRC")
    if _is_within(real_src, real_dst):
        raise DnnjpegError(f"{dst}: DST contains SRC ({src}); outputs could overwrite sources")
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise DnnjpegError(f"{dst}: exists and is not a directory")
    return real_src, real_dst


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) -> ``(I, N)``."""
    if text is None:
        return None
    if isinstance(text, tuple):
        i, n = text
    else:
        try:
            a, b = str(text).split("/")
            i, n = int(a), int(b)
        except ValueError:
            raise DnnjpegError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise DnnjpegError(f"--shard {i}/{n}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return i, n


def in_shard(rel: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the relative path: the same on every machine and Python."""
    if shard is None or shard[1] == 1:
        return True
    digest = hashlib.blake2b(os.fsencode(rel), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard[1] == shard[0]


def classify(name: str) -> str:
    """``"jpeg"``, ``"lossless"`` or ``"other"`` by extension (case-insensitive)."""
    ext = os.path.splitext(name)[1].lower()
    if ext in JPEG_EXTENSIONS:
        return "jpeg"
    if ext in LOSSLESS_EXTENSIONS:
        return "lossless"
    return "other"


def output_name(name: str, extension: str = "keep") -> str:
    """Output file name for an input file name under the extension rule."""
    if extension not in EXTENSION_RULES:
        raise DnnjpegError(f"extension rule {extension!r} is not one of {', '.join(EXTENSION_RULES)}")
    if classify(name) != "lossless" or extension == "keep":
        return name
    if extension == "append":
        return name + ".jpg"
    return os.path.splitext(name)[0] + ".jpg"


def _internal(name: str, at_root: bool) -> bool:
    return name.startswith(TMP_PREFIX) or (at_root and name.startswith(MANIFEST_PREFIX))


def walk(
    src: str,
    *,
    extension: str = "keep",
    images_only: bool = False,
    follow_symlinks: bool = False,
    in_place: bool = False,
    shard: tuple[int, int] | None = None,
    exclude: str | None = None,
) -> Iterator[Task | Skipped | Collision | str]:
    """Walk the resolved SRC; yield Tasks, Skipped and Collision entries, and each folder (a ``str``).

    Folders are yielded as relative paths (``""`` is SRC itself, never yielded) before
    their contents, so a runner can mirror empty folders too.  Symlinks: a link to a
    file inside SRC is read as that file; links to folders, links out of SRC and broken
    links are skipped, unless ``follow_symlinks`` (then every link is followed, with
    loop detection, but never into ``exclude``, the resolved DST).  In place, links are
    always left alone.
    """
    output_name("x", extension)  # validate
    root_real = src
    stack_ids: set[tuple[int, int]] = set()

    def visit(dir_abs: str, dir_rel: str) -> Iterator[Task | Skipped | Collision | str]:
        try:
            with os.scandir(dir_abs) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(dir_rel or ".", f"cannot list folder: {exc.strerror or exc}")
            return
        at_root = dir_rel == ""
        files: list[tuple[str, str, str, os.stat_result, bool]] = []  # (name, rel, kind, stat, link)
        names = {e.name for e in entries}
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            name = entry.name
            rel = f"{dir_rel}/{name}" if dir_rel else name
            if _internal(name, at_root):
                if not in_place:  # in place they are this run's own files
                    yield Skipped(rel, "dnnjpeg's own manifest or temporary file")
                continue
            path = os.path.join(dir_abs, name)
            try:
                lst = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield Skipped(rel, f"cannot stat: {exc.strerror or exc}")
                continue
            link = stat.S_ISLNK(lst.st_mode)
            st = lst
            if link:
                if in_place:
                    yield Skipped(rel, "symlink (in-place mode leaves links alone)")
                    continue
                target = os.path.realpath(path)
                try:
                    st = os.stat(path)
                except OSError:
                    yield Skipped(rel, "broken symlink")
                    continue
                if not follow_symlinks:
                    if not _is_within(target, root_real):
                        yield Skipped(rel, "symlink points outside SRC (not followed; see --follow-symlinks)")
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        yield Skipped(rel, "symlink to a folder (not followed; see --follow-symlinks)")
                        continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((path, rel))
            elif stat.S_ISREG(st.st_mode):
                files.append((name, rel, classify(name), st, link))
            else:
                yield Skipped(rel, "not a regular file (device, fifo or socket)")
        # Extension rule and collisions within this folder.
        taken: dict[str, str] = {}
        for name, rel, kind, st, link in files:
            if kind == "other" and images_only:
                continue
            taken.setdefault(output_name(name, extension), name)
        for name, rel, kind, st, link in files:
            if not in_shard(rel, shard):
                continue
            if kind == "other" and images_only:
                yield Skipped(rel, "not an image (--images-only)")
                continue
            if kind == "other" and in_place:
                continue  # nothing to do: the file is already where it belongs
            out_name = output_name(name, extension)
            out_rel = f"{dir_rel}/{out_name}" if dir_rel else out_name
            if out_name != name and (taken.get(out_name) != name or out_name in names):
                other = taken.get(out_name) if taken.get(out_name) != name else out_name
                yield Collision(
                    rel,
                    out_rel,
                    st.st_size,
                    st.st_mtime_ns,
                    f"output name {display(out_name)!r} collides with {display(other)!r} in the same folder",
                )
                continue
            yield Task(rel, out_rel, "copy" if kind == "other" else "image", st.st_size, st.st_mtime_ns, link)
        for path, rel in subdirs:
            try:
                st = os.stat(path)
            except OSError as exc:
                yield Skipped(rel, f"cannot stat: {exc.strerror or exc}")
                continue
            if follow_symlinks and exclude is not None and _is_within(os.path.realpath(path), exclude):
                yield Skipped(rel, "leads into DST (not followed)")
                continue
            key = (st.st_dev, st.st_ino)
            if key in stack_ids:
                yield Skipped(rel, "symlink loop (folder already being walked)")
                continue
            yield rel
            stack_ids.add(key)
            try:
                yield from visit(path, rel)
            finally:
                stack_ids.discard(key)

    root_st = os.stat(src)
    stack_ids.add((root_st.st_dev, root_st.st_ino))
    yield from visit(src, "")
