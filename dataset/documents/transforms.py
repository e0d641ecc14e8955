# SPDX-License-Identifier: GPL-3.0-or-later
"""``transforms.json``: a superset of the tutorial's (NeRF-style) schema, its frame entries and
the ``conventions`` of each modality. Pure Python.

Top level: ``fl_x, fl_y, cx, cy, w, h`` (pixels), ``c`` (channels of the RGB frames),
``intrinsics`` (3x3 K), ``camera_model`` ("PINHOLE"), ``frame_rate`` (after the keyframe
multiplier), ``keyframe_multiplier``, ``frame_start``/``frame_end`` (inclusive, stretched timeline),
``scene``, ``blend_file``, ``sequence_id``, ``blender_version``, ``dataset_forge_version``,
``conventions`` and ``frames``. Each frame (:class:`FrameEntry`): ``file_path`` (relative to the
sequence folder), ``transform_matrix`` (4x4 camera-to-world, Blender/OpenGL camera axes: x right,
y up, looking down -z; world units), ``frame`` (stretched frame number), ``time`` (seconds from
``frame_start``), ``camera`` (the frame's active camera; timeline markers can switch it), one
``*_file_path`` per enabled ground truth; with flows ``flow_forward_valid`` /
``flow_backward_valid`` (false across a camera cut); per-frame ``fl_x ... intrinsics`` where they
differ from the top level. The top-level ``camera`` and intrinsics are the first frame's;
``cameras`` (names in order of first use) is added when a sequence uses more than one camera.

The writer (the worker) builds :class:`Transforms`; readers that accept the tutorial's schema too
(the loader, validate) spell keys through :class:`Key`. The per-frame file keys and the camera-cut
keys are :mod:`dataset.layout`'s (``Kind.key``, ``FRAME_CAMERA_KEY``, ``CAMERAS_KEY``,
``FLOW_*_VALID``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .. import layout
from .base import (
    JSONObject,
    as_any,
    as_bool,
    as_dict,
    as_int,
    as_number,
    as_str,
    check_schema,
    dict_of,
    list_of,
    matrix,
    optional,
    write_json,
)
from .base import field as get

SCHEMA_VERSION = 1
CAMERA_MODEL = "PINHOLE"


class Key:
    """Every key of ``transforms.json`` (top level, frames and conventions), spelled once."""

    SCHEMA_VERSION = "schema_version"
    CAMERA_MODEL = "camera_model"
    FL_X, FL_Y, CX, CY, W, H, C = "fl_x", "fl_y", "cx", "cy", "w", "h", "c"
    CAMERA_ANGLE_X, CAMERA_ANGLE_Y = "camera_angle_x", "camera_angle_y"  # NeRF's, read only
    INTRINSICS = "intrinsics"
    FRAME_RATE = "frame_rate"
    KEYFRAME_MULTIPLIER = "keyframe_multiplier"
    FRAME_START, FRAME_END = "frame_start", "frame_end"
    SCENE, BLEND_FILE, CAMERA = "scene", "blend_file", layout.FRAME_CAMERA_KEY
    CAMERAS = layout.CAMERAS_KEY
    SEQUENCE_ID = "sequence_id"
    UNIT_SCALE_M = "unit_scale_m"
    BLENDER_VERSION, DATASET_FORGE_VERSION = "blender_version", "dataset_forge_version"
    CONVENTIONS = "conventions"
    OBJECTS_FILE = "objects_file"
    FRAMES = "frames"
    # frames[i]
    FILE_PATH = "file_path"
    TRANSFORM_MATRIX = "transform_matrix"
    FRAME, TIME = "frame", "time"
    FLOW_FORWARD_VALID, FLOW_BACKWARD_VALID = layout.FLOW_FORWARD_VALID, layout.FLOW_BACKWARD_VALID
    FLOW_VALID = "flow_valid"  # nested spelling of other writers: {"forward": .., "backward": ..}
    # conventions[kind]
    CHANNEL, CHANNELS, TYPE, NORMAL_FRAME = "channel", "channels", "type", "frame"
    IDS_FILE, INSTANCE_CHANNEL = "ids_file", "instance_channel"
    PREVIEWS = "previews"


FRAME_K = (Key.FL_X, Key.FL_Y, Key.CX, Key.CY, Key.INTRINSICS)  # per-frame intrinsics
# Every key this module owns (tests/test_architecture.py looks for them in other modules) and the
# words among them that are keys of other documents too (not looked for).
KEYS = (*(v for k, v in vars(Key).items() if k.isupper()), *(k.key for k in layout.KINDS.values()))
GENERIC = ("w", "h", "c", "frame", "time", "frames", "scene", "camera", "cameras", "intrinsics",
           "frame_rate", "frame_start", "frame_end", "type", "channel", "channels", "previews",
           "fl_x", "fl_y", "cx", "cy", "file_path", "transform_matrix", "keyframe_multiplier",
           "unit_scale_m", "blender_version", "dataset_forge_version", "objects_file", "ids_file",
           "instance_channel",
           "camera_model", "depth_file_path",  # keys of the visionsim export's transforms.json too
           "sequence_id")  # a key of validate's report too

class BaseConventions(TypedDict):
    """The conventions every sequence records, in words."""

    pixel_coordinates: str
    intrinsics: str
    transform_matrix: str
    frame_numbers: str


BASE_CONVENTIONS: BaseConventions = {
    "pixel_coordinates": "u right, v down, origin at the top-left corner of the image; the centre "
                         "of pixel (column i, row j) is (i + 0.5, j + 0.5)",
    "intrinsics": "K maps OpenCV camera coordinates (x right, y down, z forward) to pixels",
    "transform_matrix": "camera-to-world 4x4, Blender/OpenGL camera axes (x right, y up, camera "
                        "looks down -z), world units; right-multiply by diag(1,-1,-1,1) for OpenCV",
    "frame_numbers": "frames on the timeline stretched by keyframe_multiplier (keyframe f -> f*m)",
}


class FrameIntrinsics(TypedDict, total=False):
    """A frame's own intrinsics (pixels; ``intrinsics``: the 3x3 K), keys of ``FRAME_K``."""

    fl_x: float
    fl_y: float
    cx: float
    cy: float
    intrinsics: list[list[float]]


@dataclass
class FrameEntry:
    """``frames[i]``: the RGB file, pose (4x4 camera-to-world), frame number, time (s since the
    first frame), camera name, ground-truth files (``{kind: path}``, kinds of ``layout.KINDS``),
    per-frame intrinsics where they differ from the top level, and the flow validity flags."""

    file_path: str
    transform_matrix: list[list[float]]
    frame: int
    time: float
    camera: str | None
    files: dict[str, str] = field(default_factory=dict)
    k: FrameIntrinsics | None = None    # of this frame, where they differ from the top level
    flow_backward_valid: bool | None = None
    flow_forward_valid: bool | None = None
    extra: JSONObject = field(default_factory=dict)

    @classmethod
    def new(cls, file_path: str, transform_matrix: list[list[float]], frame: int, time: float,
            camera: str | None, files: Mapping[str, str], k: Any = None) -> FrameEntry:
        """An entry as the worker makes it; ``files``: ``{kind: path}`` or ``{*_file_path: path}``;
        ``k``: a ``camera.Intrinsics`` written per frame, or None."""
        known = {key for key in files if key in layout.KINDS or any(
            key == kd.key for kd in layout.KINDS.values())}
        by_kind = {_kind_of(key): p for key, p in files.items() if key in known}
        per_frame = None if k is None else dict(zip(FRAME_K, (k.fl_x, k.fl_y, k.cx, k.cy, k.K)))
        return cls(file_path, transform_matrix, frame, time, camera, by_kind, per_frame,
                   extra={key: p for key, p in files.items() if key not in known})  # disparity

    @classmethod
    def from_dict(cls, d: Any, where: str) -> FrameEntry:
        d = as_dict(d, where)
        files = {k.name: get(d, k.key, as_str, where) for k in layout.KINDS.values() if k.key in d}
        known = {Key.FILE_PATH, Key.TRANSFORM_MATRIX, Key.FRAME, Key.TIME, Key.CAMERA, *FRAME_K,
                 Key.FLOW_FORWARD_VALID, Key.FLOW_BACKWARD_VALID,
                 *(k.key for k in layout.KINDS.values())}
        return cls(
            file_path=get(d, Key.FILE_PATH, as_str, where),
            transform_matrix=get(d, Key.TRANSFORM_MATRIX, matrix(4, 4), where),
            frame=get(d, Key.FRAME, as_int, where), time=get(d, Key.TIME, as_number, where),
            camera=get(d, Key.CAMERA, optional(as_str), where, None), files=files,
            k={key: d[key] for key in FRAME_K if key in d} or None,
            flow_backward_valid=get(d, Key.FLOW_BACKWARD_VALID, optional(as_bool), where, None),
            flow_forward_valid=get(d, Key.FLOW_FORWARD_VALID, optional(as_bool), where, None),
            extra={key: v for key, v in d.items() if key not in known})

    @property
    def position(self) -> list[float]:
        """The camera centre (world units)."""
        return [self.transform_matrix[r][3] for r in range(3)]

    def to_dict(self) -> JSONObject:
        out: JSONObject = {Key.FILE_PATH: self.file_path, Key.TRANSFORM_MATRIX: self.transform_matrix,
                               Key.FRAME: self.frame, Key.TIME: self.time}
        if self.camera is not None:
            out[Key.CAMERA] = self.camera
        out.update({layout.KINDS[kind].key: p for kind, p in self.files.items()})
        if self.k:
            out.update(self.k)
        if self.flow_backward_valid is not None:
            out[Key.FLOW_BACKWARD_VALID] = self.flow_backward_valid
        if self.flow_forward_valid is not None:
            out[Key.FLOW_FORWARD_VALID] = self.flow_forward_valid
        out.update(self.extra)
        return out


def _kind_of(key: str) -> str:
    """``depth`` for ``depth`` or ``depth_file_path``."""
    if key in layout.KINDS:
        return key
    return next(k.name for k in layout.KINDS.values() if k.key == key)


def frame_of(entry: Mapping[str, Any]) -> int:
    """The frame number of a frame entry as the worker keeps it (its dict form)."""
    return entry[Key.FRAME]


def position_of(entry: Mapping[str, Any]) -> list[float]:
    """The camera centre (world units) of a frame entry in its dict form."""
    m = entry[Key.TRANSFORM_MATRIX]
    return [m[r][3] for r in range(3)]


@dataclass
class Transforms:
    """``transforms.json``: first-frame intrinsics (pixels), timing, provenance, the
    ``conventions`` (:func:`conventions`) and the frames (sorted by frame number on write)."""

    fl_x: float
    fl_y: float
    cx: float
    cy: float
    w: int
    h: int
    c: int
    intrinsics: list[list[float]]
    frame_rate: float
    keyframe_multiplier: float
    frame_start: int
    frame_end: int
    scene: str
    blend_file: str
    camera: str
    sequence_id: str
    unit_scale_m: float
    blender_version: str
    dataset_forge_version: str
    conventions: JSONObject
    frames: list[FrameEntry]
    cameras: list[str] | None = None   # written when the sequence uses more than one camera
    extra: JSONObject = field(default_factory=dict)

    SCHEMA = SCHEMA_VERSION
    _TOP = (Key.FL_X, Key.FL_Y, Key.CX, Key.CY, Key.W, Key.H, Key.C, Key.INTRINSICS, Key.FRAME_RATE,
            Key.KEYFRAME_MULTIPLIER, Key.FRAME_START, Key.FRAME_END, Key.SCENE, Key.BLEND_FILE,
            Key.CAMERA, Key.SEQUENCE_ID, Key.UNIT_SCALE_M, Key.BLENDER_VERSION,
            Key.DATASET_FORGE_VERSION, Key.CONVENTIONS)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Transforms:
        """A Dataset Forge ``transforms.json`` (``schema_version`` 1); the tutorial's schema is
        read by the loader, which assumes what it lacks."""
        d = as_dict(d, where)
        check_schema(d, Key.SCHEMA_VERSION, (SCHEMA_VERSION,), where)
        num = {k: get(d, k, as_number, where) for k in (Key.FL_X, Key.FL_Y, Key.CX, Key.CY,
                                                          Key.FRAME_RATE, Key.KEYFRAME_MULTIPLIER,
                                                          Key.UNIT_SCALE_M)}
        ints = {k: get(d, k, as_int, where) for k in (Key.W, Key.H, Key.C, Key.FRAME_START, Key.FRAME_END)}
        text = {k: get(d, k, as_str, where) for k in (Key.SCENE, Key.BLEND_FILE, Key.CAMERA,
                                                        Key.SEQUENCE_ID, Key.BLENDER_VERSION,
                                                        Key.DATASET_FORGE_VERSION)}
        known = {Key.SCHEMA_VERSION, Key.CAMERA_MODEL, *cls._TOP, Key.FRAMES, Key.CAMERAS}
        return cls(**num, **ints, **text, intrinsics=get(d, Key.INTRINSICS, matrix(3, 3), where),
                   conventions=get(d, Key.CONVENTIONS, dict_of(as_any), where),
                   frames=get(d, Key.FRAMES, list_of(FrameEntry.from_dict), where),
                   cameras=get(d, Key.CAMERAS, optional(list_of(as_str)), where, None),
                   extra={k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> JSONObject:
        out: JSONObject = {Key.SCHEMA_VERSION: SCHEMA_VERSION, Key.CAMERA_MODEL: CAMERA_MODEL}
        out.update({k: getattr(self, k) for k in self._TOP})
        out[Key.FRAMES] = [f.to_dict() for f in sorted(self.frames, key=lambda f: f.frame)]
        if self.cameras is not None:
            out[Key.CAMERAS] = self.cameras
        out.update(self.extra)
        return out

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())


def conventions(kinds: Sequence[str], *, depth_type: str, normal_frame: str, unit_scale_m: float,
                exr_channels: Mapping[str, Sequence[str]], previews: bool) -> JSONObject:
    """The ``conventions`` of a sequence with ground truth ``kinds``: :data:`BASE_CONVENTIONS`
    and one entry per kind (file pattern, channels, units, frame, background, ``valid_if``).
    ``exr_channels``: the channel names Blender's File Output writes per socket type (``FLOAT``,
    ``VECTOR``, ``RGBA``; ``render_passes.compat.EXR_CHANNELS``)."""
    from ..modalities import MODALITIES

    conv: JSONObject = dict(BASE_CONVENTIONS)
    for kind in (m for m in MODALITIES if m in kinds):
        conv[kind] = MODALITIES[kind].convention(depth_type=depth_type, normal_frame=normal_frame,
                                                 unit_scale_m=unit_scale_m, ch=exr_channels)
    if previews and kinds:
        conv[Key.PREVIEWS] = {k: layout.pattern(layout.preview_file(k, 0)) for k in kinds}
    return conv
