# SPDX-License-Identifier: GPL-3.0-or-later
"""One surface per pixel (docs/ground_truth.md): the data render of a frame, which writes every
ground-truth file from the pixel centre's hit, the AOV that carries the geometric normal, and
what the ``conventions`` say of the surface the normals and flow describe. Used by
:class:`.passes.PassRig`."""

from __future__ import annotations

import bpy

from ..dataset.documents.base import JSONObject
from ..settings import Settings
from . import compat, scene_setup, segmentation

# The data render of a frame (one surface per pixel, docs/ground_truth.md): Cycles settings that
# make normals and flow come from the pixel centre's hit, like depth and ids. Cycles writes
# Depth and Object Index from a pixel's first sample, which goes through the pixel centre
# whatever the filter; Normal, Vector and AOVs are averaged over every sample and the pixel
# filter, so they are taken from a render of that one sample. No bounces: no pass reads them.
DATA_RENDER = {"samples": 1, "use_adaptive_sampling": False, "use_denoising": False,
               "max_bounces": 0, "pixel_filter_type": "BOX", "filter_width": 0.01,
               "sample_offset": 0, "time_limit": 0.0}
# View-layer AOV holding Geometry > True Normal (world space) with normal_kind "geometric".
TRUE_NORMAL_AOV = "DF_true_normal"
# View-layer AOV holding Object Info > Random, written to the raw segmentation file's B channel.
RANDOM_AOV = "DF_random"
# Nodes of the user's compositor left running in the data render (muting them changes nothing
# written, or they are structural).
_KEEP_UNMUTED = {"NodeGroupOutput", "NodeGroupInput", "NodeReroute", "NodeFrame"}


def rgb_is_centre_sample(scene) -> bool:
    """Whether the RGB render of the scene's current frame is already the data render: one
    sample (:func:`render_samples`) with ``sample_offset`` 0. Cycles
    traces a pixel's sample 0 through the pixel centre whatever the pixel filter, and a pass
    averaged over one sample is that sample's value, so Normal, Vector and the AOVs of that
    render are the pixel centre's hit, like Depth and Object Index (bounces do not change the
    first hit's passes): the ground-truth files are written by it and no second render is made
    (docs/blender_notes.md, "The data render's cost")."""
    cy = scene.cycles
    return render_samples(scene) == 1 and getattr(cy, "sample_offset", 0) == 0


def render_samples(scene) -> int:
    """Samples per pixel Cycles renders the scene's view layer with: the view layer's
    ``samples`` where set (> 0), bounded by the scene's with ``use_layer_samples`` "BOUNDED",
    ignored with "IGNORE"; else the scene's."""
    cy = scene.cycles
    layer, mode = scene_setup.view_layer(scene).samples, getattr(cy, "use_layer_samples", "USE")
    if layer <= 0 or mode == "IGNORE":
        return cy.samples
    return min(layer, cy.samples) if mode == "BOUNDED" else layer


def index_readers(scene, settings: Settings, kinds: list[str]) -> list[str]:
    """With segmentations, what renders the RGB frame from ``Object.pass_index``, which they set
    to the object ids: node materials and shader node groups whose Object Info > Object Index is
    linked, and the compositor's ID Mask nodes upstream of the RGB frame (names, sorted). With
    any, the ids get their own data render and the RGB render keeps the file's own pass indices
    (:func:`object_indices`), so that RGB is the same with segmentations on or off; with
    ``filtered_passes`` (one render) a :class:`.scene_setup.SceneError` names them."""
    if "segmentation" not in kinds:
        return []
    out = set()
    trees = [(m.name, m.node_tree) for m in bpy.data.materials if m.node_tree is not None]
    trees += [(g.name, g) for g in bpy.data.node_groups if g.bl_idname == "ShaderNodeTree"]
    for name, nt in trees:
        if any(n.bl_idname == "ShaderNodeObjectInfo" and not n.mute
               and n.outputs["Object Index"].is_linked for n in nt.nodes):
            out.add(name)
    out.update(n.name for n in compat.rgb_compositor_nodes(scene)
               if n.bl_idname == "CompositorNodeIDMask" and not n.mute)
    if out and settings.filtered_passes:
        raise scene_setup.SceneError(
            f"{bpy.path.basename(bpy.data.filepath)}: {', '.join(sorted(out)[:3])} read the "
            "Object Index (pass_index), which segmentations set to the object ids, so the RGB "
            "frame would change; with filtered_passes there is no separate render for the ids: "
            "turn filtered_passes off (or segmentations off)")
    return sorted(out)


def object_indices(rig, ours: bool) -> None:
    """Set the ``pass_index`` of every object whose id differs from the file's to its object id
    (``ours``: the render that writes the ids) or back to the file's (the RGB render); nothing
    unless the RGB frame reads them (``rig.index_readers``): the ids keep them throughout."""
    if not rig.index_readers:
        return
    for name, own in rig._undo_pass_index.items():
        ob = bpy.data.objects.get(name)
        if ob is not None:
            ob.pass_index = rig.ids.get(ob.name_full, 0) if ours else own


def render(rig) -> None:
    """After the RGB render of a frame (the scene is at it): the data render of ``rig``
    (:class:`.passes.PassRig`), which writes every ground-truth file of the frame from the pixel
    centre's surface (:data:`DATA_RENDER` settings, the user's compositor nodes muted, nothing
    else written); the scene's settings are restored afterwards."""
    scene = rig.scene
    cy, vl = scene.cycles, scene_setup.view_layer(scene)
    undo_cy = {k: getattr(cy, k) for k in DATA_RENDER if k in cy.bl_rna.properties}
    undo_vl = vl.samples
    ours = {n.as_pointer() for n in rig.graph.nodes} if rig.graph is not None else set()
    muted = [n for n in rig.graph.tree.nodes
             if n.as_pointer() not in ours and not n.mute
             and n.bl_idname not in _KEEP_UNMUTED] if rig.graph is not None else []
    try:
        for k in undo_cy:
            setattr(cy, k, DATA_RENDER[k])
        vl.samples = 0
        for n in muted:
            n.mute = True
        rig._data_passes(True)
        object_indices(rig, True)
        if rig.index_readers and rig.tracker is not None:  # the candidates' indices are ours now
            rig.tracker.expect(scene.frame_current)
        compat.render(write_still=False)
    finally:
        object_indices(rig, False)
        for k, v in undo_cy.items():
            setattr(cy, k, v)
        vl.samples = undo_vl
        for n in muted:
            n.mute = False
        rig._data_passes(False)


# Whether the Vector pass was on in this process's last render, per scene (vector_session).
_VECTOR: dict[str, bool] = {}


def vector_session(scene) -> None:
    """Before a render: with Persistent Data, a new Cycles session when the view layer's Vector
    pass differs from the last render's in this process (a flow from depth in one sequence, the
    Vector pass in the next). A persistent session that starts evaluating motion steps crashed
    Cycles (docs/blender_notes.md); turning Persistent Data off and on drops it (it stays on)."""
    on = bool(scene_setup.view_layer(scene).use_pass_vector)
    last = _VECTOR.get(scene.name_full)
    _VECTOR[scene.name_full] = on
    if last is not None and last != on and scene.render.use_persistent_data:
        scene.render.use_persistent_data = False
        scene.render.use_persistent_data = True


def surface_conventions(s: Settings, conv: JSONObject, flow_from_depth: bool = False) -> None:
    """Add to the ``normal`` and ``flow`` entries of ``conv`` which surface they describe:
    ``normal_kind`` ("shading" | "geometric"), ``filtered_passes`` (bool: averaged over the
    RGB render's samples and pixel filter rather than the pixel centre's hit), ``source``,
    and for normals ``kind`` and ``back_faces`` (validate judges normals by these); the flow's
    ``source`` says when it was made from depth (:mod:`.flow_plan`)."""
    if s.filtered_passes:
        source = ("averaged over the RGB render's samples and pixel filter (Cycles): blended "
                  "at edges, not always the surface that depth and ids describe")
    else:
        source = ("the pixel centre's surface point, the one depth and ids describe (a "
                  "1-sample render of the frame)")
    if "normal" in conv:
        conv["normal"].update({
            "normal_kind": s.normal_kind,
            "kind": ("the true facet normal (Geometry > True Normal)"
                     if s.normal_kind == "geometric" else
                     "the shading normal Blender shades with (smooth shading, normal and "
                     "bump maps)"),
            "filtered_passes": s.filtered_passes, "source": source,
            "back_faces": "turned towards the camera"})
    if "flow" in conv:
        if flow_from_depth:
            source = ("the pixel centre's surface point (its depth), moved with its object's "
                      "transform and projected by the camera of t+1 / t-1: no surface of the "
                      "sequence changes shape (computed, not Cycles' Vector pass)")
        conv["flow"].update({"filtered_passes": s.filtered_passes, "source": source})


def _add_aov(rig, vl, name: str, kind: str, source: str, output: str) -> set[str]:
    """A view-layer AOV ``name`` of ``kind`` ("COLOR" | "VALUE") fed by output ``output`` of a
    new ``source`` shader node in every editable node material (added in memory, removed in the
    rig's teardown); returns the names (``name_full``) of the materials fed."""
    aov = vl.aovs.add()
    aov.name, aov.type = name, kind
    rig._aovs.append(aov)
    fed: set[str] = set()
    for mat in bpy.data.materials:
        nt = mat.node_tree if mat.use_nodes else None
        if nt is None or mat.library is not None:
            continue
        src = nt.nodes.new(source)
        out = nt.nodes.new("ShaderNodeOutputAOV")
        rig._aov_nodes += [(nt, src), (nt, out)]
        out.aov_name = name
        nt.links.new(src.outputs[output], out.inputs["Color" if kind == "COLOR" else "Value"])
        fed.add(mat.name_full)
    return fed


def add_random_aov(rig, vl) -> set[str]:
    """For ``rig`` (:class:`.passes.PassRig`) with segmentations and a data render: a VALUE AOV
    (:data:`RANDOM_AOV`) fed by Object Info > Random in every editable node material; the
    1-sample data render then gives each pixel the Random value of the instance its centre ray
    hit (0 where the surface has no such material), which names that instance
    (:mod:`..dataset.random_ids`). Returns the names of the materials that write it."""
    return _add_aov(rig, vl, RANDOM_AOV, "VALUE", "ShaderNodeObjectInfo", "Random")


def add_true_normal_aov(rig, vl) -> None:
    """For ``rig`` (:class:`.passes.PassRig`) with normal_kind "geometric": a view-layer AOV fed
    by Geometry > True Normal (world space) in every editable node material, added in memory and
    removed in the rig's teardown. Objects drawn
    with another surface (no material, a material without nodes, a linked material) keep the
    shading normal there; :attr:`warnings` names them."""
    fed = _add_aov(rig, vl, TRUE_NORMAL_AOV, "COLOR", "ShaderNodeNewGeometry", "True Normal")
    bare = sorted(ob.name for ob in segmentation.rendered_objects(rig.scene, vl)
                  if ob.type in segmentation.RENDERABLE and (
                      not ob.material_slots or any(
                          sl.material is None or sl.material.name_full not in fed
                          for sl in ob.material_slots)))
    if bare:
        more = f" (and {len(bare) - 3} more)" if len(bare) > 3 else ""
        rig.warnings.append(
            f"normal_kind 'geometric': {', '.join(repr(b) for b in bare[:3])}{more} "
            "have no editable node material on every face (none, one without nodes, or a "
            "linked one), so their normals are the shading normal (smooth shading) "
            "instead of the facet normal; give them a node material or use normal_kind "
            "'shading'")
