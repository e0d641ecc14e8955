# SPDX-License-Identifier: GPL-3.0-or-later
"""Analytic test scenes for validate: boxes ray-cast with numpy, written exactly as the
ground-truth contract says (transforms.json with per-frame cameras and flow validity,
depth/normal/flow/segmentation EXRs with an instance channel, segmentation_ids.json,
objects.json), and the faults the fault-matrix test plants into copies of them.

A scene is a camera path (one or two cameras: a cut) and boxes; each box has an
``object_to_world`` per frame and, when it deforms, a per-axis scale of its geometry per frame
(the object pose then stays put, as for an armature or shape keys). Every pixel is ray-cast at its
centre, so depth, normals, ids and flow are exact (no sample-averaged silhouettes).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dataset_forge.dataset import exr, layout
from dataset_forge.dataset.camera import Intrinsics
from dataset_forge.dataset.documents.objects import SCHEMA_V1
from dataset_forge.dataset.documents.objects_files import upgrade_v1
from dataset_forge.dataset.transforms import build_transforms, write_json_atomic
from PIL import Image

W, H = 80, 60
K = Intrinsics(fl_x=65.0, fl_y=62.5, cx=39.5, cy=30.5, w=W, h=H)
FRAMES = 4  # a camera cut between frames 3 and 4 in camera_cut
INSTANCE_CHANNEL = layout.SEGMENTATION_INSTANCE_CHANNEL


def conventions(instance_channel: str | None = INSTANCE_CHANNEL) -> dict:
    """``transforms.json`` conventions of a synthetic sequence with every kind (planar depth,
    camera normals); the segmentation names ``instance_channel`` unless it is None."""
    def pattern(kind: str) -> str:
        return layout.pattern(layout.gt_file(kind, 0))

    seg = {"file": pattern("segmentation"), "channel": layout.SEGMENTATION_OBJECT_CHANNEL,
           "ids_file": layout.IDS_FILE, "background": 0}
    if instance_channel is not None:
        seg["instance_channel"] = instance_channel
    return {
        "depth": {"file": pattern("depth"), "channel": "V", "type": "planar", "units": "scene units",
                  "unit_scale_m": 1.0, "invalid_value": 0.0, "valid_if": "depth > 0"},
        "normal": {"file": pattern("normal"), "channels": ["X", "Y", "Z"], "frame": "camera",
                   "axes": "x right, y up, z towards the viewer"},
        "flow": {"file": pattern("flow"), "channels": dict(zip(layout.FLOW_KEYS, "RGBA")),
                 "units": "pixels", "axes": "u right, v down"},
        "segmentation": seg,
    }


CONVENTIONS = conventions()


def rot(axis: str, deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    R = np.eye(4)
    R[i, i] = R[j, j] = c
    R[i, j], R[j, i] = -s, s
    return R


def trans(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world (Blender axes: looks down -z, y up) at ``eye`` looking at ``target``."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    f = target - eye
    f /= np.linalg.norm(f)
    x = np.cross(f, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, -f, eye
    return T


@dataclass
class Box:
    """An axis-aligned box ``[-half, half]`` in object space."""

    name: str
    object_id: int
    instance_id: int
    half: tuple[float, float, float]
    pose: Callable[[float], np.ndarray]
    deform: Callable[[float], np.ndarray] | None = None  # per-axis geometry scale at frame k
    category: str = "thing"
    chain: list[str] = field(default_factory=list)

    def scale(self, k: float) -> np.ndarray:
        return np.ones(3) if self.deform is None else np.asarray(self.deform(k), float)


@dataclass
class Scene:
    name: str
    boxes: list[Box]
    camera: Callable[[float], tuple[str, np.ndarray]]  # frame -> (camera name, camera-to-world)
    frames: int = FRAMES


def _cast(scene: Scene, k: int):
    """Ray-cast frame ``k``: planar depth, world normals, object ids, instance ids, box index and
    world hit points (each ``(H, W[, 3])``)."""
    _, C = scene.camera(k)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    d_cam = np.stack([(u - K.cx) / K.fl_x, -(v - K.cy) / K.fl_y, -np.ones_like(u)], axis=-1)
    d = d_cam @ C[:3, :3].T
    o = C[:3, 3]
    best = np.full((H, W), np.inf)
    normal = np.zeros((H, W, 3))
    which = np.full((H, W), -1)
    for b_i, b in enumerate(scene.boxes):
        M = b.pose(k)
        inv = np.linalg.inv(M)
        oo = inv[:3, :3] @ o + inv[:3, 3]
        dd = d @ inv[:3, :3].T
        half = np.asarray(b.half) * b.scale(k)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - oo) / dd
            t2 = (half - oo) / dd
        tmin = np.minimum(t1, t2)
        tmax = np.maximum(t1, t2)
        tn = np.nanmax(tmin, axis=-1)
        tf = np.nanmin(tmax, axis=-1)
        hit = (tn <= tf) & (tn > 1e-6) & (tn < best)
        axis = np.nanargmax(tmin, axis=-1)
        n_obj = np.zeros((H, W, 3))
        sign = -np.sign(np.take_along_axis(dd, axis[..., None], -1)[..., 0])
        np.put_along_axis(n_obj, axis[..., None], sign[..., None], -1)
        n_w = n_obj @ inv[:3, :3]  # inverse-transpose for normals
        n_w /= np.linalg.norm(n_w, axis=-1, keepdims=True)
        best = np.where(hit, tn, best)
        normal[hit] = n_w[hit]
        which[hit] = b_i
    cov = which >= 0
    depth = np.where(cov, best, 0.0)  # d_cam has z = -1: the ray parameter is the planar depth
    X = o + depth[..., None] * d
    ids = np.zeros((H, W))
    inst = np.zeros((H, W))
    for b_i, b in enumerate(scene.boxes):
        ids[which == b_i] = b.object_id
        inst[which == b_i] = b.instance_id
    normal[~cov] = 0
    return depth, normal, ids, inst, which, X


def _project(C: np.ndarray, X: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(C)
    c = X @ inv[:3, :3].T + inv[:3, 3]
    x, y, z = c[..., 0], -c[..., 1], -c[..., 2]
    return np.stack([K.fl_x * x / z + K.cx, K.fl_y * y / z + K.cy], axis=-1)


def _flow(scene: Scene, k: int, which: np.ndarray, X: np.ndarray, dk: int) -> np.ndarray:
    """Where each hit point is at frame ``k + dk``, seen by that frame's camera, minus the pixel."""
    v, u = np.mgrid[0:H, 0:W] + 0.5
    Xn = X.copy()
    for b_i, b in enumerate(scene.boxes):
        m = which == b_i
        if not m.any():
            continue
        M0, M1 = b.pose(k), b.pose(k + dk)
        inv0 = np.linalg.inv(M0)
        Xo = X[m] @ inv0[:3, :3].T + inv0[:3, 3]
        Xo = Xo / b.scale(k) * b.scale(k + dk)
        Xn[m] = Xo @ M1[:3, :3].T + M1[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):  # background rays hit nothing
        flow = _project(scene.camera(k + dk)[1], Xn) - np.stack([u, v], axis=-1)
    flow[which < 0] = 0.0
    return flow


def _corners(b: Box, k: int) -> np.ndarray:
    half = np.asarray(b.half) * b.scale(k)
    c = np.array([[half[0] if i & 1 else -half[0], half[1] if i & 2 else -half[1],
                   half[2] if i & 4 else -half[2]] for i in range(8)])
    M = b.pose(k)
    return c @ M[:3, :3].T + M[:3, 3]


def write_scene(scene: Scene, root: Path, objects_schema: int = 2) -> Path:
    """Write the scene as a sequence folder ``root`` (frames 1..N); returns ``root``. The objects
    as records of every instance (schema 2), or a 0.1.x ``objects.json`` (``objects_schema=1``)."""
    root.mkdir(parents=True, exist_ok=True)
    metas, obj_frames = [], []
    for k in range(1, scene.frames + 1):
        cam_name, C = scene.camera(k)
        depth, normal_w, ids, inst, which, X = _cast(scene, k)
        fwd, bwd = _flow(scene, k, which, X, 1), _flow(scene, k, which, X, -1)
        n_cam = normal_w @ C[:3, :3]  # world -> Blender camera axes
        tag = f"{k:06d}"
        rgb = np.zeros((H, W, 3), np.uint8)
        colour = np.stack([ids * 70 % 255, ids * 40 % 255, inst * 13 % 255], -1).astype(np.uint8)
        rgb[which >= 0] = colour[which >= 0]
        (root / "frames").mkdir(exist_ok=True)
        Image.fromarray(rgb).save(root / "frames" / f"frame_{tag}.png")
        exr.write_channels(root / "depths" / f"depth_{tag}.exr", {"V": depth.astype(np.float32)})
        exr.write_channels(root / "normals" / f"normal_{tag}.exr",
                           {c: n_cam[..., i].astype(np.float32) for i, c in enumerate("XYZ")})
        exr.write_channels(root / "flows" / f"flow_{tag}.exr",
                           {"R": fwd[..., 0], "G": fwd[..., 1], "B": bwd[..., 0], "A": bwd[..., 1]})
        exr.write_channels(root / "segmentations" / f"segmentation_{tag}.exr",
                           {"V": ids.astype(np.float32), INSTANCE_CHANNEL: inst.astype(np.float32)})
        m = {"file_path": f"frames/frame_{tag}.png", "transform_matrix": C.tolist(), "frame": k,
             "time": (k - 1) / 24, "camera": cam_name,
             "depth_file_path": f"depths/depth_{tag}.exr", "normal_file_path": f"normals/normal_{tag}.exr",
             "flow_file_path": f"flows/flow_{tag}.exr",
             "segmentation_file_path": f"segmentations/segmentation_{tag}.exr"}
        if scene.camera(k + 1)[0] != cam_name:
            m["flow_forward_valid"] = False
        if scene.camera(k - 1)[0] != cam_name:
            m["flow_backward_valid"] = False
        metas.append(m)
        insts = []
        for b_i, b in enumerate(scene.boxes):
            M = b.pose(k)
            corners = _corners(b, k)
            px = _project(C, corners)
            x0, y0 = np.clip(px.min(0), 0, [W, H])
            x1, y1 = np.clip(px.max(0), 0, [W, H])
            rows, cols = np.nonzero(which == b_i)
            vis = [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                   int(rows.max() - rows.min() + 1)] if rows.size else [0, 0, 0, 0]
            insts.append({"instance_id": b.instance_id, "object_to_world": M.tolist(),
                          "object_to_camera": (np.linalg.inv(C @ np.diag([1.0, -1, -1, 1])) @ M).tolist(),
                          "bbox_3d": corners.tolist(), "bbox_obj": [float(x0), float(y0), float(x1 - x0),
                                                                     float(y1 - y0)],
                          "bbox_visib": vis, "px_count_visib": int(rows.size)})
        obj_frames.append({"frame": k, "camera": cam_name, "instances": insts})
    doc = build_transforms(intrinsics=K, channels=3, frames=metas, frame_rate=24.0, keyframe_multiplier=1.0,
                           frame_start=1, frame_end=scene.frames, scene=scene.name,
                           blend_file=f"{scene.name}.blend", sequence_id=root.name, blender_version="none",
                           dataset_forge_version="test", camera=scene.camera(1)[0], conventions=CONVENTIONS)
    write_json_atomic(root / "transforms.json", doc)
    (root / "info.json").write_text(json.dumps({"num_frames": scene.frames}))
    names = {}
    for b in scene.boxes:
        names[str(b.object_id)] = {"name": b.name, "collection": "Things", "class": b.category}
    (root / "segmentation_ids.json").write_text(json.dumps({"background": 0, "ids": names}))
    v1 = {
        "schema": SCHEMA_V1,
        "instances": [{"instance_id": b.instance_id, "object_id": b.object_id, "object": b.name,
                       "instancer_chain": b.chain, "category": b.category, "deforming": b.deform is not None}
                      for b in scene.boxes],
        "frames": obj_frames}
    if objects_schema == 1:
        write_json_atomic(root / "objects.json", v1)
    else:
        upgrade_v1(root, v1, "all")
    return root


# --- the scenes ---------------------------------------------------------------------------------

def _ground(iid: int = 1) -> Box:
    return Box("Ground", 1, iid, (6.0, 6.0, 0.05), lambda k: trans(0, 0, -0.05), category="ground")


def _still(eye=(4.0, -5.0, 3.0), target=(0.0, 0.0, 0.4)):
    C = look_at(eye, target)
    return lambda k: ("Camera", C)


def _mover(object_id=2, iid=2, name="Cube", start=(-0.6, -0.3, 0.5), step=(0.12, 0.05, 0.04),
           spin=6.0) -> Box:
    s = np.asarray(start)
    st = np.asarray(step)
    return Box(name, object_id, iid, (0.35, 0.3, 0.4),
               lambda k: trans(*(s + st * k)) @ rot("z", 20 + spin * k) @ rot("x", 10))


def _static_box(object_id=3, iid=3) -> Box:
    return Box("Crate", object_id, iid, (0.4, 0.5, 0.35), lambda k: trans(1.0, 0.8, 0.35) @ rot("z", 35))


def _rock(j: int) -> Box:
    """Instance ``j`` of one object "Rock" scattered by "Scatter"; the odd ones move and turn."""
    moving = j % 2 == 1

    def pose(k):
        return (trans(-1.4 + 0.7 * (j % 3), -0.9 + 1.2 * (j // 3) + (0.06 * k if moving else 0),
                      0.2 + (0.03 * k if j == 3 else 0)) @ rot("z", 20 * j + (4 * k if moving else 0)))
    return Box("Rock", 2, 100 + j, (0.3, 0.25, 0.3), pose, category="rock", chain=["Scatter"])


def scenes() -> dict[str, Scene]:
    """The seven scenes of the fault matrix, by name."""
    out = {}
    out["static_camera"] = Scene("static_camera", [_ground(), _mover(), _static_box()], _still())
    out["moving_camera"] = Scene("moving_camera", [_ground(), _static_box(), Box(
        "Pillar", 2, 2, (0.3, 0.3, 0.6), lambda k: trans(-0.8, 0.2, 0.6) @ rot("z", 15))],
        lambda k: ("Camera", look_at((4.0 - 0.15 * k, -5.0 + 0.1 * k, 3.0 + 0.05 * k), (0.1 * k, 0, 0.4))))
    out["orbit"] = Scene("orbit", [_ground(), _static_box(), Box(
        "Pillar", 2, 2, (0.3, 0.3, 0.6), lambda k: trans(-0.8, 0.2, 0.6) @ rot("z", 15))],
        lambda k: ("Camera", look_at((6.0 * np.cos(np.radians(-50 + 4 * k)),
                                      6.0 * np.sin(np.radians(-50 + 4 * k)), 3.5), (0, 0, 0.4))))
    out["empty_world"] = Scene("empty_world", [Box(
        "Cube", 1, 7, (0.5, 0.4, 0.45), lambda k: trans(-0.3 + 0.1 * k, 0.05 * k, 0.3 + 0.03 * k)
        @ rot("z", 25 + 5 * k) @ rot("x", 20))], _still((3.0, -3.5, 2.0), (0.0, 0.0, 0.4)))
    out["deforming"] = Scene("deforming", [_ground(), _static_box(), Box(
        "Blob", 2, 2, (0.4, 0.35, 0.4), lambda k: trans(-0.5, -0.4, 0.6) @ rot("z", 30),
        deform=lambda k: (1.0 + 0.06 * k * k, 1.0 - 0.04 * k, 1.0 + 0.08 * k), category="blob")], _still())
    rocks = [_rock(j) for j in range(6)]
    out["instances"] = Scene("instances", [_ground(), *rocks],
                             lambda k: ("Camera", look_at((-0.7 - 0.08 * k, -3.5, 3.5), (-0.7, -0.2, 0.1))))
    cam_b = look_at((-4.5, -4.0, 2.5), (0.0, 0.0, 0.4))

    def cut(k):
        if k <= 3:
            return "CamA", look_at((4.0 - 0.12 * k, -5.0, 3.0), (0.0, 0.0, 0.4))
        return "CamB", cam_b
    out["camera_cut"] = Scene("camera_cut", [_ground(), _mover(), _static_box()], cut)
    return out


# --- faults -------------------------------------------------------------------------------------

def _tf(seq: Path) -> dict:
    return json.loads((seq / "transforms.json").read_text())


def _new(p: Path) -> Path:
    """``p`` unlinked, to be written anew: a planted copy's files are hard links to the clean
    sequence's (:func:`planted`), so a fault replaces a file and never writes into it."""
    p.unlink()
    return p


def _put_tf(seq: Path, tf: dict) -> None:
    _new(seq / "transforms.json").write_text(json.dumps(tf))


def _flows(seq: Path, fn) -> None:
    for p in sorted((seq / "flows").glob("flow_*.exr")):
        c = fn(exr.read_channels(p))
        exr.write_channels(_new(p), c)


def _scale_k(seq: Path, key: str, factor: float = 1.0, add: float = 0.0) -> None:
    """``key`` of K scaled/shifted everywhere it is written (top level and per frame), with the
    ``intrinsics`` matrices kept consistent: the hard case."""
    tf = _tf(seq)
    r, c = {"fl_x": (0, 0), "fl_y": (1, 1), "cx": (0, 2), "cy": (1, 2)}[key]
    for d in (tf, *tf["frames"]):
        if key in d:
            d[key] = d[key] * factor + add
            if "intrinsics" in d:
                d["intrinsics"][r][c] = d[key]
    _put_tf(seq, tf)


def _flip(ch: str):
    return lambda seq: _flows(seq, lambda c: {**c, ch: -c[ch]})


def _swap_fb(seq: Path) -> None:
    _flows(seq, lambda c: {"R": c["B"], "G": c["A"], "B": c["R"], "A": c["G"]})


def _swap_uv(seq: Path) -> None:
    _flows(seq, lambda c: {"R": c["G"], "G": c["R"], "B": c["A"], "A": c["B"]})


def _pose_from_neighbour(seq: Path) -> None:
    tf = _tf(seq)
    tf["frames"][2]["transform_matrix"] = tf["frames"][1]["transform_matrix"]
    _put_tf(seq, tf)


def _depth_label(seq: Path, label: str) -> None:
    """Label the depth ``label``; the data become the other type."""
    tf = _tf(seq)
    tf["conventions"]["depth"]["type"] = label
    _put_tf(seq, tf)
    if label == "planar":  # data converted to distance, still labelled planar
        v, u = np.mgrid[0:tf["h"], 0:tf["w"]] + 0.5
        ray = np.sqrt(1 + ((u - tf["cx"]) / tf["fl_x"]) ** 2 + ((v - tf["cy"]) / tf["fl_y"]) ** 2)
        for p in (seq / "depths").glob("*.exr"):
            v = exr.read_channels(p)["V"]
            exr.write_channels(_new(p), {"V": v * ray})


def _normal_frame(seq: Path) -> None:
    tf = _tf(seq)
    tf["conventions"]["normal"]["frame"] = "world"  # the data are camera-frame normals
    _put_tf(seq, tf)


def _id_changed(seq: Path) -> None:
    """In frame 3, the object id of the thing with the most pixels (not the ground) becomes another
    object's id."""
    p = seq / "segmentations" / "segmentation_000003.exr"
    c = exr.read_channels(p)
    ids = c["V"]
    vals, counts = np.unique(ids[ids > 0], return_counts=True)
    cand = [(n, v) for v, n in zip(vals, counts) if v != 1] or [(n, v) for v, n in zip(vals, counts)]
    victim = max(cand)[1]
    other = next((v for v in vals if v != victim), victim + 1)
    ids[ids == victim] = other
    exr.write_channels(_new(p), {**c, "V": ids})


def _truncate(seq: Path) -> None:
    p = seq / "flows" / "flow_000003.exr"
    data = p.read_bytes()
    _new(p).write_bytes(data[: len(data) // 2])


def _missing_frame(seq: Path) -> None:
    for p in seq.rglob("*_000003.*"):
        p.unlink()


def _cut_not_marked(seq: Path) -> None:
    """The flow across a camera cut left marked valid."""
    tf = _tf(seq)
    for f in tf["frames"]:
        f.pop("flow_forward_valid", None)
        f.pop("flow_backward_valid", None)
    _put_tf(seq, tf)


FAULTS: dict[str, Callable[[Path], None]] = {
    "flip_forward_u": _flip("R"), "flip_forward_v": _flip("G"),
    "flip_backward_u": _flip("B"), "flip_backward_v": _flip("A"),
    "swap_forward_backward": _swap_fb, "swap_u_v": _swap_uv,
    "fl_x_x1.02": lambda s: _scale_k(s, "fl_x", 1.02), "fl_y_x1.02": lambda s: _scale_k(s, "fl_y", 1.02),
    "cx_+1px": lambda s: _scale_k(s, "cx", add=1.0),
    "pose_from_neighbour": _pose_from_neighbour,
    "distance_labelled_planar": lambda s: _depth_label(s, "planar"),
    "planar_labelled_distance": lambda s: _depth_label(s, "distance"),
    "normal_frame_mislabelled": _normal_frame,
    "id_changed_in_one_frame": _id_changed,
    "truncated_exr": _truncate,
    "missing_frame": _missing_frame,
    "cut_not_marked": _cut_not_marked,
}


def planted(clean: Path, fault: str, dst: Path, link: bool = False) -> Path:
    """A copy of sequence ``clean`` at ``dst`` with ``fault`` applied. ``link``: the copy's files
    are hard links to the clean ones (a fifth of the time of copies; for the fault matrix, which
    plants every fault into a copy of one clean sequence, and changes nothing after): a fault
    replaces the files it changes (:func:`_new`), and a fault that wrote into a shared file is an
    error here, naming the file."""
    before = {p: p.stat() for p in clean.rglob("*") if p.is_file()}
    shutil.copytree(clean, dst, copy_function=os.link if link else shutil.copy2)
    FAULTS[fault](dst)
    for p, st in before.items():
        now = p.stat()
        if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, st.st_size):
            raise AssertionError(f"fault {fault} wrote into {p.relative_to(clean)}, a file it shares "
                                 "with the clean sequence: replace it (_new) instead")
    return dst


def bench(name: str = "instances", out: str | None = None, frames: int = 3) -> float:
    """Write scene ``name`` at 1920x1080 (``frames`` frames) and time ``validate_sequence`` on it;
    returns seconds per frame (all checks; EXR decoding included). Run it on one core:
    ``OMP_NUM_THREADS=1 taskset -c 0 python tests/validate_scenes.py bench instances``."""
    import tempfile
    import time

    from dataset_forge.dataset.validate import validate_sequence

    global W, H, K
    W, H = 1920, 1080
    K = Intrinsics(fl_x=1560.0, fl_y=1500.0, cx=959.5, cy=540.5, w=W, h=H)
    scene = scenes()[name]
    scene.frames = frames
    root = Path(out or tempfile.mkdtemp(prefix="validate_bench_")) / name
    write_scene(scene, root)
    t0 = time.perf_counter()
    rep = validate_sequence(root)
    per_frame = (time.perf_counter() - t0) / frames
    print(f"{name}: {W}x{H}, {frames} frames, ok={rep['ok']}, {per_frame:.2f} s per frame")
    return per_frame


if __name__ == "__main__":
    import sys

    if len(sys.argv) >= 2 and sys.argv[1] == "bench":
        bench(*(sys.argv[2:3] or ["instances"]))
    else:
        print("usage: python tests/validate_scenes.py bench [SCENE]  (scenes: " + ", ".join(scenes()) + ")")
