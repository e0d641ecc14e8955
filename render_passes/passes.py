# SPDX-License-Identifier: GPL-3.0-or-later
"""Ground-truth passes: view-layer passes + compositor nodes + File Output nodes.

Interface used by the worker (one rig per sequence):

* ``PassRig(scene, settings, seq_dir)``: enable passes, add our compositor nodes beside the user's.
* ``rig.frame_files(frame) -> dict[str, str]``: the ``*_file_path`` entries of this frame for
  ``transforms.json`` (relative to ``seq_dir``); their values are the files the journal checks.
* ``rig.prepare_frame(frame)``: per-frame updates (e.g. camera rotation for camera-frame normals),
  called after ``scene.frame_set(frame)`` and before the RGB render.
* ``rig.render_data(frame)``: right after the RGB render, the 1-sample data render that writes the
  ground truth from the pixel centres' surface (only with normals, flows or the ids of a scene
  that draws instances, without ``filtered_passes`` and with an RGB render of more than one
  sample; otherwise the RGB render wrote it and this does nothing).
* ``rig.warnings``: sentences for the worker to emit once (e.g. objects without a True Normal).
* ``rig.conventions() -> dict``: the ``conventions`` entries for the enabled passes.
* ``rig.teardown()``: remove our nodes and restore what was changed.

Everything is converted inside the compositor during the render that writes the files, so they
need no fix afterwards (docs/ground_truth.md):

* depth: Depth pass (planar) with the 1e10 background set to 0; ``distance`` multiplies by a
  per-pixel ray-length factor image ``sqrt(1 + ((u-cx)/fx)^2 + ((v-cy)/fy)^2)`` made with numpy.
* normals: world Normal pass (``normal_kind`` "geometric": the True Normal AOV where a material
  wrote it) rotated by R^T (camera rotation written into Math nodes per frame), then renormalised
  and zeroed where the depth has no surface, so background stays 0.
* flow: Vector pass routed through a Switch node (4.5/5.0 Separate Color and 4.2 File Output lose
  its 4th channel otherwise), split, forward = (-Z, W), backward = (X, -Y) in pixels, v down.
* segmentation: Object Index pass with ``pass_index`` = our object id (restored in teardown), the
  Depth pass and (with a data render) the Object Info > Random AOV, written raw (R, G, B) to
  ``segmentations/.raw/``; after the render
  :class:`objects.ObjectTracker` turns them into object + instance ids and ``objects.json``
  (``finish_frame``: the frame's record ``objects/objects_NNNNNN.npz``, journaled with it
  (``record_files``); ``finish_sequence``: the table; format in ``dataset/documents/objects.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import bpy

from ..dataset import camera as cam_model
from ..dataset import layout
from ..dataset.documents import objects_files as object_records
from ..dataset.documents import transforms as transforms_doc
from ..dataset.documents.base import JSONObject
from ..dataset.documents.info import ObjectStats
from ..dataset.documents.objects import FrameRecord
from ..dataset.documents.segmentation_ids import SegmentationIds
from ..dataset.modalities import MODALITIES
from ..dataset.png import FLOW_PREVIEW_SCALE
from ..settings import Settings
from . import compat, data_render, scene_setup, segmentation
from . import flow_plan as flow_plan_mod
from .compositor import Graph
from .data_render import RANDOM_AOV, TRUE_NORMAL_AOV
from .objects import ObjectTracker

# Where each kind's files go (flag, folder, stem, transforms.json key): dataset.layout.KINDS.
# What Blender needs for it: the view-layer pass and the File Output socket type.
# Raw Object Index + Depth + Random files (segmentations/.raw/segraw_NNNNNN.exr), replaced by the
# final segmentation files after each render: the writer's own scratch, not part of the layout.
# Each lives for one frame, so it is written uncompressed (1920x1080: read 21 ms instead of 39 with
# ZIP, written about 3x faster, 33 MB of RGBA float32 on disk until the frame's ids are written).
RAW_SEG, RAW_STEM, RAW_CODEC = ".raw", "segraw", "NONE"
# Debug previews of a graph being built: modality -> the compositor socket drawn as its PNG.
Previews = dict[str, "bpy.types.NodeSocket"]
# With flows and without depths: the surface mask (Depth pass < background) of each frame,
# flows/.raw/flowmask_NNNNNN.exr, read and deleted by the worker's flow fix under animated
# intrinsics (render_passes/worker.py). With depths the depth file is that mask (depth > 0).
FLOW_MASK_STEM = "flowmask"
# With flow from depth (.flow_plan): the scratch planar depth (+ Object Index) of each frame,
# flows/.raw/flowz_NNNNNN.exr, read and deleted once the frame's flow file is written.
FLOW_DEPTH_STEM = "flowz"
class PassRig:
    """Ground truth of one sequence (see the module docstring)."""

    def __init__(self, scene, settings: Settings, seq_dir: Path,
                 flow_plan: flow_plan_mod.FlowPlan | None = None):
        self.scene = scene
        self.settings = settings
        self.seq_dir = Path(seq_dir)
        self.kinds = [k for k, spec in layout.KINDS.items() if getattr(settings, spec.flag)]
        self.graph: Graph | None = None
        self._undo_tree: compat.CompositorUndo | None = None
        self._undo_passes: dict[str, bool] = {}
        self._undo_pass_index: dict[str, int] = {}
        self._rot_inputs: list[list[Any]] = []  # [row j][col i] -> Math input fed with R[j][i]
        self._factor_image = None
        self._factor_k: cam_model.Intrinsics | None = None
        self.ids: dict[str, int] = {}
        self.tracker: ObjectTracker | None = None
        self.records: object_records.SequenceWriter | None = None
        self._ids_doc: SegmentationIds | None = None
        # ids whose Object Index values may be shared (instances): the Random AOV names them
        self.instanced = "segmentation" in self.kinds and segmentation.draws_instances(
            segmentation.rendered_objects(scene, scene_setup.view_layer(scene)))
        # the RGB frame reads pass_index: ids from a data render, the RGB render keeps the file's
        self.index_readers = data_render.index_readers(scene, settings, self.kinds)
        # flow from depth (flow_plan.survey): no Vector pass, its file written after the render
        self.flow_plan = flow_plan if "flow" in self.kinds else None
        self.flow_writer: flow_plan_mod.FlowWriter | None = None
        # normals, Vector flow and shared ids from a 1-sample render of the frame (render_data)
        centre = {"normal"} | ({"flow"} if self.flow_plan is None else set())
        self.data_render = (bool(self.index_readers) or not settings.filtered_passes and (
            bool(centre & set(self.kinds)) or self.instanced))
        self._rgb_writes = False  # this frame's RGB render is its data render (prepare_frame)
        self.warnings: list[str] = []  # for the worker to emit once (names the thing)
        self._outputs: list[Any] = []  # our File Output nodes
        self._aovs: list[Any] = []  # view-layer AOVs we added
        self._aov_nodes: list[tuple[Any, Any]] = []  # (material node tree, node) we added
        if not self.kinds:
            return
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise

    # -- worker interface ------------------------------------------------------------------
    def frame_files(self, frame: int) -> dict[str, str]:
        return {layout.KINDS[k].key: layout.gt_file(k, frame) for k in self.kinds}

    def record_files(self, frame: int) -> list[str]:
        """The frame's object record (with segmentations): journaled with it, not in transforms.json."""
        return [layout.objects_file(frame)] if self.records is not None else []

    def prepare_frame(self, frame: int) -> None:
        if not self.kinds:
            return
        if self._rot_inputs:
            m = scene_setup.camera_pose(self.scene.camera)
            for j in range(3):
                for i in range(3):
                    self._rot_inputs[j][i].default_value = m[j][i]
        if self._factor_image is not None:
            self._update_factor()
        if self.tracker is not None and not self.index_readers:  # else in the data render
            self.tracker.expect(frame)
        data_render.vector_session(self.scene)
        if self.data_render:  # the RGB render writes the RGB frame only, unless it is 1 sample
            self._rgb_writes = data_render.rgb_is_centre_sample(self.scene) and not self.index_readers
            self._data_passes(self._rgb_writes)

    def render_data(self, frame: int) -> None:
        """After the RGB render of ``frame``: the data render (:func:`.data_render.render`);
        none where the RGB render wrote the ground truth (the module docstring)."""
        if self.data_render and not self._rgb_writes:
            data_render.render(self)

    def _data_passes(self, on: bool) -> None:
        """Our File Output nodes on (the data render) or muted (the RGB render). The view-layer
        passes stay on in both: switching the Vector pass between the two renders of a frame
        crashed Cycles with Persistent Data (5.0, docs/blender_notes.md)."""
        for fo in self._outputs:
            fo.mute = not on

    def finish_frame(self, frame: int, rendered: bool) -> None:
        """After ``frame`` was rendered (or skipped as done): final segmentation file and the
        frame's object metadata (and the flow file when made from depth). Call after
        ``scene.frame_set(frame)``."""
        if rendered and self.flow_writer is not None:
            self.flow_writer.submit(frame, self._flow_scratch(frame))
        if self.tracker is None:
            return
        final = self.seq_dir / layout.gt_file("segmentation", frame)
        raw = self._raw_dir() / f"{RAW_STEM}_{layout.frame_digits(frame)}.exr"
        self.tracker.finish_frame(frame, raw if rendered else None, final)
        done = self.tracker.frames.pop(frame)  # written once as the frame's record, not kept
        if rendered:
            self.records.frame(FrameRecord.make(
                done.pop("frame"), done.pop("camera"), f"{self.seq_dir} frame {frame}", **done))
        else:
            self.records.kept(frame)

    def finish_sequence(self) -> ObjectStats | None:
        """Write ``objects.json`` and the instance map of ``segmentation_ids.json``; returns
        timing and pixel-resolution statistics."""
        if self.tracker is None:
            self._remove_flow_masks()
            return None
        t = self.tracker
        _, listed = self.records.finish(t.infos)
        self._ids_doc.with_instances(listed).write(self.seq_dir)
        self._remove_flow_masks()
        try:
            self._raw_dir().rmdir()
        except OSError:
            pass
        return ObjectStats(timings=t.timings, pixels=t.resolve_stats, sources=t.sources)

    def flow_mask_path(self, frame: int, stem: str = FLOW_MASK_STEM) -> Path:
        """The scratch surface mask of ``frame`` (1 channel, 1 = surface) written beside its flow
        when the sequence has no depth; or another scratch of it (:data:`FLOW_DEPTH_STEM`)."""
        return (self.seq_dir / layout.KINDS["flow"].folder / RAW_SEG
                / f"{stem}_{layout.frame_digits(frame)}.exr")

    def _flow_scratch(self, frame: int) -> Path:
        return self.flow_mask_path(frame, FLOW_DEPTH_STEM)

    def flow_surface(self, frame: int) -> tuple[Path, bool]:
        """A single-channel EXR of ``frame`` that is > 0 exactly on surface pixels, and whether it
        is the scratch mask (deleted once read) rather than the depth file."""
        if "depth" in self.kinds:
            return self.seq_dir / layout.gt_file("depth", frame), False
        return self.flow_mask_path(frame), True

    def _remove_flow_masks(self) -> None:
        folder = self.flow_mask_path(0).parent
        if folder.is_dir():
            for stem in (FLOW_MASK_STEM, FLOW_DEPTH_STEM):
                for p in folder.glob(f"{stem}_*.exr"):
                    p.unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass

    def _raw_dir(self) -> Path:
        return self.seq_dir / layout.KINDS["segmentation"].folder / RAW_SEG

    def conventions(self) -> JSONObject:
        """The ``conventions`` of ``transforms.json`` for this rig's kinds (owned by
        ``dataset.documents.transforms``; each kind's entry is its ``dataset.modalities`` row)."""
        conv = transforms_doc.conventions(
            self.kinds, depth_type=self.settings.depth_type, normal_frame=self.settings.normal_frame,
            unit_scale_m=self.scene.unit_settings.scale_length, exr_channels=compat.EXR_CHANNELS,
            previews=self.settings.debug)
        self._surface_conventions(conv)
        return conv

    def _surface_conventions(self, conv: JSONObject) -> None:
        data_render.surface_conventions(self.settings, conv, self.flow_plan is not None)

    def teardown(self) -> None:
        if self.graph is not None:
            self.graph.remove()
            self.graph = None
        if self._factor_image is not None:
            try:
                bpy.data.images.remove(self._factor_image)
            except ReferenceError:
                pass
            self._factor_image = None
        if self._undo_tree is not None:
            compat.release_compositor(self.scene, self._undo_tree)
            self._undo_tree = None
        vl = scene_setup.view_layer(self.scene)
        for attr, val in self._undo_passes.items():
            setattr(vl, attr, val)
        self._undo_passes = {}
        for name, idx in self._undo_pass_index.items():
            ob = bpy.data.objects.get(name)
            if ob is not None:
                ob.pass_index = idx
        self._undo_pass_index = {}
        for ntree, node in reversed(self._aov_nodes):
            try:
                ntree.nodes.remove(node)
            except (ReferenceError, RuntimeError):
                pass
        self._aov_nodes = []
        for aov in reversed(self._aovs):
            try:
                vl.aovs.remove(aov)
            except (ReferenceError, RuntimeError):
                pass
        self._aovs = []
        if self.tracker is not None:
            self.tracker.close()
        if self.flow_writer is not None:
            self.flow_writer.close()
        self._rot_inputs = []

    # -- graph -----------------------------------------------------------------------------
    def _build(self) -> None:
        scene, s = self.scene, self.settings
        vl = scene_setup.view_layer(scene)
        # Normals need the Depth pass too: covered pixels are those whose depth is valid.
        attrs = {MODALITIES[k].view_layer_pass for k in self.kinds
                 if not (k == "flow" and self.flow_plan is not None)} | (
            {"use_pass_z"} if {"normal", "segmentation", "flow"} & set(self.kinds) else set())
        for attr in sorted(attrs):
            self._undo_passes[attr] = getattr(vl, attr)
            setattr(vl, attr, True)
        if "segmentation" in self.kinds:
            self._assign_ids(vl)
            data_render.object_indices(self, False)  # the RGB render's (the file's where read)
        if self.flow_plan is not None:
            self.flow_writer = flow_plan_mod.FlowWriter(self.flow_plan, self.seq_dir,
                                                        s.exr_codec, self.ids, s.debug)
        if "normal" in self.kinds and s.normal_kind == "geometric":
            self._add_true_normal_aov(vl)
        tree, self._undo_tree = compat.acquire_compositor(scene)
        g = self.graph = Graph(tree)
        rl = g.node("CompositorNodeRLayers")
        rl.scene = scene
        rl.layer = vl.name
        previews: Previews = {}
        for kind in [k for k in MODALITIES if k in self.kinds]:  # the graph's order as before
            getattr(self, f"_graph_{kind}")(g, rl, previews)
        for k, sock in previews.items():
            fo = compat.file_output(tree, str(self.seq_dir / layout.PREVIEWS / k),
                                    file_format="PNG", color_mode="RGB", color_depth="8")
            g.nodes.append(fo)
            fo.label = "DF"
            g.link(g.for_png(sock), compat.file_output_input(fo, layout.blender_stem(k), "RGBA"))
        self._outputs = [n for n in g.nodes if n.bl_idname == "CompositorNodeOutputFile"]

    def _graph_depth(self, g: Graph, rl, previews: Previews) -> None:
        """Depth (z or distance) to its EXR; its preview with ``debug``."""
        s = self.settings
        z = compat.render_layer_output(rl, "Depth")
        if s.depth_type == "distance":
            z = g.math("MULTIPLY", z, self._factor_socket(g))
        mask = g.math("LESS_THAN", z, layout.BACKGROUND_DEPTH)
        self._write(g, "depth", g.math("MULTIPLY", z, mask))
        if s.debug:  # near = red ... far = blue, no surface = black
            hue = g.math("MULTIPLY", g.normalize(z), 0.66, clamp=True)
            previews["depth"] = g.combine_color(hue, 1.0, mask, mode="HSV")

    def _graph_normal(self, g: Graph, rl, previews: Previews) -> None:
        """Unit normals (shading or true facet; world or camera frame) to their EXR, zero where
        there is no surface; the preview with ``debug``."""
        s = self.settings
        n = g.separate_xyz(compat.render_layer_output(rl, "Normal"))
        if s.normal_kind == "geometric":
            n = self._true_normal(g, rl, n)
        if s.normal_frame == "camera":
            n = self._rotate(g, n)
        sq = g.math("MULTIPLY_ADD", n[2], n[2],
                    g.math("MULTIPLY_ADD", n[1], n[1], g.math("MULTIPLY", n[0], n[0])))
        length = g.math("SQRT", sq)
        safe = g.math("MAXIMUM", length, 1e-30)
        # Cycles averages normals over all samples but takes depth and ids from the first:
        # zero the normal where the depth says "no surface" so that all kinds agree.
        valid = g.math("MULTIPLY", g.math("GREATER_THAN", length, 0.0),
                       g.math("LESS_THAN", compat.render_layer_output(rl, "Depth"),
                              layout.BACKGROUND_DEPTH))
        unit = [g.math("MULTIPLY", g.math("DIVIDE", c, safe), valid) for c in n]
        self._write(g, "normal", g.combine_xyz(*unit))
        if s.debug:
            rgb = [g.math("MULTIPLY", g.math("MULTIPLY_ADD", c, 0.5, 0.5), valid) for c in unit]
            previews["normal"] = g.combine_color(*rgb)

    def _graph_flow(self, g: Graph, rl, previews: Previews) -> None:
        """Forward and backward flow (u, v; pixels) to their EXR, and the surface mask file when
        no depth is written; the preview with ``debug``."""
        scene, s = self.scene, self.settings
        if self.flow_plan is not None:
            return self._graph_flow_depth(g, rl)
        x, y, zc, w = g.separate_rgba(compat.render_layer_output(rl, "Vector"), keep_w=True)
        fu = g.math("MULTIPLY", zc, -1.0)
        fv, bu = w, x
        bv = g.math("MULTIPLY", y, -1.0)
        self._write(g, "flow", g.combine_color(fu, fv, bu, bv))
        if "depth" not in self.kinds:  # else the depth file tells the surface
            fo = compat.file_output(
                g.tree, str(self.flow_mask_path(0).parent), file_format="OPEN_EXR",
                color_mode="BW", color_depth="32", exr_codec=s.exr_codec)
            g.nodes.append(fo)
            fo.label = "DF"
            g.link(g.math("LESS_THAN", compat.render_layer_output(rl, "Depth"), layout.BACKGROUND_DEPTH),
                   compat.file_output_input(fo, layout.blender_stem(FLOW_MASK_STEM), "FLOAT"))
        if s.debug:  # colour wheel: hue = direction (Middlebury angle), saturation = |flow|
            mag = g.math("SQRT", g.math("MULTIPLY_ADD", fu, fu, g.math("MULTIPLY", fv, fv)))
            scale = 1.0 / max(1.0, FLOW_PREVIEW_SCALE * scene.render.resolution_x
                              * scene.render.resolution_percentage / 100)
            sat = g.math("MULTIPLY", mag, scale, clamp=True)
            ang = g.math("ARCTAN2", g.math("MULTIPLY", fv, -1.0), g.math("MULTIPLY", fu, -1.0))
            hue = g.math("MULTIPLY_ADD", ang, 1.0 / (2 * math.pi), 0.5)
            previews["flow"] = g.combine_color(hue, sat, 1.0, mode="HSV")

    def _graph_flow_depth(self, g: Graph, rl) -> None:
        """The scratch of :class:`.flow_plan.FlowWriter`: planar depth (+ Object Index)."""
        z = compat.render_layer_output(rl, "Depth")
        movers = bool(self.flow_writer.movers)
        fo = compat.file_output(g.tree, str(self._flow_scratch(0).parent), file_format="OPEN_EXR",
                                color_mode="RGBA" if movers else "BW", color_depth="32", exr_codec=RAW_CODEC)
        g.nodes.append(fo)
        fo.label = "DF"
        sock = (g.combine_color(z, compat.render_layer_output(rl, "index_ob"), 0.0, 1.0)
                if movers else z)
        g.link(sock, compat.file_output_input(fo, layout.blender_stem(FLOW_DEPTH_STEM),
                                              "RGBA" if movers else "FLOAT"))

    def _graph_segmentation(self, g: Graph, rl, previews: Previews) -> None:
        """The raw Object Index + Depth + Random scratch file (the final ids are written after
        the render); the preview with ``debug``."""
        s = self.settings
        idx = compat.render_layer_output(rl, "index_ob")
        fo = compat.file_output(
            g.tree, str(self._raw_dir()), file_format="OPEN_EXR",
            color_mode="RGBA", color_depth="32", exr_codec=RAW_CODEC)
        g.nodes.append(fo)
        fo.label = "DF"
        raw = g.combine_color(idx, compat.render_layer_output(rl, "Depth"), self._random_socket(rl), 1.0)
        g.link(raw, compat.file_output_input(fo, layout.blender_stem(RAW_STEM), "RGBA"))
        if s.debug:
            hue = g.math("FRACT", g.math("MULTIPLY", idx, 0.618033988749895))
            val = g.math("GREATER_THAN", idx, 0.5)
            previews["segmentation"] = g.combine_color(hue, 0.75, val, mode="HSV")

    def _write(self, g: Graph, kind: str, sock) -> None:
        spec, stype = layout.KINDS[kind], MODALITIES[kind].socket
        fo = compat.file_output(
            g.tree, str(self.seq_dir / spec.folder), file_format="OPEN_EXR",
            color_mode={"FLOAT": "BW", "VECTOR": "RGB", "RGBA": "RGBA"}[stype],
            color_depth="32", exr_codec=self.settings.exr_codec)
        g.nodes.append(fo)
        fo.label = "DF"
        g.link(sock, compat.file_output_input(fo, layout.blender_stem(spec.stem), stype))

    def _rotate(self, g: Graph, n: list) -> list:
        """n_cam[i] = sum_j R[j][i] * n_world[j]; R (world-from-camera) is set per frame."""
        self._rot_inputs = [[None] * 3 for _ in range(3)]
        out = []
        for i in range(3):
            t = g.math("MULTIPLY", n[0], 0.0)
            self._rot_inputs[0][i] = t.node.inputs[1]
            for j in (1, 2):
                t = g.math("MULTIPLY_ADD", n[j], 0.0, t)
                self._rot_inputs[j][i] = t.node.inputs[1]
            out.append(t)
        return out

    def _add_true_normal_aov(self, vl) -> None:
        data_render.add_true_normal_aov(self, vl)

    def _true_normal(self, g: Graph, rl, shading: list) -> list:
        """World True Normal from the AOV where a material wrote it, else ``shading``."""
        a = g.separate_rgba(rl.outputs[TRUE_NORMAL_AOV])[:3]
        sq = g.math("MULTIPLY_ADD", a[2], a[2],
                    g.math("MULTIPLY_ADD", a[1], a[1], g.math("MULTIPLY", a[0], a[0])))
        has = g.math("GREATER_THAN", sq, 0.0)
        return [g.math("MULTIPLY_ADD", g.math("SUBTRACT", ai, si), has, si)
                for ai, si in zip(a, shading)]

    def _factor_socket(self, g: Graph):
        """Per-pixel ray length per unit of planar depth, as an image (updated if K changes)."""
        self._update_factor()
        node = g.node("CompositorNodeImage")
        node.image = self._factor_image
        return g.separate_rgba(node.outputs["Image"])[0]

    def _update_factor(self) -> None:
        import numpy as np

        k = cam_model.intrinsics(scene_setup.camera_params(self.scene, self.scene.camera))
        if k == self._factor_k and self._factor_image is not None:
            return
        img = self._factor_image
        if img is None or tuple(img.size) != (k.w, k.h):
            if img is not None:
                bpy.data.images.remove(img)
            img = bpy.data.images.new("DF ray factor", k.w, k.h, alpha=True, float_buffer=True)
            img.colorspace_settings.is_data = True
            self._factor_image = img
        # Blender image rows start at the bottom: row r is image row v = h - 1 - r.
        f = layout.ray_norm(np.asarray(k.K, np.float64), (k.h, k.w))[::-1].astype(np.float32)
        rgba = np.ones((k.h, k.w, 4), np.float32)
        rgba[..., :3] = f[..., None]
        img.pixels.foreach_set(rgba.ravel())
        img.update()
        self._factor_k = k

    def _assign_ids(self, vl) -> None:
        self.ids, doc = segmentation.assign_ids(self.scene, vl, self.settings.class_property)
        for ob in bpy.data.objects:
            if ob.library is not None:
                continue  # linked: read-only, keeps its pass_index (see assign_ids)
            want = self.ids.get(ob.name_full, 0)
            if ob.pass_index != want:
                self._undo_pass_index[ob.name] = ob.pass_index
                ob.pass_index = want
        self._ids_doc = doc
        doc.write(self.seq_dir)
        classes = {v.name: v.cls for v in doc.ids.values()}

        def rendered() -> set[str]:
            return {o.name_full for o in segmentation.rendered_objects(self.scene, vl)}
        self.tracker = ObjectTracker(self.scene, self.ids, classes, rendered,
                                     self.settings.exr_codec, self.settings.object_records)
        self.records = object_records.SequenceWriter(self.seq_dir, self.settings.object_records,
                                                     self.tracker.writer)
        # The centre ray's instance's AOV; none where nothing is drawn twice (every object has
        # its own index value; the AOV costs about 9 % of a 1-sample render's CPU).
        if self.data_render and self.instanced:
            self.tracker.aov_materials = data_render.add_random_aov(self, vl)

    def _random_socket(self, rl):
        """The Random AOV for the raw file's B channel (0 without it: no data render, or a
        scene that draws no instances)."""
        return rl.outputs[RANDOM_AOV] if self.tracker.aov_materials is not None else 0.0
