# SPDX-License-Identifier: GPL-3.0-or-later
"""What every export format shares: errors, deterministic writers, 8-bit RGB, flow validity.

Deterministic means: the same source gives the same bytes (sorted JSON keys, no timestamps, PNGs
written by pillow without ancillary chunks, ``.npy`` through ``numpy.lib.format``).
"""

from __future__ import annotations

import errno
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ...errors import DatasetForgeError
from ..documents.base import JSONObject
from ..layout import KINDS
from ..loader import Frame, Sequence
from ..verify import WriteError, fsync_files, write_error

MARKER = "dataset_forge_export.json"


class ExportError(DatasetForgeError, ValueError):
    """An export that cannot be written right: bad paths or data the format cannot hold."""


class MissingDependency(DatasetForgeError, ImportError):
    """An optional package the chosen format needs is not installed (the message says how)."""


class SequenceResult(TypedDict, total=False):
    """What a format's ``export_sequence`` returns: its ``summary`` of the sequence (counts, the
    format's own keys; recorded in the export record) and ``notes`` (one line each)."""

    summary: JSONObject
    notes: list[str]


@dataclass(frozen=True)
class SeqJob:
    """One sequence to export: ``rel`` its path relative to the datasets folder ('' for a single
    sequence), ``name`` a flat, file-system-safe name (``rel`` with ``/`` -> ``__``)."""

    sequence: Sequence
    rel: str
    name: str


RERUN = "export again with --overwrite (the export is marked unfinished until it completes)"


def _failed(exc: OSError, path: Path, leftover: Path) -> WriteError:
    """The :class:`WriteError` of a write to ``path`` that failed, ``leftover`` (its partial file)
    removed."""
    try:
        os.remove(leftover)
    except OSError:
        pass
    return write_error(exc, path, RERUN)


FILES_LOG = ".dataset_forge_export_files"  # DST/: every file written so far, one path a line

_LOG: list = []  # [(DST, open log file)] of the export being written in this process


def begin_log(dst: Path) -> None:
    """Record from now on every file written below ``dst`` in ``dst/FILES_LOG`` (so that
    ``--overwrite`` removes only what an export wrote, even an interrupted one)."""
    end_log()
    try:
        _LOG.append((Path(dst), open(Path(dst) / FILES_LOG, "a", encoding="utf-8")))
    except OSError as exc:
        raise write_error(exc, Path(dst) / FILES_LOG, RERUN) from None


def end_log() -> None:
    while _LOG:
        _LOG.pop()[1].close()


def _note(path: Path) -> None:
    if not _LOG:
        return
    dst, fh = _LOG[-1]
    try:
        rel = Path(path).relative_to(dst).as_posix()
    except ValueError:
        return
    if rel not in (MARKER, FILES_LOG):
        fh.write(rel + "\n")
        fh.flush()


def logged_files(dst: Path) -> list[str]:
    """The paths (relative to ``dst``) its files log lists, in order, each once."""
    try:
        text = (Path(dst) / FILES_LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return list(dict.fromkeys(x for x in text.splitlines() if x))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it: a reader sees no torn
    file. A failed write raises :class:`dataset.verify.WriteError` naming ``path`` and the cause.
    Durable once :func:`sync_tree` has run (before the export is marked complete)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise _failed(exc, path, tmp) from None
    _note(path)


def npy_memmap(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` (replacing one there) opened as a writable memory map of
    ``shape``, its whole size allocated on the disk now: a memory map of a sparse file on a full
    disk dies with SIGBUS at the first page that cannot be stored, so a full disk or a size
    limit is a :class:`dataset.verify.WriteError` naming ``path`` here instead."""
    try:
        remove_if_exists(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _note(path)
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        if hasattr(os, "posix_fallocate"):
            with open(path, "r+b") as fh:
                try:
                    os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
                except OSError as exc:  # a file system that cannot allocate ahead
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
        return arr
    except OSError as exc:
        raise _failed(exc, path, path) from None


def sync_tree(root: Path) -> int:
    """Flush every file below ``root`` and their folders to the disk; returns the file count. A
    failure raises :class:`dataset.verify.WriteError`."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    try:
        fsync_files(files)
    except OSError as exc:
        raise write_error(exc, exc.filename or root, RERUN) from None
    return len(files)


def write_json(path: Path, obj: Any, indent: int | None = 1) -> None:
    """JSON with sorted keys and a trailing newline (byte-identical for equal content)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)
    write_bytes(Path(path), (text + "\n").encode("utf-8"))


def png_bytes(image: np.ndarray) -> bytes:
    """8-bit grey ``(H, W)`` or RGB ``(H, W, 3)`` PNG, encoded by pillow (no metadata chunks)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear values to sRGB-encoded [0, 1] (IEC 61966-2-1), clipped."""
    x = np.clip(np.nan_to_num(linear.astype(np.float64), nan=0.0), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def rgb8(frame: Frame) -> np.ndarray:
    """The frame as ``(H, W, 3)`` uint8: 8-bit files as stored, 16-bit PNG rounded to 8 bits,
    float (EXR, scene-linear) sRGB-encoded. Alpha is dropped."""
    rgb = frame.rgb
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.rint(srgb_encode(rgb) * 255.0).astype(np.uint8)


def rgb8_is_exact(seq: Sequence) -> bool:
    """Whether :func:`rgb8` returns the stored pixels unchanged (8-bit frames)."""
    return seq[0].rgb.dtype == np.uint8 if len(seq) else True


def surface_mask(frame: Frame) -> np.ndarray | None:
    """``(H, W)`` bool where the frame has a surface (``depth > 0``, else segmentation id > 0);
    None when the sequence has neither."""
    kinds = frame.sequence.kinds
    if "depth" in kinds:
        d = frame.depth
        return np.isfinite(d) & (d > 0)
    if "segmentation" in kinds:
        return frame.segmentation > 0
    return None


def flow_pair_ok(seq: Sequence, i: int) -> tuple[bool, str]:
    """Whether frame ``i``'s forward flow describes the pair (frame ``i``, frame ``i + 1``):
    the next frame is the next on the timeline and no validity flag says otherwise."""
    if not seq.flow_valid(i, "forward"):
        return False, f"frame {seq.frame_numbers[i]}: forward flow marked invalid in transforms.json"
    if not seq.flow_valid(i + 1, "backward"):
        return False, f"frame {seq.frame_numbers[i + 1]}: backward flow marked invalid in transforms.json"
    if seq.frame_numbers[i + 1] != seq.frame_numbers[i] + 1:
        return False, (f"frames {seq.frame_numbers[i]} and {seq.frame_numbers[i + 1]} are not "
                       "neighbours on the timeline: the stored flow does not describe this pair")
    return True, ""


def forward_flow(seq: Sequence, i: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Forward flow of the pair (``i``, ``i + 1``) as ``(H, W, 2)`` float32 and its ``(H, W)`` bool
    validity: false where the frame has no surface (depth 0 / id 0), where the flow is not finite,
    and everywhere when the pair is flagged invalid (the third item says why, else '')."""
    fr = seq[i]
    flow = np.ascontiguousarray(fr.flow_forward, dtype=np.float32)
    ok, why = flow_pair_ok(seq, i)
    valid = np.isfinite(flow).all(axis=-1)
    if not ok:
        valid[:] = False
    surf = surface_mask(fr)
    if surf is not None:
        valid &= surf
    return flow, valid, why


def need(seq: Sequence, kind: str, fmt: str) -> None:
    """Refuse a sequence without ground truth ``kind``, naming the render option that adds it."""
    if kind not in seq.kinds:
        raise ExportError(f"{seq.path}: no {kind} files; the {fmt} export needs them (render with "
                          f"--{KINDS[kind].flag})")


def remove_if_exists(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
