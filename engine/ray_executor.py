# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``ray`` executor: the same jobs as a local :class:`runner.Runner`, rendered on a Ray cluster.

:class:`RayLauncher` is a launcher (:mod:`engine.launchers`) whose workers are Ray tasks: one
task per scene job (one ``.blend`` and its sequences, opened once), with declared resources
(``num_cpus``, ``num_gpus``, fractional allowed). The task starts the very same worker process on
its node (:func:`launchers.popen_worker`: the node's Blender, or the ``bpy`` wheel of the task's
Python) and streams the worker's events to the driver through a small actor, so the runner's
``poll()`` returns the same events as a local run (plus ``task_started``: ``node``, ``host``,
``pid`` of the Ray worker). Retries, recycling, per-scene results and the summary are the
runner's own (its ledger). :func:`ray_runner` builds such a runner.

Output must lie on a filesystem that every node sees: the launcher writes a probe file in the
datasets folder and a task on every node must read it back (and see the scenes and this package),
else the runner's ``start()`` raises :class:`RayExecutorError` before anything renders. A task lost with
its node or its process is submitted again (``retries``); the frame journal in each sequence
folder makes the new task render only the unfinished frames, on whichever node it lands.

Ray is optional: it is imported only when this executor is created. Pure Python (no bpy).
"""

from __future__ import annotations

import os
import queue
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from ..dataset import layout
from ..errors import DatasetForgeError
from ..wire.events import decode
from ..wire.protocol import Ev, Event
from .launch import PACKAGE_ROOT, worker_env
from .launchers import Exit, Launcher, LogCopy, Placement, WorkerSpec, kill_process_group, popen_worker
from .ledger import Job
from .runner import Runner

__all__ = ["INSTALL_HINT", "RAY_REQUIREMENT", "RayExecutorError", "RayLauncher", "import_ray",
           "ray_runner"]

RAY_REQUIREMENT = "ray==2.60.0"  # keep in step with requirements-ray.txt
INSTALL_HINT = (f"pip install -r requirements-ray.txt (or pip install \"{RAY_REQUIREMENT}\") into "
                "the Python that runs Dataset Forge, on the driver and on every node")
PROBE_PREFIX = ".dataset_forge_ray_probe_"
BLENDER_ENV = "DATASET_FORGE_BLENDER"  # per-node Blender executable, when the nodes differ


class RayExecutorError(DatasetForgeError, RuntimeError):
    """The cluster run cannot start (Ray missing, no shared filesystem ...): one sentence + fix."""


def import_ray():
    """The ``ray`` module, or :class:`RayExecutorError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayExecutorError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}"
                               ) from None
    return ray


@dataclass
class RayHandle:
    """One submitted Ray task (a worker process on some node)."""

    spec: WorkerSpec
    ref: Any = None
    started: bool = False  # the task sent task_started (it runs on a node)
    node: str | None = None
    result: Any = None  # the task's return value, or the Ray exception that ended it
    final_drain: int | None = None  # report its exit after this drain of the event sink
    cancelled_at: float | None = None  # when a gentle cancel was sent (force it 15 s later)
    forced: bool = False


class _EventSink:
    """Ray actor: tasks push their worker's events, the driver drains them (in order per task)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Event]] = []

    def push(self, key: str, events: list[Event]) -> int:
        self.items.extend((key, e) for e in events)
        return len(self.items)

    def drain(self) -> list[tuple[str, Event]]:
        out, self.items = self.items, []
        return out


class NodeProbe(TypedDict):
    """What one node answers: its ``host`` and ``node`` id, whether it read the driver's probe
    file (``ok``), the paths it cannot see and the error (None when ok)."""

    host: str
    node: str
    ok: bool
    missing: list[str]
    error: str | None


class TaskResult(TypedDict):
    """How a scene task ended: the worker's exit code and where it ran."""

    rc: int
    node: str
    host: str


def _node_probe(probe: str, token: str, paths: list[str]) -> NodeProbe:
    """Runs on one node: read the driver's probe file, write an answer beside it, list the
    ``paths`` (scenes, this package) that the node cannot see."""
    import ray

    host = socket.gethostname()
    node = ray.get_runtime_context().get_node_id()
    out: NodeProbe = {"host": host, "node": node, "ok": False, "missing": [], "error": None}
    try:
        out["ok"] = Path(probe).read_text(encoding="utf-8").strip() == token
        if not out["ok"]:
            out["error"] = "the probe file holds something else (a different folder?)"
        else:
            Path(f"{probe}.{node}").write_text(host, encoding="utf-8")
    except OSError as exc:
        out["error"] = exc.strerror or str(exc)
    out["missing"] = [p for p in paths if not os.path.exists(p)]
    return out


def _scene_task(key: str, job_path: str, log_path: str, probe: str, token: str, sink: Any,
                executable: str, env_extra: dict[str, str]) -> TaskResult:
    """Runs on a node: the worker process of one scene job, its events pushed to ``sink``."""
    import ray

    ctx = ray.get_runtime_context()
    node, host = ctx.get_node_id(), socket.gethostname()
    last = sink.push.remote(key, [{"event": Ev.TASK_STARTED.value, "node": node, "host": host,
                                   "pid": os.getpid()}])
    try:
        seen = Path(probe).read_text(encoding="utf-8").strip() == token
    except OSError:
        seen = False
    if not seen:  # a node that joined after the check, without the shared folder
        msg = (f"node {host} ({node}) cannot read {probe}: the datasets folder must be on a "
               "filesystem that every node mounts at the same path")
        ray.get(sink.push.remote(key, [{"event": Ev.ERROR.value, "scene": None, "job": None,
                                        "message": msg}]))
        return {"rc": 1, "node": node, "host": host}
    ids = ray.get_gpu_ids()
    gpu = int(ids[0]) if ids else None
    exe = executable or os.environ.get(BLENDER_ENV, "")
    env = worker_env({**os.environ, **env_extra}, gpu=gpu)
    proc = popen_worker(job_path, exe, env)
    # A reader thread: ray.cancel's KeyboardInterrupt reaches this loop even when Blender is
    # frozen and prints nothing (a blocking read would never return to Python).
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="dataset_forge_task_reader").start()
    log = LogCopy(log_path)
    try:
        log.write(f"# node {host} ({node}), ray worker pid {os.getpid()}, gpu {gpu}\n")
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            log.write(line)
            e = decode(line.strip())
            if e is not None:
                last = sink.push.remote(key, [e])
    except BaseException:  # ray.cancel raises KeyboardInterrupt here: Blender goes too
        kill_process_group(proc)  # the worker and what it started
        proc.wait()
        raise
    finally:
        log.close()
    rc = proc.wait()
    ray.get(last)  # every event is in the sink before the driver sees this task end
    return {"rc": rc, "node": node, "host": host}


class RayLauncher(Launcher):
    """Workers as Ray tasks. ``address``: the cluster (``auto``: the running one; None:
    ``RAY_ADDRESS`` or a new local one); ignored when Ray is already initialised in this process.
    ``num_cpus`` / ``num_gpus``: resources of one task (``num_gpus`` 0.5 puts two workers on a
    GPU; None: 1 when the settings ask for a GPU device and the cluster has GPUs, else 0;
    ``num_cpus`` None: the settings' ``threads``, else 1; with ``threads`` 0 Blender gets as many
    threads as the task's CPUs). ``parallel``: tasks submitted at once (0: all; Ray queues what
    does not fit). ``env``: extra environment variables for the workers (the node's own
    environment is the base). ``probe_dir``: where the shared-filesystem probe goes (default: the
    datasets folder above the sequences). ``init_kwargs``: more :func:`ray.init` arguments."""

    name = "ray"
    FORCE_AFTER = 15.0  # s after a gentle cancel that did not end a task: kill its Ray worker

    def __init__(self, *, address: str | None = None, num_cpus: float | None = None,
                 num_gpus: float | None = None, parallel: int = 0, executable: str = "",
                 env: dict[str, str] | None = None, probe_dir: str | os.PathLike | None = None,
                 init_kwargs: dict[str, Any] | None = None):
        self.ray = import_ray()
        self.capacity = int(parallel) if parallel else 0
        self.address = address or None
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.executable = executable
        self.env_extra = dict(env or {})
        self.probe_dir = Path(probe_dir) if probe_dir else None
        self.init_kwargs = dict(init_kwargs or {})
        self.nodes: dict[str, str] = {}  # node id -> host name, from the probe
        self.work_dir: Path | None = None
        self._jobs: list[Job] = []
        self._sink: Any = None
        self._remote: Any = None
        self._drain_ref: Any = None
        self._drains_issued = 0
        self._token = ""
        self._probe_path: Path | None = None

    # -- the launcher interface ------------------------------------------------------------------
    def open(self, work_dir: Path, jobs: list[Job]) -> None:
        """Connect to the cluster, check the shared filesystem on every node. Raises
        :class:`RayExecutorError` (nothing rendered) when a node cannot see the folders."""
        ray = self.ray
        self.work_dir, self._jobs = work_dir, jobs
        if not ray.is_initialized():
            kw = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False,
                  **self.init_kwargs}
            try:
                ray.init(address=self.address, **kw)
            except ConnectionError as exc:
                raise RayExecutorError(f"cannot reach the Ray cluster at {self.address or 'auto'} "
                                       f"({exc}); start it with `ray start --head` or pass its "
                                       "address (--ray-address HOST:6379)") from None
        # Our code goes by value: Ray workers need not import this package under our name
        # (inside Blender it is bl_ext.<repo>.dataset_forge); Blender finds it on disk.
        package = __name__.rsplit(".engine.", 1)[0]
        if package in sys.modules:
            ray.cloudpickle.register_pickle_by_value(sys.modules[package])
        self._resolve_resources(jobs)
        self.check_shared_filesystem()
        # On the driver's node: a sink on a node that dies would take every task's events along.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._sink = ray.remote(num_cpus=0)(_EventSink).options(scheduling_strategy=here).remote()
        self._remote = ray.remote(_scene_task).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)

    def placement(self, slot: int, job: Job) -> Placement:
        # The task's GPU (Ray's choice) is the only one its worker sees: device 0.
        return Placement(None, 0 if self.num_gpus else None, job.settings)

    def start(self, spec: WorkerSpec) -> RayHandle:
        h = RayHandle(spec)
        h.ref = self._remote.remote(spec.key, str(spec.job_path), str(spec.log_path),
                                    str(self._probe_path), self._token, self._sink,
                                    self.executable, self.env_extra)
        return h

    def started(self, handle: RayHandle) -> bool:
        return handle.started

    def running(self, handles: list[RayHandle]) -> int:
        return sum(h.started and h.final_drain is None for h in handles)

    def poll(self, handles: list[RayHandle]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        """Never blocks: one outstanding drain of the event actor, read when it is ready; a task
        that ended is reported once a drain issued after its end was read (its last events
        were in the sink before it returned)."""
        ray = self.ray
        if self._sink is None:
            return [], []
        waiting = [h for h in handles if h.final_drain is None]
        if waiting:
            ready, _ = ray.wait([h.ref for h in waiting], num_returns=len(waiting), timeout=0)
            ready_ids = {r.hex() for r in ready}
            for h in waiting:
                if h.ref.hex() in ready_ids:
                    h.result = self._result(h)
                    h.final_drain = self._drains_issued + 1
        if self._drain_ref is None:
            self._drain_ref = self._sink.drain.remote()
            self._drains_issued += 1
        now = time.monotonic()
        for h in handles:
            if h.cancelled_at is not None and h.final_drain is None and not h.forced and \
                    now - h.cancelled_at > self.FORCE_AFTER:
                ray.cancel(h.ref, force=True)  # the gentle cancel did not end it
                h.forced = True
        if not ray.wait([self._drain_ref], timeout=0)[0]:
            return [], []
        batch = ray.get(self._drain_ref)
        drained, self._drain_ref = self._drains_issued, None
        return self._events(handles, batch), [
            self._exit(h) for h in handles if h.final_drain is not None and h.final_drain <= drained]

    def kill(self, handle: RayHandle) -> None:
        if handle.final_drain is None:
            self.ray.cancel(handle.ref, force=False)  # the task kills its Blender's process group
            handle.cancelled_at = time.monotonic()

    def stop(self, handles: list[RayHandle]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        """Cancel every task (its Blender dies with it) and read their last events."""
        ray = self.ray
        refs = [h.ref for h in handles if h.ref is not None]
        # Gently first (the task kills its Blender and returns), then by killing the Ray worker
        # (its Blender dies with it: PR_SET_PDEATHSIG).
        for force in (False, True):
            for r in refs:
                ray.cancel(r, force=force)
            if refs and len(ray.wait(refs, num_returns=len(refs), timeout=10)[0]) == len(refs):
                break
        events: list[tuple[Any, Event]] = []
        if self._sink is not None:
            try:
                if self._drain_ref is not None:
                    events += self._events(handles, ray.get(self._drain_ref, timeout=10))
                events += self._events(handles, ray.get(self._sink.drain.remote(), timeout=10))
            except ray.exceptions.RayError:
                pass
            self._drain_ref = None
        for h in handles:
            h.result = h.result if h.result is not None else {"rc": -9}
        return events, [self._exit(h, cancelled=True) for h in handles]

    def where(self, handle: RayHandle) -> str:
        return f" on {self.nodes.get(handle.node or '', handle.node)}" if handle.node else ""

    def close(self) -> None:
        """Remove the probe file (the run folder's logs stay)."""
        if self._probe_path is not None:
            self._probe_path.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------------
    def _events(self, handles: list[RayHandle], batch) -> list[tuple[Any, Event]]:
        by_key = {h.spec.key: h for h in handles}
        out = []
        for key, e in batch:
            h = by_key.get(key)
            if h is None:
                continue
            if e.get("event") == Ev.TASK_STARTED:
                h.started, h.node = True, e.get("node")
            out.append((h, e))
        return out

    def _result(self, h: RayHandle) -> Any:
        try:
            return self.ray.get(h.ref)
        except self.ray.exceptions.RayError as exc:
            return exc

    def _exit(self, h: RayHandle, cancelled: bool = False) -> Exit:
        r = h.result
        if isinstance(r, dict):
            return Exit(h, int(r.get("rc", 1)))
        if cancelled or h.cancelled_at is not None:
            return Exit(h, -9)
        where = self.nodes.get(h.node or "", h.node or "an unknown node")
        first = str(r).strip().splitlines()[0] if str(r).strip() else ""
        return Exit(h, -9, f"the Ray task on {where} was lost ({type(r).__name__}: {first[:200]}); "
                           f"see {h.spec.log_path}")

    def _resolve_resources(self, jobs: list[Job]) -> None:
        ray = self.ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        first = jobs[0].settings if jobs else {}
        if self.num_gpus is None:
            device = str(first.get("device_type", "CPU"))
            self.num_gpus = 1.0 if device != "CPU" and gpus >= 1 else 0.0
        if self.num_cpus is None:  # the threads Blender was told to use, else one
            self.num_cpus = float(int(first.get("threads") or 0) or 1)
        self.num_gpus, self.num_cpus = float(self.num_gpus), float(self.num_cpus)
        fits = [n for n in nodes if n["Resources"].get("CPU", 0) >= self.num_cpus
                and n["Resources"].get("GPU", 0) >= self.num_gpus]
        if not fits:
            have = ", ".join(f"{n.get('NodeManagerHostname', '?')}: {n['Resources'].get('CPU', 0):g} "
                             f"CPU, {n['Resources'].get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
            raise RayExecutorError(f"no node of the Ray cluster has {self.num_cpus:g} CPU and "
                                   f"{self.num_gpus:g} GPU for one task ({have}); ask for less "
                                   "(num_cpus / num_gpus) or add such a node")
        for j in jobs:
            if int(j.settings.get("threads") or 0) == 0:  # Blender: as many threads as CPUs held
                j.settings = {**j.settings, "threads": max(1, int(self.num_cpus))}

    def _probe_folder(self) -> Path:
        if self.probe_dir is not None:
            return self.probe_dir
        outs = [Path(s["out_dir"]) for j in self._jobs for s in j.sequences]
        if outs:  # the datasets folder: the deepest folder above every sequence folder
            common = Path(os.path.commonpath([str(p.parent) for p in outs]))
            return common.parent if common.name == layout.RENDERS else common
        return self.work_dir or Path.cwd()

    def check_shared_filesystem(self, timeout: float = 120.0) -> dict[str, str]:
        """Write a probe file into the datasets folder; a task pinned to each alive node must read
        it back (and write its answer beside it) and see every ``.blend`` and this package.
        Returns {node id: host}; raises :class:`RayExecutorError` naming the nodes that fail."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        folder = self._probe_folder()
        folder.mkdir(parents=True, exist_ok=True)
        self._token = secrets.token_hex(16)
        self._probe_path = folder / f"{PROBE_PREFIX}{self._token[:8]}"
        self._probe_path.write_text(self._token, encoding="utf-8")
        paths = sorted({j.blend for j in self._jobs} | {str(PACKAGE_ROOT / "__init__.py")})
        remote = ray.remote(_node_probe)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {n["NodeID"]: remote.options(num_cpus=0, max_retries=0, scheduling_strategy=
                                            NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                                            ).remote(str(self._probe_path), self._token, paths)
                for n in nodes}
        hosts = {n["NodeID"]: n.get("NodeManagerHostname", "?") for n in nodes}
        problems: list[str] = []
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        ready_ids = {r.hex() for r in ready}
        for node, ref in refs.items():
            if ref.hex() not in ready_ids:
                problems.append(f"{hosts[node]}: no answer within {timeout:g} s")
                continue
            try:
                r = ray.get(ref)
            except ray.exceptions.RayError as exc:
                problems.append(f"{hosts[node]}: {type(exc).__name__}")
                continue
            answer = Path(f"{self._probe_path}.{node}")
            if r["ok"] and not answer.is_file():
                r["ok"], r["error"] = False, "its answer file did not appear here"
            if not r["ok"]:
                problems.append(f"{r['host']}: cannot read it back ({r['error']})")
            elif r["missing"]:
                problems.append(f"{r['host']}: does not see {', '.join(r['missing'][:3])}"
                                + (" ..." if len(r["missing"]) > 3 else ""))
            self.nodes[node] = r["host"]
            answer.unlink(missing_ok=True)
        if problems:
            raise RayExecutorError(
                f"the datasets folder {folder} is not shared with every node of the Ray cluster "
                f"({'; '.join(problems)}); put the datasets folder, the scenes and Dataset Forge "
                "on a filesystem that every node mounts at the same path (NFS, Lustre ...)")
        return dict(self.nodes)


def ray_runner(jobs: list[Job], *, work_dir: str | os.PathLike, timeout: float = 300.0,
               retries: int = 1, frame_budget: int = 0, **launcher_options: Any) -> Runner:
    """A :class:`runner.Runner` of ``jobs`` whose workers are Ray tasks (``launcher_options``:
    see :class:`RayLauncher`). Raises :class:`RayExecutorError` when Ray is not installed."""
    return Runner(jobs, work_dir=work_dir, timeout=timeout, retries=retries,
                  frame_budget=frame_budget, launcher=RayLauncher(**launcher_options))
