# SPDX-License-Identifier: GPL-3.0-or-later
"""Generated cameras (``camera`` = ``orbit`` / ``flythrough``), Blender's side: the camera
created in memory (never saved into the user's file), the evaluated scene as BVH trees (one per
distinct geometry over the sequence), the clearance and coverage checks of each seeded path, and
the keyframes at every frame of the sequence and its two neighbours (so the Vector pass sees the
motion). Where the camera goes is decided in :mod:`sampling.trajectory` (pure), so the worker and
the panel's path preview compute the same path.

A point's clearance is its distance to the nearest surface, negative behind that surface
(inside a closed solid with outward normals, or under a terrain): see :func:`_clearance`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree

from ..dataset.documents.base import JSONObject
from ..sampling import SamplingError
from ..sampling import trajectory as traj
from ..settings import Settings
from . import compat
from .scene_setup import SceneError, frame_rate

CAMERA_NAME = "Dataset Forge Camera"
GENERATED_PROP = "dataset_forge_generated"  # on the camera object: the mode that made it
_GEOMETRY = {"MESH", "CURVE", "SURFACE", "FONT", "META", "CURVES", "POINTCLOUD"}
_GRID = (8, 6)  # coverage rays per frame


@dataclass
class Geometry:
    """The evaluated scene over frames ``a - 1 .. b + 1``: one BVH per distinct geometry
    (``trees``), which tree each frame uses (``frame_tree``), the world box of everything at the
    first frame (``lo``, ``hi``) and of the target (``target_lo``, ``target_hi``)."""

    trees: list[BVHTree]
    frame_tree: dict[int, int]
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    target_lo: tuple[float, float, float]
    target_hi: tuple[float, float, float]

    def tree(self, f: int) -> BVHTree:
        return self.trees[self.frame_tree[f]]


@dataclass
class Planned:
    """A checked path: camera-to-world poses of frames ``a - 1 .. b + 1`` and what the checks
    measured (``info``: mode, seed, attempt, min clearance, min coverage, seconds)."""

    poses: dict[int, list[list[float]]]
    info: JSONObject = field(default_factory=dict)
    trajectory: Any = None


def is_generated(ob) -> bool:
    return ob is not None and GENERATED_PROP in ob.keys()


def install(scene, settings: Settings, blend_name: str):
    """With a generated camera: add it to ``scene`` (in memory) as the active camera, unbind the
    timeline markers' cameras (no camera cuts) and return it; None for ``camera = scene``. Refuses
    a target that names no object or collection."""
    if settings.camera == "scene":
        return None
    if settings.camera_target:
        _target_names(scene, settings.camera_target, blend_name)
    data = bpy.data.cameras.new(CAMERA_NAME)
    data.type = "PERSP"
    data.lens = settings.camera_lens
    data.sensor_width = traj.SENSOR_WIDTH
    data.sensor_fit = "AUTO"
    data.dof.use_dof = False
    ob = bpy.data.objects.new(CAMERA_NAME, data)
    ob[GENERATED_PROP] = settings.camera
    ob.rotation_mode = "QUATERNION"
    scene.collection.objects.link(ob)
    scene.camera = ob
    for m in scene.timeline_markers:
        m.camera = None
    return ob


def _target_names(scene, target: str, blend_name: str) -> set[str]:
    """Names of the objects ``target`` (an object or collection name) stands for."""
    ob = scene.objects.get(target)
    if ob is not None:
        return {ob.name, *(c.name for c in ob.children_recursive)}
    coll = bpy.data.collections.get(target)
    if coll is not None:
        return {o.name for o in coll.all_objects}
    raise SceneError(f"{blend_name}: camera_target '{target}' is neither an object of scene "
                     f"'{scene.name}' nor a collection; name one of them, or leave it empty to "
                     "aim at everything that renders")


def _hidden_for_render(ob) -> bool:
    return ob.hide_render or any(c.hide_render for c in ob.users_collection)


def _instances(depsgraph):
    """``(names, evaluated object, world matrix)`` of every drawn geometry instance: ``names``
    are the drawn object's and, for an instance, its instancer's (what a target may name).
    Objects (or instancers) hidden for rendering, directly or by their collection, are left
    out."""
    for inst in depsgraph.object_instances:
        ob = inst.object
        if ob.type not in _GEOMETRY:
            continue
        drawn = ob.original
        owner = inst.parent.original if inst.is_instance and inst.parent is not None else drawn
        if _hidden_for_render(owner) or is_generated(owner):
            continue
        yield {drawn.name, owner.name}, ob, inst.matrix_world.copy()


def _triangles(depsgraph, cache: dict) -> list[tuple[set[str], np.ndarray, np.ndarray]]:
    """World-space ``(names, vertices (n, 3), triangles (m, 3))`` of the evaluated scene; a
    mirrored instance's triangles are flipped so that normals keep pointing out."""
    out = []
    for names, ob, mw in _instances(depsgraph):
        key = (ob.name, ob.type)
        if key not in cache:
            try:
                mesh = ob.to_mesh()
            except RuntimeError:
                cache[key] = None
                continue
            if mesh is None:
                cache[key] = None
                continue
            mesh.calc_loop_triangles()
            co = np.empty(len(mesh.vertices) * 3, np.float64)
            mesh.vertices.foreach_get("co", co)
            tri = np.empty(len(mesh.loop_triangles) * 3, np.int64)
            mesh.loop_triangles.foreach_get("vertices", tri)
            cache[key] = (co.reshape(-1, 3), tri.reshape(-1, 3))
            ob.to_mesh_clear()
        if cache[key] is None or not len(cache[key][1]):
            continue
        co, tri = cache[key]
        m = np.array(mw, np.float64)
        world = co @ m[:3, :3].T + m[:3, 3]
        if np.linalg.det(m[:3, :3]) < 0:
            tri = tri[:, ::-1]
        out.append((names, world, tri))
    return out


def _box(parts) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if not parts:
        return None
    allv = np.concatenate([w for _, w, _ in parts])
    return tuple(map(float, allv.min(0))), tuple(map(float, allv.max(0)))


_NO_GEOMETRY_IDS = ("Action", "Scene", "Camera", "Light", "World", "Material")


class _Changes:
    """Whether a ``frame_set`` re-evaluated anything that may move or deform geometry: a
    ``frame_change_post`` handler reads the depsgraph's updates (measured on 5.0, 4.5 and 4.2:
    empty for a static scene, the moving object for an animated one). Actions, the scene, cameras,
    lights, worlds and materials change no surface."""

    def __init__(self):
        self.changed = True

    def __call__(self, scene, depsgraph=None) -> None:
        if depsgraph is None:
            self.changed = True
            return
        for u in depsgraph.updates:
            idb = u.id
            if type(idb).__name__ in _NO_GEOMETRY_IDS:
                continue
            if isinstance(idb, bpy.types.Object) and idb.type not in _GEOMETRY:
                continue
            self.changed = True
            return


def scene_geometry(scene, frames: range, blend_name: str, target: str = "") -> Geometry:
    """The evaluated geometry at every frame of ``frames`` (the scene is left at the last). A
    frame whose evaluation updated nothing that carries geometry reuses the previous frame's tree
    (a static scene extracts its triangles once)."""
    changes = _Changes()
    bpy.app.handlers.frame_change_post.append(changes)
    try:
        return _scene_geometry(scene, frames, blend_name, target, changes)
    finally:
        bpy.app.handlers.frame_change_post.remove(changes)


def _scene_geometry(scene, frames: range, blend_name: str, target: str,
                    changes: _Changes) -> Geometry:
    trees: list[BVHTree] = []
    index: dict[str, int] = {}
    frame_tree: dict[int, int] = {}
    first_box = target_box = None
    want = _target_names(scene, target, blend_name) if target else None
    for f in frames:
        changes.changed = first_box is None
        scene.frame_set(f)
        if not changes.changed and f - 1 in frame_tree:
            frame_tree[f] = frame_tree[f - 1]
            continue
        dg = bpy.context.evaluated_depsgraph_get()
        parts = _triangles(dg, {})
        if first_box is None:
            first_box = _box(parts)
            if first_box is None:
                raise SceneError(f"{blend_name}: scene '{scene.name}' draws no geometry at frame "
                                 f"{f} for a generated camera to look at; add objects, or render "
                                 "with camera=scene")
            target_box = _box([p for p in parts if want is None or p[0] & want])
            if target_box is None:
                raise SceneError(f"{blend_name}: camera_target '{target}' draws no geometry at "
                                 f"frame {f}; name an object or collection that renders")
        h = hashlib.sha256()
        for _, w, t in parts:
            h.update(w.tobytes())
            h.update(t.tobytes())
        digest = h.hexdigest()
        if digest not in index:
            verts, tris, n = [], [], 0
            for _, w, t in parts:
                verts.append(w)
                tris.append(t + n)
                n += len(w)
            index[digest] = len(trees)
            trees.append(BVHTree.FromPolygons(np.concatenate(verts).tolist(),
                                              np.concatenate(tris).tolist(), all_triangles=True))
        frame_tree[f] = index[digest]
    assert first_box is not None and target_box is not None
    return Geometry(trees, frame_tree, first_box[0], first_box[1], target_box[0], target_box[1])


def _clearance(tree: BVHTree) -> Callable[[tuple[float, float, float]], float]:
    """The clearance function of a tree: distance to the nearest surface, negated when the point
    lies behind that surface (against its normal), ``inf`` with no surface at all."""
    def clearance(p) -> float:
        loc, normal, _, dist = tree.find_nearest(Vector(p))
        if loc is None:
            return math.inf
        return -dist if (Vector(p) - loc).dot(normal) < 0 else dist
    return clearance


_AXES = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def _enclosure(tree: BVHTree, reach: float) -> Callable[[tuple[float, float, float]], float]:
    """How enclosed a point is: the number of the six axis directions in which a surface lies
    within ``reach`` (6 inside a room, about 1 above a terrain or beside an object)."""
    def score(p) -> float:
        return float(sum(tree.ray_cast(Vector(p), Vector(d), reach)[0] is not None
                         for d in _AXES))
    return score


def _coverage(tree: BVHTree, pose, lens: float, w: int, h: int, far: float) -> float:
    rays = traj.ray_grid(pose, lens, w, h, *_GRID)
    hits = sum(tree.ray_cast(Vector(o), Vector(d), far)[0] is not None for o, d in rays)
    return hits / len(rays)


def _verify(path, frames: range, a: int, fps: float, geo: Geometry, need: float,
            min_cov: float, lens: float, w: int, h: int, far: float
            ) -> tuple[bool, float, float]:
    """Check a path at every frame and between frames: clearance at least ``need`` (against the
    geometry of both frames around each point), coverage at least ``min_cov`` on frames
    ``a..b``. Returns (ok, min clearance, min coverage)."""
    step = max(need / 2.0, 1e-3)
    worst, cover = math.inf, 1.0
    fs = list(frames)
    for f in fs:
        clear = _clearance(geo.tree(f))
        t0 = (f - a) / fps
        d = clear(path.eye(t0))
        worst = min(worst, d)
        if d < need or (need == 0 and d <= 0):
            return False, worst, cover
        if f + 1 in geo.frame_tree:
            e0, e1 = path.eye(t0), path.eye((f + 1 - a) / fps)
            n = max(1, math.ceil(math.dist(e0, e1) / step))
            nxt = _clearance(geo.tree(f + 1))
            for i in range(1, n):
                p = path.eye((f + i / n - a) / fps)
                d = min(clear(p), nxt(p))
                worst = min(worst, d)
                if d < need or (need == 0 and d <= 0):
                    return False, worst, cover
    for f in fs[1:-1]:
        c = _coverage(geo.tree(f), path.pose((f - a) / fps), lens, w, h, far)
        cover = min(cover, c)
        if c < min_cov:
            return False, worst, cover
    return True, worst, cover


def resolution(scene) -> tuple[int, int]:
    r = scene.render
    return (max(1, r.resolution_x * r.resolution_percentage // 100),
            max(1, r.resolution_y * r.resolution_percentage // 100))


def plan(scene, settings: Settings, scene_name: str, sequence_id: str, a: int, b: int,
         blend_name: str, *, fps: float | None = None,
         size: tuple[int, int] | None = None) -> Planned:
    """The checked path of one sequence (frames ``a..b``; poses for ``a - 1 .. b + 1``): the
    first of :data:`sampling.trajectory.ATTEMPTS` seeded tries that keeps the clearance and the
    coverage at every frame. Raises :class:`SceneError` naming the file and the fix when none
    does. ``fps`` and ``size`` (pixels) stand in for the scene's where the scene is not set up
    as the worker sets it (the panel's preview). Leaves the scene at some frame of the range."""
    t0 = time.perf_counter()
    frames = range(a - 1, b + 2)
    geo = scene_geometry(scene, frames, blend_name, settings.camera_target)
    fps = fps or frame_rate(scene)
    w, h = size or resolution(scene)
    far = max(1000.0, 100.0 * _extent(geo))
    need = settings.camera_clearance
    min_cov = settings.camera_min_coverage / 100.0
    duration = (b + 1 - (a - 1)) / fps
    worst = (math.nan, math.nan)
    for attempt in range(traj.ATTEMPTS):
        rng = traj.rng_for(scene_name, sequence_id, settings.camera_seed, attempt)
        path = _sample_path(rng, settings, geo, a, (w, h), duration)
        if path is None:
            continue
        try:
            ok, clear, cover = _verify(path, frames, a, fps, geo, need, min_cov,
                                       settings.camera_lens, w, h, far)
        except SamplingError:  # the path runs through its target: no direction to look in
            continue
        worst = (clear, cover)
        if ok:
            poses = {f: path.pose((f - a) / fps) for f in frames}
            info = {"mode": settings.camera, "seed": settings.camera_seed, "attempt": attempt,
                    "clearance": need, "min_clearance": round(clear, 6),
                    "min_coverage": min_cov,
                    "coverage": round(cover, 6), "lens": settings.camera_lens,
                    "speed": settings.camera_speed, "clip_start": _clip_start(need),
                    "clip_end": far, "target": settings.camera_target or None,
                    "plan_seconds": round(time.perf_counter() - t0, 4)}
            return Planned(poses, info, path)
    raise SceneError(
        f"{blend_name}: sequence {sequence_id}: no {settings.camera} path of scene '{scene.name}' "
        f"keeps {need:g} units from every surface and sees a surface in "
        f"{min_cov:.0%} of the view at every frame, in {traj.ATTEMPTS} "
        f"seeded tries (last: clearance {worst[0]:.3g}, coverage {worst[1]:.0%}); lower "
        "camera_clearance, camera_min_coverage or camera_speed, set a camera_target, or try "
        + ("camera=flythrough" if settings.camera == "orbit" else "camera=orbit"))


def _extent(geo: Geometry) -> float:
    """The largest side of the scene's bounding box (scene units)."""
    return max(hi - lo for lo, hi in zip(geo.lo, geo.hi))


def _sample_path(rng, settings: Settings, geo: Geometry, a: int, size: tuple[int, int],
                 duration: float):
    """One seeded candidate path for ``settings.camera``: an orbit around the target's bounding
    sphere, or a flythrough inside the scene's box grown by a margin (None when ``rng`` finds
    none). ``size`` is the frame in pixels, ``duration`` the time of frames ``a - 1 .. b + 1``
    (s)."""
    need = settings.camera_clearance
    extent = _extent(geo)
    center = tuple((lo + hi) / 2 for lo, hi in zip(geo.target_lo, geo.target_hi))
    if settings.camera == "orbit":
        return traj.sample_orbit(
            rng, center, 0.5 * math.dist(geo.target_lo, geo.target_hi), lens=settings.camera_lens,
            width=size[0], height=size[1], distance=settings.camera_distance,
            elevation_min=settings.camera_elevation_min,
            elevation_max=settings.camera_elevation_max, speed=settings.camera_speed,
            clearance=need)
    margin = max(3.0 * need, 0.25 * extent)
    return traj.plan_flythrough(
        rng, tuple(v - margin for v in geo.lo), tuple(v + margin for v in geo.hi),
        speed=settings.camera_speed, duration=duration, look_ahead=settings.camera_look_ahead,
        clearance=_clearance(geo.tree(a)), need=need,
        target=center if settings.camera_target else None,
        score=_enclosure(geo.tree(a), 2.0 * extent))


def _clip_start(need: float) -> float:
    # nothing is closer than the clearance: the near plane may sit well inside it
    return min(0.1, need / 4.0) if need > 0 else 1e-3


def animate(scene, ob, planned: Planned) -> None:
    """Keyframe ``ob`` at every planned frame (replacing the previous sequence's keys), at the
    scene clock time of each stretched frame (the time remapping of the keyframe multiplier)."""
    if ob.animation_data is not None:
        old = ob.animation_data.action
        ob.animation_data_clear()
        if old is not None and old.users == 0:
            bpy.data.actions.remove(old)
    ob.data.clip_start = planned.info["clip_start"]
    ob.data.clip_end = planned.info["clip_end"]
    ratio = scene.render.frame_map_old / scene.render.frame_map_new
    prev = None
    for f, pose in sorted(planned.poses.items()):
        m = Matrix(pose)
        q = m.to_quaternion()
        if prev is not None and prev.dot(q) < 0:
            q.negate()
        prev = q
        ob.location = m.translation
        ob.rotation_quaternion = q
        ob.keyframe_insert("location", frame=f * ratio)
        ob.keyframe_insert("rotation_quaternion", frame=f * ratio)
    for fc in compat.animation_curves(ob.animation_data):
        for k in fc.keyframe_points:
            k.interpolation = "LINEAR"


def prepare_sequence(scene, settings: Settings, scene_name: str, sequence_id: str, a: int,
                     b: int, blend_name: str) -> JSONObject | None:
    """Plan and keyframe the generated camera (the scene's active one, from :func:`install`) for
    one sequence; returns what goes into ``info.json`` (``camera_rig``), None for a scene
    camera."""
    ob = scene.camera
    if settings.camera == "scene" or not is_generated(ob):
        return None
    t0 = time.perf_counter()
    planned = plan(scene, settings, scene_name, sequence_id, a, b, blend_name)
    animate(scene, ob, planned)
    planned.info["rig_seconds"] = round(time.perf_counter() - t0, 4)
    return planned.info
