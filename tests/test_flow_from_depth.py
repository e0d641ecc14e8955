"""Flow made from depth (render_passes/flow_plan.py) against Cycles' own Vector pass.

Each scene is rendered twice by the real worker with the same settings: as it is (nothing in it
changes shape, so the flow is computed from the pixel-centre depth, the cameras and the moving
objects' transforms, and no render carries the Vector pass), and from a copy whose view layer
has its own Vector pass on (the survey then keeps Cycles' Vector pass). The two flows must agree
on every surface pixel. Scenes: the camera moving over static things (``gt_camera_motion``), an
object moving in front of a static camera (``gt_flow_object``), a geometry-nodes scatter seen by
a moving camera, and a lens that zooms (``zoom``: 4.2 projects the neighbour with the current
K, which the Vector path re-projects afterwards). On 5.0, and on 4.5 / 4.2 with
``DF_EXTRA_PYTHONS``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import bpy_env, bpy_pythons, build_scenes
from test_ground_truth import Seq, render

pytestmark = pytest.mark.render

PYTHONS = bpy_pythons()

_WITH_VECTOR = """
import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[-2])
for vl in bpy.context.scene.view_layers:
    vl.use_pass_vector = True
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1], copy=True)
"""

_SCATTER = """
import sys
sys.path.insert(0, sys.argv[-2])
from instance_scenes import build_scatter
build_scatter(sys.argv[-1], 400, frames=4, res=(64, 48), samples=4)
"""


def _run(python: str, script: str, *args: str) -> None:
    subprocess.run([python, "-c", script, *args], check=True, env=bpy_env(),
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def pairs(request, tmp_path_factory) -> dict[str, tuple[Seq, Seq]]:
    """scene -> (flow from depth, Vector pass), each a rendered sequence."""
    import sys

    label, python = request.param
    py = python or sys.executable
    root = tmp_path_factory.mktemp(f"fromdepth-{label}")
    scenes = build_scenes(root / "scenes", ["gt_camera_motion", "gt_flow_object"],
                          python=python or None)
    _run(py, _SCATTER, str(Path(__file__).parent), str(scenes / "scatter.blend"))
    ranges = {"gt_camera_motion": (2, 4), "gt_flow_object": (2, 4), "scatter": (2, 3)}
    out = {}
    for name, (a, b) in ranges.items():
        vec = scenes / f"{name}_vector.blend"
        _run(py, _WITH_VECTOR, str(scenes / f"{name}.blend"), str(vec))
        opts = dict(max_samples_=4) if name == "scatter" else {}
        out[name] = (Seq(render(scenes / f"{name}.blend", root / "depth" / name, a, b, python, **opts)),
                     Seq(render(vec, root / "vector" / name, a, b, python, **opts)))
    return out


def _surface(seq: Seq, f: int) -> np.ndarray:
    return seq.depth(f) > 0


@pytest.mark.parametrize("name", ["gt_camera_motion", "gt_flow_object", "scatter"])
def test_flow_from_depth_equals_the_vector_pass(pairs, name):
    mine, cycles = pairs[name]
    assert "computed" in mine.conv["flow"]["source"], mine.conv["flow"]
    assert "computed" not in cycles.conv["flow"]["source"], cycles.conv["flow"]
    for f in mine.frames:
        surf = _surface(mine, f)
        assert np.array_equal(surf, _surface(cycles, f)), f
        assert surf.sum() > 0.3 * surf.size
        for a, c, key in zip(mine.flow(f), cycles.flow(f), ("forward", "backward")):
            assert mine.frames[f][f"flow_{key}_valid"] == cycles.frames[f][f"flow_{key}_valid"]
            err = np.linalg.norm(a - c, axis=-1)
            assert np.all(a[~surf] == 0.0)  # background: 0, as Cycles writes it
            moving = np.abs(c[surf]).max()
            assert moving > 0.5, (name, f, key)  # something really moves in this direction
            # measured on 5.0: at most 1.2e-4 px (float32 rounding), edges included
            assert err[surf].max() < 2e-3, (name, f, key, float(np.median(err[surf])),
                                             float(err[surf].max()))


def test_no_vector_pass_scratch_left(pairs):
    for mine, _ in pairs.values():
        assert not (mine.root / "flows" / ".raw").exists()
        info = json.loads((mine.root / "transforms.json").read_text())
        assert info["conventions"]["flow"]["filtered_passes"] is False
