# SPDX-License-Identifier: GPL-3.0-or-later
"""Generated camera paths, the pure part (sampling/trajectory.py), the plan of camera-less and
static scenes, the settings and validate's trajectory check. No bpy: milliseconds."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from dataset_forge.dataset.validate.trajectory import judge
from dataset_forge.engine.discovery import SceneInfo
from dataset_forge.engine.plan import build_plan
from dataset_forge.sampling import trajectory as tr
from dataset_forge.settings import Settings, SettingsError


def test_seed_is_stable_and_separates_scene_sequence_seed_and_attempt():
    base = tr.trajectory_seed("room", "001-00001-00025", 0)
    assert base == tr.trajectory_seed("room", "001-00001-00025", 0)
    others = {tr.trajectory_seed("room2", "001-00001-00025", 0),
              tr.trajectory_seed("room", "001-00025-00049", 0),
              tr.trajectory_seed("room", "001-00001-00025", 1),
              tr.trajectory_seed("room", "001-00001-00025", 0, attempt=1)}
    assert base not in others and len(others) == 4
    # a fixed value: the same in every process and Python (hash() is salted, sha256 is not)
    assert tr.trajectory_seed("a", "b", 0) == int.from_bytes(
        __import__("hashlib").sha256(b"a\x00b\x000\x000").digest()[:8], "little")


@pytest.mark.parametrize("eye,target", [((3.0, -4.0, 2.0), (0.0, 0.0, 0.5)),
                                        ((0.0, 0.0, 5.0), (0.0, 0.0, 0.0)),  # straight down
                                        ((-1.0, 2.0, -3.0), (4.0, 1.0, 0.0))])
def test_look_at_is_a_rotation_looking_down_minus_z_without_roll(eye, target):
    m = np.array(tr.look_at(eye, target))
    r = m[:3, :3]
    assert np.allclose(r.T @ r, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(m[:3, 3], eye)
    view = np.subtract(target, eye)
    assert np.allclose(-r[:, 2], view / np.linalg.norm(view))
    assert abs(r[2, 0]) < 1e-12  # camera x stays horizontal: no roll
    assert r[2, 1] >= -1e-12  # camera y points up (or horizontal when looking straight down)


def test_orbit_keeps_radius_elevation_and_speed():
    rng = random.Random(3)
    o = tr.sample_orbit(rng, (1.0, 2.0, 0.5), 2.0, lens=35.0, width=64, height=48,
                        distance=1.5, elevation_min=10.0, elevation_max=40.0, speed=2.0)
    fov = tr.half_fov(35.0, 64, 48)
    assert math.isclose(o.radius, 1.5 * 2.0 / math.sin(fov))
    assert 10.0 <= math.degrees(o.elevation) <= 40.0
    fps = 24.0
    eyes = np.array([o.eye(k / fps) for k in range(48)])
    d = np.linalg.norm(eyes - np.array(o.center), axis=1)
    assert np.allclose(d, o.radius)
    assert np.allclose(eyes[:, 2], o.center[2] + o.radius * math.sin(o.elevation))
    chord = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    ring = o.radius * math.cos(o.elevation)
    assert np.allclose(chord, 2 * ring * math.sin(2.0 / fps / ring / 2))  # arc 2 units/s
    # the centre is in the middle of every frame
    for k in (0, 17, 47):
        p = np.array(o.pose(k / fps))
        assert np.allclose(-p[:3, 2], (np.array(o.center) - eyes[k]) / o.radius)


def test_orbit_radius_never_inside_the_sphere_plus_clearance():
    o = tr.sample_orbit(random.Random(0), (0, 0, 0), 1.0, lens=10.0, width=32, height=32,
                        distance=0.1, elevation_min=0, elevation_max=0, speed=1.0, clearance=0.5)
    assert math.isclose(o.radius, 1.5)


def test_bspline_is_c2_at_the_knots():
    rng = random.Random(1)
    ctrl = [tuple(rng.uniform(-3, 3) for _ in range(3)) for _ in range(7)]
    h = 1e-4

    def d2(u):
        p = [np.array(tr.bspline_point(ctrl, u + k * h)) for k in (-1, 0, 1)]
        return (p[0] - 2 * p[1] + p[2]) / h ** 2
    for knot in (1.0, 2.0, 3.0):
        left, right = d2(knot - 3 * h), d2(knot + 3 * h)
        assert np.allclose(left, right, atol=5e-2 * (1 + np.abs(left).max())), knot


def test_arc_path_moves_at_constant_speed():
    ctrl = [(0, 0, 0), (1, 0, 0), (2, 2, 0), (3, 2, 1), (5, 0, 1), (6, 1, 0)]
    path = tr.ArcPath(ctrl)
    pts = np.array([path.at(s) for s in np.arange(0, path.length, 0.05)])
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert steps.max() <= 0.05 + 1e-9 and steps.min() > 0.0495


def _sphere_world(center=(0.0, 0.0, 0.0), radius=1.0):
    """Clearance of free space around a solid sphere (negative inside)."""
    return lambda p: math.dist(p, center) - radius


def test_waypoints_keep_the_clearance_along_every_step():
    clear = _sphere_world()
    for seed in range(5):
        pts = tr.sample_waypoints(random.Random(seed), (-4, -4, -4), (4, 4, 4), 10.0, clear, 0.3)
        assert pts is not None
        for p, q in zip(pts, pts[1:]):
            for t in np.linspace(0, 1, 50):
                assert clear(tuple(np.add(p, np.multiply(t, np.subtract(q, p))))) >= 0.3 - 1e-9
        assert all(-4 <= c <= 4 for p in pts for c in p)


def test_flythrough_is_seeded_long_enough_and_looks_ahead():
    def fly(seed):
        return tr.plan_flythrough(random.Random(seed), (-5, -5, -2), (5, 5, 2), speed=1.5,
                                  duration=2.0, look_ahead=0.5, clearance=_sphere_world(),
                                  need=0.25)
    a, b, a2 = fly(1), fly(2), fly(1)
    assert a is not None and b is not None
    assert a.eye(0.3) == a2.eye(0.3) and a.eye(0.3) != b.eye(0.3)
    eyes = np.array([a.eye(t) for t in np.linspace(0, 2.0, 49)])
    assert np.allclose(np.linalg.norm(np.diff(eyes, axis=0), axis=1), 1.5 * 2.0 / 48, rtol=1e-3)
    p = np.array(a.pose(1.0))
    ahead = np.subtract(a.eye(1.5), a.eye(1.0))
    assert np.allclose(-p[:3, 2], ahead / np.linalg.norm(ahead))


def test_walk_that_cannot_move_gives_none():
    # the whole box is inside geometry
    assert tr.sample_waypoints(random.Random(0), (0, 0, 0), (1, 1, 1), 5.0, lambda p: -1.0,
                               0.1) is None


def test_ray_grid_spans_the_field_of_view():
    pose = tr.look_at((0, 0, 0), (0, 1, 0))
    rays = tr.ray_grid(pose, 18.0, 64, 32, nx=2, ny=1)
    # lens 18 mm on a 36 mm sensor: 90 degrees across the wide side; pixel centres at +-1/4 width
    ang = math.degrees(math.atan(0.5))
    for (o, d), sign in zip(rays, (-1, 1)):
        assert o == (0.0, 0.0, 0.0)
        assert math.isclose(math.degrees(math.atan2(d[0], d[1])), sign * ang, abs_tol=1e-9)


@pytest.mark.parametrize("a,b,n,nf,m,gap,want", [
    (1, 250, 4, 24, 1.0, 0, (1, 250)),   # fits: the scene's own range
    (1, 1, 4, 24, 1.0, 0, (1, 96)),      # a still: 4 x 24 frames
    (1, 10, 3, 10, 1.0, 5, (1, 40)),     # gaps count
    (1, 1, 2, 10, 2.0, 0, (1, 11)),      # stretched x2: 2..22 (2..20 holds only 19)
    (5, 5, 1, 0, 1.0, 0, (5, 5)),        # num_frames 0: as long as fits
])
def test_generated_timeline_extends_only_what_does_not_fit(a, b, n, nf, m, gap, want):
    got = tr.generated_timeline(a, b, n, nf, m, gap)
    assert got == want
    s, e = tr.stretched_range(*got, m)
    if nf:
        assert e - s + 1 >= n * nf + (n - 1) * gap


def _info(name, camera):
    return SceneInfo(name=name, blend=f"/s/{name}.blend", frame_start=1, frame_end=1, fps=24.0,
                     camera=camera)


def test_plan_gives_a_static_camera_less_scene_disjoint_sequences(tmp_path):
    s = Settings(camera="orbit", sequences_per_scene=3, num_frames=8)
    plan = build_plan(tmp_path, tmp_path / "out", s, scenes=[_info("still", "Dataset Forge Camera")])
    seqs = plan.jobs[0].sequences
    assert [(q["frame_start"], q["frame_end"]) for q in seqs] == [(1, 8), (9, 16), (17, 24)]
    assert len({q["id"] for q in seqs}) == 3
    # with the scene's own camera the same request does not fit a one-frame scene
    plan = build_plan(tmp_path, tmp_path / "out", s.replace(camera="scene"),
                      scenes=[_info("still", "Camera")])
    assert not plan.jobs and "cannot fit" in plan.scenes[0].error


def test_camera_settings_are_checked():
    with pytest.raises(SettingsError, match="camera_elevation_min=50 is above"):
        Settings(camera="orbit", camera_elevation_min=50.0, camera_elevation_max=20.0).check()
    with pytest.raises(SettingsError, match="camera_speed above 0 or a camera_target"):
        Settings.from_dict({"camera": "flythrough", "camera_speed": 0})
    Settings.from_dict({"camera": "flythrough", "camera_speed": 0, "camera_target": "box"})
    with pytest.raises(SettingsError, match="camera='dolly' is not one of scene, orbit"):
        Settings.from_dict({"camera": "dolly"})
    assert Settings.from_dict({"camera": "Orbit"}).camera == "orbit"


def test_camera_settings_are_fingerprinted():
    from dataset_forge.dataset.provenance import fingerprint_settings

    fp = fingerprint_settings(Settings())
    for name in Settings.field_names():
        if name.startswith("camera"):
            assert name in fp, name


def _poses(step, n=5):
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, 0, 3] = np.arange(n) * step
    return out


def test_validate_trajectory_judges_clearance_coverage_and_steps():
    rig = {"mode": "orbit", "clearance": 0.5, "min_clearance": 0.7, "min_coverage": 0.2,
           "coverage": 0.4, "speed": 2.4}
    assert judge(rig, _poses(0.1), 24.0)["ok"] is True
    bad = judge({**rig, "min_clearance": 0.3}, _poses(0.1), 24.0)
    assert bad["ok"] is False and "closer than its clearance 0.5" in bad["message"]
    bad = judge({**rig, "coverage": 0.1}, _poses(0.1), 24.0)
    assert bad["ok"] is False and "below min_coverage 20%" in bad["message"]
    bad = judge(rig, _poses(0.2), 24.0)  # twice as fast as the recorded speed
    assert bad["ok"] is False and "not the checked path" in bad["message"]
    assert judge({"mode": "orbit"}, _poses(0.1), 24.0)["ok"] is False
