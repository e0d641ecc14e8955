# SPDX-License-Identifier: GPL-3.0-or-later
"""Object ids for segmentation: deterministic from object names, written to
``segmentation_ids.json``; the Object Index pass (``pass_index``) carries them into the image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dataset.documents.segmentation_ids import ObjectId, SegmentationIds

if TYPE_CHECKING:
    import bpy

# Object types Cycles renders as surfaces or volumes (cameras, lights, empties ... get no id).
RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME",
              "GPENCIL", "GREASEPENCIL"}
MAX_ID = 32767  # Object.pass_index is a short


def rendered_objects(scene, view_layer) -> list:
    """Objects of ``view_layer`` that the render can show or instance from (any type, e.g.
    instancing empties): not hidden from render, in a collection that is neither excluded from
    the layer nor hidden from render."""
    seen: dict[str, bpy.types.Object] = {}

    def walk(lc) -> None:
        if lc.exclude or lc.collection.hide_render:
            return
        for ob in lc.collection.objects:
            if not ob.hide_render:
                seen[ob.name_full] = ob  # a linked and a local object may share a name
        for child in lc.children:
            walk(child)

    walk(view_layer.layer_collection)
    return [seen[n] for n in sorted(seen)]


# Geometry nodes that make instances: a node tree without one (or a group holding one) draws no
# copies of anything.
INSTANCING_NODES = {"GeometryNodeInstanceOnPoints", "GeometryNodeGeometryToInstance",
                    "GeometryNodeCollectionInfo", "GeometryNodeObjectInfo"}


def draws_instances(objects) -> bool:
    """Whether any of ``objects`` (:func:`rendered_objects`) may draw a thing more than once,
    so that Object Index values are shared and the ids need the Random AOV of a data render:
    instancing (collections, vertices, faces), particles drawn as objects or collections, or a
    geometry-nodes modifier whose tree (groups included) holds an instancing node. A miss costs
    only speed: shared values are then resolved geometrically."""
    def instancing(tree, seen: set[int]) -> bool:
        if tree is None or tree.as_pointer() in seen:
            return False
        seen.add(tree.as_pointer())
        return any(n.bl_idname in INSTANCING_NODES
                   or (n.bl_idname == "GeometryNodeGroup" and instancing(n.node_tree, seen))
                   for n in tree.nodes)

    for ob in objects:
        if ob.instance_type != "NONE":
            return True
        if any(ps.settings.render_type in ("OBJECT", "COLLECTION")
               for ps in getattr(ob, "particle_systems", ())):
            return True
        if any(m.type == "NODES" and instancing(m.node_group, set())
               for m in getattr(ob, "modifiers", ())):
            return True
    return False


def top_collections(scene) -> dict[int, str]:
    """``{object pointer: name of the scene's top-level collection holding it}`` (the first by
    name where several do). Keyed by the object itself, never by its name: a linked object and a
    local one may share a name and sit in different collections."""
    out: dict[int, str] = {}
    for col in sorted(scene.collection.children, key=lambda c: c.name):
        for ob in col.all_objects:
            out.setdefault(ob.as_pointer(), col.name)
    return out


def object_class(scene, ob, class_property: str, tops: dict[int, str] | None = None) -> str | None:
    """``ob[class_property]``, else its top-level collection in the scene (``tops``: from
    :func:`top_collections`, computed when None), else the first collection it belongs to
    (objects that are only instanced)."""
    cls = ob.get(class_property) if class_property else None
    if cls is not None:
        return str(cls)
    top = (top_collections(scene) if tops is None else tops).get(ob.as_pointer())
    if top is None and ob.users_collection:
        top = sorted(c.name for c in ob.users_collection)[0]
    return top


def assign_ids(scene, view_layer, class_property: str) -> tuple[dict[str, int], SegmentationIds]:
    """Object ids for every renderable object of the file (also those only reached through
    collection instances, particles or geometry nodes), sorted by library-qualified name.

    Editable objects: id = the ``pass_index`` to set for the render, 1, 2, ... skipping values
    that linked (read-only) objects already use. Linked objects keep their ``pass_index`` and get
    the next ids after that. Returns ``{name_full: id}`` and the ``segmentation_ids.json``
    document (without ``instances``, which the render adds)."""
    import bpy

    objs = sorted((o for o in bpy.data.objects if o.type in RENDERABLE),
                  key=lambda o: o.name_full)
    linked = [o for o in objs if o.library is not None]
    editable = [o for o in objs if o.library is None]
    taken = {int(o.pass_index) for o in linked}
    ids: dict[str, int] = {}
    nxt = 1
    for ob in editable:
        while nxt in taken:
            nxt += 1
        ids[ob.name_full] = nxt
        nxt += 1
    if nxt - 1 > MAX_ID:
        raise ValueError(f"{len(editable)} renderable objects, but segmentation ids stop at "
                         f"{MAX_ID} (Object.pass_index is 16-bit); delete unused objects or turn "
                         "segmentations off")
    for ob in linked:
        ids[ob.name_full] = nxt
        nxt += 1
    tops = top_collections(scene)
    doc_ids = {str(ids[ob.name_full]): ObjectId(
        name=ob.name_full, collection=tops.get(ob.as_pointer()),
        cls=object_class(scene, ob, class_property, tops),
        library=ob.library.filepath if ob.library is not None else None) for ob in objs}
    return ids, SegmentationIds(ids=doc_ids, class_property=class_property)
