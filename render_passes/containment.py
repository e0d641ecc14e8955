# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep what a scene writes inside its sequence folder, and leave no temp folder behind.

A ``.blend`` may carry compositor File Output nodes that write wherever their author pointed them:
absolute paths, ``//../`` (next to the scenes folder), even into another dataset. Unless the user
opts in (``allow_scene_outputs``), :func:`mute_scene_outputs` mutes every such node before the
render, with one notice per node naming it and its path; :func:`restore` unmutes them (the file is
never saved, so this only matters to code that keeps using the scene). Our own ground-truth File
Output nodes are built later, by the pass rig, and are not touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import bpy

from ..wire.events import Emit
from ..wire.protocol import Ev
from . import compat

FILE_OUTPUT = "CompositorNodeOutputFile"


_MUTED: list[tuple[Any, str]] = []  # (tree, node name) muted by this process


def mute_scene_outputs(scene, allow: bool, emit: Emit, scene_name: str) -> list[tuple[Any, str]]:
    """Mute the scene's own File Output nodes unless ``allow``; one ``notice`` event per node.
    Returns the (tree, node name) pairs muted (also kept for :func:`restore`)."""
    muted = _MUTED
    for tree in compat.compositor_trees(scene):
        for node in tree.nodes:
            if node.bl_idname != FILE_OUTPUT or node.mute:
                continue
            where = ", ".join(os.path.normpath(bpy.path.abspath(p))
                              for p in compat.file_output_paths(node))
            if allow:
                emit({"event": Ev.NOTICE, "scene": scene_name, "job": None,
                      "message": f"{scene_name}: the scene's own File Output node "
                                 f"'{node.name}' writes to {where} (allow_scene_outputs is on)"})
                continue
            node.mute = True
            muted.append((tree, node.name))
            emit({"event": Ev.NOTICE, "scene": scene_name, "job": None,
                  "message": f"{scene_name}: muted the scene's own File Output node '{node.name}' "
                             f"in '{tree.name}' (it would write to {where}); set "
                             "allow_scene_outputs to let it write"})
    return muted


def restore() -> None:
    """Unmute what :func:`mute_scene_outputs` muted."""
    while _MUTED:
        tree, name = _MUTED.pop()
        try:
            node = tree.nodes.get(name)
        except ReferenceError:  # the tree is gone
            continue
        if node is not None:
            node.mute = False


def leave() -> None:
    """What a worker does on its way out: :func:`restore`, :func:`remove_session_tempdir`."""
    try:
        restore()
    except Exception:  # noqa: BLE001 - leaving must not fail on a half-torn-down scene
        pass
    remove_session_tempdir()


def remove_session_tempdir() -> None:
    """Remove Blender's per-process temp folder (``bpy.app.tempdir``, ``blender_XXXXXX``): the
    worker leaves with ``os._exit``, which skips Blender's own cleanup of it."""
    try:
        tmp = Path(os.path.normpath(bpy.app.tempdir))
    except (AttributeError, ValueError):
        return
    if tmp.name.startswith("blender_") and tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
