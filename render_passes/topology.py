# SPDX-License-Identifier: GPL-3.0-or-later
"""Meshes whose vertex count changes between the frames Cycles evaluates for a frame's Vector
pass: Cycles has no motion for them, so their flow is marked invalid (:class:`TopologyWatch`).
Counts are read as arrays, per drawn thing."""

from __future__ import annotations

from typing import NamedTuple

import bpy
import numpy as np

from ..dataset.documents.transforms import FrameEntry
from . import compat
from .frame_listener import FrameListener
from .geometry import bulk_instances, drawn_object, has_nodes, plain_instanced_mesh

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


def _particle_sources(ob) -> list | None:
    """The evaluated objects that the particle systems of evaluated object ``ob`` draw, when
    each is drawn as an object (or not as geometry at all: strands, halos) and that object is a
    plain mesh (no geometry nodes, no instancing, no particles of its own): every copy then draws
    that object's one evaluated mesh, so its vertex count is read once, not per particle. None
    when ``ob`` itself has geometry nodes or any system draws something else (a collection)."""
    if has_nodes(ob.original):
        return None
    out = []
    for m in ob.modifiers:
        if m.type != "PARTICLE_SYSTEM" or not m.show_render:
            continue
        ps = m.particle_system.settings
        if ps.render_type != "OBJECT":
            if ps.render_type == "COLLECTION":
                return None
            continue
        src = ps.instance_object
        if src is None:
            continue
        if not _plain_mesh(ob, src):
            return None
        out.append(src)
    return out


def _plain_mesh(parent, ob) -> bool:
    """Whether ``parent``'s copies of ``ob`` draw ``ob``'s own mesh
    (:func:`.geometry.plain_instanced_mesh`) and nothing more (``ob`` instances nothing and has
    no particles, whose copies would be listed under ``parent`` too)."""
    return (plain_instanced_mesh(parent, ob) and ob.instance_type == "NONE"
            and not len(ob.particle_systems))


def _collection_sources(ob) -> list | None:
    """The objects that collection instancer ``ob`` (evaluated) draws copies of, when every
    object of its collection and of the collections inside it is shown and is a plain mesh
    (:func:`_plain_mesh`) or draws no geometry (an empty that instances nothing, a light, a
    camera): each copy then draws those objects' evaluated meshes. Else None (walked)."""
    coll = ob.instance_collection
    if ob.instance_type != "COLLECTION" or coll is None:
        return None
    if any(c.hide_render or c.hide_viewport for c in coll.children_recursive):
        return None
    out = []
    for o in coll.all_objects:
        if o.hide_render or o.hide_viewport:
            return None
        if o.type in ("LIGHT", "CAMERA", "LIGHT_PROBE") or (o.type == "EMPTY"
                                                            and o.instance_type == "NONE"):
            continue
        if not _plain_mesh(ob, o):
            return None
        out.append(o)
    return out


def _counts(dg, copies_read: bool = True) -> _Counts:
    """Vertex counts of every drawn mesh of ``dg``. Geometry-nodes instances of top-level
    objects are read as arrays (:func:`bulk_instances`); the copies of plain mesh objects made by
    particles (:func:`_particle_sources`) or collection instances (:func:`_collection_sources`)
    once per copied object (``copies_read`` False: per copy, as the walk sees them);
    ``object_instances`` is walked only when something else instances (nested collections,
    vertices/faces, 4.2)."""
    out: dict[tuple, tuple[int, bool]] = {}
    bulk: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    iterate = not compat.GEOMETRY_SET
    objs = []
    copiers: set[str] = set()
    for ob in dg.objects:
        orig = ob.original
        if orig.hide_render:
            continue
        particles = len(getattr(orig, "particle_systems", ()))
        if orig.instance_type != "NONE" or particles:
            src = None if not copies_read or (particles and orig.instance_type != "NONE") else (
                _particle_sources(ob) if particles else _collection_sources(ob))
            if src is None:
                iterate = True
                continue
            copiers.add(orig.name_full)
            for so in src:
                n = _vertex_count(so.original.evaluated_get(dg))
                if n is not None:
                    out[(so.original.name_full, ("copies",))] = n
            if particles and orig.show_instancer_for_render:
                objs.append(ob)
            continue
        b = bulk_instances(ob, transforms=False, dg=dg) if has_nodes(orig) else ()
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
    _walk(dg, out, set(bulk) | copiers)
    return _Counts(out, bulk)


def _walk(dg, out: dict[tuple, tuple[int, bool]], read: set[str]) -> None:
    """Add to ``out`` the vertex counts of ``dg.object_instances`` but the copies made by the
    objects ``read`` (already counted), keyed by (object name, persistent id)."""
    seen: dict[tuple[int, int], tuple[int, bool] | None] = {}  # copies share evaluated data
    for inst in dg.object_instances:
        if not (inst.show_self or inst.is_instance):
            continue
        if inst.is_instance and inst.parent is not None and inst.parent.original.name_full in read:
            continue
        ob = drawn_object(inst)
        if not inst.is_instance and ob.original.hide_render:
            continue  # drawn in the viewport only
        data = (ob.original.as_pointer(), ob.data.as_pointer() if ob.data is not None else 0)
        if data not in seen:
            seen[data] = _vertex_count(ob)
        n = seen[data]
        if n is not None:
            pid = tuple(inst.persistent_id) if inst.is_instance else ()
            out[(ob.original.name_full, pid)] = n


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


class TopologyWatch(FrameListener):
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

    def invalidate(self, frames_meta: list[FrameEntry]) -> list[str]:
        """Set the frames' ``flow_forward_valid`` / ``flow_backward_valid`` false where
        :meth:`broken` finds a mesh; returns the warning (at most one, naming the first such
        mesh)."""
        first: tuple[str, int, int] | None = None
        names: set[str] = set()
        for fr in frames_meta:
            f = fr.frame
            for forward, g in ((True, f + 1), (False, f - 1)):
                bad = self.broken(f, g)
                if bad:
                    if forward:
                        fr.flow_forward_valid = False
                    else:
                        fr.flow_backward_valid = False
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
