# SPDX-License-Identifier: GPL-3.0-or-later
"""Measure the Blender facts that docs/blender_notes.md records, in the running ``bpy``.

    .venv/bin/python tools/blender_notes.py             # bpy 5.0
    .venv-4.5.15/bin/python tools/blender_notes.py      # 4.5 LTS
    .venv-4.2.23/bin/python tools/blender_notes.py      # 4.2 LTS

``--no-exit-check`` leaves out the slow check of the exit with a handler registered
(tests/test_blender_notes.py runs the rest on every version).

Prints one line ``NOTES {json}`` (4.x also print render progress). Uses the raw API only, not
render_passes/compat.py, whose branches these facts justify. Three 32x32 Cycles renders at 4
samples (plain, motion blur on, compositing off), plus a child process that checks the exit with a
handler registered (30 s on 4.5, where it hangs).

The scene: a camera at height 10 looking straight down, turned 90 degrees about its viewing axis
(so world +y is image right and world -x is image up); 40 px focal length. A ground half-plane
(pass_index 3) covers the top half of the image, the bottom half is empty. A flat quad at depth 8
(pass_index 7, 5 px per world unit there) moves 2 px right and 1 px up from frame 1 to 2, then
4 px right and 2 px up from frame 2 to 3; frame 2 is rendered. A static quad tilted 30 degrees
about world x has the world normal (0, -0.5, 0.866), which is (-0.5, 0, 0.866) in the camera frame.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import bpy

W = H = 32
FOCAL_PX = 40.0
OUT = Path(tempfile.mkdtemp(prefix="df-notes-"))


def rna_has(cls, prop: str) -> bool:
    return prop in cls.bl_rna.properties


def quad(name: str, size_x: float, size_y: float, location, pass_index: int, rot_x: float = 0.0):
    mesh = bpy.data.meshes.new(name)
    hx, hy = size_x / 2, size_y / 2
    mesh.from_pydata([(-hx, -hy, 0), (hx, -hy, 0), (hx, hy, 0), (-hx, hy, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new(name, mesh)
    ob.location = location
    ob.rotation_euler = (rot_x, 0.0, 0.0)
    ob.pass_index = pass_index
    bpy.context.scene.collection.objects.link(ob)
    return ob


def build_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.samples = 4
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.use_denoising = False
    sc.cycles.device = "CPU"
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    sc.render.filepath = str(OUT / "rgb_")
    sc.frame_start, sc.frame_end = 1, 3
    cam_data = bpy.data.cameras.new("Cam")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = FOCAL_PX * 36.0 / W
    cam = bpy.data.objects.new("Cam", cam_data)
    cam.location = (0.0, 0.0, 10.0)
    cam.rotation_euler = (0.0, 0.0, math.pi / 2)
    sc.collection.objects.link(cam)
    sc.camera = cam
    # Ground: world x in [-20, 0] -> image top half.
    quad("Ground", 20.0, 40.0, (-10.0, 0.0, 0.0), 3)
    mover = quad("Mover", 1.6, 1.6, (0.0, -1.6, 2.0), 7)
    # 5 px per world unit at depth 8: frame 1 -> 2: +0.4 y (2 px right), -0.2 x (1 px up);
    # frame 2 -> 3: twice that.
    for frame, (x, y) in ((1, (0.2, -2.0)), (2, (0.0, -1.6)), (3, (-0.4, -0.8))):
        mover.location.x, mover.location.y = x, y
        mover.keyframe_insert("location", frame=frame)
    quad("Tilted", 1.6, 1.6, (-1.0, 1.6, 2.0), 5, rot_x=math.radians(30.0))
    vl = bpy.context.view_layer
    vl.use_pass_z = vl.use_pass_normal = vl.use_pass_vector = vl.use_pass_object_index = True
    sc.render.use_motion_blur = False
    return sc


def compositor(sc, facts):
    is5 = rna_has(bpy.types.Scene, "compositing_node_group")
    facts["compositor"] = {
        "scene_has_compositing_node_group": is5,
        "hasattr_class_compositing_node_group": hasattr(bpy.types.Scene, "compositing_node_group"),
        "scene_has_node_tree": rna_has(bpy.types.Scene, "node_tree"),
    }
    if is5:
        facts["compositor"]["tree_before"] = repr(sc.compositing_node_group)
        tree = bpy.data.node_groups.new("Notes", "CompositorNodeTree")
        sc.compositing_node_group = tree
    else:
        facts["compositor"]["node_tree_before_use_nodes"] = repr(sc.node_tree)
        sc.use_nodes = True
        tree = sc.node_tree
    facts["compositor"]["nodes_in_new_tree"] = sorted(n.bl_idname for n in tree.nodes)
    facts["compositor"]["composite_node_type"] = hasattr(bpy.types, "CompositorNodeComposite")
    facts["compositor"]["math_nodes"] = [t for t in ("CompositorNodeMath", "ShaderNodeMath")
                                         if hasattr(bpy.types, t)]
    facts["compositor"]["xyz_nodes"] = [t for t in ("CompositorNodeSeparateXYZ",
                                                    "ShaderNodeSeparateXYZ",
                                                    "CompositorNodeCombineXYZ", "ShaderNodeCombineXYZ")
                                        if hasattr(bpy.types, t)]
    facts["compositor"]["use_compositing_default"] = sc.render.use_compositing
    for n in list(tree.nodes):
        tree.nodes.remove(n)
    rl = tree.nodes.new("CompositorNodeRLayers")
    facts["render_layers_outputs"] = [s.name for s in rl.outputs if s.enabled]
    return tree, rl


def file_output(tree, directory: Path, facts, color_mode: str):
    items = rna_has(bpy.types.CompositorNodeOutputFile, "file_output_items")
    fo = tree.nodes.new("CompositorNodeOutputFile")
    f = fo.format
    fo_facts = facts.setdefault("file_output", {
        "file_output_items": items,
        "default_format": [getattr(f, "media_type", None), f.file_format, f.color_depth],
        "default_inputs": len(fo.inputs),
    })
    if hasattr(f, "media_type"):
        f.media_type = "IMAGE"
    f.file_format = "OPEN_EXR"
    f.color_depth = "32"
    f.exr_codec = "ZIP"
    try:
        f.color_mode = color_mode
        if color_mode == "BW":
            fo_facts["exr_bw_allowed"] = True
    except TypeError as exc:
        fo_facts["exr_bw_allowed"] = str(exc).splitlines()[0][:120]
        f.color_mode = "RGB"
    if items:
        fo.directory = str(directory)
        fo.file_name = ""
        fo.file_output_items.clear()
    else:
        fo.base_path = str(directory)
        fo.file_slots.clear()
    return fo


def add_input(fo, name: str, socket_type: str, dims: int | None = None):
    if rna_has(bpy.types.CompositorNodeOutputFile, "file_output_items"):
        item = fo.file_output_items.new(socket_type, name)
        if dims:
            item.vector_socket_dimensions = dims
        return fo.inputs[item.name]
    fo.file_slots.new(name)
    fo.file_slots[-1].path = name
    return fo.inputs[-1]


facts_switch_inputs: list = []


def sep_comb(tree, sock, via_switch: bool):
    """Vector -> (Switch) -> Separate Color -> Combine Color: the 4th channel kept or not."""
    if via_switch:
        sw = tree.nodes.new("CompositorNodeSwitch")
        facts_switch_inputs.append([i.name for i in sw.inputs])
        tree.links.new(sock, sw.inputs["Off"])
        sock = sw.outputs[0]
    sep = tree.nodes.new("CompositorNodeSeparateColor")
    sep.mode = "RGB"
    comb = tree.nodes.new("CompositorNodeCombineColor")
    tree.links.new(sock, sep.inputs[0])
    for i in range(4):
        tree.links.new(sep.outputs[i], comb.inputs[i])
    return comb.outputs[0]


def read_exr(path: Path) -> dict:
    import numpy as np
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        parts = f.parts
        ch = {k: np.asarray(v.pixels, dtype=np.float64) for k, v in parts[0].channels.items()}
        return {"parts": len(parts), "channels": ch}


def main() -> None:
    facts: dict = {"blender": bpy.app.version_string, "binary_path": bpy.app.binary_path,
                   "background": bpy.app.background}
    sc = build_scene()
    tree, rl = compositor(sc, facts)
    out_sock = {s.name: s for s in rl.outputs}
    idx_name = "Object Index" if "Object Index" in out_sock else "IndexOB"

    def write(sock, name, socket_type, mode, dims=None):
        tree.links.new(sock, add_input(file_output(tree, OUT, facts, mode), name, socket_type, dims))

    write(out_sock["Depth"], "depth_######", "FLOAT", "BW")
    write(out_sock["Normal"], "normal_######", "VECTOR", "RGB", 3)
    write(out_sock[idx_name], "index_######", "FLOAT", "BW")
    write(out_sock["Vector"], "vecdirect_######", "RGBA", "RGBA", 4)
    write(sep_comb(tree, out_sock["Vector"], False), "vecsep_######", "RGBA", "RGBA")
    write(sep_comb(tree, out_sock["Vector"], True), "vecswitch_######", "RGBA", "RGBA")
    sc.frame_set(2)
    bpy.ops.render.render(write_still=True)
    files = sorted(p.name for p in OUT.iterdir())
    facts["files_written"] = files
    res: dict = {}
    d = read_exr(OUT / "depth_000002.exr")
    res["depth_channels"] = sorted(d["channels"])
    z = next(iter(d["channels"].values()))
    res["depth_top_left_ground"] = round(float(z[0, 0]), 4)  # planar 10; euclid would be 10.55
    res["depth_euclid_would_be"] = round(10.0 * math.sqrt(1 + 2 * (15.5 / FOCAL_PX) ** 2), 4)
    res["depth_background"] = float(z[-1, -1])
    res["depth_values"] = sorted({round(float(v), 3) for v in z.ravel()})[:6]
    n = read_exr(OUT / "normal_000002.exr")
    res["normal_channels"] = sorted(n["channels"])
    rows, cols = _pixels_of(read_exr(OUT / "index_000002.exr"), 5.0)
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    res["normal_tilted_quad"] = [round(float(n["channels"][k][r, c]), 3) for k in ("X", "Y", "Z")]
    res["normal_background"] = [float(n["channels"][k][-1, -1]) for k in ("X", "Y", "Z")]
    idx = read_exr(OUT / "index_000002.exr")
    res["index_channels"] = sorted(idx["channels"])
    res["index_values"] = sorted({float(v) for v in next(iter(idx["channels"].values())).ravel()})
    # The moving quad's interior: its pixels (index 7) away from the edges.
    rows, cols = _pixels_of(idx, 7.0)
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    for name in ("vecdirect", "vecsep", "vecswitch"):
        v = read_exr(OUT / f"{name}_000002.exr")
        res[f"{name}_channels"] = sorted(v["channels"])
        res[f"{name}_at_mover"] = {k: round(float(a[r, c]), 3) for k, a in sorted(v["channels"].items())}
    # The same frame with motion blur on: the Vector pass still exists but reads 0.
    sc.render.use_motion_blur = True
    for f in OUT.glob("vecswitch_*.exr"):
        f.unlink()
    bpy.ops.render.render(write_still=True)
    v = read_exr(OUT / "vecswitch_000002.exr")
    res["vector_max_abs_with_motion_blur"] = max(float(abs(a).max()) for a in v["channels"].values())
    sc.render.use_motion_blur = False
    # Compositing off: do File Output nodes still write?
    sc.render.use_compositing = False
    for f in OUT.glob("*.exr"):
        f.unlink()
    bpy.ops.render.render(write_still=True)
    res["files_written_with_use_compositing_off"] = len(list(OUT.glob("*.exr")))
    sc.render.use_compositing = True
    facts["passes"] = res
    facts["switch_node_inputs"] = facts_switch_inputs[0]
    facts["pass_index"] = {"hard_min": bpy.types.Object.bl_rna.properties["pass_index"].hard_min,
                           "hard_max": bpy.types.Object.bl_rna.properties["pass_index"].hard_max,
                           "type": bpy.types.Object.bl_rna.properties["pass_index"].type}
    ob = bpy.data.objects["Mover"]
    try:
        ob.pass_index = 70000
        facts["pass_index"]["set_70000_reads"] = ob.pass_index
    except (TypeError, ValueError, OverflowError) as exc:
        facts["pass_index"]["set_70000_reads"] = type(exc).__name__
    facts["actions"] = {"layered": rna_has(bpy.types.Action, "layers"),
                        "legacy_fcurves": rna_has(bpy.types.Action, "fcurves")}
    cp = bpy.context.preferences.addons["cycles"].preferences
    dev = {"compute_device_type_default": cp.compute_device_type, "settable": [], "refused": {}}
    for backend in ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI", "CPU"):
        try:
            cp.compute_device_type = backend
            cp.refresh_devices()
            dev["settable"].append([backend, [d.type for d in cp.devices]])
        except TypeError as exc:
            dev["refused"][backend] = str(exc).split(":")[-1].strip()[:100]
    facts["devices"] = dev
    facts["open_mainfile_params"] = sorted(
        p.identifier for p in bpy.ops.wm.open_mainfile.get_rna_type().properties
        if p.identifier in ("load_ui", "use_scripts"))
    fired = []
    bpy.app.timers.register(lambda: fired.append(1), first_interval=0.01)
    import time

    time.sleep(0.3)
    facts["timers_fired_after_0.3_s"] = len(fired)
    if "--no-exit-check" not in sys.argv[1:]:
        facts["exit_with_a_handler_registered"] = exit_with_handler()
    # 4.x print render progress on stdout: the result is the one line that starts with NOTES.
    print("NOTES " + json.dumps(facts, default=str))
    sys.stdout.flush()
    os._exit(0)


def exit_with_handler(timeout: float = 30.0) -> str:
    """How a bpy process ends when a Python handler is still registered at exit: its return code,
    or "hangs" when it has not ended after ``timeout`` seconds (then it is killed)."""
    import subprocess

    code = "import bpy\nbpy.app.handlers.render_pre.append(lambda *a: None)\nprint('ready')\n"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"hangs (killed after {timeout:g} s)"
    return f"rc {proc.returncode}"


def _pixels_of(idx: dict, value: float):
    import numpy as np

    a = next(iter(idx["channels"].values()))
    rows, cols = np.nonzero(a == value)
    return sorted(rows), sorted(cols)


if __name__ == "__main__":
    main()
