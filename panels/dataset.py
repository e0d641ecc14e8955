# SPDX-License-Identifier: GPL-3.0-or-later
"""3D Viewport > Sidebar > "Dataset": Scenes, Sequences (> Camera), Ground Truth, Render (> Output) and Run
(> Advanced). Every settings row is drawn from :class:`settings.Settings` metadata (``panel``,
``label``, ``active_if``), so a new option shows up in its section without touching this file.
Panels only draw; the operators act.
"""

from __future__ import annotations

import textwrap

import bpy

from ..dataset.documents.plan import Plan
from ..engine import controller
from ..operators import camera_preview, planning, scan
from ..properties import preferences, settings_from_context
from ..settings import Settings, SettingsError
from ..text import format_duration

CATEGORY = "Dataset"
PREVIEW_LINES = 8
WRAP = 42


def group_fields(panel: str) -> list[str]:
    """Names of the Settings fields the panel section ``panel`` draws (their ``panel`` metadata),
    in dataclass order."""
    return [f.name for f in Settings.fields() if f.metadata["panel"] == panel]


def _is_active(pg, condition) -> bool:
    """Whether a row whose field has ``active_if=condition`` is drawn active (else greyed out,
    still editable)."""
    if condition is None:
        return True
    if isinstance(condition, tuple):
        return getattr(pg, condition[0]) == condition[1]
    return bool(getattr(pg, condition))


def draw_fields(layout, context, names: list[str]) -> None:
    """One ``prop`` row per field: scene fields from ``Scene.dataset_forge``, machine fields from
    the add-on preferences."""
    pg = context.scene.dataset_forge
    prefs = preferences(context)
    for name in names:
        meta = Settings.__dataclass_fields__[name].metadata
        src = prefs if meta["scope"] == "machine" else pg
        if src is None:
            layout.label(text=f"{meta['label']}: set in the add-on preferences", icon="PREFERENCES")
            continue
        row = layout.row()
        row.active = _is_active(pg, meta["active_if"])
        row.prop(src, name)


def wrapped_label(layout, text: str, icon: str = "NONE") -> None:
    """A long sentence on several label rows (labels do not wrap by themselves)."""
    lines = textwrap.wrap(text, WRAP) or [""]
    col = layout.column(align=True)
    for i, line in enumerate(lines):
        # Continuation lines keep the first line's indent when it has an icon.
        col.label(text=line, icon=icon if i == 0 or icon == "NONE" else "BLANK1")


def running(context) -> bool:
    return controller.is_running()


class _DatasetPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    def _begin(self, context, lock: bool = True):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        if lock:
            # Settings are read when a run starts; editing them mid-run would only mislead.
            layout.enabled = not running(context)
        return layout


class DATASETFORGE_UL_scenes(bpy.types.UIList):
    """One row per scanned scene: include checkbox, name (warning icon when it cannot render),
    frame range."""

    bl_idname = "DATASETFORGE_UL_scenes"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname,
                  index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "include", text="")
        if item.error:
            row.label(text=item.name, icon="ERROR")
            row.label(text="cannot render")
        elif item.run_error:
            row.label(text=item.name, icon="ERROR")
            row.label(text="failed")
        else:
            row.label(text=item.name, icon="SCENE_DATA")
            row.label(text=f"{item.frame_start}–{item.frame_end}")


class DATASETFORGE_PT_scenes(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_scenes"
    bl_label = "Scenes"
    bl_order = 0

    def draw(self, context):
        layout = self._begin(context)
        pg = context.scene.dataset_forge
        layout.prop(pg, "scenes_dir")
        draw_fields(layout.column(), context, group_fields("Scenes"))
        layout.operator("dataset_forge.scan", icon="FILE_REFRESH")
        if scan.scanning():
            layout.label(text=f"Scanning {scan.scanning()}…", icon="TIME")
        if pg.scenes_dir and pg.scanned_dir and pg.scanned_dir != pg.scenes_dir:
            layout.label(text="Scenes Folder changed: press Scan", icon="INFO")
        layout.template_list("DATASETFORGE_UL_scenes", "", pg, "scenes", pg, "scenes_index", rows=4)
        n = len(pg.scenes)
        if not n:
            layout.label(text="No scenes yet: choose a folder and press Scan", icon="INFO")
            return
        broken = sum(1 for i in pg.scenes if i.error)
        included = sum(1 for i in pg.scenes if i.include and not i.error)
        layout.label(text=f"{n} scenes, {included} included, {broken} cannot render")
        if 0 <= pg.scenes_index < n:
            item = pg.scenes[pg.scenes_index]
            box = layout.box()
            if item.error:
                wrapped_label(box, item.error, icon="ERROR")
            else:
                if item.run_error:
                    wrapped_label(box, f"Last run failed: {item.run_error}", icon="ERROR")
                box.label(text=f"{item.name}: frames {item.frame_start}–{item.frame_end} at "
                               f"{item.fps:g} fps", icon="SCENE_DATA")
                box.label(text=f"Camera: {item.camera}", icon="CAMERA_DATA")


def sequence_preview(context) -> tuple[Plan | None, str]:
    """The plan the Render Dataset button would run (no file is read or written), or the reason
    there is none."""
    pg = context.scene.dataset_forge
    if not len(pg.scenes):
        return None, "Scan a Scenes Folder to preview the sequences"
    try:
        settings = settings_from_context(context)
    except SettingsError as exc:
        return None, str(exc)
    excluded = {i.name for i in pg.scenes if not i.include}
    plan = planning.make_plan(pg.scenes_dir or ".", pg.datasets_dir or ".", settings,
                              scenes=planning.scene_infos(pg.scenes), exclude=excluded)
    return plan, ""


class DATASETFORGE_PT_sequences(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_sequences"
    bl_label = "Sequences"
    bl_order = 1

    def draw(self, context):
        layout = self._begin(context)
        draw_fields(layout.column(), context, group_fields("Sequences"))
        box = layout.box()
        box.label(text="Preview", icon="SEQUENCE")
        plan, reason = sequence_preview(context)
        if plan is None:
            wrapped_label(box, reason, icon="INFO" if "Scan" in reason else "ERROR")
            return
        jobs = {j.scene: j for j in plan.jobs}
        pg = context.scene.dataset_forge
        n_seq = sum(len(j.sequences) for j in plan.jobs)
        n_frames = sum(j.frames for j in plan.jobs)
        box.label(text=f"{n_seq} sequences, {n_frames} frames from {len(jobs)} scenes")
        if not (0 <= pg.scenes_index < len(pg.scenes)):
            return
        item = pg.scenes[pg.scenes_index]
        entry = next((s for s in plan.scenes if s.name == item.name), None)
        if entry is None:
            box.label(text=f"{item.name}: not included", icon="CHECKBOX_DEHLT")
        elif entry.error:
            wrapped_label(box, entry.error, icon="ERROR")
        else:
            col = box.column(align=True)
            seqs = jobs[item.name].sequences
            for q in seqs[:PREVIEW_LINES]:
                col.label(text=f"{q['id']}  frames {q['frame_start']}–{q['frame_end']}")
            if len(seqs) > PREVIEW_LINES:
                col.label(text=f"… and {len(seqs) - PREVIEW_LINES} more")


class DATASETFORGE_PT_camera(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_camera"
    bl_label = "Camera"
    bl_parent_id = "DATASETFORGE_PT_sequences"

    def draw(self, context):
        layout = self._begin(context)
        names = group_fields("Camera")
        draw_fields(layout.column(), context, names[:1])
        col = layout.column()
        col.active = context.scene.dataset_forge.camera != "scene"
        draw_fields(col, context, names[1:])
        shown = camera_preview.preview_collection(context.scene) is not None
        layout.operator("dataset_forge.camera_path_preview",
                        text="Remove Path Preview" if shown else "Preview Camera Path",
                        icon="X" if shown else "CURVE_PATH")


class DATASETFORGE_PT_ground_truth(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_ground_truth"
    bl_label = "Ground Truth"
    bl_order = 2

    def draw(self, context):
        layout = self._begin(context)
        draw_fields(layout.column(heading="Write"), context, group_fields("Ground truth"))


class DATASETFORGE_PT_render(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_render"
    bl_label = "Render"
    bl_order = 3

    def draw(self, context):
        layout = self._begin(context)
        names = group_fields("Render")
        col = layout.column(align=True)
        draw_fields(col, context, [n for n in names if n in ("width", "height")])
        draw_fields(layout.column(), context, [n for n in names if n not in ("width", "height")])
        pg = context.scene.dataset_forge
        layout.prop(pg, "datasets_dir")


class DATASETFORGE_PT_output(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_output"
    bl_label = "Output"
    bl_parent_id = "DATASETFORGE_PT_render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self._begin(context)
        draw_fields(layout.column(), context, group_fields("Output"))
        layout.operator("dataset_forge.open_output", icon="FILE_FOLDER")


class DATASETFORGE_PT_run(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_run"
    bl_label = "Run"
    bl_order = 4

    def draw(self, context):
        layout = self._begin(context, lock=False)
        state = context.window_manager.dataset_forge_run
        busy = running(context)
        col = layout.column(align=True)
        col.enabled = not busy
        col.scale_y = 1.4
        col.operator("dataset_forge.render_dataset", icon="RENDER_ANIMATION")
        col.operator("dataset_forge.render_file", icon="FILE_BLEND")
        if busy:
            for job in state.jobs:
                layout.progress(factor=job.progress, type="BAR",
                                text=f"Worker {job.slot + 1}: {job.scene} {job.sequence} "
                                     f"{job.frames_done}/{job.frames_total}")
            eta = f"ETA {format_duration(state.eta_seconds)}"
            layout.progress(factor=state.progress, type="BAR",
                            text=f"{state.progress * 100:.0f}%  {state.frames_done + state.frames_skipped}"
                                 f"/{state.frames_total} frames  {eta}  "
                                 f"{state.frames_per_second:.2f} frames/s")
            layout.operator("dataset_forge.abort", icon="CANCEL")
        elif state.status:
            wrapped_label(layout, state.status, icon="INFO")
        for m in list(state.messages)[-5:]:
            if m.level != "INFO":
                wrapped_label(layout, m.text, icon="ERROR" if m.level == "ERROR" else "INFO")


class DATASETFORGE_PT_advanced(_DatasetPanel, bpy.types.Panel):
    bl_idname = "DATASETFORGE_PT_advanced"
    bl_label = "Advanced"
    bl_parent_id = "DATASETFORGE_PT_run"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self._begin(context)
        draw_fields(layout.column(), context, group_fields("Run"))


CLASSES = (DATASETFORGE_UL_scenes, DATASETFORGE_PT_scenes, DATASETFORGE_PT_sequences,
           DATASETFORGE_PT_camera, DATASETFORGE_PT_ground_truth, DATASETFORGE_PT_render,
           DATASETFORGE_PT_output, DATASETFORGE_PT_run, DATASETFORGE_PT_advanced)
