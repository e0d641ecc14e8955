# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure functions of dataset/objects.py: instance ids, boxes, the pixel resolver, the id file."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_forge.dataset import objects as od
from dataset_forge.dataset import pixel_ids as pix
from dataset_forge.dataset.verify import WriteError


def test_instance_id_is_a_fixed_hash_of_the_key():
    key = od.instance_key("Rock", ["PileA", "Inner"], [0, 0])
    assert key == '["Rock",["PileA","Inner"],[0,0]]'
    # the value is part of the on-disk contract: it must never change between versions
    assert od.instance_id(key) == od.instance_id(key) == 2017138932
    ids = {od.instance_id(od.instance_key("Pebble", ["Emitter"], [i, 0])) for i in range(1000)}
    assert len(ids) == 1000 and all(0 < i <= od.MAX_INSTANCE_ID for i in ids)


def test_bulk_instance_ids_equal_the_ids_of_each_key():
    pid = np.array([0, 7, -3, 2**31 - 2, 123456789], np.int64)
    for name, chain in (("Ground", ["Ground"]), ("Sol \u00e9t\u00e9", ["Sol \u00e9t\u00e9", "Col"])):
        want = [od.instance_id(od.instance_key(name, chain, [0, p])) for p in pid.tolist()]
        got = od.bulk_instance_ids(name, chain, pid)
        assert got.dtype == np.uint32 and got.tolist() == want
    assert od.bulk_instance_ids("G", ["G"], np.zeros(0, np.int64)).shape == (0,)


def test_trim_pid_drops_the_unused_tail():
    assert od.trim_pid([3, 0, 2**31 - 1, 2**31 - 1]) == [3, 0]
    assert od.trim_pid([0, 2**31 - 1]) == [0]
    assert od.trim_pid([]) == []


def test_world_to_cv_inverts_the_pose():
    """A camera 5 m up +z looking down -z (Blender): the world origin is 5 m in front (OpenCV
    +z); an orthonormal pose is inverted by its transpose, a scaled one (not a camera pose of
    ours) by LAPACK: both invert pose @ CV_FROM_GL."""
    pose = np.eye(4)
    pose[2, 3] = 5.0
    w2c = od.world_to_cv(pose)
    assert np.array_equal(w2c @ [0, 0, 0, 1], [0, 0, 5, 1])
    assert np.array_equal(w2c @ [1, 2, 0, 1], [1, -2, 5, 1])
    rng = np.random.default_rng(3)
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    for s in (1.0, 1.7):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = q * s, rng.normal(size=3) * 10
        assert np.allclose(od.world_to_cv(m) @ m @ od.CV_FROM_GL, np.eye(4), atol=1e-12)
        assert np.allclose(od.world_to_cv(m), np.linalg.inv(m @ od.CV_FROM_GL), rtol=0, atol=1e-13)


def test_box_corners_order():
    c = od.box_corners([0, 0, 0], [1, 2, 3])
    assert c.shape == (8, 3)
    for i, p in enumerate(c):
        assert list(p) == [1 if i & 1 else 0, 2 if i & 2 else 0, 3 if i & 4 else 0]


def test_amodal_box_projects_clips_and_handles_the_near_plane():
    K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    pts = np.array([[-0.1, -0.1, 2.0], [0.1, 0.05, 2.0]])
    assert od.amodal_box(pts, None, K, 64, 48, 0.1) == pytest.approx([27.0, 19.0, 10.0, 7.5])
    big = np.array([[-5.0, 0, 2.0], [5.0, 0.1, 2.0]])
    assert od.amodal_box(big, None, K, 64, 48, 0.1) == pytest.approx([0.0, 24.0, 64.0, 5.0])
    # an edge from in front of the camera to behind it: its near-plane crossing counts
    # (crossing at (0.475, 0.2375, 0.1) projects to (507, 261.5): clipped to the corner)
    edge = np.array([[0.0, 0.0, 2.0], [1.0, 0.5, -2.0]])
    assert od.amodal_box(edge, np.array([[0, 1]]), K, 64, 48, 0.1) == pytest.approx(
        [32.0, 24.0, 32.0, 24.0])
    assert od.amodal_box(np.array([[0.0, 0, -1.0]]), None, K, 64, 48, 0.1) == [0.0] * 4


def test_visible_boxes():
    img = np.zeros((5, 6), np.uint32)
    img[1:3, 2:5] = 7
    img[4, 0] = 3_000_000_000
    out = od.visible_boxes(img)
    assert out == {7: ([2, 1, 3, 2], 6), 3_000_000_000: ([0, 4, 1, 1], 1)}


def test_visible_box_arrays_by_known_ids_match_the_sort():
    """Known geometry: a 3x4 block of id 7 at (x 2, y 1), one pixel of 3e9 at (0, 4); given the
    ids the image can hold (also ones without pixels), the boxes and counts are the sorted
    path's; an id missing from ``ids`` makes it fall back, never drop the pixel."""
    img = np.zeros((6, 8), np.uint32)
    img[1:4, 2:6] = 7
    img[4, 0] = 3_000_000_000
    want = od.visible_box_arrays(img)
    assert want[0].tolist() == [7, 3_000_000_000] and want[2].tolist() == [12, 1]
    assert want[1].tolist() == [[2, 1, 4, 3], [0, 4, 1, 1]]
    for ids in ([3_000_000_000, 7, 9], [7, 3_000_000_000], [7]):
        got = od.visible_box_arrays(img, np.array(ids, np.uint32))
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, want))
    none = od.visible_box_arrays(np.zeros((2, 2), np.uint32), np.array([4], np.uint32))
    assert [len(a) for a in none] == [0, 0, 0] and none[1].shape == (0, 4)


def test_resolve_by_table_matches_the_general_rule():
    """Every pass value one candidate's: the table path gives the ids of the general path (the
    same candidates plus one more of a value no pixel shows, which sends them through it):
    background (depth 1e10), a value with no candidate (9), NaN and negative index values."""
    K = np.array([[10.0, 0, 3], [0, 10.0, 2], [0, 0, 1]])
    index = np.array([[1, 1, 2, 2, 9, 0], [2, 2, 1, 1, 1, 0], [np.nan, -3, 2, 1, 0, 2],
                      [1, 2, 1, 2, 1, 65535]], np.float32)
    depth = np.full(index.shape, 5.0, np.float32)
    depth[:, 5] = 1e10
    cands = [_cand(1000, 4, 1, 0.0), _cand(2000, 5, 2, 0.0), _cand(3000, 6, 0, 0.0)]
    obj, ins, stats = pix.resolve_pixels(index, depth, K, np.eye(4), cands)
    assert (ins[index == 1] == 1000).all() and (obj[index == 1] == 4).all()
    hit = depth < 1e9
    assert (ins[(index == 2) & hit] == 2000).all() and (obj[(index == 2) & hit] == 5).all()
    assert ins[2, 4] == 3000 and obj[2, 4] == 6  # pass value 0 is a key like any other
    assert not ins[:, 5].any() and not obj[:, 5].any()
    assert ins[0, 4] == ins[2, 0] == ins[2, 1] == 0
    assert stats["unique"] == 17 and stats["unidentified"] == 3
    general = pix.resolve_pixels(index, depth, K, np.eye(4), cands + [_cand(4000, 7, 8, 0.0),
                                                                     _cand(4001, 7, 8, 9.0)])
    assert np.array_equal(general[0], obj) and np.array_equal(general[1], ins)
    assert general[2] == stats and general[0].dtype == obj.dtype and general[1].dtype == ins.dtype


def _cand(iid, oid, pv, x):
    m = np.eye(4)
    m[0, 3] = x
    return pix.Candidate(instance_id=iid, object_id=oid, pass_value=pv, matrix=m,
                        lo=np.array([-0.5, -0.5, -0.5]), hi=np.array([0.5, 0.5, 0.5]))


def test_resolve_pixels_picks_the_instance_under_each_pixel():
    """Two unit cubes of one object (pass value 5) at x = -1 and x = +1, 10 m in front of a
    camera at the origin looking down -z; one single-instance object (pass value 6)."""
    w, h, f = 40, 10, 100.0
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    pose = np.eye(4)
    pose[2, 3] = 10.5  # camera 10 m from the cube fronts at z = 0.5
    u = np.arange(w) + 0.5
    x_world = (u - w / 2) / f * 10.0
    index = np.zeros((h, w), np.float32)
    index[:, np.abs(x_world + 1) < 0.5] = 5
    index[:, np.abs(x_world - 1) < 0.5] = 5
    index[:, np.abs(x_world) < 0.2] = 6
    depth = np.where(index > 0, 10.0, 1e10).astype(np.float32)
    cands = [_cand(11, 1, 5, -1.0), _cand(22, 1, 5, 1.0), _cand(33, 2, 6, 0.0)]
    obj, ins, stats = pix.resolve_pixels(index, depth, K, pose, cands)
    assert (ins[:, np.abs(x_world + 1) < 0.5] == 11).all()
    assert (ins[:, np.abs(x_world - 1) < 0.5] == 22).all()
    assert (ins[:, np.abs(x_world) < 0.2] == 33).all() and (obj[index == 6] == 2).all()
    assert (ins[index == 0] == 0).all() and (obj[index == 5] == 1).all()
    assert stats["by_box"] == int((index == 5).sum()) and stats["unidentified"] == 0


def test_resolve_pixels_leaves_unknown_values_unidentified():
    index = np.full((2, 2), 9.0, np.float32)
    depth = np.full((2, 2), 5.0, np.float32)
    K = np.array([[10.0, 0, 1], [0, 10.0, 1], [0, 0, 1]])
    obj, ins, stats = pix.resolve_pixels(index, depth, K, np.eye(4), [])
    assert not obj.any() and not ins.any() and stats["unidentified"] == 4


def test_ids_file_round_trip_is_exact(tmp_path):
    obj = np.array([[0, 1], [32767, 2]], np.int32)
    ins = np.array([[0, 2**31 - 1], [16_777_217, 5]], np.uint32)  # beyond float32's exact range
    od.write_ids(tmp_path / "s.exr", obj, ins, "NONE")
    o2, i2 = od.read_ids(tmp_path / "s.exr")
    assert np.array_equal(o2, obj) and np.array_equal(i2, ins) and i2.dtype == np.uint32
    from dataset_forge.dataset import exr

    stored = exr.read_stored(tmp_path / "s.exr")
    assert stored["V"].dtype == np.float32 and stored["instance"].dtype == np.uint32
    assert np.array_equal(stored["instance"], ins)


@pytest.mark.parametrize("keys", [[0, 3, 7], [2, 40000, 65535], [5, 70000]])
def test_value_rank_table_equals_binary_search(keys):
    """The index-value lookup (a table for 16-bit keys) against a binary search, with values
    below, between and above the keys."""
    keys = np.array(keys, np.int64)
    vals = np.array([-3, -1, 0, 1, 2, 3, 5, 7, 8, 39999, 40000, 65535, 65536, 70000, 10**6])
    pos, found = pix._value_rank(keys, vals)
    assert found.tolist() == [bool(v in keys) for v in vals.tolist()]
    assert (keys[pos[found]] == vals[found]).all()


def test_the_ids_writer_writes_in_the_background_and_names_a_failed_file(tmp_path):
    obj = np.arange(12, dtype=np.int32).reshape(3, 4)
    ins = (obj.astype(np.uint32) * 1000 + 2**31 - 7).astype(np.uint32)
    od.write_ids(tmp_path / "direct.exr", obj, ins, "ZIP")
    raw = tmp_path / "raw.exr"
    raw.write_bytes(b"x")
    timings = {}
    w = od.IdsWriter("ZIP", timings)
    w.submit(5, tmp_path / "later.exr", obj, ins, raw)
    w.wait(5)
    w.wait(6)  # nothing submitted: nothing to wait for
    assert (tmp_path / "later.exr").read_bytes() == (tmp_path / "direct.exr").read_bytes()
    assert not raw.exists() and timings["write_ids_thread"] > 0 and "write_ids_wait" in timings
    got = od.read_ids(tmp_path / "later.exr")
    assert np.array_equal(got[0], obj) and np.array_equal(got[1], ins)
    (tmp_path / "afile").write_bytes(b"")
    bad = tmp_path / "afile" / "ids.exr"  # its folder is a file
    w.submit(7, bad, obj, ins)
    with pytest.raises(WriteError, match="afile"):  # one line, naming the file
        w.wait(7)
    w.close()


def test_plain_exr_reader_reads_exactly_what_openexr_reads(tmp_path):
    """The raw pass file's reader (dataset.exr_plain): an uncompressed float EXR (R, G, B, A as
    Blender writes the raw file) is read from its bytes with the values OpenEXR gives; a
    compressed one, one with a half channel, a truncated one and one with a missing channel
    take exr.read_channels (the same values, or its error naming the file)."""
    from dataset_forge.dataset import exr, exr_plain

    rng = np.random.default_rng(3)
    ch = {k: rng.normal(size=(37, 53)).astype(np.float32) for k in "RGBA"}
    ch["G"][3, 4] = np.inf
    names = ["R", "G", "B"]
    plain = tmp_path / "raw.exr"
    exr.write_channels(plain, ch, compression="NONE")
    assert exr_plain._plain(plain.read_bytes(), names) is not None  # the fast path is taken
    got = exr_plain.read_channels(plain, names)
    for k in names:
        assert got[k].dtype == np.float32 and got[k].shape == (37, 53)
        assert np.array_equal(got[k], ch[k]) and np.array_equal(got[k], exr.read_channels(plain, [k])[k])
    zipped = tmp_path / "zip.exr"
    exr.write_channels(zipped, ch, compression="ZIP")
    assert exr_plain._plain(zipped.read_bytes(), names) is None
    assert all(np.array_equal(v, ch[k]) for k, v in exr_plain.read_channels(zipped, names).items())
    import OpenEXR

    half = tmp_path / "half.exr"
    with OpenEXR.File({"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"R": ch["R"].astype(np.float16), "G": ch["G"], "B": ch["B"]}) as f:
        f.write(str(half))
    assert exr_plain._plain(half.read_bytes(), names) is None
    assert np.array_equal(exr_plain.read_channels(half, names)["R"],
                          ch["R"].astype(np.float16).astype(np.float32))
    cut = tmp_path / "cut.exr"
    cut.write_bytes(plain.read_bytes()[:-100])
    assert exr_plain._plain(cut.read_bytes(), names) is None
    with pytest.raises(exr.ExrError, match="cut.exr"):
        exr_plain.read_channels(cut, names)
    with pytest.raises(exr.ExrError, match="missing channel"):
        exr_plain.read_channels(plain, ["R", "Z"])
    with pytest.raises(exr.ExrError, match="not found"):
        exr_plain.read_channels(tmp_path / "none.exr", names)
