# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset Forge: render folders of animated .blend scenes into video datasets with ground truth.

The package works in three settings:

* as a Blender extension (``bl_ext.<repo>.dataset_forge``): ``register()`` adds the panel,
  operators and the ``blender --command dataset`` CLI;
* as a library inside Blender or the ``bpy`` wheel: ``render_animation`` / ``create_datasets``;
* as plain Python (no ``bpy``): sampling, metadata, loader and validator.

Nothing here imports ``bpy`` at import time; the public functions import what they need.
"""

from typing import Any as _Any

from .version import __version__

__all__ = [
    "__version__",
    "create_datasets",
    "load",
    "preview",
    "register",
    "render_animation",
    "unregister",
    "validate",
]


def __dir__() -> list[str]:
    """The public face only (``dir(dataset_forge)``), not the helpers and loaded submodules."""
    return sorted(__all__)


def render_animation(blend_file, root_path, *, frame_start: int | None = None,
                     frame_end: int | None = None, on_progress=None, **options: _Any):
    """Render frames ``frame_start..frame_end`` (inclusive, after the keyframe multiplier) of one
    ``.blend`` into ``root_path`` (frames/, ground truth folders, transforms.json).

    ``options`` are field names of :class:`settings.Settings`; ``on_progress`` receives every
    event of the run (see :class:`wire.protocol.Ev`). Returns the run summary, with the same
    keys as :func:`create_datasets` (:class:`wire.protocol.Summary`).
    """
    from .engine.api import render_animation as _impl

    return _impl(blend_file, root_path, frame_start=frame_start, frame_end=frame_end,
                 on_progress=on_progress, **options)


def create_datasets(scenes_dir, datasets_dir, *, sequences_per_scene: int = 1,
                    num_frames: int | None = None, on_progress=None, **options: _Any):
    """Render ``sequences_per_scene`` disjoint sequences of ``num_frames`` frames from every
    ``.blend`` in ``scenes_dir`` into ``datasets_dir/renders/SCENE/SEQUENCE-ID/``.

    ``options`` are field names of :class:`settings.Settings`; ``on_progress`` receives every
    event of the run (see :class:`wire.protocol.Ev`). Returns the run summary
    (:class:`wire.protocol.Summary`).
    """
    from .engine.api import create_datasets as _impl

    return _impl(scenes_dir, datasets_dir, sequences_per_scene=sequences_per_scene,
                 num_frames=num_frames, on_progress=on_progress, **options)


def load(path, **kwargs: _Any):
    """Open a sequence folder or a datasets folder (see :mod:`dataset.loader`)."""
    from .dataset.loader import load as _impl

    return _impl(path, **kwargs)


def validate(path, **kwargs: _Any):
    """Check a sequence or datasets folder; returns a report (see :mod:`dataset.validate`)."""
    from .dataset.validate import validate as _impl

    return _impl(path, **kwargs)


def preview(path, out, **kwargs: _Any):
    """Write preview grids for a sequence or datasets folder (see :mod:`dataset.preview`)."""
    from .dataset.preview import preview as _impl

    return _impl(path, out, **kwargs)


def register() -> None:
    """Blender entry point: properties, operators, panels, then the CLI command."""
    from . import cli, operators, panels, properties

    properties.register()
    operators.register()
    panels.register()
    cli.register()


def unregister() -> None:
    """Exact mirror of :func:`register`."""
    from . import cli, operators, panels, properties

    cli.unregister()
    panels.unregister()
    operators.unregister()
    properties.unregister()
