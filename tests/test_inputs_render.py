# SPDX-License-Identifier: GPL-3.0-or-later
"""What a frame depends on besides the .blend, and inputs that could take the machine down, for
real (tiny renders: 32x24 px, 1 sample).

* a replaced image texture or linked library is a change: refused by name, re-rendered with
  ``on_change rerender`` (the frames then show the new content);
* a .blend saved while a worker renders it: every sequence records the file as loaded;
* simulation caches write nothing next to the scenes;
* a frame range past Blender's limit and a file whose own resolution cannot fit in memory are
  refused before any frame; a stereo scene is refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_bpy
from dataset_forge import create_datasets, render_animation
from dataset_forge.dataset import layout
from dataset_forge.dataset import provenance as pv
from dataset_forge.settings import Settings
from PIL import Image

pytestmark = pytest.mark.render

TINY = dict(width=32, height=24, max_samples=1, use_denoising=False, threads=1, depths=False,
            normals=False, flows=False, segmentations=False, timeout=120, retries=0)

_PRELUDE = f"""
import sys, bpy
sys.path.insert(0, {str(REPO / 'tests')!r})
import scenes
"""


def _png(path: Path, rgb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), rgb).save(path)
    return path


def _textured(folder: Path) -> tuple[Path, Path, Path]:
    """``basic`` whose ground shows ``tex/ground.png`` (emission, fills the frame) and whose cube
    comes from a linked library ``lib.blend``; returns (scene, texture, library)."""
    tex = _png(folder / "tex" / "ground.png", (255, 0, 0))
    lib, blend = folder / "lib.blend", folder / "scenes" / "textured.blend"
    blend.parent.mkdir(parents=True, exist_ok=True)
    run_bpy(_PRELUDE + f"""
scenes.build("basic", {str(lib)!r})
scenes.build("basic", {str(blend)!r})
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
g = bpy.data.objects["Ground"]
m = bpy.data.materials.new("Tex"); m.use_nodes = True
nt = m.node_tree; nt.nodes.clear()
img = nt.nodes.new("ShaderNodeTexImage")
img.image = bpy.data.images.load({str(tex)!r}); img.image.filepath = "//../tex/ground.png"
em = nt.nodes.new("ShaderNodeEmission"); out = nt.nodes.new("ShaderNodeOutputMaterial")
nt.links.new(img.outputs["Color"], em.inputs["Color"])
nt.links.new(em.outputs["Emission"], out.inputs["Surface"])
g.data.materials.clear(); g.data.materials.append(m)
with bpy.data.libraries.load({str(lib)!r}, link=True) as (src, dst):
    dst.objects = ["Sphere"]
for ob in dst.objects:
    bpy.context.scene.collection.objects.link(ob)
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r}, compress=False, relative_remap=True)
print("ok")
""")
    return blend, tex, lib


def _red_green(seq: Path, f: int) -> tuple[float, float]:
    px = np.asarray(Image.open(seq / layout.rgb_file(f, "png")).convert("RGB"), np.float64)
    return px[..., 0].mean(), px[..., 1].mean()


def test_a_replaced_texture_or_library_is_refused_by_name_then_rerendered(tmp_path):
    blend, tex, lib = _textured(tmp_path)
    seq = tmp_path / "seq"
    s = render_animation(blend, seq, frame_start=1, frame_end=2, **TINY)
    assert s["ok"], s["failed"]
    r, g = _red_green(seq, 1)
    assert r > g + 50  # the ground shows the red texture
    _png(tex, (0, 255, 0))  # replaced: the resume must not keep the red frames
    s = render_animation(blend, seq, frame_start=1, frame_end=3, **TINY)
    assert not s["ok"]  # main: exit 0, frames 1-2 red and 3 green
    assert f"the content of image {tex}" in s["failed"]["textured"]
    deps = {d["path"]: d["kind"] for d in json.loads((seq / layout.PROVENANCE).read_text())
            ["dependencies"]}
    assert deps == {str(tex): "image", str(lib): "library"}
    assert "--on-change rerender" in s["failed"]["textured"]
    s = render_animation(blend, seq, frame_start=1, frame_end=3, on_change="rerender", **TINY)
    assert s["ok"] and s["frames_rendered"] == 3
    colours = [_red_green(seq, f) for f in (1, 2, 3)]
    assert all(g > r + 50 for r, g in colours), colours  # now every frame shows the green one
    run_bpy(_PRELUDE + f"""
bpy.ops.wm.open_mainfile(filepath={str(lib)!r})
bpy.data.objects["Sphere"].location.x += 1
bpy.ops.wm.save_mainfile()
print("ok")
""")
    s = render_animation(blend, seq, frame_start=1, frame_end=3, **TINY)
    assert not s["ok"] and f"the content of library {lib}" in s["failed"]["textured"]


def test_a_blend_saved_while_a_worker_renders_is_recorded_as_loaded(tmp_path):
    """The worker's own steps, in order: open the file, the file is saved on disk with other
    content, render two sequences. Both record the bytes the worker loaded, a warning says the
    file was saved, and the next run refuses the frames by name."""
    blend = tmp_path / "scenes" / "basic.blend"
    other = tmp_path / "other.blend"
    out = run_bpy(_PRELUDE + f"""
import json, shutil
scenes.build("orbit", {str(other)!r})
scenes.build("basic", {str(blend)!r})
from dataset_forge.dataset import provenance as pv
from dataset_forge.dataset.documents.job import as_job
from dataset_forge.render_passes import worker
from dataset_forge.settings import Settings
settings = Settings(width=32, height=24, max_samples=1, use_denoising=False, depths=False,
                    normals=False, flows=False, segmentations=False)
seqs = [{{"id": f"s{{i}}", "out_dir": {str(tmp_path)!r} + f"/s{{i}}", "frame_start": i,
          "frame_end": i}} for i in (1, 2)]
job = as_job({{"blend": {str(blend)!r}, "scene_name": "basic", "settings": settings.to_dict(),
               "sequences": seqs}})
events = []
before = pv.file_sha256({str(blend)!r})
scene = worker.open_scene(job, settings, events.append)
shutil.copy({str(other)!r}, {str(blend)!r})  # saved during the run
for q in seqs:
    worker.render_sequence(scene, q, job, settings, events.append, [None], "CPU")
recorded = [pv.read_record(q["out_dir"])["blend"]["sha256"] for q in seqs]
print(json.dumps({{"before": before, "after": pv.file_sha256({str(blend)!r}),
                  "recorded": recorded,
                  "warnings": [e["message"] for e in events if e["event"] == "warning"]}}))
""")
    res = json.loads(out.strip().splitlines()[-1])
    assert res["before"] != res["after"]
    assert res["recorded"] == [res["before"], res["before"]]
    assert len(res["warnings"]) == 1 and "basic.blend was saved while this run" in res["warnings"][0]
    with pytest.raises(pv.ProvenanceError, match=r"the content of basic\.blend"):
        pv.prepare(tmp_path / "s2", blend, Settings(
            width=32, height=24, max_samples=1, use_denoising=False, depths=False, normals=False,
            flows=False, segmentations=False), "5.0.1", "basic")


def test_simulation_caches_write_nothing_next_to_the_scenes(tmp_path):
    blend = tmp_path / "scenes" / "sim.blend"
    run_bpy(_PRELUDE + f"""
scenes.build("basic", {str(blend)!r})
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
cube = bpy.data.objects["Cube"]
cloth = cube.modifiers.new("Cloth", "CLOTH")
cloth.point_cache.use_disk_cache = True
cloth.point_cache.frame_end = 4
dom = bpy.data.objects["Sphere"]
fl = dom.modifiers.new("Fluid", "FLUID"); fl.fluid_type = "DOMAIN"
ds = fl.domain_settings; ds.resolution_max = 6; ds.cache_frame_end = 4
ds.cache_directory = "//fluid_cache"
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r}, compress=False)
print("ok")
""")
    def tree() -> dict[str, int]:
        return {str(p.relative_to(blend.parent)): p.stat().st_mtime_ns
                for p in blend.parent.rglob("*")}

    before = tree()  # the build made fluid_cache/config (and a .blend1 backup)
    events: list = []
    s = render_animation(blend, tmp_path / "out" / "seq", frame_start=1, frame_end=2,
                         on_progress=events.append, **TINY)
    assert s["ok"], s["failed"]
    assert tree() == before  # nothing written next to the scene
    notices = [e["message"] for e in events if e.get("event") == "notice"]
    assert any("'Cube' modifier 'Cloth'" in m and "kept in memory" in m for m in notices), notices
    assert any("'Sphere' modifier 'Fluid'" in m and "fluid_cache" in m for m in notices), notices
    assert not (tmp_path / "out" / "seq" / ".dataset_forge" / "caches").exists()  # removed
    # create-datasets opens the file in its probe too
    s = create_datasets(blend.parent, tmp_path / "ds", sequences_per_scene=1, num_frames=2,
                        **TINY)
    assert s["ok"], s["failed"]
    assert tree() == before


def test_inputs_that_would_take_the_machine_down_are_refused_first(tmp_path):
    blend = tmp_path / "big.blend"
    run_bpy(_PRELUDE + f"""
scenes.build("basic", {str(blend)!r})
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
r = bpy.context.scene.render
r.resolution_x = r.resolution_y = 20000; r.resolution_percentage = 200
bpy.ops.wm.save_mainfile()
bpy.context.scene.render.resolution_percentage = 100
bpy.context.scene.render.use_multiview = True
bpy.ops.wm.save_as_mainfile(filepath={str(tmp_path / 'stereo.blend')!r}, copy=True)
print("ok")
""")
    opts = {**TINY, "width": 0, "height": 0}
    s = render_animation(blend, tmp_path / "a", frame_start=1, frame_end=1, **opts)
    why = s["failed"]["big"]
    assert "renders 20000x20000 at 200 %: 40000x40000 needs about" in why
    assert "GiB of frame buffers" in why
    assert s["frames_rendered"] == 0 and s["scenes"]["big"]["attempts"] == 1
    with pytest.raises(Exception, match=r"last frame 1000000000000 is outside Blender's frame "
                                        r"range -1048574\.\.1048574"):
        render_animation(blend, tmp_path / "b", frame_start=1, frame_end=10**12, **TINY)
    s = render_animation(tmp_path / "stereo.blend", tmp_path / "c", frame_start=1, frame_end=1,
                         **TINY)
    assert "renders stereo views" in s["failed"]["stereo"] and "stereo_baseline" in s["failed"]["stereo"]


def test_the_stand_in_accepts_python_use_system_env():
    import subprocess
    import sys

    from conftest import bpy_env

    proc = subprocess.run([str(REPO / "tools" / "blender"), "--python-use-system-env", "-b",
                           "--python-expr", "print('standin ok')"], capture_output=True, text=True,
                          env=bpy_env(DATASET_FORGE_PYTHON=sys.executable), timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "standin ok" in proc.stdout, proc.stderr[-500:]


def test_a_worker_python_without_bpy_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    from dataset_forge.engine.launch import bootstrap_code

    # -S: no site-packages, so no bpy (and no package): what a wrong executable gives
    proc = subprocess.run([sys.executable, "-S", "-c", bootstrap_code(), str(tmp_path / "j.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr == ""
    line = proc.stdout.strip()
    assert line.startswith("@dataset_forge ") and "cannot import bpy" in line
    assert sys.executable in line and "set the executable option" in line


def test_python_drivers_not_run_are_named_and_a_busy_sequence_folder_is_refused(tmp_path):
    from dataset_forge.dataset.lock import sequence_lock

    blend = tmp_path / "drv.blend"
    run_bpy(_PRELUDE + f"""
scenes.build("basic", {str(blend)!r})
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
fc = bpy.data.objects["Sphere"].driver_add("location", 2)
fc.driver.type = "SCRIPTED"
fc.driver.expression = "__import__('math').sin(frame)"
bpy.ops.wm.save_mainfile()
print("ok")
""")
    events: list = []
    s = render_animation(blend, tmp_path / "a", frame_start=1, frame_end=1,
                         on_progress=events.append, **TINY)
    assert s["ok"], s["failed"]
    notes = [e["message"] for e in events if e.get("event") == "notice"]
    assert any("1 Python driver(s) are not run because embedded scripts are off" in m
               and "'Sphere'.location[2]" in m for m in notes), notes
    # a worker of another entry point renders this folder: refused, nothing rendered twice
    with sequence_lock(tmp_path / "b"):
        s = render_animation(blend, tmp_path / "b", frame_start=1, frame_end=1,
                             **{**TINY, "retries": 2})
    assert not s["ok"] and s["frames_rendered"] == 0
    assert "another Dataset Forge worker" in s["failed"]["drv"]
    assert s["scenes"]["drv"]["attempts"] == 1  # permanent: not retried
