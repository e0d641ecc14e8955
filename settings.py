# SPDX-License-Identifier: GPL-3.0-or-later
"""The one settings object. Pure Python: no ``bpy``.

Every option of Dataset Forge is a field of :class:`Settings`, and everything said about an option
is written with its field: the panel's PropertyGroup (``properties.py``), the panel rows
(``panels/``), the CLI flags (``cli.py``), the API keyword arguments and the README's options table
(``tools/options_table.py``) are all generated from these fields and their metadata:

* ``help``: one-line description (tooltip, ``--help``, README);
* ``group``: CLI help group and README section (one of :data:`GROUPS`);
* ``label``: the name shown in the panel (Blender's Title Case);
* ``choices``: allowed values for string fields (an enum in the UI), with ``enum_labels`` (value ->
  label shown in the drop-down);
* ``min`` / ``max``: hard bounds for numbers (checked by :meth:`Settings.check`); ``soft_min`` /
  ``soft_max``: the range a slider drags over in the panel (typing beyond it stays allowed);
* ``subtype``: Blender property subtype of a string (``FILE_PATH``, ``DIR_PATH``, ``NONE``);
* ``scope``: ``"scene"`` (saved with the panel settings) or ``"machine"`` (add-on preferences);
* ``panel``: the panel section that draws the field (one of :data:`PANELS`; default: its group);
* ``active_if``: the panel greys the row out unless this boolean field is on, or, for a
  ``(field, value)`` pair, unless that field has that value;
* ``cli``: the subcommands that take the flag (``render-animation`` renders one given frame range,
  so the options that cut a scene into sequences are ``create-datasets`` only);
* ``frame_bytes``: the field is a ground truth, and this is its share of a frame's buffers
  (bytes per pixel; ``dataset.modalities`` has its entry);
* ``legacy``: the value a sequence recorded before the option existed was rendered with, when it
  is not the default (provenance compares an old record's missing setting with it, so old frames
  are never resumed under a setting that changes them).

Names follow the tutorial's ``RenderConfig`` (``width``, ``depths``, ``keyframe_multiplier`` ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .errors import DatasetForgeError

GROUPS = ("Sequences", "Ground truth", "Render", "Output", "Run")

DEVICE_TYPES = ("AUTO", "OPTIX", "CUDA", "HIP", "METAL", "ONEAPI", "CPU")
FILE_FORMATS = ("PNG", "OPEN_EXR", "JPEG")
# Lossless codecs only: ground truth must round-trip exactly.
EXR_CODECS = ("ZIP", "ZIPS", "PIZ", "RLE", "NONE")
COLOR_MODES = ("RGB", "RGBA", "BW")
STRATEGIES = ("uniform", "random")
DEPTH_TYPES = ("planar", "distance")
NORMAL_FRAMES = ("camera", "world")
NORMAL_KINDS = ("shading", "geometric")
ON_CHANGE = ("refuse", "rerender")
RECORD_MODES = ("visible", "frustum", "all")  # object_records (dataset/documents/objects.py)
CAMERA_MODES = ("scene", "orbit", "flythrough")


# Panel sections (panels/dataset.py): a field's ``panel`` metadata names one of them.
PANELS = ("Scenes", "Sequences", "Camera", "Ground truth", "Render", "Output", "Run")
# Subcommands of cli.py that take settings flags.
COMMANDS = ("render-animation", "create-datasets")
SUBTYPES = ("NONE", "FILE_PATH", "DIR_PATH")


def _f(default: Any, help: str, group: str, *, label: str,
       choices: tuple | None = None, enum_labels: dict[str, str] | None = None,
       min: float | None = None, max: float | None = None,
       soft_min: float | None = None, soft_max: float | None = None,
       subtype: str = "NONE", scope: str = "scene", panel: str | None = None,
       active_if: str | tuple[str, str] | None = None,
       cli: tuple[str, ...] = COMMANDS, frame_bytes: int | None = None,
       legacy: Any = dataclasses.MISSING) -> Any:
    """A :class:`Settings` field with its whole description (see the module docstring)."""
    if enum_labels is not None and set(enum_labels) != set(choices or ()):
        raise TypeError(f"enum_labels {sorted(enum_labels)} do not match the choices {choices}")
    if choices and enum_labels is None:
        enum_labels = {c: c.replace("_", " ").title() for c in choices}
    meta = {"help": help, "group": group, "choices": choices, "min": min, "max": max,
            "scope": scope, "label": label, "enum_labels": enum_labels, "soft_min": soft_min,
            "soft_max": soft_max, "subtype": subtype, "panel": panel or group,
            "active_if": active_if, "cli": tuple(cli), "frame_bytes": frame_bytes}
    if legacy is not dataclasses.MISSING:
        meta["legacy"] = legacy
    return field(default=default, metadata=meta)


_DEVICE_LABELS = {"AUTO": "Auto", "OPTIX": "OptiX", "CUDA": "CUDA", "HIP": "HIP", "METAL": "Metal",
                  "ONEAPI": "oneAPI", "CPU": "CPU"}
_FORMAT_LABELS = {"PNG": "PNG", "OPEN_EXR": "OpenEXR", "JPEG": "JPEG"}
_CODEC_LABELS = {"ZIP": "ZIP", "ZIPS": "ZIPS", "PIZ": "PIZ", "RLE": "RLE", "NONE": "None"}
_COLOR_LABELS = {"RGB": "RGB", "RGBA": "RGBA", "BW": "BW"}
_PLAN_ONLY = ("create-datasets",)
_CAMERA_LABELS = {"scene": "Scene Camera", "orbit": "Orbit", "flythrough": "Flythrough"}


# the functional form keeps it to 14 lines (tests/test_documents.py checks it against the fields)
SettingsDict = TypedDict("SettingsDict", {  # noqa: UP013
    "sequences_per_scene": int, "num_frames": int, "strategy": str, "seed": int, "min_gap": int,
    "keyframe_multiplier": float, "scene": str, "camera": str, "camera_lens": float, "camera_speed": float,
    "camera_elevation_min": float, "camera_elevation_max": float, "camera_distance": float,
    "camera_clearance": float, "camera_look_ahead": float, "camera_target": str,
    "camera_min_coverage": float, "camera_seed": int, "depths": bool, "normals": bool, "flows": bool,
    "segmentations": bool, "debug": bool, "depth_type": str, "normal_frame": str, "class_property": str,
    "disable_motion_blur": bool, "disable_dof": bool, "object_records": str, "stereo_baseline": float,
    "normal_kind": str, "filtered_passes": bool, "width": int, "height": int, "max_samples": int,
    "adaptive_threshold": float, "use_denoising": bool, "device_type": str, "threads": int,
    "use_persistent_data": bool, "file_format": str, "bit_depth": int, "color_mode": str, "exr_codec": str,
    "jobs": int, "allow_skips": bool, "on_change": str, "autoexec": bool, "allow_scene_outputs": bool,
    "executable": str, "timeout": float, "retries": int, "recycle_frames": int, "gpus": str
}, total=False)
"""``Settings.to_dict()``: every option by name (a settings record read back from an older
version may lack the options added since, hence ``total=False``)."""


@dataclass
class Settings:
    """All options of a render. Units: pixels, samples, seconds, frames (after the multiplier)."""

    # -- Sequences ---------------------------------------------------------------------------
    sequences_per_scene: int = _f(1, "Number of disjoint sequences rendered per scene",
                                  "Sequences", label="Sequences per Scene", min=1, cli=_PLAN_ONLY)
    num_frames: int = _f(0, "Frames per sequence (0: the whole range divided by the sequence count)",
                         "Sequences", label="Frames per Sequence", min=0, cli=_PLAN_ONLY)
    strategy: str = _f("uniform", "How sequence starts are chosen: evenly spaced, or random "
                       "non-overlapping windows", "Sequences", label="Strategy", choices=STRATEGIES,
                       cli=_PLAN_ONLY)
    seed: int = _f(0, "Seed of the random strategy (same seed, same sequences)", "Sequences",
                   label="Seed", min=0, active_if=("strategy", "random"), cli=_PLAN_ONLY)
    min_gap: int = _f(0, "Random strategy: minimum number of frames between two sequences",
                      "Sequences", label="Minimum Gap", min=0, active_if=("strategy", "random"),
                      cli=_PLAN_ONLY)
    keyframe_multiplier: float = _f(1.0, "Stretch time before sampling (Blender's time remapping: "
                                    "keys, drivers, NLA, constraints follow; the frame range and "
                                    "frame rate scale by it; unstretchable physics is refused)",
                                    "Sequences", label="Keyframe Multiplier", min=0.01, max=100.0,
                                    soft_max=10.0)

    scene: str = _f("", "Scene of each .blend to render (empty: the file's active scene)",
                    "Sequences", label="Scene in File", panel="Scenes")

    # Generated cameras (docs/cameras.md; sampling/trajectory.py, render_passes/camera_rig.py)
    camera: str = _f("scene", "Camera to render through: the scene's own, or one generated at "
                     "render time (never saved into the file): orbit around what renders (or the "
                     "camera target), or flythrough along a smooth seeded path through free space",
                     "Sequences", label="Camera", choices=CAMERA_MODES, enum_labels=_CAMERA_LABELS,
                     panel="Camera")
    camera_lens: float = _f(35.0, "Generated camera: focal length in mm (36 mm sensor width)",
                            "Sequences", label="Focal Length", min=1.0, max=5000.0, soft_min=8.0,
                            soft_max=300.0, panel="Camera")
    camera_speed: float = _f(1.0, "Generated camera: speed along its path in scene units per "
                             "second", "Sequences", label="Speed", min=0.0, soft_max=20.0,
                             panel="Camera")
    camera_elevation_min: float = _f(10.0, "Orbit: lowest elevation above the target's centre "
                                     "(degrees)", "Sequences", label="Elevation Min", min=-85.0,
                                     max=85.0, panel="Camera", active_if=("camera", "orbit"))
    camera_elevation_max: float = _f(40.0, "Orbit: highest elevation above the target's centre "
                                     "(degrees)", "Sequences", label="Elevation Max", min=-85.0,
                                     max=85.0, panel="Camera", active_if=("camera", "orbit"))
    camera_distance: float = _f(1.0, "Orbit: radius as a multiple of the distance at which the "
                                "target's bounding sphere just fills the view", "Sequences",
                                label="Distance", min=0.05, max=100.0, soft_max=5.0,
                                panel="Camera", active_if=("camera", "orbit"))
    camera_clearance: float = _f(0.25, "Generated camera: smallest distance to any surface, in "
                                 "scene units, at every frame and between frames", "Sequences",
                                 label="Clearance", min=0.0, soft_max=10.0, panel="Camera")
    camera_look_ahead: float = _f(1.0, "Flythrough: look at the point of the path this many "
                                  "seconds ahead (ignored with a camera target)", "Sequences",
                                  label="Look Ahead", min=0.05, max=60.0, panel="Camera",
                                  active_if=("camera", "flythrough"))
    camera_target: str = _f("", "Generated camera: object or collection to orbit or look at "
                            "(empty: the bounding box of everything that renders)", "Sequences",
                            label="Target", panel="Camera")
    camera_min_coverage: float = _f(10.0, "Generated camera: smallest share (percent) of a coarse "
                                    "grid of pixel rays that must hit a surface in every frame",
                                    "Sequences", label="Min Coverage", min=0.0, max=100.0,
                                    panel="Camera")
    camera_seed: int = _f(0, "Generated camera: seed of the trajectories (each sequence's path "
                          "derives from the scene name, sequence id and this seed)", "Sequences",
                          label="Camera Seed", min=0, panel="Camera")

    # -- Ground truth ------------------------------------------------------------------------
    depths: bool = _f(False, "Write depth maps (depths/depth_NNNNNN.exr)", "Ground truth",
                      label="Depth", frame_bytes=4 + 2 * 16)
    normals: bool = _f(False, "Write surface normals (normals/normal_NNNNNN.exr)", "Ground truth",
                       label="Normals", frame_bytes=12 + 4 + 4 * 16)
    flows: bool = _f(False, "Write forward and backward optical flow (flows/flow_NNNNNN.exr)",
                     "Ground truth", label="Optical Flow", frame_bytes=16 + 3 * 16)
    segmentations: bool = _f(False, "Write object id maps (segmentations/segmentation_NNNNNN.exr)",
                             "Ground truth", label="Segmentation", frame_bytes=4 + 2 * 16)
    debug: bool = _f(True, "Also write colourised previews of the ground truth (previews/...)",
                     "Ground truth", label="Debug Previews")
    depth_type: str = _f("planar", "planar: distance along the camera's viewing axis; distance: "
                         "euclidean length of the camera ray", "Ground truth", label="Depth Type",
                         choices=DEPTH_TYPES, active_if="depths")
    normal_frame: str = _f("camera", "Frame of the written normals: camera (x right, y up, z towards "
                           "the viewer) or world", "Ground truth", label="Normal Space",
                           choices=NORMAL_FRAMES, active_if="normals")
    class_property: str = _f("dataset_class", "Object custom property holding its semantic class "
                             "(else the top-level collection)", "Ground truth",
                             label="Class Property", active_if="segmentations")
    disable_motion_blur: bool = _f(False, "Turn the scene's motion blur off for the run instead of "
                                   "failing when ground truth is requested (with blur on, depth, "
                                   "normals and ids come from a random time in the shutter, and "
                                   "Cycles writes zero flow)", "Ground truth",
                                   label="Disable Motion Blur")
    disable_dof: bool = _f(False, "Turn depth of field off on the scene's cameras for the run "
                           "instead of failing when ground truth is requested (with it on, depth, "
                           "normals, flow and ids come from rays through a random point of the "
                           "lens)", "Ground truth", label="Disable Depth of Field")
    object_records: str = _f("visible", "With segmentations: which instances each frame's object "
                             "record lists (objects/objects_NNNNNN.npz): visible ones (at least "
                             "one pixel), those in the camera frustum, or every drawn instance",
                             "Ground truth", label="Object Records", choices=RECORD_MODES,
                             enum_labels={"visible": "Visible", "frustum": "In Frustum",
                                          "all": "All Drawn"}, active_if="segmentations")
    stereo_baseline: float = _f(0.0, "Distance from the left to the right camera of a rectified "
                                "stereo pair, in scene units (0: mono). The sequence folder is "
                                "the left view; the right camera sits this far along the left "
                                "camera's x axis (same K, same orientation) and renders every "
                                "ground truth into SEQ/right/; disparity maps are written for "
                                "both views (needs depths)", "Ground truth",
                                label="Stereo Baseline", min=0.0, soft_max=10.0, active_if="depths")
    normal_kind: str = _f("shading", "Which normal the normals hold at the pixel centre's surface "
                          "point: shading (smooth shading, normal and bump maps, as Blender "
                          "shades) or geometric (the true facet normal)", "Ground truth",
                          label="Normal Kind", choices=NORMAL_KINDS, active_if="normals")
    filtered_passes: bool = _f(False, "Take normals and flow from the RGB render, averaged over "
                               "its samples and pixel filter, instead of from the pixel-centre "
                               "surface that depth and ids describe (cheaper, blended at edges)",
                               "Ground truth", label="Filtered Passes", legacy=True)

    # -- Render ------------------------------------------------------------------------------
    width: int = _f(512, "Image width in pixels (0: keep the scene's resolution)", "Render",
                    label="Resolution X", min=0, max=65536, soft_max=8192)
    height: int = _f(512, "Image height in pixels (0: keep the scene's resolution)", "Render",
                     label="Resolution Y", min=0, max=65536, soft_max=8192)
    max_samples: int = _f(256, "Maximum samples per pixel (Cycles)", "Render", label="Max Samples",
                          min=1, soft_max=4096)
    adaptive_threshold: float = _f(0.05, "Noise threshold of adaptive sampling (0: off)", "Render",
                                   label="Noise Threshold", min=0.0, max=1.0)
    use_denoising: bool = _f(True, "Denoise the RGB frames (ground truth is never denoised)",
                             "Render", label="Denoise")
    device_type: str = _f("AUTO", "Cycles device: AUTO picks OPTIX > CUDA > HIP > METAL > ONEAPI, "
                          "else CPU", "Render", label="Device", choices=DEVICE_TYPES,
                          enum_labels=_DEVICE_LABELS, scope="machine")
    threads: int = _f(0, "CPU render threads per worker (0: all cores)", "Render", label="Threads",
                      min=0)
    use_persistent_data: bool = _f(True, "Keep scene data between frames (faster for heavy scenes)",
                                   "Render", label="Persistent Data")

    # -- Output ------------------------------------------------------------------------------
    file_format: str = _f("PNG", "File format of the RGB frames", "Output", label="File Format",
                          choices=FILE_FORMATS, enum_labels=_FORMAT_LABELS)
    bit_depth: int = _f(8, "Bit depth of the RGB frames (8 or 16 for PNG, 16 or 32 for EXR)",
                        "Output", label="Color Depth", min=8, max=32)
    color_mode: str = _f("RGB", "Channels of the RGB frames", "Output", label="Color",
                         choices=COLOR_MODES, enum_labels=_COLOR_LABELS)
    exr_codec: str = _f("ZIP", "Lossless EXR compression for ground truth (and EXR frames)",
                        "Output", label="EXR Codec", choices=EXR_CODECS, enum_labels=_CODEC_LABELS)

    # -- Run ---------------------------------------------------------------------------------
    jobs: int = _f(1, "Number of worker processes rendering in parallel", "Run", label="Jobs",
                   min=1, soft_max=64, scope="machine", panel="Render")
    allow_skips: bool = _f(True, "Resume: skip frames and sequences that are already complete",
                           "Run", label="Resume")
    on_change: str = _f("refuse", "When a sequence folder holds frames made from another .blend or "
                        "with other settings: refuse (name what changed) or rerender that sequence",
                        "Run", label="If Inputs Changed", choices=ON_CHANGE)
    autoexec: bool = _f(False, "Allow Python scripts embedded in the .blend files to run "
                        "(only for files you trust)", "Run", label="Run Embedded Scripts",
                        scope="machine")
    allow_scene_outputs: bool = _f(False, "Let a scene's own compositor File Output nodes write where "
                                   "they point (off: they are muted for the render)", "Run",
                                   label="Scene File Outputs", scope="machine")
    executable: str = _f("", "Blender executable for the workers (empty: the running Blender, "
                         "or the bpy module's Python)", "Run", label="Worker Executable",
                         subtype="FILE_PATH", scope="machine")
    timeout: float = _f(300.0, "Seconds a worker may stay silent before it is killed and its job "
                        "retried", "Run", label="Timeout", min=1.0)
    retries: int = _f(1, "How often a failed scene is retried before it is recorded as failed",
                      "Run", label="Retries", min=0)
    recycle_frames: int = _f(2000, "Restart a worker after this many frames to bound memory "
                             "(0: never)", "Run", label="Recycle After Frames", min=0)
    gpus: str = _f("", "GPU indices to spread workers over, e.g. '0,1' (empty: let Cycles choose)",
                   "Run", label="GPUs", scope="machine")

    # ----------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: SettingsDict | None = None, **overrides: Any) -> "Settings":
        """Build from a mapping; unknown keys raise ``SettingsError`` naming them."""
        data = dict(values or {})
        data.update(overrides)
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise SettingsError(f"unknown option(s): {', '.join(unknown)}; valid options are: "
                                f"{', '.join(cls.field_names())}")
        s = cls(**{k: _coerce(cls, k, v) for k, v in data.items()})
        s.check()
        return s

    def to_dict(self) -> SettingsDict:
        return dataclasses.asdict(self)  # type: ignore[return-value]  # the keys are the fields

    def replace(self, **changes: Any) -> "Settings":
        return Settings.from_dict(self.to_dict(), **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def check(self) -> None:
        """Raise ``SettingsError`` for values outside their choices or bounds, non-finite numbers,
        a width without a height (or the reverse) and a frame size whose buffers would not fit in
        this machine's memory."""
        problems = self._bounds_problems() + self._combination_problems()
        if (self.width == 0) != (self.height == 0):
            problems.append(f"width and height are both 0 (the file's own resolution) or both set, "
                            f"not width={self.width} with height={self.height}")
        elif self.width and self.height and not problems:
            too_big = self.frame_size_problem(self.width, self.height)
            if too_big:
                problems.append(too_big + "; choose a smaller width and height")
        if problems:
            raise SettingsError("; ".join(problems))

    def _bounds_problems(self) -> list[str]:
        """Each field's value against its metadata: finite, one of its choices, within its bounds."""
        problems = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            if isinstance(v, float) and not math.isfinite(v):
                # NaN passes every comparison below: refuse it here, by name.
                problems.append(f"{f.name}={v!r} is not a finite number (default {f.default!r})")
                continue
            if m.get("choices") and v not in m["choices"]:
                problems.append(f"{f.name}={v!r} is not one of {', '.join(map(str, m['choices']))}")
            if m.get("min") is not None and v < m["min"]:
                problems.append(f"{f.name}={v!r} is below its minimum {m['min']}")
            if m.get("max") is not None and v > m["max"]:
                problems.append(f"{f.name}={v!r} is above its maximum {m['max']}")
        return problems

    def _combination_problems(self) -> list[str]:
        """Values that are valid alone but not together (bit depth for the file format, stereo
        without depths, camera path settings) and a malformed ``gpus`` list."""
        problems = []
        if self.file_format == "PNG" and self.bit_depth not in (8, 16):
            problems.append(f"bit_depth={self.bit_depth} is not valid for PNG frames (use 8 or 16)")
        if self.file_format == "OPEN_EXR" and self.bit_depth not in (16, 32):
            problems.append(f"bit_depth={self.bit_depth} is not valid for EXR frames (use 16 or 32)")
        if self.file_format == "JPEG" and self.bit_depth != 8:
            problems.append("JPEG frames are 8-bit: set bit_depth=8")
        if self.stereo_baseline > 0 and not self.depths:
            problems.append(f"stereo_baseline={self.stereo_baseline:g} needs depths (disparity is "
                            "computed from the depth pass): turn depths on")
        if self.camera == "orbit" and self.camera_elevation_min > self.camera_elevation_max:
            problems.append(f"camera_elevation_min={self.camera_elevation_min:g} is above "
                            f"camera_elevation_max={self.camera_elevation_max:g}; swap them")
        if self.camera == "flythrough" and self.camera_speed <= 0 and not self.camera_target:
            problems.append("camera=flythrough with camera_speed=0 has no direction to look in: "
                            "set camera_speed above 0 or a camera_target")
        if self.gpus and not all(p.strip().isdigit() for p in self.gpus.split(",")):
            problems.append(f"gpus={self.gpus!r} must be a comma-separated list of indices, e.g. 0,1")
        return problems

    def frame_size_problem(self, width: int, height: int) -> str | None:
        """Why frames of ``width`` x ``height`` pixels (the size that really renders: the file's
        own resolution times its percentage where width/height are 0) cannot be rendered on this
        machine, or None: their buffers would not fit in its memory."""
        per_px = self.frame_buffer_bytes()[1]
        need, have = width * height * per_px, _memory_bytes()
        if need <= have:
            return None
        return (f"{width}x{height} needs about {need / 2**30:.0f} GiB of frame buffers ({per_px} "
                "bytes per pixel for the RGB frame and the enabled passes), more than this "
                f"machine's {have / 2**30:.0f} GiB of memory")

    def frame_buffer_bytes(self) -> tuple[int, int]:
        """Estimated memory of one frame's buffers (bytes, bytes per pixel): Cycles' float RGBA
        render and display buffers, the denoiser's albedo and normal, each enabled pass with its
        compositor intermediates (float RGBA images)."""
        per_px = 16 * 3 + (24 if self.use_denoising else 0) + sum(
            FIELDS[flag].metadata["frame_bytes"] for flag in self.ground_truths)
        return self.width * self.height * per_px, per_px

    @property
    def ground_truths(self) -> tuple[str, ...]:
        """The flags of the enabled ground truths (``depths`` ...): the fields declared with
        ``frame_bytes`` (a ground truth's share of the frame buffers, bytes per pixel: its float
        pass plus compositor intermediates), in declaration order. ``dataset.modalities`` has
        one entry per such field."""
        return tuple(flag for flag in GROUND_TRUTHS if getattr(self, flag))

    @property
    def gpu_list(self) -> list[int]:
        return [int(p) for p in self.gpus.split(",") if p.strip()]


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# The ground-truth flags, in declaration order: the fields declared with ``frame_bytes``.
GROUND_TRUTHS = tuple(n for n, f in FIELDS.items() if f.metadata["frame_bytes"] is not None)

# Blender's frame limits (MAXFRAME, MINAFRAME in DNA_scene_types.h): a frame past them renders
# the limit's frame under another number.
MAX_FRAME = 1048574
MIN_FRAME = -1048574


def frame_range_problem(first: int, last: int) -> str | None:
    """Why frames ``first..last`` (inclusive, the stretched timeline) cannot be rendered, or None:
    outside Blender's frame limits."""
    for name, v in (("first", first), ("last", last)):
        if not MIN_FRAME <= v <= MAX_FRAME:
            return (f"the {name} frame {v} is outside Blender's frame range {MIN_FRAME}..{MAX_FRAME} "
                    "(Blender would render another frame under its number)")
    return None


def _memory_bytes() -> int:
    """This machine's physical memory in bytes (64 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 64 * 2**30


class SettingsError(DatasetForgeError, ValueError):
    """An option has an invalid value; the message names it and what is allowed."""


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Convert strings (CLI, JSON) and ints to the field's type."""
    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in _BOOL_TRUE:
                    return True
                if low in _BOOL_FALSE:
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            value = str(value)
            f = next(f for f in dataclasses.fields(cls) if f.name == name)
            choices = f.metadata.get("choices")
            if choices:
                # Accept any case for enums: "cpu" == "CPU", "Uniform" == "uniform".
                for c in choices:
                    if c.lower() == value.lower():
                        return c
            return value
    except (TypeError, ValueError):
        raise SettingsError(f"{name}={value!r} is not a valid {type(default).__name__}") from None
    return value
