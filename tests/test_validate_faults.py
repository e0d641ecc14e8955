# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault matrix: seven analytic scenes (tests/validate_scenes.py, each written once) times
seventeen planted faults. Every fault must be caught on every scene where it is observable, by
a check that can see it; the pairs where it is not observable are listed with the reason (and
must then validate clean: nothing there to see); every clean scene validates clean, never
assuming a static world. Run with ``-s`` to print the matrix."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import validate_scenes as vs
from dataset_forge.dataset.validate import validate

SCENES = list(vs.scenes())
FAULTS = list(vs.FAULTS)

_STILL = "the camera does not move: the neighbour's pose is the same pose"
UNOBSERVABLE: dict[tuple[str, str], str] = {
    ("static_camera", "pose_from_neighbour"): _STILL,
    ("empty_world", "pose_from_neighbour"): _STILL,
    ("deforming", "pose_from_neighbour"): _STILL,
    **{(s, "cut_not_marked"): "no camera cut in this scene: nothing is marked invalid"
       for s in SCENES if s != "camera_cut"},
}

# the checks that can see each fault (one of them must fail)
FLOW = {"flow_rigid", "flow_cycle"}
EXPECT: dict[str, set[str]] = {
    **{f: FLOW for f in ("flip_forward_u", "flip_forward_v", "flip_backward_u", "flip_backward_v",
                         "swap_forward_backward", "swap_u_v")},
    "fl_x_x1.02": {"intrinsics"}, "fl_y_x1.02": {"intrinsics"}, "cx_+1px": {"intrinsics"},
    "pose_from_neighbour": {"objects", "flow_rigid"},
    "distance_labelled_planar": {"normals", "intrinsics", "flow_rigid", "objects"},
    "planar_labelled_distance": {"normals", "intrinsics", "flow_rigid", "objects"},
    "normal_frame_mislabelled": {"normals"},
    "id_changed_in_one_frame": {"objects", "segmentation_ids"},
    "truncated_exr": {"files"}, "missing_frame": {"files"},
    "cut_not_marked": {"camera_cuts"},
}


def caught_where_observable(s: dict, scene: str, fault: str,
                            unobservable: dict[tuple[str, str], str]) -> bool:
    """Assert that validation report ``s`` of ``fault`` planted in ``scene`` passed where the fault
    cannot be seen there, else failed in one of the checks that can see it. Returns whether the
    fault was observable (the caller may check more then)."""
    if (scene, fault) in unobservable:
        assert s["ok"], (unobservable[scene, fault], s["failed"])
        return False
    assert not s["ok"], f"{fault} on {scene} not caught: {s['checks']}"
    assert EXPECT[fault] & set(s["failed"]), (fault, s["failed"])
    return True


def print_matrix(matrix: dict, scenes, unobservable: dict[tuple[str, str], str], capsys,
                 col: int) -> None:
    """Print the fault matrix (caught / n/o: not observable, with the reasons) and assert that
    no observable fault was missed."""
    faults = list(vs.FAULTS)
    width = max(map(len, faults))
    lines = [" " * width + "  " + "  ".join(f"{s[:col]:<{col}}" for s in scenes)]
    for f in faults:
        cells = []
        for s in scenes:
            cell = "n/o" if (s, f) in unobservable else ("caught" if not matrix[s, f]["ok"] else "MISSED")
            cells.append(f"{cell:<{col}}")
        lines.append(f"{f:<{width}}  " + "  ".join(cells))
    lines += [f"n/o {s} x {f}: {why}" for (s, f), why in sorted(unobservable.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not any("MISSED" in line for line in lines)


def _planted_report(job: tuple[Path, str, Path]) -> dict:
    clean, fault, dest = job
    return validate(vs.planted(clean, fault, dest, link=True), write=False)["sequences"][0]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _quiet() -> None:
    """Worker initializer: the EXR library's complaints about the planted truncations go nowhere
    (a worker started in the background is outside pytest's capture; reports and exceptions
    come back through the futures), and the worker yields the CPU to the test process and the
    processes its tests start (the lowest priority)."""
    if hasattr(os, "nice"):
        os.nice(19)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def _forked_pool(workers: int) -> ProcessPoolExecutor | None:
    if workers < 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_quiet)


def fault_matrix(clean: dict[str, Path], root: Path) -> dict[tuple[str, str], dict]:
    """Every fault planted in a copy of every clean sequence and validated once: ``{(scene, fault):
    the sequence's report}``. The cases are independent: they run on every core (forked workers;
    here where fork is missing)."""
    pool = _forked_pool(_cores()) if _cores() >= 2 else None
    if pool is None:
        return {(s, f): _planted_report((clean[s], f, root / f"{s}-{f}")) for s in clean for f in vs.FAULTS}
    keys = [(s, f) for s in clean for f in vs.FAULTS]
    with pool:
        return dict(zip(keys, pool.map(_planted_report, [(clean[s], f, root / f"{s}-{f}")
                                                         for s, f in keys], chunksize=4)))


def scene_reports(name: str, root: Path) -> tuple[dict, dict[str, dict]]:
    """Scene ``name`` of ``validate_scenes`` written under ``root / "clean"`` and validated, then
    every fault planted in a copy under ``root / "faults"`` and validated: ``(the clean
    sequence's report, {fault: the planted copy's report})``."""
    clean = vs.write_scene(vs.scenes()[name], root / "clean" / name)
    report = validate(clean, write=False)["sequences"][0]
    return report, {f: _planted_report((clean, f, root / "faults" / f"{name}-{f}")) for f in vs.FAULTS}


# The analytic matrix is started in the background when this module's tests are selected
# (conftest's ``pytest_collection_finish`` calls ``start_background``): one job per scene on the
# cores the test process leaves free, while the tests of the modules before this one run.
_BACKGROUND: dict = {}


def start_background(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Submit :func:`scene_reports` of every scene to ``cores - 1`` forked workers when a selected
    test (of ``items``) uses the matrix; the fixture below picks the results up. Nothing starts
    on one core or without fork."""
    if not any("reports" in item.fixturenames for item in items):
        return
    pool = _forked_pool(_cores() - 1)
    if pool is None:
        return
    root = Path(tempfile.mkdtemp(prefix="df-fault-matrix-"))
    _BACKGROUND["futures"] = {name: pool.submit(scene_reports, name, root) for name in SCENES}

    def stop() -> None:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(root, ignore_errors=True)
    config.add_cleanup(stop)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, tuple[dict, dict[str, dict]]]:
    """``{scene: (clean report, {fault: report})}``, from the background or computed here. The
    scenes the background worker has not started yet are taken back, last first, and computed
    here beside it (it runs at the lowest priority: on a busy machine it may have done few).
    Without a background (the lane in two processes, tests/lane_split.py: the other process
    has the other core), all here."""
    root = tmp_path_factory.mktemp("fault_matrix")
    futures = _BACKGROUND.get("futures")
    if futures is None:
        return {name: scene_reports(name, root) for name in SCENES}
    here = {}
    for name in reversed(list(futures)):
        if not futures[name].cancel():  # started (or queued to its process): the worker does it
            break
        here[name] = scene_reports(name, root)
    return {name: here[name] if name in here else fut.result() for name, fut in futures.items()}


@pytest.fixture(scope="module")
def matrix(reports) -> dict[tuple[str, str], dict]:
    return {(s, f): r for s, (_, faults) in reports.items() for f, r in faults.items()}


@pytest.mark.parametrize("scene", SCENES)
def test_every_clean_scene_validates_clean(reports, scene):
    s = reports[scene][0]
    assert s["ok"] and s["failed"] == [], s["checks"]
    c = s["checks"]
    assert c["flow_rigid"]["ok"] is True and c["flow_rigid"]["worst_px"] < 1e-3
    if scene == "deforming":  # bilinear sampling of the other frame's flow: 0.0002 px here
        assert c["flow_cycle"]["ok"] is True and c["flow_cycle"]["worst_px"] < 0.01
    assert c["intrinsics"]["ok"] is True and c["normals"]["median_deg"] < 0.05
    assert c["objects"]["ok"] is True and c["objects"]["instance_image"] is True
    if scene == "deforming":  # the blob is not judged as rigid, and says so
        assert c["flow_rigid"]["not_checked"] == {"Blob#2": "deforms: checked by flow_cycle only"}
    if scene == "camera_cut":
        assert c["camera_cuts"]["invalid_directions"] == ["3->4 forward", "4->3 backward"]
    if scene == "instances":
        assert {f"Rock#{100 + j}" for j in range(6)} <= set(c["flow_rigid"]["things"])


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("scene", SCENES)
def test_fault_is_caught_where_observable(matrix, scene, fault):
    s = matrix[scene, fault]
    if not caught_where_observable(s, scene, fault, UNOBSERVABLE):
        return
    if scene == "instances" and EXPECT[fault] == FLOW:  # on the instances themselves, not only the ground
        assert {f"Rock#{100 + j}" for j in range(6)} <= set(s["checks"]["flow_rigid"]["failed_things"])


def test_fault_matrix_table(matrix, capsys):
    """The matrix as text (caught: a check failed; n/o: not observable, with the reason)."""
    print_matrix(matrix, SCENES, UNOBSERVABLE, capsys, col=14)
