# SPDX-License-Identifier: GPL-3.0-or-later
"""Export rendered sequences into the layouts other tools read. Pure Python + numpy (+ pillow).

::

    from dataset_forge.dataset.exports import export
    export("sintel", "DATASETS/renders", "out/sintel")        # every sequence below the folder
    export("colmap", "DATASETS/renders/orbit/001-00001-00025", "out/orbit")   # one sequence

Formats (see docs/use_the_dataset.md for the layouts and what reads them):

* ``sintel``: MPI-Sintel training layout (``Sintel/training/{clean,flow,invalid,depth}/SCENE/``);
* ``kitti-flow``: KITTI 2015 flow (``KittiFlow/training/{image_2,flow_occ}/``);
* ``coco``: COCO instance annotations per sequence (``annotations.json`` + ``images/``), needs
  pycocotools;
* ``colmap``: COLMAP text model per sequence (``sparse/0/*.txt`` + ``images/``);
* ``visionsim-npy``: visionsim's NPY dataset per sequence (``frames.npy``, ``depths.npy``,
  ``transforms.json``);
* ``kitti-stereo``: KITTI 2015 stereo (``KittiStereo/training/{image_2,image_3,disp_occ_0}/``);
* ``sceneflow-stereo``: FlyingThings3D stereo, both views, disparity as PFM.

Sources are read through :mod:`dataset.loader` only; nothing under SRC is ever written. Every
export writes ``dataset_forge_export.json`` into DST first with ``"complete": false`` and, once
every file is written and flushed to the disk, again with ``"finished": true``, the summary and
every file it wrote (``files``); ``"complete"`` is true only when, besides, the source was
complete (:mod:`dataset.completeness`: every planned sequence there, no run writing it; an
incomplete source is refused unless ``allow_incomplete``, and ``incomplete`` says why): an
interrupted or failed export is never taken for a finished one. Exporting the same SRC twice
gives byte-identical files. A non-empty DST is refused unless ``overwrite`` (which then only
replaces a previous export, finished or not, recognised by that file, and removes only the files
it wrote: a file the user added stays). A failed write raises
:class:`dataset.verify.WriteError` naming the file and the cause.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from ...text import bar, eta, format_duration
from .. import loader
from ..completeness import assess
from ..documents.base import DocumentError, JSONObject, read_json
from ..documents.export import SCHEMA, ExportDoc, ExportDocDict
from ..verify import fsync_folder, write_error
from .common import (
    FILES_LOG,
    MARKER,
    ExportError,
    MissingDependency,
    SeqJob,
    begin_log,
    end_log,
    logged_files,
    sync_tree,
    write_json,
)

__all__ = ["FORMATS", "SCHEMA", "ExportError", "MissingDependency", "export", "format_progress"]


@dataclass(frozen=True)
class Format:
    """One export format: its module (``run(jobs, dst, say)``), what it needs, one-line help."""

    name: str
    module: str
    help: str
    requires: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("sintel", "sintel", "MPI-Sintel training layout: clean/ PNG, flow/ .flo (Middlebury), "
           "invalid/ masks, depth/ .dpt (torchvision.datasets.Sintel)"),
    Format("kitti-flow", "kitti", "KITTI 2015 flow: image_2/ pairs and flow_occ/ 16-bit PNGs with "
           "valid mask (torchvision.datasets.KittiFlow)"),
    Format("coco", "coco", "COCO instance annotations per sequence with RLE masks (pycocotools)",
           ("pycocotools",)),
    Format("colmap", "colmap", "COLMAP text model per sequence: cameras/images/points3D.txt "
           "(pycolmap, Gaussian splatting, NeRF tools)"),
    Format("visionsim-npy", "visionsim", "visionsim NPY dataset per sequence: frames.npy, "
           "depths.npy, transforms.json (visionsim emulators)"),
    Format("kitti-stereo", "stereo", "KITTI 2015 stereo: image_2/ left and image_3/ right frames, "
           "disp_occ_0/ 16-bit PNG disparity * 256, 0 invalid (needs --stereo-baseline)"),
    Format("sceneflow-stereo", "sceneflow", "FlyingThings3D (SceneFlow) stereo: frames_cleanpass/ "
           "and disparity/ PFM for both views (needs --stereo-baseline)"),
)}

INSTALL_HINT = "pip install -r requirements-exports.txt"


def _check_paths(src: Path, dst: Path, overwrite: bool) -> ExportDoc | None:
    """Refuse a destination inside or around the source, a file, or a non-empty folder that is
    not a previous export (or one, without ``overwrite``); returns that previous export's record."""
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise ExportError(f"{dst}: the destination is inside the source {src}; exports never write "
                          "into the source, choose a folder outside it")
    if d in s.parents:
        raise ExportError(f"{dst}: the destination contains the source {src}; choose a folder "
                          "outside it")
    if d.exists() and not d.is_dir():
        raise ExportError(f"{dst}: exists and is not a folder")
    if not (d.is_dir() and any(d.iterdir())):
        return None
    previous = _record(d / MARKER)
    if not overwrite:
        if previous is not None and not previous.finished:
            raise ExportError(f"{dst}: holds an unfinished export (its {MARKER} says "
                              "\"complete\": false); pass --overwrite to replace it")
        raise ExportError(f"{dst}: not empty; choose an empty or new folder, or pass --overwrite "
                          "to replace a previous export there")
    if previous is None:
        raise ExportError(f"{dst}: not empty and holds no readable {MARKER} (not a previous "
                          "export); refusing to delete it even with --overwrite, choose an empty "
                          "folder")
    return previous


def _record(marker: Path) -> ExportDoc | None:
    """The export record ``marker``, or None when there is none or it cannot be read."""
    if not marker.is_file():
        return None
    try:
        return ExportDoc.from_dict(read_json(marker), str(marker))
    except DocumentError:
        return None


def _remove_previous(dst: Path, previous: ExportDoc) -> None:
    """Remove what the previous export in ``dst`` wrote (its record's ``files`` and the files log
    of an unfinished one), then its record, log and the folders left empty; anything else (a
    file the user added) stays."""
    written = list(dict.fromkeys([*previous.files, *logged_files(dst)]))
    if not written and any(p.name not in (MARKER, FILES_LOG) for p in dst.iterdir()):
        raise ExportError(f"{dst}: its {MARKER} lists no files (written by an older Dataset Forge); "
                          "refusing to guess what to delete: remove the folder by hand")
    root = dst.resolve()
    folders = set()
    for rel in written:
        p = dst / rel
        if Path(rel).is_absolute() or root not in p.resolve().parent.parents and \
                p.resolve().parent != root:
            continue  # never outside DST
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise write_error(exc, p, "remove it by hand, then export again") from None
        folders.update(q for q in p.parents if root in q.resolve().parents)
    for name in (MARKER, FILES_LOG):
        (dst / name).unlink(missing_ok=True)
    for folder in sorted(folders, key=lambda q: len(q.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: something of the user's


def _jobs(seqs: list[loader.Sequence], root: Path | None) -> list[SeqJob]:
    jobs = []
    for s in seqs:
        rel = s.path.relative_to(root).as_posix() if root is not None else ""
        name = rel.replace("/", "__") if rel else s.path.resolve().name
        jobs.append(SeqJob(sequence=s, rel=rel, name=name))
    return jobs


def export(format: str, src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False,
           on_progress: Callable[[ExportProgress], None] | None = None,
           allow_incomplete: bool = False) -> ExportSummary:
    """Export the sequence or datasets folder ``src`` as ``format`` into ``dst``.

    ``on_progress`` receives ``{"format", "sequence", "sequences_done", "sequences_total",
    "frames_done", "frames_total", "elapsed"}`` after every frame. Returns a summary dict
    (``format``, ``dst``, ``sequences``: what was written per sequence, ``notes``). Raises
    :class:`ExportError` (bad paths, unusable data, a source whose plan is not complete or that a
    run is writing, unless ``allow_incomplete``: :mod:`dataset.completeness`) or
    :class:`MissingDependency` (with the install line)."""
    fmt = _format(format)
    src_p, dst_p = Path(src), Path(dst)
    opened, jobs = _open_source(src_p)
    gaps = assess(src_p)
    if not gaps.complete and not allow_incomplete:
        raise ExportError(f"{src_p}: not complete: {'; '.join(gaps.lines())}; pass "
                          "--allow-incomplete (allow_incomplete=True) to export what is there")
    previous = _check_paths(src_p, dst_p, overwrite)
    if previous is not None:
        _remove_previous(dst_p, previous)
    dst_p.mkdir(parents=True, exist_ok=True)
    from ...version import __version__

    head = {"format": format, "source": src_p.resolve().name,
            "dataset_forge_version": __version__, "incomplete": gaps.lines()}
    write_json(dst_p / MARKER, ExportDoc(**head, finished=False, complete=False).to_dict())
    begin_log(dst_p)
    notes: list[str] = []
    if isinstance(opened, loader.Dataset):  # not part of the dataset its manifest describes
        notes += [f"{p.relative_to(opened.path).as_posix()}: not exported: {why}"
                  for p, why in opened.skipped.items()]
    per_seq = _export_sequences(fmt, jobs, dst_p, _Progress(format, jobs, on_progress), notes)
    files = logged_files(dst_p)
    end_log()
    sync_tree(dst_p)  # every file durable before the record says so
    doc = ExportDoc(**head, finished=True, complete=gaps.complete, sequences=per_seq,
                    notes=notes, files=files)
    write_json(dst_p / MARKER, doc.to_dict())
    (dst_p / FILES_LOG).unlink(missing_ok=True)
    fsync_folder(dst_p)
    summary: ExportSummary = {**doc.to_dict(), "dst": str(dst_p)}
    del summary["files"]
    return summary


def _format(format: str) -> Format:
    """The export format named ``format``, its Python dependencies importable; raises
    :class:`ExportError` for an unknown name, :class:`MissingDependency` with the install line."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    fmt = FORMATS[format]
    for mod in fmt.requires:
        try:
            __import__(mod)
        except ImportError:
            raise MissingDependency(f"export {format} needs {mod}, which is not installed: "
                                    f"{INSTALL_HINT}") from None
    return fmt


def _open_source(src_p: Path) -> tuple[loader.Sequence | loader.Dataset, list[SeqJob]]:
    """The sequence or dataset at ``src_p`` and one job per sequence; a folder the loader refuses
    is an :class:`ExportError` with its message."""
    try:
        opened = loader.load(src_p)
    except loader.DatasetError as exc:
        raise ExportError(str(exc)) from None
    if isinstance(opened, loader.Sequence):
        return opened, _jobs([opened], None)
    return opened, _jobs(list(opened), opened.path)


class ExportProgress(TypedDict):
    """What ``on_progress`` receives after every frame (``elapsed``: s since the start)."""

    format: str
    sequence: str
    sequences_done: int
    sequences_total: int
    frames_done: int
    frames_total: int
    elapsed: float


class ExportSummary(ExportDocDict, total=False):
    """What :func:`export` returns: the export record without ``files``, and ``dst``."""

    dst: str


class _Progress:
    """Counts frames and sequences exported and reports them to ``on_progress`` (if any) with
    the time since the start (s)."""

    def __init__(self, format: str, jobs: list[SeqJob],
                 on_progress: Callable[[ExportProgress], None] | None):
        self.format, self.jobs, self.on_progress = format, jobs, on_progress
        self.t0 = time.monotonic()
        self.total = sum(len(j.sequence) for j in jobs)
        self.frames = self.sequences = 0

    def tick(self, job: SeqJob, frames: int = 1) -> None:
        self.frames += frames
        if self.on_progress is not None:
            self.on_progress({"format": self.format, "sequence": job.rel or job.name,
                              "sequences_done": self.sequences, "sequences_total": len(self.jobs),
                              "frames_done": self.frames, "frames_total": self.total,
                              "elapsed": time.monotonic() - self.t0})


def _export_sequences(fmt: Format, jobs: list[SeqJob], dst_p: Path, progress: _Progress,
                      notes: list[str]) -> list[JSONObject]:
    """Run the format's ``export_sequence`` on every job (then its ``finish``, if any); returns
    each sequence's summary and appends its notes to ``notes``."""
    import importlib

    module = importlib.import_module(f"{__name__}.{fmt.module}")
    per_seq: list[JSONObject] = []
    ctx: JSONObject = {}  # the format's own, across its sequences (what its finish writes)
    for job in jobs:
        res = module.export_sequence(job, dst_p, lambda n=1, j=job: progress.tick(j, n), ctx)
        progress.sequences += 1
        progress.tick(job, 0)
        per_seq.append({"sequence": job.rel or job.name, **res.pop("summary", {})})
        notes += [f"{job.rel or job.name}: {n}" for n in res.pop("notes", [])]
    if hasattr(module, "finish"):
        module.finish(jobs, dst_p, ctx)
    return per_seq


def format_progress(e: ExportProgress, width: int = 20) -> str:
    """``export sintel: [#####-----] 12/40 frames, 1/3 sequences, 0:03 elapsed, ETA 0:07  SEQ``."""
    done, total = e["frames_done"], e["frames_total"]
    el = e["elapsed"]
    return (f"export {e['format']}: {bar(done / total if total else 1.0, width)} {done}/{total} "
            f"frames, {e['sequences_done']}/{e['sequences_total']} sequences, "
            f"{format_duration(el)} elapsed, ETA {format_duration(eta(el, done, total))}  "
            f"{e['sequence']}")

