# SPDX-License-Identifier: GPL-3.0-or-later
"""*Scan*: list the scenes of the scenes folder with their frame ranges and problems.

Reading the files happens in a worker process (:func:`engine.discovery.discover`). In a window
the operator runs it on a thread and polls it from a timer, so Blender stays responsive while
many files are read; ``execute()`` (scripts, background) waits for it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import bpy

from ..engine import controller
from ..engine.discovery import DiscoveryError, SceneInfo, discover
from ..properties import settings_from_context
from ..settings import SettingsError


def fill_scene_list(pg, infos: list[SceneInfo]) -> tuple[int, int]:
    """Replace ``pg.scenes`` by ``infos``; a scene the user had unticked stays unticked.
    Returns (scenes, scenes with a problem)."""
    previous = {item.name: item.include for item in pg.scenes}
    pg.scenes.clear()
    broken = 0
    for info in infos:
        item = pg.scenes.add()
        item.name = info.name
        item.path = info.blend
        item.frame_start = info.frame_start if info.frame_start is not None else 0
        item.frame_end = info.frame_end if info.frame_end is not None else 0
        item.fps = float(info.fps or 0.0)
        item.camera = info.camera or ""
        item.error = info.error or ""
        item.run_error = ""
        item.include = previous.get(info.name, True)
        broken += bool(info.error)
    pg.scenes_index = min(pg.scenes_index, max(len(pg.scenes) - 1, 0))
    return len(infos), broken


def scan_reason(context) -> str:
    """Why Scan cannot run now ('' when it can)."""
    if controller.is_running():
        return "A render is running: wait for it or press Abort"
    if _SCAN_JOB:
        return "A scan is already running"
    folder = context.scene.dataset_forge.scenes_dir
    if not folder:
        return "Choose a Scenes Folder first"
    if not os.path.isdir(bpy.path.abspath(folder)):
        return f"Scenes Folder {folder} does not exist"
    return ""


@dataclass
class _ScanJob:
    """A background scan: its folder, thread, and what it found (or why it failed)."""

    folder: str
    thread: threading.Thread | None = None
    infos: list[SceneInfo] | None = None
    error: str | None = None


_SCAN_JOB: list[_ScanJob] = []  # the background scan of this session, if any


def scanning() -> str:
    """The folder being scanned in the background ('' when none)."""
    return _SCAN_JOB[0].folder if _SCAN_JOB else ""


def forget_scan() -> None:
    """Drop the background scan (its modal operator ended without finishing it)."""
    _SCAN_JOB.clear()


class DATASETFORGE_OT_scan(bpy.types.Operator):
    bl_idname = "dataset_forge.scan"
    bl_label = "Scan"
    bl_description = ("Read every .blend in the Scenes Folder (and one level below): frame range, "
                      "frame rate, camera, and why a scene cannot render")
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context) -> bool:
        reason = scan_reason(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

    def _folder_and_settings(self, context):
        pg = context.scene.dataset_forge
        return bpy.path.abspath(pg.scenes_dir), settings_from_context(context)

    def _finish(self, context, infos=None, error: str | None = None) -> set[str]:
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        pg = context.scene.dataset_forge
        n, broken = fill_scene_list(pg, infos)
        pg.scanned_dir = pg.scenes_dir
        for item in pg.scenes:
            if item.error:
                self.report({"WARNING"}, item.error)
        self.report({"INFO"}, f"Found {n} scene(s), {broken} cannot render")
        _redraw(context)
        return {"FINISHED"}

    def execute(self, context) -> set[str]:
        try:
            folder, settings = self._folder_and_settings(context)
            infos = discover(folder, settings)
        except (DiscoveryError, SettingsError) as exc:
            return self._finish(context, error=str(exc))
        return self._finish(context, infos)

    def start_thread(self, context) -> bool:
        """Start reading the folder on a thread (the window stays responsive); False when the
        settings are invalid (reported)."""
        try:
            folder, settings = self._folder_and_settings(context)
        except SettingsError as exc:
            self._finish(context, error=str(exc))
            return False
        job = _ScanJob(folder)

        def work():
            try:
                job.infos = discover(folder, settings)
            except (DiscoveryError, OSError) as exc:
                job.error = str(exc)

        job.thread = threading.Thread(target=work, daemon=True)
        _SCAN_JOB[:] = [job]
        job.thread.start()
        self._job = job
        self._timer = None
        return True

    def invoke(self, context, event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self.start_thread(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event) -> set[str]:
        if event.type != "TIMER" or self._job.thread.is_alive():
            return {"PASS_THROUGH"}
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if _SCAN_JOB and _SCAN_JOB[0] is self._job:
            _SCAN_JOB.clear()
        return self._finish(context, self._job.infos, self._job.error)


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        screen = window.screen
        for area in screen.areas if screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()


CLASSES = (DATASETFORGE_OT_scan,)
