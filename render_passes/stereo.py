# SPDX-License-Identifier: GPL-3.0-or-later
"""Stereo pairs (``stereo_baseline`` > 0): the right camera, its render pass and the disparity files.

The sequence renders as always (the left view, into ``SEQ/``); then the worker renders the same
frames again through a right camera into ``SEQ/right/`` with the same sequence machinery
(provenance, journal, verified writes, resume, flows, ids), and writes ``SEQ/stereo.json``.

* The right camera (:class:`RightCameras`) is a new camera object per sequence camera (the scene
  camera and those bound to timeline markers) that shares the left camera's data (so the same
  lens, sensor and shift: the same ``K``, animated or not), parented to the left camera at local
  offset ``(baseline, 0, 0)`` with no rotation. It moves with the left camera, so Cycles' Vector
  pass sees its motion. A parent inverse undoes the left camera's scale; a scale that changes
  during the sequence (or shear) would move the right camera off the rectified pose, and
  :meth:`StereoRig.prepare_frame` refuses the frame, naming the camera. Markers are rebound to the
  right cameras during the pass and everything is restored afterwards.
* :class:`StereoRig` wraps a :class:`passes.PassRig`: after each render it turns the frame's
  depth file into ``disparities/disparity_NNNNNN.exr`` (``fx * B / planar depth``,
  :func:`dataset.stereo.disparity_from_depth`), which is listed, verified and journaled with the
  frame's other files.

Blender's own multiview (Stereo 3D) is not used: a scene that has it on is refused by the
worker's scene checks, which name ``stereo_baseline``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..dataset import camera as cam_model
from ..dataset import exr, layout
from ..dataset import stereo as stereo_math
from ..dataset.documents import stereo as stereo_doc
from ..dataset.documents.base import JSONObject
from ..dataset.verify import replace_written
from ..settings import Settings
from ..wire.events import Emit
from ..wire.protocol import Ev, Event, SequenceSpec
from . import compat, scene_setup

VIEW_KEY = "stereo_view"    # in the sequence dict of the right view's pass: "right"
LEFT_PROP = "dataset_forge_left_camera"  # on a right camera: the name of its left camera
SUFFIX = ".right"
POSE_TOL = 1e-6             # relative to max(1, |translation|), scene units
# Events of the right view's pass that the runner must not count as frames of the sequence: its
# progress counts the left view's frames.
_QUIET = {Ev.JOB_STARTED, Ev.JOB_DONE, Ev.FRAME_DONE, Ev.FRAME_SKIPPED}


def wants_right_view(settings: Settings, seq: SequenceSpec) -> bool:
    """Whether the left view's pass of ``seq`` is to be followed by a right view's pass."""
    return settings.stereo_baseline > 0 and not seq.get(VIEW_KEY)


def rig(inner, scene, settings: Settings, seq_dir: Path):
    """``inner`` (a :class:`passes.PassRig`), wrapped in a :class:`StereoRig` when stereo is on."""
    return StereoRig(inner, scene, settings, seq_dir) if settings.stereo_baseline > 0 else inner


class StereoRig:
    """A pass rig that also writes each rendered frame's disparity (see the module docstring);
    everything else is the wrapped rig's."""

    def __init__(self, inner, scene, settings: Settings, seq_dir: Path):
        self._inner = inner
        self._scene = scene
        self._settings = settings
        self._seq_dir = Path(seq_dir)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def frame_files(self, frame: int) -> dict[str, str]:
        return {**self._inner.frame_files(frame),
                layout.DISPARITY.key: layout.disparity_file(frame)}

    def prepare_frame(self, frame: int) -> None:
        check_right_pose(self._scene, self._settings.stereo_baseline, frame)
        self._inner.prepare_frame(frame)

    def finish_frame(self, frame: int, rendered: bool) -> None:
        self._inner.finish_frame(frame, rendered)
        if rendered:
            self._write_disparity(frame)

    def conventions(self) -> JSONObject:
        return {**self._inner.conventions(),
                "disparity": {**stereo_doc.DISPARITY_CONVENTION,
                              "baseline": self._settings.stereo_baseline,
                              "view": "right" if _left_of(self._scene.camera) else "left"}}

    def _write_disparity(self, frame: int) -> None:
        """``disparities/disparity_NNNNNN.exr`` of ``frame`` (the scene is at it) from its depth
        file, replaced atomically."""
        scene, s = self._scene, self._settings
        k = cam_model.intrinsics(scene_setup.camera_params(scene, scene.camera))
        K = np.asarray(k.K, np.float64)
        depth = exr.read_single(self._seq_dir / layout.gt_file("depth", frame),
                                compat.EXR_CHANNELS["FLOAT"][0])
        disp = stereo_math.disparity_from_depth(
            stereo_math.planar_depth(depth, K, s.depth_type), K[0, 0], s.stereo_baseline)
        path = self._seq_dir / layout.disparity_file(frame)
        replace_written(path, lambda tmp: exr.write_channels(
            tmp, {layout.DISPARITY_CHANNEL: disp}, compression=s.exr_codec))


def _left_of(cam) -> str | None:
    return None if cam is None else cam.get(LEFT_PROP)


def _pose(ob) -> np.ndarray:
    return np.asarray(scene_setup.camera_pose(ob), np.float64)


def check_right_pose(scene, baseline: float, frame: int) -> None:
    """At ``frame`` (the scene is at it): when the active camera is a right camera, its pose must
    be its left camera's moved by ``baseline`` along the left camera's x axis; else a
    :class:`scene_setup.SceneError` naming the left camera and the fix."""
    cam = scene.camera
    left_name = _left_of(cam)
    if left_name is None:
        return
    left = bpy.data.objects.get(left_name)
    want = stereo_math.right_pose(_pose(left), baseline)
    got = _pose(cam)
    err = float(np.abs(got - want).max())
    if err > POSE_TOL * max(1.0, float(np.abs(want[:3, 3]).max())):
        scale = tuple(round(v, 6) for v in left.matrix_world.to_scale())
        blend = os.path.basename(bpy.data.filepath)
        raise scene_setup.SceneError(
            f"{blend}: frame {frame}: the right camera of '{left_name}' is {err:.3g} scene units "
            f"off the rectified pose (the camera's scale is {scale} here, changing or sheared): "
            "the stereo pair would not be rectified; apply the camera's scale (Object > Apply > "
            "Scale) and remove scale keys from it and its parents")


class RightCameras:
    """Context manager: for the right view's pass, a right camera per sequence camera, the scene
    camera and the camera markers switched to them; all undone on exit (see the module
    docstring)."""

    def __init__(self, scene, baseline: float):
        self.scene = scene
        self.baseline = float(baseline)
        self.twins: dict[str, bpy.types.Object] = {}  # left camera name -> its right twin
        self._camera = None
        self._markers: list[tuple[Any, Any]] = []

    def __enter__(self) -> RightCameras:
        from mathutils import Matrix

        scene = self.scene
        try:
            for left in scene_setup.sequence_cameras(scene):
                ob = bpy.data.objects.new(f"{left.name}{SUFFIX}", left.data)
                ob[LEFT_PROP] = left.name
                scene.collection.objects.link(ob)
                self.twins[left.name] = ob
                ob.parent = left
                sx, sy, sz = left.matrix_world.to_scale()
                ob.matrix_parent_inverse = Matrix.Diagonal((1.0 / sx, 1.0 / sy, 1.0 / sz, 1.0))
                ob.location = (self.baseline, 0.0, 0.0)
                ob.rotation_mode = "XYZ"
                ob.rotation_euler = (0.0, 0.0, 0.0)
            self._camera = scene.camera
            self._markers = [(m, m.camera) for m in scene.timeline_markers if m.camera is not None]
            for m, cam in self._markers:
                if cam.name in self.twins:
                    m.camera = self.twins[cam.name]
            scene.camera = self.twins[self._camera.name]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        scene = self.scene
        for m, cam in self._markers:
            m.camera = cam
        self._markers = []
        if self._camera is not None:
            scene.camera = self._camera
            self._camera = None
        for ob in self.twins.values():
            try:
                bpy.data.objects.remove(ob)
            except ReferenceError:
                pass
        self.twins = {}


def render_right_view(scene, seq: SequenceSpec, settings: Settings, emit: Emit,
                      render: Callable[[SequenceSpec, Emit], None]) -> None:
    """After the left view of ``seq`` (``seq['out_dir']``): render the right view into
    ``out_dir/right`` with ``render(right_seq, emit)`` (the worker's sequence pass) through the
    right cameras, then write ``out_dir/stereo.json``. The right pass's per-frame events are not
    passed on (the runner counts the left view's frames); warnings, notices and errors are."""
    left_out = Path(seq["out_dir"])
    right = {**seq, "out_dir": str(left_out / layout.RIGHT_FOLDER), VIEW_KEY: "right"}

    def quiet(e: Event) -> None:
        if e.get("event") not in _QUIET:
            emit(e)
    with RightCameras(scene, settings.stereo_baseline):
        render(right, quiet)
    stereo_doc.write(left_out, stereo_doc.Stereo(
        baseline=float(settings.stereo_baseline),
        unit_scale_m=float(scene.unit_settings.scale_length)))
