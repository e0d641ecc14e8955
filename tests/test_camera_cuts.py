# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera cuts: timeline markers bound to cameras switch the active camera inside a sequence.

``gt_instances`` (tests/instance_scenes.py) renders with ``CamA`` (lens 30 mm) on frames 1-2 and
``CamB`` (lens 33 mm, 0.5 m to +x) from frame 3. Each frame names its camera, poses and ``K``
follow it, the top level describes the first frame (plus a ``cameras`` list), and the forward
flow of frame 2 and the backward flow of frame 3 are marked invalid, also when the cut lies just
outside the sequence.
"""

from __future__ import annotations

import json

import dataset_forge
import numpy as np
import pytest
from instance_scenes import SPECS
from test_instances import PYTHONS, build, render

pytestmark = pytest.mark.render  # 4.5/4.2 through DF_EXTRA_PYTHONS, from the 5.0 run
SPEC = SPECS["gt_instances"]


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def cut(request, tmp_path_factory) -> dict:
    label, python = request.param
    root = tmp_path_factory.mktemp(f"cut-{label}")
    blend = build(root / "scenes", python)
    out = {}
    for name, (a, b) in {"inside": (2, 4), "before": (3, 4)}.items():
        seq = render(blend, root / name, a, b, python, segmentations=(name == "inside"))
        out[name] = json.loads((seq / "transforms.json").read_text())
        if name == "inside":
            out["objects"] = dataset_forge.load(seq).objects
    return out


def _k(lens: float, w: int) -> float:
    return w * lens / 36.0


def test_camera_names_poses_and_K_per_frame(cut):
    tf = cut["inside"]
    cams = {fr["frame"]: fr["camera"] for fr in tf["frames"]}
    assert cams == {2: "CamA", 3: "CamB", 4: "CamB"}
    assert tf["camera"] == "CamA" and tf["cameras"] == ["CamA", "CamB"]
    assert tf["fl_x"] == pytest.approx(_k(SPEC["lenses"][0], tf["w"]), abs=1e-9)
    locs = dict(zip(SPEC["cameras"], SPEC["camera_locations"]))
    for fr in tf["frames"]:
        assert np.allclose(np.array(fr["transform_matrix"])[:3, 3], locs[fr["camera"]], atol=1e-6)
        lens = SPEC["lenses"][SPEC["cameras"].index(fr["camera"])]
        fx = fr.get("fl_x", tf["fl_x"])
        assert fx == pytest.approx(_k(lens, tf["w"]), abs=1e-9), fr["frame"]
    assert cut["objects"].cameras == ["CamA", "CamB", "CamB"]  # the frames' object records


def test_flow_halves_at_the_cut_invalid(cut):
    tf = cut["inside"]
    valid = {fr["frame"]: (fr["flow_forward_valid"], fr["flow_backward_valid"])
             for fr in tf["frames"]}
    assert valid == {2: (False, True), 3: (True, False), 4: (True, True)}
    assert "flow_forward_valid" in tf["conventions"]["flow"]["valid_if"]


def test_cut_just_before_the_sequence(cut):
    tf = cut["before"]
    assert tf["camera"] == "CamB" and "cameras" not in tf
    valid = {fr["frame"]: (fr["flow_forward_valid"], fr["flow_backward_valid"])
             for fr in tf["frames"]}
    assert valid == {3: (True, False), 4: (True, True)}
