# SPDX-License-Identifier: GPL-3.0-or-later
"""A worker without Blender, for tests of the engine's process side (launchers, session, the
panel's controller) in the bpy-free lane.

:func:`write_fake_blender` writes an executable that the launcher starts exactly as it starts
Blender (``EXE --background ... --python-expr CODE -- JOB.json``). It reads the job file, imports
this package (the real :mod:`wire.events` encoder and :mod:`dataset.journal`) and, per sequence,
writes real PNG frames, journals them and prints the events a worker prints. What it does depends
on the scene name's first word:

* ``good...``: every frame rendered, then ``job_done``, exit 0;
* ``broken...``: a permanent ``error`` event naming the file and the fix, exit 1;
* ``hang...``: in a sequence with no frame done yet, the first frame rendered, then it waits (for
  a cancel or a kill); where frames are done already (a rerun), like ``good``;
* ``gate...``: after ``scene_opened`` it waits until the file ``BLEND.go`` exists, then like
  ``good`` (a test looks at the run between the two events, and opens the gate).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_SCRIPT = '''#!{python}
import importlib.util, json, os, sys, time

spec = importlib.util.spec_from_file_location(
    "dataset_forge", {init!r}, submodule_search_locations=[{repo!r}])
mod = importlib.util.module_from_spec(spec)
sys.modules["dataset_forge"] = mod
spec.loader.exec_module(mod)
from dataset_forge.dataset import layout
from dataset_forge.wire.events import stdout_emitter
from dataset_forge.dataset.journal import Journal
from PIL import Image

emit = stdout_emitter()
job = json.loads(open(sys.argv[-1], encoding="utf-8").read())
name = job["scene_name"]
emit({{"event": "worker_started", "pid": os.getpid(), "blender": "fake"}})
emit({{"event": "scene_opened", "scene": name, "blend": job["blend"], "seconds": 0.0}})
if name.startswith("gate"):
    while not os.path.exists(job["blend"] + ".go"):
        time.sleep(0.01)
if name.startswith("broken"):
    emit({{"event": "error", "scene": name, "job": None, "permanent": True,
           "message": f"{{os.path.basename(job['blend'])}}: the scene has no camera; add one"}})
    sys.exit(1)
for seq in job["sequences"]:
    a, b = seq["frame_start"], seq["frame_end"]
    journal = Journal(seq["out_dir"])
    todo = [f for f in range(a, b + 1) if not journal.is_done(f)]
    hang = name.startswith("hang") and len(todo) == b - a + 1
    emit({{"event": "job_started", "job": seq["id"], "scene": name, "frames": b - a + 1,
           "todo": len(todo)}})
    for f in range(a, b + 1):
        if f not in todo:
            emit({{"event": "frame_skipped", "job": seq["id"], "scene": name, "frame": f}})
            continue
        if hang and f > a:
            while True:
                time.sleep(60)
        rel = layout.rgb_file(f, "png")
        path = os.path.join(seq["out_dir"], rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.new("RGB", (4, 3), (f % 256, 0, 0)).save(path)
        journal.mark_done(f, [rel])
        emit({{"event": "frame_done", "job": seq["id"], "scene": name, "frame": f,
               "seconds": 0.0}})
    emit({{"event": "job_done", "job": seq["id"], "scene": name, "seconds": 0.0}})
emit({{"event": "worker_done", "rc": 0}})
'''


def write_fake_blender(folder: Path) -> str:
    """Write the fake Blender into ``folder``; returns its path (for ``Settings.executable``)."""
    exe = Path(folder) / "fake-blender"
    exe.write_text(_SCRIPT.format(python=sys.executable, init=str(REPO / "__init__.py"),
                                  repo=str(REPO)), encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return os.fspath(exe)
