# SPDX-License-Identifier: GPL-3.0-or-later
"""Object-level ground truth: the schema of ``objects.json`` (one per sequence). Pure Python.

Written by the worker next to ``transforms.json``; read by the loader (as arrays), validate and
the exports. Field names follow BOP's ``scene_gt`` / ``scene_gt_info`` where one exists
(``bbox_obj``, ``bbox_visib``, ``px_count_visib``), with Kubric's notion of per-instance 3D boxes.

Conventions:

* ``instance_id``: a positive int32, stable across frames, sequences and reruns (a hash of the
  object name and its instancer chain, never draw order); written per pixel in the instance
  channel of the segmentation EXR. ``object_id`` is the per-object id of the id pass (as in
  ``segmentation_ids.json``). ``0`` is background for both.
* ``object_to_world``: ``(4, 4)`` row-major, object space to world (scene units, scale kept).
* ``object_to_camera``: ``(4, 4)`` object space to the **OpenCV camera frame** of that frame's
  camera (x right, y down, z forward; the frame ``K`` maps), i.e. ``inv(pose_opencv) @ object_to_world``.
* ``bbox_3d``: ``(8, 3)`` world-space corners of the axis-aligned box of the *evaluated* geometry
  in object space, corner ``i`` has ``x = max if i & 1``, ``y = max if i & 2``, ``z = max if i & 4``.
* ``bbox_obj`` (amodal) and ``bbox_visib``: ``[x, y, w, h]`` in pixels, origin at the top-left
  image corner; ``bbox_obj`` is the projection of the evaluated vertices clipped to the image
  (continuous coordinates), ``bbox_visib`` the pixel-edge box of the instance's visible pixels
  (integers), ``[0, 0, 0, 0]`` when none; ``px_count_visib`` the number of those pixels.
"""

from __future__ import annotations

from typing import TypedDict

OBJECTS_SCHEMA = "dataset_forge.objects/1"


class InstanceInfo(TypedDict):
    """One drawn instance, the same in every frame of the sequence."""

    instance_id: int
    object_id: int
    object: str                 # the instanced object's name (library-qualified if linked)
    instancer_chain: list[str]  # outermost first; [] for an object drawn by itself
    category: str               # its class (the object's class, as in segmentation_ids.json)
    deforming: bool             # armature, shape keys, animated modifiers or simulation


class InstanceFrame(TypedDict):
    """One instance in one frame."""

    instance_id: int
    object_to_world: list[list[float]]
    object_to_camera: list[list[float]]
    bbox_3d: list[list[float]]
    bbox_obj: list[float]
    bbox_visib: list[int]
    px_count_visib: int


class FrameObjects(TypedDict):
    frame: int
    camera: str
    instances: list[InstanceFrame]


class ObjectsDoc(TypedDict):
    schema: str
    instances: list[InstanceInfo]
    frames: list[FrameObjects]
