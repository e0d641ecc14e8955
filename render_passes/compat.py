# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Blender-version difference (4.2 LTS, 4.5 LTS, 5.0) in one place.

docs/blender_notes.md records the measurements behind each branch. RNA properties are not class
attributes, so versions are detected with ``bl_rna.properties`` rather than ``hasattr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import bpy
from mathutils import Matrix

IS5 = "compositing_node_group" in bpy.types.Scene.bl_rna.properties
FILE_OUTPUT_ITEMS = "file_output_items" in bpy.types.CompositorNodeOutputFile.bl_rna.properties
# 4.4+ store F-Curves in layers/strips/channelbags (one per slot); the legacy ``action.fcurves``
# of 4.4/4.5 only shows the first slot, so prefer the layered API wherever it exists.
LAYERED_ACTIONS = "layers" in bpy.types.Action.bl_rna.properties
MATH_NODE = "CompositorNodeMath" if hasattr(bpy.types, "CompositorNodeMath") else "ShaderNodeMath"
RENDER_LAYER_SOCKETS = {
    "index_ob": ("Object Index", "IndexOB"),
    "index_ma": ("Material Index", "IndexMA"),
}


def render_layer_output(node, key: str):
    """Output socket of a Render Layers node by a version-neutral key (``index_ob`` ...)."""
    for name in RENDER_LAYER_SOCKETS.get(key, (key,)):
        sock = node.outputs.get(name)
        if sock is not None:
            return sock
    raise KeyError(f"Render Layers node has no output {key}")


def iter_fcurves(action) -> Iterator:
    """All F-Curves of an action: legacy ``action.fcurves`` (4.2) or layered actions
    (4.4+: layers -> strips -> channelbags)."""
    if not LAYERED_ACTIONS:
        yield from action.fcurves
        return
    for layer in action.layers:
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", ()):
                yield from bag.fcurves


def animation_curves(animation_data) -> Iterator:
    """Every F-Curve that can write a property of the owner of ``animation_data`` (None: none):
    its action's, its NLA strips' actions' and its drivers."""
    if animation_data is None:
        return
    if animation_data.action is not None:
        yield from iter_fcurves(animation_data.action)
    for track in animation_data.nla_tracks:
        for strip in track.strips:
            if strip.action is not None:
                yield from iter_fcurves(strip.action)
    yield from animation_data.drivers


def render(write_still: bool) -> None:
    """``bpy.ops.render.render(write_still=...)`` of the context's scene, without the two
    ``view_layer.update()`` calls that the ``bpy.ops`` wrapper makes around every operator: the
    render evaluates its own depsgraph, and with thousands of objects each of those updates
    re-evaluated the whole view layer after any scene setting changed (65-90 ms per update at
    10,000 collection instances; docs/blender_notes.md). The wrapper is used where the
    operator module's ``call`` is not there (the same one the wrapper calls on 4.2-5.0)."""
    import _bpy  # Blender's own module behind bpy.ops (there once bpy is imported)

    call = getattr(getattr(_bpy, "ops", None), "call", None)
    if call is None:
        bpy.ops.render.render(write_still=write_still)
        return
    call("render.render", {"write_still": write_still})


def open_blend(path: str, *, use_scripts: bool) -> None:
    """Open a .blend without its UI; embedded scripts run only when ``use_scripts``."""
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=use_scripts)


# -- Compositor helpers for the ground-truth rig (docs/blender_notes.md, compositor) ------------
SEPARATE_XYZ = ("CompositorNodeSeparateXYZ" if hasattr(bpy.types, "CompositorNodeSeparateXYZ")
                else "ShaderNodeSeparateXYZ")
COMBINE_XYZ = ("CompositorNodeCombineXYZ" if hasattr(bpy.types, "CompositorNodeCombineXYZ")
               else "ShaderNodeCombineXYZ")
# 4.5 and 5.0: the 4-channel Vector pass linked straight into Separate Color loses its 4th channel
# (Alpha reads 1.0, the bug that writes a constant 1 as backward/forward v); routed through the
# colour input of a Switch node (left "Off") it is kept in 4.2, 4.5 and 5.0 (measured, tested).
KEEP_W_NODE = "CompositorNodeSwitch"
# Channel names a File Output node writes into a single-part EXR for each input kind (measured in
# 4.2, 4.5 and 5.0 and checked by tests/test_ground_truth.py).
EXR_CHANNELS = {"FLOAT": ["V"], "VECTOR": ["X", "Y", "Z"], "RGBA": ["R", "G", "B", "A"]}


class CompositorUndo(TypedDict, total=False):
    """What :func:`release_compositor` undoes: the scene's ``use_compositing`` (and on 4.x
    ``use_nodes``) as found, whether the tree was created, the names of the nodes muted."""

    use_compositing: bool
    use_nodes: bool
    created: bool
    muted: list[str]


def acquire_compositor(scene) -> tuple[Any, CompositorUndo]:
    """The scene's compositor tree, created if needed, plus what to undo in
    :func:`release_compositor`. Compositing is switched on (File Output nodes need it).

    On 5.0 a newly created tree also gets a Group Output fed by the render so that the RGB
    frame stays the plain render. A user's tree that was switched off (``use_compositing`` or,
    on 4.x, ``use_nodes``) did not shape the RGB frame: its nodes are muted while we render."""
    undo: CompositorUndo = {"use_compositing": scene.render.use_compositing, "created": False,
                            "muted": []}
    was_active = scene.render.use_compositing
    scene.render.use_compositing = True
    if IS5:
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new("Dataset Forge Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
            undo["created"] = True
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            rl = tree.nodes.new("CompositorNodeRLayers")
            out = tree.nodes.new("NodeGroupOutput")
            tree.links.new(rl.outputs["Image"], out.inputs[0])
            return tree, undo
    else:
        undo["use_nodes"] = scene.use_nodes
        had_tree = scene.node_tree is not None
        was_active = was_active and scene.use_nodes
        if not scene.use_nodes:
            scene.use_nodes = True  # a new 4.x tree comes with Render Layers -> Composite
        tree = scene.node_tree
        if not had_tree:
            return tree, undo
    if not was_active:
        for node in tree.nodes:
            if not node.mute and node.bl_idname not in _NEVER_MUTE:
                node.mute = True
                undo["muted"].append(node.name)
    return tree, undo


_NEVER_MUTE = {"CompositorNodeRLayers", "CompositorNodeComposite", "NodeGroupOutput",
               "NodeGroupInput", "NodeReroute", "NodeFrame", "CompositorNodeViewer"}


def release_compositor(scene, undo: CompositorUndo) -> None:
    """Undo :func:`acquire_compositor` (our own nodes must already be removed)."""
    tree = scene.compositing_node_group if IS5 else scene.node_tree
    if tree is not None:
        for name in undo["muted"]:
            node = tree.nodes.get(name)
            if node is not None:
                node.mute = False
    scene.render.use_compositing = undo["use_compositing"]
    if IS5:
        if undo["created"]:
            scene.compositing_node_group = None
            if tree is not None:
                bpy.data.node_groups.remove(tree)
        return
    scene.use_nodes = undo["use_nodes"]


def file_output(tree, directory: str, *, file_format: str, color_mode: str, color_depth: str,
                exr_codec: str = "ZIP"):
    """A File Output node writing into ``directory`` with no inputs yet."""
    fo = tree.nodes.new("CompositorNodeOutputFile")
    f = fo.format
    if hasattr(f, "media_type"):  # 5.0 defaults to multilayer
        f.media_type = "IMAGE"
    f.file_format = file_format
    try:
        f.color_mode = color_mode
    except TypeError:  # 4.2 offers no BW for EXR; a float input is still written as one 'V'
        f.color_mode = "RGB"
    f.color_depth = color_depth
    if file_format == "OPEN_EXR":
        f.exr_codec = exr_codec
    if "save_as_render" in fo.bl_rna.properties:
        fo.save_as_render = False
    if FILE_OUTPUT_ITEMS:
        fo.directory = directory
        fo.file_name = ""
        fo.file_output_items.clear()
    else:
        fo.base_path = directory
        fo.file_slots.clear()
    return fo


def file_output_input(fo, name: str, socket_type: str):
    """Add an input to File Output ``fo``; ``name`` like ``depth_######`` gives
    ``depth_000007.<ext>`` in every version. ``socket_type``: FLOAT, VECTOR (3) or RGBA."""
    if FILE_OUTPUT_ITEMS:
        item = fo.file_output_items.new(socket_type, name)
        if socket_type == "VECTOR":
            item.vector_socket_dimensions = 3
        if hasattr(item, "save_as_render"):
            item.save_as_render = False
        return fo.inputs[item.name]
    fo.file_slots.new(name)  # returns the input socket, not the slot
    slot = fo.file_slots[-1]
    slot.path = name
    slot.save_as_render = False
    return fo.inputs[-1]


# -- What shapes the RGB frame (render_passes/scene_setup.py check_rgb_compositor) -------------
def rgb_compositor_nodes(scene) -> list:
    """Every node of the scene's active compositor upstream of its RGB frame (4.x: the Composite
    node; 5.0: the compositor node group's Group Output), through links and into node groups;
    ``[]`` when compositing is off (4.x: also ``use_nodes``) or the scene has no tree."""
    if not scene.render.use_compositing:
        return []
    if IS5:
        tree = scene.compositing_node_group
    else:
        tree = scene.node_tree if scene.use_nodes else None
    if tree is None:
        return []
    return _upstream(tree, "NodeGroupOutput" if IS5 else "CompositorNodeComposite", set())


def _upstream(tree, output: str, seen: set) -> list:
    """Nodes of ``tree`` feeding its nodes of type ``output``, with those of the node groups among
    them (feeding each group's Group Output); ``seen`` holds the visited nodes' pointers."""
    stack = [n for n in tree.nodes if n.bl_idname == output]
    found = []
    while stack:
        node = stack.pop()
        if node.as_pointer() in seen:
            continue
        seen.add(node.as_pointer())
        found.append(node)
        group = getattr(node, "node_tree", None)
        if group is not None and not node.mute:
            found.extend(_upstream(group, "NodeGroupOutput", seen))
        for sock in node.inputs:
            stack.extend(link.from_node for link in sock.links
                         if link.is_valid and not link.is_muted)
    return found


# -- Containment of a scene's own File Output nodes (render_passes/containment.py) ----------------
def compositor_trees(scene) -> list:
    """Every compositor node tree that can run when ``scene`` renders: its own tree and every
    compositor node group of the file (groups may be nested in it)."""
    trees = []
    own = scene.compositing_node_group if IS5 else scene.node_tree
    if own is not None:
        trees.append(own)
    for group in bpy.data.node_groups:
        if group.bl_idname == "CompositorNodeTree" and group not in trees:
            trees.append(group)
    return trees


def file_output_paths(node) -> list[str]:
    """Where a File Output node writes: its folder joined with each input's file name (5.0:
    ``directory`` + ``file_name`` + items; 4.x: ``base_path`` + slot paths), as Blender stores
    them (``//`` means the .blend's folder)."""
    if FILE_OUTPUT_ITEMS:
        base = node.directory + (node.file_name or "")
        items = [item.name for item in node.file_output_items]
    else:
        base = node.base_path
        items = [slot.path for slot in node.file_slots]
    return [base + ("" if base.endswith(("/", "\\")) or not base else "/") + i for i in items] or [base]


# -- Time stretching (render_passes/timing.py) ----------------------------------------------------
# Measured in renders through the worker at keyframe_multiplier 2: 5.0 steps a geometry-nodes
# simulation zone exactly on the remapped clock; 4.2 and 4.5 hold it for one rendered frame when
# the clock first reaches a whole frame after the start (half a frame late from then on), although
# frame_set() alone evaluates it exactly there. No RNA feature tells the two apart.
SIMULATION_FOLLOWS_REMAPPED_CLOCK = tuple(bpy.app.version) >= (5, 0, 0)


# -- Vector pass under animated intrinsics (docs/blender_notes.md, Vector pass and zoom) ----------
# Which intrinsics Cycles projects the neighbouring frame with in the Vector pass, measured by
# reprojecting depth on 4.2.23 (the current frame's K), 4.5.15 and 5.0.1 (the neighbour's focal
# length, the current frame's principal point: lens shift is not followed). Nothing in RNA tells
# them apart; a version that was not measured gets None (flows across a change of K are then
# marked invalid instead of corrected).
VECTOR_PASS_INTRINSICS = {(4, 2): "current", (4, 5): "neighbour_focal",
                          (5, 0): "neighbour_focal"}.get(tuple(bpy.app.version[:2]))


# Blender 4.3+: ``Object.evaluated_geometry()`` -> GeometrySet, whose ``instances_pointcloud()``
# holds one point per geometry-nodes instance (``instance_transform`` FLOAT4X4, column-major;
# ``.reference_index``; ``id`` when the instances carry one) and ``instance_references()`` the
# instanced things. 4.2 has none of it: instances are then read from ``object_instances``.
GEOMETRY_SET = hasattr(bpy.types.Object, "evaluated_geometry")  # Python-defined, not RNA
# How Blender hashes an instance's random_id from its persistent id (measured against
# DepsgraphObjectInstance.random_id): 5.0 stops at the first unused (INT_MAX) entry (0 here); 4.2
# and 4.5 hash all 8 entries. Not measured: None (bulk-read instances' Random values unknown).
RANDOM_ID_PID_ENTRIES = {(4, 2): 8, (4, 5): 8, (5, 0): 0}.get(tuple(bpy.app.version[:2]))


def _matrix_buffer() -> bool:
    """Whether ``bytes(m)`` of a mathutils Matrix holds its float32 values, rows first (5.0: a
    matrix is a buffer; half the time of copying it and iterating the copy); 4.2, 4.5: not."""
    import struct

    try:
        m = struct.unpack("16f", bytes(Matrix.Translation((1.0, 2.0, 3.0))))
    except (TypeError, struct.error):
        return False
    return m[3:12:4] == (1.0, 2.0, 3.0)


MATRIX_BUFFER = _matrix_buffer()
# What a walk of object_instances keeps of an entry's matrix (valid only while it is current).
KEEP_MATRIX = bytes if MATRIX_BUFFER else Matrix.copy


_GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "FONT", "META", "CURVES", "POINTCLOUD", "VOLUME"}


def geometry_instances(ob_eval, transforms: bool = True):
    """``(transforms (n, 4, 4) float64 row-major in the object's space, reference index (n,)
    int32, ids (n,) int32 or None, references)`` of an evaluated object's instances, ``()``
    when it has none, None when they cannot be read in bulk (no GeometrySet API). Without
    ``transforms``, the transforms are ``None``."""
    if not GEOMETRY_SET:
        return None
    import numpy as np

    if ob_eval.type not in _GEOMETRY_TYPES:
        return ()
    gs = ob_eval.evaluated_geometry()
    pc = gs.instances_pointcloud()
    if pc is None or not len(pc.points):
        return ()
    n = len(pc.points)
    attrs = pc.attributes
    t = None
    if transforms:
        t = np.empty(n * 16, np.float32)
        attrs["instance_transform"].data.foreach_get("value", t)
    ref = np.zeros(n, np.int32)
    if ".reference_index" in attrs:
        attrs[".reference_index"].data.foreach_get("value", ref)
    ids = None
    a = attrs.get("id")
    if a is not None and a.domain == "POINT" and a.data_type == "INT":
        ids = np.empty(n, np.int32)
        a.data.foreach_get("value", ids)
    mats = None if t is None else t.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)
    return mats, ref, ids, list(gs.instance_references())
