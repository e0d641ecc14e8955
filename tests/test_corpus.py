# SPDX-License-Identifier: GPL-3.0-or-later
"""The production corpus (tests/corpus.py) rendered through the public API and checked against
geometry: depth against the analytic ray/plane intersection, camera-frame normals, forward and
backward flow against the projected known motion, pure ids, K and poses, at keyframe multipliers
1, 2 and 1.5. Every stretched frame F must show the scene where the file's own clock puts it at
time F / m (within 0.01 px), or the multiplier is refused with a message naming the thing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import corpus
import dataset_forge
import numpy as np
import OpenEXR
import pytest
from conftest import REPO, bpy_env, bpy_pythons

KINDS = dict(depths=True, normals=True, flows=True, segmentations=True)
FAST = dict(width=corpus.RES[0], height=corpus.RES[1], max_samples=1, adaptive_threshold=0.0,
            use_denoising=False, timeout=240.0, retries=0)
pytestmark = pytest.mark.render  # every test here renders
PYTHONS = bpy_pythons()


def build_corpus(out: Path, names: list[str], python: str | None = None) -> Path:
    cmd = [python or sys.executable, str(REPO / "tests" / "corpus.py"), str(out), *names]
    subprocess.run(cmd, check=True, env=bpy_env(), capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """Every corpus scene, built once per test session (5.0)."""
    return build_corpus(tmp_path_factory.mktemp("corpus"), list(corpus.CORPUS))


@pytest.fixture(scope="session")
def lts_corpus(corpus_dir, tmp_path_factory) -> dict[str, Path]:
    """The time-source scenes built by each bpy (4.5, 4.2: a 5.0 file does not open there)."""
    out = {"": corpus_dir}
    for label, python in PYTHONS[1:]:
        out[python] = build_corpus(tmp_path_factory.mktemp(f"corpus-{label}"), corpus.TIME_SOURCES,
                                   python)
    return out


def read_exr(path: Path) -> dict[str, np.ndarray]:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {k: np.array(v.pixels) for k, v in f.channels().items()}


def frames_for(name: str, m: float, n: int = 3) -> tuple[int, int]:
    """``n`` stretched frames starting at the first one after the scene's ``t0`` whose time is
    between two frames of the file's clock (a first render at such a time is the hard case)."""
    a = max(math.ceil(corpus.CORPUS[name]["t0"] * m - 1e-9),
            int(math.floor(corpus.CORPUS[name]["range"][0] * m + 0.5)))
    while m != 1.0 and (a / m).is_integer():
        a += 1
    return a, a + n - 1


def render(blend: Path, out: Path, a: int, b: int, m: float, python: str = "",
           on_event=None, **extra) -> dict:
    return dataset_forge.render_animation(blend, out, frame_start=a, frame_end=b,
                                          executable=python, keyframe_multiplier=m,
                                          on_event=on_event, **{**FAST, **KINDS, **extra})


class Frames:
    """One rendered sequence of a time-source scene and its analytic oracle."""

    def __init__(self, root: Path, name: str, m: float):
        self.root, self.name, self.m = root, name, m
        self.tf = json.loads((root / "transforms.json").read_text())
        self.conv = self.tf["conventions"]
        self.frames = {fr["frame"]: fr for fr in self.tf["frames"]}
        self.K = np.array(self.tf["intrinsics"], float)
        h, w = self.tf["h"], self.tf["w"]
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        self.uv = np.stack([u, v], -1)
        self.rays = np.stack([(u - self.K[0, 2]) / self.K[0, 0], -(v - self.K[1, 2]) / self.K[1, 1],
                              -np.ones_like(u)], -1)  # camera frame, depth 1

    def exr(self, f: int, kind: str) -> dict[str, np.ndarray]:
        return read_exr(self.root / self.frames[f][f"{kind}_file_path"])

    def pose(self, f: int) -> np.ndarray:
        return np.array(self.frames[f]["transform_matrix"], float)

    def t(self, f: int) -> float:
        return f / self.m

    def plane(self, f: int) -> tuple[np.ndarray, float]:
        """World plane n.X = c of the ramp at frame f (n not normalised)."""
        n = np.array([-corpus.S, 0.0, 1.0])
        return n, -corpus.D - corpus.S * corpus.x0(self.name, self.t(f))

    def analytic_depth(self, f: int) -> np.ndarray:
        p = self.pose(f)
        n, c = self.plane(f)
        d_w = self.rays @ p[:3, :3].T
        return (c - n @ p[:3, 3]) / (d_w @ n)

    def project(self, pts: np.ndarray, f: int) -> np.ndarray:
        p = self.pose(f)
        cam = (pts - p[:3, 3]) @ p[:3, :3]
        z = -cam[..., 2]
        return np.stack([self.K[0, 0] * cam[..., 0] / z + self.K[0, 2],
                         self.K[1, 1] * -cam[..., 1] / z + self.K[1, 2]], -1)

    def analytic_flow(self, f: int, g: int, dx: float | None = None,
                      depth: np.ndarray | None = None) -> np.ndarray:
        """Where the ramp point seen at each pixel of frame f is seen at frame g, minus the pixel
        (the ramp moved by ``dx`` along X and seen at ``depth``; default: analytic)."""
        p = self.pose(f)
        depth = self.analytic_depth(f) if depth is None else depth
        pts = (self.rays * depth[..., None]) @ p[:3, :3].T + p[:3, 3]
        if dx is None:
            dx = corpus.x0(self.name, self.t(g)) - corpus.x0(self.name, self.t(f))
        pts[..., 0] += dx
        return self.project(pts, g) - self.uv


def stored_flows(seq: Frames, f: int):
    """``(g, flow)`` for the neighbours ``g = f + 1`` (forward) and ``f - 1`` (backward) that are
    in the sequence; ``flow`` ``(H, W, 2)`` as stored in frame ``f``'s flow EXR."""
    fl, ch = seq.exr(f, "flow"), seq.conv["flow"]["channels"]
    for g, (cu, cv) in ((f + 1, ("forward_u", "forward_v")), (f - 1, ("backward_u", "backward_v"))):
        if g in seq.frames:
            yield g, np.stack([fl[ch[cu]], fl[ch[cv]]], -1)


def check_time_source(seq: Frames) -> dict[str, float]:
    """Assert every ground-truth kind of every frame against the oracle; returns the worst errors."""
    name, worst = seq.name, {"depth_rel": 0.0, "normal_deg": 0.0, "flow_px": 0.0, "pos_px": 0.0}
    k_want = np.array([[corpus.FX, 0, corpus.RES[0] / 2], [0, corpus.FX, corpus.RES[1] / 2],
                       [0, 0, 1]])
    assert np.abs(seq.K - k_want).max() < 0.01
    assert seq.tf["frame_rate"] == pytest.approx(corpus.FPS * seq.m)
    ids = json.loads((seq.root / "segmentation_ids.json").read_text())
    # A particle's or a geometry-nodes Object Info instance carries the instanced object's id.
    ramp_id = None if corpus.CORPUS[name].get("ids_missing") else next(
        int(k) for k, v in ids["ids"].items() if v["name"] == "Ramp")
    for f in seq.frames:
        t = seq.t(f)
        pose = seq.pose(f)
        assert np.abs(pose[:3, 3] - corpus.camera_location(name, t)).max() < 1e-4, (f, pose)
        rot = corpus.camera_rotation(name, t)
        if rot is not None:
            assert np.abs(pose[:3, :3] - np.array(rot)).max() < 1e-5, (f, pose)
        tgt = corpus.target(name, t)
        look = -pose[:3, 2]
        if tgt is not None:
            want = np.subtract(tgt, pose[:3, 3])
            ang = math.degrees(math.acos(min(1.0, look @ want / np.linalg.norm(want))))
            assert ang < 1e-3, (f, ang)
        depth = seq.exr(f, "depth")[seq.conv["depth"]["channel"]]
        want = seq.analytic_depth(f)
        rel = np.abs(depth - want) / want
        worst["depth_rel"] = max(worst["depth_rel"], float(rel.max()))
        assert rel.max() < 1e-4, (f, rel.max())
        # Where the file's clock at t = f/m puts the ramp, read back from the depth: invert the
        # plane equation per pixel and compare in pixels at the ramp's distance.
        n, _ = seq.plane(f)
        pts = (seq.rays * depth[..., None]) @ pose[:3, :3].T + pose[:3, 3]
        x0_seen = -(corpus.D + pts @ n) / corpus.S
        pos_px = float(np.median(np.abs(x0_seen - corpus.x0(name, t)))) * corpus.FX / corpus.D
        worst["pos_px"] = max(worst["pos_px"], pos_px)
        assert pos_px < 0.01, (f, pos_px)
        nrm = seq.exr(f, "normal")
        nrm = np.stack([nrm[c] for c in seq.conv["normal"]["channels"]], -1)
        n_c = (n / np.linalg.norm(n)) @ pose[:3, :3]
        err = np.degrees(np.arccos(np.clip(nrm @ n_c, -1, 1)))
        worst["normal_deg"] = max(worst["normal_deg"], float(err.max()))
        assert err.max() < 0.5 and np.abs(np.linalg.norm(nrm, axis=-1) - 1).max() < 1e-5
        seg = seq.exr(f, "segmentation")[seq.conv["segmentation"]["channel"]]
        if ramp_id is not None:
            assert set(np.unique(seg)) == {float(ramp_id)}
        if "flow" not in seq.conv:
            continue
        for g, got in stored_flows(seq, f):
            want = seq.analytic_flow(f, g)
            mag = np.linalg.norm(want, axis=-1)
            assert np.median(mag) > 0.05  # the scene really moves in this frame
            e = np.linalg.norm(got - want, axis=-1)
            worst["flow_px"] = max(worst["flow_px"], float(e.max()))
            assert np.all(e < 0.01 + 0.02 * mag), (f, g, e.max(), np.median(mag))
    return worst


@pytest.mark.render
@pytest.mark.parametrize("m", [1.0, 2.0, 1.5], ids=["x1", "x2", "x1.5"])
@pytest.mark.parametrize("name", corpus.TIME_SOURCES)
def test_time_source_scene_matches_geometry_on_the_stretched_clock(corpus_dir, tmp_path, name, m):
    a, b = frames_for(name, m)
    out = tmp_path / "out"
    flows = not corpus.CORPUS[name].get("no_flow")
    before = (corpus_dir / f"{name}.blend").read_bytes()
    summary = render(corpus_dir / f"{name}.blend", out, a, b, m, flows=flows)
    assert (corpus_dir / f"{name}.blend").read_bytes() == before  # the file is never written
    if name == "ramp_particles" and m != 1.0:
        assert not summary["ok"]
        assert "particle system 'Particles' of 'Emitter' cannot be stretched" in json.dumps(summary)
        return
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    worst = check_time_source(Frames(out, name, m))
    print(name, m, worst)


@pytest.mark.render  # on 4.5/4.2 through DF_EXTRA_PYTHONS, from the 5.0 run
@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[v for v, _ in PYTHONS])
@pytest.mark.parametrize("name", corpus.TIME_SOURCES)
def test_time_sources_on_lts_blender(lts_corpus, tmp_path, name, python):
    """The oracle of every time source at multiplier 2 on 5.0 and on 4.5 / 4.2
    (DF_EXTRA_PYTHONS), two frames from a time between the file's frames."""
    a = frames_for(name, 2.0)[0] + 1  # odd: t = a / 2 is between two frames of the file
    summary = render(lts_corpus[python] / f"{name}.blend", tmp_path / "out", a, a + 1, 2.0,
                     python, flows=not corpus.CORPUS[name].get("no_flow"))
    if name == "ramp_particles":
        assert not summary["ok"]
        return
    if name == "ramp_gn_sim" and python:  # measured: 4.2/4.5 renders hold the simulation a frame
        assert not summary["ok"]
        assert "simulation zone of 'Ramp' cannot be stretched in Blender 4." in json.dumps(summary)
        return
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    seq = Frames(tmp_path / "out", name, 2.0)
    assert seq.tf["blender_version"][:3] in (python or "5.0")  # "4.2" in ".venv-4.2.23/..."
    check_time_source(seq)


@pytest.mark.render  # on 4.5/4.2 through DF_EXTRA_PYTHONS, from the 5.0 run
@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[v for v, _ in PYTHONS])
def test_simulation_from_a_later_frame_on_lts_blender(lts_corpus, tmp_path, python):
    """A sequence starting after the scene start sees the simulation stepped from the start."""
    summary = render(lts_corpus[python] / "ramp_gn_sim.blend", tmp_path / "out", 4, 6, 1.0, python,
                     flows=False)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    check_time_source(Frames(tmp_path / "out", "ramp_gn_sim", 1.0))


@pytest.mark.render
def test_collection_instance_has_an_id(corpus_dir, tmp_path):
    out = tmp_path / "out"
    assert render(corpus_dir / "ramp_collection_instance.blend", out, 3, 3, 1.0, flows=False)["ok"]
    seq = Frames(out, "ramp_collection_instance", 1.0)
    ids = json.loads((out / "segmentation_ids.json").read_text())["ids"]
    assert [v["name"] for v in ids.values()] == ["Ramp"]
    seg = seq.exr(3, "segmentation")[seq.conv["segmentation"]["channel"]]
    assert set(np.unique(seg)) == {1.0}


@pytest.mark.render
@pytest.mark.parametrize("name", corpus.REFUSALS)
def test_unstretchable_time_source_is_refused_with_its_name(corpus_dir, tmp_path, name):
    # Flows off: unbaked simulations refuse flows first (tested with the rigid-body drop).
    summary = render(corpus_dir / f"{name}.blend", tmp_path / "out", 2, 2, 2.0, flows=False)
    assert not summary["ok"]
    text = json.dumps(summary)
    assert corpus.CORPUS[name]["refusal"] in text, text[:2000]
    assert "keyframe_multiplier 1" in text
    # The same file renders at multiplier 1 (nothing is refused when time is not stretched).
    ok = render(corpus_dir / f"{name}.blend", tmp_path / "ok", 2, 2, 1.0, flows=False)
    assert ok["ok"], json.dumps(ok["scenes"])[:2000]


@pytest.mark.render
def test_flows_of_a_simulation_zone_are_refused(corpus_dir, tmp_path):
    # Measured: Cycles' Vector pass reads 0 on geometry moved by a simulation zone (depth,
    # normals and ids are right, tested above without flows).
    summary = render(corpus_dir / "ramp_gn_sim.blend", tmp_path / "out", 1, 2, 1.0)
    assert not summary["ok"]
    assert "'Ramp' moves by a geometry-nodes simulation zone" in json.dumps(summary)


# -- several scenes per file ------------------------------------------------------------------
@pytest.mark.render
def test_scene_option_renders_the_named_scene(corpus_dir, tmp_path):
    spec = corpus.CORPUS["two_scenes"]["scenes"]["Other"]
    out = tmp_path / "other"
    summary = render(corpus_dir / "two_scenes.blend", out, 20, 21, 1.0, scene="Other",
                     flows=False)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    tf = json.loads((out / "transforms.json").read_text())
    assert tf["camera"] == spec["camera"] and tf["frame_rate"] == pytest.approx(spec["fps"])
    fr = tf["frames"][0]
    depth = read_exr(out / fr["depth_file_path"])[tf["conventions"]["depth"]["channel"]]
    h, w = depth.shape  # the ramp of 'Other' is 1 unit further: D + 1 on the optical axis
    centre = depth[h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1]
    u = (np.array([w // 2 - 0.5, w // 2 + 0.5]) - w / 2) / corpus.FX
    want = spec["d"] / (1 + corpus.S * u)
    assert np.abs(centre - want[None, :]).max() / spec["d"] < 1e-4
    # Default: the file's active scene ("Main", ramp at D).
    main = render(corpus_dir / "two_scenes.blend", tmp_path / "main", 1, 1, 1.0, flows=False)
    assert main["ok"]
    assert json.loads((tmp_path / "main" / "transforms.json").read_text())["camera"] == "CamMain"


@pytest.mark.render
def test_missing_scene_names_the_files_scenes(corpus_dir, tmp_path):
    summary = render(corpus_dir / "two_scenes.blend", tmp_path / "x", 1, 1, 1.0, scene="Nope")
    assert not summary["ok"]
    text = json.dumps(summary)
    assert "has no scene 'Nope'; its scenes are 'Main', 'Other' (active: 'Main')" in text


@pytest.mark.render
def test_discovery_lists_scenes_and_reads_the_chosen_one(corpus_dir, tmp_path):
    from dataset_forge.engine.discovery import discover
    from dataset_forge.settings import Settings

    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / "two_scenes.blend").symlink_to(corpus_dir / "two_scenes.blend")
    (folder / "rigid.blend").symlink_to(corpus_dir / "refuse_rigid_body.blend")
    info = {i.name: i for i in discover(folder)}
    two = info["two_scenes"]
    assert two.blender_scenes == ["Main", "Other"] and two.blender_scene == "Main"
    assert (two.frame_start, two.frame_end, two.camera) == (1, 10, "CamMain")
    assert info["rigid"].error is None
    other = {i.name: i for i in discover(folder, Settings(scene="Other", keyframe_multiplier=2))}
    two = other["two_scenes"]
    assert two.blender_scene == "Other" and two.error is None
    assert (two.frame_start, two.frame_end, two.fps, two.camera) == (20, 25, 30.0, "CamOther")
    # The multiplier's refusals show in discovery, before anything renders.
    assert "has no scene 'Other'" in other["rigid"].error
    rigid = discover(folder, Settings(keyframe_multiplier=2))
    assert "rigid-body cache of 'Crate' cannot be stretched" in next(
        i for i in rigid if i.name == "rigid").error


# -- stills: scale, units, visibility ---------------------------------------------------------
def _euler(deg) -> np.ndarray:
    ax, ay, az = (math.radians(a) for a in deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _interior(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _still(corpus_dir: Path, tmp_path: Path, name: str, a: int = 1, b: int = 1, m: float = 1.0,
           **extra) -> Frames:
    out = tmp_path / name
    summary = render(corpus_dir / f"{name}.blend", out, a, b, m, **extra)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    return Frames(out, name, m)


@pytest.mark.render
def test_negative_non_uniform_scale_keeps_normals_outward_and_unit(corpus_dir, tmp_path):
    spec = corpus.CORPUS["neg_scale"]
    seq = _still(corpus_dir, tmp_path, "neg_scale")
    r = _euler(spec["rot_deg"])
    half = np.abs(np.array(spec["scale"]))
    d = seq.rays  # camera = world (identity pose at the origin)
    o_l = r.T @ (np.zeros(3) - np.array(spec["centre"]))
    d_l = d @ r  # R^T d per pixel
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - o_l) / d_l, (half - o_l) / d_l
    near = np.minimum(t1, t2)
    t_in, t_out = near.max(-1), np.maximum(t1, t2).min(-1)
    hit = t_in < t_out
    face = np.argmax(near, -1)  # the slab entered last is the face hit
    sign = -np.sign(np.take_along_axis(d_l, face[..., None], -1)[..., 0])
    n_want = r[:, face].transpose(1, 2, 0) * sign[..., None]  # outward world normal
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    nrm = seq.exr(1, "normal")
    nrm = np.stack([nrm[c] for c in seq.conv["normal"]["channels"]], -1)
    seen = depth > 0
    assert np.mean(seen != hit) < 0.01  # only silhouette pixels may differ
    same = _interior(hit) & np.all([np.roll(face, s, ax) == face for s in (1, -1)
                                    for ax in (0, 1)], 0)
    assert same.sum() > 150 and len(np.unique(face[same])) == 3  # three faces seen
    rel = np.abs(depth[same] - t_in[same]) / t_in[same]
    assert rel.max() < 1e-4, rel.max()
    err = np.degrees(np.arccos(np.clip(np.sum(nrm[same] * n_want[same], -1), -1, 1)))
    assert err.max() < 0.5, err.max()
    assert np.all(np.sum(nrm[same] * d[same], -1) < 0)  # outward: towards the camera
    assert np.abs(np.linalg.norm(nrm[seen], axis=-1) - 1).max() < 1e-5


@pytest.mark.render
def test_centimetre_scene_depth_in_scene_units_with_the_metre_factor(corpus_dir, tmp_path):
    seq = _still(corpus_dir, tmp_path, "centimetres", flows=False)
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    want = seq.analytic_depth(1)  # the same numbers as in metres: scene units, not metres
    assert np.abs(depth - want).max() / want.min() < 1e-4
    assert seq.tf["unit_scale_m"] == pytest.approx(0.01)
    info = json.loads((seq.root / "info.json").read_text())
    assert info["unit_scale_m"] == pytest.approx(0.01)


@pytest.mark.render
@pytest.mark.parametrize("m", [1.0, 2.0], ids=["x1", "x2"])
def test_animated_hide_render_follows_the_stretched_clock(corpus_dir, tmp_path, m):
    spec = corpus.CORPUS["hide_render"]
    last_seen = int(round((spec["hidden_from"] - 1) * m))
    seq = _still(corpus_dir, tmp_path, "hide_render", last_seen, last_seen + int(m), m,
                 flows=False)
    ids = json.loads((seq.root / "segmentation_ids.json").read_text())["ids"]
    blocker = next(int(k) for k, v in ids.items() if v["name"] == "Blocker")
    for f in seq.frames:
        shown = f / m < spec["hidden_from"]
        seg = seq.exr(f, "segmentation")[seq.conv["segmentation"]["channel"]]
        depth = seq.exr(f, "depth")[seq.conv["depth"]["channel"]]
        h, w = depth.shape
        c = depth[h // 2, w // 2]
        assert (blocker in seg) == shown, (f, shown)
        want = spec["blocker_d"] if shown else seq.analytic_depth(f)[h // 2, w // 2]
        assert abs(c - want) / want < 1e-4, (f, c, want)


@pytest.mark.render
@pytest.mark.parametrize("m", [1.0, 2.0], ids=["x1", "x2"])
def test_frames_past_100000_frame_step_and_eevee_file(corpus_dir, tmp_path, m):
    """Frame numbers past 100000 keep 6-digit names and the stretched clock; the file's
    frame_step (2) is not used: every frame of the range renders (sequences are consecutive
    frames); the file's Eevee engine is replaced by Cycles."""
    a = int(100002 * m)
    out = tmp_path / "big"
    summary = render(corpus_dir / "frame_edges.blend", out, a, a + 2, m)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    seq = Frames(out, "frame_edges", m)
    assert sorted(seq.frames) == [a, a + 1, a + 2]
    assert (out / seq.frames[a]["file_path"]).name == f"frame_{a:06d}.png"
    check_time_source(seq)


@pytest.mark.render
def test_negative_frames_render_rgb_and_poses(corpus_dir, tmp_path):
    """Negative frame numbers (range starting at -5) render and keep their own numbers."""
    out = tmp_path / "neg"
    summary = render(corpus_dir / "frame_edges.blend", out, -3, -2, 1.0)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    tf = json.loads((out / "transforms.json").read_text())
    assert [fr["frame"] for fr in tf["frames"]] == [-3, -2]
    # Blender's '######' writes a sign, then six digits; every file follows that one pattern.
    assert (out / tf["frames"][0]["file_path"]).name == "frame_-000003.png"
    for fr in tf["frames"]:
        for key in ("file_path", "depth_file_path", "normal_file_path", "flow_file_path",
                    "segmentation_file_path"):
            assert (out / fr[key]).is_file(), fr[key]
            assert f"_-{-fr['frame']:06d}." in fr[key], fr[key]
    check_time_source(Frames(out, "frame_edges", 1.0))


@pytest.mark.render
def test_view_layer_ground_truth_follows_what_the_rgb_shows(corpus_dir, tmp_path):
    """Excluded collection: not rendered, the ramp behind it is in every kind. Holdout: the RGB
    is transparent there and the ground truth says "no surface" (depth 0, id 0, normal 0).
    Indirect only: invisible to the camera, the ramp behind it is in every kind."""
    spec = corpus.CORPUS["view_layer"]
    seq = _still(corpus_dir, tmp_path, "view_layer", flows=False, color_mode="RGBA",
                 file_format="OPEN_EXR", bit_depth=32)
    fr = seq.frames[1]
    rgba = read_exr(seq.root / fr["file_path"])
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    seg = seq.exr(1, "segmentation")[seq.conv["segmentation"]["channel"]]
    nrm = seq.exr(1, "normal")
    ids = json.loads((seq.root / "segmentation_ids.json").read_text())["ids"]
    ramp = next(int(k) for k, v in ids.items() if v["name"] == "Ramp")
    ramp_depth = seq.analytic_depth(1)
    v = corpus.RES[1] // 2
    for coll, x in spec["squares"].items():
        u = int(corpus.RES[0] / 2 + corpus.FX * x / spec["d"])
        if coll == "Holdout":
            assert rgba["A"][v, u] == 0.0
            assert depth[v, u] == 0.0 and seg[v, u] == 0.0
            assert all(nrm[c][v, u] == 0.0 for c in seq.conv["normal"]["channels"])
        else:
            assert rgba["A"][v, u] == pytest.approx(1.0)
            assert seg[v, u] == ramp, coll
            assert abs(depth[v, u] - ramp_depth[v, u]) / ramp_depth[v, u] < 1e-4, coll


@pytest.mark.render
def test_alpha_cut_foliage_follows_the_pass_alpha_threshold(corpus_dir, tmp_path):
    """Measured. Where the leaf's alpha (0.8) is at or above the view layer's pass alpha threshold
    (0.5) it is solid for depth, normals, flow and ids. Below it (0.3), each pixel's first sample
    decides depth and id: the leaf on about alpha of the pixels, the ramp behind elsewhere (not
    blended); the normal there is never the leaf's (zero at 1 sample, the ramp's at 16): a known
    limitation, documented in the README (use alpha 0 or 1, as clipped foliage does)."""
    spec = corpus.CORPUS["foliage"]
    seq = _still(corpus_dir, tmp_path, "foliage")
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    seg = seq.exr(1, "segmentation")[seq.conv["segmentation"]["channel"]]
    nrm = seq.exr(1, "normal")
    nrm = np.stack([nrm[c] for c in seq.conv["normal"]["channels"]], -1)
    ids = {v["name"]: int(k) for k, v in
           json.loads((seq.root / "segmentation_ids.json").read_text())["ids"].items()}
    ramp_depth = seq.analytic_depth(1)
    ramp_n = np.array([-corpus.S, 0.0, 1.0]) / math.hypot(corpus.S, 1.0)
    rows = slice(10, 38)
    for cols, alpha in ((slice(6, 28), spec["alpha"][0]), (slice(36, 58), spec["alpha"][1])):
        s_, d_, n_ = seg[rows, cols], depth[rows, cols], nrm[rows, cols]
        leaf = s_ == ids["Leaf"]
        assert np.all(leaf | (s_ == ids["Ramp"]))
        assert np.all(np.abs(d_[leaf] - spec["d"]) < 1e-4 * spec["d"])
        assert np.all(np.abs(d_[~leaf] - ramp_depth[rows, cols][~leaf]) < 1e-3)
        assert np.all(n_[~leaf] @ ramp_n > 0.9999)
        share = leaf.mean()
        if alpha >= 0.5:
            assert share == 1.0
            assert np.all(n_[leaf] @ np.array([0.0, 0.0, 1.0]) > 0.9999)
        else:
            assert abs(share - alpha) < 0.1, share
            assert not np.any(n_[leaf] @ np.array([0.0, 0.0, 1.0]) > 0.5)


# -- linked libraries, textures, engines: render, with one warning each ------------------------
def _warnings(corpus_dir: Path, tmp_path: Path, name: str, **extra) -> tuple[Frames, list[str]]:
    events: list[dict] = []
    out = tmp_path / name
    summary = render(corpus_dir / f"{name}.blend", out, 1, 1, 1.0, on_event=events.append,
                     flows=False, **extra)
    assert summary["ok"], json.dumps(summary["scenes"])[:2000]
    return Frames(out, name, 1.0), [e["message"] for e in events if e["event"] == "warning"]


@pytest.mark.render
def test_linked_asset_present_renders_with_its_ground_truth(corpus_dir, tmp_path):
    seq, warnings = _warnings(corpus_dir, tmp_path, "linked_present")
    assert warnings == []
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    assert np.abs(depth - seq.analytic_depth(1)).max() / corpus.D < 1e-4
    ids = json.loads((seq.root / "segmentation_ids.json").read_text())["ids"]
    # A linked object is named with its library (two libraries may both hold an "Asset").
    assert [v["name"] for v in ids.values()] == ["Asset [asset_lib.blend]"]
    seg = seq.exr(1, "segmentation")[seq.conv["segmentation"]["channel"]]
    assert set(np.unique(seg[depth > 0])) == {float(next(iter(ids)))}


@pytest.mark.render
def test_a_linked_and_a_local_object_of_one_name_each_get_their_ids(corpus_dir, tmp_path):
    """Names are library-qualified everywhere: the linked 'Asset' and the local 'Asset' are two
    objects with two ids, each with the class of its own collection, both in objects.json with
    their own visible pixels."""
    seq, _ = _warnings(corpus_dir, tmp_path, "linked_name_clash")
    ids = json.loads((seq.root / "segmentation_ids.json").read_text())["ids"]
    by_name = {v["name"]: int(k) for k, v in ids.items()}
    assert sorted(by_name) == ["Asset", "Asset [clash_lib.blend]"]
    classes = {v["name"]: (v["collection"], v["class"]) for v in ids.values()}
    assert classes == {"Asset": ("Props", "Props"),
                       "Asset [clash_lib.blend]": ("Library Assets", "Library Assets")}
    seg = seq.exr(1, "segmentation")[seq.conv["segmentation"]["channel"]]
    assert set(np.unique(seg)) == {float(i) for i in by_name.values()}
    objects = dataset_forge.load(seq.root).objects
    assert dict(zip(objects.names, objects.categories)) == {
        "Asset": "Props", "Asset [clash_lib.blend]": "Library Assets"}
    frame = objects.frame(0)
    visible = dict(zip(frame.names, frame.px_count_visib.tolist()))
    assert sorted(visible) == ["Asset", "Asset [clash_lib.blend]"]
    assert all(n > 0 for n in visible.values()), visible


@pytest.mark.render
def test_missing_library_renders_with_one_warning_naming_it(corpus_dir, tmp_path):
    seq, warnings = _warnings(corpus_dir, tmp_path, "linked_missing")
    assert len(warnings) == 1 and "linked library 'gone_lib.blend' is missing" in warnings[0]
    assert "(Asset)" in warnings[0]
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    h, w = depth.shape
    assert depth[h // 2, w // 2] == pytest.approx(4.0, rel=1e-4)  # the local 'Stand' renders
    assert depth[0, 0] == 0.0  # the linked ramp is absent


@pytest.mark.render
def test_missing_texture_one_warning_packed_texture_none(corpus_dir, tmp_path):
    seq, warnings = _warnings(corpus_dir, tmp_path, "textures")
    assert len(warnings) == 1 and "missing texture 'Lost'" in warnings[0]
    assert "Packed" not in warnings[0]
    depth = seq.exr(1, "depth")[seq.conv["depth"]["channel"]]
    assert np.abs(depth - seq.analytic_depth(1)).max() / corpus.D < 1e-4


@pytest.mark.render
def test_eevee_file_renders_in_cycles_said_once(corpus_dir, tmp_path):
    seq, warnings = _warnings(corpus_dir, tmp_path, "frame_edges")
    assert len(warnings) == 1 and "it renders in Cycles" in warnings[0]
    assert "EEVEE" in warnings[0]


@pytest.mark.render
@pytest.mark.parametrize("name", ["rigid_drop", "rigid_drop_unbaked"])
def test_rigid_body_drop_depth_and_flow(corpus_dir, tmp_path, name):
    """The ramp falls along +X as a rigid body (baked, and not: a sequence that starts at frame 6
    must see it fallen for 5 frames): its offset read from the depth follows free fall (within
    Bullet's integration, 3 %), and the flow equals the projected motion between the rendered
    frames (0.01 px + 2 %)."""
    spec = corpus.CORPUS[name]
    if not spec["bake"]:  # measured: the Vector pass reads 0 on an unbaked simulation
        refused = render(corpus_dir / f"{name}.blend", tmp_path / "refused", 6, 7, 1.0)
        assert "the rigid-body cache of 'Ramp' is not baked" in json.dumps(refused)
    seq = _still(corpus_dir, tmp_path, name, 6, 9, flows=spec["bake"])
    n = np.array([-corpus.S, 0.0, 1.0])
    x_seen, depths = {}, {}
    for f in seq.frames:
        depth = depths[f] = seq.exr(f, "depth")[seq.conv["depth"]["channel"]]
        pts = seq.rays * depth[..., None]  # camera = world
        x = -(corpus.D + pts @ n) / corpus.S
        assert np.ptp(x) < 1e-3  # one rigid offset over the whole image
        x_seen[f] = float(np.median(x))
        fall = 0.5 * spec["gravity"] * ((f - 1) / corpus.FPS) ** 2
        assert abs(x_seen[f] - fall) < 0.03 * fall, (f, x_seen[f], fall)
    for f in seq.frames if spec["bake"] else ():
        for g, got in stored_flows(seq, f):
            want = seq.analytic_flow(f, g, dx=x_seen[g] - x_seen[f], depth=depths[f])
            mag = np.linalg.norm(want, axis=-1)
            assert np.median(mag) > 0.3
            e = np.linalg.norm(got - want, axis=-1)
            assert np.all(e < 0.01 + 0.02 * mag), (f, g, e.max(), np.median(mag))
