# SPDX-License-Identifier: GPL-3.0-or-later
"""Cycles device selection: OPTIX > CUDA > HIP > METAL > ONEAPI, then CPU.

:func:`choose_backend` is pure (tested without Blender); :func:`configure_device` applies the
choice through Cycles' add-on preferences and returns a sentence for the log.
"""

from __future__ import annotations

from dataclasses import dataclass

GPU_PREFERENCE = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")


@dataclass(frozen=True)
class DeviceChoice:
    backend: str  # "OPTIX" ... or "CPU"
    devices: tuple[str, ...]  # names of the devices used
    reason: str  # one sentence for the log
    index: int | None = None  # position among the backend's devices when one GPU is pinned

    @property
    def is_gpu(self) -> bool:
        return self.backend != "CPU"


def choose_backend(available: dict[str, list[str]], requested: str = "AUTO",
                   gpu_index: int | None = None) -> DeviceChoice:
    """Pick the backend and devices to render with.

    ``available`` maps a backend (``"CUDA"`` ...) to the names of its GPU devices, in Cycles'
    order; backends that Blender cannot use on this platform are simply absent.
    ``requested`` is a :data:`settings.DEVICE_TYPES` value. ``gpu_index`` pins one device (the
    n-th of the chosen backend) for multi-GPU runs.
    """
    requested = requested.upper()
    if requested == "CPU":
        return DeviceChoice("CPU", (), "CPU requested (device_type=CPU)")
    order = GPU_PREFERENCE if requested == "AUTO" else (requested,)
    for backend in order:
        names = list(available.get(backend, ()))
        if not names:
            continue
        if gpu_index is not None:
            if gpu_index >= len(names):
                return DeviceChoice("CPU", (), f"GPU index {gpu_index} requested but {backend} has "
                                    f"only {len(names)} device(s): rendering on the CPU")
            names = [names[gpu_index]]
        return DeviceChoice(backend, tuple(names), f"rendering on {backend}: {', '.join(names)}",
                            gpu_index)
    if requested == "AUTO":
        why = "no GPU found (tried " + ", ".join(GPU_PREFERENCE) + "): rendering on the CPU"
    else:
        why = f"{requested} requested but no {requested} device found: rendering on the CPU"
    return DeviceChoice("CPU", (), why)


def probe_devices() -> dict[str, list[str]]:
    """Ask Cycles which GPU devices each backend sees (inside Blender)."""
    import bpy

    prefs = bpy.context.preferences.addons["cycles"].preferences
    found: dict[str, list[str]] = {}
    for backend in GPU_PREFERENCE:
        try:
            prefs.compute_device_type = backend
        except TypeError:  # backend not built for this platform (e.g. METAL on Linux)
            continue
        prefs.refresh_devices()
        names = [d.name for d in prefs.devices if d.type == backend]
        if names:
            found[backend] = names
    return found


def configure_device(scene, requested: str = "AUTO", gpu_index: int | None = None) -> DeviceChoice:
    """Set ``scene.cycles.device`` and the preferences' devices; returns the choice made."""
    import bpy

    choice = choose_backend(probe_devices() if requested.upper() != "CPU" else {}, requested,
                            gpu_index)
    prefs = bpy.context.preferences.addons["cycles"].preferences
    if choice.is_gpu:
        prefs.compute_device_type = choice.backend
        prefs.refresh_devices()
        # Select by position, not name: identical GPUs share a name.
        gpus = [d for d in prefs.devices if d.type == choice.backend]
        for d in prefs.devices:
            d.use = False
        for i, d in enumerate(gpus):
            d.use = choice.index is None or i == choice.index
        scene.cycles.device = "GPU"
    else:
        try:
            prefs.compute_device_type = "NONE"
        except TypeError:
            pass
        scene.cycles.device = "CPU"
    return choice
