# SPDX-License-Identifier: GPL-3.0-or-later
"""Rendering a frame and handing it to the journal (:class:`_Commits`), with the flow file of a
frame fixed first where the lens changes (:func:`fix_flow_file`; ``dataset/flow_intrinsics.py``,
docs/ground_truth.md), and its segmentation file and its flow file made from depth written while
the next frame renders (the object tracker's ``IdsWriter``, ``flow_plan.FlowWriter``: the frame
is journaled once they are written)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..dataset import camera as cam_model
from ..dataset import exr, layout
from ..dataset import flow_intrinsics as flow_k
from ..dataset.documents.transforms import FrameEntry
from ..dataset.journal import Journal
from ..dataset.verify import render_save_error, replace_written
from ..settings import Settings
from ..wire.events import Emit
from ..wire.protocol import Ev
from . import compat, scene_setup, topology
from .passes import PassRig


@dataclass(frozen=True)
class _Sequence:
    """One sequence being rendered: its folder, id, scene name (for events and files) and
    frame range ``a..b`` (inclusive)."""

    out: Path
    id: str
    scene_name: str
    a: int
    b: int


def _rss_mib() -> float | None:
    """This process's resident memory in MiB (Linux), for the memory benchmark and the log."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _render_frame(scene, rig: PassRig, sq: _Sequence, f: int, rgb: str) -> float:
    """Render frame ``f`` (the scene is at it) to ``sq.out / rgb`` and its ground truth; returns
    the render time (s). A "cannot save" from Blender becomes a one-line :class:`WriteError`."""
    rig.prepare_frame(f)
    # write_still does not expand '#': name the file of this frame explicitly.
    scene.render.filepath = str((sq.out / rgb).with_suffix(""))
    t0 = time.perf_counter()
    try:
        compat.render(write_still=True)
        rig.render_data(f)  # ground truth of the pixel centres (none with filtered_passes)
    except RuntimeError as exc:  # "cannot save": a write error, said in one line
        raise (render_save_error(str(exc)) or exc) from None
    dt = time.perf_counter() - t0
    rig.finish_frame(f, rendered=True)
    return dt


def _journal_frame(rig: PassRig, journal: Journal, sq: _Sequence, f: int, files: list[str],
                   dt: float, emit: Emit) -> None:
    """Hand the rendered frame ``f``'s ``files`` to the journal once its segmentation and flow
    files are written (verified now, journaled during the next render, then ``frame_done`` with the
    render time ``dt`` (s) and memory)."""
    for writer in _writers(rig):
        writer.wait(f)
    journal.mark_done(f, files, then=partial(
        emit, {"event": Ev.FRAME_DONE, "job": sq.id, "scene": sq.scene_name, "frame": f,
               "seconds": round(dt, 4), "rss_mib": _rss_mib()}))


def _writers(rig: PassRig) -> list:
    """The background writers of a frame's files: the object tracker's segmentation file writer
    (with segmentations) and the flow writer (flow from depth)."""
    tracker = getattr(rig, "tracker", None)
    return [w for w in (None if tracker is None else tracker.writer,
                        getattr(rig, "flow_writer", None)) if w is not None]


class _Commits:
    """Renders the frames of a sequence and hands them to the journal. With flows and a lens that
    may change (:func:`scene_setup.lens_may_change`) a rendered frame waits for the next frame's
    lens: its flow file may need re-projecting first (:func:`_commit_flow_frame`). Otherwise,
    with segmentations or a flow made from depth, it is journaled after the next frame's render,
    during which those files were written (at 1920x1080 the ZIP writes took 44 ms and
    0.2-0.4 s). The lenses of
    frames ``a - 1 .. b + 1`` and the meshes whose vertex count changes
    (:class:`topology.TopologyWatch`, created before any ``frame_set``) then decide the flow
    validity flags (:meth:`mark_flow_validity`)."""

    def __init__(self, scene, rig: PassRig, journal: Journal, sq: _Sequence, settings: Settings,
                 emit: Emit):
        self.scene, self.rig, self.journal, self.sq = scene, rig, journal, sq
        self.settings, self.emit = settings, emit
        self.flows = settings.flows
        # a flow made from depth (.flow_plan) projects with each frame's own camera: no fix, and
        # no mesh of the sequence changes (the Vector pass's vertex matching is not used)
        self.from_depth = self.flows and rig.flow_plan is not None
        self.defer = self.flows and not self.from_depth and scene_setup.lens_may_change(scene)
        self.topology = (topology.TopologyWatch(scene) if self.flows and not self.from_depth
                         else None)
        self.lenses = {sq.a - 1: _lens_at(scene, sq.a - 1)} if self.flows else {}
        self.pending: _Rendered | None = None
        self.writing: _Rendered | None = None  # rendered, its segmentation file being written

    def lens_known(self, f: int, lens: _Lens) -> None:
        """Frame ``f`` is set and its lens known: the frame before it can be journaled."""
        if self.flows:
            self.lenses[f] = lens
        if self.defer:
            self._commit_pending()

    def render(self, f: int, rgb: str, files: list[str]) -> None:
        """Render frame ``f`` (the scene is at it); journal it now, after the next render (its
        segmentation file being written), or once the next frame's lens is known when its flow
        may need re-projecting."""
        if self.topology is not None:
            self.topology.expect(f)
        done = _Rendered(f, files, _render_frame(self.scene, self.rig, self.sq, f, rgb))
        if self.defer:
            self.pending = done
            return
        self._journal_written()  # the frame before, its segmentation file written meanwhile
        if not _writers(self.rig):
            _journal_frame(self.rig, self.journal, self.sq, f, files, done.seconds, self.emit)
        else:
            self.writing = done

    def finish(self) -> None:
        """After the last frame: journal the frame still waiting (the lens of ``b + 1`` read) and
        wait for the journal. Leaves the scene at frame ``b``."""
        if self.flows:
            self.lenses[self.sq.b + 1] = _lens_at(self.scene, self.sq.b + 1)
            self.scene.frame_set(self.sq.b)
        if self.defer:
            self._commit_pending()
        self._journal_written()
        self.journal.flush()

    def mark_flow_validity(self, frames_meta: list[FrameEntry]) -> list[str]:
        """With flows, set every frame's ``flow_forward_valid`` / ``flow_backward_valid``: false
        where the neighbouring frame (also ``a - 1`` and ``b + 1``, outside the sequence) has
        another active camera (a camera cut: timeline markers bound to cameras) or intrinsics
        the flow cannot be made exact for (:func:`_flow_exact`), and where a drawn mesh changes
        its vertex count (each named in a warning). Returns the camera names in order of first
        use."""
        if self.flows:
            def exact(cur: _Lens, other: _Lens) -> bool:
                if self.from_depth:
                    return (cur.camera is not None and cur.camera == other.camera
                            and cur.k is not None and other.k is not None)
                # a lens that changed although nothing animates it was not re-projected
                return _flow_exact(cur, other) and (self.defer or cur.k == other.k)
            lenses = self.lenses
            for fr in frames_meta:
                f = fr.frame
                fr.flow_backward_valid = exact(lenses[f], lenses[f - 1])
                fr.flow_forward_valid = exact(lenses[f], lenses[f + 1])
            # meshes whose vertex count changes have no Cycles motion
            for message in self.topology.invalidate(frames_meta) if self.topology else ():
                self.emit({"event": Ev.WARNING, "scene": self.sq.scene_name, "job": self.sq.id,
                           "message": message})
        return list(dict.fromkeys(fr.camera for fr in frames_meta))

    def close(self) -> None:
        """Also on a failure or a spent frame budget: a rendered frame whose background files
        are written is still journaled (it is complete), one whose write failed is not."""
        if self.topology is not None:
            self.topology.close()
        try:
            self._journal_written()
        except Exception:  # noqa: BLE001 - the frame stays not done (rendered again next time)
            pass
        self.journal.close()

    def _journal_written(self) -> None:
        done, self.writing = self.writing, None
        if done is not None:
            _journal_frame(self.rig, self.journal, self.sq, done.frame, done.files, done.seconds,
                           self.emit)

    def _commit_pending(self) -> None:
        if self.pending is not None:
            _commit_flow_frame(self.pending, self.lenses, self.rig, self.journal, self.sq,
                               self.settings, self.emit)
            self.pending = None


# -- Flow under animated intrinsics (dataset/flow_intrinsics.py, docs/ground_truth.md) -----------
@dataclass(frozen=True)
class _Lens:
    """The active camera's name and intrinsics at one frame (``k`` None: no camera, or one
    without a pinhole ``K``)."""

    camera: str | None
    k: cam_model.Intrinsics | None


@dataclass(frozen=True)
class _Rendered:
    """A rendered frame waiting for its flow fix before the journal: its files and render time."""

    frame: int
    files: list[str]
    seconds: float


def _lens_at(scene, f: int) -> _Lens:
    """Set the scene to frame ``f`` and return its camera and intrinsics."""
    scene.frame_set(f)
    cam = scene.camera
    return _Lens(None, None) if cam is None else _Lens(cam.name, scene_setup.pinhole(scene, cam))


def _vector_pass_model() -> flow_k.VectorPassModel | None:
    m = compat.VECTOR_PASS_INTRINSICS
    return None if m is None else flow_k.VectorPassModel(m)


def _flow_exact(cur: _Lens, other: _Lens) -> bool:
    """Is the flow from the frame of ``cur`` towards the frame of ``other`` right once
    :func:`_commit_flow_frame` has run: the same camera, and the same intrinsics or intrinsics
    whose change is corrected exactly."""
    if cur.camera is None or cur.camera != other.camera or cur.k is None or other.k is None:
        return False
    return flow_k.correctable(np.asarray(cur.k.K), np.asarray(other.k.K), (cur.k.w, cur.k.h),
                              (other.k.w, other.k.h), _vector_pass_model())


def _commit_flow_frame(done: _Rendered, lenses: dict[int, _Lens], rig: PassRig,
                       journal: Journal, sq: _Sequence, settings: Settings, emit: Emit) -> None:
    """Make the flow file of the rendered frame follow its neighbours' intrinsics, then hand the
    frame to the journal. ``lenses`` holds the frames ``done.frame - 1 .. + 1``."""
    f = done.frame
    fix_flow_file(sq.out / layout.gt_file("flow", f), *rig.flow_surface(f), lenses[f],
                  lenses[f - 1], lenses[f + 1], settings.exr_codec)
    _journal_frame(rig, journal, sq, f, done.files, done.seconds, emit)


def fix_flow_file(path: Path, mask_path: Path, scratch: bool, cur: _Lens, prev: _Lens,
                  nxt: _Lens, codec: str) -> bool:
    """Rewrite the flow EXR ``path`` of a frame (lens ``cur``) where the neighbour's intrinsics
    differ and the change is exactly correctable (forward towards ``nxt``, backward towards
    ``prev``); only surface pixels (``mask_path`` > 0: the depth file, or a ``scratch`` mask
    that is deleted here; Cycles' background flow stays 0) change. The file keeps its channels
    and codec and is replaced atomically. Returns True when the file was rewritten."""
    model = _vector_pass_model()
    todo = [(sl, other) for sl, other in ((slice(0, 2), nxt), (slice(2, 4), prev))
            if other.k is not None and cur.k is not None and other.k != cur.k
            and _flow_exact(cur, other)]
    if todo:
        names = compat.EXR_CHANNELS["RGBA"]
        flow = exr.read_stack(path, names)
        mask = exr.read_single(mask_path) > 0
        k_cur = np.asarray(cur.k.K, np.float64)
        for sl, other in todo:
            k_other = np.asarray(other.k.K, np.float64)
            flow[..., sl] = flow_k.correct_flow_for_intrinsics(
                flow[..., sl], flow_k.used_intrinsics(k_cur, k_other, model), k_other, mask)
        replace_written(path, lambda tmp: exr.write_channels(
            tmp, {n: flow[..., i] for i, n in enumerate(names)}, compression=codec))
    if scratch:
        mask_path.unlink(missing_ok=True)
    return bool(todo)
