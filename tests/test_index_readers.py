"""Segmentations set every object's ``pass_index`` to its object id. A material that reads
Object Info > Object Index (here: emission strength = 0.1 x pass_index, the file's indices 7 and
8) would then render another RGB frame; the rig gives the ids their own data render and keeps
the file's indices for the RGB render (``data_render.index_readers`` / ``object_indices``).
Rendered by the real worker on 5.0, and on 4.5 / 4.2 with ``DF_EXTRA_PYTHONS``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import bpy_env, bpy_pythons

pytestmark = pytest.mark.render

PYTHONS = bpy_pythons()

SCENE = r"""
import sys, bpy
bpy.ops.wm.read_homefile(use_empty=True)
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.frame_start, sc.frame_end = 1, 2
mat = bpy.data.materials.new("ByIndex")
mat.use_nodes = True
nt = mat.node_tree
oi, em, mul = (nt.nodes.new(t) for t in ("ShaderNodeObjectInfo", "ShaderNodeEmission", "ShaderNodeMath"))
mul.operation = "MULTIPLY"
mul.inputs[1].default_value = 0.1
nt.links.new(oi.outputs["Object Index"], mul.inputs[0])
nt.links.new(mul.outputs[0], em.inputs["Strength"])
nt.links.new(em.outputs[0], nt.nodes["Material Output"].inputs["Surface"])
for i, x in enumerate((-1.5, 1.5)):
    bpy.ops.mesh.primitive_cube_add(size=2, location=(x, 0, 0))
    ob = bpy.context.object
    ob.name = f"Box{i}"
    ob.data.materials.append(mat)
    ob.pass_index = 7 + i
bpy.ops.object.camera_add(location=(0, -8, 0), rotation=(1.5708, 0, 0))
sc.camera = bpy.context.object
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
"""


def _rgb(out: Path) -> np.ndarray:
    from PIL import Image

    tf = json.loads((out / "transforms.json").read_text())
    return np.stack([np.asarray(Image.open(out / fr["file_path"])) for fr in tf["frames"]])


@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[lb for lb, _ in PYTHONS])
def test_a_material_reading_the_object_index_keeps_its_rgb_with_segmentations(tmp_path, python):
    from dataset_forge.dataset import exr

    blend = tmp_path / "by_index.blend"
    subprocess.run([python or sys.executable, "-c", SCENE, str(blend)], check=True, env=bpy_env(),
                   capture_output=True, timeout=300)
    opts = dict(width=48, height=32, max_samples=2, adaptive_threshold=0.0, use_denoising=False,
                debug=False, depths=True, timeout=240.0, retries=0)
    outs = {}
    for seg in (False, True):
        out = tmp_path / f"seg_{seg}"
        s = dataset_forge.render_animation(blend, out, frame_start=1, frame_end=2, executable=python,
                                           segmentations=seg, **opts)
        assert s["ok"], json.dumps(s)[:2000]
        outs[seg] = out
    plain, with_ids = _rgb(outs[False]), _rgb(outs[True])
    assert np.array_equal(plain, with_ids)
    assert plain[:, 16, 10].max() != plain[:, 16, 38].max()  # the two indices really differ
    ids = json.loads((outs[True] / "segmentation_ids.json").read_text())["ids"]
    by_name = {v["name"]: int(k) for k, v in ids.items()}
    tf = json.loads((outs[True] / "transforms.json").read_text())
    for fr in tf["frames"]:
        seg = exr.read_single(outs[True] / fr["segmentation_file_path"], "V")
        assert seg[16, 10] == by_name["Box0"] and seg[16, 38] == by_name["Box1"], seg[16]
        assert seg[2, 2] == 0
    with pytest.raises(AssertionError, match="filtered_passes off"):
        s = dataset_forge.render_animation(blend, tmp_path / "filtered", frame_start=1, frame_end=1,
                                           executable=python, segmentations=True,
                                           filtered_passes=True, **opts)
        assert s["ok"], json.dumps(s)
