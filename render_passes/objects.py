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
from typing import Any, NamedTuple

import bpy
import numpy as np

from ..dataset import camera as cam_model
from ..dataset import objects as od
from . import compat, scene_setup

# Triangles up to which the surface distance of a pixel is measured with numpy, not a BVH.
SMALL_MESH = 256
# Modifiers whose result changes over time without the object's matrix changing.
DEFORMERS = {"ARMATURE", "CLOTH", "SOFT_BODY", "FLUID", "DYNAMIC_PAINT", "OCEAN", "WAVE",
             "EXPLODE", "MESH_CACHE", "MESH_SEQUENCE_CACHE", "SURFACE_DEFORM", "MESH_DEFORM",
             "LATTICE", "HOOK", "CURVE"}


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
    """Evaluated object-space geometry of one drawn thing (shared by its instances): vertices
    ``(V, 3)`` float64, edges ``(E, 2)``, triangles ``(T, 3)``, the box ``lo``/``hi`` ``(3,)``."""

    __slots__ = ("verts", "edges", "tris", "lo", "hi", "radius", "_bvh", "sig")

    def __init__(self, verts, edges, tris, sig=None):
        self.verts, self.edges, self.tris = verts, edges, tris
        if len(verts):
            self.lo, self.hi = verts.min(0), verts.max(0)
            # about the box centre, grown by float32 rounding of the vertices
            r = np.linalg.norm(verts - (self.lo + self.hi) / 2, axis=1).max()
            self.radius = float(r) * (1 + 1e-6) + 1e-9
        else:
            self.lo = self.hi = np.zeros(3)
            self.radius = 0.0
        self._bvh = None
        self.sig = sig  # the float32 vertices it was read from (None: a box stand-in)

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


def _mesh_geometry(me, cached: _Geometry | None) -> _Geometry | None:
    """Geometry of a mesh; ``cached`` is returned when its vertices are unchanged (only the
    vertex positions are read then)."""
    n = len(me.vertices)
    if not n:
        return None
    v = np.empty(n * 3, np.float32)
    me.vertices.foreach_get("co", v)
    if cached is not None and cached.sig is not None and np.array_equal(cached.sig, v):
        return cached
    e = np.empty(len(me.edges) * 2, np.int32)
    me.edges.foreach_get("vertices", e)
    me.calc_loop_triangles()
    t = np.empty(len(me.loop_triangles) * 3, np.int32)
    me.loop_triangles.foreach_get("vertices", t)
    return _Geometry(v.reshape(-1, 3).astype(np.float64), e.reshape(-1, 2), t.reshape(-1, 3), v)


def _geometry(ob, cached: _Geometry | None = None) -> _Geometry | None:
    """Vertices/edges/triangles of an evaluated object (``None`` when it has no surface);
    ``cached`` (this thing's geometry of an earlier frame) is reused when unchanged."""
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
        return _mesh_geometry(me, cached)
    finally:
        if tmp:
            ob.to_mesh_clear()


def _pure_mesh(ref) -> bool:
    """A geometry-nodes instance reference that is one mesh and nothing else (the depsgraph
    draws it as one instance of the instancer)."""
    if type(ref).__name__ != "GeometrySet" or ref.mesh is None:
        return False
    return all(getattr(ref, a, None) is None for a in ("curves", "pointcloud", "volume",
                                                       "grease_pencil")) and \
        ref.instances_pointcloud() is None


class _Bulk(NamedTuple):
    """Geometry-nodes instances of one top-level object, read as arrays."""

    mats: np.ndarray    # (n, 4, 4) object -> world
    ref: np.ndarray     # (n,) reference index
    pid: np.ndarray     # (n,) the second persistent_id entry (the instance's id or index)
    refs: list          # per reference: its GeometrySet (owns the Mesh: keep it alive)


def _bulk_instances(ob_eval, transforms: bool = True) -> _Bulk | None | tuple:
    """``()``: no instances; a :class:`_Bulk` (``mats`` None without ``transforms``); None:
    instances that only the depsgraph's ``object_instances`` describes (collections, objects,
    nested instances, 4.2)."""
    got = compat.geometry_instances(ob_eval, transforms)
    if got is None or got == ():
        return got
    t, ref, ids, refs = got
    if not refs or not all(_pure_mesh(r) for r in refs) or ref.min() < 0 or ref.max() >= len(refs):
        return None
    pid = np.arange(len(ref), dtype=np.int64) if ids is None else ids.astype(np.int64)
    if ids is not None and len(np.unique(pid)) != len(pid):
        return None  # Blender makes repeated ids unique with a random generator
    if t is None:
        return _Bulk(None, ref, pid, refs)
    mw = np.array(ob_eval.matrix_world, float)
    return _Bulk(mw @ t, ref, pid, refs)


def _has_nodes(orig) -> bool:
    """Whether an object has a geometry-nodes modifier (the only way a mesh, curve or point
    cloud object without particles or instancing makes instances)."""
    return any(m.type == "NODES" for m in getattr(orig, "modifiers", ()))


class _Group(NamedTuple):
    """Instances of one drawn thing in one frame."""

    name: str            # the object they count as
    geom: _Geometry
    iids: np.ndarray     # (n,) uint32
    mats: np.ndarray     # (n, 4, 4) object -> world
    pass_value: int
    changed: bool        # its geometry differs from the previous frame's


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


def _emit_frame(tracker: ObjectTracker, *, frame: int, camera: str, instance_id: np.ndarray,
                object_to_world: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray,
                bbox_obj: np.ndarray, bbox_visib: np.ndarray, px_count_visib: np.ndarray
                ) -> None:
    """One frame's object record (arrays sorted by ``instance_id``; the contract of
    ``dataset/documents/objects.py``'s ``FrameRecord``). Kept until :meth:`ObjectTracker.document`
    writes ``objects.json``; the per-frame writer of the objects format replaces this body."""
    tracker.frames[frame] = dict(frame=frame, camera=camera, instance_id=instance_id,
                                 object_to_world=object_to_world, box_lo=box_lo, box_hi=box_hi,
                                 bbox_obj=bbox_obj, bbox_visib=bbox_visib,
                                 px_count_visib=px_count_visib)


class ObjectTracker(_FrameListener):
    """See the module docstring. ``ids``: object name (``name_full``) -> object id;
    ``classes``: object name -> class; ``rendered()``: names of objects the render can draw by
    themselves (visible collections, not hidden) at the current frame (``hide_render`` may be
    animated: asked again for every frame collected). ``records``: which instances a frame
    record holds: "visible" (pixels in the id image), "frustum" (projected box in the image) or
    "all" (every drawn instance)."""

    def __init__(self, scene, ids: dict[str, int], classes: dict[str, str],
                 rendered: Callable[[], set[str]], compression: str, records: str = "visible"):
        self.scene = scene
        self.ids, self.classes, self.rendered = ids, classes, rendered
        self.compression = compression
        self.records = records
        self.infos: dict[int, dict[str, Any]] = {}
        self.frames: dict[int, dict[str, Any]] = {}
        self._poses: dict[int, np.ndarray] = {}
        self._current: dict[int, Any] = {}  # frame -> (groups, camera name, pose, K, near)
        self._geoms: dict[tuple, _Geometry] = {}   # the latest geometry of each drawn thing
        self._structural: dict[str, bool] = {}
        self._statics: dict[str, bool] = {}
        self._chains: dict[tuple[str, str], list[str]] = {}
        self._iids: dict[tuple, int] = {}           # (name, chain, pid) -> id, iterated things
        self._bulk_iids: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._objects = {o.name_full: o for o in bpy.data.objects}
        self._target: int | None = None
        self.timings = {"collect": 0.0, "resolve": 0.0, "document": 0.0}
        self.resolve_stats: dict[str, int] = {}
        self.sources = {"render_depsgraph": 0, "viewport_depsgraph": 0}  # frames collected from
        self.counts = {"instances": 0, "bulk": 0, "iterated": 0}
        if records == "all":
            self._check_fits()
        self._listen()

    def _check_fits(self) -> None:
        """Refuse (before anything renders) object records of every instance that would not
        fit in the worker's memory (:func:`dataset.objects.metadata_refusal`)."""
        dg = bpy.context.evaluated_depsgraph_get()
        n = sum(1 for _ in dg.object_instances)
        frames = self.scene.frame_end - self.scene.frame_start + 1
        why = od.metadata_refusal(n, frames, self.records)
        if why is not None:
            blend = os.path.basename(bpy.data.filepath) or self.scene.name
            raise scene_setup.SceneError(f"{blend}: {why}")

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

    def _geom(self, key: tuple, read) -> tuple[_Geometry | None, bool]:
        """The geometry of drawn thing ``key`` (``read(cached)``), and whether it changed since
        the thing's previous frame."""
        old = self._geoms.get(key)
        g = read(old)
        if g is None:
            return None, False
        changed = False
        if old is not None and g is not old:
            changed = (old.verts.shape != g.verts.shape or np.abs(old.verts - g.verts).max()
                       > 1e-6 * (1.0 + np.abs(old.verts).max()))
        self._geoms[key] = g
        return g, changed

    def _static(self, orig) -> bool:
        """A mesh object whose geometry cannot change within the sequence (no modifiers, no
        shape keys, no animation or drivers on its mesh): its geometry is read once."""
        name = orig.name_full
        if name not in self._statics:
            me = orig.data
            self._statics[name] = bool(
                orig.type == "MESH" and me is not None and not len(orig.modifiers)
                and getattr(me, "shape_keys", None) is None
                and getattr(me, "animation_data", None) is None)
        return self._statics[name]

    def _is_structural(self, orig) -> bool:
        name = orig.name_full
        if name not in self._structural:
            self._structural[name] = structural_deformer(orig)
        return self._structural[name]

    def _collect(self, frame: int, dg, camera) -> None:
        t0 = time.perf_counter()
        rendered = self.rendered()
        groups: list[_Group] = []
        bulk: set[str] = set()
        plain: list = []
        iterate = not compat.GEOMETRY_SET
        for name in sorted(rendered):
            orig = self._objects.get(name)
            if orig is None:
                continue
            if orig.instance_type != "NONE" or len(getattr(orig, "particle_systems", ())):
                iterate = True
                continue
            ob = orig.evaluated_get(dg)
            if not _has_nodes(orig):  # only geometry nodes make instances of a plain object
                b = ()
            else:
                b = _bulk_instances(ob) if compat.GEOMETRY_SET else None
            if b is None:
                iterate = True
            elif b != ():
                bulk.add(name)
                if name in self.ids:
                    groups += self._bulk_groups(orig, b)
            if name in self.ids:
                plain.append((orig, ob))
        if iterate:
            groups += self._iterated_groups(dg, rendered, bulk)
        else:
            for orig, ob in plain:
                key = (orig.name_full, "", "")
                if self._static(orig) and key in self._geoms:
                    g, changed = self._geoms[key], False
                else:
                    g, changed = self._geom(key, lambda c, ob=ob: _geometry(ob, c))
                if g is None:
                    continue
                name = orig.name_full
                iid = self._iid(name, [], [])
                groups.append(_Group(name, g, np.array([iid], np.uint32),
                                     np.array(ob.matrix_world, float)[None],
                                     int(orig.pass_index), changed))
        pose = cam_model.orthonormal_pose(np.array(camera.matrix_world, float).tolist())
        k = cam_model.intrinsics(scene_setup.camera_params(self.scene, camera))
        self._current[frame] = (groups, camera.name, pose, k, float(camera.data.clip_start))
        self.timings["collect"] += time.perf_counter() - t0

    def _iid(self, name: str, chain: list[str], pid: list[int]) -> int:
        key = (name, tuple(chain), tuple(pid))
        iid = self._iids.get(key)
        if iid is None:
            iid = self._iids[key] = od.instance_id(od.instance_key(name, chain, pid))
            self._info(iid, name, chain, pid)
        return iid

    def _info(self, iid: int, name: str, chain: list[str], pid: list[int]) -> None:
        if iid not in self.infos:
            orig = self._objects.get(name)
            self.infos[iid] = {
                "instance_id": iid, "object_id": self.ids[name], "object": name,
                "instancer_chain": list(chain), "persistent_id": list(pid),
                "category": self.classes.get(name, ""),
                "deforming": bool(orig is not None and self._is_structural(orig))}

    def _bulk_groups(self, orig, b: _Bulk) -> list[_Group]:
        """Groups of a top-level geometry-nodes instancer read in bulk: each instance counts as
        the instancer (its key: the instancer, chain [instancer], persistent id [0, id])."""
        name = orig.name_full
        chain = self._chain_of(orig, orig)
        out = []
        for r, gs in enumerate(b.refs):
            sel = np.flatnonzero(b.ref == r)
            if not len(sel):
                continue
            g, changed = self._geom(("gn", name, r), lambda c, gs=gs: _mesh_geometry(gs.mesh, c))
            if g is None:
                continue
            iids = self._bulk_ids(name, chain, b.pid[sel])
            out.append(_Group(name, g, iids, b.mats[sel], int(orig.pass_index), changed))
            self.counts["bulk"] += len(sel)
        return out

    def _bulk_ids(self, name: str, chain: list[str], pid: np.ndarray) -> np.ndarray:
        """Instance ids of ``pid`` (vectorised lookup; new ones hashed once per sequence)."""
        known, iids = self._bulk_iids.get((name, 0), (np.zeros(0, np.int64), np.zeros(0, np.uint32)))
        pos = np.minimum(np.searchsorted(known, pid), max(len(known) - 1, 0))
        hit = (known[pos] == pid) if len(known) else np.zeros(len(pid), bool)
        if not hit.all():
            new = np.unique(pid[~hit])
            # od.instance_key(name, chain, [0, p]) without a JSON encoding per instance
            head = od.instance_key(name, chain, [0])[:-2] + ","
            nid = np.array([od.instance_id(f"{head}{p}]]") for p in new.tolist()], np.uint32)
            for p, i in zip(new.tolist(), nid.tolist()):
                self._info(i, name, chain, [0, p])
            known = np.concatenate([known, new])
            iids = np.concatenate([iids, nid])
            o = np.argsort(known, kind="stable")
            known, iids = known[o], iids[o]
            self._bulk_iids[(name, 0)] = (known, iids)
            pos = np.searchsorted(known, pid)
        return iids[pos]

    def _iterated_groups(self, dg, rendered, bulk: set[str]) -> list[_Group]:
        """Every drawn instance from ``dg.object_instances`` except those of ``bulk``
        instancers (read as arrays)."""
        acc: dict[tuple, list] = {}
        for inst in dg.object_instances:
            if inst.is_instance:
                parent = inst.parent.original if inst.parent is not None else None
                if parent is None or parent.name_full not in rendered:
                    continue
                if parent.name_full in bulk:
                    continue
                ob = inst.object
                orig = ob.original
                name = orig.name_full
                if name not in self.ids:
                    continue
                chain = self._chain_of(parent, orig)
                pid = od.trim_pid(inst.persistent_id)
            else:
                ob = inst.object
                orig = ob.original
                name = orig.name_full
                if name not in self.ids or name not in rendered or not inst.show_self:
                    continue
                if getattr(orig, "particle_systems", None) and not orig.show_instancer_for_render:
                    continue
                chain, pid = [], []
            # Evaluated data is shared by the copies of one thing (and outlives the iteration);
            # non-mesh data (curves, text) is meshed per object.
            key = (name, ob.data.name_full if ob.data is not None else "", ob.type,
                   inst.is_instance)
            if key not in acc:
                if self._static(orig) and key in self._geoms:
                    g, changed = self._geoms[key], False
                else:
                    g, changed = self._geom(key, lambda c, ob=ob: _geometry(ob, c))
                acc[key] = [g, changed, name, int(orig.pass_index), [], []]
            a = acc[key]
            if a[0] is None:
                continue
            a[4].append(self._iid(name, chain, pid))
            a[5].append(np.array(inst.matrix_world, float))
            self.counts["iterated"] += 1
        return [_Group(name, g, np.array(i, np.uint32), np.array(m).reshape(-1, 4, 4), pv, ch)
                for g, ch, name, pv, i, m in acc.values() if g is not None]

    def _chain_of(self, parent, orig) -> list[str]:
        k = (parent.name_full, orig.name_full)
        if k not in self._chains:
            self._chains[k] = self._chain(parent, orig)
        return self._chains[k]

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
        groups, cam_name, pose, k, near = self._current.pop(frame)
        t0 = time.perf_counter()
        sizes = np.array([len(g.iids) for g in groups], np.int64)
        gi = np.repeat(np.arange(len(groups)), sizes)
        n = int(sizes.sum())
        iid = np.concatenate([g.iids for g in groups]) if groups else np.zeros(0, np.uint32)
        mats = np.concatenate([g.mats for g in groups]) if groups else np.zeros((0, 4, 4))
        lo = np.array([g.geom.lo for g in groups]).reshape(-1, 3)[gi]
        hi = np.array([g.geom.hi for g in groups]).reshape(-1, 3)[gi]
        for g in groups:
            if g.changed:
                for i in g.iids.tolist():
                    self.infos[i]["deforming"] = True
        self.counts["instances"] = max(self.counts["instances"], n)
        if raw is not None:
            from ..dataset import exr

            ch = exr.read_channels(raw, ["R", "G"])
            oid = np.array([self.ids[g.name] for g in groups], np.int32).reshape(-1)[gi]
            pv = np.array([g.pass_value for g in groups], np.int64).reshape(-1)[gi]
            # a box stand-in's surface distance is 0 inside its box: no bound for it
            rad = np.array([g.geom.radius if len(g.geom.tris) else -1.0 for g in groups],
                           float).reshape(-1)[gi]
            cands = od.Candidates(iid, oid, pv, mats, lo, hi, rad)

            def surface(rows, pts):
                """World distance of ``pts`` to the evaluated surface of candidates ``rows``
                (vectorised per drawn thing; a BVH only for big meshes)."""
                out = np.empty(len(rows))
                g_of = gi[rows]
                o = np.argsort(g_of, kind="stable")
                cuts = np.flatnonzero(np.diff(g_of[o])) + 1
                for sel in np.split(o, cuts):
                    geom, m = groups[g_of[sel[0]]].geom, mats[rows[sel]]
                    q = np.einsum("nij,nj->ni", od.inv3(m[:, :3, :3]),
                                  pts[sel] - m[:, :3, 3])
                    if not len(geom.tris):  # a box stand-in: inside its box is all we know
                        out[sel] = 0.0
                        continue
                    if len(geom.tris) <= SMALL_MESH:
                        hits = od.nearest_on_triangles(geom.verts, geom.tris, q)
                    else:
                        nearest = geom.bvh().find_nearest
                        nan = (np.nan, np.nan, np.nan)
                        hits = np.array([(lambda h: nan if h is None else h[:])(nearest(p)[0])
                                         for p in q.tolist()], float).reshape(-1, 3)
                    d = np.linalg.norm(np.einsum("nij,nj->ni", m[:, :3, :3], hits - q), axis=1)
                    out[sel] = np.where(np.isnan(d), np.inf, d)
                return out

            obj, ins, stats = od.resolve_pixel_arrays(ch["R"], ch["G"], k.K, pose, cands, surface)
            for s, c in stats.items():
                self.resolve_stats[s] = self.resolve_stats.get(s, 0) + c
            od.write_ids(final, obj, ins, self.compression)
            os.unlink(raw)
        else:
            _, ins = od.read_ids(final)
        vid, vbox, vcount = od.visible_box_arrays(ins)
        order = np.argsort(iid, kind="stable")
        order = order[np.r_[True, iid[order][1:] != iid[order][:-1]]] if n else order
        sid = iid[order]
        pos = np.minimum(np.searchsorted(vid, sid), max(len(vid) - 1, 0))
        seen = (vid[pos] == sid) if len(vid) else np.zeros(len(sid), bool)
        if self.records == "visible":
            order, pos, seen = order[seen], pos[seen], seen[seen]
        w2c = od.world_to_cv(pose)
        bbox_obj = np.zeros((len(order), 4))
        gsel = gi[order]
        for j in np.unique(gsel):
            s = np.flatnonzero(gsel == j)
            g = groups[j].geom
            bbox_obj[s] = od.amodal_boxes(w2c @ mats[order[s]], g.verts, g.edges, k.K, k.w,
                                          k.h, near)
        if self.records == "frustum":
            keep = (bbox_obj[:, 2] > 0) | seen
            order, pos, seen, bbox_obj = order[keep], pos[keep], seen[keep], bbox_obj[keep]
        bbox_visib = np.zeros((len(order), 4), np.int32)
        px = np.zeros(len(order), np.int64)
        bbox_visib[seen] = vbox[pos[seen]]
        px[seen] = vcount[pos[seen]]
        self._poses[frame] = w2c
        _emit_frame(self, frame=frame, camera=cam_name, instance_id=iid[order],
                    object_to_world=mats[order], box_lo=lo[order], box_hi=hi[order],
                    bbox_obj=bbox_obj, bbox_visib=bbox_visib, px_count_visib=px)
        self.timings["resolve"] += time.perf_counter() - t0

    def document(self) -> dict[str, Any]:
        """``objects.json`` (:class:`dataset.objects.ObjectsDoc`) from the frame records."""
        t0 = time.perf_counter()
        frames = []
        for f in sorted(self.frames):
            r = self.frames[f]
            m = r["object_to_world"]
            o2c = np.einsum("ij,njk->nik", self._poses[f], m)
            lo, hi = r["box_lo"], r["box_hi"]
            bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], float)
            corners = lo[:, None] + bits[None] * (hi - lo)[:, None]
            box3 = np.einsum("nij,nvj->nvi", m[:, :3, :3], corners) + m[:, None, :3, 3]
            cols = zip(r["instance_id"].tolist(), m.tolist(), o2c.tolist(), box3.tolist(),
                       r["bbox_obj"].tolist(), r["bbox_visib"].tolist(),
                       r["px_count_visib"].tolist())
            frames.append({"frame": f, "camera": r["camera"], "instances": [
                {"instance_id": i, "object_to_world": a, "object_to_camera": b, "bbox_3d": c,
                 "bbox_obj": d, "bbox_visib": e, "px_count_visib": p}
                for i, a, b, c, d, e, p in cols]})
        seen = set()
        for r in self.frames.values():
            seen.update(r["instance_id"].tolist())
        doc = {"schema": od.OBJECTS_SCHEMA,
               "instances": [self.infos[i] for i in sorted(seen)], "frames": frames}
        self.timings["document"] += time.perf_counter() - t0
        return doc

    def instance_rows(self) -> list[dict[str, Any]]:
        """The instance table of the sequence (rows of ``instance_id, object_id, object,
        instancer_chain, persistent_id, category, deforming``), sorted by id: every instance of
        a frame record."""
        seen = set()
        for r in self.frames.values():
            seen.update(r["instance_id"].tolist())
        return [self.infos[i] for i in sorted(seen)]

    def instances_doc(self) -> dict[str, Any]:
        return {str(v["instance_id"]): {"object": v["object"], "object_id": v["object_id"],
                                        "instancer_chain": v["instancer_chain"],
                                        "persistent_id": v["persistent_id"],
                                        "class": v["category"]}
                for v in self.instance_rows()}


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


def _mesh_count(me) -> tuple[int, bool]:
    vel = me.attributes.get("velocity")
    return len(me.vertices), (vel is not None and vel.domain == "POINT"
                              and vel.data_type == "FLOAT_VECTOR")


class _Counts(NamedTuple):
    """Vertex counts of the drawn meshes of one evaluation: ``single`` keyed by (object name,
    persistent id); ``bulk``: per top-level geometry-nodes instancer, ``(ids (n,) sorted,
    counts (n,), velocity (n,) bool)`` of its instances (read as arrays)."""

    single: dict[tuple, tuple[int, bool]]
    bulk: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _counts(dg) -> _Counts:
    """Vertex counts of every drawn mesh of ``dg``. Geometry-nodes instances of top-level
    objects are read as arrays (:func:`_bulk_instances`); ``object_instances`` is walked only
    when something else instances (collections, particles, vertices/faces, 4.2)."""
    out: dict[tuple, tuple[int, bool]] = {}
    bulk: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    iterate = not compat.GEOMETRY_SET
    objs = []
    for ob in dg.objects:
        orig = ob.original
        if orig.hide_render:
            continue
        if orig.instance_type != "NONE" or len(getattr(orig, "particle_systems", ())):
            iterate = True
            continue
        b = _bulk_instances(ob, transforms=False) if _has_nodes(orig) else ()
        if b is None:
            iterate = True
        elif b != ():
            per_ref = np.array([_mesh_count(gs.mesh) for gs in b.refs], np.int64).reshape(-1, 2)
            o = np.argsort(b.pid, kind="stable")
            bulk[orig.name_full] = (b.pid[o], per_ref[b.ref[o], 0], per_ref[b.ref[o], 1] > 0)
        objs.append(ob)
    if not iterate:
        for ob in objs:
            n = _vertex_count(ob)
            if n is not None:
                out[(ob.original.name_full, ())] = n
        return _Counts(out, bulk)
    seen: dict[tuple[int, int], tuple[int, bool] | None] = {}  # copies share evaluated data
    for inst in dg.object_instances:
        if not (inst.show_self or inst.is_instance):
            continue
        if inst.is_instance and inst.parent is not None and inst.parent.original.name_full in bulk:
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
    return _Counts(out, bulk)


def _broken(cur: _Counts, other: _Counts) -> list[tuple[str, int, int]]:
    """Meshes of ``cur`` (:func:`_counts` at frame f) whose vertex count differs in ``other``
    (at f ± 1) and that have no velocity attribute at f: the flow from f towards the other frame
    has no motion for them. Each as (object name, count at f, count at f ± 1); a mesh absent
    from either frame is not compared."""
    out = {(key[0], n, other.single[key][0]) for key, (n, velocity) in cur.single.items()
           if key in other.single and other.single[key][0] != n and not velocity}
    for name, (ids, n, vel) in cur.bulk.items():
        if name not in other.bulk:
            continue
        oids, on, _ = other.bulk[name]
        _, i, j = np.intersect1d(ids, oids, assume_unique=True, return_indices=True)
        bad = (n[i] != on[j]) & ~vel[i]
        out.update({(name, int(a), int(b)) for a, b in set(zip(n[i][bad].tolist(),
                                                                on[j][bad].tolist()))})
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
