# SPDX-License-Identifier: GPL-3.0-or-later
"""validate never crashes and never cries wolf, on analytic scenes (tests/validate_scenes.py):
a sequence that draws no object, a sequence validate cannot read (its verdict "could not
check", the rest judged, the report written), relative paths, exit codes, the report model, the
coverage rule for fractional alpha and normals that are not the facets' (smooth shading)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import validate_scenes as vs
from dataset_forge.cli import main
from dataset_forge.dataset import exr
from dataset_forge.dataset.documents.base import DocumentError
from dataset_forge.dataset.documents.validation import ValidationReport
from dataset_forge.dataset.transforms import write_json_atomic
from dataset_forge.dataset.validate import validate
from dataset_forge.dataset.validate.frames import normal_kind

SEQ = "000-00001-00004"


def _dataset(root: Path, scenes: dict[str, vs.Scene]) -> Path:
    """A datasets folder with one sequence per scene and a manifest like engine/plan.py's."""
    entries = []
    for name, scene in scenes.items():
        vs.write_scene(scene, root / "renders" / name / SEQ)
        entries.append({"name": name, "status": "complete", "sequences": [
            {"id": SEQ, "path": f"renders/{name}/{SEQ}", "num_frames": scene.frames, "status": "complete"}]})
    write_json_atomic(root / "manifest.json", {"totals": {"scenes": len(entries)}, "scenes": entries})
    return root


def _break_frame_number(seq: Path) -> None:
    """A frame number that is not a number: the loader raises ValueError (not a DatasetError)."""
    tf = json.loads((seq / "transforms.json").read_text())
    tf["frames"][1]["frame"] = "two"
    (seq / "transforms.json").write_text(json.dumps(tf))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    sc = vs.scenes()
    root = _dataset(tmp_path_factory.mktemp("robust") / "ds", {
        "a_moving": sc["static_camera"], "b_camera_only": vs.Scene("camera_only", [], sc["orbit"].camera),
        "c_broken": sc["moving_camera"]})
    _break_frame_number(root / "renders" / "c_broken" / SEQ)
    return root


@pytest.fixture
def ds(folder, tmp_path) -> Path:
    shutil.copytree(folder, tmp_path / "ds")
    return tmp_path / "ds"


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_folder_is_judged_to_the_end(ds, jobs):
    rep = validate(ds, jobs=jobs)
    by = {s["path"].split("/")[1]: s for s in rep["sequences"]}
    assert by["a_moving"]["ok"] and by["a_moving"]["checks"]["flow_rigid"]["ok"] is True
    cam = by["b_camera_only"]
    assert cam["ok"] and not cam.get("error")
    # no surface: nothing to judge is "not checked", never "passed"
    assert cam["checks"]["normals"] == {**cam["checks"]["normals"], "ok": None, "message": "no surface seen"}
    assert cam["checks"]["flow_rigid"]["ok"] is None and cam["checks"]["objects"]["ok"] is True
    broken = by["c_broken"]
    assert not broken["ok"] and broken["failed"] == [] and broken["checks"] == {}
    assert broken["error"].startswith("could not check: ValueError: invalid literal for int()")
    assert re.search(r"\(loader\w*\.py:\d+\)$", broken["error"])  # where it broke
    assert rep["failed"] == [] and rep["could_not_check"] == [f"renders/c_broken/{SEQ}"]
    assert not rep["ok"] and rep["exit_code"] == 2
    txt = (ds / "validation.txt").read_text()
    assert f"renders/c_broken/{SEQ}" in txt and "COULD NOT CHECK" in txt
    assert "1 could not be checked" in txt.splitlines()[-1]
    man = json.loads((ds / "manifest.json").read_text())
    entries = {sc["name"]: sc["sequences"][0]["validation"] for sc in man["scenes"]}
    assert entries["c_broken"]["error"] == broken["error"] and entries["c_broken"]["ok"] is False
    assert entries["a_moving"]["ok"] is True and "error" not in entries["a_moving"]
    assert man["validation"]["sequences_not_checked"] == 1 and man["validation"]["sequences_failed"] == 0
    assert ValidationReport.from_dict(json.loads((ds / "validation.json").read_text())).exit_code == 2


def test_relative_paths(ds, monkeypatch):
    monkeypatch.chdir(ds.parent)
    one = validate(f"ds/renders/b_camera_only/{SEQ}")
    assert one["ok"] and one["sequences"][0]["path"] == "."
    assert one["path"] == str(ds / "renders" / "b_camera_only" / SEQ)
    man = json.loads((ds / "manifest.json").read_text())
    assert man["scenes"][1]["sequences"][0]["validation"]["ok"] is True  # its own entry, found by path
    assert "validation" not in man["scenes"][0]["sequences"][0]
    monkeypatch.chdir(ds / "renders")
    assert validate(f"a_moving/{SEQ}/transforms.json", write=False)["ok"]
    monkeypatch.chdir(ds.parent)
    assert len(validate("ds", write=False)["sequences"]) == 3
    assert main(["validate", f"ds/renders/a_moving/{SEQ}", "--no-write"]) == 0


def test_exit_codes(ds, tmp_path, capsys):
    good = ds / "renders" / "a_moving" / SEQ
    assert main(["validate", str(good), "--no-write"]) == 0
    bad = vs.planted(good, "flip_forward_u", tmp_path / "bad")
    assert main(["validate", str(bad), "--no-write"]) == 1
    assert main(["validate", str(tmp_path / "nowhere"), "--no-write"]) == 2
    assert "dataset validate: error:" in capsys.readouterr().err
    assert main(["validate", str(ds), "--no-write"]) == 2  # c_broken could not be checked
    assert main(["validate", str(ds), "--no-write", "--jobs", "0"]) == 2
    # a check failed beats "could not check": 1
    vs.FAULTS["flip_forward_u"](ds / "renders" / "a_moving" / SEQ)
    assert main(["validate", str(ds), "--no-write"]) == 1


def test_report_model_names_what_is_wrong(ds):
    rep = validate(ds, write=False)
    model = ValidationReport.from_dict(json.loads(json.dumps(rep)))
    assert model.to_dict() == {**rep, "checked": model.checked}
    assert [s.status for s in model.sequences] == ["passed", "passed", "could not check"]
    broken = json.loads(json.dumps(rep))
    broken["sequences"][0]["checks"]["normals"]["ok"] = "yes"
    with pytest.raises(DocumentError, match=r"sequences\[0\]\.checks\.normals\.ok: expected true or false"):
        ValidationReport.from_dict(broken)


def test_normal_kind_is_read_from_the_conventions():
    assert normal_kind({"normal": {"frame": "camera"}}) == ("shading", True)
    assert normal_kind({"normal_kind": "geometric", "filtered_passes": False}) == ("geometric", False)
    assert normal_kind({"normal": {"normal_kind": "geometric"}, "filtered_passes": ["depth"]}) == (
        "geometric", False)


def _rewrite(seq: Path, kind: str, fn) -> None:
    for p in sorted((seq / f"{kind}s").glob(f"{kind}_*.exr")):
        exr.write_channels(p, fn(exr.read_channels(p)))


def test_coverage_follows_the_alpha_rule(ds, tmp_path):
    """Depth and ids from a pixel's first sample must agree; a normal only where there is depth.
    A fractional-alpha surface over nothing has depth and id but no normal: allowed."""
    good = ds / "renders" / "a_moving" / SEQ
    veil = vs.planted(good, "truncated_exr", tmp_path / "veil")  # copy; the EXR is rewritten below
    shutil.copy(good / "flows" / "flow_000003.exr", veil / "flows" / "flow_000003.exr")

    def no_normal_below(c):  # the bottom 20 rows (all ground) lose their normal
        return {k: np.where(np.arange(vs.H)[:, None] >= vs.H - 20, 0, v).astype(np.float32)
                for k, v in c.items()}
    _rewrite(veil, "normal", no_normal_below)
    s = validate(veil, write=False)["sequences"][0]
    assert s["checks"]["coverage"]["ok"] is True, s["checks"]["coverage"]
    assert s["checks"]["coverage"]["depth_without_normal"] == pytest.approx(20 / vs.H, abs=0.01)
    # ids disagreeing with depth, or a normal where depth says "no surface", fail
    holes = vs.planted(good, "truncated_exr", tmp_path / "holes")
    shutil.copy(good / "flows" / "flow_000003.exr", holes / "flows" / "flow_000003.exr")
    _rewrite(holes, "depth", lambda c: {"V": np.where(np.arange(vs.W) < 8, 0, c["V"]).astype(np.float32)})
    s = validate(holes, write=False)["sequences"][0]
    assert "coverage" in s["failed"], s["checks"]["coverage"]


def test_smooth_shading_is_not_judged_but_flat_surfaces_are(ds, tmp_path):
    """Normals tilted by a smoothly varying angle (up to 15 deg, as a smooth-shaded low-poly mesh
    interpolates them) are not the facets' normals: not judged, never failed. The same tilt
    held constant over a flat surface (normals not perpendicular to it) fails."""
    good = ds / "renders" / "a_moving" / SEQ

    def tilt(c, smooth: bool):
        v, u = np.mgrid[0:vs.H, 0:vs.W]
        a = np.radians(15.0) * (np.sin(u / 3.0) if smooth else 1.0)
        x, y = c["X"], c["Y"]
        return {"X": (np.cos(a) * x - np.sin(a) * y).astype(np.float32),
                "Y": (np.sin(a) * x + np.cos(a) * y).astype(np.float32), "Z": c["Z"]}
    for smooth in (True, False):
        seq = vs.planted(good, "truncated_exr", tmp_path / f"tilt{smooth}")
        shutil.copy(good / "flows" / "flow_000003.exr", seq / "flows" / "flow_000003.exr")
        _rewrite(seq, "normal", lambda c, s=smooth: tilt(c, s))
        n = validate(seq, write=False)["sequences"][0]["checks"]["normals"]
        if smooth:
            assert n["ok"] is None and n["curved_median_deg"] > 2.0 and n["flat_pixels"] < 64, n
        else:
            assert n["ok"] is False and n["median_deg"] > 2.0 and n["flat_pixels"] > 1000, n
