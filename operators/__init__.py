# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators of the panel: Scan, Render Dataset, Render This File, Abort, Open Output Folder,
Preview Camera Path.

They read the panel's settings, call the engine and report; no planning or rendering here.
"""

from __future__ import annotations

import bpy

from ..engine import controller
from . import camera_preview, render, scan

CLASSES = (*scan.CLASSES, *render.CLASSES, *camera_preview.CLASSES)


@bpy.app.handlers.persistent
def _stop_on_load(*_args) -> None:
    """Opening another file ends every modal operator without a last call: stop the workers of a
    running render first (their finished frames stay; a rerun resumes)."""
    scan.forget_scan()  # its modal operator ends with the old file; its result is not wanted
    ctl = controller.active()
    if ctl is not None:
        ctl.cancel()
        controller.release(ctl)
        text = "Stopped because another file was opened. " + ctl.final_report()[1]
        print(f"Dataset Forge: {text}")
        state = getattr(bpy.context.window_manager, "dataset_forge_run", None)
        if state is not None:
            render.write_state(state, ctl)
            state.status = text


def register() -> None:
    unregister()  # registering twice replaces, never duplicates
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_stop_on_load)


def unregister() -> None:
    # Disabling the add-on mid-run must not leave worker processes behind.
    scan.forget_scan()
    ctl = controller.active()
    if ctl is not None:
        ctl.cancel()
        controller.release(ctl)
    for h in [h for h in bpy.app.handlers.load_pre if getattr(h, "__name__", "") == "_stop_on_load"
              and getattr(h, "__module__", "") == __name__]:
        bpy.app.handlers.load_pre.remove(h)
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
