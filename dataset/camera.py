# SPDX-License-Identifier: GPL-3.0-or-later
"""Pinhole camera model of a Blender perspective camera. Pure Python (no ``bpy``, no numpy).

Pixel coordinates: ``u`` to the right, ``v`` down, origin at the top-left *corner* of the image, so
the centre of pixel (column i, row j) is (i + 0.5, j + 0.5) and an unshifted camera has
``cx = w / 2``, ``cy = h / 2`` (the NeRF / ``transforms.json`` convention).

``K`` maps a point in the OpenCV camera frame (x right, y down, z forward) to pixels:
``[u, v, 1]^T ~ K [x, y, z]^T``. Blender's camera frame (x right, y up, looking down -z, the
frame of ``transform_matrix``) converts with ``(x, y, z)_cv = (x, -y, -z)_blender``.

The model follows Blender's own view-plane computation (``BKE_camera_params_compute_viewplane``):
sensor fit AUTO/HORIZONTAL/VERTICAL, lens shift in units of the fitted image side, non-square
pixel aspect and ``resolution_percentage``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DatasetForgeError


class CameraModelError(DatasetForgeError, ValueError):
    """The camera cannot be described by a pinhole ``K`` (orthographic, panoramic ...)."""


@dataclass(frozen=True)
class CameraParams:
    """What Blender stores; lengths in millimetres, resolution in pixels."""

    lens: float
    sensor_width: float
    sensor_height: float
    sensor_fit: str  # "AUTO" | "HORIZONTAL" | "VERTICAL"
    shift_x: float
    shift_y: float
    resolution_x: int
    resolution_y: int
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    type: str = "PERSP"


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels; ``w`` x ``h`` is the written image size."""

    fl_x: float
    fl_y: float
    cx: float
    cy: float
    w: int
    h: int

    @property
    def K(self) -> list[list[float]]:
        """3x3 intrinsic matrix (row-major nested lists)."""
        return [[self.fl_x, 0.0, self.cx], [0.0, self.fl_y, self.cy], [0.0, 0.0, 1.0]]

    def project(self, p_cv: tuple[float, float, float]) -> tuple[float, float]:
        """Project a point given in the OpenCV camera frame to pixel (u, v)."""
        x, y, z = p_cv
        return self.fl_x * x / z + self.cx, self.fl_y * y / z + self.cy


def image_size(p: CameraParams) -> tuple[int, int]:
    """Rendered image size in pixels after ``resolution_percentage`` (Blender truncates)."""
    return (p.resolution_x * p.resolution_percentage // 100,
            p.resolution_y * p.resolution_percentage // 100)


def intrinsics(p: CameraParams) -> Intrinsics:
    """Exact pinhole intrinsics of a perspective camera.

    Raises :class:`CameraModelError` for orthographic and panoramic cameras, which have no ``K``.
    """
    if p.type != "PERSP":
        raise CameraModelError(
            f"camera type {p.type} has no pinhole intrinsics; Dataset Forge renders perspective "
            "cameras only: set the camera's Type to Perspective")
    if p.lens <= 0:
        raise CameraModelError(f"focal length {p.lens} mm is not positive")
    w, h = image_size(p)
    if w <= 0 or h <= 0:
        raise CameraModelError(f"image size {w}x{h} is empty")
    aspx, aspy = float(p.pixel_aspect_x), float(p.pixel_aspect_y)
    ycor = aspy / aspx
    fit = p.sensor_fit
    sensor = p.sensor_height if fit == "VERTICAL" else p.sensor_width
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspx * w >= aspy * h else "VERTICAL"
    viewfac = float(w) if fit == "HORIZONTAL" else ycor * h
    fl_x = p.lens * viewfac / sensor
    fl_y = fl_x / ycor
    cx = w / 2.0 - p.shift_x * viewfac
    cy = h / 2.0 + p.shift_y * viewfac / ycor
    return Intrinsics(fl_x=fl_x, fl_y=fl_y, cx=cx, cy=cy, w=w, h=h)


BLENDER_TO_OPENCV = ((1.0, 0.0, 0.0, 0.0), (0.0, -1.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0),
                     (0.0, 0.0, 0.0, 1.0))
"""Right-multiply a Blender/OpenGL camera-to-world matrix by this to get the OpenCV one."""


def orthonormal_pose(m: list[list[float]]) -> list[list[float]]:
    """Remove scale and shear from a 4x4 camera-to-world matrix (Gram-Schmidt on the columns,
    keeping the viewing axis -z exact) so that its rotation part is orthonormal."""
    import math

    cols = [[m[r][c] for r in range(3)] for c in range(3)]

    def norm(v):
        n = math.sqrt(sum(x * x for x in v))
        if n == 0:
            raise CameraModelError("camera matrix has a zero-length axis (scale 0)")
        return [x / n for x in v]

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    z = norm(cols[2])
    y = norm([a - dot(cols[1], z) * b for a, b in zip(cols[1], z)])
    x = [y[1] * z[2] - y[2] * z[1], y[2] * z[0] - y[0] * z[2], y[0] * z[1] - y[1] * z[0]]
    out = [[x[r], y[r], z[r], m[r][3]] for r in range(3)]
    out.append([0.0, 0.0, 0.0, 1.0])
    return out
