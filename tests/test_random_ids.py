# SPDX-License-Identifier: GPL-3.0-or-later
"""The Random AOV rule: Blender's and Cycles' random ids predicted in numpy (literals measured
from a Cycles render with bpy 5.0.1), and the pixel resolver naming the instance whose value a
pixel carries (bpy-free)."""

from __future__ import annotations

import numpy as np
from dataset_forge.dataset import pixel_ids as pix
from dataset_forge.dataset import random_ids as rids

# Measured (bpy 5.0.1, tests/instance_scenes.py build_scatter(2000) plus an object "Cubé.001",
# a 1-sample render with a VALUE AOV fed by Object Info > Random in every material; the cones
# given a material): (persistent id[1], DepsgraphObjectInstance.random_id, float32 bits of
# the AOV on that cone's pixels) of geometry-nodes instances of "Ground" (persistent id [0, i]).
INSTANCES = [(1874869773, 22688902, 1001200195), (-1378865140, 29293684, 1004502586),
             (-2059160606, 50551248, 1010882164), (-430076343, 55535406, 1012128204)]
# Plain objects (depsgraph random_id 0): the float32 bits of the AOV on all their pixels.
PLAIN = {"Ground": 1065144189, "Cubé.001": 1062920052}


def test_instance_random_ids_are_blenders():
    pid = np.array([[0, p] for p, _, _ in INSTANCES])
    got = rids.instance_random_ids("Ground", pid)
    assert got.dtype == np.uint32 and got.tolist() == [r for _, r, _ in INSTANCES]
    bits = rids.random_value(got).view(np.uint32)
    assert bits.tolist() == [b for _, _, b in INSTANCES]


def test_blender_4_hashes_every_persistent_id_entry():
    """bpy 4.5.15 and 4.2.23 (gt_instances, geometry-nodes cubes of "Turntable", persistent
    ids [0, i, INT_MAX x 6]): all 8 entries are hashed; 5.0.1 stops at the first INT_MAX."""
    pid = np.array([[0, 1], [0, 2], [0, 3]])
    assert rids.instance_random_ids("Turntable", pid, 8).tolist() == [1756268010, 782509823,
                                                                      864199078]
    assert rids.instance_random_ids("Turntable", pid).tolist() == [2281133764, 2876181297,
                                                                   3340583135]


def test_plain_objects_carry_cycles_name_hash():
    for name, bits in PLAIN.items():
        v = rids.random_value(rids.plain_random_id(name))
        assert v.dtype == np.float32 and int(v.view(np.uint32)) == bits, name


def test_hash_int_2d_wraps_and_broadcasts():
    a = rids.hash_int_2d(np.array([1, 2], np.uint32), -1)
    b = rids.hash_int_2d(np.array([1, 2]), 0xFFFFFFFF)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 2
    assert rids.random_value(0xFFFFFFFF) == np.float32(1.0)  # rounds up: float32 of 2^32 - 1


# Three unit cubes 10 m in front of a camera at the origin looking down -z, 40 x 10 pixels.
W, H, F = 40, 10, 100.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
POSE = np.eye(4)
POSE[2, 3] = 10.5
X = (np.arange(W) + 0.5 - W / 2) / F * 10.0  # world x of each column at the cube fronts
LEFT, RIGHT = np.abs(X + 1) < 0.5, np.abs(X - 1) < 0.5


def _cands(rows):
    """``rows``: (instance id, x, rand) of cubes of one object, pass value 5."""
    n = len(rows)
    m = np.repeat(np.eye(4)[None], n, 0)
    m[:, 0, 3] = [x for _, x, _ in rows]
    return pix.Candidates(np.array([i for i, _, _ in rows], np.uint32), np.ones(n, np.int32),
                          np.full(n, 5), m, np.full((n, 3), -0.5), np.full((n, 3), 0.5),
                          rand=np.array([r for _, _, r in rows], np.float32))


def _images(left_value, right_value):
    index = np.zeros((H, W), np.float32)
    index[:, LEFT | RIGHT] = 5
    depth = np.where(index > 0, 10.0, 1e10).astype(np.float32)
    aov = np.zeros((H, W), np.float32)
    aov[:, LEFT], aov[:, RIGHT] = left_value, right_value
    return index, depth, aov


def test_aov_names_the_instance_geometry_cannot_tell():
    """Two coincident cubes (11 and 22) at x = -1: the box rule gives the lowest id to both;
    the AOV gives each pixel the one Cycles hit."""
    c = _cands([(11, -1.0, 0.25), (22, -1.0, 0.5), (33, 1.0, 0.75)])
    index, depth, aov = _images(0.5, 0.75)
    aov[:3, LEFT] = 0.25
    _, ins, stats = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
    assert (ins[:3, LEFT] == 11).all() and (ins[3:, LEFT] == 22).all() and (ins[:, RIGHT] == 33).all()
    assert stats["by_aov"] == int((index == 5).sum())
    assert stats["by_box"] == stats["by_surface"] == stats["aov_mismatch"] == 0
    _, old, _ = pix.resolve_pixel_arrays(index, depth, K, POSE, c)  # without the AOV
    assert (old[:, LEFT] == 11).all()


def test_coinciding_values_keep_the_box_rule_among_only_those():
    """11 (x = -1) and 22 (x = +1) carry one float32 value; 7, coincident with 11, another:
    each pixel goes to the nearer box among 11 and 22, never to 7."""
    c = _cands([(11, -1.0, 0.5), (22, 1.0, 0.5), (7, -1.0, 0.125)])
    index, depth, aov = _images(0.5, 0.5)
    _, ins, stats = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
    assert (ins[:, LEFT] == 11).all() and (ins[:, RIGHT] == 22).all()
    assert stats["aov_shared"] == stats["by_box"] == int((index == 5).sum())
    assert stats["by_aov"] == stats["aov_mismatch"] == 0


def test_unknown_values_stay_candidates_and_zero_means_no_aov():
    """A cube of unknown value (NaN, at x = -1) competes with the ones carrying each pixel's
    value: with 22 (0.5, coincident: the lowest id) and with 33 (drawn without the AOV: 0;
    nearer), never with 44 (0.75)."""
    c = _cands([(11, -1.0, np.nan), (22, -1.0, 0.5), (33, 1.0, 0.0), (44, 1.0, 0.75)])
    index, depth, aov = _images(0.5, 0.0)
    _, ins, stats = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
    assert (ins[:, LEFT] == 11).all()  # 11 and 22 coincide: the box rule, lowest id
    assert (ins[:, RIGHT] == 33).all()
    assert stats["aov_shared"] == int((index == 5).sum()) and stats["by_aov"] == 0


def test_values_naming_no_nearby_instance_fall_back_and_are_counted():
    """A value nobody carries, and one whose instance's box is 2 m away, fall back to the box
    rule among every candidate and count as mismatches."""
    c = _cands([(11, -1.0, 0.25), (22, 1.0, 0.5)])
    index, depth, aov = _images(0.5, 0.3)  # left pixels name 22 (at +1); 0.3: nobody
    _, ins, stats = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
    assert (ins[:, LEFT] == 11).all() and (ins[:, RIGHT] == 22).all()
    assert stats["aov_mismatch"] == stats["by_box"] == int((index == 5).sum())
    assert stats["by_aov"] == 0


def test_many_unknown_values_take_the_rule_among_all():
    """Over AOV_SHARED_MAX candidates of unknown value behind one AOV value: the pixel takes the
    box rule among every candidate of its pass value (counted), which finds the one at x = +1."""
    far = [(100 + i, 30.0 + i, np.nan) for i in range(pix.AOV_SHARED_MAX)]
    c = _cands([(11, -1.0, 0.25), (22, 1.0, np.nan)] + far)
    index, depth, aov = _images(0.25, 0.5)
    _, ins, stats = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
    assert (ins[:, LEFT] == 11).all() and (ins[:, RIGHT] == 22).all()
    assert stats["aov_unknown"] == int((index == 5).sum()) == stats["by_box"]


def test_prepared_candidates_are_reused_only_while_equal():
    """The last frame's prepared candidates serve the next frame when every array is equal
    (NaN values too), and give the same ids as fresh ones; a moved instance prepares anew."""
    rows = [(11, -1.0, np.nan), (22, -1.0, 0.5), (33, 1.0, 0.0), (44, 1.0, 0.75)]
    index, depth, aov = _images(0.5, 0.0)
    first = pix.prepare(_cands(rows))
    again = pix.prepare(_cands(rows), first)  # new arrays, equal values
    assert again is first
    fresh = pix.resolve_pixel_arrays(index, depth, K, POSE, _cands(rows), aov=aov)
    for c in (first, again):
        got = pix.resolve_pixel_arrays(index, depth, K, POSE, c, aov=aov)
        assert np.array_equal(got[0], fresh[0]) and np.array_equal(got[1], fresh[1])
        assert got[2] == fresh[2]
    moved = _cands(rows)
    moved.matrix[2, 0, 3] = 30.0  # the right pixels' value is 33's (now far) or 11's (unknown)
    later = pix.prepare(moved, again)
    assert later is not again
    _, ins, _ = pix.resolve_pixel_arrays(index, depth, K, POSE, later, aov=aov)
    _, want, _ = pix.resolve_pixel_arrays(index, depth, K, POSE, moved, aov=aov)
    assert np.array_equal(ins, want) and (ins[:, RIGHT] == 11).all()
    assert pix.prepare(_cands(rows)._replace(rand=None), first) is not first
