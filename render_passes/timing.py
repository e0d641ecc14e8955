# SPDX-License-Identifier: GPL-3.0-or-later
"""Time stretching (``keyframe_multiplier``): every stretched frame ``F`` shows the scene at the
file's own time ``F / m`` (frames ``f -> f*m``, about frame 0), in memory only.

The stretch uses Blender's own time remapping (``render.frame_map_old`` / ``frame_map_new``):
the scene clock that everything evaluates against becomes ``F * old / new``. Measured on 5.0,
4.5 and 4.2 (docs/time_stretching.md), at multipliers 2 and 1.5, against the original file
evaluated at ``F / m``: keyframes, NLA strips, drivers on ``frame``, Follow Path with an animated
evaluation time, Track To, the geometry-nodes Scene Time node and the Wave and Build modifiers
are exact (< 3e-6); so is Cycles' Vector pass (its motion is per stretched frame).
Scaling keyframes instead (the earlier approach) is wrong for every one of them but keyframes,
Follow Path and Track To.

Handled here: a geometry-nodes simulation zone restarts when the remapped clock reaches the
(stretched) scene start, so its simulation range is pinned to the file's own range (then exact on
5.0, in renders too, also when the start frame falls between stretched frames). In renders on
4.2 and 4.5 a simulation zone falls half a frame behind (measured), so it is refused there.
The scene's own frame rate is left as it is (simulations step by clock time / frame rate, which
is then exact); the stretched rate is kept in a scene property that
:func:`scene_setup.frame_rate` reads.

Refused (the message names the thing and the fix): rigid-body worlds (their cache holds whole
frames: between them the remapped clock shows the previous step), other point-cache physics
(cloth, soft body, fluid, dynamic paint: not measured to follow the clock), emitter particle
systems (exact in frame_set, but a render at a time between the file's frames shows them where
they were born unless the render before was one frame earlier), image-sequence and
movie textures (they pick their image by the integer frame number, not by the clock; measured
on a render), simulation zones on 4.2 and 4.5, drivers
that read ``frame_current`` (an integer that is not remapped), and multipliers that are no ratio
of whole numbers up to 900 (the limit of Blender's remapping fields).
"""

from __future__ import annotations

import math
from fractions import Fraction

import bpy

from . import compat
from .scene_setup import RATE_PROP, SceneError, simulation_objects, unbaked_caches

MAP_MAX = 900  # hard limit of render.frame_map_old / frame_map_new
POINT_CACHE_PHYSICS = {"CLOTH": "cloth simulation", "SOFT_BODY": "soft-body simulation",
                       "FLUID": "fluid simulation", "DYNAMIC_PAINT": "dynamic-paint simulation"}
_FIX = "bake it at the target frame rate or use keyframe_multiplier 1"


def remap_ratio(multiplier: float, old0: int = 100, new0: int = 100) -> tuple[int, int] | None:
    """``(frame_map_old, frame_map_new)`` whose ratio is the file's own remapping (``old0`` /
    ``new0``) slowed down by ``multiplier``; None when it is no ratio of whole numbers within
    Blender's limit (1..900)."""
    m = Fraction(multiplier).limit_denominator(MAP_MAX)
    if abs(float(m) - multiplier) > 1e-9 * max(1.0, multiplier):
        return None
    r = Fraction(new0, old0) * m  # new / old
    if r.numerator > MAP_MAX or r.denominator > MAP_MAX:
        return None
    k = max(1, MAP_MAX // max(r.numerator, r.denominator))
    k = min(k, max(1, 100 // r.denominator))  # keep the file's usual 100-based look when possible
    return r.denominator * k, r.numerator * k


def _scene_objects(scene) -> list:
    return list(scene.objects)


def _images_in_use(scene) -> list:
    """Images with a frame sequence or movie that something renders (materials, worlds, nodes)."""
    return [img for img in bpy.data.images
            if img.source in {"SEQUENCE", "MOVIE"} and img.users > 0 and not img.use_fake_user]


def animatable_ids():
    """Every datablock of the kinds that carry drivers and animation in the files we render
    (the driver checks here and the Python-driver notice of :mod:`.dependencies` walk them)."""
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.shape_keys,
                 bpy.data.node_groups, bpy.data.cameras, bpy.data.lights, bpy.data.worlds,
                 bpy.data.scenes, bpy.data.armatures, bpy.data.curves, bpy.data.textures):
        yield from coll


def _frame_current_drivers() -> list[str]:
    """Drivers whose expression or variables read ``frame_current`` (not remapped)."""
    found = []
    for idb in animatable_ids():
        ad = getattr(idb, "animation_data", None)
        if ad is None:
            continue
        for fc in ad.drivers:
            uses = "frame_current" in fc.driver.expression
            for var in fc.driver.variables:
                uses |= any("frame_current" in (t.data_path or "") for t in var.targets)
            if uses:
                found.append(f"driver on '{idb.name}' {fc.data_path}")
    return found


def refusals(scene, multiplier: float) -> list[str]:
    """Everything in ``scene`` that no stretch can put on the remapped clock (one sentence
    each, naming the thing and the fix); empty when the multiplier is accepted."""
    out: list[str] = []
    if multiplier == 1.0:
        return out
    if remap_ratio(multiplier, scene.render.frame_map_old, scene.render.frame_map_new) is None:
        out.append(f"keyframe_multiplier {multiplier:g} is not a ratio of whole numbers up to "
                   f"{MAP_MAX} (Blender's time remapping) for this file's remapping "
                   f"{scene.render.frame_map_old}:{scene.render.frame_map_new}; use a simpler "
                   "multiplier such as 1.5 or 2.25")
    rbw = scene.rigidbody_world
    if rbw is not None and rbw.enabled and rbw.collection is not None:
        for ob in rbw.collection.objects:
            out.append(f"rigid-body cache of '{ob.name}' cannot be stretched; {_FIX}")
            break
    for ob in _scene_objects(scene):
        for mod in ob.modifiers:
            what = POINT_CACHE_PHYSICS.get(mod.type)
            if what and mod.show_render:
                out.append(f"{what} of '{ob.name}' ({mod.name}) cannot be stretched; {_FIX}")
    for ob in _scene_objects(scene):
        for mod in ob.modifiers:
            if mod.type == "PARTICLE_SYSTEM" and mod.show_render and \
                    mod.particle_system.settings.type == "EMITTER":
                out.append(f"particle system '{mod.particle_system.name}' of '{ob.name}' cannot "
                           "be stretched (a render between the file's frames shows the particles "
                           "where they were born); use keyframe_multiplier 1")
    for img in _images_in_use(scene):
        kind = "movie" if img.source == "MOVIE" else "image sequence"
        out.append(f"{kind} texture '{img.name}' picks its image by the frame number and cannot "
                   "be stretched; render the sequence at the target frame rate (one image per "
                   "stretched frame) or use keyframe_multiplier 1")
    if not compat.SIMULATION_FOLLOWS_REMAPPED_CLOCK:
        for name in simulation_objects(scene):
            out.append(f"the simulation zone of '{name}' cannot be stretched in Blender "
                       f"{bpy.app.version_string} (its renders fall half a frame behind the "
                       "stretched clock); render with Blender 5.0 or newer, or use "
                       "keyframe_multiplier 1")
            break
    for d in _frame_current_drivers():
        out.append(f"{d} reads frame_current, which is not stretched; use the driver variable "
                   "'frame' instead, or keyframe_multiplier 1")
    return out


def _pin_simulations(scene, a: int, b: int) -> None:
    """Give every geometry-nodes simulation zone the file's own range (it restarts when the
    clock reaches its start, which would otherwise be the stretched scene start)."""
    for ob in _scene_objects(scene):
        for mod in ob.modifiers:
            if mod.type != "NODES":
                continue
            for bake in getattr(mod, "bakes", ()):
                node = bake.node
                if node is None or node.bl_idname != "GeometryNodeSimulationOutput":
                    continue
                if not bake.use_custom_simulation_frame_range:
                    bake.use_custom_simulation_frame_range = True
                    bake.frame_start, bake.frame_end = a, b


def stretch(scene, multiplier: float, blend_name: str = "") -> None:
    """Stretch ``scene`` in time by ``multiplier`` (frame range ``a..b -> round(a*m)..round(b*m)``,
    frame rate times ``m``) or raise :class:`SceneError` naming what cannot be stretched."""
    fps = scene.render.fps / scene.render.fps_base
    scene[RATE_PROP] = fps * float(multiplier)
    if multiplier == 1.0:
        return
    bad = refusals(scene, multiplier)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SceneError(f"{blend_name or bpy.data.filepath}: scene '{scene.name}': {bad[0]}{more}")
    m = float(multiplier)
    r = scene.render
    old, new = remap_ratio(m, r.frame_map_old, r.frame_map_new)  # type: ignore[misc]
    a, b = scene.frame_start, scene.frame_end
    _pin_simulations(scene, a, b)
    r.frame_map_old, r.frame_map_new = old, new
    # Set the end first when growing so frame_start never exceeds frame_end in between.
    scene.frame_end = int(math.floor(b * m + 0.5))
    scene.frame_start = int(math.floor(a * m + 0.5))


def preroll(scene, first: int) -> None:
    """Evaluate what stretched frame ``first`` depends on before it renders. A geometry-nodes
    simulation zone steps only from the frame evaluated before, and an unbaked rigid body does
    not move at all when a render jumps past its cache: a render that starts after the scene
    start showed them one step from, or at, their initial state (measured, at multiplier 1 too).
    For such scenes every frame from the scene start up to ``first`` is evaluated first."""
    if simulation_objects(scene) or unbaked_caches(scene):
        for f in range(scene.frame_start, first):
            scene.frame_set(f)
