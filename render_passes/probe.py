# SPDX-License-Identifier: GPL-3.0-or-later
"""Opening a ``.blend`` in the worker process (:func:`_open_blend`, with the one-line refusal of a
file Blender cannot read) and discovery's probe job (:func:`probe`: each file's frame range, frame
rate, camera and problems, one ``probe`` event each); :func:`_message` turns any exception into
an event's one-line message."""

from __future__ import annotations

import os
import shutil
import traceback
from pathlib import Path

import bpy

from ..dataset.documents.base import JSONObject
from ..dataset.documents.job import JobSpec, as_job
from ..errors import DatasetForgeError
from ..settings import Settings, SettingsError
from ..wire.events import Emit
from ..wire.protocol import Ev, Event
from . import camera_rig, compat, containment, scene_setup, timing


def _blender_version() -> str:
    return bpy.app.version_string


def _open_blend(blend: str, settings: Settings) -> list[str]:
    """Open ``blend`` (embedded scripts only with ``autoexec``); raises SceneError naming the
    file when it is missing or Blender cannot read it. Returns warnings: what Blender reported
    while opening a file it did load (an ERROR-level report, e.g. a sequencer strip in a channel
    over 128, raises although the file loaded), and a file saved by a newer Blender."""
    name = os.path.basename(blend)
    if not os.path.isfile(blend):
        raise scene_setup.SceneError(f"{name}: file not found at {blend}")
    out = []
    try:
        compat.open_blend(blend, use_scripts=settings.autoexec)
    except RuntimeError as exc:
        if not _loaded(blend):
            raise scene_setup.SceneError(_unreadable(name, exc, blend)) from None
        said = "; ".join(ln.strip().removeprefix("Error: ") for ln in str(exc).splitlines() if ln.strip())
        out.append(f"{name}: Blender {_blender_version()} reported errors while opening it ({said}) "
                   "but loaded it; what it names may be missing from the render: check it in Blender "
                   "and save the file again")
    scene_setup.leave_edit_modes()  # evaluated meshes are empty in Edit Mode
    saved = tuple(bpy.data.version[:2])  # the Blender that saved it (compressed files too)
    if saved > tuple(bpy.app.version[:2]):
        out.append(f"{name}: saved by Blender {saved[0]}.{saved[1]}, newer than this Blender "
                   f"{_blender_version()}: features of {saved[0]}.{saved[1]} may be lost or render "
                   f"differently; render with Blender {saved[0]}.{saved[1]} or newer (the executable "
                   "option)")
    return out


def _loaded(blend: str) -> bool:
    """Whether ``blend`` is the file Blender has open now."""
    return bool(bpy.data.filepath) and os.path.samefile(bpy.data.filepath, blend)


def _camera_type_change(scene, name: str, a: int, b: int) -> str | None:
    """A sequence camera of ``scene`` that is not perspective at some frame of ``a..b`` (its
    Type animated or driven, or bound to a marker while orthographic or panoramic): the refusal
    naming the camera and the first such frame; None when there is none."""
    cams = scene_setup.sequence_cameras(scene)
    animated = any(fc.data_path == "type" for c in cams
                   for fc in compat.animation_curves(c.data.animation_data))
    if not animated and all(c.data.type == "PERSP" for c in cams):
        return None
    current = scene.frame_current
    try:
        for f in range(a, b + 1):
            scene.frame_set(f)
            cam = scene.camera
            if cam is not None and cam.type == "CAMERA" and cam.data.type != "PERSP":
                return (f"{name}: camera '{cam.name}' is {cam.data.type} at frame {f} (its Type is "
                        "animated, or a marker binds it); only perspective cameras have pinhole "
                        f"intrinsics: keep its Type Perspective, or render frames before {f}")
    finally:
        scene.frame_set(current)
    return None


def probe(job: JobSpec | JSONObject, emit: Emit) -> int:
    """Discovery: open each of ``job.blends`` (embedded scripts only with ``autoexec``) and
    report its real frame range, frame rate, camera and problems as one ``probe`` event each.

    A ``probe_started`` event precedes every file, so that a crash while loading one file is
    pinned on that file by the caller."""
    job = as_job(job)
    try:
        settings = Settings.from_dict(job.settings)
    except SettingsError as exc:
        emit({"event": Ev.ERROR, "scene": None, "job": None, "message": str(exc),
              "permanent": True})
        return 1
    import tempfile

    # opening a file evaluates it: its simulation caches go to a scratch folder, not the scenes'
    scratch = Path(tempfile.mkdtemp(prefix="dataset_forge_caches_"))
    for blend in job.blends:
        emit({"event": Ev.PROBE_STARTED, "blend": blend})
        name = os.path.basename(blend)
        info: Event = {"event": Ev.PROBE, "blend": blend, "frame_start": None,
                                "frame_end": None, "fps": None, "camera": None, "scene": None,
                                "error": None}
        try:
            with containment.caches_contained_on_load(scratch, lambda e: None, name):
                info["warnings"] = _open_blend(blend, settings)
            info["scenes"] = [s.name for s in bpy.data.scenes]
            scene = scene_setup.select_scene(settings.scene, name)
            camera_rig.install(scene, settings, name)
            info.update(scene=scene.name, frame_start=scene.frame_start, frame_end=scene.frame_end,
                        fps=scene_setup.frame_rate(scene),
                        camera=scene.camera.name if scene.camera is not None else None)
            scene_setup.check_scene(scene, settings, name)
            bad = timing.refusals(scene, settings.keyframe_multiplier)
            if bad:
                raise scene_setup.SceneError(f"{name}: scene '{scene.name}': {bad[0]}")
            if scene.frame_end < scene.frame_start:
                raise scene_setup.SceneError(
                    f"{name}: its frame range {scene.frame_start}..{scene.frame_end} is empty; set "
                    "the scene's Frame Start/End in Output Properties and save the file")
            turned = _camera_type_change(scene, name, scene.frame_start, scene.frame_end)
            if turned:
                raise scene_setup.SceneError(turned)
        except Exception as exc:  # noqa: BLE001 - every problem becomes the file's error
            info["error"] = _message(exc)
        emit(info)
    containment.remove_private_caches()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def saved_version(path: str) -> tuple[int, int] | None:
    """(major, minor) of the Blender that saved ``path``, from its header; None when the header
    is unreadable (compressed file, not a .blend)."""
    import re

    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    m = re.match(rb"BLENDER(?:[_-][vV](\d{3})|\d\d-\d\d[vV](\d{4}))", head)
    if not m:
        return None
    v = int(m.group(1) or m.group(2))
    return v // 100, v % 100


def _unreadable(name: str, exc: BaseException, path: str = "") -> str:
    text = str(exc).strip()
    first = text.splitlines()[-1] if text else "unreadable"
    first = first.removeprefix("Error: ")
    saved = saved_version(path) if path else None
    if saved and saved > tuple(bpy.app.version[:2]):
        return (f"{name}: saved by Blender {saved[0]}.{saved[1]}, which this Blender "
                f"{_blender_version()} cannot read ({first}); run with Blender {saved[0]}.{saved[1]} "
                "or newer (the executable option), or save the file from an older version")
    return (f"{name}: cannot be opened by Blender {_blender_version()} ({first}); the file is "
            "damaged or not a .blend: re-save it from Blender or restore it from a backup")


def _message(exc: BaseException) -> str:
    if isinstance(exc, DatasetForgeError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return (f"cannot write {exc.filename}: {exc.strerror}; choose a writable output folder "
                "or free disk space")
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n{''.join(tb[-3:])}"
