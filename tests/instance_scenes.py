# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenes with instances, deformation and a camera cut, built by code (tests/test_instances.py,
tests/test_camera_cuts.py)::

    python tests/instance_scenes.py OUT_DIR [NAME ...]

``gt_instances`` (64x48 px, frames 1-4, camera 12 m above the origin looking down):

* collection ``Rocks`` (not in the scene) holds the 0.8 m cube ``Rock``; empties ``RockA``
  (static, at (-3, 2, 0)) and ``RockB`` (moving +0.3 m/frame in x from (-3, -1, 0)) instance it;
  empty ``PileA`` at (3, 2.5, 0) instances collection ``Pile``, whose empty ``Inner`` instances
  ``Rocks`` again (a nested collection instance);
* ``Turntable``: a 2 m square whose geometry nodes put a 0.4 m cube on each of its 4 corners
  (Instance on Points, nothing else realised), turning 15 deg/frame about z, at (0, 0, 0);
* ``Emitter``: a 2 m square at (0, -3.5, 0) with a particle system of 5 static particles (born
  at frame -5) drawn as the object ``Pebble`` (a 0.5 m cube, in the hidden collection ``Parts``);
* ``Stand``: 3 points at (-0.5 + {-0.6, 0, 0.6}, -1.6, 0) whose geometry nodes instance the real
  object ``Bolt`` (a 0.35 m cube in ``Parts``, Object Info "As Instance") on each point;
* ``Flag``: a grid at (3, -2.5, 0) with an animated shape key; ``Arm``: a bar at (-1.2, 3.2, 0)
  deformed by the armature ``Rig`` (bone turning); ``Ground``: a 30 m plane at z = -0.5;
* cameras ``CamA`` (frames 1-2) and ``CamB`` (from frame 3, bound by a timeline marker; 0.5 m
  to +x, rolled 10 deg, lens 33 mm instead of 30 mm): the camera cut is between frames 2 and 3.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

RES = (64, 48)
FRAMES = 4
CUT_FRAME = 3  # first frame of CamB
LENSES = (30.0, 33.0)  # mm on a 36 mm sensor (HORIZONTAL fit): CamA, CamB
SPECS = {
    "gt_instances": dict(desc=__doc__.split("``gt_instances``")[1].strip(), frames=FRAMES,
                         cut=CUT_FRAME, cameras=("CamA", "CamB"), lenses=LENSES,
                         camera_locations=((0.0, 0.0, 12.0), (0.5, 0.0, 12.0)),
                         instanced=("Rock", "Turntable", "Pebble", "Bolt"),
                         deforming=("Flag", "Arm"), rigid=("Ground", "Rock", "Pebble",
                                                           "Turntable", "Bolt")),
    "gt_linked": dict(desc="a linked collection instanced twice beside a local cube (see "
                           "build_linked)", linked="LibCube", linked_pass_index=1),
}


def _mesh(bpy, name, verts, faces):
    me = bpy.data.meshes.new(name)
    me.from_pydata(verts, [], faces)
    me.update()
    return me


def _cube_mesh(bpy, name, size):
    h = size / 2
    v = [(x, y, z) for z in (-h, h) for y in (-h, h) for x in (-h, h)]
    f = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return _mesh(bpy, name, v, f)


def _grid_mesh(bpy, name, size, n=1):
    h = size / 2
    verts = [(-h + size * i / n, -h + size * j / n, 0.0) for j in range(n + 1) for i in range(n + 1)]
    faces = [(j * (n + 1) + i, j * (n + 1) + i + 1, (j + 1) * (n + 1) + i + 1, (j + 1) * (n + 1) + i)
             for j in range(n) for i in range(n)]
    return _mesh(bpy, name, verts, faces)


def _obj(bpy, name, data, coll, loc=(0.0, 0.0, 0.0), color=None):
    ob = bpy.data.objects.new(name, data)
    ob.location = loc
    if color is not None and data is not None:
        mat = bpy.data.materials.new(f"{name}_mat")
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (*color, 1.0)
        data.materials.append(mat)
    coll.objects.link(ob)
    return ob


def _linear_keys(bpy, ob, path, values, index=-1):
    for f, v in values.items():
        if index < 0:
            setattr(ob, path, v)
        else:
            getattr(ob, path)[index] = v
        ob.keyframe_insert(path, frame=f, index=index)


def _gn_tree(bpy, name):
    """A new geometry-nodes tree with one geometry input and output: (tree, nodes, in, out)."""
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    n = tree.nodes
    gin, gout = n.new("NodeGroupInput"), n.new("NodeGroupOutput")
    return tree, n, gin, gout


def _gn_scatter(bpy, ob, cube_size):
    tree, n, gin, gout = _gn_tree(bpy, "Scatter")
    pts = n.new("GeometryNodeMeshToPoints")
    cube = n.new("GeometryNodeMeshCube")
    for i in range(3):
        cube.inputs["Size"].default_value[i] = cube_size
    inst = n.new("GeometryNodeInstanceOnPoints")
    setm = n.new("GeometryNodeSetMaterial")
    setm.inputs["Material"].default_value = ob.data.materials[0]
    tree.links.new(gin.outputs[0], pts.inputs["Mesh"])
    tree.links.new(pts.outputs[0], inst.inputs["Points"])
    tree.links.new(cube.outputs[0], setm.inputs["Geometry"])
    tree.links.new(setm.outputs[0], inst.inputs["Instance"])
    tree.links.new(inst.outputs[0], gout.inputs[0])
    mod = ob.modifiers.new("Scatter", "NODES")
    mod.node_group = tree


def build_linked(path: str | Path) -> Path:
    """``gt_linked``: ``lib_assets.blend`` (saved beside ``path``) holds collection ``Assets``
    with the 1 m cube ``LibCube`` (``pass_index`` 1, which the scene cannot change); the scene
    links the collection and instances it with empties ``LinkA`` at (-1.5, 0, 0) and ``LinkB``
    at (1.5, 0, 0), beside a local 1 m cube ``Local`` at (0, 1.8, 0), over ``Ground``; camera
    10 m above the origin looking down."""
    import bpy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lib = path.parent / "lib_assets.blend"
    bpy.ops.wm.read_homefile(use_empty=True)
    assets = bpy.data.collections.new("Assets")
    bpy.context.scene.collection.children.link(assets)
    cube = _obj(bpy, "LibCube", _cube_mesh(bpy, "LibCube", 1.0), assets, color=(0.8, 0.4, 0.1))
    cube.pass_index = 1
    bpy.ops.wm.save_as_mainfile(filepath=str(lib), compress=False)

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.name = "gt_linked"
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = RES
    scene.cycles.samples = 4
    scene.world = bpy.data.worlds.new("World")
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.collections = ["Assets"]
    linked = dst.collections[0]
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    for nm, x in (("LinkA", -1.5), ("LinkB", 1.5)):
        e = _obj(bpy, nm, None, props, loc=(x, 0.0, 0.0))
        e.instance_type, e.instance_collection = "COLLECTION", linked
    _obj(bpy, "Local", _cube_mesh(bpy, "Local", 1.0), props, loc=(0.0, 1.8, 0.0),
         color=(0.2, 0.5, 0.8))
    _obj(bpy, "Ground", _grid_mesh(bpy, "Ground", 30.0), props, loc=(0.0, 0.0, -0.5),
         color=(0.6, 0.6, 0.6))
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    cd = bpy.data.cameras.new("Cam")
    cd.lens, cd.sensor_width, cd.sensor_fit = 30.0, 36.0, "HORIZONTAL"
    cam = _obj(bpy, "Cam", cd, scene.collection, loc=(0.0, 0.0, 10.0))
    scene.camera = cam
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False, relative_remap=True)
    return path


def _gn_object_scatter(bpy, ob, target):
    """Geometry nodes on ``ob``: ``target`` (a real object, via Object Info) on every vertex."""
    tree, n, gin, gout = _gn_tree(bpy, "ObjectScatter")
    pts = n.new("GeometryNodeMeshToPoints")
    info = n.new("GeometryNodeObjectInfo")
    info.inputs["Object"].default_value = target
    info.inputs["As Instance"].default_value = True  # instance the object, not a geometry copy
    inst = n.new("GeometryNodeInstanceOnPoints")
    tree.links.new(gin.outputs[0], pts.inputs["Mesh"])
    tree.links.new(pts.outputs[0], inst.inputs["Points"])
    tree.links.new(info.outputs["Geometry"], inst.inputs["Instance"])
    tree.links.new(inst.outputs[0], gout.inputs[0])
    ob.modifiers.new("ObjectScatter", "NODES").node_group = tree


def build(name: str, path: str | Path) -> Path:
    import bpy

    if name == "gt_linked":
        return build_linked(path)
    if name != "gt_instances":
        raise KeyError(name)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.name = name
    scene.frame_start, scene.frame_end = 1, FRAMES
    scene.render.fps = 24
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = RES
    scene.render.resolution_percentage = 100
    scene.cycles.samples = 4
    scene.world = bpy.data.worlds.new("World")
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.4, 0.2, 0.3)
    scene.collection.objects.link(sun)
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)

    rocks = bpy.data.collections.new("Rocks")  # not linked to the scene: only instanced
    rock = _obj(bpy, "Rock", _cube_mesh(bpy, "Rock", 0.8), rocks, color=(0.7, 0.3, 0.2))
    rock["dataset_class"] = "rock"
    pile = bpy.data.collections.new("Pile")
    inner = _obj(bpy, "Inner", None, pile, loc=(0.0, 0.0, 0.3))
    inner.instance_type, inner.instance_collection = "COLLECTION", rocks
    for nm, loc, coll in (("RockA", (-3.0, 2.0, 0.0), rocks), ("RockB", (-3.0, -1.0, 0.0), rocks),
                          ("PileA", (3.0, 2.5, 0.0), pile)):
        e = _obj(bpy, nm, None, props, loc=loc)
        e.instance_type, e.instance_collection = "COLLECTION", coll
    rock_b = bpy.data.objects["RockB"]
    _linear_keys(bpy, rock_b, "location", {1: -3.0, FRAMES: -3.0 + 0.3 * (FRAMES - 1)}, index=0)

    turn = _obj(bpy, "Turntable", _grid_mesh(bpy, "Turntable", 2.0), props, color=(0.2, 0.6, 0.3))
    _gn_scatter(bpy, turn, 0.4)
    _linear_keys(bpy, turn, "rotation_euler",
                 {1: 0.0, FRAMES: math.radians(15.0) * (FRAMES - 1)}, index=2)

    parts = bpy.data.collections.new("Parts")
    scene.collection.children.link(parts)
    pebble = _obj(bpy, "Pebble", _cube_mesh(bpy, "Pebble", 0.5), parts, loc=(0.0, 0.0, -30.0),
                  color=(0.2, 0.3, 0.8))
    parts.hide_render = True
    emitter = _obj(bpy, "Emitter", _grid_mesh(bpy, "Emitter", 2.0, 2), props, loc=(0.0, -3.5, 0.0),
                   color=(0.5, 0.5, 0.5))
    emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
    ps = emitter.particle_systems[0].settings
    ps.count, ps.frame_start, ps.frame_end, ps.lifetime = 5, -5, -5, 1000
    ps.emit_from, ps.use_emit_random, ps.physics_type = "VERT", False, "NO"
    ps.render_type, ps.instance_object, ps.particle_size = "OBJECT", pebble, 1.0
    ps.use_rotation_instance = False
    emitter.show_instancer_for_render = False
    emitter.show_instancer_for_viewport = False

    bolt = _obj(bpy, "Bolt", _cube_mesh(bpy, "Bolt", 0.35), parts, loc=(0.0, 0.0, -30.0),
                color=(0.9, 0.9, 0.9))
    bolt["dataset_class"] = "bolt"
    stand = _obj(bpy, "Stand", _mesh(bpy, "Stand", [(-0.6, 0, 0), (0, 0, 0), (0.6, 0, 0)], []),
                 props, loc=(-0.5, -1.6, 0.0))
    _gn_object_scatter(bpy, stand, bolt)

    flag = _obj(bpy, "Flag", _grid_mesh(bpy, "Flag", 1.6, 4), props, loc=(3.0, -2.5, 0.0),
                color=(0.8, 0.8, 0.2))
    flag.shape_key_add(name="Basis")
    kb = flag.shape_key_add(name="Wave")
    for v in kb.data:
        v.co.z += 0.4 * math.sin(v.co.x * 2.0)
    _linear_keys(bpy, kb, "value", {1: 0.0, FRAMES: 1.0})

    rig_data = bpy.data.armatures.new("Rig")
    rig = _obj(bpy, "Rig", rig_data, props, loc=(-1.6, 3.2, 0.0))
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bone = rig_data.edit_bones.new("Bone")
    bone.head, bone.tail = (0.0, 0.0, 0.0), (1.6, 0.0, 0.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    bar = _obj(bpy, "Arm", _grid_mesh(bpy, "Arm", 1.0, 2), props, loc=(-1.2, 3.2, 0.0),
               color=(0.9, 0.5, 0.7))
    bar.scale = (1.6, 0.3, 1.0)
    vg = bar.vertex_groups.new(name="Bone")
    vg.add(list(range(len(bar.data.vertices))), 1.0, "REPLACE")
    bar.modifiers.new("Armature", "ARMATURE").object = rig
    pb = rig.pose.bones["Bone"]
    pb.rotation_mode = "XYZ"
    _linear_keys(bpy, pb, "rotation_euler", {1: 0.0, FRAMES: math.radians(30.0)}, index=1)

    ground = _obj(bpy, "Ground", _grid_mesh(bpy, "Ground", 30.0), props, loc=(0.0, 0.0, -0.5),
                  color=(0.6, 0.6, 0.6))
    ground["dataset_class"] = "floor"

    cams = []
    for nm, loc, roll, lens in (("CamA", (0.0, 0.0, 12.0), 0.0, LENSES[0]),
                                ("CamB", (0.5, 0.0, 12.0), 10.0, LENSES[1])):
        cd = bpy.data.cameras.new(nm)
        cd.lens, cd.sensor_width, cd.sensor_fit = lens, 36.0, "HORIZONTAL"
        c = _obj(bpy, nm, cd, scene.collection, loc=loc)
        c.rotation_euler = (0.0, 0.0, math.radians(roll))
        cams.append(c)
    scene.camera = cams[0]
    scene.timeline_markers.new("A", frame=1).camera = cams[0]
    scene.timeline_markers.new("B", frame=CUT_FRAME).camera = cams[1]

    for act in bpy.data.actions:
        try:
            fcs = list(act.fcurves)
        except AttributeError:
            fcs = [fc for layer in act.layers for strip in layer.strips
                   for bag in strip.channelbags for fc in bag.fcurves]
        for fc in fcs:
            for kp in fc.keyframe_points:
                kp.interpolation = "LINEAR"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


def _dolly_and_save(bpy, scene, path, frames: int, yz: tuple[float, float], tilt: float,
                    step: float) -> Path:
    """Add the camera ``Cam`` (30 mm on a 36 mm sensor) at (0, y, z), tilted ``tilt`` deg from
    looking down, moving ``step`` m/frame in +y over frames 1..``frames``; save to ``path``."""
    cd = bpy.data.cameras.new("Cam")
    cd.lens, cd.sensor_width, cd.sensor_fit = 30.0, 36.0, "HORIZONTAL"
    cam = _obj(bpy, "Cam", cd, scene.collection, loc=(0.0, yz[0], yz[1]))
    cam.rotation_euler = (math.radians(tilt), 0.0, 0.0)
    scene.camera = cam
    _linear_keys(bpy, cam, "location", {1: yz[0], frames: yz[0] + step * (frames - 1)}, index=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


def build_scatter(path: str | Path, count: int, frames: int = 6, res=(160, 120),
                  samples: int = 4, via: str = "nodes") -> Path:
    """The scale scene (bench/scale.py): a 40 m ground plane whose geometry nodes scatter
    ``count`` small cones on it (Distribute Points on Faces, Poisson-free random, seed 0 +
    Instance on Points, random z rotation; the cones have their own material, Set Material),
    a camera 4 m above the ground looking ahead and
    moving 0.5 m/frame in +y, a sun; ``frames`` frames at ``res``, ``samples`` spp. ``via``
    "particles": the same cones scattered the older way, as a static hair particle system of
    the ground drawn as the object ``Cone`` (in the collection ``Parts``, hidden for render),
    random rotation about z (:func:`_particle_scatter`)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.name = "scatter"
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = res
    scene.render.resolution_percentage = 100
    scene.cycles.samples = samples
    scene.world = bpy.data.worlds.new("World")
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.4, 0.2, 0.3)
    scene.collection.objects.link(sun)
    ground = _obj(bpy, "Ground", _grid_mesh(bpy, "Ground", 40.0), scene.collection,
                  color=(0.4, 0.4, 0.35))
    if via == "particles":
        _particle_scatter(bpy, scene, ground, count)
    else:
        _gn_cones(bpy, ground, count)
    return _dolly_and_save(bpy, scene, path, frames, (-18.0, 4.0), 70.0, 0.5)


def _gn_cones(bpy, ground, count: int) -> None:
    """:func:`build_scatter`'s geometry-nodes cones on ``ground``."""
    tree, n, gin, gout = _gn_tree(bpy, "ScatterCones")
    dist = n.new("GeometryNodeDistributePointsOnFaces")
    dist.distribute_method = "RANDOM"
    dist.inputs["Density"].default_value = count / (40.0 * 40.0)
    dist.inputs["Seed"].default_value = 0
    cone = n.new("GeometryNodeMeshCone")
    cone.inputs["Vertices"].default_value = 12
    cone.inputs["Radius Bottom"].default_value = 0.15
    cone.inputs["Depth"].default_value = 0.5
    inst = n.new("GeometryNodeInstanceOnPoints")
    setm = n.new("GeometryNodeSetMaterial")
    cmat = bpy.data.materials.new("Cone_mat")
    cmat.use_nodes = True
    setm.inputs["Material"].default_value = cmat
    rot = n.new("FunctionNodeRandomValue")
    rot.data_type = "FLOAT_VECTOR"
    rot.inputs["Max"].default_value = (0.0, 0.0, 6.28)
    join = n.new("GeometryNodeJoinGeometry")
    tree.links.new(gin.outputs[0], dist.inputs["Mesh"])
    tree.links.new(dist.outputs["Points"], inst.inputs["Points"])
    tree.links.new(cone.outputs["Mesh"], setm.inputs["Geometry"])
    tree.links.new(setm.outputs[0], inst.inputs["Instance"])
    tree.links.new(rot.outputs["Value"], inst.inputs["Rotation"])
    tree.links.new(inst.outputs[0], join.inputs[0])
    tree.links.new(gin.outputs[0], join.inputs[0])
    tree.links.new(join.outputs[0], gout.inputs[0])
    ground.modifiers.new("Scatter", "NODES").node_group = tree


def _particle_scatter(bpy, scene, ground, count: int) -> None:
    """:func:`build_scatter`'s cones as ``count`` static hair particles of ``ground`` (seed 0,
    random rotation about z), drawn as the 12-sided cone ``Cone`` (hidden for render)."""
    parts = bpy.data.collections.new("Parts")
    scene.collection.children.link(parts)
    verts = [(0.15 * math.cos(a), 0.15 * math.sin(a), 0.0)
             for a in (2 * math.pi * i / 12 for i in range(12))] + [(0.0, 0.0, 0.5)]
    faces = [(i, (i + 1) % 12, 12) for i in range(12)] + [tuple(range(11, -1, -1))]
    cone = _obj(bpy, "Cone", _mesh(bpy, "Cone", verts, faces), parts, loc=(0.0, 0.0, -30.0),
                color=(0.2, 0.5, 0.2))
    parts.hide_render = True
    ground.modifiers.new("Scatter", "PARTICLE_SYSTEM")
    ps = ground.particle_systems[0].settings
    ps.type, ps.count, ps.hair_length = "HAIR", count, 1.0
    ps.use_advanced_hair, ps.use_rotations, ps.rotation_mode = True, True, "NONE"
    ps.phase_factor_random = 2.0  # a random turn about the hair's axis (the ground's normal)
    ps.render_type, ps.instance_object, ps.particle_size = "OBJECT", cone, 1.0
    ps.use_rotation_instance = False
    ground.particle_systems[0].seed = 0
    ground.show_instancer_for_render = True


def build_scatter_repeats(path: str | Path, count: int, periods: dict[int, int],
                          frames: int = 3, res=(64, 48), samples: int = 1) -> Path:
    """:func:`build_scatter` whose cones' ``id`` attribute repeats: a Store Named Attribute node
    sets each point's ``id`` to its index modulo the period, keyed per frame by ``periods``
    (frame -> period, constant interpolation): instance ``i`` repeats the id of ``i - period``
    (Blender draws new persistent ids for all but the first of each value)."""
    import bpy

    path = build_scatter(path, count, frames, res, samples)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    tree = bpy.data.node_groups["ScatterCones"]
    n = tree.nodes
    dist = next(x for x in n if x.bl_idname == "GeometryNodeDistributePointsOnFaces")
    inst = next(x for x in n if x.bl_idname == "GeometryNodeInstanceOnPoints")
    store = n.new("GeometryNodeStoreNamedAttribute")
    store.data_type, store.domain = "INT", "POINT"
    store.inputs["Name"].default_value = "id"
    mod = n.new("ShaderNodeMath")
    mod.operation = "MODULO"
    tree.links.new(n.new("GeometryNodeInputIndex").outputs[0], mod.inputs[0])
    tree.links.new(mod.outputs[0], store.inputs["Value"])
    tree.links.new(dist.outputs["Points"], store.inputs["Geometry"])
    tree.links.new(store.outputs[0], inst.inputs["Points"])
    for f, period in periods.items():
        mod.inputs[1].default_value = float(period)
        mod.inputs[1].keyframe_insert("default_value", frame=f)
    act = tree.animation_data.action
    try:
        fcs = list(act.fcurves)
    except AttributeError:  # layered actions (5.0)
        fcs = [fc for layer in act.layers for strip in layer.strips
               for bag in strip.channelbags for fc in bag.fcurves]
    for fc in fcs:
        for kp in fc.keyframe_points:
            kp.interpolation = "CONSTANT"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


def build_many(path: str | Path, meshes: int = 400, instances: int = 200, frames: int = 24,
               res=(256, 192), samples: int = 8) -> Path:
    """The many-object scene (bench/scale.py): ``meshes`` separate mesh objects (subdivided
    cubes of 98-386 vertices, each its own data) on a 20 x 20 grid, ``instances`` empties
    instancing the collection ``Crate`` (one 0.6 m cube, not in the scene), a ground plane, a
    sun and a camera 9 m up, tilted 55 deg, moving 0.4 m/frame in +y; ``frames`` frames at
    ``res``, ``samples`` spp."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.name = "many"
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.engine = "CYCLES"
    scene.render.resolution_x, scene.render.resolution_y = res
    scene.render.resolution_percentage = 100
    scene.cycles.samples = samples
    scene.world = bpy.data.worlds.new("World")
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.4, 0.2, 0.3)
    scene.collection.objects.link(sun)
    _obj(bpy, "Ground", _grid_mesh(bpy, "Ground", 60.0), scene.collection, loc=(0, 0, -0.5),
         color=(0.4, 0.4, 0.35))
    side = int(math.ceil(math.sqrt(meshes)))
    for i in range(meshes):
        n = 4 + i % 5
        me = _grid_mesh(bpy, f"Tile{i:03d}", 0.6, n)  # (n + 1)^2 vertices
        x, y = (i % side - side / 2) * 1.5, (i // side - side / 2) * 1.5
        ob = _obj(bpy, f"Tile{i:03d}", me, scene.collection, loc=(x, y, 0.0))
        ob.rotation_euler = (0.3 * (i % 3), 0.2 * (i % 4), 0.1 * i)
    crates = bpy.data.collections.new("Crate")
    _obj(bpy, "Crate", _cube_mesh(bpy, "Crate", 0.6), crates, color=(0.7, 0.4, 0.2))
    for i in range(instances):
        e = _obj(bpy, f"CrateAt{i:03d}", None, scene.collection,
                 loc=((i % 20 - 10) * 1.5 + 0.75, (i // 20 - 10) * 1.5 + 0.75, 0.3))
        e.instance_type, e.instance_collection = "COLLECTION", crates
    return _dolly_and_save(bpy, scene, path, frames, (-12.0, 9.0), 55.0, 0.4)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for n in sys.argv[2:] or list(SPECS):
        print(build(n, out / f"{n}.blend"))
    sys.stdout.flush()
    import os

    os._exit(0)
