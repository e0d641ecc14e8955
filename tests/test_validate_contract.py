# SPDX-License-Identifier: GPL-3.0-or-later
"""The loader's object-level arrays, path containment (loader and validate read nothing outside
the sequence folder), and the "not checked" verdicts of validate where it cannot tell. Analytic
scenes from tests/validate_scenes.py."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import validate_scenes as vs
from dataset_forge.dataset import exr, layout
from dataset_forge.dataset.loader import DatasetError, Objects, load
from dataset_forge.dataset.validate import format_report, validate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contract")
    all_scenes = vs.scenes()
    return {n: vs.write_scene(all_scenes[n], root / n) for n in ("instances", "camera_cut", "deforming")}


@pytest.fixture
def copy(scenes, tmp_path):
    def _copy(name: str) -> Path:
        return Path(shutil.copytree(scenes[name], tmp_path / name))
    return _copy


def one(path: Path) -> dict:
    return validate(path, write=False)["sequences"][0]


# --- loader -------------------------------------------------------------------------------------

def test_loader_returns_objects_json_as_arrays(scenes):
    seq = load(scenes["instances"])
    scene = vs.scenes()["instances"]
    objs = seq.objects
    assert isinstance(objs, Objects)
    n_f, n_i = len(seq), len(scene.boxes)
    assert objs.object_to_world.shape == (n_f, n_i, 4, 4) and objs.bbox_3d.shape == (n_f, n_i, 8, 3)
    assert objs.bbox_obj.shape == (n_f, n_i, 4) and objs.px_count_visib.shape == (n_f, n_i)
    assert objs.present.all() and objs.instance_ids.tolist() == [b.instance_id for b in scene.boxes]
    assert objs.names == ["Ground"] + ["Rock"] * 6 and objs.categories[1] == "rock"
    assert objs.instancer_chains[3] == ["Scatter"] and not objs.deforming.any()
    fr = seq[2]
    fo = fr.objects
    assert len(fo) == n_i and fo.frame == 3 and fo.camera == "Camera"
    np.testing.assert_allclose(fo.object_to_world[4], scene.boxes[4].pose(3))
    expect_cam = np.linalg.inv(scene.camera(3)[1] @ np.diag([1.0, -1, -1, 1])) @ scene.boxes[4].pose(3)
    np.testing.assert_allclose(fo.object_to_camera[4], expect_cam, atol=1e-12)
    # the instance-id image: every pixel carries the id of the box the ray hits
    _, _, ids, inst, _, _ = vs._cast(scene, 3)
    assert fr.instances.dtype == np.int64
    np.testing.assert_array_equal(fr.instances, inst)
    counts = {int(i): int((fr.instances == i).sum()) for i in objs.instance_ids}
    assert counts == dict(zip(fo.instance_ids.tolist(), fo.px_count_visib.tolist()))


def test_loader_camera_names_and_flow_validity_at_a_cut(scenes):
    seq = load(scenes["camera_cut"])
    assert [f.camera for f in seq] == ["CamA"] * 3 + ["CamB"]
    assert [f.flow_forward_valid for f in seq] == [True, True, False, True]
    assert [f.flow_backward_valid for f in seq] == [True, True, True, False]
    assert seq.objects.cameras == [f.camera for f in seq]


@pytest.mark.parametrize("frame2, reason", [
    ({"flow_forward_valid": None}, "flow_forward_valid is null, not true or false"),
    ({"flow_forward_valid": "false"}, 'flow_forward_valid is "false", not true or false'),
    ({"flow_forward_valid": True, "flow_valid": {"forward": False}},
     "flow_forward_valid and flow_valid.forward disagree"),
    ({"flow_valid": {"forward": False}}, None),  # the nested spelling alone: a valid way to say it
])
def test_a_flow_flag_that_is_not_plainly_true_makes_the_flow_invalid_everywhere(copy, frame2, reason):
    """The loader, validate and the exports read flow validity through one rule: any flag that is
    not ``true`` (false, null, a string, one spelling contradicting the other) makes the flow
    invalid; validate's schema check names a flag that is not a boolean or contradicts the other."""
    from dataset_forge.dataset.exports.common import flow_pair_ok

    seq_dir = copy("instances")
    tf = json.loads((seq_dir / "transforms.json").read_text())
    tf["frames"][1].update(frame2)
    (seq_dir / "transforms.json").write_text(json.dumps(tf))
    seq = load(seq_dir)
    assert [f.flow_forward_valid for f in seq] == [True, False, True, True]
    assert flow_pair_ok(seq, 0)[0] and not flow_pair_ok(seq, 1)[0] and flow_pair_ok(seq, 2)[0]
    s = one(seq_dir)
    if reason is None:
        assert s["checks"]["schema"]["ok"] is True
        assert "2->3 forward" in s["checks"]["camera_cuts"]["invalid_directions"]
    else:
        assert s["checks"]["schema"]["ok"] is False
        assert f"frame 2: {reason} (read as invalid)" in s["checks"]["schema"]["message"]


def test_deforming_flag_is_read(scenes):
    objs = load(scenes["deforming"]).objects
    assert dict(zip(objs.names, objs.deforming.tolist())) == {"Ground": False, "Crate": False, "Blob": True}


# --- containment --------------------------------------------------------------------------------

class _Opens:
    """Every path Python opens while active (an audit hook: PIL, json, pathlib reads all pass
    through ``open``); the EXR library is only called on paths that passed the check."""

    active: list[str] | None = None

    @classmethod
    def hook(cls, event, args):
        if cls.active is not None and event == "open" and isinstance(args[0], (str, bytes)):
            cls.active.append(args[0] if isinstance(args[0], str) else args[0].decode(errors="replace"))


sys.addaudithook(_Opens.hook)


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "elsewhere"
    out.mkdir(exist_ok=True)
    exr.write_channels(out / "secret.exr", {"V": np.ones((vs.H, vs.W), np.float32)})
    (out / "secret.json").write_text(json.dumps({"background": 0, "ids": {}}))
    return out


@pytest.mark.parametrize("where", ["file_path", "depth_file_path", "flow_file_path", "ids_file",
                                   "objects_file"])
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_paths_outside_the_sequence_are_refused_and_not_read(copy, tmp_path, where, how):
    seq = copy("instances")
    out = _outside(tmp_path)
    target = out / ("secret.json" if where in ("ids_file", "objects_file") else "secret.exr")
    if how == "dotdot":
        rel = f"../elsewhere/{target.name}"
    elif how == "absolute":
        rel = str(target)
    else:
        rel = f"link_{target.name}"
        (seq / rel).symlink_to(target)
    tf = json.loads((seq / "transforms.json").read_text())
    if where == "ids_file":
        tf["conventions"]["segmentation"]["ids_file"] = rel
    elif where == "objects_file":
        tf["objects_file"] = rel
    else:
        tf["frames"][2][where] = rel
    (seq / "transforms.json").write_text(json.dumps(tf))
    _Opens.active = []
    try:
        with pytest.raises(DatasetError, match=f"{where} '.*' points outside the sequence folder; refusing"):
            load(seq)
        s = one(seq)
    finally:
        opened, _Opens.active = _Opens.active, None
    assert s["failed"] == ["schema"]
    assert "points outside the sequence folder" in s["checks"]["schema"]["message"]
    assert not [p for p in opened if str(out) in str(Path(p).resolve())], opened


def test_a_folder_checked_once_refuses_what_each_path_resolved_alone_refuses(tmp_path):
    """layout.Inside (a sub-folder resolved once, one lstat per file) against layout.contained
    (every path resolved in full): the same path or the same error, for folders and files that
    are symlinks out, symlinks that stay inside, ``..``, absolute and missing paths, and a
    folder replaced by a symlink out between two readings of the sequence."""
    seq, out = tmp_path / "seq", _outside(tmp_path)
    (seq / "depth").mkdir(parents=True)
    (seq / "depth" / "d.exr").write_bytes(b"x")
    (seq / "sub" / "deep").mkdir(parents=True)
    (seq / "sub" / "deep" / "f.exr").write_bytes(b"x")
    (seq / "flow").symlink_to(out)                          # a folder pointing out
    (seq / "depth" / "out.exr").symlink_to(out / "secret.exr")  # a file pointing out
    (seq / "depth" / "in.exr").symlink_to(seq / "sub" / "deep" / "f.exr")  # stays inside
    (seq / "alias").symlink_to(seq / "sub")                  # a folder that stays inside
    rels = ["depth/d.exr", "depth/out.exr", "depth/in.exr", "flow/secret.exr", "flow/none.exr",
            "alias/deep/f.exr", "sub/deep/f.exr", "sub/deep/../../depth/d.exr", "depth/../../x",
            "../seq/depth/d.exr", str(out / "secret.exr"), "missing/x.exr", "depth/missing.exr",
            "depth/.", "depth/..", "sub/deep/", "f.exr", "."]

    def outcome(check, rel):
        try:
            return check(rel, "depth_file_path")
        except layout.LayoutError as exc:
            return str(exc)
    once = layout.Inside(seq)
    for _ in range(2):  # the second round from the folder cache
        for rel in rels:
            assert outcome(once, rel) == outcome(lambda r, w: layout.contained(seq, r, w), rel), rel
    refused = {r for r in rels if "points outside" in str(outcome(once, r))}
    assert refused == {"depth/out.exr", "flow/secret.exr", "flow/none.exr", "depth/../../x",
                       str(out / "secret.exr")}
    shutil.rmtree(seq / "sub")
    (seq / "sub").symlink_to(out)  # replaced between two readings: a new Inside sees it
    assert "points outside" in str(outcome(layout.Inside(seq), "sub/deep/f.exr"))


# --- "not checked": never FAILED, never OK where it cannot tell ------------------------------------

def test_without_objects_json_flow_is_not_judged_against_motion(copy):
    seq = copy("instances")
    (seq / "objects.json").unlink()
    s = one(seq)
    c = s["checks"]
    assert s["ok"] and c["flow_rigid"]["ok"] is None and c["objects"]["ok"] is None
    assert "no objects.json (object poses unknown)" in c["flow_rigid"]["message"]
    assert s["not_checked"]["flow_rigid"] == c["flow_rigid"]["message"]
    # what it can still judge: forward/backward cycle per object id
    assert c["flow_cycle"]["ok"] is True and c["flow_cycle"]["things"]
    table = format_report(validate(seq, write=False))
    assert "n/c" in table and "not checked .: flow_rigid: no objects.json (object poses unknown)" in table


def test_instances_without_an_instance_image_are_named_not_checked(copy):
    """Six rocks share one object id: without the instance channel their pixels cannot be told
    apart, so they are not judged (and not failed); the ground still is."""
    seq = copy("instances")
    tf = json.loads((seq / "transforms.json").read_text())
    del tf["conventions"]["segmentation"]["instance_channel"]
    (seq / "transforms.json").write_text(json.dumps(tf))
    for p in (seq / "segmentations").glob("*.exr"):
        exr.write_channels(p, {"V": exr.read_channels(p)["V"]})
    s = one(seq)
    c = s["checks"]["flow_rigid"]
    assert s["ok"], s["failed"]
    assert set(c["things"]) == {"Ground#1"}
    (why,) = [v for k, v in c["not_checked"].items() if "of no listed instance" in k]
    assert why == "object id(s) 2 are drawn as several instances and there is no instance-id image"
    assert s["checks"]["objects"]["ok"] is True and s["checks"]["objects"]["instance_image"] is False


def test_the_flow_across_a_cut_is_not_checked(copy):
    seq = copy("camera_cut")
    # garbage in the invalid halves changes nothing
    for name, chans in (("flow_000003.exr", ("R", "G")), ("flow_000004.exr", ("B", "A"))):
        p = seq / "flows" / name
        c = exr.read_channels(p)
        exr.write_channels(p, {**c, **{k: c[k] * 0 + 123.0 for k in chans}})
    s = one(seq)
    assert s["ok"], s["failed"]
    assert s["checks"]["camera_cuts"]["invalid_directions"] == ["3->4 forward", "4->3 backward"]
