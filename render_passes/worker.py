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

The process shell: :func:`main` reads the job, runs :func:`run_job` (``sequence.py``) or
:func:`probe` (``probe.py``), keeps a heartbeat, dies with its parent and exits with the job's
code without Blender's teardown.
"""

from __future__ import annotations

import os
import sys
import time

from ..dataset import camera as cam_model
from ..dataset.documents.base import JSONObject
from ..dataset.documents.job import PROBE, JobSpec, as_job
from ..dataset.verify import WriteError
from ..settings import Settings, SettingsError
from ..wire.events import Emit, stdout_emitter
from ..wire.protocol import Ev
from . import containment, devices, scene_setup
from .commits import fix_flow_file
from .probe import _blender_version, _message, probe, saved_version
from .sequence import BudgetExhausted, open_scene, render_sequence

__all__ = ["BudgetExhausted", "fix_flow_file", "main", "open_scene", "probe", "render_sequence", "run_job",
           "saved_version"]


def run_job(job: JobSpec | JSONObject, emit: Emit) -> int:
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
