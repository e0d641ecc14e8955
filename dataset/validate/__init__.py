# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a rendered sequence or datasets folder: files, schema, and geometric consistency judged
per thing, never assuming a static world.

``validate(path)`` returns a report dict and (``write=True``) writes ``validation.json`` and a
readable ``validation.txt`` next to the data; in a datasets folder every sequence listed in
``manifest.json`` gets a ``"validation"`` entry. Each check is ``{"ok": True | False | None,
"message", ...}``: None means **not checked**, and the message says why (no ids, no
``objects.json``, a motion it cannot model); it never counts as passed or failed.

``schema``, ``frame_count``, ``files``
    ``transforms.json`` is complete and consistent (rigid poses, ``intrinsics`` = ``fl_x, fl_y,
    cx, cy``, conventions for each kind); frame numbers are consecutive and match
    ``info.json`` / the manifest; every file reads with the right size and channels.
``objects``
    ``objects.json`` against the data: per-frame camera names, ``object_to_camera`` =
    ``inv(camera pose) @ object_to_world`` (``pose_tol``), every instance id in the image is
    listed and carries its object's id, visible pixel counts and boxes match the instance image
    exactly, and the depth points of each thing lie inside its 3D box (``depth_rel`` plus half a
    pixel laterally).
``camera_cuts``
    where the camera changes between t and t+1, the forward flow of t and the backward flow of
    t+1 are marked invalid (and are then not checked).
``flow_rigid``
    for every rigid thing (static or moving, instances included): flow predicted from planar
    depth, ``K``, camera poses and the thing's ``object_to_world`` at both frames, against the
    stored flow on the thing's interior pixels; per thing, the ``quantile`` (p95) of
    ``|error| / (flow_px + flow_rel |predicted|)`` must be <= 1.
``flow_cycle``
    forward/backward cycle ``|F(p) + B(p + F(p))|`` on the things flow_rigid cannot model
    (deforming things; every thing when there is no ``objects.json``), skipping points hidden in
    the other frame (landing on another thing); per thing p95 of ``error / (cycle_px + cycle_rel
    |F|)`` <= 1. Without ids the image median is judged.
``intrinsics``
    ``fl_x, fl_y, cx, cy`` fitted by least squares from depth and the stored normals (chords of
    the back-projected surface are perpendicular to the normal; linear in ``1/f`` and ``c/f``),
    no camera motion needed; each must agree with ``K`` (``focal_rel``, ``principal_px``).
    Parameters the surfaces do not constrain (standard error > 1/3 of the tolerance) are named
    as not checked.
``normals``
    on flat patches (the stored normals 2 px around within 0.05 deg: there every normal kind is
    the facet's), median angle between stored normals and normals of the surface back-projected
    from depth ``<= normal_deg``; unit length within ``unit_tol``. Smooth-shaded, curved and thin
    surfaces are measured, not judged.
``segmentation_ids``, ``coverage``
    ids are integers listed in ``segmentation_ids.json``; depth > 0 and id > 0 agree, and
    ``|n| > 0`` only where depth > 0, on all but ``coverage_frac`` of the pixels (depth without a
    normal is fractional alpha, allowed).

A sequence validate itself breaks on gets the verdict "could not check: ERROR" and the others
are still judged (:func:`~.run.judge`); exit codes and the report model:
:mod:`dataset.documents.validation`.
"""

from .report import (
           CHECKS,
           REPORT_JSON,
           REPORT_TXT,
           format_report,
           progress_bar,
           update_manifest_file,
           write_report,
)
from .run import validate, validate_sequence
from .thresholds import Thresholds

__all__ = ["CHECKS", "REPORT_JSON", "REPORT_TXT", "Thresholds", "format_report", "progress_bar",
           "update_manifest_file", "validate", "validate_sequence", "write_report"]
