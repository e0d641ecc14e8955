# SPDX-License-Identifier: GPL-3.0-or-later
"""The object metadata on disk (schema ``dataset_forge.objects/2``: the instance table in
``objects.json``, one ``.npz`` record per frame): records round-trip through numpy alone, the
loader, validate and the exports; the ``object_records`` modes nest and agree on the visible
instances; a 0.1.x ``objects.json`` (schema 1) still loads. Analytic scenes of
tests/validate_scenes.py (ray-cast boxes) with known poses, boxes and pixels."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import validate_scenes as vs
from dataset_forge.dataset import layout, verify
from dataset_forge.dataset import objects as od
from dataset_forge.dataset.documents.base import DocumentError
from dataset_forge.dataset.documents.objects import (
    ARRAYS,
    SCHEMA,
    FrameRecord,
    ObjectsDoc,
)
from dataset_forge.dataset.documents.objects_files import SequenceWriter, upgrade_v1
from dataset_forge.dataset.loader import DatasetError, load
from dataset_forge.dataset.validate import validate
from dataset_forge.settings import RECORD_MODES, Settings

FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def _scene() -> vs.Scene:
    """The fault matrix's ``instances`` scene (ground + 6 scattered rocks, moving camera) plus a
    box in front of the camera but outside the image ("Aside": not in the frustum) and one under
    the ground ("Buried": in the frustum, never visible)."""
    base = vs.scenes()["instances"]
    aside = vs.Box("Aside", 3, 300, (0.2, 0.2, 0.2), lambda k: vs.trans(-9.0, 1.0, 0.3))
    buried = vs.Box("Buried", 4, 400, (0.3, 0.3, 0.2), lambda k: vs.trans(-0.7, 0.0, -0.6))
    return dataclasses.replace(base, boxes=[*base.boxes, aside, buried])


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """The scene as a 0.1.x sequence (``v1``) and upgraded copies in each records mode."""
    root = tmp_path_factory.mktemp("objfmt")
    v1 = vs.write_scene(_scene(), root / "v1", objects_schema=1)
    out = {"v1": v1}
    doc = json.loads((v1 / layout.OBJECTS_FILE).read_text())
    for mode in RECORD_MODES:
        d = Path(shutil.copytree(v1, root / mode))
        (d / layout.OBJECTS_FILE).unlink()
        upgrade_v1(d, doc, mode)
        out[mode] = d
    return out


def _record(n: int = 3, frame: int = 7) -> FrameRecord:
    rng = np.random.default_rng(frame)
    m = np.tile(np.eye(4), (n, 1, 1))
    m[:, :3, 3] = rng.uniform(-2, 2, (n, 3))
    m[:, :3, :3] *= rng.uniform(0.5, 2.0, (n, 1, 1))
    return FrameRecord.make(
        frame, "Cam", instance_id=np.array([50, 9, 2**31 - 1][:n]), object_to_world=m,
        box_lo=-rng.uniform(0.1, 1, (n, 3)), box_hi=rng.uniform(0.1, 1, (n, 3)),
        bbox_obj=np.array([[1.5, 2.0, 10.0, 4.25], [0, 0, 0, 0], [3, 3, 2, 2]], float)[:n],
        bbox_visib=np.array([[1, 2, 10, 4], [0, 0, 0, 0], [0, 0, 0, 0]])[:n],
        px_count_visib=np.array([12, 0, 0])[:n])


# --- the record file ----------------------------------------------------------------------------

def test_record_round_trips_and_reads_with_numpy_alone(tmp_path):
    rec = _record()
    p = tmp_path / layout.objects_file(7)
    rec.write(p)
    assert p.name == "objects_000007.npz" and verify.check_file(p) == p.stat().st_size
    back = FrameRecord.read(p)
    assert back.frame == 7 and back.camera == "Cam"
    assert back.instance_id.tolist() == [9, 50, 2**31 - 1]  # sorted by instance id
    with np.load(p) as z:  # numpy alone, no pickles
        assert str(z["schema"]) == SCHEMA and int(z["frame"]) == 7 and str(z["camera"]) == "Cam"
        for name, (dtype, shape) in ARRAYS.items():
            assert z[name].dtype == dtype and z[name].shape == (3, *shape), name
            np.testing.assert_array_equal(z[name], getattr(back, name))
    # derived on read: the world corners and the OpenCV object-to-camera of the frame's pose
    for j in range(3):
        want = od.transform(back.object_to_world[j], od.box_corners(back.box_lo[j], back.box_hi[j]))
        np.testing.assert_allclose(back.bbox_3d()[j], want, atol=1e-12)
    pose = vs.look_at((3.0, -4.0, 2.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(back.object_to_camera(pose),
                               np.linalg.inv(pose @ FLIP) @ back.object_to_world, atol=1e-12)


def test_truncated_record_fails_its_write_check(tmp_path):
    p = tmp_path / "objects_000001.npz"
    _record().write(p)
    data = p.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 40):
        p.write_bytes(data[:cut])
        with pytest.raises(verify.WriteError, match="objects_000001.npz.*truncated"):
            verify.check_written([p])
        assert not p.exists()  # a worthless file is removed
    p.write_bytes(b"not a zip at all, just text")
    with pytest.raises(DocumentError, match="objects_000001.npz: cannot be read"):
        FrameRecord.read(p)


def test_a_journaled_record_counts_like_an_image(tmp_path):
    """A frame whose record is journaled is done while the record keeps its size; a frame
    journaled without one (an older version's line) or with a damaged one is not."""
    from dataset_forge.dataset.journal import Journal

    rel = layout.objects_file(3)
    _record(frame=3).write(tmp_path / rel)
    j = Journal(tmp_path)
    j.mark_done(3, [rel])
    j.mark_done(4, [])  # journaled before frames had records
    j = Journal(tmp_path)  # as a resumed run reads it
    assert j.is_done(3, [rel]) and not j.is_done(4, [layout.objects_file(4)])
    with open(tmp_path / rel, "ab") as fh:
        fh.write(b"\0")
    assert not Journal(tmp_path).is_done(3, [rel])
    (tmp_path / "objects" / "objects_000005.npz").write_bytes(b"PK")
    with pytest.raises(verify.WriteError, match="objects_000005.npz"):
        Journal(tmp_path).mark_done(5, [layout.objects_file(5)])


def test_a_reset_removes_the_records_and_keeps_user_files(tmp_path):
    """A sequence re-rendered from scratch (``on_change rerender``) loses its old records."""
    from dataset_forge.dataset.provenance import reset_sequence

    for f in (1, 2):
        _record(frame=f).write(tmp_path / layout.objects_file(f))
    (tmp_path / "objects" / "notes.txt").write_text("mine")
    (tmp_path / layout.OBJECTS_FILE).write_text("{}")
    reset_sequence(tmp_path)
    assert sorted(p.name for p in (tmp_path / "objects").iterdir()) == ["notes.txt"]
    assert not (tmp_path / layout.OBJECTS_FILE).exists()


def test_record_refuses_wrong_arrays_naming_them():
    good = {k: getattr(_record(), k) for k in ARRAYS}
    with pytest.raises(DocumentError, match=r"r\.box_hi: shape \(3, 4\)"):
        FrameRecord.make(1, "C", "r", **{**good, "box_hi": np.zeros((3, 4))})
    with pytest.raises(DocumentError, match="r.instance_id: an instance id is listed twice"):
        FrameRecord.make(1, "C", "r", **{**good, "instance_id": np.array([4, 4, 5])})
    with pytest.raises(DocumentError, match="r.object_to_world: expected finite"):
        bad = good["object_to_world"].copy()
        bad[0, 0, 0] = np.nan
        FrameRecord.make(1, "C", "r", **{**good, "object_to_world": bad})
    with pytest.raises(DocumentError, match="r.instance_id: expected integers that fit uint32"):
        FrameRecord.make(1, "C", "r", **{**good, "instance_id": np.array([-1, 2, 3])})


def test_modes_nest_and_agree_on_the_visible_rows():
    rec = _record()
    vis, fru, al = (rec.select(m) for m in RECORD_MODES)
    assert vis.instance_id.tolist() == [50]            # 12 pixels
    assert fru.instance_id.tolist() == [50, 2**31 - 1]  # + a non-empty amodal box
    assert al is rec and len(al) == 3
    for sub in (vis, fru):
        rows = np.searchsorted(rec.instance_id, sub.instance_id)
        for k in ARRAYS:
            np.testing.assert_array_equal(getattr(sub, k), getattr(rec, k)[rows])


def test_writer_lists_what_frames_list_and_reads_back_kept_frames(tmp_path):
    a = _record(frame=1)
    b = dataclasses.replace(_record(frame=2), frame=2)
    SequenceWriter(tmp_path, "frustum").frame(a)  # an earlier run wrote frame 1
    w = SequenceWriter(tmp_path, "frustum")
    w.kept(1)
    assert w.frame(b) == "objects/objects_000002.npz"
    rows = {i: {"instance_id": i, "object_id": 1, "object": f"o{i}", "instancer_chain": ["S"],
                "persistent_id": [i % 7], "category": "c", "deforming": False}
            for i in (9, 50, 2**31 - 1, 77)}
    doc, ids_map = w.finish(rows)
    assert doc.frames == [1, 2] and doc.records == "frustum"
    assert [r.instance_id for r in doc.instances] == [50, 2**31 - 1]  # 9 and 77 never listed
    assert list(ids_map) == ["50"] and ids_map["50"].to_dict() == {
        "object": "o50", "object_id": 1, "instancer_chain": ["S"], "persistent_id": [1], "class": "c"}
    text = (tmp_path / "objects.json").read_text()
    assert len(text.splitlines()) == 4  # header line, one line per row, closing line
    again = ObjectsDoc.from_dict(json.loads(text), "objects.json")
    assert again == doc and again.frame_file(-5) == "objects/objects_-000005.npz"


def test_records_written_on_the_ids_writers_thread_are_the_same_file(tmp_path):
    """With the tracker's writer, a frame's record is written on its thread: after ``wait``
    it holds the members of the record written at once (the npz's zip entries carry the write
    time), the frame is listed at once, and a failed write is raised by ``wait`` naming the
    file."""
    a = _record(frame=1)
    SequenceWriter(tmp_path / "direct", "frustum").frame(a)
    timings: dict[str, float] = {}
    ids = od.IdsWriter("ZIP", timings)
    w = SequenceWriter(tmp_path / "thread", "frustum", ids)
    assert w.frame(a) == "objects/objects_000001.npz" and w.frames == {1}
    ids.wait(1)
    rel = "objects/objects_000001.npz"
    with zipfile.ZipFile(tmp_path / "direct" / rel) as x, \
            zipfile.ZipFile(tmp_path / "thread" / rel) as y:
        assert x.namelist() == y.namelist() and all(x.read(n) == y.read(n) for n in x.namelist())
    assert timings["write_records_thread"] > 0
    (tmp_path / "afile").write_bytes(b"")
    SequenceWriter(tmp_path / "afile", "frustum", ids).frame(a)  # its folder is a file
    with pytest.raises(verify.WriteError, match="afile"):
        ids.wait(1)
    ids.close()


# --- a sequence through the loader, validate and the exports -------------------------------------

def _visible(scene: vs.Scene, k: int) -> dict[int, int]:
    """{instance id: visible pixels} of frame ``k``, from the ray-cast instance image."""
    _, _, _, inst, _, _ = vs._cast(scene, k)
    v, n = np.unique(inst[inst > 0].astype(np.int64), return_counts=True)
    return dict(zip(v.tolist(), n.tolist()))


def test_each_mode_loads_with_the_known_poses_and_boxes(written):
    scene = _scene()
    boxes = {b.instance_id: b for b in scene.boxes}
    seqs = {m: load(written[m]) for m in ("v1", *RECORD_MODES)}
    assert seqs["v1"].objects.schema == "dataset_forge.objects/1"
    assert {m: s.objects.records for m, s in seqs.items()} == {
        "v1": "all", "visible": "visible", "frustum": "frustum", "all": "all"}
    for i in range(len(seqs["all"])):
        k = i + 1
        vis = _visible(scene, k)
        C = scene.camera(k)[1]
        listed = {m: s[i].objects for m, s in seqs.items()}
        assert set(listed["visible"].instance_ids.tolist()) == set(vis)
        assert set(listed["frustum"].instance_ids.tolist()) == set(vis) | {400}
        assert set(listed["all"].instance_ids.tolist()) == set(boxes)
        for m, fo in listed.items():
            assert fo.frame == k and fo.camera == "Camera"
            for j, iid in enumerate(fo.instance_ids.tolist()):
                b = boxes[iid]
                assert fo.names[j] == b.name and fo.object_ids[j] == b.object_id
                np.testing.assert_allclose(fo.object_to_world[j], b.pose(k), atol=1e-12)
                np.testing.assert_allclose(fo.object_to_camera[j], np.linalg.inv(C @ FLIP) @ b.pose(k),
                                           atol=1e-9)
                np.testing.assert_allclose(fo.bbox_3d[j], vs._corners(b, k), atol=1e-9)
                np.testing.assert_allclose(fo.box_hi[j], np.asarray(b.half) * b.scale(k), atol=1e-9)
                assert fo.px_count_visib[j] == vis.get(iid, 0), (m, k, iid)
        # the visible instances are the same rows in every mode
        ref = listed["visible"]
        for m in ("frustum", "all", "v1"):
            fo = listed[m]
            rows = np.searchsorted(fo.instance_ids, ref.instance_ids)
            for key in ("object_to_world", "bbox_obj", "bbox_visib", "px_count_visib", "bbox_3d"):
                np.testing.assert_allclose(getattr(fo, key)[rows], getattr(ref, key), atol=1e-9)
    # the dense view: absent = not present, NaN
    objs = seqs["visible"].objects
    assert objs.present.shape == (len(seqs["visible"]), len(objs.instance_ids))
    col = objs.index()
    assert 300 not in col and 400 not in col  # never visible: not in the visible table
    assert objs.present.sum() == sum(len(_visible(scene, k)) for k in range(1, 5))
    assert np.isnan(objs.object_to_world[~objs.present]).all()
    assert (objs.px_count_visib[objs.present] > 0).all() and (objs.px_count_visib[~objs.present] == -1).all()


def test_every_mode_and_the_old_format_validate_clean(written):
    for m, path in written.items():
        s = validate(path, write=False)["sequences"][0]
        assert s["ok"], (m, s["failed"], {k: s["checks"][k]["message"] for k in s["failed"]})
        assert s["checks"]["objects"]["ok"] is True


def _copy(src: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(src, tmp_path / name))


def _rewrite(seq: Path, frame: int, **change) -> None:
    p = seq / layout.objects_file(frame)
    rec = FrameRecord.read(p)
    dataclasses.replace(rec, **change).write(p)


def test_validate_fails_records_that_disagree_with_the_pixels(written, tmp_path):
    def objects_message(seq):
        s = validate(seq, write=False)["sequences"][0]
        assert not s["ok"] and "objects" in s["failed"], s["failed"]
        return s["checks"]["objects"]["message"]

    # a visible instance missing from a frame's record
    seq = _copy(written["visible"], tmp_path, "dropped")
    rec = FrameRecord.read(seq / layout.objects_file(2))
    _rewrite(seq, 2, **{k: getattr(rec, k)[1:] for k in ARRAYS})
    assert "frame 2: Ground#1:" in objects_message(seq) and "does not list it" in objects_message(seq)
    # a pixel count off by one
    seq = _copy(written["all"], tmp_path, "count")
    rec = FrameRecord.read(seq / layout.objects_file(3))
    _rewrite(seq, 3, px_count_visib=rec.px_count_visib + (rec.px_count_visib > 0))
    assert "visible pixel(s), objects.json says" in objects_message(seq)
    # a record that is gone: one line naming the file and the fix
    seq = _copy(written["visible"], tmp_path, "gone")
    (seq / layout.objects_file(4)).unlink()
    msg = objects_message(seq)
    assert f"{seq / 'objects' / 'objects_000004.npz'}: missing" in msg and "re-render" in msg
    with pytest.raises(DatasetError, match="objects_000004.npz: missing"):
        _ = load(seq)[3].objects


def test_coco_export_annotates_each_visible_instance(written, tmp_path):
    mask_util = pytest.importorskip("pycocotools.mask", reason="pip install -r requirements-exports.txt")
    from dataset_forge.dataset.exports import export
    from dataset_forge.dataset.exports.coco import instance_rles
    from pycocotools.coco import COCO

    # the one-pass RLE equals pycocotools' own encoding of each mask
    seg = np.random.default_rng(3).integers(0, 5, (13, 9))
    seg[-1, -1] = 4
    for iid, rle in instance_rles(seg, mask_util):
        assert rle["counts"] == mask_util.encode(np.asfortranarray((seg == iid).astype(np.uint8)))["counts"]
    # the sequence, with the instance map the worker writes (visible instances only)
    seq = _copy(written["visible"], tmp_path, "coco_src")
    objs = load(seq).objects
    ids = json.loads((seq / layout.IDS_FILE).read_text())
    ids["instances"] = {str(i): {"object": n, "object_id": int(o), "class": c} for i, n, o, c in zip(
        objs.instance_ids.tolist(), objs.names, objs.object_ids, objs.categories)}
    (seq / layout.IDS_FILE).write_text(json.dumps(ids))
    export("coco", seq, tmp_path / "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    scene = _scene()
    for i in range(4):
        _, _, _, inst, _, _ = vs._cast(scene, i + 1)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert sorted(a["instance_id"] for a in anns) == sorted(_visible(scene, i + 1))
        for a in anns:
            np.testing.assert_array_equal(mask_util.decode(a["segmentation"]).astype(bool),
                                          inst == a["instance_id"])


@pytest.mark.parametrize("fmt", ["sintel", "kitti-flow", "visionsim-npy"])
def test_exports_read_the_new_format(written, tmp_path, fmt):
    from dataset_forge.dataset.exports import export

    res = export(fmt, written["visible"], tmp_path / fmt)
    assert res["sequences"] and not any("not exported" in n for n in res.get("notes", [])), res


# --- the setting --------------------------------------------------------------------------------

def test_object_records_is_a_fingerprinted_ground_truth_choice():
    from dataset_forge.dataset.provenance import NOT_FINGERPRINTED, changes, fingerprint_settings

    f = {x.name: x for x in dataclasses.fields(Settings)}["object_records"]
    assert f.default == "visible" and f.metadata["group"] == "Ground truth"
    assert f.metadata["choices"] == RECORD_MODES and "object_records" not in NOT_FINGERPRINTED
    assert fingerprint_settings(Settings(object_records="all"))["object_records"] == "all"
    def record(s):
        return {"blender_version": "5.0.1", "settings": fingerprint_settings(s)}
    old = record(Settings())
    old["settings"].pop("object_records")  # recorded before the setting existed: the default
    assert changes(old, record(Settings())) == []
    assert changes(old, record(Settings(object_records="all"))) == ["object_records 'visible' -> 'all'"]
    with pytest.raises(Exception, match="object_records='some' is not one of visible, frustum, all"):
        Settings(object_records="some").check()
