# SPDX-License-Identifier: GPL-3.0-or-later
"""The typed protocol between the floors: event kinds, plan, job, sequence and summary. Pure Python.

Events stay plain JSON dicts on the wire (``{"event": KIND, ...}``, see :mod:`wire.events`);
:class:`Ev` names every kind once. It is a ``str`` enum, so ``e["event"] == Ev.FRAME_DONE`` holds
for an event decoded from JSON, and a misspelt kind is an ``AttributeError`` rather than a silently
dropped event. The TypedDicts describe the JSON documents (``plan.json``, the summary) for readers
and type checkers; they are ordinary dicts at run time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict

from ..settings import SettingsDict

__all__ = ["Ev", "Event", "PlanDoc", "PlanJob", "PlanScene", "ProgressEvent", "SceneSummary",
           "SequenceSpec", "SequenceSummary", "Status", "Summary", "SUMMARY_KEYS"]


class Ev(StrEnum):
    """Every event kind. Worker events first (printed by the worker process), then the runner's."""

    # -- from the worker (render_passes/worker.py) --
    WORKER_STARTED = "worker_started"  # pid, blender (version)
    SCENE_OPENED = "scene_opened"  # scene, blend, seconds
    JOB_STARTED = "job_started"  # job (sequence id), scene, frames (total), todo
    DEVICE = "device"  # scene, device (sentence), gpu (bool), gpu_index, cuda_visible_devices
    FRAME_DONE = "frame_done"  # job, scene, frame, seconds (render wall time), rss_mib
    FRAME_SKIPPED = "frame_skipped"  # job, scene, frame (already complete)
    JOB_DONE = "job_done"  # job, scene, seconds
    ERROR = "error"  # scene, job (or None), message (names the file and the fix), permanent
    WORKER_DONE = "worker_done"  # rc
    HEARTBEAT = "heartbeat"  # the worker's CPU time grew though no frame finished lately
    RECYCLE = "recycle"  # frame budget spent: a fresh process renders the rest
    NOTICE = "notice"  # scene, message: something the worker did on its own (e.g. a re-render)
    WARNING = "warning"  # scene, message: the render goes on, but something in the file is off
    PROBE_STARTED = "probe_started"  # discovery: blend
    PROBE = "probe"  # discovery: blend, frame_start, frame_end, fps, camera, scene, error
    # -- from a Ray task (engine/ray_executor.py) --
    TASK_STARTED = "task_started"  # node, host, pid (of the Ray worker)
    # -- from the runner --
    PROGRESS = "progress"  # see ProgressEvent
    SCENE_DONE = "scene_done"  # scene, slot, status (done | skipped)
    SCENE_FAILED = "scene_failed"  # scene, slot, reasons
    RETRY = "retry"  # scene, slot, attempt (the next one), reason
    WORKER_TIMEOUT = "worker_timeout"  # scene, slot, seconds (silent)
    WORKER_RECYCLED = "worker_recycled"  # scene, slot, rc


class Status(StrEnum):
    """Status of a scene or a sequence in a run's summary."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # rendered (at least one frame) in this run
    SKIPPED = "skipped"  # every frame was complete already
    FAILED = "failed"


class Event(TypedDict, total=False):
    """One event: ``{"event": Ev..., ...}`` plus the keys of its kind (see :class:`Ev`; the
    runner adds ``slot``). Every key any kind carries, with its type; a kind carries its own."""

    event: str  # Ev
    scene: str | None
    job: str | None  # sequence id
    slot: int
    message: str
    permanent: bool
    pid: int
    blender: str  # version
    blend: str
    seconds: float
    cpu_seconds: float
    frames: int
    todo: int
    frame: int
    rss_mib: float
    device: str
    gpu: bool
    gpu_index: int | None
    cuda_visible_devices: str | None
    rc: int | None
    status: str  # Status
    reasons: list[str]
    reason: str
    attempt: int
    node: str
    host: str
    # probe: the file's range, rate, camera and scenes, and what went wrong
    frame_start: int | None
    frame_end: int | None
    fps: float | None  # progress: frames per second rendered in this run
    camera: str | None
    error: str | None
    warnings: list[str] | None
    scenes: list[str]
    # progress (ProgressEvent)
    frames_done: int
    frames_skipped: int
    frames_total: int
    fraction: float
    eta: float | None
    workers: int
    scenes_total: int
    scenes_finished: int
    elapsed: float
    done: bool


class ProgressEvent(TypedDict):
    """The runner's aggregate state (what the CLI bar and the panel show)."""

    event: str  # Ev.PROGRESS
    frames_done: int  # rendered in this run
    frames_skipped: int  # found complete
    frames_total: int
    fraction: float  # 0..1
    eta: float | None  # seconds
    fps: float  # frames per second rendered in this run
    workers: int  # running worker processes (Ray: tasks that started on a node)
    scenes_total: int
    scenes_finished: int
    elapsed: float  # seconds
    done: bool


class SequenceSpec(TypedDict):
    """One sequence to render: frames ``frame_start..frame_end`` (inclusive, stretched timeline)
    into ``out_dir``. ``id`` and the range are None when the worker reads them from the scene
    (``render_animation`` without a range)."""

    id: str | None
    out_dir: str
    frame_start: int | None
    frame_end: int | None


class PlanJob(TypedDict):
    """One renderable scene of a plan: one worker opens ``blend`` once for all its sequences."""

    scene: str
    blend: str
    sequences: list[SequenceSpec]


class PlanScene(TypedDict, total=False):
    """A scene as read by discovery, plus ``stretched_range`` and the reason it cannot render."""

    name: str
    blend: str
    frame_start: int | None
    frame_end: int | None
    fps: float | None
    camera: str | None
    error: str | None
    blender_scene: str | None
    blender_scenes: list[str] | None
    warnings: list[str]  # only when there are some
    stretched_range: list[int] | None


class PlanDoc(TypedDict):
    """``plan.json``: what a run will render (written before anything renders); the JSON of
    ``dataset.documents.plan.Plan`` (what ``create_datasets(dry_run=True)`` returns)."""

    version: int
    dataset_forge_version: str
    created: str
    scenes_dir: str
    datasets_dir: str
    seed: int | None
    settings: SettingsDict
    scenes: list[PlanScene]
    jobs: list[PlanJob]


class SequenceSummary(TypedDict):
    id: str
    out_dir: str
    frames: int
    rendered: int
    skipped: int
    status: str  # Status
    reason: str | None


class SceneSummary(TypedDict):
    blend: str
    status: str  # Status
    errors: list[str]
    attempts: int
    sequences: list[SequenceSummary]


class Summary(TypedDict):
    """What ``render_animation``, ``create_datasets``, the CLI (``--json``) and the panel get at
    the end of a run; also written to ``summary.json`` beside the workers' logs."""

    ok: bool  # everything planned is complete
    exit_code: int  # 0 ok, 1 anything failed or the run was cancelled
    cancelled: bool
    done: list[str]  # scenes rendered in this run
    skipped: list[str]  # scenes that were complete already
    failed: dict[str, str]  # scene -> reason
    scenes: dict[str, SceneSummary]
    frames_rendered: int
    frames_skipped: int
    frames_total: int
    seconds: float
    executor: str  # local | ray
    nodes: dict[str, str]  # Ray: node id -> host; local: {}
    logs: str  # the run's folder of job files, worker logs and summary.json
    plan: str | None  # plan.json (create_datasets) or None (render_animation)
    manifest: str | None  # manifest.json (create_datasets) or None (render_animation)


SUMMARY_KEYS = tuple(Summary.__annotations__)
