# SPDX-License-Identifier: GPL-3.0-or-later
"""Open rendered sequences and datasets as numpy arrays. Pure Python + numpy + OpenEXR + pillow.

::

    import dataset_forge
    seq = dataset_forge.load("DATASETS/renders/orbit/001-00001-00025")
    f = seq[0]                       # a Frame; files are read when an attribute is first used
    f.rgb, f.depth, f.flow_forward, f.segmentation, f.K, f.pose

Arrays (row 0 = top row, ``u`` right, ``v`` down):

* ``rgb``: ``(H, W, 3)`` uint8 for 8-bit PNG/JPEG frames, uint16 for 16-bit PNG, float32 for EXR;
  ``alpha`` ``(H, W)`` when the frame has a fourth channel;
* ``depth``: ``(H, W)`` float32 as stored (planar by default, ``0`` = no surface);
  ``planar_depth`` converts ``distance`` depth to planar;
* ``normals``: ``(H, W, 3)`` float32 (camera frame by default: x right, y up, z towards the viewer);
* ``flow_forward`` / ``flow_backward``: ``(H, W, 2)`` float32 pixels (t -> t+1 / t -> t-1);
* ``segmentation``: ``(H, W)`` int32 ids (0 = background), names in ``Sequence.ids``;
* ``K``: ``(3, 3)`` float64 (OpenCV camera frame), ``pose``: ``(4, 4)`` float64 camera-to-world in
  Blender camera axes (x right, y up, looking down -z), ``pose_opencv`` the same in OpenCV axes.

Channel names come from ``transforms.json`` → ``conventions`` (see docs/ground_truth.md).

**The tutorial's schema** (``transforms.json`` with ``fl_x, fl_y, cx, cy, w, h`` and
``frames[].file_path`` / ``transform_matrix``, ground truth in sibling folders) is read with these
assumptions where ``conventions`` or ``*_file_path`` are missing: a frame's ground-truth files are
``depths/depth_N.exr``, ``normals/normal_N.exr``, ``flows/flow_N.exr``,
``segmentations/segmentation_N.exr`` where ``N`` is the digits of its RGB file name; depth is the
file's only channel (else ``V``, ``R``, ``Y`` or ``Z``) and planar; normals are ``X, Y, Z`` (else
``R, G, B``) in the camera frame; flow is ``R, G`` forward and ``B, A`` backward, ``v`` down;
segmentation is the only channel. Per-frame ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` override
the top-level ones; NeRF's ``camera_angle_x`` stands in for ``fl_x`` (``fl_y = fl_x``, principal
point at the centre, size from the first frame when ``w``/``h`` are missing).
``Sequence.assumed`` lists what was assumed; run ``validate`` to check it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetForgeError
from . import exr, layout
from .layout import FLOW_KEYS, IDS_FILE, OBJECTS_FILE, TRANSFORMS, frame_digits, ray_norm
from .objects import CV_FROM_GL, INSTANCE_CHANNEL

_log = logging.getLogger("dataset_forge")

KINDS = tuple(layout.KINDS)
FOLDERS = {k.name: (k.folder, k.stem) for k in layout.KINDS.values()}
# Channels of the segmentation EXR that may hold the per-pixel instance id when ``conventions``
# does not name one (``conventions.segmentation.instance_channel``).
INSTANCE_CHANNELS = (INSTANCE_CHANNEL, "instance_id")

__all__ = ["FLOW_KEYS", "KINDS", "TRANSFORMS", "Dataset", "DatasetError", "Frame", "FrameObjects",
           "Objects", "Sequence", "as_torch", "load", "ray_norm", "read_image"]


class DatasetError(DatasetForgeError, ValueError):
    """A folder that is not a sequence or dataset, or a ``transforms.json`` that cannot be used."""


def _inside(seq_dir: Path, rel: Any, what: str, root: Path) -> Path:
    """``seq_dir / rel`` after checking that it stays inside ``seq_dir`` (nothing is read);
    ``root``: ``seq_dir`` resolved (once per sequence)."""
    if not isinstance(rel, (str, os.PathLike)):
        raise DatasetError(f"{seq_dir / TRANSFORMS}: {what} {rel!r} is not a path")
    try:
        layout.contained(root, rel, what, resolved=True)
    except layout.LayoutError as exc:
        raise DatasetError(str(exc)) from None
    return seq_dir / rel


def _instance_ids(raw: np.ndarray) -> np.ndarray:
    """``(H, W)`` int64 instance ids from the stored channel (uint32 exact, float rounded)."""
    return (raw.astype(np.int64) if raw.dtype.kind in "ui"
            else np.rint(raw.astype(np.float64)).astype(np.int64))


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


class Frame:
    """One frame of a :class:`Sequence`; every array is read on first access and cached."""

    def __init__(self, sequence: Sequence, index: int):
        self.sequence = sequence
        self.index = index
        self.meta: dict[str, Any] = sequence.frames_meta[index]
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Frame {self.number} of {self.sequence.path.name}>"

    @property
    def number(self) -> int:
        """Frame number on the (stretched) timeline."""
        return int(self.meta.get("frame", self.sequence.frame_numbers[self.index]))

    @property
    def time(self) -> float | None:
        """Seconds since the sequence's first frame (None if not recorded)."""
        t = self.meta.get("time")
        return None if t is None else float(t)

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsics (pixels) of this frame."""
        return self.sequence.intrinsics_of(self.index)

    @property
    def pose(self) -> np.ndarray:
        """4x4 camera-to-world, Blender camera axes (x right, y up, looking down -z)."""
        return self.sequence.poses[self.index]

    @property
    def pose_opencv(self) -> np.ndarray:
        """4x4 camera-to-world, OpenCV camera axes (x right, y down, z forward)."""
        return self.pose @ CV_FROM_GL

    def path(self, kind: str) -> Path | None:
        """File of ``kind`` (``rgb`` or one of :data:`KINDS`) or None when the sequence has none."""
        return self.sequence.file(kind, self.index)

    def _get(self, key: str, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _image(self) -> np.ndarray:
        return self._get("image", lambda: read_image(self._need("rgb")))

    def _need(self, kind: str) -> Path:
        p = self.path(kind)
        if p is None:
            raise DatasetError(f"{self.sequence.path}: no {kind} files in this sequence")
        return p

    @property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` RGB frame (uint8, uint16 or float32 as stored)."""
        im = self._image()
        if im.ndim == 2:
            return np.repeat(im[..., None], 3, axis=-1)
        return im[..., :3]

    @property
    def alpha(self) -> np.ndarray | None:
        """``(H, W)`` alpha when the frame has one."""
        im = self._image()
        return im[..., 3] if im.ndim == 3 and im.shape[-1] == 4 else None

    @property
    def depth(self) -> np.ndarray:
        """``(H, W)`` float32 depth as stored; 0 where there is no surface."""
        c = self.sequence.channels["depth"]
        return self._get("depth", lambda: exr.read_single(self._need("depth"), c))

    @property
    def planar_depth(self) -> np.ndarray:
        """``(H, W)`` float32 depth along the viewing axis (converts ``distance`` depth)."""
        d = self.depth
        if self.sequence.depth_type != "distance":
            return d
        return (d / ray_norm(self.K, d.shape)).astype(np.float32)

    @property
    def normals(self) -> np.ndarray:
        """``(H, W, 3)`` float32 unit normals in ``Sequence.normal_frame``; 0 = no surface."""
        c = self.sequence.channels["normal"]
        return self._get("normal", lambda: exr.read_stack(self._need("normal"), c))

    def _flow(self) -> np.ndarray:
        c = self.sequence.channels["flow"]
        return self._get("flow", lambda: exr.read_stack(self._need("flow"),
                                                         [c[k] for k in FLOW_KEYS]))

    @property
    def flow_forward(self) -> np.ndarray:
        """``(H, W, 2)`` float32 pixel displacement (u right, v down) from this frame to the next."""
        return self._flow()[..., :2]

    @property
    def flow_backward(self) -> np.ndarray:
        """``(H, W, 2)`` float32 pixel displacement from this frame to the previous one."""
        return self._flow()[..., 2:]

    @property
    def segmentation(self) -> np.ndarray:
        """``(H, W)`` int32 object ids (0 = background); see ``Sequence.ids``."""
        c = self.sequence.channels["segmentation"]
        return self._get("segmentation", lambda: np.rint(
            exr.read_single(self._need("segmentation"), c)).astype(np.int32))

    @property
    def instances(self) -> np.ndarray | None:
        """``(H, W)`` int64 instance ids (0 = background; see ``Sequence.objects``), or None
        when the segmentation has no instance channel."""
        c = self.sequence.instance_channel
        if c is None:
            return None

        return self._get("instances", lambda: _instance_ids(
            exr.read_stored(self._need("segmentation"), [c])[c]))

    def adopt(self, kind: str, channels: dict[str, np.ndarray]) -> None:
        """Use ``channels`` already decoded from this frame's ``kind`` file (float32, the
        instance channel uint32 or float32, as :func:`exr.read_stored` gives them) instead of
        reading the file again."""
        c = self.sequence.channels.get(kind)
        if kind == "depth":
            self._cache["depth"] = channels[c].astype(np.float32, copy=False)
        elif kind == "normal":
            self._cache["normal"] = np.stack([channels[n] for n in c], axis=-1).astype(np.float32, copy=False)
        elif kind == "flow":
            self._cache["flow"] = np.stack([channels[c[k]] for k in FLOW_KEYS],
                                           axis=-1).astype(np.float32, copy=False)
        elif kind == "segmentation":  # the instance ids (object ids are cheap to round again)
            inst = self.sequence.instance_channel
            if inst is not None and inst in channels:
                self._cache["instances"] = _instance_ids(channels[inst])

    @property
    def objects(self) -> FrameObjects | None:
        """This frame's instances from ``objects.json`` as arrays, or None without one."""
        objs = self.sequence.objects
        return None if objs is None else objs.frame(self.index)

    @property
    def camera(self) -> str | None:
        """Name of the camera that rendered this frame (changes at a camera cut)."""
        return self.sequence.camera_of(self.index)

    @property
    def flow_forward_valid(self) -> bool:
        """False when the forward flow describes no motion (the camera changes to t+1)."""
        return self.sequence.flow_valid(self.index, "forward")

    @property
    def flow_backward_valid(self) -> bool:
        """False when the backward flow describes no motion (the camera changed from t-1)."""
        return self.sequence.flow_valid(self.index, "backward")

    def to_dict(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The frame as a dict of arrays: ``rgb``, ``K``, ``pose`` and every ground truth the
        sequence has (or just ``keys``)."""
        names = keys or self.sequence.keys
        return {k: getattr(self, k) for k in names}

    def clear(self) -> None:
        """Forget the cached arrays."""
        self._cache.clear()


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


class Sequence:
    """A rendered sequence folder (``transforms.json`` + frames + ground truth)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        tf = self.path / TRANSFORMS
        if not tf.is_file():
            raise DatasetError(f"{self.path}: no {TRANSFORMS} (not a sequence folder)")
        self.meta: dict[str, Any] = _read_json(tf)
        frames = self.meta.get("frames")
        if not isinstance(frames, list):
            raise DatasetError(f"{tf}: no 'frames' list")
        self.frames_meta: list[dict[str, Any]] = frames
        self.assumed: list[str] = []
        self.schema = "dataset_forge" if "conventions" in self.meta and "schema_version" in self.meta \
            else "tutorial"
        self.frame_numbers = [self._frame_number(i, f) for i, f in enumerate(frames)]
        self.conventions: dict[str, Any] = dict(self.meta.get("conventions") or {})
        self._files: dict[str, list[Path | None]] = {}
        self.channels: dict[str, Any] = {}
        # every path transforms.json names is checked before anything is read
        self._root = self.path.resolve()
        self._rgb: list[Path | None] = [
            None if f.get("file_path") is None
            else _inside(self.path, f["file_path"], "file_path", self._root)
            for f in frames]
        self._resolve_files()
        seg = self.conventions.get("segmentation") or {}
        self._ids_path = _inside(self.path, seg.get("ids_file", IDS_FILE), "ids_file", self._root)
        self._objects_path = _inside(self.path, self.meta.get("objects_file", OBJECTS_FILE), "objects_file",
                                     self._root)
        self._ids: dict[str, Any] | None = None
        self._objects: Objects | None | bool = False
        self._poses: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"<Sequence {self.path} ({len(self)} frames, {', '.join(self.kinds) or 'rgb only'})>"

    def __len__(self) -> int:
        return len(self.frames_meta)

    def __getitem__(self, i: int) -> Frame:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for {n} frames")
        return Frame(self, i % n)

    def __iter__(self) -> Iterator[Frame]:
        return (Frame(self, i) for i in range(len(self)))

    @property
    def id(self) -> str:
        return str(self.meta.get("sequence_id") or self.path.name)

    def _size(self) -> tuple[int, int]:
        w = self.meta.get("w") or (self.frames_meta[0].get("w") if self.frames_meta else None)
        h = self.meta.get("h") or (self.frames_meta[0].get("h") if self.frames_meta else None)
        if w and h:
            return int(w), int(h)
        if getattr(self, "_image_size", None) is None:
            p = self.file("rgb", 0) if self.frames_meta else None
            if p is None or not p.is_file():
                raise DatasetError(f"{self.path / TRANSFORMS}: no 'w'/'h' and no first frame to measure")
            from PIL import Image

            with Image.open(p) as im:
                self._image_size = im.size
            w, h = self._image_size
            self.assumed.append(f"image size {w}x{h} from the first frame")
        return self._image_size

    @property
    def width(self) -> int:
        return self._size()[0]

    @property
    def height(self) -> int:
        return self._size()[1]

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsics from ``fl_x, fl_y, cx, cy`` (pixels)."""
        return self.intrinsics_of(0)

    def intrinsics_of(self, index: int) -> np.ndarray:
        """3x3 intrinsics of frame ``index``: per-frame values override top-level ones. Missing
        ``fl_x`` comes from NeRF's ``camera_angle_x``, ``fl_y`` from ``camera_angle_y`` or
        ``fl_x`` (square pixels), ``cx``/``cy`` from the image centre (noted in ``assumed``)."""
        f = self.frames_meta[index] if self.frames_meta else {}

        def get(k):
            v = f.get(k, self.meta.get(k))
            return None if v is None else float(v)

        def note(msg):
            if msg not in self.assumed:
                self.assumed.append(msg)

        fl_x, fl_y, cx, cy = get("fl_x"), get("fl_y"), get("cx"), get("cy")
        if fl_x is None:
            ax = get("camera_angle_x")
            if ax is None:
                raise DatasetError(f"{self.path / TRANSFORMS}: no 'fl_x' (nor 'camera_angle_x')")
            fl_x = 0.5 * self.width / np.tan(0.5 * ax)
            note("fl_x from camera_angle_x")
        if fl_y is None:
            ay = get("camera_angle_y")
            fl_y = fl_x if ay is None else 0.5 * self.height / np.tan(0.5 * ay)
            note("fl_y = fl_x (square pixels)" if ay is None else "fl_y from camera_angle_y")
        if cx is None or cy is None:
            cx = self.width / 2.0 if cx is None else cx
            cy = self.height / 2.0 if cy is None else cy
            note("principal point at the image centre")
        return np.array([[fl_x, 0.0, cx], [0.0, fl_y, cy], [0.0, 0.0, 1.0]])

    @property
    def poses(self) -> np.ndarray:
        """``(N, 4, 4)`` float64 camera-to-world matrices (Blender camera axes)."""
        if self._poses is None:
            try:
                self._poses = np.array([f["transform_matrix"] for f in self.frames_meta],
                                       dtype=np.float64).reshape(len(self), 4, 4)
            except (KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f"{self.path / TRANSFORMS}: bad transform_matrix ({exc})") from None
        return self._poses

    @property
    def depth_type(self) -> str:
        return str(self.conventions.get("depth", {}).get("type", "planar"))

    @property
    def normal_frame(self) -> str:
        return str(self.conventions.get("normal", {}).get("frame", "camera"))

    @property
    def kinds(self) -> tuple[str, ...]:
        """Ground-truth kinds present (a subset of :data:`KINDS`)."""
        return tuple(k for k in KINDS if any(p is not None for p in self._files.get(k, [])))

    @property
    def keys(self) -> tuple[str, ...]:
        """Names :meth:`Frame.to_dict` returns."""
        out = ["rgb", "K", "pose"]
        names = {"depth": ["depth"], "normal": ["normals"], "flow": ["flow_forward", "flow_backward"],
                 "segmentation": ["segmentation"]}
        for k in self.kinds:
            out += names[k]
        return tuple(out)

    @property
    def ids(self) -> dict[str, Any]:
        """``segmentation_ids.json`` (``{"background": 0, "ids": {"1": {...}}}``) or {}."""
        if self._ids is None:
            p = self._ids_path
            self._ids = _read_json(p) if p.is_file() else {}
        return self._ids

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

    def camera_of(self, index: int) -> str | None:
        """Name of the camera that rendered frame ``index`` (per-frame ``camera`` in
        ``transforms.json``, else ``objects.json``'s, else the top-level one), or None."""
        name = self.frames_meta[index].get(layout.FRAME_CAMERA_KEY)
        if name is None and self.objects is not None:
            name = self.objects.cameras[index]
        if name is None:
            name = self.meta.get("camera")
        return None if name is None else str(name)

    def flow_flags(self, index: int, direction: str) -> dict[str, Any]:
        """The validity flags frame ``index`` writes for its ``forward`` / ``backward`` flow, by
        spelling: ``flow_forward_valid`` / ``flow_backward_valid``, or ``flow_valid.forward`` /
        ``.backward`` (nested); only those present."""
        f = self.frames_meta[index]
        key = {"forward": layout.FLOW_FORWARD_VALID, "backward": layout.FLOW_BACKWARD_VALID}[direction]
        out = {key: f[key]} if key in f else {}
        nested = f.get("flow_valid")
        if isinstance(nested, dict) and direction in nested:
            out[f"flow_valid.{direction}"] = nested[direction]
        return out

    def flow_valid(self, index: int, direction: str) -> bool:
        """Whether frame ``index``'s ``forward`` (to t+1) or ``backward`` (to t-1) flow describes
        motion: true unless a flag of :meth:`flow_flags` says otherwise (false across a camera
        cut). A flag that is not ``true`` (``false``, ``null``, a string ...) makes it invalid,
        whatever the other spelling says: metadata that contradicts itself is not trusted."""
        return all(v is True for v in self.flow_flags(index, direction).values())

    def file(self, kind: str, index: int) -> Path | None:
        """Path of ``kind`` (``rgb`` or one of :data:`KINDS`) for frame ``index`` (may not exist)."""
        if kind == "rgb":
            return self._rgb[index]
        files = self._files.get(kind)
        return None if files is None else files[index]

    def as_torch(self, keys: tuple[str, ...] | None = None, transform=None):
        """A ``torch.utils.data.Dataset`` over the frames (see :func:`as_torch`)."""
        return as_torch(self, keys=keys, transform=transform)

    # -- resolution -----------------------------------------------------------------------

    def _frame_number(self, i: int, f: dict[str, Any]) -> int:
        if "frame" in f:
            return int(f["frame"])
        m = re.findall(r"\d+", Path(str(f.get("file_path", ""))).stem)
        if m:
            return int(m[-1])
        return i

    def _resolve_files(self) -> None:
        for kind in KINDS:
            key = f"{kind}_file_path"
            listed = [f.get(key) for f in self.frames_meta]
            if any(p is not None for p in listed):
                self._files[kind] = [None if p is None else _inside(self.path, p, key, self._root)
                                     for p in listed]
            else:
                folder, prefix = FOLDERS[kind]
                if self.schema != "tutorial" or not (self.path / folder).is_dir():
                    continue  # Dataset Forge lists every file it wrote
                found = []
                for f, num in zip(self.frames_meta, self.frame_numbers):
                    digits = re.findall(r"\d+", Path(str(f.get("file_path", ""))).stem)
                    name = f"{prefix}_{digits[-1] if digits else frame_digits(num)}.exr"
                    # checked like a listed path: a symlinked folder or file must not lead out
                    found.append(_inside(self.path, f"{folder}/{name}", key, self._root))
                self._files[kind] = found
                self.assumed.append(f"{kind} files {folder}/{prefix}_N.exr (no {key} in frames)")
            self.channels[kind] = self._channels(kind)

    def _first_file(self, kind: str) -> Path | None:
        for p in self._files.get(kind, []):
            if p is not None and p.is_file():
                return p
        return None

    def _channels(self, kind: str):
        conv = self.conventions.get(kind) or {}
        if kind in ("depth", "segmentation") and conv.get("channel"):
            return str(conv["channel"])
        if kind == "normal" and conv.get("channels"):
            return [str(c) for c in conv["channels"]]
        if kind == "flow" and isinstance(conv.get("channels"), dict):
            return {k: str(conv["channels"][k]) for k in FLOW_KEYS}
        # No conventions (tutorial schema): look at the first file's channel names.
        names: list[str] = []
        p = self._first_file(kind)
        if p is not None:
            try:
                names = sorted(exr.read_channels(p))
            except exr.ExrError:
                names = []
        if kind in ("depth", "segmentation"):
            pick = names[0] if len(names) == 1 else next(
                (n for n in ("V", "R", "Y", "Z") if n in names), "V")
            self.assumed.append(f"{kind} channel {pick!r}")
            return pick
        if kind == "normal":
            pick = ["X", "Y", "Z"] if {"X", "Y", "Z"} <= set(names) or not names else ["R", "G", "B"]
            self.assumed.append(f"normal channels {pick} in the camera frame")
            return pick
        quad = ["R", "G", "B", "A"] if {"R", "G", "B", "A"} <= set(names) or not names \
            else ["X", "Y", "Z", "W"]
        self.assumed.append(f"flow channels {quad}: forward u, v then backward u, v (v down)")
        return dict(zip(FLOW_KEYS, quad))


def manifest_sequences(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """``{sequence path relative to the datasets folder: its manifest entry}`` of a Dataset Forge
    ``manifest.json`` (None when ``manifest`` is not one: no ``scenes`` list)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("scenes"), list):
        return None
    return {str(q["path"]): q for sc in manifest["scenes"] if isinstance(sc, dict)
            for q in sc.get("sequences", []) if isinstance(q, dict) and "path" in q}


def manifest_problem(listed: dict[str, dict[str, Any]] | None, rel: str) -> str | None:
    """Why the sequence folder at ``rel`` (relative to the datasets folder) is not part of the
    dataset its manifest describes (``listed``: :func:`manifest_sequences`), or None: not listed
    (left by an earlier run with other settings) or listed as not complete."""
    if listed is None:
        return None
    q = listed.get(rel)
    if q is None:
        return (f"not in {layout.MANIFEST}: left by an earlier run with other settings (another "
                "seed, strategy or frame count?); delete the folder, or render it again with those "
                "settings")
    status = q.get("status", "complete")
    if status != "complete":
        why = f" ({q['reason']})" if q.get("reason") else ""
        return f"{layout.MANIFEST} calls it {status}{why}: render it again"
    return None


class Dataset:
    """A datasets folder: every sequence (``transforms.json``) below it, sorted by path. With a
    Dataset Forge ``manifest.json``, only the sequences it lists as complete: the others are in
    :attr:`skipped` (``{folder: why}``), and a warning names them."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DatasetError(f"{self.path}: not a folder")
        found = sorted(p.parent for p in self.path.rglob(TRANSFORMS)
                       if not any(part.startswith(".") for part in p.relative_to(self.path).parts))
        if not found:
            raise DatasetError(f"{self.path}: no {TRANSFORMS} below this folder (not a dataset)")
        mf = self.path / layout.MANIFEST
        self.manifest: dict[str, Any] | None = _read_json(mf) if mf.is_file() else None
        listed = manifest_sequences(self.manifest)
        self.skipped: dict[Path, str] = {}
        for p in found:
            why = manifest_problem(listed, p.relative_to(self.path).as_posix())
            if why is not None:
                self.skipped[p] = why
        self.sequence_paths: list[Path] = [p for p in found if p not in self.skipped]
        self._seqs: dict[Path, Sequence] = {}
        if self.skipped:
            first = next(iter(self.skipped))
            _log.warning("%s: %d sequence folder(s) skipped, e.g. %s: %s", self.path, len(self.skipped),
                         first.relative_to(self.path).as_posix(), self.skipped[first])
        if not self.sequence_paths:
            raise DatasetError(f"{self.path}: no sequence below this folder is complete in "
                               f"{layout.MANIFEST} (e.g. {first.relative_to(self.path).as_posix()}: "
                               f"{self.skipped[first]})")

    def __repr__(self) -> str:
        return f"<Dataset {self.path} ({len(self)} sequences)>"

    def __len__(self) -> int:
        return len(self.sequence_paths)

    def __getitem__(self, key: int | str) -> Sequence:
        """By position, or by a sequence's path relative to the dataset, folder name or id."""
        if isinstance(key, int):
            p = self.sequence_paths[key]
        else:
            p = next((q for q in self.sequence_paths
                      if key in (q.relative_to(self.path).as_posix(), q.name)), None)
            if p is None:
                raise KeyError(key)
        if p not in self._seqs:
            self._seqs[p] = Sequence(p)
        return self._seqs[p]

    def __iter__(self) -> Iterator[Sequence]:
        return (self[i] for i in range(len(self)))

    def frames(self) -> Iterator[Frame]:
        """Every frame of every sequence, in order."""
        for seq in self:
            yield from seq

    def as_torch(self, keys: tuple[str, ...] | None = None, transform=None):
        """A ``torch.utils.data.Dataset`` over all frames (see :func:`as_torch`)."""
        return as_torch(self, keys=keys, transform=transform)


def load(path: str | os.PathLike) -> Sequence | Dataset:
    """Open ``path``: a sequence folder (has ``transforms.json``) gives a :class:`Sequence`,
    a folder with sequences below it a :class:`Dataset`; a ``transforms.json`` file opens its
    folder."""
    p = Path(path)
    if p.is_file() and p.name == TRANSFORMS:
        p = p.parent
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if (p / TRANSFORMS).is_file():
        return Sequence(p)
    return Dataset(p)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB(A) frame: PNG/JPEG via pillow (uint8, uint16 for 16-bit PNG), EXR via OpenEXR
    (float32, channels R, G, B[, A])."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    if p.suffix.lower() == ".exr":
        ch = exr.read_channels(p)
        names = [n for n in ("R", "G", "B", "A") if n in ch] or sorted(ch)
        return np.stack([ch[n] for n in names], axis=-1)
    from PIL import Image

    try:
        wide = _png16(p)
        if wide is not None:
            return wide
        with Image.open(p) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                return np.asarray(im).astype(np.uint16)
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return np.asarray(im).copy()
    except OSError as exc:
        raise DatasetError(f"{p}: unreadable image ({exc})") from None


def _png16(path: Path) -> np.ndarray | None:
    """16-bit RGB(A) PNG as uint16 ``(H, W, C)``, or None for other files. Pillow keeps only the
    high byte of 16-bit colour; decoding the same stream again with the little-endian raw mode
    yields the low byte, and the two make the exact 16-bit values."""
    from PIL import Image

    with Image.open(path) as im:
        tile = im.tile[0] if im.format == "PNG" and len(im.tile) == 1 else None
        raw = getattr(tile, "args", None) if tile is not None else None
        if raw not in ("RGB;16B", "RGBA;16B"):
            return None
        im.load()
        hi = np.asarray(im)
    with Image.open(path) as im:
        im.tile = [im.tile[0]._replace(args=raw.replace("16B", "16L"))]
        im.load()
        lo = np.asarray(im)
    return hi.astype(np.uint16) << 8 | lo.astype(np.uint16)



def as_torch(source: Sequence | Dataset | str | os.PathLike, keys: tuple[str, ...] | None = None,
             transform=None) -> TorchFrames:
    """Wrap a sequence or dataset as a map-style PyTorch dataset whose items are dicts of tensors
    (``rgb`` as stored, HxWxC; ground truth float32; ``segmentation`` int64; plus ``index``).
    ``keys`` selects entries (default: all the sequence has); ``transform`` is applied to each
    dict. Imports torch only here; raises ImportError with the fix when it is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError("as_torch() needs PyTorch, which is not installed: pip install torch "
                          "(the loader itself works without it)") from exc
    if not isinstance(source, (Sequence, Dataset)):
        source = load(source)
    return TorchFrames(source, keys, transform)


class TorchFrames:
    """Map-style dataset for ``torch.utils.data.DataLoader`` (picklable: works with worker
    processes). Made by :func:`as_torch`."""

    def __init__(self, source: Sequence | Dataset, keys: tuple[str, ...] | None = None, transform=None):
        seqs = [source] if isinstance(source, Sequence) else list(source)
        self.index = [(s, i) for s in seqs for i in range(len(s))]
        self.keys = keys
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        seq, j = self.index[i]
        fr = seq[j]
        out: dict[str, Any] = {"index": torch.tensor(i)}
        for k in self.keys or seq.keys:
            a = np.ascontiguousarray(getattr(fr, k))
            if k == "segmentation":
                a = a.astype(np.int64)
            elif a.dtype == np.uint16:
                a = a.astype(np.int32)
            out[k] = torch.from_numpy(a)
        return self.transform(out) if self.transform is not None else out
