# SPDX-License-Identifier: GPL-3.0-or-later
"""Preview Camera Path: the paths a generated camera (``camera`` = orbit / flythrough) takes in the
open scene's sequences, drawn as curves in the viewport before anything renders.

The path comes from the worker's own code (:func:`render_passes.camera_rig.plan`, with the same
scene name as Render This File: the file's stem), so what the curve shows is what renders. The
curves live in their own collection, :data:`COLLECTION`, hidden from renders; a second click
removes them. Nothing here saves a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import bpy

from ..dataset.documents.base import JSONObject
from ..engine.discovery import safe_name
from ..properties import settings_from_context
from ..render_passes import camera_rig
from ..render_passes.scene_setup import SceneError
from ..sampling import SamplingError, sample_sequences
from ..sampling.trajectory import generated_timeline
from ..settings import Settings, SettingsError

COLLECTION = "Dataset Forge Path Preview"
MAX_PATHS = 8  # sequences drawn at most


def preview_collection(scene):
    """The preview's collection when it is in ``scene``, else None."""
    coll = bpy.data.collections.get(COLLECTION)
    if coll is not None and scene.collection.children.get(COLLECTION) == coll:
        return coll
    return None


def remove_preview(scene) -> bool:
    """Remove the preview's curves and collection; True when there was one."""
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        return False
    for ob in list(coll.objects):
        data = ob.data
        bpy.data.objects.remove(ob)
        if data is not None and data.users == 0:
            bpy.data.curves.remove(data)
    bpy.data.collections.remove(coll)
    return True


def scene_name(context) -> str:
    """The name the worker gives the open file's scene under Render This File (its stem)."""
    return safe_name(Path(bpy.data.filepath).stem if bpy.data.filepath else "untitled")


def sequences(scene, settings: Settings) -> list[Any]:
    """The sequences a run of this scene renders (as the plan samples them)."""
    m = settings.keyframe_multiplier
    first, last = generated_timeline(scene.frame_start, scene.frame_end,
                                     settings.sequences_per_scene, settings.num_frames, m,
                                     settings.min_gap)
    return sample_sequences(first, last, settings.sequences_per_scene,
                            settings.num_frames or None, multiplier=m, strategy=settings.strategy,
                            seed=settings.seed, min_gap=settings.min_gap,
                            key=scene_name(bpy.context))


class PathPreview(TypedDict):
    """One previewed path: the sequence ``id``, its curve object's name, the camera positions
    (world units) and what the path's checks measured."""

    id: str
    object: str
    points: list[list[float]]
    info: JSONObject


def build_preview(context, settings: Settings) -> list[PathPreview]:
    """Plan every sequence's path (at most :data:`MAX_PATHS`) and add one poly curve per path
    through its camera positions (frames ``a - 1 .. b + 1``) to :data:`COLLECTION`. Returns
    ``[{"id", "object", "points", "info"}]``. The scene's current frame is kept. Raises
    :class:`SceneError` / :class:`SamplingError` with the reason."""
    scene = context.scene
    remove_preview(scene)
    name = scene_name(context)
    blend = Path(bpy.data.filepath).name if bpy.data.filepath else "untitled.blend"
    r = scene.render
    size = ((settings.width, settings.height) if settings.width and settings.height
            else camera_rig.resolution(scene))
    fps = r.fps / (r.fps_base or 1.0) * settings.keyframe_multiplier
    frame = scene.frame_current
    out = []
    coll = None
    try:
        for q in sequences(scene, settings)[:MAX_PATHS]:
            planned = camera_rig.plan(scene, settings, name, q.id, q.start, q.end, blend,
                                      fps=fps, size=size)
            if coll is None:
                coll = bpy.data.collections.new(COLLECTION)
                coll.hide_render = True
                scene.collection.children.link(coll)
            points = [tuple(p[r][3] for r in range(3)) for _, p in sorted(planned.poses.items())]
            curve = bpy.data.curves.new(f"{COLLECTION} {q.id}", "CURVE")
            curve.dimensions = "3D"
            spline = curve.splines.new("POLY")
            spline.points.add(len(points) - 1)
            for pt, p in zip(spline.points, points):
                pt.co = (*p, 1.0)
            ob = bpy.data.objects.new(f"Camera Path {q.id}", curve)
            ob.hide_render = True
            coll.objects.link(ob)
            out.append({"id": q.id, "object": ob.name, "points": points, "info": planned.info})
    finally:
        scene.frame_set(frame)
    return out


class DATASETFORGE_OT_camera_path_preview(bpy.types.Operator):
    bl_idname = "dataset_forge.camera_path_preview"
    bl_label = "Preview Camera Path"
    bl_description = ("Draw the path the generated camera takes in each sequence of this scene "
                      "(a curve per sequence, in its own collection, never rendered); click "
                      "again to remove it")
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context) -> bool:
        pg = getattr(context.scene, "dataset_forge", None)
        if pg is None or pg.camera == "scene":
            cls.poll_message_set("Choose an Orbit or Flythrough camera")
            return False
        return True

    def execute(self, context):
        if remove_preview(context.scene):
            self.report({"INFO"}, "Camera path preview removed")
            return {"FINISHED"}
        try:
            settings = settings_from_context(context)
            paths = build_preview(context, settings)
        except (SettingsError, SceneError, SamplingError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(paths)} camera path(s) in collection '{COLLECTION}'")
        return {"FINISHED"}


CLASSES = (DATASETFORGE_OT_camera_path_preview,)
