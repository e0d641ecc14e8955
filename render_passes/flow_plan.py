# SPDX-License-Identifier: GPL-3.0-or-later
"""Flow from depth (docs/ground_truth.md, "Flow"): in a sequence where nothing drawn changes
shape, the flow of every pixel is where its surface point, moved with its object (rigid) and seen
by the camera of frame t±1, lands. :func:`survey` decides that before the first render, from the
depsgraph's own updates between the frames ``a - 1 .. b + 1``, and records the cameras and the
moving objects' transforms; :class:`FlowWriter` then writes each frame's flow file from the
pixel-centre depth (and object index) of the render that writes the ground truth
(:func:`dataset.rigid_motion.surface_flow`). Without the Vector pass no render evaluates Cycles'
motion steps (frames t-1 and t+1, 0.7-0.9 s per render call on a 50,000-instance scatter); any
sequence the survey cannot vouch for keeps the Vector pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ..dataset import exr, layout, png
from ..dataset.frame_writer import FrameWriter
from ..dataset.rigid_motion import surface_flow
from ..dataset.verify import replace_written
from ..settings import Settings
from . import compat, scene_setup, segmentation
from .geometry import structural_deformer

# Datablocks whose change moves or reshapes no surface (a Material only with bump-only
# displacement, checked apart; a shader node tree changes colours only).
_NO_SURFACE = {"Scene", "Camera", "Light", "World", "Action", "Image", "Texture", "Mask",
               "MovieClip", "Speaker", "LightProbe", "Palette", "Sound", "Text", "WorkSpace",
               "Screen", "WindowManager", "Brush"}
_NO_SURFACE_OBJECTS = {"CAMERA", "LIGHT", "LIGHT_PROBE", "LIGHTPROBE", "SPEAKER"}


@dataclass
class FlowPlan:
    """What the flow of a sequence's frames is made from: per frame ``a - 1 .. b + 1`` the active
    camera ``(K (3, 3), pose (4, 4))`` (None: no pinhole camera), and the object-to-world
    ``(4, 4)`` of every drawn object that moves, by name (``movers``)."""

    cameras: dict[int, tuple[np.ndarray, np.ndarray] | None]
    movers: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


class _Updates:
    """A ``frame_change_post`` handler: the first thing of each ``frame_set`` that breaks flow
    from depth (a reshaped surface, an instancer or a datablock that may move geometry), and the
    drawn objects that only moved."""

    def __init__(self, movers_allowed: bool):
        self.movers_allowed = movers_allowed
        self.blocker: str | None = None
        self.movers: set[str] = set()
        self.listening = False

    def __call__(self, scene, depsgraph=None) -> None:
        if not self.listening or self.blocker is not None:
            return
        if depsgraph is None:
            self.blocker = "a frame change without its depsgraph"
            return
        try:
            for u in depsgraph.updates:
                self.blocker = self._judge(u)
                if self.blocker is not None:
                    return
        except Exception as exc:  # noqa: BLE001 - Blender would print it and go on: unvouched
            self.blocker = f"the depsgraph's updates could not be read ({type(exc).__name__})"

    def _judge(self, u) -> str | None:
        idb = getattr(u.id, "original", None) or u.id
        kind = type(idb).__name__
        if kind in _NO_SURFACE:
            return None
        if isinstance(idb, bpy.types.Material):
            return None if idb.displacement_method == "BUMP" else f"material '{idb.name}' displaces"
        if isinstance(idb, bpy.types.NodeTree):
            return None if idb.bl_idname == "ShaderNodeTree" else f"node tree '{idb.name}' changes"
        if not isinstance(idb, bpy.types.Object):
            return f"{kind} '{idb.name}' changes"
        if idb.type in _NO_SURFACE_OBJECTS or (idb.type == "EMPTY" and idb.instance_type == "NONE"):
            return None
        if u.is_updated_geometry or idb.type == "EMPTY":
            return f"'{idb.name}' changes shape or what it instances"
        if not u.is_updated_transform or idb.type not in segmentation.RENDERABLE:
            return None  # a parent or an armature: what it moves is listed itself
        if idb.library is not None:
            return f"linked '{idb.name}' moves (it keeps its own Object Index)"
        if not self.movers_allowed:
            return (f"'{idb.name}' moves (objects are moved from depth only with segmentations, "
                    "in a scene without instances)")
        self.movers.add(idb.name_full)
        return None


def survey(scene, settings: Settings, a: int, b: int) -> tuple[FlowPlan | None, str]:
    """A :class:`FlowPlan` for frames ``a .. b`` when their flow can be made from depth, else
    None; with the reason either way (one line, for the log). Leaves the scene at a frame of
    ``a - 1 .. b + 1`` (the caller sets the frames it renders)."""
    vl = scene_setup.view_layer(scene)
    why = _refusal(scene, settings, vl)
    if why:
        return None, why
    drawn = segmentation.rendered_objects(scene, vl)
    watch = _Updates(settings.segmentations and not segmentation.draws_instances(drawn))
    frames = range(a - 1, b + 2)
    cameras: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
    bpy.app.handlers.frame_change_post.append(watch)
    try:
        for f in frames:
            watch.listening = f > a - 1  # the first change comes from wherever the scene was
            scene.frame_set(f)
            if watch.blocker is not None:
                return None, f"frame {f}: {watch.blocker}"
            cameras[f] = _camera(scene)
    finally:
        bpy.app.handlers.frame_change_post.remove(watch)
    movers: dict[str, dict[int, np.ndarray]] = {n: {} for n in sorted(watch.movers)}
    if movers:
        for f in frames:
            scene.frame_set(f)
            for name in movers:
                movers[name][f] = np.array(bpy.data.objects[name].matrix_world, np.float64)
    return FlowPlan(cameras, movers), (f"{len(movers)} objects move rigidly" if movers
                                      else "only the camera moves")


def _refusal(scene, settings: Settings, vl) -> str:
    """Why a sequence keeps the Vector pass without looking at its frames ('' if it need not)."""
    if not settings.flows or settings.filtered_passes:
        return "no flow, or filtered_passes (flow averaged by Cycles)"
    if vl.use_pass_vector:
        return "the view layer's own Vector pass is on (the file's compositor may use it)"
    # simulated state (checked before any frame is set: the survey's frame jumps would step it)
    if scene_setup.simulation_objects(scene) or scene_setup.unbaked_caches(scene):
        return "simulations or physics caches"
    for ob in scene.objects:
        for m in ob.modifiers:
            if m.type == "PARTICLE_SYSTEM" and m.show_render and not static_hair(m.particle_system):
                return f"'{ob.name}' has particles that move (emitted, or hair dynamics)"
    for ob in segmentation.rendered_objects(scene, vl):
        if ob.type in segmentation.RENDERABLE and structural_deformer(ob):
            return f"'{ob.name}' deforms"
    return ""


def static_hair(psys) -> bool:
    """Whether particle system ``psys`` is hair without dynamics: its strands (and what they
    instance) stay where the emitter puts them at every frame, so the depsgraph's updates
    between frames say whether anything of it moves (the emitter, the instanced objects, the
    particle settings); emitted particles are a simulation stepped frame by frame."""
    return psys.settings.type == "HAIR" and not psys.use_hair_dynamics


def _camera(scene) -> tuple[np.ndarray, np.ndarray] | None:
    cam = scene.camera
    k = None if cam is None else scene_setup.pinhole(scene, cam)
    if k is None:
        return None
    return np.asarray(k.K, np.float64), np.asarray(scene_setup.camera_pose(cam), np.float64)


class FlowWriter(FrameWriter):
    """Writes the flow file of each frame of a sequence from its :class:`FlowPlan`, the scratch
    depth (+ object index) file the rig's compositor wrote and the object ids of the movers
    (``ids``: name -> Object Index value), on the frame writer's thread while the next frame
    renders (at 1920x1080 the ZIP write alone takes 0.2-0.4 s); :meth:`wait` before the frame
    is journaled."""

    def __init__(self, plan: FlowPlan, seq_dir: Path, codec: str, ids: dict[str, int],
                 preview: bool = False):
        super().__init__("dataset_forge_flow")
        self.plan, self.seq_dir, self.codec, self.preview = plan, Path(seq_dir), codec, preview
        self.movers = [(ids[n], m) for n, m in plan.movers.items() if ids.get(n, 0) > 0]

    def submit(self, frame: int, scratch: Path) -> None:
        """Write ``frame``'s flow from its ``scratch`` in the background (:meth:`write`)."""
        self._queue(frame, self.write, frame, scratch)

    def write(self, frame: int, scratch: Path) -> None:
        """Read the scratch of ``frame``, write its flow EXR (forward, backward) atomically and
        delete the scratch; a write failure is one :class:`WriteError` line."""
        names = compat.EXR_CHANNELS["RGBA"]
        ch = exr.read_channels(scratch)
        z = ch[names[0]] if names[0] in ch else next(iter(ch.values()))
        index = ch.get(names[1]) if self.movers else None
        cams = self.plan.cameras
        out = np.zeros(z.shape + (4,), np.float32)
        for sl, other in ((slice(0, 2), frame + 1), (slice(2, 4), frame - 1)):
            if cams.get(frame) is None or cams.get(other) is None:
                continue  # no flow there: the frame's validity flag says so
            labels, objects = self._labels(index, frame, other)
            out[..., sl] = surface_flow(z, *cams[frame], *cams[other], labels, objects)
        replace_written(self.seq_dir / layout.gt_file("flow", frame), lambda tmp: exr.write_channels(
            tmp, {n: out[..., i] for i, n in enumerate(names)}, compression=self.codec))
        if self.preview:  # what the compositor draws from the Vector pass otherwise
            preview = self.seq_dir / layout.preview_file("flow", frame)
            preview.parent.mkdir(parents=True, exist_ok=True)
            replace_written(preview, lambda tmp: tmp.write_bytes(
                png.png_bytes(png.flow_preview_rgb(out[..., :2]))))
        scratch.unlink(missing_ok=True)

    def _labels(self, index, frame: int, other: int):
        """Per pixel ``(H, W)`` int32: 0, or ``i`` for the ``i``-th mover (by its Object Index
        value, read through one table), and the movers' transforms at ``frame`` and ``other``."""
        if index is None or not self.movers:
            return None, None
        lut = np.zeros(segmentation.MAX_ID + 2, np.int32)
        for i, (oid, _) in enumerate(self.movers, start=1):
            lut[oid] = i
        labels = lut[np.clip(index, 0, segmentation.MAX_ID + 1).astype(np.int64)]
        return labels, [(m[frame], m[other]) for _, m in self.movers]
