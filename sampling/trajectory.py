# SPDX-License-Identifier: GPL-3.0-or-later
"""Generated camera paths (``camera`` = ``orbit`` / ``flythrough``): the pure math. No ``bpy``,
no numpy.

Blender's side (:mod:`render_passes.camera_rig`) measures the scene (bounding boxes, a BVH of the
evaluated geometry) and hands this module a ``clearance(point)`` function; everything that decides
*where* the camera goes is here, so the worker and the panel's path preview compute the same path.

Conventions: scene units, seconds, degrees in settings and radians inside; a pose is a 4x4
camera-to-world matrix (rows) in Blender's camera frame (x right, y up, looking down -z), world z
up. A trajectory is seeded by (scene name, sequence id, camera seed, attempt): reproducible runs,
identical resumes, sequences of one scene differ.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import SamplingError, stretched_range

Vec = tuple[float, float, float]
Matrix = list[list[float]]
SENSOR_WIDTH = 36.0  # mm, the generated camera's sensor (fit: the larger image side)
ATTEMPTS = 16  # seeded tries before a sequence is refused
MAX_PITCH = math.radians(25.0)  # flythrough: steepest climb or dive between waypoints


# -- seeds ------------------------------------------------------------------------------------
def trajectory_seed(scene_name: str, sequence_id: str, seed: int, attempt: int = 0) -> int:
    """A 64-bit seed from (scene name, sequence id, camera seed, attempt), the same in every
    process and Python (``hash()`` is salted per process)."""
    text = f"{scene_name}\x00{sequence_id}\x00{int(seed)}\x00{int(attempt)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def rng_for(scene_name: str, sequence_id: str, seed: int, attempt: int = 0) -> random.Random:
    return random.Random(trajectory_seed(scene_name, sequence_id, seed, attempt))


# -- timeline of a camera-less or static scene --------------------------------------------------
def generated_timeline(frame_start: int, frame_end: int, sequences_per_scene: int,
                       num_frames: int, multiplier: float = 1.0,
                       min_gap: int = 0) -> tuple[int, int]:
    """The file's frame range ``(start, end)`` (before stretching) to sample sequences from when
    the camera is generated: the scene's own, extended past its end when ``sequences_per_scene``
    windows of ``num_frames`` (plus ``min_gap`` between them) do not fit in it. A generated
    camera's time is the timeline: beyond the file's end its animation holds its last frame, the
    camera keeps moving, and every sequence gets its own frames and id."""
    if num_frames <= 0:
        return frame_start, frame_end
    a, b = stretched_range(frame_start, frame_end, multiplier)
    need = sequences_per_scene * num_frames + (sequences_per_scene - 1) * max(0, min_gap)
    if b - a + 1 >= need:
        return frame_start, frame_end
    end = frame_end
    while True:  # the smallest end whose stretched range holds ``need`` frames
        end = max(end + 1, frame_start + math.ceil((need - 1) / multiplier))
        a, b = stretched_range(frame_start, end, multiplier)
        if b - a + 1 >= need:
            return frame_start, end


# -- vectors ----------------------------------------------------------------------------------
def _sub(p: Sequence[float], q: Sequence[float]) -> Vec:
    return (p[0] - q[0], p[1] - q[1], p[2] - q[2])


def _add(p: Sequence[float], q: Sequence[float], s: float = 1.0) -> Vec:
    return (p[0] + s * q[0], p[1] + s * q[1], p[2] + s * q[2])


def _norm(p: Sequence[float]) -> float:
    return math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])


def _unit(p: Sequence[float]) -> Vec:
    n = _norm(p)
    if n < 1e-12:
        raise SamplingError("cannot aim the camera: its target is at its own position")
    return (p[0] / n, p[1] / n, p[2] / n)


def _cross(p: Sequence[float], q: Sequence[float]) -> Vec:
    return (p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0])


def look_at(eye: Sequence[float], target: Sequence[float]) -> Matrix:
    """Camera-to-world 4x4 (rows) of a camera at ``eye`` looking at ``target`` with no roll
    (its x axis horizontal, world z up). A view straight up or down keeps x along world x."""
    back = _unit(_sub(eye, target))  # camera +z points away from what it sees
    right = _cross((0.0, 0.0, 1.0), back)
    if _norm(right) < 1e-9:
        right = (1.0, 0.0, 0.0)
    right = _unit(right)
    up = _cross(back, right)
    return [[right[0], up[0], back[0], float(eye[0])],
            [right[1], up[1], back[1], float(eye[1])],
            [right[2], up[2], back[2], float(eye[2])],
            [0.0, 0.0, 0.0, 1.0]]


def half_fov(lens: float, width: int, height: int) -> float:
    """Half of the smaller field of view (radians) of a ``lens`` mm camera whose 36 mm sensor
    spans the larger image side."""
    half_large = math.atan(SENSOR_WIDTH / 2.0 / lens)
    if width == height:
        return half_large
    small = min(width, height) / max(width, height)
    return math.atan(math.tan(half_large) * small)


# -- orbit ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Orbit:
    """A circle around ``center`` (radius ``radius``, elevation and start azimuth in radians,
    ``direction`` +1 counter-clockwise seen from above, -1 clockwise), travelled at ``speed``
    scene units per second."""

    center: Vec
    radius: float
    elevation: float
    start: float
    direction: int
    speed: float

    def eye(self, t: float) -> Vec:
        """Camera position at ``t`` seconds."""
        ring = self.radius * math.cos(self.elevation)
        az = self.start + self.direction * (self.speed * t / ring if ring > 1e-12 else 0.0)
        return (self.center[0] + ring * math.cos(az), self.center[1] + ring * math.sin(az),
                self.center[2] + self.radius * math.sin(self.elevation))

    def pose(self, t: float) -> Matrix:
        return look_at(self.eye(t), self.center)


def framing_radius(sphere_radius: float, lens: float, width: int, height: int,
                   distance: float = 1.0) -> float:
    """Distance from a sphere's centre at which it just fills the smaller field of view, times
    ``distance``."""
    return distance * sphere_radius / math.sin(half_fov(lens, width, height))


def sample_orbit(rng: random.Random, center: Sequence[float], sphere_radius: float, *,
                 lens: float, width: int, height: int, distance: float, elevation_min: float,
                 elevation_max: float, speed: float, clearance: float = 0.0) -> Orbit:
    """A seeded orbit: elevation uniform in ``[elevation_min, elevation_max]`` (degrees), start
    azimuth uniform, direction either way; radius framing the sphere (never closer than the
    sphere plus ``clearance``)."""
    r = max(framing_radius(sphere_radius, lens, width, height, distance),
            sphere_radius + clearance, 1e-6)
    el = math.radians(rng.uniform(elevation_min, elevation_max))
    start = rng.uniform(0.0, 2.0 * math.pi)
    direction = rng.choice((-1, 1))
    return Orbit((float(center[0]), float(center[1]), float(center[2])), r, el, start, direction,
                 float(speed))


# -- flythrough ---------------------------------------------------------------------------------
def bspline_point(ctrl: Sequence[Sequence[float]], u: float) -> Vec:
    """The uniform cubic B-spline of control points ``ctrl`` (C2) at ``u`` in
    ``[0, len(ctrl) - 3]``."""
    n = len(ctrl) - 3
    i = min(max(int(math.floor(u)), 0), n - 1)
    t = u - i
    b0 = (1 - t) ** 3 / 6.0
    b1 = (3 * t ** 3 - 6 * t ** 2 + 4) / 6.0
    b2 = (-3 * t ** 3 + 3 * t ** 2 + 3 * t + 1) / 6.0
    b3 = t ** 3 / 6.0
    p0, p1, p2, p3 = ctrl[i], ctrl[i + 1], ctrl[i + 2], ctrl[i + 3]
    return tuple(b0 * p0[k] + b1 * p1[k] + b2 * p2[k] + b3 * p3[k] for k in range(3))  # type: ignore[return-value]


class ArcPath:
    """A B-spline sampled densely and parametrised by arc length (scene units), so that the
    camera moves at a constant speed."""

    def __init__(self, ctrl: Sequence[Sequence[float]], per_segment: int = 64):
        if len(ctrl) < 4:
            raise SamplingError("a spline path needs at least 4 control points")
        n = len(ctrl) - 3
        self.points = [bspline_point(ctrl, i / per_segment) for i in range(n * per_segment + 1)]
        self.s = [0.0]
        for p, q in zip(self.points, self.points[1:]):
            self.s.append(self.s[-1] + math.dist(p, q))

    @property
    def length(self) -> float:
        return self.s[-1]

    def at(self, s: float) -> Vec:
        """The point at arc length ``s`` (clamped to the path)."""
        s = min(max(s, 0.0), self.length)
        lo, hi = 0, len(self.s) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.s[mid] <= s:
                lo = mid
            else:
                hi = mid
        span = self.s[hi] - self.s[lo]
        w = 0.0 if span <= 0 else (s - self.s[lo]) / span
        p, q = self.points[lo], self.points[hi]
        return (p[0] + w * (q[0] - p[0]), p[1] + w * (q[1] - p[1]), p[2] + w * (q[2] - p[2]))


def _direction(rng: random.Random, previous: Vec | None, pull: Vec | None) -> Vec:
    """A random unit direction whose pitch stays within :data:`MAX_PITCH`, turning at most about
    60 degrees from ``previous`` and leaning towards ``pull`` (a unit vector, or None)."""
    yaw = rng.uniform(-math.pi, math.pi)
    pitch = rng.uniform(-MAX_PITCH, MAX_PITCH)
    d = (math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch))
    if previous is not None:
        d = _add(d, previous, 1.5)
    if pull is not None:
        d = _add(d, pull, 0.8)
    d = _unit(d)
    z = max(-math.sin(MAX_PITCH), min(math.sin(MAX_PITCH), d[2]))
    h = math.sqrt(max(1e-12, 1 - z * z)) / max(1e-12, math.hypot(d[0], d[1]))
    return (d[0] * h, d[1] * h, z)


def segment_clear(p: Sequence[float], q: Sequence[float], clearance: Callable[[Vec], float],
                  need: float, step: float) -> bool:
    """Whether every point of the segment ``p``-``q`` (sampled every ``step``) keeps at least
    ``need`` from every surface (``clearance`` < 0 inside geometry)."""
    n = max(1, math.ceil(math.dist(p, q) / max(step, 1e-6)))
    return all(clearance(_add(p, _sub(q, p), i / n)) >= need for i in range(n + 1))


def sample_waypoints(rng: random.Random, lo: Sequence[float], hi: Sequence[float], length: float,
                     clearance: Callable[[Vec], float], need: float, *,
                     score: Callable[[Vec], float] | None = None, starts: int = 32,
                     tries: int = 64) -> list[Vec] | None:
    """Control points of a flythrough of at least ``length`` scene units inside the box
    ``lo``..``hi``: a seeded walk of equal steps, each step through free space (``clearance``
    at least ``need``, checked densely), leaning back towards the box's centre. It starts at the
    best of ``starts`` free points by ``score`` (e.g. how enclosed a point is: a walk that
    starts inside a room stays there, since no step crosses a wall). None when the walk gets
    stuck (the caller tries another seed)."""
    center = tuple((a + b) / 2 for a, b in zip(lo, hi))
    size = max(hi[k] - lo[k] for k in range(3))
    step_len = max(min(size / 4.0, max(length / 3.0, need * 4.0)), need * 2.0, 1e-3)
    check = max(need / 2.0, step_len / 64.0, 1e-4)
    margin = need * 1.5

    def inside_box(p: Vec) -> bool:
        return all(lo[k] <= p[k] <= hi[k] for k in range(3))

    found: list[Vec] = []
    for _ in range(tries * 4):
        p = tuple(rng.uniform(lo[k], hi[k]) for k in range(3))
        if clearance(p) >= margin:  # type: ignore[arg-type]
            found.append(p)  # type: ignore[arg-type]
            if len(found) >= max(1, starts if score is not None else 1):
                break
    if not found:
        return None
    start = max(found, key=score) if score is not None else found[0]
    pts: list[Vec] = [start]  # type: ignore[list-item]
    previous: Vec | None = None
    # the spline of n control points spans about (n - 3) steps; two steps of slack each end
    n_total = math.ceil(length / step_len) + 6
    while len(pts) < n_total:
        p = pts[-1]
        to_c = _sub(center, p)
        far = _norm(to_c) / max(size / 2.0, 1e-9)
        pull = _unit(to_c) if far > 0.5 and _norm(to_c) > 1e-9 else None
        for _ in range(tries):
            d = _direction(rng, previous, pull)
            q = _add(p, d, step_len)
            if inside_box(q) and clearance(q) >= margin and segment_clear(p, q, clearance, need,
                                                                          check):
                pts.append(q)
                previous = d
                break
        else:
            return None
    return pts


@dataclass(frozen=True)
class Flythrough:
    """A flythrough: arc-length path, speed (units/s), look-ahead (s) or a fixed target point."""

    path: ArcPath
    speed: float
    look_ahead: float
    target: Vec | None = None
    offset: float = 0.0  # arc length at t = 0

    def eye(self, t: float) -> Vec:
        return self.path.at(self.offset + self.speed * t)

    def pose(self, t: float) -> Matrix:
        eye = self.eye(t)
        if self.target is not None:
            return look_at(eye, self.target)
        ahead = self.path.at(self.offset + self.speed * (t + self.look_ahead))
        return look_at(eye, ahead)


def flythrough_length(speed: float, duration: float, look_ahead: float) -> float:
    """Arc length a flythrough needs: ``duration`` seconds at ``speed`` plus the look-ahead."""
    return speed * (duration + look_ahead)


def plan_flythrough(rng: random.Random, lo: Sequence[float], hi: Sequence[float], *,
                    speed: float, duration: float, look_ahead: float,
                    clearance: Callable[[Vec], float], need: float,
                    target: Sequence[float] | None = None,
                    score: Callable[[Vec], float] | None = None) -> Flythrough | None:
    """A seeded flythrough lasting ``duration`` seconds (from the frame before the sequence to
    the one after it) through the free space of the box, or None when this seed finds none.
    The spline between control points is not checked here: the caller checks the frames and
    the path between them against the scene at each frame."""
    length = flythrough_length(speed, duration, 0.0 if target is not None else look_ahead)
    ctrl = sample_waypoints(rng, lo, hi, length, clearance, need, score=score)
    if ctrl is None:
        return None
    path = ArcPath(ctrl)
    if path.length + 1e-9 < length:
        return None
    # start anywhere the remaining path is long enough
    offset = rng.uniform(0.0, path.length - length)
    return Flythrough(path, float(speed), float(look_ahead),
                      None if target is None else tuple(float(x) for x in target), offset)  # type: ignore[arg-type]


# -- rays for the coverage check ------------------------------------------------------------------
def ray_grid(pose: Matrix, lens: float, width: int, height: int, nx: int = 8,
             ny: int = 6) -> list[tuple[Vec, Vec]]:
    """``(origin, unit direction)`` of ``nx`` x ``ny`` pixel rays spread evenly over the image of
    a ``lens`` mm camera at ``pose``, for the coverage check."""
    f = lens / SENSOR_WIDTH * max(width, height)  # focal length in pixels (sensor fit: larger side)
    eye = (pose[0][3], pose[1][3], pose[2][3])
    out = []
    for j in range(ny):
        for i in range(nx):
            x = ((i + 0.5) / nx - 0.5) * width / f
            y = (0.5 - (j + 0.5) / ny) * height / f
            d = tuple(pose[r][0] * x + pose[r][1] * y - pose[r][2] for r in range(3))
            out.append((eye, _unit(d)))
    return out
