# SPDX-License-Identifier: GPL-3.0-or-later
"""A job's scene, opened once (:func:`open_scene`, with what this process loaded from the
``.blend``), and the loop over one sequence's frames (:func:`render_sequence`): frame range,
provenance, frames to do, each frame rendered and journaled (:mod:`.commits`), then the
sequence's ``transforms.json`` and ``info.json``."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..dataset import camera as cam_model
from ..dataset import layout, provenance
from ..dataset.documents import info as info_doc
from ..dataset.documents.base import JSONObject
from ..dataset.documents.info import Info, ObjectStats
from ..dataset.documents.job import JobSpec, as_job
from ..dataset.documents.provenance import FileIdentityDict
from ..dataset.documents.transforms import FrameEntry
from ..dataset.journal import Journal
from ..dataset.lock import sequence_lock
from ..dataset.transforms import transforms_of
from ..sampling import sequence_id
from ..settings import Settings, frame_range_problem
from ..version import __version__
from ..wire.events import Emit
from ..wire.protocol import Ev, SequenceSpec
from . import camera_rig, containment, dependencies, flow_plan, scene_setup, stereo, timing
from .commits import _Commits, _Lens, _Sequence
from .passes import PassRig
from .probe import _blender_version, _open_blend


class BudgetExhausted(Exception):
    """The worker rendered its frame budget; the runner starts a fresh process for the rest."""


@dataclass
class _Inputs:
    """What this process loaded from one ``.blend`` (:func:`open_scene`), which every sequence
    of it records: the file's identity as loaded, the files its scene reads, and whether the
    warning that the file was saved since has been given."""

    blend: FileIdentityDict | None = None
    dependencies: list[provenance.FileIdentity] | None = None
    saved_said: bool = False


_LOADED: dict[str, _Inputs] = {}  # .blend path -> what this process loaded from it


def open_scene(job: JobSpec | JSONObject, settings: Settings, emit: Emit):
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


def render_sequence(scene, seq: SequenceSpec, job: JobSpec | JSONObject, settings: Settings,
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


def _render_locked(scene, sq: _Sequence, seq: SequenceSpec, job: JobSpec,
                   settings: Settings, emit: Emit, budget: list[int], device: str) -> None:
    out, scene_name, a, b = sq.out, sq.scene_name, sq.a, sq.b
    rig_info = camera_rig.prepare_sequence(scene, settings, scene_name, sq.id, a, b,
                                           os.path.basename(job.blend))
    _check_provenance(sq, scene, job.blend, settings, emit)
    (out / layout.RGB_FOLDER).mkdir(parents=True, exist_ok=True)
    journal = Journal(out, background=True)
    ext = layout.RGB_EXTENSIONS[settings.file_format]
    plan, _ = flow_plan.survey(scene, settings, a, b)  # flow from depth where nothing reshapes
    rig = stereo.rig(PassRig(scene, settings, out, plan), scene, settings, out)
    for message in rig.warnings:
        emit({"event": Ev.WARNING, "scene": scene_name, "job": seq["id"], "message": message})
    todo = _todo_frames(journal, rig, a, b, ext) if settings.allow_skips else set(range(a, b + 1))
    emit({"event": Ev.JOB_STARTED, "job": seq["id"], "scene": scene_name, "frames": b - a + 1,
          "todo": len(todo)})
    t_job = time.perf_counter()
    frames_meta: list[FrameEntry] = []
    k0 = None
    commits = _Commits(scene, rig, journal, sq, settings, emit)  # before any frame_set
    timing.preroll(scene, a)
    try:
        for f in range(a, b + 1):
            rgb, gt_files = layout.rgb_file(f, ext), rig.frame_files(f)
            entry, k = _frame_entry(scene, f, a, rgb, gt_files, k0)
            k0 = k0 or k
            frames_meta.append(entry)
            commits.lens_known(f, _Lens(entry.camera, k))
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


def _frame_range(scene, seq: SequenceSpec, settings: Settings,
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


def _warn_unidentified(sq: _Sequence, object_stats: ObjectStats | None, emit: Emit) -> None:
    """One warning for the sequence when pixels rendered in this run hit a surface whose Object
    Index names no drawn instance (their ids read 0, ``pixels.unidentified`` in info.json)."""
    n = object_stats.pixels.get("unidentified", 0) if object_stats is not None else 0
    if n > 0:
        emit({"event": Ev.WARNING, "scene": sq.scene_name, "job": sq.id,
              "message": f"{sq.scene_name}: sequence {sq.id}: {n} pixels show a surface but have "
                         "no object id (segmentation 0, not in objects.json; info.json "
                         "objects.pixels.unidentified): something was drawn that no object "
                         "id describes; their segmentation is wrong there"})


def _frame_entry(scene, f: int, a: int, rgb: str, gt_files: dict[str, str],
                 k0: cam_model.Intrinsics | None) -> tuple[FrameEntry, cam_model.Intrinsics]:
    """Set the scene to frame ``f`` and return its ``transforms.json`` entry and intrinsics.

    The entry holds the file names, the camera-to-world pose, the time since frame ``a`` (s)
    and the active camera's name; per-frame intrinsics only where they differ from ``k0``
    (the first frame's, None while there is none: an animated lens or shift)."""
    scene.frame_set(f)
    cam = scene.camera
    k = cam_model.intrinsics(scene_setup.camera_params(scene, cam))
    pose = scene_setup.camera_pose(cam)
    entry = FrameEntry.new(rgb, pose, f, (f - a) / scene_setup.frame_rate(scene), cam.name, gt_files,
                           k if k0 is not None and k != k0 else None)
    return entry, k


def _write_transforms(sq: _Sequence, scene, blend: str, settings: Settings,
                      k0: cam_model.Intrinsics, frames: list[FrameEntry],
                      cameras: list[str], conventions: JSONObject) -> None:
    """Write the ``transforms.json`` of the sequence (rendered from ``blend``): intrinsics
    ``k0`` of the first frame, the frame entries, and the cameras in order of use where a
    camera cut switches them."""
    path = sq.out / layout.TRANSFORMS
    transforms_of(
        intrinsics=k0, channels=len(settings.color_mode) if settings.color_mode != "BW" else 1,
        frames=frames, frame_rate=scene_setup.frame_rate(scene),
        keyframe_multiplier=settings.keyframe_multiplier,
        frame_start=sq.a, frame_end=sq.b, scene=sq.scene_name, blend_file=blend,
        sequence_id=sq.id, blender_version=_blender_version(),
        dataset_forge_version=__version__, camera=frames[0].camera,
        unit_scale=scene.unit_settings.scale_length, conventions=conventions,
        cameras=cameras if len(cameras) > 1 else None).write(path)


def _write_info(sq: _Sequence, scene, settings: Settings, frames: list[FrameEntry],
                object_stats: ObjectStats | None, t_job: float, device: str,
                rig_info: JSONObject | None = None) -> None:
    """Write the ``info.json`` of the sequence: camera path length (scene units) and mean
    speed over the time from the first to the last frame (s), render time since ``t_job``
    (``time.perf_counter``), device, versions and the object statistics if any."""
    fps = scene_setup.frame_rate(scene)
    positions = [fr.position for fr in frames]
    dist = sum(math.dist(p, q) for p, q in zip(positions, positions[1:]))
    elapsed = (sq.b - sq.a) / fps
    info_doc.write(sq.out, Info(
        frame_rate=fps, num_frames=sq.b - sq.a + 1, distance_traveled=dist,
        average_velocity=dist / elapsed if elapsed > 0 else 0.0, elapsed_time=elapsed,
        unit_scale_m=scene.unit_settings.scale_length,
        render_seconds=round(time.perf_counter() - t_job, 3), device=device,
        blender_version=_blender_version(), keyframe_multiplier=settings.keyframe_multiplier,
        objects=object_stats, camera_rig=rig_info or None))
