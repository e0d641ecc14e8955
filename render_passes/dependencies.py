# SPDX-License-Identifier: GPL-3.0-or-later
"""What a scene's pixels depend on besides the ``.blend``, and what the worker cannot honour.

:func:`collect` lists every external file the open file reads (images and image sequences,
movies, movie clips, linked libraries, volumes, fonts, Alembic/USD caches, baked simulation
caches on disk); :func:`dataset.provenance.dependency_identities` hashes them once per process and
the provenance record keeps them, so that a resume sees a replaced texture or library.
:func:`refuse_multiview` refuses a stereo (multiview) scene by name and :func:`driver_notice`
says which Python drivers did not run because embedded scripts are off.
"""

from __future__ import annotations

import os

import bpy

from ..wire.events import Emit
from ..wire.protocol import Ev
from .scene_setup import SceneError
from .timing import animatable_ids

_FILE_SOURCES = {"FILE": "image", "SEQUENCE": "image", "TILED": "image", "MOVIE": "movie"}


def _abspath(path: str, library=None) -> str:
    return os.path.normpath(bpy.path.abspath(path, library=library))


def _external(block, path: str, kind: str, folder: bool = False) -> tuple[str, str] | None:
    if not path or getattr(block, "packed_file", None) is not None:
        return None  # packed: inside the .blend, covered by its hash
    p = _abspath(path, getattr(block, "library", None))
    return (kind, os.path.dirname(p) if folder else p)


def collect(scene) -> list[tuple[str, str]]:
    """``(kind, absolute path)`` of every external file the open file reads (a folder for image
    sequences, UDIM tiles, volume sequences and disk caches: every file in it counts)."""
    out: list[tuple[str, str] | None] = []
    for img in bpy.data.images:
        kind = _FILE_SOURCES.get(img.source)
        if kind and img.users:
            out.append(_external(img, img.filepath, kind, folder=img.source in ("SEQUENCE", "TILED")))
    for lib in bpy.data.libraries:
        out.append(_external(lib, lib.filepath, "library"))
    for clip in bpy.data.movieclips:
        if clip.users:
            out.append(_external(clip, clip.filepath, "movie", folder=clip.source == "SEQUENCE"))
    for vol in getattr(bpy.data, "volumes", ()):
        if vol.users:
            out.append(_external(vol, vol.filepath, "volume", folder=vol.is_sequence))
    for font in bpy.data.fonts:
        if font.users and font.filepath != "<builtin>":
            out.append(_external(font, font.filepath, "font"))
    for cache in bpy.data.cache_files:
        if cache.users:
            out.append(_external(cache, cache.filepath, "cache_file"))
    from .containment import baked_cache_folders

    out += [("cache", p) for p in baked_cache_folders(scene)]
    return sorted({x for x in out if x is not None})


def refuse_multiview(scene, name: str) -> None:
    """A stereo (multiview) scene renders two views per frame into files our layout does not
    name: refused with the fix."""
    if getattr(scene.render, "use_multiview", False):
        raise SceneError(
            f"{name}: scene '{scene.name}' renders stereo views (Output Properties > Stereoscopy "
            "is on); Dataset Forge renders one camera per sequence: turn Stereoscopy off and save "
            "the file, and use the stereo_baseline setting for a right view")


def python_drivers() -> list[str]:
    """``'OWNER'.data_path = 'expression'`` of every driver whose expression needs Python (not
    Blender's simple-expression evaluator)."""
    found = []
    for owner in animatable_ids():
        ad = getattr(owner, "animation_data", None)
        if ad is None:
            continue
        for fc in ad.drivers:
            d = fc.driver
            if d.type == "SCRIPTED" and not getattr(d, "is_simple_expression", False):
                found.append(f"'{owner.name}'.{fc.data_path}[{fc.array_index}] = {d.expression!r}")
    return found


def driver_notice(autoexec: bool, emit: Emit, scene_name: str) -> None:
    """One notice when embedded scripts are off and Python drivers exist: Blender does not run
    them (their properties keep their last saved value)."""
    if autoexec:
        return
    found = python_drivers()
    if found:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        emit({"event": Ev.NOTICE, "scene": scene_name, "job": None,
              "message": f"{scene_name}: {len(found)} Python driver(s) are not run because "
                         f"embedded scripts are off ({'; '.join(found[:3])}{more}); their "
                         "properties keep their saved values: set autoexec if the file is trusted"})
