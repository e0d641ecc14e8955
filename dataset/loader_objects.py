# SPDX-License-Identifier: GPL-3.0-or-later
"""The loader's objects part: ``objects.json`` as arrays (:class:`Objects`, :class:`FrameObjects`)
and the per-pixel instance ids of the segmentation EXR (``Sequence.objects``,
``Sequence.instance_channel``, ``Frame.objects``, ``Frame.instances``). Pure Python + numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import exr
from .loader_schema import DatasetError, _read_json
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
    """The ``N`` instances visible in one frame (``objects.json``), as arrays (see
    ``dataset/objects.py`` for the conventions)."""

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

    def __len__(self) -> int:
        return len(self.instance_ids)


@dataclass
class Objects:
    """``objects.json`` of a sequence as dense arrays over ``F`` frames (the sequence's, in
    order) and ``I`` instances; an instance absent from a frame has ``present[f, i] = False`` and
    NaN (``-1`` for integers) in that frame's entries."""

    instance_ids: np.ndarray      # (I,) int64
    object_ids: np.ndarray        # (I,) int64
    names: list[str]
    categories: list[str]
    instancer_chains: list[list[str]]
    deforming: np.ndarray         # (I,) bool
    cameras: list[str | None]     # (F,)
    present: np.ndarray           # (F, I) bool
    object_to_world: np.ndarray   # (F, I, 4, 4)
    object_to_camera: np.ndarray  # (F, I, 4, 4)
    bbox_3d: np.ndarray           # (F, I, 8, 3)
    bbox_obj: np.ndarray          # (F, I, 4)
    bbox_visib: np.ndarray        # (F, I, 4) int64
    px_count_visib: np.ndarray    # (F, I) int64
    frames: list[int] = field(default_factory=list)

    def index(self) -> dict[int, int]:
        """``{instance_id: column}``."""
        return {int(k): i for i, k in enumerate(self.instance_ids)}

    def frame(self, f: int) -> FrameObjects:
        """Frame ``f`` (index into the sequence) with only its present instances."""
        m = self.present[f]
        pick = np.flatnonzero(m)
        return FrameObjects(
            frame=self.frames[f], camera=self.cameras[f], instance_ids=self.instance_ids[m],
            object_ids=self.object_ids[m], names=[self.names[i] for i in pick],
            categories=[self.categories[i] for i in pick], deforming=self.deforming[m],
            object_to_world=self.object_to_world[f, m], object_to_camera=self.object_to_camera[f, m],
            bbox_3d=self.bbox_3d[f, m], bbox_obj=self.bbox_obj[f, m], bbox_visib=self.bbox_visib[f, m],
            px_count_visib=self.px_count_visib[f, m])

    @classmethod
    def from_doc(cls, doc: Any, frame_numbers: list[int], path: Path) -> Objects:
        """Arrays from an ``objects.json`` document; frames are matched by frame number (a frame
        of the sequence that ``objects.json`` lacks has no instances and camera None)."""
        def bad(msg: str) -> DatasetError:
            return DatasetError(f"{path}: {msg}")
        if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list) \
                or not isinstance(doc.get("frames"), list):
            raise bad("not an objects.json document (needs 'instances' and 'frames' lists)")
        try:
            infos = doc["instances"]
            ids = np.array([int(i["instance_id"]) for i in infos], np.int64)
            col = {int(k): i for i, k in enumerate(ids)}
            if len(col) != len(ids):
                raise bad("an instance_id is listed twice")
            n_f, n_i = len(frame_numbers), len(ids)
            row = {int(n): f for f, n in enumerate(frame_numbers)}
            out = cls(
                instance_ids=ids, object_ids=np.array([int(i.get("object_id", 0)) for i in infos], np.int64),
                names=[str(i.get("object", "")) for i in infos],
                categories=[str(i.get("category", "")) for i in infos],
                instancer_chains=[list(i.get("instancer_chain") or []) for i in infos],
                deforming=np.array([bool(i.get("deforming", False)) for i in infos], bool),
                cameras=[None] * n_f, present=np.zeros((n_f, n_i), bool),
                object_to_world=np.full((n_f, n_i, 4, 4), np.nan),
                object_to_camera=np.full((n_f, n_i, 4, 4), np.nan),
                bbox_3d=np.full((n_f, n_i, 8, 3), np.nan), bbox_obj=np.full((n_f, n_i, 4), np.nan),
                bbox_visib=np.full((n_f, n_i, 4), -1, np.int64),
                px_count_visib=np.full((n_f, n_i), -1, np.int64), frames=[int(n) for n in frame_numbers])
            for fr in doc["frames"]:
                f = row.get(int(fr["frame"]))
                if f is None:
                    continue
                out.cameras[f] = None if fr.get("camera") is None else str(fr["camera"])
                for inst in fr.get("instances", []):
                    i = col.get(int(inst["instance_id"]))
                    if i is None:
                        raise bad(f"frame {fr['frame']}: instance {inst['instance_id']} is not in "
                                  "'instances'")
                    out.present[f, i] = True
                    out.object_to_world[f, i] = np.asarray(inst["object_to_world"], float).reshape(4, 4)
                    if inst.get("object_to_camera") is not None:
                        out.object_to_camera[f, i] = np.asarray(inst["object_to_camera"], float).reshape(4, 4)
                    if inst.get("bbox_3d") is not None:
                        out.bbox_3d[f, i] = np.asarray(inst["bbox_3d"], float).reshape(8, 3)
                    if inst.get("bbox_obj") is not None:
                        out.bbox_obj[f, i] = np.asarray(inst["bbox_obj"], float).reshape(4)
                    if inst.get("bbox_visib") is not None:
                        out.bbox_visib[f, i] = np.asarray(inst["bbox_visib"], np.int64).reshape(4)
                    if inst.get("px_count_visib") is not None:
                        out.px_count_visib[f, i] = int(inst["px_count_visib"])
        except DatasetError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise bad(f"malformed ({type(exc).__name__}: {exc})") from None
        return out



class SequenceObjects:
    """Mixin of :class:`.loader.Sequence`: ``objects.json`` and the instance channel (needs
    ``_objects_path``, ``_objects`` (False until read), ``frame_numbers``, ``kinds``,
    ``conventions`` and ``_first_file``)."""

    @property
    def objects(self) -> Objects | None:
        """``objects.json`` as arrays (:class:`Objects`), or None when the sequence has none."""
        if self._objects is False:
            p = self._objects_path
            self._objects = Objects.from_doc(_read_json(p), self.frame_numbers, p) if p.is_file() else None
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
        """This frame's instances from ``objects.json`` as arrays, or None without one."""
        objs = self.sequence.objects
        return None if objs is None else objs.frame(self.index)
