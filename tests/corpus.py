# SPDX-License-Identifier: GPL-3.0-or-later
"""The production test corpus: scenes as artists make them, built by code (no binary assets).

Run it with a bpy Python::

    python tests/corpus.py OUT_DIR [NAME ...]

Every scene is described in :data:`CORPUS` by the numbers its oracle needs, so that the tests
compute the ground truth without opening the file:

* ``ramp_*`` / ``cam_*`` (time sources): a tilted plane ("Ramp", z = -D + S*x in its own frame)
  fills the view of a 64x48 camera (lens 50, sensor 36) at the origin looking down -Z. One time
  source moves the ramp along +X by ``x0(t)`` or moves/turns the camera; :func:`motion` gives the
  analytic state at any time ``t`` of the file's own clock (frames, possibly fractional).
* ``refuse_*``: a time source that no stretch puts on the remapped clock; the multiplier must be
  refused with ``refusal`` in the message.
* other scenes: see their ``desc``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

RES = (64, 48)
LENS, SENSOR = 50.0, 36.0
FX = RES[0] * LENS / SENSOR  # px per unit of x/z
D, S = 6.0, 0.3  # ramp: distance at x = 0 and slope dz/dx
V = 0.05  # scene units per frame of the file's own clock
FPS = 24

_TS = "time source"
CORPUS: dict[str, dict] = {
    "ramp_keyframes": dict(kind=_TS, desc="ramp moved by linear location keyframes",
                           range=(1, 12), t0=3.0),
    "ramp_nla": dict(kind=_TS, desc="ramp moved by an NLA strip (starts at 5, scale 2) of an "
                                    "action keyed 1..11; no active action", range=(5, 20), t0=6.0),
    "ramp_driver": dict(kind=_TS, desc="ramp location.x driven by the expression on 'frame'",
                        range=(1, 12), t0=3.0),
    "ramp_gn_sim": dict(kind=_TS, desc="geometry-nodes simulation zone moving the ramp by "
                                       "velocity x delta time every step", range=(1, 12), t0=4.0,
                        no_flow=True),
    "ramp_scene_time": dict(kind=_TS, desc="geometry nodes move the ramp by V x (Scene Time "
                                           "frame - 1)", range=(1, 12), t0=3.0),
    "ramp_armature": dict(kind=_TS, desc="the ramp skinned (weight 1) to a bone that an action "
                                         "slides along +X (pose-bone location keys)",
                          range=(1, 12), t0=3.0),
    "ramp_shape_key": dict(kind=_TS, desc="the ramp's shape key 'Slid' (every vertex +20V in X) "
                                          "keyed 0 at frame 1 to 1 at frame 21",
                           range=(1, 12), t0=3.0),
    "ramp_collection_instance": dict(kind=_TS, desc="the ramp drawn as a collection instance "
                                                    "by the empty 'Holder', whose location.x is "
                                                    "keyed linearly", range=(1, 12), t0=3.0,
                                     ids_missing=True),
    "ramp_gn_scatter": dict(kind=_TS, desc="the ramp instanced on one point by geometry nodes "
                                           "(Instance on Points) of the object 'Scatter', whose "
                                           "location.x is keyed linearly",
                            range=(1, 12), t0=3.0),
    "ramp_particles": dict(kind=_TS, desc="the ramp instanced by one particle (born at frame 1, "
                                          "no gravity) moving along +X at V per frame (particle "
                                          "velocity V / 0.04 per second of particle time)",
                           range=(1, 12), t0=3.0),
    "cam_follow_path": dict(kind=_TS, desc="camera on a Follow Path constraint along +X, the "
                                           "path's evaluation time keyed linearly",
                            range=(1, 12), t0=3.0),
    "cam_track_to": dict(kind=_TS, desc="camera at (0, -2, 0) with Track To on an empty moving "
                                        "along +X at z = -6", range=(1, 12), t0=3.0),
    "cam_parent_chain": dict(kind=_TS, desc="camera parented through a chain of scaled empties "
                                            "(2 and 0.75); the root turns 1 degree per frame "
                                            "about Z (linear keys)", range=(1, 12), t0=3.0),
    "neg_scale": dict(kind="still", desc="a box with scale (-1.2, 0.8, 0.5), rotated (20, 30, 10) "
                                         "degrees, centred at (0.3, 0.2, -6); nothing behind it",
                      centre=(0.3, 0.2, -6.0), rot_deg=(20.0, 30.0, 10.0),
                      scale=(-1.2, 0.8, 0.5)),
    "centimetres": dict(kind="still", desc="the static ramp in a scene whose unit scale is 0.01 "
                                           "(centimetres): depth stays in scene units",
                        unit_scale=0.01),
    "hide_render": dict(kind="still", desc="a blocker plane at distance 3 in front of the static "
                                           "ramp, hide_render keyed: rendered up to frame 4, "
                                           "hidden from frame 5 (constant keys)",
                        blocker_d=3.0, hidden_from=5),
    "frame_edges": dict(kind="still", desc="the ramp moved by linear keys (frame: x0) -5: 0, "
                                           "5: 10V, 100000: 0, 100010: 10V; scene range "
                                           "-5..100010, frame_step 2, Eevee as the file's engine",
                        range=(-5, 100010), step=2,
                        keys={-5: 0.0, 5: 10 * V, 100000: 0.0, 100010: 10 * V}),
    "view_layer": dict(kind="still", desc="three 0.4-unit squares at distance 3 in front of the "
                                          "static ramp, x = -0.6, 0, 0.6, in collections "
                                          "'Excluded' (excluded from the view layer), 'Holdout' "
                                          "and 'IndirectOnly'",
                       squares={"Excluded": -0.6, "Holdout": 0.0, "IndirectOnly": 0.6}, d=3.0),
    "foliage": dict(kind="still", desc="a 'Leaf' plane at distance 3 in front of the static ramp "
                                       "whose material alpha is 0.3 for x < 0 and 0.8 for x > 0 "
                                       "(Principled Alpha); the view layer's pass alpha "
                                       "threshold is the default 0.5",
                    d=3.0, alpha=(0.3, 0.8)),
    "linked_present": dict(kind="linked", desc="the ramp linked from the library "
                                               "'asset_lib.blend' next to the file",
                           library="asset_lib.blend"),
    "linked_name_clash": dict(kind="linked", desc="the ramp 'Asset' linked from "
                                                  "'clash_lib.blend' into the collection "
                                                  "'Library Assets' and a local quad also named "
                                                  "'Asset' in 'Props', in front of it",
                              library="clash_lib.blend"),
    "linked_missing": dict(kind="linked", desc="the ramp linked from 'gone_lib.blend', which is "
                                               "deleted after saving; a static 'Stand' plane at "
                                               "distance 4 stays", library="gone_lib.blend"),
    "textures": dict(kind="still", desc="the ramp with a packed texture and a 'Lost' texture "
                                        "whose file does not exist"),
    "rigid_drop": dict(kind="still", desc="the ramp as an active rigid body, gravity (8, 0, 0) "
                                          "units/s^2 along +X, nothing to hit, cache baked "
                                          "frames 1..12", gravity=8.0, range=(1, 12), bake=True),
    "rigid_drop_unbaked": dict(kind="still", desc="rigid_drop without a baked cache",
                               gravity=8.0, range=(1, 12), bake=False),
    "refuse_rigid_body": dict(kind="refuse", desc="a crate dropping under a rigid-body world",
                              refusal="rigid-body cache of 'Crate' cannot be stretched"),
    "refuse_cloth": dict(kind="refuse", desc="a cloth plane", refusal="cloth simulation of 'Flag'"),
    "refuse_image_sequence": dict(kind="refuse", desc="the ramp textured with an image sequence",
                                  refusal="image sequence texture 'frames'"),
    "refuse_frame_current": dict(kind="refuse", desc="a driver reading scene.frame_current",
                                 refusal="reads frame_current"),
    "two_scenes": dict(kind="scenes", desc="two scenes: 'Main' (active, frames 1..10, camera "
                                           "CamMain) and 'Other' (frames 20..25, 30 fps, camera "
                                           "CamOther, ramp 1 unit further)",
                       scenes={"Main": dict(range=(1, 10), fps=24, camera="CamMain", d=D),
                               "Other": dict(range=(20, 25), fps=30, camera="CamOther",
                                             d=D + 1.0)}),
}
TIME_SOURCES = [n for n, s in CORPUS.items() if s["kind"] == _TS]
REFUSALS = [n for n, s in CORPUS.items() if s["kind"] == "refuse"]


# -- analytic motion (pure Python: the tests use it) ------------------------------------------------
def x0(name: str, t: float) -> float:
    """The ramp's offset along +X at time ``t`` of the file's own clock (scene units)."""
    if name == "frame_edges":
        keys = sorted(CORPUS[name]["keys"].items())
        for (fa, xa), (fb, xb) in zip(keys, keys[1:]):
            if fa <= t <= fb:
                return xa + (xb - xa) * (t - fa) / (fb - fa)
        raise ValueError(t)
    if name in ("ramp_keyframes", "ramp_driver", "ramp_gn_sim", "ramp_particles",
                "ramp_scene_time", "ramp_armature", "ramp_shape_key",
                "ramp_collection_instance", "ramp_gn_scatter"):
        return V * (t - 1.0)
    if name == "ramp_nla":
        return V * (t - 5.0)
    return 0.0


def camera_location(name: str, t: float) -> tuple[float, float, float]:
    if name == "cam_follow_path":
        return (V * (t - 1.0), 0.0, 0.0)
    if name == "cam_track_to":
        return (0.0, -2.0, 0.0)
    if name == "cam_parent_chain":  # R_z(t - 1 degrees) applied to (1, 0, 1.5)

        a = math.radians(t - 1.0)
        return (math.cos(a), math.sin(a), 1.5)
    return (0.0, 0.0, 0.0)


def camera_rotation(name: str, t: float) -> list[list[float]] | None:
    """The camera's world rotation at ``t`` when the scene sets it directly (else None)."""

    if name == "cam_parent_chain":
        a = math.radians(t - 1.0)
        return [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]]
    if name.startswith("ramp_") or name in ("cam_follow_path", "frame_edges"):
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    return None


def target(name: str, t: float) -> tuple[float, float, float] | None:
    """Where the camera looks at time ``t`` (Track To), else None (camera looks down -Z)."""
    if name == "cam_track_to":
        return (4 * V * (t - 1.0), 0.0, -D)
    return None


# -- builders (bpy) ----------------------------------------------------------------------------
def _base(bpy, name: str, frame_range=(1, 12)):
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.name = name
    sc.frame_start, sc.frame_end = frame_range
    sc.render.fps, sc.render.fps_base = FPS, 1.0
    sc.render.engine = "CYCLES"
    sc.render.resolution_x, sc.render.resolution_y = RES
    sc.render.resolution_percentage = 100
    sc.cycles.samples = 1
    world = bpy.data.worlds.new("World")
    sc.world = world
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.3, 0.2, 0.0)
    sc.collection.objects.link(sun)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = LENS, SENSOR, "HORIZONTAL"
    sc.collection.objects.link(cam)
    sc.camera = cam
    return sc, cam


def _ramp(bpy, sc, name="Ramp", d=D, collection=None):
    me = bpy.data.meshes.new(name)
    xs, ys = (-8.0, 8.0), (-5.0, 5.0)
    me.from_pydata([(x, y, -d + S * x) for y in ys for x in xs], [], [(0, 1, 3, 2)])
    ob = bpy.data.objects.new(name, me)
    mat = bpy.data.materials.new(name + "Mat")
    ob.data.materials.append(mat)
    (collection or sc.collection).objects.link(ob)
    return ob


def _linear_keys(bpy, idb, path: str, keys: dict, index: int = -1) -> None:
    for f, v in keys.items():
        if index >= 0:
            getattr(idb, path)[index] = v
        else:
            setattr(idb, path, v)
        idb.keyframe_insert(path, index=index, frame=f)
    for fc in _fcurves(idb.animation_data.action):
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"


def _fcurves(action) -> list:
    import bpy

    if "layers" not in bpy.types.Action.bl_rna.properties:
        return list(action.fcurves)
    return [fc for layer in action.layers for strip in layer.strips
            for bag in strip.channelbags for fc in bag.fcurves]


def _gn_group(bpy, name: str):
    g = bpy.data.node_groups.new(name, "GeometryNodeTree")
    g.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    g.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    return g, g.nodes.new("NodeGroupInput"), g.nodes.new("NodeGroupOutput")


def build_time_source(bpy, name: str) -> None:
    spec = CORPUS[name]
    sc, cam = _base(bpy, name, spec["range"])
    ramp = _ramp(bpy, sc)
    if name == "ramp_keyframes":
        _linear_keys(bpy, ramp, "location", {1: 0.0, 21: 20 * V}, index=0)
    elif name == "ramp_nla":
        _linear_keys(bpy, ramp, "location", {1: 0.0, 11: 20 * V}, index=0)
        ad = ramp.animation_data
        strip = ad.nla_tracks.new().strips.new("Walk", 5, ad.action)
        strip.scale = 2.0
        ad.action = None
    elif name == "ramp_driver":
        fc = ramp.driver_add("location", 0)
        fc.driver.type = "SCRIPTED"
        fc.driver.expression = f"{V}*(frame-1)"
    elif name == "ramp_gn_sim":
        g, gi, go = _gn_group(bpy, "Slide")
        si = g.nodes.new("GeometryNodeSimulationInput")
        so = g.nodes.new("GeometryNodeSimulationOutput")
        si.pair_with_output(so)
        sp = g.nodes.new("GeometryNodeSetPosition")
        vx = g.nodes.new("ShaderNodeMath")
        vx.operation = "MULTIPLY"
        vx.inputs[1].default_value = V * FPS  # units per second
        cx = g.nodes.new("ShaderNodeCombineXYZ")
        g.links.new(gi.outputs[0], si.inputs["Geometry"])
        g.links.new(si.outputs["Geometry"], sp.inputs["Geometry"])
        g.links.new(si.outputs["Delta Time"], vx.inputs[0])
        g.links.new(vx.outputs[0], cx.inputs["X"])
        g.links.new(cx.outputs[0], sp.inputs["Offset"])
        g.links.new(sp.outputs[0], so.inputs["Geometry"])
        g.links.new(so.outputs["Geometry"], go.inputs[0])
        ramp.modifiers.new("Slide", "NODES").node_group = g
    elif name == "ramp_scene_time":
        g, gi, go = _gn_group(bpy, "Clock")
        tn = g.nodes.new("GeometryNodeInputSceneTime")
        sub = g.nodes.new("ShaderNodeMath")
        sub.operation = "MULTIPLY_ADD"
        sub.inputs[1].default_value, sub.inputs[2].default_value = V, -V
        sp = g.nodes.new("GeometryNodeSetPosition")
        cx = g.nodes.new("ShaderNodeCombineXYZ")
        for x, y in ((gi.outputs[0], sp.inputs["Geometry"]), (tn.outputs["Frame"], sub.inputs[0]),
                     (sub.outputs[0], cx.inputs["X"]), (cx.outputs[0], sp.inputs["Offset"]),
                     (sp.outputs[0], go.inputs[0])):
            g.links.new(x, y)
        ramp.modifiers.new("Clock", "NODES").node_group = g
    elif name == "ramp_armature":
        arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
        sc.collection.objects.link(arm)
        bpy.context.view_layer.objects.active = arm
        bpy.ops.object.mode_set(mode="EDIT")
        bone = arm.data.edit_bones.new("Slide")
        bone.head, bone.tail, bone.roll = (0.0, 0.0, -D), (0.0, 1.0, -D), 0.0
        bpy.ops.object.mode_set(mode="OBJECT")
        group = ramp.vertex_groups.new(name="Slide")
        group.add(list(range(len(ramp.data.vertices))), 1.0, "REPLACE")
        ramp.modifiers.new("Skin", "ARMATURE").object = arm
        pb = arm.pose.bones["Slide"]  # bone x = world x (bone along +Y, roll 0)
        for f, x in ((1, 0.0), (21, 20 * V)):
            pb.location.x = x
            pb.keyframe_insert("location", index=0, frame=f)
        for fc in _fcurves(arm.animation_data.action):
            for kp in fc.keyframe_points:
                kp.interpolation = "LINEAR"
    elif name == "ramp_shape_key":
        ramp.shape_key_add(name="Basis")
        key = ramp.shape_key_add(name="Slid")
        for p in key.data:
            p.co.x += 20 * V
        for f, v in ((1, 0.0), (21, 1.0)):
            key.value = v
            key.keyframe_insert("value", frame=f)
        for fc in _fcurves(ramp.data.shape_keys.animation_data.action):
            for kp in fc.keyframe_points:
                kp.interpolation = "LINEAR"
    elif name == "ramp_collection_instance":
        sc.collection.objects.unlink(ramp)
        coll = bpy.data.collections.new("RampAsset")
        coll.objects.link(ramp)
        holder = bpy.data.objects.new("Holder", None)
        holder.instance_type, holder.instance_collection = "COLLECTION", coll
        sc.collection.objects.link(holder)
        _linear_keys(bpy, holder, "location", {1: 0.0, 21: 20 * V}, index=0)
    elif name == "ramp_gn_scatter":
        ramp.location = (0.0, 0.0, 100.0)  # behind the camera: seen only as the instance
        me = bpy.data.meshes.new("Scatter")
        me.from_pydata([(0.0, 0.0, 0.0)], [], [])
        scatter = bpy.data.objects.new("Scatter", me)
        sc.collection.objects.link(scatter)
        g, gi, go = _gn_group(bpy, "ScatterG")
        iop = g.nodes.new("GeometryNodeInstanceOnPoints")
        info = g.nodes.new("GeometryNodeObjectInfo")
        info.inputs["Object"].default_value = ramp
        info.inputs["As Instance"].default_value = True
        for x, y in ((gi.outputs[0], iop.inputs["Points"]),
                     (info.outputs["Geometry"], iop.inputs["Instance"]),
                     (iop.outputs[0], go.inputs[0])):
            g.links.new(x, y)
        scatter.modifiers.new("Scatter", "NODES").node_group = g
        _linear_keys(bpy, scatter, "location", {1: 0.0, 21: 20 * V}, index=0)
    elif name == "ramp_particles":
        ramp.location = (0.0, 0.0, 100.0)  # behind the camera: seen only as the instance
        # A particle's instance is turned -90 degrees about Z (measured): pre-turn the mesh.
        import mathutils

        ramp.data.transform(mathutils.Matrix.Rotation(math.pi / 2, 4, "Z"))
        me = bpy.data.meshes.new("Emitter")
        me.from_pydata([(0.0, 0.0, 0.0)], [], [])
        em = bpy.data.objects.new("Emitter", me)
        sc.collection.objects.link(em)
        st = em.modifiers.new("Particles", "PARTICLE_SYSTEM").particle_system.settings
        st.count, st.frame_start, st.frame_end, st.lifetime = 1, 1, 1, 1000
        st.emit_from, st.normal_factor = "VERT", 0.0
        st.object_align_factor = (V / 0.04, 0.0, 0.0)
        st.effector_weights.gravity = 0.0
        st.render_type, st.instance_object, st.particle_size = "OBJECT", ramp, 1.0
        em.show_instancer_for_render = False
    elif name == "cam_follow_path":
        cu = bpy.data.curves.new("Rail", "CURVE")
        cu.dimensions = "3D"
        sp = cu.splines.new("POLY")
        sp.points.add(1)
        sp.points[0].co = (0.0, 0.0, 0.0, 1.0)
        sp.points[1].co = (40 * V, 0.0, 0.0, 1.0)
        cu.use_path, cu.path_duration = True, 40
        rail = bpy.data.objects.new("Rail", cu)
        sc.collection.objects.link(rail)
        _linear_keys(bpy, cu, "eval_time", {1: 0.0, 41: 40.0})
        c = cam.constraints.new("FOLLOW_PATH")
        c.target, c.use_curve_follow = rail, False
    elif name == "cam_track_to":
        cam.location = camera_location(name, 1.0)
        tgt = bpy.data.objects.new("Target", None)
        sc.collection.objects.link(tgt)
        tgt.location = target(name, 1.0)
        _linear_keys(bpy, tgt, "location", {1: 0.0, 21: 80 * V}, index=0)
        c = cam.constraints.new("TRACK_TO")
        c.target, c.track_axis, c.up_axis = tgt, "TRACK_NEGATIVE_Z", "UP_Y"


    elif name == "cam_parent_chain":
        rig = bpy.data.objects.new("Rig", None)
        arm = bpy.data.objects.new("Arm", None)
        for o in (rig, arm):
            sc.collection.objects.link(o)
        rig.scale = (2.0, 2.0, 2.0)
        arm.parent, arm.location, arm.scale = rig, (0.5, 0.0, 0.0), (0.75, 0.75, 0.75)
        cam.parent, cam.location = arm, (0.0, 0.0, 1.0)

        _linear_keys(bpy, rig, "rotation_euler", {1: 0.0, 21: math.radians(20.0)}, index=2)


def build_still(bpy, name: str) -> None:

    spec = CORPUS[name]
    sc, cam = _base(bpy, name)
    if name == "neg_scale":
        me = bpy.data.meshes.new("Box")
        me.from_pydata([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], [],
                       [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
                        (1, 5, 7, 3)])
        me.validate()
        me.update()
        box = bpy.data.objects.new("Box", me)
        box.location = spec["centre"]
        box.rotation_euler = [math.radians(a) for a in spec["rot_deg"]]
        box.scale = spec["scale"]
        sc.collection.objects.link(box)
        return
    _ramp(bpy, sc)
    if name == "centimetres":
        sc.unit_settings.system = "METRIC"
        sc.unit_settings.scale_length = spec["unit_scale"]
    elif name == "frame_edges":
        ramp = sc.objects["Ramp"]
        a, b = spec["range"]
        sc.frame_end, sc.frame_start, sc.frame_step = b, a, spec["step"]
        _linear_keys(bpy, ramp, "location", spec["keys"], index=0)
        sc.render.engine = next(e for e in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE")
                                if e in {i.identifier for i in bpy.types.RenderSettings.bl_rna
                                         .properties["engine"].enum_items})
    elif name == "view_layer":
        for coll_name, x in spec["squares"].items():
            coll = bpy.data.collections.new(coll_name)
            sc.collection.children.link(coll)
            me = bpy.data.meshes.new(coll_name + "Sq")
            me.from_pydata([(-.2, -.2, 0), (.2, -.2, 0), (.2, .2, 0), (-.2, .2, 0)], [],
                           [(0, 1, 2, 3)])
            sq = bpy.data.objects.new(coll_name + "Sq", me)
            sq.location = (x, 0.0, -spec["d"])
            coll.objects.link(sq)
        lc = sc.view_layers[0].layer_collection.children
        lc["Excluded"].exclude = True
        lc["Holdout"].holdout = True
        lc["IndirectOnly"].indirect_only = True
    elif name == "foliage":
        me = bpy.data.meshes.new("Leaf")
        me.from_pydata([(-1, -.6, 0), (1, -.6, 0), (1, .6, 0), (-1, .6, 0)], [], [(0, 1, 2, 3)])
        leaf = bpy.data.objects.new("Leaf", me)
        leaf.location = (0.0, 0.0, -spec["d"])
        sc.collection.objects.link(leaf)
        mat = bpy.data.materials.new("LeafMat")
        mat.use_nodes = True
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]
        coord = nt.nodes.new("ShaderNodeTexCoord")
        sep = nt.nodes.new("ShaderNodeSeparateXYZ")
        gt = nt.nodes.new("ShaderNodeMath")
        gt.operation, gt.inputs[1].default_value = "GREATER_THAN", 0.0
        mix = nt.nodes.new("ShaderNodeMapRange")
        lo, hi = spec["alpha"]
        mix.inputs["To Min"].default_value, mix.inputs["To Max"].default_value = lo, hi
        for x, y in ((coord.outputs["Object"], sep.inputs[0]), (sep.outputs["X"], gt.inputs[0]),
                     (gt.outputs[0], mix.inputs["Value"]), (mix.outputs["Result"],
                                                            bsdf.inputs["Alpha"])):
            nt.links.new(x, y)
        leaf.data.materials.append(mat)
    elif name == "textures":
        mat = sc.objects["Ramp"].data.materials[0]
        mat.use_nodes = True
        packed = bpy.data.images.new("Packed", 4, 4)
        packed.pixels = [0.2, 0.5, 0.8, 1.0] * 16
        packed.pack()
        lost = bpy.data.images.new("Lost", 4, 4)
        lost.source, lost.filepath = "FILE", "//textures/lost.png"
        x = 0
        for img in (packed, lost):
            tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
            tex.image = img
            tex.location.x = x
            x += 300
        mix = mat.node_tree.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        nodes = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
        mat.node_tree.links.new(nodes[0].outputs[0], mix.inputs["A"])
        mat.node_tree.links.new(nodes[1].outputs[0], mix.inputs["B"])
        mat.node_tree.links.new(mix.outputs["Result"],
                                mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
    elif name.startswith("rigid_drop"):
        ramp = sc.objects["Ramp"]
        with bpy.context.temp_override(scene=sc):
            bpy.ops.rigidbody.world_add()
        rbw = sc.rigidbody_world
        rbw.collection = bpy.data.collections.new("RigidBodyWorld")
        rbw.collection.objects.link(ramp)
        ramp.rigid_body.collision_shape = "BOX"
        sc.gravity = (spec["gravity"], 0.0, 0.0)
        rbw.point_cache.frame_start, rbw.point_cache.frame_end = spec["range"]
        if spec["bake"]:
            with bpy.context.temp_override(scene=sc, point_cache=rbw.point_cache):
                bpy.ops.ptcache.bake(bake=True)
    elif name == "hide_render":
        me = bpy.data.meshes.new("Blocker")
        me.from_pydata([(-.4, -.4, 0), (.4, -.4, 0), (.4, .4, 0), (-.4, .4, 0)], [], [(0, 1, 2, 3)])
        blocker = bpy.data.objects.new("Blocker", me)
        blocker.location = (0.0, 0.0, -spec["blocker_d"])
        sc.collection.objects.link(blocker)
        for f, hide in ((1, False), (spec["hidden_from"], True)):
            blocker.hide_render = hide
            blocker.keyframe_insert("hide_render", frame=f)
        for fc in _fcurves(blocker.animation_data.action):
            for kp in fc.keyframe_points:
                kp.interpolation = "CONSTANT"


def build_linked(bpy, name: str, out_dir: Path) -> None:
    spec = CORPUS[name]
    lib = out_dir / spec["library"]
    sc, cam = _base(bpy, "Library")
    _ramp(bpy, sc, "Asset")
    bpy.ops.wm.save_as_mainfile(filepath=str(lib), compress=False)
    sc, cam = _base(bpy, name)
    with bpy.data.libraries.load(str(lib), link=True, relative=True) as (src, dst):
        dst.objects = ["Asset"]
    home = sc.collection
    if name == "linked_name_clash":  # the linked one in "Library Assets", the local one in "Props"
        home = bpy.data.collections.new("Library Assets")
        sc.collection.children.link(home)
    for ob in dst.objects:
        home.objects.link(ob)
    if name == "linked_name_clash":  # a local object with the linked one's name
        me = bpy.data.meshes.new("AssetQuad")
        me.from_pydata([(-.4, -.4, -2), (-.1, -.4, -2), (-.1, -.1, -2), (-.4, -.1, -2)], [],
                       [(0, 1, 2, 3)])
        local = bpy.data.objects.new("Asset", me)
        assert local.name == "Asset" and local.library is None
        props = bpy.data.collections.new("Props")
        sc.collection.children.link(props)
        props.objects.link(local)
    if name == "linked_missing":
        me = bpy.data.meshes.new("Stand")
        me.from_pydata([(-.3, -.3, -4), (.3, -.3, -4), (.3, .3, -4), (-.3, .3, -4)], [],
                       [(0, 1, 2, 3)])
        sc.collection.objects.link(bpy.data.objects.new("Stand", me))


def build_refusal(bpy, name: str, out_dir: Path) -> None:
    sc, cam = _base(bpy, name)
    ramp = _ramp(bpy, sc)
    if name == "refuse_rigid_body":
        me = bpy.data.meshes.new("Crate")
        me.from_pydata([(x, y, z) for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)], [],
                       [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
                        (1, 5, 7, 3)])
        crate = bpy.data.objects.new("Crate", me)
        crate.location = (0.0, 0.0, -2.0)
        sc.collection.objects.link(crate)
        with bpy.context.temp_override(scene=sc):
            bpy.ops.rigidbody.world_add()
        sc.rigidbody_world.collection = bpy.data.collections.new("RigidBodyWorld")
        sc.rigidbody_world.collection.objects.link(crate)
    elif name == "refuse_cloth":
        me = bpy.data.meshes.new("Flag")
        me.from_pydata([(0, 0, -3), (1, 0, -3), (0, 1, -3), (1, 1, -3)], [], [(0, 1, 3, 2)])
        flag = bpy.data.objects.new("Flag", me)
        sc.collection.objects.link(flag)
        flag.modifiers.new("Cloth", "CLOTH")
    elif name == "refuse_image_sequence":
        folder = out_dir / "frames"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, 4):
            im = bpy.data.images.new(f"f{i}", 2, 2)
            im.pixels = [i / 4, 0.0, 0.0, 1.0] * 4
            im.filepath_raw = str(folder / f"frame_{i:04d}.png")
            im.file_format = "PNG"
            im.save()
            bpy.data.images.remove(im)
        img = bpy.data.images.load(str(folder / "frame_0001.png"))
        img.name, img.source = "frames", "SEQUENCE"
        mat = ramp.data.materials[0]
        mat.use_nodes = True
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = img
        tex.image_user.frame_duration = 3
    elif name == "refuse_frame_current":
        fc = ramp.driver_add("location", 0)
        var = fc.driver.variables.new()
        var.name = "f"
        var.targets[0].id_type = "SCENE"
        var.targets[0].id = sc
        var.targets[0].data_path = "frame_current"
        fc.driver.expression = f"{V}*(f-1)"


def build_two_scenes(bpy) -> None:
    sc, cam = _base(bpy, "Main", CORPUS["two_scenes"]["scenes"]["Main"]["range"])
    cam.name = "CamMain"
    _ramp(bpy, sc)
    spec = CORPUS["two_scenes"]["scenes"]["Other"]
    other = bpy.data.scenes.new("Other")
    other.frame_start, other.frame_end = spec["range"]
    other.render.fps = spec["fps"]
    other.render.resolution_x, other.render.resolution_y = RES
    cam2 = bpy.data.objects.new("CamOther", bpy.data.cameras.new("CamOther"))
    cam2.data.lens, cam2.data.sensor_width, cam2.data.sensor_fit = LENS, SENSOR, "HORIZONTAL"
    other.collection.objects.link(cam2)
    other.camera = cam2
    _ramp(bpy, other, "RampOther", d=spec["d"])  # the context scene ("Main") stays active


def build(name: str, out_dir: Path) -> Path:
    import bpy

    out_dir.mkdir(parents=True, exist_ok=True)
    kind = CORPUS[name]["kind"]
    if kind == _TS:
        build_time_source(bpy, name)
    elif kind == "refuse":
        build_refusal(bpy, name, out_dir)
    elif kind == "still":
        build_still(bpy, name)
    elif kind == "linked":
        build_linked(bpy, name, out_dir)
    elif name == "two_scenes":
        build_two_scenes(bpy)
    path = out_dir / f"{name}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    if name == "linked_missing":
        (out_dir / CORPUS[name]["library"]).unlink()
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python tests/corpus.py OUT_DIR [NAME ...]", file=sys.stderr)
        sys.exit(2)
    for n in sys.argv[2:] or list(CORPUS):
        print(build(n, Path(sys.argv[1])))
    sys.stdout.flush()
    import os

    os._exit(0)
