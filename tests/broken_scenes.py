# SPDX-License-Identifier: GPL-3.0-or-later
"""Build scenes that cannot be rendered as asked, each with one known problem. Run it with the
bpy wheel's Python::

    python tests/broken_scenes.py OUT_DIR [NAME ...]

Every scene starts as ``basic`` of tests/scenes.py (frames 1..24) and then:

* ``truncated``: saved, then cut to half its size (Blender cannot read it);
* ``no_camera``: the camera object is deleted, the scene has no active camera;
* ``short_range``: frames 1..2 only (too short for 2 sequences of 3 frames);
* ``motion_blur``: motion blur on (Cycles would write an all-zero flow).

Not in :data:`BROKEN` (built only on request), both need scripts allowed (``autoexec``):

* ``crash_on_open``: its embedded start-up script kills the Blender that opens it;
* ``crash_on_render``: its script registers a handler that kills Blender when a frame renders
  (the file reads fine; every worker rendering it dies).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BROKEN = ("truncated", "no_camera", "short_range", "motion_blur")
SHORT_RANGE = (1, 2)


def build(name: str, path: str | Path) -> Path:
    import bpy
    import scenes

    path = Path(path)
    scenes.build("basic", path)
    if name == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    scene = bpy.context.scene
    if name == "no_camera":
        cam = scene.camera
        scene.camera = None
        bpy.data.objects.remove(cam, do_unlink=True)
    elif name == "short_range":
        scene.frame_start, scene.frame_end = SHORT_RANGE
    elif name == "motion_blur":
        scene.render.use_motion_blur = True
    elif name == "crash_on_open":
        text = bpy.data.texts.new("crash.py")
        text.write("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
        text.use_module = True  # runs when the file is opened with scripts allowed
    elif name == "crash_on_render":
        text = bpy.data.texts.new("crash_render.py")
        text.write("import os, signal, bpy\n"
                   "def _die(*_args):\n"
                   "    os.kill(os.getpid(), signal.SIGKILL)\n"
                   "bpy.app.handlers.render_pre.append(_die)\n")
        text.use_module = True
    else:
        raise KeyError(name)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python tests/broken_scenes.py OUT_DIR [NAME ...]", file=sys.stderr)
        sys.exit(2)
    for n in sys.argv[2:] or BROKEN:
        print(build(n, Path(sys.argv[1]) / f"{n}.blend"))
    sys.stdout.flush()
    os._exit(0)
