# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender properties of the panel, generated from :class:`settings.Settings`.

* ``Scene.dataset_forge`` (:class:`DATASETFORGE_PG_settings`): every ``scope="scene"`` field of
  ``Settings`` (saved with the .blend), plus the panel's own inputs: the scenes folder, the output
  folder and the list of scanned scenes.
* Add-on preferences (:class:`DATASETFORGE_AP_preferences`): the ``scope="machine"`` fields
  (render device, default jobs, worker executable, autoexec opt-in, GPUs).
* ``WindowManager.dataset_forge_run`` (:class:`DATASETFORGE_PG_run_state`): run-time state
  (status, progress, ETA, frames/s, one row per busy worker, messages). Properties added to the
  WindowManager are never written to a .blend file.

:func:`settings_from_context` turns the properties back into a ``Settings`` object, so the
panel and the CLI share one definition and one validation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .settings import Settings, SettingsDict

ADDON_ID = __package__

def field_property(f: dataclasses.Field) -> Any:
    """The ``bpy.props`` definition of one ``Settings`` field: type, bounds, soft limits, choices,
    subtype, label and tooltip, all read from the field's metadata."""
    meta = f.metadata
    common = {"name": meta["label"], "description": meta["help"]}
    default = f.default
    limits = {k: meta[k] for k in ("min", "max", "soft_min", "soft_max") if meta.get(k) is not None}
    if isinstance(default, bool):
        return BoolProperty(default=default, **common)
    if isinstance(default, int):
        return IntProperty(default=default, **{k: int(v) for k, v in limits.items()}, **common)
    if isinstance(default, float):
        return FloatProperty(default=default, **limits, **common)
    if isinstance(default, str) and meta["choices"]:
        items = [(c, meta["enum_labels"][c], f"{meta['help']}: {c}") for c in meta["choices"]]
        return EnumProperty(items=items, default=default, **common)
    if isinstance(default, str):
        return StringProperty(default=default, subtype=meta["subtype"], **common)
    raise TypeError(f"Settings.{f.name}: no Blender property for {type(default).__name__}")


def scene_fields() -> list[dataclasses.Field]:
    return [f for f in Settings.fields() if f.metadata.get("scope", "scene") != "machine"]


def machine_fields() -> list[dataclasses.Field]:
    return [f for f in Settings.fields() if f.metadata.get("scope") == "machine"]


# -- scanned scenes ----------------------------------------------------------------------------
class DATASETFORGE_PG_scene_item(bpy.types.PropertyGroup):
    """One .blend found by *Scan*: its range and whether it can render."""

    # ``name`` (the scene name, from the file name) is built into PropertyGroup.
    path: StringProperty(name="File", subtype="FILE_PATH", description="The .blend file")
    frame_start: IntProperty(name="Start", description="First frame of the scene's range")
    frame_end: IntProperty(name="End", description="Last frame of the scene's range")
    fps: FloatProperty(name="Frame Rate", description="Frames per second of the scene")
    camera: StringProperty(name="Camera", description="The scene camera")
    include: BoolProperty(name="Include", default=True,
                          description="Render this scene with Render Dataset")
    error: StringProperty(name="Problem", description="Why this scene cannot render (empty: it can)")
    run_error: StringProperty(name="Last Run", description="Why this scene failed in the last run "
                              "(it is tried again in the next run)")


def _settings_annotations() -> dict[str, Any]:
    ann = {f.name: field_property(f) for f in scene_fields()}
    ann.update({
        "scenes_dir": StringProperty(
            name="Scenes Folder", subtype="DIR_PATH",
            description="Folder of animated .blend scenes to render (scanned by Scan)"),
        "datasets_dir": StringProperty(
            name="Output Folder", subtype="DIR_PATH",
            description="Where the dataset is written: OUTPUT/renders/SCENE/SEQUENCE-ID/"),
        "scanned_dir": StringProperty(
            name="Scanned Folder", subtype="DIR_PATH", options={"HIDDEN"},
            description="The Scenes Folder the list was read from (Scan again when it changes)"),
        "scenes": CollectionProperty(type=DATASETFORGE_PG_scene_item, name="Scenes"),
        "scenes_index": IntProperty(name="Active Scene", default=0, min=0),
    })
    return ann


DATASETFORGE_PG_settings = type("DATASETFORGE_PG_settings", (bpy.types.PropertyGroup,), {
    "__doc__": "Dataset Forge settings of this scene (generated from settings.Settings)",
    "__annotations__": _settings_annotations(),
})


def _draw_preferences(self, context) -> None:
    layout = self.layout
    layout.use_property_split = True
    layout.use_property_decorate = False
    for f in machine_fields():
        layout.prop(self, f.name)


DATASETFORGE_AP_preferences = type("DATASETFORGE_AP_preferences", (bpy.types.AddonPreferences,), {
    "__doc__": "Machine-level choices of Dataset Forge (kept in the user preferences)",
    "bl_idname": ADDON_ID,
    "__annotations__": {f.name: field_property(f) for f in machine_fields()},
    "draw": _draw_preferences,
})


# -- run-time state ------------------------------------------------------------------------------
class DATASETFORGE_PG_job_state(bpy.types.PropertyGroup):
    """One busy worker: what it renders and how far it is."""

    slot: IntProperty(name="Worker", description="Worker slot (0 .. jobs-1)")
    scene: StringProperty(name="Scene")
    sequence: StringProperty(name="Sequence", description="Sequence id MMM-SSSSS-EEEEE")
    frames_done: IntProperty(name="Frames Done")
    frames_total: IntProperty(name="Frames")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")


class DATASETFORGE_PG_message(bpy.types.PropertyGroup):
    level: StringProperty(name="Level", description="INFO, WARNING or ERROR")
    text: StringProperty(name="Text")


class DATASETFORGE_PG_run_state(bpy.types.PropertyGroup):
    """Live state of the current (or last) run. Lives on the WindowManager: never saved."""

    running: BoolProperty(name="Running", description="A render is in progress")
    status: StringProperty(name="Status", description="What the last run is doing or did")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR",
                            description="Finished (rendered or skipped) frames / all frames")
    eta_seconds: FloatProperty(name="ETA", description="Estimated seconds left (-1: unknown)",
                               default=-1.0)
    frames_per_second: FloatProperty(name="Frames/s", description="Rendered frames per second")
    frames_done: IntProperty(name="Frames Done")
    frames_skipped: IntProperty(name="Frames Skipped")
    frames_total: IntProperty(name="Frames Total")
    current_job: StringProperty(name="Current Job", description="Scene and sequence of the last event")
    output_dir: StringProperty(name="Output Folder", subtype="DIR_PATH",
                               description="Output folder of the current or last run")
    jobs: CollectionProperty(type=DATASETFORGE_PG_job_state, name="Workers")
    messages: CollectionProperty(type=DATASETFORGE_PG_message, name="Messages")


CLASSES = (
    DATASETFORGE_PG_scene_item,
    DATASETFORGE_PG_settings,
    DATASETFORGE_AP_preferences,
    DATASETFORGE_PG_job_state,
    DATASETFORGE_PG_message,
    DATASETFORGE_PG_run_state,
)


# -- back to a Settings object -------------------------------------------------------------------
def preferences(context=None):
    """The add-on preferences, or None when the package runs without being enabled as an add-on
    (e.g. registered by hand in the ``bpy`` module)."""
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    return getattr(addon, "preferences", None) if addon is not None else None


def settings_values(context=None) -> SettingsDict:
    """Field values of ``Settings`` read from the scene's properties and the preferences."""
    ctx = context or bpy.context
    pg = ctx.scene.dataset_forge
    prefs = preferences(ctx)
    values: SettingsDict = {}
    for f in Settings.fields():
        src = prefs if f.metadata.get("scope") == "machine" else pg
        if src is None:
            continue  # not enabled as an add-on: machine fields keep their defaults
        v = getattr(src, f.name)
        if isinstance(v, float):
            v = float(f"{v:.7g}")  # Blender stores float32: 0.05 reads 0.05000000074505806
        values[f.name] = v
    return values


def settings_from_context(context=None, **overrides: Any) -> Settings:
    """The :class:`Settings` the panel describes; raises ``SettingsError`` naming a bad value."""
    return Settings.from_dict(settings_values(context), **overrides)


def write_settings(pg, settings: Settings, prefs=None) -> None:
    """Copy ``settings`` into the property groups (the inverse of :func:`settings_values`)."""
    for f in Settings.fields():
        dst = prefs if f.metadata.get("scope") == "machine" else pg
        if dst is not None:
            setattr(dst, f.name, getattr(settings, f.name))


# -- registration ----------------------------------------------------------------------------------
def register() -> None:
    unregister()  # a second register() without unregister() replaces, never duplicates
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.dataset_forge = PointerProperty(type=DATASETFORGE_PG_settings,
                                                    name="Dataset Forge")
    bpy.types.WindowManager.dataset_forge_run = PointerProperty(type=DATASETFORGE_PG_run_state,
                                                                name="Dataset Forge Run")


def unregister() -> None:
    for owner, attr in ((bpy.types.WindowManager, "dataset_forge_run"),
                        (bpy.types.Scene, "dataset_forge")):
        if hasattr(owner, attr):
            delattr(owner, attr)
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
