# SPDX-License-Identifier: GPL-3.0-or-later
"""The loader's objects part: ``objects.json`` as arrays (:class:`Objects`, :class:`FrameObjects`)
and the per-pixel instance ids of the segmentation EXR (``Sequence.objects``,
``Sequence.instance_channel``, ``Frame.objects``, ``Frame.instances``). Pure Python + numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import exr
from .loader_schema import DatasetError
from .objects import INSTANCE_CHANNEL

# Channels of the segmentation EXR that may hold the per-pixel instance id when ``conventions``
# does not name one (``conventions.segmentation.instance_channel``).
INSTANCE_CHANNELS = (INSTANCE_CHANNEL, "instance_id")


def _instance_ids(raw: np.ndarray) -> np.ndarray:
    """``(H, W)`` int64 instance ids from the stored channel (uint32 exact, float rounded)."""
    return (raw.astype(np.int64) if raw.dtype.kind in "ui"
            else np.rint(raw.astype(np.float64)).astype(np.int64))



@dataclass(frozen=True)
class FrameObjects:
    """The ``N`` instances one frame's object record lists (visible ones by default; see
    ``objects.json`` ``records``), as arrays sorted by instance id. Stored: ids,
    ``object_to_world``, ``box_lo``/``box_hi``, ``bbox_obj``, ``bbox_visib``, ``px_count_visib``;
    derived: ``object_to_camera`` (from the frame's ``transform_matrix``; version-1 files: as
    stored) and ``bbox_3d`` (see ``dataset/documents/objects.py``)."""

    frame: int
    camera: str | None
    instance_ids: np.ndarray      # (N,) int64
    object_ids: np.ndarray        # (N,) int64
    names: list[str]              # (N,) the instanced object's name
    categories: list[str]         # (N,) class
    deforming: np.ndarray         # (N,) bool
    object_to_world: np.ndarray   # (N, 4, 4) float64
    object_to_camera: np.ndarray  # (N, 4, 4) float64, OpenCV camera axes
    bbox_3d: np.ndarray           # (N, 8, 3) float64 world-space corners
    bbox_obj: np.ndarray          # (N, 4) float64 [x, y, w, h] amodal, clipped
    bbox_visib: np.ndarray        # (N, 4) int64 [x, y, w, h] of the visible pixels
    px_count_visib: np.ndarray    # (N,) int64
    box_lo: np.ndarray | None = None    # (N, 3) float64 object-space box of the evaluated geometry
    box_hi: np.ndarray | None = None    # (N, 3) float64
    columns: np.ndarray | None = None   # (N,) int64 row of each in Objects' instance table

    def __len__(self) -> int:
        return len(self.instance_ids)


_DENSE = ("present", "object_to_world", "object_to_camera", "bbox_3d", "bbox_obj", "bbox_visib",
          "px_count_visib")
_STORED = ("present", "object_to_world")  # the dense views the records hold as they are


class Objects:
    """A sequence's objects (``objects.json`` and its per-frame records, schema 2, or a version-1
    ``objects.json``): the instance table as ``(I,)`` arrays sorted by instance id, and each
    frame's record read when asked (:meth:`frame`, :meth:`record`: one file per frame).

    The dense ``(F, I, ...)`` views ``present``, ``object_to_world``, ``object_to_camera``,
    ``bbox_3d``, ``bbox_obj``, ``bbox_visib``, ``px_count_visib`` (NaN / ``-1`` where a frame does
    not list an instance) read every record and take ``F x I`` memory: built on first use, for
    short sequences (``present`` and ``object_to_world`` alone, asked first, skip the derived
views); per-frame code uses :meth:`frame`."""

    def __init__(self, source: Any, frame_numbers: list[int], poses: Any):
        from .documents.objects_files import ObjectsSource

        self.source: ObjectsSource = source
        self._poses = poses  # () -> (F, 4, 4) camera-to-world, Blender axes
        rows = source.rows
        self.schema: str = source.schema
        self.records: str = source.doc.records
        self.instance_ids = np.array([r.instance_id for r in rows], np.int64)
        self.object_ids = np.array([r.object_id for r in rows], np.int64)
        self.names = [r.object for r in rows]
        self.categories = [r.category for r in rows]
        self.instancer_chains = [list(r.instancer_chain) for r in rows]
        self.persistent_ids = [list(r.persistent_id) for r in rows]
        self.deforming = np.array([r.deforming for r in rows], bool)
        self.frames = [int(n) for n in frame_numbers]
        self._cache: dict[int, Any] = {}
        self._dense: dict[str, np.ndarray] | None = None
        self._stored: dict[str, np.ndarray] | None = None
        self._cameras: list[str | None] | None = None

    def index(self) -> dict[int, int]:
        """``{instance_id: column}``."""
        return {int(k): i for i, k in enumerate(self.instance_ids)}

    def _error(self, exc: Exception) -> DatasetError:
        return DatasetError(str(exc))

    def record(self, f: int):
        """The :class:`~dataset_forge.dataset.documents.objects.FrameRecord` of frame ``f`` (index
        into the sequence), or None when it has none. The last two are kept."""
        from .documents.base import DocumentError

        if f in self._cache:
            return self._cache[f]
        try:
            rec = self.source.record(self.frames[f])
        except DocumentError as exc:
            raise self._error(exc) from None
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[f] = rec
        return rec

    @property
    def cameras(self) -> list[str | None]:
        """``(F,)`` camera name of each frame's record (None without one)."""
        if self._cameras is None:
            self._cameras = []
            for f in range(len(self.frames)):
                rec = self.record(f)
                self._cameras.append(None if rec is None or not rec.camera else rec.camera)
        return self._cameras

    def columns(self, ids: np.ndarray, where: str = "") -> np.ndarray:
        """Row of each instance id in the table (a :class:`DatasetError` for one not in it)."""
        ids = np.asarray(ids, np.int64)
        j = np.clip(np.searchsorted(self.instance_ids, ids), 0, max(len(self.instance_ids) - 1, 0))
        ok = (self.instance_ids[j] == ids) if len(self.instance_ids) else np.zeros(len(ids), bool)
        if not ok.all():
            raise DatasetError(f"{self.source.path}: {where}instance {int(ids[~ok][0])} is not in "
                               "'instances'")
        return j.astype(np.int64)

    def frame(self, f: int) -> FrameObjects:
        """Frame ``f`` (index into the sequence): the instances its record lists."""
        from .documents.objects import FrameRecord

        rec = self.record(f)
        if rec is None:
            rec = FrameRecord.empty(self.frames[f], "")
        cols = self.columns(rec.instance_id, f"frame {rec.frame}: ")
        stored = (self.source.v1_object_to_camera or {}).get(rec.frame)
        if stored is not None:
            o2c = stored
        else:
            o2c = rec.object_to_camera(self._poses()[f]) if len(rec) else np.zeros((0, 4, 4))
        return FrameObjects(
            frame=rec.frame, camera=rec.camera or None, instance_ids=rec.instance_id.astype(np.int64),
            object_ids=self.object_ids[cols], names=[self.names[c] for c in cols],
            categories=[self.categories[c] for c in cols], deforming=self.deforming[cols],
            object_to_world=rec.object_to_world, object_to_camera=o2c, bbox_3d=rec.bbox_3d(),
            bbox_obj=rec.bbox_obj, bbox_visib=rec.bbox_visib.astype(np.int64),
            px_count_visib=rec.px_count_visib, box_lo=rec.box_lo, box_hi=rec.box_hi, columns=cols)

    def _build_dense(self) -> dict[str, np.ndarray]:
        n_f, n_i = len(self.frames), len(self.instance_ids)
        d = {"present": np.zeros((n_f, n_i), bool),
             "object_to_world": np.full((n_f, n_i, 4, 4), np.nan),
             "object_to_camera": np.full((n_f, n_i, 4, 4), np.nan),
             "bbox_3d": np.full((n_f, n_i, 8, 3), np.nan), "bbox_obj": np.full((n_f, n_i, 4), np.nan),
             "bbox_visib": np.full((n_f, n_i, 4), -1, np.int64),
             "px_count_visib": np.full((n_f, n_i), -1, np.int64)}
        for f in range(n_f):
            fo = self.frame(f)
            c = fo.columns
            d["present"][f, c] = True
            for k in _DENSE[1:]:
                d[k][f, c] = getattr(fo, k)
        return d

    def _build_stored(self) -> dict[str, np.ndarray]:
        """``present`` and ``object_to_world`` as :meth:`_build_dense` makes them (each record
        read and its instances looked up the same way), without the derived views."""
        n_f, n_i = len(self.frames), len(self.instance_ids)
        d = {"present": np.zeros((n_f, n_i), bool), "object_to_world": np.full((n_f, n_i, 4, 4), np.nan)}
        for f in range(n_f):
            rec = self.record(f)
            if rec is None:
                continue
            c = self.columns(rec.instance_id, f"frame {rec.frame}: ")
            d["present"][f, c] = True
            d["object_to_world"][f, c] = rec.object_to_world
        return d

    def __getattr__(self, name: str) -> Any:
        if name in _STORED and self.__dict__.get("_dense") is None:
            if self.__dict__.get("_stored") is None:
                self._stored = self._build_stored()
            return self._stored[name]
        if name in _DENSE:
            if self.__dict__.get("_dense") is None:
                self._dense = self._build_dense()
            return self._dense[name]
        raise AttributeError(name)

    @classmethod
    def read(cls, seq_dir: Path, path: Path, frame_numbers: list[int], poses: Any) -> Objects:
        """The objects of sequence folder ``seq_dir`` from its ``objects.json`` ``path``."""
        from .documents.base import DocumentError
        from .documents.objects_files import ObjectsSource

        try:
            return cls(ObjectsSource(seq_dir, path), frame_numbers, poses)
        except DocumentError as exc:
            raise DatasetError(str(exc)) from None


class SequenceObjects:
    """Mixin of :class:`.loader.Sequence`: ``objects.json`` and the instance channel (needs
    ``_objects_path``, ``_objects`` (False until read), ``frame_numbers``, ``kinds``,
    ``conventions`` and ``_first_file``)."""

    @property
    def objects(self) -> Objects | None:
        """The sequence's objects (:class:`Objects`: ``objects.json`` and its per-frame records), or
        None when it has none."""
        if self._objects is False:
            p = self._objects_path
            self._objects = Objects.read(self.path, p, self.frame_numbers, lambda: self.poses) \
                if p.is_file() else None
        return self._objects  # type: ignore[return-value]

    @property
    def instance_channel(self) -> str | None:
        """Channel of the segmentation EXR holding per-pixel instance ids, or None."""
        if "segmentation" not in self.kinds:
            return None
        if "_instance_channel" not in self.__dict__:
            name = (self.conventions.get("segmentation") or {}).get("instance_channel")
            if name is None:
                p = self._first_file("segmentation")
                try:
                    names = set(exr.read_channels(p)) if p is not None else set()
                except exr.ExrError:
                    names = set()
                name = next((n for n in INSTANCE_CHANNELS if n in names), None)
            self._instance_channel = None if name is None else str(name)
        return self._instance_channel


class FrameObjectsMixin:
    """Mixin of :class:`.loader_frame.Frame`: this frame's instances."""

    @property
    def instances(self) -> np.ndarray | None:
        """``(H, W)`` int64 instance ids (0 = background; see ``Sequence.objects``), or None
        when the segmentation has no instance channel."""
        c = self.sequence.instance_channel
        if c is None:
            return None

        return self._get("instances", lambda: _instance_ids(
            exr.read_stored(self._need("segmentation"), [c])[c]))


    @property
    def objects(self) -> FrameObjects | None:
        """The instances this frame's object record lists, as arrays (:class:`FrameObjects`), or
        None when the sequence has no ``objects.json``."""
        objs = self.sequence.objects
        return None if objs is None else objs.frame(self.index)
