# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-instance ground truth: who is drawn, where, and which pixels are whose.

:class:`ObjectTracker` (one per sequence, owned by the pass rig) records every drawn instance of
each frame from the depsgraph **the render itself evaluates** (a ``frame_change_post`` handler
that only acts on the first ``RENDER``-mode evaluation of the frame being rendered), so viewport-only
settings (particle display amounts, subdivision levels) cannot make the metadata disagree with
the picture. Frames skipped on a resumed run fall back to the viewport depsgraph.

After the frame's render it turns the raw Object Index + Depth pass file into the final
segmentation EXR (object and instance ids, :func:`dataset.objects.resolve_pixels`) and measures
the visible boxes. :meth:`ObjectTracker.document` and :meth:`ObjectTracker.instances_doc` give
``objects.json`` and the ``instances`` part of ``segmentation_ids.json``, which the pass rig
writes (``PassRig.finish_sequence``). The file format is documented in ``dataset/objects.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..dataset import camera as cam_model
from ..dataset import objects as od
from . import compat, scene_setup

# Modifiers whose result changes over time without the object's matrix changing.
DEFORMERS = {"ARMATURE", "CLOTH", "SOFT_BODY", "FLUID", "DYNAMIC_PAINT", "OCEAN", "WAVE",
             "EXPLODE", "MESH_CACHE", "MESH_SEQUENCE_CACHE", "SURFACE_DEFORM", "MESH_DEFORM",
             "LATTICE", "HOOK", "CURVE"}


def _m(mat) -> np.ndarray:
    return np.array([[float(mat[r][c]) for c in range(4)] for r in range(4)])


def structural_deformer(ob) -> bool:
    """Armature/physics/cache modifiers, animated shape keys, or animated modifier settings."""
    if any(m.type in DEFORMERS for m in getattr(ob, "modifiers", ())):
        return True
    data = ob.data
    keys = getattr(data, "shape_keys", None)
    if keys is not None and len(keys.key_blocks) > 1 and keys.animation_data is not None and (
            keys.animation_data.action is not None or len(keys.animation_data.drivers)):
        return True  # animated or driven shape keys (static ones change nothing over time)
    ad = ob.animation_data
    if ad is not None:
        paths = []
        if ad.action is not None:
            paths += [fc.data_path for fc in compat.iter_fcurves(ad.action)]
        paths += [d.data_path for d in ad.drivers]
        if any(p.startswith("modifiers[") for p in paths):
            return True
    return False


class _Geometry:
    """Evaluated object-space geometry of one drawn thing in one frame."""

    __slots__ = ("verts", "edges", "tris", "lo", "hi", "_bvh")

    def __init__(self, verts, edges, tris):
        self.verts, self.edges, self.tris = verts, edges, tris
        if len(verts):
            self.lo, self.hi = verts.min(0), verts.max(0)
        else:
            self.lo = self.hi = np.zeros(3)
        self._bvh = None

    def bvh(self):
        if self._bvh is None:
            from mathutils.bvhtree import BVHTree

            self._bvh = BVHTree.FromPolygons([tuple(v) for v in self.verts],
                                             [tuple(t) for t in self.tris])
        return self._bvh


BOX_EDGES = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7],
                      [0, 4], [1, 5], [2, 6], [3, 7]])


def _box_geometry(ob) -> _Geometry | None:
    """The evaluated bounding box as geometry, for things that do not convert to a mesh
    (hair curves, point clouds, volumes): boxes are then those of ``bound_box``."""
    try:
        c = np.array([[float(x) for x in v] for v in ob.bound_box])
    except (AttributeError, TypeError):
        return None
    if not np.isfinite(c).all() or not np.ptp(c, 0).any():
        return None
    return _Geometry(od.box_corners(c.min(0), c.max(0)), BOX_EDGES, np.zeros((0, 3), np.int32))


def _geometry(ob) -> _Geometry | None:
    """Vertices/edges/triangles of an evaluated object (``None`` when it has no surface)."""
    me, tmp = None, False
    if ob.type == "MESH":
        me = ob.data
    else:
        try:
            me, tmp = ob.to_mesh(), True
        except Exception:  # noqa: BLE001 - types without a mesh form: use the box
            return _box_geometry(ob)
    try:
        if me is None:
            return _box_geometry(ob)
        if not len(me.vertices):
            return None if ob.type == "MESH" else _box_geometry(ob)
        n = len(me.vertices)
        v = np.empty(n * 3, np.float32)
        me.vertices.foreach_get("co", v)
        e = np.empty(len(me.edges) * 2, np.int32)
        me.edges.foreach_get("vertices", e)
        me.calc_loop_triangles()
        t = np.empty(len(me.loop_triangles) * 3, np.int32)
        me.loop_triangles.foreach_get("vertices", t)
        return _Geometry(v.reshape(-1, 3).astype(np.float64), e.reshape(-1, 2), t.reshape(-1, 3))
    finally:
        if tmp:
            ob.to_mesh_clear()


class _FrameListener:
    """Calls ``self._on_frame(scene, depsgraph)`` after every frame change (``frame_change_post``,
    also for the render's own evaluations) from :meth:`_listen` until :meth:`close`."""

    def _listen(self) -> None:
        self._handler = self._on_frame
        bpy.app.handlers.frame_change_post.append(self._handler)

    def close(self) -> None:
        hs = bpy.app.handlers.frame_change_post
        while self._handler in hs:
            hs.remove(self._handler)


class ObjectTracker(_FrameListener):
    """See the module docstring. ``ids``: object name (``name_full``) -> object id;
    ``classes``: object name -> class; ``rendered()``: names of objects the render can draw by
    themselves (visible collections, not hidden) at the current frame (``hide_render`` may be
    animated: asked again for every frame collected)."""

    def __init__(self, scene, ids: dict[str, int], classes: dict[str, str],
                 rendered: Callable[[], set[str]], compression: str):
        self.scene = scene
        self.ids, self.classes, self.rendered = ids, classes, rendered
        self.compression = compression
        self.infos: dict[int, dict[str, Any]] = {}
        self.frames: dict[int, dict[str, Any]] = {}
        self._current: dict[int, Any] = {}  # frame -> (records, geometries, camera info)
        self._last_verts: dict[int, np.ndarray] = {}
        self._target: int | None = None
        self.timings = {"collect": 0.0, "resolve": 0.0}
        self.resolve_stats: dict[str, int] = {}
        self.sources = {"render_depsgraph": 0, "viewport_depsgraph": 0}  # frames collected from
        self._listen()

    # -- collection ------------------------------------------------------------------------
    def expect(self, frame: int) -> None:
        """The next render is of ``frame``: capture its render depsgraph."""
        self._target = frame
        self._current.pop(frame, None)

    def _on_frame(self, scene, depsgraph=None) -> None:
        if (depsgraph is None or depsgraph.mode != "RENDER" or self._target is None
                or scene.frame_current != self._target or scene.frame_subframe != 0.0):
            return
        # The first evaluation of the frame is the state Cycles syncs (camera included); the
        # motion steps for the Vector pass evaluate frame +-1 and come back to it afterwards,
        # and marker camera switching is not reliable on that return.
        frame, self._target = self._target, None
        self._collect(frame, depsgraph, depsgraph.scene_eval.camera)

    def collect_viewport(self, frame: int) -> None:
        """Collect ``frame`` from the viewport depsgraph (frames not rendered in this run)."""
        dg = bpy.context.evaluated_depsgraph_get()
        self._collect(frame, dg, self.scene.camera)

    def _collect(self, frame: int, dg, camera) -> None:
        t0 = time.perf_counter()
        records: list[dict[str, Any]] = []
        geoms: dict[tuple[int, int], _Geometry | None] = {}
        structural: dict[str, bool] = {}  # per object, not per drawn copy
        rendered = self.rendered()
        for inst in dg.object_instances:
            ob = inst.object
            orig = ob.original
            name = orig.name_full
            if name not in self.ids:
                continue
            if inst.is_instance:
                parent = inst.parent.original if inst.parent is not None else None
                if parent is None or parent.name_full not in rendered:
                    continue
                chain = self._chain(parent, orig)
                pid = od.trim_pid(inst.persistent_id)
            else:
                if name not in rendered or not inst.show_self:
                    continue
                if getattr(orig, "particle_systems", None) and not orig.show_instancer_for_render:
                    continue
                chain, pid = [], []
            # Evaluated data is shared by the copies of one thing (and outlives the iteration);
            # non-mesh data (curves, text) is meshed per object.
            key = (orig.as_pointer(), ob.data.as_pointer() if ob.data is not None else 0)
            if key not in geoms:
                geoms[key] = _geometry(ob)
            g = geoms[key]
            if g is None:
                continue
            iid = od.instance_id(od.instance_key(name, chain, pid))
            if name not in structural:
                structural[name] = structural_deformer(orig)
            records.append({"iid": iid, "name": name, "chain": chain, "pid": pid,
                            "matrix": _m(inst.matrix_world), "geom": g,
                            "pass_value": int(orig.pass_index),
                            "structural": structural[name]})
        pose = cam_model.orthonormal_pose(_m(camera.matrix_world).tolist())
        k = cam_model.intrinsics(scene_setup.camera_params(self.scene, camera))
        self._current[frame] = (records, camera.name, pose, k, float(camera.data.clip_start))
        self.timings["collect"] += time.perf_counter() - t0

    def _chain(self, parent, orig) -> list[str]:
        """Instancer names, outermost first: the top instancer, then nested collection
        instancers on the unique path to ``orig`` (when the path is unique)."""
        paths: list[list[str]] = []

        def walk(inst_ob, path, depth):
            col = inst_ob.instance_collection if inst_ob.instance_type == "COLLECTION" else None
            if col is None or depth > 8:
                return
            for o in col.all_objects:
                if o == orig:
                    paths.append(path)
                if o.instance_type == "COLLECTION" and o.instance_collection is not None:
                    walk(o, path + [o.name_full], depth + 1)

        walk(parent, [parent.name_full], 0)
        return paths[0] if len(paths) == 1 else [parent.name_full]

    # -- after the render ------------------------------------------------------------------
    def finish_frame(self, frame: int, raw: Path | None, final: Path) -> None:
        """Write ``final`` from ``raw`` (when given; then removed) and record the frame."""
        if frame not in self._current:
            self.collect_viewport(frame)
            self.sources["viewport_depsgraph"] += 1
        else:
            self.sources["render_depsgraph"] += 1
        records, cam_name, pose, k, near = self._current.pop(frame)
        t0 = time.perf_counter()
        if raw is not None:
            from ..dataset import exr

            ch = exr.read_channels(raw, ["R", "G"])
            cands = [od.Candidate(instance_id=r["iid"], object_id=self.ids[r["name"]],
                                  pass_value=r["pass_value"], matrix=r["matrix"],
                                  lo=r["geom"].lo, hi=r["geom"].hi) for r in records]
            by_iid = {r["iid"]: r for r in records}

            def surface(c, pts):
                r = by_iid[c["instance_id"]]
                m = r["matrix"]
                q = (pts - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T
                if not len(r["geom"].tris):  # a box stand-in: inside its box is all we know
                    return np.zeros(len(q))
                nearest = r["geom"].bvh().find_nearest
                nan = (np.nan, np.nan, np.nan)
                hits = np.array([(lambda h: nan if h is None else h[:])(nearest(p)[0])
                                 for p in q.tolist()], float).reshape(-1, 3)
                out = np.linalg.norm((hits - q) @ m[:3, :3].T, axis=1)
                return np.where(np.isnan(out), np.inf, out)

            obj, ins, stats = od.resolve_pixels(ch["R"], ch["G"], k.K, pose, cands, surface)
            for s, n in stats.items():
                self.resolve_stats[s] = self.resolve_stats.get(s, 0) + n
            od.write_ids(final, obj, ins, self.compression)
            os.unlink(raw)
        else:
            _, ins = od.read_ids(final)
        vis = od.visible_boxes(ins)
        w2c = od.world_to_cv(pose)
        entries = []
        for r in sorted(records, key=lambda r: r["iid"]):
            iid, g, m = r["iid"], r["geom"], r["matrix"]
            if iid not in self.infos:
                self.infos[iid] = {
                    "instance_id": iid, "object_id": self.ids[r["name"]], "object": r["name"],
                    "instancer_chain": r["chain"], "persistent_id": r["pid"],
                    "category": self.classes.get(r["name"], ""),
                    "deforming": bool(r["structural"])}
            last = self._last_verts.get(iid)
            if last is not None and (last.shape != g.verts.shape or
                                     np.abs(last - g.verts).max() > 1e-6 * (1.0 + np.abs(last).max())):
                self.infos[iid]["deforming"] = True
            self._last_verts[iid] = g.verts
            o2c = w2c @ m
            box, count = vis.get(iid, ([0, 0, 0, 0], 0))
            entries.append({
                "instance_id": iid, "object_to_world": m.tolist(), "object_to_camera": o2c.tolist(),
                "bbox_3d": od.transform(m, od.box_corners(g.lo, g.hi)).tolist(),
                "bbox_obj": od.amodal_box(od.transform(o2c, g.verts), g.edges, k.K, k.w, k.h, near),
                "bbox_visib": box, "px_count_visib": int(count)})
        self.frames[frame] = {"frame": frame, "camera": cam_name, "instances": entries}
        self.timings["resolve"] += time.perf_counter() - t0

    def document(self) -> dict[str, Any]:
        return {"schema": od.OBJECTS_SCHEMA,
                "instances": [self.infos[i] for i in sorted(self.infos)],
                "frames": [self.frames[f] for f in sorted(self.frames)]}

    def instances_doc(self) -> dict[str, Any]:
        return {str(i): {"object": v["object"], "object_id": v["object_id"],
                         "instancer_chain": v["instancer_chain"],
                         "persistent_id": v["persistent_id"], "class": v["category"]}
                for i, v in sorted(self.infos.items())}


# -- Meshes whose vertex count changes: Cycles has no motion for them ---------------------------
# Cycles' Vector pass matches a mesh's vertices across the motion steps (frames t-1, t, t+1) by
# index; when the evaluated vertex count differs between them it drops the deformation motion
# and writes 0 (plus any object-transform motion) for the whole mesh, unless the mesh carries a
# `velocity` point attribute (FLOAT_VECTOR, units/s), which it then uses instead. Measured on
# 4.2 and 5.0 (docs/blender_notes.md). Modifier types that usually change the vertex count,
# named as the likely cause in the warning:
TOPOLOGY_MODIFIERS = {"BUILD": "Build", "REMESH": "Remesh", "EXPLODE": "Explode",
                      "NODES": "Geometry Nodes", "FLUID": "Fluid", "DECIMATE": "Decimate",
                      "BOOLEAN": "Boolean", "MESH_SEQUENCE_CACHE": "Mesh Sequence Cache",
                      "WELD": "Weld", "MASK": "Mask", "PARTICLE_INSTANCE": "Particle Instance"}
# Object types Cycles renders as a mesh (the rest: hair curves, point clouds, volumes, are not
# checked here).
_MESHED = {"CURVE", "FONT", "SURFACE", "META"}


def _vertex_count(ob) -> tuple[int, bool] | None:
    """(vertex count, has a usable ``velocity`` attribute) of an evaluated object drawn as a
    mesh; None for other types."""
    me, tmp = None, False
    if ob.type == "MESH":
        me = ob.data
    elif ob.type in _MESHED:
        try:
            me, tmp = ob.to_mesh(), True
        except Exception:  # noqa: BLE001 - nothing Cycles could mesh either
            return None
    if me is None:
        return None
    try:
        vel = me.attributes.get("velocity")
        usable = (vel is not None and vel.domain == "POINT" and vel.data_type == "FLOAT_VECTOR")
        return len(me.vertices), usable
    finally:
        if tmp:
            ob.to_mesh_clear()


def _counts(dg) -> dict[tuple, tuple[int, bool]]:
    """Vertex counts of every drawn mesh of ``dg``, keyed by (object name, persistent id)."""
    out: dict[tuple, tuple[int, bool]] = {}
    seen: dict[tuple[int, int], tuple[int, bool] | None] = {}  # copies share evaluated data
    for inst in dg.object_instances:
        if not (inst.show_self or inst.is_instance):
            continue
        ob = inst.object
        if not inst.is_instance and ob.original.hide_render:
            continue  # drawn in the viewport only
        data = (ob.original.as_pointer(), ob.data.as_pointer() if ob.data is not None else 0)
        if data not in seen:
            seen[data] = _vertex_count(ob)
        n = seen[data]
        if n is not None:
            pid = tuple(inst.persistent_id) if inst.is_instance else ()
            out[(ob.original.name_full, pid)] = n
    return out


def _broken(cur: dict, other: dict) -> list[tuple[str, int, int]]:
    """Meshes of ``cur`` (:func:`_counts` at frame f) whose vertex count differs in ``other``
    (at f ± 1) and that have no velocity attribute at f: the flow from f towards the other frame
    has no motion for them. Each as (object name, count at f, count at f ± 1); a mesh absent
    from either frame is not compared."""
    out = {(key[0], n, other[key][0]) for key, (n, velocity) in cur.items()
           if key in other and other[key][0] != n and not velocity}
    return sorted(out)


class TopologyWatch(_FrameListener):
    """Per sequence with flows: the vertex count of every drawn mesh at the frames Cycles
    evaluates for each frame's Vector pass (the render depsgraph evaluates t, t-1, t+1 during
    the render of t; a ``frame_change_post`` handler records them), or at the viewport's
    whole-frame evaluations for frames not rendered in this run (the worker sets every frame
    a-1 .. b+1). Each pair of neighbouring frames is judged as soon as both are evaluated and
    only the verdicts are kept (a few frames of counts at a time, however many instances).
    :meth:`invalidate` turns the flow validity off where a count changes."""

    def __init__(self, scene):
        self.scene = scene
        # (f, g) -> broken meshes of the flow from f towards g = f ± 1 (:func:`_broken`)
        self.rendered: dict[tuple[int, int], list[tuple[str, int, int]]] = {}
        self.viewport: dict[tuple[int, int], list[tuple[str, int, int]]] = {}
        self._render_counts: dict[int, dict] = {}  # the frames evaluated for the current render
        self._viewport_counts: dict[int, dict] = {}  # the latest viewport evaluations (<= 3)
        self._target: int | None = None
        self._listen()

    def expect(self, frame: int) -> None:
        """The next render is of ``frame``."""
        self._target = frame
        self._render_counts = {}

    def _on_frame(self, scene, depsgraph=None) -> None:
        if depsgraph is None or scene.frame_subframe != 0.0:
            return
        f = scene.frame_current
        if depsgraph.mode == "RENDER":
            t, seen = self._target, self._render_counts
            if t is None or f in seen or abs(f - t) > 1:
                return
            seen[f] = _counts(depsgraph)
            for g in (t - 1, t + 1):
                if t in seen and g in seen:
                    self.rendered[(t, g)] = _broken(seen[t], seen[g])
            if len(seen) == 3:
                self._target, self._render_counts = None, {}
        else:  # the latest evaluation wins (a simulation is right only once rolled forward)
            window = self._viewport_counts
            window.pop(f, None)
            window[f] = _counts(depsgraph)
            while len(window) > 3:
                window.pop(next(iter(window)))
            for g in (f - 1, f + 1):
                if g in window:
                    self.viewport[(f, g)] = _broken(window[f], window[g])
                    self.viewport[(g, f)] = _broken(window[g], window[f])

    def broken(self, f: int, g: int) -> list[tuple[str, int, int]]:
        """Meshes whose flow from frame ``f`` towards ``g`` (f ± 1) has no motion, as the render
        of ``f`` saw them, or the viewport where ``f`` was not rendered in this run."""
        if (f, g) in self.rendered:
            return self.rendered[(f, g)]
        return self.viewport.get((f, g), [])

    def invalidate(self, frames_meta: list[dict[str, Any]], forward_key: str,
                   backward_key: str) -> list[str]:
        """Set the frames' ``forward_key`` / ``backward_key`` flags false where :meth:`broken`
        finds a mesh; returns the warning (at most one, naming the first such mesh)."""
        first: tuple[str, int, int] | None = None
        names: set[str] = set()
        for fr in frames_meta:
            f = fr["frame"]
            for key, g in ((forward_key, f + 1), (backward_key, f - 1)):
                bad = self.broken(f, g)
                if bad:
                    fr[key] = False
                    names.update(b[0] for b in bad)
                    if first is None:
                        first = (bad[0][0], min(f, g), max(f, g))
        if first is None:
            return []
        name, lo, hi = first
        ob = bpy.data.objects.get(name)
        causes = [f"{TOPOLOGY_MODIFIERS[m.type]} modifier '{m.name}'" for m in
                  getattr(ob, "modifiers", ()) if m.type in TOPOLOGY_MODIFIERS and m.show_render]
        kind = {"META": "a metaball", "FONT": "animated text"}.get(getattr(ob, "type", ""))
        why = f" ({causes[0]}?)" if causes else f" ({kind})" if kind else ""
        more = f" (and {len(names) - 1} more objects)" if len(names) > 1 else ""
        return [f"object '{name}' changes its vertex count between frames {lo} and {hi}{why}"
                f"{more}: Cycles has no motion for it; flow marked invalid there; add a "
                "velocity attribute or turn flows off"]
