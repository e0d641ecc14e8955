# SPDX-License-Identifier: GPL-3.0-or-later
"""The on-disk contract of a sequence folder, written once. Pure Python (numpy for the ray grid).

Every path, file pattern, channel name and the pixel-ray grid live here; the writer
(``render_passes``), the loader, validate, preview, occlusion and the exports import them instead
of spelling them out. A sequence folder::

    SEQ/
      frames/frame_NNNNNN.{png,exr,jpg}          RGB
      depths/depth_NNNNNN.exr                    with depths
      normals/normal_NNNNNN.exr                  with normals
      flows/flow_NNNNNN.exr                      with flows
      segmentations/segmentation_NNNNNN.exr      with segmentations (+ segmentation_ids.json)
      previews/KIND/KIND_NNNNNN.png              with debug previews
      objects/objects_NNNNNN.npz                 with segmentations: the frame's object records
      disparities/disparity_NNNNNN.exr           with stereo_baseline > 0
      transforms.json, info.json, objects.json   (objects.json: the instance table)
      stereo.json, right/ (the right view, this same layout)   with stereo_baseline > 0
      .dataset_forge_journal.jsonl               the resume journal

``NNNNNN`` is the frame number on the (stretched) timeline, :data:`DIGITS` digits, zero-padded
(a negative frame gets a sign in front of the digits: ``frame_-000005``, as Blender's ``######``
writes it).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DatasetForgeError

if TYPE_CHECKING:  # numpy is imported where the ray grid is made: a process that only needs
    import numpy as np  # paths (a worker's events, the command line) starts without it

DIGITS = 6

TRANSFORMS = "transforms.json"
INFO = "info.json"
IDS_FILE = "segmentation_ids.json"
OBJECTS_FILE = "objects.json"
JOURNAL = ".dataset_forge_journal.jsonl"
PREVIEWS = "previews"

RGB_FOLDER, RGB_STEM = "frames", "frame"
RGB_EXTENSIONS = {"PNG": "png", "OPEN_EXR": "exr", "JPEG": "jpg"}

# Flow EXR channels R, G, B, A hold these, in this order (recorded in transforms.json conventions).
FLOW_KEYS = ("forward_u", "forward_v", "backward_u", "backward_v")


@dataclass(frozen=True)
class Kind:
    """One ground-truth modality: its settings flag, folder, file stem and ``transforms.json`` key."""

    name: str
    flag: str
    folder: str
    stem: str
    key: str


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("depth", "depths", "depths", "depth", "depth_file_path"),
    Kind("normal", "normals", "normals", "normal", "normal_file_path"),
    Kind("flow", "flows", "flows", "flow", "flow_file_path"),
    Kind("segmentation", "segmentations", "segmentations", "segmentation", "segmentation_file_path"),
)}


class LayoutError(DatasetForgeError, ValueError):
    """A path that leaves its sequence folder, or a name that is not part of the layout."""


def frame_digits(frame: int) -> str:
    """``frame`` as Blender's ``######`` writes it: ``000012``, ``-000005`` (sign, then
    :data:`DIGITS` digits)."""
    f = int(frame)
    return f"{'-' if f < 0 else ''}{abs(f):0{DIGITS}d}"


def rgb_file(frame: int, ext: str) -> str:
    """``frames/frame_NNNNNN.EXT``, relative to the sequence folder (``ext`` without the dot)."""
    return f"{RGB_FOLDER}/{RGB_STEM}_{frame_digits(frame)}.{ext}"


def gt_file(kind: str, frame: int) -> str:
    """``FOLDER/STEM_NNNNNN.exr`` of ground truth ``kind`` (a key of :data:`KINDS`)."""
    k = KINDS[kind]
    return f"{k.folder}/{k.stem}_{frame_digits(frame)}.exr"


def preview_file(kind: str, frame: int) -> str:
    """``previews/KIND/KIND_NNNNNN.png``."""
    return f"{PREVIEWS}/{kind}/{kind}_{frame_digits(frame)}.png"


def pattern(rel: str) -> str:
    """A relative file name of frame ``0`` turned into its documented pattern (``NNNNNN``)."""
    return rel.replace(frame_digits(0), "N" * DIGITS)


def blender_stem(stem: str) -> str:
    """The File Output / ``render.filepath`` stem Blender fills with the frame: ``depth_######``."""
    return f"{stem}_{'#' * DIGITS}"


def contained(seq_dir: str | os.PathLike, rel: str | os.PathLike, what: str = "path", *,
              resolved: bool = False) -> Path:
    """``seq_dir / rel`` resolved, refusing anything that leaves ``seq_dir`` (``..``, absolute
    paths, symlinks pointing out). Raises :class:`LayoutError` naming the file and the fix.
    ``resolved``: ``seq_dir`` is already resolved (a caller checking many paths resolves it once)."""
    root = Path(seq_dir) if resolved else Path(seq_dir).resolve()
    rel_s = os.fspath(rel)
    p = (root / rel_s).resolve()
    if os.path.isabs(rel_s) or (p != root and root not in p.parents):
        raise LayoutError(f"{root / 'transforms.json'}: {what} {rel_s!r} points outside the sequence "
                          "folder; refusing to read it (paths must be relative and stay inside)")
    return p


class Inside:
    """:func:`contained` for many paths of one folder: ``seq_dir`` is resolved once, each
    sub-folder once, and a file name below a resolved sub-folder costs one ``lstat`` (a symlink,
    ``..``, ``.`` or a missing name takes the full resolve). Same results and errors as
    :func:`contained`; a sub-folder replaced by a symlink after its first use is not seen again
    (one object per reading of a folder)."""

    def __init__(self, seq_dir: str | os.PathLike, *, resolved: bool = False):
        self.root = Path(seq_dir) if resolved else Path(seq_dir).resolve()
        self._dirs: dict[str, Path | None] = {}  # relative folder -> resolved, None: leaves root

    def __call__(self, rel: str | os.PathLike, what: str = "path") -> Path:
        rel_s = os.fspath(rel)
        head, _, name = rel_s.rpartition("/")
        if os.sep != "/" or os.path.isabs(rel_s) or name in ("", ".", ".."):
            return contained(self.root, rel_s, what, resolved=True)
        if head not in self._dirs:
            d = (self.root / head).resolve() if head else self.root
            self._dirs[head] = d if d == self.root or self.root in d.parents else None
        d = self._dirs[head]
        if d is None:
            return contained(self.root, rel_s, what, resolved=True)
        p = d / name
        try:
            if stat.S_ISLNK(os.lstat(p).st_mode):
                return contained(self.root, rel_s, what, resolved=True)
        except OSError:
            return contained(self.root, rel_s, what, resolved=True)
        return p


def pixel_rays(K: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised OpenCV image coordinates of the pixel centres through ``K`` ``(3, 3)``:
    ``x`` ``(1, W)`` and ``y`` ``(H, 1)`` float64, ``x = (col + 0.5 - cx) / fx`` (``y`` likewise,
    rows down). The one pixel-ray grid of the package (centres at ``+0.5``)."""
    import numpy as np

    h, w = shape
    x = (np.arange(w, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
    y = (np.arange(h, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
    return x[None, :], y[:, None]


def pixel_centres(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(u, v)``, each ``(H, W)`` float64: ``u = column + 0.5``."""
    import numpy as np

    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return u + 0.5, v + 0.5


# Cycles' raw Depth pass holds 1e10 where a pixel sees no surface: below this, a surface.
BACKGROUND_DEPTH = 1e9


def ray_norm(K: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` length of the camera ray through each pixel centre per unit planar depth:
    ``distance = planar * ray_norm``."""
    import numpy as np

    x, y = pixel_rays(K, shape)
    return np.sqrt(1.0 + x ** 2 + y ** 2)


# -- Instances, objects.json and camera cuts (object-level ground truth) ---------------------------
SEGMENTATION_OBJECT_CHANNEL = "V"            # float32 holding exact object ids
SEGMENTATION_INSTANCE_CHANNEL = "instance"   # uint32 instance ids (read as stored, not float32)
FRAME_CAMERA_KEY = "camera"                  # transforms.json frames[i]: the frame's camera name
CAMERAS_KEY = "cameras"                      # transforms.json top level: cameras in order of use
FLOW_FORWARD_VALID = "flow_forward_valid"    # transforms.json frames[i], false across a cut
FLOW_BACKWARD_VALID = "flow_backward_valid"
# Per-frame object records (dataset/documents/objects.py FrameRecord), one .npz per frame
OBJECTS_FOLDER, OBJECTS_STEM, OBJECTS_EXT = "objects", "objects", "npz"


def objects_file(frame: int) -> str:
    """``objects/objects_NNNNNN.npz``: the object record of ``frame``, relative to the sequence."""
    return f"{OBJECTS_FOLDER}/{OBJECTS_STEM}_{frame_digits(frame)}.{OBJECTS_EXT}"


# -- Provenance (what produced a sequence; see dataset/provenance.py) ------------------------------
PROVENANCE = "provenance.json"
RENDER_ID = "render_id"                      # provenance.json: new on each render from scratch

# -- The datasets folder around the sequences (create_datasets: DATASETS/renders/SCENE/SEQ-ID/) --
RENDERS = "renders"                          # DATASETS/renders/SCENE/SEQUENCE-ID/
MANIFEST = "manifest.json"                   # DATASETS/manifest.json
STATE_DIR = ".dataset_forge"                 # DATASETS/.dataset_forge/: the run lock, logs
LOCK = "lock"                                # DATASETS/.dataset_forge/lock (see dataset/lock.py)

# -- Stereo (stereo_baseline > 0; see dataset/stereo.py and docs/ground_truth.md) ------------------
# SEQ/ is the left view as always; SEQ/right/ holds the right view in this same layout (its own
# transforms.json, journal, provenance); SEQ/stereo.json describes the pair; both views carry
# disparities/disparity_NNNNNN.exr (channel DISPARITY_CHANNEL, pixels, 0 = no surface).
RIGHT_FOLDER = "right"
STEREO = "stereo.json"
DISPARITY = Kind("disparity", "stereo_baseline", "disparities", "disparity", "disparity_file_path")
DISPARITY_CHANNEL = "V"


def disparity_file(frame: int) -> str:
    """``disparities/disparity_NNNNNN.exr``, relative to a view's folder."""
    return f"{DISPARITY.folder}/{DISPARITY.stem}_{frame_digits(frame)}.exr"


def is_view_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the right view of the sequence folder above it (``SEQ/right`` beside
    ``SEQ/transforms.json``): part of that sequence, not a sequence of its own."""
    p = Path(path)
    return p.name == RIGHT_FOLDER and (p.parent / TRANSFORMS).is_file()
