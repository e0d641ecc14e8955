# SPDX-License-Identifier: GPL-3.0-or-later
"""The vertex-count watch of flow (render_passes/topology.py) on copies of plain mesh objects:
the copies made by particles drawn as an object or by collection instances all draw the copied
object's one evaluated mesh, so its count is read once per evaluation instead of walking every
copy. Checked against the walk of every copy on a hair scatter of 300 cones
(tests/instance_scenes.py ``build_scatter(via="particles")``) and on 40 empties instancing a
one-cube collection beside 4 mesh objects (``build_many``), each as built and with a Build
modifier on the copied object (its faces appear over frames 1..10: its vertex count changes
every frame). On 5.0, and on 4.5 / 4.2 with ``DF_EXTRA_PYTHONS``."""

from __future__ import annotations

import pytest
from conftest import REPO, bpy_pythons, run_bpy

pytestmark = pytest.mark.render
PYTHONS = bpy_pythons()

SCRIPT = r'''
import sys
args = ARGS
sys.path.insert(0, args["tests"])
import bpy
import instance_scenes
from dataset_forge.render_passes import topology
scenes = {
    "hair": ("Cone", instance_scenes.build_scatter(args["out"] + "/hair.blend", 300, frames=4,
                                                   res=(32, 24), via="particles")),
    "crates": ("Crate", instance_scenes.build_many(args["out"] + "/crates.blend", 4, 40, frames=4,
                                                   res=(32, 24), samples=1)),
}

def counts(f, read):
    bpy.context.scene.frame_set(f)
    return topology._counts(bpy.context.evaluated_depsgraph_get(), copies_read=read)

for scene, (copied, blend) in scenes.items():
    for case in ("static", "build"):
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        if case == "build":
            m = bpy.data.objects[copied].modifiers.new("Build", "BUILD")
            m.frame_start, m.frame_duration = 1, 10
        for read in (True, False):
            a, b = counts(2, read), counts(3, read)
            names = sorted({k[0] for k in a.single})
            print("C", scene, case, read, len(a.single), names, topology._broken(a, b))
'''


@pytest.mark.parametrize("python", PYTHONS, ids=[p[0] for p in PYTHONS])
def test_copies_counted_once_give_the_walks_verdict(python, tmp_path):
    args = {"out": str(tmp_path), "tests": str(REPO / "tests")}
    out = run_bpy(SCRIPT.replace("ARGS", repr(args)), python=python[1] or None)
    got = {tuple(ln.split()[1:4]): ln.split(" ", 4)[4] for ln in out.splitlines()
           if ln.startswith("C ")}
    for scene, copied in (("hair", "Cone"), ("crates", "Crate")):
        for case in ("static", "build"):
            read, walk = got[(scene, case, "True")], got[(scene, case, "False")]
            # the same objects and verdict; the copies under one key
            assert read.split(" ", 1)[1] == walk.split(" ", 1)[1], (scene, case, read, walk)
        assert int(got[(scene, "static", "True")].split()[0]) <= 6, got
        assert got[(scene, "static", "True")].endswith("[]"), got
        assert f"('{copied}'," in got[(scene, "build", "True")], got
