# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker: runs inside a background Blender (or the ``bpy`` module), opens one ``.blend`` once
and renders all of its sequences, frame by frame, reporting events (see :mod:`wire.events`).

Started by the runner as::

    blender -b --factory-startup -noaudio --python-expr "<bootstrap>" -- JOB.json
    python -c "<bootstrap>" JOB.json            # bpy wheel

A job file holds ``blend``, ``scene_name``, ``settings`` (a :class:`settings.Settings` dict),
``sequences`` (``id``, ``out_dir``, ``frame_start``, ``frame_end`` inclusive), ``gpu_index``
and ``frame_budget`` (stop after that many rendered frames so the runner can recycle the
process; 0 = no limit).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..dataset import camera as cam_model
from ..dataset import exr, layout, provenance
from ..dataset import flow_intrinsics as flow_k
from ..dataset.documents.job import PROBE, JobSpec, as_job
from ..dataset.documents.transforms import FrameEntry, position_of
from ..dataset.journal import Journal
from ..dataset.lock import sequence_lock
from ..dataset.transforms import transforms_of, write_json_atomic
from ..dataset.verify import WriteError, render_save_error, write_error
from ..errors import DatasetForgeError
from ..sampling import sequence_id
from ..settings import Settings, SettingsError, frame_range_problem
from ..version import __version__
from ..wire.events import Emit, stdout_emitter
from ..wire.protocol import Ev
from . import (
    camera_rig,
    compat,
    containment,
    dependencies,
    devices,
    scene_setup,
    stereo,
    timing,
    topology,
)
from .passes import PassRig


class BudgetExhausted(Exception):
    """The worker rendered its frame budget; the runner starts a fresh process for the rest."""


@dataclass(frozen=True)
class _Sequence:
    """One sequence being rendered: its folder, id, scene name (for events and files) and
    frame range ``a..b`` (inclusive)."""

    out: Path
    id: str
    scene_name: str
    a: int
    b: int


def _matrix(m) -> list[list[float]]:
    return [[float(m[r][c]) for c in range(4)] for r in range(4)]


def _rss_mib() -> float | None:
    """This process's resident memory in MiB (Linux), for the memory benchmark and the log."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _blender_version() -> str:
    return bpy.app.version_string


@dataclass
class _Inputs:
    """What this process loaded from one ``.blend`` (:func:`open_scene`), which every sequence
    of it records: the file's identity as loaded, the files its scene reads, and whether the
    warning that the file was saved since has been given."""

    blend: dict[str, Any] | None = None
    dependencies: list[Any] | None = None
    saved_said: bool = False


_LOADED: dict[str, _Inputs] = {}  # .blend path -> what this process loaded from it


def open_scene(job: JobSpec | dict[str, Any], settings: Settings, emit: Emit):
    """Open the job's .blend and prepare it; raises SceneError with the fix on bad input."""
    job = as_job(job)
    blend = job.blend
    name = os.path.basename(blend)
    t0 = time.perf_counter()
    if not os.path.isfile(blend):
        _open_blend(blend, settings)  # the message for a missing file
    # simulation caches redirected before the load's first evaluation writes them
    private = Path(job.sequences[0]["out_dir"]) / layout.STATE_DIR / "caches"
    opened: list[str] = []
    with containment.caches_contained_on_load(private, emit, job.scene_name or name):
        # the hash of the bytes Blender loads, once per process: what every sequence records
        loaded = provenance.identity_as_loaded(
            blend, lambda: opened.extend(_open_blend(blend, settings)))
    scene = scene_setup.select_scene(settings.scene, name)
    camera_rig.install(scene, settings, name)  # a generated camera, in memory only
    scene_setup.check_scene(scene, settings, name)
    dependencies.refuse_multiview(scene, name)
    warnings = opened + scene_setup.scene_warnings(scene, name, scene.render.engine)  # as saved
    scene_setup.apply_render_settings(scene, settings)
    _check_frame_size(scene, settings, name)
    timing.stretch(scene, settings.keyframe_multiplier, name)
    _LOADED[blend] = _Inputs(loaded, provenance.dependency_identities(dependencies.collect(scene)))
    dependencies.driver_notice(settings.autoexec, emit, job.scene_name or name)
    for message in warnings:
        emit({"event": Ev.WARNING, "scene": job.scene_name or name, "message": message})
    emit({"event": Ev.SCENE_OPENED, "scene": job.scene_name or name, "blend": blend,
          "seconds": round(time.perf_counter() - t0, 4)})
    return scene


def _check_frame_size(scene, settings: Settings, name: str) -> None:
    """Refuse a frame whose buffers cannot fit in memory, at the size that really renders (the
    file's own resolution times its percentage where width and height are 0)."""
    r = scene.render
    w = max(1, r.resolution_x * r.resolution_percentage // 100)
    h = max(1, r.resolution_y * r.resolution_percentage // 100)
    bad = settings.frame_size_problem(w, h)
    if bad:
        raise scene_setup.SceneError(
            f"{name}: scene '{scene.name}' renders {r.resolution_x}x{r.resolution_y} at "
            f"{r.resolution_percentage} %: {bad}; set width and height, or lower the file's "
            "resolution")


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


def render_sequence(scene, seq: dict[str, Any], job: JobSpec | dict[str, Any], settings: Settings,
                    emit: Emit, budget: list[int], device: str) -> None:
    """Render frames ``frame_start..frame_end`` of ``seq`` into ``seq['out_dir']``.

    Frames already complete in the journal are skipped when ``allow_skips``. ``budget`` is a
    one-element countdown of frames this process may still render (None inside: unlimited).
    """
    job = as_job(job)
    out = Path(seq["out_dir"])
    scene_name = job.scene_name
    a, b = _frame_range(scene, seq, settings, scene_name)
    sq = _Sequence(out, seq["id"], scene_name, a, b)
    with sequence_lock(out):  # one writer per sequence folder, whatever started it
        _render_locked(scene, sq, seq, job, settings, emit, budget, device)


def _render_locked(scene, sq: _Sequence, seq: dict[str, Any], job: JobSpec,
                   settings: Settings, emit: Emit, budget: list[int], device: str) -> None:
    out, scene_name, a, b = sq.out, sq.scene_name, sq.a, sq.b
    rig_info = camera_rig.prepare_sequence(scene, settings, scene_name, sq.id, a, b,
                                           os.path.basename(job.blend))
    _check_provenance(sq, scene, job.blend, settings, emit)
    (out / layout.RGB_FOLDER).mkdir(parents=True, exist_ok=True)
    journal = Journal(out, background=True)
    ext = layout.RGB_EXTENSIONS[settings.file_format]
    rig = stereo.rig(PassRig(scene, settings, out), scene, settings, out)
    for message in rig.warnings:
        emit({"event": Ev.WARNING, "scene": scene_name, "job": seq["id"], "message": message})
    todo = _todo_frames(journal, rig, a, b, ext) if settings.allow_skips else set(range(a, b + 1))
    emit({"event": Ev.JOB_STARTED, "job": seq["id"], "scene": scene_name, "frames": b - a + 1,
          "todo": len(todo)})
    t_job = time.perf_counter()
    frames_meta: list[dict[str, Any]] = []
    k0 = None
    commits = _Commits(scene, rig, journal, sq, settings, emit)  # before any frame_set
    timing.preroll(scene, a)
    try:
        for f in range(a, b + 1):
            rgb, gt_files = layout.rgb_file(f, ext), rig.frame_files(f)
            entry, k = _frame_entry(scene, f, a, rgb, gt_files, k0)
            k0 = k0 or k
            frames_meta.append(entry)
            commits.lens_known(f, _Lens(entry[layout.FRAME_CAMERA_KEY], k))
            if f not in todo:
                rig.finish_frame(f, rendered=False)
                emit({"event": Ev.FRAME_SKIPPED, "job": seq["id"], "scene": scene_name, "frame": f})
                continue
            if budget[0] is not None and budget[0] <= 0:
                raise BudgetExhausted()
            scene_setup.hold_ground_truth_rays(scene, settings, f"{scene_name}, frame {f}")
            files = [rgb, *gt_files.values(), *rig.record_files(f), *(
                layout.preview_file(kind, f) for kind in rig.kinds if settings.debug)]
            commits.render(f, rgb, files)
            if budget[0] is not None:
                budget[0] -= 1
        commits.finish()
        object_stats = rig.finish_sequence()
        cameras = commits.mark_flow_validity(frames_meta)
    finally:
        commits.close()
        rig.teardown()
    _write_transforms(sq, scene, job.blend, settings, k0, frames_meta, cameras,
                      rig.conventions())
    _write_info(sq, scene, settings, frames_meta, object_stats, t_job, device, rig_info)
    _warn_unidentified(sq, object_stats, emit)
    if stereo.wants_right_view(settings, seq):  # the same frames through the right camera
        stereo.render_right_view(scene, seq, settings, emit, lambda s, e: render_sequence(
            scene, s, job, settings, e, budget, device))
    emit({"event": Ev.JOB_DONE, "job": seq["id"], "scene": scene_name,
          "seconds": round(time.perf_counter() - t_job, 4)})


def _frame_range(scene, seq: dict[str, Any], settings: Settings,
                 scene_name: str) -> tuple[int, int]:
    """First and last frame (inclusive) of ``seq``, the scene's own where unset; names the
    sequence (``seq['id']``) when it has no id yet. Raises SceneError on an empty range."""
    a = scene.frame_start if seq.get("frame_start") is None else int(seq["frame_start"])
    b = scene.frame_end if seq.get("frame_end") is None else int(seq["frame_end"])
    if not seq.get("id"):
        seq["id"] = sequence_id(settings.keyframe_multiplier, a, b - a + 1)
    if b < a:
        raise scene_setup.SceneError(f"{scene_name}: empty frame range {a}..{b}")
    bad = frame_range_problem(a, b)
    if bad:  # checked before anything is sized by the frame numbers
        raise scene_setup.SceneError(f"{scene_name}: frames {a}..{b}: {bad}; choose frames inside it")
    return a, b


def _check_provenance(sq: _Sequence, scene, blend: str, settings: Settings, emit: Emit) -> None:
    """Compare what ``sq.out`` was rendered from (``.blend`` as loaded, the files the scene reads,
    settings, Blender, scene) with this run and record this run
    (:func:`dataset.provenance.prepare`); emits the one-line notice when the folder is
    re-rendered from scratch because something changed, and a warning when the ``.blend`` was
    saved since it was loaded."""
    inputs = _LOADED.get(blend) or _Inputs()
    loaded = inputs.blend
    if loaded is not None and provenance.saved_since(loaded) and not inputs.saved_said:
        inputs.saved_said = True
        emit({"event": Ev.WARNING, "scene": sq.scene_name, "job": sq.id,
              "message": f"{sq.scene_name}: {os.path.basename(blend)} was saved while this run "
                         "renders it; its sequences show and record the file as it was loaded, "
                         "so the next run refuses or re-renders them as on_change says"})
    notice = provenance.prepare(sq.out, blend, settings, _blender_version(), scene.name,
                                sq.scene_name, loaded=loaded,
                                dependencies=inputs.dependencies)
    if notice:
        emit({"event": Ev.NOTICE, "scene": sq.scene_name, "job": sq.id, "message": notice})


def _todo_frames(journal: Journal, rig: PassRig, a: int, b: int, ext: str) -> set[int]:
    """Frames of ``a..b`` the journal does not hold complete: the RGB file (extension ``ext``)
    and every ground-truth file of the frame, as journaled and still on disk."""
    return {f for f in range(a, b + 1)
            if not journal.is_done(f, [layout.rgb_file(f, ext), *rig.frame_files(f).values(),
                                       *rig.record_files(f)])}


def _warn_unidentified(sq: _Sequence, object_stats: dict[str, Any], emit: Emit) -> None:
    """One warning for the sequence when pixels rendered in this run hit a surface whose Object
    Index names no drawn instance (their ids read 0, ``pixels.unidentified`` in info.json)."""
    n = int(object_stats.get("pixels", {}).get("unidentified", 0))
    if n > 0:
        emit({"event": Ev.WARNING, "scene": sq.scene_name, "job": sq.id,
              "message": f"{sq.scene_name}: sequence {sq.id}: {n} pixels show a surface but have "
                         "no object id (segmentation 0, not in objects.json; info.json "
                         "objects.pixels.unidentified): something was drawn that no object "
                         "id describes; their segmentation is wrong there"})


def _frame_entry(scene, f: int, a: int, rgb: str, gt_files: dict[str, str],
                 k0: cam_model.Intrinsics | None) -> tuple[dict[str, Any], cam_model.Intrinsics]:
    """Set the scene to frame ``f`` and return its ``transforms.json`` entry and intrinsics.

    The entry holds the file names, the camera-to-world pose, the time since frame ``a`` (s)
    and the active camera's name; per-frame intrinsics only where they differ from ``k0``
    (the first frame's, None while there is none: an animated lens or shift)."""
    scene.frame_set(f)
    cam = scene.camera
    k = cam_model.intrinsics(scene_setup.camera_params(scene, cam))
    pose = cam_model.orthonormal_pose(_matrix(cam.matrix_world))
    entry = FrameEntry.new(rgb, pose, f, (f - a) / scene_setup.frame_rate(scene), cam.name, gt_files,
                           k if k0 is not None and k != k0 else None)
    return entry.to_dict(), k


def _render_and_journal(scene, rig: PassRig, journal: Journal, sq: _Sequence, f: int, rgb: str,
                        files: list[str], emit: Emit) -> None:
    """Render frame ``f`` (the scene is at it) to ``sq.out / rgb`` and its ground truth, then
    hand ``files`` (relative to ``sq.out``) to the journal.

    They are verified now; the journal's thread fsyncs and journals them during the next
    render, and only then emits ``frame_done`` with the render time (s) and memory. A
    "cannot save" from Blender becomes a one-line :class:`WriteError`."""
    _journal_frame(journal, sq, f, files, _render_frame(scene, rig, sq, f, rgb), emit)


def _render_frame(scene, rig: PassRig, sq: _Sequence, f: int, rgb: str) -> float:
    """Render frame ``f`` (the scene is at it) to ``sq.out / rgb`` and its ground truth; returns
    the render time (s). A "cannot save" from Blender becomes a one-line :class:`WriteError`."""
    rig.prepare_frame(f)
    # write_still does not expand '#': name the file of this frame explicitly.
    scene.render.filepath = str((sq.out / rgb).with_suffix(""))
    t0 = time.perf_counter()
    try:
        bpy.ops.render.render(write_still=True)
        rig.render_data(f)  # ground truth of the pixel centres (none with filtered_passes)
    except RuntimeError as exc:  # "cannot save": a write error, said in one line
        raise (render_save_error(str(exc)) or exc) from None
    dt = time.perf_counter() - t0
    rig.finish_frame(f, rendered=True)
    return dt


def _journal_frame(journal: Journal, sq: _Sequence, f: int, files: list[str], dt: float,
                   emit: Emit) -> None:
    """Hand the rendered frame ``f``'s ``files`` to the journal (verified now, journaled during
    the next render, then ``frame_done`` with the render time ``dt`` (s) and memory)."""
    journal.mark_done(f, files, then=partial(
        emit, {"event": Ev.FRAME_DONE, "job": sq.id, "scene": sq.scene_name, "frame": f,
               "seconds": round(dt, 4), "rss_mib": _rss_mib()}))


def _write_transforms(sq: _Sequence, scene, blend: str, settings: Settings,
                      k0: cam_model.Intrinsics, frames_meta: list[dict[str, Any]],
                      cameras: list[str], conventions: dict[str, Any]) -> None:
    """Write the ``transforms.json`` of the sequence (rendered from ``blend``): intrinsics
    ``k0`` of the first frame, the frame entries, and the cameras in order of use where a
    camera cut switches them."""
    path = sq.out / layout.TRANSFORMS
    frames = [FrameEntry.from_dict(fr, f"{path}: frames[{i}]") for i, fr in enumerate(frames_meta)]
    transforms_of(
        intrinsics=k0, channels=len(settings.color_mode) if settings.color_mode != "BW" else 1,
        frames=frames, frame_rate=scene_setup.frame_rate(scene),
        keyframe_multiplier=settings.keyframe_multiplier,
        frame_start=sq.a, frame_end=sq.b, scene=sq.scene_name, blend_file=blend,
        sequence_id=sq.id, blender_version=_blender_version(),
        dataset_forge_version=__version__, camera=frames[0].camera,
        unit_scale=scene.unit_settings.scale_length, conventions=conventions,
        cameras=cameras if len(cameras) > 1 else None).write(path)


def _write_info(sq: _Sequence, scene, settings: Settings, frames_meta: list[dict[str, Any]],
                object_stats: dict[str, Any], t_job: float, device: str,
                rig_info: dict[str, Any] | None = None) -> None:
    """Write the ``info.json`` of the sequence: camera path length (scene units) and mean
    speed over the time from the first to the last frame (s), render time since ``t_job``
    (``time.perf_counter``), device, versions and the object statistics if any."""
    fps = scene_setup.frame_rate(scene)
    positions = [position_of(fr) for fr in frames_meta]
    dist = sum(math.dist(p, q) for p, q in zip(positions, positions[1:]))
    elapsed = (sq.b - sq.a) / fps
    write_json_atomic(sq.out / layout.INFO, {
        "frame_rate": fps, "num_frames": sq.b - sq.a + 1, "distance_traveled": dist,
        "average_velocity": dist / elapsed if elapsed > 0 else 0.0, "elapsed_time": elapsed,
        "unit_scale_m": scene.unit_settings.scale_length,
        "render_seconds": round(time.perf_counter() - t_job, 3), "device": device,
        "blender_version": _blender_version(), "keyframe_multiplier": settings.keyframe_multiplier,
        **({"objects": object_stats} if object_stats else {}),
        **({"camera_rig": rig_info} if rig_info else {}),
    })


class _Commits:
    """Renders the frames of a sequence and hands them to the journal. With flows and a lens that
    may change (:func:`scene_setup.lens_may_change`) a rendered frame waits for the next frame's
    lens: its flow file may need re-projecting first (:func:`_commit_flow_frame`). The lenses of
    frames ``a - 1 .. b + 1`` and the meshes whose vertex count changes
    (:class:`topology.TopologyWatch`, created before any ``frame_set``) then decide the flow
    validity flags (:meth:`mark_flow_validity`)."""

    def __init__(self, scene, rig: PassRig, journal: Journal, sq: _Sequence, settings: Settings,
                 emit: Emit):
        self.scene, self.rig, self.journal, self.sq = scene, rig, journal, sq
        self.settings, self.emit = settings, emit
        self.flows = settings.flows
        self.defer = self.flows and scene_setup.lens_may_change(scene)
        self.topology = topology.TopologyWatch(scene) if self.flows else None
        self.lenses = {sq.a - 1: _lens_at(scene, sq.a - 1)} if self.flows else {}
        self.pending: _Rendered | None = None

    def lens_known(self, f: int, lens: _Lens) -> None:
        """Frame ``f`` is set and its lens known: the frame before it can be journaled."""
        if self.flows:
            self.lenses[f] = lens
        if self.defer:
            self._commit_pending()

    def render(self, f: int, rgb: str, files: list[str]) -> None:
        """Render frame ``f`` (the scene is at it); journal it now, or once the next frame's lens
        is known when its flow may need re-projecting."""
        if self.flows:
            self.topology.expect(f)
        if not self.defer:
            _render_and_journal(self.scene, self.rig, self.journal, self.sq, f, rgb, files, self.emit)
            return
        self.pending = _Rendered(f, files, _render_frame(self.scene, self.rig, self.sq, f, rgb))

    def finish(self) -> None:
        """After the last frame: journal the frame still waiting (the lens of ``b + 1`` read) and
        wait for the journal. Leaves the scene at frame ``b``."""
        if self.flows:
            self.lenses[self.sq.b + 1] = _lens_at(self.scene, self.sq.b + 1)
            self.scene.frame_set(self.sq.b)
        if self.defer:
            self._commit_pending()
        self.journal.flush()

    def mark_flow_validity(self, frames_meta: list[dict[str, Any]]) -> list[str]:
        """With flows, set every frame's ``flow_forward_valid`` / ``flow_backward_valid``: false
        where the neighbouring frame (also ``a - 1`` and ``b + 1``, outside the sequence) has
        another active camera (a camera cut: timeline markers bound to cameras) or intrinsics
        the flow cannot be made exact for (:func:`_flow_exact`), and where a drawn mesh changes
        its vertex count (each named in a warning). Returns the camera names in order of first
        use."""
        if self.flows:
            def exact(cur: _Lens, other: _Lens) -> bool:
                # a lens that changed although nothing animates it was not re-projected
                return _flow_exact(cur, other) and (self.defer or cur.k == other.k)
            lenses = self.lenses
            for fr in frames_meta:
                f = fr["frame"]
                fr[layout.FLOW_BACKWARD_VALID] = exact(lenses[f], lenses[f - 1])
                fr[layout.FLOW_FORWARD_VALID] = exact(lenses[f], lenses[f + 1])
            # meshes whose vertex count changes have no Cycles motion
            for message in self.topology.invalidate(frames_meta, layout.FLOW_FORWARD_VALID,
                                                    layout.FLOW_BACKWARD_VALID):
                self.emit({"event": Ev.WARNING, "scene": self.sq.scene_name, "job": self.sq.id,
                           "message": message})
        return list(dict.fromkeys(fr[layout.FRAME_CAMERA_KEY] for fr in frames_meta))

    def close(self) -> None:
        if self.topology is not None:
            self.topology.close()
        self.journal.close()

    def _commit_pending(self) -> None:
        if self.pending is not None:
            _commit_flow_frame(self.pending, self.lenses, self.rig, self.journal, self.sq,
                               self.settings, self.emit)
            self.pending = None


# -- Flow under animated intrinsics (dataset/flow_intrinsics.py, docs/ground_truth.md) -----------
@dataclass(frozen=True)
class _Lens:
    """The active camera's name and intrinsics at one frame (``k`` None: no camera, or one
    without a pinhole ``K``)."""

    camera: str | None
    k: cam_model.Intrinsics | None


@dataclass(frozen=True)
class _Rendered:
    """A rendered frame waiting for its flow fix before the journal: its files and render time."""

    frame: int
    files: list[str]
    seconds: float


def _lens_at(scene, f: int) -> _Lens:
    """Set the scene to frame ``f`` and return its camera and intrinsics."""
    scene.frame_set(f)
    cam = scene.camera
    if cam is None:
        return _Lens(None, None)
    try:
        return _Lens(cam.name, cam_model.intrinsics(scene_setup.camera_params(scene, cam)))
    except cam_model.CameraModelError:
        return _Lens(cam.name, None)


def _vector_pass_model() -> flow_k.VectorPassModel | None:
    m = compat.VECTOR_PASS_INTRINSICS
    return None if m is None else flow_k.VectorPassModel(m)


def _flow_exact(cur: _Lens, other: _Lens) -> bool:
    """Is the flow from the frame of ``cur`` towards the frame of ``other`` right once
    :func:`_commit_flow_frame` has run: the same camera, and the same intrinsics or intrinsics
    whose change is corrected exactly."""
    if cur.camera is None or cur.camera != other.camera or cur.k is None or other.k is None:
        return False
    return flow_k.correctable(np.asarray(cur.k.K), np.asarray(other.k.K), (cur.k.w, cur.k.h),
                              (other.k.w, other.k.h), _vector_pass_model())


def _commit_flow_frame(done: _Rendered, lenses: dict[int, _Lens], rig: PassRig,
                       journal: Journal, sq: _Sequence, settings: Settings, emit: Emit) -> None:
    """Make the flow file of the rendered frame follow its neighbours' intrinsics, then hand the
    frame to the journal. ``lenses`` holds the frames ``done.frame - 1 .. + 1``."""
    f = done.frame
    fix_flow_file(sq.out / layout.gt_file("flow", f), *rig.flow_surface(f), lenses[f],
                  lenses[f - 1], lenses[f + 1], settings.exr_codec)
    _journal_frame(journal, sq, f, done.files, done.seconds, emit)


def fix_flow_file(path: Path, mask_path: Path, scratch: bool, cur: _Lens, prev: _Lens,
                  nxt: _Lens, codec: str) -> bool:
    """Rewrite the flow EXR ``path`` of a frame (lens ``cur``) where the neighbour's intrinsics
    differ and the change is exactly correctable (forward towards ``nxt``, backward towards
    ``prev``); only surface pixels (``mask_path`` > 0: the depth file, or a ``scratch`` mask
    that is deleted here; Cycles' background flow stays 0) change. The file keeps its channels
    and codec and is replaced atomically. Returns True when the file was rewritten."""
    model = _vector_pass_model()
    todo = [(sl, other) for sl, other in ((slice(0, 2), nxt), (slice(2, 4), prev))
            if other.k is not None and cur.k is not None and other.k != cur.k
            and _flow_exact(cur, other)]
    if todo:
        names = compat.EXR_CHANNELS["RGBA"]
        flow = exr.read_stack(path, names)
        mask = exr.read_single(mask_path) > 0
        k_cur = np.asarray(cur.k.K, np.float64)
        for sl, other in todo:
            k_other = np.asarray(other.k.K, np.float64)
            flow[..., sl] = flow_k.correct_flow_for_intrinsics(
                flow[..., sl], flow_k.used_intrinsics(k_cur, k_other, model), k_other, mask)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            exr.write_channels(tmp, {n: flow[..., i] for i, n in enumerate(names)}, compression=codec)
            os.replace(tmp, path)
        except OSError as exc:
            raise write_error(exc, path) from None
        except RuntimeError as exc:  # OpenEXR's own failure to write (a full disk ...)
            raise WriteError(path, " ".join(str(exc).split())[:200]) from None
    if scratch:
        mask_path.unlink(missing_ok=True)
    return bool(todo)


def run_job(job: JobSpec | dict[str, Any], emit: Emit) -> int:
    """Render every sequence of ``job``; returns 0 when all succeeded, 1 otherwise, 3 when the
    frame budget ran out (the runner restarts the rest in a fresh process)."""
    job = as_job(job)
    scene_name = job.scene_name
    try:
        settings = Settings.from_dict(job.settings)
        _heartbeat(emit, scene_name, settings.timeout)  # opening a big file is work too
        scene = open_scene(job, settings, emit)
        choice = devices.configure_device(scene, settings.device_type, job.gpu_index)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear event
        emit({"event": Ev.ERROR, "scene": scene_name, "job": None, "message": _message(exc),
              "permanent": _permanent(exc)})
        return 1
    emit({"event": Ev.DEVICE, "scene": scene_name, "device": choice.reason,
          "gpu": choice.is_gpu, "gpu_index": job.gpu_index,
          "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
    budget = [job.frame_budget or None]
    rc = 0
    containment.mute_scene_outputs(scene, settings.allow_scene_outputs, emit, scene_name)
    for seq in job.sequences:
        try:
            render_sequence(scene, seq, job, settings, emit, budget, choice.reason)
        except BudgetExhausted:
            emit({"event": Ev.RECYCLE, "scene": scene_name, "job": seq["id"]})
            return 3
        except Exception as exc:  # noqa: BLE001
            emit({"event": Ev.ERROR, "scene": scene_name, "job": seq["id"],
                  "message": _message(exc), "permanent": _permanent(exc)})
            rc = 1
            if isinstance(exc, WriteError):
                return rc  # the next sequences would hit the same disk, quota or limit
    return rc


def _heartbeat(emit: Emit, scene_name: str, timeout: float) -> None:
    """Report every ``timeout / 5`` s (at most 10 s) that this process is working, judged by its
    CPU time growing: a frame that renders for longer than the timeout is not silence, while a
    process that is frozen, stopped, or blocked on a lock uses no CPU and goes silent. (Cycles
    calls no Python handler while it samples, and the ``bpy`` module prints no progress.)"""
    import threading

    every = max(0.5, min(10.0, timeout / 5))

    def run() -> None:
        last = sum(os.times()[:2])
        while True:
            time.sleep(every)
            cpu = sum(os.times()[:2])
            if cpu - last > 0.01:
                emit({"event": Ev.HEARTBEAT, "scene": scene_name, "cpu_seconds": round(cpu, 2)})
            last = cpu

    threading.Thread(target=run, daemon=True, name="dataset_forge_heartbeat").start()


def _permanent(exc: BaseException) -> bool:
    """Errors of the input that a retry cannot fix."""
    return (isinstance(exc, (scene_setup.SceneError, cam_model.CameraModelError, SettingsError))
            or getattr(exc, "permanent", False))


def _message(exc: BaseException) -> str:
    if isinstance(exc, DatasetForgeError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return (f"cannot write {exc.filename}: {exc.strerror}; choose a writable output folder "
                "or free disk space")
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n{''.join(tb[-3:])}"


def _clean_exit(rc: int) -> None:
    """Exit without running Blender's own teardown: with a handler or timer still registered the
    4.5 module hangs at exit and 4.2 segfaults (docs/blender_notes.md, the bpy module as a
    process)."""
    containment.leave()  # unmute the scene's File Output nodes, remove Blender's temp folder
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(rc)


def probe(job: JobSpec | dict[str, Any], emit: Emit) -> int:
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
        info: dict[str, Any] = {"event": Ev.PROBE, "blend": blend, "frame_start": None,
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


def _die_with_parent() -> None:
    """Exit when the process that started us dies (a killed runner must not leave workers
    rendering into folders that the next run renders into too)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(4)

    import threading

    threading.Thread(target=watch, daemon=True, name="dataset_forge_parent_watch").start()


def main(argv: list[str] | None = None) -> None:
    """Entry point in a worker process: ``argv`` holds the job file path (after ``--``)."""
    argv = list(sys.argv if argv is None else argv)
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    else:
        argv = argv[1:]
    emit = stdout_emitter()
    rc = 1
    _die_with_parent()
    try:
        job = JobSpec.read(argv[0])
        emit({"event": Ev.WORKER_STARTED, "pid": os.getpid(), "blender": _blender_version()})
        rc = probe(job, emit) if job.mode == PROBE else run_job(job, emit)
        emit({"event": Ev.WORKER_DONE, "rc": rc})
    except BaseException as exc:  # noqa: BLE001
        emit({"event": Ev.ERROR, "scene": None, "job": None, "message": _message(exc)})
    finally:
        _clean_exit(rc)
