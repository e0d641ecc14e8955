# SPDX-License-Identifier: GPL-3.0-or-later
"""Object ground truth at scale: the vectorised numerics of ``dataset/objects.py`` against known
geometry (analytic ray casts of boxes) and against the per-candidate definitions they replace;
the bulk read of geometry-nodes instances against the depsgraph's own instance list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_forge.dataset import objects as od
from dataset_forge.dataset import pixel_ids as pix

REPO = Path(__file__).resolve().parent.parent


def _rot(rng, n):
    """``n`` random rotations about z (3, 3)."""
    a = rng.uniform(0, 2 * np.pi, n)
    r = np.zeros((n, 3, 3))
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    r[:, 2, 2] = 1
    return r


def _unique_ids(rng, n, low):
    """``n`` distinct random ids in ``low .. 2**30 - 1 + low``, in random order."""
    ids = np.unique(rng.integers(low, low + 2**30 - 1, 2 * n + 16))
    return rng.permutation(ids)[:n].astype(np.uint32)


def _boxes_scene(rng, n, spread, w=96, h=64, f=80.0, height=12.0):
    """``n`` unit-ish boxes on a grid in the z = 0 plane (rotated about z, never overlapping),
    seen by a camera ``height`` m above looking down -z. Returns the analytic Object Index and
    planar depth images (ray-box slab test per pixel centre), the true instance image, K, the
    pose and the candidates (pass value 5 for all but every 7th box, which gets its own)."""
    side = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    centres = np.stack([gx.ravel(), gy.ravel()], -1)[:n] * spread - (side - 1) * spread / 2
    centres = centres + rng.uniform(-0.1, 0.1, centres.shape)
    mats = np.tile(np.eye(4), (n, 1, 1))
    mats[:, :3, :3] = _rot(rng, n)
    mats[:, :2, 3] = centres
    lo = -rng.uniform(0.3, 0.45, (n, 3))
    hi = rng.uniform(0.3, 0.45, (n, 3))
    iid = _unique_ids(rng, n, 1)
    pv = np.where(np.arange(n) % 7 == 0, 100 + np.arange(n), 5).astype(np.int64)
    oid = np.where(pv == 5, 1, 2 + np.arange(n)).astype(np.int32)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    pose = np.eye(4)
    pose[2, 3] = height
    # rays: OpenCV camera (x right, y down, z forward) -> world (camera looks down -z)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    dcv = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    cv2w = pose @ od.CV_FROM_GL
    dw = dcv.reshape(-1, 3) @ cv2w[:3, :3].T
    o = cv2w[:3, 3]
    best = np.full(len(dw), np.inf)
    who = np.full(len(dw), -1)
    px = np.arange(w * h)
    for j in range(n):
        r = mats[j, :3, :3]
        # only the pixels inside the projection of the box's corners can see it (all in front)
        corners = od.transform(mats[j], od.box_corners(lo[j], hi[j])) - cv2w[:3, 3]
        cc = corners @ cv2w[:3, :3]
        cu, cw_ = cc[:, 0] / cc[:, 2] * K[0, 0] + K[0, 2], cc[:, 1] / cc[:, 2] * K[1, 1] + K[1, 2]
        sel = px[(u.ravel() >= cu.min() - 0.01) & (u.ravel() <= cu.max() + 0.01)
                 & (v.ravel() >= cw_.min() - 0.01) & (v.ravel() <= cw_.max() + 0.01)]
        oo = (o - mats[j, :3, 3]) @ r
        dd = dw[sel] @ r
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lo[j] - oo) / dd, (hi[j] - oo) / dd
        tn = np.nanmax(np.minimum(t1, t2), 1)
        tf = np.nanmin(np.maximum(t1, t2), 1)
        ok = (tn <= tf) & (tn > 0) & (tn < best[sel])
        best[sel[ok]], who[sel[ok]] = tn[ok], j
    hit = who >= 0
    depth = np.where(hit, best, 1e10).reshape(h, w).astype(np.float32)  # planar: dcv has z = 1
    index = np.where(hit, pv[np.maximum(who, 0)], 0).reshape(h, w).astype(np.float32)
    truth = np.where(hit, iid[np.maximum(who, 0)], 0).reshape(h, w).astype(np.uint32)
    c = pix.Candidates(iid, oid, pv, mats, lo, hi)
    return index, depth, truth, K, pose, c


def _reference(index, depth, K, pose, c, surface=None):
    """The per-candidate resolution (every candidate of a value against every pixel; among
    boxes within 2 pixel footprints, ``surface`` decides), ties to the lowest instance id: the
    definition the bucketed resolver must reproduce. All ``(pixels, candidates)`` distances at
    once (the test scenes have a few thousand pixels and 64 candidates)."""
    from dataset_forge.dataset.layout import pixel_rays

    h, w = index.shape
    ins = np.zeros((h, w), np.uint32)
    xr, yr = pixel_rays(K, (h, w))
    foot = 2.0 * np.sqrt(2.0) * max(1.0 / K[0, 0], 1.0 / K[1, 1])
    cv = pose @ od.CV_FROM_GL
    r, col = np.nonzero(depth < 1e9)
    d = depth[r, col].astype(np.float64)
    p = np.stack([xr[0, col] * d, yr[r, 0] * d, d], -1) @ cv[:3, :3].T + cv[:3, 3]  # (P, 3) world
    order = np.argsort(c.instance_id, kind="stable")  # argmin's first minimum: the lowest id
    m = c.matrix[order]
    q = np.einsum("jab,pjb->pja", np.linalg.inv(m[:, :3, :3]), p[:, None, :] - m[None, :, :3, 3])
    off = np.maximum(np.maximum(c.lo[order] - q, q - c.hi[order]), 0.0)
    same = c.pass_value[order][None, :] == np.rint(index[r, col]).astype(np.int64)[:, None]
    dist = np.where(same, np.linalg.norm(np.einsum("jab,pjb->pja", m[:, :3, :3], off), axis=-1), np.inf)
    pick = np.argmin(dist, axis=1)
    if surface is not None:
        within = dist <= foot * d[:, None] + 1e-6
        several = within.sum(axis=1) > 1
        pp, jj = np.nonzero(within & several[:, None])
        sd = np.full(dist.shape, np.inf)
        sd[pp, jj] = surface(order[jj], p[pp])
        pick = np.where(several, np.argmin(sd, axis=1), pick)
    has = same.any(axis=1)
    ins[r[has], col[has]] = c.instance_id[order][pick[has]]
    return ins


def test_bucketed_resolution_finds_the_box_each_ray_hits():
    """300 rotated boxes, 43 of them with an index value of their own: every pixel carries the
    instance of the box its centre ray hits (analytic ray cast), all by one box or a unique
    value, none by proximity alone."""
    rng = np.random.default_rng(1)
    index, depth, truth, K, pose, c = _boxes_scene(rng, 300, 1.0)
    obj, ins, stats = pix.resolve_pixel_arrays(index, depth, K, pose, c)
    hit = depth < 1e9
    assert hit.sum() > 2000
    assert np.array_equal(ins, truth)
    assert stats["nearest_box"] == 0 and stats["unidentified"] == 0
    assert stats["unique"] + stats["by_box"] + stats["by_surface"] == hit.sum()
    want_obj = np.where(index == 5, 1, 0)
    assert np.array_equal(obj[index == 5], want_obj[index == 5])


def test_bucketed_resolution_equals_the_per_candidate_definition():
    """Depth perturbed (points off every box, near several, behind the camera plane of some):
    the bucketed resolver picks exactly what measuring every candidate picks."""
    rng = np.random.default_rng(2)
    index, depth, _, K, pose, c = _boxes_scene(rng, 64, 0.9, w=48, h=32, f=40.0, height=4.0)
    hit = depth < 1e9
    noisy = depth.copy()
    noisy[hit] *= rng.uniform(0.8, 1.2, hit.sum()).astype(np.float32)
    _, ins, stats = pix.resolve_pixel_arrays(index, noisy, K, pose, c)
    assert stats["nearest_box"] > 0 and stats["by_box"] > 0
    assert np.array_equal(ins, _reference(index, noisy, K, pose, c))


def test_pairs_measured_a_few_at_a_time_pick_the_same(monkeypatch):
    """Pairs measured 7 at a time (fewer than one pixel's candidates: every chunk boundary cuts
    through pixels' candidate lists, and the nearest-box fallback runs in chunks of one pixel):
    the ids are still exactly those of measuring every candidate."""
    rng = np.random.default_rng(4)
    index, depth, _, K, pose, c = _boxes_scene(rng, 64, 0.9, w=48, h=32, f=40.0, height=4.0)
    hit = depth < 1e9
    noisy = depth.copy()
    noisy[hit] *= rng.uniform(0.8, 1.2, hit.sum()).astype(np.float32)
    monkeypatch.setattr(pix, "PAIR_CHUNK", 7)
    _, ins, stats = pix.resolve_pixel_arrays(index, noisy, K, pose, c)
    assert stats["nearest_box"] > 0 and stats["by_box"] > 0 and stats["by_surface"] > 0
    assert np.array_equal(ins, _reference(index, noisy, K, pose, c))


def test_surface_decides_as_measuring_every_box_within_tolerance():
    """Where several boxes are within tolerance, the nearest surface (here: the sphere inscribed
    in each box, scaled uniformly or not) picks the instance, exactly as measuring the surface
    of every candidate within tolerance does."""
    rng = np.random.default_rng(6)
    index, depth, _, K, pose, c = _boxes_scene(rng, 64, 0.75, w=48, h=32, f=30.0, height=4.0)
    m = c.matrix.copy()
    m[::5, :3, :3] *= 1.3                     # uniform scale
    m[1::5, :3, 0] *= 1.6                     # not uniform: no box bound for these
    c = c._replace(matrix=m)
    hit = depth < 1e9
    noisy = depth.copy()
    noisy[hit] *= rng.uniform(0.9, 1.1, hit.sum()).astype(np.float32)

    def surface(rows, pts):
        mm = c.matrix[rows]
        q = np.einsum("nij,nj->ni", od.inv3(mm[:, :3, :3]), pts - mm[:, :3, 3])
        ctr, rad = (c.lo[rows] + c.hi[rows]) / 2, (c.hi[rows] - c.lo[rows]).min(1) / 2
        v = q - ctr
        n = np.linalg.norm(v, axis=1, keepdims=True)
        hitp = ctr + v / np.maximum(n, 1e-12) * rad[:, None]
        return np.linalg.norm(np.einsum("nij,nj->ni", mm[:, :3, :3], hitp - q), axis=1)

    _, ins, stats = pix.resolve_pixel_arrays(index, noisy, K, pose, c, surface)
    assert stats["by_surface"] > 50
    assert np.array_equal(ins, _reference(index, noisy, K, pose, c, surface))


def test_resolution_with_50000_candidates_scales_with_those_in_view():
    """50,000 boxes of one value, 400 of them in view: the pixels still carry the box each ray
    hits (the per-candidate version would hold 50,000 x pixels distances)."""
    rng = np.random.default_rng(3)
    index, depth, truth, K, pose, c = _boxes_scene(rng, 400, 1.0)
    far = 50_000 - 400
    mats = np.tile(np.eye(4), (far, 1, 1))
    mats[:, 0, 3] = rng.uniform(40, 400, far) * rng.choice([-1, 1], far)
    mats[:, 1, 3] = rng.uniform(-400, 400, far)
    ext = pix.Candidates(
        np.concatenate([c.instance_id, _unique_ids(rng, far, 2**30)]),
        np.concatenate([c.object_id, np.ones(far, np.int32)]),
        np.concatenate([c.pass_value, np.full(far, 5)]),
        np.concatenate([c.matrix, mats]), np.concatenate([c.lo, np.full((far, 3), -0.4)]),
        np.concatenate([c.hi, np.full((far, 3), 0.4)]))
    assert len(set(ext.instance_id.tolist())) == 50_000
    _, ins, _ = pix.resolve_pixel_arrays(index, depth, K, pose, ext)
    assert np.array_equal(ins, truth)


def test_amodal_boxes_equal_the_per_instance_box():
    rng = np.random.default_rng(4)
    verts = od.box_corners([-0.5, -0.3, -0.2], [0.5, 0.3, 0.4])
    edges = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7],
                      [0, 4], [1, 5], [2, 6], [3, 7]])
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    o2c = np.tile(np.eye(4), (500, 1, 1))
    o2c[:, :3, :3] = _rot(rng, 500)
    o2c[:, :3, 3] = rng.uniform([-4, -3, -1], [4, 3, 8], (500, 3))  # some cross z = near
    got = od.amodal_boxes(o2c, verts, edges, K, 64, 48, 0.1)
    want = [od.amodal_box(od.transform(m, verts), edges, K, 64, 48, 0.1) for m in o2c]
    assert np.allclose(got, want, atol=1e-9)
    assert (got[:, 2] == 0).any() and (got[:, 2] > 0).any()


@pytest.mark.parametrize("step", [od.ROWS_POINTS, 100])
def test_amodal_boxes_rows_equal_amodal_boxes_bit_for_bit(monkeypatch, step):
    """Rows of 40 geometries (4 to 300 vertices, one empty, one with more rows than
    MANY_ROWS) projected together give exactly the boxes of amodal_boxes per geometry, some of
    them crossing the near plane; ``step``: points per step (100: many steps)."""
    monkeypatch.setattr(od, "ROWS_POINTS", step)
    rng = np.random.default_rng(7)
    geoms = [(rng.normal(size=(int(rng.integers(4, 300)), 3)) * rng.uniform(0.1, 2.0),
              np.array([[0, 1], [1, 2], [2, 3], [3, 0]])) for _ in range(40)]
    geoms[5] = (np.zeros((0, 3)), np.zeros((0, 2), int))
    gi = np.concatenate([rng.integers(0, 40, 300), np.full(od.MANY_ROWS + 3, 9)])
    rng.shuffle(gi)
    o2c = np.tile(np.eye(4), (len(gi), 1, 1))
    o2c[:, :3, :3] = _rot(rng, len(gi)) + rng.normal(0, 0.3, (len(gi), 3, 3))  # any sums
    o2c[:, :3, 3] = rng.uniform([-4, -3, -1], [4, 3, 8], (len(gi), 3))
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    got = od.amodal_boxes_rows(o2c, geoms, gi, K, 64, 48, 0.1)
    want = np.zeros_like(got)
    for j, (v, e) in enumerate(geoms):
        s = np.flatnonzero(gi == j)
        want[s] = od.amodal_boxes(o2c[s], v, e, K, 64, 48, 0.1)
    assert np.array_equal(got, want)
    crossing = [r for r in range(len(gi)) if len(geoms[gi[r]][0]) and 0 < (
        od.transform(o2c[r], geoms[gi[r]][0])[:, 2] >= 0.1).sum() < len(geoms[gi[r]][0])]
    assert crossing and (got[:, 2] > 0).sum() > 50 and not got[gi == 5].any()


def test_visible_box_arrays():
    img = np.zeros((5, 6), np.uint32)
    img[1:3, 2:5] = 7
    img[4, 0] = 3_000_000_000
    ids, boxes, counts = od.visible_box_arrays(img)
    assert ids.tolist() == [7, 3_000_000_000]
    assert boxes.tolist() == [[2, 1, 3, 2], [0, 4, 1, 1]] and counts.tolist() == [6, 1]


def test_metadata_estimate_and_refusal():
    est = od.metadata_estimate(50_000, 6, "all")
    assert est["frame_bytes"] == 50_000 * od.RECORD_BYTES
    assert est["sequence_bytes"] == 6 * est["frame_bytes"]
    assert od.metadata_refusal(50_000, 6, "all") is None
    why = od.metadata_refusal(1_000_000, 24, "all")
    assert why is not None and "1,000,000 instances" in why and "'visible'" in why
    assert "GiB" in why
    assert od.metadata_refusal(10**7, 24, "visible") is None
    assert od.metadata_refusal(10**7, 24, "frustum") is None


BULK = r'''
import json, sys
sys.path.insert(0, ARGS["tests"])
import bpy, numpy as np
import instance_scenes as I
from dataset_forge.render_passes import objects as ro, compat
out = {"geometry_set": compat.GEOMETRY_SET}
for name, build in (("scatter", lambda p: I.build_scatter(p, 300)),
                    ("gt_instances", lambda p: I.build("gt_instances", p))):
    path = ARGS["dir"] + "/" + name + ".blend"
    build(path)
    bpy.ops.wm.open_mainfile(filepath=path)
    sc = bpy.context.scene
    ids = {o.name_full: i + 1 for i, o in enumerate(sorted(bpy.data.objects,
           key=lambda o: o.name_full)) if o.type == "MESH"}
    rendered = lambda: {o.name_full for o in sc.objects if not o.hide_render}
    res = {}
    for mode in ("bulk", "iterated"):
        sc.frame_set(2)
        t = ro.ObjectTracker(sc, ids, {}, rendered, "ZIP")
        keep, compat.GEOMETRY_SET = compat.GEOMETRY_SET, compat.GEOMETRY_SET and mode == "bulk"
        try:
            t.collect_viewport(2)
        finally:
            compat.GEOMETRY_SET = keep
            t.close()
        groups = t._current[2][0]
        iid = np.concatenate([g.iids for g in groups])
        m = np.concatenate([g.mats for g in groups])
        o = np.argsort(iid)
        res[mode] = {"iid": iid[o].tolist(), "m": m[o].tolist(), "counts": t.counts,
                     "infos": [t.infos[i] for i in sorted(t.infos)]}
    out[name] = res
print("BULK" + json.dumps(out))
'''


@pytest.mark.render
@pytest.mark.smoke
@pytest.mark.parametrize("label,python", __import__("conftest").bpy_pythons())
def test_bulk_instances_equal_the_depsgraph_instances(tmp_path, label, python):
    """Geometry-nodes instances read as arrays (GeometrySet API, 4.3+) give the same instance
    ids, instance rows and matrices as walking ``depsgraph.object_instances`` one by one
    (scatter: 300 cones with an ``id`` attribute; gt_instances: collections, particles,
    nested and object instances beside a geometry-nodes instancer). On 4.2 both walk."""
    from conftest import run_bpy

    args = {"tests": str(REPO / "tests"), "dir": str(tmp_path)}
    out = run_bpy(BULK.replace("ARGS", repr(args)), python or None, timeout=600)
    res = json.loads(out.split("BULK", 1)[1].strip().splitlines()[0])
    for name in ("scatter", "gt_instances"):
        a, b = res[name]["bulk"], res[name]["iterated"]
        assert a["iid"] == b["iid"] and len(a["iid"]) == len(set(a["iid"]))
        assert a["infos"] == b["infos"]
        assert np.abs(np.array(a["m"]) - np.array(b["m"])).max() < 1e-5
        if res["geometry_set"]:
            assert a["counts"]["bulk"] > 0 and b["counts"]["bulk"] == 0
    assert len(res["scatter"]["bulk"]["iid"]) >= 250  # the cones and the ground
    assert sys.version_info >= (3, 10)


REPEATS = r"""
import json, sys
sys.path.insert(0, ARGS["tests"])
import bpy, numpy as np
import instance_scenes as I
from dataset_forge.render_passes import objects as ro, compat, geometry, topology
path = I.build_scatter_repeats(ARGS["dir"] + "/repeats.blend", 300, {1: 97, 3: 40})
bpy.ops.wm.open_mainfile(filepath=str(path))
sc = bpy.context.scene
ground = bpy.data.objects["Ground"]
ids = {"Ground": 1}
rendered = lambda: {o.name_full for o in sc.objects if not o.hide_render}
out = {"geometry_set": compat.GEOMETRY_SET, "frames": {}}
bulk = ro.ObjectTracker(sc, ids, {}, rendered, "ZIP")  # one tracker over the frames
for f in (1, 2, 3):
    sc.frame_set(f)
    dg = bpy.context.evaluated_depsgraph_get()
    res = {}
    for mode in ("bulk", "iterated"):
        t = bulk if mode == "bulk" else ro.ObjectTracker(sc, ids, {}, rendered, "ZIP")
        keep, compat.GEOMETRY_SET = compat.GEOMETRY_SET, compat.GEOMETRY_SET and mode == "bulk"
        try:
            before = dict(t.counts)
            t.collect_viewport(f)
            counts = topology._counts(dg)
        finally:
            compat.GEOMETRY_SET = keep
            if t is not bulk:
                t.close()
        groups = t._current.pop(f)[0]
        iid = np.concatenate([g.iids for g in groups])
        m = np.concatenate([g.mats for g in groups])
        o = np.argsort(iid)
        infos = [t.infos[i] for i in sorted(set(iid.tolist()))]
        pids = (counts.bulk["Ground"][0].tolist() if "Ground" in counts.bulk else
                sorted(k[1][1] for k in counts.single if len(k[1]) and k[1][1] != 2**31 - 1))
        res[mode] = {"iid": iid[o].tolist(), "m": m[o].tolist(), "infos": infos,
                     "bulk": t.counts["bulk"] - before["bulk"], "topology_pids": pids}
    a = compat.geometry_instances(ground.evaluated_get(dg))
    res["id_attribute"] = a[2].tolist() if a not in (None, ()) else []
    res["cached"] = geometry._UNIQUE["Ground"][0].tolist() if "Ground" in geometry._UNIQUE else []
    out["frames"][f] = res
bulk.close()
print("REPEATS" + json.dumps(out))
"""


@pytest.mark.render
@pytest.mark.parametrize("label,python", __import__("conftest").bpy_pythons())
def test_repeated_ids_read_in_bulk_equal_the_depsgraph_instances(tmp_path, label, python):
    """A scatter whose ``id`` attribute repeats (index modulo 97, then 40 from frame 3): read in
    bulk (the persistent ids Blender draws for the repeats learned from one walk per id array)
    it gives the instance ids, rows and matrices of walking ``object_instances``, at every
    frame, in the object tracker and in the topology watch's counts."""
    from conftest import run_bpy

    args = {"tests": str(REPO / "tests"), "dir": str(tmp_path)}
    out = run_bpy(REPEATS.replace("ARGS", repr(args)), python or None, timeout=600)
    res = json.loads(out.split("REPEATS", 1)[1].strip().splitlines()[0])
    for f, period in (("1", 97), ("2", 97), ("3", 40)):
        r = res["frames"][f]
        a, b = r["bulk"], r["iterated"]
        n = len(a["iid"]) - 1  # the cones (and the ground)
        assert a["iid"] == b["iid"] and len(set(a["iid"])) == n + 1 and n >= 250
        assert a["infos"] == b["infos"]
        assert np.abs(np.array(a["m"]) - np.array(b["m"])).max() < 1e-5
        assert sorted(a["topology_pids"]) == b["topology_pids"] and len(b["topology_pids"]) == n
        pids = {i["persistent_id"][1] for i in a["infos"] if len(i["persistent_id"]) == 2}
        assert len(pids) == n and pids >= set(range(period))  # first ones keep their id
        if res["geometry_set"]:  # read in bulk, not walked: 4.3+
            ids = np.array(r["id_attribute"])
            assert np.array_equal(ids, np.arange(n) % period)
            assert a["bulk"] == n and b["bulk"] == 0
            assert r["cached"] == r["id_attribute"]


def test_nearest_on_triangles_is_the_analytic_nearest_point():
    """A unit square (2 triangles) in z = 0 and a tetrahedron: the nearest point of points
    around them, against the clamped projection (square) and against brute force over a dense
    sampling of the faces (tetrahedron)."""
    rng = np.random.default_rng(5)
    sq = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    pts = rng.uniform(-1, 2, (2000, 3))
    got = od.nearest_on_triangles(sq, [[0, 1, 2], [0, 2, 3]], pts)
    want = np.stack([np.clip(pts[:, 0], 0, 1), np.clip(pts[:, 1], 0, 1), np.zeros(2000)], -1)
    assert np.abs(got - want).max() < 1e-12
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    uv = rng.dirichlet([1, 1, 1], 20000)
    dense = np.concatenate([uv @ tet[f] for f in faces])
    pts = rng.uniform(-1, 2, (300, 3))
    got = od.nearest_on_triangles(tet, faces, pts)
    d_got = np.linalg.norm(got - pts, axis=1)
    x, y, z = dense.T.copy()  # one contiguous row per axis: the distances to 80,000 points per point
    d_dense = np.array([np.sqrt(((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2).min()) for p in pts])
    assert (d_got <= d_dense + 1e-12).all() and (d_dense - d_got).max() < 0.02
    assert np.isnan(od.nearest_on_triangles(tet, np.zeros((0, 3), int), pts)).all()


@pytest.mark.render
def test_scale_bench_measures_what_it_reports(tmp_path):
    """bench/scale.py --quick on real runs: every configuration rendered, the records' bytes
    are the visible instances times the record size, and the table has one row per case
    (never a time threshold: the machine is shared)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("df_bench_scale", REPO / "bench" / "scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.RECORD_BYTES == od.RECORD_BYTES
    rows = bench.measure(bench.QUICK, tmp_path, log=lambda m: None)
    assert [r["count"] for r in rows] == [c["count"] for c in bench.QUICK]
    for r in rows:
        for config in bench.CONFIGS:
            assert r["runs"][config][0]["frames"] == r["frames"]
            assert r["median"][config]["peak_mib"] > 50
        o = r["objects"]
        assert 0 < o["visible"] <= o["drawn"]
        assert o["record_bytes_visible"] == o["visible"] * od.RECORD_BYTES
        assert o["pixels"]["unidentified"] == 0
        t = o["timings"]  # the parts of the after-render time are within it
        parts = sum(t[k] for k in ("read_raw", "pixel_ids", "surface", "write_ids", "records"))
        assert 0 < parts <= t["resolve"] and t["collect"] > 0
        assert o["npz_bytes_per_frame"] > 0 and o["disk_bytes_per_frame"] > o["npz_bytes_per_frame"]
    assert rows[1]["objects"]["visible"] > rows[0]["objects"]["visible"]
    assert len(bench.table(rows).splitlines()) == 2 + len(rows)


WALKED = r"""
import json, sys
sys.path.insert(0, ARGS["tests"])
import bpy
import instance_scenes as I
path = I.build_scatter_repeats(ARGS["dir"] + "/repeats.blend", 300, {1: 97, 3: 40})
bpy.ops.wm.open_mainfile(filepath=str(path))
out = {}
for f in (1, 2, 3):
    bpy.context.scene.frame_set(f)
    dg = bpy.context.evaluated_depsgraph_get()
    out[f] = [[inst.persistent_id[1], [list(r) for r in inst.matrix_world]]
              for inst in dg.object_instances
              if inst.is_instance and inst.parent.original.name_full == "Ground"]
print("WALKED" + json.dumps(out))
"""


@pytest.mark.render
def test_rendered_records_of_repeated_ids_are_the_walked_instances(tmp_path):
    """Rendered with flows and object records of every instance, the scatter whose ``id``
    repeats (mod 97, then mod 40 from frame 3) records at each frame exactly the instances
    ``object_instances`` lists: the id of ``["Ground", ["Ground"], [0, persistent id]]`` of
    every walked entry, at its matrix, and the ground."""
    import dataset_forge
    from conftest import run_bpy
    from dataset_forge.dataset.documents.objects_files import ObjectsSource

    args = {"tests": str(REPO / "tests"), "dir": str(tmp_path)}
    out = run_bpy(WALKED.replace("ARGS", repr(args)), timeout=600)
    walked = json.loads(out.split("WALKED", 1)[1].strip().splitlines()[0])
    seq = tmp_path / "seq"
    s = dataset_forge.render_animation(
        tmp_path / "repeats.blend", seq, frame_start=1, frame_end=3, width=64, height=48,
        max_samples=1, adaptive_threshold=0.0, use_denoising=False, timeout=240.0, retries=0,
        debug=False, depths=True, flows=True, segmentations=True, object_records="all")
    assert s["ok"], json.dumps(s["scenes"], indent=1)[:3000]
    src = ObjectsSource(seq, seq / "objects.json")
    ground = od.instance_id(od.instance_key("Ground", [], []))
    for f in (1, 2, 3):
        rec = src.record(f)
        want = {od.instance_id(od.instance_key("Ground", ["Ground"], [0, p])): m
                for p, m in walked[str(f)]}
        assert len(want) == len(walked[str(f)]) >= 250
        assert sorted(rec.instance_id.tolist()) == sorted([*want, ground])
        for j, i in enumerate(rec.instance_id.tolist()):
            if i != ground:
                assert np.abs(rec.object_to_world[j] - np.array(want[i])).max() < 1e-5
