# SPDX-License-Identifier: GPL-3.0-or-later
"""Two more rendered scenes for the fault matrix, built with ``bpy`` (tests/scenes.py style)::

    python tests/validate_blends.py OUT_DIR

* ``vr_empty``: nothing but one 1.6 m cube that slides (+0.25, +0.15, +0.1) m/frame and turns
  12 deg/frame about z, in front of the empty world background; static camera at (4.5, -5, 3)
  looking at the origin (frames 1-5).
* ``vr_orbit``: a static ground plane, a 1.5 m cube rotated 30 deg and a 1.4 m sphere; the camera
  orbits the origin at 7 m radius, 2.5 m up, 6 deg per frame, always looking at the origin.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

FRAMES = 5


def build(out_dir: str | Path) -> list[Path]:
    import bpy
    from mathutils import Vector
    from scenes import _gt_base, _keys, _mesh_object

    out = []
    for name in ("vr_empty", "vr_orbit"):
        scene, cam, props, ground = _gt_base(bpy, name, FRAMES)
        scene.render.resolution_x, scene.render.resolution_y = 128, 96
        if name == "vr_empty":
            cube = _mesh_object(bpy, "Cube", "cube", (0.0, 0.0, 0.0), 1.6, (0.8, 0.2, 0.1), props)
            _keys(bpy, cube, "location", {f: (-0.5 + 0.25 * f, -0.3 + 0.15 * f, 0.1 * f)
                                          for f in range(1, FRAMES + 1)})
            _keys(bpy, cube, "rotation_euler", {f: (0.3, 0.2, math.radians(12 * f))
                                                for f in range(1, FRAMES + 1)})
            cam.location = (4.5, -5.0, 3.0)
            cam.rotation_euler = (-cam.location).to_track_quat("-Z", "Y").to_euler()
        else:
            _mesh_object(bpy, "Ground", "plane", (0.0, 0.0, 0.0), 40.0, (0.6, 0.6, 0.6), ground)
            cube = _mesh_object(bpy, "Cube", "cube", (-0.6, 0.4, 0.75), 1.5, (0.8, 0.2, 0.1), props)
            cube.rotation_euler = (0.0, 0.0, math.radians(30))
            _mesh_object(bpy, "Sphere", "sphere", (1.2, -0.5, 0.7), 1.4, (0.1, 0.3, 0.8), props)
            locs, rots = {}, {}
            for f in range(1, FRAMES + 1):
                a = math.radians(-60 + 6 * f)
                p = Vector((7.0 * math.cos(a), 7.0 * math.sin(a), 2.5))
                locs[f] = p
                rots[f] = (Vector((0.0, 0.0, 0.3)) - p).to_track_quat("-Z", "Y").to_euler()
            _keys(bpy, cam, "location", locs)
            _keys(bpy, cam, "rotation_euler", rots)
        path = Path(out_dir) / f"{name}.blend"
        path.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
        out.append(path)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    for p in build(sys.argv[1]):
        print(p)
    sys.stdout.flush()
    import os

    os._exit(0)
