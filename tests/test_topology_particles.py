# SPDX-License-Identifier: GPL-3.0-or-later
"""The vertex-count watch of flow (render_passes/topology.py) on particles drawn as an object:
their copies all draw the instanced object's one evaluated mesh, so its count is read once per
evaluation instead of walking every particle. Checked against the walk of every copy on a hair
scatter of 300 cones (tests/instance_scenes.py ``build_scatter(via="particles")``) whose cone
gains a Build modifier (its faces appear over frames 1..10, so its vertex count changes every
frame) or not. On 5.0, and on 4.5 / 4.2 with ``DF_EXTRA_PYTHONS``."""

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
blend = instance_scenes.build_scatter(args["out"] + "/hair.blend", 300, frames=4, res=(32, 24),
                                      via="particles")

def counts(f, read):
    bpy.context.scene.frame_set(f)
    return topology._counts(bpy.context.evaluated_depsgraph_get(), particles_read=read)

for case in ("static", "build"):
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    if case == "build":
        m = bpy.data.objects["Cone"].modifiers.new("Build", "BUILD")
        m.frame_start, m.frame_duration = 1, 10
    for read in (True, False):
        a, b = counts(2, read), counts(3, read)
        keys = sorted({k[0] for k in a.single})
        print("C", case, read, len(a.single), keys, topology._broken(a, b))
'''


@pytest.mark.parametrize("python", PYTHONS, ids=[p[0] for p in PYTHONS])
def test_particle_copies_counted_once_give_the_walks_verdict(python, tmp_path):
    args = {"out": str(tmp_path), "tests": str(REPO / "tests")}
    out = run_bpy(SCRIPT.replace("ARGS", repr(args)), python=python[1] or None)
    got = {(ln.split()[1], ln.split()[2]): ln.split(" ", 3)[3] for ln in out.splitlines()
           if ln.startswith("C ")}
    for case in ("static", "build"):
        read, walk = got[(case, "True")], got[(case, "False")]
        n_read, n_walk = int(read.split()[0]), int(walk.split()[0])
        assert n_read == n_walk - 299, (case, read, walk)  # the 300 copies: one key
        assert read.split(" ", 1)[1] == walk.split(" ", 1)[1], (case, read, walk)
    assert got[("static", "True")].endswith("[]"), got
    assert "('Cone'," in got[("build", "True")], got
