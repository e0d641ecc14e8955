# SPDX-License-Identifier: GPL-3.0-or-later
"""*Render Dataset*, *Render This File* and *Abort*.

The operators only read the panel's settings, ask the engine for a :class:`RunSession` and drive
it through an :class:`engine.controller.RunController`:

* ``invoke()`` (a button in a window): modal. A window timer calls :meth:`modal`, which polls
  the runner (never blocks), copies the state to ``WindowManager.dataset_forge_run`` and redraws
  the sidebar. Esc or *Abort* kills the workers; every finished frame stays and is reported.
* ``execute()`` (scripts, ``EXEC_DEFAULT``, background): the same engine, blocking.
* In background mode ``invoke()`` falls back to ``execute()`` (there is no event loop).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from ..engine import controller
from ..engine.controller import RunController
from ..engine.discovery import SceneInfo, safe_name
from ..engine.session import RunSession
from ..properties import settings_from_context
from ..settings import Settings, SettingsError
from . import planning, scan
from .scan import _redraw

TIMER_SECONDS = 0.25


# -- state shown by the panel --------------------------------------------------------------------
def write_state(state, ctl: RunController | None) -> None:
    """Copy the controller's state into ``WindowManager.dataset_forge_run`` (``state``)."""
    if ctl is None:
        state.running = False
        state.jobs.clear()
        return
    r = ctl.runner
    state.running = not ctl.finished
    state.status = ctl.status
    state.progress = ctl.progress
    eta = r.eta_seconds
    state.eta_seconds = -1.0 if eta is None or ctl.finished else float(eta)
    state.frames_per_second = r.frames_per_second
    state.frames_done = r.frames_done
    state.frames_skipped = r.frames_skipped
    state.frames_total = r.frames_total
    state.current_job = ctl.current_job
    state.output_dir = ctl.output_dir
    state.jobs.clear()
    for s in ctl.active_slots():
        item = state.jobs.add()
        item.slot, item.scene, item.sequence = s.slot, s.scene, s.sequence
        item.frames_done, item.frames_total, item.progress = s.frames_done, s.frames_total, s.progress


def _push_messages(state, messages) -> None:
    for m in messages:
        item = state.messages.add()
        item.level, item.text = m.level, m.text
    while len(state.messages) > controller.MAX_MESSAGES:
        state.messages.remove(0)


def _mark_scene_errors(context, ctl: RunController) -> None:
    """Scenes that failed in this run show the reason in the Scenes list (a scene the scan already
    flagged keeps its own reason)."""
    for item in context.scene.dataset_forge.scenes:
        if item.name in ctl.scene_errors and not item.error:
            item.run_error = ctl.scene_errors[item.name]


def busy_reason() -> str:
    return "A render is running: wait for it or press Abort" if controller.is_running() else ""


# -- the shared modal / blocking driver ----------------------------------------------------------
class _RunOperator:
    """Mixin of the two render operators: ``build(context)`` returns a started-ready controller."""

    def build(self, context) -> RunController:  # pragma: no cover - overridden
        raise NotImplementedError

    def _report_messages(self, messages) -> None:
        # A scene's failure is a WARNING in the Info log: an ERROR report makes bpy.ops raise in
        # scripts although the other scenes rendered. ERROR is kept for runs that cannot start.
        for m in messages:
            if m.level in ("WARNING", "ERROR"):
                self.report({"WARNING"}, m.text)

    def begin(self, context) -> RunController | None:
        """Build, register and start the run; reports and returns None when it cannot start."""
        try:
            ctl = self.build(context)
        except (SettingsError, planning.PlanError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return None
        state = context.window_manager.dataset_forge_run
        state.messages.clear()
        for item in context.scene.dataset_forge.scenes:
            item.run_error = ""
        controller.set_active(ctl)
        self._ctl = ctl
        try:
            ctl.start()
        except OSError as exc:  # the worker executable cannot be started
            self._fail(context, ctl, exc)
            return None
        write_state(state, ctl)
        return ctl

    def _fail(self, context, ctl: RunController, exc: BaseException) -> None:
        """The engine raised: stop whatever runs, free the panel, say why."""
        ctl.cancel()
        controller.release(ctl)
        write_state(context.window_manager.dataset_forge_run, ctl)
        text = f"Render stopped: {exc}"
        if isinstance(exc, OSError):
            text += "; check Worker Executable in the add-on preferences"
        context.window_manager.dataset_forge_run.status = text
        self.report({"ERROR"}, text)

    def end(self, context, ctl: RunController) -> set[str]:
        state = context.window_manager.dataset_forge_run
        write_state(state, ctl)
        _mark_scene_errors(context, ctl)
        level, text = ctl.final_report()
        self.report({level}, text)
        controller.release(ctl)
        return {"CANCELLED"} if ctl.runner.cancelled else {"FINISHED"}

    def execute(self, context) -> set[str]:
        ctl = self.begin(context)
        if ctl is None:
            return {"CANCELLED"}
        state = context.window_manager.dataset_forge_run

        def on_step(new):
            self._report_messages(new[:-1] if ctl.finished else new)
            _push_messages(state, new)

        try:
            ctl.run_blocking(on_step=on_step)
        except KeyboardInterrupt:
            controller.release(ctl)
            raise
        except Exception as exc:  # noqa: BLE001 - never leave the panel locked
            self._fail(context, ctl, exc)
            return {"CANCELLED"}
        return self.end(context, ctl)

    def invoke(self, context, event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if self.begin(context) is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context)
        return {"RUNNING_MODAL"}

    def _remove_timer(self, context) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            context.window_manager.event_timer_remove(timer)
            self._timer = None

    def modal(self, context, event) -> set[str]:
        ctl: RunController = self._ctl
        state = context.window_manager.dataset_forge_run
        if event.type == "ESC" and event.value == "PRESS":
            ctl.cancel()
        elif event.type == "TIMER" or ctl.finished:
            try:
                new = ctl.step() if not ctl.finished else []
            except Exception as exc:  # noqa: BLE001 - never leave the panel locked
                self._fail(context, ctl, exc)
                self._remove_timer(context)
                return {"CANCELLED"}
            self._report_messages(new[:-1] if ctl.finished else new)
            _push_messages(state, new)
        else:
            return {"PASS_THROUGH"}
        write_state(state, ctl)
        _redraw(context)
        if ctl.finished:
            self._remove_timer(context)
            if ctl.runner.cancelled:
                _push_messages(state, ctl.messages[-1:])
            return self.end(context, ctl)
        return {"RUNNING_MODAL"}


def _settings_and_dirs(context) -> tuple[Settings, str]:
    pg = context.scene.dataset_forge
    settings = settings_from_context(context)
    if not pg.datasets_dir:
        raise SettingsError("Choose an Output Folder first")
    return settings, bpy.path.abspath(pg.datasets_dir)


def render_dataset_reason(context) -> str:
    """Why *Render Dataset* cannot run now ('' when it can)."""
    if busy_reason():
        return busy_reason()
    if scan.scanning():
        return "Wait for Scan to finish"
    pg = context.scene.dataset_forge
    if not pg.scenes_dir:
        return "Choose a Scenes Folder and press Scan"
    if not len(pg.scenes) or pg.scanned_dir != pg.scenes_dir:
        return "Press Scan to read the Scenes Folder first"
    if not pg.datasets_dir:
        return "Choose an Output Folder"
    if not any(i.include and not i.error for i in pg.scenes):
        return "No scene is included and renderable: tick at least one scene in the list"
    return ""


class DATASETFORGE_OT_render_dataset(_RunOperator, bpy.types.Operator):
    bl_idname = "dataset_forge.render_dataset"
    bl_label = "Render Dataset"
    bl_description = ("Render the sequences of every included scene of the Scenes Folder into the "
                      "Output Folder, in background worker processes (Esc or Abort stops; "
                      "finished frames are kept and a rerun resumes)")
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context) -> bool:
        reason = render_dataset_reason(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

    def build(self, context) -> RunController:
        settings, out = _settings_and_dirs(context)
        pg = context.scene.dataset_forge
        excluded = {i.name for i in pg.scenes if not i.include}
        plan = planning.make_plan(bpy.path.abspath(pg.scenes_dir), out, settings,
                                  scenes=planning.scene_infos(pg.scenes), exclude=excluded)
        return RunController(RunSession.for_plan(plan, settings), output_dir=out,
                             title="Render Dataset")


def render_file_reason(context) -> str:
    if busy_reason():
        return busy_reason()
    if not context.scene.dataset_forge.datasets_dir:
        return "Choose an Output Folder"
    if context.scene.camera is None and context.scene.dataset_forge.camera == "scene":
        return (f"Scene {context.scene.name} has no active camera: set one, or choose a "
                "generated Camera (Orbit or Flythrough)")
    return ""


class DATASETFORGE_OT_render_file(_RunOperator, bpy.types.Operator):
    bl_idname = "dataset_forge.render_file"
    bl_label = "Render This File"
    bl_description = ("Render the sequences of the open file's scene into the Output Folder. "
                      "Unsaved changes are rendered from a temporary copy; your file is never saved")
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context) -> bool:
        reason = render_file_reason(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

    def build(self, context) -> RunController:
        settings, out = _settings_and_dirs(context)
        blend, cleanup = snapshot_current_file()
        try:
            plan = planning.make_plan(str(Path(blend).parent), out, settings,
                                      scenes=[current_scene_info(context, blend)])
            return RunController(RunSession.for_plan(plan, settings), output_dir=out,
                                 title="Render This File", cleanup=cleanup)
        except Exception:
            for p in cleanup:
                _rmtree(p)
            raise


def current_scene_info(context, blend: str) -> SceneInfo:
    """The open scene as :func:`engine.discovery.discover` would describe ``blend``."""
    scene = context.scene
    stem = Path(bpy.data.filepath).stem if bpy.data.filepath else "untitled"
    fps = scene.render.fps / (scene.render.fps_base or 1.0)
    generated = scene.dataset_forge.camera != "scene"  # the worker adds a camera
    return SceneInfo(name=safe_name(stem), blend=blend, frame_start=scene.frame_start,
                     frame_end=scene.frame_end, fps=fps,
                     camera=scene.camera.name if scene.camera else None,
                     error=None if scene.camera or generated
                     else f"{stem}: the scene has no active camera")


def snapshot_current_file() -> tuple[str, list[str]]:
    """A .blend the workers can open that holds exactly what the user sees.

    Saved and unchanged: the file itself. Unsaved or changed: ``save_as_mainfile(copy=True)`` into
    a temporary folder (relative paths are remapped; the user's file, ``bpy.data.filepath`` and
    the dirty flag stay untouched). Returns (path, temporary folders to remove after the run).
    """
    if bpy.data.filepath and not bpy.data.is_dirty:
        return bpy.data.filepath, []
    stem = Path(bpy.data.filepath).stem if bpy.data.filepath else "untitled"
    tmp = tempfile.mkdtemp(prefix="dataset_forge_file_")
    target = os.path.join(tmp, f"{stem}.blend")
    bpy.ops.wm.save_as_mainfile(filepath=target, copy=True, compress=False)
    return target, [tmp]


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class DATASETFORGE_OT_abort(bpy.types.Operator):
    bl_idname = "dataset_forge.abort"
    bl_label = "Abort"
    bl_description = ("Stop the running render now. Every finished frame is kept; Render Dataset "
                      "again resumes where this stopped")
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context) -> bool:
        if not controller.is_running():
            cls.poll_message_set("No render is running")
            return False
        return True

    def execute(self, context) -> set[str]:
        ctl = controller.active()
        if ctl is None:
            self.report({"WARNING"}, "No render is running")
            return {"CANCELLED"}
        ctl.cancel()  # the render operator's next timer tick reports and cleans up
        write_state(context.window_manager.dataset_forge_run, ctl)
        self.report({"WARNING"}, ctl.final_report()[1])
        return {"FINISHED"}


class DATASETFORGE_OT_open_output(bpy.types.Operator):
    bl_idname = "dataset_forge.open_output"
    bl_label = "Open Output Folder"
    bl_description = "Open the Output Folder in the system's file browser"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context) -> bool:
        folder = context.scene.dataset_forge.datasets_dir
        if busy_reason():
            cls.poll_message_set(busy_reason())
            return False
        if not folder:
            cls.poll_message_set("Choose an Output Folder")
            return False
        if not os.path.isdir(bpy.path.abspath(folder)):
            cls.poll_message_set("The Output Folder does not exist yet: render first")
            return False
        return True

    def execute(self, context) -> set[str]:
        folder = bpy.path.abspath(context.scene.dataset_forge.datasets_dir)
        result = bpy.ops.wm.path_open(filepath=folder)
        if "FINISHED" not in result:
            self.report({"ERROR"}, f"Could not open {folder}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Opened {folder}")
        return {"FINISHED"}


CLASSES = (DATASETFORGE_OT_render_dataset, DATASETFORGE_OT_render_file, DATASETFORGE_OT_abort,
           DATASETFORGE_OT_open_output)
