# SPDX-License-Identifier: GPL-3.0-or-later
"""The document models (manifest.json, transforms.json, the job file, info.json,
segmentation_ids.json, plan.json) and the modalities table:
what they write is exactly the JSON the tool always wrote, what they read is checked with the file
and key named. Pure Python (no bpy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_forge.dataset import layout
from dataset_forge.dataset.camera import Intrinsics
from dataset_forge.dataset.documents import job as job_doc
from dataset_forge.dataset.documents import manifest as manifest_doc
from dataset_forge.dataset.documents import transforms as tf_doc
from dataset_forge.dataset.documents.base import DocumentError
from dataset_forge.dataset.modalities import MODALITIES
from dataset_forge.dataset.transforms import build_transforms
from dataset_forge.settings import Settings

REPO = Path(__file__).resolve().parent.parent

MANIFEST = {
    "dataset_forge_version": "0.1.0", "updated": "2026-01-01T00:00:00+00:00", "plan": "plan.json",
    "settings": {"num_frames": 3, "depths": True}, "seed": 0,
    "totals": {"scenes": 2, "scenes_complete": 1, "sequences": 1, "sequences_complete": 0,
               "frames": 3, "frames_complete": 2},
    "scenes": [
        {"name": "orbit", "blend": "/s/orbit.blend", "status": "incomplete", "reason": None,
         "frame_start": 1, "frame_end": 24, "fps": 24.0, "camera": "Camera", "sequences": [
             {"id": "001-00001-00003", "path": "renders/orbit/001-00001-00003", "frame_start": 1,
              "frame_end": 3, "num_frames": 3, "frames_complete": 2, "status": "incomplete",
              "reason": "disk full",
              "validation": {"ok": False, "failed": ["files"], "messages": {"files": "frame 3 missing"},
                             "not_checked": [], "checked": "2026-01-01T00:00:01+00:00",
                             "report": "validation.json", "journal_sha256": "ab" * 32}}]},
        {"name": "broken", "blend": "/s/broken.blend", "status": "failed", "reason": "no camera",
         "frame_start": None, "frame_end": None, "fps": None, "camera": None, "sequences": []}],
    "validation": {"ok": False, "checked": "2026-01-01T00:00:01+00:00", "sequences": 1,
                   "sequences_failed": 1, "report": "validation.json"},
}


def _dump(d) -> str:
    return json.dumps(d, indent=2) + "\n"


def test_manifest_round_trip_is_byte_identical(tmp_path):
    m = manifest_doc.Manifest.from_dict(MANIFEST, "manifest.json")
    assert _dump(m.to_dict()) == _dump(MANIFEST)
    q = m.sequences()["renders/orbit/001-00001-00003"]
    assert (q.num_frames, q.frames_complete, q.complete, q.reason) == (3, 2, False, "disk full")
    assert q.validation.failed == ["files"] and m.totals.frames_complete == 2
    # a key this version does not know stays, after the known ones
    doc = json.loads(json.dumps(MANIFEST))
    doc["scenes"][0]["sequences"][0]["later"] = 1
    doc["note"] = "kept"
    out = manifest_doc.Manifest.from_dict(doc, "m").to_dict()
    assert out["note"] == "kept" and out["scenes"][0]["sequences"][0]["later"] == 1
    m.write(tmp_path / "manifest.json")
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == _dump(MANIFEST)
    assert manifest_doc.read(tmp_path / "manifest.json").to_dict() == MANIFEST
    assert manifest_doc.read(tmp_path / "absent.json") is None


def test_manifest_totals_count_the_scenes():
    m = manifest_doc.Manifest.from_dict(MANIFEST, "manifest.json")
    t = manifest_doc.Totals()
    for sc in m.scenes:
        t.add_scene(sc)
    assert t.to_dict() == {"scenes": 2, "scenes_complete": 0, "sequences": 1, "sequences_complete": 0,
                           "frames": 3, "frames_complete": 2}


def test_a_bad_manifest_names_the_file_and_key(tmp_path):
    doc = json.loads(json.dumps(MANIFEST))
    doc["scenes"][0]["sequences"][0]["num_frames"] = "3"
    with pytest.raises(DocumentError, match=r"manifest\.json\.scenes\[0\]\.sequences\[0\]\.num_frames: "
                                            "expected an integer"):
        manifest_doc.parse(doc, "manifest.json")
    assert manifest_doc.parse({"something": "else"}, "m.json") is None  # not a Dataset Forge manifest
    (tmp_path / "manifest.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DocumentError, match="manifest.json: cannot be read as JSON"):
        manifest_doc.read(tmp_path / "manifest.json")


K = Intrinsics(fl_x=50.0, fl_y=50.0, cx=16.0, cy=12.0, w=32, h=24)
POSE = [[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 1.0]]


def test_frame_entries_keep_the_order_the_worker_writes():
    zoom = Intrinsics(fl_x=60.0, fl_y=60.0, cx=16.0, cy=12.0, w=32, h=24)
    files = {"depth_file_path": "depths/depth_000002.exr", "flow_file_path": "flows/flow_000002.exr"}
    e = tf_doc.FrameEntry.new("frames/frame_000002.png", POSE, 2, 1 / 24, "Cam", files, zoom).to_dict()
    e[layout.FLOW_BACKWARD_VALID] = True   # as the worker marks them once the sequence is done
    e[layout.FLOW_FORWARD_VALID] = False
    assert list(e) == ["file_path", "transform_matrix", "frame", "time", "camera", "depth_file_path",
                       "flow_file_path", "fl_x", "fl_y", "cx", "cy", "intrinsics",
                       "flow_backward_valid", "flow_forward_valid"]
    assert e["intrinsics"] == zoom.K and e["fl_x"] == 60.0
    back = tf_doc.FrameEntry.from_dict(e, "f")
    assert back.files == {"depth": "depths/depth_000002.exr", "flow": "flows/flow_000002.exr"}
    assert (back.flow_forward_valid, back.flow_backward_valid) == (False, True)
    assert _dump(back.to_dict()) == _dump(e)
    assert tf_doc.position_of(e) == [0.5, 0.0, 2.0]


def test_transforms_round_trip_and_schema():
    frames = [{"file_path": f"frames/frame_00000{f}.png", "transform_matrix": POSE, "frame": f,
               "time": (f - 1) / 24, "camera": "Cam"} for f in (2, 1)]
    doc = build_transforms(intrinsics=K, channels=3, frames=frames, frame_rate=24.0,
                           keyframe_multiplier=1.0, frame_start=1, frame_end=2, scene="s",
                           blend_file="/s/s.blend", sequence_id="001-00001-00002",
                           blender_version="5.0.1", dataset_forge_version="0.1.0", camera="Cam",
                           extra={"cameras": ["Cam", "Other"]})
    assert list(doc)[:3] == ["schema_version", "camera_model", "fl_x"]
    assert list(doc)[-2:] == ["frames", "cameras"]
    assert [f["frame"] for f in doc["frames"]] == [1, 2]
    assert doc["intrinsics"] == K.K and doc["conventions"] == tf_doc.BASE_CONVENTIONS
    model = tf_doc.Transforms.from_dict(doc, "transforms.json")
    assert model.cameras == ["Cam", "Other"] and model.w == 32
    assert _dump(model.to_dict()) == _dump(doc)
    with pytest.raises(DocumentError, match=r"transforms\.json: schema_version 2 is not one"):
        tf_doc.Transforms.from_dict({**doc, "schema_version": 2}, "transforms.json")
    bad = json.loads(json.dumps(doc))
    bad["frames"][1]["transform_matrix"] = [[1.0, 0.0]]
    with pytest.raises(DocumentError,
                       match=r"transforms\.json\.frames\[1\]\.transform_matrix: expected a 4x4"):
        tf_doc.Transforms.from_dict(bad, "transforms.json")


def test_conventions_come_from_the_modalities_in_table_order():
    ch = {"FLOAT": ["V"], "VECTOR": ["X", "Y", "Z"], "RGBA": ["R", "G", "B", "A"]}
    conv = tf_doc.conventions(["segmentation", "depth", "flow"], depth_type="distance",
                              normal_frame="camera", unit_scale_m=0.01, exr_channels=ch, previews=True)
    assert list(conv) == [*tf_doc.BASE_CONVENTIONS, "depth", "flow", "segmentation", "previews"]
    assert conv["depth"]["file"] == "depths/depth_NNNNNN.exr" and conv["depth"]["channel"] == "V"
    assert conv["depth"]["type"] == "distance" and conv["depth"]["unit_scale_m"] == 0.01
    assert conv["flow"]["channels"] == dict(zip(layout.FLOW_KEYS, "RGBA"))
    assert conv["segmentation"]["instance_channel"] == layout.SEGMENTATION_INSTANCE_CHANNEL
    assert conv["previews"]["flow"] == "previews/flow/flow_NNNNNN.png"
    assert "previews" not in tf_doc.conventions([], depth_type="planar", normal_frame="camera",
                                                unit_scale_m=1.0, exr_channels=ch, previews=True)


def test_job_files_are_written_as_they_always_were(tmp_path):
    seqs = [{"id": "001-00001-00003", "out_dir": "/d/renders/a/001-00001-00003", "frame_start": 1,
             "frame_end": 3}]
    settings = Settings(depths=True).to_dict()
    job = job_doc.JobSpec.render("/s/a.blend", "a", settings, seqs, 40, 1, 0)
    old = {"blend": "/s/a.blend", "scene_name": "a", "settings": settings, "sequences": seqs,
           "frame_budget": 40, "gpu_index": 1, "gpu": 0}
    assert job.write(tmp_path / "job.json").read_text(encoding="utf-8") == json.dumps(old, indent=1)
    assert job_doc.JobSpec.read(tmp_path / "job.json") == job
    probe = job_doc.JobSpec.probe(["/s/a.blend", "/s/b.blend"], settings)
    assert probe.dumps() == json.dumps({"mode": "probe", "blends": ["/s/a.blend", "/s/b.blend"],
                                        "settings": settings})
    assert job_doc.JobSpec.from_dict(json.loads(probe.dumps()), "p") == probe
    # an older or hand-written render job: the scene name defaults to the file's stem
    j = job_doc.as_job({"blend": "/s/orbit.blend", "settings": {}, "sequences": seqs})
    assert (j.mode, j.scene_name, j.frame_budget, j.gpu_index) == ("render", "orbit", 0, None)
    with pytest.raises(DocumentError, match=r"job-00001\.json\.mode: 'draw' is not a job mode"):
        job_doc.JobSpec.from_dict({"mode": "draw"}, "job-00001.json")
    with pytest.raises(DocumentError, match=r"job\.json: missing key 'sequences'"):
        job_doc.JobSpec.from_dict({"blend": "/s/a.blend"}, "job.json")


def test_the_modalities_table_matches_the_layout_settings_and_the_rig():
    assert list(MODALITIES) == list(layout.KINDS)
    s = Settings(depths=True, normals=True, flows=True, segmentations=True, use_denoising=False)
    assert s.ground_truths == ("depths", "normals", "flows", "segmentations")
    assert Settings(segmentations=True, depths=True).ground_truths == ("depths", "segmentations")
    # the memory estimate of the four passes, as it was before the table: 48 (RGB) + 36 + 80 + 64 + 36
    assert s.frame_buffer_bytes()[1] == 264
    assert Settings(use_denoising=False).frame_buffer_bytes()[1] == 48
    # the rig reads its view-layer passes and File Output socket types from the table, and keeps
    # no table of its own (render_passes/passes.py imports bpy: read as source)
    src = (REPO / "render_passes" / "passes.py").read_text(encoding="utf-8")
    assert "MODALITIES[k].view_layer_pass" in src and "MODALITIES[kind].socket" in src
    assert not [m.view_layer_pass for m in MODALITIES.values()
                if m.view_layer_pass != "use_pass_z" and m.view_layer_pass in src]


def test_every_modality_names_real_accessors_checks_exports_and_colour_maps():
    from dataset_forge.dataset.exports import FORMATS
    from dataset_forge.dataset.loader import Frame
    from dataset_forge.dataset.preview import COLORMAPS
    from dataset_forge.dataset.validate.report import CHECKS

    for m in MODALITIES.values():
        assert all(isinstance(getattr(Frame, a, None), property) for a in m.accessors), m.name
        label, attr, cmap = m.preview
        assert attr in m.accessors and cmap in COLORMAPS, m.name
        assert set(m.checks) <= set(CHECKS), m.name
        assert set(m.exports) <= set(FORMATS), m.name
        assert m.flag in Settings.__dataclass_fields__, m.name


def test_patching_a_manifest_changes_nothing_else():
    """validate sets a validation entry on a manifest it did not write (older, hand-made): every
    other key stays as it was, absent ones stay absent."""
    doc = {"totals": {"scenes": 1}, "scenes": [{"name": "a", "sequences": [
        {"id": "x", "path": "renders/a/x", "reason": None}]}]}
    m = manifest_doc.Manifest.from_dict(doc, "manifest.json")
    m.scenes[0].sequences[0].validation = manifest_doc.SequenceValidation(
        ok=True, failed=[], messages={}, not_checked=[], checked="t")
    out = m.to_dict()
    assert out == {"totals": {"scenes": 1}, "scenes": [{"name": "a", "sequences": [
        {"id": "x", "path": "renders/a/x", "reason": None, "validation": {
            "ok": True, "failed": [], "messages": {}, "not_checked": [], "checked": "t",
            "report": "validation.json", "journal_sha256": None}}]}]}


def test_every_ground_truth_field_has_one_modality_entry():
    """A settings field declared with ``frame_bytes`` is a ground truth: the modalities table
    has exactly one entry for each, and its memory share is the field's."""
    from dataset_forge.dataset.modalities import MODALITIES
    from dataset_forge.settings import FIELDS, GROUND_TRUTHS

    assert sorted(m.flag for m in MODALITIES.values()) == sorted(GROUND_TRUTHS)
    assert all(m.bytes_per_px == FIELDS[m.flag].metadata["frame_bytes"] > 0
               for m in MODALITIES.values())


# -- info.json, segmentation_ids.json, plan.json -----------------------------------------------
INFO = {  # as the worker writes it (tools/demo.py's scene "basic")
    "frame_rate": 24.0, "num_frames": 8, "distance_traveled": 0.0, "average_velocity": 0.0,
    "elapsed_time": 0.2916666666666667, "unit_scale_m": 1.0, "render_seconds": 1.035,
    "device": "no GPU found (tried OPTIX, CUDA, HIP, METAL, ONEAPI): rendering on the CPU",
    "blender_version": "5.0.1", "keyframe_multiplier": 1.0,
    "objects": {"timings": {"collect": 0.002, "resolve": 0.028, "surface": 0.0},
                "pixels": {"unique": 98304, "by_box": 0, "unidentified": 0},
                "sources": {"render_depsgraph": 8, "viewport_depsgraph": 0}},
    "camera_rig": {"clearance": 0.5, "min_clearance": 0.61, "speed": 1.5, "rig_seconds": 0.01}}


def test_info_round_trip_is_byte_identical(tmp_path):
    from dataset_forge.dataset.documents import info as info_doc

    doc = info_doc.Info.from_dict(INFO, "info.json")
    assert doc.objects.pixels["unique"] == 98304 and doc.camera_rig["clearance"] == 0.5
    info_doc.write(tmp_path, doc)
    assert (tmp_path / layout.INFO).read_text(encoding="utf-8") == _dump(INFO)
    assert info_doc.read(tmp_path) == doc
    # a scene camera and no objects pass: neither key is written
    bare = {k: v for k, v in INFO.items() if k not in ("objects", "camera_rig")}
    assert info_doc.Info.from_dict(bare, "i").to_dict() == bare
    # only num_frames is required; a wrong type names the key
    assert info_doc.Info.from_dict({"num_frames": 3}, "i").to_dict() == {"num_frames": 3}
    with pytest.raises(DocumentError, match=r"info.json.objects.pixels.unique: expected an integer"):
        info_doc.Info.from_dict({**INFO, "objects": {"pixels": {"unique": "many"}}}, "info.json")
    with pytest.raises(DocumentError, match=r"i: missing key 'num_frames'"):
        info_doc.Info.from_dict({"frame_rate": 24.0}, "i")
    assert info_doc.read(tmp_path / "nowhere") is None


IDS = {  # as the worker writes it: ids before the first frame, instances after the last
    "background": 0,
    "id_source": "renderable objects of the file sorted by library-qualified name, numbered from 1 "
                 "(values used by linked objects' pass_index skipped)",
    "class_property": "dataset_class",
    "ids": {"1": {"name": "Cube", "collection": "Props", "class": "box", "library": None},
            "2": {"name": "Tree [lib.blend]", "collection": None, "class": None,
                  "library": "//lib.blend"}},
    "instances": {"1324114060": {"object": "Cube", "object_id": 1, "instancer_chain": ["Scatter"],
                                 "persistent_id": [3, 0], "class": "box"}}}


def test_segmentation_ids_round_trip_is_byte_identical(tmp_path):
    from dataset_forge.dataset.documents import segmentation_ids as ids_doc

    before = {k: v for k, v in IDS.items() if k != "instances"}
    doc = ids_doc.SegmentationIds({k: ids_doc.ObjectId.from_dict(v, k) for k, v in IDS["ids"].items()},
                                  "dataset_class")
    assert doc.to_dict() == before and doc.id_source == IDS["id_source"]
    doc.with_instances(IDS["instances"]).write(tmp_path)
    text = (tmp_path / layout.IDS_FILE).read_text(encoding="utf-8")
    # indented by 2 like every document, except one line per instance (C-encoded: 4.5x faster)
    assert json.loads(text) == IDS
    assert text.startswith(_dump({k: v for k, v in IDS.items() if k != "instances"})[:-3])
    assert ('  "instances": {\n    "1324114060": {"object": "Cube", "object_id": 1, '
            '"instancer_chain": ["Scatter"], "persistent_id": [3, 0], "class": "box"}\n  }\n}\n'
            ) in text
    back = ids_doc.read(tmp_path / layout.IDS_FILE)
    assert back.ids["2"].library == "//lib.blend" and back.instances["1324114060"].persistent_id == [3, 0]
    assert back.to_dict() == IDS
    with pytest.raises(DocumentError, match=r"ids.ids: key 'one' is not a decimal id"):
        ids_doc.SegmentationIds.from_dict({**IDS, "ids": {"one": IDS["ids"]["1"]}}, "ids")
    with pytest.raises(DocumentError, match=r"instances.7.object_id: expected an integer"):
        doc.with_instances({"7": {"object": "Cube", "object_id": "1", "class": "box"}})


PLAN = {
    "version": 1, "dataset_forge_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
    "scenes_dir": "/s", "datasets_dir": "/d", "seed": 0, "settings": {"num_frames": 3},
    "scenes": [{"name": "a", "blend": "/s/a.blend", "frame_start": 1, "frame_end": 24, "fps": 24.0,
                "camera": "Camera", "error": None, "blender_scene": "Scene",
                "blender_scenes": ["Scene"], "stretched_range": [1, 24]},
               {"name": "b", "blend": "/s/b.blend", "frame_start": None, "frame_end": None,
                "fps": None, "camera": None, "error": "b.blend: no camera", "blender_scene": None,
                "blender_scenes": None, "warnings": ["saved by a newer Blender"],
                "stretched_range": None}],
    "jobs": [{"scene": "a", "blend": "/s/a.blend", "sequences": [
        {"id": "001-00001-00003", "out_dir": "/d/renders/a/001-00001-00003", "frame_start": 1,
         "frame_end": 3}]}]}


def test_plan_round_trip_is_byte_identical(tmp_path):
    from dataset_forge.dataset.documents import plan as plan_doc

    plan = plan_doc.Plan.from_dict(PLAN, "plan.json")
    assert [s.name for s in plan.scenes] == ["a", "b"] and plan.jobs[0].frames == 3
    plan.write(tmp_path / plan_doc.NAME)
    assert (tmp_path / plan_doc.NAME).read_text(encoding="utf-8") == _dump(PLAN)
    assert plan_doc.read(tmp_path / plan_doc.NAME) == plan
    assert plan.without({"a"}).to_dict()["jobs"] == [] and len(plan.without({"a"}).scenes) == 1
    with pytest.raises(DocumentError, match=r"version 2 is not one this version reads"):
        plan_doc.Plan.from_dict({**PLAN, "version": 2}, "p")
    bad = {**PLAN, "jobs": [{**PLAN["jobs"][0], "sequences": [{"out_dir": "/d", "frame_start": "1"}]}]}
    with pytest.raises(DocumentError, match=r"p.jobs\[0\].sequences\[0\]: missing key 'id'"):
        plan_doc.Plan.from_dict(bad, "p")


def test_the_flow_flags_the_worker_clears_are_frame_entry_fields():
    """The worker's per-frame metadata is a list of FrameEntry; the flags the flow invalidation
    clears are its fields, written under the layout's flow keys."""
    import dataclasses

    e = tf_doc.FrameEntry.new("frames/frame_000001.png", POSE, 1, 0.0, "Cam", {})
    names = {f.name for f in dataclasses.fields(e)}
    for key in (layout.FLOW_FORWARD_VALID, layout.FLOW_BACKWARD_VALID):
        assert key in names  # setattr of a name that is no field would set nothing written
        setattr(e, key, False)
        assert getattr(e, key) is False and e.to_dict()[key] is False
    assert e.position == [0.5, 0.0, 2.0]


def test_the_settings_dict_is_the_settings_fields():
    """``SettingsDict`` (the type of ``Settings.to_dict()``) names every option with its type."""
    import dataclasses

    from dataset_forge.settings import Settings, SettingsDict

    hints = {k: v.__forward_arg__ if hasattr(v, "__forward_arg__") else v.__name__
             for k, v in SettingsDict.__annotations__.items()}
    assert hints == {f.name: f.type for f in dataclasses.fields(Settings)}
    assert set(Settings().to_dict()) == set(SettingsDict.__annotations__)
