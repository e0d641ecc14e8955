# SPDX-License-Identifier: GPL-3.0-or-later
"""The object tracker's fast lane through ``depsgraph.object_instances``
(render_passes/instance_walk.py): the rows it makes of a hair particle system drawn as an object
are those of a plain per-entry walk (ids of ``instance_key(object, chain, used persistent id)``,
``matrix_world``, Object Info > Random of ``random_id``), and pairs whose entries are not one
plain mesh instance each (a collection instance, a geometry-nodes "As Instance") keep the
per-entry walk.

The scene: ``build_scatter(via="particles")`` of tests/instance_scenes.py with 300 cones (64 x 48
px), plus the empty ``Holder`` instancing the collection ``Held`` (the cone) and ``Stand``, a
3-vertex mesh whose geometry nodes instance the real object ``Cone`` on each vertex (Object Info,
"As Instance"); and ``Dots``, a 2-vertex mesh instancing its child ``Pip`` (a 0.2 cube) on its
vertices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import bpy_pythons, run_bpy
from dataset_forge.dataset import objects as od
from dataset_forge.render_passes import instance_walk as walk
from dataset_forge.render_passes.instance_infos import InstanceInfos

PYTHONS = bpy_pythons()
U = od.PID_UNUSED

WALK = r'''
import sys, json
sys.path.insert(0, TESTS)
import bpy, numpy as np
import instance_scenes as sc
from dataset_forge.dataset import objects as od, random_ids as rids
from dataset_forge.render_passes import objects as obm

sc.build_scatter(BLEND, 300, frames=2, res=(64, 48), samples=1, via="particles")
cone = bpy.data.objects["Cone"]
held = bpy.data.collections.new("Held")
held.objects.link(cone)
holder = bpy.data.objects.new("Holder", None)
holder.instance_type, holder.instance_collection = "COLLECTION", held
holder.location = (1.0, 2.0, 0.5)
bpy.context.scene.collection.objects.link(holder)
me = bpy.data.meshes.new("Stand")
me.from_pydata([(0, 0, 0), (0.6, 0, 0), (1.2, 0, 0)], [], [])
stand = bpy.data.objects.new("Stand", me)
bpy.context.scene.collection.objects.link(stand)
sc._gn_object_scatter(bpy, stand, cone)
dm = bpy.data.meshes.new("Dots")
dm.from_pydata([(-2, 1, 0), (-1, 1, 0)], [], [])
dots = bpy.data.objects.new("Dots", dm)
dots.instance_type = "VERTS"
pip = bpy.data.objects.new("Pip", sc._cube_mesh(bpy, "Pip", 0.2))
for ob in (dots, pip):
    bpy.context.scene.collection.objects.link(ob)
pip.parent = dots
scene = bpy.context.scene
ids = {o.name_full: i + 1 for i, o in enumerate(bpy.data.objects)}
rendered = {o.name_full for o in scene.objects if not o.hide_render
            and o.name_full != "Cone"}
tr = obm.ObjectTracker(scene, ids, {}, lambda: rendered, "ZIP")
tr.aov_materials = {m.name_full for m in bpy.data.materials}
out = {"frames": []}
for f in (1, 2):
    scene.frame_set(f)
    dg = bpy.context.evaluated_depsgraph_get()
    want = []
    for inst in dg.object_instances:
        src = inst.instance_object if inst.is_instance else None
        if src is None or src.original not in (cone, pip):
            continue
        parent = inst.parent.original.name_full
        lane = tr._lane((inst.parent, inst.instance_object), rendered, set(), {}, {})
        pid = od.trim_pid(inst.persistent_id)
        name = src.original.name_full
        want.append(dict(parent=parent, fast=isinstance(lane, obm.walk.Lane), name=name,
                         iid=od.instance_id(od.instance_key(name, [parent], pid)),
                         mat=[list(r) for r in inst.matrix_world],
                         rand=float(rids.random_value(inst.random_id & 0xFFFFFFFF))))
    groups = tr._iterated_groups(dg, rendered, set())
    got = [dict(name=g.name, iids=g.iids.tolist(), mats=g.mats.tolist(),
                rand=g.rand.tolist()) for g in groups]
    out["frames"].append(dict(want=want, groups=got))
out["infos"] = {str(i): tr.infos[i] for i in tr.infos}
out["tables"] = [list(k) for k in tr._lanes._tables]
tr.close()
print("RESULT" + json.dumps(out))
'''


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def walked(request, tmp_path_factory) -> dict:
    blend = tmp_path_factory.mktemp("walk") / "p300.blend"
    code = WALK.replace("TESTS", repr(str(Path(__file__).parent))).replace(
        "BLEND", repr(str(blend)))
    text = run_bpy(code, request.param[1] or sys.executable)
    return json.loads(text.split("RESULT", 1)[1])


@pytest.mark.render
def test_particles_take_the_fast_lane_the_others_do_not(walked):
    want = walked["frames"][0]["want"]
    by_parent = {p: {w["fast"] for w in want if w["parent"] == p} for p in ("Ground", "Holder",
                                                                         "Stand", "Dots")}
    assert by_parent["Ground"] == {True}  # 300 hair particles drawn as the cone
    assert by_parent["Dots"] == {True}  # vertex instancing
    assert sum(w["parent"] == "Dots" for w in want) == 2
    assert by_parent["Holder"] == {False}  # a collection instance
    assert by_parent["Stand"] == {False}  # geometry nodes, "As Instance"
    assert sum(w["parent"] == "Ground" for w in want) == 300
    assert sum(w["parent"] == "Stand" for w in want) == 3
    assert sorted(walked["tables"]) == [["Cone", ["Ground"]], ["Pip", ["Dots"]]]


@pytest.mark.render
def test_fast_lane_rows_are_the_plain_walks(walked):
    for frame in walked["frames"]:
        got = {}
        for g in frame["groups"]:
            for i, m, r in zip(g["iids"], g["mats"], g["rand"]):
                got.setdefault(i, (m, r))
        for name in ("Cone", "Pip"):
            own = od.instance_id(od.instance_key(name, [], []))  # Pip drawn by itself too
            in_order = [i for g in frame["groups"] if g["name"] == name for i in g["iids"]
                        if i != own]
            # every entry once, in the walk's order (the cone's group holds four instancers')
            assert in_order == [w["iid"] for w in frame["want"] if w["name"] == name]
        for w in frame["want"]:
            m, r = got[w["iid"]]
            assert m == w["mat"]  # bit for bit
            # Pip has no material: Cycles' default surface writes no Random AOV
            assert np.float32(r) == np.float32(w["rand"] if w["name"] == "Cone" else 0.0)
    infos = walked["infos"]
    for w in walked["frames"][0]["want"]:
        row = infos[str(w["iid"])]
        assert row["object"] == w["name"] and row["instancer_chain"] == [w["parent"]]
        assert od.instance_id(od.instance_key(w["name"], row["instancer_chain"],
                                              row["persistent_id"])) == w["iid"]


@pytest.mark.render
def test_static_hair_keeps_its_ids_from_frame_to_frame(walked):
    a, b = ([w["iid"] for w in f["want"]] for f in walked["frames"])
    assert a == b and len(a) == 300 + 1 + 3 + 2  # particles, Holder, Stand, Dots


def test_instance_ids_are_the_per_key_ids():
    pids = [[], [0], [5, 0], [-3, 2**31 - 2, 7], [1, U, 2]]
    for name, chain in (("Cone", ["Ground"]), ('Ü "q"', ["A", "B\\"])):
        assert od.instance_ids(name, chain, pids).tolist() == [
            od.instance_id(od.instance_key(name, chain, p)) for p in pids]


def _lane(pids: list[tuple], rids: list[int]) -> walk.Lane:
    lane = walk.Lane("Cone", ("Ground",), ("Cone", "Cone", "MESH", True), 3)
    for k, (p, r) in enumerate(zip(pids, rids)):
        lane.pids.append(p)
        lane.rids.append(r)
        lane.mats.append([[1.0, 0.0, 0.0, float(k)], [0.0, 1.0, 0.0, 0.5],
                          [0.0, 0.0, 1.0, -k / 3], [0.0, 0.0, 0.0, 1.0]])
    return lane


def test_a_repeated_persistent_id_counts_once_with_its_first_entry():
    pids = [(0, 0, U), (1, 0, U), (0, 0, U), (2, 0, U)]
    rids = [-5, 7, 9, 2**31 - 1]
    added = []
    ids = walk.LaneIds(lambda *a: added.append(a))
    lane = _lane(pids, rids)
    runs = walk.runs_of([(lane, 0)])
    iid, mats, rand = ids.rows(runs[0], 1.0)
    want = [od.instance_id(od.instance_key("Cone", ["Ground"], p)) for p in ([0, 0], [1, 0],
                                                                           [2, 0])]
    assert iid.tolist() == want
    assert mats[:, 0, 3].tolist() == [0.0, 1.0, 3.0]  # the first entry's matrix
    assert rand.tolist() == [float(np.float32((r % 2**32) * 2.0**-32)) for r in (-5, 7, 2**31 - 1)]
    assert added == [(want, "Cone", ("Ground",), [[0, 0], [1, 0], [2, 0]])]
    # the next frame: the same ids from the table, none added again; a new one is hashed
    lane2 = _lane([(2, 0, U), (7, 1, U), (0, 0, U)], [1, 2, 3])
    iid2, _, rand2 = ids.rows(walk.runs_of([(lane2, 0)])[0], np.nan)
    assert iid2.tolist() == [want[2], od.instance_id(od.instance_key("Cone", ["Ground"], [7, 1])),
                             want[0]]
    assert np.isnan(rand2).all() and added[1:] == [([iid2[1]], "Cone", ("Ground",), [[7, 1]])]


@pytest.mark.render  # instance_rows imports compat (bpy)
def test_runs_put_their_rows_where_they_were_met():
    from dataset_forge.render_passes import instance_rows as rows

    a = _lane([(0, U), (1, U), (2, U), (3, U)], [0, 0, 0, 0])
    b = _lane([(9, U)], [0])
    runs = walk.runs_of([(a, 0), (b, 0), (a, 2)])
    assert [(r.lane is a, r.start, r.end) for r in runs] == [(True, 0, 2), (False, 0, 1),
                                                             (True, 2, 4)]
    ids = walk.LaneIds(lambda *a: None)
    pieces = [ids.rows(r, 0.0) for r in runs]
    acc = [None, False, "Cone", 3, [11, 12], [np.eye(4).tolist()] * 2, [0.5, 0.25], []]
    # listed rows 11 first, then a's first run, b's run, row 12, then a's second run
    acc[7] = [(1,) + pieces[0], (1,) + pieces[1], (2,) + pieces[2]]
    (g,) = rows.sliced_groups([acc])
    lane_ids = [p[0].tolist() for p in pieces]
    assert g.iids.tolist() == [11] + lane_ids[0] + lane_ids[1] + [12] + lane_ids[2]
    assert g.mats[:, 0, 3].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 3.0]
    assert g.rand.tolist() == [0.5, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0]
    (only,) = rows.sliced_groups([[None, False, "Cone", 3, [], [], [], [(0,) + pieces[1]]]])
    assert only.iids.tolist() == lane_ids[1] and only.mats.shape == (1, 4, 4)


def test_kept_matrices_read_alike():
    m = (np.arange(32, dtype=np.float32).reshape(2, 4, 4) / 7).astype(np.float32)
    as_bytes = walk.matrices([x.tobytes() for x in m])  # a 5.0 Matrix's bytes: rows first
    as_rows = walk.matrices(m.tolist())  # iterating a Matrix copy: rows
    assert as_bytes.dtype == as_rows.dtype == np.float64
    assert np.array_equal(as_bytes, m.astype(float)) and np.array_equal(as_rows, as_bytes)
    assert walk.matrices([]).shape == (0, 4, 4)


def _row(iid, name, chain, pid):
    return {"instance_id": iid, "object_id": 7, "object": name, "instancer_chain": list(chain),
            "persistent_id": list(pid), "category": "cone", "deforming": False}


def test_rows_added_at_once_are_the_rows_added_one_by_one():
    """The first id added keeps its row: 4 is a plain row's, 6 a bulk instancer's, 9 comes
    twice."""
    iids, pids = [4, 5, 6, 9, 9, 10], [[0], [1], [2], [3], [4], [5, 0]]
    tables = []
    for at_once in (True, False):
        t = InstanceInfos(_row)
        t.add(4, "Plain", (), [])
        t.bulk("G", ("G",), np.array([1, 2]), lambda pid: (np.array([6, 8], np.uint32)[:len(pid)],
                                                           np.zeros(len(pid), np.float32)))
        if at_once:
            t.add_rows(iids, "Cone", ("Ground",), pids)
        else:
            for i, p in zip(iids, pids):
                t.add(i, "Cone", ("Ground",), p)
        tables.append({i: t[i] for i in sorted(t)})
    assert tables[0] == tables[1]
    assert tables[0][9]["persistent_id"] == [3] and tables[0][4]["object"] == "Plain"
    assert tables[0][6]["object"] == "G" and tables[0][10]["persistent_id"] == [5, 0]
