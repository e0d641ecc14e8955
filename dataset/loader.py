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

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import layout
from .documents import manifest as manifest_doc
from .documents.base import DocumentError, JSONObject
from .documents.manifest import Manifest, SequenceEntry
from .documents.segmentation_ids import SegmentationIds
from .documents.transforms import Key
from .layout import FLOW_KEYS, IDS_FILE, OBJECTS_FILE, TRANSFORMS, ray_norm
from .loader_frame import Frame
from .loader_images import read_image
from .loader_objects import INSTANCE_CHANNELS, FrameObjects, Objects, SequenceObjects
from .loader_schema import FOLDERS, KINDS, DatasetError, SchemaInference, _inside, _read_json
from .loader_torch import TorchFrames, need_torch
from .modalities import MODALITIES

_log = logging.getLogger("dataset_forge")

__all__ = ["FLOW_KEYS", "FOLDERS", "INSTANCE_CHANNELS", "KINDS", "TRANSFORMS", "Dataset",
           "DatasetError", "Frame", "FrameObjects", "Objects", "Sequence", "TorchFrames", "as_torch",
           "load", "ray_norm", "read_image"]


class Sequence(SequenceObjects, SchemaInference):
    """A rendered sequence folder (``transforms.json`` + frames + ground truth)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        tf = self.path / TRANSFORMS
        if not tf.is_file():
            raise DatasetError(f"{self.path}: no {TRANSFORMS} (not a sequence folder)")
        self.meta: JSONObject = _read_json(tf)
        frames = self.meta.get(Key.FRAMES)
        if not isinstance(frames, list):
            raise DatasetError(f"{tf}: no 'frames' list")
        self.frames_meta: list[JSONObject] = frames
        self.assumed: list[str] = []
        self.schema = "dataset_forge" if Key.CONVENTIONS in self.meta and Key.SCHEMA_VERSION in self.meta \
            else "tutorial"
        self.frame_numbers = [self._frame_number(i, f) for i, f in enumerate(frames)]
        self.conventions: JSONObject = dict(self.meta.get(Key.CONVENTIONS) or {})
        self._files: dict[str, list[Path | None]] = {}
        self.channels: dict[str, str | list[str] | dict[str, str]] = {}  # kind -> EXR channel(s)
        # every path transforms.json names is checked before anything is read
        self._root = layout.Inside(self.path)
        self._rgb: list[Path | None] = [
            None if f.get(Key.FILE_PATH) is None
            else _inside(self.path, f[Key.FILE_PATH], Key.FILE_PATH, self._root)
            for f in frames]
        self._resolve_files()
        seg = self.conventions.get("segmentation") or {}
        self._ids_path = _inside(self.path, seg.get(Key.IDS_FILE, IDS_FILE), Key.IDS_FILE, self._root)
        self._objects_path = _inside(self.path, self.meta.get(Key.OBJECTS_FILE, OBJECTS_FILE),
                                     Key.OBJECTS_FILE, self._root)
        self._ids: JSONObject | None = None
        self._ids_doc: SegmentationIds | None = None
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
        return str(self.meta.get(Key.SEQUENCE_ID) or self.path.name)

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

    @property
    def poses(self) -> np.ndarray:
        """``(N, 4, 4)`` float64 camera-to-world matrices (Blender camera axes)."""
        if self._poses is None:
            try:
                self._poses = np.array([f[Key.TRANSFORM_MATRIX] for f in self.frames_meta],
                                       dtype=np.float64).reshape(len(self), 4, 4)
            except (KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f"{self.path / TRANSFORMS}: bad transform_matrix ({exc})") from None
        return self._poses

    @property
    def depth_type(self) -> str:
        return str(self.conventions.get("depth", {}).get(Key.TYPE, "planar"))

    @property
    def normal_frame(self) -> str:
        return str(self.conventions.get("normal", {}).get(Key.NORMAL_FRAME, "camera"))

    @property
    def kinds(self) -> tuple[str, ...]:
        """Ground-truth kinds present (a subset of :data:`KINDS`)."""
        return tuple(k for k in KINDS if any(p is not None for p in self._files.get(k, [])))

    @property
    def keys(self) -> tuple[str, ...]:
        """Names :meth:`Frame.to_dict` returns."""
        return ("rgb", "K", "pose", *(a for k in self.kinds for a in MODALITIES[k].accessors))

    @property
    def ids(self) -> JSONObject:
        """``segmentation_ids.json`` as written (``{"background": 0, "ids": {"1": {...}}}``) or {};
        see :attr:`ids_doc` for the typed document."""
        if self._ids is None:
            p = self._ids_path
            self._ids = _read_json(p) if p.is_file() else {}
            if self._ids:
                try:
                    self._ids_doc = SegmentationIds.from_dict(self._ids, str(p))
                except DocumentError as exc:
                    raise DatasetError(str(exc)) from None
        return self._ids

    @property
    def ids_doc(self) -> SegmentationIds | None:
        """``segmentation_ids.json`` as its model, None when the sequence has none."""
        return self._ids_doc if self.ids else None


    def camera_of(self, index: int) -> str | None:
        """Name of the camera that rendered frame ``index`` (per-frame ``camera`` in
        ``transforms.json``, else ``objects.json``'s, else the top-level one), or None."""
        name = self.frames_meta[index].get(Key.CAMERA)
        if name is None and self.objects is not None:
            name = self.objects.cameras[index]
        if name is None:
            name = self.meta.get(Key.CAMERA)
        return None if name is None else str(name)

    def flow_flags(self, index: int, direction: str) -> JSONObject:
        """The validity flags frame ``index`` writes for its ``forward`` / ``backward`` flow, by
        spelling: ``flow_forward_valid`` / ``flow_backward_valid``, or ``flow_valid.forward`` /
        ``.backward`` (nested); only those present."""
        f = self.frames_meta[index]
        key = {"forward": Key.FLOW_FORWARD_VALID, "backward": Key.FLOW_BACKWARD_VALID}[direction]
        out = {key: f[key]} if key in f else {}
        nested = f.get(Key.FLOW_VALID)
        if isinstance(nested, dict) and direction in nested:
            out[f"{Key.FLOW_VALID}.{direction}"] = nested[direction]
        return out

    def flow_valid(self, index: int, direction: str) -> bool:
        """Whether frame ``index``'s ``forward`` (to t+1) or ``backward`` (to t-1) flow describes
        motion: true unless a flag of :meth:`flow_flags` says otherwise (false across a camera
        cut). A flag that is not ``true`` (``false``, ``null``, a string ...) makes it invalid,
        whatever the other spelling says: metadata that contradicts itself is not trusted."""
        return all(v is True for v in self.flow_flags(index, direction).values())

    @property
    def stereo(self):
        """The stereo document (``stereo.json``: baseline, disparity convention) of a stereo pair's
        left view, or None (:mod:`dataset.documents.stereo`)."""
        from .documents import stereo

        return stereo.read(self.path)

    @property
    def right(self) -> Sequence | None:
        """The right view of a stereo pair (``SEQ/right/``, the same layout), or None (mono)."""
        doc = self.stereo
        if doc is None:
            return None
        if "_right" not in self.__dict__:
            self._right = Sequence(_inside(self.path, doc.right, "stereo.json right", self._root))
        return self._right

    def file(self, kind: str, index: int) -> Path | None:
        """Path of ``kind`` (``rgb``, ``disparity`` or one of :data:`KINDS`) for frame ``index``
        (may not exist)."""
        if kind == "rgb":
            return self._rgb[index]
        if kind == layout.DISPARITY.name:
            rel = self.frames_meta[index].get(layout.DISPARITY.key)
            return None if rel is None else _inside(self.path, rel, layout.DISPARITY.key, self._root)
        files = self._files.get(kind)
        return None if files is None else files[index]

    def as_torch(self, keys: tuple[str, ...] | None = None, transform=None):
        """A ``torch.utils.data.Dataset`` over the frames (see :func:`as_torch`)."""
        return as_torch(self, keys=keys, transform=transform)

    # -- resolution -----------------------------------------------------------------------


def manifest_sequences(manifest: Manifest | JSONObject | None,
                       where: str | os.PathLike = layout.MANIFEST) -> dict[str, JSONObject] | None:
    """``{sequence path relative to the datasets folder: its manifest entry}`` of a Dataset Forge
    ``manifest.json`` (its model, or the decoded document read from ``where``); None when
    ``manifest`` is not one (no ``scenes`` list)."""
    doc = manifest if isinstance(manifest, Manifest) or manifest is None \
        else manifest_doc.parse(manifest, where)
    if doc is None:
        return None
    return {path: q.to_dict() for path, q in doc.sequences().items()}


def manifest_problem(listed: dict[str, JSONObject] | None, rel: str) -> str | None:
    """Why the sequence folder at ``rel`` (relative to the datasets folder) is not part of the
    dataset its manifest describes (``listed``: :func:`manifest_sequences`), or None: not listed
    (left by an earlier run with other settings) or listed as not complete."""
    if listed is None:
        return None
    if rel not in listed:
        return (f"not in {layout.MANIFEST}: left by an earlier run with other settings (another "
                "seed, strategy or frame count?); delete the folder, or render it again with those "
                "settings")
    q = SequenceEntry.from_dict(listed[rel], f"{layout.MANIFEST}: {rel}")
    if not q.complete:
        why = f" ({q.reason})" if q.reason else ""
        return f"{layout.MANIFEST} calls it {q.status}{why}: render it again"
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
                       if not any(part.startswith(".") for part in p.relative_to(self.path).parts)
                       and not layout.is_view_folder(p.parent))  # SEQ/right: part of SEQ
        if not found:
            raise DatasetError(f"{self.path}: no {TRANSFORMS} below this folder (not a dataset)")
        mf = self.path / layout.MANIFEST
        try:
            self.manifest: Manifest | None = manifest_doc.read(mf)
        except DocumentError as exc:
            raise DatasetError(str(exc)) from None
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



def as_torch(source: Sequence | Dataset | str | os.PathLike, keys: tuple[str, ...] | None = None,
             transform=None) -> TorchFrames:
    """Wrap a sequence or dataset as a map-style PyTorch dataset whose items are dicts of tensors
    (``rgb`` as stored, HxWxC; ground truth float32; ``segmentation`` int64; plus ``index``).
    ``keys`` selects entries (default: all the sequence has); ``transform`` is applied to each
    dict. Imports torch only here; raises ImportError with the fix when it is missing."""
    need_torch()
    if not isinstance(source, (Sequence, Dataset)):
        source = load(source)
    return TorchFrames(source, keys, transform)
