"""Flow made from depth (render_passes/flow_plan.py) against Cycles' own Vector pass.

Each scene is rendered twice by the real worker with the same settings: as it is (nothing in it
changes shape, so the flow is computed from the pixel-centre depth, the cameras and the moving
objects' transforms, and no render carries the Vector pass), and from a copy whose view layer
has its own Vector pass on (the survey then keeps Cycles' Vector pass). The two flows must agree
on every surface pixel. Scenes: the camera moving over static things (``gt_camera_motion``), an
object moving in front of a static camera (``gt_flow_object``), a geometry-nodes scatter seen by
a moving camera, the same cones as static hair particles drawn as an object, and a lens that
zooms (``zoom``: 4.2 projects the neighbour with the current K, which the Vector path
re-projects afterwards). On 5.0, and on 4.5 / 4.2 with ``DF_EXTRA_PYTHONS``.
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
build_scatter(sys.argv[-1], 400, frames=4, res=(64, 48), samples=4, via=sys.argv[-3])
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
    for name, via in (("scatter", "nodes"), ("particles", "particles")):
        _run(py, _SCATTER, via, str(Path(__file__).parent), str(scenes / f"{name}.blend"))
    ranges = {"gt_camera_motion": (2, 4), "gt_flow_object": (2, 4), "scatter": (2, 3),
              "particles": (2, 3)}
    out = {}
    for name, (a, b) in ranges.items():
        vec = scenes / f"{name}_vector.blend"
        _run(py, _WITH_VECTOR, str(scenes / f"{name}.blend"), str(vec))
        opts = dict(max_samples_=4) if name in ("scatter", "particles") else {}
        out[name] = (Seq(render(scenes / f"{name}.blend", root / "depth" / name, a, b, python, **opts)),
                     Seq(render(vec, root / "vector" / name, a, b, python, **opts)))
    return out


def _surface(seq: Seq, f: int) -> np.ndarray:
    return seq.depth(f) > 0


@pytest.mark.parametrize("name", ["gt_camera_motion", "gt_flow_object", "scatter", "particles"])
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



SURVEY = r'''
import sys
args = ARGS
sys.path.insert(0, args["tests"])
import bpy
import instance_scenes
from dataset_forge.render_passes import flow_plan
from dataset_forge.settings import Settings
blend = instance_scenes.build_scatter(args["out"] + "/scatter.blend", 300, frames=4, res=(32, 24))
both = Settings(flows=True, segmentations=True)
flows = Settings(flows=True)

def verdict(name, settings=both):
    plan, why = flow_plan.survey(bpy.context.scene, settings, 2, 3)
    print("V", name, None if plan is None else sorted(plan.movers), "|", why)

def fresh():
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    return bpy.context.scene

def cube():
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, -8.0, 0.5))
    return bpy.context.object

fresh(); verdict("camera")
sc = fresh()
sc.view_layers[0].use_pass_vector = True; verdict("own_vector")
sc = fresh()
seed = sc.objects["Ground"].modifiers[0].node_group.nodes["Distribute Points on Faces"].inputs["Seed"]
seed.keyframe_insert("default_value", frame=1)
verdict("gn_animated")
fresh(); c = cube(); c.keyframe_insert("location", frame=1); verdict("mover_with_instances")
fresh(); bpy.data.objects.remove(bpy.data.objects["Ground"]); c = cube()
c.location.x = 1.0; c.keyframe_insert("location", frame=1); c.location.x = 3.0
c.keyframe_insert("location", frame=5); verdict("mover"); verdict("mover_no_ids", flows)
c.shape_key_add(name="Basis"); k = c.shape_key_add(name="Key"); k.value = 0.0
k.keyframe_insert("value", frame=1); k.value = 1.0; k.keyframe_insert("value", frame=5)
verdict("shape_key")
blend = instance_scenes.build_scatter(args["out"] + "/hair.blend", 300, frames=4, res=(32, 24),
                                      via="particles")
fresh(); verdict("hair")
sc = fresh(); g = sc.objects["Ground"]; g.keyframe_insert("location", frame=1); g.location.x = 1.0
g.keyframe_insert("location", frame=5); verdict("hair_emitter_moves")
sc = fresh(); ps = sc.objects["Ground"].particle_systems[0].settings
ps.keyframe_insert("hair_length", frame=1); ps.hair_length = 2.0
ps.keyframe_insert("hair_length", frame=5); verdict("hair_keyed")
sc = fresh(); slot = sc.objects["Ground"].particle_systems[0].settings.texture_slots.add()
slot.texture = bpy.data.textures.new("Clouds", "CLOUDS"); slot.use_map_length = True
slot.texture.keyframe_insert("noise_scale", frame=1); slot.texture.noise_scale = 2.0
slot.texture.keyframe_insert("noise_scale", frame=5); verdict("hair_texture_keyed")
sc = fresh(); sc.objects["Ground"].particle_systems[0].use_hair_dynamics = True
verdict("hair_dynamics")
sc = fresh(); sc.objects["Ground"].particle_systems[0].settings.type = "EMITTER"
verdict("emitted")
'''


def test_survey_says_which_sequences_get_flow_from_depth(tmp_path):
    """What :func:`flow_plan.survey` decides (5.0; the depsgraph updates it reads are measured on
    4.5 and 4.2 too, docs/blender_notes.md): flow from depth when only the camera moves, or when
    objects only move (with segmentations, in a scene without instances); the Vector pass when
    the file's own view layer has it, when geometry nodes re-evaluate, when an object moves among
    instances or without object ids, and when shape keys animate. Static hair particles drawn as
    objects are flow from depth while only the camera moves; a moving emitter, keyed particle
    settings or a keyed texture of them, hair dynamics and emitted particles keep the Vector
    pass."""
    from conftest import REPO, run_bpy

    args = {"out": str(tmp_path), "tests": str(REPO / "tests")}
    out = run_bpy(SURVEY.replace("ARGS", repr(args)))
    got = {ln.split()[1]: ln.split(" ", 2)[2] for ln in out.splitlines() if ln.startswith("V ")}
    assert got["camera"].startswith("[] |"), got
    assert got["mover"].startswith("['Cube'] |"), got
    assert got["hair"].startswith("[] |"), got
    for name, why in {"own_vector": "own Vector pass", "gn_animated": "changes",
                      "mover_with_instances": "moves", "mover_no_ids": "moves",
                      "shape_key": "deforms", "hair_emitter_moves": "'Ground' changes",
                      "hair_keyed": "'Ground' changes", "hair_texture_keyed": "'Ground' changes",
                      "hair_dynamics": "particles that move",
                      "emitted": "particles that move"}.items():
        assert got[name].startswith("None |") and why in got[name], (name, got[name])


WRITER = r'''
import sys
from pathlib import Path
import numpy as np
from dataset_forge.dataset import exr
from dataset_forge.dataset.verify import WriteError
from dataset_forge.render_passes.flow_plan import FlowPlan, FlowWriter
out = Path(sys.argv[-1])
K = np.array([[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]])
pose = np.eye(4)
moved = pose.copy()
moved[0, 3] = 0.5
plan = FlowPlan({0: (K, pose), 1: (K, pose), 2: (K, moved)})
for name, blocked in (("ok", False), ("blocked", True)):
    seq = out / name
    seq.mkdir()
    scratch = seq / "flowz.exr"
    exr.write_channels(scratch, {"V": np.full((24, 32), 5.0, np.float32)}, compression="NONE")
    if blocked:
        (seq / "flows").write_text("a file where the folder goes")
    w = FlowWriter(plan, seq, "ZIP", {}, preview=True)
    w.submit(1, scratch)
    try:
        w.wait(1)
        fl = exr.read_stack(seq / "flows" / "flow_000001.exr", ["R", "G", "B", "A"])
        print("OK", name, float(fl[..., 0].mean()), float(np.abs(fl[..., 1:]).max()),
              scratch.exists(), (seq / "previews" / "flow" / "flow_000001.png").is_file())
    except WriteError as e:
        print("ERR", name, str(e).splitlines()[0])
    w.close()
'''


def test_flow_writer_writes_in_the_background_and_names_a_failed_file(tmp_path):
    """The flow writer's thread writes the flow (a camera 0.5 right of a plane at depth 5: forward
    u = -50 * 0.5 / 5 = -5 px, the rest 0), its preview, and deletes the scratch; a write that
    fails (a file where the flows folder goes) comes back from ``wait`` as one WriteError line
    naming the flow file."""
    from conftest import run_bpy

    out = run_bpy(WRITER.replace("sys.argv[-1]", repr(str(tmp_path))))
    ok = [ln.split() for ln in out.splitlines() if ln.startswith("OK ok")]
    assert ok, out
    mean_u, rest, scratch_left, preview = ok[0][2:]
    assert abs(float(mean_u) + 5.0) < 1e-4 and float(rest) < 1e-4, out
    assert (scratch_left, preview) == ("False", "True"), out
    err = [ln for ln in out.splitlines() if ln.startswith("ERR blocked")]
    assert err and "flow_000001.exr" in err[0], out
