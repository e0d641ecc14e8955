# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the small animated test scenes with ``bpy`` and save them as .blend files.

Run it with the bpy wheel's Python (it is also what the demo uses)::

    python tests/scenes.py OUT_DIR [NAME ...]

Every scene is described by numbers the tests know (positions, sizes, speeds), listed in
:data:`SPECS` so that a test can compute the analytic ground truth without opening the file.
Units are metres; the camera looks down -Z of its own frame.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

# Scene parameters the tests rely on. Frames 1..FRAMES, 24 fps unless said otherwise.
FRAMES = 24
CUBE_SPEED = 0.1  # m per frame along +X in "basic"
SPECS = {
    "basic": dict(desc="static camera 10 m above a ground plane looking down; a 1 m cube "
                       "slides +X at 0.1 m/frame; a sphere is static",
                  cam_loc=(0.0, 0.0, 10.0), cam_rot=(0.0, 0.0, 0.0), lens=50.0, sensor=36.0,
                  fit="AUTO", shift=(0.0, 0.0), res=(64, 48), aspect=(1.0, 1.0)),
    "orbit": dict(desc="camera moves along +Y at 0.05 m/frame while looking down at a static "
                       "scene (for reprojection tests)",
                  cam_loc=(0.0, -1.0, 8.0), cam_rot=(math.radians(10), 0.0, 0.0), lens=35.0,
                  sensor=36.0, fit="AUTO", shift=(0.0, 0.0), res=(64, 48), aspect=(1.0, 1.0)),
    "portrait_vertical": dict(desc="portrait image, VERTICAL sensor fit, lens shift",
                              cam_loc=(0.5, -0.3, 9.0), cam_rot=(0.0, 0.0, 0.2), lens=40.0,
                              sensor=24.0, fit="VERTICAL", shift=(0.1, -0.05), res=(40, 64),
                              aspect=(1.0, 1.0)),
    "wide_horizontal_aspect": dict(desc="HORIZONTAL fit, non-square pixels, 50% resolution",
                                   cam_loc=(-0.4, 0.2, 11.0), cam_rot=(0.05, -0.05, 0.0),
                                   lens=30.0, sensor=32.0, fit="HORIZONTAL", shift=(-0.08, 0.12),
                                   res=(128, 80), aspect=(2.0, 1.0), percentage=50),
}


def _clear(bpy) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)


def _material(bpy, name: str, color, index: int = 0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    mat.pass_index = index
    return mat


def _mesh_object(bpy, name: str, kind: str, location, size: float, color, collection):
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if kind == "cube":
        bmesh.ops.create_cube(bm, size=size)
    elif kind == "plane":
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2)
    elif kind == "sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=12, radius=size / 2)
        for f in bm.faces:
            f.smooth = True
    bm.to_mesh(mesh)
    bm.free()
    ob = bpy.data.objects.new(name, mesh)
    ob.location = location
    ob.data.materials.append(_material(bpy, f"{name}_mat", color))
    collection.objects.link(ob)
    return ob


def build(name: str, path: str | Path) -> Path:
    """Build scene ``name`` of :data:`SPECS` and save it to ``path``."""
    import bpy

    if name in GT_SPECS:
        return build_gt(name, path)
    spec = SPECS[name]
    _clear(bpy)
    scene = bpy.context.scene
    scene.name = name
    scene.frame_start, scene.frame_end = 1, FRAMES
    scene.render.fps = 24
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = spec["res"]
    scene.render.resolution_percentage = spec.get("percentage", 100)
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = spec["aspect"]
    scene.cycles.samples = 4
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    if bg is not None:
        bg.inputs["Strength"].default_value = 0.5
    scene.world = world

    props = bpy.data.collections.new("Props")
    ground = bpy.data.collections.new("Ground")
    scene.collection.children.link(props)
    scene.collection.children.link(ground)

    _mesh_object(bpy, "Ground", "plane", (0, 0, 0), 40.0, (0.6, 0.6, 0.6), ground)
    cube = _mesh_object(bpy, "Cube", "cube", (-1.0, 0.0, 0.5), 1.0, (0.8, 0.2, 0.1), props)
    cube["dataset_class"] = "box"
    _mesh_object(bpy, "Sphere", "sphere", (1.5, 1.0, 0.5), 1.0, (0.1, 0.3, 0.8), props)
    if name == "basic":
        for f in (1, FRAMES):
            cube.location.x = -1.0 + CUBE_SPEED * (f - 1)
            cube.keyframe_insert("location", index=0, frame=f)
        _linear(bpy, cube)

    sun_data = bpy.data.lights.new("Sun", "SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("Sun", sun_data)
    sun.rotation_euler = (0.6, 0.2, 0.3)
    scene.collection.objects.link(sun)

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = spec["lens"]
    cam_data.sensor_width = spec["sensor"]
    cam_data.sensor_height = spec["sensor"] * 0.75
    cam_data.sensor_fit = spec["fit"]
    cam_data.shift_x, cam_data.shift_y = spec["shift"]
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = spec["cam_loc"]
    cam.rotation_euler = spec["cam_rot"]
    scene.collection.objects.link(cam)
    scene.camera = cam
    if name == "orbit":
        for f in (1, FRAMES):
            cam.location.y = spec["cam_loc"][1] + 0.05 * (f - 1)
            cam.keyframe_insert("location", index=1, frame=f)
        _linear(bpy, cam)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


def _linear(bpy, ob) -> None:
    """Make every keyframe of ``ob`` linear (constant speed, no easing)."""
    ad = ob.animation_data
    if ad is None or ad.action is None:
        return
    compat = _compat()
    for fc in compat(ad.action):
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"


def _compat():
    import bpy

    if "fcurves" in bpy.types.Action.bl_rna.properties:
        return lambda action: list(action.fcurves)

    def layered(action):
        out = []
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    out.extend(bag.fcurves)
        return out

    return layered


def build_all(out_dir: str | Path, names=None) -> list[Path]:
    out = Path(out_dir)
    return [build(n, out / f"{n}.blend") for n in (names or SPECS)]


# -- Ground-truth oracle scenes (tests/test_ground_truth.py) ----------------------------------------
# Camera at the origin looking down -Z (identity rotation) unless said otherwise; 64x48 px, lens
# 50 mm on a 36 mm sensor, so fx = fy = 64 * 50 / 36 px, cx = 32, cy = 24.
GT_RES = (64, 48)
GT_LENS = 50.0
GT_SENSOR = 36.0
GT_FX = GT_RES[0] * GT_LENS / GT_SENSOR
GT_SPECS = {
    "gt_planes": dict(desc="frame 1: a 40 m plane facing the camera at distance 7.5; frame 2: the "
                           "same plane through (0, 0, -7.5) tilted by 30 deg about the camera's x "
                           "axis (constant keys)",
                      distance=7.5, tilt_deg=30.0),
    "gt_cube": dict(desc="camera at (0.4, -6, 3) looking at the origin, rotating about its view "
                         "axis by 10 deg per frame (frames 1-4); a 2 m cube at the origin rotated "
                         "(20, 35, 15) deg (XYZ Euler); a 1.6 m sphere at (2.2, 1.5, 0) and a 9 m "
                         "ground square at z = -2 (sky around it); classes from "
                         "the 'dataset_class' property or the collection",
                    cube_rot_deg=(20.0, 35.0, 15.0), cam_loc=(0.4, -6.0, 3.0), roll_deg=10.0),
    "gt_flow_object": dict(desc="static camera; a 2 m quad facing the camera at distance 6 moves "
                                "so that its image moves (+1.5, -1.0) px/frame (u right, v down) "
                                "from frame 1 to 3 and (+2.5, +0.5) px/frame from 3 to 5; a static "
                                "backdrop at distance 12",
                           distance=6.0, backdrop=12.0, px_before=(1.5, -1.0),
                           px_after=(2.5, 0.5)),
    "gt_camera_motion": dict(desc="static ground, cube and sphere; the camera translates and "
                                  "turns a little every frame (frames 1-5, linear keys)",
                             cam_loc0=(0.0, -4.0, 6.0), cam_loc1=(0.8, -3.2, 6.4),
                             cam_rot0_deg=(35.0, 0.0, 0.0), cam_rot1_deg=(38.0, 4.0, 6.0)),
}


def _gt_base(bpy, name: str, frames: int):
    _clear(bpy)
    scene = bpy.context.scene
    scene.name = name
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.fps = 24
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = GT_RES
    scene.render.resolution_percentage = 100
    scene.cycles.samples = 4
    world = bpy.data.worlds.new("World")
    scene.world = world
    sun_data = bpy.data.lights.new("Sun", "SUN")
    sun = bpy.data.objects.new("Sun", sun_data)
    sun.rotation_euler = (0.6, 0.2, 0.3)
    scene.collection.objects.link(sun)
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens, cam_data.sensor_width, cam_data.sensor_fit = GT_LENS, GT_SENSOR, "HORIZONTAL"
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    props = bpy.data.collections.new("Props")
    ground = bpy.data.collections.new("Ground")
    scene.collection.children.link(props)
    scene.collection.children.link(ground)
    return scene, cam, props, ground


def _keys(bpy, ob, path: str, values: dict, interpolation: str = "LINEAR") -> None:
    for f, v in values.items():
        setattr(ob, path, v)
        ob.keyframe_insert(path, frame=f)
    for fc in _compat()(ob.animation_data.action):
        for kp in fc.keyframe_points:
            kp.interpolation = interpolation


def build_gt(name: str, path: str | Path) -> Path:
    """Build oracle scene ``name`` of :data:`GT_SPECS` and save it to ``path``."""
    import bpy

    spec = GT_SPECS[name]
    if name == "gt_planes":
        scene, cam, props, ground = _gt_base(bpy, name, 2)
        plane = _mesh_object(bpy, "Wall", "plane", (0.0, 0.0, -spec["distance"]), 40.0,
                             (0.5, 0.5, 0.5), props)
        _keys(bpy, plane, "rotation_euler", {1: (0.0, 0.0, 0.0),
                                             2: (math.radians(spec["tilt_deg"]), 0.0, 0.0)},
              "CONSTANT")
    elif name == "gt_cube":
        scene, cam, props, ground = _gt_base(bpy, name, 4)
        cube = _mesh_object(bpy, "Cube", "cube", (0.0, 0.0, 0.0), 2.0, (0.8, 0.2, 0.1), props)
        cube.rotation_euler = [math.radians(a) for a in spec["cube_rot_deg"]]
        cube["dataset_class"] = "box"
        _mesh_object(bpy, "Sphere", "sphere", (2.2, 1.5, 0.0), 1.6, (0.1, 0.3, 0.8), props)
        _mesh_object(bpy, "Ground", "plane", (0.0, 0.0, -2.0), 9.0, (0.6, 0.6, 0.6), ground)
        cam.location = spec["cam_loc"]
        look = -cam.location.normalized()
        cam.rotation_mode = "QUATERNION"
        q0 = look.to_track_quat("-Z", "Y")
        rolls = {}
        from mathutils import Quaternion

        for f in range(1, 5):
            roll = Quaternion((0.0, 0.0, 1.0), math.radians(spec["roll_deg"]) * (f - 1))
            rolls[f] = q0 @ roll
        _keys(bpy, cam, "rotation_quaternion", rolls, "CONSTANT")
    elif name == "gt_flow_object":
        scene, cam, props, ground = _gt_base(bpy, name, 5)
        d = spec["distance"]
        quad = _mesh_object(bpy, "Quad", "plane", (0.0, 0.0, -d), 2.0, (0.8, 0.8, 0.2), props)
        _mesh_object(bpy, "Backdrop", "plane", (0.0, 0.0, -spec["backdrop"]), 60.0,
                     (0.3, 0.3, 0.3), ground)
        (a, b), (c, e) = spec["px_before"], spec["px_after"]
        m = d / GT_FX  # metres per pixel at the quad's depth; v down = world -y
        loc1 = (-2.0 * a * m, 2.0 * b * m, -d)
        loc3 = (0.0, 0.0, -d)
        loc5 = (2.0 * c * m, -2.0 * e * m, -d)
        _keys(bpy, quad, "location", {1: loc1, 3: loc3, 5: loc5})
    elif name == "gt_camera_motion":
        scene, cam, props, ground = _gt_base(bpy, name, 5)
        _mesh_object(bpy, "Ground", "plane", (0.0, 0.0, 0.0), 60.0, (0.6, 0.6, 0.6), ground)
        _mesh_object(bpy, "Cube", "cube", (-0.5, 1.0, 0.75), 1.5, (0.8, 0.2, 0.1), props)
        _mesh_object(bpy, "Sphere", "sphere", (1.4, 2.0, 0.8), 1.6, (0.1, 0.3, 0.8), props)
        _keys(bpy, cam, "location", {1: spec["cam_loc0"], 5: spec["cam_loc1"]})
        _keys(bpy, cam, "rotation_euler", {1: [math.radians(x) for x in spec["cam_rot0_deg"]],
                                           5: [math.radians(x) for x in spec["cam_rot1_deg"]]})
    else:
        raise KeyError(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python tests/scenes.py OUT_DIR [NAME ...]", file=sys.stderr)
        sys.exit(2)
    for p in build_all(sys.argv[1], sys.argv[2:] or None):
        print(p)
    sys.stdout.flush()
    import os

    os._exit(0)
