# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Blender-version difference (4.2 LTS, 4.5 LTS, 5.0) in one place.

See ../shared/BLENDER_FACTS.md for the measurements behind each branch. RNA properties are not
class attributes, so versions are detected with ``bl_rna.properties`` rather than ``hasattr``.
"""

from __future__ import annotations

from collections.abc import Iterator

import bpy

VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]
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


def compositor_tree(scene: bpy.types.Scene, create: bool = True):
    """The scene's compositor node tree (created if missing and ``create``), or None."""
    if IS5:
        if scene.compositing_node_group is None and create:
            scene.compositing_node_group = bpy.data.node_groups.new(
                "Dataset Forge Compositing", "CompositorNodeTree")
        return scene.compositing_node_group
    if not scene.use_nodes:
        if not create:
            return None
        scene.use_nodes = True
    return scene.node_tree


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


def open_blend(path: str, *, use_scripts: bool) -> None:
    """Open a .blend without its UI; embedded scripts run only when ``use_scripts``."""
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=use_scripts)


def eevee_engine() -> str:
    return "BLENDER_EEVEE" if VERSION >= (5, 0, 0) else "BLENDER_EEVEE_NEXT"
