# SPDX-License-Identifier: GPL-3.0-or-later
"""The validate corpus: scenes built by code with what third-party files hold and the analytic
scenes lack, each rendered correctly, so that validate must pass them (no false alarm)::

    python tests/validate_real.py OUT_DIR [NAME ...]

Every scene has a camera that moves a little (flow everywhere), frames 1-3, and a ground plane
unless said otherwise:

* ``smooth_lowpoly``: Suzanne (500 faces) and an 8-segment UV sphere, both smooth-shaded (their
  shading normals are up to ~25 deg off the facets the depth sees), filling the view; no ground.
* ``thin``: hexagonal poles 0.06-0.16 units wide and a 0.12-unit cube over the empty world:
  objects one to four pixels wide; no ground.
* ``alpha``: a card of Principled alpha 0.3 (below the Pass Alpha Threshold 0.5: depth and ids
  show it in some pixels, the normal never) partly over a box, partly over the empty world; and
  a card of alpha 0.7 (solid for the ground truth). No ground.
* ``curve``: a 60-unit beveled Bezier curve 0.01 thick, and a curve with an extrusion only.
* ``text``: an extruded, beveled text object.
* ``backface``: a one-sided plane seen from behind and a mesh with flipped normals.
* ``camera_only``: nothing but the camera and the world (draws no object).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

FRAMES = 3
RES = (96, 72)
NAMES = ("smooth_lowpoly", "thin", "alpha", "curve", "text", "backface", "camera_only")


def _base(bpy, name: str):
    from scenes import _gt_base, _keys

    scene, cam, props, ground = _gt_base(bpy, name, FRAMES)
    scene.render.resolution_x, scene.render.resolution_y = RES
    _keys(bpy, cam, "location", {f: (0.15 * f, -6.0 + 0.1 * f, 3.0) for f in range(1, FRAMES + 1)})
    _keys(bpy, cam, "rotation_euler", {f: (math.radians(62), 0.0, math.radians(2 * f))
                                       for f in range(1, FRAMES + 1)})
    return scene, cam, props, ground


def _link(bpy, name: str, data, collection, location=(0.0, 0.0, 0.0), color=(0.6, 0.5, 0.4)):
    from scenes import _material

    ob = bpy.data.objects.new(name, data)
    ob.location = location
    if hasattr(data, "materials"):
        data.materials.append(_material(bpy, f"{name}_mat", color))
    collection.objects.link(ob)
    return ob


def _bmesh_object(bpy, name, build, collection, location, smooth=False):
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    build(bmesh, bm)
    for f in bm.faces:
        f.smooth = smooth
    bm.to_mesh(mesh)
    bm.free()
    return _link(bpy, name, mesh, collection, location)


def _ground(bpy, ground):
    from scenes import _mesh_object

    return _mesh_object(bpy, "Ground", "plane", (0.0, 0.0, 0.0), 30.0, (0.5, 0.5, 0.5), ground)


def near(d: float, right: float = 0.0, up: float = 0.0) -> tuple[float, float, float]:
    """The point ``d`` units in front of the frame-1 camera (and ``right``/``up`` of its axis)."""
    a = math.radians(62)
    return (0.15 + right, -5.9 + d * math.sin(a) + up * math.cos(a), 3.0 - d * math.cos(a) + up * math.sin(a))


def build(name: str, out_dir: Path) -> Path:
    import bpy

    scene, cam, props, ground = _base(bpy, name)
    if name not in ("camera_only", "smooth_lowpoly", "thin", "alpha"):
        _ground(bpy, ground)
    if name == "smooth_lowpoly":  # filling the view, nothing flat behind
        _bmesh_object(bpy, "Suzanne", lambda bmesh, bm: bmesh.ops.create_monkey(bm), props,
                      near(3.2, -0.4), smooth=True).rotation_euler = (math.radians(62), 0, math.radians(-20))
        _bmesh_object(bpy, "Ball", lambda bmesh, bm: bmesh.ops.create_uvsphere(
            bm, u_segments=8, v_segments=5, radius=0.5), props, near(3.0, 0.8, -0.3), smooth=True)
    elif name == "thin":  # nothing but objects one to three pixels wide over the empty world
        for k in range(6):
            _bmesh_object(bpy, f"Pole{k}", lambda bmesh, bm, k=k: bmesh.ops.create_cone(
                bm, segments=6, radius1=0.03 + 0.01 * k, radius2=0.03 + 0.01 * k, depth=3.0,
                cap_ends=True), props, near(6.0, -1.5 + 0.6 * k))
        _bmesh_object(bpy, "Speck", lambda bmesh, bm: bmesh.ops.create_cube(bm, size=0.12), props,
                      near(5.0, 0.3, 0.8))
    elif name == "alpha":  # a fractional-alpha card over the empty world and over the ground
        for label, alpha, loc in (("Veil", 0.3, near(4.0, -0.6, 0.8)), ("Glass", 0.7, near(4.0, 0.8, -0.6))):
            card = _bmesh_object(bpy, label, lambda bmesh, bm: bmesh.ops.create_grid(
                bm, x_segments=1, y_segments=1, size=1.2), props, loc)
            card.rotation_euler = (math.radians(62), 0.0, 0.0)
            bsdf = card.data.materials[0].node_tree.nodes.get("Principled BSDF")
            bsdf.inputs["Alpha"].default_value = alpha
        _bmesh_object(bpy, "Backdrop", lambda bmesh, bm: bmesh.ops.create_cube(bm, size=1.0), props,
                      near(6.0, -1.0, 0.8))
    elif name == "curve":
        for label, length, bevel, extrude, loc in (("Wire", 60.0, 0.01, 0.0, (0.0, 0.0, 0.4)),
                                                   ("Ribbon", 3.0, 0.0, 0.2, (0.0, -1.0, 0.8))):
            cu = bpy.data.curves.new(label, "CURVE")
            cu.dimensions = "3D"
            cu.bevel_depth, cu.extrude = bevel, extrude
            sp = cu.splines.new("BEZIER")
            sp.bezier_points.add(1)
            for p, x in zip(sp.bezier_points, (-length / 2, length / 2)):
                p.co = (x, 0.0, 0.0)
                p.handle_left_type = p.handle_right_type = "AUTO"
            _link(bpy, label, cu, props, loc).rotation_euler = (0.0, 0.0, math.radians(10))
    elif name == "text":
        tx = bpy.data.curves.new("Label", "FONT")
        tx.body = "Forge"
        tx.extrude, tx.bevel_depth, tx.size = 0.1, 0.02, 1.2
        ob = _link(bpy, "Label", tx, props, (-1.6, 0.0, 0.2))
        ob.rotation_euler = (math.radians(90), 0.0, 0.0)
    elif name == "backface":
        wall = _bmesh_object(bpy, "Wall", lambda bmesh, bm: bmesh.ops.create_grid(
            bm, x_segments=1, y_segments=1, size=1.0), props, (-0.8, 0.5, 1.0))
        wall.rotation_euler = (math.radians(-90), 0.0, 0.0)  # its normal points away from the camera
        box = _bmesh_object(bpy, "InsideOut", lambda bmesh, bm: bmesh.ops.create_cube(bm, size=0.9),
                            props, (1.0, 0.0, 0.6))
        box.data.flip_normals()
        box.rotation_euler = (0.0, 0.0, math.radians(25))
    path = Path(out_dir) / f"{name}.blend"
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    for n in sys.argv[2:] or NAMES:
        print(build(n, Path(sys.argv[1])))
    sys.stdout.flush()
    import os

    os._exit(0)
