# SPDX-License-Identifier: GPL-3.0-or-later
"""The objects files of one sequence folder (the model is :mod:`.objects`): reading a sequence's
table and records, version 1 or 2 (:class:`ObjectsSource`), writing them as frames finish
(:class:`SequenceWriter`), and rewriting a version-1 ``objects.json`` as version 2
(:func:`upgrade_v1`). Pure Python + numpy."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...settings import RECORD_MODES
from .. import layout
from .base import DocumentError, fail, read_json
from .objects import (
    ARRAYS,
    SCHEMA,
    SCHEMA_V1,
    FrameRecord,
    InstanceRow,
    InstanceRowDict,
    ObjectsDoc,
    read_ids,
    v1_records,
)
from .segmentation_ids import InstanceId


# -- a sequence's objects, read ----------------------------------------------------------------------
class ObjectsSource:
    """The objects files of one sequence folder, version 1 or 2, read lazily: the table at once,
    a frame's record when asked (:meth:`record`)."""

    def __init__(self, seq_dir: str | os.PathLike, objects_json: str | os.PathLike):
        self.seq_dir = Path(seq_dir)
        self.path = Path(objects_json)
        raw = read_json(self.path)
        where = str(self.path)
        schema = raw.get("schema") if isinstance(raw, dict) else None
        self._v1: dict[int, FrameRecord] | None = None
        self.v1_object_to_camera: dict[int, np.ndarray] | None = None
        if schema not in (SCHEMA_V1, SCHEMA, None):
            raise fail(where, f"schema {schema!r} is not one this version reads ({SCHEMA_V1!r}, "
                              f"{SCHEMA!r}); update dataset_forge")
        if schema in (SCHEMA_V1, None):
            self.schema = SCHEMA_V1
            rows, self._v1, self.v1_object_to_camera = v1_records(raw, where)
            self.doc = ObjectsDoc(records="all", frames=sorted(self._v1), instances=rows)
        else:
            self.schema = SCHEMA
            self.doc = ObjectsDoc.from_dict(raw, where)
        self._frames = set(self.doc.frames)
        self._inside: layout.Inside | None = None  # the record files' containment, made on first use

    @property
    def rows(self) -> list[InstanceRow]:
        return self.doc.instances

    def has(self, frame: int) -> bool:
        return frame in self._frames

    def record_path(self, frame: int) -> Path:
        """The record file of ``frame`` (checked to stay inside the sequence folder)."""
        try:
            if self._inside is None:
                self._inside = layout.Inside(self.seq_dir)
            return self._inside(self.doc.frame_file(frame), "objects frames_file")
        except layout.LayoutError as exc:
            raise DocumentError(str(exc)) from None

    def record(self, frame: int) -> FrameRecord | None:
        """The record of ``frame``, or None when ``objects.json`` lists no record for it. A listed
        record whose file is missing or broken is a :class:`DocumentError` naming the file."""
        if frame not in self._frames:
            return None
        if self._v1 is not None:
            return self._v1[frame]
        p = self.record_path(frame)
        if not p.is_file():
            raise DocumentError(f"{p}: missing (objects.json lists a record for frame {frame}); "
                                "re-render the sequence to write it")
        rec = FrameRecord.read(p)
        if rec.frame != frame:
            raise DocumentError(f"{p}: holds frame {rec.frame}, expected {frame}")
        return rec


# -- writing a sequence --------------------------------------------------------------------------------
class SequenceWriter:
    """Writes one sequence's records as its frames finish and the table at its end.

    ``frame(rec)``: select rows by ``mode`` and write the frame's record file (returns its path
    relative to the sequence folder, one of the frame's journaled files). ``kept(frame)``: a
    frame skipped as already done; its record on disk is read back (ids only). ``finish(rows)``
    writes ``objects.json`` from ``rows`` (``{instance_id: dict of InstanceRow fields}``, e.g. the
    tracker's) limited to the listed instances, and returns the ``instances`` map of
    ``segmentation_ids.json`` (the instances with visible pixels in some frame). ``writer``
    (the tracker's :class:`dataset.objects.IdsWriter`): the record files are written on its
    thread, after the frame's id file (its ``wait(frame)`` covers them: 1-4 ms a frame off the
    main thread); else at once."""

    def __init__(self, seq_dir: str | os.PathLike, mode: str = "visible", writer=None):
        if mode not in RECORD_MODES:
            raise ValueError(f"object_records {mode!r} is not one of {', '.join(RECORD_MODES)}")
        self.seq_dir, self.mode, self.writer = Path(seq_dir), mode, writer
        self.frames: set[int] = set()
        self.listed: set[int] = set()
        self.visible: set[int] = set()

    def _note(self, frame: int, ids: np.ndarray, px: np.ndarray) -> None:
        self.frames.add(int(frame))
        self.listed.update(ids.tolist())
        self.visible.update(ids[px > 0].tolist())

    def frame(self, rec: FrameRecord) -> str:
        rel = layout.objects_file(rec.frame)
        out = rec.select(self.mode)
        if self.writer is None:
            out.write(self.seq_dir / rel)
        else:
            self.writer.run(rec.frame, "write_records_thread",
                            functools.partial(out.write, self.seq_dir / rel))
        self._note(rec.frame, out.instance_id, out.px_count_visib)
        return rel

    def kept(self, frame: int) -> None:
        p = self.seq_dir / layout.objects_file(frame)
        if p.is_file():
            self._note(frame, *read_ids(p))

    def finish(self, rows: Mapping[int, InstanceRowDict]
               ) -> tuple[ObjectsDoc, dict[str, InstanceId]]:
        # the rows are ours (the tracker's, or a version-1 table read and checked): made
        # directly, not parsed again (20 us a row, 0.6 s at 30,000 listed instances); a table
        # with ``rows_of`` (render_passes.instance_infos.InstanceInfos) finds them in bulk
        ids = sorted(self.listed)
        if isinstance(rows, BulkRows):
            table = rows.rows_of(np.array(ids, np.int64))
        else:
            table = [InstanceRow(**r) for i in ids if (r := rows.get(i)) is not None]
        doc = ObjectsDoc(records=self.mode, frames=sorted(self.frames), instances=table)
        doc.write(self.seq_dir / layout.OBJECTS_FILE)
        # the entries share the rows' lists (a third of the objects: a collection of
        # Blender's whole heap, 60 ms, comes with every few hundred thousand new ones)
        vis = self.visible
        ids_map = {str(r.instance_id): InstanceId(r.object, r.object_id, r.instancer_chain,
                                                  r.persistent_id, r.category)
                   for r in table if r.instance_id in vis}
        return doc, ids_map


@runtime_checkable
class BulkRows(Protocol):
    """A row table that finds many rows at once: ``rows_of(ids (m,) int64)`` -> the rows of
    those ids it holds, in order (what ``get`` gives one by one, as :class:`InstanceRow`)."""

    def rows_of(self, ids: np.ndarray) -> list[InstanceRow]: ...


def upgrade_v1(seq_dir: str | os.PathLike, doc: Any, mode: str = "all") -> ObjectsDoc:
    """Write version-1 ``objects.json`` document ``doc`` as schema 2 into ``seq_dir`` (a record
    per frame, then ``objects.json``). Every entry needs its boxes (``bbox_3d``, ``bbox_obj``,
    ``bbox_visib``, ``px_count_visib``). The records are not in the frames' journal lines: a
    resumed render renders those frames again."""
    seq_dir = Path(seq_dir)
    rows, records, _ = v1_records(doc, str(seq_dir / layout.OBJECTS_FILE))
    w = SequenceWriter(seq_dir, mode)
    for frame in sorted(records):
        r = records[frame]
        w.frame(FrameRecord.make(frame, r.camera, f"{seq_dir / layout.OBJECTS_FILE} frame {frame}",
                                 **{k: getattr(r, k) for k in ARRAYS}))
    return w.finish({r.instance_id: r.to_dict() for r in rows})[0]
