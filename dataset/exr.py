# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and write float32 OpenEXR files with the ``OpenEXR`` 3.x Python module. No ``bpy``.

Arrays are ``(H, W)`` per channel, row 0 = the top row of the image. A missing, truncated or
otherwise unreadable file raises :class:`ExrError` naming the file and the reason, never a bare
library error (the library sometimes only prints a warning and returns zero parts).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetForgeError


class ExrError(DatasetForgeError, OSError):
    """An EXR file that cannot be read: missing, truncated, corrupt, or lacking a channel."""


def _module():
    try:
        import OpenEXR
    except ImportError as exc:  # pragma: no cover - OpenEXR is a dependency of the dataset tools
        raise ImportError("reading EXR files needs the OpenEXR Python module (pip install OpenEXR)") from exc
    return OpenEXR


def read_channels(path: str | os.PathLike, names: list[str] | tuple[str, ...] | None = None
                  ) -> dict[str, np.ndarray]:
    """Read channels of a single-part EXR as float32 arrays ``(H, W)``.

    ``names``: the channels wanted (all when None); a missing one raises :class:`ExrError`.
    Half and uint channels are converted to float32 (see :func:`pixel_types` for the stored type).
    """
    return {k: v.astype(np.float32, copy=False) for k, v in _read(path, names)[0].items()}


def pixel_types(path: str | os.PathLike) -> dict[str, str]:
    """Stored pixel type per channel: ``"FLOAT"``, ``"HALF"`` or ``"UINT"`` (reads the file)."""
    return _read(path, None)[1]


def read_stored(path: str | os.PathLike, names: list[str] | tuple[str, ...] | None = None
                ) -> dict[str, np.ndarray]:
    """Channels ``(H, W)`` at their stored dtype: float32, float16 or uint32 (ids exact, never
    rounded through float32). ``names`` as in :func:`read_channels`."""
    return _read(path, names)[0]


def _read(path, names):
    OpenEXR = _module()
    path = Path(path)
    if not path.is_file():
        raise ExrError(f"{path}: file not found")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            parts = f.parts
            if not parts:
                raise ExrError(f"{path}: truncated or corrupt EXR (no readable part)")
            chans = f.channels()
            out = {}
            types = {}
            for k, v in chans.items():
                px = v.pixels
                if px is None:
                    raise ExrError(f"{path}: truncated or corrupt EXR (channel {k} has no pixels)")
                out[k] = np.asarray(px)
                types[k] = str(v.type()).rsplit(".", 1)[-1]
    except ExrError:
        raise
    except Exception as exc:  # the module raises RuntimeError/ValueError/IndexError on bad files
        size = path.stat().st_size
        raise ExrError(f"{path}: truncated or corrupt EXR ({size} bytes): "
                       f"{' '.join(str(exc).split())[:200]}") from None
    if names is not None:
        missing = [n for n in names if n not in out]
        if missing:
            raise ExrError(f"{path}: missing channel(s) {', '.join(missing)} "
                           f"(has {', '.join(sorted(out)) or 'none'})")
        out = {n: out[n] for n in names}
        types = {n: types[n] for n in names}
    return out, types


def read_stack(path: str | os.PathLike, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Channels ``names`` stacked on the last axis: float32 ``(H, W, len(names))``."""
    ch = read_channels(path, names)
    return np.stack([ch[n] for n in names], axis=-1)


def read_single(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """One channel as float32 ``(H, W)``; ``name=None`` takes the only channel (or the first of
    V, R, Y, Z present)."""
    ch = read_channels(path, None if name is None else [name])
    if name is not None:
        return ch[name]
    if len(ch) == 1:
        return next(iter(ch.values()))
    for n in ("V", "R", "Y", "Z"):
        if n in ch:
            return ch[n]
    raise ExrError(f"{path}: several channels ({', '.join(sorted(ch))}) and none named")


def compression_name(codec: str) -> str:
    """OpenEXR's name of lossless codec ``codec`` (NO, RLE, ZIPS, ZIP, PIZ), also as Blender and the
    settings spell it (``NONE``)."""
    return {"NONE": "NO"}.get(codec.upper(), codec.upper())


def write_channels(path: str | os.PathLike, channels: dict[str, np.ndarray], *,
                   compression: str = "ZIP") -> None:
    """Write ``{name: (H, W) array}`` as a single-part float32 EXR (lossless ``compression``:
    :func:`compression_name`)."""
    OpenEXR = _module()
    comp = getattr(OpenEXR, f"{compression_name(compression)}_COMPRESSION")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in channels.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"channels must share one (H, W) shape, got {shapes}")
    header = {"compression": comp, "type": OpenEXR.scanlineimage}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with OpenEXR.File(header, arrays) as f:
        f.write(str(path))
