# SPDX-License-Identifier: GPL-3.0-or-later
"""``coco``: COCO instance annotations per sequence (read by ``pycocotools.coco.COCO``)::

    DST[/SEQ]/annotations.json      COCO instances (+ the video fields of COCO-VID)
    DST[/SEQ]/images/frame_NNNNNN.png   the frames (8-bit RGB), NNNNNN = timeline frame number

``SEQ`` is the sequence's path below a datasets folder (none for a single sequence).

* ``categories``: the classes of ``segmentation_ids.json`` (its ``class`` field, else the object
  name), sorted by name, ids 1..C; background (id 0) is not a category.
* ``videos``: one, ``{"id": 1, "name": SEQ or the folder name}``.
* ``images``: one per frame in sequence order, ``id = index + 1``, ``frame_id = index`` (0-based,
  COCO-VID / mmtracking), ``frame_number`` (timeline), ``video_id = 1``.
* ``annotations``: one per instance visible in a frame (ids ascending; :func:`instance_rles`
  makes them in one pass over the pixels), ``id`` running from 1,
  ``segmentation`` RLE from ``pycocotools.mask.encode`` (``counts`` as str), ``bbox = [x, y, w, h]``
  and ``area`` from that RLE, ``iscrowd = 0``, ``instance_id`` (stable across frames), its
  ``object_id`` and ``object`` name.

Instances are the per-instance ids of the segmentation EXR (channel ``instance``, mapped in
``segmentation_ids.json`` → ``instances``) when the sequence has them, so every copy of an
instanced object is its own annotation; otherwise the object ids (channel ``V``), and
``instance_id`` equals ``object_id``. ``info.id_source`` says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ..documents.base import JSONObject
from ..layout import RGB_STEM, frame_digits
from .common import ExportError, SeqJob, SequenceResult, need, png_bytes, rgb8, write_bytes, write_json


def _class_of(entry: Any, oid: str) -> str:
    if isinstance(entry, dict):
        return str(entry.get("class") or entry.get("name") or f"object_{oid}")
    return str(entry)


def _name_of(entry: Any, oid: str) -> str:
    return str(entry.get("name", f"object_{oid}")) if isinstance(entry, dict) else str(entry)


class Rle(TypedDict):
    """A compressed COCO RLE as pycocotools makes it: ``size`` (h, w) and ``counts``."""

    size: list[int]
    counts: bytes


class CocoImage(TypedDict):
    id: int
    file_name: str
    width: int
    height: int
    video_id: int
    frame_id: int
    frame_number: int


class CocoSegmentation(TypedDict):
    size: list[int]
    counts: str


class CocoAnnotation(TypedDict):
    """One instance in one image (``bbox``: x, y, w, h in pixels; ``area``: pixels)."""

    id: int
    image_id: int
    category_id: int
    segmentation: CocoSegmentation
    bbox: list[float]
    area: int
    iscrowd: int
    instance_id: int
    object_id: int
    object: str


def instance_rles(seg: np.ndarray, mask_util) -> list[tuple[int, Rle]]:
    """``[(id, compressed COCO RLE)]`` of every non-zero id of ``seg`` ``(H, W)``, ascending: the
    same RLE as ``mask.encode(seg == id)``, made from each id's runs in column-major order in one
    pass over the pixels (not one full-image mask per instance: 50,000 instances cost the same
    as a few)."""
    h, w = seg.shape
    flat = np.ascontiguousarray(seg.T).ravel()
    nz = np.flatnonzero(flat)
    if not len(nz):
        return []
    vals = flat[nz]
    order = np.argsort(vals, kind="stable")  # positions stay ascending within an id
    vals, pos = vals[order], nz[order]
    starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
    out = []
    for a, b in zip(starts, np.r_[starts[1:], len(vals)]):
        p = pos[a:b]
        br = np.flatnonzero(np.diff(p) != 1)
        run_s = np.r_[p[0], p[br + 1]]
        run_e = np.r_[p[br] + 1, p[-1] + 1]
        counts = np.empty(2 * len(run_s) + 1, np.int64)
        counts[0] = run_s[0]
        counts[1::2] = run_e - run_s
        counts[2:-1:2] = run_s[1:] - run_e[:-1]
        counts[-1] = h * w - run_e[-1]
        if counts[-1] == 0:
            counts = counts[:-1]
        rle = mask_util.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        out.append((int(vals[a]), rle))
    return out


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    from pycocotools import mask as mask_util

    seq = job.sequence
    need(seq, "segmentation", "coco")
    out = dst / job.rel if job.rel else dst
    ids = seq.ids.get("ids") if isinstance(seq.ids, dict) else None
    if not ids:
        raise ExportError(f"{seq.path}: no segmentation_ids.json with 'ids'; the coco export needs "
                          "the id -> class table (re-render with --segmentations)")
    table, id_source = ids, "object ids of the segmentation pass (segmentation_ids.json ids)"
    instances = seq.ids.get("instances")
    read_ids = None
    if instances and seq.conventions.get("segmentation", {}).get("instance_channel"):
        try:
            from ..objects import read_ids
        except ImportError:  # pragma: no cover - an older package without the instance layer
            read_ids = None
        if read_ids is not None:
            table = instances
            id_source = "instance ids (segmentation EXR channel 'instance', segmentation_ids.json instances)"
    classes = sorted({_class_of(v, k) for k, v in table.items()})
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    categories = [{"id": cat_id[c], "name": c, "supercategory": c} for c in classes]
    video = {"id": 1, "name": job.rel or seq.path.resolve().name}
    images: list[CocoImage] = []
    anns: list[CocoAnnotation] = []
    for i, fr in enumerate(seq):
        seg = read_ids(fr.path("segmentation"))[1].astype(np.int64) if read_ids is not None \
            else fr.segmentation
        h, w = seg.shape
        name = f"images/{RGB_STEM}_{frame_digits(seq.frame_numbers[i])}.png"
        write_bytes(out / name, png_bytes(rgb8(fr)))
        images.append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h),
                       "video_id": 1, "frame_id": i, "frame_number": seq.frame_numbers[i]})
        for oid, rle in instance_rles(seg, mask_util):
            key = str(oid)
            if key not in table:
                raise ExportError(f"{fr.path('segmentation')}: id {key} is not in "
                                  "segmentation_ids.json; the ids file does not match the frames")
            entry = table[key]
            object_id = int(entry.get("object_id", oid)) if table is not ids else int(oid)
            bbox = [float(x) for x in mask_util.toBbox(rle)]
            area = int(mask_util.area(rle))
            anns.append({"id": len(anns) + 1, "image_id": i + 1,
                         "category_id": cat_id[_class_of(entry, key)],
                         "segmentation": {"size": [int(h), int(w)],
                                          "counts": rle["counts"].decode("ascii")},
                         "bbox": bbox, "area": area, "iscrowd": 0, "instance_id": int(oid),
                         "object_id": object_id,
                         "object": str(entry.get("object")) if table is not ids else _name_of(entry, key)})
        fr.clear()
        tick()
    doc = {"info": {"description": f"Dataset Forge export of {video['name']}",
                    "id_source": id_source},
           "licenses": [], "categories": categories, "videos": [video], "images": images,
           "annotations": anns}
    write_json(out / "annotations.json", doc, indent=None)
    return {"summary": {"images": len(images), "annotations": len(anns), "categories": classes},
            "notes": []}
