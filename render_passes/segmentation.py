# SPDX-License-Identifier: GPL-3.0-or-later
"""Object ids for segmentation: deterministic from object names, written to
``segmentation_ids.json``; the Object Index pass (``pass_index``) carries them into the image."""

from __future__ import annotations

from typing import Any

# Object types Cycles renders as surfaces or volumes (cameras, lights, empties ... get no id).
RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME",
              "GPENCIL", "GREASEPENCIL"}
MAX_ID = 32767  # Object.pass_index is a short


def rendered_objects(scene, view_layer) -> list:
    """Objects of ``view_layer`` that the render can show: renderable type, not hidden from
    render, in a collection that is neither excluded from the layer nor hidden from render."""
    seen: dict[str, Any] = {}

    def walk(lc) -> None:
        if lc.exclude or lc.collection.hide_render:
            return
        for ob in lc.collection.objects:
            if ob.type in RENDERABLE and not ob.hide_render:
                seen[ob.name] = ob
        for child in lc.children:
            walk(child)

    walk(view_layer.layer_collection)
    return [seen[n] for n in sorted(seen)]


def _top_collection(scene, ob) -> str | None:
    for col in sorted(scene.collection.children, key=lambda c: c.name):
        if ob.name in col.all_objects:
            return col.name
    return None


def assign_ids(scene, view_layer, class_property: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Ids 1..N in sorted name order (same scene, same ids in every sequence and process).

    Returns ``{object name: id}`` and the ``segmentation_ids.json`` document."""
    objs = rendered_objects(scene, view_layer)
    if len(objs) > MAX_ID:
        raise ValueError(f"{len(objs)} rendered objects, but segmentation ids stop at {MAX_ID} "
                         "(Object.pass_index is 16-bit); hide objects from render or turn "
                         "segmentations off")
    ids: dict[str, int] = {}
    doc_ids: dict[str, Any] = {}
    for i, ob in enumerate(objs, start=1):
        ids[ob.name] = i
        top = _top_collection(scene, ob)
        cls = ob.get(class_property) if class_property else None
        doc_ids[str(i)] = {"name": ob.name, "collection": top,
                           "class": str(cls) if cls is not None else top}
    doc = {"background": 0, "id_source": "objects sorted by name, numbered from 1",
           "class_property": class_property, "ids": doc_ids}
    return ids, doc
