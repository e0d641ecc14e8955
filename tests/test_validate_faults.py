# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault matrix: seven analytic scenes (tests/validate_scenes.py, each written once) times
seventeen planted faults. Every fault must be caught on every scene where it is observable, by
a check that can see it; the pairs where it is not observable are listed with the reason (and
must then validate clean: nothing there to see); every clean scene validates clean, never
assuming a static world. Run with ``-s`` to print the matrix."""

from __future__ import annotations

import multiprocessing
import os
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


class Cases:
    """The matrix case by case, each validated in the test that asserts it: the clean scenes
    written once per process (under ``root / "clean"``; the faults planted in hard-linked copies
    under ``root / "faults"``), and whether each validated ok written to ``shared`` (the base
    folder both test processes share) for :func:`test_fault_matrix_table`."""

    def __init__(self, root: Path, shared: Path):
        self.root, self.shared = root, shared
        self.written: dict[str, Path] = {}

    def clean(self, scene: str) -> Path:
        if scene not in self.written:
            self.written[scene] = vs.write_scene(vs.scenes()[scene], self.root / "clean" / scene)
        return self.written[scene]

    def clean_report(self, scene: str) -> dict:
        return validate(self.clean(scene), write=False)["sequences"][0]

    def report(self, scene: str, fault: str) -> dict:
        s = _planted_report((self.clean(scene), fault, self.root / "faults" / f"{scene}-{fault}"))
        tmp = self.shared / f".{scene}-{fault}.{os.getpid()}"
        tmp.write_text("ok" if s["ok"] else "failed", encoding="utf-8")
        os.replace(tmp, self.shared / f"{scene}-{fault}")
        return s

    def ok(self, scene: str, fault: str) -> bool:
        """Whether the case validated ok (as a test of this run found it, else validated here)."""
        p = self.shared / f"{scene}-{fault}"
        return p.read_text(encoding="utf-8") == "ok" if p.is_file() else self.report(scene, fault)["ok"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Cases:
    shared = tmp_path_factory.getbasetemp() / "fault_matrix_ok"
    shared.mkdir(exist_ok=True)
    return Cases(tmp_path_factory.mktemp("fault_matrix"), shared)


def lane_group(item: pytest.Item) -> str:
    """tests/lane_split.py: the processes take this module scene by scene (each scene's clean
    and fault cases together: one written scene), the table after every other module."""
    spec = getattr(item, "callspec", None)
    return "last" if spec is None else spec.params["scene"]


LANE_LAST = ("last",)


@pytest.mark.parametrize("scene", SCENES)
def test_every_clean_scene_validates_clean(cases, scene):
    s = cases.clean_report(scene)
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
def test_fault_is_caught_where_observable(cases, scene, fault):
    s = cases.report(scene, fault)
    if not caught_where_observable(s, scene, fault, UNOBSERVABLE):
        return
    if scene == "instances" and EXPECT[fault] == FLOW:  # on the instances themselves, not only the ground
        assert {f"Rock#{100 + j}" for j in range(6)} <= set(s["checks"]["flow_rigid"]["failed_things"])


def test_fault_matrix_table(cases, capsys):
    """The matrix as text (caught: a check failed; n/o: not observable, with the reason)."""
    matrix = {(s, f): {"ok": cases.ok(s, f)} for s in SCENES for f in FAULTS}
    print_matrix(matrix, SCENES, UNOBSERVABLE, capsys, col=14)
