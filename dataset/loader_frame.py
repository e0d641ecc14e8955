# SPDX-License-Identifier: GPL-3.0-or-later
"""One frame of a sequence: its arrays, read on first access (see :mod:`.loader`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import exr
from .documents.base import JSONObject
from .documents.transforms import Key
from .layout import DISPARITY_CHANNEL, FLOW_KEYS, ray_norm
from .loader_images import read_image
from .loader_objects import FrameObjectsMixin, _instance_ids
from .loader_schema import DatasetError
from .objects import CV_FROM_GL


class Frame(FrameObjectsMixin):
    """One frame of a :class:`Sequence`; every array is read on first access and cached."""

    def __init__(self, sequence: Any, index: int):
        self.sequence = sequence
        self.index = index
        self.meta: JSONObject = sequence.frames_meta[index]
        self._cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"<Frame {self.number} of {self.sequence.path.name}>"

    @property
    def number(self) -> int:
        """Frame number on the (stretched) timeline."""
        return int(self.meta.get(Key.FRAME, self.sequence.frame_numbers[self.index]))

    @property
    def time(self) -> float | None:
        """Seconds since the sequence's first frame (None if not recorded)."""
        t = self.meta.get(Key.TIME)
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
    def disparity(self) -> np.ndarray:
        """``(H, W)`` float32 stereo disparity in pixels (``fx * B / planar depth``; 0 = no
        surface): a left pixel ``(u, v)`` matches right ``(u - d, v)``, a right pixel ``(u + d, v)``
        on the left (see ``Sequence.stereo``)."""
        return self._get("disparity", lambda: exr.read_single(
            self._need("disparity"), DISPARITY_CHANNEL))

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

    def to_dict(self, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The frame as a dict of arrays: ``rgb``, ``K``, ``pose`` and every ground truth the
        sequence has (or just ``keys``)."""
        names = keys or self.sequence.keys
        return {k: getattr(self, k) for k in names}

    def clear(self) -> None:
        """Forget the cached arrays."""
        self._cache.clear()
