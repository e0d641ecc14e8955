# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-instance ground truth: who is drawn, where, and which pixels are whose.

:class:`ObjectTracker` (one per sequence, owned by the pass rig) records every drawn instance of
each frame from the depsgraph **the render itself evaluates** (a ``frame_change_post`` handler
that only acts on the first ``RENDER``-mode evaluation of the frame being rendered), so viewport-only
settings (particle display amounts, subdivision levels) cannot make the metadata disagree with
the picture. Frames skipped on a resumed run fall back to the viewport depsgraph.

After the frame's render it turns the raw Object Index + Depth pass file into the final
segmentation EXR (object and instance ids, :func:`dataset.pixel_ids.resolve_pixels`) and measures
the visible boxes, as one record of arrays per frame (:func:`.instance_rows.frame_record`);
:meth:`ObjectTracker.instance_rows` and :meth:`ObjectTracker.instances_doc` give the instance
table of ``objects.json`` and the ``instances`` part of ``segmentation_ids.json``, which the pass
rig writes (``PassRig.finish_frame`` / ``finish_sequence``). The file format is
``dataset/documents/objects.py``. Meshes whose vertex count changes (no flow motion) are
:mod:`.topology`'s.
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
from ..dataset import pixel_ids as pix
from ..dataset.documents.base import JSONObject
from ..dataset.documents.objects import InstanceRowDict
from . import compat, scene_setup
from . import instance_rows as rows
from . import instance_walk as walk
from .frame_listener import FrameListener
from .geometry import (
    MESHED,
    Bulk,
    Geometry,
    bulk_instances,
    drawn_object,
    geometry_of,
    has_nodes,
    mesh_geometry,
    other_components,
    plain_instanced_mesh,
    structural_deformer,
)
from .instance_infos import InstanceInfos
from .instance_rows import Group, Stack, stack, surface_distance

# One frame's record before it is written: ``frame`` (int), ``camera`` (str) and the arrays of
# ``FrameRecord`` by field name.
FrameFields = dict[str, "np.ndarray | int | str"]
_UNSEEN, _SKIP, _RUN = object(), object(), object()  # the walk's marks (_iterated_groups)


class ObjectTracker(FrameListener):
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
        self.infos = InstanceInfos(self._row)
        self.frames: dict[int, FrameFields] = {}  # until the pass rig writes them (finish_frame)
        self._poses: dict[int, np.ndarray] = {}
        self._current: dict[int, Any] = {}  # frame -> (groups, camera name, pose, K, near)
        self._geoms: dict[tuple, Geometry] = {}   # the latest geometry of each drawn thing
        self._structural: dict[str, bool] = {}
        self._statics: dict[str, bool] = {}
        self._structures: dict[str, tuple[bool, bool]] = {}  # name -> (particles, nodes)
        self._chains: dict[tuple[str, str], tuple[str, ...]] = {}
        self._iids: dict[tuple, int] = {}           # (name, chain, pid) -> id, iterated things
        self._lanes = walk.LaneIds(self.infos.add_rows)
        self._objects = {o.name_full: o for o in bpy.data.objects}
        self._target: int | None = None
        self.aov_materials: set[str] | None = None  # the pass rig's: materials writing Random
        self._prepared: pix.Prepared | None = None  # the last frame's candidates, prepared
        # seconds over the sequence: collect (in the render call), resolve (after it: all of
        # finish_frame), and resolve's parts: read_raw, pixel_ids (the resolver without its
        # surface distances), surface, write_ids (handing the id file to the writer thread),
        # records (visible + amodal boxes); write_ids_thread: the id file's writing, on that
        # thread (overlapping the next render; write_records_thread: the record files', when
        # handed to it); write_ids_wait: the journal step waiting for them
        self.timings = dict.fromkeys(("collect", "resolve", "read_raw", "pixel_ids", "surface",
                                      "write_ids", "records", "write_ids_thread",
                                      "write_ids_wait"), 0.0)
        self.resolve_stats: dict[str, int] = {}
        self.writer = od.IdsWriter(compression, self.timings)
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

    def _geom(self, key: tuple, read) -> tuple[Geometry | None, bool]:
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
        got = self._structural.get(orig.name_full)
        return got if got is not None else self._structural.setdefault(
            orig.name_full, structural_deformer(orig))

    def _collect(self, frame: int, dg, camera) -> None:
        t0 = time.perf_counter()
        rendered = self.rendered()
        groups: list[Group] = []
        bulk: set[str] = set()
        plain: list = []
        iterate = not compat.GEOMETRY_SET
        for name in sorted(rendered):
            orig = self._objects.get(name)
            if orig is None:
                continue
            emits, nodes = self._structure(orig)
            if orig.instance_type != "NONE" or emits:
                iterate = True
                continue
            if not nodes:  # only geometry nodes make instances of a plain object
                b = ()
            else:
                ob = orig.evaluated_get(dg)
                b = bulk_instances(ob, dg=dg) if compat.GEOMETRY_SET else None
                if other_components(ob):
                    iterate = True  # its points, volume ... are only the depsgraph's instances
            if b is None:
                iterate = True
            elif b != ():
                bulk.add(name)
                if name in self.ids:
                    groups += self._bulk_groups(orig, b)
            if name in self.ids:
                plain.append(orig)
        if iterate:
            groups += self._iterated_groups(dg, rendered, bulk)
        else:
            for orig in plain:
                ob = orig.evaluated_get(dg)
                key = (orig.name_full, "", "")
                if self._static(orig) and key in self._geoms:
                    g, changed = self._geoms[key], False
                else:
                    g, changed = self._geom(key, lambda c, ob=ob: geometry_of(ob, c))
                if g is None:
                    continue
                name = orig.name_full
                iid = self._iid(name, [], [])
                groups.append(Group(name, g, np.array([iid], np.uint32),
                                     np.array(ob.matrix_world, float)[None], int(orig.pass_index),
                                     changed, rows.object_random(self.aov_materials, ob, orig)))
        pose = scene_setup.camera_pose(camera)
        k = cam_model.intrinsics(scene_setup.camera_params(self.scene, camera))
        self._current[frame] = (groups, camera.name, pose, k, float(camera.data.clip_start))
        self.timings["collect"] += time.perf_counter() - t0

    def _iid(self, name: str, chain: list[str], pid: list[int]) -> int:
        key = (name, tuple(chain), tuple(pid))
        iid = self._iids.get(key)
        if iid is None:
            iid = self._iids[key] = od.instance_id(od.instance_key(name, chain, pid))
            self.infos.add(iid, name, chain, pid)
        return iid

    def _row(self, iid: int, name: str, chain, pid: list[int]) -> InstanceRowDict:
        """The instance table's row of an instance (:class:`.instance_infos.InstanceInfos`)."""
        orig = self._objects.get(name)
        return {"instance_id": iid, "object_id": self.ids[name], "object": name,
                "instancer_chain": list(chain), "persistent_id": list(pid),
                "category": self.classes.get(name, ""),
                "deforming": bool(orig is not None and self._is_structural(orig))}

    def _bulk_groups(self, orig, b: Bulk) -> list[Group]:
        """Groups of a top-level geometry-nodes instancer read in bulk: each instance counts as
        the instancer (its key: the instancer, chain [instancer], persistent id [0, id]); its
        ids and Random values are hashed once per sequence (:meth:`InstanceInfos.bulk`)."""
        name = orig.name_full
        chain = self._chain_of(orig, orig)

        def new(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return od.bulk_instance_ids(name, list(chain), pid), rows.bulk_values(orig, pid)

        iids, values = self.infos.bulk(name, chain, b.pid, new)
        out = []
        for r, gs in enumerate(b.refs):
            sel = np.flatnonzero(b.ref == r)
            if not len(sel):
                continue
            g, changed = self._geom(("gn", name, r), lambda c, gs=gs: mesh_geometry(gs.mesh, c))
            if g is None:
                continue
            out.append(Group(name, g, iids[sel], b.mats[sel], int(orig.pass_index), changed,
                             rows.bulk_random(self.aov_materials, gs.mesh, values[sel])))
            self.counts["bulk"] += len(sel)
        return out

    def _iterated_groups(self, dg, rendered, bulk: set[str]) -> list[Group]:
        """Every drawn thing of ``dg.object_instances`` but the instances of ``bulk`` instancers
        (read as arrays), one instance however many entries it has: the components of an
        object's evaluated geometry (a curve's, text's, surface's or metaball's mesh; a mesh's
        points or volume) are extra entries, joined to the object's own (:meth:`_thing_of`).
        A fast-lane pair's entries (:meth:`_lane`) are kept raw, a mark where each run begins."""
        things: dict[tuple, Any] = {}  # (name, chain, pid) -> [pass value, matrix, keys, rids]
        parts: dict[tuple, tuple[Geometry | None, bool]] = {}
        feeds: dict[tuple, float] = {}  # part key -> how its materials feed the Random AOV
        ids, lanes, marks, prev, keep = self.ids, {}, [], None, compat.KEEP_MATRIX
        for inst in dg.object_instances:
            is_instance = inst.is_instance
            if is_instance:
                pair = (inst.parent, inst.instance_object)
                lane = lanes.get(pair, _UNSEEN)
                if lane is _UNSEEN:
                    lane = lanes[pair] = self._lane(pair, rendered, bulk, parts, feeds)
                if lane is _SKIP:
                    continue
                if lane is not None:
                    if lane is not prev:
                        prev = things[(_RUN, len(marks))] = lane
                        marks.append((lane, len(lane.rids)))
                        add_p, add_r, add_m = lane.pids.append, lane.rids.append, lane.mats.append
                    add_p(inst.persistent_id[:])
                    add_r(inst.random_id)
                    add_m(keep(inst.matrix_world))
                    continue
            prev = None
            ob = drawn_object(inst) if is_instance else inst.object
            orig = ob.original
            name = orig.name_full
            if name not in ids:
                continue
            kind = ob.type
            if is_instance:
                thing = self._thing_of(inst, orig, kind, rendered, bulk, things)
            else:  # most entries: an object drawn by itself
                ok = name in rendered and inst.show_self and self._draws_self(orig)
                thing = (name, (), ()) if ok else None
            if thing is None:
                continue
            key = self._part(ob, orig, (name, kind, is_instance), parts, feeds)
            rid = inst.random_id if is_instance else None  # Cycles hashes a plain one's name
            t = things.get(thing)
            if t is None:
                things[thing] = [int(orig.pass_index), keep(inst.matrix_world), (key,), {key: rid}]
            elif key not in t[2]:
                t[2] += (key,)
                t[3][key] = rid
        runs = walk.runs_of(marks)
        self.counts["iterated"] += len(things) - len(runs) + sum(
            int(lane.first()[1].sum()) for lane in {id(r.lane): r.lane for r in runs}.values())
        return self._thing_groups(things, parts, feeds, runs)

    def _part(self, ob, orig, how: tuple, parts: dict, feeds: dict) -> tuple:
        """The part key of evaluated ``ob`` (``how``: its name, type, and whether an instance),
        its geometry and Random feed put in ``parts`` and ``feeds`` when first met (evaluated
        data is shared by one thing's copies; non-mesh data is meshed per object)."""
        data = ob.data
        key = (how[0], data.name_full if data is not None else "", how[1], how[2])
        if key not in parts:
            if key in self._geoms and self._static(orig):
                parts[key] = self._geoms[key], False
            else:
                parts[key] = self._geom(key, lambda c, ob=ob: geometry_of(ob, c))
            feeds[key] = rows.feeds(self.aov_materials, rows.used_materials(
                [s.material for s in ob.material_slots], data))
        return key

    def _lane(self, pair: tuple, rendered, bulk: set[str], parts: dict, feeds: dict):
        """How the entries of ``(parent, instance_object)`` are walked: a new fast-lane
        :class:`.instance_walk.Lane` where each is one instance of a plain mesh object (particles,
        vertex/face instancing; not a collection instancer's, nor geometry nodes'); ``_SKIP``
        where none counts (what :meth:`_thing_of` says of each); None: entry by entry."""
        parent, src = pair  # a collection instancer asked first: one per pair in a crowd
        if parent is None or parent.instance_type == "COLLECTION" \
                or not plain_instanced_mesh(parent, src):
            return None
        orig, porig = src.original, parent.original
        pname = porig.name_full
        if orig.name_full not in self.ids or pname not in rendered or pname in bulk:
            return _SKIP
        if self._structure(porig)[1]:
            return None
        key = self._part(src, orig, (orig.name_full, src.type, True), parts, feeds)
        return walk.Lane(orig.name_full, self._chain_of(porig, orig), key, int(orig.pass_index))

    def _thing_groups(self, things: dict[tuple, Any], parts: dict, feeds: dict[tuple, float],
                      runs: list[walk.Run]) -> list[Group]:
        """The groups of the drawn things of :meth:`_iterated_groups`: one per set of drawn
        parts, in the order first met (:func:`.instance_rows.sliced_groups`); runs' rows where
        their marks are."""
        acc: dict[tuple, list] = {}
        drawn: dict[tuple, tuple] = {}
        for thing, t in things.items():
            run = runs[thing[1]] if thing[0] is _RUN else None
            keys = t[2] if run is None else (run.lane.key,)
            if keys not in drawn:  # Cycles draws curve ... metaball data only as a mesh component
                drawn[keys] = tuple(k for k in keys if k[2] not in MESHED and parts[k][0] is not None)
            keys = drawn[keys]
            if not keys:
                continue
            a = acc.get(keys)
            if a is None:
                a = acc[keys] = rows.new_acc(keys, parts, self._geom, *(
                    (thing[0], t[0]) if run is None else (run.lane.name, run.lane.pass_value)))
            if run is not None:
                a[7].append((len(a[4]),) + self._lanes.rows(run, feeds[run.lane.key]))
                continue
            iid = self._iids.get(thing)
            a[4].append(iid if iid is not None else self._iid(*thing))
            a[5].append(t[1])
            a[6].append(rows.thing_random(feeds, keys, t[3], self._objects[thing[0]]))
        return rows.sliced_groups(acc.values())

    def _thing_of(self, inst, orig, kind: str, rendered, bulk: set[str], things) -> tuple | None:
        """The drawn thing ``(name, chain, pid)`` of an instance entry (``is_instance``) of
        ``object_instances`` of type ``kind`` (None: not drawn). A component of an object's
        evaluated geometry is an instance entry of another type than its object: of a top-level
        object, with the object as its parent and a one-entry persistent id (the component's
        index); of an instanced object, with the object's persistent id behind the component's
        index (right after the object's entry)."""
        name = orig.name_full
        top = (name, (), ())
        parent = inst.parent.original if inst.parent is not None else None
        pname = parent.name_full if parent is not None else None
        if pname not in rendered:
            return None
        pid = tuple(inst.persistent_id)  # od.trim_pid, without a conversion per entry
        n = len(pid)
        while n and pid[n - 1] == od.PID_UNUSED:
            n -= 1
        pid = pid[:n]
        component = kind != orig.type
        if component and pname == name and n == 1:
            return top if self._draws_self(orig) else None
        if pname in bulk:
            return None
        chain = self._chain_of(parent, orig)
        if component and n >= 2 and (name, chain, pid[1:]) in things:
            return name, chain, pid[1:]
        return name, chain, pid

    def _draws_self(self, orig) -> bool:
        """A particle emitter draws its own geometry only with "Show Emitter" for render."""
        return not self._structure(orig)[0] or orig.show_instancer_for_render

    def _structure(self, orig) -> tuple[bool, bool]:
        """Whether ``orig`` has particle systems, and a geometry-nodes modifier: asked once per
        object (its modifiers and particle systems do not change while the file renders)."""
        got = self._structures.get(orig.name_full)
        if got is None:
            got = self._structures[orig.name_full] = (
                bool(len(getattr(orig, "particle_systems", ()))), has_nodes(orig))
        return got

    def _chain_of(self, parent, orig) -> tuple[str, ...]:
        k = (parent.name_full, orig.name_full)
        if k not in self._chains:
            self._chains[k] = tuple(rows.instancer_chain(parent, orig))
        return self._chains[k]

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
        st = stack(groups)
        for g in groups:
            if g.changed:
                for i in g.iids.tolist():
                    self.infos[i]["deforming"] = True
        self.counts["instances"] = max(self.counts["instances"], len(st.iid))
        ins = self._ids_image(frame, groups, st, raw, final, k, pose)
        t1 = time.perf_counter()
        w2c = od.world_to_cv(pose)
        self._poses[frame] = w2c
        self.frames[frame] = dict(frame=frame, camera=cam_name, **rows.frame_record(
            self.records, groups, st, ins, w2c, k, near))
        t2 = time.perf_counter()
        self.timings["records"] += t2 - t1
        self.timings["resolve"] += t2 - t0

    def _ids_image(self, frame: int, groups: list[Group], st: Stack, raw: Path | None,
                   final: Path, k, pose: np.ndarray) -> np.ndarray:
        """The frame's instance id image ``(H, W)`` uint32: resolved from the raw Object Index +
        Depth file ``raw`` and handed to ``self.writer``, which writes it (with the object ids)
        to ``final`` and then removes ``raw``; or, without ``raw``, read back from ``final``."""
        if raw is None:
            return od.read_ids(final)[1]
        from ..dataset import exr_plain

        tm, t0 = self.timings, time.perf_counter()
        ch = exr_plain.read_channels(raw, ["R", "G", "B"])  # uncompressed: read from its bytes
        oid = np.array([self.ids[g.name] for g in groups], np.int32).reshape(-1)[st.gi]
        pv = np.array([g.pass_value for g in groups], np.int64).reshape(-1)[st.gi]
        # a box stand-in's surface distance is 0 inside its box: no bound for it
        rad = np.array([g.geom.radius if len(g.geom.tris) else -1.0 for g in groups],
                       float).reshape(-1)[st.gi]
        t1, sd0 = time.perf_counter(), tm["surface"]
        cands = self._prepared = pix.prepare(
            pix.Candidates(st.iid, oid, pv, st.mats, st.lo, st.hi, rad, st.rand), self._prepared)
        obj, ins, stats = pix.resolve_pixel_arrays(
            ch["R"], ch["G"], k.K, pose, cands, surface_distance(groups, st, tm),
            aov=ch["B"] if self.aov_materials is not None else None)
        t2 = time.perf_counter()
        for s, c in stats.items():
            self.resolve_stats[s] = self.resolve_stats.get(s, 0) + c
        self.writer.submit(frame, final, obj, ins, raw)
        tm["read_raw"] += t1 - t0
        tm["pixel_ids"] += (t2 - t1) - (tm["surface"] - sd0)
        tm["write_ids"] += time.perf_counter() - t2
        return ins

    def close(self) -> None:
        super().close()
        self.writer.close()

    def instance_rows(self) -> list[InstanceRowDict]:
        """The instance table of the sequence (rows of ``instance_id, object_id, object,
        instancer_chain, persistent_id, category, deforming``), sorted by id: every instance of
        a frame record."""
        seen = set()
        for r in self.frames.values():
            seen.update(r["instance_id"].tolist())
        return [self.infos[i] for i in sorted(seen)]

    def instances_doc(self) -> JSONObject:
        return {str(v["instance_id"]): {
            "object": v["object"], "object_id": v["object_id"], "instancer_chain":
            v["instancer_chain"], "persistent_id": v["persistent_id"], "class": v["category"]}
            for v in self.instance_rows()}
