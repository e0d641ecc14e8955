# SPDX-License-Identifier: GPL-3.0-or-later
"""render_passes.devices.choose_backend: the pure GPU choice (OPTIX > CUDA > HIP > METAL > ONEAPI,
then CPU). The module imports bpy only inside the functions that talk to Cycles."""

from __future__ import annotations

import pytest
from dataset_forge.render_passes.devices import GPU_PREFERENCE, choose_backend
from dataset_forge.settings import DEVICE_TYPES

ALL = {"OPTIX": ["RTX A", "RTX B"], "CUDA": ["RTX A", "RTX B"], "HIP": ["W7900"],
       "METAL": ["M2 Max"], "ONEAPI": ["Arc A770"]}


def test_preference_order_is_the_documented_one():
    assert GPU_PREFERENCE == ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
    assert set(GPU_PREFERENCE) | {"AUTO", "CPU"} == set(DEVICE_TYPES)


@pytest.mark.parametrize("present,expected", [
    (["OPTIX", "CUDA", "HIP", "METAL", "ONEAPI"], "OPTIX"),
    (["CUDA", "HIP", "METAL", "ONEAPI"], "CUDA"),
    (["HIP", "METAL", "ONEAPI"], "HIP"),
    (["METAL", "ONEAPI"], "METAL"),
    (["ONEAPI"], "ONEAPI"),
    (["ONEAPI", "CUDA"], "CUDA"),
    (["HIP", "OPTIX"], "OPTIX"),
])
def test_auto_takes_the_first_available_backend(present, expected):
    choice = choose_backend({b: ALL[b] for b in present})
    assert choice.backend == expected
    assert choice.devices == tuple(ALL[expected])
    assert choice.is_gpu
    assert choice.index is None
    assert expected in choice.reason and ALL[expected][0] in choice.reason


def test_auto_without_gpu_falls_back_to_cpu_and_says_what_was_tried():
    for available in ({}, {"CUDA": []}, {"OPTIX": [], "HIP": []}):
        choice = choose_backend(available)
        assert choice.backend == "CPU" and not choice.is_gpu and choice.devices == ()
        assert choice.reason == ("no GPU found (tried OPTIX, CUDA, HIP, METAL, ONEAPI): rendering "
                                 "on the CPU")


@pytest.mark.parametrize("requested", ["CUDA", "cuda", "HIP", "ONEAPI", "METAL"])
def test_explicit_request_wins_over_the_order(requested):
    choice = choose_backend(ALL, requested)
    assert choice.backend == requested.upper()
    assert choice.devices == tuple(ALL[requested.upper()])


def test_explicit_request_for_a_missing_backend_falls_back_with_its_name():
    choice = choose_backend({"CUDA": ["RTX"]}, "HIP")
    assert choice.backend == "CPU"
    assert choice.reason == "HIP requested but no HIP device found: rendering on the CPU"


def test_cpu_request_ignores_gpus():
    choice = choose_backend(ALL, "CPU", gpu_index=1)
    assert choice.backend == "CPU" and choice.devices == ()
    assert choice.reason == "CPU requested (device_type=CPU)"


def test_gpu_index_pins_one_device_of_the_chosen_backend():
    available = {"CUDA": ["GPU0", "GPU1", "GPU2"]}
    for i in range(3):
        choice = choose_backend(available, "AUTO", gpu_index=i)
        assert choice.backend == "CUDA"
        assert choice.devices == (f"GPU{i}",)
        assert choice.index == i
    # Identical names: the index, not the name, identifies the device.
    same = choose_backend({"OPTIX": ["RTX", "RTX"]}, gpu_index=1)
    assert same.devices == ("RTX",) and same.index == 1


def test_gpu_index_out_of_range_falls_back_to_cpu_and_says_why():
    choice = choose_backend({"CUDA": ["GPU0", "GPU1"]}, gpu_index=2)
    assert choice.backend == "CPU"
    assert choice.reason == ("GPU index 2 requested but CUDA has only 2 device(s): rendering on "
                             "the CPU")


def test_choice_is_pure_and_does_not_mutate_its_input():
    available = {"CUDA": ["A", "B"]}
    choose_backend(available, gpu_index=0)
    assert available == {"CUDA": ["A", "B"]}
