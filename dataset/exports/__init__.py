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
every file is written and flushed to the disk, again with ``"complete": true`` and the summary:
an interrupted or failed export is never taken for a finished one. Exporting the same SRC twice
gives byte-identical files. A non-empty DST is refused unless ``overwrite`` (which then only
replaces a previous export, finished or not, recognised by that file). A failed write raises
:class:`dataset.verify.WriteError` naming the file and the cause.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...text import bar, eta, format_duration
from .. import loader
from ..verify import fsync_folder
from .common import MARKER, ExportError, MissingDependency, SeqJob, sync_tree, write_json

SCHEMA = "dataset_forge.export/1"

__all__ = ["FORMATS", "ExportError", "MissingDependency", "export", "format_progress"]


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


def _check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise ExportError(f"{dst}: the destination is inside the source {src}; exports never write "
                          "into the source, choose a folder outside it")
    if d in s.parents:
        raise ExportError(f"{dst}: the destination contains the source {src}; choose a folder "
                          "outside it")
    if d.exists() and not d.is_dir():
        raise ExportError(f"{dst}: exists and is not a folder")
    if d.is_dir() and any(d.iterdir()):
        if not overwrite:
            if (d / MARKER).is_file() and not _complete(d / MARKER):
                raise ExportError(f"{dst}: holds an unfinished export (its {MARKER} says "
                                  "\"complete\": false); pass --overwrite to replace it")
            raise ExportError(f"{dst}: not empty; choose an empty or new folder, or pass --overwrite "
                              "to replace a previous export there")
        if not (d / MARKER).is_file():
            raise ExportError(f"{dst}: not empty and holds no {MARKER} (not a previous export); "
                              "refusing to delete it even with --overwrite, choose an empty folder")


def _complete(marker: Path) -> bool:
    """Whether the export marker ``marker`` says its export finished."""
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def _jobs(seqs: list[loader.Sequence], root: Path | None) -> list[SeqJob]:
    jobs = []
    for s in seqs:
        rel = s.path.relative_to(root).as_posix() if root is not None else ""
        name = rel.replace("/", "__") if rel else s.path.resolve().name
        jobs.append(SeqJob(sequence=s, rel=rel, name=name))
    return jobs


def export(format: str, src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False,
           on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Export the sequence or datasets folder ``src`` as ``format`` into ``dst``.

    ``on_progress`` receives ``{"format", "sequence", "sequences_done", "sequences_total",
    "frames_done", "frames_total", "elapsed"}`` after every frame. Returns a summary dict
    (``format``, ``dst``, ``sequences``: what was written per sequence, ``notes``). Raises
    :class:`ExportError` (bad paths, unusable data) or :class:`MissingDependency` (with the
    install line)."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    fmt = FORMATS[format]
    for mod in fmt.requires:
        try:
            __import__(mod)
        except ImportError:
            raise MissingDependency(f"export {format} needs {mod}, which is not installed: "
                                    f"{INSTALL_HINT}") from None
    src_p, dst_p = Path(src), Path(dst)
    try:
        opened = loader.load(src_p)
    except loader.DatasetError as exc:
        raise ExportError(str(exc)) from None
    if isinstance(opened, loader.Sequence):
        seqs, root = [opened], None
    else:
        seqs, root = list(opened), opened.path
    jobs = _jobs(seqs, root)
    _check_paths(src_p, dst_p, overwrite)
    if dst_p.is_dir() and overwrite and (dst_p / MARKER).is_file():
        shutil.rmtree(dst_p)
    dst_p.mkdir(parents=True, exist_ok=True)
    from ...version import __version__

    head = {"format": format, "schema": SCHEMA, "source": src_p.resolve().name}
    write_json(dst_p / MARKER, {**head, "complete": False, "dataset_forge_version": __version__})

    t0 = time.monotonic()
    total = sum(len(j.sequence) for j in jobs)
    done = {"frames": 0, "sequences": 0}

    def tick(job: SeqJob, frames: int = 1) -> None:
        done["frames"] += frames
        if on_progress is not None:
            on_progress({"format": format, "sequence": job.rel or job.name,
                         "sequences_done": done["sequences"], "sequences_total": len(jobs),
                         "frames_done": done["frames"], "frames_total": total,
                         "elapsed": time.monotonic() - t0})

    import importlib

    module = importlib.import_module(f"{__name__}.{fmt.module}")
    per_seq: list[dict[str, Any]] = []
    notes: list[str] = []
    if isinstance(opened, loader.Dataset):  # not part of the dataset its manifest describes
        notes += [f"{p.relative_to(opened.path).as_posix()}: not exported: {why}"
                  for p, why in opened.skipped.items()]
    ctx: dict[str, Any] = {}
    for job in jobs:
        res = module.export_sequence(job, dst_p, lambda n=1, j=job: tick(j, n), ctx)
        done["sequences"] += 1
        tick(job, 0)
        per_seq.append({"sequence": job.rel or job.name, **res.pop("summary", {})})
        notes += [f"{job.rel or job.name}: {n}" for n in res.pop("notes", [])]
    if hasattr(module, "finish"):
        module.finish(jobs, dst_p, ctx)
    summary = {**head, "sequences": per_seq, "notes": notes}
    sync_tree(dst_p)  # every file durable before the marker says so
    write_json(dst_p / MARKER, {**summary, "complete": True, "dataset_forge_version": __version__})
    fsync_folder(dst_p)
    return {**summary, "dst": str(dst_p)}


def format_progress(e: dict[str, Any], width: int = 20) -> str:
    """``export sintel: [#####-----] 12/40 frames, 1/3 sequences, 0:03 elapsed, ETA 0:07  SEQ``."""
    done, total = e["frames_done"], e["frames_total"]
    el = e["elapsed"]
    return (f"export {e['format']}: {bar(done / total if total else 1.0, width)} {done}/{total} "
            f"frames, {e['sequences_done']}/{e['sequences_total']} sequences, "
            f"{format_duration(el)} elapsed, ETA {format_duration(eta(el, done, total))}  "
            f"{e['sequence']}")

