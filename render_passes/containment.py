# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep what a scene writes inside its sequence folder, and leave no temp folder behind.

A ``.blend`` may carry compositor File Output nodes that write wherever their author pointed them:
absolute paths, ``//../`` (next to the scenes folder), even into another dataset. Unless the user
opts in (``allow_scene_outputs``), :func:`mute_scene_outputs` mutes every such node before the
render, with one notice per node naming it and its path; :func:`restore` unmutes them (the file is
never saved, so this only matters to code that keeps using the scene). Our own ground-truth File
Output nodes are built later, by the pass rig, and are not touched.

Simulation caches (:func:`contain_caches`) are kept in memory or redirected into the sequence's
private ``.dataset_forge/`` folder, one notice each: nothing is written next to the scenes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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
    """What a worker does on its way out: :func:`restore`, :func:`remove_private_caches`,
    :func:`remove_session_tempdir`."""
    try:
        restore()
    except Exception:  # noqa: BLE001 - leaving must not fail on a half-torn-down scene
        pass
    remove_private_caches()
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


# -- Simulation caches ------------------------------------------------------------------------------
# A cloth, soft body, particle, dynamic paint or rigid body point cache with "Disk Cache" on, and
# a fluid domain's cache folder, are written while frames are evaluated: next to the scenes
# (``//blendcache_NAME/``, ``//cache_fluid_...``) unless redirected. Baked caches are only read.
_CACHE_DIRS: list[Path] = []  # private cache folders made by this process (removed on leave)


def _point_caches(scene):
    """``(owner label, PointCache)`` of every point cache the scene's simulations use."""
    for ob in scene.objects:
        for mod in ob.modifiers:
            label = f"'{ob.name}' modifier '{mod.name}'"
            if mod.type in ("CLOTH", "SOFT_BODY"):
                yield label, mod.point_cache
            elif mod.type == "PARTICLE_SYSTEM":
                yield label, mod.particle_system.point_cache
            elif mod.type == "DYNAMIC_PAINT" and mod.canvas_settings is not None:
                for surf in mod.canvas_settings.canvas_surfaces:
                    yield f"{label} surface '{surf.name}'", surf.point_cache
    rbw = scene.rigidbody_world
    if rbw is not None and rbw.point_cache is not None:
        yield "the rigid body world", rbw.point_cache


def _fluid_domains(scene):
    for ob in scene.objects:
        for mod in ob.modifiers:
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                yield f"'{ob.name}' modifier '{mod.name}'", mod.domain_settings


def _blendcache_folder() -> str:
    stem = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
    return os.path.join(os.path.dirname(bpy.data.filepath), f"blendcache_{stem}")


def baked_cache_folders(scene) -> list[str]:
    """Folders of baked caches on disk the scene reads (its pixels depend on their content)."""
    out = []
    for _label, pc in _point_caches(scene):
        if pc.use_external:
            out.append(os.path.normpath(bpy.path.abspath(pc.filepath)))
        elif pc.use_disk_cache and pc.is_baked:
            out.append(_blendcache_folder())
    for _label, ds in _fluid_domains(scene):
        if getattr(ds, "has_cache_baked_any", False):
            out.append(os.path.normpath(bpy.path.abspath(ds.cache_directory)))
    return sorted(set(out))


def contain_caches(scene, private: Path, emit: Emit, scene_name: str) -> list[str]:
    """Keep the scene's simulation caches from writing outside the dataset: an unbaked point cache
    with Disk Cache on is kept in memory instead, an unbaked fluid domain caches into ``private``
    (a folder of the sequence's ``.dataset_forge/``, removed when the worker leaves); baked and
    external caches are only read. One notice per cache; returns the messages."""
    said = []
    for label, pc in _point_caches(scene):
        if pc.use_disk_cache and not pc.use_external and not pc.is_baked:
            pc.use_disk_cache = False
            said.append(f"{scene_name}: the simulation cache of {label} would be written to "
                        f"{_blendcache_folder()}; it is kept in memory instead (bake it in "
                        "Blender to reuse a cache)")
    for label, ds in _fluid_domains(scene):
        where = os.path.normpath(bpy.path.abspath(ds.cache_directory))
        if getattr(ds, "has_cache_baked_any", False) or Path(where).is_relative_to(private):
            continue
        dst = private / f"fluid_{len(_CACHE_DIRS)}"
        dst.mkdir(parents=True, exist_ok=True)
        _CACHE_DIRS.append(dst)
        ds.cache_directory = str(dst)
        said.append(f"{scene_name}: the fluid cache of {label} would be written to {where}; it "
                    f"is written to {dst} instead (removed after the run; bake it in Blender to "
                    "reuse a cache)")
    for message in said:
        emit({"event": Ev.NOTICE, "scene": scene_name, "job": None, "message": message})
    return said


def remove_private_caches() -> None:
    """Remove the private cache folders :func:`contain_caches` made (and their parent left
    empty)."""
    while _CACHE_DIRS:
        d = _CACHE_DIRS.pop()
        shutil.rmtree(d, ignore_errors=True)
        try:
            d.parent.rmdir()
        except OSError:
            pass


@contextmanager
def caches_contained_on_load(private: Path, emit: Emit, scene_name: str) -> Iterator[None]:
    """While inside, opening a ``.blend`` runs :func:`contain_caches` on each of its scenes as
    soon as its data is read: Blender evaluates the scene right after the ``load_post``
    handlers, and that first evaluation already writes point caches and a fluid domain's config
    where the file points them."""
    @bpy.app.handlers.persistent
    def handler(*_args) -> None:
        for sc in bpy.data.scenes:
            contain_caches(sc, private, emit, scene_name)

    bpy.app.handlers.load_post.append(handler)
    try:
        yield
    finally:
        if handler in bpy.app.handlers.load_post:
            bpy.app.handlers.load_post.remove(handler)
