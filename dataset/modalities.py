# SPDX-License-Identifier: GPL-3.0-or-later
"""The ground-truth modalities, one entry each (as Kubric keeps its ``post_processors``). Pure
Python, no numpy, no ``bpy``.

A :class:`Modality` says everything the tool needs about one kind of ground truth: its settings
flag and files (``layout.KINDS``), what Blender renders for it (view-layer pass, File Output
socket type), the ``conventions`` entry of ``transforms.json``, the loader's accessors, the
preview tile, the validate checks that judge it, the exports that carry it and its share of the
frame-buffer memory estimate (``frame_bytes`` of its settings field, which also makes
``Settings.ground_truths`` and ``frame_buffer_bytes`` count it: settings sit on the floor below
and cannot read this table). The loader (``Sequence.keys``) and the preview follow
:data:`MODALITIES`.

Adding a modality is its settings field (with ``frame_bytes``), one entry here (and its ``Kind``
in ``dataset/layout.py``), plus the code
only it can have: the compositor branch in ``render_passes/passes.py``, a ``Frame`` property,
its colour map in ``dataset/preview.py`` (``COLORMAPS``) and its checks in ``dataset/validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ..settings import FIELDS
from . import layout


def _pattern(kind: str) -> str:
    return layout.pattern(layout.gt_file(kind, 0))


@dataclass(frozen=True)
class Modality:
    """One ground truth. ``accessors``: the :class:`~.loader.Frame` attributes that return it
    (``Frame.to_dict`` keys); ``preview``: ``(tile label, Frame attribute, colour map of preview.COLORMAPS)``;
    ``checks``: names in ``validate.report.CHECKS``; ``exports``: formats of ``dataset.exports.FORMATS``
    that write it; ``convention``: builds its ``conventions`` entry."""

    name: str
    view_layer_pass: str          # the ViewLayer property that turns the render pass on
    socket: str                   # File Output socket type: FLOAT, VECTOR or RGBA
    accessors: tuple[str, ...]
    preview: tuple[str, str, str]
    checks: tuple[str, ...]
    exports: tuple[str, ...]
    convention: Callable[..., Convention]

    @property
    def kind(self) -> layout.Kind:
        return layout.KINDS[self.name]

    @property
    def bytes_per_px(self) -> int:
        """Its share of one frame's buffers (bytes per pixel; its settings field's
        ``frame_bytes``)."""
        return FIELDS[self.flag].metadata["frame_bytes"]

    @property
    def flag(self) -> str:
        """The ``Settings`` field that turns it on (``depths``)."""
        return self.kind.flag


class DepthConvention(TypedDict):
    file: str
    channel: str
    type: str  # planar | euclidean
    definition: str
    units: str
    unit_scale_m: float
    invalid_value: float
    valid_if: str
    dtype: str


class NormalConvention(TypedDict):
    file: str
    channels: Sequence[str]
    frame: str  # camera | world
    axes: str
    unit_length: bool
    background: list[float]
    valid_if: str
    dtype: str


class FlowConvention(TypedDict):
    file: str
    channels: dict[str, str]  # FLOW_KEYS -> EXR channel
    units: str
    axes: str
    forward: str
    backward: str
    static_value: float
    dtype: str
    intrinsics: str
    valid_if: str


class SegmentationConvention(TypedDict):
    file: str
    channel: str
    ids_file: str
    background: int
    dtype: str
    instance_channel: str
    instance_dtype: str
    instance_ids: str
    source: str
    objects_file: str


Convention = DepthConvention | NormalConvention | FlowConvention | SegmentationConvention
"""A modality's entry of ``transforms.json`` ``conventions`` (what its files hold, in words)."""


def _depth(*, depth_type: str, unit_scale_m: float, ch: Mapping[str, Sequence[str]],
           **_: Any) -> DepthConvention:
    return {"file": _pattern("depth"), "channel": ch["FLOAT"][0], "type": depth_type,
            "definition": ("distance along the camera's viewing axis (-z)" if depth_type == "planar"
                           else "euclidean length of the ray from the camera centre"),
            "units": "scene units", "unit_scale_m": float(unit_scale_m),
            "invalid_value": 0.0, "valid_if": "depth > 0", "dtype": "float32"}


def _normal(*, normal_frame: str, ch: Mapping[str, Sequence[str]], **_: Any) -> NormalConvention:
    cam = normal_frame == "camera"
    return {"file": _pattern("normal"), "channels": ch["VECTOR"], "frame": normal_frame,
            "axes": ("x right, y up, z towards the viewer (Blender camera axes; the camera "
                     "looks down -z)" if cam else "world x, y, z"),
            "unit_length": True, "background": [0.0, 0.0, 0.0], "valid_if": "|n| > 0",
            "dtype": "float32"}


def _flow(*, ch: Mapping[str, Sequence[str]], **_: Any) -> FlowConvention:
    return {
        "file": _pattern("flow"), "channels": dict(zip(layout.FLOW_KEYS, ch["RGBA"])),
        "units": "pixels", "axes": "u right, v down",
        "forward": "pixel displacement from frame t to t+1",
        "backward": "pixel displacement from frame t to t-1",
        "static_value": 0.0, "dtype": "float32",
        "intrinsics": ("each frame projected with its own K: under an animated lens the "
                       "Vector pass is re-projected exactly where K changes"),
        "valid_if": ("the frame's flow_forward_valid / flow_backward_valid is true: they "
                     "are false where the active camera changes between t and t+1 "
                     "(forward of t) or t-1 and t (backward of t), a camera cut, where "
                     "K changes in a way that cannot be corrected exactly, or where a "
                     "drawn mesh changes its vertex count between the two frames "
                     "without a velocity attribute (Cycles has no motion for it)")}


def _segmentation(**_: Any) -> SegmentationConvention:
    return {"file": _pattern("segmentation"),
            "channel": layout.SEGMENTATION_OBJECT_CHANNEL, "ids_file": layout.IDS_FILE,
            "background": 0, "dtype": "float32 holding exact integers",
            "instance_channel": layout.SEGMENTATION_INSTANCE_CHANNEL, "instance_dtype": "uint32",
            "instance_ids": "per drawn instance, hash of object name + instancer chain + "
                            "persistent id (stable across frames, sequences and reruns); "
                            "mapped in ids_file['instances']",
            "source": "first Cycles sample of the pixel (never averaged), like depth",
            "objects_file": layout.OBJECTS_FILE}


MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("depth", "use_pass_z", "FLOAT", ("depth",), ("depth", "depth", "depth"),
             ("coverage",), ("sintel", "visionsim-npy", "colmap"), _depth),
    Modality("normal", "use_pass_normal", "VECTOR", ("normals",), ("normals", "normals", "normals"),
             ("normals", "coverage"), (), _normal),
    Modality("flow", "use_pass_vector", "RGBA", ("flow_forward", "flow_backward"),
             ("flow", "flow_forward", "flow"), ("flow_rigid", "flow_cycle", "camera_cuts"),
             ("sintel", "kitti-flow"), _flow),
    Modality("segmentation", "use_pass_object_index", "FLOAT", ("segmentation",),
             ("segmentation", "segmentation", "ids"), ("segmentation_ids", "objects", "coverage"),
             ("coco",), _segmentation),
)}


def enabled(settings: Any) -> tuple[Modality, ...]:
    """The modalities ``settings`` turns on (``Settings`` or anything with the flags), in table
    order."""
    return tuple(m for m in MODALITIES.values() if getattr(settings, m.flag))


__all__ = ["MODALITIES", "Modality", "enabled"]
