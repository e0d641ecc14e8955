# SPDX-License-Identifier: GPL-3.0-or-later
"""Cheap completeness checks of written images, fsync, and write errors that say why. Pure Python.

A renderer that hits a file-size limit, a full disk or a quota usually writes a truncated file and
carries on. :func:`check_file` catches that from a few hundred bytes of each file, without decoding
pixels:

* PNG: the signature, and the ``IEND`` chunk as the last 12 bytes;
* JPEG: the SOI marker first and the EOI marker last;
* ``.npz`` (object records): the zip directory at its end, and every member inside the file;
* OpenEXR: the magic number, a header that parses, and a chunk offset table whose entries all
  point inside the file, with the last chunk's data ending inside the file (single-part scanline
  files, as Blender writes them; multi-part and tiled files through their ``chunkCount``).

:func:`fsync_files` makes the files and their folders durable before a journal vouches for them.
:class:`WriteError` is the one-line error of a write that failed (path, cause, fix); :func:`cause`
names the cause of an incomplete file by reproducing the failing write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import struct
from pathlib import Path

from ..errors import DatasetForgeError
from .layout import JOURNAL, PROVENANCE, RENDER_ID

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
EXR_MAGIC = b"\x76\x2f\x31\x01"

# Scanlines per chunk of each EXR compression (OpenEXR's table; index = compression byte).
_EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}

UNEXPLAINED = "incomplete although a test write succeeded (the renderer stopped writing it)"

_ERRNO_CAUSES = {
    errno.ENOSPC: "no space left on the device (disk full)",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
    errno.EFBIG: "file too large (a file-size limit, e.g. ulimit -f)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error (failing disk or network file system)",
}


class WriteError(DatasetForgeError, OSError):
    """A file could not be written completely. ``str()`` is one line: path, cause and fix.
    An ``OSError`` too, so that code catching write failures keeps catching it."""

    permanent = True  # the same disk, quota or limit fails a retry the same way

    RERUN = "rerun the same command (it renders only the frames that are not complete)"

    def __init__(self, path: str | os.PathLike, cause: str, rerun: str = RERUN):
        self.path, self.cause = os.fspath(path), cause
        fix = ("make the folder writable" if "permi" in cause or "read-only" in cause else
               "free space or lift the limit")
        super().__init__(f"cannot write {self.path}: {cause}; {fix}, then {rerun}")

    def __str__(self) -> str:
        return str(self.args[0])


class IncompleteFile(DatasetForgeError, ValueError):
    """A file exists but is not a complete image of its format; the message says what is missing."""


def error_cause(exc: OSError) -> str:
    """A short phrase for an ``OSError`` from a write (``disk full`` ...)."""
    return _ERRNO_CAUSES.get(exc.errno or 0, exc.strerror or str(exc))


def write_error(exc: OSError, path: str | os.PathLike | None = None, rerun: str = WriteError.RERUN
                ) -> WriteError:
    """The :class:`WriteError` of an ``OSError`` raised while writing ``path`` (``rerun``: what
    to do once the cause is fixed)."""
    return WriteError(path or exc.filename or "?", error_cause(exc), rerun)


def replace_written(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp)`` (a temporary ``Path`` beside ``path``), then rename it over ``path``;
    an ``OSError``, or OpenEXR's ``RuntimeError`` (a full disk ...), becomes one
    :class:`WriteError` naming ``path``."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(exc, path) from None
    except RuntimeError as exc:
        raise WriteError(path, " ".join(str(exc).split())[:200]) from None


def check_file(path: str | os.PathLike) -> int:
    """Raise :class:`IncompleteFile` unless ``path`` is a complete PNG, JPEG or EXR (other
    extensions: non-empty). Returns the size in bytes. Reads only the header, the EXR offset table
    and a few bytes at the end. ``OSError`` (missing file ...) propagates."""
    p = os.fspath(path)
    with open(p, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise IncompleteFile(f"{p} is empty")
        ext = os.path.splitext(p)[1].lower()
        if ext == ".png":
            _check_png(fh, size, p)
        elif ext in (".jpg", ".jpeg"):
            _check_jpeg(fh, size, p)
        elif ext == ".exr":
            _check_exr(fh, size, p)
        elif ext == ".npz":
            _check_zip(fh, size, p)
    return size


def _read_at(fh, offset: int, n: int) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def _check_png(fh, size: int, p: str) -> None:
    if _read_at(fh, 0, 8) != PNG_SIGNATURE:
        raise IncompleteFile(f"{p} is not a PNG (bad signature)")
    if size < 8 + 12 or _read_at(fh, size - 12, 12) != PNG_IEND:
        raise IncompleteFile(f"{p} is truncated (no IEND chunk at its end, {size} bytes)")


def _check_jpeg(fh, size: int, p: str) -> None:
    if _read_at(fh, 0, 2) != b"\xff\xd8":
        raise IncompleteFile(f"{p} is not a JPEG (no SOI marker)")
    tail = _read_at(fh, max(0, size - 64), 64).rstrip(b"\x00")  # some writers pad after EOI
    if not tail.endswith(b"\xff\xd9"):
        raise IncompleteFile(f"{p} is truncated (no EOI marker at its end, {size} bytes)")


def _check_zip(fh, size: int, p: str) -> None:
    """A ``.npz`` (zip): the end-of-central-directory record in its tail, the central directory
    inside the file, and every member's data ending before the directory."""
    tail = _read_at(fh, max(0, size - (22 + 65535)), 22 + 65535)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise IncompleteFile(f"{p} is truncated (no zip end-of-directory record, {size} bytes)")
    n, cd_size, cd_off = struct.unpack("<HII", tail[at + 10:at + 20])
    if n == 0xFFFF or cd_off == 0xFFFFFFFF:  # zip64: only check that the directory is whole
        return
    eocd = size - len(tail) + at
    if cd_off + cd_size > eocd:
        raise IncompleteFile(f"{p} is truncated (its zip directory points past its end, {size} bytes)")
    cd = _read_at(fh, cd_off, cd_size)
    pos = 0
    for _ in range(n):
        if cd[pos:pos + 4] != b"PK\x01\x02" or len(cd) < pos + 46:
            raise IncompleteFile(f"{p} has a corrupt zip directory")
        comp, = struct.unpack("<I", cd[pos + 20:pos + 24])
        name_len, extra_len, comment_len = struct.unpack("<HHH", cd[pos + 28:pos + 34])
        local, = struct.unpack("<I", cd[pos + 42:pos + 46])
        head = _read_at(fh, local, 30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise IncompleteFile(f"{p} is truncated (a zip member's header is missing)")
        ln, le = struct.unpack("<HH", head[26:30])
        if comp != 0xFFFFFFFF and local + 30 + ln + le + comp > cd_off:  # else sizes are zip64
            raise IncompleteFile(f"{p} is truncated (a zip member ends past its data, {size} bytes)")
        pos += 46 + name_len + extra_len + comment_len


def exr_header(fh, p: str, long_names: bool) -> dict[str, tuple[str, bytes]]:
    """One EXR header (attributes up to the empty name) as ``{name: (type, value bytes)}``; the
    file position ends after it. A truncated or corrupt header is :class:`IncompleteFile`
    naming ``p``."""
    attrs: dict[str, tuple[str, bytes]] = {}
    limit = 255 if long_names else 31
    while True:
        name = _read_cstr(fh, limit, p)
        if name == "":
            return attrs
        typ = _read_cstr(fh, limit, p)
        raw = fh.read(4)
        if len(raw) < 4:
            raise IncompleteFile(f"{p} is truncated inside its EXR header")
        (n,) = struct.unpack("<i", raw)
        if n < 0 or n > 1 << 24:
            raise IncompleteFile(f"{p} has a corrupt EXR header (attribute {name!r} size {n})")
        val = fh.read(n)
        if len(val) < n:
            raise IncompleteFile(f"{p} is truncated inside its EXR header")
        attrs[name] = (typ, val)


def _read_cstr(fh, limit: int, p: str) -> str:
    """A NUL-terminated name of at most ``limit`` bytes; the position ends after the NUL."""
    peek = getattr(fh, "peek", None)
    if peek is not None:  # buffered: find the NUL in what is buffered (one call, not one per byte)
        buf = peek(limit + 1)[:limit + 1]
        end = buf.find(b"\x00")
        if end >= 0:
            fh.read(end + 1)
            return buf[:end].decode("latin-1")
        if len(buf) > limit:
            raise IncompleteFile(f"{p} has a corrupt EXR header (name longer than {limit})")
    out = bytearray()  # a short buffer, the end of the file or an unbuffered handle
    while True:
        c = fh.read(1)
        if not c:
            raise IncompleteFile(f"{p} is truncated inside its EXR header")
        if c == b"\x00":
            return out.decode("latin-1")
        out += c
        if len(out) > limit:
            raise IncompleteFile(f"{p} has a corrupt EXR header (name longer than {limit})")


def _chunk_count(attrs: dict[str, tuple[str, bytes]], tiled: bool, p: str) -> int | None:
    """Chunks of one part: ``chunkCount`` when present, else computed for scanline files and
    one-level tiled files; None when it cannot be known cheaply (mip/rip-mapped tiles)."""
    if "chunkCount" in attrs:
        return struct.unpack("<i", attrs["chunkCount"][1][:4])[0]
    try:
        xmin, ymin, xmax, ymax = struct.unpack("<4i", attrs["dataWindow"][1][:16])
        comp = attrs["compression"][1][0]
    except (KeyError, IndexError, struct.error):
        raise IncompleteFile(f"{p} has an EXR header without dataWindow or compression") from None
    if tiled:
        if "tiles" not in attrs:
            raise IncompleteFile(f"{p} is a tiled EXR without a tiles attribute")
        tx, ty, mode = struct.unpack("<IIB", attrs["tiles"][1][:9])
        if mode & 0x0F != 0 or tx == 0 or ty == 0:
            return None
        return -(-(xmax - xmin + 1) // tx) * -(-(ymax - ymin + 1) // ty)
    lines = _EXR_LINES.get(comp)
    if lines is None:
        raise IncompleteFile(f"{p} uses an unknown EXR compression ({comp})")
    return -(-(ymax - ymin + 1) // lines)


def _check_exr(fh, size: int, p: str) -> None:
    head = _read_at(fh, 0, 8)
    if len(head) < 8 or head[:4] != EXR_MAGIC:
        raise IncompleteFile(f"{p} is not an OpenEXR file (bad magic number)")
    flags = struct.unpack("<I", head[4:])[0]
    tiled, long_names, deep, multi = (bool(flags & 0x200), bool(flags & 0x400),
                                      bool(flags & 0x800), bool(flags & 0x1000))
    parts = []
    if multi:
        while True:
            attrs = exr_header(fh, p, long_names)
            if not attrs:
                break
            parts.append(attrs)
    else:
        parts.append(exr_header(fh, p, long_names))
    counts = []
    for attrs in parts:
        part_tiled = tiled or (multi and attrs.get("type", ("", b""))[1].rstrip(b"\0") in
                               (b"tiledimage", b"deeptile"))
        counts.append(_chunk_count(attrs, part_tiled, p))
    table_start = fh.tell()
    if any(c is None for c in counts) or deep:
        # Cannot size the table cheaply: at least the header is whole and data follows it.
        if size <= table_start:
            raise IncompleteFile(f"{p} is truncated after its EXR header")
        return
    total = sum(counts)  # type: ignore[arg-type]
    if total <= 0:
        raise IncompleteFile(f"{p} has an EXR header with no chunks")
    raw = fh.read(8 * total)
    if len(raw) < 8 * total:
        raise IncompleteFile(f"{p} is truncated inside its EXR offset table")
    offsets = struct.unpack(f"<{total}Q", raw)
    table_end = table_start + 8 * total
    bad = sum(1 for o in offsets if not table_end <= o < size)
    if bad:
        raise IncompleteFile(f"{p} is truncated ({bad} of {total} EXR chunks point past its end "
                             f"or were never written, {size} bytes)")
    last = max(offsets)
    # Chunk header: [part int32 if multi-part] then y int32 + size int32 (scanline) or
    # 4 tile ints + size int32 (tiled).
    skip = (4 if multi else 0) + (16 if tiled else 4)
    raw = _read_at(fh, last + skip, 4)
    if len(raw) < 4:
        raise IncompleteFile(f"{p} is truncated inside its last EXR chunk")
    (n,) = struct.unpack("<i", raw)
    if n < 0 or last + skip + 4 + n > size:
        raise IncompleteFile(f"{p} is truncated (its last EXR chunk ends at byte "
                             f"{last + skip + 4 + n}, the file has {size})")


def fsync_files(paths: list[str | os.PathLike]) -> None:
    """Flush ``paths`` and then their folders to the disk (folders: POSIX only)."""
    folders: dict[str, None] = {}
    for p in paths:
        _fsync_path(p, os.O_RDONLY)
        folders[os.path.dirname(os.path.abspath(os.fspath(p)))] = None
    for d in folders:
        fsync_folder(d)


def fsync_folder(path: str | os.PathLike) -> None:
    """Flush folder ``path`` (its entries: a rename, a new file) to the disk; POSIX only."""
    if os.name == "posix":
        _fsync_path(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync_path(path: str | os.PathLike, flags: int) -> None:
    fd = os.open(os.fspath(path), flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # a file system without fsync
            raise
    finally:
        os.close(fd)


def cause(path: str | os.PathLike, probe_bytes: int = 1 << 20) -> str:
    """Why ``path`` is missing or incomplete: a file-size limit it reached, else the error of a
    test write of ``probe_bytes`` into its folder (disk full, quota, permission ...), else a
    neutral phrase."""
    p = Path(path)
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY:
            size = p.stat().st_size if p.exists() else 0
            if size >= soft:
                return f"file too large (the file-size limit of {soft} bytes, ulimit -f, was reached)"
    except (ImportError, OSError, ValueError):
        pass
    probe = p.parent / f".dataset_forge_probe_{os.getpid()}.tmp"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * probe_bytes)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return error_cause(exc)
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return UNEXPLAINED


def check_written(files: list[str | os.PathLike]) -> dict[str, int]:
    """Check every file of a frame (:func:`check_file`); returns ``{path: size}``. On the first
    missing or incomplete file, removes it (it is worthless, and on a full disk its space is
    needed) and raises :class:`WriteError` naming it and why."""
    sizes: dict[str, int] = {}
    for f in files:
        try:
            sizes[os.fspath(f)] = check_file(f)
        except FileNotFoundError:
            why = cause(f)
            raise WriteError(f, "not written" if why == UNEXPLAINED else why) from None
        except IncompleteFile as exc:
            why = cause(f)
            try:
                os.unlink(f)
            except OSError:
                pass
            if why == UNEXPLAINED:  # say what is wrong with the file instead
                why = str(exc).removeprefix(os.fspath(f) + " ")
            raise WriteError(f, why) from None
        except OSError as exc:
            raise write_error(exc, f) from None
    return sizes


def sync_written(files: list[str | os.PathLike]) -> None:
    """:func:`fsync_files`, with a failure as :class:`WriteError`."""
    try:
        fsync_files(list(files))
    except OSError as exc:
        raise write_error(exc, exc.filename or (files[0] if files else None)) from None


def verify_written(files: list[str | os.PathLike]) -> dict[str, int]:
    """:func:`check_written` then :func:`sync_written`: complete, then durable."""
    sizes = check_written(files)
    sync_written(files)
    return sizes


_RENDER_SAVE = re.compile(r"cannot save: '(?P<path>[^']+)'")


def render_save_error(message: str) -> WriteError | None:
    """The :class:`WriteError` of Blender's "Render error (...) cannot save: 'PATH'" (its errno
    is lost on the way: the cause is found again by :func:`cause`), or None for other errors."""
    m = _RENDER_SAVE.search(message)
    if m is None:
        return None
    path = m.group("path")
    why = cause(path)
    return WriteError(path, "the renderer could not save it" if why == UNEXPLAINED else why)


def journal_digest(seq_dir: str | os.PathLike) -> str | None:
    """Which frames sequence folder ``seq_dir`` holds now, as a SHA-256 (hex) of its journal and
    the ``render_id`` of its ``provenance.json`` (new on each render from scratch: the same
    journal bytes may come from two renders); None without a journal. A verdict about the folder
    holds while this is unchanged."""
    try:
        with open(Path(seq_dir) / JOURNAL, "rb") as fh:
            journal = fh.read()
    except OSError:
        return None
    try:
        with open(Path(seq_dir) / PROVENANCE, encoding="utf-8") as fh:
            render = str(json.load(fh).get(RENDER_ID, ""))
    except (OSError, ValueError, AttributeError):
        render = ""
    return hashlib.sha256(render.encode() + b"\0" + journal).hexdigest()
