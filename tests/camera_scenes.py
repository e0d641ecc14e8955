# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera-less, static test scenes for generated cameras (``camera`` = orbit / flythrough), built
by code and saved as .blend files::

    python tests/camera_scenes.py OUT_DIR [NAME ...]

* ``asset``: a few objects on nothing (a 1 m cube, a sphere, a slab), no camera, no floor;
* ``interior``: a closed 8 x 6 x 3 m room of solid 0.2 m walls with furniture boxes;
* ``terrain``: a 24 x 24 m plane displaced by a sum of sines (heights within +-0.6 m);
* ``moving``: the interior with a 1 m cube flying across the room (:func:`mover_center`).

Every other object is static; the frame range is 1..24 at 24 fps. Geometry (numbers the tests know)
is in :data:`SPECS`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOM = (8.0, 6.0, 3.0)  # inner size (x, y, z), floor at z = 0
WALL = 0.2
_OX, _OY = ROOM[0] + 2 * WALL, ROOM[1] + 2 * WALL  # outer size of the room
SPECS = {
    "asset": dict(boxes=[((0.0, 0.0, 0.5), (1.0, 1.0, 1.0)), ((1.2, 0.4, 0.1), (0.8, 2.0, 0.2))],
                  sphere=((-0.9, -0.3, 0.4), 0.4)),
    "interior": dict(boxes=[((0.0, 0.0, -WALL / 2), (_OX, _OY, WALL)),  # floor
                            ((0.0, 0.0, ROOM[2] + WALL / 2), (_OX, _OY, WALL)),  # ceiling
                            ((ROOM[0] / 2 + WALL / 2, 0.0, ROOM[2] / 2), (WALL, ROOM[1], ROOM[2])),
                            ((-ROOM[0] / 2 - WALL / 2, 0.0, ROOM[2] / 2), (WALL, ROOM[1], ROOM[2])),
                            ((0.0, ROOM[1] / 2 + WALL / 2, ROOM[2] / 2), (_OX, WALL, ROOM[2])),
                            ((0.0, -ROOM[1] / 2 - WALL / 2, ROOM[2] / 2), (_OX, WALL, ROOM[2])),
                            ((2.0, 1.5, 0.4), (1.6, 0.8, 0.8)),   # table
                            ((-2.5, -1.8, 1.0), (0.6, 1.6, 2.0)),  # cupboard
                            ((0.5, -1.0, 0.25), (0.6, 0.6, 0.5))]),  # stool
    "terrain": dict(size=24.0, amplitude=0.6, segments=48),
}
# the interior with a 1 m cube crossing the room: (-2.5, 0, 1.5) at frame 1 to (2.5, 0, 1.5) at
# frame 24, linear, held before and after
SPECS["moving"] = dict(boxes=SPECS["interior"]["boxes"],
                       mover=((-2.5, 0.0, 1.5), (2.5, 0.0, 1.5), (1.0, 1.0, 1.0)))
FRAMES = 24


def mover_center(frame: float) -> tuple[float, float, float]:
    """Centre of the ``moving`` scene's cube at ``frame``."""
    a, b, _ = SPECS["moving"]["mover"]
    t = min(max((frame - 1) / (FRAMES - 1), 0.0), 1.0)
    return tuple(x + t * (y - x) for x, y in zip(a, b))


def terrain_height(x: float, y: float) -> float:
    """Height (m) of the terrain surface at vertex (x, y)."""
    a = SPECS["terrain"]["amplitude"]
    return a * (0.6 * math.sin(0.5 * x) * math.cos(0.4 * y) + 0.4 * math.sin(0.23 * x + 0.31 * y))


def _material(bpy, name: str, color):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    return mat


def _box(bpy, name: str, center, size, color):
    import bmesh  # bpy is imported already

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.scale(bm, vec=size, verts=bm.verts)
    bm.to_mesh(mesh)
    bm.free()
    ob = bpy.data.objects.new(name, mesh)
    ob.location = center
    mesh.materials.append(_material(bpy, f"{name}_mat", color))
    bpy.context.scene.collection.objects.link(ob)
    return ob


def build(name: str, path: str | Path) -> Path:
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    import bmesh  # after bpy, which provides it
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, FRAMES
    scene.render.fps = 24
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.05, 0.05)
    scene.world = world
    spec = SPECS[name]
    for i, (c, s) in enumerate(spec.get("boxes", [])):
        _box(bpy, f"box{i}", c, s, (0.2 + 0.1 * (i % 5), 0.5, 0.8 - 0.07 * i))
    if "sphere" in spec:
        (c, r) = spec["sphere"]
        mesh = bpy.data.meshes.new("sphere")
        bm = bmesh.new()
        bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=12, radius=r)
        bm.to_mesh(mesh)
        bm.free()
        ob = bpy.data.objects.new("sphere", mesh)
        ob.location = c
        mesh.materials.append(_material(bpy, "sphere_mat", (0.9, 0.3, 0.2)))
        scene.collection.objects.link(ob)
    if "mover" in spec:
        ob = _box(bpy, "mover", mover_center(1), spec["mover"][2], (0.9, 0.8, 0.1))
        for f in (1, FRAMES):
            ob.location = mover_center(f)
            ob.keyframe_insert("location", frame=f)
        from scenes import _linear

        _linear(bpy, ob)
    if name == "terrain":
        t = spec
        mesh = bpy.data.meshes.new("terrain")
        bm = bmesh.new()
        bmesh.ops.create_grid(bm, x_segments=t["segments"], y_segments=t["segments"],
                              size=t["size"] / 2)
        for v in bm.verts:
            v.co.z = terrain_height(v.co.x, v.co.y)
        bm.to_mesh(mesh)
        bm.free()
        ob = bpy.data.objects.new("terrain", mesh)
        mesh.materials.append(_material(bpy, "terrain_mat", (0.3, 0.6, 0.2)))
        scene.collection.objects.link(ob)
    light = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    light.rotation_euler = (0.6, 0.2, 0.0)
    scene.collection.objects.link(light)
    if name in ("interior", "moving"):
        lamp = bpy.data.objects.new("lamp", bpy.data.lights.new("lamp", "POINT"))
        lamp.location = (0.0, 0.0, 2.5)
        lamp.data.energy = 500.0
        scene.collection.objects.link(lamp)
    assert scene.camera is None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for n in sys.argv[2:] or list(SPECS):
        build(n, out / f"{n}.blend")
