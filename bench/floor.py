# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor of the benchmark: plain Blender, nothing of Dataset Forge.

Runs with the ``bpy`` wheel's Python (or ``blender -b --python bench/floor.py -- SPEC``)::

    python bench/floor.py SPEC.json

``SPEC`` keys: ``mode`` (``floor`` or ``prepare``), ``blend``, ``out`` (folder), ``width``,
``height``, ``samples``, ``frame_start``, ``frame_end``, ``passes`` (bool: the view-layer passes
and four EXR File Output nodes that Dataset Forge's ground truth uses), ``threads`` (0: all),
``persistent`` (bool), ``exr_codec``, ``loop`` (bool: ``frame_set`` + ``render(write_still=True)``
per frame instead of one ``render(animation=True)``).

``floor`` opens the scene, applies the same render settings as our worker, adds the passes and
plain File Output nodes (Render Layers -> File Output, no conversion nodes) and renders the whole
range with ``bpy.ops.render.render(animation=True)``. ``prepare`` opens a scene, sets its range to
``frame_start..frame_end`` with linear extrapolation of every F-Curve (the motion goes on) and
saves it as ``out``. The result is one line ``@bench {json}`` on stdout: timestamps
(``time.time()``), per-frame completion times and process CPU seconds (all threads).
"""

from __future__ import annotations

import json
import os
import sys
import time

T_START = time.time()
CPU_START = time.process_time()

import bpy  # noqa: E402

T_IMPORTED = time.time()

IS5 = "compositing_node_group" in bpy.types.Scene.bl_rna.properties
FO_ITEMS = "file_output_items" in bpy.types.CompositorNodeOutputFile.bl_rna.properties


def _fcurves(action):
    if "layers" not in bpy.types.Action.bl_rna.properties:
        return list(action.fcurves)
    return [fc for layer in action.layers for strip in layer.strips
            for bag in getattr(strip, "channelbags", ()) for fc in bag.fcurves]


def prepare(spec: dict) -> dict:
    bpy.ops.wm.open_mainfile(filepath=spec["blend"], load_ui=False)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = int(spec["frame_start"]), int(spec["frame_end"])
    for action in bpy.data.actions:
        for fc in _fcurves(action):
            fc.extrapolation = "LINEAR"
    bpy.ops.wm.save_as_mainfile(filepath=spec["out"], compress=False)
    return {"saved": spec["out"], "frame_start": scene.frame_start, "frame_end": scene.frame_end}


def _file_output(tree, directory: str, name: str, socket_type: str, color_mode: str, codec: str):
    fo = tree.nodes.new("CompositorNodeOutputFile")
    f = fo.format
    if hasattr(f, "media_type"):
        f.media_type = "IMAGE"
    f.file_format = "OPEN_EXR"
    try:
        f.color_mode = color_mode
    except TypeError:  # 4.2 has no BW for EXR
        f.color_mode = "RGB"
    f.color_depth = "32"
    f.exr_codec = codec
    if FO_ITEMS:
        fo.directory = directory
        fo.file_name = ""
        fo.file_output_items.clear()
        item = fo.file_output_items.new(socket_type, name)
        if socket_type == "VECTOR":
            item.vector_socket_dimensions = 3
        return fo.inputs[item.name]
    fo.base_path = directory
    fo.file_slots.clear()
    fo.file_slots.new(name)
    fo.file_slots[-1].path = name
    return fo.inputs[-1]


def _output(rl, *names):
    for n in names:
        if n in rl.outputs:
            return rl.outputs[n]
    raise KeyError(names)


def add_passes(scene, out: str, codec: str) -> None:
    vl = bpy.context.view_layer
    vl.use_pass_z = vl.use_pass_normal = vl.use_pass_vector = vl.use_pass_object_index = True
    scene.render.use_compositing = True
    if IS5:
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        rl = tree.nodes.new("CompositorNodeRLayers")
        go = tree.nodes.new("NodeGroupOutput")
        tree.links.new(rl.outputs["Image"], go.inputs[0])
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        rl = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    for kind, sock, stype, mode in (("depth", ("Depth",), "FLOAT", "BW"),
                                    ("normal", ("Normal",), "VECTOR", "RGB"),
                                    ("flow", ("Vector",), "RGBA", "RGBA"),
                                    ("segmentation", ("Object Index", "IndexOB"), "FLOAT", "BW")):
        inp = _file_output(tree, os.path.join(out, kind + "s"), f"{kind}_######", stype, mode,
                           codec)
        tree.links.new(_output(rl, *sock), inp)


def floor(spec: dict) -> dict:
    t0 = time.time()
    bpy.ops.wm.open_mainfile(filepath=spec["blend"], load_ui=False)
    t_open = time.time()
    scene = bpy.context.scene
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y, r.resolution_percentage = spec["width"], spec["height"], 100
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = spec["samples"]
    cy.use_adaptive_sampling = False
    cy.use_denoising = False
    if spec.get("threads"):
        r.threads_mode, r.threads = "FIXED", spec["threads"]
    r.use_persistent_data = bool(spec.get("persistent", True))
    img = r.image_settings
    if hasattr(img, "media_type"):
        img.media_type = "IMAGE"
    img.file_format, img.color_mode, img.color_depth, img.compression = "PNG", "RGB", "8", 15
    r.use_file_extension = True
    r.filepath = os.path.join(spec["out"], "frames", "frame_######")
    scene.frame_start, scene.frame_end = spec["frame_start"], spec["frame_end"]
    if spec.get("passes", True):
        add_passes(scene, spec["out"], spec.get("exr_codec", "ZIP"))
    frames: list[dict] = []
    pre: dict[int, float] = {}

    def on_pre(sc, *_):
        pre[sc.frame_current] = time.perf_counter()

    def on_write(sc, *_):
        # After the frame's image is written (File Output nodes wrote before render_post).
        f = sc.frame_current
        frames.append({"frame": f, "t": time.time(), "cpu": time.process_time(),
                       "render": time.perf_counter() - pre.get(f, time.perf_counter())})

    bpy.app.handlers.render_pre.append(on_pre)
    bpy.app.handlers.render_write.append(on_write)
    t_render = time.time()
    cpu_render = time.process_time()
    if spec.get("loop"):  # the same frames one render call each, as our worker does
        base = r.filepath
        for f in range(scene.frame_start, scene.frame_end + 1):
            scene.frame_set(f)
            r.filepath = base.replace("######", f"{f:06d}")
            bpy.ops.render.render(write_still=True)
    else:
        bpy.ops.render.render(animation=True)
    t_done = time.time()
    bpy.app.handlers.render_pre.remove(on_pre)
    bpy.app.handlers.render_write.remove(on_write)
    return {"t_start": T_START, "t_imported": T_IMPORTED, "t_open_start": t0, "t_opened": t_open,
            "t_render": t_render, "cpu_render": cpu_render, "t_done": t_done,
            "cpu_done": time.process_time(), "cpu_start": CPU_START, "frames": frames,
            "blender": bpy.app.version_string}


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    result = prepare(spec) if spec.get("mode") == "prepare" else floor(spec)
    sys.stdout.write("\n@bench " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # like our worker: no Blender teardown (docs/blender_notes.md)


if __name__ == "__main__":
    main()
