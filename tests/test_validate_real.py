# SPDX-License-Identifier: GPL-3.0-or-later
"""validate on the validate corpus (tests/validate_real.py): what third-party files hold and the
fault-matrix scenes lack (smooth-shaded low-poly meshes filling the view, objects a few pixels
wide, fractional alpha, a long thin beveled curve, text, back faces, a camera-only scene),
rendered correctly into one datasets folder. validate must pass every sequence (zero false
alarms), judge the folder to the end with its report, and still catch planted faults there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
import validate_real
import validate_scenes as vs
from conftest import REPO, bpy_env
from dataset_forge import load
from dataset_forge.dataset.validate import validate
from test_validate_faults import EXPECT

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    blends = tmp_path_factory.mktemp("vr_blends")
    subprocess.run([sys.executable, str(REPO / "tests" / "validate_real.py"), str(blends)], check=True,
                   env=bpy_env(), capture_output=True, timeout=300)
    out = tmp_path_factory.mktemp("vr_real") / "datasets"
    s = dataset_forge.create_datasets(blends, out, num_frames=validate_real.FRAMES,
                                      width=validate_real.RES[0], height=validate_real.RES[1],
                                      max_samples=8, use_denoising=False, depths=True, normals=True,
                                      flows=True, segmentations=True, debug=False)
    assert s["exit_code"] == 0, s
    return out


def _seq(root: Path, scene: str) -> Path:
    return next((root / "renders" / scene).iterdir())


def test_every_correct_render_passes_and_the_folder_is_judged_to_the_end(corpus):
    rep = validate(corpus)
    by = {s["path"].split("/")[1]: s for s in rep["sequences"]}
    assert set(by) == set(validate_real.NAMES)
    assert rep["ok"] and rep["failed"] == [] and rep["could_not_check"] == [], [
        (k, s.get("error"), {c: s["checks"][c]["message"] for c in s["failed"]}) for k, s in by.items()]
    assert rep["exit_code"] == 0 and (corpus / "validation.txt").is_file()
    man = json.loads((corpus / "manifest.json").read_text())
    assert all(q["validation"]["ok"] for sc in man["scenes"] for q in sc["sequences"])
    # what is not judged says so, and why
    assert by["camera_only"]["checks"]["normals"]["message"] == "no surface seen"
    assert by["smooth_lowpoly"]["checks"]["normals"]["ok"] is None
    assert by["smooth_lowpoly"]["checks"]["normals"]["curved_median_deg"] > 2.0  # what failed before
    # fractional alpha: depth and ids without a normal, allowed by the README's rule
    assert by["alpha"]["checks"]["coverage"]["depth_without_normal"] > 0.01
    # flat surfaces seen from behind (a one-sided wall, an inside-out box) face the camera
    for name in ("backface", "text", "curve"):
        n = by[name]["checks"]["normals"]
        assert n["ok"] is True and n["median_deg"] < 0.01 and n["flat_pixels"] > 1000, (name, n)


def test_back_faces_read_their_normal_facing_the_camera(corpus):
    """The documented rule (README, docs/ground_truth.md): a back face's normal is flipped towards
    the camera (camera frame: z > 0 on every pixel of the one-sided wall seen from behind and of
    the box whose normals point inwards)."""
    seq = load(_seq(corpus, "backface"))
    names = {int(k): v["name"] for k, v in seq.ids["ids"].items()}
    for i in range(len(seq)):
        f = seq[i]
        seg = np.rint(f.segmentation).astype(int)
        for oid, name in names.items():
            m = seg == oid
            if name in ("Wall", "InsideOut"):
                assert m.sum() > 100 and (f.normals[m][:, 2] > 0).all(), (name, i)


# smooth_lowpoly x normal_frame_mislabelled is left out: no flat surface there, so the normals'
# direction is not judged (named "not checked"; its flow and depth faults are caught)
CASES = [(s, f) for s in ("backface", "text", "curve", "alpha", "smooth_lowpoly")
         for f in ("normal_frame_mislabelled", "flip_forward_u", "distance_labelled_planar")
         if (s, f) != ("smooth_lowpoly", "normal_frame_mislabelled")]


@pytest.mark.parametrize(("scene", "fault"), CASES)
def test_faults_are_still_caught_on_the_corpus(corpus, tmp_path, scene, fault):
    s = validate(vs.planted(_seq(corpus, scene), fault, tmp_path / "seq"), write=False)["sequences"][0]
    assert EXPECT[fault] & set(s["failed"]), (scene, fault, s["failed"])
