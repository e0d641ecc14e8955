# SPDX-License-Identifier: GPL-3.0-or-later
"""Flow checks over frame pairs: ``flow_rigid`` (stored flow vs the flow predicted from depth,
``K``, camera poses and object poses, per rigid thing), ``flow_cycle`` (forward/backward cycle
per thing the rigid check cannot model: deforming things, or every thing without
``objects.json``) and ``camera_cuts`` (flow across a change of camera must be marked invalid)."""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from ..documents.base import JSONObject
from ..occlusion import cycle_error, sample_bilinear
from ..rigid_motion import relative_transform, rigid_flow
from .geometry import group_quantile, interior, norm
from .things import FrameData, ThingMap
from .thresholds import Thresholds, check, num


class _Worst(TypedDict):
    """A thing's worst frame pair so far: the quantile of error / tolerance, the error (px), its
    pixel count and the pair (``"t->t+1 forward"``)."""

    ratio: float
    px: float
    pixels: int
    pair: str


class FlowStats:
    """Accumulates per-thing worst quantiles over the frame pairs of a sequence."""

    def __init__(self, t: Thresholds, things: ThingMap):
        self.t = t
        self.things = things
        self.rigid: dict[str, _Worst] = {}
        self.cycle: dict[str, _Worst] = {}
        self.not_checked: dict[str, str] = {}
        self.unassigned_px = 0
        self.directions = 0
        self.skipped_invalid: list[str] = []
        self.cut_problems: list[str] = []
        self.cut_notes: list[str] = []
        self.image_cycle: list[float] = []

    def _worst(self, table: dict, key: str, ratio: float, px: float, n: int, pair: str) -> None:
        if key in self.not_checked and self.not_checked[key].startswith("fewer than"):
            del self.not_checked[key]
        cur = table.get(key)
        if cur is None or ratio > cur["ratio"]:
            table[key] = {"ratio": ratio, "px": px, "pixels": n, "pair": pair}

    def _few(self, key: str, table: dict, n: int) -> None:
        if key not in table:
            self.not_checked.setdefault(key, f"fewer than {self.t.min_object_pixels} interior pixels "
                                             f"(max {n})")

    def pair(self, seq, a: FrameData, b: FrameData) -> None:
        """Check the pair of consecutive frames ``a`` (t) and ``b`` (t+1), both directions."""
        cam_a, cam_b = seq.camera_of(a.index), seq.camera_of(b.index)
        fwd_ok, bwd_ok = seq.flow_valid(a.index, "forward"), seq.flow_valid(b.index, "backward")
        tag = f"{a.number}->{b.number}"
        if cam_a is not None and cam_b is not None and cam_a != cam_b:
            if fwd_ok or bwd_ok:
                self.cut_problems.append(
                    f"frames {tag}: the camera changes ({cam_a} -> {cam_b}) but the "
                    f"{'forward' if fwd_ok else ''}{' and ' if fwd_ok and bwd_ok else ''}"
                    f"{'backward' if bwd_ok else ''} flow is not marked invalid")
        elif not (fwd_ok and bwd_ok):
            self.cut_notes.append(f"frames {tag}: flow marked invalid without a camera change")
        if a.flow is None or b.flow is None:
            return
        for src, dst, own, other, valid, name in (
                (a, b, a.flow[..., :2], b.flow[..., 2:], fwd_ok, f"{tag} forward"),
                (b, a, b.flow[..., 2:], a.flow[..., :2], bwd_ok, f"{b.number}->{a.number} backward")):
            if not valid:
                self.skipped_invalid.append(name)
                continue
            self.directions += 1
            rigid_cols = self._rigid(src, dst, own, name)
            if fwd_ok and bwd_ok:  # the cycle reads the other frame's opposite flow too
                self._cycle(src, dst, own, other, name, rigid_cols)

    def _rigid(self, a: FrameData, b: FrameData, flow: np.ndarray, pair: str) -> np.ndarray:
        """Judge every rigid thing of ``a``; returns the columns judged."""
        objs = self.things.objs
        if objs is None or a.labels is None or a.depth is None or not len(objs.instance_ids):
            return np.zeros(0, np.int64)
        t = self.t
        lab = a.labels
        core = interior(a.depth, lab, t.depth_jump)
        if a.smooth is not None:
            core &= a.smooth
        covered = core & (lab >= 0)
        self.unassigned_px += int(np.count_nonzero(core & (lab < 0)))
        cols = np.unique(lab[covered])
        T = np.full((len(objs.instance_ids), 4, 4), np.nan)
        rigid = np.zeros(len(objs.instance_ids), bool)
        for c in cols:
            key = self.things.name(int(c))
            if objs.deforming[c]:
                self.not_checked.setdefault(key, "deforms: checked by flow_cycle only")
                continue
            oa, ob = objs.object_to_world[a.index, c], objs.object_to_world[b.index, c]
            if not (np.isfinite(oa).all() and np.isfinite(ob).all()):
                self.not_checked.setdefault(key, f"no pose in objects.json at frame "
                                                 f"{b.number if np.isfinite(oa).all() else a.number}")
                continue
            T[c] = relative_transform(a.pose, b.pose, oa, ob)
            rigid[c] = True
        m = covered & rigid[np.maximum(lab, 0)]
        idx = np.flatnonzero(m)
        if idx.size == 0:
            return np.flatnonzero(rigid)
        L = lab.reshape(-1)[idx]
        idx, L = _thin(idx, L, len(objs.instance_ids))
        pred, front = rigid_flow(a.depth, a.K, b.K, idx, L, T)
        stored = flow.reshape(-1, 2)[idx].astype(np.float64)
        res = norm(pred - stored)
        ratio = res / (t.flow_px + t.flow_rel * norm(pred))
        q = group_quantile([ratio[front], res[front]], L[front], t.quantile)
        for c, (r, px, n) in q.items():
            key = self.things.name(c)
            if n < t.min_object_pixels:
                self._few(key, self.rigid, n)
                continue
            self._worst(self.rigid, key, r, px, n, pair)
        return np.flatnonzero(rigid)

    def _cycle(self, a: FrameData, b: FrameData, flow_ab: np.ndarray, flow_ba: np.ndarray, pair: str,
               rigid_cols: np.ndarray) -> None:
        t = self.t
        lab_a = a.labels if a.labels is not None else a.ids
        lab_b = b.labels if a.labels is not None else b.ids
        if lab_a is None or lab_b is None:
            err, inside = cycle_error(flow_ab, flow_ba)
            core = interior(a.depth, None, t.depth_jump) if a.depth is not None else np.ones(err.shape, bool)
            m = core & inside
            if m.any():
                self.image_cycle.append(float(np.median(err[m])))
            return
        h, w = lab_a.shape
        core = interior(a.depth, lab_a, t.depth_jump) & (lab_a > (-1 if a.labels is not None else 0))
        if a.smooth is not None:
            core &= a.smooth
        if a.labels is not None and rigid_cols.size:
            core &= ~np.isin(lab_a, rigid_cols)
        idx = np.flatnonzero(core)
        if idx.size == 0:
            return
        idx, _ = _thin(idx, lab_a.reshape(-1)[idx] - lab_a.min(), int(lab_a.max() - lab_a.min()) + 1)
        # the cycle at those pixels only: F(p) + B(p + F(p)), B sampled bilinearly
        r, c = np.divmod(idx, w)
        f = flow_ab.reshape(-1, 2)[idx].astype(np.float64)
        qu, qv = c + 0.5 + f[:, 0], r + 0.5 + f[:, 1]
        inside = (qu >= 0) & (qu <= w) & (qv >= 0) & (qv <= h)
        back = sample_bilinear(flow_ba.astype(np.float32), qu, qv)
        err = norm(f + back)
        # points hidden in b (another thing in front, or off that thing's interior) are not judged
        core_b = interior(b.depth, lab_b, t.depth_jump)
        qi = np.clip(np.floor(qu).astype(np.int64), 0, w - 1)
        qj = np.clip(np.floor(qv).astype(np.int64), 0, h - 1)
        L = lab_a.reshape(-1)[idx]
        keep = inside & (lab_b[qj, qi] == L) & core_b[qj, qi]
        idx, L, err, f = idx[keep], L[keep], err[keep], f[keep]
        if idx.size == 0:
            return
        e = err
        motion = norm(f)
        q = group_quantile([e / (t.cycle_px + t.cycle_rel * motion), e], L, t.quantile)
        for c, (r, px, n) in q.items():
            key = self.things.name(c) if a.labels is not None else f"object {c}"
            if n < t.min_object_pixels:
                self._few(key, self.cycle, n)
                continue
            self._worst(self.cycle, key, r, px, n, pair)

    # -- verdicts ------------------------------------------------------------------------

    def results(self, has_flow: bool) -> dict[str, JSONObject]:
        t = self.t
        out: dict[str, JSONObject] = {}
        if self.cut_problems:
            out["camera_cuts"] = check(False, "; ".join(self.cut_problems[:5]), notes=self.cut_notes[:5])
        else:
            out["camera_cuts"] = check(True if has_flow else None,
                                       "" if has_flow else "no flow", notes=self.cut_notes[:5],
                                       invalid_directions=self.skipped_invalid[:20])
        if not has_flow:
            out["flow_rigid"] = check(None, "no flow")
            out["flow_cycle"] = check(None, "no flow")
            return out
        if not self.directions:
            msg = "no pair of consecutive readable frames with valid flow"
            out["flow_rigid"] = check(None, msg)
            out["flow_cycle"] = check(None, msg)
            return out
        not_checked = {k: v for k, v in self.not_checked.items() if k not in self.rigid}
        if self.unassigned_px:
            not_checked[f"{self.unassigned_px} interior pixel(s) of no listed instance"] = (
                self.things.reason or "their instance id is not in objects.json")
        out["flow_rigid"] = _verdict(
            self.rigid, f"p{100 * t.quantile:g} of |flow - predicted| / ({t.flow_px} px + "
            f"{100 * t.flow_rel:g}% of the motion)", "stored flow disagrees with depth + K + camera and "
            "object poses (flipped or swapped flow channels, wrong pose or intrinsics?)",
            not_checked, self.things.reason if self.things.objs is None or not self.rigid else "",
            unassigned_pixels=self.unassigned_px)
        cyc_nc = {k: v for k, v in not_checked.items() if k not in self.cycle and not v.startswith("deforms")}
        if self.image_cycle and not self.cycle:
            med = float(np.median(self.image_cycle))
            ok = med <= t.cycle_px
            out["flow_cycle"] = check(ok, "" if ok else f"median cycle error over the image {med:.3g} px > "
                                      f"{t.cycle_px} (no ids: occlusions cannot be told apart, so the "
                                      "image median is judged)", median_px=num(med), things={})
        else:
            out["flow_cycle"] = _verdict(
                self.cycle, f"p{100 * t.quantile:g} of |F(p) + B(p + F(p))| / ({t.cycle_px} px + "
                f"{100 * t.cycle_rel:g}% of the motion)", "forward and backward flow disagree",
                cyc_nc, "not needed: every thing is rigid and judged by flow_rigid" if self.rigid else
                "no thing with enough interior pixels")
        return out


_PER_THING = 50000  # pixels judged per thing and frame pair (a regular subsample of bigger things)


def _thin(idx: np.ndarray, L: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep every k-th pixel (by flat index) of things with more than ``_PER_THING`` pixels, so a
    quantile per thing costs the same on a 1080p frame as on a small one; small things keep all."""
    if idx.size <= _PER_THING:
        return idx, L
    counts = np.bincount(L, minlength=n_labels)
    stride = np.maximum(1, counts // _PER_THING)[L]
    keep = idx % stride == 0
    return idx[keep], L[keep]


def _verdict(table: dict[str, _Worst], measure: str, meaning: str, not_checked: dict[str, str],
             empty_reason: str, **extra: Any) -> JSONObject:
    things = {k: {"ratio": num(v["ratio"]), "px": num(v["px"]), "pixels": v["pixels"], "pair": v["pair"]}
              for k, v in sorted(table.items())}
    bad = sorted((k for k, v in table.items() if v["ratio"] > 1.0), key=lambda k: -table[k]["ratio"])
    if not table:
        return check(None, empty_reason or "nothing to judge", things={}, not_checked=not_checked, **extra)
    msg = ""
    if bad:
        msg = (f"{measure} > 1 on " + ", ".join(f"{k} ({table[k]['ratio']:.3g}, {table[k]['px']:.3g} px, "
                                                 f"frames {table[k]['pair']})" for k in bad[:5])
               + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "") + f": {meaning}")
    worst = max(table.values(), key=lambda v: v["ratio"])
    return check(not bad, msg, worst_ratio=num(worst["ratio"]), worst_px=num(worst["px"]), things=things,
                 failed_things=bad, not_checked=not_checked, **extra)
