# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``ray`` executor on a local Ray cluster (2 CPUs, no GPU): the same dataset as the local
runner (files, frame lists, poses, intrinsics, pixels), progress events like a local run, the
shared-filesystem check, a Ray worker killed mid-task (retried, no frame rendered twice), and the
install hint when Ray is missing. Renders are tiny (32x24 px, 1 sample; 64x48 px at more samples
where a task must last long enough to be killed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, bpy_env, build_scenes
from dataset_forge.dataset.layout import JOURNAL as JOURNAL_NAME
from dataset_forge.engine.ledger import Job
from dataset_forge.engine.runner import Runner
from dataset_forge.sampling import sequence_id
from dataset_forge.settings import Settings
from PIL import Image

pytestmark = pytest.mark.render

SKIP_REASON = "Ray is not installed (optional extra: pip install -r requirements-ray.txt)"
SCENES = ("basic", "orbit")
RANGES = ((1, 3), (6, 8))  # two sequences of 3 frames per scene
TINY = dict(width=32, height=24, max_samples=1, use_denoising=False, threads=1, depths=True)
# basic: camera fixed at (0, 0, 10); orbit: camera at (0, -1 + 0.05 (f - 1), 8) (tests/scenes.py).
LENS = {"basic": 50.0, "orbit": 35.0}


def cam_position(scene: str, f: int) -> tuple[float, float, float]:
    return (0.0, 0.0, 10.0) if scene == "basic" else (0.0, -1.0 + 0.05 * (f - 1), 8.0)


@pytest.fixture(scope="module")
def ray_mod():
    return pytest.importorskip("ray", reason=SKIP_REASON)


@pytest.fixture(scope="module")
def cluster(ray_mod):
    """A local Ray cluster for this module: 2 CPUs, no GPU."""
    ray_mod.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 log_to_driver=False, object_store_memory=80 * 2**20)
    yield ray_mod
    ray_mod.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return build_scenes(tmp_path_factory.mktemp("ray_scenes"), list(SCENES))


def make_jobs(scenes: Path, datasets: Path, **options) -> list[Job]:
    settings = Settings.from_dict({**TINY, **options}).to_dict()
    return [Job(blend=str(scenes / f"{name}.blend"), scene_name=name, settings=settings,
                sequences=[{"id": sequence_id(1.0, a, b - a + 1),
                            "out_dir": str(datasets / "renders" / name / sequence_id(1.0, a, b - a + 1)),
                            "frame_start": a, "frame_end": b} for a, b in RANGES])
            for name in SCENES]


def dataset_files(datasets: Path) -> dict[str, int]:
    """Relative path -> size of everything under renders/ (journal and folders excluded)."""
    return {p.relative_to(datasets).as_posix(): p.stat().st_size
            for p in sorted((datasets / "renders").rglob("*"))
            if p.is_file() and p.name != JOURNAL_NAME}


def gone(pid: int, wait: float = 10.0) -> bool:
    """True once process ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    import time

    t0 = time.monotonic()
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X") or time.monotonic() - t0 > wait:
            return state in ("Z", "X")
        time.sleep(0.1)


def journal_counts(seq_dir: Path) -> Counter:
    return Counter(json.loads(line)["frame"]
                   for line in (seq_dir / JOURNAL_NAME).read_text().splitlines())


@pytest.fixture(scope="module")
def local_run(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("local_ds")
    events: list[dict] = []
    runner = Runner(make_jobs(scenes, out), work_dir=out / "logs", parallel=2)
    runner.run(on_event=events.append)
    return out, runner.summary(), events


@pytest.fixture(scope="module")
def ray_run(cluster, scenes, tmp_path_factory):
    from dataset_forge.engine.ray_executor import ray_runner

    out = tmp_path_factory.mktemp("ray_ds")
    events: list[dict] = []
    ex = ray_runner(make_jobs(scenes, out), work_dir=out / ".dataset_forge" / "logs",
                    num_cpus=1, num_gpus=0)
    ex.run(on_event=events.append)
    return out, ex.summary(), events


def test_ray_renders_the_same_files_as_local(ray_run, local_run):
    (lo, ls, _), (ro, rs, _) = local_run, ray_run
    assert ls["ok"] and rs["ok"], (ls["failed"], rs["failed"])
    assert set(ls) == set(rs) and ls["executor"] == "local" and ls["nodes"] == {}
    assert rs["executor"] == "ray" and list(rs["nodes"].values()) == [socket.gethostname()]
    lf, rf = dataset_files(lo), dataset_files(ro)
    assert sorted(lf) == sorted(rf)
    # 2 scenes x 2 sequences x 3 frames, each an RGB frame and a depth map (+ its preview).
    assert sum("/frames/frame_" in k for k in rf) == 12
    assert sum("/depths/depth_" in k for k in rf) == 12
    for rel in rf:
        if rel.endswith(".png"):  # frames and previews: same renderer, same seed, same pixels
            a = np.asarray(Image.open(lo / rel), dtype=np.int16)
            b = np.asarray(Image.open(ro / rel), dtype=np.int16)
            assert a.shape == b.shape == (24, 32, a.shape[2])
            assert np.abs(a - b).max() <= 1, rel


def test_ray_transforms_match_local_and_geometry(ray_run, local_run):
    (lo, _, _), (ro, _, _) = local_run, ray_run
    for name in SCENES:
        for a, b in RANGES:
            rel = Path("renders") / name / sequence_id(1.0, a, b - a + 1) / "transforms.json"
            lt, rt = json.loads((lo / rel).read_text()), json.loads((ro / rel).read_text())
            assert [f["frame"] for f in rt["frames"]] == [f["frame"] for f in lt["frames"]] == \
                list(range(a, b + 1))
            assert [f["file_path"] for f in rt["frames"]] == [f["file_path"] for f in lt["frames"]]
            for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
                assert rt[key] == pytest.approx(lt[key], abs=1e-9), key
            # Known geometry: 32 px over a 36 mm sensor; principal point at the image centre.
            assert rt["fl_x"] == pytest.approx(32 * LENS[name] / 36.0, rel=1e-6)
            assert (rt["cx"], rt["cy"], rt["w"], rt["h"]) == pytest.approx((16.0, 12.0, 32, 24))
            for fl, fr in zip(lt["frames"], rt["frames"]):
                np.testing.assert_allclose(fr["transform_matrix"], fl["transform_matrix"],
                                           atol=1e-9)
                t = np.asarray(fr["transform_matrix"])[:3, 3]
                np.testing.assert_allclose(t, cam_position(name, fr["frame"]), atol=1e-5)


def test_ray_events_stream_like_a_local_run(ray_run, local_run):
    (_, _, le), (_, rs, re_) = local_run, ray_run
    kinds = ("job_started", "frame_done", "job_done", "scene_opened", "scene_done", "worker_done")
    assert Counter(e["event"] for e in re_ if e["event"] in kinds) == \
        Counter(e["event"] for e in le if e["event"] in kinds)
    done = Counter((e["scene"], e["job"], e["frame"]) for e in re_ if e["event"] == "frame_done")
    assert len(done) == 12 and set(done.values()) == {1}
    started = [e for e in re_ if e["event"] == "task_started"]
    assert len(started) == 2 and all(e["host"] == socket.gethostname() for e in started)
    prog = [e for e in re_ if e["event"] == "progress"]
    assert [p["frames_done"] for p in prog] == sorted(p["frames_done"] for p in prog)
    assert prog[-1]["done"] and prog[-1]["fraction"] == 1.0 and prog[-1]["frames_done"] == 12
    assert rs["frames_rendered"] == 12 and rs["frames_total"] == 12


def test_shared_filesystem_probe(cluster, scenes, tmp_path):
    """Every node reads the driver's probe back; a scene no node can see is one clear error
    before anything renders."""
    from dataset_forge.engine.ray_executor import PROBE_PREFIX, RayExecutorError, RayLauncher, ray_runner

    ex = RayLauncher()
    ex.open(tmp_path / "logs", make_jobs(scenes, tmp_path))
    assert ex.nodes == {n["NodeID"]: socket.gethostname() for n in cluster.nodes() if n["Alive"]}
    probe = ex._probe_path
    assert probe.parent == tmp_path and probe.name.startswith(PROBE_PREFIX)
    assert not list(tmp_path.glob(f"{PROBE_PREFIX}*.*"))  # the nodes' answers were cleaned up

    jobs = make_jobs(scenes, tmp_path / "b")
    jobs[1].blend = str(scenes / "not_on_the_nodes.blend")
    bad = ray_runner(jobs, work_dir=tmp_path / "b" / "logs")
    with pytest.raises(RayExecutorError, match="not_on_the_nodes.blend.*same path"):
        bad.run()
    assert not list(tmp_path.glob(f"b/{PROBE_PREFIX}*"))  # run() removed its probe file
    assert not (tmp_path / "b" / "renders").exists()


def test_killed_ray_worker_is_retried_and_renders_no_frame_twice(cluster, scenes, tmp_path):
    """SIGKILL the Ray worker process of the orbit task after its first frame: Ray reports the
    task lost, the executor submits it again, the journal makes it render only the rest."""
    from dataset_forge.engine.ray_executor import ray_runner

    out = tmp_path / "ds"
    events: list[dict] = []
    pids: dict[int, int] = {}
    blender: dict[int, int] = {}
    killed: list[int] = []

    def on_event(e: dict) -> None:
        events.append(e)
        if e["event"] == "task_started" and e["scene"] == "orbit":
            pids[e["slot"]] = e["pid"]
        if e["event"] == "worker_started":
            blender[e["slot"]] = e["pid"]
        if e["event"] == "frame_done" and e["scene"] == "orbit" and not killed:
            killed.extend([e["frame"], blender[e["slot"]]])
            os.kill(pids[e["slot"]], signal.SIGKILL)

    # Slower frames (64x48, 64 samples) so that the orbit task is mid-sequence when killed.
    ex = ray_runner(make_jobs(scenes, out, width=64, height=48, max_samples=64, depths=False),
                    work_dir=out / ".dataset_forge" / "logs", retries=2)
    ex.run(on_event=on_event)
    s = ex.summary()
    assert killed and s["ok"], s["failed"]
    retries = [e for e in events if e["event"] == "retry"]
    assert [e["scene"] for e in retries] == ["orbit"] and "was lost" in retries[0]["reason"]
    assert s["scenes"]["orbit"]["attempts"] == 2 and s["scenes"]["basic"]["attempts"] == 1
    done = Counter((e["scene"], e["job"], e["frame"]) for e in events if e["event"] == "frame_done")
    assert max(done.values()) == 1  # no frame reported rendered twice
    assert s["frames_rendered"] + s["frames_skipped"] == s["frames_total"] == 12
    # Progress arrived during the run (frames of ~0.5 s), as in a local run.
    prog = [e["frames_done"] for e in events if e["event"] == "progress"]
    assert prog == sorted(prog) and len({p for p in prog if 0 < p < 12}) >= 3
    # The retry found the killed task's finished frame in the journal (counted once, above).
    skipped = [(e["scene"], e["frame"]) for e in events if e["event"] == "frame_skipped"]
    assert ("orbit", killed[0]) in skipped
    # The killed task's Blender died with it (it would otherwise render beside the retry).
    assert gone(killed[1])
    for name in SCENES:
        for a, b in RANGES:
            seq = out / "renders" / name / sequence_id(1.0, a, b - a + 1)
            # One journal line per frame: nothing was rendered to completion twice.
            assert journal_counts(seq) == Counter(range(a, b + 1))
            t = json.loads((seq / "transforms.json").read_text())
            assert [f["frame"] for f in t["frames"]] == list(range(a, b + 1))
            for f in t["frames"]:
                np.testing.assert_allclose(np.asarray(f["transform_matrix"])[:3, 3],
                                           cam_position(name, f["frame"]), atol=1e-5)
            assert len(list((seq / "frames").glob("frame_*.png"))) == 3


def test_cancel_stops_every_task_and_a_rerun_resumes(cluster, scenes, tmp_path):
    """The panel's Cancel, driven by poll(): the tasks and their Blenders stop; the same jobs run
    again render only the frames that were not journaled."""
    import time

    from dataset_forge.engine.ray_executor import ray_runner

    out = tmp_path / "ds"
    opts = dict(width=64, height=48, max_samples=64, depths=False)
    ex = ray_runner(make_jobs(scenes, out, **opts), work_dir=out / "logs1")
    ex.start()
    events: list[dict] = []
    t0 = time.monotonic()
    while not any(e["event"] == "frame_done" for e in events) and time.monotonic() - t0 < 120:
        events.extend(ex.poll())
        time.sleep(0.05)
    ex.cancel()
    events.extend(ex.poll())  # the tasks' last events
    ex.close()
    assert ex.done and ex.summary()["cancelled"] and not ex.summary()["ok"]
    blenders = [e["pid"] for e in events if e["event"] == "worker_started"]
    assert blenders
    assert all(gone(pid, wait=0) for pid in blenders)  # no Blender left rendering
    journaled = sum(len(journal_counts(p.parent)) for p in out.rglob(JOURNAL_NAME))
    assert 1 <= journaled < 12
    again = ray_runner(make_jobs(scenes, out, **opts), work_dir=out / "logs2")
    again.run()
    s = again.summary()
    assert s["ok"] and s["frames_skipped"] == journaled and s["frames_rendered"] == 12 - journaled


def test_silent_worker_times_out_and_is_retried(cluster, scenes, tmp_path):
    """A frozen Blender (SIGSTOP) sends nothing, not even heartbeats: after ``timeout`` s the
    task is cancelled (its Blender killed) and retried; the dataset completes."""
    from dataset_forge.engine.ray_executor import ray_runner

    out = tmp_path / "ds"
    events: list[dict] = []
    stopped: list[int] = []

    def on_event(e: dict) -> None:
        events.append(e)
        if e["event"] == "frame_done" and e["scene"] == "orbit" and not stopped:
            pid = next(x["pid"] for x in reversed(events)
                       if x["event"] == "worker_started" and x["slot"] == e["slot"])
            stopped.append(pid)
            os.kill(pid, signal.SIGSTOP)

    jobs = [j for j in make_jobs(scenes, out, width=64, height=48, max_samples=64, depths=False,
                                 timeout=4.0) if j.scene_name == "orbit"]
    ex = ray_runner(jobs, work_dir=out / "logs", timeout=4.0, retries=1)
    ex.run(on_event=on_event)
    s = ex.summary()
    assert stopped and s["ok"] and s["scenes"]["orbit"]["attempts"] == 2, s
    assert [e["scene"] for e in events if e["event"] == "worker_timeout"] == ["orbit"]
    assert "silent" in next(e for e in events if e["event"] == "retry")["reason"]
    assert gone(stopped[0], wait=0)
    for a, b in RANGES:
        seq = out / "renders" / "orbit" / sequence_id(1.0, a, b - a + 1)
        assert journal_counts(seq) == Counter(range(a, b + 1))


def test_missing_ray_says_how_to_install():
    """Runs without Ray too: a Python where ``import ray`` fails gets the install line."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from dataset_forge.engine.ray_executor import RayExecutorError, ray_runner\n"
            "try:\n    ray_runner([], work_dir='/nonexistent')\n"
            "except RayExecutorError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=bpy_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pip install -r requirements-ray.txt" in proc.stdout
    assert "ray==" in proc.stdout and "not installed" in proc.stdout


NODE_DEATH = r'''
import json, sys
import ray
from ray.cluster_utils import Cluster
from dataset_forge.engine.ledger import Job
from dataset_forge.engine.ray_executor import ray_runner

blend, out, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mem = 80 * 2**20
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                        "object_store_memory": mem})
workers = {n.node_id: n for n in (cluster.add_node(num_cpus=1, object_store_memory=mem)
                                  for _ in range(2))}
ray.init(address=cluster.address, log_to_driver=False)
cluster.wait_for_nodes()
events, state = [], {}

def on_event(e):
    events.append(e)
    if e["event"] == "task_started":
        state["node"] = e["node"]
    if e["event"] == "frame_done" and "killed" not in state:  # the node dies mid-task
        state["killed"] = state["node"]
        cluster.remove_node(workers[state["node"]], allow_graceful=False)

seqs = [{"id": f"seq{a}", "out_dir": f"{out}/renders/orbit/seq{a}", "frame_start": a,
         "frame_end": a + 2} for a in (1, 6)]
ex = ray_runner([Job(blend=blend, scene_name="orbit", sequences=seqs, settings=settings)],
                work_dir=f"{out}/logs", retries=2)
ex.run(on_event=on_event)
print("RESULT " + json.dumps({"summary": ex.summary(), "events": events, "killed": state["killed"],
                              "workers": list(workers)}))
ray.shutdown()
cluster.shutdown()
'''


def test_task_lost_with_its_node_resumes_on_another_node(ray_mod, scenes, tmp_path):
    """Two 1-CPU worker nodes (+ a head without CPUs); the node running the orbit task dies after
    the first frame: the task is retried on the other node and renders only what is missing."""
    out = tmp_path / "ds"
    settings = Settings.from_dict({**TINY, "width": 64, "height": 48, "max_samples": 64,
                                   "depths": False}).to_dict()
    proc = subprocess.run([sys.executable, "-c", NODE_DEATH, str(scenes / "orbit.blend"), str(out),
                           json.dumps(settings)], capture_output=True, text=True, env=bpy_env(),
                          timeout=240)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[0][len("RESULT "):])
    s, events = r["summary"], r["events"]
    assert s["ok"] and s["scenes"]["orbit"]["attempts"] == 2, s
    started = [e["node"] for e in events if e["event"] == "task_started"]
    assert started[0] == r["killed"] and started[1] != r["killed"] and started[1] in r["workers"]
    retry = [e for e in events if e["event"] == "retry"]
    assert len(retry) == 1 and "NodeDiedError" in retry[0]["reason"]
    done = Counter((e["job"], e["frame"]) for e in events if e["event"] == "frame_done")
    assert max(done.values()) == 1 and s["frames_rendered"] + s["frames_skipped"] == 6
    for a in (1, 6):
        seq = out / "renders" / "orbit" / f"seq{a}"
        assert journal_counts(seq) == Counter(range(a, a + 3))  # each frame rendered once
        t = json.loads((seq / "transforms.json").read_text())
        assert [f["frame"] for f in t["frames"]] == [a, a + 1, a + 2]


def test_cli_create_datasets_on_ray_with_a_blender_executable(cluster, scenes, tmp_path, capsys):
    """``create-datasets --executor ray``: the plan, the manifest and the summary of a local run;
    the workers run through a Blender executable (tools/blender, the stand-in)."""
    from dataset_forge import cli

    out = tmp_path / "ds"
    blender = tmp_path / "blender"  # logs how it was called, then is the stand-in
    blender.write_text(f'#!/bin/bash\necho "$1 ${{@: -1}}" >> {tmp_path / "calls.txt"}\n'
                       f'exec {REPO / "tools" / "blender"} "$@"\n')
    blender.chmod(0o755)
    rc = cli.main(["create-datasets", "--scenes-dir", str(scenes), "--datasets-dir", str(out),
                   "--sequences-per-scene", "2", "--num-frames", "3", "--width", "32",
                   "--height", "24", "--max-samples", "1", "--no-use-denoising", "--threads", "1",
                   "--executable", str(blender), "--json",
                   "--executor", "ray", "--ray-address", "auto", "--ray-num-cpus", "1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err[-3000:]
    s = json.loads(cap.out)
    assert s["ok"] and s["executor"] == "ray" and s["frames_rendered"] == 12
    assert list(s["nodes"].values()) == [socket.gethostname()]
    m = json.loads((out / "manifest.json").read_text())
    assert m["totals"]["sequences_complete"] == 4 and m["totals"]["frames_complete"] == 12
    for sc in m["scenes"]:
        for q in sc["sequences"]:
            t = json.loads((out / q["path"] / "transforms.json").read_text())
            frames = list(range(q["frame_start"], q["frame_end"] + 1))
            assert [f["frame"] for f in t["frames"]] == frames and len(frames) == 3
            assert t["fl_x"] == pytest.approx(32 * LENS[sc["name"]] / 36.0, rel=1e-6)
            for f in t["frames"]:
                np.testing.assert_allclose(np.asarray(f["transform_matrix"])[:3, 3],
                                           cam_position(sc["name"], f["frame"]), atol=1e-5)
    # One Ray task per scene, each ran the worker through the executable, in the background.
    calls = [c for c in (tmp_path / "calls.txt").read_text().splitlines() if "/job-" in c]
    assert len(calls) == 2 and all(c.startswith("--background") for c in calls)
    logs = sorted(out.glob(".dataset_forge/logs/*/worker-*.log"))
    assert len(logs) == 2 and all(p.read_text().startswith("# node ") for p in logs)


def test_cli_without_ray_prints_the_install_line(scenes, tmp_path):
    """Runs without Ray too: ``--executor ray`` where Ray is missing fails at once, one line."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from dataset_forge import cli\n"
            f"sys.exit(cli.main(['create-datasets', '--scenes-dir', {str(scenes)!r}, "
            f"'--datasets-dir', {str(tmp_path / 'ds')!r}, '--executor', 'ray']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=bpy_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "pip install -r requirements-ray.txt" in proc.stderr
    assert not (tmp_path / "ds" / "renders").exists()
